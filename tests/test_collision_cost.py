"""The hindsight collision cost (opendojo.train.occupancy): zero on the path the car drove,
high through a car that was really there, sloping the prediction away from it; and the
loader's ego motion agrees with the hindsight labels."""

import numpy as np
import pytest
import torch

from opendojo.label.hindsight import label_telemetry, LabelSpec
from opendojo.train.occupancy import (camera_cost_field, camera_geometry, clip_cost_field,
                                      collision_cost, cost_field, densify, ego_motion)

from clipfactory import arc_telemetry

FPS, STEPS, SIZE = 10, 30, 64


def _stopped_car_clip(gap_m: float, stop_at_m: float, speed: float = 20.0, n: int = 60):
    """Frames of the fleet camera (128 px) with a blue car stopped `gap_m` ahead of where the
    ego starts, while the ego drives straight on at `speed` and stops dead at `stop_at_m`;
    telemetry to match."""
    ppm, ego_row = camera_geometry(128, 128)
    t = np.arange(n) / FPS
    x = np.minimum(speed * t, stop_at_m)
    frames = np.full((n, 128, 128, 3), 100, np.uint8)
    for i in range(n):
        ahead = gap_m - x[i]                                  # metres from the ego to the car
        r = ego_row * 128 - ahead * ppm
        lo, hi = int(round(r - 2.5 * ppm)), int(round(r + 2.5 * ppm))
        if hi > 0 and lo < 128:
            frames[i, max(lo, 0):max(hi, 0), 63:66] = (100, 200, 255)
        frames[i, 109:116, 63:66] = (50, 200, 0)            # the ego itself (green)
    tel = {"t": t, "x": x, "y": np.zeros(n), "heading": np.zeros(n), "speed": np.gradient(x, t)}
    return frames, tel


def _cost(pred, frames, tel, frame=0):
    ppm, ego_row = camera_geometry(128, SIZE)
    field = cost_field(frames, SIZE, *camera_geometry(128, 128)[:1], ego_row)
    driven, turn = ego_motion(tel["x"], tel["y"], tel["heading"], np.array([frame]), STEPS)
    j = np.minimum(frame + np.arange(1, STEPS + 1), len(field) - 1)
    return collision_cost(pred, torch.from_numpy(driven), torch.from_numpy(turn),
                          torch.from_numpy(field[j][None]), ppm, ego_row)


def test_the_driven_path_costs_nothing_and_driving_on_into_the_stopped_car_costs_the_most():
    # a car stopped 40 m ahead; the driver stopped 10 m short of it
    frames, tel = _stopped_car_clip(gap_m=40.0, stop_at_m=30.0)
    times = np.arange(1, 7) * 0.5
    driven = torch.tensor(np.stack([np.minimum(20.0 * times, 30.0), np.zeros(6)], -1),
                          dtype=torch.float32)[None]
    straight_on = torch.tensor(np.stack([20.0 * times, np.zeros(6)], -1), dtype=torch.float32)[None]
    assert _cost(driven, frames, tel).max() < 0.05
    on_it = _cost(straight_on, frames, tel)
    assert on_it.max() > 0.8                                   # at 2 s it is on the car
    assert on_it[0, :10].max() < 0.05                          # and not before it gets close
    # passing one lane over clears it (the car is 2 m wide, the ego too, lanes 4 m apart)
    assert _cost(straight_on + torch.tensor([0.0, 4.0]), frames, tel).max() < 0.05


def test_the_cost_slopes_a_prediction_that_ends_just_behind_the_car_backwards():
    frames, tel = _stopped_car_clip(gap_m=40.0, stop_at_m=30.0)
    # a path that stops 3 m short of the car's centre, inside the ego's margin
    times = np.arange(1, 7) * 0.5
    pred = torch.tensor(np.stack([np.minimum(20.0 * times, 37.0), np.zeros(6)], -1),
                        dtype=torch.float32)[None].requires_grad_(True)
    cost = _cost(pred, frames, tel).sum()
    cost.backward()
    assert cost.item() > 0
    assert pred.grad[0, -1, 0] > 0           # lowering the cost means stopping shorter
    assert abs(pred.grad[0, -1, 1]) < pred.grad[0, -1, 0]


def test_a_clip_without_coloured_objects_has_an_empty_field():
    frames = np.full((5, 128, 128, 3), 100, np.uint8)
    frames[:, 109:116, 63:66] = (50, 200, 0)              # only the ego
    assert cost_field(frames, SIZE, 1.5, 0.875).max() == 0


def test_a_clip_stored_with_its_object_mask_has_the_raw_frames_field(tmp_path):
    """A fleet clip's field is what closed loop's channel would be on its raw frames; one
    stored without a mask falls back to the decoded video, which H.264 has changed."""
    from opendojo.clips.schema import ClipMeta
    from opendojo.clips.store import ClipStore
    from opendojo.fleet.camera import object_pixels

    frames, _ = _stopped_car_clip(gap_m=40.0, stop_at_m=100.0, n=20)
    frames[:, ::2, 20:22] = (40, 160, 220)          # dashes of blue a codec smears
    meta = ClipMeta(source="sim", vehicle_id="v", driver_id="d", scenario="highway", fps=FPS)
    store = ClipStore.create(tmp_path / "s")
    kept = store.write_clip(frames, arc_telemetry(20), meta, objects=object_pixels(frames))
    plain = store.write_clip(frames[::-1].copy(), arc_telemetry(20), meta)
    store.add_to_catalog([kept, plain])
    raw = camera_cost_field(frames, SIZE)
    assert raw.max() == 255
    np.testing.assert_array_equal(clip_cost_field(store, store.row(kept["clip_id"]), SIZE), raw)
    decoded = camera_cost_field(store.read_frames(plain["clip_id"]), SIZE)
    np.testing.assert_array_equal(clip_cost_field(store, store.row(plain["clip_id"]), SIZE), decoded)
    assert not np.array_equal(decoded, raw[::-1])


def test_densify_passes_through_the_waypoints_from_the_origin():
    w = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [4.0, 1.0]]])
    d = densify(w, 6)
    assert torch.allclose(d[0, 1::2], w[0])
    assert torch.allclose(d[0, 0], torch.tensor([0.5, 0.0]))
    assert torch.allclose(d[0, 2], torch.tensor([1.5, 0.5]))


@pytest.mark.parametrize("yaw_rate", [-0.03, 0.12])
def test_ego_motion_lands_on_the_hindsight_labels_at_the_waypoint_frames(yaw_rate):
    tel = arc_telemetry(80, fps=FPS, speed=14.0, yaw_rate=yaw_rate)
    spec = LabelSpec()
    lab = label_telemetry(tel, spec)
    frames = np.flatnonzero(lab["valid"])
    driven, turn = ego_motion(tel["x"], tel["y"], tel["heading"], frames, STEPS)
    every = STEPS // spec.waypoints
    np.testing.assert_allclose(driven[:, every - 1::every], lab["trajectory"][frames], atol=1e-4)
    np.testing.assert_allclose(turn[:, -1], yaw_rate * spec.horizon_s, atol=1e-6)


def test_collision_batches_carry_the_later_frames_and_the_motion_that_matches_the_labels(tmp_path):
    from clipfactory import labelled_synthetic_store
    from opendojo.train.loader import LoaderConfig, TrainLoader

    store = labelled_synthetic_store(tmp_path / "s", clips=2, frames=60, size=32, seed=5)
    ids = sorted(store.clip_ids())
    cfg = LoaderConfig(batch_size=8, frames=2, image_size=16, workers=0, collision=True)
    batch = next(iter(TrainLoader(store, ids, LabelSpec(), cfg)))
    b = batch["speed"].shape[0]
    assert batch["field"].shape == (b, STEPS, 16, 16) and batch["field"].dtype == torch.uint8
    assert batch["driven"].shape == (b, STEPS, 2) and batch["turn"].shape == (b, STEPS)
    every = STEPS // LabelSpec().waypoints
    torch.testing.assert_close(batch["driven"][:, every - 1::every], batch["trajectory"],
                               atol=1e-3, rtol=0)
    plain = next(iter(TrainLoader(store, ids, LabelSpec(), LoaderConfig(
        batch_size=8, frames=2, image_size=16, workers=0))))
    assert "field" not in plain
    torch.testing.assert_close(plain["trajectory"], batch["trajectory"])
