"""`dojo machine ...`: show the hardware, plan a video budget, compare Dojo with GPU clusters,
calibrate this host. Heavy imports (torch, matplotlib) happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from opendojo.cliflags import at_least, positive

machine_app = typer.Typer(help="The Dojo machine model: D1, tile, ExaPOD against GPU clusters.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(machine_app, name="machine")


def _si(v: float, unit: str) -> str:
    if v != v:  # nan
        return "-"
    for f, p in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= f:
            return f"{v / f:,.3g} {p}{unit}"
    return f"{v:,.4g} {unit}"


def _console():
    from rich.console import Console

    return Console(width=max(Console().width, 130))


# The workload is traced on this host (weights, gradients and AdamW state in fp32), so the
# network must fit it: the last conv stage's channels (width x 2^(stages-1)) and --hidden are
# bounded. At the bounds a trace takes ~2 GB and ~30 s; past them it ran out of memory.
MAX_CHANNELS = 2048
MAX_HIDDEN = 4096
# Samples per step per PFLOPS of a unit's peak: a tile gets ~580, an H100 ~63 (docs/machine.md).
MAX_SAMPLES_PER_PFLOPS = 1e5
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _workload(width: int, stages: int, hidden: int):
    from opendojo.errors import ConfigError
    from opendojo.machine.workload import policy_workload

    for flag, value in (("--width", width), ("--stages", stages), ("--hidden", hidden)):
        at_least(flag, value)
    if stages > MAX_CHANNELS.bit_length() or width << (stages - 1) > MAX_CHANNELS:
        raise ConfigError(f"--width {width} --stages {stages}: the last conv stage would have "
                          f"width x 2^(stages-1) = {width} x 2^{stages - 1} channels; at most "
                          f"{MAX_CHANNELS:,} are traced on this host")
    if hidden > MAX_HIDDEN:
        raise ConfigError(f"--hidden {hidden}: at most {MAX_HIDDEN:,}")
    return policy_workload(width=width, stages=stages, hidden=hidden, batch=1)


@machine_app.command()
def show(name: str = typer.Argument("exapod", help="a level: training_node, d1, tile, dip, "
                                    "system_tray, cabinet, exapod, a100, dgx_h100, h100_superpod, host ...")):
    """The hierarchy under a level with figures derived from its parts, checked against the
    published ones, and each figure's source (⚠ = weak source)."""
    from rich.table import Table

    from opendojo.machine.spec import catalog

    cat = catalog()
    lv = cat.get(name)
    con = _console()
    t = Table(title=f"{lv.title}: hierarchy (figures derived from parts)")
    for col in ("level", "count", "total", "BF16 peak", "SRAM", "HBM", "power", "nodes"):
        t.add_column(col, justify="left" if col == "level" else "right")
    for depth, n, count in cat.tree(lv.name):
        d = cat.derived(n)
        total = cat.count(lv.name, n)
        t.add_row("  " * depth + n, f"{count:,}", f"{total:,}", _si(d.get("bf16_flops", float("nan")), "FLOPS"),
                  _si(d.get("sram_bytes", float("nan")), "B"), _si(d.get("hbm_bytes", float("nan")), "B"),
                  _si(cat.power_w(n) or float("nan"), "W"), f"{d['nodes']:,.0f}" if "nodes" in d else "-")
    con.print(t)
    checks = cat.checks(lv.name)
    if checks:
        c = Table(title="derived vs published")
        for col in ("figure", "derived", "published", "difference", "source"):
            c.add_column(col)
        for k, dv, pv, err in checks:
            f = lv.published[k]
            unit = f.unit if f.unit != "node" else ""
            fmt = (lambda v: f"{v:,.0f}") if k == "nodes" else (lambda v: _si(v, unit))
            c.add_row(k, fmt(dv), fmt(pv), f"{err:+.2%}", (f.weak + " " if f.weak else "") + f.source)
        con.print(c)
    s = Table(title=f"{lv.name}: own figures")
    for col in ("figure", "value", "source"):
        s.add_column(col)
    for k, f in lv.figures.items():
        s.add_row(k, _si(f.value, f.unit), (f.weak + " " if f.weak else "") + f.source)
    if lv.figures:
        con.print(s)


@machine_app.command()
def plan(frames_per_day: float = typer.Option(160e9, help="video frames to train on per day"),
         machine: list[str] = typer.Option(None, "--machine", "-m", help="machines to plan (repeatable)"),
         samples_per_pflops: float = typer.Option(64.0, help="samples per step per PFLOPS of a unit's peak (a tile gets ~580, an H100 ~63)"),
         width: int = typer.Option(32), stages: int = typer.Option(4), hidden: int = typer.Option(256),
         peak_flops: Optional[float] = typer.Option(None, help="also: how many D1 / A100 / H100 reach this peak (e.g. 100e18)")):
    """How many tiles / ExaPODs vs GPUs train on `frames_per_day` of video a day, at what power."""
    from rich.table import Table

    from opendojo.machine.planner import DEFAULT_MACHINES, plan as make_plan
    from opendojo.machine.spec import catalog, units_for_flops

    positive("--samples-per-pflops", samples_per_pflops, MAX_SAMPLES_PER_PFLOPS)
    positive("--frames-per-day", frames_per_day)
    if peak_flops is not None:
        positive("--peak-flops", peak_flops)
    w = _workload(width, stages, hidden)
    con = _console()
    if peak_flops is not None:
        t = Table(title=f"units for {_si(peak_flops, 'FLOPS')} peak BF16")
        for col in ("unit", "per unit (published)", "units"):
            t.add_column(col)
        cat = catalog()
        for n in ("d1", "tile", "a100", "h100", "h200"):
            lv = cat.get(n)
            per = lv.published.get("bf16_flops") or lv.figures.get("bf16_flops")
            t.add_row(n, _si(per.value, "FLOPS"), f"{units_for_flops(peak_flops, n, cat):,}")
        con.print(t)
    t = Table(title=f"{frames_per_day:.3g} frames/day ({frames_per_day / 86400:,.0f} frames/s) of {w.label}, "
                    f"{samples_per_pflops:g} samples per PFLOPS per unit, {w.frames_per_sample} frames per sample")
    for col in ("machine", "units", "as", "peak", "power", "step", "util.", "frames/s", "energy/day"):
        t.add_column(col, justify="right")
    for name in machine or DEFAULT_MACHINES:
        p = make_plan(w, name, frames_per_day, samples_per_pflops)
        pr = p.prediction
        t.add_row(name, f"{p.n_units:,} {p.unit}", p.groups, _si(p.peak_flops, "FLOPS"), _si(pr.power_w, "W"),
                  f"{pr.step_s * 1e3:.2f} ms", f"{pr.utilisation:.1%}", f"{pr.frames_per_s:,.0f}",
                  f"{pr.power_w * 86400 / 3.6e9:,.1f} MWh")
    con.print(t)


@machine_app.command()
def compare(reference: str = typer.Option("exapod", help="the Dojo machine to compare against"),
            machine: list[str] = typer.Option(None, "--machine", "-m", help="GPU clusters (repeatable)"),
            samples_per_pflops: float = typer.Option(64.0, help="samples per step per PFLOPS of a unit's peak"), width: int = typer.Option(32),
            stages: int = typer.Option(4), hidden: int = typer.Option(256),
            usd_per_kwh: Optional[float] = typer.Option(None, help="electricity price, for energy cost"),
            plot: Optional[Path] = typer.Option(None, help="write the plot here (.png, .svg or .pdf)")):
    """Dojo against GPU clusters at equal power and at equal peak FLOPS."""
    from rich.table import Table

    from opendojo.atomic import check_target
    from opendojo.machine.planner import DEFAULT_MACHINES, compare as cmp, plot_comparison, scaling_curve
    from opendojo.machine.spec import MachineError

    positive("--samples-per-pflops", samples_per_pflops, MAX_SAMPLES_PER_PFLOPS)
    if usd_per_kwh is not None:
        positive("--usd-per-kwh", usd_per_kwh, zero_ok=True)
    if plot is not None:
        if plot.suffix.lower() not in PLOT_SUFFIXES:
            raise MachineError(f"--plot {plot}: give a file name ending in {', '.join(PLOT_SUFFIXES)} "
                               f"(the suffix picks the format)")
        check_target(plot)
    others = machine or list(DEFAULT_MACHINES[1:])
    w = _workload(width, stages, hidden)
    rows = cmp(w, reference, others, samples_per_pflops)
    t = Table(title=f"{w.label}, {samples_per_pflops:g} samples per PFLOPS of a unit's peak per step")
    for col in ("basis", "machine", "units", "peak", "power", "step", "breakdown f/b/opt/comm", "util.",
                "frames/s", "J/frame") + (("$/1e9 frames",) if usd_per_kwh else ()):
        t.add_column(col, justify="right")
    for r in rows:
        p = r.prediction
        b = p.breakdown
        cells = [r.basis, r.machine, f"{r.n_units:,}", _si(r.peak_flops, "FLOPS"), _si(p.power_w, "W"),
                 f"{p.step_s * 1e3:.2f} ms",
                 f"{b['forward_s'] * 1e3:.2f}/{b['backward_s'] * 1e3:.2f}/{b['optimizer_s'] * 1e3:.2f}/{b['allreduce_exposed_s'] * 1e3:.2f}",
                 f"{p.utilisation:.1%}", f"{p.frames_per_s:,.0f}", f"{p.energy_j / (p.frames_per_s * p.step_s):.3g}"]
        if usd_per_kwh:
            cells.append(f"{usd_per_kwh * p.energy_j / 3.6e6 / (p.frames_per_s * p.step_s) * 1e9:,.2f}")
        t.add_row(*cells)
    con = _console()
    con.print(t)
    con.print(f"memory: {rows[0].machine} working set {_si(rows[0].prediction.working_set_bytes, 'B')} per unit "
              f"in {rows[0].prediction.memory_level}")
    if plot:
        powers = [rows[0].prediction.power_w * f for f in (0.1, 0.3, 1, 3, 10)]
        curves = {n: scaling_curve(w, n, samples_per_pflops, powers) for n in [reference] + others}
        plot_comparison(rows, curves, plot, f"{w.label}, {samples_per_pflops:g} samples per PFLOPS of peak, "
                                            f"bf16; model assumptions in docs/machine.md")
        con.print(f"plot: {plot}")


@machine_app.command()
def calibrate(out: Optional[Path] = typer.Option(None, help="where to write the host spec (default: user cache)"),
              threads: int = typer.Option(1, help="torch intra-op threads (1 is steadiest on a shared machine)"),
              quick: bool = typer.Option(False, help="smaller, faster microbenchmarks")):
    """Measure this machine (matmul, conv table, memory bandwidth, per-op cost) into a `host` spec."""
    from opendojo.machine.calibrate import calibrate as run

    at_least("--threads", threads)
    m, path = run(out, threads, quick)
    con = _console()
    con.print(f"matmul {_si(m['matmul_flops'], 'FLOP/s')}, memory {_si(m['memory_bandwidth'], 'B/s')}, "
              f"per-op {m['op_overhead_s'] * 1e6:.1f} us, {len(m['conv_table'])} conv cells, "
              f"{m['threads']} thread(s)")
    con.print(f"host spec: {path}")
