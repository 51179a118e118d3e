"""Mirrored samples (opendojo.train.mirror): what a mirror flips, and the loader's mirrored
batches."""

from dataclasses import replace

import numpy as np
import torch

from opendojo.train.mirror import mirror, mirror_collision, mirror_command


def _batch(rng, b: int = 6) -> dict:
    return {"frames": rng.integers(0, 256, (b, 3, 8, 8, 4), dtype=np.uint8),
            "trajectory": rng.normal(size=(b, 6, 2)).astype(np.float32),
            "controls": rng.normal(size=(b, 2)).astype(np.float32),
            "command": rng.integers(0, 3, b),
            "speed": rng.uniform(0, 30, b).astype(np.float32)}


def test_a_mirror_flips_frames_sideways_labels_steering_and_turns_and_nothing_else():
    rng = np.random.default_rng(0)
    before = _batch(rng)
    after = {k: v.copy() for k, v in before.items()}
    which = np.array([True, False, True, True, False, False])
    mirror(after, which)
    np.testing.assert_array_equal(after["frames"][which], before["frames"][which][:, :, :, ::-1])
    np.testing.assert_array_equal(after["trajectory"][which, :, 0], before["trajectory"][which, :, 0])
    np.testing.assert_array_equal(after["trajectory"][which, :, 1], -before["trajectory"][which, :, 1])
    np.testing.assert_array_equal(after["controls"][which], before["controls"][which] * [1, -1])
    np.testing.assert_array_equal(after["command"][which], mirror_command(before["command"][which]))
    np.testing.assert_array_equal(after["speed"], before["speed"])
    for k in before:
        np.testing.assert_array_equal(after[k][~which], before[k][~which])
    assert mirror_command(np.array([0, 1, 2])).tolist() == [2, 1, 0]
    mirror(after, which)                                # twice is no mirror at all
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


def test_a_mirrored_prediction_costs_what_the_original_costs_on_mirrored_collision_inputs():
    from opendojo.train.occupancy import collision_cost

    g = torch.Generator().manual_seed(0)
    b, steps, s = 5, 30, 32
    batch = {"field": torch.randint(0, 256, (b, steps, s, s), generator=g, dtype=torch.uint8),
             "driven": torch.randn(b, steps, 2, generator=g) * torch.tensor([10.0, 2.0]),
             "turn": torch.randn(b, steps, generator=g) * 0.2}
    pred = torch.randn(b, 6, 2, generator=g) * torch.tensor([15.0, 3.0])
    cost = collision_cost(pred, batch["driven"], batch["turn"], batch["field"], 0.4, 0.8)
    which = np.array([True, True, False, True, False])
    mirror_collision(batch, which)
    flipped = pred.clone()
    flipped[torch.from_numpy(which), :, 1] *= -1
    mirrored = collision_cost(flipped, batch["driven"], batch["turn"], batch["field"], 0.4, 0.8)
    torch.testing.assert_close(mirrored, cost, atol=1e-5, rtol=1e-5)
    assert (cost > 0).any()


def test_the_loader_mirrors_a_share_of_its_samples_the_same_way_every_time(tmp_path):
    from clipfactory import labelled_synthetic_store
    from opendojo.label.hindsight import LabelSpec
    from opendojo.train.loader import LoaderConfig, TrainLoader

    store = labelled_synthetic_store(tmp_path / "s", clips=2, frames=60, size=32, seed=5)
    ids = sorted(store.clip_ids())
    cfg = LoaderConfig(batch_size=16, frames=2, image_size=16, workers=0, collision=True)
    plain = next(iter(TrainLoader(store, ids, LabelSpec(), cfg)))
    mirroring = replace(cfg, mirror_share=0.5)
    got = next(iter(TrainLoader(store, ids, LabelSpec(), mirroring)))
    flipped = (got["frames"] != plain["frames"]).flatten(1).any(1).numpy()
    assert 0 < flipped.sum() < len(flipped)
    arrays = {k: plain[k].numpy().copy() for k in ("frames", "trajectory", "controls", "command", "speed")}
    mirror(arrays, flipped)
    collision = {k: plain[k].clone() for k in ("field", "driven", "turn")}
    mirror_collision(collision, flipped)
    for k, v in {**arrays, **collision}.items():
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(v))
    again = next(iter(TrainLoader(store, ids, LabelSpec(), mirroring)))
    for k in got:
        torch.testing.assert_close(again[k], got[k])


def test_the_loader_never_mirrors_a_synthesised_lane_change(tmp_path, monkeypatch):
    # The lane changes go left where both lanes beside are free; a mirrored one would be the
    # same kind of scene labelled right, and the network would learn the mean of the two.
    import opendojo.train.synthesis as synthesis
    from clipfactory import labelled_synthetic_store
    from opendojo.label.hindsight import LabelSpec
    from opendojo.train.loader import LoaderConfig, TrainLoader

    def flag_half(arrays, eligible, share, rng, geo, **kw):
        flags = {k: np.zeros(len(arrays["speed"]), bool)
                 for k in ("pasted", "in_path", "braked", "lane_change", "left_behind")}
        flags["lane_change"][::2] = True    # every other sample "was driven round a thing"
        return flags

    monkeypatch.setattr(synthesis, "synthesize", flag_half)
    store = labelled_synthetic_store(tmp_path / "s", clips=2, frames=60, size=32, seed=5)
    ids = sorted(store.clip_ids())
    cfg = LoaderConfig(batch_size=32, frames=2, image_size=16, workers=0, synthetic_share=0.5)
    plain = next(iter(TrainLoader(store, ids, LabelSpec(), cfg)))
    got = next(iter(TrainLoader(store, ids, LabelSpec(), replace(cfg, mirror_share=0.9))))
    flipped = ((got["frames"] != plain["frames"]).flatten(1).any(1)
               | (got["trajectory"] != plain["trajectory"]).flatten(1).any(1)).numpy()
    assert not flipped[::2].any()
    assert flipped[1::2].sum() >= 8     # the others are still mirrored at about 0.9
