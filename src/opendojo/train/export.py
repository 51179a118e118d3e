"""Export the policy as ONNX for the car's inference computer, checked against PyTorch.

The exported graph takes the same inputs as `PolicyNet.forward` (uint8 frames
[B, T, H, W, C], float speed [B], int64 command [B]; B is dynamic) and returns
`trajectory` [B, H, 2] and `controls` [B, 2], and with a path head `path` [B, P, 2], the
path the closed loop steers on (`outputs_of`). After writing, onnxruntime runs the file on
a batch of random inputs and the largest absolute difference from PyTorch, over every
output, must be within `tolerance` (default 1e-4 in metres / SI units); otherwise nothing
is written. A sidecar
`<out>.json` records the model config, the source checkpoint, the measured difference and
the code version.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from opendojo import code_version
from opendojo.atomic import atomic_path, write_json
from opendojo.errors import CheckpointError, ConfigError
from opendojo.train.checkpoint import load_checkpoint, read_meta, resolve
from opendojo.train.model import PolicyConfig, PolicyNet

INPUTS = ("frames", "speed", "command")
OUTPUTS = ("trajectory", "controls")


def outputs_of(pc: PolicyConfig) -> tuple[str, ...]:
    """The graph's outputs: OUTPUTS, and `path` where the network has a path head."""
    return OUTPUTS + (("path",) if pc.path_points > 0 else ())


class _Exported(torch.nn.Module):
    def __init__(self, net: PolicyNet):
        super().__init__()
        self.net = net
        self.names = outputs_of(net.config)

    def forward(self, frames, speed, command):
        out = self.net(frames, speed, command)
        return tuple(out[k] for k in self.names)


def _random_inputs(pc: PolicyConfig, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (batch, pc.frames, pc.image_size, pc.image_size, pc.channels),
                           dtype=torch.uint8, generator=g)
    speed = torch.rand(batch, generator=g) * 30.0
    command = torch.randint(0, 3, (batch,), generator=g)
    return frames, speed, command


def export_onnx(checkpoint: str | Path, out: str | Path, tolerance: float = 1e-4,
                overwrite: bool = False, batch: int = 4) -> dict:
    out = Path(out)
    sidecar = out.with_name(out.name + ".json")
    for target in (out, sidecar):
        if target.is_dir():
            raise ConfigError(f"{target} is a directory; give --out a file name such as policy.onnx")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists (pass --overwrite to replace it)")
    ckpt = resolve(checkpoint)
    pc = PolicyConfig.from_dict(read_meta(ckpt)["model"])
    net = PolicyNet(pc)
    load_checkpoint(ckpt, net, expect_model=pc.to_dict())
    net.eval()
    module = _Exported(net).eval()
    args = _random_inputs(pc, 2, seed=1)
    # written beside `out` under a temporary name, renamed only once it checks out; any
    # failure before the rename (export, check, tolerance, rename) removes it
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(tmp), input_names=list(INPUTS),
                              output_names=list(module.names), opset_version=18, dynamo=False,
                              dynamic_axes={n: {0: "batch"} for n in (*INPUTS, *module.names)})
        diff = check_onnx(tmp, net, pc, batch)
        if not diff <= tolerance:
            raise CheckpointError(f"onnxruntime differs from PyTorch by {diff:.3g} > tolerance {tolerance:g}; "
                                  "nothing written")
    info = {"onnx": str(out), "checkpoint": str(ckpt), "model": pc.to_dict(),
            "max_abs_diff": diff, "tolerance": tolerance, "opset": 18,
            "inputs": {"frames": f"uint8 [B,{pc.frames},{pc.image_size},{pc.image_size},{pc.channels}]"
                                 + (" RGB + object channel" if pc.object_channel else " RGB"),
                       "speed": "float32 [B] m/s",
                       "command": "int64 [B] 0 left 1 straight 2 right"},
            "outputs": {"trajectory": "float32 [B,H,2] ego-frame metres", "controls":
                        "float32 [B,2] (acceleration m/s^2, steering rad)",
                        **({"path": f"float32 [B,{pc.path_points},2] ego-frame metres, a point "
                                    f"every {pc.path_spacing:g} m along the path ahead (what "
                                    "the closed loop steers on)"} if pc.path_points > 0 else {})},
            "code_version": code_version()}
    write_json(sidecar, info)
    return info


def check_onnx(path: str | Path, net: PolicyNet, pc: PolicyConfig, batch: int = 4) -> float:
    """Largest |onnxruntime - torch| over every output (`outputs_of`) on a random batch."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frames, speed, command = _random_inputs(pc, batch, seed=2)
    with torch.no_grad():
        ref = net(frames, speed, command)
    names = outputs_of(pc)
    got = sess.run(list(names), {"frames": frames.numpy(), "speed": speed.numpy(),
                                 "command": command.numpy()})
    return float(max(np.abs(got[i] - ref[k].numpy()).max() for i, k in enumerate(names)))
