"""Dashcam video as an MP4 (or any container FFmpeg reads) with a telemetry CSV beside it.

The CSV schema (header row required; one row per telemetry sample, at any rate):

| column       | required | unit                                               |
|--------------|----------|----------------------------------------------------|
| t            | yes      | seconds from the video's first frame               |
| x, y         | yes      | metres in a local metric frame (e.g. ENU)           |
| heading      | yes      | radians, counter-clockwise from the x axis          |
| speed        | yes      | m/s                                                |
| acceleration | no       | m/s^2 (derived from speed when absent)             |
| steering     | no       | radians, front-wheel angle                         |
| lane         | no       | lane index                                          |
| collision    | no       | 0/1                                                 |
| command      | no       | route command: 0 left, 1 straight, 2 right, -1 unknown |

Telemetry is interpolated at the stored frame times; it must cover the whole video.
The CSV is found as `<video stem>.csv` beside the video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv

from opendojo.clips.importers import ImportedClip
from opendojo.clips.importers.frames import decode_resized, resample_indices
from opendojo.clips.importers.telemetry import check_series, resample
from opendojo.clips.schema import TELEMETRY_COLUMNS, ClipMeta, telemetry_table
from opendojo.errors import IngestError


def read_csv(path: str) -> dict[str, np.ndarray]:
    try:
        table = pacsv.read_csv(path)
    except FileNotFoundError:
        raise IngestError(path, "telemetry CSV not found") from None
    except Exception as e:  # pyarrow raises ArrowInvalid with a long message
        raise IngestError(path, f"not a readable CSV ({str(e).splitlines()[0]})") from None
    cols = {}
    for name in table.column_names:
        if name not in TELEMETRY_COLUMNS:
            continue
        col = table.column(name)
        try:
            cols[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        except (ValueError, TypeError):
            raise IngestError(path, f"column {name} is not numeric") from None
    return cols


def import_mp4(video: str, size: int, fps: float, vehicle_id: str = "", driver_id: str = "") -> ImportedClip:
    video_path = Path(video)
    csv = str(video_path.with_suffix(".csv"))
    columns = read_csv(csv)
    check_series(csv, columns)
    frames, times = decode_resized(str(video_path), size)
    if times is None:
        raise IngestError(str(video_path), "video has no timestamps")
    idx, grid = resample_indices(times, fps)
    tel = resample(csv, columns, times[idx], fps)
    if "acceleration" not in tel:
        tel["acceleration"] = np.gradient(tel["speed"], grid) if len(grid) > 1 else np.zeros(len(grid))
    for name in ("lane", "command"):
        if name in tel:
            tel[name] = tel[name].astype(int)
    if "collision" in tel:
        tel["collision"] = tel["collision"].astype(bool)
    meta = ClipMeta(source="mp4", vehicle_id=vehicle_id or video_path.parent.name or "dashcam",
                    driver_id=driver_id or "unknown", route="", fps=fps, origin=str(video_path))
    return ImportedClip(frames=frames[idx], telemetry=telemetry_table(tel), meta=meta)
