"""Decoded frames at the network's input size, kept on local disk beside the store.

Training reads every frame of a dataset once per epoch, and the flywheel and benchmarks
train on the same clips again and again. Decoding H.264 and scaling costs about as much
CPU per sample as a sixth of a training step on this machine, and on 2 cores the decoder
competes with the step. So a clip is decoded once per input size and kept as a raw
uint8 array `[N, S, S, 3]` (`.npy`); later reads are a memory map.

This is a derived copy, never the truth: clip ids come from the content, so a cached
array can never go stale, and deleting the cache directory loses nothing. Where it lives:
`<store>/cache/frames-<S>/` for local stores; for remote stores (any other fsspec URL) a
directory under `$OPENDOJO_CACHE` (default `~/.cache/opendojo`) named by the store's URL.
At 64x64 a 15 s clip takes 1.8 MB (about 2.5x its MP4).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from opendojo.atomic import atomic_path
from opendojo.clips.video import decode_rgb

# Bump when the decoded pixels would change (scaler, colour conversion): old entries are ignored.
CACHE_VERSION = 1


def cache_dir(store, size: int, kind: str = "frames") -> Path:
    """Where decoded frames (or another per-frame array, `kind`) of `store` at `size` x
    `size` live."""
    name = f"{kind}-{size}-v{CACHE_VERSION}"
    if "file" in store.fs.protocol or store.fs.protocol == "local":
        return Path(store.root) / "cache" / name
    base = Path(os.environ.get("OPENDOJO_CACHE", Path.home() / ".cache" / "opendojo"))
    return base / hashlib.blake2b(store.url.encode(), digest_size=8).hexdigest() / name


def cached_frames(store, clip_id: str, n_frames: int, size: int) -> np.ndarray:
    """The clip's frames as uint8 `[N, size, size, 3]`: read from the cache (a read-only
    memory map), or decoded once and written there atomically (safe with many processes)."""
    return cached_array(cache_dir(store, size) / f"{clip_id}.npy",
                        lambda: decode_rgb(store.video_source(clip_id), n_frames=n_frames,
                                           threads=1, size=size))


def cached_array(path: Path, compute) -> np.ndarray:
    """The array at `path` (a read-only memory map), or `compute()` written there atomically
    (safe with many processes)."""
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        pass
    arr = compute()
    try:
        with atomic_path(path) as tmp:
            np.save(tmp, arr)
    except OSError:   # a read-only or full disk only costs the next reader a recompute
        pass
    return arr


def is_cached(store, clip_id: str, size: int) -> bool:
    return (cache_dir(store, size) / f"{clip_id}.npy").exists()
