"""Online shadow mode and disengagements in the simulated fleet.

`drive_episode(model, scenario, seed, mode)` drives one episode:

- mode "safety": the network drives (`NetworkDriver`); a safety driver (the expert
  profile) computes their own command every step and takes over when it gets unsafe:
  the time to collision with the car ahead in the lane falls under `ttc_s`, or the
  network's command differs from the expert's by more than `acc_gap` m/s^2 or
  `steer_gap` rad for `patience` steps in a row, or the car collides. The expert then
  drives for `takeover_s` seconds and hands back.
- mode "shadow": a driver of `profile` drives; the network runs beside them and every
  step's command difference is logged.

The safety driver judges from the road as a person in the seat would (the car ahead,
its speed); what is *recorded* is only what a car sends: camera frames, the camera's
object mask of them, telemetry (the commands actually applied), and the network's own
outputs.

`fleet_drive(store, checkpoint, mode, episodes)` drives several episodes on seeds from
`ONLINE_SEED_BASE` (below the closed-loop evaluation range), a share `rare_event_rate` of
them with one of the scenario's rare events, and uploads what a car would:
in "safety" mode the episodes with a takeover (the whole episode: they are short), in
"shadow" mode those whose worst command disagreement exceeds `upload_disagreement`. Each
uploaded clip goes into the catalog (source "sim", driver "safety-driver" or the shadowed
driver) and gets a row in `disengagements.lance` (takeover frames and reasons, which
frames the expert drove, the network's commands per frame) or `shadow.lance` (mode
"online").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from opendojo import code_version
from opendojo.engine import tables
from opendojo.errors import DojoError

from opendojo.fleet.camera import object_pixels
from opendojo.fleet.config import ONLINE_SEED_BASE, RARE_EVENT_RATE  # seed ranges: see opendojo.fleet.config

DISENGAGEMENT_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("checkpoint", pa.string()),
    ("scenario", pa.string()),
    ("seed", pa.int64()),
    ("takeover_frames", pa.list_(pa.int32())),
    ("reasons", pa.list_(pa.string())),
    ("expert_driving", pa.list_(pa.bool_())),
    ("network_acc", pa.list_(pa.float32())),
    ("network_steer", pa.list_(pa.float32())),
    ("code_version", pa.string()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])


@dataclass
class SafetyRules:
    ttc_s: float = 1.5
    acc_gap: float = 3.0
    steer_gap: float = 0.2
    patience: int = 3
    takeover_s: float = 5.0          # long enough that ~2 s of takeover frames have a future
                                     # the expert drove all of (the hindsight horizon is 3 s)


@dataclass
class Episode:
    frames: np.ndarray
    telemetry: dict
    route: str
    network_cmd: np.ndarray            # [N, 2] what the network asked for
    other_cmd: np.ndarray              # [N, 2] what the expert / shadowed driver asked for
    expert_driving: np.ndarray         # [N] bool
    takeovers: list[tuple[int, str]] = field(default_factory=list)


def time_to_collision(env) -> float:
    """Seconds until the ego reaches the car ahead in its lane at current speeds (inf if not closing)."""
    base = env.unwrapped
    ego = base.vehicle
    front, _ = base.road.neighbour_vehicles(ego, ego.lane_index)
    if front is None:
        return float("inf")
    gap = ego.lane_distance_to(front) - 0.5 * (ego.LENGTH + getattr(front, "LENGTH", 5.0))
    closing = float(ego.speed) - float(getattr(front, "speed", 0.0))
    if closing <= 0:
        return float("inf")
    return max(gap, 0.0) / closing


def drive_episode(model, scenario: str, seed: int, mode: str = "safety", profile: str = "expert",
                  duration_s: float = 15.0, camera=None, rules: SafetyRules = SafetyRules(),
                  rare_event: str | None = None) -> Episode:
    from opendojo.evaluate.closed_loop import NetworkDriver
    from opendojo.fleet.camera import Camera, render_ego_view
    from opendojo.fleet.drivers import make_driver
    from opendojo.fleet.env import end_of_road, ego_state, make_env, step_command
    from opendojo.fleet.recorder import TELEMETRY_KEYS

    camera = camera or Camera()
    env = make_env(scenario, seed, camera=camera, rare_event=rare_event)
    try:
        net = NetworkDriver(model)
        other = make_driver("expert" if mode == "safety" else profile, seed)
        net.reset(env)
        other.reset(env)
        hz = env.unwrapped.config["policy_frequency"]
        n = int(round(duration_s * hz))
        cols: dict[str, list] = {k: [] for k in TELEMETRY_KEYS}
        frames, ncmd, ocmd, expert = [], [], [], []
        takeovers: list[tuple[int, str]] = []
        expert_until, streak = -1, 0
        for i in range(n):
            if i and end_of_road(env):
                break
            frames.append(render_ego_view(env, camera))
            state = ego_state(env)
            a_n, s_n = net.command(env)
            a_o, s_o = other.command(env)
            if mode == "shadow":
                acc, steer, by_expert = a_o, s_o, True
            else:
                if i >= expert_until:
                    apart = abs(a_n - a_o) > rules.acc_gap or abs(s_n - s_o) > rules.steer_gap
                    streak = streak + 1 if apart else 0
                    reason = ""
                    if env.unwrapped.vehicle.crashed:
                        reason = "collision"
                    elif time_to_collision(env) < rules.ttc_s:
                        reason = f"time to collision under {rules.ttc_s:g} s"
                    elif streak >= rules.patience:
                        reason = "network and safety driver disagree"
                    if reason:
                        takeovers.append((i, reason))
                        expert_until = i + int(round(rules.takeover_s * hz))
                        streak = 0
                by_expert = i < expert_until
                acc, steer = (a_o, s_o) if by_expert else (a_n, s_n)
            (acc, steer), _ = step_command(env, acc, steer)
            state["acceleration"], state["steering"], state["t"] = acc, steer, i / hz
            for k in TELEMETRY_KEYS:
                cols[k].append(state[k])
            ncmd.append((a_n, s_n))
            ocmd.append((a_o, s_o))
            expert.append(by_expert)
        from opendojo.clips.schema import telemetry_table

        tel = telemetry_table({k: np.asarray(v) for k, v in cols.items()})
        return Episode(np.stack(frames), tables.telemetry_arrays(tel), env.unwrapped.route_command,
                       np.asarray(ncmd, np.float32), np.asarray(ocmd, np.float32),
                       np.asarray(expert, bool), takeovers)
    finally:
        env.close()


def fleet_drive(store, checkpoint: str | Path, mode: str = "safety", episodes: int = 4,
                seed: int = 0, profile: str = "expert", duration_s: float = 15.0,
                scenarios: list[str] | None = None, rules: SafetyRules = SafetyRules(),
                upload_disagreement: float = 1.0, rare_event_rate: float = RARE_EVENT_RATE) -> dict:
    """Drive `episodes` online episodes and upload what a car would (module docstring).

    rare_event_rate: the share of episodes that meet one of their scenario's rare events
    (as `FleetConfig.rare_event_rate` is for the recorded fleet).
    """
    if not 0.0 <= rare_event_rate <= 1.0:
        raise DojoError(f"rare_event_rate must be within 0..1, got {rare_event_rate}")
    from opendojo.clips.schema import ClipMeta
    from opendojo.engine.shadow import SHADOW_SCHEMA
    from opendojo.evaluate.closed_loop import load_network
    from opendojo.fleet.camera import Camera
    from opendojo.fleet.scenarios import SCENARIOS
    from opendojo.train.checkpoint import resolve

    ckpt = str(resolve(checkpoint))
    model = load_network(checkpoint)
    cat = store.catalog(columns=["width", "height"])
    camera = Camera(width=cat.column("width")[0].as_py(), height=cat.column("height")[0].as_py()) \
        if cat.num_rows else Camera()
    names = scenarios or list(SCENARIOS)
    rows, dis_rows, shadow_rows = [], [], []
    summary = {"mode": mode, "episodes": episodes, "rare_events": 0, "takeovers": 0, "uploaded": 0,
               "frames": 0, "network_frames": 0}
    now = datetime.now(timezone.utc)
    rng = np.random.default_rng([ONLINE_SEED_BASE + seed, 3])
    for k in range(episodes):
        s = ONLINE_SEED_BASE + seed + k
        scen = names[k % len(names)]
        events = SCENARIOS[scen].rare_events
        draw = rng.uniform()             # drawn every episode: a rate change moves no other episode
        event = events[int(rng.integers(len(events)))] if events else None
        event = event if draw < rare_event_rate else None
        ep = drive_episode(model, scen, s, mode, profile, duration_s, camera, rules, event)
        summary["rare_events"] += event is not None
        summary["frames"] += len(ep.frames)
        summary["network_frames"] += int((~ep.expert_driving).sum()) if mode == "safety" else 0
        summary["takeovers"] += len(ep.takeovers)
        gap = np.abs(ep.network_cmd - ep.other_cmd)
        worst = float(gap[:, 0].max() + 10 * gap[:, 1].max()) if len(gap) else 0.0
        upload = bool(ep.takeovers) if mode == "safety" else worst >= upload_disagreement
        if not upload:
            continue
        driver = "safety-driver" if mode == "safety" else f"shadow-{profile}"
        meta = ClipMeta(source="sim", vehicle_id=f"{mode}-car", driver_id=driver, scenario=scen,
                        route=ep.route, seed=s)
        row = store.write_clip(ep.frames, ep.telemetry, meta, objects=object_pixels(ep.frames))
        rows.append(row)
        if mode == "safety":
            dis_rows.append({"clip_id": row["clip_id"], "checkpoint": ckpt, "scenario": scen,
                             "seed": s, "takeover_frames": [f for f, _ in ep.takeovers],
                             "reasons": [r for _, r in ep.takeovers],
                             "expert_driving": ep.expert_driving.tolist(),
                             "network_acc": ep.network_cmd[:, 0].tolist(),
                             "network_steer": ep.network_cmd[:, 1].tolist(),
                             "code_version": code_version(), "computed_at": now})
        else:
            shadow_rows.append({"clip_id": row["clip_id"], "mode": "online", "checkpoint": ckpt,
                                "disagreement": float(gap[:, 0].mean() + 10 * gap[:, 1].mean()),
                                "ade_max": worst, "worst_frame": int(np.argmax(gap[:, 0] + 10 * gap[:, 1])),
                                "acc_mae": float(gap[:, 0].mean()), "steer_mae": float(gap[:, 1].mean()),
                                "frames_compared": len(gap), "code_version": code_version(),
                                "computed_at": now})
    if dis_rows:
        tables.upsert(store, tables.DISENGAGEMENTS, pa.Table.from_pylist(dis_rows, schema=DISENGAGEMENT_SCHEMA))
    if shadow_rows:
        tables.upsert(store, tables.SHADOW, pa.Table.from_pylist(shadow_rows, schema=SHADOW_SCHEMA))
    summary["uploaded"] = store.add_to_catalog(rows) if rows else 0
    summary["clip_ids"] = [r["clip_id"] for r in rows]
    return summary
