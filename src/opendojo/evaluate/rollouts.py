"""Rollout videos: closed-loop episodes as GIFs, the network's predicted trajectory (red) and,
with a path head, the path it steers on (magenta) drawn in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


TRAJECTORY_RGB = (230, 30, 30)
PATH_RGB = (220, 0, 220)


def overlay_trajectory(frame: np.ndarray, trajectory: np.ndarray | None, camera,
                       scale: int = 3, path: np.ndarray | None = None) -> Image.Image:
    """The camera frame enlarged `scale` times with ego-frame waypoints drawn as red dots,
    and the path head's `path` (points at fixed distances ahead) as a magenta line.

    Points are (x forward, y to the steering's positive side = the driver's right in
    the simulator), in metres; the camera puts the ego at `ego_row` of the height and
    draws `scaling` pixels per metre.
    """
    h, w = frame.shape[:2]
    img = Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    px_per_m = camera.scaling * (w / camera.width) * scale
    cx, cy = w * scale / 2, camera.ego_row * h * scale

    def pixels(points):
        return [(cx + y * px_per_m, cy - x * px_per_m) for x, y in np.asarray(points)]

    if path is not None:
        draw.line([(cx, cy)] + pixels(path), fill=PATH_RGB, width=2)
    if trajectory is not None:
        pts = pixels(trajectory)
        draw.line([(cx, cy)] + pts, fill=TRAJECTORY_RGB, width=2)
        for px, py in pts:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=TRAJECTORY_RGB)
    return img


def save_rollout_gif(frames: list[np.ndarray], predictions: list, camera, path: str | Path,
                     fps: float = 10.0, scale: int = 3, paths: list | None = None) -> Path:
    """The episode's frames with each step's predictions (`overlay_trajectory`) as a GIF at
    `path`; `paths`: the path head's path at each step (None: none drawn)."""
    from opendojo.clips.gif import save_gif

    n = len(frames)
    return save_gif([overlay_trajectory(f, p, camera, scale, path=q)
                     for f, p, q in zip(frames, predictions or [None] * n, paths or [None] * n)],
                    path, fps)
