"""Size of the policy: parameters and FLOPs per sample (counted by torch's FlopCounterMode)."""

from __future__ import annotations

from torch.utils.flop_counter import FlopCounterMode

from opendojo.train.model import PolicyConfig, PolicyNet, example_inputs


def flops_per_sample(config: PolicyConfig, batch: int = 2) -> dict[str, float]:
    """Forward and forward+backward FLOPs per sample (a multiply-add counts as 2)."""
    model = PolicyNet(config)
    inputs = example_inputs(config, batch)
    with FlopCounterMode(display=False) as fwd:
        model(*inputs)
    with FlopCounterMode(display=False) as both:
        out = model(*inputs)
        (out["trajectory"].sum() + out["controls"].sum()).backward()
    return {"forward": fwd.get_total_flops() / batch, "train": both.get_total_flops() / batch}


def describe(config: PolicyConfig) -> dict:
    model = PolicyNet(config)
    params = sum(p.numel() for p in model.parameters())
    f = flops_per_sample(config)
    return {"config": config.to_dict(), "parameters": params,
            "flops_per_sample_forward": f["forward"], "flops_per_sample_train": f["train"],
            "gflops_per_sample_forward": round(f["forward"] / 1e9, 4)}
