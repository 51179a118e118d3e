"""How the object channel of one and the same thing differs by where it comes from.

A diagnosis, not a product feature. The network's fourth input channel
(`opendojo.train.inputs`) reaches it three ways:

  raw      closed loop: `occupancy.cost_field` of the camera frame highway-env draws;
           and training, for fleet clips stored with the car's object mask of their raw
           frames (`ClipStore.read_objects`; every fleet clip since 2026-11-24)
  decoded  training, for clips stored without a mask: the same of the clip's
           H.264-decoded frames (`ClipStore` encodes them with `clips.video.encode_h264`
           at the fleet's 10 fps)
  pasted   training: `synthesis.draw_field` of a thing pasted into a sample

A network can tell them apart by strength alone, and one that brakes for the pasted kind
(stopped things, by construction) need not brake for the raw kind it meets in closed loop.
Two measurements, each a ratio over the same things:

  pasted_vs_raw    a car and an obstacle, alone on the road ahead of the ego at DISTANCES_M
                   and SIDES_M, drawn by highway-env (raw) and by `draw_field` at the same
                   place: the field's mass and peak, pasted over raw (medians)
  decoded_vs_raw   FRAMES frames each of SCENARIOS' traffic (the ego idling, on SEED),
                   encoded and decoded as the store does: the field's mass, decoded over
                   raw; the colour mask's pixels; and how many of the raw frames' road
                   users (connected fills) leave no mask pixel within one pixel in the
                   decoded ones

Where the things are is set in the simulator, which only a diagnosis may do.

    .venv/bin/python benchmarks/object_channel_skew.py > skew.json      # ~3 s

Measured results: docs/driving.md ("The pasted field drawn as the camera draws it", "Fleet
clips carry their raw frames' object mask").
"""

from __future__ import annotations

import io
import os

import numpy as np

import _pool
from _pool import log
from opendojo.fleet.config import EVAL_SEED_BASE

# -- settings -------------------------------------------------------------------------------
INPUT_SIZE = 64                        # the demo network's input
DISTANCES_M = np.arange(12.0, 62.0, 2.5)
SIDES_M = (0.0, 0.4, -0.7, 4.0)        # to the ego's right; 4 m is the next lane's centre
SCENARIOS = ("highway_dense", "merge")
FRAMES = 30
SEED = EVAL_SEED_BASE + 100_000       # an evaluation seed: no training clip's


def _things_alone(kind: str) -> dict:
    """pasted over raw field mass and peak for one kind of thing ("car" or "obstacle")."""
    from highway_env.vehicle.kinematics import Vehicle
    from highway_env.vehicle.objects import Obstacle

    from opendojo.fleet.camera import Camera, render_ego_view
    from opendojo.fleet.env import make_env
    from opendojo.train.occupancy import camera_cost_field, camera_geometry
    from opendojo.train.synthesis import SIZES_M, Geometry, draw_field, pixel_at

    camera = Camera()
    px_per_m, ego_row = camera_geometry(camera.width, INPUT_SIZE)
    geo = Geometry(px_per_m, ego_row, 0.1, np.ones(1))
    size = SIZES_M[0] if kind == "car" else SIZES_M[1]
    env = make_env("highway_sparse", SEED, camera=camera)
    mass, peak = [], []
    try:
        base = env.unwrapped
        ego = base.vehicle
        base.road.vehicles = [ego]
        s, r = ego.lane.local_coordinates(ego.position)
        for ahead in DISTANCES_M:
            for side in SIDES_M:
                at = ego.lane.position(s + ahead, r + side)
                thing = Vehicle(base.road, at, ego.heading, 0.0) if kind == "car" else \
                    Obstacle(base.road, at, heading=ego.heading)
                base.road.objects = [thing]
                frame = render_ego_view(env, env.camera)
                raw = camera_cost_field(frame[None], INPUT_SIZE)[0].astype(float)
                pasted = np.zeros((INPUT_SIZE, INPUT_SIZE), np.float32)
                draw_field(pasted, pixel_at(ahead, side, INPUT_SIZE, INPUT_SIZE, geo),
                           np.array([-1.0, 0.0]), size, px_per_m)
                mass.append(pasted.sum() / raw.sum())
                peak.append(pasted.max() / raw.max())
    finally:
        env.close()
    return {"placements": len(mass), "mass_median": float(np.median(mass)),
            "mass_range": [float(np.min(mass)), float(np.max(mass))],
            "peak_median": float(np.median(peak))}


def _codec() -> dict:
    from scipy import ndimage

    from opendojo.clips.video import decode_rgb, encode_h264
    from opendojo.fleet.camera import Camera, object_pixels, render_ego_view
    from opendojo.fleet.env import make_env, step_command
    from opendojo.train.occupancy import camera_cost_field

    frames = []
    for scenario in SCENARIOS:
        env = make_env(scenario, SEED, camera=Camera())
        try:
            for _ in range(FRAMES):
                frames.append(render_ego_view(env, env.camera))
                step_command(env, 0.0, 0.0)
        finally:
            env.close()
    raw = np.stack(frames)
    decoded = decode_rgb(io.BytesIO(encode_h264(raw, 10.0)))
    field_raw, field_dec = (camera_cost_field(f, INPUT_SIZE).astype(float) for f in (raw, decoded))
    mask_raw, mask_dec = object_pixels(raw), object_pixels(decoded)
    users = lost = 0
    for k in range(len(raw)):
        labels, n = ndimage.label(mask_raw[k])
        near = ndimage.binary_dilation(mask_dec[k])        # decoded pixels, grown by one
        users += n
        lost += int(np.sum(ndimage.maximum(near, labels, np.arange(1, n + 1)) == 0)) if n else 0
    return {"frames": len(raw), "field_mass": float(field_dec.sum() / field_raw.sum()),
            "mask_pixels": float(mask_dec.sum() / mask_raw.sum()),
            "decoded_mask_on_raw_pixels": float((mask_dec & mask_raw).sum() / mask_dec.sum()),
            "road_users": int(users), "road_users_lost": int(lost)}


def main() -> dict:
    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    out = {"input_size": INPUT_SIZE, "pasted_vs_raw": {}}
    for kind in ("car", "obstacle"):
        out["pasted_vs_raw"][kind] = _things_alone(kind)
        log(f"{kind}: pasted/raw field mass {out['pasted_vs_raw'][kind]['mass_median']:.2f}")
    out["decoded_vs_raw"] = _codec()
    log(f"decoded/raw field mass {out['decoded_vs_raw']['field_mass']:.2f}")
    return out


if __name__ == "__main__":
    with _pool.json_stdout() as emit:
        emit(main())
