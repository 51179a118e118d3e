"""Hindsight collision cost: where the other road users really were over a sample's horizon,
read from the clip's own later frames, and how close a predicted trajectory runs into them.

This is ChauffeurNet's collision loss (Bansal et al., "ChauffeurNet: Learning to Drive by
Imitating the Best and Synthesizing the Worst", RSS 2019), with the other agents' future
positions taken from the video instead of a perception stack. Imitation alone counts a frame
in which a driver braked or swerved for a stopped car as one more regression error; the
collision cost says *why* the driven future bent: driving straight on runs into something
in the frames that follow.

Per frame, a cost field (`clip_cost_field`): 1 on the pixels of other road users and
objects (the camera's object mask, `opendojo.fleet.camera.object_pixels`, of the
full-resolution frame; the ego's own box cleared), falling linearly to 0 at an ellipse
around them with the ego's half length plus a margin ahead and behind and its half width
plus a margin to the sides; so it is 0 wherever the ego's centre can be without its box
touching anything. A fleet clip carries the mask of its raw frames
(`ClipStore.read_objects`), so training reads what closed loop sees; only clips stored
without one take it from the decoded video, where H.264 smears a one-pixel fill over
about twice the pixels and loses about a sixth of the road users
(`benchmarks/object_channel_skew.py`). Kept beside the frame cache
(`<store>/cache/objectfield-<S>-v1/` from the mask, `costfield-<S>-v1/` from the video),
uint8 at the network's input size.

For a sample at frame i, the predicted waypoints are joined into a path sampled at every
later frame j = i+1 .. i+horizon (joined linearly from the ego's position). Telemetry says
where the ego really was at j in frame i's ego frame (`ego_motion`) and how far it had
turned, so a predicted point p moves into frame j's camera as

    q = R(heading_j - heading_i)^T (p - driven_j),

and the cost is frame j's field at q: what the car would have hit, had it driven the
prediction among the traffic that was really there. Where the ego drove itself the cost is
0 by construction, so the label is never penalised.

Only bird's-eye simulator clips (catalog `source` "sim") have such frames; other clips get
an empty field and cost nothing. The camera's scale and the ego's row are the fleet
camera's (`opendojo.fleet.camera.Camera`), as the data engine's video headway assumes.
Only telemetry and video are read, never the simulator's ground truth.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from opendojo.label.hindsight import to_ego_frame

EGO_HALF_LENGTH_M = 2.5
EGO_HALF_WIDTH_M = 1.0
MARGIN_M = 0.5
BIRDS_EYE_SOURCES = ("sim",)
COST_FIELD_CACHE = "costfield"       # from decoded video: <store>/cache/costfield-<S>-v1/
OBJECT_FIELD_CACHE = "objectfield"   # from the clip's object mask: objectfield-<S>-v1/


def is_birds_eye(row: dict) -> bool:
    """Is a catalog row's clip bird's-eye simulator video, where metres map to pixels?"""
    return row.get("source", "sim") in BIRDS_EYE_SOURCES


def camera_geometry(clip_width: int, image_size: int) -> tuple[float, float]:
    """(pixels per metre, ego row as a fraction of the height) at `image_size`, for a clip
    filmed `clip_width` pixels wide by the fleet camera."""
    from opendojo.fleet.camera import Camera

    cam = Camera()
    return cam.scaling * image_size / clip_width, cam.ego_row


def cost_field(frames: np.ndarray, size: int, px_per_m: float, ego_row: float) -> np.ndarray:
    """Full-resolution uint8 frames [N, H, W, 3] at `px_per_m` -> uint8 [N, size, size]:
    255 on other road users, falling to 0 where the ego's box would just clear them."""
    from opendojo.fleet.camera import object_pixels

    return mask_cost_field(object_pixels(frames), size, px_per_m, ego_row)


def mask_cost_field(objects: np.ndarray, size: int, px_per_m: float, ego_row: float) -> np.ndarray:
    """`cost_field` of the frames' object mask, bool [N, H, W] at `px_per_m`."""
    from scipy.ndimage import distance_transform_edt

    n, h, w = objects.shape
    occ = objects.copy()
    r0, c0 = ego_row * h, w / 2
    dr, dc = EGO_HALF_LENGTH_M * px_per_m + 1, EGO_HALF_WIDTH_M * px_per_m + 1
    occ[:, max(0, math.floor(r0 - dr)):math.ceil(r0 + dr),
        max(0, math.floor(c0 - dc)):math.ceil(c0 + dc)] = False
    # distance in units of the ellipse's semi-axes (rows run along the car, columns across)
    sampling = (1.0 / (px_per_m * (EGO_HALF_LENGTH_M + MARGIN_M)),
                1.0 / (px_per_m * (EGO_HALF_WIDTH_M + MARGIN_M)))
    field = np.zeros((n, h, w), np.float32)
    for k in range(n):
        if occ[k].any():
            field[k] = np.clip(1.0 - distance_transform_edt(~occ[k], sampling=sampling), 0, 1)
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(field)[:, None], size)[:, 0]
    return np.round(pooled.numpy() * 255).astype(np.uint8)


def camera_cost_field(frames: np.ndarray, size: int) -> np.ndarray:
    """`cost_field` of fleet-camera frames [N, H, W, 3] at their full resolution (the scale
    follows from their width): closed loop's channel, and a stored clip's field where the
    clip has no object mask."""
    width = frames.shape[2]
    return cost_field(frames, size, *camera_geometry(width, width))


def clip_cost_field(store, row: dict, size: int, frames: np.ndarray | None = None) -> np.ndarray:
    """uint8 [N, size, size] for a catalog row's clip (cached; all 0 for clips that are not
    bird's-eye simulator video): from the clip's object mask where it has one, else from its
    decoded frames. `frames`: those decoded frames where the caller has them, so that a
    field not cached yet does not decode the clip a second time."""
    from opendojo.clips.frame_cache import cache_dir, cached_array

    n = int(row["n_frames"])
    if not is_birds_eye(row):
        return np.zeros((n, size, size), np.uint8)
    if store.has_objects(row["clip_id"]):
        def from_mask():
            objects = store.read_objects(row["clip_id"])
            width = objects.shape[2]
            return mask_cost_field(objects, size, *camera_geometry(width, width))

        return cached_array(cache_dir(store, size, OBJECT_FIELD_CACHE) / f"{row['clip_id']}.npy", from_mask)

    def compute():
        return camera_cost_field(store.read_frames(row["clip_id"], row=row) if frames is None else frames, size)

    return cached_array(cache_dir(store, size, COST_FIELD_CACHE) / f"{row['clip_id']}.npy", compute)


def ego_motion(x: np.ndarray, y: np.ndarray, heading: np.ndarray, frames: np.ndarray,
               steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the ego was `1..steps` frames after each sample frame, in the sample frame's ego
    frame (as the hindsight labels: x forward, y to the telemetry's +y side), and how far it
    had turned: ([B, steps, 2], [B, steps]). Frames past the clip's end repeat the last."""
    heading = np.unwrap(heading)
    j = np.minimum(frames[:, None] + np.arange(1, steps + 1)[None, :], len(x) - 1)
    dx, dy = x[j] - x[frames, None], y[j] - y[frames, None]
    pos = to_ego_frame(dx, dy, heading[frames, None])
    return pos.astype(np.float32), (heading[j] - heading[frames, None]).astype(np.float32)


def densify(waypoints: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, W, 2] waypoints evenly spaced in time -> [B, steps, 2] at every frame, joined
    linearly from the origin (the ego now)."""
    pts = torch.cat([torch.zeros_like(waypoints[:, :1]), waypoints], dim=1).transpose(1, 2)
    dense = F.interpolate(pts, size=steps + 1, mode="linear", align_corners=True)
    return dense[..., 1:].transpose(1, 2)


def collision_cost(pred: torch.Tensor, driven: torch.Tensor, turn: torch.Tensor,
                   field: torch.Tensor, px_per_m: float, ego_row: float) -> torch.Tensor:
    """The cost field under the predicted path at every future frame, [B, steps] in [0, 1]
    (differentiable in `pred`).

    pred [B, W, 2] predicted waypoints; driven [B, steps, 2] and turn [B, steps] from
    `ego_motion`; field uint8 [B, steps, S, S] the later frames' cost fields at the
    input's `px_per_m`."""
    b, steps = driven.shape[:2]
    s = field.shape[-1]
    d = densify(pred.float(), steps) - driven.float()
    c, sn = torch.cos(turn.float()), torch.sin(turn.float())
    qx = c * d[..., 0] + sn * d[..., 1]
    qy = -sn * d[..., 0] + c * d[..., 1]
    col = s / 2 + qy * px_per_m
    row = ego_row * s - qx * px_per_m
    grid = torch.stack([col / s * 2 - 1, row / s * 2 - 1], dim=-1).reshape(b * steps, 1, 1, 2)
    maps = field.reshape(b * steps, 1, s, s).float() / 255.0
    cost = F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return cost.reshape(b, steps)
