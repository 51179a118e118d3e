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
import json
import os
import time

import numpy as np


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
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    import opendojo.train.synthesis as synthesis
    from opendojo.errors import DojoError
    from opendojo.evaluate.closed_loop import load_network
    from opendojo.train.checkpoint import read_meta, resolve
    from opendojo.train.config import TrainConfig
    from opendojo.train.trainer import label_spec, make_loader

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        checkpoint = str(resolve(a.checkpoint))
    except DojoError as e:
        raise SystemExit(f"{e} (train one with `make demo`, or pass --checkpoint)") from None
    trained = read_meta(checkpoint)["train"]
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
    if any(r["source"] not in synthesis.BIRDS_EYE_SOURCES for r in rows):
        raise SystemExit(f"{cfg.dataset} {a.split} holds clips that are not bird's-eye simulator "
                         "video: things are pasted only into those")
    geometry = synthesis.clips_geometry(rows, cfg.model.image_size, cfg.model.frame_stride,
                                        label_spec(cfg).times)
    net = load_network(checkpoint).eval()
    batches = iter(loader)
    found = []
    for k in range(a.batches):
        batch = next(batches)
        pasted = {key: v.numpy().copy() for key, v in batch.items()}
        got = synthesis.synthesize(pasted, np.ones(len(pasted["speed"]), bool), 1.0,
                                   np.random.default_rng([a.seed, k]), geometry, a.side_share)
        with torch.inference_mode():
            plain = net(batch["frames"], batch["speed"], batch["command"])["trajectory"][:, -1, 0].numpy()
            seen = net(torch.from_numpy(pasted["frames"]), batch["speed"],
                       batch["command"])["trajectory"][:, -1, 0].numpy()
        label = batch["trajectory"][:, -1, 0].numpy()
        for i in np.flatnonzero(got["pasted"]):
            found.append((got["braked"][i], got["in_path"][i], label[i] - pasted["trajectory"][i, -1, 0],
                         plain[i] - seen[i], plain[i] - label[i]))
    r = np.array(found, float).reshape(-1, 5)
    cut, ahead = r[:, 0] > 0, r[:, 1] > 0
    needed, made = float(r[cut, 2].mean()), float(r[cut, 3].mean())
    mean_shorter = lambda m: round(float(r[m, 3].mean()), 2) if m.any() else None  # noqa: E731
    return {"checkpoint": checkpoint, "dataset": cfg.dataset, "split": a.split,
            "image_size": cfg.model.image_size, "scale_things": a.scale_things, "loud": a.loud,
            "samples": len(r), "seconds": round(time.perf_counter() - t0, 1),
            "in_path": {"samples": int(cut.sum()), "needed_shorter_m": round(needed, 2),
                        "plan_shorter_m": round(made, 2), "share_of_needed": round(made / needed, 4)},
            "ahead_not_braked_for": {"samples": int((ahead & ~cut).sum()),
                                     "plan_shorter_m": mean_shorter(ahead & ~cut)},
            "beside_path": {"samples": int((~ahead).sum()), "plan_shorter_m": mean_shorter(~ahead)},
            "bias_m": round(float(r[:, 4].mean()), 2)}


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
