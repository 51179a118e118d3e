"""Rollout videos: closed-loop episodes as GIFs, the network's predicted trajectory drawn in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def overlay_trajectory(frame: np.ndarray, trajectory: np.ndarray | None, camera,
                       scale: int = 3) -> Image.Image:
    """The camera frame enlarged `scale` times with ego-frame waypoints drawn as red dots.

    Waypoints are (x forward, y to the steering's positive side = the driver's right in
    the simulator), in metres; the camera puts the ego at `ego_row` of the height and
    draws `scaling` pixels per metre.
    """
    h, w = frame.shape[:2]
    img = Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST)
    if trajectory is None:
        return img
    draw = ImageDraw.Draw(img)
    px_per_m = camera.scaling * (w / camera.width) * scale
    cx, cy = w * scale / 2, camera.ego_row * h * scale
    pts = [(cx + y * px_per_m, cy - x * px_per_m) for x, y in np.asarray(trajectory)]
    draw.line([(cx, cy)] + pts, fill=(230, 30, 30), width=2)
    for px, py in pts:
        draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=(230, 30, 30))
    return img


def save_rollout_gif(frames: list[np.ndarray], predictions: list, camera, path: str | Path,
                     fps: float = 10.0, scale: int = 3) -> Path:
    from opendojo.clips.gif import save_gif

    return save_gif([overlay_trajectory(f, p, camera, scale)
                     for f, p in zip(frames, predictions or [None] * len(frames))], path, fps)
