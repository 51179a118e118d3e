"""Training the policy in CFloat8/CFloat16 against float32 on fleet clips, same steps.

Trains the same model, data, seed and step count in each precision and scores every
run on the dataset's held-out clips (`evaluate_open_loop`: ADE, FDE, control error).
Prints one JSON object with each run's held-out figures and its gap to float32.
`--closed-loop N` also drives each network through the held-out closed-loop suite
(N episodes per scenario / rare event, the same seeds for every precision) and reports its
driving score (95% CI) and collisions per km.

    python benchmarks/cfloat_fleet_training.py --store S --dataset NAME [--steps 300] [--closed-loop 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from opendojo.clips.store import ClipStore
from opendojo.evaluate.closed_loop import evaluate_suite
from opendojo.evaluate.open_loop import evaluate_open_loop
from opendojo.train.config import ModelSettings, TrainConfig
from opendojo.train.dataset import load_dataset
from opendojo.train.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--precisions", default="float32,cfloat8,cfloat16")
    ap.add_argument("--closed-loop", type=int, default=0, metavar="N",
                    help="also evaluate closed loop, N episodes per suite item (0: skip)")
    a = ap.parse_args()
    store = ClipStore(a.store)
    held = load_dataset(store, a.dataset).clips("heldout")
    out = {"benchmark": "cfloat_fleet_training", "store": a.store, "dataset": a.dataset,
           "steps": a.steps, "heldout_clips": len(held), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for p in a.precisions.split(","):
            cfg = TrainConfig(store=a.store, dataset=a.dataset, steps=a.steps, precision=p, seed=0,
                              checkpoint_every=a.steps, model=ModelSettings())
            t0 = time.perf_counter()
            summary = train(cfg, Path(tmp) / p, progress=False)
            seconds = time.perf_counter() - t0
            res = evaluate_open_loop(Path(tmp) / p, store, held)
            out["runs"][p] = {"heldout_ade": res["policy"]["ade"], "heldout_fde": res["policy"]["fde"],
                              "accel_mae": res["policy"]["accel_mae"],
                              "steering_mae": res["policy"]["steering_mae"],
                              "final_train_loss": summary.get("loss_window", summary.get("loss")),
                              "train_seconds": round(seconds, 1)}
            if a.closed_loop:
                cl = evaluate_suite(Path(tmp) / p, store, episodes_per_item=a.closed_loop,
                                    baselines=False)["summary"]["network"]
                out["runs"][p].update({"closed_loop_score": cl["score"],
                                       "closed_loop_score_ci": cl["score_ci"],
                                       "collisions_per_km": cl["collisions_per_km"],
                                       "closed_loop_episodes": cl.get("episodes")})
    ref = out["runs"].get("float32")
    if ref:
        for p, r in out["runs"].items():
            r["ade_gap_vs_float32"] = r["heldout_ade"] / ref["heldout_ade"] - 1
    print(json.dumps(out))


if __name__ == "__main__":
    main()
