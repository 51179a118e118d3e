"""Synthesised road users: things pasted into training frames, with the driven future cut
short so that it stops or follows behind them (ChauffeurNet's "synthesizing the worst",
Bansal et al., RSS 2019).

The fleet's good drivers see a stopped car long before the camera does and have changed
lane or slowed by the time it is in the frames, so a fleet's clips hold almost no samples
of a car at speed closing on something in its lane (34 of the demo's 8,439), and a network
trained on them does not react to what it sees ahead (docs/driving.md, "Does the network
see what is ahead?"). This module makes such samples from any sample at speed:

1. A thing (a stopped or moving car, or a box-sized obstacle) is placed `d` metres along
   the path the driver really drove next (the hindsight label), in the newest frame and,
   moved by the closing speed, in the older frames of the sample's history. It is drawn
   as highway-env draws road users (a filled rectangle with a dark outline) at the
   input's scale, each pixel covered in proportion to its area, as the loader's resize
   leaves a real car (but without the colour a real one loses to H.264), and into the
   object channel where the frames have one (`draw_field`).
2. The label keeps the driven path but not its pace: the car brakes at the constant
   deceleration that brings it to the thing's speed `GAP_M + HEADWAY_S x speed` behind
   it (a far thing is approached at speed and braked for at `COMFORT_DECEL`; one too
   near for that is braked for at once, at most at `MAX_DECEL`, even where that is too
   late), and never goes further along the path than the driver did. Where the label is
   cut, the acceleration label becomes at most that deceleration.
3. Some of the pasted things sit a lane to the side of the path instead, and some are
   cars ahead that drive no slower than the car; their labels are left as driven: a thing
   that is not in the way, or not closing in, is no reason to brake.
4. With `lane_changes`, a thing in the path that is standing or slow (`SWERVE_SPEED_SHARE`), on a sample that
   keeps its lane, is driven round instead where the frames show a free lane beside it
   (`lanes_beside`, `lane_free`) and there is time (`lane_change`): the label changes lane
   at the driven pace. A stopped car 40 m ahead at 25 m/s cannot be stopped for
   (`docs/driving.md`); the expert scores 0.68 on stopped things by changing lane, 0.33
   by stopping. Samples whose driver is changing lane get a stopped thing in the lane
   being left, with the label as driven (`vacated_lane`, `clears`): what a car that has begun to
   go round sees next.

Only bird's-eye simulator clips get things (their camera's scale and ego row are known);
the label and the frames are all that is read: telemetry-derived labels, never the
simulator's ground truth. The loader calls `synthesize` on a batch with a generator seeded
by the batch's position, so a resumed run pastes the same things.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from highway_env.road.lane import AbstractLane
from highway_env.vehicle.graphics import VehicleGraphics
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import Obstacle

from opendojo.engine.quality import object_mask
from opendojo.fleet.camera import Camera
from opendojo.train.path import along, path_arc
from opendojo.train.occupancy import (EGO_HALF_LENGTH_M, EGO_HALF_WIDTH_M, MARGIN_M, camera_geometry,
                                      is_birds_eye)

# (length, width) in metres of what highway-env draws: a car and an obstacle
SIZES_M = ((Vehicle.LENGTH, Vehicle.WIDTH), (float(Obstacle.LENGTH), float(Obstacle.WIDTH)))
# its fills: yellow (obstacles, parked cars), blue (traffic), red (crashed)
COLOURS = np.array([VehicleGraphics.YELLOW, VehicleGraphics.BLUE, VehicleGraphics.RED], np.float32)
OUTLINE = np.array(VehicleGraphics.BLACK, np.float32)
OUTLINE_M = 1 / Camera.scaling   # highway-env's 1 px outline at the fleet camera's px/m
GAP_M = 2.0                  # bumper to bumper, standing
HEADWAY_S = 1.0              # extra gap per m/s of the thing's speed
MAX_DECEL = 6.0              # m/s^2
COMFORT_DECEL = 2.0          # m/s^2: how hard a driver brakes who saw it in time
MOVING_MAX = 1.2             # moving cars drive at up to this times the ego's speed: a car
                             # ahead that is not closing in is no reason to brake, and without
                             # such samples a network braked behind every car it saw
MIN_SPEED = 3.0              # m/s: slower samples get no thing (their path says no direction)
SUPERSAMPLE = 8              # sub-pixels per pixel side for the area coverage
LANE_WIDTH_M = float(AbstractLane.DEFAULT_WIDTH)   # highway-env's lane width (4 m)
LANE_CHANGE_S = 3.0          # how long a synthesised lane change takes, where there is time
MIN_LANE_CHANGE_S = 1.8      # the quickest one (peak lateral acceleration ~7 m/s^2)
SWERVE_SPEED_SHARE = 0.3     # things slower than this share of the car's speed are driven
                             # round where a lane is free; faster ones are followed
CLEARANCE_M = MARGIN_M       # sideways room left between the car and a thing it passes
MARKING_CONTRAST = 30        # a lane marking column: brighter than the road by this (0..255)
MARKING_ROWS = 0.6           # ... on at least this share of the rows ahead (straight road)
MARKING_SATURATION = 25      # white: no more saturated than this (cars are 30 and more)
MARKING_MIN_SHARE = 0.15     # a column is part of a marking when this share of its rows is white
BEHIND_M = 15.0              # how far behind the car a target lane must be free, where the
                             # frame shows that far (the fleet camera shows ~11 m)
AHEAD_M = 15.0               # and how far beyond the thing
NEAR_M = 20.0                # a near thing (`pick_thing`'s `near_share`) is at most this far
                             # ahead: where the demo network gave 0.17-0.28 of the braking a
                             # stopped thing needed (docs/driving.md, "Things pasted near")
IN_PATH_M = EGO_HALF_WIDTH_M + Vehicle.WIDTH / 2   # a thing whose centre is nearer the path
                             # than this (2 m: the car's and a car's half widths) is in the way


@dataclass(frozen=True)
class Geometry:
    """The input frames' camera: pixels per metre, the ego's row (fraction of the height),
    seconds between two history frames, and the label's waypoint times (s)."""

    px_per_m: float
    ego_row: float
    history_dt: float
    times: np.ndarray


def clips_geometry(rows, image_size: int, frame_stride: int, times: np.ndarray) -> Geometry | None:
    """The Geometry things are pasted at for catalog rows' clips (None when none is
    bird's-eye simulator video): their camera at `image_size`, history `frame_stride`
    frames apart, labels with waypoints at `times` (`LabelSpec.times`)."""
    from opendojo.errors import DatasetError

    sim = [r for r in rows if is_birds_eye(r)]
    widths = {r["width"] for r in sim}
    rates = {round(float(r["fps"]), 3) for r in sim}
    if len(widths) > 1 or len(rates) > 1:
        raise DatasetError(f"synthesised road users need one camera width and frame rate; "
                           f"these clips have widths {sorted(widths)} and rates {sorted(rates)}")
    if not sim:
        return None
    px_per_m, ego_row = camera_geometry(widths.pop(), image_size)
    return Geometry(px_per_m, ego_row, frame_stride / rates.pop(), times)


def braking_arc(speed: float, thing_speed: float, room_m: float, times: np.ndarray) -> tuple[np.ndarray, float]:
    """Arc lengths at `times` of a car at `speed` that closes on a thing at `thing_speed`
    with `room_m` metres of closing to spare, and the deceleration it brakes at now (0
    while it still keeps its speed).

    It keeps its speed until braking at COMFORT_DECEL would just match the thing's speed at
    the end of the room, then brakes at that rate; with less room than that, it brakes at
    once, as hard as it takes (at most MAX_DECEL). Having matched, it follows."""
    closing = max(speed - thing_speed, 0.0)
    if closing == 0.0:
        return speed * times, 0.0
    need = MAX_DECEL if room_m <= 0 else closing**2 / (2 * room_m)
    decel = min(MAX_DECEL, max(need, COMFORT_DECEL))
    t_brake = 0.0 if need >= COMFORT_DECEL else (room_m - closing**2 / (2 * decel)) / closing
    t = np.clip(times - t_brake, 0.0, closing / decel)          # seconds spent braking
    arc = speed * times - decel * t**2 / 2 - decel * t * np.maximum(times - t_brake - t, 0.0)
    return arc, decel if t_brake <= 0 else 0.0


def _subpixels(shape: tuple[int, int], centre_px: tuple[float, float], direction: np.ndarray,
               reach: float):
    """The pixels of a frame of `shape` within `reach` px of `centre_px` (row, col), clipped
    to it: (rows slice, cols slice, along, across), where along/across [R*S, C*S] are the
    signed offsets of their SUPERSAMPLE x SUPERSAMPLE sub-pixel centres from the centre
    along and across `direction` (a (rows, cols) unit vector); None off the frame."""
    r0, r1 = max(int(math.floor(centre_px[0] - reach)), 0), min(int(math.ceil(centre_px[0] + reach)), shape[0])
    c0, c1 = max(int(math.floor(centre_px[1] - reach)), 0), min(int(math.ceil(centre_px[1] + reach)), shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    dr = (np.arange(r0, r1)[:, None] + sub[None, :]).reshape(-1)[:, None] - centre_px[0]
    dc = (np.arange(c0, c1)[:, None] + sub[None, :]).reshape(-1)[None, :] - centre_px[1]
    return (slice(r0, r1), slice(c0, c1), dr * direction[0] + dc * direction[1],
            -dr * direction[1] + dc * direction[0])


def _cover(values: np.ndarray) -> np.ndarray:
    """Per-pixel means [R, C] of sub-pixel values [R*S, C*S]."""
    r, c = values.shape[0] // SUPERSAMPLE, values.shape[1] // SUPERSAMPLE
    return values.reshape(r, SUPERSAMPLE, c, SUPERSAMPLE).mean(axis=(1, 3))


def draw_box(frame: np.ndarray, centre_px: tuple[float, float], direction: np.ndarray,
             size_m: tuple[float, float], colour: np.ndarray, px_per_m: float) -> None:
    """Blend a filled rectangle with a dark outline into a float frame [H, W, 3] in place.
    `centre_px` (row, col); `direction` the box's length axis as (rows, cols) unit vector."""
    length, width = (size_m[0] * px_per_m, size_m[1] * px_per_m)
    line = OUTLINE_M * px_per_m
    window = _subpixels(frame.shape[:2], centre_px, direction, math.hypot(length, width) / 2 + line + 1)
    if window is None:
        return
    rows, cols, a, b = window
    a, b = np.abs(a), np.abs(b)
    outer = (a <= length / 2) & (b <= width / 2)
    inner = (a <= length / 2 - line) & (b <= width / 2 - line)
    cover_fill = _cover(inner)[..., None]
    cover_line = _cover(outer & ~inner)[..., None]
    patch = frame[rows, cols]
    frame[rows, cols] = patch * (1 - cover_fill - cover_line) + colour * cover_fill + OUTLINE * cover_line


def draw_field(field: np.ndarray, centre_px: tuple[float, float], direction: np.ndarray,
               size_m: tuple[float, float], px_per_m: float) -> None:
    """Blend a thing's cost field into a float object channel [H, W] (0..255) in place, as
    `occupancy.cost_field` makes it from a frame: 255 on the thing's fill (the coloured
    part `object_mask` finds, inside the outline), falling to 0 at the ellipse where the
    ego's box would just clear it, each pixel the mean over its area; the larger of it and
    what the channel already holds. Arguments as `draw_box`'s."""
    along_px = (EGO_HALF_LENGTH_M + MARGIN_M) * px_per_m     # the ellipse's semi-axes:
    across_px = (EGO_HALF_WIDTH_M + MARGIN_M) * px_per_m     # rows (along the ego), columns
    length = max(size_m[0] - 2 * OUTLINE_M, 0.0) * px_per_m
    width = max(size_m[1] - 2 * OUTLINE_M, 0.0) * px_per_m
    window = _subpixels(field.shape, centre_px, direction,
                        math.hypot(length, width) / 2 + max(along_px, across_px) + 1)
    if window is None:
        return
    rows, cols, a, b = window
    # from the nearest point of the thing to here, in the thing's axes, then the image's
    ea = np.sign(a) * np.maximum(np.abs(a) - length / 2, 0)
    eb = np.sign(b) * np.maximum(np.abs(b) - width / 2, 0)
    er, ec = ea * direction[0] - eb * direction[1], ea * direction[1] + eb * direction[0]
    value = np.clip(1 - np.hypot(er / along_px, ec / across_px), 0, 1)
    field[rows, cols] = np.maximum(field[rows, cols], 255 * _cover(value))


@dataclass(frozen=True)
class Thing:
    """One pasted thing: how far along the path, how far to its side, its speed and look."""

    distance_m: float
    side_m: float
    speed: float
    size_m: tuple[float, float]
    colour: np.ndarray

    @property
    def in_path(self) -> bool:
        """Is it in the car's way (its centre within `IN_PATH_M` of the path), not a lane
        to the side?"""
        return abs(self.side_m) < IN_PATH_M


def placed(traj: np.ndarray, thing: Thing) -> tuple[np.ndarray, np.ndarray]:
    """Where a thing goes for a label [W, 2]: `distance_m` along the driven path and
    `side_m` to its right (m ahead, m right), and the path's direction there."""
    pts, arc = path_arc(traj)
    (pos,), (direction,) = along(pts, arc, [thing.distance_m])
    return pos + thing.side_m * np.array([-direction[1], direction[0]]), direction


def pixel_at(ahead_m: float, right_m: float, h: int, w: int, geo: Geometry) -> tuple[float, float]:
    """(row, column) in an h x w frame of a point `ahead_m` ahead of the ego and `right_m`
    to its right."""
    return geo.ego_row * h - ahead_m * geo.px_per_m, w / 2 + right_m * geo.px_per_m


def draw_thing(frames: np.ndarray, traj: np.ndarray, speed: float, thing: Thing, geo: Geometry) -> np.ndarray:
    """The sample's history frames uint8 [T, H, W, C] (oldest first, newest last) with the
    thing drawn where it was in each: in the newest where `placed` puts it; in older frames
    moved by the closing speed (`draw_at`)."""
    return draw_at(frames, *placed(traj, thing), speed, thing, geo)


def draw_at(frames: np.ndarray, pos: np.ndarray, direction: np.ndarray, speed: float, thing: Thing,
            geo: Geometry) -> np.ndarray:
    """`frames` (as `draw_thing`'s) with the thing at `pos` (m ahead, m right) facing
    `direction` (a unit vector) in the newest frame; in a frame k steps older, moved by the
    closing speed (further for a slower thing, nearer for a faster one). With
    C = 4 the fourth channel is the object channel (`opendojo.train.inputs`), and the thing
    goes into it too (`draw_field`)."""
    out = frames.astype(np.float32)
    t_count, h, w = frames.shape[:3]
    axis = np.array([-direction[0], direction[1]])
    for k in range(t_count):
        age = (t_count - 1 - k) * geo.history_dt
        # the ego was speed*age behind (straight), the thing thing.speed*age back along its way
        x = pos[0] + speed * age - thing.speed * age * direction[0]
        y = pos[1] - thing.speed * age * direction[1]
        centre = pixel_at(x, y, h, w, geo)
        draw_box(out[k, ..., :3], centre, axis, thing.size_m, thing.colour, geo.px_per_m)
        if out.shape[-1] == 4:
            draw_field(out[k, ..., 3], centre, axis, thing.size_m, geo.px_per_m)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def stop_behind(traj: np.ndarray, speed: float, thing: Thing, geo: Geometry) -> tuple[np.ndarray, float]:
    """The label [W, 2] cut short to stop or follow behind a thing in the path (the label
    itself when the driven future already keeps back, or when the thing is no slower than
    the car), and the deceleration to brake at now (`braking_arc`)."""
    if thing.speed >= speed:          # not closing in: the gap only opens
        return traj, 0.0
    pts, arc = path_arc(traj)
    gap = EGO_HALF_LENGTH_M + thing.size_m[0] / 2 + GAP_M + HEADWAY_S * thing.speed
    room = thing.distance_m - gap
    # Too near to stop in time, the label brakes as hard as a car can (MAX_DECEL), no harder.
    plan, decel = braking_arc(speed, thing.speed, room, geo.times)
    s = np.minimum(arc[1:], plan)
    if np.allclose(s, arc[1:]):
        return traj, 0.0
    new, _ = along(pts, arc, s)
    return new.astype(traj.dtype), decel


def lane_markings(frame: np.ndarray, px_per_m: float, ego_row: float) -> np.ndarray:
    """Where the straight lane markings ahead of the car are in a frame [H, W, >=3] at the
    input's scale: metres to the right of the car (negative: left), sorted. A marking is a
    run of at most 3 columns of white (unsaturated, brighter than the road by
    MARKING_CONTRAST) on at least MARKING_ROWS of the rows ahead, each dash of a dashed line
    blurred into its neighbours by the resize; on a curve the lines cross columns and none
    is found. Reads only the frame."""
    h, w = frame.shape[:2]
    ahead = frame[: max(int(ego_row * h), 1), :, :3].astype(np.float32)
    grey = ahead.mean(-1)
    white = ~object_mask(ahead, MARKING_SATURATION) & (grey - np.median(grey) > MARKING_CONTRAST)
    share = white.mean(0)
    runs, _ = ndimage.label(share > MARKING_MIN_SHARE)       # runs of consecutive columns
    out = []
    for (run,) in ndimage.find_objects(runs):
        cols = np.arange(run.start, run.stop)
        if len(cols) <= 3 and white[:, cols].any(1).mean() >= MARKING_ROWS:
            out.append((float((share[cols] * (cols + 0.5)).sum() / share[cols].sum()) - w / 2) / px_per_m)
    return np.asarray(out)


def lanes_beside(markings: np.ndarray) -> tuple[bool, bool]:
    """(a lane to the left, one to the right) from `lane_markings`: a marking about half a
    lane to that side of the car (its own lane's edge) and another about a lane beyond it
    (the far edge of the next lane). At a road's edge the last marking has none beyond."""
    def side(sign: int) -> bool:
        mirrored = sign * markings
        near = [m for m in mirrored if 0.5 < m <= LANE_WIDTH_M / 2 + 1.0]
        return any(abs(m - n - LANE_WIDTH_M) <= 1.0 for n in near for m in mirrored)
    return side(-1), side(1)


def lane_free(field: np.ndarray, px_per_m: float, ego_row: float, lateral_m: float,
              ahead_m: float) -> bool:
    """Is the lane centred `lateral_m` to the right of the car empty in an object channel
    [H, W] (0..255, `occupancy.cost_field`) from BEHIND_M behind the car to `ahead_m`
    ahead? Its centre line's columns must hold no cost: the cost of a car in the lane
    reaches its centre, that of a car in the next lane over stops short of it."""
    h, w = field.shape
    centre = w / 2 + lateral_m * px_per_m
    cols = np.flatnonzero(np.abs(np.arange(w) + 0.5 - centre) <= max(0.3 * LANE_WIDTH_M * px_per_m, 0.5))
    r0 = max(int(math.floor(ego_row * h - ahead_m * px_per_m)), 0)
    r1 = min(int(math.ceil(ego_row * h + BEHIND_M * px_per_m)), h)
    if len(cols) == 0 or r0 >= r1:
        return False
    return bool(field[r0:r1, cols].max() < 32)


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10 - 15 * tau + 6 * tau**2)


def lane_change(traj: np.ndarray, pos: np.ndarray, thing: Thing, side: int, times: np.ndarray) -> np.ndarray | None:
    """The label [W, 2] moved one lane to `side` (-1 left, +1 right) by a minimum-jerk lane
    change that starts now, at the driven pace: LANE_CHANGE_S long, or as much shorter as
    it takes for the label's path (its waypoints joined, as the controller follows them)
    to pass the thing at `pos` (m ahead, m right: where `placed` puts it) with
    CLEARANCE_M to spare (`clears`); None where that would take less than
    MIN_LANE_CHANGE_S."""
    base = traj.astype(np.float64)
    for duration in np.arange(LANE_CHANGE_S, MIN_LANE_CHANGE_S - 1e-9, -0.1):
        out = base.copy()
        out[:, 1] += side * LANE_WIDTH_M * _min_jerk(times / duration)
        if clears(out, pos, thing):
            return out.astype(traj.dtype)
    return None


def keeps_lane(traj: np.ndarray) -> bool:
    """Does a label stay within a metre of straight ahead (no turn, no lane change)?"""
    return bool(np.abs(traj[:, 1]).max() < 1.0)


def vacated_lane(traj: np.ndarray, distance_m: float) -> tuple[np.ndarray, np.ndarray] | None:
    """For a label that ends a lane change (its end at least a metre to one side and
    heading along the lane again), the point `distance_m` ahead on the centre of the lane
    it left, and the lane's direction: one lane back across from the straight line
    through the label's end. None for any other label."""
    pts, _ = path_arc(traj)
    end, seg = pts[-1], pts[-1] - pts[-2]
    if abs(end[1]) < 1.0 or np.linalg.norm(seg) < 0.5 or abs(seg[1]) > 0.1 * abs(seg[0]):
        return None
    direction = seg / np.linalg.norm(seg)
    right = np.array([-direction[1], direction[0]])
    on_line = end + (distance_m - end[0]) / direction[0] * direction
    return on_line - np.sign(end[1]) * LANE_WIDTH_M * right, direction


def clears(traj: np.ndarray, pos: np.ndarray, thing: Thing) -> bool:
    """Does the path of a label pass a thing at `pos` without its box (grown by
    CLEARANCE_M) touching the car's? Checked every 0.25 m along the path."""
    pts, arc = path_arc(traj)
    p, _ = along(pts, arc, np.arange(0.0, arc[-1] + 0.25, 0.25))
    near = np.abs(p[:, 0] - pos[0]) < EGO_HALF_LENGTH_M + thing.size_m[0] / 2 + CLEARANCE_M
    return bool(np.all(np.abs(p[near, 1] - pos[1]) >= EGO_HALF_WIDTH_M + thing.size_m[1] / 2 + CLEARANCE_M))


def pick_thing(rng: np.random.Generator, speed: float, reach_m: float, side_share: float,
               history_s: float = 0.0, near_share: float = 0.0, path_jitter_m: float = 0.0) -> Thing:
    """A random thing for a sample at `speed`: a car or an obstacle, at most `reach_m`
    ahead; half the cars are traffic (blue) at up to `MOVING_MAX` x `speed` (slower ones
    to brake for, the rest to keep driving behind), the rest, like obstacles, stand still
    (yellow, or red as highway-env draws what crashed); a share `side_share` a lane
    (3.5-4.5 m) to either side of the path. A car faster than the ego was nearer in the
    older frames (`draw_at`): it starts far enough ahead to have been clear of the ego
    `history_s` seconds ago too. The distance is uniform up to `reach_m`, or, for a share
    `near_share` of the things, up to `NEAR_M` (`TrainConfig.synthetic_near_share`).
    A thing in the path is centred on it, or, with `path_jitter_m`, up to that far to either
    side (`TrainConfig.synthetic_path_jitter_m`): a network shown only centred things learned
    to brake for a blob in one column of its input, and a real obstacle about a pixel to the
    side of it went unanswered (docs/driving.md, "Things off the centre line")."""
    if not 0.0 <= path_jitter_m < IN_PATH_M:
        raise ValueError(f"path_jitter_m must be in [0, {IN_PATH_M}) m to keep the thing in the way")
    size = SIZES_M[rng.integers(len(SIZES_M))]
    moving = size == SIZES_M[0] and rng.random() < 0.5
    thing_speed = float(rng.uniform(0, MOVING_MAX * speed)) if moving else 0.0
    side = float(rng.choice([-1, 1]) * rng.uniform(3.5, 4.5)) if rng.random() < side_share else 0.0
    near = EGO_HALF_LENGTH_M + size[0] / 2 + 1.0 + max(thing_speed - speed, 0.0) * history_s
    distance = float(rng.uniform(near, reach_m))
    colour = COLOURS[1 if moving else rng.choice([0, 2])]
    # a near thing is redrawn after the far draw, not instead of it: the generator's stream
    # stays that of the measured networks (docs/driving.md, "Things pasted near")
    if near_share and rng.random() < near_share and near < NEAR_M:
        distance = float(rng.uniform(near, min(NEAR_M, reach_m)))
    if path_jitter_m and side == 0.0:   # drawn only when asked: the stream stays as it was
        side = float(rng.uniform(-path_jitter_m, path_jitter_m))
    return Thing(distance_m=distance, side_m=side, speed=thing_speed, size_m=size, colour=colour)


def synthesize(batch: dict, eligible: np.ndarray, share: float, rng: np.random.Generator,
               geo: Geometry, side_share: float = 0.4, lane_changes: bool = False,
               near_share: float = 0.0, path_jitter_m: float = 0.0) -> dict:
    """Paste a thing into a share of the batch's eligible samples (in place on numpy
    arrays: frames uint8 [B, T, H, W, C] (`draw_thing`), speed [B], trajectory [B, W, 2],
    controls [B, 2]); returns which samples got one, which of those got it in their path,
    which had their label cut, which had it turned into a lane change round the thing and
    which got a stopped thing in the lane their driver was leaving (bool [B] each; the last
    two only with `lane_changes`). A share `near_share` of the things is pasted near, and
    those in the path up to `path_jitter_m` to its side (`pick_thing`)."""
    b, t_count, h = batch["frames"].shape[:3]
    if lane_changes and batch["frames"].shape[-1] != 4:
        raise ValueError("lane changes need frames with the object channel: it says whether "
                         "the lane beside is free")
    reach = geo.ego_row * h / geo.px_per_m
    out = {k: np.zeros(b, bool) for k in ("pasted", "in_path", "braked", "lane_change", "left_behind")}
    for i in np.flatnonzero(eligible & (batch["speed"] >= MIN_SPEED) & (rng.random(b) < share)):
        v = float(batch["speed"][i])
        thing = pick_thing(rng, v, reach, side_share, (t_count - 1) * geo.history_dt, near_share,
                           path_jitter_m)
        label = batch["trajectory"][i]
        out["pasted"][i] = True
        in_path = thing.in_path
        keeps = lane_changes and in_path and keeps_lane(label)
        if lane_changes and in_path and not keeps:
            vacated = vacated_lane(label, thing.distance_m)
            if vacated is not None:
                stopped = replace(thing, speed=0.0, colour=COLOURS[0])
                if clears(label, vacated[0], stopped):
                    batch["frames"][i] = draw_at(batch["frames"][i], *vacated, v, stopped, geo)
                    out["left_behind"][i] = True
                    continue
        pos, direction = placed(label, thing)
        batch["frames"][i] = draw_at(batch["frames"][i], pos, direction, v, thing, geo)
        if not in_path:
            continue
        out["in_path"][i] = True
        if keeps and thing.speed < SWERVE_SPEED_SHARE * v:
            around = _drive_round(batch["frames"][i, -1], label, pos, thing, geo)
            if around is not None:
                batch["trajectory"][i] = around
                out["lane_change"][i] = True
                continue
        cut, decel = stop_behind(label, v, thing, geo)
        if cut is not label:
            out["braked"][i] = True
            batch["trajectory"][i] = cut
            batch["controls"][i, 0] = min(batch["controls"][i, 0], -decel)
    return out


def _drive_round(newest: np.ndarray, label: np.ndarray, pos: np.ndarray, thing: Thing,
                 geo: Geometry) -> np.ndarray | None:
    """The label changed into a lane beside the car that the newest frame [H, W, 4] shows
    marked and its object channel free up to AHEAD_M beyond the thing at `pos` (where
    `placed` put it; left before right, the right where the left has no time); None where
    neither has room and time (`lane_change`)."""
    left, right = lanes_beside(lane_markings(newest, geo.px_per_m, geo.ego_row))
    for side, marked in ((-1, left), (1, right)):
        if marked and lane_free(newest[..., 3], geo.px_per_m, geo.ego_row, side * LANE_WIDTH_M,
                                thing.distance_m + AHEAD_M):
            around = lane_change(label, pos, thing, side, geo.times)
            if around is not None:
                return around
    return None
