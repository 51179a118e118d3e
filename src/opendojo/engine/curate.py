"""`curate`: gather what the engine knows about each clip and make a dataset version of the
clips the selection chooses (`opendojo.engine.select`), with the reason for each.

Reads only engine tables and the catalog: triggers.lance, shadow.lance, quality.lance /
driver_quality.lance, embeddings.lance. Writes the dataset version
(`opendojo.train.dataset.create_dataset`) and one row per chosen clip in
`selections.lance` (selection | clip_id | rank | utility | explanation | config_json |
code_version | created_at).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from opendojo import code_version
from opendojo.engine import tables
from opendojo.engine.select import Candidates, Selection, SelectionConfig, select
from opendojo.errors import DatasetError

SELECTION_SCHEMA = pa.schema([
    ("selection", pa.string()),
    ("clip_id", pa.string()),
    ("rank", pa.int32()),
    ("utility", pa.float32()),
    ("explanation", pa.string()),
    ("config_json", pa.string()),
    ("code_version", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])


def parse_budget(text: str | float) -> float:
    """'1%' -> 0.01, '0.01' -> 0.01."""
    s = str(text).strip()
    try:
        v = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise DatasetError(f"bad budget {text!r} (e.g. 1% or 0.01)") from None
    if not 0 < v <= 1:
        raise DatasetError(f"budget {text!r} must be above 0 and at most 100%")
    return v


def gather(store, filter: str | None = None) -> Candidates:
    """Candidates: catalog clips (matching `filter`) that have an embedding."""
    from opendojo.engine.embeddings import read_embeddings
    from opendojo.engine.quality import read_driver_quality, read_quality
    from opendojo.engine.shadow import read_disagreement
    from opendojo.engine.triggers import read_triggers

    cat = store.catalog(filter, columns=["clip_id", "driver_id", "n_frames"]).to_pylist()
    if not cat:
        raise DatasetError(f"no clips in {store.url}" + (f" match {filter!r}" if filter else ""))
    ids, vecs, _ = read_embeddings(store)
    pos = {c: i for i, c in enumerate(ids)}
    cat = [r for r in cat if r["clip_id"] in pos]
    if not cat:
        raise DatasetError("no candidate clip has an embedding (run `dojo engine embed`)")
    cids = [r["clip_id"] for r in cat]
    trig = read_triggers(store, cids)
    dis = read_disagreement(store, cids)
    clip_q = read_quality(store, cids)
    drv_q = read_driver_quality(store)
    quality = np.array([drv_q.get(r["driver_id"], clip_q.get(r["clip_id"], np.nan)) for r in cat])
    return Candidates(
        clip_ids=cids, n_frames=np.array([r["n_frames"] for r in cat]),
        vectors=vecs[[pos[c] for c in cids]],
        triggers=[trig.get(c, []) for c in cids],
        disagreement=np.array([dis.get(c, np.nan) for c in cids], np.float64),
        quality=quality if not np.isnan(quality).all() else None)


def curate(store, name: str, cfg: SelectionConfig = SelectionConfig(), filter: str | None = None,
           holdout: float = 0.1) -> Selection:
    """Select clips and write dataset version `name` plus its `selections.lance` rows."""
    from opendojo.train.dataset import _path, create_dataset

    if store.fs.exists(_path(store, name)):
        raise DatasetError(f"dataset {name!r} already exists in {store.url} (versions are "
                           "immutable: pick a new name)")
    sel = select(gather(store, filter), cfg)
    if not sel.clip_ids:
        raise DatasetError(f"a budget of {cfg.budget:.2%} of the frames holds no whole clip")
    now = datetime.now(timezone.utc)
    conf = json.dumps({**cfg.model_dump(), "filter": filter, "stats": sel.stats,
                       "frames": sel.frames, "budget_frames": sel.budget_frames,
                       "total_frames": sel.total_frames})
    rows = [{"selection": name, "clip_id": c, "rank": i, "utility": u, "explanation": e,
             "config_json": conf, "code_version": code_version(), "created_at": now}
            for i, (c, u, e) in enumerate(zip(sel.clip_ids, sel.utility, sel.explanations))]
    # the explanation rows first, then the dataset (a version exists once its JSON does);
    # rows left by an earlier attempt that never made its dataset are replaced
    old = store.dataset(tables.SELECTIONS)
    if old is not None:
        old.delete(f"selection = '{name}'")
    store._append(tables.SELECTIONS, pa.Table.from_pylist(rows, schema=SELECTION_SCHEMA))
    create_dataset(store, name, clip_ids=sel.clip_ids, holdout=holdout, seed=cfg.seed)
    return sel


def read_selection(store, name: str) -> list[dict]:
    """The chosen clips of selection `name`, in the order chosen, with their explanations."""
    ds = store.dataset(tables.SELECTIONS)
    if ds is None:
        return []
    esc = name.replace("'", "''")
    rows = ds.to_table(filter=f"selection = '{esc}'",
                       columns=["clip_id", "rank", "utility", "explanation"]).to_pylist()
    return sorted(rows, key=lambda r: r["rank"])
