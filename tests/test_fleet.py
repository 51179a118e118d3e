"""The simulated fleet: plan, drivers, camera, env API, generation into a store."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import opendojo  # noqa: F401  (SDL settings)
from opendojo.config import load_config
from opendojo.errors import ConfigError
from opendojo.fleet.camera import Camera
from opendojo.fleet.config import PROFILE_NAMES, SCENARIO_NAMES, FleetConfig


def test_config_defaults_and_errors(tmp_path):
    cfg = FleetConfig()
    assert cfg.clips >= 100 and cfg.workers == 2
    assert cfg.camera() == Camera()   # the fleet films with the camera evaluation drives with
    assert set(cfg.scenario_mix) == set(SCENARIO_NAMES)
    bad = tmp_path / "f.toml"
    bad.write_text('[fleet]\nscenario_mix = {moon = 1.0}\n')
    with pytest.raises(ConfigError, match="scenario"):
        load_config(FleetConfig, bad, section="fleet")
    with pytest.raises(ConfigError):
        load_config(FleetConfig, None, width=95)
    assert load_config(FleetConfig, None, clips=7, seed=None).clips == 7


def test_fleet_plan_is_seeded_and_ids_hide_profiles():
    from opendojo.fleet.generate import plan_clips, plan_fleet
    from opendojo.fleet.scenarios import SCENARIOS

    cfg = FleetConfig(vehicles=20, clips=200, seed=3)
    fleet = plan_fleet(cfg)
    assert fleet == plan_fleet(cfg)
    assert sum(v.driver_profile == "expert" for v in fleet) == 6
    assert {v.driver_profile for v in fleet} == set(PROFILE_NAMES)
    assert len({v.driver_id for v in fleet}) == 20
    for v in fleet:
        assert v.driver_id.startswith("driver-") and v.driver_id[7:].isdigit()
    tasks = plan_clips(cfg, fleet)
    assert tasks == plan_clips(cfg)
    assert tasks != plan_clips(cfg.model_copy(update={"seed": 4}))
    # a later batch of the same fleet: new clips, the same drivers with the same profiles
    later = plan_clips(cfg.model_copy(update={"batch": 1}))
    assert [t.seed for t in later] != [t.seed for t in tasks]
    profile = {v.driver_id: v.driver_profile for v in fleet}
    assert all(profile[t.driver_id] == t.driver_profile for t in later)
    assert {t.scenario for t in tasks} == set(SCENARIO_NAMES)
    assert all(100 <= t.n_frames <= 200 for t in tasks)
    events = [t.rare_event for t in tasks if t.rare_event]
    assert 0 < len(events) < 40
    assert all(t.rare_event in SCENARIOS[t.scenario].rare_events for t in tasks if t.rare_event)
    assert {t.driver_id for t in tasks} <= {v.driver_id for v in fleet}


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_env_camera_and_expert(scenario):
    from opendojo.fleet.camera import render_ego_view
    from opendojo.fleet.drivers import Driver
    from opendojo.fleet.env import ego_state, make_env, step_command

    env = make_env(scenario, seed=11)
    try:
        driver = Driver("expert", seed=0)
        driver.reset(env)
        s0 = ego_state(env)
        frame = render_ego_view(env, env.camera)
        cam = env.camera
        assert frame.shape == (cam.height, cam.width, 3) and frame.dtype == np.uint8
        assert frame.std() > 5  # a road, not a black or flat image
        # The ego (green) is drawn at the camera's ego position, pointing up (taller than wide).
        green = (frame[..., 1] > 150) & (frame[..., 0] < 120) & (frame[..., 2] < 80)
        rows, cols = np.nonzero(green)
        assert len(rows) > 3
        assert abs(rows.mean() - cam.ego_row * cam.height) < 4 and abs(cols.mean() - cam.width / 2) < 4
        assert np.ptp(rows) > np.ptp(cols)
        for _ in range(15):
            (acc, steer), _ = step_command(env, *driver.command(env))
            assert -8 <= acc <= 6 and abs(steer) <= np.pi / 4
        s1 = ego_state(env)
        assert s1["t"] == pytest.approx(s0["t"] + 1.5)
        assert np.hypot(s1["x"] - s0["x"], s1["y"] - s0["y"]) > 3  # it drives
        assert env.route_command in ("left", "straight", "right")
    finally:
        env.close()


def test_route_commands_follow_destinations():
    from opendojo.fleet.env import make_env

    seen = {}
    for seed in range(12):
        env = make_env("intersection", seed=seed)
        seen.setdefault(env.route_command, set()).add(env.final_edge)
        env.close()
    # Each command maps to a single exit; at least two different commands occur.
    assert len(seen) >= 2 and all(len(edges) == 1 for edges in seen.values())


@pytest.mark.parametrize("scenario", ["intersection", "roundabout"])
def test_turn_command_announced_near_the_turn(scenario):
    """The route's turn is the command only from TURN_NOTICE_M along the route before the
    road it leads onto until the ego is on that road; "straight" before and after."""
    from opendojo.clips.schema import COMMAND_INDEX
    from opendojo.fleet.env import TURN_NOTICE_M

    # the first turning episodes in which the expert reaches the turn's road (at the
    # intersection it sometimes waits in the junction for crossing traffic past 25 s)
    drives = (_drive_to_turn(scenario, seed) for seed in range(30))
    turn, log = next((t, log) for t, log in drives if log and log[-1][2])
    straight = COMMAND_INDEX["straight"]
    assert turn != straight
    assert log[0][1] > TURN_NOTICE_M and log[0][0] == straight   # the episode starts far from it
    assert log[-1][0] == straight                                 # on the turn's road: straight
    announced = [k for k, (c, _, _) in enumerate(log) if c == turn]
    assert announced, "the turn was never announced"
    first, last = announced[0], announced[-1]
    assert all(c == turn for c, _, _ in log[first:last + 1])      # once announced, it stays
    assert log[first][1] <= TURN_NOTICE_M < log[first - 1][1]
    assert last == len(log) - 2                                   # until the turn's road


def _drive_to_turn(scenario: str, seed: int) -> tuple[int, list]:
    """(the route's command index, per step (command, distance_to_turn, on the turn's
    road)) of the expert driving `seed` until it reaches the turn's road; no steps for a
    straight route."""
    from opendojo.clips.schema import COMMAND_INDEX
    from opendojo.fleet.drivers import Driver
    from opendojo.fleet.env import distance_to_turn, ego_state, make_env, step_command

    env = make_env(scenario, seed=seed)
    try:
        base = env.unwrapped
        log = []
        if base.route_command == "straight":
            return COMMAND_INDEX["straight"], log
        driver = Driver("expert", seed=0)
        driver.reset(env)
        for _ in range(250):
            log.append((ego_state(env)["command"],
                        distance_to_turn(base.vehicle, base.route_edges, base.final_edge),
                        tuple(base.vehicle.lane_index[:2]) == tuple(base.final_edge)))
            if log[-1][2] or base.vehicle.crashed:
                break
            step_command(env, *driver.command(env))
        return COMMAND_INDEX[base.route_command], log
    finally:
        env.close()


def test_step_command_applies_the_command():
    from opendojo.fleet.env import make_env, step_command

    env = make_env("highway_sparse", seed=1)
    v0, h0 = env.vehicle.speed, env.vehicle.heading
    (acc, steer), _ = step_command(env, 2.0, 0.0)
    assert acc == pytest.approx(2.0) and steer == pytest.approx(0.0)
    assert env.vehicle.speed == pytest.approx(v0 + 0.2, abs=1e-6)
    (_, steer), _ = step_command(env, 0.0, 0.1)
    assert env.vehicle.heading > h0  # positive steering turns clockwise (right) here
    env.close()


def test_a_driver_with_the_cameras_sight_ignores_what_the_frames_do_not_show():
    """With `sight` the camera's reach, a stopped object in the ego's lane beyond it does not
    exist for the driver; within reach it brakes. With the default (unlimited, the IDM's own
    view) it brakes for it at both distances. The fleet config passes its sight on."""
    from highway_env.vehicle.objects import Obstacle

    from opendojo.fleet.drivers import Driver
    from opendojo.fleet.env import make_env

    env = make_env("highway_sparse", seed=3)
    try:
        road, ego = env.unwrapped.road, env.unwrapped.vehicle
        road.vehicles[:] = [ego]                 # nobody else on the road
        reach = env.camera.reach_ahead_m
        assert 60 < reach < 100
        lane = road.network.get_lane(ego.lane_index)
        s_ego = lane.local_coordinates(ego.position)[0]

        def acc(ahead: float | None, sight: float) -> float:
            road.objects[:] = [] if ahead is None else [
                Obstacle(road, lane.position(s_ego + ahead, 0.0), heading=lane.heading_at(s_ego))]
            d = Driver("expert", seed=0, sight=sight)
            d.reset(env)
            return d.command(env)[0]

        free = acc(None, reach)
        assert acc(reach + 20, reach) == pytest.approx(free)      # out of view: not there
        assert acc(reach - 20, reach) < free - 1.0                # in view: brakes
        assert acc(reach + 20, math.inf) < free - 1.0             # the default view: brakes
        assert Driver("expert").sight == math.inf
        with pytest.raises(ValueError, match="sight"):
            Driver("expert", sight=0.0)
    finally:
        env.close()
    with pytest.raises(ConfigError):
        load_config(FleetConfig, None, driver_sight=-1.0)


def test_the_fleet_records_with_its_drivers_sight(monkeypatch):
    import opendojo.fleet.recorder as recorder
    from opendojo.fleet.generate import plan_clips

    seen = []

    class Spy(recorder.Driver):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.append(self.sight)

    monkeypatch.setattr(recorder, "Driver", Spy)
    for sight, want in [(40.0, 40.0), (None, math.inf)]:
        cfg = FleetConfig(clips=1, clip_seconds=(1.0, 1.0), driver_sight=sight)
        clip = recorder.record_clip(plan_clips(cfg)[0], cfg)
        assert seen[-1] == want and clip.truth["driver_sight_m"] == sight


def test_rare_events_and_human_drivers():
    from dataclasses import replace

    from opendojo.fleet.drivers import HUMAN_PROFILES, PROFILES, Driver
    from opendojo.fleet.env import make_env, step_command

    for scenario, event in [("highway_sparse", "stalled_vehicle"), ("highway_dense", "obstacle"),
                            ("merge", "cut_in"), ("intersection", "pedestrian")]:
        env = make_env(scenario, seed=5, rare_event=event)
        assert env.rare_event_truth["kind"] == event
        for profile in HUMAN_PROFILES[:2]:
            d = Driver(profile, seed=1)
            d.reset(env)
            step_command(env, *d.command(env))
        env.close()
    # A delayed driver repeats its first command until the delay has passed; pedals and
    # wheel each lag by their own delay.
    env = make_env("highway_sparse", seed=2)
    d = Driver(replace(PROFILES["distracted"], steering_noise=0.0, acceleration_noise=0.0),
               seed=0)
    d.reset(env)
    pedals, wheel = (round(x * 10) for x in (d.profile.reaction_delay, d.profile.steering_delay))
    assert pedals > wheel > 0
    wanted = [(-0.5 - 0.1 * k, 0.01 * k) for k in range(12)]
    d._intended = lambda base, ego, dt: wanted[k]
    for k in range(12):
        acc, steer = d.command(env)
        assert acc == pytest.approx(wanted[max(0, k - pedals)][0])
        assert steer == pytest.approx(wanted[max(0, k - wheel)][1])
    env.close()


def test_no_profile_circles_or_leaves_the_highway():
    """Every profile keeps its lane's direction on an empty stretch of highway: the distance
    it drives is its progress along the road (a steering loop 0.6 s late circled at speed)."""
    from opendojo.evaluate.closed_loop import SuiteItem, run_episode
    from opendojo.fleet.drivers import PROFILES, Driver

    for name in PROFILES:
        ep, _ = run_episode(Driver(name, seed=3), name, SuiteItem("highway_sparse", "", 11), 8.0)
        assert ep.off_road_s == 0 and ep.progress_m > 0.98 * ep.distance_m, name


def test_generate_is_reproducible_and_keeps_truth_apart(tmp_path):
    from opendojo.clips.schema import CATALOG_SCHEMA, TELEMETRY_SCHEMA
    from opendojo.clips.store import ClipStore
    from opendojo.errors import StoreError
    from opendojo.fleet.generate import RECORDING_NOTE, generate, recording
    from opendojo.fleet.stats import fleet_stats

    cfg = FleetConfig(clips=3, workers=2, seed=7, clip_seconds=(1.0, 1.5), rare_event_rate=0.5,
                      width=64, height=48)
    a = generate(str(tmp_path / "a"), cfg, progress=False)
    assert a["clips"] == 3 and not a["interrupted"]
    b = generate(str(tmp_path / "b"), cfg.model_copy(update={"workers": 1}), progress=False)
    assert b["clips"] == 3 and not b["interrupted"]
    sa, sb = ClipStore(tmp_path / "a"), ClipStore(tmp_path / "b")
    assert sa.clip_ids() == sb.clip_ids() and len(sa.clip_ids()) == 3
    # Generating again into the same store records nothing: the planned clips are there.
    again = generate(str(tmp_path / "a"), cfg, progress=False)
    assert again["clips"] == 0 and again["generated"] == 0 and again["skipped"] == 3
    cat = sa.catalog()
    assert cat.schema == CATALOG_SCHEMA
    profiles = set(PROFILE_NAMES)
    for row in cat.to_pylist():
        assert row["source"] == "sim" and row["fps"] == 10 and row["seed"] >= 0
        assert not any(p in str(v) for v in row.values() for p in profiles)
        tel = sa.telemetry(row["clip_id"])
        assert tel.schema == TELEMETRY_SCHEMA and tel.num_rows == row["n_frames"]
        assert 10 <= row["n_frames"] <= 15 and (row["width"], row["height"]) == (64, 48)
        frames = sa.read_frames(row["clip_id"])
        assert frames.shape == (row["n_frames"], 48, 64, 3) and frames.mean() > 20
        # the car sends its camera's object mask of the raw frames with the clip
        assert sa.read_objects(row["clip_id"]).shape == frames.shape[:3]
    truth = sa.sim_truth().to_pylist()
    assert {t["clip_id"] for t in truth} == sa.clip_ids() and len(truth) == 3
    assert all(t["driver_profile"] in profiles for t in truth)
    stats = fleet_stats(sa)
    assert stats["clips"] == 3 and sum(stats["scenario"].values()) == 3
    assert sum(stats["sim_truth"]["driver_profile"].values()) == 3
    # A bigger run of the same fleet records only what is missing, committing as it goes.
    more = generate(str(tmp_path / "a"), cfg.model_copy(update={"clips": 5}), progress=False,
                    commit_every=1)
    assert more["generated"] == 2 and more["skipped"] == 3 and len(ClipStore(tmp_path / "a")) == 5
    assert ClipStore(tmp_path / "a").clip_ids() >= sb.clip_ids()
    # The store notes how its clips name the route command; a store whose simulated clips
    # were recorded before that note existed (turns named from the clip's start) is refused.
    note = tmp_path / "a" / RECORDING_NOTE
    assert json.loads(note.read_text()) == recording()
    note.unlink()
    with pytest.raises(StoreError, match="route command"):
        generate(str(tmp_path / "a"), cfg.model_copy(update={"clips": 6}), progress=False)
    assert len(ClipStore(tmp_path / "a")) == 5 and not note.exists()   # nothing added


def test_an_intersection_episode_does_not_change_later_episodes_traffic():
    """highway-env's intersection writes IDM settings on the class; make_env undoes that."""
    from highway_env.vehicle.behavior import IDMVehicle

    from opendojo.fleet.env import make_env

    before = (IDMVehicle.DISTANCE_WANTED, IDMVehicle.COMFORT_ACC_MAX, IDMVehicle.COMFORT_ACC_MIN)
    make_env("intersection", 3).close()
    assert (IDMVehicle.DISTANCE_WANTED, IDMVehicle.COMFORT_ACC_MAX) != before[:2]  # it does leak
    env = make_env("highway_dense", 5)
    assert (IDMVehicle.DISTANCE_WANTED, IDMVehicle.COMFORT_ACC_MAX, IDMVehicle.COMFORT_ACC_MIN) == before
    env.close()
