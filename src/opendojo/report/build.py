"""`dojo report RUN_DIR`: one static HTML page (plus assets/) from a run directory.

A run directory (written by `dojo demo` and `dojo loop`) may hold:

    run.json            name, config, code version, stage timings
    fleet_stats.json    what the fleet produced (`opendojo.fleet.stats.fleet_stats`)
    train/              the trainer's run dir (metrics.jsonl, checkpoints/)
    round-N/train/      a flywheel's rounds' trainer run dirs (instead of train/)
    open_loop.json      {"rows": {predictor: {metric: value}}}
    closed_loop.json    {"summary": {driver: suite summary}, "episodes": [...], "seeds": "a..b"}
    assets/clips/*.gif, assets/rollouts/*.gif   (captions in assets/captions.json)

Every section is optional: the page shows what the run has; but a directory with none of
the files above at its top (`RUN_FILES`: an empty one, a `dojo train` run dir) is refused,
and nothing is written into it. Figures that can be undefined (collisions per km over 0 km)
are null in the JSON (`opendojo.atomic.write_json`) and shown as "–".
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from opendojo.atomic import write_text
from opendojo.errors import DojoError
from opendojo.report.plots import closed_loop_bars, read_metrics, training_curves
from opendojo.runs import DEMO_RUN_FILES, LOOP_RUN_FILES, TRAIN_RUN_FILES, found


# What `dojo demo` and `dojo loop` write at the top of a run directory: one at least must be there.
RUN_FILES = (*DEMO_RUN_FILES, *LOOP_RUN_FILES)


def _load(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DojoError(f"{path}: unreadable ({str(e).splitlines()[0]})") from None


def defined(value) -> bool:
    """A figure that can be shown: a finite number (not null in the JSON, NaN or absent)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def num(value, fmt: str = "%.2f", missing: str = "–") -> str:
    """A figure formatted, or `missing` where it is undefined."""
    return fmt % value if defined(value) else missing


def _verdict(summary: dict) -> str:
    net, fleet, expert = summary.get("network"), summary.get("fleet (humans)"), summary.get("expert")
    if not net:
        return "No network was evaluated in this run."
    ci = net.get("score_ci") or [None, None]
    parts = [f"Network driving score {num(net['score'], '%.3f')} "
             f"(CI {num(ci[0], '%.3f')}–{num(ci[1], '%.3f')})"]
    if fleet:
        both = defined(net["score"]) and defined(fleet["score"])
        better = ("beats" if net["score"] > fleet["score"] else "does not beat") if both else "vs"
        parts.append(f"{better} the fleet-average human's {num(fleet['score'], '%.3f')}")
    if expert:
        parts.append(f"against the expert's {num(expert['score'], '%.3f')}")
    tail = f"; {num(net['collisions_per_km'])} collisions/km"
    if fleet:
        tail += f" vs the fleet's {num(fleet['collisions_per_km'])}"
    return ", ".join(parts) + tail + "."


def _training_runs(run: Path) -> dict[str, list[dict]]:
    """The metrics of the run's training: `train/` (a demo) or each `round-N/train/` (a loop)."""
    if (run / "train" / "metrics.jsonl").exists():
        return {"train": read_metrics(run / "train" / "metrics.jsonl")}
    rounds = {int(m[1]): p for p in run.glob("round-*") if (m := re.fullmatch(r"round-(\d+)", p.name))}
    return {f"round {k}": read_metrics(rounds[k] / "train" / "metrics.jsonl") for k in sorted(rounds)}


def build_report(run_dir: str | Path) -> Path:
    run = Path(run_dir)
    if not run.is_dir():
        raise DojoError(f"{run}: no such run directory")
    if not found(run, RUN_FILES):
        hint = " (it looks like a `dojo train` run dir or its checkpoints)" \
            if found(run, TRAIN_RUN_FILES) else ""
        raise DojoError(f"{run}: not a run directory of `dojo demo` or `dojo loop`{hint}: "
                        f"found none of {', '.join(RUN_FILES)}")
    meta = _load(run / "run.json") or {}
    assets = run / "assets"
    captions = _load(assets / "captions.json") or {}
    plots = {}
    curve = training_curves(_training_runs(run), assets / "training.png")
    if curve:
        plots["training"] = curve.relative_to(run).as_posix()
    closed = _load(run / "closed_loop.json")
    if closed:
        plots["closed"] = closed_loop_bars(closed["summary"], assets / "closed_loop.png").relative_to(run).as_posix()
        closed["verdict"] = _verdict(closed["summary"])
        by: dict[str, dict[str, list]] = {}
        for e in closed.get("episodes", []):
            key = e["scenario"] + (f" + {e['rare_event']}" if e["rare_event"] else "")
            by.setdefault(key, {}).setdefault(e["driver"], []).append(e["score"])
        closed["by_scenario"] = {k: {d: sum(v) / len(v) for d, v in row.items()} for k, row in sorted(by.items())}
        drivers = list(closed["summary"])
        closed["by_scenario_drivers"] = [d for d in drivers if not d.startswith("fleet")]

    def gifs(sub: str) -> list[dict]:
        folder = assets / sub
        return [{"path": p.relative_to(run).as_posix(), "caption": captions.get(p.name, p.stem),
                 "width": 288} for p in sorted(folder.glob("*.gif"))] if folder.is_dir() else []

    stats = _load(run / "fleet_stats.json")
    data = None
    if stats:
        data = {
            "summary": f"{stats['clips']} clips, {stats['frames']} frames, {stats['hours']} h, "
                       f"{stats['km']} km from {stats['vehicles']} vehicles and {stats['drivers']} drivers.",
            "tables": [("scenario", stats["scenario"]), ("route", stats["route"]),
                       ("driver profile (sim truth)", stats["sim_truth"]["driver_profile"]),
                       ("rare event (sim truth)", stats["sim_truth"]["rare_event"])],
            "gifs": gifs("clips"),
        }
    loop = _load(run / "loop.json")
    rounds = None
    if loop and loop.get("rounds"):
        rounds = {"rows": [{"round": r["round"], "score": r["closed_loop"]["score"],
                            "ci": r["closed_loop"]["score_ci"],
                            "collisions_per_km": r["closed_loop"]["collisions_per_km"],
                            "km": r["closed_loop"]["km"], "clips": r["selection"].get("clips"),
                            "dataset": r["dataset"],
                            "takeovers": ((r.get("deploy") or {}).get("safety") or {}).get("takeovers", "–"),
                            "uploaded": sum(v.get("uploaded", 0) for v in (r.get("deploy") or {}).values()),
                            "vs_round_1": r.get("vs_round_1"),
                            "seconds": r["seconds"]} for r in loop["rounds"]],
                  "baselines": loop.get("baselines") or {}}
        if not closed and rounds["baselines"] and \
                (last := _load(run / f"round-{loop['rounds'][-1]['round']}" / "closed_loop.json")):
            summary = {"network": last["summary"]["network"], **rounds["baselines"]}
            plots["closed"] = closed_loop_bars(summary, assets / "closed_loop.png").relative_to(run).as_posix()
            closed = {"summary": summary, "verdict": _verdict(summary), "seeds": last.get("seeds", ""),
                      "by_scenario": {}, "by_scenario_drivers": []}
    train_meta = _load(run / "train" / "summary.json")
    env = Environment(loader=FileSystemLoader(Path(__file__).parent),
                      autoescape=select_autoescape(["html"]))
    env.filters["num"] = num
    html = env.get_template("template.html").render(
        run={"name": meta.get("name", run.name), "created_at": meta.get("created_at", ""),
             "code_version": meta.get("code_version", "?"),
             "total_s": sum((meta.get("stages") or {}).values()),
             "config_text": json.dumps({"config": meta.get("config"), "stages_s": meta.get("stages")},
                                       indent=2)},
        closed=closed, open_loop=_load(run / "open_loop.json"), plots=plots, data=data, rounds=rounds,
        rollouts=gifs("rollouts"),
        training=(", ".join(f"{k}: {v}" for k, v in train_meta.items()) if train_meta else ""),
    )
    return write_text(run / "report.html", html)
