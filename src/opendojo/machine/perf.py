"""The performance model: a training step's time, throughput, utilisation, energy and cost on a
machine. Every assumption is listed in docs/machine.md ("Assumptions"); the code names them.

A machine is `n_units` data-parallel units (a D1, a tile, a GPU, or this host) joined by levels
of links. Each unit runs the whole step on its share of the batch:
  - per operator, a roofline: time = max(FLOPs / (peak x compute efficiency),
    bytes / (bandwidth x memory efficiency)) + a fixed per-operator cost;
  - the bandwidth is the SRAM's while the working set (weights, grads, optimizer state,
    activations) fits in the unit's SRAM, else a blend of SRAM and DIP HBM weighted by the part
    that spills (Dojo); HBM on GPUs;
  - the gradient all-reduce is a hierarchical ring (2D tile mesh then Z-plane Ethernet on Dojo;
    NVLink then InfiniBand on GPUs), overlapped with the backward pass.
On the calibrated `host`, the operator costs come from its microbenchmark tables instead.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field

from opendojo.machine.spec import Catalog, MachineError, catalog
from opendojo.machine.workload import Workload

DOJO_UNITS = {"d1": ("d1", 1), "tile": ("tile", 1), "system_tray": ("tile", 6),
              "cabinet": ("tile", 12), "exapod": ("tile", 120)}
LOW_PRECISION_BYTES = 0.5   # bf16 activations vs the fp32 trace (A1 in docs)


@dataclass(frozen=True)
class LinkLevel:
    name: str
    size: int           # units per group at this level
    bandwidth: float    # B/s per unit, one direction
    latency_s: float


@dataclass
class Machine:
    name: str
    title: str
    family: str                  # dojo | gpu | host
    unit: str
    n_units: int
    peak_flops: float            # per unit (bf16 on Dojo/GPU, fp32 matmul on the host)
    fast_bytes: float            # SRAM per unit (Dojo); HBM (GPU); inf on the host
    fast_bandwidth: float
    slow_bandwidth: float        # where a working set that does not fit spills to
    compute_efficiency: float
    memory_efficiency: float
    op_overhead_s: float
    power_w: float               # per unit, its share of hosts and servers included
    levels: list[LinkLevel] = field(default_factory=list)
    overlap: float = 1.0         # fraction of the backward pass the all-reduce can hide behind
    low_precision: bool = True
    host_figures: dict = field(default_factory=dict)

    @property
    def total_power_w(self) -> float:
        return self.power_w * self.n_units

    @property
    def total_peak_flops(self) -> float:
        return self.peak_flops * self.n_units


def _levels(n: int, groups: list[tuple[str, int, float, float]]) -> list[LinkLevel]:
    out, rest = [], n
    for name, size, bw, lat in groups:
        k = min(rest, size) if size else rest
        if k > 1:
            out.append(LinkLevel(name, k, bw, lat))
        rest = math.ceil(rest / max(k, 1))
    return out


def build_machine(name: str, n_units: int | None = None, cat: Catalog | None = None) -> Machine:
    """A machine by spec name; n_units overrides the count (the planner scales machines)."""
    cat = cat or catalog()
    lv = cat.get(name)
    if n_units is not None and n_units < 1:
        raise MachineError(f"a machine needs at least one unit, not {n_units}")
    if lv.family == "host":
        d = cat.derived("host")
        return Machine("host", lv.title, "host", "host", 1, d["fp32_flops"], math.inf,
                       d["memory_bandwidth"], d["memory_bandwidth"], 1.0, 1.0, d["op_overhead_s"],
                       0.0, [], 1.0, False, d)
    if lv.family == "dojo":
        if lv.name not in DOJO_UNITS:
            raise MachineError(f"{name} is a part, not a machine that trains; use one of {', '.join(DOJO_UNITS)}")
        unit, n = DOJO_UNITS[lv.name]
        n = n_units or n
        tiles_per_tray = cat.count("system_tray", "tile")
        dips_per_tile = cat.count("system_tray", "dip") / tiles_per_tray
        dip = cat.derived("dip")
        u = cat.derived(unit)
        tile_share = 1.0 / cat.count("tile", unit) if unit != "tile" else 1.0
        tiles_per_pod = cat.count("exapod", "tile")
        if unit == "tile":
            links = _levels(n, [("2D tile mesh", tiles_per_pod, cat.derived("tile")["offtile_bandwidth_per_edge"], 1e-6),
                                ("Z-plane (TTP over Ethernet)", 0, dips_per_tile * dip["ethernet_bandwidth"], 5e-6)])
        else:
            links = _levels(n, [("D1 mesh in a tile", cat.count("tile", "d1"), u["offchip_bandwidth_per_edge"], 1e-6),
                                ("2D tile mesh", tiles_per_pod, cat.derived("tile")["offtile_bandwidth_per_edge"] * tile_share, 1e-6)])
        return Machine(lv.name, lv.title, "dojo", unit, n, u["bf16_flops"], u["sram_bytes"],
                       u["sram_bandwidth"], dips_per_tile * dip["hbm_bandwidth"] * tile_share,
                       u["compute_efficiency"], u["memory_efficiency"], u["op_overhead_s"],
                       cat.power_w("system_tray") / tiles_per_tray * tile_share, links, 1.0)
    if lv.family == "gpu":
        gpus = [p for p in ("a100", "h100", "h200") if cat.count(lv.name, p)]
        if not gpus:
            raise MachineError(f"{name} holds no GPU")
        gpu = gpus[0]
        server = f"dgx_{gpu}"
        n = n_units or cat.count(lv.name, gpu)
        per_server = cat.count(server, gpu)
        g, s = cat.derived(gpu), cat.derived(server)
        links = _levels(n, [("NVLink", per_server, g["nvlink_bandwidth"] / 2, 2e-6),
                            ("InfiniBand", 0, s["network_bandwidth"] / per_server, 5e-6)])
        return Machine(lv.name, lv.title, "gpu", gpu, n, g["bf16_flops"], g["hbm_bytes"],
                       g["hbm_bandwidth"], g["hbm_bandwidth"], g["compute_efficiency"],
                       g["memory_efficiency"], g["op_overhead_s"],
                       cat.power_w(server) / per_server, links, 0.9)
    raise MachineError(f"{name} has no family the model knows ({lv.family!r})")


def allreduce_time(grad_bytes: float, levels: list[LinkLevel]) -> float:
    """Hierarchical ring all-reduce: at each level 2(k-1)/k of the bytes cross each unit's link;
    the next level reduces 1/k of them (A6 in docs)."""
    t, nbytes = 0.0, float(grad_bytes)
    for lv in levels:
        k = lv.size
        t += 2 * (k - 1) / k * nbytes / lv.bandwidth + 2 * (k - 1) * lv.latency_s
        nbytes /= k
    return t


# -- the host's microbenchmark tables -------------------------------------------------------

class HostTables:
    def __init__(self, figs: dict):
        self.overhead = figs["op_overhead_s"]
        self.matmul = figs["fp32_flops"]
        mem = sorted((int(m.group(1)), v) for k, v in figs.items()
                     if (m := re.fullmatch(r"memory_bandwidth_at_(\d+)", k)))
        # keyed by total bytes of the op (the benchmark moved 3 tensors of `size`)
        self.mem_x = [math.log(3 * s) for s, _ in mem]
        self.mem_t = [3 * s / bw for s, bw in mem]   # seconds beyond the fixed cost
        self.tables: dict[int, tuple[list[int], dict[int, list[tuple[int, float]]]]] = {}
        for stride in (1, 2):
            conv: dict[int, list[tuple[int, float]]] = {}
            for k, v in figs.items():
                if (m := re.fullmatch(r"conv_flops_s(\d+)_c(\d+)_m(\d+)", k)) and int(m.group(1)) == stride:
                    conv.setdefault(int(m.group(2)), []).append((int(m.group(3)), v))
            if conv:
                self.tables[stride] = (sorted(conv), {c: sorted(v) for c, v in conv.items()})
        if 1 not in self.tables or not mem:
            raise MachineError("the host spec lacks calibration tables; run `dojo machine calibrate`")

    @staticmethod
    def _interp(xs: list[float], ys: list[float], x: float) -> float:
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, x)
        f = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
        return ys[i - 1] + f * (ys[i] - ys[i - 1])

    def memory_time(self, nbytes: float) -> float:
        """Time of a memory-bound op moving nbytes: interpolate the measured bandwidth in
        log-size (seconds per byte), extrapolating the DRAM figure beyond the largest size."""
        if nbytes <= 0:
            return 0.0
        xs = self.mem_x
        per_byte = [t / math.exp(x) for x, t in zip(xs, self.mem_t)]
        return nbytes * self._interp(xs, per_byte, math.log(nbytes))

    def conv_rate(self, channels: float, rows: float, stride: int = 1) -> float:
        """Conv FLOP/s at (channels, output positions): bilinear in log-log over the table of
        the stride (stride 1's table for strides without one)."""
        conv_c, conv = self.tables.get(stride, self.tables[1])

        def rate_at(c: int) -> float:
            pts = conv[c]
            return math.exp(self._interp([math.log(m) for m, _ in pts],
                                         [math.log(r) for _, r in pts], math.log(max(rows, 1))))
        cs = conv_c
        lc = [math.log(c) for c in cs]
        vals = [math.log(rate_at(c)) for c in cs]
        return math.exp(self._interp(lc, vals, math.log(max(channels, 1))))


# -- prediction -----------------------------------------------------------------------------

@dataclass
class Prediction:
    machine: str
    n_units: int
    batch_per_unit: int
    global_batch: int
    step_s: float
    breakdown: dict[str, float]
    samples_per_s: float
    frames_per_s: float
    utilisation: float           # model FLOPs / (step time x peak FLOPS of all units)
    energy_j: float
    power_w: float
    working_set_bytes: float
    fast_memory_bytes: float
    fits_sram: bool
    spill_fraction: float
    memory_level: str
    cost_usd: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _op_time(o, m: Machine, bw: float, tables: HostTables | None) -> float:
    if tables is not None:      # the host: its measured tables
        if o.kind == "view":
            return tables.overhead
        if o.kind == "conv":
            return o.flops / tables.conv_rate(o.channels, o.rows, o.stride)
        if o.kind == "matmul":
            return tables.overhead + max(o.flops / tables.matmul, tables.memory_time(o.bytes))
        return tables.overhead + tables.memory_time(o.bytes)
    if o.kind == "view":
        return 0.0
    scale = LOW_PRECISION_BYTES if (m.low_precision and o.phase != "optimizer") else 1.0
    t_mem = o.bytes * scale / (bw * m.memory_efficiency)
    t_cmp = o.flops / (m.peak_flops * m.compute_efficiency) if o.flops else 0.0
    return m.op_overhead_s + max(t_cmp, t_mem)


def batch_for(machine: Machine, samples_per_pflops: float) -> int:
    """Samples per unit per step, in proportion to the unit's peak (A10 in docs)."""
    return max(1, round(samples_per_pflops * machine.peak_flops / 1e15))


def predict(workload: Workload, machine: Machine, batch_per_unit: int | None = None,
            usd_per_unit_hour: float | None = None, usd_per_kwh: float | None = None) -> Prediction:
    m = machine
    w = workload.at_batch(batch_per_unit) if batch_per_unit else workload
    tables = HostTables(m.host_figures) if m.family == "host" else None
    act = w.activation_bytes * (LOW_PRECISION_BYTES if m.low_precision else 1.0)
    ws = w.param_bytes + w.grad_bytes + w.optimizer_bytes + act
    fits = ws <= m.fast_bytes
    spill = 0.0 if fits else (ws - m.fast_bytes) / ws
    if m.family == "dojo":
        bw = 1.0 / ((1 - spill) / m.fast_bandwidth + spill / m.slow_bandwidth)
        level = "SRAM" if fits else f"SRAM + DIP HBM ({spill:.0%} spilled)"
    else:
        bw = m.fast_bandwidth
        level = "HBM" if m.family == "gpu" else "DRAM"
        if m.family == "gpu" and not fits:
            raise MachineError(f"the working set ({ws / 1e9:.1f} GB) does not fit one {m.unit}'s "
                               f"{m.fast_bytes / 1e9:.0f} GB; use a smaller batch per GPU")
    phase = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for o in w.ops:
        if tables is None and o.phase == "optimizer":
            continue
        phase[o.phase] += _op_time(o, m, bw, tables)
    if tables is None:  # accelerators run a fused optimizer: one pass over its bytes (A9)
        opt_bytes = sum(o.bytes for o in w.ops if o.phase == "optimizer" and o.kind != "view")
        phase["optimizer"] = m.op_overhead_s + opt_bytes / (bw * m.memory_efficiency)
    comm = allreduce_time(w.grad_bytes, m.levels) if m.n_units > 1 else 0.0
    exposed = max(0.0, comm - m.overlap * phase["backward"])
    step = phase["forward"] + phase["backward"] + phase["optimizer"] + exposed
    gb = w.batch * m.n_units
    energy = m.total_power_w * step
    cost = None
    if usd_per_unit_hour is not None or usd_per_kwh is not None:
        cost = ((usd_per_unit_hour or 0.0) * m.n_units * step / 3600
                + (usd_per_kwh or 0.0) * energy / 3.6e6)
    return Prediction(
        m.name, m.n_units, w.batch, gb, step,
        {"forward_s": phase["forward"], "backward_s": phase["backward"],
         "optimizer_s": phase["optimizer"], "allreduce_s": comm, "allreduce_exposed_s": exposed},
        gb / step, gb * w.frames_per_sample / step,
        w.flops * m.n_units / (step * m.total_peak_flops), energy, m.total_power_w, ws,
        m.fast_bytes, fits, spill, level, cost)
