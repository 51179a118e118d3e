"""Shared frame handling for importers: decode, resample in time, crop and scale."""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from opendojo.errors import IngestError


def decode_resized(path: str, size: int, fmt: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a video to uint8 RGB frames [T, size, size, 3] (centre crop to square, then scale).

    Returns (frames, times) where times are the frames' presentation times in seconds, or
    None when the container has none (a raw elementary stream such as comma2k19's
    video.hevc). Corrupt or empty video raises IngestError naming the file.
    """
    frames, times = [], []
    reformatter = VideoReformatter()  # one cached swscale context for the whole video
    try:
        with av.open(path, format=fmt) as container:
            if not container.streams.video:
                raise IngestError(path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for f in container.decode(stream):
                # swscale does the expensive downscale; the crop to square is a cheap slice.
                w, h = f.width, f.height
                scale = size / min(w, h)
                sw, sh = max(size, round(w * scale)), max(size, round(h * scale))
                img = reformatter.reformat(f, width=sw, height=sh, format="rgb24").to_ndarray()
                x0, y0 = (sw - size) // 2, (sh - size) // 2
                frames.append(img[y0:y0 + size, x0:x0 + size])
                times.append(f.time)
    except av.error.FFmpegError as e:
        if not frames:
            raise IngestError(path, f"cannot decode video ({e.strerror or type(e).__name__})") from None
        # A truncated file: frames up to the damage decoded, the rest did not.
        raise IngestError(path, f"video is truncated or corrupt after frame {len(frames)} "
                                f"({e.strerror or type(e).__name__})") from None
    if not frames:
        raise IngestError(path, "video has no frames")
    t = None if any(x is None for x in times) else np.asarray(times, dtype=np.float64)
    return np.stack(frames), t


def resample_indices(times: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Pick the source frames nearest to a regular `fps` grid over [times[0], times[-1]].

    Returns (source indices, grid times relative to the first frame).
    """
    t0 = times[0]
    grid = np.arange(0.0, times[-1] - t0 + 1e-9, 1.0 / fps)
    idx = np.clip(np.searchsorted(times - t0, grid), 0, len(times) - 1)
    prev = np.clip(idx - 1, 0, len(times) - 1)
    closer_prev = np.abs(times[prev] - t0 - grid) < np.abs(times[idx] - t0 - grid)
    idx = np.where(closer_prev, prev, idx)
    return idx, grid
