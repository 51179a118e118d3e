"""comma2k19 segments (https://github.com/commaai/comma2k19) into the clip schema.

A segment directory holds (numpy arrays saved without a file extension):

    video.hevc                                  raw HEVC stream, 20 fps
    global_pose/frame_times                     (N,)   seconds (boot time) of each video frame
    global_pose/frame_positions                 (N,3)  ECEF metres
    global_pose/frame_orientations              (N,4)  quaternion (w, x, y, z), device -> ECEF
    global_pose/frame_velocities                (N,3)  ECEF m/s
    processed_log/CAN/speed/{t,value}           m/s (optional: else |frame_velocities|)
    processed_log/CAN/steering_angle/{t,value}  steering-wheel degrees (optional)

Conversion: positions go to a local East-North-Up frame whose origin is the first pose
(pymap3d.ecef2enu), so x is east and y north in metres; heading is the angle of the
device's forward axis in that frame, counter-clockwise from east. Steering becomes a
front-wheel angle: wheel degrees / `STEER_RATIO` (⚠ a typical passenger-car ratio, not
read from the data; override per vehicle). Frames and poses are resampled to the store's
frame rate (every other frame at 10 fps).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymap3d
from scipy.spatial.transform import Rotation

from opendojo.clips.importers import ImportedClip
from opendojo.clips.importers.frames import decode_resized, resample_indices
from opendojo.clips.importers.telemetry import check_series
from opendojo.clips.schema import ClipMeta, telemetry_table
from opendojo.errors import IngestError

STEER_RATIO = 15.3  # ⚠ steering-wheel angle / front-wheel angle; vehicle-specific
POSE_FILES = ("frame_times", "frame_positions", "frame_orientations")


def is_segment(path: Path) -> bool:
    return (path / "video.hevc").is_file() or (path / "global_pose").is_dir()


def _load(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            return np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise IngestError(str(path), "missing file") from None
    except (ValueError, OSError, EOFError) as e:
        raise IngestError(str(path), f"not a numpy array file ({e})") from None


def ecef_to_local(positions: np.ndarray, quats_wxyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF positions and device->ECEF quaternions to (east, north, heading) about the first pose."""
    lat0, lon0, h0 = pymap3d.ecef2geodetic(*positions[0])
    e, n, _ = pymap3d.ecef2enu(positions[:, 0], positions[:, 1], positions[:, 2], lat0, lon0, h0)
    forward_ecef = Rotation.from_quat(quats_wxyz, scalar_first=True).apply([1.0, 0.0, 0.0])
    fe, fn, _ = pymap3d.ecef2enuv(forward_ecef[:, 0], forward_ecef[:, 1], forward_ecef[:, 2], lat0, lon0)
    return np.asarray(e), np.asarray(n), np.arctan2(fn, fe)


def import_segment(segment: str | Path, size: int, fps: float, vehicle_id: str = "",
                   driver_id: str = "") -> ImportedClip:
    seg = Path(segment)
    pose = {name: _load(seg / "global_pose" / name) for name in POSE_FILES}
    vel_path = seg / "global_pose" / "frame_velocities"
    times = pose["frame_times"].astype(np.float64)
    positions = pose["frame_positions"].astype(np.float64)
    quats = pose["frame_orientations"].astype(np.float64)
    n = len(times)
    if positions.shape != (n, 3) or quats.shape != (n, 4):
        raise IngestError(str(seg / "global_pose"),
                          f"pose arrays disagree: {n} frame_times, positions {positions.shape}, "
                          f"orientations {quats.shape}")
    east, north, heading = ecef_to_local(positions, quats)
    columns = {"t": times, "x": east, "y": north, "heading": heading}
    speed_dir = seg / "processed_log" / "CAN" / "speed"
    if speed_dir.is_dir():
        columns["speed"] = _can_at(speed_dir, times)
    elif vel_path.exists():
        columns["speed"] = np.linalg.norm(_load(vel_path).astype(np.float64), axis=1)
    steer_dir = seg / "processed_log" / "CAN" / "steering_angle"
    if steer_dir.is_dir():
        columns["steering"] = np.deg2rad(_can_at(steer_dir, times)) / STEER_RATIO
    check_series(str(seg / "global_pose"), columns)

    frames, _ = decode_resized(str(seg / "video.hevc"), size, fmt="hevc")
    if len(frames) != n:
        raise IngestError(str(seg / "video.hevc"),
                          f"{len(frames)} video frames but {n} frame_times (mismatched timestamps)")
    idx, grid = resample_indices(times, fps)
    tel = {k: v[idx] for k, v in columns.items()}
    tel["t"] = grid
    tel["acceleration"] = np.gradient(tel["speed"], grid) if len(grid) > 1 else np.zeros(len(grid))
    meta = ClipMeta(source="comma2k19", vehicle_id=vehicle_id or seg.parent.name or "comma",
                    driver_id=driver_id or "unknown", route="", fps=fps, origin=str(seg))
    return ImportedClip(frames=frames[idx], telemetry=telemetry_table(tel), meta=meta)


def _can_at(directory: Path, times: np.ndarray) -> np.ndarray:
    """A CAN signal ({t,value}) interpolated at the frame times."""
    t = _load(directory / "t").astype(np.float64).ravel()
    v = _load(directory / "value").astype(np.float64).ravel()
    if len(t) != len(v) or len(t) < 2:
        raise IngestError(str(directory), f"{len(t)} times for {len(v)} values")
    check_series(str(directory), {"t": t, "value": v}, required=("t", "value"))
    return np.interp(times, t, v)
