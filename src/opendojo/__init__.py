"""OpenDojo: an open video-training system for driving networks."""

from __future__ import annotations

import os

# highway-env renders through pygame/SDL: only the offscreen driver gives real frames
# without a display ("dummy" gives black frames), and SDL must not swallow SIGINT/SIGTERM
# in worker processes. Set before anything imports pygame.
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

__version__ = "0.1.0"


def code_version() -> str:
    """The package version plus the git commit of the source tree, if there is one.

    Recorded in every artifact (clips, label sets, checkpoints, reports).
    """
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
        commit = out.stdout.strip() if out.returncode == 0 else ""
        if commit:
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5,
            ).stdout.strip()
            return f"{__version__}+{commit}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__
