"""The ego-centric camera: a bird's-eye view that turns with the car, the car facing up.

highway-env renders a top view of the road centred on the ego vehicle, north-up. The camera
renders a square window around the ego just large enough for any rotation, then samples it
(bilinear) on a grid rotated by the ego's heading, so that in the output image the ego
drives towards the top edge, sits at `ego_row` of the height, and the scale is `scaling`
pixels per metre. The same function serves the fleet (recording clips) and closed-loop
evaluation (feeding the policy network), so training and testing see the same view.

highway-env's world frame has x to the east and y pointing *down* the screen; a heading is
measured from +x towards +y (clockwise on screen). In the output image "up" is the ego's
heading and "right" is the driver's right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Output size (pixels), scale (pixels per metre) and where the ego sits (row fraction)."""

    width: int = 96
    height: int = 96
    scaling: float = 1.5
    ego_row: float = 0.75

    @property
    def render_size(self) -> int:
        """Side of the square window highway-env renders: covers every rotation of the crop."""
        cx = self.width / 2
        ry = self.ego_row * self.height
        reach = math.hypot(cx, max(ry, self.height - ry))
        return int(2 * math.ceil(reach) + 4)

    def env_config(self) -> dict:
        """The highway-env render settings for this camera (merge into the env config)."""
        s = self.render_size
        return {"screen_width": s, "screen_height": s, "scaling": self.scaling,
                "centering_position": [0.5, 0.5]}

    @cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        # u: pixels to the driver's right of the ego; v: pixels ahead of the ego.
        cols = np.arange(self.width, dtype=np.float64) + 0.5 - self.width / 2
        rows = self.ego_row * self.height - (np.arange(self.height, dtype=np.float64) + 0.5)
        u, v = np.meshgrid(cols, rows)
        return u, v

    def view(self, top_view: np.ndarray, heading: float) -> np.ndarray:
        """Rotate and crop a north-up render centred on the ego into the ego-up image."""
        s = top_view.shape[0]
        u, v = self._grid
        c, sn = math.cos(heading), math.sin(heading)
        centre = s / 2.0
        # Screen position (col, row) of a point v ahead and u to the right of the ego.
        col = centre + v * c - u * sn - 0.5
        row = centre + v * sn + u * c - 0.5
        return _bilinear(top_view, row, col)


def _bilinear(img: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    r0 = np.floor(row)
    c0 = np.floor(col)
    fr = (row - r0)[..., None]
    fc = (col - c0)[..., None]
    r0 = np.clip(r0.astype(np.intp), 0, h - 1)
    c0 = np.clip(c0.astype(np.intp), 0, w - 1)
    r1 = np.minimum(r0 + 1, h - 1)
    c1 = np.minimum(c0 + 1, w - 1)
    def f(r, c):
        return img[r, c].astype(np.float32)

    top = f(r0, c0) * (1 - fc) + f(r0, c1) * fc
    bottom = f(r1, c0) * (1 - fc) + f(r1, c1) * fc
    out = top * (1 - fr) + bottom * fr
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def render_ego_view(env, camera: Camera) -> np.ndarray:
    """Render `env` (made with `camera.env_config()`, render_mode="rgb_array") ego-up.

    Returns uint8 RGB [camera.height, camera.width, 3]. Rotation is done on the rendered
    pygame surface (nearest pixel, in C); `Camera.view` does the same on an array.
    """
    import pygame

    base = env.unwrapped
    if base.viewer is None:
        base.render()
    viewer = base.viewer
    viewer.display()
    surface = viewer.sim_surface
    # pygame rotates counter-clockwise; the heading is clockwise from +x; "up" is -90 deg.
    angle = math.degrees(float(base.vehicle.heading)) + 90.0
    rotated = pygame.transform.rotate(surface, angle)
    cx, cy = rotated.get_width() / 2.0, rotated.get_height() / 2.0
    left = int(round(cx - camera.width / 2.0))
    top = int(round(cy - camera.ego_row * camera.height))
    crop = rotated.subsurface((left, top, camera.width, camera.height))
    return np.ascontiguousarray(np.moveaxis(pygame.surfarray.array3d(crop), 0, 1))
