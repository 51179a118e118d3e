"""The benchmarks' shared pool (benchmarks/_pool.py): a cached trained network is reused only
when it was trained as asked."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from opendojo.runs import network_fields
from opendojo.train.config import TrainConfig


def _pool():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_pool.py"
    spec = importlib.util.spec_from_file_location("bench_pool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cached_network_trained_with_other_pasted_things_is_refused_not_reused(tmp_path, monkeypatch):
    import opendojo.train.checkpoint as checkpoint

    pool = _pool()
    run_dir = tmp_path / "train"
    run_dir.mkdir()
    (run_dir / "bench-train.json").write_text(json.dumps({"checkpoint": "x", "step": 10}))
    asked = TrainConfig(store="s", dataset="d", **network_fields(64, 16, True, True, True, 0.999))
    cached = {"model": asked.policy_config().to_dict(), "train": asked.model_dump()}
    monkeypatch.setattr(checkpoint, "read_meta", lambda _: cached)
    store = SimpleNamespace(url="s")
    run = dict(store=store, dataset="d", run_dir=run_dir, steps=10, object_channel=True,
               path_head=True, mirror=True, ema_decay=0.999)
    assert pool.train_run(**run)["cached"]
    # the same shape, trained with every pasted thing on the path's centre line
    cached["train"] = {**asked.model_dump(), "synthetic_path_jitter_m": 0.0}
    with pytest.raises(SystemExit, match="synthetic_path_jitter_m"):
        pool.train_run(**run)
    # a run written before an option existed was trained with its default
    del cached["train"]["synthetic_path_jitter_m"]
    with pytest.raises(SystemExit, match="synthetic_path_jitter_m"):
        pool.train_run(**run)
