"""The fleet stage's config: how many clips, from which scenarios, seen by which camera."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from opendojo.config import StageConfig
from opendojo.fleet.camera import Camera

_CAMERA = Camera()  # the defaults below are the camera's own

# Simulator seed ranges, disjoint so that no closed-loop evaluation episode replays the scene
# of a clip that could be trained on:
#   [0, FLEET_SEED_LIMIT)                 the fleet's recorded clips
#   [ONLINE_SEED_BASE, EVAL_SEED_BASE)    online shadow mode and safety-driver episodes
#   [EVAL_SEED_BASE, ...)                 closed-loop evaluation only
FLEET_SEED_LIMIT = 8_000_000
ONLINE_SEED_BASE = FLEET_SEED_LIMIT
EVAL_SEED_BASE = 9_000_000

# Share of episodes that meet a rare event: the recorded fleet's default, and the online
# fleet's (safety driver, shadow mode), which is the same fleet on the same roads.
RARE_EVENT_RATE = 0.08

SCENARIO_NAMES = ("highway_sparse", "highway_dense", "merge", "roundabout", "intersection")
PROFILE_NAMES = ("expert", "aggressive", "timid", "distracted", "tailgater",
                 "erratic_lane_changer")


class FleetConfig(StageConfig):
    """`[fleet]` in a config file; `dojo fleet generate` flags override it."""

    clips: int = Field(100, ge=1, description="clips to generate")
    workers: int = Field(2, ge=1, le=256, description="worker processes")
    seed: int = Field(0, ge=0, description="fleet seed: the same seed gives the same clips")
    batch: int = Field(0, ge=0, description="which batch of clips the same fleet (same cars "
                       "and drivers) drives: each batch is a new set of clips")
    width: int = Field(_CAMERA.width, ge=16, le=1024, description="frame width [px], even")
    height: int = Field(_CAMERA.height, ge=16, le=1024, description="frame height [px], even")
    camera_scaling: float = Field(_CAMERA.scaling, gt=0.1, le=20, description="pixels per metre")
    camera_ego_row: float = Field(_CAMERA.ego_row, gt=0.0, lt=1.0,
                                  description="where the ego sits, fraction of the height from the top")
    fps: float = Field(10.0, description="video frame rate = policy frequency [Hz]")
    clip_seconds: tuple[float, float] = Field((10.0, 20.0), description="clip length range [s]")
    scenario_mix: dict[str, float] = Field(
        default_factory=lambda: {"highway_sparse": 0.2, "highway_dense": 0.2, "merge": 0.2,
                                 "roundabout": 0.2, "intersection": 0.2},
        description="relative weight of each scenario")
    rare_event_rate: float = Field(RARE_EVENT_RATE, ge=0.0, le=1.0,
                                   description="share of clips with a rare event")
    vehicles: int = Field(20, ge=1, description="cars in the fleet, one fixed driver each")
    expert_share: float = Field(0.3, ge=0.0, le=1.0, description="share of expert drivers")
    driver_sight: float | None = Field(
        None, gt=0, description="metres ahead within which the drivers notice cars and "
        "objects (unset: any distance, highway-env's view; the default camera shows "
        f"{_CAMERA.reach_ahead_m:.1f} m ahead)")

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even (H.264 needs even frame sizes)")
        return v

    @field_validator("fps")
    @classmethod
    def _fps(cls, v: float) -> float:
        if v != 10.0:
            raise ValueError("only 10 fps is supported (one frame per policy step)")
        return v

    @field_validator("scenario_mix")
    @classmethod
    def _mix(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(mix) - set(SCENARIO_NAMES))
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {list(SCENARIO_NAMES)}")
        if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return mix

    @model_validator(mode="after")
    def _clip_range(self) -> "FleetConfig":
        lo, hi = self.clip_seconds
        if not (1.0 <= lo <= hi <= 600.0):
            raise ValueError("clip_seconds must be [lo, hi] with 1 <= lo <= hi <= 600")
        return self

    def camera(self):
        """The `opendojo.fleet.camera.Camera` these settings describe."""
        from opendojo.fleet.camera import Camera

        return Camera(width=self.width, height=self.height, scaling=self.camera_scaling,
                      ego_row=self.camera_ego_row)
