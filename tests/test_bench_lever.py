"""benchmarks/lever.py: a variant config is the base with exactly the asked changes, arms are
keyed by what makes them differ, and the comparison pairs episode by episode."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def lever(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))   # lever.py imports _pool beside it
    spec = importlib.util.spec_from_file_location("bench_lever", BENCH / "lever.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def base_toml(tmp_path):
    p = tmp_path / "config.toml"
    p.write_text('[train]\nstore = "s"\ndataset = "d"\nsteps = 100\nsynthetic_share = 0.5\n'
                 '[train.model]\nwidth = 16\nobject_channel = true\n')
    return p


def test_set_changes_exactly_the_keys_asked_and_refuses_unknown_ones(lever, base_toml):
    base = lever.load_train_config(base_toml)
    variant = lever.load_train_config(base_toml, ["synthetic_share=0.25", "model.width=32",
                                                  "command=hindsight"])
    diff = lever.config_diff(base.model_dump(), variant.model_dump())
    assert diff == {"synthetic_share": [0.5, 0.25], "model.width": [16, 32],
                    "command": [base.command, "hindsight"]}
    with pytest.raises(SystemExit, match="synthetic_shar"):
        lever.load_train_config(base_toml, ["synthetic_shar=0.25"])
    with pytest.raises(SystemExit, match="not a table"):
        lever.load_train_config(base_toml, ["steps.x=1"])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        lever.load_train_config(base_toml, ["steps"])
    with pytest.raises(SystemExit):   # validated as the trainer would: a share is at most 1
        lever.load_train_config(base_toml, ["synthetic_share=2.0"])


def test_arms_share_a_key_across_seeds_but_not_across_configs_or_code(lever, base_toml):
    cfg = lever.load_train_config(base_toml)
    key = lever.arm_key(cfg, "src1")
    assert lever.arm_key(cfg.model_copy(update={"seed": 7, "workers": 3}), "src1") == key
    assert lever.arm_key(lever.load_train_config(base_toml, ["mirror_share=0.5"]), "src1") != key
    assert lever.arm_key(cfg, "src2") != key
    assert len(lever.source_digest()) == 16


def _episode(train_seed, suite, seed, score, rare_event="", collision="", completion=None):
    return {"train_seed": train_seed, "suite": suite, "scenario": "highway_dense",
            "rare_event": rare_event, "seed": seed, "score": score, "collision": collision,
            "route_completion": score if completion is None else completion,
            "distance_m": 200.0, "off_road_s": 0.0, "mean_abs_jerk": 1.0, "harsh_jerk_s": 0.0,
            "driver": "network", "steps": 150, "duration_s": 15.0, "route_length_m": 300.0,
            "progress_m": 200.0}


def test_compare_pairs_the_same_episodes_and_counts_passed_stopped_things(lever):
    import numpy as np

    rng = np.random.default_rng(3)
    base, variant = [], []
    for ts in (0, 1):
        for suite in ("test", "validation"):
            for seed in range(6):
                s = float(rng.uniform(0.2, 0.8))
                base.append(_episode(ts, suite, seed, s))
                variant.append(_episode(ts, suite, seed, s + 0.1))
    # an episode only the variant drove is not paired
    variant.append(_episode(2, "test", 0, 0.0))
    # stopped things: the base crashes into one, the variant passes it
    base.append(_episode(0, "test", 99, 0.2, "obstacle", collision="vehicle"))
    variant.append(_episode(0, "test", 99, 0.9, "obstacle"))
    out = lever.compare(base, variant)
    diffs = [0.1] * 24 + [0.7]
    assert out["paired"]["pairs"] == 25
    assert out["paired"]["mean"] == pytest.approx(np.mean(diffs), abs=1e-4)
    assert out["paired"]["ci"][0] <= out["paired"]["mean"] <= out["paired"]["ci"][1]
    assert out["stopped_things"]["base"] == {"episodes": 1, "score": 0.2, "collisions": 1, "passed": 0}
    assert out["stopped_things"]["variant"]["passed"] == 1
    assert out["per_item"]["highway_dense/obstacle"]["collisions"] == [1, 0]
    # over the training seeds: seed 0's mean difference holds the passed obstacle, seed 1's not
    per_seed = [np.mean([0.1] * 12 + [0.7]), 0.1]
    assert out["seeds"]["per_seed"] == pytest.approx(per_seed, abs=1e-4)
    assert out["seeds"]["mean"] == pytest.approx(np.mean(per_seed), abs=1e-4)
    lo, hi = out["seeds"]["ci"]
    assert lo < out["seeds"]["mean"] < hi
    # two seeds are two values: far wider than the 25 episode pairs make it
    assert hi - lo > 5 * (out["paired"]["ci"][1] - out["paired"]["ci"][0])
    assert lever.seed_interval([0.02])["ci"] is None
    figures = lever.arm_figures(variant)
    assert figures["episodes"] == 26 and figures["collisions"] == 0
    assert figures["km"] == pytest.approx(26 * 0.2)
    with pytest.raises(SystemExit, match="no episode to pair"):
        lever.compare(base, [_episode(5, "test", 0, 0.5)])
