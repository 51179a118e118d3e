"""Closed-loop evaluation: the score's arithmetic and real episodes in the simulator."""

import numpy as np
import pytest

from opendojo.evaluate.closed_loop import (
    EVAL_SEED_BASE, SUITES, NetworkDriver, SuiteItem, check_held_out, evaluate_suite,
    pure_pursuit, reached_destination, run_episode, suite,
)
from opendojo.evaluate.scoring import PENALTY, episode_metrics, mean_ci, summarize
from opendojo.errors import DojoError


def _ep(collision="", on_road=None, n=50, speed=20.0, route=100.0):
    t = np.arange(n) * 0.1
    x = speed * t
    return episode_metrics("d", "s", "", 0, t, x, np.zeros(n), np.full(n, speed),
                           np.ones(n, bool) if on_road is None else on_road, np.zeros(n),
                           collision, route)


def test_score_is_completion_times_penalties():
    clean = _ep()
    assert clean.route_completion == pytest.approx(0.98)  # 98 m of 100
    assert clean.score == pytest.approx(clean.route_completion)
    for kind in ("vehicle", "pedestrian", "object"):
        assert _ep(kind).score == pytest.approx(clean.route_completion * PENALTY[kind])
    assert _ep("pedestrian").score < _ep("vehicle").score < _ep("object").score < clean.score


def test_off_road_share_is_removed_from_completion():
    on = np.ones(50, bool)
    on[25:] = False
    ep = _ep(on_road=on)
    assert ep.off_road_s == pytest.approx(2.5)
    # segments ending at frames 25..49 are off-road: 24 of the 49 segments stay on it
    assert ep.route_completion == pytest.approx(0.98 * 24 / 49, rel=1e-6)


def test_completion_counts_progress_along_the_lane_not_the_odometer():
    n = 151
    t = np.arange(n) * 0.1
    lane = np.zeros(n)                       # a road heading along +x
    on = np.ones(n, bool)
    straight = _ep(n=n, speed=10.0, route=100.0)
    assert straight.progress_m == pytest.approx(150.0) and straight.route_completion == 1.0
    # 25 m/s in circles of 20 m radius: 375 m on the odometer, no way along the road
    a = 25.0 * t / 20.0
    circles = episode_metrics("d", "s", "", 0, t, 20 * np.sin(a), 20 * (1 - np.cos(a)),
                              np.full(n, 25.0), on, lane, "", 100.0)
    assert circles.distance_m > 300 and abs(circles.progress_m) < 20
    assert circles.route_completion < 0.2
    # against the lane's direction: the same odometer as straight, progress backwards
    back = episode_metrics("d", "s", "", 0, t, -10.0 * t, np.zeros(n), np.full(n, 10.0), on,
                           lane, "", 100.0)
    assert back.distance_m == pytest.approx(straight.distance_m)
    assert back.progress_m < 0 and back.route_completion == 0.0
    # a curved lane: progress follows the lane's heading where the car is
    arc = episode_metrics("d", "s", "", 0, t, 20 * np.sin(a), 20 * (1 - np.cos(a)),
                          np.full(n, 25.0), on, a, "", 1000.0)
    assert arc.progress_m == pytest.approx(arc.distance_m, rel=0.01)


def test_jerk_and_summary():
    n = 40
    t = np.arange(n) * 0.1
    speed = 20 + np.where(np.arange(n) % 2, 1.0, -1.0)  # jerk 200 m/s^3
    ep = episode_metrics("d", "s", "", 0, t, np.cumsum(speed) * 0.1, np.zeros(n), speed,
                         np.ones(n, bool), np.zeros(n), "", 50.0)
    assert ep.mean_abs_jerk > 100 and ep.harsh_jerk_s > 3
    assert ep.score < ep.route_completion
    s = summarize([_ep(), _ep("vehicle"), _ep(), _ep()])
    assert s["collisions"] == 1 and s["collisions_per_km"] == pytest.approx(1 / (4 * 0.098))
    mean, lo, hi = mean_ci([0.2, 0.9, 0.5, 0.7, 0.4])
    assert lo <= mean <= hi and mean == pytest.approx(0.54)


def test_suite_covers_scenarios_and_rare_events_on_held_out_seeds(tmp_path):
    from opendojo.fleet.scenarios import SCENARIOS

    items = suite(2)
    assert {i.scenario for i in items} == set(SCENARIOS)
    for name, sc in SCENARIOS.items():
        for ev in sc.rare_events:
            assert sum(1 for i in items if (i.scenario, i.rare_event) == (name, ev)) == 2
    assert len({i.seed for i in items}) == len(items) and min(i.seed for i in items) >= EVAL_SEED_BASE

    class FakeStore:
        def __init__(self, seeds):
            import pyarrow as pa
            self.t = pa.table({"seed": seeds})

        def catalog(self, columns=None):
            return self.t

    check_held_out(FakeStore([1, 2, 3]), items)
    with pytest.raises(DojoError, match="used by a training clip"):
        check_held_out(FakeStore([1, items[3].seed]), items)


def test_pure_pursuit_turns_towards_the_waypoints():
    from opendojo.train.model import PolicyConfig

    cfg = PolicyConfig()
    straight = np.stack([np.arange(1, 7) * 10.0, np.zeros(6)], 1)  # 20 m/s straight ahead
    acc, steer = pure_pursuit(straight, 10.0, cfg, 1.0)
    assert acc > 0 and steer == 0
    side = straight.copy()
    side[:, 1] = np.arange(1, 7) * 1.0
    assert pure_pursuit(side, 20.0, cfg, 1.0)[1] > 0
    side[:, 1] *= -1
    assert pure_pursuit(side, 20.0, cfg, 1.0)[1] < 0
    # a right turn at 8 m/s on a quarter circle of radius 12 m: keep the pace, do not stop
    times = np.arange(1, 7) * 0.5
    ang = 8.0 * times / 12.0
    turn = np.stack([12.0 * np.sin(ang), -12.0 * (1 - np.cos(ang))], 1)
    acc, steer = pure_pursuit(turn, 8.0, cfg, 1.0)
    assert abs(acc) < 0.5 and steer < 0
    # a stop within the horizon still brakes now
    stop = np.stack([np.minimum(8.0 * times - 2.0 * times ** 2, 8.0), np.zeros(6)], 1)
    assert pure_pursuit(stop, 8.0, cfg, 1.0)[0] < -2.0


class _Const:
    def __init__(self, acc, steer):
        self.acc, self.steer = acc, steer

    def reset(self, env):
        pass

    def command(self, env):
        return self.acc, self.steer


def test_episodes_in_the_simulator():
    from opendojo.fleet.drivers import make_driver

    item = SuiteItem("highway_sparse", "", EVAL_SEED_BASE)
    expert, _ = run_episode(make_driver("expert", 0), "expert", item, duration_s=4.0)
    assert not expert.collision and expert.distance_m > 40 and expert.off_road_s == 0
    # steering hard right leaves the road and loses route completion for it
    off, _ = run_episode(_Const(0.0, 0.3), "off", item, duration_s=4.0)
    assert off.off_road_s > 0 or off.collision
    assert off.score < expert.score


def test_only_the_routed_exit_counts_as_arrival():
    """highway-env's has_arrived takes any exit lane, the one beside the approach included;
    the suite ends an episode as arrived (full route) only on the exit the ego was routed to."""
    from opendojo.fleet.camera import Camera
    from opendojo.fleet.env import make_env

    env = make_env("intersection", EVAL_SEED_BASE + 26, camera=Camera())
    try:
        base = env.unwrapped
        ego = base.vehicle
        approach = ego.lane_index
        assert approach[0].startswith("o") and base.final_edge is not None

        def put(edge, s):
            lane = base.road.network.get_lane((*edge, 0))
            ego.position, ego.heading = lane.position(s, 0.0), lane.heading_at(s)
            ego.on_state_update()

        # across the centre line of the approach: the exit lane back to where it came from
        beside = (approach[1].replace("ir", "il"), approach[0])
        put(beside, 40.0)
        assert tuple(ego.lane_index[:2]) == beside
        assert base.has_arrived(ego) and not reached_destination(env)
        put(base.final_edge, 10.0)
        assert not reached_destination(env)
        put(base.final_edge, 30.0)
        assert reached_destination(env)
    finally:
        env.close()


def test_network_driver_drives_from_camera_speed_and_command():
    import torch

    from opendojo.train.model import PolicyConfig, PolicyNet

    torch.manual_seed(0)
    net = PolicyNet(PolicyConfig(width=8, hidden=32, image_size=64))
    seen = []
    orig = net.forward

    def spy(frames, speed, command):
        seen.append((frames.shape, frames.dtype, speed.shape, command.shape))
        return orig(frames, speed, command)

    net.forward = spy
    ep, rec = run_episode(NetworkDriver(net), "network", SuiteItem("merge", "", EVAL_SEED_BASE + 1),
                          duration_s=1.0, record=True)
    assert seen and seen[0] == (torch.Size([1, 4, 64, 64, 3]), torch.uint8, (1,), (1,))
    assert len(rec["frames"]) == len(seen) and rec["predictions"][0].shape == (6, 2)
    assert ep.steps == len(seen) + 1 or ep.collision
    assert rec["paths"] == [None] * len(seen)             # no path head: no path recorded


def test_a_network_with_a_path_head_records_the_path_it_steers_on():
    """The rollout videos draw the path the network steers on; the episode's record keeps it,
    step by step, beside the trajectory."""
    import torch

    from opendojo.train.model import PolicyConfig, PolicyNet

    torch.manual_seed(0)
    net = PolicyNet(PolicyConfig(width=8, hidden=32, image_size=64, path_points=8))
    driver = NetworkDriver(net)
    ep, rec = run_episode(driver, "network", SuiteItem("merge", "", EVAL_SEED_BASE + 1),
                          duration_s=0.5, record=True)
    assert len(rec["paths"]) == len(rec["predictions"]) == len(rec["frames"]) > 0
    assert all(p.shape == (8, 2) for p in rec["paths"])
    assert np.array_equal(rec["paths"][-1], driver.last_path)
    driver.reset(None)
    assert driver.last_path is None and driver.last_prediction is None


def test_fleet_seeds_never_reach_the_evaluation_range():
    from opendojo.fleet.config import FleetConfig
    from opendojo.fleet.generate import plan_clips

    tasks = plan_clips(FleetConfig(clips=2000, seed=3))
    assert max(t.seed for t in tasks) < EVAL_SEED_BASE
    assert not {t.seed for t in tasks} & {i.seed for i in suite(3)}


def test_collision_rate_ci_is_the_exact_poisson_interval():
    from opendojo.evaluate.scoring import poisson_ci

    # Garwood's table: 0 events -> (0, 3.689); 10 events -> (4.795, 18.39)
    assert poisson_ci(0, 1.0) == [0.0, pytest.approx(3.689, abs=1e-3)]
    lo, hi = poisson_ci(10, 2.0)
    assert lo == pytest.approx(4.795 / 2, abs=1e-3) and hi == pytest.approx(18.39 / 2, abs=1e-2)
    assert all(x != x for x in poisson_ci(3, 0.0))   # no distance: no rate


def test_network_driver_spaces_its_frame_history_as_the_network_was_trained(monkeypatch):
    """A network trained on frames `frame_stride` apart must be fed frames that far apart in
    closed loop (and the first frame repeated until the history has filled)."""
    import opendojo.fleet.camera as camera
    import opendojo.fleet.env as fleet_env
    from opendojo.train.model import PolicyConfig, PolicyNet

    step = {"n": 0}

    def fake_view(env, cam):          # frame k is filled with the value k
        step["n"] += 1
        return np.full((64, 64, 3), step["n"] - 1, np.uint8)

    monkeypatch.setattr(camera, "render_ego_view", fake_view)
    monkeypatch.setattr(fleet_env, "ego_state", lambda env: {"speed": 10.0, "command": 1})
    net = PolicyNet(PolicyConfig(frames=3, frame_stride=2, width=8, hidden=32, image_size=64))
    seen = []
    orig = net.forward
    net.forward = lambda frames, speed, command: (seen.append(frames[0, :, 0, 0, 0].tolist()),
                                                  orig(frames, speed, command))[1]
    driver = NetworkDriver(net)
    driver.reset(None)
    env = type("Env", (), {"camera": None})()
    for _ in range(7):
        driver.command(env)
    assert seen[0] == [0, 0, 0] and seen[2] == [0, 0, 2]
    assert seen[4] == [0, 2, 4] and seen[6] == [2, 4, 6]


def test_validation_suite_is_the_same_items_on_other_held_out_seeds():
    test = suite(2, seed_offset=SUITES["test"])
    val = suite(2, seed_offset=SUITES["validation"])
    assert [(i.scenario, i.rare_event) for i in test] == [(i.scenario, i.rare_event) for i in val]
    assert not {i.seed for i in test} & {i.seed for i in val}
    assert min(i.seed for i in val) >= EVAL_SEED_BASE                 # held out from the fleet too
    with pytest.raises(DojoError, match="unknown suite"):
        evaluate_suite(None, suite_name="train")
    with pytest.raises(DojoError, match="into the validation suite"):
        evaluate_suite(None, episodes_per_item=400)                 # 6,000 test seeds
