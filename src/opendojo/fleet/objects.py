"""Road objects the simulated fleet adds to highway-env's object model.

highway-env knows vehicles (`Vehicle`, a `RoadObject` that moves) and static objects
(`Obstacle`, `Landmark`). A pedestrian is a small, slow road object that walks a straight
line across the road: it is built on `Vehicle` so that the road steps it, detects
collisions with it, and so that the IDM cars (and the ego's drivers) brake for it when it is
in their lane.

highway-env draws every road user as its box with a 1 px black outline. At the fleet
camera's 1.5 px/m a pedestrian's box is 1 px, all outline: one dark pixel, which the
camera's object mask (saturated colours, `opendojo.fleet.camera.object_pixels`) does not
find and which the network's 64 px input averages away, so no camera-driven driver could
see a pedestrian. `VehicleGraphics.display` is therefore wrapped (once, at import) to draw a
pedestrian as a filled square of its colour, `MIN_DRAWN_PX` pixels a side at the least; what
it collides with is its 0.9 m box as before.
"""

from __future__ import annotations

import numpy as np
from highway_env.vehicle.graphics import VehicleGraphics
from highway_env.vehicle.kinematics import Vehicle

PEDESTRIAN_COLOR = (255, 200, 0)
MIN_DRAWN_PX = 2   # a pedestrian is drawn at least this many pixels a side (1.3 m at 1.5 px/m)


class Pedestrian(Vehicle):
    """A person crossing the road at constant walking speed along a fixed heading.

    They ignore the road's lanes (no steering, no acceleration) and stop when hit.
    """

    LENGTH = 0.9  # [m] its box for collisions (drawn: `draw_pedestrian`)
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


def draw_pedestrian(pedestrian: Pedestrian, surface) -> None:
    """A pedestrian on a highway-env `WorldSurface`: a filled square of its colour centred on
    it, its box's size in pixels or `MIN_DRAWN_PX`, whichever is larger, with no outline."""
    import pygame

    if not surface.is_visible(pedestrian.position):
        return
    side = max(surface.pix(max(pedestrian.LENGTH, pedestrian.WIDTH)), MIN_DRAWN_PX)
    x, y = surface.pos2pix(pedestrian.position[0], pedestrian.position[1])
    pygame.draw.rect(surface, pedestrian.color, (x - side // 2, y - side // 2, side, side))


def _install_pedestrian_drawing() -> None:
    """Wrap `VehicleGraphics.display`, which every highway-env render path calls for each
    road user, so that pedestrians are drawn by `draw_pedestrian`."""
    display = VehicleGraphics.display
    if getattr(display, "draws_pedestrians", False):
        return

    def wrapped(cls, vehicle, surface, *args, **kwargs):
        if isinstance(vehicle, Pedestrian):
            draw_pedestrian(vehicle, surface)
        else:
            display(vehicle, surface, *args, **kwargs)

    wrapped.draws_pedestrians = True
    VehicleGraphics.display = classmethod(wrapped)


_install_pedestrian_drawing()
