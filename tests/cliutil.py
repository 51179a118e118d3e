"""Running the real `dojo` entry point in-process and checking its one-line refusals
(shared by the tests/test_cli_errors*.py files)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


# the smallest policy network's size: `dojo train` and the machine model's `dojo machine
# plan/compare` (which traces its workload) take the same flags
TINY_NETWORK = ["--width", "4", "--stages", "2", "--hidden", "16"]
# that network on 2 frames of 16 px: the smallest `dojo train` model
TINY_MODEL = ["--frames", "2", "--image-size", "16", *TINY_NETWORK]
# the smallest `dojo train` flags that run: the tiny model, a checkpoint every step, no progress bar
TINY_TRAIN = ["--batch-size", "4", "--workers", "0", "--no-progress", *TINY_MODEL, "--checkpoint-every", "1"]
# the tiny model with a log line every step, no progress bar (checkpoints as the command defaults)
QUICK_TRAIN = ["--batch-size", "4", "--workers", "0", "--no-progress", "--log-every", "1", *TINY_MODEL]


def run(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    """`dojo ARGS` in this process, as the console script runs it: (exit code, stdout, stderr)."""
    from opendojo.cli import main

    monkeypatch.setattr(sys, "argv", ["dojo", *map(str, args)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def dojo(capsys, monkeypatch, *args) -> tuple[int, str]:
    """`run`, without stdout: (exit code, stderr)."""
    code, _, err = run(capsys, monkeypatch, *args)
    return code, err


def one_line_error(code, err, *words, exit_code=1) -> str:
    """The house rule: exit code, exactly one `error:` line on stderr, no traceback, no usage
    box, and each of `words` in it."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == exit_code, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err and "╭" not in err and "Usage:" not in err, err
    for w in words:
        assert w in err, (w, err)
    return lines[0]


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


class Ran(Exception):
    """Raised by a stand-in for slow work that a refused command must never reach."""
