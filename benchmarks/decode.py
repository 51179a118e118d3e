"""Decode speed of the clip reader against the ffmpeg command line, same files, same run.

Ours: `ClipStore.read_frames(clip_id)` (frames delivered as RGB uint8 numpy arrays).
Reference: ffmpeg decoding the same MP4s to raw RGB (`-pix_fmt rgb24 -f null -`) with the
same thread count, two ways: one process per file (what a per-clip tool pays) and one
process over all files through the concat demuxer (no per-file start-up: the strict one).
Prints one JSON object; medians of `--repeats` interleaved runs.

    python benchmarks/decode.py [--clips 60] [--frames 150] [--size 96] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from clipfactory import arc_telemetry  # noqa: E402

from opendojo.clips.schema import ClipMeta  # noqa: E402
from opendojo.clips.store import ClipStore  # noqa: E402


def scene_frames(n: int, size: int, seed: int) -> np.ndarray:
    """Road-like frames: lanes scrolling down, a few moving boxes, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.empty((n, size, size, 3), np.uint8)
    boxes = rng.uniform(0, size, (4, 2))
    for i in range(n):
        img = np.full((size, size, 3), 90, np.uint8)
        img[((yy + 3 * i) % 24 < 12) & (xx % (size // 4) < 2)] = 230
        for bx, by in boxes:
            y0, x0 = int(by + i) % size, int(bx)
            img[y0:y0 + 10, x0:x0 + 6] = (40, 90, 200)
        out[i] = np.clip(img + rng.integers(-6, 7, img.shape), 0, 255)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory() as tmp:
        store = ClipStore.create(Path(tmp) / "store")
        rows = [store.write_clip(scene_frames(a.frames, a.size, i), arc_telemetry(a.frames),
                                 ClipMeta("sim", "v", "d", "highway")) for i in range(a.clips)]
        store.add_to_catalog(rows)
        ids = [r["clip_id"] for r in rows]
        files = [str(Path(store.root) / r["video_path"]) for r in rows]
        concat = Path(tmp) / "list.txt"
        concat.write_text("".join(f"file '{f}'\n" for f in files))
        total = a.clips * a.frames
        catalog_rows = {r["clip_id"]: r for r in store.catalog().to_pylist()}

        def ours() -> float:
            t0 = time.perf_counter()
            n = 0
            for cid in ids:
                from opendojo.clips.video import decode_rgb
                n += len(decode_rgb(store.video_source(cid), n_frames=catalog_rows[cid]["n_frames"],
                                    threads=a.threads))
            assert n == total, n
            return total / (time.perf_counter() - t0)

        def ffmpeg_cmd(inputs: list[str]) -> list[str]:
            return [ffmpeg, "-v", "error", "-threads", str(a.threads), *inputs,
                    "-pix_fmt", "rgb24", "-f", "null", "-"]

        def ffmpeg_per_file() -> float:
            t0 = time.perf_counter()
            for f in files:
                subprocess.run(ffmpeg_cmd(["-i", f]), check=True)
            return total / (time.perf_counter() - t0)

        def ffmpeg_concat() -> float:
            t0 = time.perf_counter()
            subprocess.run(ffmpeg_cmd(["-f", "concat", "-safe", "0", "-i", str(concat)]), check=True)
            return total / (time.perf_counter() - t0)

        ours(); ffmpeg_concat()  # warm the page cache and the libraries
        runs = {"ours": [], "ffmpeg_per_file": [], "ffmpeg_concat": []}
        for _ in range(a.repeats):
            runs["ours"].append(ours())
            runs["ffmpeg_per_file"].append(ffmpeg_per_file())
            runs["ffmpeg_concat"].append(ffmpeg_concat())
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(json.dumps({
        "benchmark": "decode",
        "clips": a.clips, "frames_per_clip": a.frames, "size": a.size, "threads": a.threads,
        "repeats": a.repeats,
        "ours_frames_per_s": round(med["ours"]),
        "ffmpeg_per_file_frames_per_s": round(med["ffmpeg_per_file"]),
        "ffmpeg_concat_frames_per_s": round(med["ffmpeg_concat"]),
        "ratio_vs_ffmpeg_per_file": round(med["ours"] / med["ffmpeg_per_file"], 3),
        "ratio_vs_ffmpeg_concat": round(med["ours"] / med["ffmpeg_concat"], 3),
        "target_ratio": 0.9,
        "ffmpeg": imageio_ffmpeg.get_ffmpeg_version(),
    }))


if __name__ == "__main__":
    main()
