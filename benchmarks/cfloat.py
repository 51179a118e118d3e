"""Speed of float32 -> CFloat8 conversion against ml_dtypes and qtorch, same data, same run.

Prints one JSON object. Throughput is GB/s of float32 input (4 bytes per element); every
method runs on the same tensor, with the same torch thread count (ml_dtypes is
single-threaded, so the default is 1 thread), repeats interleaved round-robin so that load
from other processes hits all methods alike; medians are reported.

Two paths of ours are measured: "eager", the default (plain PyTorch ops: five integer
passes and an index_select into a per-(format, bias) table, in cache-sized blocks), and
"compiled", the opt-in `use_compiled_kernels(True)` (the same table kernel fused by
torch.compile; `--no-compiled` skips it). Ratios are time(theirs) / time(ours): above 1 means
ours is faster.

  .venv/bin/python benchmarks/cfloat.py [--n 4194304] [--repeats 9] [--threads 1] [--no-compiled]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from opendojo.numerics import CFLOAT8_1_4_3, CFLOAT8_1_5_2, use_compiled_kernels


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-compiled", action="store_true", help="skip the torch.compile path")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import ml_dtypes

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(args.n, generator=g) * 20).float()  # within e4m3fn's +-448 mostly
    xn = x.numpy()
    nbytes = x.numel() * 4

    methods = {
        # ours, default (eager) path
        "eager_cfloat8_1_4_3_encode": lambda: CFLOAT8_1_4_3.encode(x, 7),
        "eager_cfloat8_1_4_3_quantize": lambda: CFLOAT8_1_4_3.quantize(x, 7),
        "eager_cfloat8_1_5_2_encode": lambda: CFLOAT8_1_5_2.encode(x, 15),
        "eager_cfloat8_1_5_2_encode_stochastic": lambda: CFLOAT8_1_5_2.encode(
            x, 15, "stochastic", seed=0),
        # references
        "ml_dtypes_e4m3fn_astype": lambda: xn.astype(ml_dtypes.float8_e4m3fn),
        "ml_dtypes_e4m3fn_roundtrip": lambda: xn.astype(ml_dtypes.float8_e4m3fn).astype(
            np.float32),
        "ml_dtypes_e5m2_astype": lambda: xn.astype(ml_dtypes.float8_e5m2),
    }

    # correctness guard: our e4m3 bias 7 equals ml_dtypes on this data (within its range)
    inside = np.abs(xn) <= 448
    eager_codes = CFLOAT8_1_4_3.encode(x, 7)
    eager_values = CFLOAT8_1_4_3.quantize(x, 7)
    theirs = xn.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    agree = bool(np.array_equal(eager_codes.numpy()[inside], theirs[inside]))

    # the opt-in torch.compile path: compile time reported, bit-identity checked
    compiled_status, compile_s, compiled_equal = "skipped (--no-compiled)", None, None
    if not args.no_compiled:
        try:
            t0 = time.perf_counter()
            use_compiled_kernels(True)
            c_codes = CFLOAT8_1_4_3.encode(x, 7)
            c_values = CFLOAT8_1_4_3.quantize(x, 7)
            compile_s = round(time.perf_counter() - t0, 1)
            compiled_equal = bool(torch.equal(c_codes, eager_codes)
                                  and torch.equal(c_values.view(torch.int32),
                                                  eager_values.view(torch.int32)))
            compiled_status = "ok"
        except Exception as e:  # noqa: BLE001 - e.g. no C++ compiler; report it
            compiled_status = f"unavailable: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        finally:
            use_compiled_kernels(False)

    def compiled(fn):
        def run():
            use_compiled_kernels(True)
            try:
                return fn()
            finally:
                use_compiled_kernels(False)
        return run

    if compiled_status == "ok":
        methods["compiled_cfloat8_1_4_3_encode"] = compiled(lambda: CFLOAT8_1_4_3.encode(x, 7))
        methods["compiled_cfloat8_1_4_3_quantize"] = compiled(
            lambda: CFLOAT8_1_4_3.quantize(x, 7))
        methods["compiled_cfloat8_1_5_2_encode"] = compiled(lambda: CFLOAT8_1_5_2.encode(x, 15))

    qtorch_status = "ok"
    try:
        from qtorch.quant import float_quantize  # JIT-compiles a C++ extension on first use

        float_quantize(x[:16], exp=4, man=3, rounding="nearest")
        methods["qtorch_float_quantize_e4m3_nearest"] = \
            lambda: float_quantize(x, exp=4, man=3, rounding="nearest")
        methods["qtorch_float_quantize_e5m2_stochastic"] = \
            lambda: float_quantize(x, exp=5, man=2, rounding="stochastic")
    except Exception as e:  # noqa: BLE001 - report whatever stopped it
        qtorch_status = f"unavailable: {type(e).__name__}: {str(e).splitlines()[0][:200]}"

    for f in methods.values():  # warm up (tables, allocations)
        f()
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(args.repeats):
        for k, f in methods.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    gbps = {k: round(nbytes / v / 1e9, 3) for k, v in med.items()}

    def ratio(ours: str, theirs: str):
        return round(med[theirs] / med[ours], 2) if ours in med and theirs in med else None

    def ratios(path: str) -> dict:
        return {
            "encode_e4m3_vs_ml_dtypes_astype": ratio(f"{path}_cfloat8_1_4_3_encode",
                                                     "ml_dtypes_e4m3fn_astype"),
            "encode_e5m2_vs_ml_dtypes_astype": ratio(f"{path}_cfloat8_1_5_2_encode",
                                                     "ml_dtypes_e5m2_astype"),
            "quantize_e4m3_vs_ml_dtypes_roundtrip": ratio(f"{path}_cfloat8_1_4_3_quantize",
                                                          "ml_dtypes_e4m3fn_roundtrip"),
            "quantize_e4m3_vs_qtorch_nearest": ratio(f"{path}_cfloat8_1_4_3_quantize",
                                                     "qtorch_float_quantize_e4m3_nearest"),
        }

    speedup = {"eager": ratios("eager")}
    speedup["eager"]["encode_e5m2_stochastic_vs_qtorch_stochastic"] = ratio(
        "eager_cfloat8_1_5_2_encode_stochastic", "qtorch_float_quantize_e5m2_stochastic")
    if compiled_status == "ok":
        speedup["compiled"] = ratios("compiled")

    out = {
        "benchmark": "float32 -> CFloat8 conversion throughput",
        "elements": args.n,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "statistic": "median",
        "default_path": "eager",
        "gb_per_s": gbps,
        "speedup": speedup,
        "target_speedup_vs_ml_dtypes": 2.0,
        "eager_meets_target": bool((speedup["eager"]["encode_e4m3_vs_ml_dtypes_astype"] or 0)
                                   >= 2.0),
        "agrees_with_ml_dtypes_e4m3fn": agree,
        "compiled": compiled_status,
        "compile_seconds": compile_s,
        "compiled_bit_identical_to_eager": compiled_equal,
        "qtorch": qtorch_status,
        "torch": torch.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
