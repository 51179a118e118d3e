"""Open-loop evaluation: ADE/FDE and control error against hindsight labels, and the
constant-velocity baseline on the same samples."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from opendojo.clips.store import ClipStore
from opendojo.evaluate.open_loop import evaluate_open_loop
from opendojo.label.hindsight import LabelSpec, label_store, read_labels
from opendojo.train.checkpoint import save_checkpoint
from opendojo.train.model import PolicyConfig, PolicyNet
from opendojo.train.synthetic import make_synthetic_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    ids = make_synthetic_store(root, clips=2, frames=50, size=16, seed=21)
    s = ClipStore(root)
    label_store(s)
    return s, ids


def _ckpt(path, zero_heads: bool):
    pc = PolicyConfig(frames=3, image_size=16, width=4, stages=2, hidden=8)
    torch.manual_seed(0)
    net = PolicyNet(pc)
    if zero_heads:
        for head in (net.trajectory_head, net.controls_head):
            torch.nn.init.zeros_(head.weight)
            torch.nn.init.zeros_(head.bias)
    save_checkpoint(path, 1, net, None, {"model": pc.to_dict(), "train": {}})
    return path / "step-1.safetensors"


def test_metrics_against_labels_and_baseline(store, tmp_path):
    s, ids = store
    res = evaluate_open_loop(_ckpt(tmp_path / "zero", True), s, ids)
    tab = read_labels(s, ids, LabelSpec())
    valid = np.array(tab.column("valid").to_pylist())
    frame = np.array(tab.column("frame").to_pylist())
    m = valid & (frame >= 2)                                # 3-frame history
    assert res["samples"] == m.sum() > 0
    traj = np.array([x for x, k in zip(tab.column("trajectory").to_pylist(), m) if k]).reshape(-1, 6, 2)
    speed = tab.column("speed").to_numpy()[m]
    t = np.arange(1, 7) * 0.5
    cv = np.stack([speed[:, None] * t, np.zeros((len(speed), 6))], -1)
    d = np.linalg.norm(cv - traj, axis=-1)
    assert res["constant_velocity"]["ade"] == pytest.approx(d.mean(), rel=1e-5)
    assert res["constant_velocity"]["fde"] == pytest.approx(d[:, -1].mean(), rel=1e-5)
    # a policy whose heads are zero predicts exactly constant velocity and zero controls
    assert res["policy"]["ade"] == pytest.approx(res["constant_velocity"]["ade"], rel=1e-5)
    acc = tab.column("acceleration").to_numpy()[m]
    assert res["policy"]["accel_mae"] == pytest.approx(np.abs(acc).mean(), rel=1e-5)
    assert sum(v["samples"] for v in res["by_command"].values()) == res["samples"]
    other = evaluate_open_loop(_ckpt(tmp_path / "rand", False), s, ids)
    assert other["policy"]["ade"] != res["policy"]["ade"]


def test_cli_refuses_bad_closed_loop_checkpoint_and_training_split(store, tmp_path):
    from opendojo.cli import app
    from opendojo.errors import CheckpointError, ConfigError

    ck = _ckpt(tmp_path / "c", True)
    r = CliRunner().invoke(app, ["eval", "--closed-loop", "--checkpoint", str(tmp_path / "none")])
    assert isinstance(r.exception, CheckpointError) and "no such checkpoint" in str(r.exception)
    r = CliRunner().invoke(app, ["eval", "--checkpoint", str(ck)])
    assert isinstance(r.exception, ConfigError)
