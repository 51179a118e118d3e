"""Synthesised road users (opendojo.train.synthesis): the pasted thing is where the label
says and the data engine's video headway reads it there; the cut label stops or follows
behind it on the driven path; things beside the path leave the label alone; the loader
pastes the same things into the same batch."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from opendojo.engine.quality import QualityConfig, gap_ahead
from opendojo.label.hindsight import LabelSpec
from opendojo.train.path import path_arc
from opendojo.train.synthesis import (EGO_HALF_LENGTH_M, GAP_M, HEADWAY_S, IN_PATH_M, MAX_DECEL,
                                      MOVING_MAX, NEAR_M, braking_arc, draw_thing, pick_thing,
                                      stop_behind, synthesize)
from synthutil import TIMES
from synthutil import car as _car
from synthutil import geo as _geo
from synthutil import straight as _straight


@pytest.mark.parametrize("distance", [20.0, 45.0])
def test_the_engine_video_headway_reads_the_pasted_car_where_it_was_put(distance):
    frames = np.full((4, 128, 128, 3), 100, np.uint8)
    out = draw_thing(frames, _straight(20.0), 20.0, _car(distance), _geo())
    gap = gap_ahead(out, QualityConfig())
    # newest frame: bumper-to-bumper gap; each older frame 20 m/s x 0.1 s further
    expect = distance - EGO_HALF_LENGTH_M - 2.5 + 2.0 * np.arange(3, -1, -1)
    np.testing.assert_allclose(gap, expect, atol=1.0)
    assert (out != frames).any(axis=-1).sum(axis=(1, 2)).min() > 0


def test_a_car_beside_the_path_is_a_lane_over_and_not_in_the_headway():
    frames = np.full((1, 128, 128, 3), 100, np.uint8)
    geo = _geo()
    out = draw_thing(frames, _straight(20.0), 20.0, _car(30.0, side=4.0), geo)
    assert np.isinf(gap_ahead(out, QualityConfig())).all()
    cols = np.flatnonzero((out[0] != 100).any(axis=(0, 2)))
    # +y is the camera's right (as the labels' y in highway-env's frame)
    assert cols.min() > 64 + 2.5 * geo.px_per_m and cols.max() < 64 + 5.5 * geo.px_per_m


def test_braking_arc_comes_to_the_thing_speed_within_the_room():
    arc, decel = braking_arc(20.0, 0.0, 40.0, np.linspace(0, 6, 61))
    assert decel == pytest.approx(20.0**2 / 80)
    assert arc.max() == pytest.approx(40.0, abs=1e-6)
    assert (np.diff(arc) >= -1e-9).all()
    follow, _ = braking_arc(20.0, 10.0, 30.0, np.array([10.0, 11.0]))
    assert follow[1] - follow[0] == pytest.approx(10.0)       # following at the thing's speed
    _, hard = braking_arc(30.0, 0.0, 5.0, TIMES)
    assert hard == MAX_DECEL


def test_the_cut_label_stops_behind_a_stopped_car_on_the_driven_path():
    # a path that bends right: the cut label keeps to it and ends short of the car
    traj = np.stack([20 * TIMES, 0.4 * TIMES**2], -1).astype(np.float32)
    pts, arc = path_arc(traj)
    new, decel = stop_behind(traj, 20.0, _car(40.0), _geo())
    _, new_arc = path_arc(new)
    assert decel > 0 and new_arc[-1] <= 40.0 - EGO_HALF_LENGTH_M - 2.5 - GAP_M + 1e-4
    # every point is on the driven path: its lateral offset is the path's at that arc
    np.testing.assert_allclose(new[:, 1], np.interp(new_arc[1:], arc, pts[:, 1]), atol=0.05)


@pytest.mark.parametrize("distance, thing_speed", [(6.5, 0.0), (15.0, 12.0), (30.0, 0.0)])
def test_a_thing_too_near_to_stop_for_gets_the_hardest_braking_a_car_can_do(distance, thing_speed):
    new, decel = stop_behind(_straight(20.0), 20.0, _car(distance, speed=thing_speed), _geo())
    assert decel == MAX_DECEL
    # braking at MAX_DECEL until down to the thing's speed, then on at that speed
    t_match = (20.0 - thing_speed) / MAX_DECEL
    t = np.minimum(TIMES, t_match)
    hardest = 20.0 * t - MAX_DECEL * t**2 / 2 + thing_speed * (TIMES - t)
    np.testing.assert_allclose(new[:, 0], hardest, atol=1e-3)


def test_a_slower_car_is_followed_at_its_speed_and_a_far_one_changes_nothing():
    geo = _geo()
    label = _straight(25.0)
    gap = 5.0 + GAP_M + HEADWAY_S * 15.0
    near, decel = stop_behind(label, 25.0, _car(40.0, speed=15.0), geo)
    assert decel == pytest.approx(10.0**2 / (2 * (40.0 - gap)))     # brakes now, just enough
    later, not_yet = stop_behind(label, 25.0, _car(70.0, speed=15.0), geo)
    assert not_yet == 0.0 and later is not label                     # keeps its speed, brakes later
    np.testing.assert_allclose(later[:2], label[:2])
    for new, d in ((near, 40.0), (later, 70.0)):
        assert (new[:, 0] <= d + 15.0 * TIMES - gap + 1e-3).all()
    slow = _straight(5.0)
    same, none = stop_behind(slow, 5.0, _car(60.0), geo)
    assert none == 0.0 and same is slow


def test_synthesize_pastes_only_where_asked_and_cuts_only_things_in_the_path():
    rng = np.random.default_rng(0)
    b = 64
    batch = {"frames": np.full((b, 2, 64, 64, 3), 100, np.uint8),
             "speed": np.where(np.arange(b) % 4 == 0, 1.0, 20.0).astype(np.float32),
             "trajectory": np.repeat(_straight(20.0)[None], b, 0),
             "controls": np.tile(np.float32([1.5, 0.01]), (b, 1))}
    before = {k: v.copy() for k, v in batch.items()}
    eligible = np.arange(b) % 8 != 1
    got = synthesize(batch, eligible, 1.0, rng, _geo(64), side_share=0.4)
    pasted, braked = got["pasted"], got["braked"]
    assert not pasted[~eligible].any() and not pasted[batch["speed"] < 3].any()
    assert pasted.sum() == (eligible & (batch["speed"] >= 3)).sum()
    changed = (batch["frames"] != before["frames"]).reshape(b, -1).any(1)
    np.testing.assert_array_equal(changed, pasted)
    relabelled = (batch["trajectory"] != before["trajectory"]).reshape(b, -1).any(1)
    np.testing.assert_array_equal(relabelled, braked)
    assert 0 < braked.sum() < pasted.sum()              # some things sat beside the path
    # the driver's controls stay where the label stayed; where it was cut, no speeding up
    np.testing.assert_array_equal(batch["controls"][~braked], before["controls"][~braked])
    assert (batch["controls"][braked, 0] <= 0).all()
    np.testing.assert_array_equal(batch["controls"][:, 1], before["controls"][:, 1])
    assert (batch["trajectory"][braked, -1, 0] < before["trajectory"][braked, -1, 0]).all()


def test_the_loader_pastes_the_same_things_into_the_same_batch(tmp_path):
    from clipfactory import labelled_synthetic_store
    from opendojo.train.loader import LoaderConfig, TrainLoader

    store = labelled_synthetic_store(tmp_path / "s", clips=2, frames=60, size=32, seed=5)
    ids = sorted(store.clip_ids())
    cfg = LoaderConfig(batch_size=8, frames=2, image_size=16, workers=0)
    plain = TrainLoader(store, ids, LabelSpec(), cfg)
    pasting = replace(cfg, synthetic_share=1.0)
    fresh = iter(TrainLoader(store, ids, LabelSpec(), pasting))
    first, second = next(fresh), next(fresh)
    ref = next(iter(plain))
    assert not torch.equal(first["frames"], ref["frames"])
    torch.testing.assert_close(first["speed"], ref["speed"])
    # a loader resumed at the second batch pastes what the first run pasted there
    resumed = TrainLoader(store, ids, LabelSpec(), pasting)
    resumed.load_state_dict({**resumed.state_dict(), "batch": 1})
    again = next(iter(resumed))
    for k in ("frames", "trajectory", "controls"):
        torch.testing.assert_close(again[k], second[k])
    assert not torch.equal(first["frames"], second["frames"])


def test_a_car_ahead_that_is_not_closing_in_leaves_the_label_as_driven():
    geo = _geo()
    label = _straight(25.0)
    for thing_speed in (25.0, 30.0):
        same, decel = stop_behind(label, 25.0, _car(15.0, speed=thing_speed), geo)
        assert same is label and decel == 0.0
    slower, decel = stop_behind(label, 25.0, _car(15.0, speed=24.0), geo)
    assert slower is not label and decel > 0


def test_some_pasted_cars_drive_faster_than_the_car_and_none_is_braked_for():
    rng = np.random.default_rng(1)
    things = [pick_thing(rng, 20.0, 60.0, 0.0) for _ in range(400)]
    moving = np.array([t.speed for t in things if t.speed > 0])
    assert moving.max() <= MOVING_MAX * 20.0 and (moving >= 20.0).mean() > 0.1
    label, geo = _straight(20.0), _geo()
    for t in things:
        if t.speed >= 20.0:
            assert stop_behind(label, 20.0, t, geo)[0] is label


def test_a_near_share_of_the_pasted_things_sits_within_near_m_and_the_rest_anywhere():
    """`near_share` moves that share of the things within NEAR_M; the others (and every
    thing without it) stay spread over the whole reach, and none is nearer than a thing
    can be drawn clear of the ego."""
    reach, speed, history_s = 70.0, 20.0, 0.3

    def within_near(share: float) -> tuple[float, list]:
        rng = np.random.default_rng(5)
        things = [pick_thing(rng, speed, reach, 0.0, history_s, near_share=share) for _ in range(3000)]
        return np.mean([t.distance_m <= NEAR_M for t in things]), things

    uniform, things = within_near(0.0)
    assert max(t.distance_m for t in things) > NEAR_M + 0.8 * (reach - NEAR_M)
    for share in (0.5, 1.0):
        near, things = within_near(share)
        # a share drawn near, the rest as before (some of which land near too)
        assert abs(near - (share + (1 - share) * uniform)) < 0.04
        for t in things:
            assert EGO_HALF_LENGTH_M + t.size_m[0] / 2 + 1.0 - 1e-9 <= t.distance_m <= reach
    assert uniform < 0.3


def test_a_near_share_needs_things_pasted():
    from pydantic import ValidationError

    from opendojo.train.config import TrainConfig

    assert TrainConfig(synthetic_share=0.5, synthetic_near_share=0.5).synthetic_near_share == 0.5
    with pytest.raises(ValidationError, match="synthetic_share > 0"):
        TrainConfig(synthetic_near_share=0.5)


def test_path_jitter_spreads_the_things_in_the_path_across_it_and_keeps_them_in_the_way():
    """With `path_jitter_m` a thing in the path sits up to that far to its side (uniformly,
    both ways), still in the way and braked for; things a lane to the side stay there; and
    without it every draw is the one made before the option existed."""
    def draw(jitter: float) -> list:
        rng = np.random.default_rng(11)
        return [pick_thing(rng, 20.0, 60.0, 0.4, 0.3, 0.5, path_jitter_m=jitter) for _ in range(3000)]

    def fields(things: list) -> list:
        return [(t.distance_m, t.side_m, t.speed, t.size_m, t.colour.tolist()) for t in things]

    rng = np.random.default_rng(11)
    assert fields(draw(0.0)) == fields([pick_thing(rng, 20.0, 60.0, 0.4, 0.3, 0.5) for _ in range(3000)])
    things = draw(1.0)
    in_path = np.array([t.side_m for t in things if t.in_path])
    aside = np.array([abs(t.side_m) for t in things if not t.in_path])
    assert np.abs(in_path).max() <= 1.0 and in_path.std() > 0.5   # uniform on [-1, 1]: 0.58
    assert (in_path < -0.5).mean() > 0.2 and (in_path > 0.5).mean() > 0.2
    assert aside.min() >= 3.5 and abs(len(aside) / len(things) - 0.4) < 0.04
    label, geo = _straight(20.0), _geo()
    stopped = [t for t in things if t.in_path and t.speed == 0.0 and t.distance_m > 15.0]
    assert stopped and all(stop_behind(label, 20.0, t, geo)[0] is not label for t in stopped)
    with pytest.raises(ValueError, match="in the way"):
        pick_thing(np.random.default_rng(0), 20.0, 60.0, 0.0, path_jitter_m=IN_PATH_M)


def test_path_jitter_needs_things_pasted_and_stays_within_the_path():
    from pydantic import ValidationError

    from opendojo.train.config import TrainConfig

    assert TrainConfig(synthetic_share=0.5, synthetic_path_jitter_m=1.0).synthetic_path_jitter_m == 1.0
    with pytest.raises(ValidationError, match="synthetic_path_jitter_m places pasted things"):
        TrainConfig(synthetic_path_jitter_m=1.0)
    with pytest.raises(ValidationError, match="less than or equal to 1.5"):
        TrainConfig(synthetic_share=0.5, synthetic_path_jitter_m=2.0)


def test_a_faster_pasted_car_is_clear_of_the_ego_in_every_history_frame():
    """It was nearer in the older frames: where it starts leaves room for that."""
    rng = np.random.default_rng(3)
    speed, history_s = 30.0, 0.3
    faster = [t for t in (pick_thing(rng, speed, 60.0, 0.0, history_s) for _ in range(2000))
              if t.speed > speed]
    assert len(faster) > 50
    for t in faster:
        oldest = t.distance_m - (t.speed - speed) * history_s   # its distance ahead then
        assert oldest >= EGO_HALF_LENGTH_M + t.size_m[0] / 2 + 1.0 - 1e-9
