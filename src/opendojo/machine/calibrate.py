"""Calibrate the `host` spec on the current machine with microbenchmarks.

Measured (fp32, torch on CPU, `threads` intra-op threads):
  - matmul FLOP/s (square mm),
  - a conv table: FLOP/s of a 3x3 conv's training step (forward + backward to input and weight)
    over channels x output positions (N*H*W), generic shapes, not the shapes of any job,
  - memory bandwidth seen by an elementwise op (out = a + b) at several sizes, cache to DRAM,
  - the fixed cost of dispatching one operator (a one-element add).
None of these runs the network whose step time the model later predicts.

The result is written as a spec file (YAML, same format as the packaged specs) to a user cache
(`host_spec_path()`, or a path given) with an atomic rename; it is a measurement of this machine
at this moment, not a fact, so it is never committed.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import yaml

CONV_CHANNELS = (8, 16, 32, 64, 128, 256, 512)
CONV_ROWS = (64, 256, 1024, 4096)
MEM_SIZES = (2**15, 2**18, 2**21, 2**24)      # bytes per tensor
MAX_CELL_FLOPS = 4e9


def _timeit(fn, min_time: float = 0.04, repeats: int = 3) -> float:
    """Median over `repeats` of the mean time of fn over enough calls to last min_time."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(min_time / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def measure(threads: int | None = 1, quick: bool = False) -> dict:
    """Run the microbenchmarks; return a dict of figures (see module docstring)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    min_time = 0.02 if quick else 0.04
    out: dict = {}

    n = 256 if quick else 512
    a, b = torch.randn(n, n), torch.randn(n, n)
    out["matmul_flops"] = 2 * n**3 / _timeit(lambda: torch.mm(a, b), min_time)

    tiny_a, tiny_b = torch.ones(1), torch.ones(1)
    out["op_overhead_s"] = _timeit(lambda: torch.add(tiny_a, tiny_b), min_time, 5)

    mem = {}
    for size in MEM_SIZES:
        x, y = torch.randn(size // 4), torch.randn(size // 4)
        z = torch.empty_like(x)
        t = _timeit(lambda: torch.add(x, y, out=z), min_time)
        mem[size] = 3 * size / max(t - out["op_overhead_s"], 1e-9)
    out["memory_bandwidth_curve"] = mem
    out["memory_bandwidth"] = mem[MEM_SIZES[-1]]

    conv = {}
    for stride in (1, 2):
      for c in CONV_CHANNELS:
        for rows in CONV_ROWS:
            side = max(2, int(round((rows / 4) ** 0.5)))
            nb = max(1, rows // (side * side))
            flops = 3 * 2 * 9 * c * c * nb * side * side
            if flops > MAX_CELL_FLOPS * (0.25 if quick else 1) / stride:
                continue
            layer = torch.nn.Conv2d(c, c, 3, stride=stride, padding=1, bias=False)
            x = torch.randn(nb, c, side * stride, side * stride, requires_grad=True)

            def step():
                y = layer(x)
                y.backward(torch.ones_like(y))

            t = _timeit(step, min_time, 3)
            conv[(stride, c, nb * side * side)] = flops / t
    out["conv_table"] = conv
    out["threads"] = torch.get_num_threads()
    return out


def host_levels(m: dict) -> dict:
    """The measured figures as a spec-file mapping with one level, `host`."""
    src = (f"measured by `dojo machine calibrate` on {platform.node()} "
           f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
           f"{m['threads']} torch threads) at {time.strftime('%Y-%m-%d %H:%M:%S')}")
    weak = "⚠ one measurement on a shared machine; re-run calibrate to refresh"
    fig = lambda v, unit: {"value": float(v), "unit": unit, "source": src, "weak": weak}  # noqa: E731
    figures = {
        "fp32_flops": fig(m["matmul_flops"], "FLOP/s"),
        "memory_bandwidth": fig(m["memory_bandwidth"], "B/s"),
        "op_overhead_s": {**fig(m["op_overhead_s"], "s"), "additive": False},
        "threads": {**fig(m["threads"], "thread"), "additive": False},
    }
    for size, bw in m["memory_bandwidth_curve"].items():
        figures[f"memory_bandwidth_at_{size}"] = {**fig(bw, "B/s"), "additive": False}
    for (stride, c, rows), rate in m["conv_table"].items():
        figures[f"conv_flops_s{stride}_c{c}_m{rows}"] = {**fig(rate, "FLOP/s"), "additive": False}
    return {"host": {"title": f"this machine ({platform.node()})", "family": "host",
                     "figures": figures}}


def write_host_spec(m: dict, path: Path) -> Path:
    from opendojo.atomic import write_text

    return write_text(path, "# Measured, not published: written by `dojo machine calibrate`.\n"
                      + yaml.safe_dump(host_levels(m), sort_keys=False, allow_unicode=True))


def calibrate(path: Path | None = None, threads: int | None = 1, quick: bool = False) -> tuple[dict, Path]:
    from opendojo.atomic import check_target
    from opendojo.machine.spec import host_spec_path

    path = check_target(path or host_spec_path())   # before the benchmarks, not after them
    m = measure(threads, quick)
    return m, write_host_spec(m, path)
