"""`dojo model info`: parameters and FLOPs per sample agree with the network's arithmetic."""

import json

from typer.testing import CliRunner

from opendojo.train.info import describe
from opendojo.train.model import PolicyConfig, PolicyNet


def test_flops_per_sample_match_hand_count():
    pc = PolicyConfig(frames=2, image_size=8, width=4, stages=1, hidden=10, horizon=3)
    d = describe(pc)
    macs = (4 * 4 * 4) * (6 * 9)          # conv 3x3 stride 2: 6 -> 4 channels, 4x4 output
    macs += (4 * 4 * 4) * (4 * 9)         # conv 3x3: 4 -> 4 channels
    macs += (4 + 16 + 1) * 10 + 10 * 10 + 10 * 6 + 10 * 2   # fuse MLP and the two heads
    assert d["flops_per_sample_forward"] == 2 * macs
    # backward: weight gradients (= forward) plus input gradients of every layer but the first
    assert 2 * d["flops_per_sample_forward"] < d["flops_per_sample_train"] < 3 * d["flops_per_sample_forward"]
    assert d["parameters"] == sum(p.numel() for p in PolicyNet(pc).parameters())


def test_model_info_cli_prints_json():
    from opendojo.cli import app

    r = CliRunner().invoke(app, ["model", "info", "--width", "4", "--stages", "1", "--image-size", "8"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["config"]["width"] == 4 and out["parameters"] > 0 and out["flops_per_sample_forward"] > 0
