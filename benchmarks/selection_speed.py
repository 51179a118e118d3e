"""Selection speed: choose 1% of 1,000,000 synthetic clip embeddings (dimension 128).

The candidates are a mixture of 500 clusters of uneven size (a fleet's common and rare
situations) with triggers on ~10% of clips, a shadow-mode disagreement and a driver
quality per clip, so every part of `opendojo.engine.select.select` runs: FAISS k-means
density, utility, pool, near-duplicates in the pool, batched farthest-first.
Reference in the same run: the utility-only top-1% (argpartition, no density, no
diversity), the least any selection must do. Imports (torch, faiss) are loaded before the
clock starts. Prints one JSON object.

    .venv/bin/python benchmarks/selection_speed.py [--n 1000000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def synthetic(n: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    k = 500
    sizes = rng.pareto(1.2, k) + 1
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    labels = rng.choice(k, size=n, p=sizes / sizes.sum())
    x = centres[labels]
    x += 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    frames = rng.integers(100, 201, n)
    names = ["hard_braking", "sharp_steering", "collision", "near_stop_on_highway"]
    fire = rng.random(n) < 0.1
    which = rng.integers(0, len(names), n)
    triggers = [[names[w]] if f else [] for f, w in zip(fire, which)]
    disagreement = rng.gamma(2.0, 0.5, n)
    quality = rng.beta(5, 2, n)
    return x, frames, triggers, disagreement, quality


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--budget", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import faiss  # noqa: F401  (warm imports: not part of the selection's time)
    import scipy.stats  # noqa: F401
    import torch  # noqa: F401

    from opendojo.engine.select import Candidates, SelectionConfig, select, trigger_scores

    x, frames, triggers, dis, quality = synthetic(args.n, args.dim)
    ids = [f"{i:020x}" for i in range(args.n)]
    cfg = SelectionConfig(budget=args.budget)

    t = time.perf_counter()
    trig, _ = trigger_scores(triggers)
    util = (0.05 + (trig > 0) + dis / dis.max()) * quality
    budget = int(args.budget * frames.sum())
    top = np.argpartition(-util, budget // int(frames.mean()))[:budget // int(frames.mean())]
    reference = time.perf_counter() - t

    t = time.perf_counter()
    sel = select(Candidates(ids, frames, x, triggers, dis, quality), cfg, threads=args.threads)
    seconds = time.perf_counter() - t
    print(json.dumps({
        "benchmark": "selection_speed", "candidates": args.n, "dim": args.dim,
        "budget": args.budget, "threads": args.threads,
        "selected_clips": len(sel.clip_ids), "selected_frames": sel.frames,
        "budget_frames": sel.budget_frames, "seconds": round(seconds, 2),
        "limit_s": 60, "within_limit": seconds <= 60,
        "reference_utility_topk_s": round(reference, 3),
        "ratio_to_reference": round(seconds / max(reference, 1e-9), 1),
        "stages": sel.stats, "reference_clips": int(len(top)),
    }))


if __name__ == "__main__":
    main()
