"""Atomic writes of local files: write to a temporary name beside the target, then rename.

Readers see the old file or the new one, never half of one; a writer that fails (or is
killed) leaves the target untouched. The temporary name keeps the target's suffix, so
writers that pick a format from it (matplotlib, PIL) still work, and starts with a dot.
(Files in a clip store go through fsspec instead: see `opendojo.clips.store`.)
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj) -> Path:
    """`obj` as indented JSON (numpy scalars and the like through float)."""
    return write_text(path, json.dumps(obj, indent=1, default=float))
