"""`dojo model info`: parameters and FLOPs per sample agree with the network's arithmetic."""

import json

from typer.testing import CliRunner

from opendojo.train.info import describe
from opendojo.train.model import PolicyConfig, PolicyNet


def test_flops_per_sample_match_hand_count():
    pc = PolicyConfig(frames=2, image_size=8, width=4, stages=1, hidden=10, horizon=3,
                      pooling="spatial", spatial_channels=8)
    d = describe(pc)
    convs = (4 * 4 * 4) * (6 * 9)         # conv 3x3 stride 2: 6 -> 4 channels, 4x4 output
    convs += (4 * 4 * 4) * (4 * 9)        # conv 3x3: 4 -> 4 channels
    heads = 10 * 10 + 10 * 6 + 10 * 2     # second MLP layer and the two heads
    macs = convs + (4 * 4) * 4 * 8        # 1x1 conv 4 -> 8 channels on the 4x4 map
    macs += (8 * 4 * 4 + 16 + 1) * 10 + heads   # fuse MLP on the flattened map
    assert d["flops_per_sample_forward"] == 2 * macs
    mean = describe(PolicyConfig(**{**pc.to_dict(), "pooling": "mean"}))
    assert mean["flops_per_sample_forward"] == 2 * (convs + (4 + 16 + 1) * 10 + heads)
    # backward: weight gradients (= forward) plus input gradients of every layer but the first
    assert 2 * d["flops_per_sample_forward"] < d["flops_per_sample_train"] < 3 * d["flops_per_sample_forward"]
    assert d["parameters"] == sum(p.numel() for p in PolicyNet(pc).parameters())


def test_model_info_cli_prints_json():
    from opendojo.cli import app

    r = CliRunner().invoke(app, ["model", "info", "--width", "4", "--stages", "1", "--image-size", "8"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["config"]["width"] == 4 and out["parameters"] > 0 and out["flops_per_sample_forward"] > 0


def test_spatial_pooling_keeps_where_things_are_and_old_checkpoints_load_as_mean():
    import torch

    pc = PolicyConfig(frames=1, image_size=16, width=4, stages=2, hidden=8, horizon=3)
    net = PolicyNet(pc).eval()
    # the same blob on the left or on the right of the image: mean pooling of a translation-
    # equivariant encoder can barely tell them apart, the flattened map can
    a = torch.zeros(1, 1, 3, 16, 16)
    b = torch.zeros(1, 1, 3, 16, 16)
    a[..., 4:8, 1:5], b[..., 4:8, 11:15] = 1.0, 1.0
    with torch.no_grad():
        fa, fb = net.encode(a), net.encode(b)
    assert fa.shape == (1, pc.spatial_channels * 4 * 4) and not torch.allclose(fa, fb)
    old = {k: v for k, v in pc.to_dict().items() if k not in ("pooling", "spatial_channels")}
    assert PolicyConfig.from_dict(old).pooling == "mean"
    assert PolicyConfig.from_dict(pc.to_dict()) == pc


def test_deviation_weight_counts_departures_from_constant_velocity_more():
    import torch

    from opendojo.train.config import TrainConfig
    from opendojo.train.trainer import policy_loss, sample_weights

    cfg = TrainConfig(deviation_weight=0.5)
    t = torch.arange(1, 7, dtype=torch.float32) * 0.5
    cruise = torch.stack([20.0 * t, torch.zeros(6)], -1)               # on at 20 m/s
    brake = torch.stack([20.0 * t - 2.0 * t ** 2, torch.zeros(6)], -1)  # braking at 4 m/s^2
    batch = {"trajectory": torch.stack([cruise, brake]), "speed": torch.tensor([20.0, 20.0]),
             "controls": torch.zeros(2, 2)}
    w = sample_weights(batch, cfg)
    assert w[0] == 1.0 and torch.isclose(w[1], torch.tensor(1 + 0.5 * 18.0))
    # a network that drives on at constant velocity: the weighted loss is dominated by the braking
    out = {"trajectory": torch.stack([cruise, cruise]), "controls": torch.zeros(2, 2)}
    plain, _ = policy_loss(out, batch, TrainConfig(deviation_weight=0.0))
    weighted, _ = policy_loss(out, batch, cfg)
    assert weighted > plain * 1.5
    assert sample_weights(batch, TrainConfig(deviation_weight=0.0)) is None


def test_spatial_head_cannot_go_blind_and_old_spatial_checkpoints_keep_their_relu():
    import torch

    pc = PolicyConfig(frames=1, image_size=16, width=4, stages=2, hidden=8, horizon=3)
    net = PolicyNet(pc).eval()
    proj = net.encoder[pc.stages]          # the 1x1 conv of the spatial head
    with torch.no_grad():                  # a projection pushed negative everywhere, as the
        proj.bias.fill_(-100.0)            # trained demo network's was ("dying ReLU")
        a, b = torch.rand(2, 1, 1, 3, 16, 16)
        fa, fb = net.encode(a), net.encode(b)
    assert not torch.allclose(fa, fb), "the features no longer depend on the frames"
    old = {k: v for k, v in pc.to_dict().items() if k != "spatial_relu"}
    assert PolicyConfig.from_dict(old).spatial_relu
    assert any(isinstance(m, torch.nn.ReLU) for m in PolicyNet(PolicyConfig.from_dict(old)).encoder[pc.stages:])


def test_several_modes_keep_left_and_right_apart_where_one_trajectory_cannot():
    import torch

    from opendojo.train.config import ModelSettings, TrainConfig
    from opendojo.train.trainer import policy_loss

    torch.manual_seed(0)
    t = torch.arange(1, 4, dtype=torch.float32)
    left = torch.stack([10.0 * t, 1.5 * t], -1)
    right = torch.stack([10.0 * t, -1.5 * t], -1)
    # one scene, two drivers: half went round the stalled car on the left, half on the right
    batch = {"frames": torch.zeros(8, 1, 8, 8, 3, dtype=torch.uint8), "speed": torch.full((8,), 5.0),
             "command": torch.ones(8, dtype=torch.long), "controls": torch.zeros(8, 2),
             "trajectory": torch.stack([left, right] * 4)}
    final = {}
    for k in (1, 2):
        cfg = TrainConfig(deviation_weight=0.0, model=ModelSettings(
            frames=1, image_size=8, width=4, stages=1, hidden=16, horizon=3, horizon_s=3.0, modes=k,
            path_points=5, path_spacing=6.0))
        net = PolicyNet(cfg.policy_config())
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        for _ in range(150):
            out = net(batch["frames"], batch["speed"], batch["command"])
            loss, parts = policy_loss(out, batch, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
        final[k] = parts["trajectory_loss"].item(), parts["path_loss"].item()
        out = net(batch["frames"][:1], batch["speed"][:1], batch["command"][:1])
    lat = sorted(out["modes"][0, :, -1, 1].tolist())
    assert lat[0] < -3.5 and lat[1] > 3.5                 # one mode each way
    assert "mode_loss" in parts and out["trajectory"].shape == (1, 3, 2)
    assert abs(out["trajectory"][0, -1, 1].item()) > 3.5  # it drives one of them, not between
    assert final[2][0] < 0.1 * final[1][0]                # one trajectory misses at least one side
    # the path head has the same modes, paired with the trajectory's: the controller steers on
    # the chosen mode's path, which goes the chosen trajectory's way
    assert out["path_modes"].shape == (1, 2, 5, 2) and final[2][1] < 0.1 * final[1][1]
    side = out["path"][0, 2, 1].item()                    # 18 m along, ~2.7 m aside
    assert abs(side) > 2.0 and side * out["trajectory"][0, -1, 1].item() > 0
    assert PolicyConfig.from_dict({k: v for k, v in PolicyConfig().to_dict().items()
                                   if k != "modes"}).modes == 1
