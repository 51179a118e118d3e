"""apply_precision: CFloat layers that keep the float32 parameters and train."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from opendojo.errors import ConfigError
from opendojo.numerics import (CFLOAT8_1_4_3, CFLOAT8_1_5_2, CFLOAT16_SIGNED, apply_precision,
                               bias_for_amax)
from opendojo.numerics.training import CFloatConv2d, CFloatLinear, cfloat_layers
from opendojo.train.model import PolicyConfig, PolicyNet

SMALL = PolicyConfig(frames=2, image_size=32, width=8, stages=2, hidden=32, horizon=3)


def on_grid(fmt, bias, t):
    return torch.equal(fmt.quantize(t, bias), t)


def test_policy_layers_are_swapped_and_parameters_kept():
    torch.manual_seed(0)
    model = PolicyNet(SMALL)
    params = {n: p for n, p in model.named_parameters()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n_lin = sum(isinstance(m, nn.Linear) for m in model.modules())
    n_conv = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    out = apply_precision(model, "cfloat8")
    assert out is model
    kinds = [type(m) for _, m in cfloat_layers(model)]
    assert kinds.count(CFloatLinear) == n_lin and kinds.count(CFloatConv2d) == n_conv
    for n, p in model.named_parameters():
        assert p is params[n]  # same Parameter objects: an existing optimizer still works
    sd = model.state_dict()
    assert sd.keys() == before.keys()
    assert all(torch.equal(sd[k], before[k]) for k in sd)
    fresh = PolicyNet(SMALL)
    fresh.load_state_dict(sd, strict=True)  # float32 checkpoints load both ways
    model.load_state_dict(fresh.state_dict(), strict=True)
    apply_precision(model, "float32")
    assert not cfloat_layers(model)
    assert all(type(m) in (nn.Linear, nn.Conv2d) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv2d)))


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        apply_precision(nn.Linear(2, 2), "fp8")


def test_linear_forward_uses_cfloat8_weights_and_activations():
    torch.manual_seed(1)
    lin = nn.Linear(16, 8)
    x = torch.randn(5, 16) * 3
    ref_lin = nn.Linear(16, 8)
    ref_lin.load_state_dict(lin.state_dict())
    q = apply_precision(lin, "cfloat8")
    y = q(x)
    bx = bias_for_amax(float(x.abs().max()), CFLOAT8_1_4_3)
    bw = bias_for_amax(float(lin.weight.detach().abs().max()), CFLOAT8_1_4_3)
    want = F.linear(CFLOAT8_1_4_3.quantize(x, bx), CFLOAT8_1_4_3.quantize(lin.weight, bw),
                    lin.bias)
    torch.testing.assert_close(y, want, rtol=0, atol=0)
    assert not torch.equal(y, ref_lin(x))  # it is not float32 in disguise


def test_linear_backward_gradient_is_stochastic_cfloat8_1_5_2_and_seeded():
    torch.manual_seed(2)
    g_out = torch.randn(64, 8) * 1e-3

    def run(seed):
        lin = nn.Linear(8, 8, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.eye(8))  # exact in CFloat8: x.grad is the rounded g_out
        lin = apply_precision(lin, "cfloat8", seed=seed)
        x = torch.randn(64, 8, requires_grad=True)
        lin(x).backward(g_out)
        return x.grad, lin.quantizers.grad.last_bias

    g1, b1 = run(0)
    g1b, _ = run(0)
    g2, _ = run(1)
    assert b1 == bias_for_amax(float(g_out.abs().max()), CFLOAT8_1_5_2)
    assert on_grid(CFLOAT8_1_5_2, b1, g1)
    assert torch.equal(g1, g1b) and not torch.equal(g1, g2)
    # stochastic rounding: each element is one of the two grid neighbours of g_out
    vals = CFLOAT8_1_5_2.decode(torch.arange(256, dtype=torch.int32), b1).sort().values
    lo = (torch.searchsorted(vals, g_out, right=True) - 1).clamp(0, 254)
    assert ((g1 == vals[lo]) | (g1 == vals[lo + 1])).all()
    assert not torch.equal(g1, CFLOAT8_1_5_2.quantize(g_out, b1))  # not round-to-nearest


@pytest.mark.parametrize("precision,ffmt,gfmt", [("cfloat8", CFLOAT8_1_4_3, CFLOAT8_1_5_2),
                                                 ("cfloat16", CFLOAT16_SIGNED, CFLOAT16_SIGNED)])
def test_conv_gradients_match_autograd_on_the_rounded_tensors(precision, ffmt, gfmt):
    torch.manual_seed(3)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True)
    x = torch.randn(2, 4, 9, 9)
    g = torch.randn(2, 6, 5, 5)
    ref_w = conv.weight.detach().clone()
    q = apply_precision(conv, precision, seed=7)
    xr = x.clone().requires_grad_(True)
    q(xr).backward(g)
    qs = q.quantizers
    xq = ffmt.quantize(x, qs.input.last_bias).requires_grad_(True)
    wq = ffmt.quantize(ref_w, qs.weight.last_bias).requires_grad_(True)
    b = conv.bias.detach().clone().requires_grad_(True)
    gq = gfmt.quantize(g, qs.grad.last_bias, "stochastic",
                       generator=torch.Generator().manual_seed(qs.grad.seed))
    F.conv2d(xq, wq, b, 2, 1).backward(gq)
    torch.testing.assert_close(xr.grad, xq.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(q.weight.grad, wq.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(q.bias.grad, b.grad, rtol=1e-6, atol=1e-7)


def test_policy_trains_in_cfloat8_with_an_optimizer_built_before_the_swap():
    torch.manual_seed(4)
    model = PolicyNet(SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    apply_precision(model, "cfloat8", seed=0)
    frames = torch.rand(8, SMALL.frames, 3, SMALL.image_size, SMALL.image_size)
    speed, cmd = torch.rand(8) * 30, torch.randint(0, 3, (8,))
    target = frames.mean(dim=(1, 2, 3, 4)).unsqueeze(-1).repeat(1, 2) * 4
    losses = []
    for _ in range(15):
        loss = F.mse_loss(model(frames, speed, cmd)["controls"], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]
    for p in model.parameters():
        assert p.dtype == torch.float32  # float32 master weights
