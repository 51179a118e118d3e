"""`dojo eval`: open loop (trajectory error on held-out clips); closed loop comes separately."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from opendojo.atomic import write_json


def eval_cmd(
    open_loop: bool = typer.Option(False, "--open-loop", help="trajectory / control error on held-out clips"),
    closed_loop: bool = typer.Option(False, "--closed-loop", help="drive in the simulator"),
    checkpoint: str = typer.Option(..., "--checkpoint", help="checkpoint file or run directory"),
    store: str = typer.Option(None, "--store", help="clip store (default: the run's)"),
    dataset: str = typer.Option(None, "--dataset", help="dataset version (default: the run's)"),
    split: str = typer.Option("heldout", "--split"),
    out: Path = typer.Option(None, "--out", help="JSON file for the result (default: beside the checkpoint)"),
    episodes: int = typer.Option(2, "--episodes", help="closed loop: episodes per scenario and rare event"),
    workers: int = typer.Option(2, "--workers", help="closed loop: worker processes"),
    duration: float = typer.Option(15.0, "--duration", help="closed loop: seconds per episode"),
    control: str = typer.Option("trajectory", "--control",
                                help="closed loop: follow the predicted 'trajectory' or apply the 'controls' head"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines",
                                   help="closed loop: also drive the expert and every human profile"),
    validation: bool = typer.Option(False, "--validation",
                                    help="closed loop: the validation suite (same items, other held-out "
                                         "seeds), to tune on without touching the test suite"),
) -> None:
    """Evaluate a trained policy: open loop on held-out clips, or closed loop in the simulator."""
    from opendojo.errors import ConfigError

    if open_loop == closed_loop:
        raise ConfigError("choose one of --open-loop or --closed-loop")
    if closed_loop:
        _closed_loop(checkpoint, store, out, episodes, workers, duration, control, baselines,
                     "validation" if validation else "test")
        return

    from rich.progress import Progress

    from opendojo.clips.store import ClipStore
    from opendojo.evaluate.open_loop import evaluate_open_loop
    from opendojo.train.checkpoint import read_meta, resolve
    from opendojo.train.dataset import load_dataset

    ckpt = resolve(checkpoint)
    train_cfg = read_meta(ckpt).get("train") or {}
    store = store or train_cfg.get("store")
    dataset = dataset or train_cfg.get("dataset")
    if not store or not dataset:
        raise ConfigError("the checkpoint does not name its store and dataset: pass --store and --dataset")
    cs = ClipStore(store)
    clips = load_dataset(cs, dataset).clips(split)
    if split == train_cfg.get("split") and dataset == train_cfg.get("dataset"):
        raise ConfigError(f"split {split!r} is the one the checkpoint was trained on; evaluate on held-out clips")
    with Progress(transient=True) as bar:
        task = bar.add_task("open-loop eval", total=len(clips))
        result = evaluate_open_loop(ckpt, cs, clips, progress=lambda: bar.advance(task))
    result.update({"dataset": dataset, "split": split})
    out = write_json(out or ckpt.with_name(ckpt.stem + f".eval-{dataset}-{split}.json"), result)
    print(json.dumps(result))


def _closed_loop(checkpoint, store, out, episodes, workers, duration, control, baselines,
                 suite_name) -> None:
    from rich.console import Console
    from rich.progress import Progress

    from opendojo.clips.store import ClipStore
    from opendojo.evaluate.closed_loop import check_suite_args, evaluate_suite, print_summary
    from opendojo.train.checkpoint import read_meta, resolve

    check_suite_args(episodes, workers, duration)   # evaluate_suite checks too; this is before any output
    ckpt = resolve(checkpoint)
    store = store or (read_meta(ckpt).get("train") or {}).get("store")
    cs = ClipStore(store) if store else None   # to check the suite's seeds are held out
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("closed-loop episodes", total=None)
        result = evaluate_suite(ckpt, cs, episodes, workers, duration, control, baselines,
                                progress=lambda i, n: bar.update(task, completed=i, total=n),
                                suite_name=suite_name)
    print_summary(result["summary"], suite_name)
    suffix = ".closed-loop.json" if suite_name == "test" else f".closed-loop-{suite_name}.json"
    out = write_json(out or ckpt.with_name(ckpt.stem + suffix), result)
    print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
