"""The ego-centric camera: a bird's-eye view that turns with the car, the car facing up.

highway-env renders a top view of the road centred on the ego vehicle, north-up. The camera
renders a square window around the ego just large enough for any rotation, then samples it
(bilinear) on a grid rotated by the ego's heading, so that in the output image the ego
drives towards the top edge, sits at `ego_row` of the height, and the scale is `scaling`
pixels per metre. The same function serves the fleet (recording clips) and closed-loop
evaluation (feeding the policy network), so training and testing see the same view.

highway-env's world frame has x to the east and y pointing *down* the screen; a heading is
measured from +x towards +y (clockwise on screen). In the output image "up" is the ego's
heading and "right" is the driver's right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Car fills lose colour to H.264's chroma subsampling: at the fleet camera's 1.5 px/m a
# car's 2 px wide fill keeps a saturation of 30-90; road, markings and outlines stay under 25.
MIN_OBJECT_SATURATION = 30


def object_pixels(frames: np.ndarray) -> np.ndarray:
    """The camera's object mask: the pixels of road users and objects (saturated colours) in
    its frames, uint8 [N, H, W, 3] -> bool [N, H, W]. The car computes it from its own raw
    frames (closed loop's object channel, and the mask a fleet car sends with a clip)."""
    from opendojo.engine.quality import object_mask

    return object_mask(frames, MIN_OBJECT_SATURATION)


@dataclass(frozen=True)
class Camera:
    """Output size (pixels), scale (pixels per metre) and where the ego sits (row fraction)."""

    # How far ahead it sees decides what a driving network can react to. 96 px at ego_row 0.75
    # showed 48 m, so braking appeared in the labels before its cause appeared in the frames,
    # and networks trained on it drove into stalled cars at full speed. 128 px at ego_row 0.875
    # shows 75 m ahead and 11 m behind; the fleet's drivers (IDM) still start braking for a
    # stopped car ~130 m ahead at 25 m/s unless `FleetConfig.driver_sight` limits what they
    # see. 1.5 px/m is the smallest scale at which highway-env still fills cars with their
    # colour (at 1 px/m they are grey outlines), which the video-based headway of
    # `opendojo.engine.quality` relies on.
    width: int = 128
    height: int = 128
    scaling: float = 1.5
    ego_row: float = 0.875

    @property
    def reach_ahead_m(self) -> float:
        """Metres of road the image shows ahead of the ego."""
        return self.ego_row * self.height / self.scaling

    @property
    def render_size(self) -> int:
        """Side of the square window highway-env renders: covers every rotation of the crop."""
        cx = self.width / 2
        ry = self.ego_row * self.height
        reach = math.hypot(cx, max(ry, self.height - ry))
        return int(2 * math.ceil(reach) + 4)

    def env_config(self) -> dict:
        """The highway-env render settings for this camera (merge into the env config)."""
        s = self.render_size
        return {"screen_width": s, "screen_height": s, "scaling": self.scaling,
                "centering_position": [0.5, 0.5]}

    @cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        # u: pixels to the driver's right of the ego; v: pixels ahead of the ego.
        cols = np.arange(self.width, dtype=np.float64) + 0.5 - self.width / 2
        rows = self.ego_row * self.height - (np.arange(self.height, dtype=np.float64) + 0.5)
        u, v = np.meshgrid(cols, rows)
        return u, v

    def view(self, top_view: np.ndarray, heading: float) -> np.ndarray:
        """Rotate and crop a north-up render centred on the ego into the ego-up image."""
        s = top_view.shape[0]
        u, v = self._grid
        c, sn = math.cos(heading), math.sin(heading)
        centre = s / 2.0
        # Screen position (col, row) of a point v ahead and u to the right of the ego.
        col = centre + v * c - u * sn - 0.5
        row = centre + v * sn + u * c - 0.5
        return _bilinear(top_view, row, col)


def _bilinear(img: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    r0 = np.floor(row)
    c0 = np.floor(col)
    fr = (row - r0)[..., None]
    fc = (col - c0)[..., None]
    r0 = np.clip(r0.astype(np.intp), 0, h - 1)
    c0 = np.clip(c0.astype(np.intp), 0, w - 1)
    r1 = np.minimum(r0 + 1, h - 1)
    c1 = np.minimum(c0 + 1, w - 1)
    def f(r, c):
        return img[r, c].astype(np.float32)

    top = f(r0, c0) * (1 - fc) + f(r0, c1) * fc
    bottom = f(r1, c0) * (1 - fc) + f(r1, c1) * fc
    out = top * (1 - fr) + bottom * fr
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# Side of a road tile in pixels: the region whose lane markings are laid out in one go.
ROAD_TILE_PX = 384


class _Region:
    """Stands in for a `WorldSurface` while highway-env lays out a region's lane markings.

    `LaneGraphics.display` reads only the surface's origin, scaling and size (to choose which
    stripes to draw) and hands the stripes to `draw_stripes`, which `_StripeRecorder` overrides.
    """

    def __init__(self, origin: np.ndarray, scaling: float, size: int) -> None:
        self.origin = origin
        self.scaling = scaling
        self.size = size
        self.segments: list[tuple[float, float, float, float, int]] = []

    def get_width(self) -> int:
        return self.size

    def get_height(self) -> int:
        return self.size

    def pix(self, length: float) -> int:
        return int(length * self.scaling)


def _stripe_recorder():
    from highway_env.road.graphics import LaneGraphics

    class _StripeRecorder(LaneGraphics):
        """highway-env's lane drawing, whose `draw_stripes` keeps world coordinates.

        The same stripes as `LaneGraphics.draw_stripes` (same clipping, same filter, same
        width), recorded as (x1, y1, x2, y2, width) in metres instead of drawn in pixels.
        """

        @classmethod
        def draw_stripes(cls, lane, surface, starts, ends, lats) -> None:
            starts = np.clip(starts, 0, lane.length)
            ends = np.clip(ends, 0, lane.length)
            width = max(surface.pix(cls.STRIPE_WIDTH), 1)
            for k, _ in enumerate(starts):
                if abs(starts[k] - ends[k]) > 0.5 * cls.STRIPE_LENGTH:
                    p = lane.position(starts[k], lats[k])
                    q = lane.position(ends[k], lats[k])
                    surface.segments.append((float(p[0]), float(p[1]),
                                             float(q[0]), float(q[1]), width))

    return _StripeRecorder


class RoadTiles:
    """The lane markings of one `Road`, laid out once by highway-env, drawn each frame.

    Why not a cache of pixels: highway-env places every point at `int((x - origin) *
    scaling)` from a window origin that moves by fractions of a pixel each frame, so a
    pre-drawn road blitted at a whole-pixel offset puts lane lines one pixel off wherever its
    sub-pixel phase and the frame's differ (on the merge scenario 4.5% of a frame's pixels).
    What costs time in `RoadGraphics.display` is not the drawing but laying out the stripes
    (a Python call to `lane.position` per stripe end, for every lane, every frame). So this
    cache keeps the layout: for world-aligned tiles of `tile` pixels, highway-env's own
    `LaneGraphics.display` lays out every lane's stripes over the tile (a region larger than
    the window, so every stripe a frame draws is in the tiles it overlaps), kept in world
    metres. A frame maps them to pixels with the window's origin exactly as `pos2pix` does,
    and draws the ones that reach the window with `pygame.draw.line`: the same lines on the
    same pixels as `RoadGraphics.display`, up to float ties: highway-env's stripe positions
    (`s0 + k * spacing`) differ in the last bit with the window's `s0`, so a stripe end that
    falls exactly on a pixel boundary can round to either neighbour (measured: 1 pixel in
    1,410 frames), as it does between two frames of the full redraw.
    """

    def __init__(self, road, scaling: float, tile: int = ROAD_TILE_PX) -> None:
        self.road = road
        self.network = road.network
        self.scaling = float(scaling)
        self.tile = int(tile)
        self.tiles: dict[tuple[int, int], np.ndarray] = {}
        self._joined: tuple[tuple, np.ndarray] | None = None

    def matches(self, road, scaling: float) -> bool:
        return (self.road is road and self.network is road.network
                and self.scaling == float(scaling))

    def _tile(self, i: int, j: int) -> np.ndarray:
        segs = self.tiles.get((i, j))
        if segs is None:
            recorder = _stripe_recorder()
            origin = np.array([i, j], dtype=np.float64) * (self.tile / self.scaling)
            region = _Region(origin, self.scaling, self.tile)
            graph = self.network.graph
            for _from in graph:
                for _to in graph[_from]:
                    for lane in graph[_from][_to]:
                        recorder.display(lane, region)
            segs = np.array(region.segments, dtype=np.float64).reshape(-1, 5)
            self.tiles[(i, j)] = segs
        return segs

    def segments(self, surface) -> np.ndarray:
        """[n, 5] (x1, y1, x2, y2, width) of the stripes of the tiles under `surface`."""
        s, t = self.scaling, self.tile
        ox, oy = float(surface.origin[0]) * s, float(surface.origin[1]) * s
        w, h = surface.get_size()
        keys = tuple((i, j)
                     for j in range(math.floor(oy / t), math.floor((oy + h) / t) + 1)
                     for i in range(math.floor(ox / t), math.floor((ox + w) / t) + 1))
        if self._joined is None or self._joined[0] != keys:
            segs = np.concatenate([self._tile(i, j) for i, j in keys])
            # A stripe laid out by two tiles is drawn once (the tiles' float sums may differ in
            # the last bit; keep one of them as laid out).
            if len(segs):
                _, first = np.unique(np.round(segs, 6), axis=0, return_index=True)
                segs = segs[np.sort(first)]
            self._joined = (keys, segs)
        return self._joined[1]

    def draw(self, surface) -> None:
        """`RoadGraphics.display(road, surface)`: the ground, then the lane markings."""
        import pygame

        surface.fill(surface.GREY)
        segs = self.segments(surface)
        if not len(segs):
            return
        s = surface.scaling
        ox, oy = surface.origin[0], surface.origin[1]
        # WorldSurface.pix: int(length * scaling), length = coordinate - origin.
        x1 = np.trunc((segs[:, 0] - ox) * s)
        y1 = np.trunc((segs[:, 1] - oy) * s)
        x2 = np.trunc((segs[:, 2] - ox) * s)
        y2 = np.trunc((segs[:, 3] - oy) * s)
        wd = segs[:, 4]
        w, h = surface.get_size()
        visible = ((np.maximum(x1, x2) >= -wd - 1) & (np.minimum(x1, x2) <= w + wd)
                   & (np.maximum(y1, y2) >= -wd - 1) & (np.minimum(y1, y2) <= h + wd))
        line, white = pygame.draw.line, surface.WHITE
        for a, b, c, d, e in zip(x1[visible].astype(int).tolist(),
                                 y1[visible].astype(int).tolist(),
                                 x2[visible].astype(int).tolist(),
                                 y2[visible].astype(int).tolist(),
                                 wd[visible].astype(int).tolist()):
            line(surface, white, (a, b), (c, d), e)


def _road_tiles(base, surface) -> RoadTiles:
    cache = getattr(base, "_opendojo_road_tiles", None)
    if cache is None or not cache.matches(base.road, surface.scaling):
        cache = RoadTiles(base.road, surface.scaling)
        base._opendojo_road_tiles = cache
    return cache


def _draw_window(base, viewer) -> None:
    """`EnvViewer.display`, its road drawn from the layout `RoadTiles` keeps.

    Same window, same drawing order and the same highway-env calls for everything that moves:
    trajectory (if any), road objects, agent display (if any), traffic, observation overlay.
    """
    from highway_env.envs.common.graphics import EnvViewer, ObservationGraphics
    from highway_env.road.graphics import RoadGraphics
    from highway_env.vehicle.graphics import VehicleGraphics

    surface = viewer.sim_surface
    surface.move_display_window_to(viewer.window_position())
    _road_tiles(base, surface).draw(surface)
    if viewer.vehicle_trajectory:
        VehicleGraphics.display_trajectory(viewer.vehicle_trajectory, surface,
                                           offscreen=viewer.offscreen)
    RoadGraphics.display_road_objects(base.road, surface, offscreen=viewer.offscreen)
    if EnvViewer.agent_display:
        EnvViewer.agent_display(viewer.agent_surface, surface)
    RoadGraphics.display_traffic(base.road, surface,
                                 simulation_frequency=base.config["simulation_frequency"],
                                 offscreen=viewer.offscreen)
    ObservationGraphics.display(base.observation_type, surface)


def render_ego_view(env, camera: Camera, cached_road: bool = True) -> np.ndarray:
    """Render `env` (made with `camera.env_config()`, render_mode="rgb_array") ego-up.

    Returns uint8 RGB [camera.height, camera.width, 3]. Rotation is done on the rendered
    pygame surface (nearest pixel, in C); `Camera.view` does the same on an array.

    cached_road: draw the road from the lane markings laid out once per region and episode
    (`RoadTiles`); False: highway-env's `EnvViewer.display` lays them out again every frame
    (the reference the cached path is tested against, tests/test_fleet_render.py).
    """
    import pygame

    base = env.unwrapped
    if base.viewer is None:
        base.render()
    viewer = base.viewer
    if cached_road and viewer.enabled:
        _draw_window(base, viewer)
    else:
        viewer.display()
    surface = viewer.sim_surface
    # pygame rotates counter-clockwise; the heading is clockwise from +x; "up" is -90 deg.
    angle = math.degrees(float(base.vehicle.heading)) + 90.0
    rotated = pygame.transform.rotate(surface, angle)
    cx, cy = rotated.get_width() / 2.0, rotated.get_height() / 2.0
    left = int(round(cx - camera.width / 2.0))
    top = int(round(cy - camera.ego_row * camera.height))
    crop = rotated.subsurface((left, top, camera.width, camera.height))
    return np.ascontiguousarray(np.moveaxis(pygame.surfarray.array3d(crop), 0, 1))
