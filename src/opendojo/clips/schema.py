"""The clip schema: what one clip of driving is, whatever produced it.

A clip is a video (H.264 MP4, `fps` frames per second) plus one telemetry row per frame,
plus catalog metadata. Simulated clips and imported dashcam clips share this schema.

Telemetry (one row per video frame, Parquet):

| column       | type    | unit / meaning                                                   |
|--------------|---------|------------------------------------------------------------------|
| t            | float64 | seconds since the clip's first frame; strictly increasing        |
| x, y         | float64 | metres, position in the clip's local metric frame (x east/forward, y left or road-lateral as the source defines) |
| heading      | float64 | radians, yaw in the same frame                                   |
| speed        | float64 | m/s, >= 0                                                        |
| acceleration | float64 | m/s^2, longitudinal (the driver's command where known)           |
| steering     | float64 | radians, front-wheel angle (the driver's command where known)    |
| lane         | int32   | lane index, -1 if unknown                                        |
| collision    | bool    | the ego vehicle is in a collision at this frame                  |
| command      | int8    | route command given to the driver: 0 left, 1 straight, 2 right; -1 unknown |

Only these columns leave a car. Anything the simulator knows beyond them (the driver's
profile, rare events, other vehicles) is *sim truth*: it goes to a separate table that only
evaluation reads (see `opendojo.clips.store.ClipStore.put_sim_truth`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

ROUTE_COMMANDS = ("left", "straight", "right")
COMMAND_INDEX = {name: i for i, name in enumerate(ROUTE_COMMANDS)}

TELEMETRY_SCHEMA = pa.schema([
    ("t", pa.float64()),
    ("x", pa.float64()),
    ("y", pa.float64()),
    ("heading", pa.float64()),
    ("speed", pa.float64()),
    ("acceleration", pa.float64()),
    ("steering", pa.float64()),
    ("lane", pa.int32()),
    ("collision", pa.bool_()),
    ("command", pa.int8()),
])
TELEMETRY_COLUMNS = tuple(TELEMETRY_SCHEMA.names)
# Columns an importer must provide; the rest default (lane -1, collision False, command -1).
REQUIRED_TELEMETRY = ("t", "x", "y", "heading", "speed")

CATALOG_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("source", pa.string()),        # "sim", "mp4", "comma2k19"
    ("vehicle_id", pa.string()),
    ("driver_id", pa.string()),
    ("scenario", pa.string()),      # "" for real video
    ("route", pa.string()),         # clip-level route command given to the driver
    ("seed", pa.int64()),           # simulator seed, -1 for real video
    ("n_frames", pa.int32()),
    ("fps", pa.float32()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("duration_s", pa.float32()),
    ("distance_m", pa.float32()),
    ("video_path", pa.string()),    # relative to the store root
    ("telemetry_path", pa.string()),
    ("origin", pa.string()),        # the file(s) the clip came from, for imports
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("code_version", pa.string()),
])


@dataclass(frozen=True)
class ClipMeta:
    """What a producer (fleet worker, importer) knows about a clip besides frames and telemetry."""

    source: str
    vehicle_id: str
    driver_id: str
    scenario: str = ""
    route: str = "straight"
    seed: int = -1
    fps: float = 10.0
    origin: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Clip:
    """A catalogued clip: its catalog row, with lazy access to telemetry and frames."""

    row: dict
    store: "object" = field(repr=False)

    @property
    def clip_id(self) -> str:
        return self.row["clip_id"]

    def telemetry(self) -> pa.Table:
        return self.store.telemetry(self.clip_id)

    def frames(self, indices=None) -> np.ndarray:
        return self.store.read_frames(self.clip_id, indices)


def telemetry_table(columns: dict) -> pa.Table:
    """Build a telemetry table in the canonical schema from a dict of arrays.

    Missing optional columns get their defaults; the order and types are normalised.
    """
    n = len(columns["t"])
    defaults = {
        "acceleration": np.full(n, np.nan), "steering": np.full(n, np.nan),
        "lane": np.full(n, -1, np.int32), "collision": np.zeros(n, bool),
        "command": np.full(n, -1, np.int8),
    }
    arrays = []
    for f in TELEMETRY_SCHEMA:
        values = columns.get(f.name, defaults.get(f.name))
        if values is None:
            raise KeyError(f.name)
        arrays.append(pa.array(np.asarray(values), type=f.type))
    return pa.Table.from_arrays(arrays, schema=TELEMETRY_SCHEMA)
