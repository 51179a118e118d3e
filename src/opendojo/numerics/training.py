"""Training in CFloat: the hybrid recipe of the FP8 literature, in Dojo's formats.

`apply_precision(model, "cfloat8")` swaps every nn.Linear and nn.Conv2d of a model, in
place, for a CFloat-quantising equivalent that holds the *same* Parameter objects:

* forward: the layer's input (activation) and weight are rounded to nearest even in
  CFloat8_1_4_3, each with its own per-tensor delayed bias; the matmul / convolution itself
  runs in float32 on the rounded values (Dojo widens operands and rounds results back);
* backward: the gradient arriving at the layer's output is stochastically rounded to
  CFloat8_1_5_2 (per-tensor delayed bias, seeded generator), then both gradient GEMMs
  (w.r.t. input and weight) use it with the saved CFloat8 input and weight;
* master weights, layer biases, the optimizer and its state stay float32 and untouched;
  state_dict keys and values are exactly those of the float32 model (the delayed-bias
  histories are plain Python state, not buffers).

"cfloat16" uses signed CFloat16 (1,5,10) for all three tensors (RNE forward, stochastic
rounding backward). "float32" restores plain layers. Other layers (BatchNorm, Embedding,
activations) stay float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from opendojo.errors import ConfigError

from .bias import DelayedBias
from .formats import CFLOAT8_1_4_3, CFLOAT8_1_5_2, CFLOAT16_SIGNED, CFloatFormat, Flags

PRECISIONS = ("float32", "cfloat8", "cfloat16")


@dataclass(frozen=True)
class PrecisionRecipe:
    name: str
    forward_format: CFloatFormat     # weights and activations, round to nearest even
    gradient_format: CFloatFormat    # output gradients, stochastic rounding
    history: int = 16                # delayed bias: amax history length (steps)
    margin: int = 0                  # delayed bias: headroom in powers of two


RECIPES = {
    "cfloat8": PrecisionRecipe("cfloat8", CFLOAT8_1_4_3, CFLOAT8_1_5_2),
    "cfloat16": PrecisionRecipe("cfloat16", CFLOAT16_SIGNED, CFLOAT16_SIGNED),
}


class TensorQuantizer:
    """Rounds one tensor role (a layer's input, weight or output gradient) to a CFloat
    format with a per-tensor delayed bias; counts flags when `track_flags` is set."""

    def __init__(self, fmt: CFloatFormat, rounding: str, history: int, margin: int,
                 seed: int, track_flags: bool = False):
        self.fmt, self.rounding, self.seed = fmt, rounding, seed
        self.delayed = DelayedBias(fmt, history, margin)
        self.track_flags = track_flags
        self.flags = Flags(0, 0, 0, 0)
        self.last_bias: int | None = None
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.rounding != "stochastic":
            return None
        key = str(device)
        g = self._generators.get(key)
        if g is None:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed)
            self._generators[key] = g
        return g

    def __call__(self, t: torch.Tensor, record: bool = True) -> torch.Tensor:
        t = t.detach()
        bias = self.delayed.bias(t, record=record)
        self.last_bias = bias
        gen = self._generator(t.device)
        if self.track_flags:
            y, flags = self.fmt.quantize(t, bias, self.rounding, generator=gen,
                                         return_flags=True)
            self.flags = self.flags + flags
            return y
        return self.fmt.quantize(t, bias, self.rounding, generator=gen)


class _LayerQuantizers:
    def __init__(self, recipe: PrecisionRecipe, seed: int):
        r = recipe
        self.input = TensorQuantizer(r.forward_format, "nearest", r.history, r.margin, seed)
        self.weight = TensorQuantizer(r.forward_format, "nearest", r.history, r.margin, seed + 1)
        self.grad = TensorQuantizer(r.gradient_format, "stochastic", r.history, r.margin,
                                    seed + 2)


class _CFloatLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, q: _LayerQuantizers, record: bool):
        xq, wq = q.input(x, record), q.weight(weight, record)
        ctx.save_for_backward(xq, wq)
        ctx.q, ctx.has_bias = q, bias is not None
        return F.linear(xq, wq, bias)

    @staticmethod
    def backward(ctx, g):
        xq, wq = ctx.saved_tensors
        gq = ctx.q.grad(g)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = gq @ wq
        if ctx.needs_input_grad[1]:
            gw = gq.reshape(-1, gq.shape[-1]).t() @ xq.reshape(-1, xq.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gq.reshape(-1, gq.shape[-1]).sum(0)
        return gx, gw, gb, None, None


class _CFloatConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, q: _LayerQuantizers, record: bool, conv: nn.Conv2d):
        xq, wq = q.input(x, record), q.weight(weight, record)
        ctx.save_for_backward(xq, wq)
        ctx.q, ctx.conv, ctx.has_bias = q, conv, bias is not None
        return F.conv2d(xq, wq, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    @staticmethod
    def backward(ctx, g):
        xq, wq = ctx.saved_tensors
        c = ctx.conv
        gq = ctx.q.grad(g.contiguous())
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                ctx.has_bias and ctx.needs_input_grad[2]]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            gq, xq, wq, [wq.shape[0]] if ctx.has_bias else None, list(c.stride),
            list(c.padding), list(c.dilation), False, [0, 0], c.groups, mask)
        return gx, gw, (gb if mask[2] else None), None, None, None


class CFloatLinear(nn.Linear):
    """nn.Linear computing in CFloat (see the module docstring). Same parameters."""

    recipe: PrecisionRecipe
    quantizers: _LayerQuantizers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _CFloatLinearFn.apply(x, self.weight, self.bias, self.quantizers, self.training)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", precision={self.recipe.name}"


class CFloatConv2d(nn.Conv2d):
    """nn.Conv2d computing in CFloat (see the module docstring). Same parameters."""

    recipe: PrecisionRecipe
    quantizers: _LayerQuantizers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _CFloatConv2dFn.apply(x, self.weight, self.bias, self.quantizers, self.training,
                                     self)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", precision={self.recipe.name}"


def _recast(module: nn.Module, cls: type) -> nn.Module:
    """A new module of class `cls` sharing every parameter, buffer and attribute."""
    new = cls.__new__(cls)
    state = dict(module.__dict__)
    for k, v in state.items():
        if isinstance(v, dict):
            state[k] = v.copy()  # own (shallow) copies of _parameters, _buffers, hooks ...
    state.pop("recipe", None)
    state.pop("quantizers", None)
    new.__dict__.update(state)
    return new


def _conv_supported(conv: nn.Conv2d) -> bool:
    return conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


def apply_precision(model: nn.Module, precision: str, *, seed: int = 0) -> nn.Module:
    """Make `model` train in `precision` ("float32", "cfloat8" or "cfloat16"), in place.

    Returns the model (a new object only when `model` itself is a Linear/Conv2d). Layers
    keep their Parameter objects, so an optimizer built before or after the call, and
    float32 state_dicts, work unchanged. `seed` seeds the stochastic rounding of gradients
    (each layer gets its own stream, derived from the seed and the layer's position).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: expected one of "
                          f"{', '.join(PRECISIONS)}")
    recipe = RECIPES.get(precision)
    counter = [0]

    def convert(m: nn.Module) -> nn.Module:
        base = None
        if isinstance(m, nn.Linear):
            base, qcls = nn.Linear, CFloatLinear
        elif isinstance(m, nn.Conv2d) and _conv_supported(m):
            base, qcls = nn.Conv2d, CFloatConv2d
        if base is None:
            return m
        index = counter[0]
        counter[0] += 1
        if recipe is None:
            return _recast(m, base) if type(m) is qcls else m
        if type(m) not in (base, qcls):
            return m  # a user subclass with its own forward: leave it alone
        new = _recast(m, qcls)
        new.recipe = recipe
        new.quantizers = _LayerQuantizers(recipe, seed=(seed * 1_000_003 + 3 * index) % 2**62)
        return new

    def walk(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            new = convert(child)
            if new is not child:
                setattr(parent, name, new)
            else:
                walk(child)

    root = convert(model)
    if root is not model:
        return root
    walk(model)
    return model


def cfloat_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, layer) pairs of a model that compute in CFloat."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (CFloatLinear, CFloatConv2d))]
