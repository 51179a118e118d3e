"""Per-clip engine tables: Lance datasets under the store root, one row per clip id.

Every engine stage (triggers, quality, embeddings, shadow) writes its results with
`upsert`: rows whose clip_id is already there are replaced, new ones are added, in one
atomic Lance commit. Re-running a stage is therefore safe and gives the same table.
Every row carries the code version that computed it (`opendojo.code_version()`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pyarrow as pa

TRIGGERS = "triggers.lance"
QUALITY = "quality.lance"
DRIVER_QUALITY = "driver_quality.lance"
EMBEDDINGS = "embeddings.lance"
SHADOW = "shadow.lance"
DISENGAGEMENTS = "disengagements.lance"
SELECTIONS = "selections.lance"


def upsert(store, name: str, table: pa.Table, key: str = "clip_id") -> int:
    """Insert or replace rows of `table` in the Lance dataset `name` by `key`; returns rows."""
    import lance

    if table.num_rows == 0:
        return 0
    ds = store.dataset(name)
    if ds is None:
        store._append(name, table)
        return table.num_rows
    if set(ds.schema.names) != set(table.schema.names):
        # the stage's columns changed (a newer code version): rewrite the table in the new
        # schema, keeping other clips' rows (their new columns null until recomputed)
        import pyarrow.compute as pc

        old = ds.to_table()
        old = old.filter(pc.invert(pc.is_in(old.column(key), value_set=table.column(key))))
        cols = [old.column(f.name).cast(f.type) if f.name in old.column_names
                else pa.nulls(old.num_rows, f.type) for f in table.schema]
        merged = pa.concat_tables([pa.Table.from_arrays(cols, schema=table.schema), table])
        lance.write_dataset(merged, store._uri(name), mode="overwrite")
        return table.num_rows
    if ds.schema != table.schema:
        table = table.select(ds.schema.names).cast(ds.schema)
    (ds.merge_insert(key).when_matched_update_all().when_not_matched_insert_all()
       .execute(table))
    return table.num_rows


def read(store, name: str, clip_ids: Iterable[str] | None = None,
         columns: Sequence[str] | None = None) -> pa.Table | None:
    """Rows of engine table `name` (all, or those of `clip_ids`); None if the table is absent."""
    ds = store.dataset(name)
    if ds is None:
        return None
    flt = None
    if clip_ids is not None:
        ids = sorted(set(clip_ids))
        if not ids:
            return ds.schema.empty_table() if columns is None else ds.to_table(columns=list(columns), limit=0)
        flt = "clip_id IN (" + ",".join(f"'{i}'" for i in ids) + ")"
    return ds.to_table(columns=list(columns) if columns else None, filter=flt)


def done_ids(store, name: str, version: str | None = None, extra: str | None = None) -> set[str]:
    """Clip ids that table `name` already holds (computed by `version` when given)."""
    ds = store.dataset(name)
    if ds is None:
        return set()
    flt = []
    if version is not None:
        flt.append(f"code_version = '{version}'")
    if extra:
        flt.append(extra)
    t = ds.to_table(columns=["clip_id"], filter=" AND ".join(flt) or None)
    return set(t.column("clip_id").to_pylist())


def telemetry_arrays(table: pa.Table) -> dict:
    """A telemetry table as a dict of numpy arrays (NaN-free where the schema allows)."""
    import numpy as np

    out = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    for k in ("acceleration", "steering"):
        if k in out:
            out[k] = np.nan_to_num(np.asarray(out[k], np.float64))
    return out
