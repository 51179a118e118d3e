"""Clip embeddings: one unit vector per clip, stored in `embeddings.lance`.

Two embedders, named in every row (`embedder` column) so that vectors of different spaces
are never mixed:

- ``encoder:<checkpoint>`` (once a network exists): the current policy network's video
  encoder (`PolicyNet.encode`) on `windows` frame windows spread evenly over the clip (each
  the network's `frames` consecutive frames, resized as the network sees them), averaged
  and L2-normalised. Clips the network finds alike are close.
- ``fallback:thumbnail-v1`` (before any network): each of 8 evenly spaced frames in grey,
  area-averaged to 8x8 pixels (centred), the 8x8 mean absolute difference to the next
  frame (motion) and the 8x8 share of road-user pixels (saturated colours: where the
  other cars are), centred per clip and projected to 128 dimensions by a fixed Gaussian matrix
  (seed 0, Johnson-Lindenstrauss: distances are kept within a few percent), L2-normalised.
  It sees the scene layout (road shape, traffic density, where the other cars are) and how
  it moves, which is enough for near-duplicates and rarity; it knows nothing of driving.

Table: clip_id | vector fixed_size_list<float32>[dim] | embedder | code_version | computed_at.
Changing the embedder (a new network each flywheel round) re-embeds every clip and
replaces the table in one commit.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa

from opendojo import code_version
from opendojo.engine import tables

FALLBACK = "fallback:thumbnail-v1"
FALLBACK_DIM = 128
_THUMB = 8
_SAMPLES = 8


def _grey_thumbs(frames: np.ndarray, size: int = _THUMB) -> np.ndarray:
    """uint8 [N,H,W,3] -> float32 [N,size,size] in 0..1 (area average over a size x size grid)."""
    n, h, w = frames.shape[:3]
    g = frames.astype(np.float32).mean(-1) / 255.0
    hh, ww = (h // size) * size, (w // size) * size
    g = g[:, :hh, :ww].reshape(n, size, hh // size, size, ww // size)
    return g.mean(axis=(2, 4))


_PROJ: dict[int, np.ndarray] = {}


def _projection(d_in: int) -> np.ndarray:
    if d_in not in _PROJ:
        rng = np.random.default_rng(0)
        _PROJ[d_in] = (rng.standard_normal((d_in, FALLBACK_DIM)) / np.sqrt(FALLBACK_DIM)).astype(np.float32)
    return _PROJ[d_in]


def fallback_embedding(frames: np.ndarray) -> np.ndarray:
    """The ``fallback:thumbnail-v1`` vector of one clip's frames (see the module docstring)."""
    n = len(frames)
    idx = np.linspace(0, n - 1, _SAMPLES).round().astype(int)
    nxt = np.minimum(idx + 1, n - 1)
    th = _grey_thumbs(frames[np.r_[idx, nxt]])
    still, after = th[:_SAMPLES], th[_SAMPLES:]
    f = frames[idx].astype(np.int16)
    users = ((f.max(-1) - f.min(-1)) > 60).astype(np.float32)[..., None].repeat(3, -1)
    occupied = _grey_thumbs((users * 255).astype(np.uint8))        # road users per cell
    parts = [still - still.mean(), 4.0 * np.abs(after - still), 4.0 * occupied]
    feat = np.concatenate([p.ravel() for p in parts]).astype(np.float32)
    feat -= feat.mean()
    v = feat @ _projection(feat.size)
    return _unit(v)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def encoder_embedding(model, frames: np.ndarray, windows: int = 4,
                      field: np.ndarray | None = None) -> np.ndarray:
    """The ``encoder:`` vector of one clip: mean of `PolicyNet.encode` over frame windows
    (`field`: the clip's object channel, `opendojo.train.inputs.clip_field`)."""
    import torch

    from opendojo.train.inputs import input_frames
    from opendojo.train.loader import history_indices, history_offsets

    cfg = model.config
    n = len(frames)
    offsets = history_offsets(cfg.frames, cfg.frame_stride)
    ends = np.linspace(min(-offsets[0], n - 1), n - 1, windows).round().astype(int)
    batch = []
    for idx in history_indices(ends, cfg.frames, cfg.frame_stride):
        batch.append(input_frames(frames[idx], cfg, None if field is None else field[idx]))
    with torch.inference_mode():
        feats = model.encode(torch.from_numpy(np.stack(batch))).float().numpy()
    return _unit(feats.mean(0))


class Embedder:
    """Turns a clip's frames into a vector: the network's encoder, or the fallback."""

    def __init__(self, checkpoint: str | Path | None = None, windows: int = 4):
        self.model = None
        self.windows = windows
        if checkpoint is None:
            self.name, self.dim = FALLBACK, FALLBACK_DIM
            return
        import torch

        from opendojo.evaluate.closed_loop import load_network
        from opendojo.train.checkpoint import resolve

        torch.set_num_threads(max(1, torch.get_num_threads()))
        self.model = load_network(checkpoint)
        self.name = f"encoder:{resolve(checkpoint)}"
        self.dim = int(self.model.feature_dim)

    def __call__(self, frames: np.ndarray, field: np.ndarray | None = None) -> np.ndarray:
        if self.model is None:
            return fallback_embedding(frames)
        return encoder_embedding(self.model, frames, self.windows, field)


def schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("clip_id", pa.string()),
        ("vector", pa.list_(pa.float32(), dim)),
        ("embedder", pa.string()),
        ("code_version", pa.string()),
        ("computed_at", pa.timestamp("us", tz="UTC")),
    ])


def embedding_row(clip_id: str, frames: np.ndarray, embedder: Embedder,
                  field: np.ndarray | None = None) -> dict:
    """The `embeddings.lance` row of one clip (the per-clip map function)."""
    return {"clip_id": clip_id, "vector": embedder(frames, field).tolist(), "embedder": embedder.name,
            "code_version": code_version(), "computed_at": datetime.now(timezone.utc)}


def table_embedder(store) -> str | None:
    """The embedder whose vectors `embeddings.lance` holds (None if there is no table)."""
    ds = store.dataset(tables.EMBEDDINGS)
    if ds is None or ds.count_rows() == 0:
        return None
    return ds.to_table(columns=["embedder"], limit=1).column("embedder")[0].as_py()


def run_embed(store, checkpoint: str | Path | None = None, clip_ids: Iterable[str] | None = None,
              force: bool = False, progress: Callable[[int, int], None] | None = None) -> pa.Table:
    """Embed the store's clips with the network at `checkpoint` (None: the fallback).

    Clips already embedded by the same embedder and code version are skipped unless
    `force`; a different embedder than the table's re-embeds every clip and replaces the
    table. Returns the rows written.
    """
    import lance

    from opendojo.train.inputs import clip_inputs

    emb = Embedder(checkpoint)
    current = table_embedder(store)
    replace = current is not None and current != emb.name
    ids = sorted(store.clip_ids() if (clip_ids is None or replace) else clip_ids)
    if not force and not replace:
        done = tables.done_ids(store, tables.EMBEDDINGS, code_version())
        ids = [i for i in ids if i not in done]
    rows = []
    clips = clip_inputs(store, ids, None if emb.model is None else emb.model.config)
    for k, (cid, frames, field) in enumerate(clips, 1):
        rows.append(embedding_row(cid, frames, emb, field))
        if progress:
            progress(k, len(ids))
    table = pa.Table.from_pylist(rows, schema=schema(emb.dim))
    if replace:
        lance.write_dataset(table, store._uri(tables.EMBEDDINGS), mode="overwrite")
    else:
        tables.upsert(store, tables.EMBEDDINGS, table)
    return table


def read_embeddings(store, clip_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray, str]:
    """(clip ids, float32 [N, dim] unit vectors, embedder name) from `embeddings.lance`."""
    from opendojo.errors import StoreError

    t = tables.read(store, tables.EMBEDDINGS, clip_ids, columns=["clip_id", "vector", "embedder"])
    if t is None or t.num_rows == 0:
        raise StoreError(f"{store.url}: no clip embeddings yet (run `dojo engine embed`)")
    ids = t.column("clip_id").to_pylist()
    col = t.column("vector").combine_chunks()
    dim = col.type.list_size
    vecs = col.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(ids), dim)
    return ids, vecs, t.column("embedder")[0].as_py()
