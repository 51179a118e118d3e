"""`dojo ingest`: find real video inputs under the given paths, import, store, quarantine.

Inputs recognised:
  * a comma2k19 segment directory (holds `video.hevc` and `global_pose/`), or any directory
    containing such segments at any depth;
  * a video file (.mp4, .mov, .mkv, .avi) with a telemetry CSV of the same stem beside it
    (schema: `opendojo.clips.importers.mp4_csv`), or directories containing them.

Each input is imported on its own: a bad one is reported in one line naming the file and
the reason, recorded in the store's quarantine list, and the others still go in. Rows
reach the catalog in one atomic commit at the end, so the catalog never shows a partial
clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from opendojo.clips.importers.comma2k19 import import_segment, is_segment
from opendojo.clips.importers.mp4_csv import import_mp4
from opendojo.clips.store import ClipStore
from opendojo.errors import IngestError

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi"}


@dataclass
class IngestResult:
    added: list[str] = field(default_factory=list)       # new clip ids
    duplicates: list[str] = field(default_factory=list)  # already in the store
    failed: list[IngestError] = field(default_factory=list)


def find_inputs(paths: Iterable[str | Path]) -> tuple[list[tuple[str, Path]], list[IngestError]]:
    """Expand paths to (kind, path) inputs; a path that does not exist is an error, not a crash."""
    found, errors = [], []
    for p in map(Path, paths):
        if not p.exists():
            errors.append(IngestError(str(p), "no such file or directory"))
        elif p.is_dir() and is_segment(p):
            found.append(("comma2k19", p))
        elif p.is_dir():
            inner = sorted({q.parent for q in p.rglob("video.hevc")} |
                           {q.parent for q in p.rglob("global_pose") if q.is_dir()})
            found += [("comma2k19", q) for q in inner]
            found += [("mp4", q) for q in sorted(p.rglob("*")) if q.suffix.lower() in VIDEO_SUFFIXES]
            if not inner and not any(k == "mp4" for k, _ in found):
                errors.append(IngestError(str(p), "no videos or comma2k19 segments inside"))
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            found.append(("mp4", p))
        else:
            errors.append(IngestError(str(p), f"unknown input type {p.suffix or '(no suffix)'}; "
                                              "expected a video with a .csv beside it or a comma2k19 segment"))
    return found, errors


def ingest(paths: Iterable[str | Path], store: ClipStore, size: int = 96, fps: float = 10.0,
           on_item: Callable[[str, Path, str | None], None] | None = None,
           found: tuple[list[tuple[str, Path]], list[IngestError]] | None = None) -> IngestResult:
    """Import every input under `paths` into `store`. Never raises for a bad input.

    `found`: what `find_inputs(paths)` returned, for a caller that has looked already (the
    CLI, to refuse an ingest with nothing to import before it makes a store)."""
    result = IngestResult()
    inputs, failed = found if found is not None else find_inputs(paths)
    result.failed = list(failed)
    for err in result.failed:
        store.quarantine(err.path, err.reason)
        if on_item:
            on_item("?", Path(err.path), str(err))
    rows = []
    for kind, path in inputs:
        try:
            clip = (import_segment(path, size, fps) if kind == "comma2k19"
                    else import_mp4(str(path), size, fps))
            rows.append(store.write_clip(clip.frames, clip.telemetry, clip.meta))
            status = None
        except IngestError as err:
            result.failed.append(err)
            store.quarantine(err.path, err.reason)
            status = str(err)
        if on_item:
            on_item(kind, path, status)
    known = store.clip_ids()
    for r in rows:
        (result.duplicates if r["clip_id"] in known else result.added).append(r["clip_id"])
        known.add(r["clip_id"])
    store.add_to_catalog(rows)
    return result
