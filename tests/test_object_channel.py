"""The object channel (PolicyConfig.object_channel, opendojo.train.inputs): closed loop
makes it from the camera frame as training makes it from the clip; a pasted thing goes into
it where the frame's own cost field would put a real one; the loader's batches carry it."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from opendojo.label.hindsight import LabelSpec
from opendojo.train.inputs import input_frames, with_object_channel
from opendojo.train.model import PolicyConfig, PolicyNet
from opendojo.train.occupancy import camera_geometry, cost_field
from opendojo.train.synthesis import COLOURS, SIZES_M, draw_box, draw_field, draw_thing, pixel_at
from synthutil import car, centroid, straight
from synthutil import geo as camera

FULL, SIZE = 128, 64
CARS = ((25.0, 0.0), (40.0, 4.0))          # (metres ahead, metres to the right)


@pytest.fixture
def network_inputs(monkeypatch) -> list:
    """The frames of every PolicyNet.forward call from here on (a spy on the class)."""
    seen, forward = [], PolicyNet.forward

    def spy(self, frames, speed, command):
        seen.append(frames.clone())
        return forward(self, frames, speed, command)

    monkeypatch.setattr(PolicyNet, "forward", spy)
    return seen


def _full_frame_with_cars() -> np.ndarray:
    """A fleet-camera frame (1.5 px/m) of grey road with blue cars drawn as highway-env does."""
    full = camera(FULL)
    frame = np.full((FULL, FULL, 3), 100, np.float32)
    for ahead, side in CARS:
        draw_box(frame, pixel_at(ahead, side, FULL, FULL, full), np.array([-1.0, 0.0]),
                 SIZES_M[0], COLOURS[1], full.px_per_m)
    return np.round(frame).astype(np.uint8)


def test_a_pasted_car_lands_in_the_object_channel_where_the_frames_own_field_puts_a_real_one():
    real = cost_field(_full_frame_with_cars()[None], SIZE, *camera_geometry(FULL, FULL))[0].astype(float)
    small = camera(SIZE)
    pasted = np.zeros((SIZE, SIZE), np.float32)
    for ahead, side in CARS:
        draw_field(pasted, pixel_at(ahead, side, SIZE, SIZE, small), np.array([-1.0, 0.0]),
                   SIZES_M[0], small.px_per_m)
    assert real.max() > 150 and pasted.max() > 150
    for rows in (slice(0, 32), slice(32, SIZE)):             # the far car, then the near one
        a, b = real[rows], pasted[rows]
        assert b.sum() == pytest.approx(a.sum(), rel=0.2)
        np.testing.assert_allclose(centroid(b), centroid(a), atol=0.75)
        lo, hi = np.argwhere(a > 0.25 * a.max()), np.argwhere(b > 0.25 * b.max())
        np.testing.assert_allclose(hi.min(0), lo.min(0), atol=1)
        np.testing.assert_allclose(hi.max(0), lo.max(0), atol=1)


def test_draw_thing_draws_into_the_object_channel_only_with_four_channels():
    geo, traj, thing = camera(SIZE), straight(20.0), car(30.0)
    rgb = np.full((2, SIZE, SIZE, 3), 100, np.uint8)
    four = with_object_channel(rgb, np.zeros((2, SIZE, SIZE), np.uint8))
    out3, out4 = draw_thing(rgb, traj, 20.0, thing, geo), draw_thing(four, traj, 20.0, thing, geo)
    np.testing.assert_array_equal(out4[..., :3], out3)
    field = out4[..., 3].astype(float)
    # in each frame the field's blob sits on the pasted car: the older frame's 2 m further on
    for k in range(2):
        painted = (out3[k] != 100).any(-1)
        assert field[k][painted].mean() > 3 * field[k][~painted].mean()
    assert centroid(field[0])[0] == pytest.approx(centroid(field[1])[0] - 2.0 * geo.px_per_m, abs=0.3)


def test_the_network_driver_feeds_the_object_channel_of_the_camera_frame(network_inputs):
    from opendojo.evaluate.closed_loop import NetworkDriver, SuiteItem, run_episode
    from opendojo.fleet.config import EVAL_SEED_BASE

    torch.manual_seed(0)
    cfg = PolicyConfig(image_size=SIZE, width=8, hidden=32, object_channel=True)
    net, seen = PolicyNet(cfg), network_inputs
    run_episode(NetworkDriver(net), "network", SuiteItem("highway_dense", "", EVAL_SEED_BASE), duration_s=0.5)
    assert seen and seen[0].shape == (1, cfg.frames, SIZE, SIZE, 4) and seen[0].dtype == torch.uint8
    # dense traffic is in view: the channel holds cars, and nothing around the ego itself
    field = seen[-1][0, -1, ..., 3].float()
    assert field.max() > 150
    ego_row = int(camera_geometry(FULL, SIZE)[1] * SIZE)
    assert field[ego_row - 1:ego_row + 2, SIZE // 2 - 1:SIZE // 2 + 1].max() < field.max()


def test_a_network_with_the_object_channel_reads_four_channels_per_frame():
    torch.manual_seed(0)
    cfg = PolicyConfig(image_size=SIZE, width=8, hidden=32, object_channel=True)
    net = PolicyNet(cfg)
    frame = torch.from_numpy(input_frames(_full_frame_with_cars()[None], cfg))
    frames = frame[None].repeat(1, cfg.frames, 1, 1, 1)
    out = net(frames, torch.tensor([20.0]), torch.tensor([1]))
    blank = frames.clone()
    blank[..., 3] = 0
    # the prediction depends on the object channel
    assert not torch.allclose(out["trajectory"], net(blank, torch.tensor([20.0]), torch.tensor([1]))["trajectory"])
    with pytest.raises(RuntimeError):
        net(frames[..., :3], torch.tensor([20.0]), torch.tensor([1]))


def test_the_loader_carries_the_clips_cost_field_and_pastes_things_into_it(tmp_path, monkeypatch):
    import opendojo.train.occupancy as occupancy
    from clipfactory import labelled_synthetic_store
    from opendojo.train.loader import LoaderConfig, TrainLoader, history_indices

    store = labelled_synthetic_store(tmp_path / "s", clips=2, frames=60, size=32, seed=5)
    ids = sorted(store.clip_ids())
    # the test clips' textured ground is all saturated colour; a field that says which clip
    # and frame it came from shows the loader picks the right ones
    monkeypatch.setattr(occupancy, "clip_cost_field", lambda store, row, size: np.broadcast_to(
        (ids.index(row["clip_id"]) * 60 + np.arange(row["n_frames"]))[:, None, None] // 2,
        (row["n_frames"], size, size)).astype(np.uint8))
    cfg = LoaderConfig(batch_size=8, frames=2, image_size=16, workers=0)
    plain = next(iter(TrainLoader(store, ids, LabelSpec(), cfg)))
    loader = TrainLoader(store, ids, LabelSpec(), replace(cfg, object_channel=True))
    batch = next(iter(loader))
    assert batch["frames"].shape == (*plain["frames"].shape[:4], 4)
    torch.testing.assert_close(batch["frames"][..., :3], plain["frames"])
    clips, batches = loader._plan(0)[0]
    for (k, f), got in zip(batches[0], batch["frames"][..., 3]):
        want = (ids.index(clips[k]) * 60 + history_indices(f, 2, 1)) // 2
        np.testing.assert_array_equal(got[:, 0, 0].numpy(), want)
    pasting = replace(cfg, object_channel=True, synthetic_share=1.0)
    pasted = next(iter(TrainLoader(store, ids, LabelSpec(), pasting)))
    grew = pasted["frames"][..., 3].int() - batch["frames"][..., 3].int()
    assert (grew >= 0).all()                       # things are added, nothing is erased
    assert (grew.flatten(1).amax(1)[batch["speed"] >= 3] > 100).all()


def test_open_loop_shadow_mode_and_embeddings_feed_the_object_channel(tmp_path, network_inputs):
    from clipfactory import labelled_synthetic_store
    from opendojo.engine.embeddings import encoder_embedding
    from opendojo.engine.shadow import predict_clip, run_shadow, shadow_row
    from opendojo.engine.tables import telemetry_arrays
    from opendojo.evaluate.open_loop import evaluate_open_loop
    from opendojo.train.checkpoint import save_checkpoint
    from opendojo.train.inputs import clip_field
    from opendojo.train.synthetic import make_synthetic_store

    store = labelled_synthetic_store(tmp_path / "s", clips=2, frames=40, size=32, seed=3)
    ids = sorted(store.clip_ids())
    pc = PolicyConfig(frames=2, image_size=16, width=4, stages=2, hidden=8, object_channel=True)
    torch.manual_seed(0)
    net = PolicyNet(pc).eval()
    save_checkpoint(tmp_path / "run", 1, net, None, {"model": pc.to_dict(), "train": {}})
    ckpt = str(tmp_path / "run" / "step-1.safetensors")
    res = evaluate_open_loop(ckpt, store, ids)
    shapes = {tuple(f.shape[-3:]) for f in network_inputs}
    assert res["samples"] > 0 and shapes == {(16, 16, 4)}
    frames = store.read_frames(ids[0])
    tel = telemetry_arrays(store.telemetry(ids[0]))
    field = clip_field(store, ids[0], pc)
    assert field.shape == (len(frames), 16, 16)
    # the test clips' ground is saturated colour, so the channel is full: the network's
    # outputs and features differ from those on an empty one
    seen = predict_clip(net, frames, tel, field=field)[1]
    blind = predict_clip(net, frames, tel, field=np.zeros_like(field))[1]
    assert seen.shape == blind.shape and not np.allclose(seen, blind)
    assert not np.allclose(encoder_embedding(net, frames, field=field),
                           encoder_embedding(net, frames, field=np.zeros_like(field)))
    # shadow mode over the store reads the clip's own channel
    table = run_shadow(store, ckpt, ids[:1])
    row = shadow_row(ids[0], net, ckpt, frames, tel, field=field)
    assert table.column("disagreement")[0].as_py() == pytest.approx(row["disagreement"])
    # imported dashcam video gets an empty channel
    dashcam = make_synthetic_store(tmp_path / "s", clips=1, frames=40, size=32, seed=4, drop_controls=True)
    assert not clip_field(store, dashcam[0], pc).any()
