"""Shadow mode: the current network watches a person drive and we log where they disagree.

Offline (`run_shadow`): over stored clips. At every `every`-th frame the network sees
what it would see in the car (the last `frames` camera frames resized to its input, the
speed, the route command) and predicts a trajectory and controls; the driver's actual
future (the hindsight label of that frame, `opendojo.label.hindsight.label_telemetry`)
and controls are the reference. Per clip we keep the mean and worst trajectory error
(ADE, metres) and the control errors; `disagreement` (= mean ADE) feeds the selection.

Online (`opendojo.engine.disengage.drive`, mode "shadow"): the same comparison while a
driver drives in the simulated fleet, per step, on the commands.

Table `shadow.lance`: clip_id | mode ("offline"/"online") | checkpoint | disagreement |
ade_max | worst_frame | acc_mae | steer_mae | frames_compared | code_version | computed_at.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa

from opendojo import code_version
from opendojo.engine import tables

SHADOW_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("mode", pa.string()),
    ("checkpoint", pa.string()),
    ("disagreement", pa.float32()),
    ("ade_max", pa.float32()),
    ("worst_frame", pa.int32()),
    ("acc_mae", pa.float32()),
    ("steer_mae", pa.float32()),
    ("frames_compared", pa.int32()),
    ("code_version", pa.string()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])


def predict_clip(model, frames: np.ndarray, tel: dict, every: int = 5, batch: int = 32,
                 field: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network outputs at frames 0, every, 2*every ...: (frame idx, trajectory [M,W,2], controls [M,2]).

    Each input is the `frames` frames up to and including the frame (the first frame
    repeated before the clip starts), as `NetworkDriver` sees them in closed loop
    (`field`: the clip's object channel, `opendojo.train.inputs.clip_field`)."""
    import torch

    from opendojo.train.inputs import input_frames
    from opendojo.train.loader import history_indices

    cfg = model.config
    n = len(frames)
    small = input_frames(frames, cfg, field)
    idx = np.arange(0, n, max(1, every))
    speed = np.asarray(tel["speed"], np.float32)
    cmd = np.asarray(tel["command"], np.int64)
    cmd = np.where(cmd < 0, 1, cmd)                      # unknown route: straight
    trajs, ctrls = [], []
    with torch.inference_mode():
        for s in range(0, len(idx), batch):
            ii = idx[s:s + batch]
            win = history_indices(ii, cfg.frames, cfg.frame_stride)
            out = model(torch.from_numpy(small[win]), torch.from_numpy(speed[ii]),
                        torch.from_numpy(cmd[ii]))
            trajs.append(out["trajectory"].float().numpy())
            ctrls.append(out["controls"].float().numpy())
    return idx, np.concatenate(trajs), np.concatenate(ctrls)


def shadow_row(clip_id: str, model, checkpoint: str, frames: np.ndarray, tel: dict,
               every: int = 5, field: np.ndarray | None = None) -> dict:
    """The `shadow.lance` row of one clip, offline (the per-clip map function)."""
    from opendojo.label.hindsight import LabelSpec, label_telemetry

    cfg = model.config
    spec = LabelSpec(horizon_s=cfg.horizon_s, waypoints=cfg.horizon)
    lab = label_telemetry(tel, spec)
    idx, traj, ctrl = predict_clip(model, frames, tel, every, field=field)
    ok = lab["valid"][idx]
    ade = np.linalg.norm(traj - lab["trajectory"][idx], axis=-1).mean(-1)   # [M]
    acc_err = np.abs(ctrl[:, 0] - lab["acceleration"][idx])
    steer_err = np.abs(ctrl[:, 1] - lab["steering"][idx])
    if ok.any():
        a = ade[ok]
        dis, worst, amax = float(a.mean()), int(idx[ok][np.argmax(a)]), float(a.max())
    else:
        dis, worst, amax = float("nan"), -1, float("nan")
    return {"clip_id": clip_id, "mode": "offline", "checkpoint": checkpoint,
            "disagreement": dis, "ade_max": amax, "worst_frame": worst,
            "acc_mae": float(acc_err.mean()), "steer_mae": float(steer_err.mean()),
            "frames_compared": int(ok.sum()), "code_version": code_version(),
            "computed_at": datetime.now(timezone.utc)}


def run_shadow(store, checkpoint: str | Path, clip_ids: Iterable[str] | None = None,
               every: int = 5, force: bool = False,
               progress: Callable[[int, int], None] | None = None) -> pa.Table:
    """Shadow-mode the network at `checkpoint` over the store's clips; upsert `shadow.lance`.

    Clips already compared by this checkpoint (offline) are skipped unless `force`."""
    from opendojo.evaluate.closed_loop import load_network
    from opendojo.train.checkpoint import resolve
    from opendojo.train.inputs import clip_inputs

    ckpt = str(resolve(checkpoint))
    model = load_network(checkpoint)
    ids = sorted(store.clip_ids() if clip_ids is None else clip_ids)
    if not force:
        esc = ckpt.replace("'", "''")
        done = tables.done_ids(store, tables.SHADOW, code_version(),
                               extra=f"mode = 'offline' AND checkpoint = '{esc}'")
        ids = [i for i in ids if i not in done]
    rows = []
    for k, (cid, frames, field) in enumerate(clip_inputs(store, ids, model.config), 1):
        tel = tables.telemetry_arrays(store.telemetry(cid))
        rows.append(shadow_row(cid, model, ckpt, frames, tel, every, field))
        if progress:
            progress(k, len(ids))
    table = pa.Table.from_pylist(rows, schema=SHADOW_SCHEMA)
    tables.upsert(store, tables.SHADOW, table)
    return table


def read_disagreement(store, clip_ids: Iterable[str] | None = None) -> dict[str, float]:
    """{clip_id: disagreement (m)} from `shadow.lance` ({} when absent)."""
    t = tables.read(store, tables.SHADOW, clip_ids, columns=["clip_id", "disagreement"])
    if t is None:
        return {}
    return dict(zip(t.column("clip_id").to_pylist(), t.column("disagreement").to_pylist()))
