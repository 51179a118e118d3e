"""Atomic writes of local files: write to a temporary name beside the target, then rename.

Readers see the old file or the new one, never half of one; a writer that fails (or is
killed) leaves the target untouched, and a failure before the rename removes the
temporary file. The temporary name keeps the target's suffix, so writers that pick a
format from it (matplotlib, PIL) still work, and starts with a dot. The renamed file gets
the permissions a plain `open()` would give it (0o666 less the umask), whatever mode the
writer created the temporary file with (safetensors, for one, creates files 0600).
(Files in a clip store go through fsspec instead: see `opendojo.clips.store`.)

JSON is written valid: NaN and infinities (a rate over zero km, say) become null.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from opendojo.errors import DojoError


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a newly created ordinary file gets: 0o666 less the umask."""
    return 0o666 & ~_umask()


def check_target(path: str | Path) -> Path:
    """Refuse (one line) a file to write that cannot be: an existing directory, or a path
    that runs through a file or into a folder this process may not write. For commands to
    call before their slow work, so that it is not thrown away at the end."""
    path = Path(path)
    if path.is_dir():
        raise DojoError(f"{path} is a directory; give a file name to write")
    for folder in path.parents:
        if folder.is_dir():
            if not os.access(folder, os.W_OK | os.X_OK):
                raise DojoError(f"{folder}: permission denied; cannot write {path}")
            break
        if folder.exists() or folder.is_symlink():
            raise DojoError(f"{folder} is not a directory; cannot write {path}")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed.

    Refuses (one line, `check_target`) a `path` that cannot be written, before anything is.
    """
    path = check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        if tmp.is_file() and not tmp.is_symlink():
            os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def finite(obj):
    """`obj` with every non-finite float (NaN, +-inf) replaced by None, recursively through
    dicts, lists and tuples (numpy scalars included), so that it is valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def _json_default(obj):
    """numpy scalars and the like through float; non-finite ones as null."""
    return finite(float(obj))


def write_json(path: str | Path, obj) -> Path:
    """`obj` as indented, valid JSON: numpy scalars and the like through float, and NaN or
    infinite numbers as null (JSON has neither). Readers must expect null where a figure
    can be undefined (e.g. collisions per km over 0 km)."""
    return write_text(path, json.dumps(finite(obj), indent=1, default=_json_default, allow_nan=False))
