"""What limits the network's driving score: two bounds beside the network, on one suite.

A diagnosis, not a product feature: it asks whether the closed loop's driving interface or
the network's predictions hold the score down, and how much braking alone could add.
Arms, each on the same held-out items (the validation suite by default, so that nothing
here tunes on the test suite the demo reports):

  network               the checkpoint as `dojo eval --closed-loop` drives it
  network+video_brake   the same, with its acceleration capped by IDM on the video headway
                        of the raw camera frame (`opendojo.engine.quality.gap_ahead`: the
                        nearest coloured pixel in the ego's lane strip; its closing speed by
                        finite differences). A perfect "brake for what is in my lane ahead",
                        from video only: how much of the gap braking could close.
  expert_plan           the expert's own next 3 s, rolled out at every step in a copy of the
                        simulator, fed as the trajectory to the closed loop's pure pursuit:
                        a network that predicted the expert perfectly. This arm reads the
                        simulator (it copies it), which only a diagnosis may do; nothing is
                        trained on it.
  expert                the expert driving itself (highway-env's IDM + MOBIL)

Per arm: the suite summary (`opendojo.evaluate.scoring.summarize`) and the split between the
obstacle and stalled-vehicle items ("stopped things") and the rest.

    .venv/bin/python benchmarks/driving_bounds.py --checkpoint runs/demo/train > bounds.json

About 8 minutes on 2 cores for the validation suite at 2 episodes per item (the expert
plan arm rolls 30 simulator steps out per step, ~9 s an episode).
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np

import _pool
from _pool import log

# -- settings -------------------------------------------------------------------------------
# suite, episodes per item, workers and episode length: _pool's DIAGNOSIS_* and EPISODE_S
ARMS = ("network", "network+video_brake", "expert_plan", "expert")
# IDM on the video headway (m, s, m/s^2): jam gap from the ego's front, time gap, max
# acceleration, comfortable braking; strongest braking the cap asks for.
BRAKE_S0, BRAKE_T, BRAKE_A, BRAKE_B, BRAKE_MAX = 4.0, 1.0, 3.0, 6.0, 8.0
BRAKE_JUMP_M = 3.0                    # a headway change this large in one step is another object
PLAN_STEPS, PLAN_EVERY = 30, 5        # the expert plan: 3 s at 10 Hz, a waypoint every 0.5 s


class VideoBrake:
    """A network driver whose acceleration never exceeds IDM's on the camera's video headway."""

    def __init__(self, net):
        self.net = net
        self.last_prediction = None

    def reset(self, env) -> None:
        self.net.reset(env)
        self.gap, self.closing = None, 0.0

    def command(self, env) -> tuple[float, float]:
        from opendojo.engine.quality import gap_ahead
        from opendojo.fleet.camera import render_ego_view
        from opendojo.fleet.env import ego_state

        acc, steer = self.net.command(env)
        self.last_prediction = self.net.last_prediction
        gap = float(gap_ahead(render_ego_view(env, env.camera)[None])[0])
        dt = 1.0 / env.unwrapped.config["policy_frequency"]
        v = ego_state(env)["speed"]
        prev, self.gap = self.gap, gap
        if not math.isfinite(gap):
            return acc, steer
        if prev is None or not math.isfinite(prev) or abs(prev - gap) > BRAKE_JUMP_M:
            self.closing = v        # something new in the lane: assume it stands still
        else:
            self.closing = 0.5 * self.closing + 0.5 * (prev - gap) / dt
        wanted = BRAKE_S0 + max(0.0, v * BRAKE_T + v * self.closing / (2 * math.sqrt(BRAKE_A * BRAKE_B)))
        idm = BRAKE_A * (1.0 - (wanted / max(gap, 0.1)) ** 2)
        return min(acc, max(idm, -BRAKE_MAX)), steer


class ExpertPlan:
    """Pure pursuit on the expert's own next 3 s, rolled out in a copy of the simulator."""

    def __init__(self, seed: int):
        from opendojo.fleet.drivers import make_driver
        from opendojo.train.model import PolicyConfig

        self.expert = make_driver("expert", seed)
        self.cfg = PolicyConfig(horizon=PLAN_STEPS // PLAN_EVERY, horizon_s=PLAN_STEPS / 10)

    def reset(self, env) -> None:
        self.expert.reset(env)

    def command(self, env) -> tuple[float, float]:
        from opendojo.evaluate.closed_loop import pure_pursuit
        from opendojo.fleet.env import ego_state, step_command
        from opendojo.label.hindsight import to_ego_frame

        base = env.unwrapped
        viewer, base.viewer = base.viewer, None       # the renderer does not copy
        sim = copy.deepcopy(base)
        base.viewer = viewer
        driver = copy.deepcopy(self.expert)
        now = ego_state(sim)
        ahead = []
        for k in range(1, PLAN_STEPS + 1):
            step_command(sim, *driver.command(sim))
            if k % PLAN_EVERY == 0:
                p = ego_state(sim)
                ahead.append((p["x"] - now["x"], p["y"] - now["y"]))
        self.expert.command(env)                      # keep the expert's own timers in step
        d = np.array(ahead)
        return pure_pursuit(to_ego_frame(d[:, 0], d[:, 1], now["heading"]), now["speed"], self.cfg, 1.0)


def _driver(arm: str, checkpoint: str, seed: int):
    from opendojo.evaluate.closed_loop import NetworkDriver, _cached_network
    from opendojo.fleet.drivers import make_driver

    if arm == "network":
        return NetworkDriver(_cached_network(checkpoint))
    if arm == "network+video_brake":
        return VideoBrake(NetworkDriver(_cached_network(checkpoint)))
    if arm == "expert_plan":
        return ExpertPlan(seed)
    return make_driver("expert", seed)


def _job(args) -> dict:
    from opendojo.evaluate.closed_loop import run_episode

    arm, checkpoint, item, duration = args
    ep, _ = run_episode(_driver(arm, checkpoint, item.seed), arm, item, duration)
    return ep.to_dict()


def split(episodes: list[dict]) -> dict:
    """Mean score and collisions on the stopped-things items and on the rest."""
    out = {}
    for name, keep in (("stopped_things", True), ("rest", False)):
        g = [e for e in episodes if (e["rare_event"] in _pool.STOPPED_THINGS) == keep]
        out[name] = {**_pool.group_summary(g),
                     "route_completion": round(float(np.mean([e["route_completion"] for e in g])), 4)}
    return out


def main(argv=None) -> None:
    import multiprocessing as mp

    a, checkpoint, items = _pool.diagnosis_args(
        __doc__.split("\n")[0], argv,
        lambda ap: ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS)))
    t0 = time.perf_counter()
    with _pool.json_stdout() as emit:
        episodes = []
        with mp.get_context("spawn").Pool(a.workers) as pool:
            for arm in a.arms:
                t = time.perf_counter()
                jobs = [(arm, checkpoint, it, _pool.EPISODE_S) for it in items]
                got = pool.map(_job, jobs, chunksize=1)
                episodes += got
                s = _pool.summary(got)
                log(f"{arm}: score {s['score']:.3f}, {s['collisions_per_km']:.2f} collisions/km "
                    f"({time.perf_counter() - t:.0f} s)")
        groups = _pool.by_driver(episodes)
        emit({**_pool.diagnosis_header(a, checkpoint, items, t0),
              "arms": {arm: {**_pool.summary(groups[arm]), **split(groups[arm])} for arm in a.arms},
              "per_item": _pool.per_item(episodes, list(a.arms)), "episodes": episodes})


if __name__ == "__main__":
    main()
