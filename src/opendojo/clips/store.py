"""The clip store: video and telemetry files under an fsspec URL, a Lance catalog beside them.

Layout under the store root (a local directory by default, any fsspec URL that Lance can
also open, e.g. ``s3://bucket/fleet``):

    clips/<clip_id>/video.mp4          H.264
    clips/<clip_id>/telemetry.parquet  one row per frame (`opendojo.clips.schema`)
    clips/<clip_id>/objects.npz        simulated fleet clips only: the camera's object mask
                                       of its raw frames, lossless (`ClipStore.read_objects`)
    catalog.lance                      one row per clip; more columns are added by later stages
    simtruth.lance                     simulator ground truth: evaluation only
    quarantine.jsonl                   inputs that were refused, with the reason

Visibility: a clip exists once its catalog row does. Files are written under a temporary
name and renamed into place before the row is committed, and a Lance commit is atomic, so
a crash at any point leaves no partial clip visible (only an orphan temporary directory,
which `gc` removes). Clip ids are derived from the content, so storing the same clip twice
keeps one copy.

Workers call `write_clip` (files only, no catalog access); one process calls
`add_to_catalog` with the rows they return.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from opendojo import code_version
from opendojo.clips.schema import (
    CATALOG_SCHEMA, TELEMETRY_SCHEMA, Clip, ClipMeta, telemetry_table,
)
from opendojo.clips.video import decode_rgb, encode_h264
from opendojo.errors import ClipNotFound, FilterError, StoreError

if TYPE_CHECKING:
    import lance

CATALOG = "catalog.lance"
SIM_TRUTH = "simtruth.lance"
QUARANTINE = "quarantine.jsonl"
OBJECTS = "objects.npz"
SIM_TRUTH_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("driver_profile", pa.string()),
    ("rare_event", pa.string()),     # "" when none
    ("truth_json", pa.string()),     # everything else the simulator knew, as JSON
])


def clip_id_for(frames: np.ndarray, telemetry: pa.Table) -> str:
    """A content id: a hash of the decoded frames and the telemetry values."""
    h = hashlib.blake2b(digest_size=10)
    h.update(np.ascontiguousarray(frames).tobytes())
    for name in TELEMETRY_SCHEMA.names:
        h.update(np.ascontiguousarray(telemetry.column(name).to_numpy(zero_copy_only=False)).tobytes())
    return h.hexdigest()


class ClipStore:
    """A clip store at `url`. `ClipStore.create(url)` makes one; `ClipStore(url)` opens one."""

    def __init__(self, url: str | os.PathLike, must_exist: bool = True):
        self.url = str(url).rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except ImportError as e:   # fsspec names the package its protocol needs
            raise StoreError(f"{self.url}: {e}") from None
        except ValueError as e:    # an unknown protocol
            raise StoreError(f"{self.url}: not a store URL fsspec knows ({e})") from None
        if must_exist and not self.fs.exists(self._p(CATALOG)) and not self.fs.exists(self._p("clips")):
            raise StoreError(f"{self.url}: no clip store here (make one with `dojo fleet generate` "
                             "or `dojo ingest`)")

    @classmethod
    def create(cls, url: str | os.PathLike) -> "ClipStore":
        store = cls(url, must_exist=False)
        store.fs.makedirs(store._p("clips"), exist_ok=True)
        return store

    # -- paths ---------------------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def _uri(self, name: str) -> str:
        """A URI that Lance understands for a dataset under the root."""
        if self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol:
            return os.path.join(self.root, name)
        return f"{self.url}/{name}"

    # -- writing ---------------------------------------------------------------------------
    def write_clip(self, frames: np.ndarray, telemetry: pa.Table | dict, meta: ClipMeta,
                   objects: np.ndarray | None = None) -> dict:
        """Encode and store one clip's files atomically; return its catalog row.

        `objects`: the car's object mask of the raw frames, bool [N, H, W]
        (`opendojo.fleet.camera.object_pixels`), kept losslessly beside the video, where
        H.264 would smear a one-pixel fill's colour. Safe to call from many worker processes
        at once. Does not touch the catalog: pass the returned rows to `add_to_catalog`.
        Storing a clip that is already stored writes nothing and returns the same row.
        """
        if isinstance(telemetry, dict):
            telemetry = telemetry_table(telemetry)
        if telemetry.num_rows != len(frames):
            raise ValueError(f"{telemetry.num_rows} telemetry rows for {len(frames)} frames")
        if objects is not None and objects.shape != frames.shape[:3]:
            raise ValueError(f"an object mask of shape {objects.shape} for frames of {frames.shape[:3]}")
        clip_id = clip_id_for(frames, telemetry)
        final = self._p("clips", clip_id)
        if not self.fs.exists(posixpath.join(final, "telemetry.parquet")):
            video = encode_h264(frames, meta.fps)
            tmp = self._p("clips", f".tmp-{uuid.uuid4().hex}")
            self.fs.makedirs(tmp, exist_ok=True)
            with self.fs.open(posixpath.join(tmp, "video.mp4"), "wb") as f:
                f.write(video)
            buf = io.BytesIO()
            pq.write_table(telemetry, buf, compression="zstd")
            with self.fs.open(posixpath.join(tmp, "telemetry.parquet"), "wb") as f:
                f.write(buf.getvalue())
            if objects is not None:
                buf = io.BytesIO()
                np.savez_compressed(buf, packed=np.packbits(objects.astype(bool), axis=-1),
                                    width=np.int64(objects.shape[-1]))
                with self.fs.open(posixpath.join(tmp, OBJECTS), "wb") as f:
                    f.write(buf.getvalue())
            try:
                self.fs.mv(tmp, final, recursive=True)
            except (FileExistsError, OSError):
                # Another worker stored the same content first: keep theirs.
                self.fs.rm(tmp, recursive=True)
        t = telemetry.column("t").to_numpy()
        x, y = telemetry.column("x").to_numpy(), telemetry.column("y").to_numpy()
        n, (h, w) = len(frames), frames.shape[1:3]
        return {
            "clip_id": clip_id, **{k: v for k, v in meta.to_dict().items()},
            "n_frames": n, "width": w, "height": h,
            "duration_s": float(t[-1] - t[0]) + 1.0 / meta.fps,
            "distance_m": float(np.nansum(np.hypot(np.diff(x), np.diff(y)))),
            "video_path": f"clips/{clip_id}/video.mp4",
            "telemetry_path": f"clips/{clip_id}/telemetry.parquet",
            "created_at": datetime.now(timezone.utc),
            "code_version": code_version(),
        }

    def add_to_catalog(self, rows: Sequence[dict]) -> int:
        """Commit rows to the catalog in one atomic Lance commit; skip ids already there.

        Returns the number of new clips. One process at a time should call this.
        """
        known = self.clip_ids()
        fresh, seen = [], set()
        for r in rows:
            if r["clip_id"] not in known and r["clip_id"] not in seen:
                seen.add(r["clip_id"])
                fresh.append({name: r.get(name) for name in CATALOG_SCHEMA.names})
        if not fresh:
            return 0
        table = pa.Table.from_pylist(fresh, schema=CATALOG_SCHEMA)
        self._append(CATALOG, table)
        return len(fresh)

    def put(self, frames: np.ndarray, telemetry: pa.Table | dict, meta: ClipMeta) -> tuple[str, bool]:
        """Write one clip and catalog it. Returns (clip_id, whether it was new)."""
        row = self.write_clip(frames, telemetry, meta)
        return row["clip_id"], self.add_to_catalog([row]) == 1

    def put_sim_truth(self, rows: Iterable[dict]) -> None:
        """Store simulator ground truth: {clip_id, driver_profile, rare_event, ...rest}."""
        out = []
        for r in rows:
            r = dict(r)
            out.append({"clip_id": r.pop("clip_id"), "driver_profile": r.pop("driver_profile", ""),
                        "rare_event": r.pop("rare_event", "") or "",
                        "truth_json": json.dumps(r, default=_json_default)})
        if out:
            self._append(SIM_TRUTH, pa.Table.from_pylist(out, schema=SIM_TRUTH_SCHEMA))

    def _append(self, name: str, table: pa.Table) -> None:
        uri = self._uri(name)
        mode = "append" if self.fs.exists(self._p(name)) else "create"
        import lance   # imported where used: fleet workers only write files and start faster

        lance.write_dataset(table, uri, mode=mode)

    def quarantine(self, path: str, reason: str) -> None:
        """Record a refused input (one JSON line; never the half-ingested data)."""
        line = json.dumps({"path": str(path), "reason": reason,
                           "time": datetime.now(timezone.utc).isoformat()})
        with self.fs.open(self._p(QUARANTINE), "a") as f:
            f.write(line + "\n")

    def quarantined(self) -> list[dict]:
        if not self.fs.exists(self._p(QUARANTINE)):
            return []
        with self.fs.open(self._p(QUARANTINE), "r") as f:
            return [json.loads(line) for line in f if line.strip()]

    def read_note(self, name: str) -> dict | None:
        """A small JSON document kept at the store's root (`write_note`), None if absent."""
        if not self.fs.exists(self._p(name)):
            return None
        with self.fs.open(self._p(name), "r") as f:
            return json.load(f)

    def write_note(self, name: str, obj: dict) -> None:
        """Write it as `write_clip` writes a clip: under a temporary name in clips/ (which
        `gc` sweeps if the writer dies), then moved into place, so a reader never sees half."""
        tmp = self._p("clips", f".tmp-{uuid.uuid4().hex}")
        with self.fs.open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
        self.fs.mv(tmp, self._p(name))

    def gc(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary directories left by crashed writers; returns how many."""
        removed = 0
        for p in self.fs.ls(self._p("clips"), detail=True):
            name = posixpath.basename(p["name"].rstrip("/"))
            if name.startswith(".tmp-") and time.time() - _mtime(p) > older_than_s:
                self.fs.rm(p["name"], recursive=True)
                removed += 1
        return removed

    # -- reading ---------------------------------------------------------------------------
    def dataset(self, name: str = CATALOG) -> lance.LanceDataset | None:
        import lance

        if not self.fs.exists(self._p(name)):
            return None
        return lance.dataset(self._uri(name))

    def catalog(self, filter: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """The catalog as an Arrow table; `filter` is a SQL predicate (e.g. "scenario = 'merge'")."""
        ds = self.dataset()
        if ds is None:
            return CATALOG_SCHEMA.empty_table() if columns is None else \
                pa.schema([CATALOG_SCHEMA.field(c) for c in columns]).empty_table()
        try:
            return ds.to_table(filter=filter, columns=columns)
        except (ValueError, OSError) as e:     # pyarrow's ArrowInvalid is a ValueError
            if filter is None:
                raise StoreError(f"{self.url}: cannot read the catalog ({lance_message(e)})") from None
            raise FilterError(filter, lance_message(e)) from None

    def sim_truth(self) -> pa.Table:
        """Simulator ground truth. Only evaluation code may read this."""
        ds = self.dataset(SIM_TRUTH)
        return SIM_TRUTH_SCHEMA.empty_table() if ds is None else ds.to_table()

    def clip_ids(self, filter: str | None = None) -> set[str]:
        return set(self.catalog(filter, columns=["clip_id"]).column("clip_id").to_pylist())

    def row(self, clip_id: str) -> dict:
        if not _is_clip_id(clip_id):
            raise ClipNotFound(f"{clip_id!r} is not a clip id")
        rows = self.catalog(f"clip_id = '{clip_id}'").to_pylist()
        if not rows:
            raise ClipNotFound(f"clip {clip_id} is not in the catalog at {self.url}")
        return rows[0]

    def telemetry(self, clip_id: str) -> pa.Table:
        with self.fs.open(self._p("clips", clip_id, "telemetry.parquet"), "rb") as f:
            return pq.read_table(f)

    def video_source(self, clip_id: str):
        """A path (local stores) or an open file object for the clip's MP4."""
        path = self._p("clips", clip_id, "video.mp4")
        if "file" in self.fs.protocol or self.fs.protocol == "local":
            return path
        return self.fs.open(path, "rb")

    def has_objects(self, clip_id: str) -> bool:
        """Was the clip stored with the car's object mask (`write_clip`'s `objects`)?"""
        return self.fs.exists(self._p("clips", clip_id, OBJECTS))

    def read_objects(self, clip_id: str) -> np.ndarray | None:
        """The car's object mask of the clip's raw frames, bool [N, H, W]; None for a clip
        stored without one (imported video, synthetic clips, stores from before)."""
        try:
            with self.fs.open(self._p("clips", clip_id, OBJECTS), "rb") as f, np.load(f) as z:
                return np.unpackbits(z["packed"], axis=-1, count=int(z["width"])).astype(bool)
        except FileNotFoundError:
            return None

    def read_frames(self, clip_id: str, indices: Sequence[int] | None = None,
                    row: dict | None = None) -> np.ndarray:
        """Decode a clip's frames as uint8 RGB [N, H, W, 3]: all of them, or `indices`."""
        row = row or self.row(clip_id)
        return decode_rgb(self.video_source(clip_id), n_frames=row["n_frames"],
                          indices=indices, fps=row["fps"])

    def iter_clips(self, filter: str | None = None) -> Iterator[Clip]:
        for row in self.catalog(filter).to_pylist():
            yield Clip(row=row, store=self)

    def __len__(self) -> int:
        ds = self.dataset()
        return 0 if ds is None else ds.count_rows()


# Where in Lance's Rust source an error was raised: ", /home/runner/work/lance/lance/rust/
# lance-datafusion/src/sql.rs:109:22" (a path of the machine that built the wheel)
_RUST_SOURCE = re.compile(r",?\s*[^\s,()]*\.rs:\d+(?::\d+)?")
_LANCE_LEAD_IN = re.compile(r"^(?:(?:Invalid user input|External error|Query Execution error): )+")


def lance_message(e: BaseException) -> str:
    """The user's part of a Lance error, in one line: its first line (and a "Did you mean
    ...?" under it) without the Rust source locations and the generic lead-ins."""
    lines = [ln.strip() for ln in _RUST_SOURCE.sub("", str(e)).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    first = _LANCE_LEAD_IN.sub("", lines[0]) or lines[0]
    hint = [ln for ln in lines[1:2] if ln.startswith("Did you mean")]
    return " ".join([first, *hint])


def _is_clip_id(s: str) -> bool:
    return len(s) == 20 and all(c in "0123456789abcdef" for c in s)


def _mtime(info: dict) -> float:
    m = info.get("mtime") or info.get("LastModified") or 0
    return m.timestamp() if hasattr(m, "timestamp") else float(m)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)
