"""Open-loop evaluation: the policy's predictions against hindsight labels of held-out clips.

Every sample the loader would make from the clips (each frame with a valid label and a
full frame history, in order, no shuffling, no dropped remainder) is scored:

- ADE: mean over waypoints of the Euclidean distance between predicted and labelled
  ego-frame positions (metres), averaged over samples; FDE: the same at the last waypoint;
- control error: mean absolute error of acceleration (m/s^2) and steering (rad);
- the constant-velocity baseline (speed * t straight ahead) on the same samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from opendojo.label.hindsight import LabelSpec, constant_velocity


def _metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    d = np.linalg.norm(pred - target, axis=-1)         # [N, W]
    return {"ade": float(d.mean()), "fde": float(d[:, -1].mean())}


def evaluate_open_loop(checkpoint: str | Path, store, clip_ids: list[str], batch_size: int = 64,
                       progress=None) -> dict:
    from opendojo.train.checkpoint import load_checkpoint, read_meta, resolve, trained_command
    from opendojo.train.inputs import catalog_rows, clip_field, with_object_channel
    from opendojo.train.loader import ClipDecoder, ClipLabels, history_offsets
    from opendojo.train.model import PolicyConfig, PolicyNet

    ckpt = resolve(checkpoint)
    meta = read_meta(ckpt)
    pc = PolicyConfig.from_dict(meta["model"])
    net = PolicyNet(pc)
    load_checkpoint(ckpt, net, expect_model=pc.to_dict())
    net.eval()
    spec = LabelSpec(horizon_s=pc.horizon_s, waypoints=pc.horizon)
    labels = ClipLabels(store, clip_ids, spec, pc.frames, pc.frame_stride, trained_command(meta))
    rows = catalog_rows(store)
    decoder = ClipDecoder(store, rows, pc.image_size)
    offsets = history_offsets(pc.frames, pc.frame_stride)
    preds, ctrls, targets, ctargets, speeds, commands = [], [], [], [], [], []
    with torch.no_grad():
        for cid in labels.clip_ids:
            info = labels.per_clip[cid]
            fr = info["sample_frames"]
            if len(fr) == 0:
                continue
            video = decoder[cid]
            field = clip_field(store, cid, pc, rows[cid])
            if field is not None:
                video = torch.from_numpy(with_object_channel(video.numpy(), field))
            for i in range(0, len(fr), batch_size):
                f = fr[i:i + batch_size]
                frames = torch.stack([video[torch.from_numpy(x + offsets)] for x in f])
                out = net(frames, torch.from_numpy(info["speed"][f]), torch.from_numpy(info["command"][f]))
                preds.append(out["trajectory"].numpy())
                ctrls.append(out["controls"].numpy())
            targets.append(info["trajectory"][fr])
            ctargets.append(info["controls"][fr])
            speeds.append(info["speed"][fr])
            commands.append(info["command"][fr])
            if progress is not None:
                progress()
    pred, target = np.concatenate(preds), np.concatenate(targets)
    ctrl, ctarget = np.concatenate(ctrls), np.concatenate(ctargets)
    speed, command = np.concatenate(speeds), np.concatenate(commands)
    cv = constant_velocity(speed, spec)
    result = {
        "checkpoint": str(ckpt), "step": meta.get("step"), "clips": len(labels.clip_ids),
        "samples": int(len(pred)),
        "policy": {**_metrics(pred, target),
                   "accel_mae": float(np.abs(ctrl[:, 0] - ctarget[:, 0]).mean()),
                   "steering_mae": float(np.abs(ctrl[:, 1] - ctarget[:, 1]).mean())},
        "constant_velocity": _metrics(cv, target),
        "by_command": {},
    }
    from opendojo.clips.schema import ROUTE_COMMANDS

    for k, name in enumerate(ROUTE_COMMANDS):
        m = command == k
        if m.any():
            result["by_command"][name] = {"samples": int(m.sum()), "policy": _metrics(pred[m], target[m]),
                                          "constant_velocity": _metrics(cv[m], target[m])}
    result["ade_vs_constant_velocity"] = result["policy"]["ade"] / max(result["constant_velocity"]["ade"], 1e-9)
    return result
