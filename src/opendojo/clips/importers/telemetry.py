"""Checks and resampling of imported telemetry."""

from __future__ import annotations

import numpy as np

from opendojo.clips.schema import REQUIRED_TELEMETRY
from opendojo.errors import IngestError

# Telemetry must cover the video to within this many frame periods at either end.
COVER_TOLERANCE_FRAMES = 1.5


def check_series(path: str, columns: dict[str, np.ndarray], required=REQUIRED_TELEMETRY) -> None:
    """Refuse missing columns, NaN/Inf values and timestamps that do not strictly increase."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise IngestError(path, f"missing telemetry column(s): {', '.join(missing)}")
    n = len(columns["t"])
    if n < 2:
        raise IngestError(path, f"telemetry has {n} row(s); need at least 2")
    for name, values in columns.items():
        v = np.asarray(values, dtype=np.float64)
        if len(v) != n:
            raise IngestError(path, f"column {name} has {len(v)} rows, t has {n}")
        bad = ~np.isfinite(v)
        if bad.any():
            raise IngestError(path, f"telemetry column {name} has {int(bad.sum())} NaN/Inf "
                                    f"value(s), first at row {int(np.argmax(bad))}")
    dt = np.diff(np.asarray(columns["t"], dtype=np.float64))
    if (dt <= 0).any():
        i = int(np.argmax(dt <= 0))
        raise IngestError(path, f"timestamps are not strictly increasing at row {i + 1} "
                                f"(t={columns['t'][i]} then {columns['t'][i + 1]})")


def resample(path: str, columns: dict[str, np.ndarray], t_frames: np.ndarray, fps: float) -> dict:
    """Linear interpolation of each column at the frame times (nearest for discrete ones).

    The telemetry must cover the frames' time span; otherwise the timestamps are mismatched.
    """
    t = np.asarray(columns["t"], dtype=np.float64)
    tol = COVER_TOLERANCE_FRAMES / fps
    if t[0] > t_frames[0] + tol or t[-1] < t_frames[-1] - tol:
        raise IngestError(path, f"telemetry timestamps {t[0]:.2f}..{t[-1]:.2f} s do not cover "
                                f"the video's {t_frames[0]:.2f}..{t_frames[-1]:.2f} s")
    out = {"t": t_frames - t_frames[0]}
    nearest = np.clip(np.searchsorted(t, t_frames), 0, len(t) - 1)
    for name, values in columns.items():
        if name == "t":
            continue
        v = np.asarray(values)
        if name in ("lane", "collision", "command"):
            out[name] = v[nearest]
        elif name == "heading":
            # Interpolate the unwrapped angle, then wrap back to (-pi, pi].
            u = np.interp(t_frames, t, np.unwrap(v.astype(np.float64)))
            out[name] = np.arctan2(np.sin(u), np.cos(u))
        else:
            out[name] = np.interp(t_frames, t, v.astype(np.float64))
    return out
