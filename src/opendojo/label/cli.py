"""`dojo label`: hindsight labels for every clip in a store."""

from __future__ import annotations

import json

import typer

from opendojo.clips import store_option


def label(
    store: str = store_option(),
    horizon_s: float = typer.Option(3.0, help="seconds of future trajectory"),
    waypoints: int = typer.Option(6, help="waypoints over the horizon"),
    filter: str = typer.Option(None, "--filter", help="SQL predicate on the catalog"),
) -> None:
    """Label each clip's frames from its own future telemetry (trajectory, speeds, controls, command)."""
    from rich.progress import Progress

    from opendojo.cliflags import at_least, positive
    from opendojo.clips.store import ClipStore
    from opendojo.errors import ConfigError
    from opendojo.label.hindsight import LabelSpec, label_store

    positive("--horizon-s", horizon_s)
    at_least("--waypoints", waypoints)
    cs = ClipStore(store)
    ids = cs.clip_ids(filter)
    if filter is not None and not ids:
        raise ConfigError(f"--filter {filter!r} matched no clips in {cs.url}; nothing to label")
    spec = LabelSpec(horizon_s=horizon_s, waypoints=waypoints)
    with Progress(transient=True) as bar:
        task = bar.add_task("labelling", total=len(ids))
        result = label_store(cs, spec, ids, progress=lambda: bar.advance(task))
    print(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.command("label")(label)
