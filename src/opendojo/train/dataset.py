"""Dataset versions: a named, immutable set of clip ids, split by clip into train and held out.

Stored as `<store>/datasets/<name>.json` (written to a temporary name, then renamed), with
the catalog filter, split fractions, seed and code version that made it. A version is never
overwritten: make a new name.
"""

from __future__ import annotations

import json
import posixpath
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np

from opendojo import code_version
from opendojo.errors import DatasetError

DATASETS = "datasets"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class DatasetVersion:
    name: str
    splits: dict[str, list[str]]
    config: dict = field(default_factory=dict)
    code_version: str = ""
    created_at: str = ""

    def clips(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DatasetError(f"dataset {self.name!r} has no split {split!r} "
                               f"(it has {', '.join(sorted(self.splits))})")
        ids = self.splits[split]
        if not ids:
            raise DatasetError(f"dataset {self.name!r}: split {split!r} is empty")
        return list(ids)


def _path(store, name: str) -> str:
    return store._p(DATASETS, f"{name}.json")


def create_dataset(store, name: str, filter: str | None = None, holdout: float = 0.2,
                   seed: int = 0, clip_ids: list[str] | None = None) -> DatasetVersion:
    """Make dataset version `name` from the catalog clips matching `filter` (or `clip_ids`).

    Clips are shuffled with `seed` and split by clip: `holdout` of them (at least one when
    there are two or more clips and holdout > 0) go to "heldout", the rest to "train".
    """
    if not _NAME.match(name):
        raise DatasetError(f"bad dataset name {name!r} (letters, digits, '_', '.', '-')")
    if not 0.0 <= holdout < 1.0:
        raise DatasetError(f"holdout must be in [0, 1), got {holdout}")
    if store.fs.exists(_path(store, name)):
        raise DatasetError(f"dataset {name!r} already exists in {store.url} (versions are "
                           "immutable: pick a new name)")
    ids = sorted(store.clip_ids(filter) if clip_ids is None else set(clip_ids))
    if not ids:
        raise DatasetError(f"no clips match {filter!r}: a dataset version cannot be empty"
                           if filter else f"{store.url} has no clips: a dataset version cannot be empty")
    order = np.random.default_rng(seed).permutation(len(ids))
    n_held = int(round(holdout * len(ids)))
    if holdout > 0 and len(ids) >= 2:
        n_held = max(1, min(n_held, len(ids) - 1))
    held = sorted(ids[i] for i in order[:n_held])
    train = sorted(ids[i] for i in order[n_held:])
    version = DatasetVersion(
        name=name, splits={"train": train, "heldout": held},
        config={"filter": filter, "holdout": holdout, "seed": seed, "store": store.url},
        code_version=code_version(), created_at=datetime.now(timezone.utc).isoformat())
    store.fs.makedirs(store._p(DATASETS), exist_ok=True)
    tmp = store._p(DATASETS, f".tmp-{uuid.uuid4().hex}.json")
    with store.fs.open(tmp, "w") as f:
        json.dump(asdict(version), f, indent=1)
    if store.fs.exists(_path(store, name)):      # lost a race: keep theirs
        store.fs.rm(tmp)
        raise DatasetError(f"dataset {name!r} already exists in {store.url}")
    store.fs.mv(tmp, _path(store, name))
    return version


def load_dataset(store, name: str) -> DatasetVersion:
    p = _path(store, name)
    if not store.fs.exists(p):
        known = list_datasets(store)
        raise DatasetError(f"no dataset {name!r} in {store.url}"
                           + (f" (have: {', '.join(known)})" if known else
                              " (make one with `dojo dataset create`)"))
    with store.fs.open(p, "r") as f:
        return DatasetVersion(**json.load(f))


def list_datasets(store) -> list[str]:
    d = store._p(DATASETS)
    if not store.fs.exists(d):
        return []
    names = [posixpath.basename(p) for p in store.fs.ls(d, detail=False)]
    return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith(".tmp-"))
