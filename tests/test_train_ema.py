"""Averaged weights (`opendojo.train.ema`): the average follows the warmed-up EMA rule, a run
that averages trains exactly as one that does not and drives with the average, and a killed
run resumes to the same bytes as an uninterrupted one."""

import signal

import pytest
import torch
from safetensors.torch import load_file

from opendojo.errors import CheckpointError
from opendojo.train.checkpoint import load_checkpoint
from opendojo.train.config import ModelSettings, TrainConfig, to_toml
from opendojo.train.dataset import create_dataset
from opendojo.train.ema import averaged, warmed_decay
from opendojo.train.model import PolicyNet
from opendojo.train.trainer import KILL_ENV, train

from clipfactory import labelled_synthetic_store
from test_train_resume import TINY, _dojo


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = labelled_synthetic_store(tmp_path_factory.mktemp("store"), clips=4, frames=60, size=16, seed=5)
    create_dataset(s, "d", holdout=0.25, seed=0)
    return s


def test_the_average_follows_the_warmed_up_rule():
    net = torch.nn.Linear(3, 2)
    ema = averaged(net, 0.9)
    expect = None
    gen = torch.Generator().manual_seed(0)
    for n in range(40):
        with torch.no_grad():
            net.weight.copy_(torch.randn(2, 3, generator=gen))
        ema.update_parameters(net)
        w = net.weight.detach().clone()
        expect = w if expect is None else expect + (1 - warmed_decay(0.9, n)) * (w - expect)
    assert torch.allclose(ema.module.weight, expect, atol=1e-6)
    assert not torch.allclose(ema.module.weight, net.weight)
    # warm-up: the first updates weigh the new weights heavily, later ones by 1 - decay
    assert warmed_decay(0.999, 1) == pytest.approx(2 / 11) and warmed_decay(0.999, 10_000) == 0.999
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="decay"):
            averaged(net, bad)


def _cfg(store, **kw):
    return TrainConfig(store=store.url, dataset="d", steps=12, batch_size=4, checkpoint_every=5,
                       log_every=1, workers=1, seed=3, model=ModelSettings(**TINY), **kw)


def test_averaging_leaves_training_alone_and_checkpoints_drive_with_the_average(store, tmp_path):
    plain = load_file(str(train(_cfg(store), tmp_path / "plain", progress=False)["checkpoint"]))
    out = train(_cfg(store, ema_decay=0.9), tmp_path / "ema", progress=False)
    avg = load_file(out["checkpoint"])
    names = [k[6:] for k in plain if k.startswith("model.")]
    # the optimizer stepped the same weights as without averaging ...
    for k in names:
        assert torch.equal(avg[f"training.{k}"], plain[f"model.{k}"]), k
    # ... and what the checkpoint drives with is their average, not the last weights
    assert any(not torch.equal(avg[f"model.{k}"], plain[f"model.{k}"]) for k in names)
    net = PolicyNet(_cfg(store).policy_config())
    load_checkpoint(out["checkpoint"], net)
    assert torch.equal(net.state_dict()[names[0]], avg[f"model.{names[0]}"])
    with pytest.raises(CheckpointError, match="no training weights"):
        load_checkpoint(tmp_path / "plain", net, weights="training")


def test_killed_and_resumed_averaging_run_matches_uninterrupted_run_bitwise(store, tmp_path):
    cfg = _cfg(store, ema_decay=0.9)
    train(cfg, tmp_path / "ref", progress=False)
    toml = tmp_path / "ema.toml"
    toml.write_text(to_toml(cfg))
    run = tmp_path / "killed"
    killed = _dojo("train", "--config", str(toml), "--run-dir", str(run), "--no-progress",
                   env={KILL_ENV: "8"})
    assert killed.returncode == -signal.SIGKILL
    resumed = _dojo("train", "--run-dir", str(run), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    a = load_file(str(tmp_path / "ref" / "checkpoints" / "step-12.safetensors"))
    b = load_file(str(run / "checkpoints" / "step-12.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("training.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k            # the average, the trained weights, AdamW
