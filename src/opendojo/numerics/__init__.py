"""opendojo.numerics: Dojo's configurable floats (CFloat8, CFloat16) and training in them.

See docs/numerics.md.
"""

from .bias import DelayedBias, amax_of, bias_for_amax
from .formats import (CFLOAT8_1_4_3, CFLOAT8_1_5_2, CFLOAT16_SIGNED, CFLOAT16_UNSIGNED,
                      FORMATS, ROUNDING_MODES, CFloatError, CFloatFormat, Flags, get_format,
                      use_compiled_kernels)

__all__ = [
    "CFLOAT8_1_4_3", "CFLOAT8_1_5_2", "CFLOAT16_SIGNED", "CFLOAT16_UNSIGNED", "FORMATS",
    "ROUNDING_MODES", "CFloatError", "CFloatFormat", "Flags", "get_format", "use_compiled_kernels",
    "DelayedBias", "amax_of", "bias_for_amax",
]
from .training import PRECISIONS, apply_precision  # noqa: E402

__all__ += ["PRECISIONS", "apply_precision"]
