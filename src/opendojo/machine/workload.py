"""Workload extraction: what one training step (forward, backward, optimizer) of a network asks
of a machine.

The step is run once, on CPU, under a dispatch mode that records every ATen operator with
  - its FLOPs, from PyTorch's flop counter (``torch.utils.flop_counter``'s registry; the total
    equals ``FlopCounterMode``'s),
  - the bytes it reads and writes (its tensor inputs and outputs; views move nothing),
  - its kind (conv, matmul, memory-bound, view), its phase (forward, backward, optimizer) and
    the leaf layer it belongs to (``torch.utils.module_tracker``).
Beside the operator list: parameter, gradient, optimizer-state and activation bytes.

A workload is traced at two batch sizes so that it can be scaled to any other one: every
operator's FLOPs and bytes are linear in the batch (conv, matmul, batch norm, elementwise),
the parameter and optimizer terms are constant.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Callable

CONV_OPS = ("convolution", "convolution_backward")
MATMUL_OPS = ("mm", "addmm", "bmm", "baddbmm")


@dataclass(frozen=True)
class Op:
    name: str           # aten op name, e.g. "convolution_backward"
    kind: str           # conv | matmul | memory | view
    phase: str          # forward | backward | optimizer
    layer: str          # leaf module name ("" for the loss / optimizer)
    flops: float
    bytes: float        # bytes read + written (fp32 as traced)
    channels: float = 0.0   # conv: geometric mean of in/out channels (for the host's conv table)
    rows: float = 0.0       # conv: output positions per channel group N*H*W (the GEMM "M")
    stride: int = 1         # conv: stride (the host's conv table has stride 1 and 2)


@dataclass
class Workload:
    """One training step at one batch size."""
    batch: int
    ops: list[Op]
    param_bytes: float
    grad_bytes: float
    optimizer_bytes: float
    activation_bytes: float     # tensors saved for backward (forward outputs of the layers)
    input_bytes: float
    frames_per_sample: int = 1
    label: str = ""
    _per_sample: "Workload | None" = field(default=None, repr=False)

    @property
    def flops(self) -> float:
        return sum(o.flops for o in self.ops)

    @property
    def bytes_moved(self) -> float:
        return sum(o.bytes for o in self.ops)

    @property
    def working_set_bytes(self) -> float:
        """What must be resident during a step: weights, grads, optimizer state, activations."""
        return self.param_bytes + self.grad_bytes + self.optimizer_bytes + self.activation_bytes

    def phase_flops(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for o in self.ops:
            out[o.phase] += o.flops
        return dict(out)

    def layers(self) -> list[dict]:
        """Per-layer table: FLOPs and bytes by phase, in first-seen order."""
        rows: dict[str, dict] = {}
        for o in self.ops:
            key = o.layer or ("(optimizer)" if o.phase == "optimizer" else "(loss)")
            r = rows.setdefault(key, {"layer": key, "forward_flops": 0.0, "backward_flops": 0.0,
                                      "optimizer_flops": 0.0, "bytes": 0.0, "ops": 0})
            r[f"{o.phase}_flops"] += o.flops
            r["bytes"] += o.bytes
            r["ops"] += 1
        return list(rows.values())

    def at_batch(self, batch: int) -> "Workload":
        """The same step at another batch size (linear in the batch, see module docstring)."""
        if batch == self.batch:
            return self
        if self._per_sample is None:
            raise ValueError("this workload was traced at one batch size only")
        base, one = self, self._per_sample   # `one` holds d(value)/d(batch) per op
        k = batch - base.batch
        ops = [replace(o, flops=max(0.0, o.flops + k * d.flops), bytes=max(0.0, o.bytes + k * d.bytes),
                       rows=max(0.0, o.rows + k * d.rows))
               for o, d in zip(base.ops, one.ops)]
        return Workload(batch, ops, self.param_bytes, self.grad_bytes, self.optimizer_bytes,
                        max(0.0, self.activation_bytes + k * one.activation_bytes),
                        max(0.0, self.input_bytes + k * one.input_bytes),
                        self.frames_per_sample, self.label, self._per_sample)


def _leaf(parents: set[str]) -> str:
    names = [p for p in parents if p != "Global"]
    if not names:
        return ""
    leaf = max(names, key=lambda p: (p.count("."), len(p)))
    return leaf.split(".", 1)[1] if "." in leaf else ""


def _trace(model, inputs: tuple, loss_fn: Callable, optimizer) -> tuple[list[Op], float]:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import flop_registry
    from torch.utils.module_tracker import ModuleTracker

    ops: list[Op] = []
    state = {"phase": "forward"}
    saved = [0.0]

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func._overloadpacket
            name = packet.__name__
            flat_in = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            flat_out = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            flops = 0.0
            if packet in flop_registry:
                flops = float(flop_registry[packet](*args, **kwargs, out_val=out))
            if func.is_view or name in ("detach", "alias", "lift_fresh", "_unsafe_view", "view"):
                kind, nbytes = "view", 0.0
            else:
                nbytes = float(sum(t.numel() * t.element_size() for t in flat_in + flat_out))
                kind = ("conv" if name in CONV_OPS else "matmul" if name in MATMUL_OPS
                        else "memory")
            channels = rows = 0.0
            stride = 1
            if kind == "conv":
                stride = int((args[3] if name == "convolution" else args[6])[0])
                w = args[1] if name == "convolution" else args[2]
                y = out if name == "convolution" else args[0]
                groups = args[8] if name == "convolution" else args[9]
                cin, cout = w.shape[1] * groups, w.shape[0]
                channels = float((cin * cout) ** 0.5)
                rows = float(y.numel() / y.shape[1])
            ops.append(Op(name, kind, state["phase"], _leaf(tracker.parents), flops, nbytes,
                          channels, rows, stride))
            return out

    tracker = ModuleTracker()

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with tracker, Recorder():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_fn(model(*inputs))
        state["phase"] = "backward"
        loss.backward()
        state["phase"] = "optimizer"
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return ops, saved[0]


def policy_loss(out: dict) -> "torch.Tensor":  # noqa: F821
    """The validation job's loss: MSE of both heads against zero targets."""
    return out["trajectory"].pow(2).mean() + out["controls"].pow(2).mean()


def extract(model_factory: Callable, inputs_factory: Callable[[int], tuple], batch: int,
            loss_fn: Callable = policy_loss, label: str = "", frames_per_sample: int = 1,
            optimizer: str = "adamw") -> Workload:
    """Trace one training step at `batch` (and at batch+1, for scaling) and return it.

    model_factory() -> nn.Module; inputs_factory(batch) -> tuple of inputs. The model is run
    in training mode on CPU in fp32, with AdamW (foreach) as the optimizer.
    """
    import torch

    def one(b: int) -> Workload:
        torch.manual_seed(0)
        model = model_factory().train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4) if optimizer == "adamw" else torch.optim.SGD(params, lr=1e-3)
        inputs = inputs_factory(b)
        ops, saved = _trace(model, inputs, loss_fn, opt)
        pbytes = float(sum(p.numel() * p.element_size() for p in params))
        obytes = float(sum(t.numel() * t.element_size() for s in opt.state.values()
                           for t in s.values() if isinstance(t, torch.Tensor) and t.dim() > 0))
        ibytes = float(sum(t.numel() * t.element_size() for t in inputs))
        return Workload(b, ops, pbytes, pbytes, obytes, saved, ibytes, frames_per_sample, label)

    a, b = one(batch), one(batch + 1)
    if [(o.name, o.kind) for o in a.ops] != [(o.name, o.kind) for o in b.ops]:
        raise ValueError("the traced step changes shape with the batch; cannot scale it")
    slope_ops = [replace(oa, flops=ob.flops - oa.flops, bytes=ob.bytes - oa.bytes,
                         rows=ob.rows - oa.rows) for oa, ob in zip(a.ops, b.ops)]
    a._per_sample = Workload(1, slope_ops, 0, 0, 0, b.activation_bytes - a.activation_bytes,
                             b.input_bytes - a.input_bytes)
    return a


def policy_workload(width: int = 32, stages: int = 4, hidden: int = 256, batch: int = 32,
                    frames: int = 4, image_size: int = 96) -> Workload:
    """The OpenDojo policy network's training step (opendojo.train.model.PolicyNet)."""
    from opendojo.train.model import PolicyConfig, PolicyNet, example_inputs

    cfg = PolicyConfig(width=width, stages=stages, hidden=hidden, frames=frames, image_size=image_size)
    return extract(lambda: PolicyNet(cfg), lambda b: example_inputs(cfg, b), batch,
                   label=f"PolicyNet(width={width}, stages={stages}, hidden={hidden}, {image_size}px x {frames})",
                   frames_per_sample=frames)
