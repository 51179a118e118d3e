"""Record one simulated clip: a driver drives one episode, the camera films it.

`record_clip(task, config)` returns the frames, the telemetry a real car would send, the
camera's object mask of the raw frames (which the car sends with the clip), the clip's
catalog metadata, and the simulator's ground truth (driver profile, rare event,
other road users), which goes to the sim-truth table only.

Per frame i (t = i / fps): the camera frame and the ego's state are taken, then the
driver's command is computed and applied for 1/fps s. So the telemetry's acceleration and
steering at frame i are the command the driver applied from that frame on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from opendojo.clips.schema import ClipMeta
from opendojo.fleet.camera import object_pixels, render_ego_view
from opendojo.fleet.config import FleetConfig
from opendojo.fleet.drivers import PROFILES, Driver
from opendojo.fleet.env import end_of_road, ego_state, make_env, others_state, step_command

TELEMETRY_KEYS = ("t", "x", "y", "heading", "speed", "acceleration", "steering", "lane",
                  "collision", "command")


@dataclass(frozen=True)
class ClipTask:
    """Everything that decides one clip (all of it drawn from the fleet seed)."""

    index: int
    scenario: str
    seed: int                # episode seed: env.reset(seed=seed)
    vehicle_id: str
    driver_id: str
    driver_profile: str      # sim truth
    driver_seed: int
    rare_event: str | None   # sim truth
    n_frames: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RecordedClip:
    frames: np.ndarray                 # uint8 [T, H, W, 3]
    telemetry: dict                    # column -> array (opendojo.clips.schema)
    objects: np.ndarray                # bool [T, H, W]: `object_pixels` of the raw frames
    meta: ClipMeta
    truth: dict = field(default_factory=dict)


def drive(env, driver: Driver, n_frames: int, camera, record_others: bool = True):
    """Drive `env` with `driver` for up to `n_frames` frames; returns (frames, telemetry, others).

    Stops early only if the ego drives off the end of a road that leads nowhere.
    """
    frames = np.empty((n_frames, camera.height, camera.width, 3), np.uint8)
    cols: dict[str, list] = {k: [] for k in TELEMETRY_KEYS}
    others = []
    driver.reset(env)
    n = 0
    for i in range(n_frames):
        if i and end_of_road(env):
            break
        frames[i] = render_ego_view(env, camera)
        state = ego_state(env)
        if record_others:
            others.append(others_state(env))
        acc, steer = driver.command(env)
        (acc, steer), _ = step_command(env, acc, steer)
        state["acceleration"], state["steering"] = acc, steer
        state["t"] = i / env.config["policy_frequency"]
        for k in TELEMETRY_KEYS:
            cols[k].append(state[k])
        n = i + 1
    telemetry = {
        "t": np.asarray(cols["t"], np.float64), "x": np.asarray(cols["x"], np.float64),
        "y": np.asarray(cols["y"], np.float64), "heading": np.asarray(cols["heading"], np.float64),
        "speed": np.maximum(np.asarray(cols["speed"], np.float64), 0.0),
        "acceleration": np.asarray(cols["acceleration"], np.float64),
        "steering": np.asarray(cols["steering"], np.float64),
        "lane": np.asarray(cols["lane"], np.int32),
        "collision": np.asarray(cols["collision"], bool),
        "command": np.asarray(cols["command"], np.int8),
    }
    return frames[:n], telemetry, others


def record_clip(task: ClipTask, config: FleetConfig) -> RecordedClip:
    """Run one episode of `task` and return its frames, telemetry, metadata and truth."""
    camera = config.camera()
    env = make_env(task.scenario, task.seed, config, rare_event=task.rare_event, camera=camera)
    try:
        driver = Driver(PROFILES[task.driver_profile], task.driver_seed,
                        sight=config.driver_sight or math.inf)
        frames, telemetry, others = drive(env, driver, task.n_frames, camera)
        route = env.route_command
        truth = {
            "driver_profile": task.driver_profile,
            "rare_event": task.rare_event or "",
            "rare_event_detail": env.rare_event_truth,
            "scenario": task.scenario, "seed": task.seed, "index": task.index,
            "vehicle_id": task.vehicle_id, "driver_id": task.driver_id,
            "profile_params": PROFILES[task.driver_profile].to_dict(),
            "driver_sight_m": config.driver_sight,    # None: unlimited
            "destination": list(env.final_edge) if env.final_edge else None,
            "ego_collided": bool(telemetry["collision"].any()),
            "others": others,   # per frame: [x, y, heading, speed] of road users near the ego
        }
    finally:
        env.close()
    meta = ClipMeta(source="sim", vehicle_id=task.vehicle_id, driver_id=task.driver_id,
                    scenario=task.scenario, route=route, seed=task.seed, fps=config.fps)
    return RecordedClip(frames, telemetry, object_pixels(frames), meta, truth)
