"""Does the trainer wait for data? Training samples/s fed by the real loader (decode in
workers, end to end, startup included) against the same model fed from batches already in
memory, measured in the same run. Prints one JSON object; ratio >= 0.95 is the target.

    python benchmarks/loader.py [--store S --dataset D] [--steps 150] [--batch-size 32]

Without --store, a synthetic store (top-down clips, 96x96) is made in a temporary directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time

import torch


def _train(model_cfg, batches, cfg, steps):
    from opendojo.train.model import PolicyNet
    from opendojo.train.trainer import lr_at, policy_loss

    torch.manual_seed(cfg.seed)
    model = PolicyNet(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    t0 = time.perf_counter()
    n = 0
    t1 = n1 = None
    for step, batch in enumerate(itertools.islice(batches, steps)):
        if step == 1:   # steady state: from the end of the first step (loader startup excluded)
            t1, n1 = time.perf_counter(), n
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        out = model(batch["frames"], batch["speed"], batch["command"])
        loss, _ = policy_loss(out, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        n += batch["speed"].shape[0]
    end = time.perf_counter()
    return n / (end - t0), (n - n1) / (end - t1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store")
    ap.add_argument("--dataset")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from opendojo.clips.store import ClipStore
    from opendojo.label.hindsight import label_store
    from opendojo.train.config import TrainConfig
    from opendojo.train.dataset import create_dataset, list_datasets
    from opendojo.train.trainer import make_loader

    store, dataset = args.store, args.dataset
    if store is None:
        from opendojo.train.synthetic import make_synthetic_store

        store = tempfile.mkdtemp(prefix="opendojo-bench-") + "/store"
        make_synthetic_store(store, clips=16, frames=150, size=96, seed=0)
        dataset = "bench"
    cs = ClipStore(store)
    label_store(cs)
    if dataset not in list_datasets(cs):
        create_dataset(cs, dataset, holdout=0.2, seed=0)
    cfg = TrainConfig(store=store, dataset=dataset, steps=args.steps, batch_size=args.batch_size,
                      workers=args.workers)
    pc = cfg.policy_config()
    memory = list(itertools.islice(iter(make_loader(cfg)), args.steps))   # untimed
    results = []
    for _ in range(args.repeats):   # alternate, so that load from other processes hits both
        mem = _train(pc, iter(memory), cfg, args.steps)
        fed = _train(pc, iter(make_loader(cfg)), cfg, args.steps)
        results.append((mem, fed))
    mem = sum(r[0][0] for r in results) / len(results)
    fed = sum(r[1][0] for r in results) / len(results)
    mem_s = sum(r[0][1] for r in results) / len(results)
    fed_s = sum(r[1][1] for r in results) / len(results)
    print(json.dumps({
        "benchmark": "loader", "store": store, "dataset": dataset, "steps": args.steps,
        "batch_size": args.batch_size, "workers": args.workers, "model": pc.to_dict(),
        "in_memory_samples_per_s": round(mem, 1), "loader_samples_per_s": round(fed, 1),
        "runs_end_to_end": [[round(a[0], 1), round(b[0], 1)] for a, b in results],
        "ratio": round(fed / mem, 3), "target": 0.95, "ok": fed / mem >= 0.95,
        "steady_state_ratio": round(fed_s / mem_s, 3),
        "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
