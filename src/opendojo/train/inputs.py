"""What the policy network reads per frame, made from camera frames in one place for
training, open- and closed-loop evaluation, shadow mode and embeddings.

- RGB: the camera frame scaled to the input size (`opendojo.clips.video.resize_rgb`, as the
  frame cache scales it).
- With `PolicyConfig.object_channel`, a fourth channel: the other road users' cost field
  (`opendojo.train.occupancy.cost_field`), read from the full-resolution frame by colour
  (the data engine's `object_mask`) and widened by the ego's size. At the demo's 64 px a
  car is 3.75 x 1.5 pale pixels of RGB that no network learned to brake for
  (docs/driving.md, "Synthesised road users"); in this channel it is a solid blob of about
  8 x 4 pixels. Only bird's-eye simulator video has it; other clips get an empty channel,
  as they get no collision cost.

Nothing here reads the simulator: the channel is made from the same pixels the fleet
records, so closed loop computes it from the camera frame as training did from the clip.
"""

from __future__ import annotations

import numpy as np


def input_frames(frames: np.ndarray, cfg, birds_eye: bool = True) -> np.ndarray:
    """Full-resolution uint8 camera frames [N, H, W, 3] (the fleet camera's) -> the network's
    uint8 input frames [N, S, S, C] for `cfg` (a `PolicyConfig`). `birds_eye=False`
    (imported dashcam video) leaves the object channel empty."""
    from opendojo.clips.video import resize_rgb

    frames = np.asarray(frames)
    small = np.stack([resize_rgb(f, cfg.image_size) for f in frames])
    if not cfg.object_channel:
        return small
    if birds_eye:
        from opendojo.train.occupancy import camera_geometry, cost_field

        width = frames.shape[2]
        px_per_m, ego_row = camera_geometry(width, width)
        field = cost_field(frames, cfg.image_size, px_per_m, ego_row)
    else:
        field = np.zeros(small.shape[:3], np.uint8)
    return np.concatenate([small, field[..., None]], axis=-1)


def with_object_channel(small: np.ndarray, field: np.ndarray) -> np.ndarray:
    """A clip's cached input frames uint8 [N, S, S, 3] and its cost field [N, S, S] as
    4-channel frames [N, S, S, 4]."""
    return np.concatenate([np.asarray(small), np.asarray(field)[..., None]], axis=-1)
