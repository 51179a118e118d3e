"""Checkpoints: `step-N.safetensors` (weights and optimizer tensors) + `step-N.json` (the rest).

The weights to drive with are `model.*`. A run that averages its weights (`opendojo.train.ema`)
stores the average there and the weights it trains, which `--resume` continues, as `training.*`.

The JSON (step, loader position, optimizer hyper-parameters, model and train config, code
version) is written last, each file to a temporary name and renamed: a checkpoint exists
once its JSON does, so a kill at any moment leaves either the whole checkpoint or none.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from opendojo.atomic import atomic_path
from opendojo.errors import CheckpointError
from opendojo.train.model import PolicyConfig

_STEP = re.compile(r"^step-(\d+)\.json$")
_WHAT = ("a training run directory (with checkpoints/) or a step-N.safetensors "
         "with its step-N.json beside it")


def _atomic(path: Path, write) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def save_checkpoint(directory: Path, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, meta: dict,
                    training: torch.nn.Module | None = None) -> Path:
    """`model`'s weights as `model.*` and, given `training` (the weights the optimizer steps
    when `model` is their average), those as `training.*`."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"{prefix}.{k}": v.detach().cpu().contiguous()
               for prefix, m in (("model", model), ("training", training)) if m is not None
               for k, v in m.state_dict().items()}
    groups = []
    if optimizer is not None:
        sd = optimizer.state_dict()
        for i, st in sd["state"].items():
            for k, v in st.items():
                t = v if torch.is_tensor(v) else torch.tensor(v)
                tensors[f"optim.{i}.{k}"] = t.detach().cpu().contiguous()
        groups = sd["param_groups"]
    base = directory / f"step-{step}"
    _atomic(base.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p)))
    body = json.dumps({**meta, "step": step, "optimizer": {"param_groups": groups}}, indent=1)
    _atomic(base.with_suffix(".json"), lambda p: p.write_text(body))
    return base.with_suffix(".safetensors")


def checkpoints(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    steps = [int(m.group(1)) for p in directory.iterdir() if (m := _STEP.match(p.name))]
    return sorted(s for s in steps if (directory / f"step-{s}.safetensors").exists())


def resolve(path: str | Path) -> Path:
    """A checkpoint's .safetensors path from itself, its .json, a checkpoints dir or a run dir."""
    p = Path(path)
    if p.is_dir():
        d = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        steps = checkpoints(d)
        if not steps:
            raise CheckpointError(f"{path}: no checkpoint here; a checkpoint is {_WHAT}")
        return d / f"step-{steps[-1]}.safetensors"
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if not p.exists() or not p.with_suffix(".json").exists():
        if not Path(path).exists():
            raise CheckpointError(f"{path}: no such checkpoint")
        missing = None                       # half of a checkpoint: name the other half
        if p.suffix == ".safetensors" and re.fullmatch(r"step-\d+", p.stem):
            missing = p.with_suffix(".json") if p.exists() else p
        raise CheckpointError(
            f"{path}: exists but is not a checkpoint"
            + (f" ({missing.name} is missing beside it); " if missing else "; ")
            + f"a checkpoint is {_WHAT}")
    return p


def read_meta(path: str | Path) -> dict:
    p = resolve(path)
    try:
        return json.loads(p.with_suffix(".json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{p.with_suffix('.json')}: unreadable ({e})") from None


def trained_command(meta: dict) -> str:
    """The route command a checkpoint was trained with (`TrainConfig.command`); checkpoints
    written before that option were fed the hindsight command."""
    return (meta.get("train") or {}).get("command", "hindsight")


def trained_settings(meta: dict) -> dict:
    """The `TrainConfig` fields a checkpoint (or a run's config.json) was trained with, its
    route command as `trained_command` reads it."""
    return {**meta["train"], "command": trained_command(meta)}


def model_config_diff(meta: dict, expect_model: dict) -> tuple[list[str], dict]:
    """The model-config fields where a checkpoint's JSON differs from `expect_model`, and the
    checkpoint's config with fields added since it was written at the values they had then."""
    saved = PolicyConfig.from_dict(meta.get("model") or {}).to_dict()
    return sorted(k for k in set(expect_model) | set(saved) if expect_model.get(k) != saved.get(k)), saved


def load_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    expect_model: dict | None = None, weights: str = "model") -> dict:
    """Load weights (and optimizer state) into `model`; return the checkpoint's JSON.

    `weights`: "model", the weights to drive with, or "training", those a run that averages
    its weights trains (`save_checkpoint`). Refuses a checkpoint made for another model
    config (compared field by field when `expect_model` is given, and always by tensor names
    and shapes).
    """
    p = resolve(path)
    meta = read_meta(p)
    if expect_model is not None:
        diff, saved = model_config_diff(meta, expect_model)
        if diff:
            raise CheckpointError(
                f"{p}: made for another model config ("
                + ", ".join(f"{k}={saved.get(k)} here {expect_model.get(k)}" for k in diff) + ")")
    try:
        tensors = load_file(str(p))
    except Exception as e:  # noqa: BLE001 - any corrupt file is one clear line
        raise CheckpointError(f"{p}: unreadable ({str(e).splitlines()[0]})") from None
    found = {k[len(weights) + 1:]: v for k, v in tensors.items() if k.startswith(weights + ".")}
    if weights == "training" and not found:
        raise CheckpointError(f"{p}: holds no training weights (training.*), only the weights "
                              "to drive with: its run did not average its weights")
    own = model.state_dict()
    bad = [k for k in own if k not in found or found[k].shape != own[k].shape]
    if bad or set(found) - set(own):
        raise CheckpointError(f"{p}: made for another model config (tensor {(bad or sorted(set(found) - set(own)))[0]} "
                              "is missing or has another shape)")
    model.load_state_dict(found)
    if optimizer is not None:
        state: dict = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, i, name = k.split(".", 2)
                state.setdefault(int(i), {})[name] = v
        optimizer.load_state_dict({"state": state,
                                   "param_groups": meta["optimizer"]["param_groups"]})
    return meta
