"""Workload extraction and the performance model (tiny networks; no timings asserted)."""

import dataclasses
import pathlib

import pytest

from opendojo.machine.perf import LinkLevel, allreduce_time, build_machine, predict
from opendojo.machine.spec import Catalog
from opendojo.machine.workload import policy_workload


@pytest.fixture(scope="module")
def cat():
    return Catalog.load(host=pathlib.Path("/nonexistent/host.yaml"))


@pytest.fixture(scope="module")
def wl():
    return policy_workload(width=4, stages=2, hidden=16, batch=2, image_size=32)


def test_flops_match_pytorch_flop_counter(wl):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from opendojo.machine.workload import policy_loss
    from opendojo.train.model import PolicyConfig, PolicyNet, example_inputs

    cfg = PolicyConfig(width=4, stages=2, hidden=16, image_size=32)
    net = PolicyNet(cfg)
    opt = torch.optim.AdamW(net.parameters())
    with FlopCounterMode(display=False) as fc:
        policy_loss(net(*example_inputs(cfg, 2))).backward()
        opt.step()
    assert wl.flops == fc.get_total_flops() > 0
    ph = wl.phase_flops()
    assert ph["backward"] > ph["forward"] > 0
    assert wl.optimizer_bytes == pytest.approx(2 * wl.param_bytes)   # AdamW: m and v
    assert any(r["layer"].startswith("encoder.0") for r in wl.layers())


def test_scaling_to_another_batch_matches_a_trace(wl):
    direct = policy_workload(width=4, stages=2, hidden=16, batch=5, image_size=32)
    scaled = wl.at_batch(5)
    assert scaled.flops == pytest.approx(direct.flops)
    assert scaled.bytes_moved == pytest.approx(direct.bytes_moved, rel=1e-6)
    assert scaled.activation_bytes == pytest.approx(direct.activation_bytes)


def test_allreduce_grows_with_bytes_and_shrinks_with_bandwidth():
    slow = [LinkLevel("a", 8, 100e9, 1e-6), LinkLevel("b", 4, 10e9, 5e-6)]
    fast = [dataclasses.replace(lv, bandwidth=lv.bandwidth * 4) for lv in slow]
    assert allreduce_time(2e9, slow) > allreduce_time(1e9, slow) > allreduce_time(1e9, fast) > 0
    assert allreduce_time(1e9, []) == 0.0


def test_working_set_that_does_not_fit_d1_sram_spills(wl, cat):
    d1 = build_machine("d1", cat=cat)
    small = predict(wl, d1, 2)
    assert small.fits_sram and small.memory_level == "SRAM"
    big = dataclasses.replace(wl.at_batch(2), param_bytes=300e6, grad_bytes=300e6)
    p = predict(big, d1)
    assert not p.fits_sram and p.spill_fraction > 0 and "HBM" in p.memory_level
    tile = predict(big, build_machine("tile", cat=cat))
    assert tile.fits_sram                      # 11 GB holds what 440 MB does not
    assert p.step_s > predict(dataclasses.replace(big, param_bytes=1, grad_bytes=1), d1).step_s


def test_data_parallel_scaling_and_outputs(wl, cat):
    one = predict(wl, build_machine("h100", cat=cat), 8, usd_per_unit_hour=2.0)
    many = predict(wl, build_machine("h100_superpod", cat=cat), 8, usd_per_unit_hour=2.0)
    assert many.n_units == 256 and many.global_batch == 256 * 8
    assert many.breakdown["allreduce_s"] > 0 == one.breakdown["allreduce_s"]
    assert many.samples_per_s > one.samples_per_s
    assert many.frames_per_s == pytest.approx(many.samples_per_s * 4)
    assert 0 < many.utilisation <= 1 and many.energy_j > one.energy_j > 0
    assert many.cost_usd > one.cost_usd > 0
    pod = predict(wl, build_machine("exapod", cat=cat), 8)
    assert pod.n_units == 120 and pod.power_w == pytest.approx(cat.power_w("exapod"))
