"""`dojo train`, `dojo model info`, `dojo export`, `dojo dataset create|list|show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer

dataset_app = typer.Typer(help="Dataset versions: named sets of clip ids, split by clip.",
                          no_args_is_help=True)
model_app = typer.Typer(help="The policy network.", no_args_is_help=True)


@dataset_app.command("create")
def dataset_create(
    name: str = typer.Argument(..., help="the new version's name"),
    store: str = typer.Option(..., "--store"),
    filter: str = typer.Option(None, "--filter", help="SQL predicate on the catalog"),
    holdout: float = typer.Option(0.2, "--holdout", help="fraction of clips held out"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Make an immutable dataset version from the catalog, split by clip into train / heldout."""
    from opendojo.clips.store import ClipStore
    from opendojo.train.dataset import create_dataset

    v = create_dataset(ClipStore(store), name, filter=filter, holdout=holdout, seed=seed)
    print(json.dumps({"name": v.name, **{k: len(ids) for k, ids in v.splits.items()}}))


@dataset_app.command("list")
def dataset_list(store: str = typer.Option(..., "--store")) -> None:
    from opendojo.clips.store import ClipStore
    from opendojo.train.dataset import list_datasets

    for n in list_datasets(ClipStore(store)):
        print(n)


@dataset_app.command("show")
def dataset_show(name: str, store: str = typer.Option(..., "--store")) -> None:
    from dataclasses import asdict

    from opendojo.clips.store import ClipStore
    from opendojo.train.dataset import load_dataset

    print(json.dumps(asdict(load_dataset(ClipStore(store), name)), indent=1))


def _model_overrides(frames, image_size, width, stages, hidden) -> dict | None:
    m = {k: v for k, v in dict(frames=frames, image_size=image_size, width=width, stages=stages,
                                hidden=hidden).items() if v is not None}
    return m or None


def _available_procs() -> tuple[int, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count(), "GPUs"
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1), "CPU cores"


def train_cmd(
    store: str = typer.Option(None, "--store"),
    dataset: str = typer.Option(None, "--dataset", help="dataset version name"),
    run_dir: Path = typer.Option(Path("runs/train"), "--run-dir"),
    config: Path = typer.Option(None, "--config", help="TOML file with a \\[train] table"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run-dir from its last checkpoint"),
    steps: int = typer.Option(None, "--steps"),
    batch_size: int = typer.Option(None, "--batch-size", help="global batch size"),
    lr: float = typer.Option(None, "--lr"),
    precision: str = typer.Option(None, "--precision", help="float32 | bf16 | cfloat8 | cfloat16"),
    seed: int = typer.Option(None, "--seed"),
    workers: int = typer.Option(None, "--workers", help="loader worker processes per rank"),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every"),
    log_every: int = typer.Option(None, "--log-every"),
    init_from: str = typer.Option(None, "--init-from", help="start from this checkpoint's weights"),
    frames: int = typer.Option(None, "--frames"),
    image_size: int = typer.Option(None, "--image-size"),
    width: int = typer.Option(None, "--width"),
    stages: int = typer.Option(None, "--stages"),
    hidden: int = typer.Option(None, "--hidden"),
    nproc: int = typer.Option(1, "--nproc", help="data-parallel processes (launches torchrun)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train the video policy on a dataset version's hindsight labels."""
    from opendojo.config import load_config
    from opendojo.errors import ConfigError
    from opendojo.train.config import TrainConfig

    src = config
    if resume and src is None and (run_dir / "config.toml").exists():
        src = run_dir / "config.toml"
    overrides = dict(store=store, dataset=dataset, steps=steps, batch_size=batch_size, lr=lr,
                     precision=precision, seed=seed, workers=workers,
                     checkpoint_every=checkpoint_every, log_every=log_every, init_from=init_from)
    cfg = load_config(TrainConfig, src, section="train", **overrides)
    model = _model_overrides(frames, image_size, width, stages, hidden)
    if model:
        cfg = load_config(TrainConfig, None, **{**cfg.model_dump(), "model": {**cfg.model.model_dump(), **model}})

    if nproc < 1:
        raise ConfigError("--nproc must be >= 1")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        have, what = _available_procs()
        if nproc > have:
            raise ConfigError(f"--nproc {nproc} is more than this machine's {have} {what}")
        _launch_torchrun(cfg, run_dir, resume, nproc, progress)
        return

    from opendojo.train.trainer import train

    result = train(cfg, run_dir, resume=resume, progress=progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))


def _launch_torchrun(cfg, run_dir: Path, resume: bool, nproc: int, progress: bool) -> None:
    """Check everything that can be checked here, then run the same training under torchrun."""
    from opendojo.errors import DojoError
    from opendojo.train.config import to_toml
    from opendojo.train.trainer import make_loader, prepare_run_dir

    cfg = prepare_run_dir(cfg, run_dir, resume)
    make_loader(cfg, 0, nproc)                    # dataset, labels, batch split: fail here, not in N ranks
    run_dir.mkdir(parents=True, exist_ok=True)
    launch_cfg = run_dir / ".launch-config.toml"
    launch_cfg.write_text(to_toml(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "opendojo.cli", "train", "--config", str(launch_cfg), "--run-dir", str(run_dir),
           "--progress" if progress else "--no-progress"] + (["--resume"] if resume else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    rc = subprocess.run(cmd, env=env).returncode
    if rc != 0:
        raise DojoError(f"torchrun exited with code {rc}")


@model_app.command("info")
def model_info(
    config: Path = typer.Option(None, "--config", help="TOML file with a \\[train] table"),
    checkpoint: str = typer.Option(None, "--checkpoint", help="describe this checkpoint's model"),
    frames: int = typer.Option(None, "--frames"),
    image_size: int = typer.Option(None, "--image-size"),
    width: int = typer.Option(None, "--width"),
    stages: int = typer.Option(None, "--stages"),
    hidden: int = typer.Option(None, "--hidden"),
) -> None:
    """Print the policy's parameters and FLOPs per sample."""
    from opendojo.config import load_config
    from opendojo.train.config import TrainConfig
    from opendojo.train.info import describe
    from opendojo.train.model import PolicyConfig

    if checkpoint:
        from opendojo.train.checkpoint import read_meta

        pc = PolicyConfig.from_dict(read_meta(checkpoint)["model"])
    else:
        cfg = load_config(TrainConfig, config, section="train")
        model = {**cfg.model.model_dump(), **(_model_overrides(frames, image_size, width, stages, hidden) or {})}
        pc = load_config(TrainConfig, None, model=model).policy_config()
    print(json.dumps(describe(pc), indent=1))


def export_cmd(
    checkpoint: str = typer.Option(..., "--checkpoint", help="checkpoint file or run directory"),
    out: Path = typer.Option(..., "--out", help="ONNX file to write"),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="max |onnxruntime - torch| allowed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Export the policy as ONNX and check onnxruntime against PyTorch."""
    from opendojo.train.export import export_onnx

    print(json.dumps(export_onnx(checkpoint, out, tolerance=tolerance, overwrite=overwrite)))


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("export")(export_cmd)
    app.add_typer(dataset_app, name="dataset")
    app.add_typer(model_app, name="model")
