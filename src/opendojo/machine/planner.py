"""Planner and comparison: how much of a machine a video budget needs, and Dojo against GPU
clusters at equal power and at equal peak FLOPS."""

from __future__ import annotations

import math
from dataclasses import dataclass

from opendojo.atomic import atomic_path
from opendojo.machine.perf import Machine, Prediction, batch_for, build_machine, predict
from opendojo.machine.spec import Catalog, MachineError, catalog
from opendojo.machine.workload import Workload

DEFAULT_MACHINES = ("exapod", "a100_superpod", "h100_superpod", "h200_superpod")


@dataclass
class Plan:
    machine: str
    unit: str
    n_units: int
    groups: str              # "12.3 ExaPODs" / "310 DGX servers"
    prediction: Prediction
    peak_flops: float


def _groups(m: Machine, n: int, cat: Catalog) -> str:
    if m.family == "dojo":
        per = cat.count("exapod", m.unit)
        return f"{n / per:,.2f} ExaPODs"
    if m.family == "gpu":
        per = cat.count(f"dgx_{m.unit}", m.unit)
        return f"{math.ceil(n / per):,} DGX servers"
    return f"{n} hosts"


def plan(workload: Workload, machine: str, frames_per_day: float, samples_per_pflops: float,
         cat: Catalog | None = None, max_units: int = 10**8) -> Plan:
    """The fewest units of `machine` that train on `frames_per_day` frames of video a day."""
    if not frames_per_day > 0:
        raise MachineError(f"--frames-per-day must be positive, not {frames_per_day}")
    cat = cat or catalog()
    batch_per_unit = batch_for(build_machine(machine, 1, cat), samples_per_pflops)
    need = frames_per_day / 86400.0

    def fps(n: int) -> Prediction:
        return predict(workload, build_machine(machine, n, cat), batch_per_unit)

    lo, hi = 1, 1
    while fps(hi).frames_per_s < need:
        lo, hi = hi, hi * 2
        if hi > max_units:
            raise MachineError(f"{machine}: more than {max_units:,} units would be needed")
    while lo < hi:
        mid = (lo + hi) // 2
        if fps(mid).frames_per_s >= need:
            hi = mid
        else:
            lo = mid + 1
    m = build_machine(machine, hi, cat)
    p = predict(workload, m, batch_per_unit)
    return Plan(machine, m.unit, hi, _groups(m, hi, cat), p, m.total_peak_flops)


@dataclass
class Comparison:
    basis: str              # "reference" | "equal power" | "equal peak FLOPS"
    machine: str
    n_units: int
    prediction: Prediction
    peak_flops: float


def compare(workload: Workload, reference: str = "exapod", others=DEFAULT_MACHINES[1:],
            samples_per_pflops: float = 64, cat: Catalog | None = None) -> list[Comparison]:
    """The reference machine, then each other machine sized to its power and to its peak."""
    cat = cat or catalog()
    ref = build_machine(reference, cat=cat)
    rows = [Comparison("reference", reference, ref.n_units,
                       predict(workload, ref, batch_for(ref, samples_per_pflops)), ref.total_peak_flops)]
    for name in others:
        unit = build_machine(name, 1, cat)
        batch_per_unit = batch_for(unit, samples_per_pflops)
        for basis, n in (("equal power", max(1, math.floor(ref.total_power_w / unit.power_w))),
                         ("equal peak FLOPS", max(1, round(ref.total_peak_flops / unit.peak_flops)))):
            m = build_machine(name, n, cat)
            rows.append(Comparison(basis, name, n, predict(workload, m, batch_per_unit),
                                   m.total_peak_flops))
    return rows


def scaling_curve(workload: Workload, machine: str, samples_per_pflops: float, powers_w: list[float],
                  cat: Catalog | None = None) -> list[tuple[float, float]]:
    """(power in W, frames per second) for the machine sized to each power."""
    cat = cat or catalog()
    unit = build_machine(machine, 1, cat)
    batch_per_unit = batch_for(unit, samples_per_pflops)
    out = []
    for pw in powers_w:
        n = max(1, math.floor(pw / unit.power_w))
        p = predict(workload, build_machine(machine, n, cat), batch_per_unit)
        out.append((p.power_w, p.frames_per_s))
    return out


def plot_comparison(rows: list[Comparison], curves: dict[str, list[tuple[float, float]]],
                    path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5.2))
    colours = {}
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, name in enumerate(curves):
        colours[name] = palette[i % len(palette)]
        xs, ys = zip(*curves[name])
        a.plot([x / 1e6 for x in xs], [y / 1e6 for y in ys], "o-", color=colours[name], label=name)
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("cluster power (MW, hosts included)")
    a.set_ylabel("training throughput (million frames / s)")
    a.set_title("Throughput against power")
    a.grid(True, which="both", alpha=0.3)
    a.legend()

    ref = rows[0]
    labels, vals, cols = [f"{ref.machine}\n(reference)"], [ref.prediction.frames_per_s / 1e6], [colours.get(ref.machine, "grey")]
    for r in rows[1:]:
        basis = "power" if r.basis == "equal power" else "peak"
        labels.append(f"{r.machine.split('_')[0]}\n= {basis}\n{r.n_units:,}")
        vals.append(r.prediction.frames_per_s / 1e6)
        cols.append(colours.get(r.machine, "grey"))
    bars = b.bar(range(len(vals)), vals, color=cols)
    for i, r in enumerate(rows[1:], start=1):
        if r.basis == "equal peak FLOPS":
            bars[i].set_hatch("//")
    for rect, v in zip(bars, vals):
        b.annotate(f"{v:.2f}", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                   ha="center", va="bottom", fontsize=8)
    b.set_xticks(range(len(vals)))
    b.set_xticklabels(labels, fontsize=7)
    b.set_ylabel("million frames / s")
    b.set_title(f"Against one {ref.machine}: equal power (plain), equal peak FLOPS (hatched)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:   # the temporary name keeps the suffix: the format
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
