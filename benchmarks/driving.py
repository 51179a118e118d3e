"""Where the network stands: collisions per km and driving score, network vs expert vs fleet.

A larger run than `dojo demo`: the network is trained on the collision-free clips of the
best KEEP_DRIVERS share of drivers (driver quality from telemetry and video,
`opendojo.engine.quality`: the demo's rule, "good drivers' data", here over the 2,000-clip
pool of `benchmarks/curation.py`, shared through `_pool.py`) for TRAIN_STEPS steps with the
demo's model and optimizer (64x64, width 16, the object channel, the path head, mirrored
samples, averaged weights, batch 32, lr 2e-3). Then it drives the held-out closed-loop
suite (every scenario and each of its rare events, EPISODES_PER_ITEM episodes each,
simulator seeds no fleet clip used) beside the expert and every human profile of the
fleet; "fleet (humans)" pools the human profiles (the fleet-average human).

The project's targets, reported as flags:
  ten_x_safer_than_fleet   network collisions/km x 10 <= fleet-average collisions/km
  score_at_least_expert    network mean driving score >= the expert's
(point estimates; each rate also carries an exact Poisson 95% CI and each score a bootstrap
95% CI, and `..._ci_clear` says whether the target holds even at the unfavourable CI bound:
network upper collision bound x 10 <= fleet lower bound; network score CI lower bound >=
expert score CI upper bound.)

Settings (flags override them): the constants below and the pool's in `_pool.py`
(POOL_CLIPS=2000, POOL_SEED, POOL_CLIP_SECONDS=(10, 12), WORKERS=2). Measured on 2 cores:
the pool and its engine tables take ~18 min when `curation.py` has not made them yet,
training ~12 min (one torch thread, ~330 samples/s), the suite (75 episodes x 7 drivers)
~4.5 min; everything is cached under DATA_DIR/pool-N/
(training resumes from its last checkpoint, the suite's episodes are kept), so a rerun
continues where it stopped. `--smoke`: 40-clip pool under bench-data/smoke/, 20 steps, one
episode per item, 2 scenarios.

    .venv/bin/python benchmarks/driving.py > bench-data/driving.json 2> bench-data/driving.log
    .venv/bin/python benchmarks/driving.py --smoke

Prints one JSON object on stdout (progress on stderr); also written to
DATA_DIR/pool-N/driving-<tag>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _pool
from _pool import log

# -- settings ---------------------------------------------------------------------------------
KEEP_DRIVERS = 0.6         # train on the collision-free clips of this best share of drivers
TRAIN_STEPS = 8000         # 2.5x the demo's 3200
COLLISION_WEIGHT = 0.0     # hindsight collision cost (opendojo.train.occupancy); 0: off
OBJECT_CHANNEL = True      # the demo's network: other road users as a 4th input channel,
                           # trained with pasted road users (opendojo.runs.OBJECT_CHANNEL_TRAINING)
PATH_HEAD = True           # the demo's path head, which the closed loop steers on (runs.PATH_POINTS)
MIRROR = True              # the demo's mirrored samples (runs.MIRROR_SHARE)
EMA = True                 # the demo's averaged weights (runs.EMA_DECAY, opendojo.train.ema)
SEED = 0
EPISODES_PER_ITEM = 5      # closed-loop episodes per scenario / rare event (demo: 2)
SCENARIOS = None           # None: every scenario (with each of its rare events)
TARGET_SAFETY = 10.0       # network at least this many times fewer collisions/km than the fleet
TRAIN_THREADS = 1          # torch threads while training: robust on a shared 2-core machine
                           # (2 threads collapsed to ~20 samples/s beside another job; 1: ~300)

SMOKE = {"pool_clips": _pool.SMOKE_POOL_CLIPS, "data_dir": _pool.SMOKE_DATA_DIR, "steps": 20,
         "episodes_per_item": 1, "scenarios": list(_pool.SMOKE_SCENARIOS)}


def parse_args(argv=None) -> argparse.Namespace:
    ap = _pool.arg_parser(__doc__.split("\n")[0])
    ap.add_argument("--keep-drivers", type=float, help="share of the best drivers (1: every clip)")
    ap.add_argument("--collision-weight", type=float,
                    help="weight of the hindsight collision cost in training (0: off)")
    ap.add_argument("--object-channel", action=argparse.BooleanOptionalAction,
                    help="the demo's object channel and pasted road users (--no-object-channel: "
                         "the blind network of the measurements before 2026-11-23)")
    ap.add_argument("--path-head", action=argparse.BooleanOptionalAction,
                    help="the demo's path head (--no-path-head: steer on the trajectory, as the "
                         "measurements before 2026-11-23, later, did)")
    ap.add_argument("--mirror", action=argparse.BooleanOptionalAction,
                    help="the demo's mirrored samples (--no-mirror: none, as in every "
                         "measurement before they came in)")
    ap.add_argument("--ema", action=argparse.BooleanOptionalAction,
                    help="the demo's averaged weights (--no-ema: the weights as trained, as in "
                         "every measurement before they came in)")
    return _pool.parse_args(ap, argv, {"keep_drivers": KEEP_DRIVERS, "steps": TRAIN_STEPS,
                                       "collision_weight": COLLISION_WEIGHT,
                                       "object_channel": OBJECT_CHANNEL, "path_head": PATH_HEAD,
                                       "mirror": MIRROR, "ema": EMA,
                                       "threads": TRAIN_THREADS, "seed": SEED,
                                       "episodes_per_item": EPISODES_PER_ITEM,
                                       "scenarios": SCENARIOS}, SMOKE)


def main(argv=None) -> None:
    a = parse_args(argv)
    _pool.handle_sigterm()
    with _pool.json_stdout() as emit:
        emit(run(a))


def _ratio(x, y):
    return round(x / y, 4) if y and y == y and x == x else None


def run(a) -> dict:
    from opendojo import code_version, runs
    from opendojo.train.dataset import create_dataset

    t_all = time.perf_counter()
    root = Path(a.data_dir) / f"pool-{a.pool_clips}"
    tag = f"q{a.keep_drivers:g}-steps{a.steps}-seed{a.seed}" + \
        (f"-col{a.collision_weight:g}" if a.collision_weight else "") + \
        ("-objects" if a.object_channel else "") + ("-path" if a.path_head else "") + \
        ("-mirror" if a.mirror else "") + ("-ema" if a.ema else "")
    stage = _pool.Stages()
    settings = dict(vars(a))
    settings.update(image_size=_pool.IMAGE_SIZE, width=_pool.WIDTH, batch_size=_pool.BATCH_SIZE,
                    lr=_pool.LR, control=_pool.CONTROL, target_safety=TARGET_SAFETY)
    log(f"driving benchmark: {settings}")

    store, pool_info, engine = _pool.pool_and_engine(stage, a, root)
    name = f"bench-driving-good-q{a.keep_drivers:g}"
    with stage("select: good drivers' collision-free clips"):
        good, picked = _pool.good_drivers_clips(store, a.keep_drivers)   # reads tables: cheap
        clips = _pool.dataset_clips(store, name, lambda: create_dataset(
            store, name, clip_ids=good, holdout=0.0, seed=a.seed))
        data = _pool.clip_stats(store, clips)
        log(f"  {name}: {data['clips']} clips, {data['samples']} samples")
    with stage("train"):
        trained = _pool.train_run(store, name, root / "driving" / tag / "train", a.steps, seed=a.seed,
                                  threads=a.threads or None, collision_weight=a.collision_weight,
                                  object_channel=a.object_channel, path_head=a.path_head,
                                  mirror=a.mirror, ema_decay=runs.EMA_DECAY if a.ema else 0.0)

    suite = _pool.drive_suite(stage, store, a, root, {"network": trained["checkpoint"]},
                              root / "driving" / tag)
    episodes, s, eval_seconds = suite["episodes"], suite["summaries"], suite["seconds"]
    ev_tag, fleet_eps = suite["tag"], suite["fleet_episodes"]
    net, exp, fleet = s["network"], s["expert"], s["fleet (humans)"]
    safer = _ratio(fleet["collisions_per_km"], net["collisions_per_km"])
    shown = ["network", "expert", "fleet (humans)"]
    vs_expert = _pool.paired(episodes, "network", "expert")
    result = {
        "benchmark": "driving", "code_version": code_version(), "settings": settings,
        "pool": {"clips": pool_info["clips"], "frames": pool_info["frames"], "seed": a.pool_seed,
                 "store": store.url, "generation_seconds": pool_info.get("seconds")},
        "training_data": {"dataset": name, **data,
                          "epochs": round(a.steps * _pool.BATCH_SIZE / max(1, data["samples"]), 2),
                          "selection": picked,
                          "composition_sim_truth": _pool.composition(store, clips)},
        "training": {k: trained.get(k) for k in ("step", "loss_window", "train_ade", "samples_per_s",
                                                 "seconds", "checkpoint", "resumed", "threads")},
        "suite": suite["suite"],
        "drivers": {d: {"score": v["score"], "score_ci": v["score_ci"],
                        "collisions_per_km": v["collisions_per_km"],
                        "collisions_per_km_ci": v["collisions_per_km_ci"],
                        "collisions": v["collisions"],
                        "km": v["km"], "episodes": v["episodes"],
                        "route_completion": v["route_completion"]} for d, v in s.items()},
        "ratios": {
            "network_over_fleet_collisions_per_km": _ratio(net["collisions_per_km"],
                                                           fleet["collisions_per_km"]),
            # "x times safer"; null if the network never collided
            "fleet_over_network_collisions_per_km": safer,
            "network_over_expert_collisions_per_km": _ratio(net["collisions_per_km"],
                                                            exp["collisions_per_km"]),
            "network_over_expert_score": _ratio(net["score"], exp["score"]),
            "network_minus_expert_score_paired": vs_expert,
        },
        "meets_target": {
            "ten_x_safer_than_fleet": bool(net["collisions_per_km"] * TARGET_SAFETY
                                           <= fleet["collisions_per_km"]),
            "ten_x_safer_than_fleet_ci_clear": bool(net["collisions_per_km_ci"][1] * TARGET_SAFETY
                                                    <= fleet["collisions_per_km_ci"][0]),
            "score_at_least_expert": bool(net["score"] >= exp["score"]),
            "score_at_least_expert_ci_clear": bool(net["score_ci"][0] >= exp["score_ci"][1]),
        },
        "rare_events": _pool.per_event(episodes + fleet_eps, shown),
        "per_item": _pool.per_item(episodes + fleet_eps, shown),
        **_pool.run_record(stage, pool_info, engine, {"train": trained}, eval_seconds, t_all),
    }
    _pool.write_json(root / f"driving-{tag}-{ev_tag}.json", result)
    _pool.log_table(s, shown)
    log(f"fleet/network collisions per km: {safer} (target {TARGET_SAFETY:g}); network/expert "
        f"score: {result['ratios']['network_over_expert_score']}; targets: {result['meets_target']}")
    return result


if __name__ == "__main__":
    main()
