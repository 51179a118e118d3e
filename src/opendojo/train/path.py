"""The driven path: where the car went, indexed by distance along it instead of by time.

The trajectory head predicts where the car will be at fixed times. Its lateral offsets,
learned from drivers who take a junction at 10 m/s, stay what they were when the network
itself drives slower: the same sideways step then comes after fewer metres, a sharper turn
than the road's, and the car cuts the corner off the road (measured on the demo's
intersection: at 6 m/s the network's 3 s point bent 11 m sideways within 7 m forward). The
road's shape does not depend on speed, so a second head predicts the path at fixed
distances (every `spacing` metres), and the controller steers along it; the trajectory
head still sets the speed. The idea and the finding that waypoint steering fails at low
speed are from Jaeger et al., "Hidden Biases of End-to-End Driving Models" (ICCV 2023).

Targets come from the trajectory labels: the driven points, joined by straight segments
from the car's own position, resampled at `spacing`, `2 spacing`, ... metres of path. A
point beyond the distance the label covers (a slow or stopped car) has no target and is
masked out of the loss.
"""

from __future__ import annotations

import numpy as np
import torch


def path_distances(points: int, spacing: float) -> np.ndarray:
    """The arc lengths, metres, at which the path head places its points."""
    return spacing * np.arange(1, points + 1, dtype=np.float64)


def path_targets(trajectory: torch.Tensor, points: int, spacing: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(path [B, points, 2], valid [B, points]) from time-indexed waypoints [B, W, 2]."""
    b = trajectory.shape[0]
    traj = trajectory.float()
    pts = torch.cat([traj.new_zeros(b, 1, 2), traj], dim=1)                    # [B, W+1, 2]
    seg = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1)
    s = torch.cat([traj.new_zeros(b, 1), seg.cumsum(dim=1)], dim=1)            # [B, W+1]
    d = torch.as_tensor(path_distances(points, spacing), dtype=traj.dtype,
                        device=traj.device).expand(b, points).contiguous()
    hi = torch.searchsorted(s.contiguous(), d, right=True).clamp(1, s.shape[1] - 1)
    s0, s1 = s.gather(1, hi - 1), s.gather(1, hi)
    w = ((d - s0) / (s1 - s0).clamp_min(1e-6)).clamp(0.0, 1.0).unsqueeze(-1)
    idx = lambda i: i.unsqueeze(-1).expand(-1, -1, 2)  # noqa: E731
    p0, p1 = pts.gather(1, idx(hi - 1)), pts.gather(1, idx(hi))
    return p0 + w * (p1 - p0), d <= s[:, -1:]


def point_at(path: np.ndarray, spacing: float, distance: float) -> tuple[float, float]:
    """The predicted path's point `distance` metres along it (at least its first point,
    at most its last)."""
    d = np.r_[0.0, path_distances(len(path), spacing)]
    distance = max(distance, d[1])            # np.interp holds the last point beyond the end
    return (float(np.interp(distance, d, np.r_[0.0, path[:, 0]])),
            float(np.interp(distance, d, np.r_[0.0, path[:, 1]])))


def path_arc(traj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A label's path from the ego (the origin) through its waypoints [W, 2]: the points
    [W+1, 2] and their arc lengths [W+1], in float64 whatever the label's dtype."""
    traj = np.asarray(traj, np.float64)
    pts = np.concatenate([np.zeros((1, 2)), traj])
    return pts, np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])


def progress(traj: np.ndarray, still_m: float = 0.05) -> np.ndarray:
    """How far along its own path the car is at each waypoint [W, 2], metres: the arc
    length, except that a stretch running back the way the path came counts against it.

    A segment's direction is compared with the last one that moved (`still_m` or more;
    the first with the car's heading, +x): turned by more than 90 degrees, the path has
    reversed, and it stays reversed until it turns back. A turn, however sharp over the
    horizon (a roundabout bends past 90 degrees in 3 s), changes direction a little per
    waypoint and keeps counting forward; a plan that puts the car behind where it is
    (a stopped network's may) counts as going nowhere, not as a slow pace.
    """
    pts, arc = path_arc(traj)
    steps = np.diff(pts, axis=0)
    length = np.diff(arc)
    sign, heading, signed = 1.0, np.array([1.0, 0.0]), np.empty_like(length)
    for k, (step, n) in enumerate(zip(steps, length)):
        if n >= still_m:
            if float(step @ heading) < 0.0:
                sign = -sign
            heading = step / n
        signed[k] = sign * n
    return np.cumsum(signed)


def along(pts: np.ndarray, arc: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points [K, 2] and unit directions [K, 2] at arc lengths `s` along a path, straight on
    past its end (and straight ahead along x where the path is shorter than a metre)."""
    s = np.asarray(s, np.float64)
    if arc[-1] < 1.0:
        return np.stack([s, np.zeros_like(s)], -1), np.tile([1.0, 0.0], (len(s), 1))
    seg = np.clip(np.searchsorted(arc, s, side="right") - 1, 0, len(arc) - 2)
    seg_len = arc[seg + 1] - arc[seg]
    direction = (pts[seg + 1] - pts[seg]) / np.maximum(seg_len, 1e-6)[:, None]
    # a segment where the car stood still has no direction: use the path's overall one
    still = seg_len < 1e-3
    direction[still] = (pts[-1] / arc[-1])
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return pts[seg] + direction * (s - arc[seg])[:, None], direction
