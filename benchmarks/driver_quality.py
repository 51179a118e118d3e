"""Driver quality against the hidden profiles: Spearman rank correlation across drivers.

The engine (`opendojo.engine.quality.run_quality`) scores clips and drivers from telemetry
and video only. This evaluation script, and only it, then reads the simulator's ground
truth (`ClipStore.sim_truth`) to learn each driver's profile and compares.

Two orders of the profiles, best to worst, are compared; both are printed.

ASSUMED_ORDER was written down before any score or collision rate was measured:
  1 expert                highway-env's IDM/MOBIL defaults: the reference driver
  2 timid                 large gaps (2.6 s), gentle (1.5 m/s^2), polite: safe, only slow
  3 distracted            0.6 s late, wandering steering and throttle: erratic control
  4 tailgater             0.45 s headway: rear-end risk on every brake of the car ahead
  5 aggressive            0.8 s headway, hard acceleration and braking, frequent lane changes
  6 erratic_lane_changer  lane changes that ignore the gain, 25% random, small safety margin
The reasoning is the one insurance telematics uses: risk to others first (headway, harsh
events, unexpected lane changes), comfort second, speed last.

REVISED_ORDER moves `distracted` to the worst place and keeps the rest. It was made AFTER
seeing the first fleet's (seed 1) measured collision rates from sim truth: distracted
drivers collided in 34% of their clips, three times any other profile, so placing them
third was wrong on the very criterion (risk) the order claims. Because it was revised on
that data, its figure counts only on a fleet it was not revised on (e.g. seed 2).

Both are also reported against each profile's measured collision rate (sim truth).
    .venv/bin/python benchmarks/driver_quality.py --store /tmp/engine_fleet

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np

ASSUMED_ORDER = ("expert", "timid", "distracted", "tailgater", "aggressive",
                 "erratic_lane_changer")
REVISED_ORDER = ("expert", "timid", "tailgater", "aggressive", "erratic_lane_changer",
                 "distracted")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--force", action="store_true", help="rescore every clip")
    args = ap.parse_args()

    from scipy.stats import spearmanr

    from opendojo.clips.store import ClipStore
    from opendojo.engine.quality import read_driver_quality, run_quality

    store = ClipStore(args.store)
    t = time.perf_counter()
    run_quality(store, force=args.force)                 # the engine: no sim truth here
    seconds = time.perf_counter() - t
    scores = read_driver_quality(store)

    # -- evaluation only from here on: the hidden profiles ----------------------------------
    truth = store.sim_truth().to_pylist()
    cat = {r["clip_id"]: r["driver_id"] for r in
           store.catalog(columns=["clip_id", "driver_id"]).to_pylist()}
    profile_of: dict[str, str] = {}
    crashes: dict[str, list[int]] = defaultdict(list)
    for r in truth:
        drv = cat.get(r["clip_id"])
        if drv is None:
            continue
        profile_of[drv] = r["driver_profile"]
        crashes[r["driver_profile"]].append(int(json.loads(r["truth_json"]).get("ego_collided", False)))
    drivers = sorted(d for d in scores if d in profile_of)
    s = np.array([scores[d] for d in drivers])

    def rho_for(order) -> float:
        better = np.array([-order.index(profile_of[d]) for d in drivers], float)
        return float(spearmanr(s, better).statistic)

    rho, rho_revised = rho_for(ASSUMED_ORDER), rho_for(REVISED_ORDER)

    crash_rate = {p: float(np.mean(v)) for p, v in crashes.items()}
    measured = np.array([-crash_rate[profile_of[d]] for d in drivers])
    rho_crash = float(spearmanr(s, measured).statistic)

    per_profile = {}
    for p in ASSUMED_ORDER:
        ds = [d for d in drivers if profile_of[d] == p]
        if ds:
            per_profile[p] = {"drivers": len(ds), "clips": len(crashes[p]),
                              "mean_score": round(float(np.mean([scores[d] for d in ds])), 4),
                              "min_score": round(float(np.min([scores[d] for d in ds])), 4),
                              "max_score": round(float(np.max([scores[d] for d in ds])), 4),
                              "collision_rate": round(crash_rate[p], 3)}
    print(json.dumps({
        "benchmark": "driver_quality", "store": args.store, "drivers": len(drivers),
        "clips": len(cat), "spearman_vs_assumed_order": round(rho, 3), "target": 0.8,
        "meets_target": rho >= 0.8,
        "spearman_vs_revised_order": round(rho_revised, 3),
        "revised_order_meets_target": rho_revised >= 0.8,
        "spearman_vs_measured_collision_order": round(rho_crash, 3),
        "assumed_order": list(ASSUMED_ORDER), "revised_order": list(REVISED_ORDER), "per_profile": per_profile,
        "quality_seconds": round(seconds, 1),
    }))


if __name__ == "__main__":
    main()
