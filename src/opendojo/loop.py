"""`dojo loop --rounds N`: the flywheel, round after round.

Round 1 trains on a budgeted selection of the first fleet's clips. Each later round:

1. deploy: the current network drives the simulated fleet (rare events at
   `deploy_rare_event_rate`) with a safety driver (the expert) who takes over when it
   gets unsafe; takeover clips are uploaded. It also runs
   in shadow mode beside human drivers; clips where it disagrees are uploaded.
2. collect: the fleet keeps driving (a fresh fleet seed) and its clips arrive too.
3. engine: triggers, driver quality, embeddings (the current network's encoder), and
   offline shadow disagreement over the new clips.
4. select: a budgeted curation over everything in the store -> a new dataset version.
5. label and retrain. By default each round trains a fresh network for the steps the
   chain of rounds so far adds up to (`steps_first + (k - 1) * steps_per_round`); with
   `warm_start` it goes on from the previous round's weights for `steps_per_round`
   steps instead (cheaper, but measured worse: docs/engine.md, the flywheel).
6. evaluate closed loop on the same held-out suite every round, and against round 1's
   network on the same episodes (`vs_round_1`: the paired difference and its 95% CI).

Everything goes through the store and the run directory (`RUN_DIR/round-K/...`,
`RUN_DIR/loop.json`), so a stopped loop resumes at the first unfinished round.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import Field, field_validator
from rich.console import Console

from opendojo.atomic import write_json as _write_json
from opendojo.fleet.config import RARE_EVENT_RATE
from opendojo.runs import (
    DEMO_RUN_FILES, LOOP_RUN_FILES, TRAIN_RUN_FILES, ChainSettings, found,
)

console = Console(stderr=True)


class LoopConfig(ChainSettings):
    run_dir: str = "runs/loop"
    rounds: int = Field(3, ge=1)
    clips_first: int = Field(120, ge=10, description="fleet clips before round 1")
    clips_per_round: int = Field(60, ge=0, description="new fleet clips each later round")
    takeover_episodes: int = Field(10, ge=0, description="safety-driver episodes per round")
    shadow_episodes: int = Field(5, ge=0, description="online shadow episodes per round")
    deploy_rare_event_rate: float = Field(RARE_EVENT_RATE, ge=0.0, le=1.0,
                                          description="share of deployed episodes with a rare event")
    budget: str = Field("40%", description="share of the pool's frames each round trains on")
    drop_worst: float = Field(0.0, ge=0, lt=1, description="share of the pool, its worst drivers' "
                                                          "clips, no round trains on")
    steps_first: int = Field(800, ge=1, description="training steps of round 1")
    steps_per_round: int = Field(400, ge=1, description="steps each later round adds")
    warm_start: bool = Field(False, description="later rounds go on from the previous round's "
                                                "weights for steps_per_round steps, instead of "
                                                "training afresh")

    @field_validator("budget")
    @classmethod
    def _budget_parses(cls, budget: str) -> str:
        """Checked when the config is made, not after the first fleet is driven."""
        from opendojo.engine.curate import parse_budget
        from opendojo.errors import DojoError

        try:
            parse_budget(budget)
        except DojoError as e:
            raise ValueError(str(e)) from None
        return budget


# What a resumed loop may change: how many rounds, and how many processes drive them.
RESUMABLE = ("rounds", "workers")
# What a loop started before a setting existed ran with, for a loop.json that lacks it:
# before e727586 the rounds trained the blind network, before 627ad0c no path head,
# before `mirror` came in (2026-11-23) none of their samples was mirrored, and before
# `ema_decay` (2026-11-23, later) no weights were averaged. Such a loop resumes as it ran
# (or is refused with the new defaults).
BEFORE_SETTING = {"object_channel": False, "path_head": False, "mirror": False, "ema_decay": 0.0}


def _saved_state(path: Path, cfg: LoopConfig) -> dict:
    """A stopped loop's state (`loop.json`), to resume with the config it was started with:
    refused in one line if unreadable, or if `cfg` differs from it in more than RESUMABLE."""
    from opendojo.errors import ConfigError

    try:
        state = json.loads(path.read_text())
        saved, rounds = state["config"], state["rounds"]
        if not isinstance(saved, dict) or not isinstance(rounds, list):
            raise TypeError("config or rounds of the wrong type")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a loop state this version can resume "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    saved = {**BEFORE_SETTING, **saved}
    now = cfg.model_dump()
    changed = [k for k in now if k not in (*RESUMABLE, "run_dir") and k in saved and saved[k] != now[k]]
    if changed:
        raise ConfigError(f"{path.parent}: resuming the loop started with " + ", ".join(
            f"{k}={saved[k]!r}" for k in changed) + " (not " + ", ".join(f"{now[k]!r}" for k in changed)
            + "); use another --run-dir to change it")
    return state


OTHER_RUNS = {"dojo train": TRAIN_RUN_FILES, "dojo demo": DEMO_RUN_FILES}


def _refuse_other_run(run: Path) -> None:
    """A `dojo train` or `dojo demo` run directory is no place for a loop: the loop would
    take over a demo's store (its clips, labels and datasets), and write its store, rounds
    and loop.json in among the other run's files."""
    from opendojo.errors import ConfigError

    if found(run, LOOP_RUN_FILES):
        return
    for command, marks in OTHER_RUNS.items():
        theirs = found(run, marks)
        if theirs:
            raise ConfigError(f"{run}: a `{command}` run directory ({', '.join(theirs)}); "
                              f"give the loop a --run-dir of its own")


def run_loop(cfg: LoopConfig) -> dict:
    from opendojo import code_version
    from opendojo.clips.store import ClipStore
    from opendojo.fleet.config import FleetConfig
    from opendojo.fleet.generate import generate

    run = Path(cfg.run_dir)
    _refuse_other_run(run)
    state_path = run / "loop.json"
    state = _saved_state(state_path, cfg) if state_path.exists() else \
        {"config": cfg.model_dump(), "rounds": []}
    done = len(state["rounds"])
    if done:
        console.print(f"resuming after round {done}")
    generate(cfg.store_url, FleetConfig(clips=cfg.clips_first, workers=cfg.workers, seed=cfg.seed),
             progress=True)
    store = ClipStore(cfg.store_url)
    previous = state["rounds"][-1]["checkpoint"] if done else None
    baselines = state.get("baselines")
    for k in range(done + 1, cfg.rounds + 1):
        console.rule(f"[bold]flywheel round {k}/{cfg.rounds}")
        t0 = time.perf_counter()
        rdir = run / f"round-{k}"
        info: dict = {"round": k, "code_version": code_version()}
        if previous is not None:
            info["deploy"] = _deploy(cfg, store, previous, k)
            # the same fleet (drivers keep their ids and ways) drives a new batch of clips
            generate(cfg.store_url, FleetConfig(clips=cfg.clips_per_round, workers=cfg.workers,
                                                seed=cfg.seed, batch=k - 1), progress=True)
        info.update(_engine(store, previous))
        info["dataset"], info["selection"] = _select(cfg, store, k)
        steps, init_from = round_training(cfg, k, previous)
        info["train"] = _train(cfg, store, info["dataset"], rdir / "train", init_from, steps)
        previous = info["checkpoint"] = info["train"]["checkpoint"]
        closed = _evaluate(cfg, store, previous, with_baselines=baselines is None)
        if baselines is None:
            baselines = state["baselines"] = {d: s for d, s in closed["summary"].items() if d != "network"}
        info["closed_loop"] = closed["summary"]["network"]
        _write_json(rdir / "closed_loop.json", closed)
        if k > 1:
            info["vs_round_1"] = vs_round_1(run, closed)
        info["seconds"] = round(time.perf_counter() - t0, 1)
        state["rounds"].append(info)
        _write_json(state_path, state)
        s = info["closed_loop"]
        console.print(f"round {k}: driving score {s['score']:.3f} "
                      f"({s['score_ci'][0]:.3f}-{s['score_ci'][1]:.3f}), "
                      f"{s['collisions_per_km']:.2f} collisions/km, trained on "
                      f"{info['selection']['clips']} clips, in {info['seconds']:.0f} s")
        if "vs_round_1" in info:
            d = info["vs_round_1"]
            console.print(f"round {k} - round 1 on the same {d['pairs']} episodes: {d['mean']:+.3f} "
                          f"(95% CI {d['ci'][0]:+.3f} to {d['ci'][1]:+.3f})")
    from opendojo.report.build import build_report

    _write_json(run / "run.json", run_meta(run.name, cfg, state["rounds"]))
    console.print(f"report: {build_report(run)}")
    return state


def run_meta(name: str, cfg: LoopConfig, rounds: list[dict]) -> dict:
    """run.json of a flywheel: its config, round timings, and the code each round ran
    (a resumed loop may span several versions: all are listed, oldest first)."""
    versions = list(dict.fromkeys(r.get("code_version", "unknown") for r in rounds))
    return {"name": name, "config": cfg.model_dump(), "code_version": ", ".join(versions),
            "stages": {f"round {r['round']}": r["seconds"] for r in rounds}}


def vs_round_1(run: Path, closed: dict) -> dict:
    """This round's network minus round 1's, paired on the suite's seeds."""
    from opendojo.evaluate.scoring import paired_difference

    first = json.loads((run / "round-1" / "closed_loop.json").read_text())
    net = [e for e in closed["episodes"] if e["driver"] == "network"]
    return paired_difference(net, [e for e in first["episodes"] if e["driver"] == "network"])


def round_training(cfg: LoopConfig, k: int, previous: str | None) -> tuple[int, str | None]:
    """Round k's training: (steps, checkpoint to start from or None for a fresh network)."""
    if k == 1:
        return cfg.steps_first, None
    if cfg.warm_start:
        return cfg.steps_per_round, previous
    return cfg.steps_first + (k - 1) * cfg.steps_per_round, None


def _deploy(cfg: LoopConfig, store, checkpoint: str, k: int) -> dict:
    from opendojo.engine.disengage import fleet_drive

    out = {}
    if cfg.takeover_episodes:
        out["safety"] = fleet_drive(store, checkpoint, mode="safety", episodes=cfg.takeover_episodes,
                                    seed=1000 * k, duration_s=cfg.episode_s,
                                    rare_event_rate=cfg.deploy_rare_event_rate)
    if cfg.shadow_episodes:
        out["shadow"] = fleet_drive(store, checkpoint, mode="shadow", episodes=cfg.shadow_episodes,
                                    seed=1000 * k + 500, profile="aggressive", duration_s=cfg.episode_s,
                                    rare_event_rate=cfg.deploy_rare_event_rate)
    console.print(f"deployed: {json.dumps({m: {x: v for x, v in s.items() if isinstance(v, (int, float))} for m, s in out.items()})}")
    return out


def _engine(store, checkpoint: str | None) -> dict:
    from opendojo.engine.embeddings import run_embed
    from opendojo.engine.quality import run_quality, write_driver_quality
    from opendojo.engine.shadow import run_shadow
    from opendojo.engine.triggers import run_triggers
    from opendojo.label.hindsight import label_store

    t = run_triggers(store)
    q = run_quality(store)
    write_driver_quality(store)
    e = run_embed(store, checkpoint)
    s = run_shadow(store, checkpoint) if checkpoint else None
    lab = label_store(store)
    return {"engine": {"triggered": t.num_rows, "quality": q.num_rows, "embedded": e.num_rows,
                       "shadowed": 0 if s is None else s.num_rows, "labelled": lab["labelled"]}}


def _select(cfg: LoopConfig, store, k: int) -> tuple[str, dict]:
    from opendojo.engine.curate import curate, parse_budget
    from opendojo.engine.select import SelectionConfig
    from opendojo.train.dataset import list_datasets, load_dataset

    name = f"loop-s{cfg.seed}-r{k}"
    if name not in list_datasets(store):
        sel = curate(store, name, SelectionConfig(budget=parse_budget(cfg.budget), seed=cfg.seed + k,
                                                  drop_worst=cfg.drop_worst))
        stats = {"clips": len(sel.clip_ids), "frames": sel.frames, "pool_frames": sel.total_frames}
    else:
        ds = load_dataset(store, name)
        stats = {"clips": sum(len(v) for v in ds.splits.values())}
    return name, stats


def _train(cfg: LoopConfig, store, dataset: str, train_dir: Path, init_from: str | None, steps: int) -> dict:
    from opendojo.train.config import TrainConfig
    from opendojo.train.trainer import train

    tc = TrainConfig(store=store.url, dataset=dataset, steps=steps, seed=cfg.seed,
                     checkpoint_every=max(100, steps // 2), init_from=init_from or "",
                     **cfg.network())
    return train(tc, train_dir, resume=(train_dir / "checkpoints").is_dir(), progress=True)


def _evaluate(cfg: LoopConfig, store, checkpoint: str, with_baselines: bool) -> dict:
    from rich.progress import Progress

    from opendojo.evaluate.closed_loop import evaluate_suite, print_summary

    with Progress(transient=True, console=console) as bar:
        task = bar.add_task("closed loop", total=None)
        closed = evaluate_suite(checkpoint, store, cfg.episodes_per_item, cfg.workers, cfg.episode_s,
                                baselines=with_baselines,
                                progress=lambda i, n: bar.update(task, completed=i, total=n))
    print_summary(closed["summary"])
    return closed
