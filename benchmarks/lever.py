"""Does a change to the demo's training help? Seeds of two configs trained and driven, paired.

The method behind the lever table of `docs/driving.md` (run by hand until now): a base training config
(default: the demo's, `runs/demo/train/config.toml`, which `make demo` writes) and a variant
(the base with `--set KEY=VALUE` changes, or another `--variant` file) are each trained on
SEEDS training seeds on the base's store and dataset. Each network drives both held-out
suites (test and validation, EPISODES_PER_ITEM episodes per scenario and rare event; 30
episodes each at the demo's 2) with `opendojo.evaluate.closed_loop.evaluate_suite`. The
variant's driving score is then paired with the base's episode by episode (same training
seed, suite and simulator seed); the mean difference gets a 95% t interval over the
training seeds (each seed's mean paired difference one value), and, beside it, the
episode-paired bootstrap CI, which holds the trained networks fixed and so is too narrow
for a question about a config: two trainings of one config differ by about as much as two
configs do.

On 2 cores one seed of one arm takes about 4 minutes (training ~190 s at 3,200 steps, the
two suites ~60 s), so a five-seed comparison about 40 minutes, or 20 when the base arm is
cached. Noise to expect: a five-seed mean moves by about +-0.025 between configs that do
not differ; the interval over seeds is about that wide.

Arms are cached under DATA_DIR/lever/<key>/seed<S>/, the key a hash of the training config
(the seed aside) and of the opendojo sources imported, so the base arm is trained once for
every variant measured against it, and any change to the code or the config makes a new
arm. (The store is keyed by its path: a store regenerated in place needs another
`--data-dir`.) With no change given, the base arm alone is trained and driven and its key printed. A
change of code is measured in two runs: at the old code, `lever.py` alone (the base arm);
at the new code, `lever.py --against KEY`, which drives the same config and pairs it with
that cached arm.

    .venv/bin/python benchmarks/lever.py --set synthetic_share=0.25 > lever.json
    .venv/bin/python benchmarks/lever.py --set model.width=32 --seeds 0 1 2
    .venv/bin/python benchmarks/lever.py --variant my.toml
    .venv/bin/python benchmarks/lever.py --against 3f2a9c0b1d4e   # this code against an arm
    .venv/bin/python benchmarks/lever.py --smoke --set mirror_share=0   # 20 steps, 1 seed, 1 episode

Prints one JSON object on stdout (progress on stderr): per arm the per-seed scores, the
mean score, collisions and collisions per km; the difference variant - base with its
interval over seeds and its episode-paired CI; the stopped things (obstacle and
stalled-vehicle episodes: score, and how many were passed, i.e. ended without a collision
past 0.6 of the route); and the mean score and collisions per suite item.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import tomllib
from pathlib import Path

import _pool
from _pool import STOPPED_THINGS, log, read_json, write_json

# -- settings ---------------------------------------------------------------------------------
BASE = "runs/demo/train/config.toml"   # the demo's training config (`make demo` writes it)
SEEDS = (0, 1, 2, 3, 4)                # training seeds of each arm
SUITES = ("test", "validation")        # both held-out suites, paired per suite
EPISODES_PER_ITEM = 2                  # the demo's
WORKERS = 2                            # closed-loop worker processes
EPISODE_S = 15.0                       # the demo's episode length [s]
PASSED_COMPLETION = 0.6                # a stopped thing is passed: no collision, this much route
DATA_DIR = "bench-data"

SMOKE = {"steps": 20, "seeds": [0], "episodes_per_item": 1}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default=BASE, help="training config (TOML with a [train] table)")
    ap.add_argument("--variant", help="the variant's training config (default: the base with --set)")
    ap.add_argument("--set", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                    help="a change of the base's [train] table, value in TOML "
                         "(e.g. synthetic_share=0.25, model.width=32, command=hindsight)")
    ap.add_argument("--against", metavar="KEY",
                    help="pair with this cached arm (a key printed by an earlier run) instead "
                         "of training the base here")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--steps", type=int, help="training steps of both arms (default: the configs')")
    ap.add_argument("--episodes-per-item", type=int, default=EPISODES_PER_ITEM)
    ap.add_argument("--workers", type=int, default=WORKERS)
    ap.add_argument("--threads", type=int, help="torch threads while training (default: torch's, one "
                    "per core; 1 beside another job on 2 cores, where 2 threads spin)")
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--smoke", action="store_true", help="20 steps, seed 0, 1 episode per item")
    a = ap.parse_args(argv)
    if a.smoke:
        for k, v in SMOKE.items():
            setattr(a, k, v)
        a.data_dir = str(Path(a.data_dir) / "smoke")
    if a.variant and a.changes:
        ap.error("give --variant or --set, not both")
    return a


# -- configs and arms -------------------------------------------------------------------------
def parse_change(text: str) -> tuple[list[str], object]:
    """`KEY=VALUE` with a dotted key and a TOML value (a bare word is taken as a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"--set {text!r}: expected KEY=VALUE")
    try:
        v = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        v = value.strip()
    return key.strip().split("."), v


def load_train_config(path: str | Path, changes: list[str] = ()):
    """The [train] table of `path` with `changes` applied, validated as a TrainConfig."""
    from opendojo.config import load_config
    from opendojo.errors import ConfigError
    from opendojo.train.config import TrainConfig

    try:
        cfg = load_config(TrainConfig, path, section="train")
        values = cfg.model_dump()
        for text in changes:
            keys, v = parse_change(text)
            *parents, last = keys
            d = values
            for k in parents:
                if not isinstance(d.get(k), dict):
                    raise SystemExit(f"--set {text!r}: {k!r} is not a table of the config")
                d = d[k]
            if last not in d:
                raise SystemExit(f"--set {text!r}: the config has no {'.'.join(keys)!r}")
            d[last] = v
        return TrainConfig(**values)
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    except ValueError as e:   # pydantic's ValidationError
        raise SystemExit(f"{path} with {list(changes)}: {e}") from None


def source_digest() -> str:
    """A hash of the opendojo package's Python sources as imported (a patched tree on
    PYTHONPATH hashes differently from the checkout)."""
    import opendojo

    h = hashlib.sha256()
    root = Path(opendojo.__file__).parent
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def arm_key(cfg, sources: str) -> str:
    """What makes an arm: its training config but the seed and runtime settings, and the code."""
    from opendojo.train.trainer import RUNTIME_SETTINGS

    d = cfg.model_dump(exclude={"seed", *RUNTIME_SETTINGS})
    blob = json.dumps({"train": d, "sources": sources}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def config_diff(a: dict, b: dict, prefix: str = "") -> dict:
    """{dotted key: [a's value, b's value]} where the two configs differ."""
    out = {}
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.update(config_diff(va, vb, f"{prefix}{k}."))
        elif va != vb:
            out[f"{prefix}{k}"] = [va, vb]
    return out


def ensure_arm(name: str, cfg, key: str, a, sources: str) -> None:
    """Train (or resume, or reuse) and drive every seed of one arm, caching each step."""
    import torch

    from opendojo import code_version
    from opendojo.clips.store import ClipStore
    from opendojo.evaluate.closed_loop import evaluate_suite
    from opendojo.train.checkpoint import resolve
    from opendojo.train.trainer import train

    root = arm_dir(a, key)
    if not (root / "arm.json").exists():
        write_json(root / "arm.json", {"train": cfg.model_dump(exclude={"seed"}),
                                       "sources": sources, "code_version": code_version()})
    store = ClipStore(cfg.store)
    for seed in a.seeds:
        run = root / f"seed{seed}"
        if not (run / "lever-train.json").exists():
            resume = (run / "config.json").exists()
            log(f"{name} seed {seed}: training {cfg.steps} steps{' (resuming)' if resume else ''}"
                f" -> {run}")
            t0 = time.perf_counter()
            if a.threads:
                torch.set_num_threads(a.threads)
            summary = train(cfg.model_copy(update={"seed": seed}), run, resume=resume, progress=False)
            write_json(run / "lever-train.json", {**summary, "threads": torch.get_num_threads(),
                                                  "seconds": round(time.perf_counter() - t0, 1)})
        for suite_name in SUITES:
            out = suite_file(run, suite_name, a)
            if not out.exists():
                log(f"{name} seed {seed}: driving the {suite_name} suite")
                res = evaluate_suite(resolve(run), store, a.episodes_per_item, a.workers,
                                     EPISODE_S, baselines=False, suite_name=suite_name)
                write_json(out, {"episodes": res["episodes"], "seeds": res["seeds"]})


def arm_dir(a, key: str) -> Path:
    return Path(a.data_dir) / "lever" / key


def suite_file(run: Path, suite_name: str, a) -> Path:
    return run / f"{suite_name}-e{a.episodes_per_item}.json"


def read_arm(name: str, key: str, a) -> dict:
    """An arm's network episodes on every seed and suite asked for (tagged with the training
    seed and suite), its per-seed scores, and its training config."""
    root = arm_dir(a, key)
    if not (root / "arm.json").exists():
        raise SystemExit(f"{name}: no arm {key} under {root.parent}")
    episodes, per_seed = [], []
    for seed in a.seeds:
        row, collisions = {"seed": seed}, 0
        for suite_name in SUITES:
            out = suite_file(root / f"seed{seed}", suite_name, a)
            if not out.exists():
                raise SystemExit(f"{name} arm {key}: seed {seed} has not driven the {suite_name} "
                                 f"suite ({out}); run that arm with these seeds first")
            eps = [{**e, "train_seed": seed, "suite": suite_name}
                   for e in read_json(out)["episodes"] if e["driver"] == "network"]
            episodes += eps
            row[suite_name] = round(sum(e["score"] for e in eps) / len(eps), 4)
            collisions += sum(1 for e in eps if e["collision"])
        row["collisions"] = collisions
        log(f"{name} seed {seed}: " + ", ".join(f"{s} {row[s]:.3f}" for s in SUITES)
            + f", {row['collisions']} collisions")
        per_seed.append(row)
    arm = read_json(root / "arm.json")
    return {"key": key, "train": arm["train"], "code_version": arm["code_version"],
            "sources": arm["sources"], "episodes": episodes, "per_seed": per_seed}


# -- figures ---------------------------------------------------------------------------------
def pair_key(e: dict) -> tuple:
    return (e["train_seed"], e["suite"], e["scenario"], e["rare_event"], e["seed"])


def arm_figures(episodes: list[dict]) -> dict:
    s = _pool.summary([{k: v for k, v in e.items() if k not in ("train_seed", "suite")}
                       for e in episodes])
    return {k: s[k] for k in ("episodes", "score", "score_ci", "collisions", "km",
                              "collisions_per_km", "route_completion")}


def stopped_things(episodes: list[dict]) -> dict:
    """`_pool.group_summary` of the stopped-thing episodes, and how many were passed."""
    eps = [e for e in episodes if e["rare_event"] in STOPPED_THINGS]
    if not eps:
        return {"episodes": 0, "score": None, "collisions": 0, "passed": 0}
    passed = sum(1 for e in eps if not e["collision"] and e["route_completion"] > PASSED_COMPLETION)
    return {**_pool.group_summary(eps), "passed": passed}


def seed_interval(diffs: list[float], confidence: float = 0.95) -> dict:
    """Mean of the per-seed differences and its t interval, the training seeds the units.

    Two trainings of one config on two seeds differ by about as much as two configs do
    (chaotic training: one changed clip moves every later batch), which the episode-paired
    interval does not see: it holds the trained networks fixed. So this is the interval to
    read; with one seed there is none."""
    import numpy as np
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    out = {"mean": round(float(d.mean()), 4), "per_seed": [round(float(x), 4) for x in d],
           "ci": None}
    if len(d) >= 2:
        half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        out["ci"] = [round(float(d.mean() - half), 4), round(float(d.mean() + half), 4)]
    return out


def compare(base: list[dict], variant: list[dict]) -> dict:
    """Variant - base on the episodes both drove: the mean difference with a t interval over
    the training seeds (`seed_interval`, the one to read) and the episode-paired bootstrap
    CI, the stopped things, and per suite item mean scores and collisions."""
    import numpy as np

    from opendojo.evaluate.scoring import mean_ci

    b = {pair_key(e): e for e in base}
    v = {pair_key(e): e for e in variant}
    keys = sorted(set(b) & set(v))
    if not keys:
        raise SystemExit("the two arms share no episode to pair (different seeds or suites?)")
    m, lo, hi = mean_ci([v[k]["score"] - b[k]["score"] for k in keys])
    by_seed: dict[int, list[float]] = {}
    for k in keys:
        by_seed.setdefault(k[0], []).append(v[k]["score"] - b[k]["score"])
    seed_diffs = [float(np.mean(d)) for _, d in sorted(by_seed.items())]
    both_b, both_v = [b[k] for k in keys], [v[k] for k in keys]
    items: dict[str, dict] = {}
    for k in keys:
        items.setdefault(f"{k[2]}/{k[3] or 'none'}", []).append(k)
    per_item = {it: {"base": round(float(np.mean([b[k]["score"] for k in ks])), 3),
                     "variant": round(float(np.mean([v[k]["score"] for k in ks])), 3),
                     "collisions": [sum(1 for k in ks if b[k]["collision"]),
                                    sum(1 for k in ks if v[k]["collision"])]}
                for it, ks in sorted(items.items())}
    return {"paired": {"mean": round(m, 4), "ci": [round(lo, 4), round(hi, 4)], "pairs": len(keys)},
            "seeds": seed_interval(seed_diffs),
            "stopped_things": {"base": stopped_things(both_b), "variant": stopped_things(both_v)},
            "per_item": per_item}


def main(argv=None) -> None:
    a = parse_args(argv)
    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    _pool.handle_sigterm()
    t0 = time.perf_counter()
    with _pool.json_stdout() as emit:
        sources = source_digest()
        base_cfg = load_train_config(a.base)
        if a.variant or a.changes:
            variant_cfg = load_train_config(a.variant or a.base, a.changes)
        else:
            variant_cfg = base_cfg if a.against else None   # --against: this code, the base config
        if a.steps:
            base_cfg = base_cfg.model_copy(update={"steps": a.steps})
            variant_cfg = variant_cfg and variant_cfg.model_copy(update={"steps": a.steps})
        if not Path(base_cfg.store).exists():
            raise SystemExit(f"{base_cfg.store}: no such store (run `make demo` first, or pass --base)")
        base_key = a.against or arm_key(base_cfg, sources)
        if variant_cfg is None:   # the base arm alone
            log(f"lever: arm {base_key} alone, seeds {a.seeds}")
            ensure_arm("base", base_cfg, base_key, a, sources)
            base = read_arm("base", base_key, a)
            emit({"settings": settings(a), "base": arm_result(base),
                  "seconds": round(time.perf_counter() - t0, 1)})
            return
        if variant_cfg.store != base_cfg.store or variant_cfg.dataset != base_cfg.dataset:
            log("note: the variant trains on another store or dataset than the base")
        variant_key = arm_key(variant_cfg, sources)
        if base_key == variant_key:
            raise SystemExit(f"the variant is the base (arm {base_key}, same config and code): "
                             f"nothing to compare")
        log(f"lever: base arm {base_key}, variant arm {variant_key}, seeds {a.seeds}")
        if not a.against:
            ensure_arm("base", base_cfg, base_key, a, sources)
        ensure_arm("variant", variant_cfg, variant_key, a, sources)
        base, variant = read_arm("base", base_key, a), read_arm("variant", variant_key, a)
        result = {"settings": settings(a), "config_diff": config_diff(base["train"], variant["train"]),
                  "base": arm_result(base), "variant": arm_result(variant),
                  **compare(base["episodes"], variant["episodes"]),
                  "seconds": round(time.perf_counter() - t0, 1)}
        p, sd = result["paired"], result["seeds"]
        over_seeds = f"{sd['ci'][0]:+.3f} to {sd['ci'][1]:+.3f}" if sd["ci"] else "one seed: no interval"
        log(f"variant - base: {sd['mean']:+.3f} ({over_seeds} over {len(sd['per_seed'])} seeds; "
            f"episode-paired {p['ci'][0]:+.3f} to {p['ci'][1]:+.3f}, {p['pairs']} pairs); "
            f"collisions {result['base']['collisions']} -> {result['variant']['collisions']}")
        emit(result)


def settings(a) -> dict:
    return {"base": a.base, "variant": a.variant, "changes": a.changes, "against": a.against,
            "seeds": a.seeds, "suites": list(SUITES), "episodes_per_item": a.episodes_per_item,
            "threads": a.threads,
            "episode_s": EPISODE_S}


def arm_result(arm: dict) -> dict:
    return {"key": arm["key"], "code_version": arm["code_version"], "sources": arm["sources"],
            "per_seed": arm["per_seed"], **arm_figures(arm["episodes"])}


if __name__ == "__main__":
    main()
