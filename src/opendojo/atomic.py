"""Atomic writes: write to a temporary name beside the target, then rename over it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: str | Path, obj) -> Path:
    """Write `obj` as indented JSON so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)
    return path
