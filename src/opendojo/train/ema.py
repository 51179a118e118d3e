"""An exponential moving average (EMA) of the weights, the network the checkpoints carry.

With `TrainConfig.ema_decay = d` the trainer keeps, beside the weights it trains, their
average `avg <- d x avg + (1 - d) x weights` after every step (PyTorch's `AveragedModel`),
and a checkpoint's `model.*` tensors are that average: what evaluation, export, shadow mode
and `init_from` read. The trained weights go under `training.*`, so that `--resume`
continues the run where it stopped. Driving policies are commonly evaluated this way
(Diffusion Policy, Chi et al., RSS 2023); what it does for ours is measured in
docs/driving.md, "Averaged weights" (`runs.EMA_DECAY` quotes it).

The decay is warmed up as min(d, (1 + n) / (10 + n)) after n updates, so that the
randomly initialised weights of the first steps do not linger in the average of a short
run (with d = 0.999 and no warm-up, 4% of the step-1 weights would remain after 3,200).
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel


def warmed_decay(decay: float, updates: int) -> float:
    """The decay applied at the update after `updates` earlier ones."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def averaged(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An EMA of `model`'s parameters (its buffers are copied, not averaged)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")

    def lerp(avg: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        torch._foreach_lerp_(avg, current, 1.0 - warmed_decay(decay, int(n)))

    return AveragedModel(model, multi_avg_fn=lerp, use_buffers=False)
