"""Road objects the simulated fleet adds to highway-env's object model.

highway-env knows vehicles (`Vehicle`, a `RoadObject` that moves) and static objects
(`Obstacle`, `Landmark`). A pedestrian is a small, slow road object that walks a straight
line across the road: it is built on `Vehicle` so that the road steps it, detects
collisions with it, and so that the IDM cars (and the ego's drivers) brake for it when it is
in their lane.
"""

from __future__ import annotations

import numpy as np
from highway_env.vehicle.kinematics import Vehicle

PEDESTRIAN_COLOR = (255, 200, 0)


class Pedestrian(Vehicle):
    """A person crossing the road at constant walking speed along a fixed heading.

    They ignore the road's lanes (no steering, no acceleration) and stop when hit.
    """

    LENGTH = 0.9  # [m] drawn a little larger than a body so that it shows at ~1.5 px/m
    WIDTH = 0.9
    WALKING_SPEED = 1.4  # [m/s]

    def __init__(self, road, position, heading: float = 0.0, speed: float = WALKING_SPEED):
        super().__init__(road, position, heading=heading, speed=speed)
        self.color = PEDESTRIAN_COLOR
        self.route = []  # some envs drop road users without a route

    def act(self, action: dict | str | None = None) -> None:
        """Pedestrians take no commands: they keep walking straight."""
        self.action = {"steering": 0.0, "acceleration": 0.0}

    def step(self, dt: float) -> None:
        if self.crashed:
            self.speed = 0.0
        self.position = self.position + self.speed * dt * np.array(
            [np.cos(self.heading), np.sin(self.heading)])
        self.on_state_update()

    def on_state_update(self) -> None:
        if self.road:
            self.lane_index = self.road.network.get_closest_lane_index(self.position, self.heading)
            self.lane = self.road.network.get_lane(self.lane_index)

    def to_truth(self) -> dict:
        return {"kind": "pedestrian", "x": float(self.position[0]), "y": float(self.position[1]),
                "heading": float(self.heading), "speed": float(self.speed)}
