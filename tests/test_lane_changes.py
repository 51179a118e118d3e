"""Synthesised lane changes round a thing in the path (opendojo.train.synthesis): which lanes
the frames show beside the car, whether one is free, and labels that change lane round the
thing instead of braking for it."""

import functools

import numpy as np
import pytest

from opendojo.train.inputs import with_object_channel
from opendojo.train.synthesis import (COLOURS, LANE_WIDTH_M, MIN_LANE_CHANGE_S, SIZES_M, Geometry, Thing,
                                      _drive_round, _min_jerk, clears, draw_field, draw_thing, lane_change, lane_free,
                                      lane_markings, lanes_beside, pixel_at, placed, synthesize,
                                      vacated_lane)
from synthutil import TIMES, centroid, geo
from synthutil import car as _stopped
from synthutil import straight as _straight

SIZE = 64


def _geo() -> Geometry:
    return geo(SIZE)


@functools.lru_cache(maxsize=None)
def _camera_frame(scenario: str, seed: int):
    """The network's 64 px input of a simulator start, and (lane index, lanes) from the
    simulator's truth, which only this test reads."""
    from opendojo.clips.video import resize_rgb
    from opendojo.fleet.camera import Camera, render_ego_view
    from opendojo.fleet.env import make_env

    env = make_env(scenario, seed, camera=Camera())
    try:
        ego = env.unwrapped.vehicle
        _, _, lane = ego.lane_index
        lanes = len(env.unwrapped.road.network.all_side_lanes(ego.lane_index))
        return resize_rgb(render_ego_view(env, env.camera), SIZE), lane, lanes
    finally:
        env.close()


@pytest.mark.parametrize("scenario,seed", [("highway_sparse", s) for s in range(3)] +
                         [("highway_dense", s) for s in range(3)])
def test_the_frame_shows_the_lanes_the_road_has_beside_the_car(scenario, seed):
    frame, lane, lanes = _camera_frame(scenario, seed)
    geo = _geo()
    markings = lane_markings(frame, geo.px_per_m, geo.ego_row)
    assert len(markings) == lanes + 1                  # every lane line of the road, straight
    assert np.diff(markings) == pytest.approx(LANE_WIDTH_M, abs=1.4)
    assert lanes_beside(markings) == (lane > 0, lane < lanes - 1)


def test_no_markings_are_found_off_a_straight_road():
    geo = _geo()
    grey = np.full((SIZE, SIZE, 3), 100, np.uint8)
    assert len(lane_markings(grey, geo.px_per_m, geo.ego_row)) == 0
    rng = np.random.default_rng(0)
    specks = grey.copy()
    specks[rng.random((SIZE, SIZE)) < 0.05] = 230      # white specks in no line
    assert lanes_beside(lane_markings(specks, geo.px_per_m, geo.ego_row)) == (False, False)


def test_a_lane_with_a_car_in_it_is_not_free_and_the_lane_beyond_it_is():
    geo = _geo()
    field = np.zeros((SIZE, SIZE), np.float32)
    for ahead, side in ((30.0, LANE_WIDTH_M), (20.0, 0.0)):      # one to the right, one ahead
        draw_field(field, pixel_at(ahead, side, SIZE, SIZE, geo), np.array([-1.0, 0.0]), SIZES_M[0], geo.px_per_m)
    assert not lane_free(field, geo.px_per_m, geo.ego_row, LANE_WIDTH_M, 60.0)
    assert lane_free(field, geo.px_per_m, geo.ego_row, -LANE_WIDTH_M, 60.0)
    assert lane_free(field, geo.px_per_m, geo.ego_row, 2 * LANE_WIDTH_M, 60.0)
    # the car is 30 m ahead: a lane that need only be free for 20 m is
    assert lane_free(field, geo.px_per_m, geo.ego_row, LANE_WIDTH_M, 20.0)


def test_the_lane_change_ends_a_lane_over_at_the_driven_pace_and_clears_the_thing():
    speed, thing = 25.0, _stopped(60.0)
    label, pos = _straight(speed), np.array([60.0, 0.0])
    assert not clears(label, pos, thing)
    for side in (-1, 1):
        moved = lane_change(label, pos, thing, side, TIMES)
        assert moved[:, 0] == pytest.approx(label[:, 0])
        assert moved[-1, 1] == pytest.approx(side * LANE_WIDTH_M, abs=0.05)
        assert np.all(np.diff(side * moved[:, 1]) >= 0)
        assert clears(moved, pos, thing)


def test_a_thing_too_near_to_drive_round_gets_no_lane_change_and_a_nearer_one_a_quicker_one():
    speed = 25.0
    near = 3.5 + speed * MIN_LANE_CHANGE_S * 0.4
    assert lane_change(_straight(speed), np.array([near, 0.0]), _stopped(near), 1, TIMES) is None
    far = lane_change(_straight(speed), np.array([70.0, 0.0]), _stopped(70.0), 1, TIMES)
    nearer = lane_change(_straight(speed), np.array([40.0, 0.0]), _stopped(40.0), 1, TIMES)
    assert nearer is not None and nearer[1, 1] > far[1, 1]
    assert clears(nearer, np.array([40.0, 0.0]), _stopped(40.0))


def _drawn_at(frames: np.ndarray, geo: Geometry) -> np.ndarray:
    """(m ahead, m right) of the centroid of what the object channel of the newest frame holds."""
    row, col = centroid(frames[-1, ..., 3].astype(float)) + 0.5
    return np.array([(geo.ego_row * SIZE - row) / geo.px_per_m, (col - SIZE / 2) / geo.px_per_m])


def test_every_lane_change_clears_the_thing_where_it_was_drawn_on_a_drifting_path():
    geo, rng = _geo(), np.random.default_rng(3)
    made = 0
    for _ in range(200):
        speed, distance = rng.uniform(15, 30), rng.uniform(10, 70)
        label = _straight(speed)
        label[:, 1] = rng.uniform(-0.9, 0.9) * (TIMES / TIMES[-1]) ** 2     # within keeps_lane
        thing = _stopped(distance)
        frames = draw_thing(np.zeros((4, SIZE, SIZE, 4), np.uint8), label, speed, thing, geo)
        # planned where `placed` puts the thing (as synthesize does), checked where it was drawn
        moved = lane_change(label, placed(label, thing)[0], thing, int(rng.choice([-1, 1])), TIMES)
        if moved is not None:
            made += 1
            assert clears(moved, _drawn_at(frames, geo), thing)
    assert made > 50


def test_synthesize_changes_lane_clear_of_the_thing_where_it_drew_it_on_drifting_paths():
    geo = _geo()
    batch = _highway_batch(n=64)
    drift = np.random.default_rng(4).uniform(-0.9, 0.9, 64)
    batch["trajectory"][:, :, 1] = drift[:, None] * (TIMES / TIMES[-1]) ** 2
    got = synthesize(batch, np.ones(64, bool), 1.0, np.random.default_rng(6), geo, side_share=0.0,
                     lane_changes=True)
    assert got["lane_change"].sum() >= 5
    for i in np.flatnonzero(got["lane_change"]):
        pos = _drawn_at(batch["frames"][i], geo)
        # the smaller of the two things highway-env draws: the weaker check along the road
        assert clears(batch["trajectory"][i], pos, Thing(pos[0], 0.0, 0.0, SIZES_M[1], COLOURS[0]))


def test_the_lane_a_driver_leaves_is_one_lane_back_across_from_where_the_label_ends():
    speed = 20.0
    change = lane_change(_straight(speed), np.array([70.0, 0.0]), _stopped(70.0), -1, TIMES)   # to the left
    pos, direction = vacated_lane(change, 50.0)
    assert pos == pytest.approx([50.0, 0.0], abs=0.2)        # within a lane's tolerance
    assert direction == pytest.approx([1.0, 0.0], abs=0.02)
    assert vacated_lane(_straight(speed), 50.0) is None
    # half-way through a change to the right: the lane left is 2 m to the left of the car
    pos, _ = vacated_lane(_part_way(speed), 50.0)
    assert pos == pytest.approx([50.0, -2.0], abs=0.2)


def _part_way(speed: float) -> np.ndarray:
    """A label that is half-way through a lane change to the right: 2 m still to go."""
    label = _straight(speed)
    label[:, 1] = LANE_WIDTH_M * (_min_jerk(0.5 + TIMES / 3.0) - 0.5)
    return label


def _highway_batch(speed: float = 22.0, n: int = 48):
    """n samples of one simulator start (3-lane road, car in the middle lane, the lanes
    beside it empty), keeping their lane at `speed`, with an object channel."""
    for seed in range(20):
        frame, lane, lanes = _camera_frame("highway_sparse", seed)
        if 0 < lane < lanes - 1:
            break
    else:
        raise AssertionError("no highway_sparse start in a middle lane")
    frames = with_object_channel(frame, np.zeros((SIZE, SIZE), np.uint8))
    return {"frames": np.repeat(frames[None, None], n, 0).repeat(4, 1),
            "speed": np.full(n, speed, np.float32),
            "trajectory": np.repeat(_straight(speed)[None], n, 0),
            "controls": np.zeros((n, 2), np.float32)}


def test_where_the_left_lane_has_no_time_to_pass_the_thing_the_label_goes_right():
    geo, speed = _geo(), 22.0
    newest, label = _highway_batch(speed, n=1)["frames"][0, -1], _straight(speed)   # both lanes free
    for distance in np.arange(10.0, 60.0, 0.5):     # a stopped car 0.9 m left of the path
        pos, thing = np.array([distance, -0.9]), _stopped(distance)
        if lane_change(label, pos, thing, -1, geo.times) is None and \
                lane_change(label, pos, thing, 1, geo.times) is not None:
            break
    else:
        raise AssertionError("no distance where only the right lane has time")
    around = _drive_round(newest, label, pos, thing, geo)
    assert around is not None and around[-1, 1] == pytest.approx(LANE_WIDTH_M, abs=0.05)
    assert clears(around, pos, thing)


def test_synthesize_drives_round_stopped_things_where_a_lane_is_free_and_brakes_where_none_is():
    geo = _geo()
    batch = _highway_batch()
    before = batch["trajectory"].copy()
    got = synthesize(batch, np.ones(48, bool), 1.0, np.random.default_rng(0), geo, side_share=0.0,
                     lane_changes=True)
    lc = got["lane_change"]
    assert lc.sum() >= 5 and not (lc & got["braked"]).any()
    assert np.allclose(np.abs(batch["trajectory"][lc, -1, 1]), LANE_WIDTH_M, atol=0.05)
    assert np.allclose(batch["trajectory"][lc, :, 0], before[lc, :, 0])      # at the driven pace
    # with both lanes beside taken, the same things are braked for instead
    full = _highway_batch()
    centres = SIZE / 2 + np.array([-1, 1]) * LANE_WIDTH_M * geo.px_per_m
    taken = np.abs(np.arange(SIZE)[:, None] + 0.5 - centres).min(1) <= 1.5
    full["frames"][..., taken, 3] = 255                # cars all along both lanes beside
    got2 = synthesize(full, np.ones(48, bool), 1.0, np.random.default_rng(0), geo, side_share=0.0,
                      lane_changes=True)
    assert not got2["lane_change"].any()
    assert got2["braked"][lc].sum() >= lc.sum() - 1
    # without lane changes nothing changes lane
    plain = _highway_batch()
    assert not synthesize(plain, np.ones(48, bool), 1.0, np.random.default_rng(0), geo, side_share=0.0)["lane_change"].any()


def test_a_driver_changing_lane_gets_a_stopped_thing_in_the_lane_left_and_keeps_the_label():
    geo = _geo()
    speed, n = 20.0, 32
    change = _part_way(speed)
    batch = {"frames": np.full((n, 4, SIZE, SIZE, 4), 100, np.uint8),
             "speed": np.full(n, speed, np.float32), "trajectory": np.repeat(change[None], n, 0),
             "controls": np.zeros((n, 2), np.float32)}
    batch["frames"][..., 3] = 0
    got = synthesize(batch, np.ones(n, bool), 1.0, np.random.default_rng(1), geo, side_share=0.0,
                     lane_changes=True)
    behind = got["left_behind"]
    assert behind.sum() >= 5
    assert np.allclose(batch["trajectory"][behind], change)
    for i in np.flatnonzero(behind):      # in the lane left, 2 m to the left, and passed clear
        ahead, right = _drawn_at(batch["frames"][i], geo)
        assert right == pytest.approx(-2.0, abs=0.5)
        assert clears(change, np.array([ahead, right]), _stopped(ahead))


def test_samples_that_get_no_lane_change_are_pasted_as_without_lane_changes():
    geo = _geo()
    on, off = _highway_batch(), _highway_batch()
    got = synthesize(on, np.ones(48, bool), 1.0, np.random.default_rng(5), geo, lane_changes=True)
    synthesize(off, np.ones(48, bool), 1.0, np.random.default_rng(5), geo)
    same = ~got["lane_change"] & ~got["left_behind"]
    assert got["lane_change"].any() and same.any()
    for key in ("frames", "trajectory", "controls"):
        assert np.array_equal(on[key][same], off[key][same])
    assert np.array_equal(on["frames"][got["lane_change"]], off["frames"][got["lane_change"]])


def test_lane_changes_need_the_object_channel_in_the_frames():
    batch = _highway_batch()
    batch["frames"] = batch["frames"][..., :3].copy()
    with pytest.raises(ValueError, match="object channel"):
        synthesize(batch, np.ones(48, bool), 1.0, np.random.default_rng(0), _geo(), lane_changes=True)


def test_lane_changes_need_pasted_things_and_the_object_channel():
    from pydantic import ValidationError

    from opendojo.train.config import ModelSettings, TrainConfig

    with_channel = ModelSettings(object_channel=True)
    assert TrainConfig(synthetic_share=0.5, synthetic_lane_changes=True, model=with_channel).synthetic_lane_changes
    for kw in ({"synthetic_share": 0.0, "model": with_channel}, {"synthetic_share": 0.5}):
        with pytest.raises(ValidationError, match="object_channel"):
            TrainConfig(synthetic_lane_changes=True, **kw)
    with pytest.raises(ValidationError, match="hindsight"):
        TrainConfig(synthetic_share=0.5, synthetic_lane_changes=True, model=with_channel, command="hindsight")
