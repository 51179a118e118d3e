"""`dojo demo`: the main job end to end on the built-in simulated fleet.

fleet -> label -> dataset -> train -> open-loop eval -> closed-loop eval -> report

Each stage reads and writes only the clip store and the run directory, so a stage can be
re-run on its own and a re-run of the demo reuses what is already there (the fleet's
clips have content ids, labels are skipped when present, dataset versions are immutable).
Defaults fit the whole job in about 10 minutes on a 2-core laptop.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.console import Console

from opendojo import code_version
from opendojo.atomic import write_json as _write_json
from opendojo.runs import ChainSettings

console = Console(stderr=True)


class DemoConfig(ChainSettings):
    run_dir: str = "runs/demo"
    clips: int = Field(120, ge=10)
    train_steps: int = Field(3200, ge=1)
    keep_drivers: float = Field(0.6, gt=0, le=1,
                                description="train on the clips of this best share of drivers "
                                            "(driver quality from telemetry and video)")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    control: Literal["trajectory", "controls"] = "trajectory"
    rollouts: int = Field(4, ge=0)
    sample_gifs: int = Field(6, ge=0)


class _Stages:
    """Times each stage and prints a header for it."""

    def __init__(self, total: int):
        self.total, self.i, self.times = total, 0, {}

    def __call__(self, name: str):
        stages = self

        class _Ctx:
            def __enter__(self):
                stages.i += 1
                console.rule(f"[bold]stage {stages.i}/{stages.total}: {name}")
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                stages.times[name] = round(time.perf_counter() - self.t0, 1)
                if exc[0] is None:
                    console.print(f"[green]✓[/] {name} in {stages.times[name]:.0f} s")

        return _Ctx()


def run_demo(cfg: DemoConfig) -> Path:
    from opendojo.clips.store import ClipStore
    from opendojo.fleet.config import FleetConfig
    from opendojo.fleet.generate import generate
    from opendojo.fleet.stats import fleet_stats
    from opendojo.label.hindsight import label_store
    from opendojo.report.build import build_report
    from opendojo.train.dataset import create_dataset, list_datasets

    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    stage = _Stages(8)
    meta = {"name": run.name, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": code_version(), "config": cfg.model_dump(), "stages": stage.times}

    with stage("fleet: drive, film and store clips"):
        summary = generate(cfg.store_url, FleetConfig(clips=cfg.clips, workers=cfg.workers, seed=cfg.seed))
        store = ClipStore(cfg.store_url)
        stats = fleet_stats(store)
        _write_json(run / "fleet_stats.json", stats)
        from opendojo.fleet.cli import print_stats

        print_stats(stats)
        console.print(f"{summary['generated']} clips, {summary['frames']} frames at "
                      f"{summary['frames_per_s']:.0f} frames/s")

    with stage("label: hindsight labels from each clip's own future"):
        res = label_store(store)
        console.print(f"{res['labelled']} clips labelled ({res['skipped']} already), "
                      f"{res['valid']} of {res['frames']} frames with a full horizon")

    with stage("select: good drivers' clips (driver quality from telemetry and video)"):
        name = f"demo-s{cfg.seed}-n{cfg.clips}-q{cfg.keep_drivers:g}"
        if name not in list_datasets(store):
            create_dataset(store, name, clip_ids=_good_drivers_clips(store, cfg.keep_drivers),
                           holdout=0.2, seed=cfg.seed)

    with stage("train: the end-to-end video policy"):
        train_summary = _train(cfg, store, name, run / "train")

    with stage("open-loop evaluation on held-out clips"):
        _write_json(run / "open_loop.json", _open_loop(store, name, run / "train"))

    with stage("closed-loop evaluation: network vs expert vs fleet"):
        from opendojo.evaluate.closed_loop import print_summary

        closed = _closed_loop(cfg, store, run)
        _write_json(run / "closed_loop.json", closed)
        print_summary(closed["summary"])

    with stage("rollout videos and sample clips"):
        _media(cfg, store, run)

    with stage("report"):
        _write_json(run / "run.json", meta)
        report = build_report(run)
    meta["train"] = train_summary
    _write_json(run / "run.json", meta)
    build_report(run)
    console.print(f"[bold green]demo done[/] in {sum(stage.times.values()):.0f} s: open {report}")
    return report


def _good_drivers_clips(store, keep: float) -> list[str]:
    """Run the triggers and driver quality, then keep the good drivers' collision-free clips."""
    from opendojo.engine.quality import good_drivers_clips, run_quality, write_driver_quality
    from opendojo.engine.triggers import run_triggers

    run_triggers(store)
    run_quality(store)
    write_driver_quality(store)
    ids, n = good_drivers_clips(store, keep)
    console.print(f"{n['drivers_kept']} of {n['drivers']} drivers kept; {len(ids)} of "
                  f"{n['pool_clips']} clips (collision-free clips of those drivers)")
    return ids


def _train(cfg: DemoConfig, store, dataset: str, train_dir: Path) -> dict:
    from opendojo.errors import CheckpointError, ConfigError
    from opendojo.train.config import TrainConfig
    from opendojo.train.trainer import train

    tc = TrainConfig(store=store.url, dataset=dataset, steps=cfg.train_steps,
                     batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                     checkpoint_every=max(100, cfg.train_steps // 4), **cfg.network())
    try:
        _check_same_training(tc, train_dir)
        if (train_dir / "checkpoints" / f"step-{cfg.train_steps}.safetensors").exists():
            return _finished_run(tc, train_dir)
        resume = (train_dir / "checkpoints").is_dir()
        return train(tc, train_dir, resume=resume, progress=True)
    except CheckpointError as e:   # e.g. a run of the blind network the demo trained before
        raise ConfigError(f"{e}: a run of another demo config; use another --run-dir, or move "
                          f"{train_dir} aside to train afresh") from None


def _check_same_training(tc, train_dir: Path) -> None:
    """Refuse a run in `train_dir` trained with other settings than `tc` (its network, seed,
    pasted things, mirrored samples, ...): going on with it, or resuming it, would report
    another network than this demo config trains. Its dataset is checked by
    `_finished_run`, its length may differ (resumed to `tc.steps`)."""
    from opendojo.errors import ConfigError
    from opendojo.train.trainer import RUNTIME_SETTINGS, saved_config

    if not (train_dir / "config.json").exists():
        return
    skip = {"steps", "checkpoint_every", "store", "dataset", *RUNTIME_SETTINGS}

    def settings(c) -> dict:   # the model's fields beside the training's, in one mapping
        d = c.model_dump(exclude=skip)
        return {**d.pop("model"), **d}

    then, now = settings(saved_config(train_dir)), settings(tc)
    diff = [f"{k}={then[k]!r} not {now[k]!r}" for k in now if then[k] != now[k]]
    if diff:
        raise ConfigError(f"{train_dir} was trained with {', '.join(diff)}: a run of another "
                          "demo config; use another --run-dir, or move it aside to train afresh")


def _finished_run(tc, train_dir: Path) -> dict:
    """`dojo demo` again on a finished run: go on with its network, after checking that it
    was trained on this dataset and model config (as a resume checks); the same summary as
    `train` returns."""
    from opendojo.errors import ConfigError
    from opendojo.train.trainer import prepare_run_dir, run_summary

    saved = prepare_run_dir(tc, train_dir, resume=True)
    if saved.dataset != tc.dataset:
        raise ConfigError(f"{train_dir} was trained on dataset {saved.dataset!r}, not {tc.dataset!r} "
                          "(use another --run-dir)")
    last = json.loads((train_dir / "metrics.jsonl").read_text().splitlines()[-1])
    console.print(f"{train_dir} is already trained for {tc.steps} steps: using its network")
    return run_summary(last, train_dir, tc.steps)


def _open_loop(store, dataset: str, train_dir: Path) -> dict:
    from opendojo.evaluate.open_loop import evaluate_open_loop
    from opendojo.train.dataset import load_dataset

    res = evaluate_open_loop(train_dir, store, load_dataset(store, dataset).clips("heldout"))
    p, cv = res["policy"], res["constant_velocity"]
    console.print(f"held-out ADE {p['ade']:.2f} m (constant velocity {cv['ade']:.2f} m), "
                  f"FDE {p['fde']:.2f} m ({cv['fde']:.2f} m) over {res['samples']} samples")
    return {"columns": ["ade_m", "fde_m", "accel_mae", "steering_mae"],
            "rows": {"network": {"ade_m": p["ade"], "fde_m": p["fde"], "accel_mae": p["accel_mae"],
                                 "steering_mae": p["steering_mae"]},
                     "constant velocity": {"ade_m": cv["ade"], "fde_m": cv["fde"],
                                           "accel_mae": "–", "steering_mae": "–"}},
            "raw": res}


def _closed_loop(cfg: DemoConfig, store, run: Path) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from opendojo.evaluate.closed_loop import evaluate_suite

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("episodes", total=None)
        return evaluate_suite(run / "train", store, cfg.episodes_per_item, cfg.workers,
                              cfg.episode_s, cfg.control,
                              progress=lambda i, n: bar.update(task, completed=i, total=n))


def _media(cfg: DemoConfig, store, run: Path) -> None:
    from opendojo.clips.gif import write_gif
    from opendojo.evaluate.closed_loop import NetworkDriver, SuiteItem, load_network, run_episode
    from opendojo.evaluate.rollouts import save_rollout_gif
    from opendojo.fleet.camera import Camera

    captions = {}
    closed = json.loads((run / "closed_loop.json").read_text())
    net_eps = [e for e in closed["episodes"] if e["driver"] == "network"]
    # Show a spread: the best and worst episodes and a rare event or two.
    picks = sorted(net_eps, key=lambda e: e["score"])
    chosen = []
    for e in [picks[-1], picks[0]] + [e for e in picks if e["rare_event"]][:2] + picks[len(picks) // 2:]:
        if e not in chosen and len(chosen) < cfg.rollouts:
            chosen.append(e)
    model = load_network(closed["checkpoint"])
    camera = Camera()
    for e in chosen:
        item = SuiteItem(e["scenario"], e["rare_event"], e["seed"])
        ep, rec = run_episode(NetworkDriver(model, cfg.control), "network", item,
                              cfg.episode_s, camera=camera, record=True)
        name = f"{e['scenario']}-{e['rare_event'] or 'plain'}-{e['seed']}.gif"
        save_rollout_gif(rec["frames"], rec["predictions"], camera, run / "assets" / "rollouts" / name,
                         paths=rec["paths"])
        captions[name] = (f"{e['scenario']}{' + ' + e['rare_event'] if e['rare_event'] else ''}: "
                          f"score {ep.score:.2f}{', collision (' + ep.collision + ')' if ep.collision else ''}")
    rows = store.catalog().sort_by("clip_id").to_pylist()
    seen = set()
    for r in rows:
        if r["scenario"] in seen or len(seen) >= cfg.sample_gifs:
            continue
        seen.add(r["scenario"])
        name = f"{r['scenario']}-{r['clip_id']}.gif"
        frames = store.read_frames(r["clip_id"], row=r)[:60]
        write_gif(frames, run / "assets" / "clips" / name, fps=r["fps"])
        captions[name] = f"{r['scenario']} ({r['route']}), {r['driver_id']}"
    _write_json(run / "assets" / "captions.json", captions)
