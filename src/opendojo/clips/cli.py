"""`dojo ingest`, `dojo clips ls`, `dojo clips show`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from opendojo.cliflags import at_least, positive
from opendojo.clips import store_option

console = Console(soft_wrap=True)
clips_app = typer.Typer(help="Look at the clips in a store.", no_args_is_help=True)
StoreOpt = store_option()


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.add_typer(clips_app, name="clips")


def ingest_cmd(
    paths: list[Path] = typer.Argument(..., help="Videos with a .csv beside them, comma2k19 "
                                                 "segments, or directories holding either."),
    store: str = StoreOpt,
    size: int = typer.Option(96, help="Stored frame size (square, pixels): centre crop, then scale."),
    fps: float = typer.Option(10.0, help="Stored frame rate."),
) -> None:
    """Import real dashcam video into the clip store. Bad inputs are quarantined, the rest go in."""
    from opendojo.clips.ingest import find_inputs, ingest
    from opendojo.clips.store import ClipStore
    from opendojo.errors import ConfigError

    if size <= 0 or size % 2:
        raise ConfigError(f"--size must be a positive even number (H.264 needs even sizes), not {size}")
    positive("--fps", fps)
    found, bad = find_inputs(paths)
    if not found:   # nothing to import: refused before any store is made
        raise ConfigError("nothing to ingest: " + "; ".join(map(str, bad)))
    s = ClipStore.create(store)

    def report(kind: str, path: Path, error: str | None) -> None:
        if error:
            console.print(f"[red]✗[/] {error}", highlight=False)
        else:
            console.print(f"[green]✓[/] {kind}: {path}", highlight=False)

    with console.status("ingesting ..."):
        result = ingest(paths, s, size=size, fps=fps, on_item=report, found=(found, bad))
    console.print(f"{len(result.added)} clip(s) added, {len(result.duplicates)} already stored, "
                  f"{len(result.failed)} failed (quarantined in {s.url}/quarantine.jsonl)")
    if result.failed:
        raise typer.Exit(1)


@clips_app.command("ls")
def ls_cmd(
    store: str = StoreOpt,
    where: Optional[str] = typer.Option(None, "--where", "--filter", "-w",
                                        help="SQL filter, e.g. \"scenario = 'merge' AND n_frames > 120\" "
                                             "(--filter, as the other commands call it)."),
    limit: int = typer.Option(50, help="Rows to show (0 for all)."),
) -> None:
    """List clips (filterable)."""
    from opendojo.clips.store import ClipStore

    at_least("--limit", limit, 0)
    s = ClipStore(store)
    rows = s.catalog(where).sort_by("clip_id").to_pylist()
    table = Table(title=f"{len(rows)} clip(s) in {s.url}" + (f" where {where}" if where else ""))
    for col in ("clip_id", "source", "scenario", "route", "vehicle", "driver", "frames", "seconds", "metres"):
        table.add_column(col, justify="right" if col in ("frames", "seconds", "metres") else "left",
                         no_wrap=col == "clip_id", min_width=20 if col == "clip_id" else None)
    for r in rows[: limit or None]:
        table.add_row(r["clip_id"], r["source"], r["scenario"], r["route"], r["vehicle_id"],
                      r["driver_id"], str(r["n_frames"]), f"{r['duration_s']:.1f}", f"{r['distance_m']:.0f}")
    console.print(table)
    if limit and len(rows) > limit:
        console.print(f"... {len(rows) - limit} more (use --limit 0)")


@clips_app.command("show")
def show_cmd(
    clip_id: str = typer.Argument(..., help="Clip id (see `dojo clips ls`)."),
    store: str = StoreOpt,
    gif: Optional[Path] = typer.Option(None, "--gif", help="Also write the clip as a GIF here."),
) -> None:
    """A clip's metadata and a summary of its telemetry."""
    import numpy as np

    from opendojo.clips.schema import ROUTE_COMMANDS
    from opendojo.clips.store import ClipStore

    s = ClipStore(store)
    row = s.row(clip_id)
    meta = Table(title=f"clip {clip_id}", show_header=False)
    for k, v in row.items():
        meta.add_row(k, str(v))
    console.print(meta)
    tel = s.telemetry(clip_id)
    summary = Table(title="telemetry", show_header=True)
    for col in ("column", "min", "mean", "max"):
        summary.add_column(col, justify="left" if col == "column" else "right")
    for name in ("speed", "acceleration", "steering", "heading", "x", "y"):
        v = tel.column(name).to_numpy(zero_copy_only=False).astype(float)
        v = v[np.isfinite(v)]
        if len(v):
            summary.add_row(name, f"{v.min():.2f}", f"{v.mean():.2f}", f"{v.max():.2f}")
    console.print(summary)
    collided = int(np.asarray(tel.column("collision")).sum())
    cmds = np.asarray(tel.column("command"))
    names = [ROUTE_COMMANDS[c] if 0 <= c < 3 else "unknown" for c in np.unique(cmds)]
    console.print(f"frames in collision: {collided}; route commands: {', '.join(names)}")
    if gif is not None:
        from opendojo.clips.gif import write_gif

        path = write_gif(s.read_frames(clip_id, row=row), gif, fps=row["fps"])
        console.print(f"wrote {path}")
