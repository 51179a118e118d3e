"""Synthetic clips and real-video inputs for tests (no simulator needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opendojo.clips.video import encode_h264


def moving_frames(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Frames with a bright square moving across a noisy background: every frame differs."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(20, 120, size, dtype=np.float32)[None, :, None, None]
    noise = rng.integers(0, 8, (n, size, size, 3))
    frames = (ramp + noise).astype(np.uint8)
    for i in range(n):
        x = (i * 2) % (size - 8)
        frames[i, 8:16, x:x + 8] = 230
    return frames


def arc_telemetry(n: int, fps: float = 10.0, speed: float = 12.0, yaw_rate: float = 0.05) -> dict:
    t = np.arange(n) / fps
    heading = yaw_rate * t
    # integrate a constant-speed arc exactly
    x = speed / yaw_rate * np.sin(heading)
    y = speed / yaw_rate * (1 - np.cos(heading))
    return {"t": t, "x": x, "y": y, "heading": heading, "speed": np.full(n, speed),
            "acceleration": np.zeros(n), "steering": np.full(n, 0.01),
            "lane": np.ones(n, int), "collision": np.zeros(n, bool), "command": np.ones(n, int)}


def write_mp4_csv(directory: Path, name: str, n: int = 30, fps: float = 10.0, seed: int = 0,
                  csv_columns: dict | None = None) -> Path:
    """A dashcam-style input: <name>.mp4 and <name>.csv (telemetry at 2x the frame rate)."""
    directory.mkdir(parents=True, exist_ok=True)
    video = directory / f"{name}.mp4"
    video.write_bytes(encode_h264(moving_frames(n, 64, seed), fps))
    if csv_columns is None:
        csv_columns = arc_telemetry(2 * n, fps=2 * fps)
    header = ",".join(csv_columns)
    rows = np.column_stack([np.asarray(v, dtype=float) for v in csv_columns.values()])
    np.savetxt(directory / f"{name}.csv", rows, delimiter=",", header=header, comments="", fmt="%.9g")
    return video


def labelled_synthetic_store(root, **kwargs):
    """`make_synthetic_store(root, **kwargs)` with hindsight labels, opened as a ClipStore."""
    from opendojo.clips.store import ClipStore
    from opendojo.label.hindsight import label_store
    from opendojo.train.synthetic import make_synthetic_store

    make_synthetic_store(root, **kwargs)
    store = ClipStore(root)
    label_store(store)
    return store
