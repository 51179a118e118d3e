"""Importers of real dashcam video into the clip schema.

Each importer turns one input (a file pair, a segment directory) into an `ImportedClip`:
frames at the store's frame rate and size, one telemetry row per frame, and `ClipMeta`.
`opendojo.clips.ingest` finds inputs, calls the importers, stores the results and
quarantines what fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from opendojo.clips.schema import ClipMeta


@dataclass
class ImportedClip:
    frames: np.ndarray      # uint8 [T, H, W, 3]
    telemetry: pa.Table     # TELEMETRY_SCHEMA, one row per frame
    meta: ClipMeta
