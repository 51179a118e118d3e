"""Simulator environments for the fleet and for closed-loop evaluation.

`make_env(scenario, seed, config)` builds a highway-env environment for a named scenario
(`opendojo.fleet.scenarios`) whose ego vehicle is driven by a continuous command: an
acceleration in m/s^2 and a front-wheel steering angle in rad. `step_command(env, acc,
steer)` applies one such command for one policy step (1/10 s); `ego_state(env)` reads the
ego's state; `render_ego_view(env, camera)` (opendojo.fleet.camera) gives the camera frame.

The ego is an `EgoVehicle`: physically a plain kinematic car that does exactly what it is
told, but it carries highway-env's road-following state (route, target lane) so that the
fleet's drivers (`opendojo.fleet.drivers`) can plan with IDM/MOBIL logic, so that
highway-env plans its route to the destination it draws, and so that other cars and the
intersection's right-of-way rules treat it like any other controlled car.

Units and frame: highway-env's world frame, x east, y down the screen, heading clockwise
from +x (positive steering turns right). Telemetry is recorded in this frame.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import highway_env  # noqa: F401  (registers the highway-env environments)
import numpy as np
from highway_env import utils
from highway_env.envs.common.action import ContinuousAction
from highway_env.envs.common.observation import observation_factory
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from opendojo.clips.schema import COMMAND_INDEX
from opendojo.fleet.camera import Camera
from opendojo.fleet.scenarios import inject_rare_event, scenario as get_scenario


class EgoVehicle(IDMVehicle):
    """The ego car: applies the continuous command it is given, nothing of its own.

    Inherits IDMVehicle only for its road-following state and helpers (`route`,
    `target_lane_index`, `follow_road`, `steering_control`, `plan_route_to`).
    """

    color = (50, 200, 0)  # drawn green (highway-env's ego colour), other cars blue

    def act(self, action: dict | str | None = None) -> None:
        # The road calls act() with no action every simulation step: keep the last command.
        if isinstance(action, dict):
            Vehicle.act(self, action)

    def randomize_behavior(self) -> None:  # nothing to randomize: drivers decide
        pass


class CommandAction(ContinuousAction):
    """highway-env's ContinuousAction whose controlled vehicle is an `EgoVehicle`."""

    @property
    def vehicle_class(self):
        return EgoVehicle

    def to_action(self, acceleration: float, steering: float) -> np.ndarray:
        """The normalised [-1, 1] action that applies (acceleration, steering) in SI units."""
        a = utils.lmap(acceleration, self.acceleration_range, [-1, 1])
        s = utils.lmap(steering, self.steering_range, [-1, 1])
        return np.clip(np.array([a, s], dtype=np.float64), -1.0, 1.0)

    def from_action(self, action: np.ndarray) -> tuple[float, float]:
        """(acceleration, steering) in SI units that a normalised action applies."""
        a = np.clip(action, -1, 1)
        return (float(utils.lmap(a[0], [-1, 1], self.acceleration_range)),
                float(utils.lmap(a[1], [-1, 1], self.steering_range)))


_DRIVEN: dict[type, type] = {}


def driven_env_class(base: type) -> type:
    """A subclass of highway-env env class `base` whose ego obeys `CommandAction`.

    After the base class resets the scene, it routes the ego (to one of the config's
    `ego_destinations`, drawn from the env's generator, when given), sets the ego's desired
    speed to its lane's speed limit, works out the route command, and injects the config's
    `rare_event`.
    """
    if base in _DRIVEN:
        return _DRIVEN[base]

    class Driven(base):
        route_command: str = "straight"
        final_edge: tuple | None = None
        route_edges: tuple = ()
        turn_announced: bool = False
        rare_event_truth: dict = {}

        def define_spaces(self) -> None:
            self.observation_type = observation_factory(self, self.config["observation"])
            self.action_type = CommandAction(self, **self.config["action"])
            self.observation_space = self.observation_type.space()
            self.action_space = self.action_type.space()

        def _reward(self, action) -> float:
            return 0.0  # the fleet records driving, it does not train on rewards

        def _info(self, obs, action=None) -> dict:
            return {"speed": self.vehicle.speed, "crashed": self.vehicle.crashed}

        def _reset(self) -> None:
            super()._reset()
            ego = self.vehicle
            start = self.config.get("ego_longitudinal")
            if start is not None:
                _move_back(self.road, ego, float(start))
            destinations = self.config.get("ego_destinations")
            if destinations:
                ego.plan_route_to(destinations[int(self.np_random.integers(len(destinations)))])
            ego.target_speed = ego.lane.speed_limit or ego.speed
            self.route_command, self.final_edge = route_command_of(ego)
            # the whole route: drivers that follow it (IDM's follow_road) pop its edges
            self.route_edges = tuple(tuple(r[:2]) for r in (ego.route or []))
            self.turn_announced = False
            self.rare_event_truth = inject_rare_event(self, self.config.get("rare_event"))
            self._navigate()

        def step(self, action):
            out = super().step(action)
            self._navigate()
            return out

        def _navigate(self) -> None:
            """The navigator announces the route's turn once the ego is `TURN_NOTICE_M`
            along its route from the road the turn leads onto (`distance_to_turn`); off the
            route's roads the distance is unknown and nothing changes."""
            if self.final_edge is not None and not self.turn_announced:
                d = distance_to_turn(self.vehicle, self.route_edges, self.final_edge)
                self.turn_announced = d <= TURN_NOTICE_M

    Driven.__name__ = Driven.__qualname__ = f"Driven{base.__name__}"
    _DRIVEN[base] = Driven
    return Driven


def _move_back(road, ego, longitudinal: float) -> None:
    """Put the ego `longitudinal` m along its lane (a longer run-up to the junction)."""
    lane = ego.lane
    ego.position = lane.position(longitudinal, 0.0)
    ego.heading = lane.heading_at(longitudinal)
    ego.on_state_update()
    road.vehicles = [v for v in road.vehicles
                     if v is ego or np.linalg.norm(v.position - ego.position) > 15.0]


def route_command_of(ego) -> tuple[str, tuple | None]:
    """('left' | 'straight' | 'right', last edge of the route) from the ego's planned route.

    The turn is the change of heading between the ego's lane and the route's last lane;
    in highway-env's frame a clockwise change (positive) is a right turn. A route of one
    edge (highways) is 'straight'.
    """
    route = getattr(ego, "route", None) or []
    if len(route) < 2:
        return "straight", None
    network = ego.road.network
    first = ego.lane
    last_edge = route[-1][:2]
    last = network.get_lane((*last_edge, 0))
    turn = _wrap(last.heading_at(last.length) - first.heading_at(first.length))
    if turn > math.radians(45):
        return "right", last_edge
    if turn < -math.radians(45):
        return "left", last_edge
    return "straight", last_edge


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def env_config(scenario: str, camera: Camera | None = None,
               rare_event: str | None = None, overrides: dict | None = None) -> dict:
    """The full highway-env config for `scenario`, the camera's render settings and an event."""
    cfg = get_scenario(scenario).config()
    cfg.update((camera or Camera()).env_config())
    cfg["rare_event"] = rare_event
    if overrides:
        cfg.update(overrides)
    return cfg


def make_env(scenario: str, seed: int, config: Any = None, rare_event: str | None = None,
             camera: Camera | None = None, overrides: dict | None = None):
    """Build and reset the env of a named scenario with `env.reset(seed=seed)`.

    scenario: a key of `opendojo.fleet.scenarios.SCENARIOS`.
    config: a `FleetConfig` (its camera settings are used) or None for defaults.
    rare_event: one of the scenario's rare events, or None.
    camera: overrides the config's camera. overrides: raw highway-env config keys.

    Returns the (unwrapped) highway-env env, rendering "rgb_array". Its ego is
    `env.vehicle`; `env.route_command` is the route ('left'/'straight'/'right'),
    `env.rare_event_truth` what the rare event injected. Step it with `step_command`.
    """
    if camera is None:
        camera = config.camera() if config is not None and hasattr(config, "camera") else Camera()
    spec = get_scenario(scenario)
    base = gym.envs.registration.load_env_creator(gym.spec(spec.env_id).entry_point)
    env = driven_env_class(base)(config=env_config(scenario, camera, rare_event, overrides),
                                 render_mode="rgb_array")
    env.scenario_name = scenario
    env.camera = camera
    _restore_class_defaults(env.unwrapped.config.get("other_vehicles_type"))
    env.reset(seed=int(seed))
    return env


# highway-env's IntersectionEnv._make_vehicles writes these on the other vehicles' class
# itself (IDMVehicle), so without a reset every later episode in the process, of any
# scenario, drives among different traffic: a clip's content (and a baseline's score)
# would depend on which episodes its process ran before.
_CLASS_SETTINGS = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")
_MISSING = object()
_class_defaults: dict[type, dict[str, Any]] = {}


def _restore_class_defaults(vehicle_type) -> None:
    """Put the class-level settings of the other vehicles' class back to the values they had
    when `make_env` first saw the class (before any reset of its, so before any intersection)."""
    from highway_env.vehicle.behavior import IDMVehicle

    classes = {IDMVehicle}
    if isinstance(vehicle_type, str):
        classes.add(utils.class_from_path(vehicle_type))
    for cls in classes:
        saved = _class_defaults.setdefault(cls, {k: cls.__dict__.get(k, _MISSING) for k in _CLASS_SETTINGS})
        for k, v in saved.items():
            if v is _MISSING:
                if k in cls.__dict__:
                    delattr(cls, k)
            else:
                setattr(cls, k, v)


def step_command(env, acceleration: float, steering: float):
    """Apply (acceleration m/s^2, steering rad) to the ego for one policy step.

    Returns (acceleration, steering) as applied (clipped to the action ranges) and the
    env's (terminated, truncated, info). Crashes and arrivals do not stop the simulation:
    the caller decides when an episode ends.
    """
    base = env.unwrapped
    action = base.action_type.to_action(acceleration, steering)
    _, _, terminated, truncated, info = base.step(action)
    applied = base.action_type.from_action(action)
    return applied, (terminated, truncated, info)


# How far ahead the navigator announces the route's turn: the turn is the command from
# this many metres (along the route) before the road it leads onto, "straight" (follow the
# road) before, as CARLA's navigator gives its junction commands near the junction only.
# 60 m spans the junction (14-22 m) and a 3 s label horizon at the approach's 10-12 m/s, so
# a sample told "straight" seldom has the turn in its label.
TURN_NOTICE_M = 60.0


def distance_to_turn(ego, route_edges: tuple, final_edge: tuple) -> float:
    """Metres along `route_edges` (the ego's route as planned, (from, to) per road) from the
    ego to the start of the route's last road `final_edge`; 0 on or past it; inf where the
    ego is on no road of its route (off the road, or in a junction lane it does not take)."""
    here = tuple(ego.lane_index[:2]) if ego.lane_index is not None else None
    final = tuple(final_edge)
    if here not in route_edges or final not in route_edges:
        return math.inf
    i, j = route_edges.index(here), route_edges.index(final)
    if i >= j:
        return 0.0
    network = ego.road.network
    dist = ego.lane.length - ego.lane.local_coordinates(ego.position)[0]
    return float(dist + sum(network.get_lane((*e, 0)).length for e in route_edges[i + 1:j]))


def ego_state(env) -> dict:
    """The ego's state now: time s, x, y m, heading rad, speed m/s, lane, collision, command.

    `command` is the route command index now (opendojo.clips.schema.COMMAND_INDEX): the
    route's turn from when the navigator announces it (`TURN_NOTICE_M` before the road the
    turn leads onto) until the ego reaches that road, "straight" before and after.
    """
    base = env.unwrapped
    ego = base.vehicle
    command = base.route_command if base.turn_announced else "straight"
    if base.final_edge is not None and tuple(ego.lane_index[:2]) == tuple(base.final_edge):
        command = "straight"
    return {
        "t": float(base.time),
        "x": float(ego.position[0]), "y": float(ego.position[1]),
        "heading": float(_wrap(ego.heading)), "speed": float(ego.speed),
        "lane": int(ego.lane_index[2]) if ego.lane_index is not None else -1,
        "collision": bool(ego.crashed),
        "command": COMMAND_INDEX[command],
    }


def end_of_road(env) -> bool:
    """True when the ego has driven past the end of a road that leads nowhere."""
    base = env.unwrapped
    ego = base.vehicle
    lane = ego.lane
    if lane.local_coordinates(ego.position)[0] < lane.length:
        return False
    return not base.road.network.graph.get(ego.lane_index[1])


def others_state(env, radius: float = 80.0) -> list[list[float]]:
    """Other road users within `radius` m of the ego: [x, y, heading, speed] each (sim truth)."""
    base = env.unwrapped
    ego = base.vehicle
    out = []
    for v in base.road.vehicles:
        if v is ego or np.linalg.norm(v.position - ego.position) > radius:
            continue
        out.append([round(float(v.position[0]), 2), round(float(v.position[1]), 2),
                    round(float(v.heading), 3), round(float(v.speed), 2)])
    for o in base.road.objects:
        if np.linalg.norm(o.position - ego.position) <= radius:
            out.append([round(float(o.position[0]), 2), round(float(o.position[1]), 2),
                        round(float(o.heading), 3), 0.0])
    return out
