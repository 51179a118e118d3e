"""Mirrored samples: a share of each batch flipped left-right, as a car driving the mirror
image of the road would have seen and driven it (docs/driving.md, "Mirrored samples").

A sample is mirrored whole: its frames along their width (the object channel with them),
its label's sideways coordinates and its steering label, its route command (left and right
swap), and, where the batch carries them, the collision cost's inputs (the later frames'
cost fields, the sideways part of where the ego went and its turn), so that the cost of a
mirrored prediction is the cost of the original one.

Every sample may be mirrored, the junctions' too, whose mirror image drives on the other
side of the road. Over five training seeds of the demo's config (docs/driving.md,
"Mirrored samples") half the samples mirrored cut the collisions per km by 37-46% (1.33
and 1.08 in two measurements, against 2.12) at the same score; mirroring only roads of
three lanes or more, to spare the junctions, left the collisions as they were (1.98).
"""

from __future__ import annotations

import numpy as np
import torch

from opendojo.clips.schema import ROUTE_COMMANDS


# The index of each route command's mirror image (left and right swap, straight stays).
_MIRRORED = np.array([ROUTE_COMMANDS.index({"left": "right", "right": "left"}.get(c, c))
                      for c in ROUTE_COMMANDS])


def mirror_command(command: np.ndarray) -> np.ndarray:
    """Route commands (indices into `ROUTE_COMMANDS`) in a mirror."""
    return _MIRRORED[command]


def mirror(arrays: dict, which: np.ndarray) -> None:
    """Mirror the samples `which` (bool [B]) of a batch's numpy arrays in place: frames uint8
    [B, T, H, W, C], trajectory [B, W, 2] (x ahead, y left), controls [B, 2] (acceleration,
    steering) and command [B]."""
    if not which.any():
        return
    arrays["frames"][which] = arrays["frames"][which][:, :, :, ::-1]
    arrays["trajectory"][which, :, 1] *= -1
    arrays["controls"][which, 1] *= -1
    arrays["command"][which] = mirror_command(arrays["command"][which])


def mirror_collision(batch: dict[str, torch.Tensor], which: np.ndarray) -> None:
    """Mirror the collision cost's inputs of the samples `which` in place (`batch` as
    `loader.TrainLoader._collision_inputs` returns it): field uint8 [B, steps, S, S],
    driven [B, steps, 2], turn [B, steps]."""
    if not which.any():
        return
    idx = torch.from_numpy(np.flatnonzero(which))
    batch["field"][idx] = batch["field"][idx].flip(-1)
    batch["driven"][idx, :, 1] *= -1
    batch["turn"][idx] *= -1
