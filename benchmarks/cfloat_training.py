"""Does training the policy in CFloat reach the float32 run's held-out loss?

Trains PolicyNet (a small config) on a fixed synthetic regression task: random frames,
speeds and route commands whose targets (controls and trajectory) are a fixed, seeded,
non-linear function of them. The same initial weights, batches and step count are used for
float32, cfloat8 and cfloat16 (opendojo.numerics.training.apply_precision). Prints one JSON
object with the held-out losses and the relative gap to float32.

  .venv/bin/python benchmarks/cfloat_training.py [--steps 300] [--width 16]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from opendojo.numerics.training import apply_precision
from opendojo.train.model import PolicyConfig, PolicyNet


def make_task(cfg: PolicyConfig, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(n, cfg.frames, 3, cfg.image_size, cfg.image_size, generator=g)
    speed = torch.rand(n, generator=g) * 30
    command = torch.randint(0, 3, (n,), generator=g)
    # the target function: fixed random projections of a coarse view of the frames
    tg = torch.Generator().manual_seed(12345)
    coarse = F.adaptive_avg_pool2d(frames.flatten(1, 2), 4).flatten(1)  # [n, T*3*16]
    coarse = (coarse - 0.5) * 12  # averages of uniforms are near 0.5: spread them out
    proj = torch.randn(coarse.shape[1], 2 + 2 * cfg.horizon, generator=tg) / coarse.shape[1]**0.5
    cmd_shift = torch.randn(3, 2 + 2 * cfg.horizon, generator=tg) * 0.5
    z = torch.tanh(coarse @ proj) + cmd_shift[command] + (speed / 30).unsqueeze(-1) * 0.5
    controls = z[:, :2]
    traj = z[:, 2:].reshape(n, cfg.horizon, 2).cumsum(1)
    return frames, speed, command, controls, traj


def loss_of(out, controls, traj):
    return F.mse_loss(out["controls"], controls) + F.mse_loss(out["trajectory"], traj)


def train(precision: str, cfg: PolicyConfig, data, heldout, steps: int, batch: int,
          lr: float) -> dict:
    torch.manual_seed(0)
    model = PolicyNet(cfg)
    model = apply_precision(model, precision, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    order = torch.Generator().manual_seed(1)
    n = data[0].shape[0]
    t0 = time.perf_counter()
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (batch,), generator=order)
        frames, speed, cmd, controls, traj = (d[idx] for d in data)
        loss = loss_of(model(frames, speed, cmd), controls, traj)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        frames, speed, cmd, controls, traj = heldout
        held = float(loss_of(model(frames, speed, cmd), controls, traj))
        train_loss = float(loss_of(model(*data[:3]), *data[3:]))
    return {"heldout_loss": held, "train_loss": train_loss, "seconds": round(train_s, 1),
            "final_params_finite": all(bool(torch.isfinite(p).all())
                                       for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="float32,cfloat8,cfloat16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = PolicyConfig(frames=2, image_size=32, width=args.width, stages=3, hidden=64,
                       horizon=4)
    data = make_task(cfg, 2048, seed=0)
    heldout = make_task(cfg, 512, seed=1)
    baseline = float(loss_of({"controls": data[3].mean(0).expand_as(heldout[3]),
                              "trajectory": data[4].mean(0).expand_as(heldout[4])},
                             heldout[3], heldout[4]))
    runs = {p: train(p, cfg, data, heldout, args.steps, args.batch, args.lr)
            for p in args.precisions.split(",")}
    f32 = runs["float32"]["heldout_loss"] if "float32" in runs else None
    gaps = {p: round((r["heldout_loss"] - f32) / f32, 4) for p, r in runs.items()
            if f32 and p != "float32"}
    print(json.dumps({
        "benchmark": "PolicyNet on a synthetic regression task, float32 vs CFloat training",
        "config": cfg.to_dict(), "steps": args.steps, "batch": args.batch, "lr": args.lr,
        "threads": torch.get_num_threads(),
        "heldout_loss_predict_mean": round(baseline, 5),
        "runs": runs,
        "relative_gap_to_float32": gaps,
        "target_gap": 0.02,
        "within_target": {p: abs(g) <= 0.02 for p, g in gaps.items()},
    }))


if __name__ == "__main__":
    main()
