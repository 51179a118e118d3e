"""`make demo` a second time on a finished run goes on with its network instead of failing."""

import json

import pytest

from clipfactory import labelled_synthetic_store
from opendojo.demo import DemoConfig, _train
from opendojo.errors import ConfigError
from opendojo.train.dataset import create_dataset


def test_a_finished_demo_run_is_reused_and_a_different_dataset_is_refused(tmp_path):
    store = labelled_synthetic_store(tmp_path / "store", clips=3, frames=50, size=16, seed=5)
    create_dataset(store, "a", holdout=0.0, seed=0)
    create_dataset(store, "b", holdout=0.0, seed=1)
    cfg = DemoConfig(run_dir=str(tmp_path / "run"), train_steps=3, batch_size=4, image_size=16, width=4)
    train_dir = tmp_path / "run" / "train"
    first = _train(cfg, store, "a", train_dir)
    lines = (train_dir / "metrics.jsonl").read_text().splitlines()
    again = _train(cfg, store, "a", train_dir)
    assert again["checkpoint"] == first["checkpoint"] and again["step"] == first["step"] == 3
    assert (train_dir / "metrics.jsonl").read_text().splitlines() == lines     # nothing retrained
    with pytest.raises(ConfigError, match="dataset 'a'"):
        _train(cfg, store, "b", train_dir)
    # The demo trains with the object channel, pasted road users, the path head, mirrored
    # samples and averaged weights unless told not to.
    trained = json.loads((train_dir / "config.json").read_text())["train"]
    assert trained["model"]["object_channel"] and trained["synthetic_share"] > 0
    assert trained["model"]["path_points"] > 0 and trained["mirror_share"] > 0
    assert trained["ema_decay"] > 0
    blind = DemoConfig(**{**cfg.model_dump(), "object_channel": False, "path_head": False,
                          "mirror": False, "ema_decay": 0.0})
    _train(blind, store, "a", tmp_path / "blind")
    trained = json.loads((tmp_path / "blind" / "config.json").read_text())["train"]
    assert not trained["model"]["object_channel"] and trained["synthetic_share"] == 0
    assert trained["model"]["path_points"] == 0 and trained["mirror_share"] == 0
    assert trained["ema_decay"] == 0
    # A run of the blind network is refused, not silently retrained or mixed, with the way out.
    with pytest.raises(ConfigError, match="object_channel.*another --run-dir"):
        _train(cfg, store, "a", tmp_path / "blind")
    # So is a finished run of the same network trained with other settings: without
    # mirrored samples, or with another seed.
    unmirrored = DemoConfig(**{**cfg.model_dump(), "mirror": False})
    _train(unmirrored, store, "a", tmp_path / "unmirrored")
    with pytest.raises(ConfigError, match="mirror_share=0.0 not 0.5.*another --run-dir"):
        _train(cfg, store, "a", tmp_path / "unmirrored")
    with pytest.raises(ConfigError, match="seed=0 not 1"):
        _train(DemoConfig(**{**cfg.model_dump(), "seed": 1}), store, "a", train_dir)
