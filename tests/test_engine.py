"""Data engine: triggers, driver quality, embeddings, index, selection (small and offline)."""

from __future__ import annotations

import numpy as np
import pytest

from clipfactory import arc_telemetry, moving_frames
from opendojo.clips.schema import ClipMeta
from opendojo.clips.store import ClipStore
from opendojo.engine import tables
from opendojo.engine.quality import (QualityConfig, clip_features, driver_scores, gap_ahead,
                                     penalty, quality_row, read_driver_quality, run_quality)
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
    from opendojo.fleet.camera import Camera

    cfg, cam = QualityConfig(), Camera()
    frames = np.full((2, cam.height, cam.width, 3), 100, np.uint8)   # grey road
    ego_front = round(cam.ego_row * cam.height) - 4 - 2         # the ego's nose (5 m long)
    gap_px, c = 30, cam.width // 2
    frames[0, ego_front - gap_px - 7:ego_front - gap_px, c - 2:c + 2] = (100, 200, 255)  # a blue car
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


def test_pedal_jitter_sees_unsteady_feet_not_one_hard_braking():
    """Throttle that jitters all the time raises pedal_jitter; one hard braking, with the
    larger RMS jerk, does not (it has its own feature)."""
    rng = np.random.default_rng(1)
    braking = straight(150)
    braking["acceleration"][60:66] = -6.0
    jitter = straight(150)
    jitter["acceleration"] = rng.normal(0, 0.3, 150)
    fb, fj = clip_features(braking), clip_features(jitter)
    assert fb["jerk_rms"] > fj["jerk_rms"]
    assert fb["pedal_jitter"] == 0.0 and fj["pedal_jitter"] > 2.0
    assert penalty(fj) > penalty({**fj, "pedal_jitter": 0.0}) + 1.0


def test_a_driver_who_crawls_along_an_empty_road_scores_below_one_who_keeps_the_pace():
    import pyarrow as pa

    from opendojo.engine.quality import QUALITY_SCHEMA
    from opendojo.fleet.camera import Camera

    cfg, cam = QualityConfig(), Camera()
    empty = np.full((60, cam.height, cam.width, 3), 100, np.uint8)       # grey road, lane empty
    behind = empty.copy()                                                # a car 40 m ahead
    ego_front = round(cam.ego_row * cam.height) - 4 - 2
    gap_px, c = int(40 * cfg.px_per_m), cam.width // 2
    behind[:, ego_front - gap_px - 7:ego_front - gap_px, c - 2:c + 2] = (100, 200, 255)
    drives = {"keeps_pace": (25.0, empty), "also_keeps_pace": (25.0, empty), "a_bit_slower": (23.0, empty),
              "crawls": (18.0, empty), "follows_a_slow_car": (18.0, behind)}
    rows = [quality_row(f"{d}-{k}", d, straight(60, speed=v), frames, cfg, scenario="highway_sparse")
            for d, (v, frames) in drives.items() for k in range(3)]
    t = {r["driver_id"]: r for r in driver_scores(pa.Table.from_pylist(rows, schema=QUALITY_SCHEMA),
                                                  cfg).to_pylist()}
    ref = np.median([v for v, f in drives.values() if f is empty for _ in range(3)])
    assert t["crawls"]["pace_deficit"] == pytest.approx(1 - 18.0 / ref, abs=1e-6)
    assert t["keeps_pace"]["pace_deficit"] == 0.0
    assert 0 < t["a_bit_slower"]["pace_deficit"] < t["crawls"]["pace_deficit"]
    assert t["crawls"]["score"] < t["a_bit_slower"]["score"] < t["keeps_pace"]["score"]
    # slow behind a car is not hesitancy: only frames with the lane ahead empty count
    assert t["follows_a_slow_car"]["pace_deficit"] == 0.0
    assert t["follows_a_slow_car"]["score"] == pytest.approx(t["keeps_pace"]["score"], rel=1e-6)
    # a clip's own score has no fleet to compare with: the slow clip alone is not penalised
    assert {r["score"] for r in rows if r["driver_id"] in ("crawls", "keeps_pace")} == {rows[0]["score"]}


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


# -- embeddings, index, selection -------------------------------------------------------------

from opendojo.engine.embeddings import fallback_embedding, read_embeddings, run_embed  # noqa: E402
from opendojo.engine.index import ClipIndex, knn_self, near_duplicates, similar  # noqa: E402
from opendojo.engine.select import Candidates, SelectionConfig, select  # noqa: E402


def test_fallback_embedding_is_deterministic_and_separates_scenes():
    a, b = moving_frames(30, 32, seed=1), moving_frames(30, 32, seed=1)
    ea, eb = fallback_embedding(a), fallback_embedding(b)
    assert ea.shape == (128,) and abs(np.linalg.norm(ea) - 1) < 1e-5
    assert np.array_equal(ea, eb)
    dark = (a // 4).astype(np.uint8)
    dark[:, :, :16] = 200                                          # another scene layout
    noisy = np.clip(a.astype(int) + np.random.default_rng(2).integers(-3, 4, a.shape), 0, 255).astype(np.uint8)
    assert float(ea @ fallback_embedding(noisy)) > 0.95 > float(ea @ fallback_embedding(dark))


def test_index_finds_neighbours_and_near_duplicates():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    x[1] = x[0] + 0.01 * rng.standard_normal(16)                  # a near copy of clip 0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = ClipIndex(x)
    sims, nbr = knn_self(idx, x, 3)
    assert nbr[0, 0] == 1 and nbr[1, 0] == 0 and not (nbr == np.arange(200)[:, None]).any()
    prio = np.zeros(200)
    prio[1] = 1.0                                                  # keep the more useful copy
    dup = near_duplicates(sims, nbr, prio, 0.98)
    assert dup.tolist().count(True) == 1 and dup[0]
    ivf = ClipIndex(np.repeat(x, 20, 0) + 0.001, exact_limit=1000)  # IVF path
    assert ivf.kind.startswith("ivf")


def test_selection_respects_budget_prefers_triggers_and_good_drivers_and_spreads():
    rng = np.random.default_rng(1)
    n = 400
    centres = rng.standard_normal((8, 32))
    labels = rng.integers(0, 8, n)
    x = (centres[labels] + 0.3 * rng.standard_normal((n, 32))).astype(np.float32)
    frames = rng.integers(50, 150, n)
    trig = [["hard_braking"] if i % 10 == 0 else [] for i in range(n)]
    quality = np.where(np.arange(n) % 20 == 0, 0.05, 0.8)          # half the braking clips: bad drivers
    cfg = SelectionConfig(budget=0.05, w_disagreement=0.0)
    s = select(Candidates([f"c{i}" for i in range(n)], frames, x, trig, None, quality), cfg)
    assert s.frames <= s.budget_frames == int(0.05 * frames.sum())
    assert s.frames > 0.8 * s.budget_frames                         # the budget is used
    chosen = [int(c[1:]) for c in s.clip_ids]
    good_brake = [i for i in chosen if i % 10 == 0 and i % 20 != 0]
    bad_brake = [i for i in chosen if i % 20 == 0]
    assert len(good_brake) > 2 * max(1, len(bad_brake))
    assert len(set(labels[chosen])) >= 6                            # spread over the clusters
    assert all(e for e in s.explanations)
    assert any("hard_braking" in e for e in s.explanations)
    # the large-N path (k-means density, batched greedy) obeys the same budget
    big = select(Candidates([f"c{i}" for i in range(n)], frames, x, trig, None, quality),
                 cfg.model_copy(update={"exact_limit": 100, "exact_pool": 10, "batch": 8}))
    assert 0.8 * big.budget_frames < big.frames <= big.budget_frames
    assert big.stats["density"].startswith("kmeans")


def test_coverage_spreads_over_the_kinds_of_driving_by_size_and_takes_good_drivers():
    rng = np.random.default_rng(3)
    sizes = [600, 300, 100]                                         # three kinds of driving
    centres = rng.standard_normal((3, 32)) * 3
    labels = np.repeat(np.arange(3), sizes)
    n = len(labels)
    x = (centres[labels] + 0.3 * rng.standard_normal((n, 32))).astype(np.float32)
    frames = np.full(n, 100)
    quality = rng.uniform(0.1, 0.9, n)
    trig = [["hard_braking"] if i % 50 == 0 else [] for i in range(n)]
    cands = Candidates([f"c{i}" for i in range(n)], frames, x, trig, None, quality)
    cfg = SelectionConfig(budget=0.05, w_disagreement=0.0, coverage=1.0)
    s = select(cands, cfg)
    chosen = np.array([int(c[1:]) for c in s.clip_ids])
    assert s.frames <= s.budget_frames and len(chosen) == 50
    assert s.stats["coverage_clips"] == 50 and all(e.startswith("coverage") for e in s.explanations)
    counts = np.bincount(labels[chosen], minlength=3)
    assert abs(counts[0] - 30) <= 3 and abs(counts[1] - 15) <= 3 and counts[2] >= 3   # ~ 6:3:1
    assert quality[chosen].min() >= np.median(quality)              # good drivers only
    for k in range(3):                                               # the best of each kind
        assert quality[chosen[labels[chosen] == k]].mean() > np.quantile(quality[labels == k], 0.8)
    # half coverage: the rest goes by utility as before; 2% of the clips are triggered,
    # and they are a fifth or more of the rest
    half = select(cands, cfg.model_copy(update={"coverage": 0.5}))
    rest = [e for e in half.explanations if not e.startswith("coverage")]
    assert 20 <= half.stats["coverage_clips"] <= 25 and rest
    assert sum("hard_braking" in e for e in rest) >= len(rest) / 5
    none = select(cands, cfg.model_copy(update={"coverage": 0.0}))
    assert none.stats["coverage_clips"] == 0


def test_drop_worst_keeps_the_worst_drivers_clips_out_even_when_they_are_the_rare_ones():
    rng = np.random.default_rng(5)
    n = 400
    x = rng.standard_normal((n, 16)).astype(np.float32)
    frames = rng.integers(50, 150, n)
    quality = rng.uniform(0.05, 0.9, n)
    trig = [["hard_braking"] if q < 0.3 else [] for q in quality]     # bad drivers brake hard
    cands = Candidates([f"c{i}" for i in range(n)], frames, x, trig, None, quality)
    cfg = SelectionConfig(budget=0.3, w_disagreement=0.0)
    plain = select(cands, cfg)
    worst = quality < np.quantile(quality, 0.4)
    assert sum(worst[int(c[1:])] for c in plain.clip_ids) > 0           # taken without the rule
    gated = select(cands, cfg.model_copy(update={"drop_worst": 0.4}))
    assert gated.stats["below_quality"] == int(worst.sum())
    assert not any(worst[int(c[1:])] for c in gated.clip_ids)
    assert 0.8 * gated.budget_frames < gated.frames <= gated.budget_frames   # still fills the budget


def test_embed_and_similar_on_a_store(store):
    run_embed(store)
    assert run_embed(store).num_rows == 0                           # idempotent
    ids, vecs, name = read_embeddings(store)
    assert len(ids) == 4 and vecs.shape == (4, 128) and name.startswith("fallback")
    out = similar(store, ids[0], k=2)
    assert len(out) == 2 and ids[0] not in [c for c, _ in out]
    assert out[0][1] >= out[1][1]


# -- shadow mode, curation, disengagements ------------------------------------------------------

def _tiny_checkpoint(tmp_path):
    import torch

    from opendojo.train.checkpoint import save_checkpoint
    from opendojo.train.model import PolicyConfig, PolicyNet

    torch.manual_seed(0)
    cfg = PolicyConfig(frames=2, image_size=32, width=4, stages=2, hidden=16)
    model = PolicyNet(cfg)
    save_checkpoint(tmp_path / "run" / "checkpoints", 1, model, None, {"model": cfg.to_dict()})
    return tmp_path / "run"


def test_offline_shadow_then_curate_makes_an_explained_dataset(store, tmp_path):
    from opendojo.engine.curate import curate, parse_budget, read_selection
    from opendojo.engine.shadow import read_disagreement, run_shadow
    from opendojo.train.dataset import load_dataset

    ckpt = _tiny_checkpoint(tmp_path)
    t = run_shadow(store, ckpt, every=5)
    assert t.num_rows == 4
    assert run_shadow(store, ckpt, every=5).num_rows == 0          # same checkpoint: done
    dis = read_disagreement(store)
    assert len(dis) == 4 and all(np.isfinite(v) and v > 0 for v in dis.values())

    run_triggers(store)
    run_quality(store)
    run_embed(store)
    assert parse_budget("50%") == 0.5
    sel = curate(store, "cur-1", SelectionConfig(budget=parse_budget("50%")), holdout=0.0)
    assert 0 < sel.frames <= sel.budget_frames == 80
    ds = load_dataset(store, "cur-1")
    assert sorted(ds.splits["train"]) == sorted(sel.clip_ids)
    rows = read_selection(store, "cur-1")
    assert [r["clip_id"] for r in rows] == sel.clip_ids and all(r["explanation"] for r in rows)
    from opendojo.errors import DatasetError
    with pytest.raises(DatasetError):
        curate(store, "cur-1", SelectionConfig(budget=0.5))


def test_safety_driver_takes_over_and_the_takeover_clip_is_uploaded(tmp_path):
    from opendojo.engine.disengage import SafetyRules, fleet_drive

    store = ClipStore.create(tmp_path / "online")
    ckpt = _tiny_checkpoint(tmp_path)
    # a random network and a strict safety driver: a takeover is certain
    out = fleet_drive(store, ckpt, mode="safety", episodes=1, duration_s=2.0,
                      scenarios=["roundabout"], rules=SafetyRules(acc_gap=0.01, steer_gap=0.001,
                                                                 patience=1, takeover_s=0.5))
    assert out["takeovers"] >= 1 and out["uploaded"] == 1
    row = tables.read(store, tables.DISENGAGEMENTS).to_pylist()[0]
    assert row["clip_id"] == out["clip_ids"][0]
    takeovers = row["takeover_frames"]
    assert takeovers == sorted(takeovers) and all(r for r in row["reasons"])
    # the expert drives exactly the 0.5 s (5 frames) after each takeover
    expect = [any(t <= f < t + 5 for t in takeovers) for f in range(len(row["expert_driving"]))]
    assert row["expert_driving"] == expect
    assert len(row["network_acc"]) == store.row(row["clip_id"])["n_frames"]
    assert store.row(row["clip_id"])["driver_id"] == "safety-driver"
    # labels: a frame is a training sample only if the safety driver drove its whole future
    from opendojo.label.hindsight import LabelSpec, label_store, read_labels

    spec = LabelSpec(horizon_s=0.3, waypoints=3)
    label_store(store, spec)
    valid = read_labels(store, [row["clip_id"]], spec).column("valid").to_pylist()
    drove = row["expert_driving"]
    want = [all(drove[i:i + 4]) and i + 3 < len(drove) for i in range(len(drove))]
    assert valid == want and any(want) and not all(valid)


def test_the_online_fleet_meets_rare_events_at_the_asked_rate(tmp_path, monkeypatch):
    import opendojo.fleet.env as fleet_env
    from opendojo.engine.disengage import fleet_drive
    from opendojo.errors import DojoError
    from opendojo.fleet.scenarios import SCENARIOS

    store = ClipStore.create(tmp_path / "online")
    ckpt = _tiny_checkpoint(tmp_path)
    seen, real = [], fleet_env.make_env

    def spy(scenario, seed, *args, rare_event=None, **kw):
        seen.append(rare_event)
        return real(scenario, seed, *args, rare_event=rare_event, **kw)

    monkeypatch.setattr(fleet_env, "make_env", spy)

    def drive(rate):
        seen.clear()
        return fleet_drive(store, ckpt, mode="shadow", episodes=3, duration_s=0.3,
                           scenarios=["highway_sparse"], upload_disagreement=1e9,
                           rare_event_rate=rate)

    out = drive(1.0)
    assert out["rare_events"] == 3 and len(seen) == 3
    assert all(e in SCENARIOS["highway_sparse"].rare_events for e in seen)
    out = drive(0.0)
    assert out["rare_events"] == 0 and seen == [None] * 3
    with pytest.raises(DojoError, match="rare_event_rate"):
        drive(1.5)
    assert seen == []          # refused before anything was driven


def test_shadow_mode_and_embeddings_feed_frames_as_far_apart_as_the_network_was_trained():
    """Offline shadow mode and encoder embeddings build the network's input from stored
    frames; with `frame_stride` 2 they must take every other frame, as training did."""
    from opendojo.engine.embeddings import encoder_embedding
    from opendojo.engine.shadow import predict_clip
    from opendojo.train.model import PolicyConfig, PolicyNet

    net = PolicyNet(PolicyConfig(frames=3, frame_stride=2, width=8, hidden=32, image_size=64))
    frames = np.stack([np.full((64, 64, 3), k, np.uint8) for k in range(12)])  # frame k = value k
    seen = []
    orig = net.encode                   # forward() encodes its frames through it too
    net.encode = lambda f: (seen.extend(f[:, :, 0, 0, 0].tolist()), orig(f))[1]
    tel = {"speed": np.full(12, 10.0), "command": np.ones(12, np.int64)}
    predict_clip(net, frames, tel, every=5)
    assert seen == [[0, 0, 0], [1, 3, 5], [6, 8, 10]]
    seen.clear()
    encoder_embedding(net, frames, windows=2)
    assert seen == [[0, 2, 4], [7, 9, 11]]
