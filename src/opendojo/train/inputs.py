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

Nothing here reads the simulator: the channel is made from camera pixels only. Training
reads it from the clip's H.264-decoded frames, closed loop from the raw camera frame; the
codec smears the cars' colour, so a clip's field holds about 40% more than the raw frame's
(a known skew, docs/training.md).
"""

from __future__ import annotations

import numpy as np


def input_frames(frames: np.ndarray, cfg, field: np.ndarray | None = None) -> np.ndarray:
    """Full-resolution uint8 camera frames [N, H, W, 3] (the fleet camera's) -> the network's
    uint8 input frames [N, S, S, C] for `cfg` (a `PolicyConfig`). The object channel is
    `field` [N, S, S] where the caller has it (a clip's cached `clip_cost_field`, empty for
    video that is not bird's-eye), else made from these frames."""
    from opendojo.clips.video import resize_rgb

    frames = np.asarray(frames)
    small = np.stack([resize_rgb(f, cfg.image_size) for f in frames])
    if not cfg.object_channel:
        return small
    if field is None:
        from opendojo.train.occupancy import camera_cost_field

        field = camera_cost_field(frames, cfg.image_size)
    return with_object_channel(small, field)


def clip_field(store, clip_id: str, cfg, row: dict | None = None,
               frames: np.ndarray | None = None) -> np.ndarray | None:
    """A stored clip's object channel for `cfg` (its cached cost field), None when `cfg` has
    none; `row` is the clip's catalog row and `frames` its decoded frames where the caller
    has them (`occupancy.clip_cost_field`)."""
    if not cfg.object_channel:
        return None
    from opendojo.train.occupancy import clip_cost_field

    return clip_cost_field(store, row or store.row(clip_id), cfg.image_size, frames)


def catalog_rows(store) -> dict[str, dict]:
    """Each catalogued clip's row, by clip id, with the columns that decoding it
    (`ClipStore.read_frames`, `ClipDecoder`) and its object channel (`clip_field`) read."""
    columns = ["clip_id", "n_frames", "fps", "width", "source"]
    return {r["clip_id"]: r for r in store.catalog(columns=columns).to_pylist()}


def clip_inputs(store, clip_ids: list[str], cfg=None):
    """(clip id, decoded frames, object channel) of each stored clip, for running a network
    over them (shadow mode, embeddings): the catalog is read once, each clip decoded once.
    The channel is None without `cfg` or where `cfg` has none (`clip_field`)."""
    catalog = catalog_rows(store) if clip_ids else {}
    for cid in clip_ids:
        row = catalog.get(cid) or store.row(cid)
        frames = store.read_frames(cid, row=row)
        yield cid, frames, None if cfg is None else clip_field(store, cid, cfg, row, frames)


def with_object_channel(small: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Input frames uint8 [..., S, S, 3] and their cost field [..., S, S] as 4-channel
    frames [..., S, S, 4]."""
    return np.concatenate([np.asarray(small), np.asarray(field)[..., None]], axis=-1)
