import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")


@pytest.fixture(scope="session")
def train_store(tmp_path_factory):
    """A directory holding `st`, a tiny labelled store with dataset `d` (the CLI tests')."""
    from clipfactory import labelled_synthetic_store
    from opendojo.train.dataset import create_dataset

    root = tmp_path_factory.mktemp("trainstore")
    s = labelled_synthetic_store(root / "st", clips=3, frames=40, size=16, seed=5)
    create_dataset(s, "d", holdout=0.34, seed=0)
    return root


@pytest.fixture
def no_fleet(monkeypatch):
    """A command that would drive the simulated fleet stops there instead (cliutil.Ran)."""
    from cliutil import Ran
    from opendojo.fleet import generate

    def drove(*a, **kw):
        raise Ran("the fleet was driven")
    monkeypatch.setattr(generate, "generate", drove)
