"""Exhaustive checks of the CFloat formats: every code of every format for every bias.

References are computed independently of the implementation: values from the bit fields
with Python fractions (8-bit) or numpy float64 (16-bit, exact there), nearest-even rounding
by searching the sorted value set, and ml_dtypes / numpy float16 for the IEEE-like biases.
Round to nearest even is checked for every format and every bias 0..63 on every value,
every midpoint between neighbours (the ties), the float32 just above and below each
midpoint, both signs, beyond the largest magnitude and below the smallest denormal.
"""

import bisect
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import torch

from opendojo.numerics import (CFLOAT8_1_4_3, CFLOAT8_1_5_2, CFLOAT16_SIGNED,
                               CFLOAT16_UNSIGNED, CFloatError, Flags)
from opendojo.numerics.formats import _encode_magnitude, value_table

FORMATS8 = [CFLOAT8_1_4_3, CFLOAT8_1_5_2]
FORMATS16 = [CFLOAT16_SIGNED, CFLOAT16_UNSIGNED]
ALL = FORMATS8 + FORMATS16
BIASES = range(64)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors here are small (<= 2**20 elements): intra-op threads only add overhead,
    and on a busy machine OpenMP's spinning threads slow these tests down ten-fold."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ref_value(fmt, bias, code):
    """Exact value of one code from its fields (IEEE denormal convention 0.M x 2**(1-bias))."""
    m, e = fmt.mantissa_bits, fmt.exponent_bits
    man = code & ((1 << m) - 1)
    exp = (code >> m) & ((1 << e) - 1)
    neg = fmt.signed and (code >> (e + m)) & 1
    if exp == 0:
        v = Fraction(man, 1 << m) * Fraction(2) ** (1 - bias)
    else:
        v = (1 + Fraction(man, 1 << m)) * Fraction(2) ** (exp - bias)
    return -v if neg else v


def ref_values_np(fmt, bias):
    """float64 values of all codes (exact: at most 11 significant bits, exponents in range)."""
    m, e = fmt.mantissa_bits, fmt.exponent_bits
    codes = np.arange(1 << fmt.bits, dtype=np.int64)
    man = codes & ((1 << m) - 1)
    exp = (codes >> m) & ((1 << e) - 1)
    v = np.where(exp == 0, man / 2.0**m * 2.0 ** (1 - bias),
                 (1 + man / 2.0**m) * np.exp2((exp - bias).astype(np.float64)))
    if fmt.signed:
        v = np.where((codes >> (e + m)) & 1, -v, v)
    return v


def positive_grid(fmt, bias):
    """(magnitude codes, float64 values) of the non-negative values, ascending."""
    codes = np.arange(fmt.max_magnitude_code + 1)
    return codes, ref_values_np(fmt, bias)[codes]


def rne_reference(fmt, bias, x):
    """Round float64 x (exact copies of float32 inputs) to nearest, ties to the code with an
    even mantissa, clamping beyond the largest magnitude; returns full codes."""
    codes, vals = positive_grid(fmt, bias)
    a = np.abs(x)
    hi = np.searchsorted(vals, a, side="left").clip(1, len(vals) - 1)
    lo = hi - 1
    dlo, dhi = a - vals[lo], vals[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (codes[hi] % 2 == 0))
    mag = np.where(pick_hi, codes[hi], codes[lo])
    mag = np.where(a >= vals[-1], codes[-1], mag)
    if fmt.signed:
        return mag | (np.signbit(x).astype(np.int64) << (fmt.bits - 1))
    return np.where(np.signbit(x), 0, mag)


def probe_points(fmt, bias, both_signs=True):
    """Every value, every midpoint between neighbours, and one float32 ulp either side of
    every midpoint, both signs, plus points beyond the largest magnitude and tiny ones."""
    _, vals = positive_grid(fmt, bias)
    assert np.all(vals.astype(np.float32).astype(np.float64) == vals)  # exact in float32
    mids = ((vals[1:] + vals[:-1]) / 2).astype(np.float32)
    assert np.all(mids.astype(np.float64) == (vals[1:] + vals[:-1]) / 2)  # exact in float32
    pts = [vals.astype(np.float32), mids,
           np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(0)),
           np.array([vals[-1] * 1.5, vals[-1] * 4, 3e38, vals[1] / 4, 1e-45], np.float32)]
    p = np.concatenate(pts)
    p = p[np.isfinite(p)]
    return np.concatenate([p, -p]) if both_signs else p


# ---- values and round trip --------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS8, ids=lambda f: f.name)
def test_every_8bit_code_decodes_to_its_exact_value_for_every_bias(fmt):
    for bias in BIASES:
        got = fmt.decode(torch.arange(256, dtype=torch.int32).to(torch.uint8), bias)
        want = [ref_value(fmt, bias, c) for c in range(256)]
        assert [Fraction(float(v)) for v in got] == want, bias


@pytest.mark.parametrize("fmt", FORMATS16, ids=lambda f: f.name)
def test_every_16bit_code_decodes_to_its_exact_value_for_every_bias(fmt):
    codes = torch.arange(1 << 16, dtype=torch.int32).to(torch.uint16)
    for bias in BIASES:
        got = fmt.decode(codes, bias).double().numpy()
        np.testing.assert_array_equal(got, ref_values_np(fmt, bias))
    # spot-check the float64 reference against exact fractions
    for bias in (0, 15, 31, 63):
        ref = ref_values_np(fmt, bias)
        for c in list(range(0, 70)) + list(range(1000, 1100)) + list(range(65400, 65536)):
            assert Fraction(float(ref[c])) == ref_value(fmt, bias, c)


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_encode_decode_round_trip_every_code_every_bias(fmt):
    codes = torch.arange(1 << fmt.bits, dtype=torch.int32).to(fmt.code_dtype)
    for bias in BIASES:
        vals = fmt.decode(codes, bias)
        # stochastic rounding of an exact value is exact too (nothing is dropped, whatever
        # the random draw): every code, every bias, every format
        for rounding in ("nearest", "stochastic"):
            back = fmt.encode(vals, bias, rounding, seed=bias)
            assert torch.equal(back, codes), (bias, rounding)


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_value_line_is_monotone_and_continuous_at_the_normal_boundary(fmt):
    m = fmt.mantissa_bits
    for bias in BIASES:
        _, vals = positive_grid(fmt, bias)
        gaps = np.diff(vals)
        assert np.all(gaps > 0)
        q = 2.0 ** (1 - bias - m)  # spacing of the denormals and of the first normal binade
        # last denormal -> first normal -> second normal: equal steps (no jump, no overlap)
        k = 1 << m  # magnitude code of the smallest normal
        assert vals[k] == 2.0 ** (1 - bias) == fmt.min_normal(bias)
        assert gaps[k - 1] == q and gaps[k] == q and np.all(gaps[: 2 * k] == q)
        assert vals[1] == fmt.min_denormal(bias) == q
        assert vals[-1] == fmt.max_value(bias)


# ---- round to nearest even ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS8, ids=lambda f: f.name)
def test_rne_matches_exact_fraction_reference_8bit(fmt):
    for bias in BIASES:
        vals = sorted({ref_value(fmt, bias, c) for c in range(fmt.max_magnitude_code + 1)})
        codes_of = {ref_value(fmt, bias, c): c for c in range(fmt.max_magnitude_code + 1)}
        x = probe_points(fmt, bias)
        got = fmt.encode(torch.from_numpy(x), bias).numpy().astype(np.int64)
        for xi, gi in zip(x.tolist(), got.tolist()):
            a = abs(Fraction(xi))
            if a >= vals[-1]:
                want = codes_of[vals[-1]]
            else:
                i = bisect.bisect_right(vals, a)  # vals[i-1] <= a < vals[i]
                lo, hi = vals[i - 1], vals[i]
                if a - lo < hi - a:
                    want = codes_of[lo]
                elif hi - a < a - lo:
                    want = codes_of[hi]
                else:  # tie: even mantissa
                    want = codes_of[lo] if codes_of[lo] % 2 == 0 else codes_of[hi]
            if xi < 0 or (xi == 0 and str(xi).startswith("-")):
                want |= 0x80
            assert gi == want, (bias, xi)


def fraction_rne_check(fmt, bias, x, got):
    """Exact check, in Python fractions, that each code in `got` is x rounded to nearest even:
    its value is at least as close to |x| as both neighbouring codes' values (on a monotone
    value line, checked by test_value_line_is_monotone..., that makes it the nearest of all),
    an exact tie goes to the even code, and |x| beyond the largest value gives the largest."""
    top = fmt.max_magnitude_code
    sign = 1 << (fmt.bits - 1) if fmt.signed else 0
    for xi, gi in zip(x.tolist(), got.tolist()):
        neg = xi < 0 or (xi == 0 and np.signbit(xi))
        if neg and not fmt.signed:
            assert gi == 0, (bias, xi)
            continue
        if fmt.signed:
            assert bool(gi & sign) == neg, (bias, xi, gi)
        c = gi & top
        a = abs(Fraction(xi))
        d = abs(a - ref_value(fmt, bias, c))
        for nb in (c - 1, c + 1):
            if 0 <= nb <= top:
                dn = abs(a - ref_value(fmt, bias, nb))
                assert d < dn or (d == dn and c % 2 == 0), (bias, xi, gi)


@pytest.mark.parametrize("fmt", FORMATS8, ids=lambda f: f.name)
def test_rne_matches_sorted_value_set_reference_every_bias_8bit(fmt):
    for bias in BIASES:
        x = probe_points(fmt, bias)
        got = fmt.encode(torch.from_numpy(x), bias).numpy().astype(np.int64)
        np.testing.assert_array_equal(got, rne_reference(fmt, bias, x.astype(np.float64)),
                                      err_msg=f"bias {bias}")


@pytest.mark.parametrize("fmt", FORMATS16, ids=lambda f: f.name)
def test_rne_16bit_every_probe_point_every_bias_exact_reference(fmt):
    """Every bias 0..63; per bias every value, every midpoint (tie), the next float32 above
    and below each midpoint, points beyond the largest value (overflow clamps) and below the
    smallest denormal, both signs (negative inputs go to 0 in the unsigned format).

    The float64 reference `rne_reference` is exact here: every CFloat16 value has at most 11
    significant bits and every midpoint at most 12, with exponents within -73..63, far inside
    float64's 53 bits and normal range, so `ref_values_np` and the midpoints are exact;
    the probes are float32 (24 bits), exact in float64; and the two distances compared,
    |x| - lo and hi - |x| with lo <= |x| < hi adjacent values, are exact by Sterbenz's lemma
    (lo and hi are within a factor 2 of |x| when lo > 0; |x| - 0 is exact, and when
    |x| < hi/2 the rounded hi - |x| still exceeds hi/2 > |x|, so the comparison is right;
    at or beyond the largest value the clamp decides, not the distances).
    The sampled points are also checked in exact fractions (`fraction_rne_check`), which
    does not rely on any of that."""
    rng = np.random.default_rng(16)
    for bias in BIASES:
        x = probe_points(fmt, bias)  # positives, then the same negated
        got = fmt.encode(torch.from_numpy(x), bias).numpy().astype(np.int64)
        # the reference rounds |x| and then applies the sign; it is computed on the positive
        # half only (half the time) and mirrored: sign bit set, or 0 in the unsigned format
        half = x.size // 2
        pos = rne_reference(fmt, bias, x[:half].astype(np.float64))
        neg = pos | (1 << (fmt.bits - 1)) if fmt.signed else np.zeros_like(pos)
        np.testing.assert_array_equal(got, np.concatenate([pos, neg]), err_msg=f"bias {bias}")
        # the mirror itself, against the unmirrored reference, on a slice of the negatives
        sl = slice(half, half + 4096)
        np.testing.assert_array_equal(got[sl], rne_reference(fmt, bias, x[sl].astype(np.float64)))
        # a sample in exact fractions: the ends of the value line, the normal boundary and
        # random points of every kind
        # (probe_points lays out values, midpoints, above, below: blocks of n or n - 1,
        # then the extremes, then all of it negated)
        n = fmt.max_magnitude_code + 1
        k = 1 << fmt.mantissa_bits
        ends = np.r_[0:4, k - 2:k + 2, n - 4:n]
        idx = np.concatenate([ends + j * (n - 1) + h for j in range(4) for h in (0, half)] +
                             [rng.integers(0, x.size, 32), np.r_[half - 6:half + 6],
                              np.r_[x.size - 6:x.size]])
        idx = np.unique(idx[idx < x.size])
        fraction_rne_check(fmt, bias, x[idx], got[idx])


@pytest.mark.parametrize("fmt", FORMATS8, ids=lambda f: f.name)
def test_fast_table_path_equals_reference_encoder_on_random_bit_patterns(fmt):
    g = torch.Generator().manual_seed(1)
    bits = torch.randint(-(2**31), 2**31, (1 << 15,), generator=g, dtype=torch.int64)
    x_all = bits.to(torch.int32).view(torch.float32)
    for bias in BIASES:
        # also inputs concentrated around this bias's range, where ties are dense
        near = (torch.randn(1 << 13, generator=g) * fmt.max_value(bias) / 4).float()
        x = torch.cat([x_all, near])
        fast = fmt.encode(x, bias)  # 8-bit nearest: table path
        slow = fmt._finish(x, _encode_magnitude(x, fmt, bias, None)[0])  # reference path
        assert torch.equal(fast, slow), bias
        ref = rne_reference(fmt, bias, x.double().numpy())
        finite = torch.isfinite(x).numpy()
        np.testing.assert_array_equal(fast.numpy()[finite].astype(np.int64), ref[finite])


# ---- agreement with ml_dtypes and IEEE float16 -------------------------------------------------
@pytest.mark.parametrize("fmt,bias,dtype,top", [
    (CFLOAT8_1_4_3, 7, ml_dtypes.float8_e4m3fn, 448.0),
    (CFLOAT8_1_5_2, 15, ml_dtypes.float8_e5m2, 57344.0),
    (CFLOAT16_SIGNED, 15, np.float16, 65504.0),
], ids=["e4m3fn", "e5m2", "float16"])
def test_agrees_with_ml_dtypes_and_ieee_on_common_finite_range(fmt, bias, dtype, top):
    udt = np.uint8 if fmt.bits == 8 else np.uint16
    codes = np.arange(1 << fmt.bits).astype(udt)
    theirs = codes.view(dtype).astype(np.float64)
    common = np.isfinite(theirs)
    ours = fmt.decode(torch.from_numpy(codes.astype(np.int32)), bias).double().numpy()
    np.testing.assert_array_equal(ours[common], theirs[common])
    assert common.sum() >= (1 << fmt.bits) - 2 * (1 << (fmt.mantissa_bits + 1))
    # encoding: random float32 and every probe point inside the common range
    g = np.random.default_rng(0)
    x = np.concatenate([probe_points(fmt, bias),
                        (g.standard_normal(1 << 18) * top / 8).astype(np.float32),
                        np.exp2(g.uniform(-40, 17, 1 << 16)).astype(np.float32)])
    x = x[np.abs(x) <= top]
    got = fmt.encode(torch.from_numpy(x), bias).numpy()
    np.testing.assert_array_equal(got, x.astype(dtype).view(udt))


# ---- specials and flags ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_inf_nan_and_overflow_clamp_to_largest_magnitude_of_their_sign(fmt):
    bias = 20
    mx = fmt.max_value(bias)
    half = mx / 2  # representable
    x = torch.tensor([float("inf"), -float("inf"), float("nan"), -float("nan"),
                      mx * 3, -mx * 3, 3e38, half])
    for rounding in ("nearest", "stochastic"):
        y, flags = fmt.quantize(x, bias, rounding, seed=0, return_flags=True)
        if fmt.signed:
            want = [mx, -mx, mx, -mx, mx, -mx, mx, half]
            assert flags == Flags(invalid=4, denormal=0, overflow=3, underflow=0)
        else:  # no negative numbers: the nearest value to a negative input is 0
            want = [mx, 0.0, mx, 0.0, mx, 0.0, mx, half]
            # negative inputs are invalid for the unsigned format (-Inf, -NaN, -3 max)
            assert flags == Flags(invalid=5, denormal=0, overflow=2, underflow=0)
        assert y.tolist() == want
        assert not torch.isnan(y).any() and torch.isfinite(y).all()


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_flag_counts_match_independent_counts(fmt):
    g = np.random.default_rng(3)
    for bias in (0, 7, 15, 40, 63):
        vals = ref_values_np(fmt, bias)
        mn, mx = fmt.min_normal(bias), fmt.max_value(bias)
        x = np.concatenate([
            np.exp2(g.uniform(np.log2(mn) - 14, np.log2(mx) + 3, 20000)),
            [np.inf, np.nan, 0.0, mn / 2, mn, mx],
        ]).astype(np.float32)
        x = np.where(g.random(x.size) < 0.5, -x, x) if fmt.signed else x
        codes, flags = fmt.encode(torch.from_numpy(x), bias, return_flags=True)
        y = vals[codes.numpy().astype(np.int64)]
        a = np.abs(x.astype(np.float64))
        finite = np.isfinite(a)
        ref_codes = rne_reference(fmt, bias, np.where(finite, x, 0).astype(np.float64))
        assert flags.invalid == int((~finite).sum())
        assert flags.overflow == int((finite & (a > mx) & (a >= mx + 2.0 ** (
            np.floor(np.log2(mx)) - fmt.mantissa_bits - 1))).sum())
        yy = vals[ref_codes]
        assert flags.denormal == int((finite & (yy != 0) & (np.abs(yy) < mn)).sum())
        assert flags.underflow == int((finite & (a > 0) & (a < mn) & (np.abs(yy) != a)).sum())
        assert np.array_equal(y[finite], yy[finite])


def test_bfloat16_and_float16_inputs_encode_like_their_float32_copies():
    x = torch.randn(4096) * 30
    for fmt in ALL:
        for dt in (torch.bfloat16, torch.float16):
            xd = x.to(dt)
            assert torch.equal(fmt.encode(xd, 12), fmt.encode(xd.float(), 12))
            assert fmt.quantize(xd, 12).dtype == dt


def test_user_errors_are_cfloat_errors():
    with pytest.raises(CFloatError, match="bias"):
        CFLOAT8_1_4_3.encode(torch.ones(3), 64)
    with pytest.raises(CFloatError, match="bias"):
        CFLOAT8_1_4_3.decode(torch.ones(3, dtype=torch.uint8), -1)
    with pytest.raises(CFloatError, match="rounding"):
        CFLOAT8_1_4_3.encode(torch.ones(3), 7, "up")
    with pytest.raises(CFloatError, match="float64"):
        CFLOAT8_1_4_3.encode(torch.ones(3, dtype=torch.float64), 7)


def test_value_table_has_no_inf_or_nan():
    for fmt in ALL:
        for bias in (0, 63):
            t = value_table(fmt, bias)
            assert torch.isfinite(t).all()
            assert _encode_magnitude(t.abs(), fmt, bias, None)[0].max() == fmt.max_magnitude_code
