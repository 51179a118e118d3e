"""Generate a simulated fleet's clips into a clip store, in parallel worker processes.

The plan is drawn from the fleet seed alone (`plan_fleet`, `plan_clips`): which vehicles
exist and who drives them, then for each clip its scenario, vehicle, episode seed, length
and rare event. Workers record clips and write their files (`ClipStore.write_clip`,
atomic); the parent alone commits: sim truth first, then the catalog rows, in one Lance
commit each. The same seed therefore gives the same clips, with the same clip ids.

Ctrl-C (or SIGTERM) stops the workers at once; the clips that were complete are committed,
nothing half-written becomes visible (a worker's temporary directory may remain until
`ClipStore.gc`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass

import numpy as np

from opendojo.fleet.config import FLEET_SEED_LIMIT, PROFILE_NAMES, FleetConfig


@dataclass(frozen=True)
class FleetVehicle:
    vehicle_id: str
    driver_id: str
    driver_profile: str  # sim truth


def plan_fleet(config: FleetConfig) -> list[FleetVehicle]:
    """The fleet: `config.vehicles` cars, each with one fixed driver, profiles fixed by seed.

    About `expert_share` of the drivers are experts, the rest spread evenly over the human
    profiles. Driver ids are numbered independently of the profiles and of the vehicles.
    """
    rng = np.random.default_rng([config.seed, 1])
    n = config.vehicles
    n_expert = int(round(config.expert_share * n))
    humans = [p for p in PROFILE_NAMES if p != "expert"]
    profiles = ["expert"] * n_expert + [humans[i % len(humans)] for i in range(n - n_expert)]
    profiles = [profiles[i] for i in rng.permutation(n)]
    driver_numbers = rng.permutation(n) + 1
    return [FleetVehicle(f"vehicle-{i + 1:04d}", f"driver-{driver_numbers[i]:04d}", profiles[i])
            for i in range(n)]


def plan_clips(config: FleetConfig, fleet: list[FleetVehicle] | None = None):
    """The clip tasks of a run: a pure function of the config (its seed and batch). The fleet
    (cars, drivers, their profiles) depends on the seed alone, so every batch of the same
    seed is driven by the same drivers."""
    from opendojo.fleet.recorder import ClipTask
    from opendojo.fleet.scenarios import SCENARIOS

    fleet = fleet or plan_fleet(config)
    rng = np.random.default_rng([config.seed, 2] + ([config.batch] if config.batch else []))
    names = [s for s in config.scenario_mix if config.scenario_mix[s] > 0]
    weights = np.array([config.scenario_mix[s] for s in names], float)
    weights /= weights.sum()
    lo, hi = config.clip_seconds
    tasks = []
    for i in range(config.clips):
        name = names[int(rng.choice(len(names), p=weights))]
        vehicle = fleet[int(rng.integers(len(fleet)))]
        seed = int(rng.integers(0, FLEET_SEED_LIMIT))
        driver_seed = int(rng.integers(0, 2**31 - 1))
        n_frames = int(round(rng.uniform(lo, hi) * config.fps))
        events = SCENARIOS[name].rare_events
        event = None
        if events and rng.uniform() < config.rare_event_rate:
            event = events[int(rng.integers(len(events)))]
        tasks.append(ClipTask(i, name, seed, vehicle.vehicle_id, vehicle.driver_id,
                              vehicle.driver_profile, driver_seed, event, n_frames))
    return tasks


# -- workers -----------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(store_url: str, config_json: str) -> None:
    # The parent handles Ctrl-C and terminates us; SDL must not catch signals either.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    import opendojo  # noqa: F401  (sets the SDL environment before pygame loads)
    from opendojo.clips.store import ClipStore

    _WORKER["store"] = ClipStore(store_url, must_exist=False)
    _WORKER["config"] = FleetConfig.model_validate_json(config_json)


def _work(task) -> tuple[dict, dict, float]:
    from opendojo.fleet.recorder import record_clip

    t0 = time.perf_counter()
    clip = record_clip(task, _WORKER["config"])
    row = _WORKER["store"].write_clip(clip.frames, clip.telemetry, clip.meta, objects=clip.objects)
    truth = {"clip_id": row["clip_id"], **clip.truth}
    return row, truth, time.perf_counter() - t0


def task_key(seed, vehicle_id, driver_id, scenario) -> tuple:
    """What identifies a planned clip in the catalog (a clip's id comes from its content)."""
    return (int(seed), str(vehicle_id), str(driver_id), str(scenario))


def generate(store_url: str, config: FleetConfig, progress: bool = True,
             commit_every: int = 200) -> dict:
    """Generate `config.clips` clips into the store at `store_url`; returns a summary.

    Planned clips the catalog already has are not recorded again, and recorded clips are
    committed every `commit_every` clips, so a long run that is stopped (Ctrl-C, SIGTERM, a
    crash) loses at most the clips since the last commit, and running it again records only
    what is missing.

    Returns {"clips": new clips catalogued, "generated": clips recorded, "skipped": planned
    clips already in the store, "frames": ..., "seconds": wall time, "clips_per_s",
    "frames_per_s", "interrupted": bool}.
    """
    from opendojo.clips.store import ClipStore

    store = ClipStore.create(store_url)
    check_recording(store)
    planned = plan_clips(config)
    cat = store.catalog(columns=["seed", "vehicle_id", "driver_id", "scenario"]).to_pylist()
    have = {task_key(r["seed"], r["vehicle_id"], r["driver_id"], r["scenario"]) for r in cat}
    tasks = [t for t in planned if task_key(t.seed, t.vehicle_id, t.driver_id, t.scenario) not in have]
    rows: list[dict] = []
    truths: list[dict] = []
    t0 = time.perf_counter()
    interrupted = False
    added = recorded = n_frames = 0
    workers = max(1, min(config.workers, len(tasks)))
    bar = _progress(progress)
    previous_term = signal.getsignal(signal.SIGTERM)

    def _on_term(signum, frame):
        raise KeyboardInterrupt

    def flush() -> None:
        nonlocal added, recorded, n_frames
        batch_rows, batch_truths = list(rows), list(truths)
        rows.clear()
        truths.clear()
        added += commit(store, batch_rows, batch_truths)
        recorded += len(batch_rows)
        n_frames += int(sum(r["n_frames"] for r in batch_rows))

    pool = None
    try:
        if previous_term in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_term)
    except ValueError:  # not the main thread
        previous_term = None
    try:
        if tasks:
            ctx = mp.get_context("spawn")
            pool = ctx.Pool(workers, initializer=_init_worker,
                            initargs=(store_url, config.model_dump_json()))
        with bar:
            job = bar.add_task("fleet", total=len(tasks), frames=0) if bar else None
            frames = 0
            for c0 in range(0, len(tasks), max(1, commit_every)):
                # Longest first: the pool ends sooner when slow clips do not come last.
                order = sorted(tasks[c0:c0 + commit_every], key=lambda t: -t.n_frames)
                for row, truth, _ in pool.imap_unordered(_work, order, chunksize=1):
                    rows.append(row)
                    truths.append(truth)
                    frames += row["n_frames"]
                    if bar:
                        bar.update(job, advance=1, frames=frames)
                flush()
        if pool is not None:
            pool.close()
    except KeyboardInterrupt:
        interrupted = True
        if pool is not None:
            pool.terminate()
    finally:
        if pool is not None:
            pool.join()
        if previous_term in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        flush()   # the complete clips are committed, also when stopped
    elapsed = time.perf_counter() - t0
    summary = {"store": store_url, "clips": added, "generated": recorded,
               "skipped": len(planned) - len(tasks), "frames": n_frames,
               "seconds": round(elapsed, 2), "clips_per_s": round(recorded / elapsed, 3),
               "frames_per_s": round(n_frames / elapsed, 1), "workers": workers,
               "seed": config.seed, "interrupted": interrupted}
    if interrupted:
        raise GenerationInterrupted(summary)
    return summary


# How the simulated clips' telemetry names the route command (`opendojo.fleet.env.ego_state`),
# kept in each store that records them (RECORDING_NOTE). A network learns what the command
# means from its clips; clips recorded under two conventions in one store would teach both.
RECORDING_NOTE = "fleet.json"
OLD_RECORDING = {"route_command": "the route's turn from the start of the clip"}


def recording() -> dict:
    from opendojo.fleet.env import TURN_NOTICE_M

    return {"route_command": f"the route's turn from {TURN_NOTICE_M:g} m before the road it leads onto"}


def check_recording(store) -> None:
    """Refuse (StoreError, one line) to add simulated clips to a store whose simulated clips
    were recorded under another route-command convention (a store from before RECORDING_NOTE
    was kept holds the old one); note the convention in a store that has none."""
    from opendojo.errors import StoreError

    want = recording()
    have = store.read_note(RECORDING_NOTE)
    if have is None:
        if not len(store.catalog(filter="source = 'sim'", columns=["clip_id"])):
            store.write_note(RECORDING_NOTE, want)
            return
        have = OLD_RECORDING
    if have.get("route_command") != want["route_command"]:
        raise StoreError(f"{store.url}: its simulated clips name the route command as "
                         f"{have.get('route_command')!r}; this fleet records "
                         f"{want['route_command']!r}. Record into a new store "
                         f"(another --store or --run-dir); mixing the two would teach both")


class GenerationInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C once the complete clips are committed; carries the summary."""

    def __init__(self, summary: dict):
        super().__init__(f"interrupted after {summary['generated']} clips")
        self.summary = summary


def commit(store, rows: list[dict], truths: list[dict]) -> int:
    """Commit recorded clips: sim truth first, then the catalog (a clip is visible once
    its catalog row is). Clips already catalogued are skipped. Returns clips added."""
    if not rows:
        return 0
    known = store.clip_ids()
    order = sorted(range(len(rows)), key=lambda i: rows[i]["clip_id"])
    fresh = [i for i in order if rows[i]["clip_id"] not in known]
    seen, keep = set(), []
    for i in fresh:
        if rows[i]["clip_id"] not in seen:
            seen.add(rows[i]["clip_id"])
            keep.append(i)
    if not keep:
        return 0
    store.put_sim_truth([truths[i] for i in keep])
    return store.add_to_catalog([rows[i] for i in keep])


def _progress(enabled: bool):
    if not enabled:
        return _NoBar()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("clips  {task.fields[frames]} frames"), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __bool__(self):
        return False
