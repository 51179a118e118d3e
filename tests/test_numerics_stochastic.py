"""Stochastic rounding (unbiased, reproducible) and bias selection."""

import math

import numpy as np
import pytest
import torch

from opendojo.numerics import (CFLOAT8_1_4_3, CFLOAT8_1_5_2, CFLOAT16_SIGNED,
                               CFLOAT16_UNSIGNED, CFloatError, DelayedBias, bias_for_amax)

N = 10**6


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Element-wise work on ~1e6 elements: on a busy machine OpenMP's spinning intra-op
    threads make these tests several times slower than one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def neighbours(fmt, bias, x):
    """The representable values just below and above x > 0, from the RNE value grid."""
    vals = fmt.decode(torch.arange(fmt.max_magnitude_code + 1, dtype=torch.int32), bias)
    vals = vals.double().numpy()
    i = np.searchsorted(vals, x, side="right")
    return vals[i - 1], vals[i]


@pytest.mark.parametrize("fmt,bias,x", [
    (CFLOAT8_1_5_2, 15, 1.3),            # normal binade
    (CFLOAT8_1_5_2, 15, 2.0**-15 * 0.3),  # denormals
    (CFLOAT8_1_4_3, 7, 100.7),
    (CFLOAT8_1_4_3, 40, 2.0**-41 * 0.77),
    (CFLOAT16_SIGNED, 15, 0.1),
    (CFLOAT16_UNSIGNED, 31, 3.3e-10),
], ids=["e5m2-normal", "e5m2-denormal", "e4m3-normal", "e4m3-denormal", "f16s", "f16u"])
def test_stochastic_rounding_is_unbiased_over_a_million_draws(fmt, bias, x):
    x32 = float(np.float32(x))
    lo, hi = neighbours(fmt, bias, x32)
    assert lo < x32 < hi
    y = fmt.quantize(torch.full((N,), x32), bias, "stochastic", seed=123).double().numpy()
    assert set(np.unique(y)) <= {lo, hi}  # only the two neighbours ever come out
    p = (x32 - lo) / (hi - lo)  # the exact probability of rounding up
    # each draw's error is (hi-lo) * (B - p) with B ~ Bernoulli(p): mean 0, sd (hi-lo)*sqrt(p(1-p))
    sd_mean = (hi - lo) * math.sqrt(p * (1 - p) / N)
    err = y.mean() - x32
    assert abs(err) < 5 * sd_mean, (err, sd_mean)
    # and it is not round-to-nearest in disguise: the fraction going up is p
    assert abs((y == hi).mean() - p) < 5 * math.sqrt(p * (1 - p) / N)


def test_stochastic_rounding_mean_error_over_a_spread_of_inputs():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(N, generator=g) * 3
    y = CFLOAT8_1_5_2.quantize(x, 15, "stochastic", seed=1)
    nearest = CFLOAT8_1_5_2.quantize(x, 15)
    err = (y.double() - x.double())
    # |err| < one quantum <= 2**-2 * |x|; sd of the mean under independence is at most
    # sqrt(mean(q^2)/4)/sqrt(N)
    q = (2.0 ** (torch.floor(torch.log2(x.abs().double().clamp(min=2.0**-14))) - 2))
    bound = 5 * math.sqrt(float((q**2).mean()) / 4 / N)
    assert abs(float(err.mean())) < bound
    assert (err.abs() <= q + 1e-30).all()
    assert not torch.equal(y, nearest)


def test_same_seed_same_bits_different_seed_different_bits():
    x = torch.randn(100_000) * 10
    for fmt in (CFLOAT8_1_4_3, CFLOAT8_1_5_2, CFLOAT16_SIGNED):
        a = fmt.encode(x, 12, "stochastic", seed=42)
        b = fmt.encode(x, 12, "stochastic", seed=42)
        c = fmt.encode(x, 12, "stochastic", seed=43)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        s1 = [fmt.encode(x, 12, "stochastic", generator=g1) for _ in range(2)]
        s2 = [fmt.encode(x, 12, "stochastic", generator=g2) for _ in range(2)]
        assert torch.equal(s1[0], s2[0]) and torch.equal(s1[1], s2[1])
        assert not torch.equal(s1[0], s1[1])  # the generator advances


# ---- bias selection -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [CFLOAT8_1_4_3, CFLOAT8_1_5_2, CFLOAT16_SIGNED, CFLOAT16_UNSIGNED],
                         ids=lambda f: f.name)
def test_bias_for_amax_is_the_largest_bias_that_covers_amax(fmt):
    for amax in [1e-12, 3e-5, 0.1, 1.0, 1.5, 2.0, 448.0, 480.0, 481.0, 6e4, 1e9]:
        for margin in (0, 1, 3):
            b = bias_for_amax(amax, fmt, margin)
            target = amax * 2**margin
            covered = [bb for bb in range(64) if fmt.max_value(bb) >= target]
            want = max(covered) if covered else 0
            assert b == want, (amax, margin)
    assert bias_for_amax(0.0, fmt) == fmt.default_bias
    assert bias_for_amax(float("inf"), fmt) == 0


def test_chosen_bias_does_not_overflow_and_keeps_resolution():
    x = torch.randn(10_000) * 0.02
    b = bias_for_amax(float(x.abs().max()), CFLOAT8_1_4_3)
    _, flags = CFLOAT8_1_4_3.quantize(x, b, return_flags=True)
    assert flags.overflow == 0
    _, flags_next = CFLOAT8_1_4_3.quantize(x, b + 1, return_flags=True)
    assert flags_next.overflow > 0  # one more bias would have overflowed


def test_delayed_bias_uses_the_history_not_the_current_tensor():
    d = DelayedBias(CFLOAT8_1_4_3, history=3)
    small, big = torch.full((4,), 0.01), torch.full((4,), 100.0)
    b0 = d.bias(small)  # first step: nothing in the history, use the tensor itself
    assert b0 == bias_for_amax(0.01, CFLOAT8_1_4_3)
    assert d.bias(big) == b0  # delayed: the outlier only affects later steps
    b_big = bias_for_amax(100.0, CFLOAT8_1_4_3)
    assert d.bias(small) == b_big and d.bias(small) == b_big and d.bias(small) == b_big
    assert d.bias(small) == b0  # the outlier has left the 3-step history
    with pytest.raises(CFloatError):
        DelayedBias(CFLOAT8_1_4_3, history=0)
