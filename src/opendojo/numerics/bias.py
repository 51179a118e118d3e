"""Choosing a CFloat exponent bias per tensor.

The bias plays the role of the scale in FP8 training recipes: a larger bias moves the
format's window of exponents towards zero (finer resolution, smaller maximum), a smaller
bias towards large numbers. The best bias for a tensor is the largest one whose maximum
still covers the tensor's largest magnitude ("amax") times 2**margin.

`bias_for_amax` does this for the tensor at hand ("current" scaling). `DelayedBias` uses a
short history of amaxes from previous steps ("delayed" scaling, as in Transformer Engine's
FP8 recipe), so the bias is known before the tensor is computed and a single outlier step
does not shrink the range of the next.
"""

from __future__ import annotations

import math
from collections import deque

import torch

from .formats import BIAS_MAX, BIAS_MIN, CFloatError, CFloatFormat, get_format


def bias_for_amax(amax: float, fmt: CFloatFormat | str, margin: int = 0) -> int:
    """Largest bias in 0..63 with fmt.max_value(bias) >= amax * 2**margin.

    amax 0 (an all-zero tensor) gives the format's default bias; an amax too large for any
    bias gives 0 (the widest range: the excess clamps); Inf/NaN amax gives 0 too.
    """
    fmt = get_format(fmt)
    if not isinstance(margin, int) or margin < 0:
        raise CFloatError(f"bias margin must be a non-negative integer, got {margin!r}")
    amax = float(amax)
    if amax == 0.0:
        return fmt.default_bias
    if not math.isfinite(amax):
        return BIAS_MIN
    amax = abs(amax)
    # max_value(b) = (2 - 2**-m) * 2**(emax_field - b) >= amax * 2**margin
    b = math.floor(fmt.max_exponent_field + math.log2(2.0 - 2.0**-fmt.mantissa_bits)
                   - math.log2(amax) - margin)
    b = min(max(b, BIAS_MIN), BIAS_MAX)
    target = amax * 2.0**margin
    # guard against log2 rounding at exact powers of two
    while b > BIAS_MIN and fmt.max_value(b) < target:
        b -= 1
    while b < BIAS_MAX and fmt.max_value(b + 1) >= target:
        b += 1
    return int(b)


def amax_of(t: torch.Tensor) -> float:
    """Largest finite magnitude of a tensor (0 for an empty one)."""
    if t.numel() == 0:
        return 0.0
    a = t.detach().abs()
    a = torch.where(torch.isfinite(a), a, torch.zeros((), dtype=a.dtype, device=a.device))
    return float(a.max())


class DelayedBias:
    """Bias from the largest amax of the last `history` steps.

    `bias(t)` returns the bias to use for tensor `t`: from the history when there is one,
    otherwise from `t` itself (the first step). `update(t)` (or `bias(t, record=True)`)
    appends t's amax. Plain Python state: not part of any state_dict.
    """

    def __init__(self, fmt: CFloatFormat | str, history: int = 16, margin: int = 0):
        if not isinstance(history, int) or history < 1:
            raise CFloatError(f"bias history must be a positive integer, got {history!r}")
        self.fmt = get_format(fmt)
        self.margin = margin
        self.amaxes: deque[float] = deque(maxlen=history)

    def bias(self, t: torch.Tensor | None = None, record: bool = True) -> int:
        current = amax_of(t) if t is not None else None
        if self.amaxes:
            b = bias_for_amax(max(self.amaxes), self.fmt, self.margin)
        elif current is not None:
            b = bias_for_amax(current, self.fmt, self.margin)
        else:
            b = self.fmt.default_bias
        if record and current is not None:
            self.amaxes.append(current)
        return b

    def update(self, t: torch.Tensor) -> None:
        self.amaxes.append(amax_of(t))

    def __repr__(self) -> str:
        return (f"DelayedBias({self.fmt.name}, history={self.amaxes.maxlen}, "
                f"margin={self.margin}, seen={len(self.amaxes)})")
