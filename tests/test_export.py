"""ONNX export: onnxruntime matches PyTorch within the stated tolerance, for any batch size."""

import json

import numpy as np
import pytest
import torch

from opendojo.errors import CheckpointError, ConfigError
from opendojo.train.checkpoint import save_checkpoint
from opendojo.train.export import export_onnx
from opendojo.train.model import PolicyConfig, PolicyNet


def _checkpoint(tmp_path, **kw):
    pc = PolicyConfig(frames=2, image_size=16, width=4, stages=2, hidden=16, **kw)
    torch.manual_seed(0)
    net = PolicyNet(pc)
    for m in net.modules():               # non-trivial normalisation parameters
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.5, 0.5)
    save_checkpoint(tmp_path / "ck", 1, net, None, {"model": pc.to_dict()})
    return tmp_path / "ck" / "step-1.safetensors", net.eval(), pc


def test_onnx_matches_torch(tmp_path):
    import onnxruntime as ort

    ck, net, pc = _checkpoint(tmp_path)
    info = export_onnx(ck, tmp_path / "policy.onnx", tolerance=1e-4)
    assert info["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "policy.onnx.json").read_text())["model"] == pc.to_dict()
    sess = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    for b in (1, 7):                       # dynamic batch
        frames = torch.randint(0, 256, (b, 2, 16, 16, 3), dtype=torch.uint8)
        speed, cmd = torch.rand(b) * 20, torch.randint(0, 3, (b,))
        traj, ctrl = sess.run(None, {"frames": frames.numpy(), "speed": speed.numpy(), "command": cmd.numpy()})
        with torch.no_grad():
            ref = net(frames, speed, cmd)
        np.testing.assert_allclose(traj, ref["trajectory"].numpy(), atol=1e-4)
        np.testing.assert_allclose(ctrl, ref["controls"].numpy(), atol=1e-4)


def test_a_path_head_is_exported_and_checked(tmp_path):
    """The demo's network steers on its path head: the graph the car runs gives that path,
    as PyTorch computes it, and the sidecar says what it is."""
    import onnxruntime as ort

    ck, net, pc = _checkpoint(tmp_path, path_points=5, path_spacing=3.0)
    info = export_onnx(ck, tmp_path / "policy.onnx", tolerance=1e-4)
    sess = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    assert [o.name for o in sess.get_outputs()] == ["trajectory", "controls", "path"]
    assert "[B,5,2]" in info["outputs"]["path"] and "3 m" in info["outputs"]["path"]
    frames = torch.randint(0, 256, (3, 2, 16, 16, 3), dtype=torch.uint8)
    speed, cmd = torch.rand(3) * 20, torch.randint(0, 3, (3,))
    path = sess.run(["path"], {"frames": frames.numpy(), "speed": speed.numpy(), "command": cmd.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(path, net(frames, speed, cmd)["path"].numpy(), atol=1e-4)
    # without a path head there is no such output
    ck, _, _ = _checkpoint(tmp_path / "plain")
    info = export_onnx(ck, tmp_path / "plain.onnx", tolerance=1e-4)
    assert "path" not in info["outputs"]
    assert [o.name for o in ort.InferenceSession(str(tmp_path / "plain.onnx")).get_outputs()] == \
        ["trajectory", "controls"]


@pytest.mark.parametrize("object_channel", [False, True])
def test_the_sidecar_gives_the_frames_shape_the_graph_takes(tmp_path, object_channel):
    import onnxruntime as ort

    ck, _, _ = _checkpoint(tmp_path, object_channel=object_channel)
    export_onnx(ck, tmp_path / "policy.onnx", tolerance=1e-4)
    said = json.loads((tmp_path / "policy.onnx.json").read_text())["inputs"]["frames"]
    frames = next(i for i in ort.InferenceSession(str(tmp_path / "policy.onnx")).get_inputs()
                  if i.name == "frames")
    assert said.startswith("uint8 [B," + ",".join(map(str, frames.shape[1:])) + "]")
    assert frames.shape[-1] == (4 if object_channel else 3)


def test_export_refuses_to_overwrite_and_bad_checkpoints(tmp_path):
    ck, _, _ = _checkpoint(tmp_path)
    (tmp_path / "policy.onnx").write_bytes(b"keep")
    with pytest.raises(ConfigError, match="exists"):
        export_onnx(ck, tmp_path / "policy.onnx")
    assert (tmp_path / "policy.onnx").read_bytes() == b"keep"
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        export_onnx(tmp_path / "missing.safetensors", tmp_path / "x.onnx")
    with pytest.raises(CheckpointError, match="differs from PyTorch"):
        export_onnx(ck, tmp_path / "y.onnx", tolerance=0.0 - 1.0)
    assert not (tmp_path / "y.onnx").exists()
