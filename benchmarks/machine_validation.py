"""Validate the machine model on this CPU: predicted vs measured step time of the real training
job (one forward + backward + AdamW step of opendojo.train.model.PolicyNet) over model size x
batch size.

Honest by construction: the `host` spec is calibrated with microbenchmarks only (matmul, a
generic 3x3-conv table, elementwise bandwidth, per-op cost; opendojo.machine.calibrate), never
with the network's own steps; nothing is fitted to the measurements below. Because the machine
is shared (timings are noisy), each round calibrates and then measures every configuration right
after, the prediction of a round uses that round's calibration, and the error of a configuration
is the median over rounds of predicted/measured - 1. One torch thread throughout.

No GPU is lent to this task, so there is no GPU validation.

Prints one JSON object.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = [  # (width, batch)
    (8, 4), (8, 16), (16, 4), (16, 16), (32, 4), (32, 16),
]
ROUNDS = 5
STEPS = 10


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from opendojo.machine.calibrate import host_levels, measure
    from opendojo.machine.perf import build_machine, predict
    from opendojo.machine.spec import Catalog, parse_levels
    from opendojo.machine.workload import policy_loss, policy_workload
    from opendojo.train.model import PolicyConfig, PolicyNet, example_inputs

    t_start = time.perf_counter()
    base = Catalog.load(host=Path(tempfile.gettempdir()) / "no-host-spec.yaml").levels
    workloads = {(w, b): policy_workload(width=w, batch=b) for w, b in CONFIGS}
    jobs = {}
    for w, b in CONFIGS:
        cfg = PolicyConfig(width=w)
        torch.manual_seed(0)
        net = PolicyNet(cfg).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        x = example_inputs(cfg, b)

        def step(net=net, opt=opt, x=x):
            loss = policy_loss(net(*x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        jobs[(w, b)] = step

    ratios = {c: [] for c in CONFIGS}
    preds = {c: [] for c in CONFIGS}
    meas = {c: [] for c in CONFIGS}
    calib = []
    for r in range(ROUNDS):
        m = measure(threads=1, quick=True)
        calib.append({"matmul_gflops": m["matmul_flops"] / 1e9,
                      "memory_gbps": m["memory_bandwidth"] / 1e9,
                      "op_overhead_us": m["op_overhead_s"] * 1e6})
        cat = Catalog({**base, **parse_levels(host_levels(m), "calibration")})
        host = build_machine("host", cat=cat)
        for c in CONFIGS:
            p = predict(workloads[c], host).step_s
            jobs[c]()
            ts = []
            for _ in range(STEPS):
                t0 = time.perf_counter()
                jobs[c]()
                ts.append(time.perf_counter() - t0)
            t = statistics.median(ts)
            preds[c].append(p)
            meas[c].append(t)
            ratios[c].append(p / t - 1)

    rows = []
    for w, b in CONFIGS:
        c = (w, b)
        err = statistics.median(ratios[c])
        rows.append({"width": w, "batch": b, "gflop_per_step": workloads[c].flops / 1e9,
                     "predicted_s": statistics.median(preds[c]), "measured_s": statistics.median(meas[c]),
                     "error": err, "error_per_round": ratios[c]})
        print(f"width={w:3d} batch={b:3d}: predicted {statistics.median(preds[c]) * 1e3:8.1f} ms, "
              f"measured {statistics.median(meas[c]) * 1e3:8.1f} ms, error {err:+.1%}", file=sys.stderr)
    mae = statistics.mean(abs(r["error"]) for r in rows)
    print(f"mean absolute error {mae:.1%} (target <= 10%)", file=sys.stderr)
    print(json.dumps({
        "benchmark": "machine_validation",
        "job": "PolicyNet training step (forward, backward, AdamW), fp32, 1 torch thread",
        "calibration": "microbenchmarks only (matmul, generic conv table, elementwise bandwidth, per-op cost); "
                       "re-run each round, interleaved with the measurements",
        "rounds": ROUNDS, "steps_per_measurement": STEPS,
        "configs": rows, "mean_absolute_error": mae, "target_mae": 0.10, "within_target": mae <= 0.10,
        "calibrations": calib, "gpu": "no GPU lent to this task; not validated on a GPU",
        "seconds": time.perf_counter() - t_start,
    }))


if __name__ == "__main__":
    main()
