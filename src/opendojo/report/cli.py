"""`dojo report RUN_DIR`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)


def report_cmd(run_dir: Path = typer.Argument(..., help="A run directory (from `dojo demo` or `dojo loop`).")) -> None:
    """Write RUN_DIR/report.html: results, training curves, data, rollouts, config."""
    from opendojo.report.build import build_report

    typer.echo(f"wrote {build_report(run_dir)}")
