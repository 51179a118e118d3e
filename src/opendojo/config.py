"""Stage configs: one pydantic model per stage, filled from TOML files and CLI flags.

A config file is a TOML table per stage (``[fleet]``, ``[train]`` ...). `load_config`
merges, in order: the model's defaults, the file's table, then explicit overrides (the
CLI's flags). Unknown keys and unknown tables are errors, so a typo never silently does
nothing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from opendojo.errors import ConfigError

# The tables a config file may hold, one per stage that reads one (`load_config`'s section).
SECTIONS = ("demo", "fleet", "loop", "train")


class StageConfig(BaseModel):
    """Base of every stage config: strict about unknown keys, frozen once made."""

    model_config = ConfigDict(extra="forbid", frozen=True)


C = TypeVar("C", bound=StageConfig)


def load_config(cls: type[C], path: str | Path | None = None, section: str | None = None,
                **overrides: Any) -> C:
    """Build `cls` from defaults, then the TOML file's `[section]`, then `overrides`.

    Overrides whose value is None are ignored (an unset CLI flag keeps the file's value).
    """
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML ({e})") from None
        stray = [k for k in data if k not in SECTIONS]
        if stray:
            what = f"table [{stray[0]}]" if isinstance(data[stray[0]], dict) else f"key {stray[0]!r} outside any table"
            raise ConfigError(f"{p}: unknown {what} (a config file holds the tables "
                              f"{', '.join(f'[{t}]' for t in SECTIONS)})")
        if section is not None:
            data = data.get(section, {})
        values.update(data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or cls.__name__
        raise ConfigError(f"{cls.__name__}: {where}: {first['msg']}") from None
