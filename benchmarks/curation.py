"""Does budgeted curation pick the clips worth training on? Curated vs random vs whole pool.

On one fleet pool of POOL_CLIPS clips, three arms are trained with the SAME number of steps
(TRAIN_STEPS) and the same model/optimizer settings (the demo's: 64x64 input, width 16,
batch 32, lr 2e-3, seed 0):

  curated  `opendojo.engine.curate.curate` with a budget of BUDGET of the pool's frames
           (utility from triggers, rarity in embedding space and driver quality; the
           engine sees only telemetry and video, and no network exists yet, so clips are
           embedded by the documented fallback and there is no shadow-mode disagreement:
           round 1 of `dojo loop`)
  random   a seeded random set of clips with the curated arm's frame count (within one clip)
  whole    every clip of the pool

Each is a dataset version (no held-out split: closed-loop evaluation uses held-out
simulator seeds, checked by `check_held_out`). Each network then drives the held-out
closed-loop suite (every scenario and each of its rare events, EPISODES_PER_ITEM episodes
each, the same seeds for every driver), beside the expert and every human profile of the
fleet (the "fleet (humans)" row pools them: the fleet-average human).

Verdicts (driving score, paired by suite seed; CI = 95% bootstrap CI of the mean paired
difference, `opendojo.evaluate.scoring.mean_ci`):
  curated_beats_random   curated - random >= CLEAR_MARGIN and its CI lies above 0
  curated_matches_whole  curated - whole >= -CLEAR_MARGIN and its CI reaches 0 or above
                         (the whole pool is not significantly better)
Collisions per km (with exact Poisson CIs) are reported beside them, not folded in.

Settings (flags override them): the constants below and the pool's in `_pool.py`
(POOL_CLIPS=2000, POOL_SEED, POOL_CLIP_SECONDS=(10, 12), WORKERS=2). Everything is cached
under DATA_DIR/pool-N/ (fleet, engine tables, dataset versions, training runs, episodes),
so a rerun after a crash or Ctrl-C continues at the first unfinished stage and a finished
run prints its JSON again at once. `--smoke` runs the whole chain at tiny sizes
(SMOKE_* settings: 40 clips, 20 steps, 1 episode per item, 2 scenarios, budget 15%, since
1.5% of 40 clips holds no whole clip) under bench-data/smoke/ in a few minutes.

    .venv/bin/python benchmarks/curation.py > bench-data/curation.json 2> bench-data/curation.log
    .venv/bin/python benchmarks/curation.py --smoke

Prints one JSON object on stdout (progress on stderr); also written to
DATA_DIR/pool-N/curation-<tag>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _pool
from _pool import log

# -- settings ---------------------------------------------------------------------------------
BUDGET = "1.5%"            # curated share of the pool's frames (the issue asks for 1-2%)
TRAIN_STEPS = 1600         # every arm (DemoConfig.train_steps)
SEED = 0                   # training seed, random-arm seed, selection seed
COVERAGE = None            # None: SelectionConfig's default share of the budget for typical
                           # driving (0 reproduces the selection before that step existed)
TRAIN_THREADS = 1          # torch threads while training (as benchmarks/driving.py: 2 threads
                           # collapse beside another job on a 2-core machine)
EPISODES_PER_ITEM = 3      # closed-loop episodes per scenario / rare event
SCENARIOS = None           # None: every scenario (with each of its rare events)
CLEAR_MARGIN = 0.05        # driving-score margin of the verdicts
ARMS = ("curated", "random", "whole")

SMOKE = {"pool_clips": _pool.SMOKE_POOL_CLIPS, "data_dir": _pool.SMOKE_DATA_DIR, "budget": "15%",
         "steps": 20, "episodes_per_item": 1, "scenarios": list(_pool.SMOKE_SCENARIOS)}


def parse_args(argv=None) -> argparse.Namespace:
    ap = _pool.arg_parser(__doc__.split("\n")[0], steps_help="training steps of every arm")
    ap.add_argument("--budget", help="share of the pool's frames, e.g. 1.5%% or 0.015")
    ap.add_argument("--coverage", type=float,
                    help="share of the budget for typical driving (SelectionConfig.coverage)")
    return _pool.parse_args(ap, argv, {"budget": BUDGET, "coverage": COVERAGE, "steps": TRAIN_STEPS,
                                       "threads": TRAIN_THREADS, "seed": SEED,
                                       "episodes_per_item": EPISODES_PER_ITEM,
                                       "scenarios": SCENARIOS}, SMOKE)


def random_like(clip_frames: dict[str, int], target: int, seed: int) -> list[str]:
    """Seeded random clips whose frames add up to `target` within one clip's frames."""
    import numpy as np

    ids = sorted(clip_frames)
    order = np.random.default_rng([seed, 17]).permutation(len(ids))
    chosen, total = [], 0
    for i in order:
        f = clip_frames[ids[i]]
        if total + f > target:
            if target - total > total + f - target:   # closer with it than without
                chosen.append(ids[i])
            break
        chosen.append(ids[i])
        total += f
    return chosen


def main(argv=None) -> None:
    a = parse_args(argv)
    _pool.handle_sigterm()
    with _pool.json_stdout() as emit:
        emit(run(a))


def run(a) -> dict:
    from opendojo import code_version
    from opendojo.engine.curate import curate, parse_budget, read_selection
    from opendojo.engine.select import SelectionConfig
    from opendojo.fleet.drivers import HUMAN_PROFILES
    from opendojo.train.dataset import create_dataset

    t_all = time.perf_counter()
    budget = parse_budget(a.budget)
    selection = SelectionConfig(budget=budget, seed=a.seed,
                                **({} if a.coverage is None else {"coverage": a.coverage}))
    a.coverage = selection.coverage
    root = Path(a.data_dir) / f"pool-{a.pool_clips}"
    # runs and dataset versions before the coverage step existed carry no "cov" in their tag,
    # and those before driver quality measured the pace deficit (b9e8364) no "pace"
    tag = f"b{budget * 100:g}pct-{'' if selection.coverage == 0 else f'cov{selection.coverage:g}-'}" \
          f"pace-steps{a.steps}-seed{a.seed}"
    stage = _pool.Stages()
    settings = {k: v for k, v in vars(a).items()}
    settings.update(budget_share=budget, clear_margin=CLEAR_MARGIN, image_size=_pool.IMAGE_SIZE,
                    width=_pool.WIDTH, batch_size=_pool.BATCH_SIZE, lr=_pool.LR,
                    control=_pool.CONTROL)
    log(f"curation benchmark: {settings}")

    store, pool_info, engine = _pool.pool_and_engine(stage, a, root)

    cat = store.catalog(columns=["clip_id", "n_frames"]).to_pylist()
    frames_of = {r["clip_id"]: r["n_frames"] for r in cat}
    names = {"curated": f"bench-curated-{tag}", "random": f"bench-random-{tag}",
             "whole": f"bench-whole-{len(cat)}"}
    clips: dict[str, list[str]] = {}
    with stage("select: curated, random, whole"):
        clips["curated"] = _pool.dataset_clips(store, names["curated"], lambda: curate(
            store, names["curated"], selection, holdout=0.0))
        target = sum(frames_of[c] for c in clips["curated"])
        clips["random"] = _pool.dataset_clips(store, names["random"], lambda: create_dataset(
            store, names["random"], clip_ids=random_like(frames_of, target, a.seed), holdout=0.0,
            seed=a.seed))
        clips["whole"] = _pool.dataset_clips(store, names["whole"], lambda: create_dataset(
            store, names["whole"], clip_ids=sorted(frames_of), holdout=0.0, seed=a.seed))
        explained = read_selection(store, names["curated"])
        for arm in ARMS:
            log(f"  {arm}: {len(clips[arm])} clips, {sum(frames_of[c] for c in clips[arm])} frames")

    runs = root / "curation" / tag
    # the whole pool does not depend on the budget or the selection: one run per steps/seed
    run_dirs = {arm: runs / arm for arm in ARMS}
    run_dirs["whole"] = root / "curation" / f"whole-steps{a.steps}-seed{a.seed}"
    trained = {}
    for arm in ARMS:
        with stage(f"train {arm}"):
            trained[arm] = _pool.train_run(store, names[arm], run_dirs[arm], a.steps, seed=a.seed,
                                            threads=a.threads or None)

    suite = _pool.drive_suite(stage, store, a, root,
                              {arm: trained[arm]["checkpoint"] for arm in ARMS}, runs)
    episodes, summaries, eval_seconds = suite["episodes"], suite["summaries"], suite["seconds"]
    ev_tag, fleet_eps = suite["tag"], suite["fleet_episodes"]
    vs_random = _pool.paired(episodes, "curated", "random")
    vs_whole = _pool.paired(episodes, "curated", "whole")
    beats = vs_random["mean"] >= CLEAR_MARGIN and vs_random["ci"][0] > 0
    matches = vs_whole["mean"] >= -CLEAR_MARGIN and vs_whole["ci"][1] >= 0
    shown = list(ARMS) + ["expert", "fleet (humans)"]

    arms = {}
    for arm in ARMS:
        t = trained[arm]
        st = _pool.clip_stats(store, clips[arm])
        arms[arm] = {"dataset": names[arm], **st,
                     "epochs": round(a.steps * _pool.BATCH_SIZE / max(1, st["samples"]), 2),
                     "final_loss_window": t.get("loss_window"), "train_seconds": t.get("seconds"),
                     "train_samples_per_s": t.get("samples_per_s"), "checkpoint": t["checkpoint"],
                     "closed_loop": summaries[arm],
                     "composition_sim_truth": _pool.composition(store, clips[arm])}
    arms["curated"]["selection"] = {
        "budget": a.budget, "explanations_sample": [r["explanation"] for r in explained[:5]],
        "with_trigger": sum(1 for r in explained if r["explanation"].startswith("triggers"))}

    result = {
        "benchmark": "curation", "code_version": code_version(), "settings": settings,
        "pool": {"clips": pool_info["clips"], "frames": pool_info["frames"],
                 "seed": a.pool_seed, "clip_seconds": list(a.clip_seconds),
                 "store": store.url, "generation_seconds": pool_info.get("seconds"),
                 "composition_sim_truth": _pool.composition(store, sorted(frames_of))},
        "engine": {k: engine[k] for k in ("seconds", "embedder", "shadow")},
        "suite": suite["suite"],
        "arms": arms,
        "baselines": {d: summaries[d] for d in ["expert", "fleet (humans)", *HUMAN_PROFILES]},
        "table": {d: {"score": summaries[d]["score"], "score_ci": summaries[d]["score_ci"],
                      "collisions_per_km": summaries[d]["collisions_per_km"],
                      "collisions_per_km_ci": summaries[d]["collisions_per_km_ci"],
                      "km": summaries[d]["km"]} for d in shown},
        "rare_events": _pool.per_event(episodes + fleet_eps, shown),
        "per_item": _pool.per_item(episodes + fleet_eps, shown),
        "comparisons": {"curated_minus_random_score": vs_random,
                        "curated_minus_whole_score": vs_whole},
        "verdicts": {
            "curated_beats_random": bool(beats),
            "curated_matches_whole": bool(matches),
            "rules": (f"beats: paired mean score difference >= {CLEAR_MARGIN} and its 95% "
                      f"bootstrap CI above 0; matches: paired mean difference >= -{CLEAR_MARGIN} "
                      "and its 95% CI upper bound >= 0 (whole not significantly better)")},
        **_pool.run_record(stage, pool_info, engine, {f"train_{k}": v for k, v in trained.items()},
                           eval_seconds, t_all),
    }
    _pool.write_json(root / f"curation-{tag}-{ev_tag}.json", result)
    _pool.log_table(summaries, shown)
    log(f"curated - random {vs_random}, curated - whole {vs_whole}; beats random: {beats}, "
        f"matches whole: {matches}")
    return result


if __name__ == "__main__":
    main()
