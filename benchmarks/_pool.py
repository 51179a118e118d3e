"""Shared parts of `benchmarks/curation.py` and `benchmarks/driving.py`.

Both benchmarks train on one large simulated fleet pool and drive the resulting networks on
the held-out closed-loop suite. This module holds what they share, each piece cached in a
data directory (default `bench-data/`, gitignored) so that a rerun after a crash continues
where it stopped:

pool      `ensure_pool`: a fleet of POOL_CLIPS clips (FleetConfig, fixed seed, every scenario
          and rare event at the fleet's default mix and rate, clips of POOL_CLIP_SECONDS).
          The clip plan is that of `dojo fleet generate --clips N --seed S`
          (`opendojo.fleet.generate.plan_clips`), but clips are recorded in chunks that are
          each committed to the store, and planned clips already catalogued are not
          recorded again: the library's `generate` re-records every planned clip on a
          rerun and commits only at the end, so a crash in a 20-minute generation would
          lose all of it. (`make_env` resets the IDMVehicle class settings that
          highway-env's intersection env changes process-wide, so a clip's content does
          not depend on what its worker recorded before.) Marker: `<pool>/fleet.json`.
engine    `ensure_engine`: hindsight labels, triggers, driver quality, and clip embeddings
          with the documented no-network fallback (`fallback:thumbnail-v1`), as round 1 of
          `dojo loop` does (no network exists yet, so no shadow mode). Marker:
          `<pool>/engine.json` (the engine's own skip is keyed by the git commit, so after
          any commit it would recompute every clip; the marker avoids that).
train     `train_run`: `opendojo.train.trainer.train` with the demo's model and optimizer
          settings; resumes from the last checkpoint; marker `<run>/bench-train.json`.
evaluate  `closed_loop`: `opendojo.evaluate.closed_loop.evaluate` of each driver on the
          suite (held-out seeds, checked with `check_held_out`) in its own worker pool, with
          the intersection items last (`suite_items`); episodes cached per driver.

Simulator ground truth is read only by `composition` (what share of a training set holds
rare events or which hidden profiles drove it), for the report, after every selection is
made; selections never see it.

Progress goes to stderr; `json_stdout` keeps the real stdout for the one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

# -- the shared pool and the demo's model/optimizer settings ------------------------------
POOL_CLIPS = 2000                 # clips in the fleet pool
POOL_SEED = 7                     # fleet seed of the pool
POOL_CLIP_SECONDS = (10.0, 12.0)  # clip length range [s] (the short end of 10-20 s)
WORKERS = 2                       # fleet and closed-loop worker processes
DATA_DIR = "bench-data"           # where pools, runs and results are cached
IMAGE_SIZE = 64                   # DemoConfig defaults
WIDTH = 16
BATCH_SIZE = 32
LR = 2e-3
EPISODE_S = 15.0                  # closed-loop episode length [s] (the demo's)
CONTROL = "trajectory"            # the network drives by pure pursuit on its trajectory

# The diagnoses that drive one checkpoint on one suite (driving_bounds.py, object_sensitivity.py)
DIAGNOSIS_SUITE = "validation"    # not the test suite the demo and the benchmarks report
DIAGNOSIS_EPISODES_PER_ITEM = 2
STOPPED_THINGS = ("obstacle", "stalled_vehicle")   # rare events that stop something in the lane

SMOKE_POOL_CLIPS = 40
SMOKE_DATA_DIR = "bench-data/smoke"
SMOKE_SCENARIOS = ("highway_sparse", "roundabout")


def arg_parser(description: str, steps_help: str = "training steps") -> argparse.ArgumentParser:
    """The flags both pool benchmarks take; each script adds its own, then calls `parse_args`."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check the chain works")
    ap.add_argument("--data-dir")
    ap.add_argument("--pool-clips", type=int)
    ap.add_argument("--pool-seed", type=int)
    ap.add_argument("--clip-seconds", type=float, nargs=2)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--steps", type=int, help=steps_help)
    ap.add_argument("--threads", type=int, help="torch threads while training (0: one per core)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--episodes-per-item", type=int)
    ap.add_argument("--scenarios", nargs="*", help="closed-loop scenarios (default: all)")
    ap.add_argument("--episode-s", type=float)
    return ap


def diagnosis_args(description: str, argv=None, add_flags=None):
    """Flags and set-up of a diagnosis that drives one checkpoint on one suite: `--checkpoint`,
    `--suite`, `--episodes-per-item`, `--workers`, plus what `add_flags(parser)` adds.
    Returns (args, the checkpoint file, the suite's items)."""
    from opendojo.evaluate.closed_loop import SUITES, suite

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--checkpoint", default="runs/demo/train", help="run dir or step file")
    ap.add_argument("--suite", default=DIAGNOSIS_SUITE, choices=list(SUITES))
    ap.add_argument("--episodes-per-item", type=int, default=DIAGNOSIS_EPISODES_PER_ITEM)
    ap.add_argument("--workers", type=int, default=WORKERS)
    if add_flags:
        add_flags(ap)
    a = ap.parse_args(argv)
    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return a, resolve_checkpoint(a.checkpoint), suite(a.episodes_per_item, seed_offset=SUITES[a.suite])


def resolve_checkpoint(path: str) -> str:
    """The checkpoint file of a run dir or step file, or exit saying how to get one."""
    from opendojo.errors import DojoError
    from opendojo.train.checkpoint import resolve

    try:
        return str(resolve(path))
    except DojoError as e:
        raise SystemExit(f"{e} (train one with `make demo`, or pass --checkpoint)") from None


def group_summary(episodes: list[dict], digits: int = 4) -> dict:
    """Episodes, collisions and mean driving score (to `digits`) of a group of closed-loop
    episodes."""
    import numpy as np

    return {"episodes": len(episodes), "collisions": sum(1 for e in episodes if e["collision"]),
            "score": round(float(np.mean([e["score"] for e in episodes])), digits)}


def diagnosis_header(a, checkpoint: str, items, t0: float) -> dict:
    """What every diagnosis's JSON starts with: what was driven, on which seeds, how long."""
    return {"checkpoint": checkpoint, "suite": a.suite, "seeds": f"{items[0].seed}..{items[-1].seed}",
            "episodes_per_item": a.episodes_per_item, "seconds": round(time.perf_counter() - t0, 1)}


def parse_args(ap: argparse.ArgumentParser, argv, defaults: dict, smoke: dict) -> argparse.Namespace:
    """Flags, else the script's `defaults` (the `smoke` sizes with --smoke), else the pool's."""
    a = ap.parse_args(argv)
    defaults = {"data_dir": DATA_DIR, "pool_clips": POOL_CLIPS, "pool_seed": POOL_SEED,
                "clip_seconds": list(POOL_CLIP_SECONDS), "workers": WORKERS,
                "episode_s": EPISODE_S, **defaults}
    if a.smoke:
        defaults.update(smoke)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    return a


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def json_stdout():
    """Point fd 1 at stderr while the benchmark works (library progress bars, worker
    processes and tables then land in the log), and yield a function that prints the
    result on the real stdout."""
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)

    from opendojo.atomic import finite   # JSON has no NaN/inf: they print as null

    def emit(obj) -> None:
        sys.stdout.flush()
        os.write(real, (json.dumps(finite(obj), indent=1) + "\n").encode())

    try:
        yield emit
    finally:
        sys.stdout.flush()
        os.dup2(real, 1)
        os.close(real)


def write_json(path: Path, obj) -> None:
    from opendojo.atomic import write_json as _write

    _write(Path(path), obj)             # undefined figures (NaN, inf) become null there


def read_json(path: Path):
    return json.loads(Path(path).read_text())


class Stages:
    """Wall time per stage; `cached` marks stages whose outputs existed."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cached: list[str] = []

    @contextmanager
    def __call__(self, name: str):
        log(f"-- {name}")
        t0 = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        log(f"   {name}: {self.seconds[name]:.0f} s")


def _on_term(signum, frame):
    raise KeyboardInterrupt


def handle_sigterm() -> None:
    """SIGTERM (e.g. `kill PID`) stops like Ctrl-C: complete work is committed first."""
    signal.signal(signal.SIGTERM, _on_term)


# -- the pool -----------------------------------------------------------------------------
def ensure_pool(root: Path, clips: int, seed: int, workers: int = WORKERS,
                clip_seconds: tuple[float, float] = POOL_CLIP_SECONDS):
    """The fleet pool's store at `root/store` with every planned clip; returns (store, info)."""
    from opendojo.clips.store import ClipStore
    from opendojo.fleet.config import FleetConfig
    from opendojo.fleet.generate import check_recording, generate

    cfg = FleetConfig(clips=clips, workers=workers, seed=seed, clip_seconds=clip_seconds)
    root = Path(root)
    url = str(root / "store")
    marker = root / "fleet.json"
    want = cfg.model_dump(exclude={"workers"})
    if marker.exists():
        info = read_json(marker)
        # fields added to FleetConfig since the pool was made take their defaults
        made = FleetConfig(**info["config"]).model_dump(exclude={"workers"})
        if json.loads(json.dumps(made)) != json.loads(json.dumps(want)):
            raise SystemExit(f"{root} holds another pool ({info['config']}); pick another --data-dir")
        store = ClipStore(url)
        check_recording(store)   # a pool filmed under another route-command convention
        first = store.catalog(columns=["clip_id"]).column("clip_id").to_pylist()[:1]
        if first and not store.has_objects(first[0]):
            log(f"note: {url} was recorded before fleet clips carried their object mask: "
                f"training takes the object channel from the decoded video (about 1.4 times "
                f"closed loop's, with a sixth of the road users lost); move {root} aside to "
                f"re-record it")
        return store, {**info, "cached": True}
    log(f"fleet pool {url}: recording the clips not there yet on {workers} workers "
        f"(committed every 200)")
    t0 = time.perf_counter()
    gen = generate(url, cfg, progress=False)   # GenerationInterrupted (Ctrl-C) propagates
    done, frames = gen["generated"], gen["frames"]
    log(f"  {done} clips recorded ({gen['skipped']} were there), {gen['frames_per_s']:.0f} frames/s")
    store = ClipStore(url)
    seconds = time.perf_counter() - t0
    n = len(store)
    cat = store.catalog(columns=["n_frames"])
    info = {"config": want, "clips": n, "frames": int(sum(cat.column("n_frames").to_pylist())),
            "recorded_now": done, "seconds": round(seconds, 1),
            "frames_per_s": round(frames / seconds, 1) if seconds > 0 and frames else None}
    if n < clips:
        log(f"note: {n} distinct clips for {clips} planned (identical content)")
    write_json(marker, info)
    return store, {**info, "cached": False}


def ensure_engine(store, root: Path) -> dict:
    """Labels, triggers, driver quality and fallback embeddings of every pool clip."""
    from opendojo.engine.embeddings import run_embed
    from opendojo.engine.quality import DRIVER_FEATURES, run_quality, write_driver_quality
    from opendojo.engine.triggers import run_triggers
    from opendojo.label.hindsight import label_store

    marker = Path(root) / "engine.json"
    stages = {"label": lambda: label_store(store),
              "triggers": lambda: run_triggers(store).num_rows,
              "quality": lambda: run_quality(store).num_rows,
              "driver_quality": lambda: write_driver_quality(store).num_rows,
              "embed_fallback": lambda: run_embed(store, None).num_rows}
    info = {"rows": {}, "seconds": {}, "embedder": "fallback:thumbnail-v1 (no network)",
            "shadow": "not run (no network exists before the first training)"}
    if marker.exists():
        info = read_json(marker)
        if info.get("quality_features") == list(DRIVER_FEATURES):
            return {**info, "cached": True}
        # driver quality gained a feature since these tables were written: rescore it alone
        # (labels, triggers and embeddings do not depend on it)
        stages = {"quality": lambda: run_quality(store, force=True).num_rows,
                  "driver_quality": stages["driver_quality"]}
    for name, fn in stages.items():
        t0 = time.perf_counter()
        info["rows"][name] = fn()
        info["seconds"][name] = round(time.perf_counter() - t0, 1)
        log(f"  engine {name}: {info['seconds'][name]:.0f} s")
    info["quality_features"] = list(DRIVER_FEATURES)
    write_json(marker, info)
    return {**info, "cached": False}


def good_drivers_clips(store, keep: float) -> tuple[list[str], dict]:
    """The demo's rule (`opendojo.engine.quality.good_drivers_clips`) on the tables that
    `ensure_engine` wrote, without re-running the stages (their skip is keyed by the git
    commit); sorted clip ids."""
    from opendojo.engine.quality import good_drivers_clips as rule

    ids, counts = rule(store, keep)
    return sorted(ids), counts


# -- datasets ------------------------------------------------------------------------------
def dataset_clips(store, name: str, make) -> list[str]:
    """The train clips of dataset version `name`, made by `make()` if it does not exist."""
    from opendojo.train.dataset import list_datasets, load_dataset

    if name not in list_datasets(store):
        make()
    ds = load_dataset(store, name)
    return sorted(c for ids in ds.splits.values() for c in ids)


def clip_stats(store, clip_ids: list[str], history: int = 4) -> dict:
    """Clips, frames and training samples (frames with a full label horizon and history)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from opendojo.label.hindsight import LABELS, LabelSpec

    ids = pa.array(sorted(set(clip_ids)), pa.string())
    cat = store.catalog(columns=["clip_id", "n_frames", "duration_s", "distance_m"])
    cat = cat.filter(pc.is_in(cat.column("clip_id"), ids))
    lab = store.dataset(LABELS).to_table(columns=["clip_id", "frame", "valid"],
                                         filter=LabelSpec().filter())
    lab = lab.filter(pc.is_in(lab.column("clip_id"), ids))
    ok = pc.and_(lab.column("valid"), pc.greater_equal(lab.column("frame"), history - 1))
    return {"clips": cat.num_rows, "frames": int(pc.sum(cat.column("n_frames")).as_py() or 0),
            "samples": int(pc.sum(ok).as_py() or 0),
            "hours": round(float(pc.sum(cat.column("duration_s")).as_py() or 0) / 3600, 3),
            "km": round(float(pc.sum(cat.column("distance_m")).as_py() or 0) / 1000, 1)}


def composition(store, clip_ids: list[str]) -> dict:
    """SIM TRUTH, for the report only: rare-event clips and hidden driver profiles of a set."""
    from collections import Counter

    from opendojo.clips.store import SIM_TRUTH

    truth = store.dataset(SIM_TRUTH).to_table(
        columns=["clip_id", "driver_profile", "rare_event"]).to_pylist()
    by = {r["clip_id"]: r for r in truth}
    rows = [by[c] for c in clip_ids if c in by]
    events = Counter(r["rare_event"] for r in rows if r["rare_event"])
    return {"rare_event_clips": sum(events.values()),
            "rare_event_share": round(sum(events.values()) / max(1, len(rows)), 4),
            "rare_events": dict(sorted(events.items())),
            "profiles": dict(sorted(Counter(r["driver_profile"] for r in rows).items()))}


# -- training ------------------------------------------------------------------------------
def train_run(store, dataset: str, run_dir: Path, steps: int, seed: int = 0,
              batch_size: int = BATCH_SIZE, lr: float = LR, image_size: int = IMAGE_SIZE,
              width: int = WIDTH, threads: int | None = None, collision_weight: float = 0.0,
              object_channel: bool = False, path_head: bool = False, mirror: bool = False,
              ema_decay: float = 0.0) -> dict:
    """Train (or resume, or reuse) a run of `steps` steps; returns the trainer's summary.

    `object_channel`, `path_head`, `mirror`, `ema_decay`: the demo's object channel, trained
    as the demo trains it, its path head, its mirrored samples and its averaged weights
    (`opendojo.runs.network_fields`).

    `threads`: torch intra-op threads (None: torch's default, one per core). On a 2-core
    machine that something else also uses, 2 threads spin at every OpenMP barrier: measured
    here, 129 samples/s with 2 threads against 303 with 1 while another training ran."""
    import torch

    from opendojo.runs import network_fields
    from opendojo.train.config import TrainConfig
    from opendojo.train.trainer import train

    run_dir = Path(run_dir)
    marker = run_dir / "bench-train.json"
    fields = network_fields(image_size, width, object_channel, path_head, mirror, ema_decay)
    tc = TrainConfig(store=store.url, dataset=dataset, steps=steps, batch_size=batch_size,
                     lr=lr, seed=seed, checkpoint_every=max(100, steps // 8),
                     collision_weight=collision_weight, **fields)
    if marker.exists():
        from opendojo.train.checkpoint import model_config_diff, read_meta, trained_command

        meta = read_meta(run_dir)
        diff, _ = model_config_diff(meta, tc.policy_config().to_dict())
        if trained_command(meta) != tc.command:
            diff.append("command")
        # how the network was trained, beside its shape: a cached network trained with other
        # pasted things, mirroring or averaging is another network (a key an older run's
        # config lacks held its default then)
        for k in ["collision_weight", *(k for k in fields if k != "model")]:
            if meta.get("train", {}).get(k, TrainConfig.model_fields[k].default) != getattr(tc, k):
                diff.append(k)
        if diff:
            raise SystemExit(f"{run_dir} holds a network of another model or training config "
                             f"({', '.join(diff)} differ); move it aside to retrain")
        return {**read_json(marker), "cached": True}
    resume = (run_dir / "config.json").exists()
    log(f"  training {dataset}: {steps} steps{' (resuming)' if resume else ''} -> {run_dir}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        summary = train(tc, run_dir, resume=resume, progress=False)
    finally:
        torch.set_num_threads(before)
    summary = {**summary, "seconds": round(time.perf_counter() - t0, 1), "resumed": resume,
               "threads": threads or before}
    write_json(marker, summary)
    log(f"  trained {dataset}: loss_window {summary.get('loss_window', float('nan')):.3f}, "
        f"{summary.get('samples_per_s', 0):.0f} samples/s, {summary['seconds']:.0f} s")
    return {**summary, "cached": False}


def pool_and_engine(stage, a, root: Path):
    """The pool's store (`ensure_pool`) and its engine tables (`ensure_engine`), as stages."""
    with stage("fleet pool"):
        store, pool_info = ensure_pool(root, a.pool_clips, a.pool_seed, a.workers,
                                       tuple(a.clip_seconds))
    with stage("engine: labels, triggers, quality, embeddings"):
        engine = ensure_engine(store, root)
    return store, pool_info, engine


# -- closed loop ---------------------------------------------------------------------------
def suite_items(episodes_per_item: int, scenarios=None):
    """The held-out suite, intersection items last. (Written when highway-env's
    IntersectionEnv changed the IDMVehicle class for the rest of its process; `make_env`
    now resets that, so the order no longer matters, and it is kept so that the cached
    episodes of earlier runs stay comparable.)"""
    from opendojo.evaluate.closed_loop import suite

    items = suite(episodes_per_item, list(scenarios) if scenarios else None)
    return sorted(items, key=lambda i: i.scenario == "intersection")


def closed_loop(store, drivers: dict[str, tuple], items, cache_dir: Path, tag: str,
                workers: int = WORKERS, episode_s: float = EPISODE_S) -> tuple[list[dict], dict]:
    """Episodes (dicts) of each driver on `items`, one `evaluate` call (a fresh worker pool)
    per driver, each cached in `cache_dir/eval-<driver>-<tag>.json` (keyed by the driver,
    the seeds and the episode length); also the seconds each took when it first ran."""
    episodes, seconds = [], {}
    for name, spec in drivers.items():
        eps, seconds[name] = _closed_loop_one(store, name, spec, items,
                                              Path(cache_dir) / f"eval-{name}-{tag}.json",
                                              workers, episode_s)
        episodes += eps
    return episodes, seconds


def drive_suite(stage, store, a, root: Path, networks: dict[str, str], cache_dir: Path) -> dict:
    """The expert, every human profile (cached under root/eval-baselines) and each network
    (name -> checkpoint, cached under cache_dir) on the held-out suite of `a`'s settings.

    Returns tag (of the cache files), episodes, fleet_episodes (the human profiles' episodes
    relabelled "fleet (humans)"), summaries (networks, expert, fleet (humans), each profile),
    seconds (per driver) and suite (what was driven)."""
    from opendojo.fleet.drivers import HUMAN_PROFILES

    items = suite_items(a.episodes_per_item, a.scenarios)
    tag = f"e{a.episodes_per_item}-{'all' if not a.scenarios else '+'.join(a.scenarios)}-{a.episode_s:g}s"
    base = {"expert": ("profile", "expert"), **{p: ("profile", p) for p in HUMAN_PROFILES}}
    with stage("closed loop: expert and human baselines"):
        episodes, seconds = closed_loop(store, base, items, root / "eval-baselines", tag,
                                        a.workers, a.episode_s)
    for name, checkpoint in networks.items():
        with stage(f"closed loop: {name}"):
            eps, secs = closed_loop(store, {name: network_spec(checkpoint)}, items, cache_dir, tag,
                                    a.workers, a.episode_s)
            episodes += eps
            seconds.update(secs)
    per = by_driver(episodes)
    humans = [e for p in HUMAN_PROFILES for e in per[p]]
    summaries = {n: summary(per[n]) for n in networks}
    summaries["expert"] = summary(per["expert"])
    summaries["fleet (humans)"] = summary(humans)
    summaries.update({p: summary(per[p]) for p in HUMAN_PROFILES})
    return {"tag": tag, "episodes": episodes, "summaries": summaries, "seconds": seconds,
            "fleet_episodes": [{**e, "driver": "fleet (humans)"} for e in humans],
            "suite": {"items": len({(i.scenario, i.rare_event) for i in items}),
                      "episodes_per_item": a.episodes_per_item, "episode_s": a.episode_s,
                      "seeds": f"{min(i.seed for i in items)}..{max(i.seed for i in items)}",
                      "scenarios": a.scenarios or "all"}}


def _closed_loop_one(store, name, spec, items, cache: Path, workers, episode_s):
    from opendojo.evaluate.closed_loop import check_held_out, evaluate

    key = {"driver": name, "spec": spec,
           "items": [[i.scenario, i.rare_event, i.seed] for i in items], "episode_s": episode_s}
    key = json.loads(json.dumps(key))
    if cache.exists():
        got = read_json(cache)
        if got["key"] == key:
            return got["episodes"], got["seconds"]
    check_held_out(store, items)
    log(f"  closed loop: {name} on {len(items)} held-out items")
    t0 = time.perf_counter()
    state = {"next": 0.25}

    def progress(i, total):
        if i / total >= state["next"] or i == total:
            state["next"] = i / total + 0.25
            log(f"    {name}: {i}/{total} episodes, {time.perf_counter() - t0:.0f} s")

    eps = evaluate({name: spec}, items, workers=workers, duration_s=episode_s, progress=progress)
    out = [e.to_dict() for e in eps]
    seconds = round(time.perf_counter() - t0, 1)
    write_json(cache, {"key": key, "episodes": out, "seconds": seconds})
    return out, seconds


def network_spec(checkpoint: str) -> tuple:
    from opendojo.train.checkpoint import resolve

    return ("network", (str(resolve(checkpoint)), CONTROL))


def run_record(stage, pool_info: dict, engine: dict, trained: dict[str, dict],
               eval_seconds: dict, t_all: float) -> dict:
    """The timing tail of a benchmark's JSON. `trained` maps the key to report each training
    run under ("train", "train_curated", ...) to `train_run`'s summary."""
    return {
        "stage_seconds": stage.seconds,
        "work_seconds": {   # when each stage's outputs were made (a cached stage costs ~0 now)
            "fleet": pool_info.get("seconds"), **{f"engine_{k}": v for k, v in engine["seconds"].items()},
            **{k: v.get("seconds") for k, v in trained.items()},
            **{f"closed_loop_{k}": v for k, v in eval_seconds.items()}},
        "cached": {"pool": pool_info["cached"], "engine": engine["cached"],
                   **{k: v.get("cached", False) for k, v in trained.items()}},
        "total_seconds": round(time.perf_counter() - t_all, 1),
    }


def log_table(summaries: dict, drivers: list[str]) -> None:
    """One log line: each driver's score (95% CI) and collisions per km."""
    s = summaries
    log("driving score (95% CI), collisions/km: " + "; ".join(
        f"{d} {s[d]['score']:.3f} ({s[d]['score_ci'][0]:.3f}-{s[d]['score_ci'][1]:.3f}), "
        f"{s[d]['collisions_per_km']:.2f}" for d in drivers))


def summary(episodes: list[dict]) -> dict:
    """`opendojo.evaluate.scoring.summarize`, rounded for the JSON."""
    from opendojo.evaluate.scoring import Episode, summarize

    s = summarize([Episode(**e) for e in episodes])
    return {k: (round(v, 4) if isinstance(v, float) else
                [round(x, 4) for x in v] if isinstance(v, list) else v) for k, v in s.items()}


def by_driver(episodes: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in episodes:
        out.setdefault(e["driver"], []).append(e)
    return out


def per_event(episodes: list[dict], drivers: list[str]) -> dict:
    """Per rare event (pooled over the scenarios that have it; "none" = plain episodes):
    score, CI, collisions and collisions/km of each driver."""
    ev: dict[str, dict[str, list]] = {}
    for e in episodes:
        ev.setdefault(e["rare_event"] or "none", {}).setdefault(e["driver"], []).append(e)
    return {name: {d: _short(summary(g[d])) for d in drivers if d in g}
            for name, g in sorted(ev.items())}


def per_item(episodes: list[dict], drivers: list[str]) -> dict:
    """Per suite item (scenario + rare event): mean score (3 digits) and collisions of each
    driver (`group_summary`, score first)."""
    it: dict[str, dict[str, list]] = {}
    for e in episodes:
        key = f"{e['scenario']}/{e['rare_event'] or 'none'}"
        it.setdefault(key, {}).setdefault(e["driver"], []).append(e)

    def cell(group: list[dict]) -> dict:
        s = group_summary(group, digits=3)
        return {k: s[k] for k in ("score", "collisions", "episodes")}
    return {k: {d: cell(g[d]) for d in drivers if d in g} for k, g in sorted(it.items())}


def _short(s: dict) -> dict:
    return {k: s[k] for k in ("episodes", "score", "score_ci", "collisions", "km",
                              "collisions_per_km")}


def paired(episodes: list[dict], a: str, b: str) -> dict:
    """Driving score of driver a minus driver b on the same suite items (paired by seed)."""
    from opendojo.evaluate.scoring import paired_difference

    return paired_difference([e for e in episodes if e["driver"] == a],
                             [e for e in episodes if e["driver"] == b])
