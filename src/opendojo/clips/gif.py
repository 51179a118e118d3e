"""Clips as animated GIFs (for `dojo clips show --gif` and the run report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from opendojo.atomic import atomic_path


def write_gif(frames: np.ndarray, path: str | Path, fps: float = 10.0, scale: int = 2) -> Path:
    """Write uint8 RGB frames [T,H,W,3] as a looping GIF, enlarged `scale` times (atomic)."""
    return save_gif([Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
                     for f in frames], path, fps)


def save_gif(images: list[Image.Image], path: str | Path, fps: float = 10.0) -> Path:
    """Write PIL images as a looping GIF at `fps` (atomic)."""
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=round(1000 / fps), loop=0)
    return Path(path)
