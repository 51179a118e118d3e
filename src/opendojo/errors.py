"""User-facing errors.

Every mistake a user can make (a bad file, a bad flag, a missing clip) is raised as a
`DojoError` subclass carrying one clear line. The CLI prints that line and exits non-zero
without a traceback; library callers can catch the class they care about.
"""


class DojoError(Exception):
    """Base class of every error that is the user's to fix."""


class ConfigError(DojoError):
    """A config file or flag is invalid."""


class StoreError(DojoError):
    """The clip store or catalog cannot be opened or read."""


class FilterError(StoreError):
    """A catalog filter (`--filter`, a SQL predicate) does not parse or cannot be applied."""

    def __init__(self, filter: str, reason: str):
        super().__init__(f"--filter {filter!r}: {reason}")
        self.filter = filter
        self.reason = reason


class ClipNotFound(StoreError):
    """A clip id is not in the catalog."""


class IngestError(DojoError):
    """An input file cannot be ingested (corrupt video, bad telemetry ...)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class DatasetError(DojoError):
    """A dataset version is missing, empty or unlabelled."""


class CheckpointError(DojoError):
    """A checkpoint is missing or does not match the model config."""
