"""Does the trainer wait for data? Training samples/s fed by the real loader (worker
processes, end to end, startup included) against the same model fed from batches already in
memory, measured in the same run. Prints one JSON object; ratio >= 0.95 is the target.

The loader runs three ways, interleaved with the in-memory runs:
  ratio            the default: decoded frames come from the frame cache
                   (`opendojo.clips.frame_cache`), filled by an earlier run on these clips
  ratio_cold       the default with the cache emptied first: the run decodes (and caches)
                   every clip it meets, as a first training run on new clips does (one run)
  ratio_no_cache   `frame_cache=False`: every epoch decodes the H.264 again

    python benchmarks/loader.py [--store S --dataset D] [--steps 150] [--batch-size 32]

Without --store, a synthetic store (top-down clips, 96x96) is made in a temporary directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
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

    from opendojo.clips.frame_cache import cache_dir
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
    no_cache = cfg.model_copy(update={"frame_cache": False})
    pc = cfg.policy_config()
    cache = cache_dir(cs, cfg.model.image_size)
    shutil.rmtree(cache, ignore_errors=True)
    memory = list(itertools.islice(iter(make_loader(no_cache)), args.steps))   # untimed
    runs = {"memory": [], "cached": [], "no_cache": []}
    mem0 = _train(pc, iter(memory), cfg, args.steps)
    cold = _train(pc, iter(make_loader(cfg)), cfg, args.steps)   # empty cache: decodes
    for _ in range(args.repeats):   # interleaved, so that load from other processes hits all
        runs["memory"].append(_train(pc, iter(memory), cfg, args.steps))
        runs["cached"].append(_train(pc, iter(make_loader(cfg)), cfg, args.steps))
        runs["no_cache"].append(_train(pc, iter(make_loader(no_cache)), cfg, args.steps))
    med = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    steady = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    print(json.dumps({
        "benchmark": "loader", "store": store, "dataset": dataset, "steps": args.steps,
        "batch_size": args.batch_size, "workers": args.workers, "model": pc.to_dict(),
        "repeats": args.repeats,
        "in_memory_samples_per_s": round(med["memory"], 1),
        "loader_samples_per_s": round(med["cached"], 1),
        "ratio": round(med["cached"] / med["memory"], 3), "target": 0.95,
        "ok": med["cached"] / med["memory"] >= 0.95,
        "ratio_cold": round(cold[0] / mem0[0], 3),
        "ratio_no_cache": round(med["no_cache"] / med["memory"], 3),
        "steady_state_ratio": round(steady["cached"] / steady["memory"], 3),
        "steady_state_ratio_no_cache": round(steady["no_cache"] / steady["memory"], 3),
        "runs_samples_per_s": {k: [round(r[0], 1) for r in v] for k, v in runs.items()},
        "cache_mb": round(sum(f.stat().st_size for f in cache.glob("*.npy")) / 1e6, 1),
        "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
