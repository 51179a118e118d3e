"""Driver quality: how well a clip was driven, and how good a driver is, from what the car
sends (telemetry and video) and nothing else: never the profile in the sim-truth table.

Per clip, `clip_features` measures (all rates per minute of driving, units in the names):

| feature             | what                                                         |
|---------------------|--------------------------------------------------------------|
| harsh_brake_per_min | `hard_braking` trigger events                                |
| harsh_accel_per_min | `hard_acceleration` trigger events                           |
| jerk_rms            | m/s^3, RMS of the change of the acceleration command         |
| pedal_jitter        | m/s^3, median of the same: unsteady feet. A smooth driver's  |
|                     | is near 0 between manoeuvres, so hard braking (its own       |
|                     | feature, and most of the RMS) does not raise it              |
| steer_rate_rms      | rad/s, RMS of the change of steering (hands that wander)     |
| lane_changes_per_min| lane index changes                                           |
| weaving_per_min     | `weaving` trigger events (two lane changes within 8 s)       |
| collision           | 1 if the car was in a collision                              |
| short_headway_share | share of the time spent following a car (time headway under  |
|                     | 3 s) at a headway under 1 s: tailgating when following       |

Per driver one more, which needs the rest of the fleet (`driver_scores`):

| pace_deficit        | how far under the fleet's pace the driver goes with the lane |
|                     | ahead empty: per clip max(0, 1 - v_free / v_ref), v_free the |
|                     | mean speed over frames with nothing in the lane strip in      |
|                     | view, v_ref the median v_free of the fleet's clips of that   |
|                     | scenario; averaged over the driver's free frames             |

Hesitancy is bad driving too: a car that crawls along an empty road holds up the traffic
behind it, and a network trained on it drives too slowly to finish its route. Before this
feature the timid profile (75% of the desired speed, long gaps, gentle) scored best of all,
because it never brakes hard, and the selection's best-driver-first coverage took mostly its
clips (docs/engine.md). A single clip's own `score` leaves the feature out: it has no fleet
to compare with.

The headway comes from the video: in the ego-up camera (`opendojo.fleet.camera`; the car
sits at `ego_row` of the height, facing up, `px_per_m` pixels per metre) the nearest
coloured object pixel ahead in the ego's own lane strip gives the gap to the car in front;
gap / speed is the time headway. A real camera needs a detector here; the principle (and
the table) is the same.

Each feature is divided by a reference scale (a value that is clearly bad driving) and
weighted; the sum is the `penalty`, and `score = exp(-penalty / temperature)` in
(0, 1], 1 being flawless (temperature 5: a fleet's good drivers land near 0.5, its worst
near 0.1). A driver's penalty is the same sum over their pooled driving: event rates over all their
minutes, collisions per clip, and tailgating over all their following time (a clip without
a car ahead says nothing about headway, so clips are not averaged with equal say). Scales and weights are fixed constants (`QualityConfig`), not
fitted to any ground truth.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
from pydantic import Field

from opendojo import code_version
from opendojo.config import StageConfig
from opendojo.engine import tables
from opendojo.engine.triggers import TRIGGERS, dt_of, lane_changes
from opendojo.fleet.camera import Camera

FEATURES = ("harsh_brake_per_min", "harsh_accel_per_min", "jerk_rms", "pedal_jitter",
            "steer_rate_rms", "lane_changes_per_min", "weaving_per_min", "collision",
            "short_headway_share")
DRIVER_FEATURES = FEATURES + ("pace_deficit",)


class QualityConfig(StageConfig):
    """Reference scales (a clearly bad value of each feature) and weights of the penalty."""

    scales: dict[str, float] = Field(default_factory=lambda: {
        "harsh_brake_per_min": 2.0, "harsh_accel_per_min": 2.0, "jerk_rms": 5.0,
        "pedal_jitter": 2.0, "steer_rate_rms": 0.5, "lane_changes_per_min": 6.0,
        "weaving_per_min": 2.0, "collision": 1.0, "short_headway_share": 0.3,
        "pace_deficit": 0.15})
    weights: dict[str, float] = Field(default_factory=lambda: {
        "harsh_brake_per_min": 1.0, "harsh_accel_per_min": 0.5, "jerk_rms": 1.0,
        "pedal_jitter": 1.0, "steer_rate_rms": 1.0, "lane_changes_per_min": 0.5,
        "weaving_per_min": 1.0, "collision": 2.0, "short_headway_share": 1.5,
        "pace_deficit": 1.5})
    temperature: float = Field(5.0, gt=0, description="score = exp(-penalty / temperature)")
    headway_s: float = Field(1.0, gt=0, description="time headway under which a frame counts as short")
    following_s: float = Field(3.0, gt=0, description="time headway under which the car is following")
    px_per_m: float = Field(Camera.scaling, gt=0, description="camera pixels per metre (fleet camera)")
    ego_row: float = Field(Camera.ego_row, gt=0, lt=1, description="ego's row, fraction of the height")
    lane_half_width_m: float = Field(1.5, gt=0, description="half width of the strip ahead searched")
    min_speed: float = Field(3.0, ge=0, description="m/s: slower frames have no headway")
    min_free_frames: int = Field(20, ge=1, description="frames with the lane ahead empty a clip "
                                 "needs for its pace to count")


# -- headway from video ------------------------------------------------------------------------

def object_mask(frames: np.ndarray, min_saturation: int = 60) -> np.ndarray:
    """Pixels of road users and objects: saturated colours (the road, its markings and the
    outlines are grey or white). uint8 [N,H,W,3] -> bool [N,H,W]."""
    f = frames.astype(np.int16)
    return (f.max(-1) - f.min(-1)) > min_saturation


def gap_ahead(frames: np.ndarray, cfg: QualityConfig = QualityConfig()) -> np.ndarray:
    """Metres from the ego's front to the nearest object ahead in its lane strip; inf if none."""
    n, h, w = frames.shape[:3]
    ego = int(round(cfg.ego_row * h))
    front = ego - int(np.ceil(2.5 * cfg.px_per_m)) - 2          # the ego is 5 m long
    half = max(1, int(round(cfg.lane_half_width_m * cfg.px_per_m)))
    c = w // 2
    strip = object_mask(frames[:, :max(front, 0), c - half:c + half])
    rows = strip.any(axis=2)                                     # [N, front]
    out = np.full(n, np.inf)
    has = rows.any(axis=1)
    if has.any():
        # the lowest object row (closest to the ego) in each frame
        last = front - 1 - np.argmax(rows[:, ::-1], axis=1)
        out[has] = (front - 1 - last[has]) / cfg.px_per_m
    return out


def time_headway(gap: np.ndarray, speed: np.ndarray, cfg: QualityConfig = QualityConfig()) -> np.ndarray:
    """Seconds to the object ahead (`gap_ahead`'s metres) at the current speed; NaN when
    slower than `min_speed`."""
    v = np.asarray(speed, np.float64)
    return np.where(v >= cfg.min_speed, gap / np.maximum(v, 1e-6), np.nan)


# -- per clip ------------------------------------------------------------------------------

def clip_features(tel: dict, frames: np.ndarray | None = None,
                  cfg: QualityConfig = QualityConfig()) -> dict[str, float]:
    """The quality features of one clip (see the module table)."""
    n = len(tel["t"])
    dt = dt_of(tel)
    minutes = max(n * dt / 60.0, 1e-6)
    jerk = np.abs(np.diff(np.asarray(tel["acceleration"], np.float64))) / dt
    steer = np.asarray(tel["steering"], np.float64)
    f = {
        "harsh_brake_per_min": len(TRIGGERS["hard_braking"].events(tel)) / minutes,
        "harsh_accel_per_min": len(TRIGGERS["hard_acceleration"].events(tel)) / minutes,
        "jerk_rms": float(np.sqrt(np.mean(jerk ** 2))) if n > 1 else 0.0,
        "pedal_jitter": float(np.median(jerk)) if n > 1 else 0.0,
        "steer_rate_rms": float(np.sqrt(np.mean((np.diff(steer) / dt) ** 2))) if n > 1 else 0.0,
        "lane_changes_per_min": len(lane_changes(tel)) / minutes,
        "weaving_per_min": len(TRIGGERS["weaving"].events(tel)) / minutes,
        "collision": float(np.asarray(tel["collision"], bool).any()),
        "short_headway_share": 0.0,
    }
    f["following_frames"], f["short_frames"] = 0.0, 0.0
    f["free_frames"], f["free_speed"] = 0.0, float("nan")
    if frames is not None and len(frames) == n:
        gap = gap_ahead(frames, cfg)
        v = np.asarray(tel["speed"], np.float64)
        free = np.isinf(gap)                                     # the lane empty as far as seen
        f["free_frames"] = float(free.sum())
        if free.any():
            f["free_speed"] = float(v[free].mean())
        th = time_headway(gap, v, cfg)
        following = ~np.isnan(th) & (th < cfg.following_s)
        f["following_frames"] = float(following.sum())
        f["short_frames"] = float((th[following] < cfg.headway_s).sum())
        f["short_headway_share"] = f["short_frames"] / f["following_frames"] if following.any() else 0.0
    return f


def penalty(features: dict[str, float], cfg: QualityConfig = QualityConfig()) -> float:
    """Weighted sum of the features over their reference scales (0 is flawless); a clip's
    features lack the driver-level `pace_deficit`, which then counts nothing.

    Steering and jerk are robust to a few glitches: each is capped at 3x its scale."""
    return float(sum(cfg.weights[k] * min(features[k] / cfg.scales[k], 3.0)
                     for k in DRIVER_FEATURES if k in features))


QUALITY_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("driver_id", pa.string()),
    ("scenario", pa.string()),
    ("duration_s", pa.float32()),
    *[(k, pa.float32()) for k in FEATURES],
    ("following_frames", pa.float32()),
    ("short_frames", pa.float32()),
    ("free_frames", pa.float32()),
    ("free_speed", pa.float32()),
    ("penalty", pa.float32()),
    ("score", pa.float32()),
    ("code_version", pa.string()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])


def quality_row(clip_id: str, driver_id: str, tel: dict, frames: np.ndarray | None,
                cfg: QualityConfig = QualityConfig(), scenario: str = "") -> dict:
    """The `quality.lance` row of one clip (the per-clip map function)."""
    f = clip_features(tel, frames, cfg)
    p = penalty(f, cfg)
    n = len(tel["t"])
    return {"clip_id": clip_id, "driver_id": driver_id, "scenario": scenario,
            "duration_s": n * dt_of(tel), **f,
            "penalty": p, "score": float(np.exp(-p / cfg.temperature)), "code_version": code_version(),
            "computed_at": datetime.now(timezone.utc)}


def run_quality(store, clip_ids: Iterable[str] | None = None, cfg: QualityConfig = QualityConfig(),
                force: bool = False, use_video: bool = True,
                progress: Callable[[int, int], None] | None = None) -> pa.Table:
    """Score the store's clips (not yet scored by this code version, or all with `force`),
    upsert `quality.lance`, and refresh `driver_quality.lance`. Returns the clip rows written."""
    cat = store.catalog(columns=["clip_id", "driver_id", "scenario", "n_frames", "fps"]).to_pylist()
    meta = {r["clip_id"]: r for r in cat}
    ids = sorted(meta if clip_ids is None else clip_ids)
    if not force:
        done = tables.done_ids(store, tables.QUALITY, code_version())
        ids = [i for i in ids if i not in done]
    rows = []
    for k, cid in enumerate(ids, 1):
        tel = tables.telemetry_arrays(store.telemetry(cid))
        frames = store.read_frames(cid, row=None) if use_video else None
        rows.append(quality_row(cid, meta[cid]["driver_id"], tel, frames, cfg,
                                scenario=meta[cid]["scenario"] or ""))
        if progress:
            progress(k, len(ids))
    table = pa.Table.from_pylist(rows, schema=QUALITY_SCHEMA)
    tables.upsert(store, tables.QUALITY, table)
    if rows or store.dataset(tables.DRIVER_QUALITY) is None:
        write_driver_quality(store, cfg)
    return table


DRIVER_SCHEMA = pa.schema([
    ("driver_id", pa.string()),
    ("clips", pa.int32()),
    ("minutes", pa.float32()),
    ("penalty", pa.float32()),
    ("score", pa.float32()),
    *[(k, pa.float32()) for k in DRIVER_FEATURES],
    ("code_version", pa.string()),
])


def _pace_columns(d: dict, n: int) -> tuple[list, list, list]:
    """(scenario, free_frames, free_speed) of clip rows; None where a row (or a table written
    before the pace feature) lacks them."""
    return tuple(d.get(k) or [None] * n for k in ("scenario", "free_frames", "free_speed"))


def _free_speed_counts(nf, v, cfg: QualityConfig) -> bool:
    return nf is not None and v is not None and nf >= cfg.min_free_frames and bool(np.isfinite(v))


def _pace_references(scenario: list, free_frames: list, free_speed: list,
                     cfg: QualityConfig) -> dict[str, float]:
    """{scenario: the median free-road speed of the fleet's clips of it} (m/s), over clips
    with at least `min_free_frames` frames of an empty lane ahead."""
    speeds: dict[str, list[float]] = {}
    for scen, nf, v in zip(scenario, free_frames, free_speed):
        if _free_speed_counts(nf, v, cfg):
            speeds.setdefault(scen or "", []).append(float(v))
    return {s: float(np.median(v)) for s, v in speeds.items()}


def driver_scores(clip_rows: pa.Table, cfg: QualityConfig = QualityConfig()) -> pa.Table:
    """Per driver: the penalty of their pooled driving (module docstring)."""
    d = clip_rows.to_pydict()
    scenario, free_frames, free_speed = _pace_columns(d, clip_rows.num_rows)
    refs = _pace_references(scenario, free_frames, free_speed, cfg)
    out: dict[str, dict] = {}
    for i, drv in enumerate(d["driver_id"]):
        w = float(d["duration_s"][i])
        acc = out.setdefault(drv, {"clips": 0, "w": 0.0, "follow": 0.0, "short": 0.0,
                                   "free": 0.0, "deficit": 0.0, **{k: 0.0 for k in FEATURES}})
        acc["clips"] += 1
        acc["w"] += w
        acc["follow"] += float(d["following_frames"][i])
        acc["short"] += float(d["short_frames"][i])
        for k in FEATURES:
            acc[k] += w * float(d[k][i])
        ref = refs.get(scenario[i] or "")
        if ref and _free_speed_counts(free_frames[i], free_speed[i], cfg):
            acc["free"] += float(free_frames[i])
            acc["deficit"] += float(free_frames[i]) * max(0.0, 1.0 - float(free_speed[i]) / ref)
    rows = []
    for drv in sorted(out):
        a = out[drv]
        w = max(a["w"], 1e-9)
        feats = {k: a[k] / w for k in FEATURES}           # rates over all their minutes
        feats["short_headway_share"] = a["short"] / a["follow"] if a["follow"] else 0.0
        feats["pace_deficit"] = a["deficit"] / a["free"] if a["free"] else 0.0
        p = penalty(feats, cfg)
        rows.append({"driver_id": drv, "clips": a["clips"], "minutes": a["w"] / 60.0,
                     "penalty": p, "score": float(np.exp(-p / cfg.temperature)),
                     **feats, "code_version": code_version()})
    return pa.Table.from_pylist(rows, schema=DRIVER_SCHEMA)


def write_driver_quality(store, cfg: QualityConfig = QualityConfig()) -> pa.Table:
    """Recompute `driver_quality.lance` from all of `quality.lance` (replaced atomically)."""
    import lance

    clips = tables.read(store, tables.QUALITY)
    if clips is None:
        clips = QUALITY_SCHEMA.empty_table()
    t = driver_scores(clips, cfg)
    lance.write_dataset(t, store._uri(tables.DRIVER_QUALITY), mode="overwrite")
    return t


def read_quality(store, clip_ids: Iterable[str] | None = None) -> dict[str, float]:
    """{clip_id: clip score in (0, 1]} from `quality.lance` ({} when absent)."""
    t = tables.read(store, tables.QUALITY, clip_ids, columns=["clip_id", "score"])
    if t is None:
        return {}
    return dict(zip(t.column("clip_id").to_pylist(), t.column("score").to_pylist()))


def read_driver_quality(store) -> dict[str, float]:
    """{driver_id: driver score in (0, 1]} ({} when absent)."""
    ds = store.dataset(tables.DRIVER_QUALITY)
    if ds is None:
        return {}
    t = ds.to_table(columns=["driver_id", "score"])
    return dict(zip(t.column("driver_id").to_pylist(), t.column("score").to_pylist()))


def good_drivers_clips(store, keep: float) -> tuple[list[str], dict]:
    """Collision-free clips of the best `keep` share of drivers by driver quality.

    "More mediocre data does not improve driving; good drivers' data does." Reads the
    engine's tables (triggers, driver quality: telemetry and video only, never sim truth);
    run those stages first. Returns the clip ids in catalog order and counts for a log line.
    """
    from opendojo.engine.triggers import read_triggers

    fired = read_triggers(store)
    scores = read_driver_quality(store)
    ranked = sorted(scores, key=scores.get, reverse=True)
    good = set(ranked[: max(1, int(np.ceil(keep * len(ranked))))])
    rows = store.catalog(columns=["clip_id", "driver_id"]).to_pylist()
    ids = [r["clip_id"] for r in rows
           if r["driver_id"] in good and "collision" not in fired.get(r["clip_id"], [])]
    return ids, {"drivers_kept": len(good), "drivers": len(ranked), "pool_clips": len(rows)}
