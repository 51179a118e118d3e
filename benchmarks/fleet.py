"""Fleet generation against raw highway-env stepping + rendering, in the same run.

reference ("raw"): for the same clip tasks (scenario, episode seed, rare event, length), one
process builds the same highway-env environment (same config: frequencies, vehicles,
render window) and, per frame, calls highway-env's own `env.render()` and steps it with a
constant command: the simulator and renderer alone.
ours: `opendojo.fleet.generate.generate` for those tasks into a fresh store with 1 and
with 2 worker processes: drivers, ego camera, H.264 encoding, atomic file writes, process
start-up, sim truth and the catalog commit included.

overhead = raw frames/s / ours(1 worker) frames/s - 1 (target <= 0.15);
speedup_2_workers = ours(1) / ours(2) (target >= 1.8 on 2 free cores). Medians over
--repeat runs.

render ("render_*" keys; `--only render` runs just this): the camera's cached road
(`RoadTiles`, `render_ego_view(..., cached_road=True)`) against highway-env's full redraw
(`cached_road=False`), in one process, interleaved clip by clip (the order alternating), on
the same clip tasks recorded with `record_clip` (env, driver, camera; no encoding or store):
ms per rendered frame (wall and CPU, medians over --repeat), clip frames/s with each, and
whether the two produced the same frames. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import opendojo  # noqa: E402,F401  (SDL settings before pygame)
from opendojo.fleet.config import FleetConfig  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and its finished children (robust on a busy machine)."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def raw_run(config: FleetConfig) -> tuple[float, int]:
    from opendojo.fleet.env import make_env, step_command
    from opendojo.fleet.generate import plan_clips

    t0 = time.perf_counter()
    frames = 0
    for task in plan_clips(config):
        env = make_env(task.scenario, task.seed, config, rare_event=task.rare_event)
        for _ in range(task.n_frames):
            env.render()
            step_command(env, 0.0, 0.0)
            frames += 1
        env.close()
    return time.perf_counter() - t0, frames


def ours_run(config: FleetConfig, workers: int) -> tuple[float, int]:
    from opendojo.fleet.generate import generate

    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as d:
        t0 = time.perf_counter()
        summary = generate(str(Path(d) / "store"), config.model_copy(update={"workers": workers}),
                           progress=False)
        return time.perf_counter() - t0, summary["frames"]


def render_compare(config: FleetConfig, repeat: int) -> dict:
    """Old (full redraw) vs new (cached road) camera, interleaved, same process."""
    import functools

    import numpy as np

    import opendojo.fleet.recorder as recorder
    from opendojo.fleet.camera import render_ego_view
    from opendojo.fleet.generate import plan_clips

    tasks = plan_clips(config)
    clock = {"wall": 0.0, "cpu": 0.0}

    def timed(cached: bool):
        fn = functools.partial(render_ego_view, cached_road=cached)

        def render(env, camera):
            w0, c0 = time.perf_counter(), time.process_time()
            out = fn(env, camera)
            clock["wall"] += time.perf_counter() - w0
            clock["cpu"] += time.process_time() - c0
            return out
        return render

    original = recorder.render_ego_view
    per = {p: {"render_wall": [], "render_cpu": [], "clip_wall": [], "clip_cpu": []}
           for p in ("old", "new")}
    identical = True
    frames = 0
    try:
        for r in range(repeat):
            tot = {p: {"render_wall": 0.0, "render_cpu": 0.0, "clip_wall": 0.0, "clip_cpu": 0.0}
                   for p in ("old", "new")}
            frames = 0
            for k, task in enumerate(tasks):
                order = ("old", "new") if (k + r) % 2 == 0 else ("new", "old")
                clips = {}
                for path in order:
                    recorder.render_ego_view = timed(path == "new")
                    clock["wall"] = clock["cpu"] = 0.0
                    w0, c0 = time.perf_counter(), time.process_time()
                    clips[path] = recorder.record_clip(task, config)
                    tot[path]["clip_wall"] += time.perf_counter() - w0
                    tot[path]["clip_cpu"] += time.process_time() - c0
                    tot[path]["render_wall"] += clock["wall"]
                    tot[path]["render_cpu"] += clock["cpu"]
                identical &= bool(np.array_equal(clips["old"].frames, clips["new"].frames))
                frames += len(clips["new"].frames)
            for p in per:
                for key in per[p]:
                    per[p][key].append(tot[p][key])
    finally:
        recorder.render_ego_view = original
    med = {p: {key: statistics.median(v) for key, v in d.items()} for p, d in per.items()}
    ms = lambda p, key: round(1e3 * med[p][key] / frames, 3)  # noqa: E731
    return {
        "render_frames": frames,
        "render_ms_per_frame_old": ms("old", "render_wall"),
        "render_ms_per_frame_new": ms("new", "render_wall"),
        "render_speedup": round(med["old"]["render_wall"] / med["new"]["render_wall"], 2),
        "render_cpu_ms_per_frame_old": ms("old", "render_cpu"),
        "render_cpu_ms_per_frame_new": ms("new", "render_cpu"),
        "render_cpu_speedup": round(med["old"]["render_cpu"] / med["new"]["render_cpu"], 2),
        "record_frames_per_s_old": round(frames / med["old"]["clip_wall"], 1),
        "record_frames_per_s_new": round(frames / med["new"]["clip_wall"], 1),
        "record_speedup": round(med["old"]["clip_wall"] / med["new"]["clip_wall"], 2),
        "record_cpu_ms_per_frame_old": ms("old", "clip_cpu"),
        "record_cpu_ms_per_frame_new": ms("new", "clip_cpu"),
        "record_cpu_speedup": round(med["old"]["clip_cpu"] / med["new"]["clip_cpu"], 2),
        "render_frames_identical": identical,
        "render_seconds": {p: [round(x, 2) for x in d["render_wall"]] for p, d in per.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["all", "render"], default="all",
                    help="render: only the old-vs-new camera comparison")
    args = ap.parse_args()
    config = FleetConfig(clips=args.clips, seed=args.seed)
    if args.only == "render":
        out = {"benchmark": "fleet_render", "clips": args.clips, "repeat": args.repeat,
               "image": [config.width, config.height], **render_compare(config, args.repeat),
               "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
               "python": platform.python_version()}
        print(json.dumps(out))
        return
    runs = {"raw": [], "ours_1": [], "ours_2": []}
    frames = {}
    cpu = {"raw": [], "ours_1": [], "ours_2": []}
    for _ in range(args.repeat):
        for name, fn in [("raw", lambda: raw_run(config)),
                         ("ours_1", lambda: ours_run(config, 1)),
                         ("ours_2", lambda: ours_run(config, 2))]:
            c0 = _cpu()
            seconds, n = fn()
            cpu[name].append(_cpu() - c0)
            runs[name].append(seconds)
            frames[name] = n
    med = {k: statistics.median(v) for k, v in runs.items()}
    out = {
        "benchmark": "fleet",
        "clips": args.clips, "frames": frames["ours_1"], "repeat": args.repeat,
        "image": [config.width, config.height],
        "raw_frames_per_s": round(frames["raw"] / med["raw"], 1),
        "raw_clips_per_s": round(args.clips / med["raw"], 3),
        "ours_1w_frames_per_s": round(frames["ours_1"] / med["ours_1"], 1),
        "ours_1w_clips_per_s": round(args.clips / med["ours_1"], 3),
        "ours_2w_frames_per_s": round(frames["ours_2"] / med["ours_2"], 1),
        "ours_2w_clips_per_s": round(args.clips / med["ours_2"], 3),
        "overhead": round((frames["raw"] / med["raw"]) / (frames["ours_1"] / med["ours_1"]) - 1, 3),
        "overhead_target": 0.15,
        # The same comparison in CPU seconds per frame: meaningful when other jobs share the cores.
        "raw_cpu_ms_per_frame": round(1e3 * statistics.median(cpu["raw"]) / frames["raw"], 2),
        "ours_cpu_ms_per_frame": round(1e3 * statistics.median(cpu["ours_1"]) / frames["ours_1"], 2),
        "overhead_cpu": round((statistics.median(cpu["ours_1"]) / frames["ours_1"])
                              / (statistics.median(cpu["raw"]) / frames["raw"]) - 1, 3),
        "speedup_2_workers": round(med["ours_1"] / med["ours_2"], 3),
        "speedup_target": 1.8,
        "projected_100_clips_2w_s": round(100 * med["ours_2"] / args.clips, 1),
        "seconds": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        **render_compare(config, args.repeat),
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
