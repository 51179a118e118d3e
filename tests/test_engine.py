"""Data engine: triggers, driver quality, embeddings, index, selection (small and offline)."""

from __future__ import annotations

import numpy as np
import pytest

from clipfactory import arc_telemetry, moving_frames
from opendojo.clips.schema import ClipMeta
from opendojo.clips.store import ClipStore
from opendojo.engine import tables
from opendojo.engine.quality import (QualityConfig, clip_features, gap_ahead, penalty,
                                     read_driver_quality, run_quality)
from opendojo.engine.triggers import clip_triggers, run_triggers


def straight(n=100, speed=25.0):
    tel = arc_telemetry(n, speed=speed, yaw_rate=1e-6)
    tel["steering"] = np.zeros(n)
    return tel


def test_hard_braking_fires_where_the_car_brakes_and_nowhere_else():
    tel = straight(100)
    assert clip_triggers(tel) == {}
    tel["acceleration"][40:46] = -6.0
    fired = clip_triggers(tel)
    assert list(fired) == ["hard_braking"]
    assert fired["hard_braking"] == [(40, 45)]
    tel["acceleration"][40:46] = 0.0
    tel["acceleration"][60] = -6.0          # a single-frame spike is not an event
    assert "hard_braking" not in clip_triggers(tel)


def test_oscillating_steering_needs_repeated_reversals():
    tel = straight(100)
    t = tel["t"]
    tel["steering"] = 0.05 * np.sin(2 * np.pi * 1.0 * t)        # 1 Hz weaving hands
    assert "oscillating_steering" in clip_triggers(tel)
    tel["steering"] = np.where(t > 5, 0.05, 0.0)                # one step: no oscillation
    assert "oscillating_steering" not in clip_triggers(tel)


def test_near_stop_on_highway_and_collision_and_lane_changes():
    tel = straight(120)
    tel["speed"] = np.where(np.arange(120) < 50, 25.0, 0.5)
    tel["collision"][70:] = True
    tel["lane"] = np.r_[np.ones(20), np.full(20, 2), np.ones(80)].astype(int)
    fired = clip_triggers(tel)
    assert "near_stop_on_highway" in fired and "collision" in fired and "weaving" in fired
    slow = straight(120, speed=0.5)                              # always slow: not a highway stop
    assert "near_stop_on_highway" not in clip_triggers(slow)


def test_gap_ahead_reads_the_distance_to_the_car_in_front():
    cfg = QualityConfig()
    frames = np.full((2, 96, 96, 3), 100, np.uint8)            # grey road
    ego_front = 72 - 4 - 2
    gap_px = 30
    frames[0, ego_front - gap_px - 7:ego_front - gap_px, 46:50] = (100, 200, 255)  # a blue car
    frames[1, 20:30, 5:9] = (100, 200, 255)                      # a car in another lane
    g = gap_ahead(frames, cfg)
    assert abs(g[0] - gap_px / cfg.px_per_m) < 1.5
    assert np.isinf(g[1])


def test_a_jerky_weaving_driver_scores_below_a_smooth_one():
    rng = np.random.default_rng(0)
    smooth = straight(200)
    rough = straight(200)
    rough["acceleration"] = rng.normal(0, 1.5, 200)
    rough["steering"] = np.cumsum(rng.normal(0, 0.01, 200))
    rough["lane"] = (np.arange(200) // 30 % 2 + 1).astype(int)
    ps, pr = penalty(clip_features(smooth)), penalty(clip_features(rough))
    assert ps < 0.2 < pr
    assert pr > 5 * ps


def _store(tmp_path, n=4):
    store = ClipStore.create(tmp_path / "store")
    rows = []
    for i in range(n):
        tel = straight(40, speed=20.0 + i)
        if i % 2:
            tel["acceleration"][10:15] = -6.0
            tel["steering"] = 0.05 * np.sin(2 * np.pi * tel["t"])
        rows.append(store.write_clip(moving_frames(40, 32, seed=i), tel,
                                     ClipMeta(source="sim", vehicle_id=f"v{i % 2}",
                                              driver_id=f"d{i % 2}", scenario="highway_sparse",
                                              seed=i)))
    store.add_to_catalog(rows)
    return store


@pytest.fixture
def store(tmp_path, monkeypatch):
    s = _store(tmp_path)
    def forbidden(self):
        raise AssertionError("the engine read sim truth")
    monkeypatch.setattr(ClipStore, "sim_truth", forbidden)
    return s


def test_triggers_and_quality_tables_are_idempotent_and_per_driver(store):
    t1 = run_triggers(store)
    assert t1.num_rows == 4
    assert run_triggers(store).num_rows == 0                   # nothing new to do
    run_triggers(store, force=True)                             # recompute: replaced, not added
    trig = tables.read(store, tables.TRIGGERS)
    assert trig.num_rows == 4 and len(set(trig.column("clip_id").to_pylist())) == 4
    assert all(v for v in trig.column("code_version").to_pylist())
    fired = {r["clip_id"]: r["fired"] for r in trig.to_pylist()}
    cat = {r["clip_id"]: r["driver_id"] for r in store.catalog().to_pylist()}
    for cid, names in fired.items():
        assert ("hard_braking" in names) == (cat[cid] == "d1")

    run_quality(store)
    run_quality(store, force=True)
    q = tables.read(store, tables.QUALITY)
    assert q.num_rows == 4
    drivers = read_driver_quality(store)
    assert set(drivers) == {"d0", "d1"}
    assert drivers["d0"] > drivers["d1"]
