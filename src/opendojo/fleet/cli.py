"""`dojo fleet generate` and `dojo fleet stats`: thin shells over the fleet stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from opendojo.clips import store_option

fleet_app = typer.Typer(help="The simulated fleet: drive, film and store clips.",
                        no_args_is_help=True)


@fleet_app.command("generate")
def generate_cmd(
    store: str = store_option(),
    clips: Optional[int] = typer.Option(None, "--clips", help="number of clips"),
    workers: Optional[int] = typer.Option(None, "--workers", help="worker processes"),
    seed: Optional[int] = typer.Option(None, "--seed", help="fleet seed"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with a \\[fleet] table"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Drive the simulated fleet and store its clips (video, telemetry, sim truth)."""
    from rich.console import Console

    from opendojo.config import load_config
    from opendojo.fleet.config import FleetConfig
    from opendojo.fleet.generate import GenerationInterrupted, generate

    cfg = load_config(FleetConfig, config, section="fleet", clips=clips, workers=workers,
                      seed=seed)
    console = Console(stderr=True)
    try:
        summary = generate(store, cfg, progress=not quiet)
    except GenerationInterrupted as e:
        console.print(f"[yellow]interrupted:[/] {e.summary['clips']} complete clips committed")
        raise
    console.print(f"[green]fleet:[/] {summary['clips']} new clips ({summary['generated']} "
                  f"recorded, {summary['frames']} frames) in {summary['seconds']:.1f} s, "
                  f"{summary['frames_per_s']:.0f} frames/s with {summary['workers']} workers")


@fleet_app.command("stats")
def stats_cmd(
    store: str = store_option(),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Counts per scenario, route, driver and (sim truth) profile and rare event."""
    from opendojo.clips.store import ClipStore
    from opendojo.fleet.stats import fleet_stats

    stats = fleet_stats(ClipStore(store))
    if as_json:
        typer.echo(json.dumps(stats))
        return
    print_stats(stats)


def print_stats(stats: dict) -> None:
    """Print `fleet_stats` output as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{stats['clips']} clips[/], {stats['frames']} frames, "
                  f"{stats['hours']} h, {stats['km']} km, {stats['vehicles']} vehicles, "
                  f"{stats['drivers']} drivers")
    for title, counts in [("scenario", stats["scenario"]), ("route", stats["route"]),
                          ("driver profile (sim truth)", stats["sim_truth"]["driver_profile"]),
                          ("rare event (sim truth)", stats["sim_truth"]["rare_event"])]:
        table = Table(title=title, title_justify="left")
        table.add_column(title.split(" (")[0])
        table.add_column("clips", justify="right")
        for k, v in counts.items():
            table.add_row(str(k), str(v))
        console.print(table)
    per = sorted(stats["clips_per_driver"].values())
    if per:
        console.print(f"clips per driver: min {per[0]}, median {per[len(per) // 2]}, "
                      f"max {per[-1]}")


def register(app: typer.Typer) -> None:
    """Add the `fleet` command group to the root `dojo` app."""
    app.add_typer(fleet_app, name="fleet")
