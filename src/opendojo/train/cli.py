"""`dojo train`, `dojo model info`, `dojo export`, `dojo dataset create|list|show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer

from opendojo.cliflags import at_least
from opendojo.clips import absolute_store, store_option
from opendojo.train.config import ModelSettings, TrainConfig

dataset_app = typer.Typer(help="Dataset versions: named sets of clip ids, split by clip.",
                          no_args_is_help=True)
model_app = typer.Typer(help="The policy network.", no_args_is_help=True)


@dataset_app.command("create")
def dataset_create(
    name: str = typer.Argument(..., help="the new version's name"),
    store: str = store_option(),
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
def dataset_list(store: str = store_option()) -> None:
    """List the store's dataset versions, one name a line."""
    from opendojo.clips.store import ClipStore
    from opendojo.train.dataset import list_datasets

    for n in list_datasets(ClipStore(store)):
        print(n)


@dataset_app.command("show")
def dataset_show(name: str = typer.Argument(..., help="the version's name (see `dojo dataset list`)"),
                 store: str = store_option()) -> None:
    """Print a dataset version as JSON: its filter, seed, holdout and clip ids per split."""
    from dataclasses import asdict

    from opendojo.clips.store import ClipStore
    from opendojo.train.dataset import load_dataset

    print(json.dumps(asdict(load_dataset(ClipStore(store), name)), indent=1))


def _default(name: str) -> str:
    """TrainConfig's default for a flag whose own default is None ("not given"), for --help:
    read from the model, so it cannot drift from the config."""
    cls, _, field = name.rpartition(".")
    f = (ModelSettings if cls == "model" else TrainConfig).model_fields[field]
    return f"{f.default:g}" if isinstance(f.default, float) else str(f.default)


def _flag(field: str, help: str | None = None):
    """The flag of a TrainConfig field (`model.` for ModelSettings'): None when not given,
    so the --config file's value stands; --help shows the config's default."""
    flag = "--" + field.rpartition(".")[2].replace("_", "-")
    return typer.Option(None, flag, help=help, show_default=_default(field))


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` (rather than it taking its default)."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


def _train_config(config: Path | None, flags: dict, model_flags: dict | None) -> TrainConfig:
    """Defaults, then the --config file's [train] table, then the flags given (None: not
    given). The result's `model_fields_set` (nested) is what the user set."""
    from opendojo.config import load_config

    cfg = load_config(TrainConfig, config, section="train", **flags)
    if model_flags:
        given = cfg.model_dump(exclude_unset=True)
        cfg = load_config(TrainConfig, None, **{**given, "model": {**given.get("model", {}), **model_flags}})
    return cfg


def _resume_config(cfg: TrainConfig, run_dir: Path) -> TrainConfig:
    """The saved run's config with what the user set (`cfg`'s explicitly set values) on top;
    refused if that changes anything but --steps or a runtime setting (RUNTIME_SETTINGS)."""
    from opendojo.config import load_config
    from opendojo.errors import ConfigError
    from opendojo.train.trainer import RUNTIME_SETTINGS, saved_config

    saved = saved_config(run_dir)
    # a run from before stores were saved absolute: its relative store is the one given here
    saved = saved.model_copy(update={"store": absolute_store(saved.store)})
    given = cfg.model_dump(exclude_unset=True)
    merged = load_config(TrainConfig, None, **{**saved.model_dump(), **given,
                                               "model": {**saved.model.model_dump(), **given.get("model", {})}})
    changed = [(k, getattr(merged, k), getattr(saved, k)) for k in TrainConfig.model_fields
               if k not in ("steps", "model", *RUNTIME_SETTINGS) and getattr(merged, k) != getattr(saved, k)]
    changed += [(f"model.{k}", getattr(merged.model, k), getattr(saved.model, k))
                for k in ModelSettings.model_fields if getattr(merged.model, k) != getattr(saved.model, k)]
    if changed:
        raise ConfigError(
            f"{run_dir}: --resume continues the run as it was started, but "
            + ", ".join(f"{k} would be {new!r} (the run has {old!r})" for k, new, old in changed)
            + "; start a new --run-dir to change "
            + ("it" if len(changed) == 1 else "them")
            + " (a resume may change only steps, " + ", ".join(RUNTIME_SETTINGS) + ")")
    return merged


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
    ctx: typer.Context,
    store: str = store_option(help="Clip store (default: the --config file's store, else "
                                   "$DOJO_STORE, else data/fleet; on --resume, the run's)."),
    dataset: str = typer.Option(None, "--dataset", help="dataset version name"),
    run_dir: Path = typer.Option(Path("runs/train"), "--run-dir"),
    config: Path = typer.Option(None, "--config", help="TOML file with a \\[train] table"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run-dir from its "
                                "last checkpoint, with its saved config (only --steps, --workers "
                                "and --progress may change)"),
    steps: int = _flag("steps", "training steps in all (on --resume: raise it to train on)"),
    batch_size: int = _flag("batch_size", "global batch size"),
    lr: float = _flag("lr", "peak learning rate, after warmup"),
    min_lr: float = _flag("min_lr", "learning rate the cosine decay ends at (at most --lr)"),
    precision: str = _flag("precision", "float32 | bf16 | cfloat8 | cfloat16"),
    seed: int = _flag("seed"),
    workers: int = _flag("workers", "loader worker processes per rank (0: decode in this process)"),
    checkpoint_every: int = _flag("checkpoint_every", "steps between checkpoints"),
    log_every: int = _flag("log_every", "steps between metrics lines"),
    init_from: str = typer.Option(None, "--init-from", help="start from this checkpoint's weights"),
    frames: int = _flag("model.frames", "frame history fed to the network"),
    image_size: int = _flag("model.image_size", "square input frames, pixels"),
    width: int = _flag("model.width", "channels of the first conv stage"),
    stages: int = _flag("model.stages", "conv stages, each halves the resolution"),
    hidden: int = _flag("model.hidden", "width of the fused MLP"),
    nproc: int = typer.Option(1, "--nproc", help="data-parallel processes (launches torchrun)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train the video policy on a dataset version's hindsight labels.

    Defaults shown are TrainConfig's (opendojo.train.config); a --config file's
    \\[train] table overrides them, and flags override both.
    """
    from opendojo.errors import ConfigError

    flags = dict(store=store if _given(ctx, "store") else None, dataset=dataset, steps=steps,
                 batch_size=batch_size, lr=lr, min_lr=min_lr, precision=precision, seed=seed,
                 workers=workers, checkpoint_every=checkpoint_every, log_every=log_every,
                 init_from=init_from)
    cfg = _train_config(config, flags, _model_overrides(frames, image_size, width, stages, hidden))
    # the run's config.json names its store absolute, so that --resume and `dojo eval` find it
    # from any working directory (relative paths are the working directory's, as ClipStore's)
    if "store" in cfg.model_fields_set:
        cfg = cfg.model_copy(update={"store": absolute_store(cfg.store)})
    if resume and (run_dir / "config.json").exists():
        cfg = _resume_config(cfg, run_dir)
    elif "store" not in cfg.model_fields_set:
        cfg = cfg.model_copy(update={"store": absolute_store(store)})     # $DOJO_STORE, else data/fleet

    at_least("--nproc", nproc)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        have, what = _available_procs()
        if nproc > have:
            raise ConfigError(f"--nproc {nproc} is more than this machine's {have} {what}")
        _launch_torchrun(cfg, run_dir, resume, nproc, progress)
        return

    from opendojo.train.trainer import TrainingInterrupted, train

    rank0 = int(os.environ.get("RANK", "0")) == 0
    try:
        result = train(cfg, run_dir, resume=resume, progress=progress)
    except TrainingInterrupted as e:
        if rank0:
            print(_interrupted_line(e), file=sys.stderr)
        raise
    if rank0:
        print(json.dumps(result))


def _interrupted_line(e) -> str:
    """What a Ctrl-C'd run says before the CLI's "interrupted": where it stopped, how to go on."""
    import shlex

    if e.checkpoint is None:
        return f"stopped at step {e.step} of {e.steps}, before the first checkpoint"
    return (f"stopped at step {e.step} of {e.steps}; the last checkpoint is step {e.checkpoint}: "
            f"dojo train --run-dir {shlex.quote(str(e.run_dir))} --resume  continues from there")


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
    from opendojo.errors import ConfigError
    from opendojo.train.info import describe
    from opendojo.train.model import PolicyConfig

    sizes = _model_overrides(frames, image_size, width, stages, hidden)
    if checkpoint:
        from opendojo.train.checkpoint import read_meta

        if sizes or config is not None:
            given = ["--config"] * (config is not None) + ["--" + k.replace("_", "-") for k in sizes or {}]
            raise ConfigError(f"--checkpoint describes the checkpoint's own model: drop {', '.join(given)}")
        pc = PolicyConfig.from_dict(read_meta(checkpoint)["model"])
    else:
        pc = _train_config(config, {}, sizes).policy_config()   # sizes checked as for train
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
