"""Hindsight auto-labels: each frame's targets, read from the clip's own future telemetry.

A clip knows where the car went next. For every frame `i` the labeller writes:

- `trajectory`: the car's positions at `waypoints` future times (every `horizon_s/waypoints`
  seconds up to `horizon_s`), in the ego frame of frame `i` (x forward, y left, metres),
  flattened as x0, y0, x1, y1, ...;
- `future_speed`: the speed at those times (m/s);
- `acceleration`, `steering`: the driver's controls at frame `i` (from telemetry; where a
  source does not record them, e.g. comma2k19 poses, derived from the poses: d speed/dt and
  the bicycle-model steering angle of the yaw rate; `controls_source` says which);
- `command`: the route command derived from where the car actually went (left / straight /
  right by the lateral offset and heading change at the horizon's end), beside
  `given_command`, the command the telemetry recorded (-1 if unknown). "left" is the
  telemetry frame's positive y side: the driver's left in a right-handed frame (comma2k19's
  east-north), the driver's *right* in highway-env's y-down frame, so for simulated clips
  only `given_command` names turns as the route does. Training feeds the given command
  wherever there is one (`opendojo.train.loader.ClipLabels`): the hindsight command reads
  the future.

Frames less than `horizon_s` before the clip's end have no full future: they are kept with
`valid = False` and null trajectory, future speeds and command, never padded.

Safety-driver clips (`opendojo.engine.disengage`: the network drove, the expert took over
when it got unsafe) are labelled too, but a frame is `valid` only if the safety driver
drove its whole future: a hindsight label of what the *network* did would teach the network
its own mistakes. What stays are the states the network led into, labelled with the
expert's way out of them (DAgger's idea, from telemetry alone).

Only telemetry is read (pose, speed, controls): never the simulator's ground truth.
Labels are appended to `<store>/labels.lance`, one row per frame, keyed by clip id, frame
and label set (labeller version, horizon, waypoints). Re-running labels only the clips that
lack labels of that set; one Lance commit per run, so a crash leaves nothing half-visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from opendojo import code_version
from opendojo.clips.schema import COMMAND_INDEX
from opendojo.errors import DatasetError

LABELLER_VERSION = "hindsight-1"
LABELS = "labels.lance"
WHEELBASE_M = 2.7          # bicycle model, for deriving steering from yaw rate
_MIN_SPEED_FOR_STEER = 0.5  # m/s; below this the yaw rate says nothing about steering


@dataclass(frozen=True)
class LabelSpec:
    """What a label set is: the labeller's version and its horizon."""

    horizon_s: float = 3.0
    waypoints: int = 6
    lateral_threshold_m: float = 2.0   # |y| at the horizon's end that counts as a turn / lane change
    heading_threshold_rad: float = 0.35
    version: str = LABELLER_VERSION

    @property
    def times(self) -> np.ndarray:
        """Seconds from a frame to each of its waypoints: horizon_s / waypoints apart, the
        last at horizon_s."""
        return self.horizon_s * np.arange(1, self.waypoints + 1) / self.waypoints

    def filter(self) -> str:
        h = float(self.horizon_s)
        return (f"labeller_version = '{self.version}' AND waypoints = {self.waypoints} "
                f"AND horizon_s > {h - 1e-4!r} AND horizon_s < {h + 1e-4!r}")


def labels_schema() -> pa.Schema:
    return pa.schema([
        ("clip_id", pa.string()),
        ("frame", pa.int32()),
        ("t", pa.float64()),
        ("valid", pa.bool_()),                                  # a full horizon exists
        ("speed", pa.float32()),                                # current speed, m/s
        # variable-length lists so that label sets of other horizons share the table
        ("trajectory", pa.list_(pa.float32())),    # 2*waypoints: ego-frame x0,y0,x1,y1..; null if not valid
        ("future_speed", pa.list_(pa.float32())),  # waypoints; null if not valid
        ("acceleration", pa.float32()),
        ("steering", pa.float32()),
        ("controls_source", pa.string()),                       # "telemetry" | "derived"
        ("command", pa.int8()),                                 # hindsight route command; null if not valid
        ("given_command", pa.int8()),                           # as recorded; -1 unknown
        ("labeller_version", pa.string()),
        ("horizon_s", pa.float32()),
        ("waypoints", pa.int32()),
        ("code_version", pa.string()),
    ])


def to_ego_frame(dx, dy, heading) -> np.ndarray:
    """World offsets (dx, dy) seen from a car with `heading`: [..., 2] of (x forward, y to
    the world's +y side of it), the frame every label and plan is in. Broadcasts."""
    c, s = np.cos(heading), np.sin(heading)
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


def label_telemetry(tel: dict[str, np.ndarray], spec: LabelSpec = LabelSpec()) -> dict[str, np.ndarray]:
    """Label one clip from its telemetry columns (arrays of equal length, t increasing).

    Returns arrays: valid [N], trajectory [N, W, 2], future_speed [N, W], acceleration [N],
    steering [N], controls_derived [N], command [N] (-1 where not valid).
    """
    t = np.asarray(tel["t"], np.float64)
    x, y = np.asarray(tel["x"], np.float64), np.asarray(tel["y"], np.float64)
    heading = np.unwrap(np.asarray(tel["heading"], np.float64))
    speed = np.asarray(tel["speed"], np.float64)
    n = len(t)
    if n == 0:
        raise DatasetError("clip has no telemetry rows")
    if n > 1 and not np.all(np.diff(t) > 0):
        raise DatasetError("telemetry times are not strictly increasing")

    when = t[:, None] + spec.times[None, :]                             # [N, W]
    valid = t + spec.horizon_s <= t[-1] + 1e-6
    fx = np.interp(when, t, x)
    fy = np.interp(when, t, y)
    fh = np.interp(when, t, heading)
    fv = np.interp(when, t, speed)
    dx, dy = fx - x[:, None], fy - y[:, None]
    traj = to_ego_frame(dx, dy, heading[:, None])                       # [N, W, 2] ego frame

    lat_end = traj[:, -1, 1]
    turn = fh[:, -1] - heading
    command = np.full(n, COMMAND_INDEX["straight"], np.int8)
    command[(lat_end > spec.lateral_threshold_m) | (turn > spec.heading_threshold_rad)] = COMMAND_INDEX["left"]
    command[(lat_end < -spec.lateral_threshold_m) | (turn < -spec.heading_threshold_rad)] = COMMAND_INDEX["right"]
    command[~valid] = -1

    accel = np.asarray(tel.get("acceleration", np.full(n, np.nan)), np.float64)
    steer = np.asarray(tel.get("steering", np.full(n, np.nan)), np.float64)
    derived = np.isnan(accel) | np.isnan(steer)
    if derived.any():
        d_accel = np.gradient(speed, t) if n > 1 else np.zeros(n)
        yaw_rate = np.gradient(heading, t) if n > 1 else np.zeros(n)
        d_steer = np.where(speed > _MIN_SPEED_FOR_STEER,
                           np.arctan(WHEELBASE_M * yaw_rate / np.maximum(speed, _MIN_SPEED_FOR_STEER)), 0.0)
        accel = np.where(derived, d_accel, accel)
        steer = np.where(derived, d_steer, steer)
    return {"valid": valid, "trajectory": traj, "future_speed": fv, "acceleration": accel,
            "steering": steer, "controls_derived": derived, "command": command}


def driven_through(driving: np.ndarray, t: np.ndarray, horizon_s: float) -> np.ndarray:
    """Frames i whose whole future up to t[i] + horizon_s has `driving` true (bool [N])."""
    driving = np.asarray(driving, bool)
    off = np.concatenate([[0], np.cumsum(~driving)])                    # not-driving count
    end = np.searchsorted(t, t + horizon_s + 1e-6, side="right")          # first frame after
    return (off[end] - off[np.arange(len(t))]) == 0


def label_table(clip_id: str, telemetry: pa.Table, spec: LabelSpec = LabelSpec(),
                version_of_code: str | None = None, trusted: np.ndarray | None = None) -> pa.Table:
    """The label rows of one clip as an Arrow table in `labels_schema`. `trusted` (bool per
    frame): only frames whose whole future is trusted are valid (safety-driver clips)."""
    cols = {name: telemetry.column(name).to_numpy(zero_copy_only=False)
            for name in telemetry.column_names}
    lab = label_telemetry(cols, spec)
    if trusted is not None:
        keep = driven_through(trusted, np.asarray(cols["t"], np.float64), spec.horizon_s)
        lab["valid"] = lab["valid"] & keep     # the targets of invalid frames are masked below
    n, w = len(lab["valid"]), spec.waypoints
    valid = lab["valid"]
    mask = pa.array(~valid)
    traj = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * 2 * w),
                                    pa.array(lab["trajectory"].reshape(-1).astype(np.float32)), mask=mask)
    fut = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * w),
                                   pa.array(lab["future_speed"].reshape(-1).astype(np.float32)), mask=mask)
    given = cols.get("command", np.full(n, -1))
    arrays = {
        "clip_id": pa.array([clip_id] * n, pa.string()),
        "frame": pa.array(np.arange(n, dtype=np.int32)),
        "t": pa.array(cols["t"].astype(np.float64)),
        "valid": pa.array(valid),
        "speed": pa.array(cols["speed"].astype(np.float32)),
        "trajectory": traj,
        "future_speed": fut,
        "acceleration": pa.array(lab["acceleration"].astype(np.float32)),
        "steering": pa.array(lab["steering"].astype(np.float32)),
        "controls_source": pa.array(np.where(lab["controls_derived"], "derived", "telemetry").tolist()),
        "command": pa.array(lab["command"], pa.int8(), mask=~valid),
        "given_command": pa.array(np.asarray(given, np.int8)),
        "labeller_version": pa.array([spec.version] * n),
        "horizon_s": pa.array(np.full(n, spec.horizon_s, np.float32)),
        "waypoints": pa.array(np.full(n, w, np.int32)),
        "code_version": pa.array([version_of_code or code_version()] * n),
    }
    return pa.Table.from_pydict(arrays, schema=labels_schema())


def labelled_clip_ids(store, spec: LabelSpec = LabelSpec()) -> set[str]:
    ds = store.dataset(LABELS)
    if ds is None:
        return set()
    tab = ds.to_table(columns=["clip_id"], filter=spec.filter())
    return set(pc.unique(tab.column("clip_id")).to_pylist())


def label_store(store, spec: LabelSpec = LabelSpec(), clip_ids: Iterable[str] | None = None,
                progress=None) -> dict:
    """Label every catalogued clip (or `clip_ids`) that lacks labels of this set.

    Returns {"labelled": n_new_clips, "skipped": n_already, "frames": n_rows, "valid": n_valid}.
    """
    wanted = sorted(store.clip_ids() if clip_ids is None else set(clip_ids))
    done = labelled_clip_ids(store, spec)
    todo = [c for c in wanted if c not in done]
    version = code_version()
    expert = _safety_driver_frames(store, todo)
    tables = []
    for cid in todo:
        tables.append(label_table(cid, store.telemetry(cid), spec, version, trusted=expert.get(cid)))
        if progress is not None:
            progress()
    frames = valid = 0
    if tables:
        table = pa.concat_tables(tables)
        frames, valid = table.num_rows, int(pc.sum(table.column("valid")).as_py() or 0)
        store._append(LABELS, table)   # one atomic Lance commit
    return {"labelled": len(todo), "skipped": len(wanted) - len(todo), "frames": frames,
            "valid": valid, "labeller_version": spec.version}


def _safety_driver_frames(store, clip_ids: list[str]) -> dict[str, np.ndarray]:
    """For the safety-driver clips among `clip_ids`: which frames the expert drove."""
    from opendojo.engine import tables

    tab = tables.read(store, tables.DISENGAGEMENTS, clip_ids, columns=["clip_id", "expert_driving"]) \
        if clip_ids else None
    if tab is None:
        return {}
    return {r["clip_id"]: np.asarray(r["expert_driving"], bool) for r in tab.to_pylist()}


def read_labels(store, clip_ids: Sequence[str], spec: LabelSpec = LabelSpec(),
                columns: list[str] | None = None) -> pa.Table:
    """The labels of `clip_ids` (one label set), sorted by clip and frame.

    Raises DatasetError if any of the clips has no labels of this set.
    """
    ds = store.dataset(LABELS)
    ids = list(dict.fromkeys(clip_ids))
    if ds is None:
        raise DatasetError(f"{store.url}: no labels yet (run `dojo label --store {store.url}`)")
    table = ds.to_table(columns=columns, filter=spec.filter())
    table = table.filter(pc.is_in(table.column("clip_id"), pa.array(ids, pa.string())))
    have = set(pc.unique(table.column("clip_id")).to_pylist())
    missing = [c for c in ids if c not in have]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(ids)} clips have no {spec.version} labels with "
            f"{spec.waypoints} waypoints over {spec.horizon_s:g} s (first: {missing[0]}); "
            f"run `dojo label --store {store.url}`")
    return table.sort_by([("clip_id", "ascending"), ("frame", "ascending")])


def constant_velocity(speed: np.ndarray, spec: LabelSpec = LabelSpec()) -> np.ndarray:
    """The constant-velocity baseline: speed * t straight ahead, [N, W, 2]."""
    out = np.zeros((len(speed), spec.waypoints, 2), np.float64)
    out[..., 0] = np.asarray(speed, np.float64)[:, None] * spec.times[None, :]
    return out


__all__ = ["LABELLER_VERSION", "LABELS", "LabelSpec", "label_telemetry", "label_table",
           "label_store", "labelled_clip_ids", "read_labels", "constant_velocity", "labels_schema"]
