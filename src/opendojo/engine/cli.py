"""`dojo engine ...` (triggers, quality, embed, shadow, fleet-drive), `dojo curate` and
`dojo clips similar`: thin shells over the engine's stage functions."""

from __future__ import annotations

import json
from typing import Optional

import typer

from opendojo.cliflags import at_least, share
from opendojo.clips import store_option
from opendojo.errors import ConfigError
from opendojo.fleet.config import RARE_EVENT_RATE

engine_app = typer.Typer(help="The data engine: what the fleet's clips are worth.",
                         no_args_is_help=True)
StoreOpt = store_option()
ForceOpt = typer.Option(False, "--force", help="Recompute clips already done by this code version.")


def register(app: typer.Typer) -> None:
    from opendojo.clips.cli import clips_app

    app.add_typer(engine_app, name="engine")
    app.command("curate")(curate_cmd)
    clips_app.command("similar")(similar_cmd)


def _bar(label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), transient=True)
    state = {}

    def update(done: int, total: int) -> None:
        if "task" not in state:
            prog.start()
            state["task"] = prog.add_task(label, total=total)
        prog.update(state["task"], completed=done)
        if done >= total:
            prog.stop()
    return update


def _open(store: str):
    from opendojo.clips.store import ClipStore

    return ClipStore(store)


@engine_app.command("triggers")
def triggers_cmd(store: str = StoreOpt, force: bool = ForceOpt) -> None:
    """Run every telemetry trigger over the clips; counts per trigger."""
    from collections import Counter

    from opendojo.engine.triggers import TRIGGERS, read_triggers, run_triggers

    s = _open(store)
    t = run_triggers(s, force=force, progress=_bar("triggers"))
    fired = read_triggers(s)
    counts = Counter(n for names in fired.values() for n in names)
    typer.echo(f"{t.num_rows} clips evaluated; {len(fired)} in triggers.lance")
    for name, trig in TRIGGERS.items():
        typer.echo(f"  {name:22s} {counts.get(name, 0):6d} clips   {trig.description}")


@engine_app.command("quality")
def quality_cmd(store: str = StoreOpt, force: bool = ForceOpt,
                as_json: bool = typer.Option(False, "--json", help="print drivers as JSON")) -> None:
    """Score every clip and driver from telemetry and video (never from sim truth)."""
    from opendojo.engine.quality import read_driver_quality, run_quality

    s = _open(store)
    t = run_quality(s, force=force, progress=_bar("quality"))
    drivers = read_driver_quality(s)
    if as_json:
        typer.echo(json.dumps(drivers))
        return
    typer.echo(f"{t.num_rows} clips scored; {len(drivers)} drivers (score in (0, 1], 1 best):")
    for d, sc in sorted(drivers.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {d:16s} {sc:.3f}")


@engine_app.command("embed")
def embed_cmd(store: str = StoreOpt,
              checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c",
                                                       help="network whose encoder embeds (default: the fallback)"),
              force: bool = ForceOpt) -> None:
    """Embed every clip (the network's encoder, or the thumbnail fallback without one)."""
    from opendojo.engine.embeddings import run_embed, table_embedder

    s = _open(store)
    t = run_embed(s, checkpoint, force=force, progress=_bar("embed"))
    typer.echo(f"{t.num_rows} clips embedded with {table_embedder(s)}")


@engine_app.command("shadow")
def shadow_cmd(checkpoint: str = typer.Option(..., "--checkpoint", "-c", help="the network to run"),
               store: str = StoreOpt,
               every: int = typer.Option(5, help="compare every N-th frame (1 or more)"),
               force: bool = ForceOpt) -> None:
    """Offline shadow mode: where the network disagrees with what the drivers did."""
    from opendojo.engine.shadow import run_shadow

    at_least("--every", every)
    t = run_shadow(_open(store), checkpoint, every=every, force=force, progress=_bar("shadow"))
    rows = sorted(t.to_pylist(), key=lambda r: -(r["disagreement"] if r["disagreement"] == r["disagreement"] else -1))
    typer.echo(f"{t.num_rows} clips compared; most disagreement:")
    for r in rows[:10]:
        typer.echo(f"  {r['clip_id']}  {r['disagreement']:.2f} m (worst {r['ade_max']:.2f} m at frame {r['worst_frame']})")


@engine_app.command("fleet-drive")
def fleet_drive_cmd(checkpoint: str = typer.Option(..., "--checkpoint", "-c"),
                    store: str = StoreOpt,
                    mode: str = typer.Option("safety", help="safety: the network drives, the expert "
                                             "takes over; shadow: a driver drives, the network watches"),
                    episodes: int = typer.Option(4, help="episodes to drive"),
                    seed: int = typer.Option(0, help="first episode seed (offset in the online range)"),
                    profile: str = typer.Option("expert", help="who drives in shadow mode"),
                    rare_event_rate: float = typer.Option(RARE_EVENT_RATE, help="share of episodes with "
                                                          "a rare event (0 to 1)")) -> None:
    """Online: drive the simulated fleet with the network (safety driver) or beside a driver."""
    from opendojo.engine.disengage import fleet_drive
    from opendojo.fleet.drivers import PROFILES

    if mode not in ("safety", "shadow"):
        raise ConfigError(f"--mode must be safety or shadow, not {mode!r}")
    if profile not in PROFILES:
        raise ConfigError(f"--profile: no driver profile {profile!r} (one of {', '.join(PROFILES)})")
    at_least("--episodes", episodes)
    share("--rare-event-rate", rare_event_rate)
    out = fleet_drive(_open(store), checkpoint, mode=mode, episodes=episodes, seed=seed,
                      profile=profile, rare_event_rate=rare_event_rate)
    typer.echo(json.dumps(out))


def curate_cmd(store: str = StoreOpt,
               budget: str = typer.Option("1%", "--budget", help="share of the frames to keep, e.g. 1%"),
               name: str = typer.Option(..., "--name", help="the dataset version to create"),
               filter: Optional[str] = typer.Option(None, "--filter", help="catalog SQL filter of candidates"),
               holdout: float = typer.Option(0.1, help="share of chosen clips held out"),
               coverage: float = typer.Option(0.5, help="share of the budget for typical driving by good "
                                                        "drivers (0 to 1; 0: all by triggers, disagreement, "
                                                        "rarity)"),
               drop_worst: float = typer.Option(0.0, "--drop-worst",
                                                help="share of the clips, the lowest driver quality, "
                                                     "never taken (0 to 0.99; 0: none)"),
               show: int = typer.Option(10, help="explanations to print")) -> None:
    """Choose the clips worth training on within a budget; make a dataset version of them."""
    from opendojo.engine.curate import curate, parse_budget
    from opendojo.engine.select import SelectionConfig

    at_least("--show", show, 0)
    share("--coverage", coverage)
    share("--drop-worst", drop_worst, most=0.99)
    cfg = SelectionConfig(budget=parse_budget(budget), coverage=coverage, drop_worst=drop_worst)
    sel = curate(_open(store), name, cfg, filter=filter, holdout=holdout)
    typer.echo(f"dataset {name}: {len(sel.clip_ids)} clips, {sel.frames} of {sel.total_frames} frames "
               f"(budget {sel.budget_frames}); {sel.stats['coverage_clips']} for coverage; "
               f"{sel.stats['near_duplicates']} near-duplicates dropped"
               + (f"; {sel.stats['below_quality']} clips of the worst drivers left out" if drop_worst else ""))
    for c, e in list(zip(sel.clip_ids, sel.explanations))[:show]:
        typer.echo(f"  {c}  {e}")


def similar_cmd(clip_id: str = typer.Argument(..., help="a clip id"),
                store: str = StoreOpt,
                k: int = typer.Option(10, "-k", help="how many")) -> None:
    """The clips most like this one (cosine similarity of clip embeddings, FAISS)."""
    from opendojo.engine.index import similar

    at_least("-k", k)
    for cid, sim in similar(_open(store), clip_id, k):
        typer.echo(f"{cid}  {sim:.3f}")
