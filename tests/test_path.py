"""The path head: targets by distance along the driven path, its loss, and steering on it."""

import numpy as np
import pytest
import torch

from opendojo.evaluate.closed_loop import pure_pursuit
from opendojo.train.config import ModelSettings, TrainConfig
from opendojo.train.model import PolicyConfig, PolicyNet, example_inputs
from opendojo.train.path import path_arc, path_targets, progress
from opendojo.train.trainer import policy_loss


def _turn(speed: float, radius: float = 12.0, waypoints: int = 6, horizon_s: float = 3.0):
    """A right turn on a circle of `radius` driven at `speed` (x forward, y left)."""
    t = np.arange(1, waypoints + 1) * horizon_s / waypoints
    ang = speed * t / radius
    return np.stack([radius * np.sin(ang), -radius * (1 - np.cos(ang))], 1)


def test_path_targets_lie_on_the_driven_path_at_their_distances():
    fast, slow = _turn(10.0), _turn(6.0)
    path, valid = path_targets(torch.tensor(np.stack([fast, slow]), dtype=torch.float32), 8, 4.0)
    path, valid = path.numpy(), valid.numpy()
    # every target is on the circle (up to the chord between waypoints) ...
    for p in path:
        r = np.hypot(p[:, 0], p[:, 1] + 12.0)
        assert np.all(np.abs(r - 12.0) < 0.3)
    # ... about k x 4 m of arc along it, and covered only as far as the car drove
    arc = 12.0 * np.arctan2(path[..., 0], path[..., 1] + 12.0)
    assert np.allclose(arc[valid], (4.0 * np.arange(1, 9) * np.ones((2, 1)))[valid], atol=0.3)
    assert valid[0].sum() == 7 and valid[1].sum() == 4      # 30 m and 18 m driven
    # the same road at two speeds gives the same path where both are covered
    assert np.allclose(path[0, :4], path[1, :4], atol=0.3)
    # a car standing still has no path to learn
    still = path_targets(torch.zeros(1, 6, 2), 8, 4.0)[1]
    assert not still.any()


def test_the_path_head_is_a_residual_on_driving_straight_on():
    net = PolicyNet(PolicyConfig(image_size=32, width=4, hidden=16, path_points=5, path_spacing=3.0))
    assert "path" not in PolicyNet(PolicyConfig(image_size=32, width=4, hidden=16))(*example_inputs(
        PolicyConfig(image_size=32, width=4, hidden=16)))
    torch.nn.init.zeros_(net.path_head.weight)
    torch.nn.init.zeros_(net.path_head.bias)
    cfg = net.config
    out = net(*example_inputs(cfg))
    assert out["path"].shape == (2, 5, 2)
    want = torch.tensor([[3.0 * k, 0.0] for k in range(1, 6)])
    assert torch.allclose(out["path"][0], want)


def test_path_loss_counts_only_the_points_the_label_covers():
    cfg = TrainConfig(deviation_weight=0.0, model=ModelSettings(path_points=8, path_spacing=4.0))
    slow = torch.tensor(_turn(6.0)[None], dtype=torch.float32)           # covers 4 of 8 points
    target, valid = path_targets(slow, 8, 4.0)
    batch = {"trajectory": slow, "speed": torch.tensor([6.0]), "controls": torch.zeros(1, 2)}
    out = {"trajectory": slow.clone(), "controls": torch.zeros(1, 2), "path": target.clone()}
    loss, parts = policy_loss(out, batch, cfg)
    assert parts["path_loss"].item() == pytest.approx(0.0, abs=1e-6)
    out["path"][:, ~valid[0]] += 50.0            # wrong beyond the label: no cost
    assert policy_loss(out, batch, cfg)[1]["path_loss"].item() == pytest.approx(0.0, abs=1e-6)
    out["path"][:, 0] += 2.0                     # wrong where it is known: costs
    loss2, parts2 = policy_loss(out, batch, cfg)
    assert parts2["path_loss"].item() > 0.1 and loss2 > loss


def test_steering_on_the_path_keeps_the_roads_shape_when_the_car_is_slow():
    cfg = PolicyConfig(path_points=8, path_spacing=4.0)
    road = path_targets(torch.tensor(_turn(10.0)[None], dtype=torch.float32), 8, 4.0)[0][0].numpy()
    # time waypoints learnt at 10 m/s, replayed at 6 m/s: the same sideways steps come
    # after fewer metres, a sharper bend than the road's
    sharp = _turn(10.0).copy()
    sharp[:, 0] *= 0.6
    on_time = pure_pursuit(sharp, 6.0, cfg, 1.0)[1]
    on_path = pure_pursuit(sharp, 6.0, cfg, 1.0, path=road)[1]
    true = pure_pursuit(_turn(6.0), 6.0, cfg, 1.0)[1]     # waypoints of the road at 6 m/s
    assert on_time < on_path < 0                          # right turn, less sharp on the path
    assert abs(on_path - true) < abs(on_time - true)
    # the speed still comes from the trajectory
    assert pure_pursuit(sharp, 6.0, cfg, 1.0, path=road)[0] == pure_pursuit(sharp, 6.0, cfg, 1.0)[0]


def test_progress_is_the_arc_length_forward_and_counts_a_reversal_against_it():
    times = np.arange(1, 7) * 0.5
    # forward, even round a turn that bends past 90 degrees in the horizon: the arc length
    turn = _turn(8.0)
    assert np.diff(turn[:, 0])[-1] < 0        # its last step runs back along x: past 90 degrees
    np.testing.assert_allclose(progress(turn), path_arc(turn)[1][1:])
    # a plan behind the car, backing away at 0.5 m/s: it goes nowhere forward
    back = np.stack([-0.5 * times, np.zeros(6)], 1)
    np.testing.assert_allclose(progress(back), -0.5 * times)
    # forward 4 m, then back 3 m: the last point is 1 m along, not 7
    there_and_back = np.array([[2.0, 0], [4.0, 0], [3.0, 0], [2.0, 0], [1.0, 0], [1.0, 0]])
    np.testing.assert_allclose(progress(there_and_back), [2, 4, 3, 2, 1, 1])
    # jitter of a car standing still (moves under `still_m`) neither adds nor flips
    jitter = np.array([[0.01, 0.0], [0.0, 0.01], [-0.01, 0.0], [3.0, 0.0], [6.0, 0], [9.0, 0]])
    assert progress(jitter)[-1] == pytest.approx(path_arc(jitter)[1][-1])


def test_a_plan_behind_the_car_asks_for_a_stop_and_never_for_reversing():
    cfg, gain = PolicyConfig(), 1.5
    times = np.arange(1, cfg.horizon + 1) * cfg.horizon_s / cfg.horizon
    back = np.stack([-0.3 * times, 0.05 * times], 1)
    assert pure_pursuit(back, 0.0, cfg, 1.0, speed_gain=gain)[0] == 0.0        # standing: stay
    assert pure_pursuit(back, 2.0, cfg, 1.0, speed_gain=gain)[0] == pytest.approx(-gain * 2.0)  # stop
    # the arc length alone read the same plan as a forward pace of 0.3 m/s
    assert np.min(path_arc(back)[1][1:] / times) > 0.29
