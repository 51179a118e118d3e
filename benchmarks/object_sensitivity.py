"""Does the network see what is ahead? Its plan with and without other road users in view.

A diagnosis, not a product feature. On the held-out items the network drives as
`dojo eval --closed-loop` drives it; at every step it also plans a second time, on the
same frame history rendered without some road users (a counterfactual camera: the scene
is drawn again with them taken off the road, then put back; nothing is stepped). The
difference between the two plans is what those road users change in the network's mind.

  stopped_thing  the obstacle and stalled-vehicle items, the stopped thing erased
  road_users     every other highway and merge item, every other road user erased

Reference, measured in the same run: what the plan would have to change to be safe. For a
stopped thing in the ego's lane (within LANE_HALF_M sideways) 5-60 m ahead, the plan's end
point has to stop STOP_SHORT_M short of it. Per arm: the steps counted, how much shorter
the plan is because of the erased road users (metres at the horizon; mean, median,
largest), how far it moves sideways, and, for the stopped thing, the shortening it needed
and the share of that it made, for the stopped thing also per distance band and speed
(`by_distance`). Where the things are is read from the simulator,
which only a diagnosis may do; nothing is trained on it.

    .venv/bin/python benchmarks/object_sensitivity.py --checkpoint runs/demo/train > sens.json

It drives 24 episodes (the validation suite's 12 stopped-thing and 12 highway and merge
episodes at 2 per item), rendering every step twice and planning twice on the steps counted. Measured results are in
`docs/driving.md` ("Does the network see what is ahead?").
"""

from __future__ import annotations

import time

import numpy as np

import _pool
from _pool import log

# -- settings -------------------------------------------------------------------------------
# suite, episodes per item, workers and episode length: _pool's DIAGNOSIS_* and EPISODE_S
TRAFFIC_SCENARIOS = ("highway_sparse", "highway_dense", "merge")
AHEAD_M = (5.0, 60.0)     # a road user counts when this far ahead of the ego's centre ...
LANE_HALF_M = 2.0         # ... and at most this far to either side (in the ego's lane)
STOP_SHORT_M = 5.0        # a safe plan ends this far short of a stopped thing in the lane
MOVED_M = 1.0             # a plan "moved" when its end point moved at least this far
NEAR_BINS_M = (5.0, 15.0, 30.0, 60.0)   # the stopped thing's distance bands, reported apart,
AT_SPEED = 8.0                          # each split at this speed (m/s): a car standing behind
                                        # a thing needs no shorter plan, one closing in does


def _ego_frame(ego, position) -> tuple[float, float]:
    """(metres ahead, metres to the side) of a world position, seen from the ego."""
    from opendojo.label.hindsight import to_ego_frame

    d = np.asarray(position) - ego.position
    ahead, side = to_ego_frame(d[0], d[1], ego.heading)
    return float(ahead), float(side)


class TwoPlans:
    """The network driving on the real camera (`NetworkDriver`, as closed loop drives it),
    and a second one fed the camera without the erased road users, asked for a plan only
    when one of them is in the lane ahead."""

    def __init__(self, model, arm: str):
        from opendojo.evaluate.closed_loop import NetworkDriver

        self.net, self.blind, self.arm = NetworkDriver(model), NetworkDriver(model), arm
        self.records: list[dict] = []

    def reset(self, env) -> None:
        self.net.reset(env)
        self.blind.reset(env)
        base = env.unwrapped
        if self.arm == "stopped_thing":
            truth = base.rare_event_truth
            pool = base.road.objects if truth["kind"] == "obstacle" else base.road.vehicles
            where = np.array([truth["x"], truth["y"]])     # where the injector put it
            self.erased = [min(pool, key=lambda o: float(np.linalg.norm(o.position - where)))]
        else:
            self.erased = None                # every other road user, as they are each step

    def command(self, env) -> tuple[float, float]:
        from opendojo.fleet.camera import render_ego_view
        from opendojo.fleet.env import ego_state

        base = env.unwrapped
        ego = base.vehicle
        state = ego_state(env)
        control = self.net.command(env)           # renders the real camera first
        vehicles, objects = base.road.vehicles, base.road.objects
        if self.erased is None:
            erased = [v for v in vehicles if v is not ego] + list(objects)
            base.road.vehicles, base.road.objects = [ego], []
        else:
            erased, gone = self.erased, {id(e) for e in self.erased}
            base.road.vehicles = [v for v in vehicles if id(v) not in gone]
            base.road.objects = [o for o in objects if id(o) not in gone]
        try:
            self.blind.observe(render_ego_view(env, env.camera))
        finally:
            base.road.vehicles, base.road.objects = vehicles, objects
        ahead = [p for p in (_ego_frame(ego, e.position) for e in erased)
                 if AHEAD_M[0] < p[0] < AHEAD_M[1] and abs(p[1]) <= LANE_HALF_M]
        if ahead:
            nearest = min(a for a, _ in ahead)
            end = self.net.last_prediction[-1]
            end_without = self.blind.predict(state["speed"], state["command"])["trajectory"][0, -1].numpy()
            self.records.append({
                "shorter_m": float(end_without[0] - end[0]),
                "sideways_m": float(abs(end[1] - end_without[1])),
                "needed_m": float(max(0.0, end_without[0] - (nearest - STOP_SHORT_M))),
                "nearest_m": nearest, "speed": float(state["speed"]),
            })
        return control


def _job(args) -> dict:
    from opendojo.evaluate.closed_loop import _cached_network, run_episode

    arm, checkpoint, item, duration = args
    driver = TwoPlans(_cached_network(checkpoint), arm)
    ep, _ = run_episode(driver, "network", item, duration)
    return {"arm": arm, "episode": ep.to_dict(), "records": driver.records}


def summarize_arm(results: list[dict], arm: str) -> dict:
    """What the erased road users changed in the plans, over the steps where one was ahead."""
    recs = [r for res in results for r in res["records"]]
    eps = [res["episode"] for res in results]
    out = {**_pool.group_summary(eps), "steps_counted": len(recs)}
    if not recs:
        return out
    shorter = np.array([r["shorter_m"] for r in recs])
    side = np.array([r["sideways_m"] for r in recs])
    out.update({
        "plan_shorter_m": {"mean": round(float(shorter.mean()), 3),
                           "median": round(float(np.median(shorter)), 3),
                           "max": round(float(shorter.max()), 3)},
        "plan_sideways_m": {"mean": round(float(side.mean()), 3), "max": round(float(side.max()), 3)},
        "share_moved": round(float(np.mean(np.hypot(shorter, side) >= MOVED_M)), 4),
    })
    if arm == "stopped_thing":
        needed = np.array([r["needed_m"] for r in recs])
        out["needed_shorter_m"] = {"mean": round(float(needed.mean()), 3),
                                   "median": round(float(np.median(needed)), 3)}
        out["share_of_needed"] = share_of_needed(shorter, needed)
        out["by_distance"] = by_distance(recs)
    return out


def by_distance(recs: list[dict]) -> dict:
    """The stopped thing's arm per distance band and speed: does the network still answer it
    close up, closing in?"""
    out = {}
    for lo, hi in zip(NEAR_BINS_M[:-1], NEAR_BINS_M[1:]):
        for fast in (False, True):
            band = [r for r in recs if lo <= r["nearest_m"] < hi and (r["speed"] >= AT_SPEED) == fast]
            if not band:
                continue
            shorter = np.array([r["shorter_m"] for r in band])
            needed = np.array([r["needed_m"] for r in band])
            out[f"{lo:g}-{hi:g} m, {'>=' if fast else '<'} {AT_SPEED:g} m/s"] = {
                "steps": len(band), "mean_speed": round(float(np.mean([r["speed"] for r in band])), 2),
                "plan_shorter_m": round(float(shorter.mean()), 3),
                "needed_shorter_m": round(float(needed.mean()), 3),
                # none where the band needed (almost) nothing: standing behind the thing
                "share_of_needed": share_of_needed(shorter, needed) if needed.mean() >= 0.5 else None}
    return out


def share_of_needed(shorter: np.ndarray, needed: np.ndarray) -> float:
    """How much of the shortening a safe plan needed the plans made (their lengthenings not
    counted against it)."""
    return round(float(np.clip(shorter, 0, None).sum() / max(needed.sum(), 1e-9)), 4)


def main(argv=None) -> None:
    import multiprocessing as mp

    a, checkpoint, items = _pool.diagnosis_args(__doc__.split("\n")[0], argv)
    arms = {"stopped_thing": [it for it in items if it.rare_event in _pool.STOPPED_THINGS],
            "road_users": [it for it in items if it.rare_event not in _pool.STOPPED_THINGS
                           and it.scenario in TRAFFIC_SCENARIOS]}
    t0 = time.perf_counter()
    with _pool.json_stdout() as emit:
        result = {}
        with mp.get_context("spawn").Pool(a.workers) as pool:
            for arm, its in arms.items():
                got = pool.map(_job, [(arm, checkpoint, it, _pool.EPISODE_S) for it in its], chunksize=1)
                result[arm] = s = summarize_arm(got, arm)
                log(f"{arm}: {s['steps_counted']} steps with one ahead in the lane; plan shorter by "
                    f"{s.get('plan_shorter_m', {}).get('mean', float('nan')):.2f} m on average")
        emit({**_pool.diagnosis_header(a, checkpoint, items, t0),
              "settings": {"ahead_m": AHEAD_M, "lane_half_m": LANE_HALF_M, "stop_short_m": STOP_SHORT_M,
                           "moved_m": MOVED_M},
              "arms": result})


if __name__ == "__main__":
    main()
