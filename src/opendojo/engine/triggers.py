"""Triggers: small named rules over a clip's telemetry that flag moments worth a look.

A real fleet runs rules like these in the car and uploads the clips where one fires
(Tesla spoke of about 221 of them). Each `Trigger` here is one named unit: a function from
the clip's telemetry (numpy arrays, `opendojo.clips.schema` columns) to a per-frame boolean
mask; contiguous runs of at least `min_frames` frames are its events. Only telemetry is
used (speed, acceleration, steering, heading, lane, collision): never sim truth.

`clip_triggers(telemetry)` evaluates every registered trigger on one clip (a pure function
of one clip, so it maps over clips on any engine, e.g. Ray Data); `run_triggers(store)`
does it for a store's clips and upserts `triggers.lance`:

    clip_id | fired list<str> | n_events int32 | events_json (name -> [[first, last], ...])
            | code_version | computed_at

Add a trigger with the `@trigger(name, description)` decorator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa

from opendojo import code_version
from opendojo.engine import tables

WHEELBASE_M = 2.5


@dataclass(frozen=True)
class Trigger:
    name: str
    description: str
    fn: Callable[[dict], np.ndarray]
    min_frames: int = 1

    def events(self, tel: dict) -> list[tuple[int, int]]:
        """[(first frame, last frame)] of each run of the mask at least `min_frames` long."""
        return runs(np.asarray(self.fn(tel), bool), self.min_frames)


TRIGGERS: dict[str, Trigger] = {}


def trigger(name: str, description: str, min_frames: int = 1):
    """Register a function tel -> per-frame bool mask as a named trigger."""
    def wrap(fn):
        TRIGGERS[name] = Trigger(name, description, fn, min_frames)
        return fn
    return wrap


def runs(mask: np.ndarray, min_len: int = 1) -> list[tuple[int, int]]:
    """Contiguous True runs of `mask` as (first, last) index pairs, at least `min_len` long."""
    if mask.size == 0:
        return []
    m = np.r_[False, mask, False].astype(np.int8)
    d = np.diff(m)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s + 1 >= min_len]


# -- signals derived from telemetry --------------------------------------------------------

def dt_of(tel: dict) -> float:
    t = np.asarray(tel["t"], np.float64)
    return float(np.median(np.diff(t))) if len(t) > 1 else 0.1


def yaw_rate(tel: dict) -> np.ndarray:
    """rad/s, from the heading (unwrapped); 0 for one-frame clips."""
    h = np.unwrap(np.asarray(tel["heading"], np.float64))
    if len(h) < 2:
        return np.zeros_like(h)
    return np.gradient(h, dt_of(tel))


def lateral_acceleration(tel: dict) -> np.ndarray:
    """m/s^2: speed x yaw rate (what an IMU would read sideways)."""
    return np.asarray(tel["speed"], np.float64) * yaw_rate(tel)


def lane_changes(tel: dict) -> np.ndarray:
    """Frame indices where the lane index changes by one (unknown lanes, -1, ignored)."""
    lane = np.asarray(tel["lane"], np.int64)
    if len(lane) < 2:
        return np.zeros(0, np.int64)
    d = np.diff(lane)
    ok = (lane[:-1] >= 0) & (lane[1:] >= 0) & (np.abs(d) == 1)
    return np.flatnonzero(ok) + 1


def _near(idx: np.ndarray, n: int, radius: int) -> np.ndarray:
    m = np.zeros(n, bool)
    for i in idx:
        m[max(0, i - radius):i + radius + 1] = True
    return m


# -- the triggers ------------------------------------------------------------------------------

@trigger("hard_braking", "deceleration of 4 m/s^2 or more for 0.2 s at speed", min_frames=2)
def _hard_braking(tel):
    return (np.asarray(tel["acceleration"]) <= -4.0) & (np.asarray(tel["speed"]) > 2.0)


@trigger("hard_acceleration", "acceleration of 3.5 m/s^2 or more for 0.2 s", min_frames=2)
def _hard_acceleration(tel):
    return np.asarray(tel["acceleration"]) >= 3.5


@trigger("sharp_steering", "lateral acceleration of 4 m/s^2 or more for 0.3 s above 5 m/s",
         min_frames=3)
def _sharp_steering(tel):
    return (np.abs(lateral_acceleration(tel)) >= 4.0) & (np.asarray(tel["speed"]) >= 5.0)


@trigger("oscillating_steering",
         "4 or more steering reversals of at least 0.03 rad within 3 s")
def _oscillating_steering(tel):
    from scipy.signal import find_peaks

    s = np.asarray(tel["steering"], np.float64)
    n = len(s)
    out = np.zeros(n, bool)
    if n < 5:
        return out
    hi, _ = find_peaks(s, prominence=0.03)
    lo, _ = find_peaks(-s, prominence=0.03)
    ext = np.sort(np.r_[hi, lo])
    win = int(round(3.0 / dt_of(tel)))
    for k in range(len(ext) - 3):
        if ext[k + 3] - ext[k] <= win:
            out[ext[k]:ext[k + 3] + 1] = True
    return out


@trigger("near_stop_on_highway",
         "below 2 m/s for 1 s or more within 10 s of driving at 15 m/s or more", min_frames=10)
def _near_stop_on_highway(tel):
    v = np.asarray(tel["speed"], np.float64)
    win = int(round(10.0 / dt_of(tel)))
    fast = np.zeros(len(v), bool)
    recent = -10 ** 9
    for i, x in enumerate(v):          # was the car at highway speed in the last 10 s?
        if x >= 15.0:
            recent = i
        fast[i] = i - recent <= win
    return (v < 2.0) & fast


@trigger("collision", "the car is in a collision")
def _collision(tel):
    return np.asarray(tel["collision"], bool)


@trigger("sudden_lane_change",
         "a lane change with 2.5 m/s^2 or more of lateral acceleration within 1 s, above 10 m/s")
def _sudden_lane_change(tel):
    n = len(tel["t"])
    alat = np.abs(lateral_acceleration(tel))
    v = np.asarray(tel["speed"], np.float64)
    r = int(round(1.0 / dt_of(tel)))
    out = np.zeros(n, bool)
    for i in lane_changes(tel):
        lo, hi = max(0, i - r), min(n, i + r + 1)
        if v[i] >= 10.0 and alat[lo:hi].max() >= 2.5:
            out[lo:hi] = True
    return out


@trigger("weaving", "two or more lane changes within 8 s")
def _weaving(tel):
    n = len(tel["t"])
    idx = lane_changes(tel)
    win = int(round(8.0 / dt_of(tel)))
    out = np.zeros(n, bool)
    for a, b in zip(idx[:-1], idx[1:]):
        if b - a <= win:
            out[a:b + 1] = True
    return out


# -- per clip and per store -------------------------------------------------------------------

def clip_triggers(tel: dict, names: Iterable[str] | None = None) -> dict[str, list[tuple[int, int]]]:
    """{trigger name: [(first, last frame) ...]} for the triggers that fired on this clip."""
    out = {}
    for name in (names or TRIGGERS):
        ev = TRIGGERS[name].events(tel)
        if ev:
            out[name] = ev
    return out


TRIGGER_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("fired", pa.list_(pa.string())),
    ("n_events", pa.int32()),
    ("events_json", pa.string()),
    ("code_version", pa.string()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])


def trigger_row(clip_id: str, tel: dict) -> dict:
    """The `triggers.lance` row of one clip (the per-clip map function)."""
    ev = clip_triggers(tel)
    return {"clip_id": clip_id, "fired": sorted(ev), "n_events": sum(len(v) for v in ev.values()),
            "events_json": json.dumps({k: ev[k] for k in sorted(ev)}),
            "code_version": code_version(), "computed_at": datetime.now(timezone.utc)}


def run_triggers(store, clip_ids: Iterable[str] | None = None, force: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> pa.Table:
    """Evaluate every trigger on the store's clips (those not yet done by this code version,
    or all with `force`) and upsert `triggers.lance`. Returns the rows written."""
    ids = sorted(store.clip_ids() if clip_ids is None else clip_ids)
    if not force:
        done = tables.done_ids(store, tables.TRIGGERS, code_version())
        ids = [i for i in ids if i not in done]
    rows = []
    for k, cid in enumerate(ids, 1):
        rows.append(trigger_row(cid, tables.telemetry_arrays(store.telemetry(cid))))
        if progress:
            progress(k, len(ids))
    table = pa.Table.from_pylist(rows, schema=TRIGGER_SCHEMA)
    tables.upsert(store, tables.TRIGGERS, table)
    return table


def read_triggers(store, clip_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """{clip_id: [fired trigger names]} from `triggers.lance` ({} when absent)."""
    t = tables.read(store, tables.TRIGGERS, clip_ids, columns=["clip_id", "fired"])
    if t is None:
        return {}
    return dict(zip(t.column("clip_id").to_pylist(), t.column("fired").to_pylist()))
