"""The `dojo` command: one Typer app; each area registers its own commands.

Each stage's commands live beside the stage (`opendojo/<area>/cli.py`) as thin shells over
stage functions; they import heavy libraries (torch, highway-env) inside the command so
that `dojo --help` stays fast. A `DojoError` is printed as one line and exits with code 1,
and so does a flag value out of its range (a command checks it and raises `ConfigError`);
a command line Click cannot parse (an unknown or missing flag or argument, `--steps abc`)
is one line too, exit code 2.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from opendojo.errors import DojoError

app = typer.Typer(
    name="dojo",
    help="OpenDojo: fleet video in, driving network out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)
# Lance's Rust log warns on every first write of a table ("No existing dataset ..., it will be
# created"): expected here, so the CLI shows Lance's errors only (set LANCE_LOG to see more).
os.environ.setdefault("LANCE_LOG", "error")

_AREAS = ("fleet", "clips", "label", "train", "evaluate", "engine", "machine", "report")


def _register_areas() -> None:
    import importlib

    for area in _AREAS:
        try:
            module = importlib.import_module(f"opendojo.{area}.cli")
        except ModuleNotFoundError as e:
            if e.name == f"opendojo.{area}.cli":
                continue  # that area has no commands yet
            raise
        module.register(app)


_register_areas()


@app.command("demo")
def demo_cmd(
    run_dir: str = typer.Option(None, help="Where the run's files go (default runs/demo)."),
    clips: int = typer.Option(None, help="Fleet clips to generate."),
    train_steps: int = typer.Option(None, help="Training steps."),
    episodes: int = typer.Option(None, help="Closed-loop episodes per scenario and rare event."),
    seed: int = typer.Option(None, help="Seed of the whole run."),
    config: str = typer.Option(None, help="TOML file with a \\[demo] table."),
) -> None:
    """The main job: fleet -> label -> train -> evaluate (open and closed loop) -> report."""
    from opendojo.config import load_config
    from opendojo.demo import DemoConfig, run_demo

    cfg = load_config(DemoConfig, config, section="demo", run_dir=run_dir, clips=clips,
                      train_steps=train_steps, episodes_per_item=episodes, seed=seed)
    run_demo(cfg)


@app.command("loop")
def loop_cmd(
    rounds: int = typer.Option(None, help="Flywheel rounds (default 3)."),
    run_dir: str = typer.Option(None, help="Where the loop's files go, resumable (default runs/loop)."),
    seed: int = typer.Option(None, help="Seed of the whole loop."),
    budget: str = typer.Option(None, help="Share of the pool's frames each round trains on, e.g. 40%."),
    config: str = typer.Option(None, help="TOML file with a \\[loop] table."),
) -> None:
    """The flywheel: deploy in shadow mode, collect, select, label, retrain, evaluate; N rounds."""
    from opendojo.config import load_config
    from opendojo.loop import LoopConfig, run_loop

    run_loop(load_config(LoopConfig, config, section="loop", rounds=rounds, run_dir=run_dir,
                         seed=seed, budget=budget))


def _click_exceptions():
    """(ClickException, UsageError, NoArgsIsHelpError): the Click exceptions `main` tells apart.

    The one place that reaches past Typer's public API. Typer (0.29) exposes none of these
    (only their subclass `typer.BadParameter`, and its own `Abort` and `Exit`) and has no hook
    for formatting errors; since 0.26 they live in its private copy of Click (`typer._click`),
    before that in the click package. NoArgsIsHelpError is Click 8.2's: an older Click exits 0
    after the help instead, and `except ()` matches nothing.
    """
    try:
        from typer._click import exceptions
    except ImportError:     # Typer < 0.26, on the click package
        from click import exceptions
    return (exceptions.ClickException, exceptions.UsageError,
            getattr(exceptions, "NoArgsIsHelpError", ()))


def _error(message: str, code: int) -> None:
    """Print `error: MESSAGE` as one line on stderr and exit with `code`."""
    # escaped: a message may quote "[train]" or "[trian]", which rich would read as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def main() -> None:
    """Entry point of the `dojo` script.

    The app runs in Click's non-standalone mode so that its usage errors (a bad or missing
    flag or argument, an unknown command, a `typer.BadParameter`) come here and are printed
    as one line like a DojoError, with exit code 2 as Click has it; --help and a command
    group without its command still print their help (exit 0 and 2).
    """
    ClickException, UsageError, NoArgsIsHelpError = _click_exceptions()
    try:
        # Typer.__call__ hands its arguments to the Click command's main()
        rv = app(sys.argv[1:], prog_name="dojo", standalone_mode=False)
    except NoArgsIsHelpError as e:     # `dojo`, `dojo clips`: the help is printed
        sys.exit(e.exit_code)
    except UsageError as e:
        ctx = e.ctx
        hint = f" (see {ctx.command_path} {ctx.help_option_names[0]})" \
            if ctx is not None and ctx.command.get_help_option(ctx) is not None else ""
        _error(" ".join(e.format_message().split()) + hint, e.exit_code)
    except ClickException as e:
        _error(" ".join(e.format_message().split()), e.exit_code)
    except typer.Abort:         # Click's prompts at end of input
        _error("aborted", 1)
    except DojoError as e:
        _error(str(e), 1)
    except (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        # a path the user gave runs through a file, or points where nothing may be written
        where = e.filename if e.filename is not None else ""
        _error(f"{where}: {e.strerror}", 1)
    except KeyboardInterrupt:   # Click turns one in a command into exit code 130 (below)
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    # a command's return value, or the code of a typer.Exit (--help's 0, Ctrl-C's 130)
    sys.exit(rv if type(rv) is int else 0)


if __name__ == "__main__":
    main()
