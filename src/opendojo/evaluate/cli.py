"""`dojo eval`: open loop (trajectory error on held-out clips); closed loop comes separately."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer


def eval_cmd(
    open_loop: bool = typer.Option(False, "--open-loop", help="trajectory / control error on held-out clips"),
    closed_loop: bool = typer.Option(False, "--closed-loop", help="drive in the simulator"),
    checkpoint: str = typer.Option(..., "--checkpoint", help="checkpoint file or run directory"),
    store: str = typer.Option(None, "--store", help="clip store (default: the run's)"),
    dataset: str = typer.Option(None, "--dataset", help="dataset version (default: the run's)"),
    split: str = typer.Option("heldout", "--split"),
    out: Path = typer.Option(None, "--out", help="JSON file for the result (default: beside the checkpoint)"),
) -> None:
    """Evaluate a trained policy."""
    from opendojo.errors import ConfigError, DojoError

    if open_loop == closed_loop:
        raise ConfigError("choose one of --open-loop or --closed-loop")
    if closed_loop:
        raise DojoError("closed-loop evaluation is not built into `dojo eval` yet")

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
    out = out or ckpt.with_name(ckpt.stem + f".eval-{dataset}-{split}.json")
    tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    print(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
