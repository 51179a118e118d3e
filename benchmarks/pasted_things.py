"""Does the network react to a thing in its path? Its plan on held-out samples, with and
without a thing pasted into the frames (`opendojo.train.synthesis`).

A diagnosis, open loop. It reads batches of a dataset split, as the training loader cuts
them, and pastes a thing into each sample at speed (`synthesize`, every sample, a share
`--side-share` of them a lane beside the path). It then plans twice, on the frames with
the thing and on the frames without it, and reports:

  in_path      things the cut label had to stop or follow behind: how much shorter the
               plan is at the horizon because of the thing, against how much shorter the
               cut label is (the needed shortening), and the share of that it made
  ahead_not_braked_for  things in the path the label keeps driving behind (a car no
               slower than the ego, or one far enough ahead): how much shorter the plan is
               anyway (0 is right)
  beside_path  things a lane to the side: how much shorter the plan is anyway (0 is right)
  lane_change  (with --lane-changes, the default for a network trained with them) things
               standing in the path of a car keeping its lane, with a free lane beside:
               the label changes lane round them. How far the plan's end moves sideways
               because of the thing, towards the label's side, against how far the label's
               does, and the share of samples whose plan moves at least a metre that way
  left_behind  stopped things in the lane a driver is leaving: how far the plan's end
               moves sideways anyway (0 is right)
               (lane_change and left_behind samples are left out of the rows above and of
               bias_m, so with --lane-changes those average over fewer samples)
  bias_m       the plan's end beyond the driven label's on the frames *without* a thing
               (negative: the network slows where nothing is ahead)

`--scale-things K` draws every thing K times its size, and `--loud` in saturated red with
no outline: the measurements in docs/driving.md ("Synthesised road users") that tell
whether a network does not learn things because they are too small or too faint at its
input size.

    .venv/bin/python benchmarks/pasted_things.py --checkpoint runs/demo/train > pasted.json
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import _pool


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/demo/train", help="run dir or step file")
    ap.add_argument("--store", help="clip store (default: the checkpoint's)")
    ap.add_argument("--dataset", help="dataset version (default: the checkpoint's)")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--side-share", type=float, default=0.3)
    ap.add_argument("--scale-things", type=float, default=1.0)
    ap.add_argument("--loud", action="store_true")
    ap.add_argument("--lane-changes", action=argparse.BooleanOptionalAction, default=None,
                    help="drive round things where a lane is free (default: as the network trained)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    import opendojo.train.synthesis as synthesis
    from opendojo.evaluate.closed_loop import load_network
    from opendojo.train.checkpoint import read_meta, trained_settings
    from opendojo.train.config import TrainConfig
    from opendojo.train.occupancy import is_birds_eye
    from opendojo.train.trainer import label_spec, make_loader

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    checkpoint = _pool.resolve_checkpoint(a.checkpoint)
    trained = trained_settings(read_meta(checkpoint))
    if a.scale_things != 1.0:
        synthesis.SIZES_M = tuple((l * a.scale_things, w * a.scale_things) for l, w in synthesis.SIZES_M)
        synthesis.OUTLINE_M *= a.scale_things
    if a.loud:
        synthesis.COLOURS = np.array([(255, 0, 0)] * len(synthesis.COLOURS), np.float32)
        synthesis.OUTLINE_M = 0.0
    cfg = TrainConfig(**{**trained, "store": a.store or trained["store"],
                         "dataset": a.dataset or trained["dataset"], "split": a.split,
                         "batch_size": a.batch_size, "workers": 0,
                         "collision_weight": 0.0, "reaction_oversample": 0})
    loader = make_loader(cfg.model_copy(update={"synthetic_share": 0.0}))
    rows = list(loader.rows.values())
    if not all(is_birds_eye(r) for r in rows):
        raise SystemExit(f"{cfg.dataset} {a.split} holds clips that are not bird's-eye simulator "
                         "video: things are pasted only into those")
    geometry = synthesis.clips_geometry(rows, cfg.model.image_size, cfg.model.frame_stride,
                                        label_spec(cfg).times)
    net = load_network(checkpoint)
    lane_changes = cfg.synthetic_lane_changes if a.lane_changes is None else a.lane_changes
    if lane_changes and not cfg.model.object_channel:
        raise SystemExit("--lane-changes needs a network with the object channel "
                         "(it says whether the lane beside is free)")
    batches = iter(loader)
    found, sideways = [], []
    for k in range(a.batches):
        batch = next(batches)
        pasted = {key: v.numpy().copy() for key, v in batch.items()}
        got = synthesis.synthesize(pasted, np.ones(len(pasted["speed"]), bool), 1.0,
                                   np.random.default_rng([a.seed, k]), geometry, a.side_share,
                                   lane_changes=lane_changes)
        with torch.inference_mode():
            plain_end = net(batch["frames"], batch["speed"], batch["command"])["trajectory"][:, -1].numpy()
            seen_end = net(torch.from_numpy(pasted["frames"]), batch["speed"],
                           batch["command"])["trajectory"][:, -1].numpy()
        plain, seen = plain_end[:, 0], seen_end[:, 0]
        label_end = batch["trajectory"][:, -1].numpy()
        label = label_end[:, 0]
        sideways_only = got["lane_change"] | got["left_behind"]
        found.append(np.stack([got["braked"], got["in_path"], label - pasted["trajectory"][:, -1, 0],
                               plain - seen, plain - label], -1)[got["pasted"] & ~sideways_only])
        sideways.append(np.stack([got["lane_change"], pasted["trajectory"][:, -1, 1] - label_end[:, 1],
                                  seen_end[:, 1] - plain_end[:, 1]], -1)[sideways_only])
    r = np.concatenate([np.empty((0, 5)), *found])      # float64, one row per sample
    sw = np.concatenate([np.empty((0, 3)), *sideways])
    lc = sw[:, 0] > 0
    cut, ahead = r[:, 0] > 0, r[:, 1] > 0
    needed, made = float(r[cut, 2].mean()), float(r[cut, 3].mean())

    def mean_shorter(m: np.ndarray) -> float | None:
        return round(float(r[m, 3].mean()), 2) if m.any() else None

    return {"checkpoint": checkpoint, "dataset": cfg.dataset, "split": a.split,
            "image_size": cfg.model.image_size, "scale_things": a.scale_things, "loud": a.loud,
            "samples": len(r), "seconds": round(time.perf_counter() - t0, 1),
            "in_path": {"samples": int(cut.sum()), "needed_shorter_m": round(needed, 2),
                        "plan_shorter_m": round(made, 2), "share_of_needed": round(made / needed, 4)},
            "ahead_not_braked_for": {"samples": int((ahead & ~cut).sum()),
                                     "plan_shorter_m": mean_shorter(ahead & ~cut)},
            "beside_path": {"samples": int((~ahead).sum()), "plan_shorter_m": mean_shorter(~ahead)},
            **({"lane_change": _lane_change(sw[lc]),
                "left_behind": {"samples": int((~lc).sum()),
                                "plan_sideways_m": round(float(np.abs(sw[~lc, 2]).mean()), 2) if (~lc).any() else None}}
               if lane_changes else {}),
            "bias_m": round(float(r[:, 4].mean()), 2)}


def _lane_change(sw: np.ndarray) -> dict:
    """Lane-change samples [N, 3] (flag, the label's sideways move, the plan's): how far
    the plan moves towards the label's side, against the label, and how often a metre."""
    if not len(sw):
        return {"samples": 0}
    toward = np.sign(sw[:, 1]) * sw[:, 2]
    needed = float(np.abs(sw[:, 1]).mean())
    return {"samples": len(sw), "label_sideways_m": round(needed, 2),
            "plan_sideways_m": round(float(toward.mean()), 2),
            "plan_sideways_either_way_m": round(float(np.abs(sw[:, 2]).mean()), 2),
            "share_of_needed": round(float(toward.mean()) / needed, 4),
            "share_moving_1m_that_way": round(float((toward >= 1.0).mean()), 3)}


if __name__ == "__main__":
    with _pool.json_stdout() as emit:   # an empty group's NaN prints as null
        emit(main())
