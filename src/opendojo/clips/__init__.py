"""Clips: the schema, the store (video + telemetry files, Lance catalog) and importers."""

import os

# Where commands look for the clip store unless told otherwise.
DEFAULT_STORE = os.environ.get("DOJO_STORE", "data/fleet")
