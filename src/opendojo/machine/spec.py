"""Hardware as data: load the spec files and derive each level's aggregate figures.

A spec file (YAML or TOML) maps a level name (``d1``, ``tile``, ``h100``, ``dgx_h100`` ...) to

    title: str
    family: dojo | gpu | host
    parts: {lower_level: count, ...}        # optional
    figures: {name: {value, unit, source, weak?, additive?}, ...}
    published: {name: {value, unit, source, weak?}, ...}   # only to check derivations

Additive figures (the names in ``ADDITIVE``, unless ``additive: false``) are summed over the
parts: a tile's FLOPS is 25 x a D1's, which is 354 x a node's. Published figures are never used
in place of a derived one; they are kept beside it so the derivation can be checked.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from opendojo.errors import DojoError

SPEC_DIR = Path(__file__).parent / "specs"
ADDITIVE = ("bf16_flops", "fp32_flops", "sram_bytes", "sram_bandwidth", "hbm_bytes",
            "hbm_bandwidth", "nodes", "power_w", "host_power_w", "ethernet_bandwidth")


class MachineError(DojoError):
    """An unknown machine name, a bad spec file or an impossible machine request."""


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str = ""
    source: str = ""
    weak: str = ""
    additive: bool = True

    @classmethod
    def parse(cls, name: str, raw, where: str) -> "Figure":
        if isinstance(raw, (int, float)):
            raw = {"value": raw}
        if not isinstance(raw, dict) or "value" not in raw:
            raise MachineError(f"{where}: figure {name!r} needs a value")
        try:
            value = float(raw["value"])
        except (TypeError, ValueError):
            raise MachineError(f"{where}: figure {name!r} is not a number: {raw['value']!r}") from None
        return cls(value=value, unit=str(raw.get("unit", "")), source=str(raw.get("source", "")),
                   weak=str(raw.get("weak", "")),
                   additive=bool(raw.get("additive", name in ADDITIVE)) and name in ADDITIVE)


@dataclass(frozen=True)
class Level:
    name: str
    title: str
    family: str
    parts: dict[str, int] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    published: dict[str, Figure] = field(default_factory=dict)
    file: str = ""


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise MachineError(f"{path}: cannot read spec file ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise MachineError(f"{path}: a spec file maps level names to levels")
    return data


def parse_levels(data: dict, file: str = "") -> dict[str, Level]:
    levels = {}
    for name, raw in data.items():
        where = f"{file}:{name}"
        if not isinstance(raw, dict):
            raise MachineError(f"{where}: a level is a mapping")
        parts = {str(k): int(v) for k, v in (raw.get("parts") or {}).items()}
        figs = {k: Figure.parse(k, v, where) for k, v in (raw.get("figures") or {}).items()}
        pub = {k: Figure.parse(k, v, where) for k, v in (raw.get("published") or {}).items()}
        levels[name] = Level(name, str(raw.get("title", name)), str(raw.get("family", "")),
                             parts, figs, pub, file)
    return levels


def host_spec_path() -> Path:
    """Where `dojo machine calibrate` writes the measured host spec (a user cache, not the repo)."""
    env = os.environ.get("OPENDOJO_HOST_SPEC")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "opendojo" / "machine" / "host.yaml"


class Catalog:
    """All levels from the packaged spec files plus the calibrated host, with derivations."""

    def __init__(self, levels: dict[str, Level]):
        self.levels = levels
        for lv in levels.values():
            for p in lv.parts:
                if p not in levels:
                    raise MachineError(f"{lv.file}:{lv.name}: unknown part {p!r}")
        self._derived: dict[str, dict[str, float]] = {}

    @classmethod
    def load(cls, extra: list[Path] | None = None, host: Path | None = None) -> "Catalog":
        levels: dict[str, Level] = {}
        files = sorted(SPEC_DIR.glob("*.yaml")) + sorted(SPEC_DIR.glob("*.toml")) + list(extra or [])
        for f in files:
            levels.update(parse_levels(_read(f), str(f.name)))
        host = host or host_spec_path()
        if host.exists():
            levels.update(parse_levels(_read(host), str(host)))
        return cls(levels)

    def names(self) -> list[str]:
        return list(self.levels)

    def get(self, name: str) -> Level:
        key = name.lower().replace("-", "_")
        if key not in self.levels:
            hint = " (run `dojo machine calibrate` first)" if key == "host" else ""
            raise MachineError(f"unknown machine {name!r}{hint}; known: {', '.join(self.levels)}")
        return self.levels[key]

    def derived(self, name: str, _stack: tuple = ()) -> dict[str, float]:
        """Every figure of a level: its own figures plus additive ones summed over parts."""
        lv = self.get(name)
        if lv.name in self._derived:
            return self._derived[lv.name]
        if lv.name in _stack:
            raise MachineError(f"spec cycle: {' -> '.join(_stack + (lv.name,))}")
        out: dict[str, float] = {}
        for part, count in lv.parts.items():
            for k, v in self.derived(part, _stack + (lv.name,)).items():
                if k in ADDITIVE and self._is_additive(part, k):
                    out[k] = out.get(k, 0.0) + count * v
        for k, f in lv.figures.items():
            out[k] = out.get(k, 0.0) + f.value if f.additive else f.value
        self._derived[lv.name] = out
        return out

    def _is_additive(self, name: str, key: str) -> bool:
        lv = self.levels[name]
        if key in lv.figures:
            return lv.figures[key].additive
        return all(self._is_additive(p, key) for p in lv.parts if key in self.derived(p))

    def count(self, name: str, part: str) -> int:
        """How many `part` a level holds, through the whole hierarchy (0 if none)."""
        lv = self.get(name)
        if lv.name == part:
            return 1
        return sum(n * self.count(p, part) for p, n in lv.parts.items())

    def power_w(self, name: str) -> float:
        d = self.derived(name)
        return d.get("power_w", 0.0) + d.get("host_power_w", 0.0) or d.get("tdp_w", 0.0)

    def figure(self, name: str, key: str) -> Figure | None:
        """The Figure a derived value comes from, for sources (own figure, else the first part's)."""
        lv = self.get(name)
        if key in lv.figures:
            return lv.figures[key]
        for p in lv.parts:
            f = self.figure(p, key)
            if f is not None:
                return f
        return None

    def tree(self, name: str) -> list[tuple[int, str, int]]:
        """(depth, level name, count in its parent) for the whole hierarchy under a level."""
        rows = []

        def walk(n: str, depth: int, count: int) -> None:
            rows.append((depth, n, count))
            for p, c in self.get(n).parts.items():
                walk(p, depth + 1, c)

        walk(self.get(name).name, 0, 1)
        return rows

    def checks(self, name: str) -> list[tuple[str, float, float, float]]:
        """(figure, derived, published, relative error) for each published figure of a level."""
        d = self.derived(name)
        out = []
        lv = self.get(name)
        for k, f in lv.published.items():
            if k == "power_w":
                dv = self.power_w(name)
            else:
                dv = d.get(k, math.nan)
            out.append((k, dv, f.value, (dv - f.value) / f.value))
        return out


@lru_cache(maxsize=1)
def _default_catalog_cached(host_mtime: float) -> Catalog:
    return Catalog.load()


def catalog() -> Catalog:
    p = host_spec_path()
    return _default_catalog_cached(p.stat().st_mtime if p.exists() else 0.0)


def units_for_flops(target_flops: float, name: str, cat: Catalog | None = None,
                    use_published: bool = True) -> int:
    """How many of a level reach a peak BF16 FLOPS target (the seed articles' arithmetic:
    100e18 / 362e12 = 276,243 D1). With use_published, the level's quoted figure is used when
    it has one (the articles divide by the quoted 362 TFLOPS); otherwise the derived one."""
    cat = cat or catalog()
    lv = cat.get(name)
    per = (lv.published.get("bf16_flops").value if use_published and "bf16_flops" in lv.published
           else cat.derived(name).get("bf16_flops", 0.0))
    if per <= 0:
        raise MachineError(f"{name} has no BF16 FLOPS figure")
    return int(round(target_flops / per))
