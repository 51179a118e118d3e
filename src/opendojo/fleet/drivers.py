"""Drivers: who is at the wheel of a simulated car, as data plus a policy.

A `DriverProfile` is a set of parameters of highway-env's IDM (longitudinal) and MOBIL
(lane change) models plus human imperfections: reaction delay, steering and throttle
noise, random lane changes. `PROFILES` holds the expert (highway-env's IDM + MOBIL
defaults) and five kinds of mediocre human.

A `Driver` turns a profile into a policy on an env made by `opendojo.fleet.env.make_env`:
`driver.command(env)` returns the (acceleration m/s^2, steering rad) it wants to apply now;
the fleet applies it with `step_command`, so every command is recorded. Drivers work as
expert/human policies for closed-loop evaluation too (e.g. the expert as safety driver).

highway-env's IDM and MOBIL see the next car in a lane at any distance: a driver brakes for a
stopped car ~130 m ahead at 25 m/s, where the 75 m camera shows an empty lane. `Driver.sight`
(the fleet's `driver_sight`) limits that, so that what a driver reacts to is in the recorded
frames; it is off by default, because at the demo's scale it did not make a better network
(docs/training.md, "Drivers who see only what the camera sees").
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, replace

import numpy as np
from highway_env import utils

from opendojo.fleet.scenarios import ACCELERATION_RANGE, STEERING_RANGE


@dataclass(frozen=True)
class DriverProfile:
    """How a driver drives. Defaults are highway-env's IDM/MOBIL parameters (the expert)."""

    name: str = "expert"
    speed_factor: float = 1.0        # desired speed / the lane's speed limit
    time_gap: float = 1.5            # IDM desired time headway T [s]
    min_gap: float = 10.0            # IDM jam distance s0, centre to centre [m]
    max_acc: float = 3.0             # IDM maximum acceleration a [m/s^2]
    comfort_dec: float = 5.0         # IDM comfortable deceleration b [m/s^2]
    delta: float = 4.0               # IDM acceleration exponent
    politeness: float = 0.0          # MOBIL p
    lane_change_gain: float = 0.2    # MOBIL threshold [m/s^2]
    lane_change_max_braking: float = 2.0  # MOBIL safety: braking imposed on the new follower
    lane_change_period: float = 1.0  # [s] between lane-change decisions
    random_lane_change: float = 0.0  # probability per decision of a lane change MOBIL did not ask for
    reaction_delay: float = 0.0      # [s] throttle and brake reach the car this late
    steering_delay: float = 0.0      # [s] steering reaches the car this late
    steering_noise: float = 0.0      # [rad] std of a slowly wandering steering error
    acceleration_noise: float = 0.0  # [m/s^2] std of throttle jitter
    steering_gain: float = 1.0       # multiplies the lane-keeping steering

    def to_dict(self) -> dict:
        return asdict(self)


EXPERT = DriverProfile("expert")
PROFILES: dict[str, DriverProfile] = {p.name: p for p in [
    EXPERT,
    replace(EXPERT, name="aggressive", speed_factor=1.15, time_gap=0.8, min_gap=8.0,
            max_acc=5.0, comfort_dec=7.0, lane_change_gain=0.05,
            lane_change_max_braking=4.5, lane_change_period=0.6, steering_gain=1.2),
    replace(EXPERT, name="timid", speed_factor=0.75, time_gap=2.6, min_gap=14.0,
            max_acc=1.5, comfort_dec=3.0, politeness=0.6, lane_change_gain=1.0,
            lane_change_max_braking=1.0, lane_change_period=2.0, steering_gain=0.8),
    # Late on the pedals, not on the wheel: with lane keeping 0.2 s late or more,
    # highway-env's steering law weaves off the road, and at 0.6 s the car circles at speed.
    replace(EXPERT, name="distracted", speed_factor=0.95, reaction_delay=0.6,
            steering_delay=0.1, steering_noise=0.03, acceleration_noise=0.6,
            lane_change_period=1.5),
    replace(EXPERT, name="tailgater", speed_factor=1.05, time_gap=0.45, min_gap=6.5,
            max_acc=4.0, comfort_dec=6.0),
    replace(EXPERT, name="erratic_lane_changer", speed_factor=1.05, lane_change_gain=-0.3,
            lane_change_max_braking=4.0, lane_change_period=0.5, random_lane_change=0.25,
            steering_gain=1.3),
]}
HUMAN_PROFILES = tuple(n for n in PROFILES if n != "expert")


class Driver:
    """A policy for the ego of a `make_env` env, driving as `profile`.

    Call `reset(env)` at the start of each episode and `command(env)` once per policy step.
    `seed` fixes its own randomness (noise, random lane changes).

    `sight`: how many metres ahead the driver notices the next car or object in a lane
    (default: any distance, highway-env's view; the camera's reach is
    `Camera.reach_ahead_m`). Cars behind (the mirrors) are seen at any distance.
    """

    def __init__(self, profile: DriverProfile | str = EXPERT, seed: int = 0,
                 sight: float = math.inf):
        if not sight > 0:
            raise ValueError(f"sight must be > 0 metres, got {sight}")
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.sight = float(sight)
        self.rng = np.random.default_rng(seed)
        self._queue: deque = deque()
        self._timer = 0.0
        self._steer_err = 0.0

    def reset(self, env) -> None:
        self._queue.clear()
        self._timer = float(self.rng.uniform(0, self.profile.lane_change_period))
        self._steer_err = 0.0

    # -- the policy --------------------------------------------------------------------------
    def command(self, env) -> tuple[float, float]:
        """(acceleration m/s^2, steering rad) to apply now, within the env's action ranges."""
        base = env.unwrapped
        ego = base.vehicle
        dt = 1.0 / base.config["policy_frequency"]
        p = self.profile
        if ego.crashed:
            return self._limit(ego, -ego.speed / dt, 0.0, dt)
        acc, steer = self._intended(base, ego, dt)
        # Human imperfections: late, noisy hands and feet.
        if p.steering_noise:
            rho = np.exp(-dt / 1.5)
            self._steer_err = rho * self._steer_err + np.sqrt(1 - rho * rho) * \
                p.steering_noise * self.rng.standard_normal()
            steer += self._steer_err
        if p.acceleration_noise:
            acc += p.acceleration_noise * self.rng.standard_normal()
        pedals, wheel = (int(round(d / dt)) for d in (p.reaction_delay, p.steering_delay))
        self._queue.append((acc, steer))
        while len(self._queue) > max(pedals, wheel) + 1:
            self._queue.popleft()
        last = len(self._queue) - 1
        acc, steer = self._queue[max(0, last - pedals)][0], self._queue[max(0, last - wheel)][1]
        return self._limit(ego, acc, steer, dt)

    def _intended(self, base, ego, dt: float) -> tuple[float, float]:
        p = self.profile
        road = base.road
        ego.follow_road()
        self._timer += dt
        if ego.lane_index == ego.target_lane_index and self._timer >= p.lane_change_period:
            self._timer = 0.0
            self._change_lane(road, ego)
        steer = p.steering_gain * ego.steering_control(ego.target_lane_index)
        front, _ = self.neighbours(road, ego, ego.lane_index)
        acc = self.idm(ego, front)
        if ego.lane_index != ego.target_lane_index:
            front, _ = self.neighbours(road, ego, ego.target_lane_index)
            acc = min(acc, self.idm(ego, front))
        return float(acc), float(steer)

    def neighbours(self, road, ego, lane_index) -> tuple:
        """(car or object ahead in `lane_index` within sight, car behind): highway-env's
        `road.neighbour_vehicles`, with what is ahead beyond the driver's sight left out."""
        front, rear = road.neighbour_vehicles(ego, lane_index)
        if front is not None and self.sight < math.inf and \
                ego.lane_distance_to(front, road.network.get_lane(lane_index)) > self.sight:
            front = None
        return front, rear

    def desired_speed(self, ego) -> float:
        limit = ego.lane.speed_limit if ego.lane is not None and ego.lane.speed_limit else 30.0
        return min(getattr(ego, "target_speed", limit), limit) * self.profile.speed_factor

    def idm(self, ego, front, profile: DriverProfile | None = None,
            desired: float | None = None) -> float:
        """IDM acceleration of `ego` behind `front` (None: free road) with a profile's parameters."""
        p = profile or self.profile
        if ego is None:
            return 0.0
        v = max(float(ego.speed), 0.0)
        v0 = self.desired_speed(ego) if desired is None else desired
        acc = p.max_acc * (1 - np.power(v / abs(utils.not_zero(v0)), p.delta))
        if front is not None:
            d = ego.lane_distance_to(front)
            dv = float(np.dot(ego.velocity - front.velocity, ego.direction))
            gap = p.min_gap + v * p.time_gap + v * dv / (2 * np.sqrt(p.max_acc * p.comfort_dec))
            acc -= p.max_acc * np.power(gap / utils.not_zero(d), 2)
        return float(acc)

    def _others_idm(self, vehicle, front) -> float:
        if vehicle is None:
            return 0.0
        return self.idm(vehicle, front, EXPERT, desired=getattr(vehicle, "target_speed", 25.0))

    def _change_lane(self, road, ego) -> None:
        p = self.profile
        if abs(ego.speed) < 1:
            return
        candidates = [li for li in road.network.side_lanes(ego.lane_index)
                      if road.network.get_lane(li).is_reachable_from(ego.position)]
        if not candidates:
            return
        wild = p.random_lane_change > 0 and self.rng.uniform() < p.random_lane_change
        order = self.rng.permutation(len(candidates)) if wild else range(len(candidates))
        for i in order:
            lane_index = candidates[i]
            if self._mobil(road, ego, lane_index, ignore_gain=wild):
                ego.target_lane_index = lane_index
                return

    def _mobil(self, road, ego, lane_index, ignore_gain: bool = False) -> bool:
        """MOBIL with the profile's politeness, threshold and safety limit."""
        p = self.profile
        new_preceding, new_following = self.neighbours(road, ego, lane_index)
        new_following_a = self._others_idm(new_following, new_preceding)
        new_following_pred_a = self._others_idm(new_following, ego)
        if new_following_pred_a < -p.lane_change_max_braking:
            return False
        if new_preceding is not None and ego.lane_distance_to(new_preceding) < 0.6 * p.min_gap:
            return False
        if ignore_gain:
            return True
        old_preceding, old_following = self.neighbours(road, ego, ego.lane_index)
        self_pred_a = self.idm(ego, new_preceding)
        route = getattr(ego, "route", None)
        if route and route[0][2] is not None:
            if np.sign(lane_index[2] - ego.target_lane_index[2]) != \
                    np.sign(route[0][2] - ego.target_lane_index[2]):
                return False
            return self_pred_a >= -p.lane_change_max_braking
        self_a = self.idm(ego, old_preceding)
        old_following_a = self._others_idm(old_following, ego)
        old_following_pred_a = self._others_idm(old_following, old_preceding)
        jerk = self_pred_a - self_a + p.politeness * (
            new_following_pred_a - new_following_a + old_following_pred_a - old_following_a)
        return jerk >= p.lane_change_gain

    @staticmethod
    def _limit(ego, acc: float, steer: float, dt: float) -> tuple[float, float]:
        # Brake to a stop, never into reverse; stay within the action ranges.
        acc = max(float(acc), -max(float(ego.speed), 0.0) / dt)
        acc = float(np.clip(acc, *ACCELERATION_RANGE))
        steer = float(np.clip(steer, *STEERING_RANGE))
        return acc, steer


def make_driver(profile: str, seed: int) -> Driver:
    """A `Driver` for the profile called `profile` (a key of PROFILES)."""
    return Driver(PROFILES[profile], seed)
