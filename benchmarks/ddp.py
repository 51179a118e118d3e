"""Data parallel: `dojo train --nproc 2` (torchrun, gloo on CPU) against one process with the
same global batch, seed and steps. Prints one JSON object with both loss curves, their
mean loss over the last half of training and that difference in units of its standard error and
each run's throughput.

    python benchmarks/ddp.py --store S --dataset D [--steps 120] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(nproc: int, args, run_dir: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "opendojo.cli", "train", "--store", args.store, "--dataset",
           args.dataset, "--run-dir", str(run_dir), "--steps", str(args.steps), "--batch-size",
           str(args.batch_size), "--log-every", str(args.log_every), "--checkpoint-every",
           str(args.steps), "--workers", "1", "--seed", "0", "--nproc", str(nproc), "--no-progress"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--log-every", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="opendojo-ddp-"))
    one, two = run(1, args, tmp / "np1"), run(2, args, tmp / "np2")
    late = [i for i, m in enumerate(one) if m["step"] > args.steps // 2]
    a = [one[i]["loss_window"] for i in late]
    b = [two[i]["loss_window"] for i in late]
    print(json.dumps({
        "benchmark": "ddp", "steps": args.steps, "global_batch": args.batch_size,
        "steps_logged": [m["step"] for m in one],
        "loss_1proc": [round(m["loss_window"], 4) for m in one],   # mean over each log window
        "loss_2proc": [round(m["loss_window"], 4) for m in two],
        "mean_loss_last_half_1proc": round(statistics.mean(a), 4),
        "mean_loss_last_half_2proc": round(statistics.mean(b), 4),
        # noise: the spread of one run's window means around their mean, over sqrt(n)
        "noise_stderr_1proc": round(statistics.stdev(a) / len(a) ** 0.5, 4),
        "diff_over_noise": round(abs(statistics.mean(a) - statistics.mean(b))
                                 / max(1e-9, (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5), 2),
        "samples_per_s_1proc": round(statistics.median(m["samples_per_s"] for m in one[1:]), 1),
        "samples_per_s_2proc": round(statistics.median(m["samples_per_s"] for m in two[1:]), 1),
    }))


if __name__ == "__main__":
    main()
