"""Clips as animated GIFs (for `dojo clips show --gif` and the run report)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def write_gif(frames: np.ndarray, path: str | Path, fps: float = 10.0, scale: int = 2) -> Path:
    """Write uint8 RGB frames [T,H,W,3] as a looping GIF, enlarged `scale` times (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
              for f in frames]
    tmp = path.with_name(f".{path.name}.tmp")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0)
    os.replace(tmp, path)
    return path
