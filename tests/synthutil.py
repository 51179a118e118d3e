"""Labels, cameras and things shared by the synthesis tests (tests/test_synthesis.py,
tests/test_lane_changes.py, tests/test_object_channel.py)."""

from __future__ import annotations

import numpy as np

from opendojo.train.occupancy import camera_geometry
from opendojo.train.synthesis import COLOURS, SIZES_M, Geometry, Thing

TIMES = np.arange(1, 7) * 0.5           # a label's waypoint times: 6 over 3 s


def geo(size: int = 128) -> Geometry:
    """The fleet camera (128 px wide) at input size `size`, history frames 0.1 s apart."""
    ppm, ego_row = camera_geometry(128, size)
    return Geometry(ppm, ego_row, 0.1, TIMES)


def straight(speed: float) -> np.ndarray:
    """A label driving straight on at `speed`."""
    return np.stack([speed * TIMES, np.zeros_like(TIMES)], -1).astype(np.float32)


def car(distance: float, speed: float = 0.0, side: float = 0.0) -> Thing:
    """A yellow car (a parked one, as highway-env colours it) `distance` m along the path."""
    return Thing(distance_m=distance, side_m=side, speed=speed, size_m=SIZES_M[0], colour=COLOURS[0])


def centroid(img: np.ndarray) -> np.ndarray:
    """(row, col) of an image's mass, in pixel indices."""
    r, c = np.indices(img.shape)
    return np.array([(r * img).sum(), (c * img).sum()]) / img.sum()
