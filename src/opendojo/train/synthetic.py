"""Synthetic clips for tests and benchmarks: a car driving arcs on a drawn road, seen from above.

Each clip's car follows a path of piecewise-constant curvature at a varying speed. The
world is a textured plane with the path drawn on it as a bright road; each frame is the
top-down view in the car's own frame (forward up), so the frames show both the motion
(the texture slides and turns) and the road ahead (what the car will do). Telemetry is
what a car would log: pose, speed, acceleration, steering and a route command.
"""

from __future__ import annotations

import numpy as np

from opendojo.clips.schema import ClipMeta

WHEELBASE_M = 2.7


def drive(n_frames: int, fps: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Telemetry of one drive: arcs and straights at varying speed."""
    dt = 1.0 / fps
    x = y = h = 0.0
    v = rng.uniform(5.0, 20.0)
    curv = 0.0
    cols = {k: [] for k in ("t", "x", "y", "heading", "speed", "acceleration", "steering", "command")}
    next_change = 0
    accel = 0.0
    for i in range(n_frames):
        if i == next_change:
            curv = float(rng.choice([0.0, 0.0, rng.uniform(-0.04, 0.04)]))
            accel = float(rng.uniform(-1.5, 1.5))
            next_change = i + int(rng.integers(15, 40))
        steer = float(np.arctan(WHEELBASE_M * curv))
        cmd = 1 if abs(curv) < 0.01 else (0 if curv > 0 else 2)
        for k, val in zip(cols, (i * dt, x, y, h, v, accel, steer, cmd)):
            cols[k].append(val)
        x += v * np.cos(h) * dt
        y += v * np.sin(h) * dt
        h += v * curv * dt
        v = float(np.clip(v + accel * dt, 2.0, 30.0))
        if v in (2.0, 30.0):
            accel = 0.0
    out = {k: np.asarray(vals) for k, vals in cols.items()}
    out["command"] = out["command"].astype(np.int8)
    return out


def render(tel: dict[str, np.ndarray], size: int = 32, view_m: float = 48.0,
           res_m: float = 0.5) -> np.ndarray:
    """Top-down frames [N, size, size, 3] uint8 in each frame's ego frame (forward = up)."""
    x, y, h = tel["x"], tel["y"], tel["heading"]
    margin = view_m
    x0, y0 = x.min() - margin, y.min() - margin
    gw = int((x.max() + margin - x0) / res_m) + 1
    gh = int((y.max() + margin - y0) / res_m) + 1
    gx, gy = np.meshgrid(np.arange(gw) * res_m + x0, np.arange(gh) * res_m + y0, indexing="xy")
    world = np.zeros((gh, gw, 3), np.uint8)
    checker = ((np.floor(gx / 4.0) + np.floor(gy / 4.0)) % 2).astype(np.uint8)
    world[..., 1] = 40 + 50 * checker
    world[..., 2] = 30
    # the road: the car's own path, 6 m wide, densely sampled
    px = np.interp(np.linspace(0, len(x) - 1, len(x) * 8), np.arange(len(x)), x)
    py = np.interp(np.linspace(0, len(y) - 1, len(y) * 8), np.arange(len(y)), y)
    r = int(3.0 / res_m)
    for ox in range(-r, r + 1):
        for oy in range(-r, r + 1):
            if ox * ox + oy * oy <= r * r:
                ci = np.clip(((px - x0) / res_m).astype(int) + ox, 0, gw - 1)
                cj = np.clip(((py - y0) / res_m).astype(int) + oy, 0, gh - 1)
                world[cj, ci, 0] = 200
    # ego pixel grid: rows = forward (top = far ahead), cols = lateral (left = +y)
    fwd = np.linspace(view_m * 0.8, -view_m * 0.2, size)
    lat = np.linspace(view_m / 2, -view_m / 2, size)
    ef, el = np.meshgrid(fwd, lat, indexing="ij")
    frames = np.empty((len(x), size, size, 3), np.uint8)
    for i in range(len(x)):
        c, s = np.cos(h[i]), np.sin(h[i])
        wx = x[i] + c * ef - s * el
        wy = y[i] + s * ef + c * el
        ci = np.clip(((wx - x0) / res_m).astype(int), 0, gw - 1)
        cj = np.clip(((wy - y0) / res_m).astype(int), 0, gh - 1)
        frames[i] = world[cj, ci]
    return frames


def make_synthetic_store(path, clips: int = 4, frames: int = 80, size: int = 32,
                         fps: float = 10.0, seed: int = 0, drop_controls: bool = False) -> list[str]:
    """Create (or add to) a clip store at `path` with `clips` synthetic clips; returns their ids."""
    from opendojo.clips.store import ClipStore

    store = ClipStore.create(path)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(clips):
        tel = drive(frames, fps, rng)
        video = render(tel, size=size)
        if drop_controls:   # like an imported dashcam clip: poses only
            tel = {c: v for c, v in tel.items() if c not in ("acceleration", "steering", "command")}
        meta = ClipMeta(source="comma2k19" if drop_controls else "sim",
                        vehicle_id=f"veh{k % 3}", driver_id=f"drv{k % 5}", fps=fps,
                        seed=-1 if drop_controls else seed * 1000 + k)
        rows.append(store.write_clip(video, tel, meta))
    store.add_to_catalog(rows)
    return [r["clip_id"] for r in rows]
