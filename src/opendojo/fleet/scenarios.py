"""Scenarios: where a simulated clip is driven, and the rare events that can be mixed in.

A scenario is a highway-env environment id plus config overrides, following highway-env's
own pattern (`default_config()` merged with the user's config): `scenario_config(name)`
returns the merged overrides that `opendojo.fleet.env.make_env` hands to the environment.

Rare events are injected right after the environment's reset, from the environment's own
random generator (so the episode seed fixes them too): `inject_rare_event(env, name)`
places the object or vehicle and returns what it did, for the sim-truth table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import Obstacle

from opendojo.fleet.objects import Pedestrian

# Common to every scenario: 10 Hz decisions (one per video frame), a modest simulation
# frequency, continuous (acceleration, steering) commands, and no time limit of the
# environment's own (the recorder decides how long a clip is).
ACCELERATION_RANGE = (-8.0, 6.0)   # [m/s^2]
STEERING_RANGE = (-np.pi / 4, np.pi / 4)  # [rad]

COMMON_CONFIG: dict = {
    # The camera is the observation; highway-env's own (Kinematics, via pandas) would cost
    # more than the simulation itself, so ask for a trivial one.
    "observation": {"type": "AttributesObservation", "attributes": ["time"]},
    "action": {"type": "ContinuousAction",
               "acceleration_range": list(ACCELERATION_RANGE),
               "steering_range": list(STEERING_RANGE)},
    "policy_frequency": 10,
    "simulation_frequency": 10,
    "duration": 10_000,
    "offroad_terminal": False,
    "show_trajectories": False,
    "render_agent": True,
    "ego_destinations": None,   # opendojo: exits the ego may be routed to (None: env's own)
    "rare_event": None,         # opendojo: one of RARE_EVENTS, injected after reset
    "ego_longitudinal": None,   # opendojo: move the ego back to this position on its lane [m]
}


@dataclass(frozen=True)
class Scenario:
    """A named driving situation: a highway-env env id, overrides, and its rare events."""

    name: str
    env_id: str
    overrides: dict = field(default_factory=dict)
    rare_events: tuple[str, ...] = ()
    description: str = ""

    def config(self) -> dict:
        """COMMON_CONFIG updated with this scenario's overrides (nested dicts merged)."""
        return _merge(COMMON_CONFIG, self.overrides)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("highway_sparse", "highway-v0",
             {"lanes_count": 3, "vehicles_count": 8, "vehicles_density": 0.6, "ego_spacing": 2},
             ("stalled_vehicle", "obstacle", "cut_in"), "3-lane highway, light traffic"),
    Scenario("highway_dense", "highway-v0",
             {"lanes_count": 4, "vehicles_count": 16, "vehicles_density": 1.6, "ego_spacing": 1.5},
             ("stalled_vehicle", "obstacle", "cut_in"), "4-lane highway, dense traffic"),
    Scenario("merge", "merge-v0", {}, ("stalled_vehicle", "cut_in"),
             "2-lane highway with an on-ramp merging into it"),
    Scenario("roundabout", "roundabout-v0",
             {"ego_destinations": ["exr", "nxr", "wxr"], "ego_longitudinal": 20.0},
             ("stalled_vehicle",),
             "two-lane roundabout; the ego enters from the south and takes one of 3 exits"),
    Scenario("intersection", "intersection-v0",
             {"destination": None, "initial_vehicle_count": 8, "spawn_probability": 0.08,
              "simulation_frequency": 10, "ego_longitudinal": 25.0},
             ("pedestrian",), "4-way intersection; the ego turns left, right or goes straight"),
]}

RARE_EVENTS = ("stalled_vehicle", "obstacle", "cut_in", "pedestrian")


def scenario(name: str) -> Scenario:
    """The scenario called `name` (KeyError listing the known names otherwise)."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def _merge(base: dict, over: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


# -- rare events -------------------------------------------------------------------------

def point_ahead(vehicle, distance: float):
    """(lane_index, longitudinal) `distance` metres ahead of `vehicle` along its lanes/route."""
    network = vehicle.road.network
    lane_index = vehicle.lane_index
    lane = network.get_lane(lane_index)
    s = lane.local_coordinates(vehicle.position)[0] + distance
    route = list(getattr(vehicle, "route", None) or [])
    for _ in range(10):
        if s <= lane.length:
            break
        nxt = network.next_lane(lane_index, route=route, position=lane.position(lane.length, 0))
        if nxt == lane_index or nxt[:2] == lane_index[:2]:
            break
        s -= lane.length
        lane_index, lane = nxt, network.get_lane(nxt)
    return lane_index, float(min(s, lane.length))


def _stalled_vehicle(env, rng) -> dict:
    ego = env.vehicle
    lane_index, s = point_ahead(ego, float(rng.uniform(55, 100)))
    v = Vehicle.make_on_lane(env.road, lane_index, s, speed=0.0)
    v.route = []
    env.road.vehicles.append(v)
    return {"kind": "stalled_vehicle", "lane": list(map(str, lane_index)), "s": s,
            "x": float(v.position[0]), "y": float(v.position[1])}


def _obstacle(env, rng) -> dict:
    ego = env.vehicle
    lane_index, s = point_ahead(ego, float(rng.uniform(70, 130)))
    lane = env.road.network.get_lane(lane_index)
    obstacle = Obstacle(env.road, lane.position(s, 0.0), heading=lane.heading_at(s))
    env.road.objects.append(obstacle)
    return {"kind": "obstacle", "lane": list(map(str, lane_index)), "s": s,
            "x": float(obstacle.position[0]), "y": float(obstacle.position[1])}


def _cut_in(env, rng) -> dict:
    ego = env.vehicle
    sides = env.road.network.side_lanes(ego.lane_index)
    if not sides:
        return {"kind": "cut_in", "skipped": "no adjacent lane"}
    side = sides[int(rng.integers(len(sides)))]
    lane = env.road.network.get_lane(side)
    s_ego = lane.local_coordinates(ego.position)[0]
    v = CutInVehicle.make_on_lane(env.road, side, s_ego - float(rng.uniform(12, 20)),
                                  speed=ego.speed + 6.0)
    v.target_speed = ego.speed + 8.0
    v.victim = ego
    v.cut_margin = float(rng.uniform(3.0, 8.0))
    # Make room: drop cars that would overlap the newcomer.
    env.road.vehicles = [o for o in env.road.vehicles
                         if o is ego or np.linalg.norm(o.position - v.position) > 8]
    env.road.vehicles.append(v)
    return {"kind": "cut_in", "lane": list(map(str, side)), "margin_m": v.cut_margin}


def _pedestrian(env, rng) -> dict:
    ego = env.vehicle
    lane = ego.lane
    s_ego = lane.local_coordinates(ego.position)[0]
    s_cross = max(s_ego + 15.0, lane.length - 3.0)           # a crosswalk before the junction
    d = s_cross - s_ego
    walk = float(rng.uniform(1.1, 1.8))
    offset = float(np.clip(walk * d / max(ego.speed, 3.0) * rng.uniform(0.6, 1.1), 3.0, 9.0))
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    start = lane.position(s_cross, side * offset)
    heading = lane.heading_at(s_cross) + (-side) * np.pi / 2  # walk towards the lane centre
    ped = Pedestrian(env.road, start, heading=float(heading), speed=walk)
    env.road.vehicles.append(ped)
    return {"kind": "pedestrian", "x": float(start[0]), "y": float(start[1]),
            "heading": float(heading), "speed": walk, "distance_ahead_m": float(d)}


RARE_EVENT_INJECTORS = {
    "stalled_vehicle": _stalled_vehicle,
    "obstacle": _obstacle,
    "cut_in": _cut_in,
    "pedestrian": _pedestrian,
}


def inject_rare_event(env, name: str | None) -> dict:
    """Add rare event `name` to a freshly reset env (unwrapped); returns its description."""
    if not name:
        return {}
    if name not in RARE_EVENT_INJECTORS:
        raise KeyError(f"unknown rare event {name!r}; known: {', '.join(RARE_EVENT_INJECTORS)}")
    return RARE_EVENT_INJECTORS[name](env, env.np_random)


class CutInVehicle(IDMVehicle):
    """An aggressive car that overtakes the ego and cuts into its lane just ahead of it."""

    TIME_WANTED = 0.4
    DISTANCE_WANTED = 6.0
    COMFORT_ACC_MAX = 5.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enable_lane_change = False
        self.victim = None
        self.cut_margin = 5.0
        self.has_cut_in = False

    def act(self, action=None):
        if not self.has_cut_in and self.victim is not None and not self.crashed:
            ahead = self.lane.local_coordinates(self.position)[0] - \
                self.lane.local_coordinates(self.victim.position)[0]
            if ahead > self.cut_margin:
                self.target_lane_index = self.victim.lane_index
                self.has_cut_in = True
        super().act(action)
