"""Range checks on command-line flags, the same in every `dojo` command: a value out of
range is refused with one line and exit 1 (a `ConfigError`), before anything is written.
Each check is written so that NaN fails it too."""

from __future__ import annotations

import math

from opendojo.errors import ConfigError


def at_least(flag: str, value: int, least: int = 1) -> None:
    """A count below `least` (0 where 0 means "none" or "all")."""
    if not value >= least:
        raise ConfigError(f"{flag} must be at least {least}, not {value}")


def share(flag: str, value: float, most: float = 1.0) -> None:
    """A share outside 0..most."""
    if not 0.0 <= value <= most:
        raise ConfigError(f"{flag} must be between 0 and {most:g}, not {value:g}")


def positive(flag: str, value: float, most: float = math.inf, zero_ok: bool = False) -> None:
    """A quantity that is not positive (or 0 with `zero_ok`) and finite, or above `most`."""
    if not (0.0 <= value if zero_ok else 0.0 < value) or not value < math.inf:
        raise ConfigError(f"{flag} must be {'0 or more' if zero_ok else 'positive'} and finite, "
                          f"not {value:g}")
    if value > most:
        raise ConfigError(f"{flag} {value:g}: at most {most:,g}")
