"""The report's plots (matplotlib, Agg): training curves and closed-loop results."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from opendojo.atomic import atomic_path  # noqa: E402

COLORS = {"network": "#d62728", "expert": "#2ca02c", "fleet (humans)": "#7f7f7f"}


def _save(fig, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_curves(runs: dict[str, list[dict]], path: Path) -> Path | None:
    """Loss (train and held-out, where logged) against step, one line per training run
    (a demo has one; a flywheel one per round, labelled by the dict's keys)."""
    runs = {name: m for name, m in runs.items() if any("loss" in r and "step" in r for r in m)}
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, metrics in runs.items():
        prefix = f"{name}: " if len(runs) > 1 else ""
        train = [m for m in metrics if "loss" in m and "step" in m]
        ax.plot([m["step"] for m in train], [m["loss"] for m in train], label=f"{prefix}train loss", lw=1.2)
        for key in ("val_loss", "heldout_loss"):
            pts = [m for m in metrics if key in m]
            if pts:
                ax.plot([m["step"] for m in pts], [m[key] for m in pts], "o-",
                        label=prefix + key.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("training")
    return _save(fig, path)


def _value(v) -> float:
    """A summary figure as a float; null (undefined, see `opendojo.atomic.write_json`) as NaN."""
    return float("nan") if v is None else float(v)


def closed_loop_bars(summary: dict[str, dict], path: Path) -> Path:
    """Driving score (with CI) and collisions per km for each driver."""
    names = list(summary)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    colors = [COLORS.get(n, "#1f77b4") for n in names]
    scores = [_value(summary[n].get("score")) for n in names]
    ci = [list(summary[n].get("score_ci") or [None, None]) for n in names]
    lo = [s - _value(c[0]) for s, c in zip(scores, ci)]
    hi = [_value(c[1]) - s for s, c in zip(scores, ci)]
    a1.bar(names, scores, yerr=[lo, hi], color=colors, capsize=3)
    a1.set_ylabel("driving score (95% CI)")
    a1.set_ylim(0, 1.05)
    # undefined rates (null in the JSON: no km driven) draw no bar
    a2.bar(names, [_value(summary[n].get("collisions_per_km")) for n in names], color=colors)
    a2.set_ylabel("collisions per km")
    for ax in (a1, a2):
        ax.tick_params(axis="x", rotation=35)
        for lab in ax.get_xticklabels():
            lab.set_ha("right")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("closed loop, held-out suite")
    return _save(fig, path)
