"""Hindsight labels: geometry of the ego-frame trajectory, horizon marking, controls, store round trip."""

import numpy as np
import pytest

from opendojo.clips.store import ClipStore
from opendojo.errors import DatasetError
from opendojo.label.hindsight import LabelSpec, label_store, label_telemetry, read_labels
from opendojo.train.synthetic import make_synthetic_store


def _circle(n=60, fps=10.0, v=10.0, radius=50.0, heading0=0.7):
    t = np.arange(n) / fps
    ang = v * t / radius                      # left turn (counter-clockwise)
    # start at the origin heading `heading0`
    cx, cy = -radius * np.sin(heading0), radius * np.cos(heading0)
    th = heading0 + ang
    x = cx + radius * np.sin(th)
    y = cy - radius * np.cos(th)
    return {"t": t, "x": x, "y": y, "heading": th, "speed": np.full(n, v),
            "acceleration": np.zeros(n), "steering": np.full(n, np.arctan(2.7 / radius))}


def test_ego_frame_trajectory_matches_circle_geometry():
    spec = LabelSpec(horizon_s=3.0, waypoints=6)
    tel = _circle()
    lab = label_telemetry(tel, spec)
    # On a circle of radius R the ego-frame point after arc length s is (R sin(s/R), R(1-cos(s/R))),
    # whatever the absolute heading and position.
    s = 10.0 * np.arange(1, 7) * 0.5
    expect = np.stack([50 * np.sin(s / 50), 50 * (1 - np.cos(s / 50))], -1)
    for i in (0, 10, 29):
        assert lab["valid"][i]
        np.testing.assert_allclose(lab["trajectory"][i], expect, atol=0.05)
    np.testing.assert_allclose(lab["future_speed"][0], 10.0)
    assert lab["command"][0] == 0  # left: 9 m lateral and 0.6 rad of turn over 3 s


def test_frames_near_the_end_are_marked_not_padded(tmp_path):
    ids = make_synthetic_store(tmp_path / "s", clips=2, frames=50, size=16, seed=1)
    store = ClipStore(tmp_path / "s")
    res = label_store(store, LabelSpec(horizon_s=3.0, waypoints=6))
    assert res["labelled"] == 2 and res["frames"] == 100
    tab = read_labels(store, ids)
    valid = np.array(tab.column("valid").to_pylist())
    frames = np.array(tab.column("frame").to_pylist())
    t = np.array(tab.column("t").to_pylist())
    # 50 frames at 10 fps: t runs to 4.9 s, so frames with t <= 1.9 have 3 s of future
    np.testing.assert_array_equal(valid, t <= 1.9 + 1e-9)
    assert valid.sum() == 2 * 20
    traj = tab.column("trajectory").to_pylist()
    cmds = tab.column("command").to_pylist()
    for v, tr, c in zip(valid, traj, cmds):
        assert (tr is None) == (not v) and (c is None) == (not v)
    assert set(tab.column("labeller_version").to_pylist()) == {"hindsight-1"}
    assert frames.max() == 49
    # idempotent: a second run labels nothing
    assert label_store(store, LabelSpec())["labelled"] == 0
    # a different label set is separate
    assert label_store(store, LabelSpec(horizon_s=2.0, waypoints=4))["labelled"] == 2


def test_controls_come_from_telemetry_or_are_derived_from_poses(tmp_path):
    spec = LabelSpec()
    tel = _circle(n=80)
    lab = label_telemetry(tel, spec)
    assert not lab["controls_derived"].any()
    poses_only = {k: tel[k] for k in ("t", "x", "y", "heading", "speed")}
    poses_only["speed"] = 10.0 + 0.5 * poses_only["t"]      # accelerating at 0.5 m/s^2
    d = label_telemetry(poses_only, spec)
    assert d["controls_derived"].all()
    np.testing.assert_allclose(d["acceleration"], 0.5, atol=1e-6)
    # bicycle model: steering = atan(L * yaw_rate / v) with yaw_rate = 10/50 rad/s
    np.testing.assert_allclose(d["steering"][5], np.arctan(2.7 * 0.2 / poses_only["speed"][5]), rtol=1e-3)


def test_imported_clips_without_controls_are_labelled(tmp_path):
    ids = make_synthetic_store(tmp_path / "s", clips=1, frames=40, size=16, seed=2, drop_controls=True)
    store = ClipStore(tmp_path / "s")
    label_store(store)
    tab = read_labels(store, ids)
    assert set(tab.column("controls_source").to_pylist()) == {"derived"}
    assert set(tab.column("given_command").to_pylist()) == {-1}
    assert not any(np.isnan(tab.column("acceleration").to_numpy()))


def test_clips_without_labels_are_refused(tmp_path):
    ids = make_synthetic_store(tmp_path / "s", clips=2, frames=40, size=16, seed=3)
    store = ClipStore(tmp_path / "s")
    with pytest.raises(DatasetError, match="no labels"):
        read_labels(store, ids)
    label_store(store, clip_ids=ids[:1])
    with pytest.raises(DatasetError, match="1 of 2 clips have no"):
        read_labels(store, ids)


def test_driven_through_needs_the_whole_horizon():
    from opendojo.label.hindsight import driven_through

    t = np.arange(10) / 10.0
    expert = np.array([0, 1, 1, 1, 1, 1, 0, 1, 1, 1], bool)
    # horizon 0.3 s: frame i needs frames i..i+3 (the last ones run out of clip: still
    # "driven through", the horizon check of label_telemetry marks them)
    got = driven_through(expert, t, 0.3)
    assert got.tolist() == [False, True, True, False, False, False, False, True, True, True]
