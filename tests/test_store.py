import numpy as np
import pytest

from clipfactory import arc_telemetry, moving_frames
from opendojo.clips.schema import ClipMeta, TELEMETRY_SCHEMA
from opendojo.clips.store import ClipStore
from opendojo.errors import ClipNotFound, StoreError

META = ClipMeta(source="sim", vehicle_id="vehicle-0001", driver_id="driver-0001", scenario="highway")


def test_put_read_round_trip(tmp_path):
    store = ClipStore.create(tmp_path / "s")
    frames = moving_frames(25, 32)
    cid, new = store.put(frames, arc_telemetry(25), META)
    assert new
    row = store.row(cid)
    assert (row["n_frames"], row["width"], row["height"]) == (25, 32, 32)
    assert row["scenario"] == "highway" and row["code_version"]
    assert store.telemetry(cid).schema.equals(TELEMETRY_SCHEMA)
    decoded = store.read_frames(cid)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # H.264 at crf 20 is lossy but close
    assert np.abs(decoded.astype(int) - frames).mean() < 6


def test_an_object_mask_is_kept_losslessly_beside_the_video(tmp_path):
    store = ClipStore.create(tmp_path / "s")
    frames = moving_frames(20, 36)                     # 36 px: not a whole number of bytes
    objects = np.random.default_rng(0).random((20, 36, 36)) < 0.05
    row = store.write_clip(frames, arc_telemetry(20), META, objects=objects)
    store.add_to_catalog([row])
    assert store.has_objects(row["clip_id"])
    np.testing.assert_array_equal(store.read_objects(row["clip_id"]), objects)
    plain, _ = store.put(moving_frames(20, 36, seed=1), arc_telemetry(20), META)
    assert not store.has_objects(plain) and store.read_objects(plain) is None
    other = moving_frames(20, 36, seed=2)
    with pytest.raises(ValueError, match="object mask"):
        store.write_clip(other, arc_telemetry(20), META, objects=objects[:, :, :32])
    assert len(list((tmp_path / "s" / "clips").iterdir())) == 2   # the refused clip wrote nothing


def test_frames_at_indices_match_full_decode(tmp_path):
    store = ClipStore.create(tmp_path / "s")
    cid, _ = store.put(moving_frames(40, 32), arc_telemetry(40), META)
    full = store.read_frames(cid)
    idx = [37, 0, 12, 25, 12]
    np.testing.assert_array_equal(store.read_frames(cid, idx), full[idx])
    with pytest.raises(IndexError):
        store.read_frames(cid, [40])


def test_same_content_is_stored_once(tmp_path):
    store = ClipStore.create(tmp_path / "s")
    a = store.put(moving_frames(20, 32), arc_telemetry(20), META)
    b = store.put(moving_frames(20, 32), arc_telemetry(20), META)
    c = store.put(moving_frames(20, 32, seed=1), arc_telemetry(20), META)
    assert a[0] == b[0] and a[1] and not b[1]
    assert c[0] != a[0]
    assert len(store) == 2
    assert len(list((tmp_path / "s" / "clips").iterdir())) == 2


def test_crash_while_writing_leaves_nothing_visible(tmp_path, monkeypatch):
    store = ClipStore.create(tmp_path / "s")

    def crash(*a, **k):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(store.fs, "mv", crash)
    with pytest.raises(KeyboardInterrupt):
        store.put(moving_frames(20, 32), arc_telemetry(20), META)
    assert len(store) == 0
    assert [p.name for p in (tmp_path / "s" / "clips").iterdir() if not p.name.startswith(".tmp-")] == []
    assert store.gc(older_than_s=0) == 1
    assert list((tmp_path / "s" / "clips").iterdir()) == []


def test_files_without_catalog_row_are_invisible(tmp_path):
    # A worker wrote the files, then the parent died before committing the catalog.
    store = ClipStore.create(tmp_path / "s")
    row = store.write_clip(moving_frames(20, 32), arc_telemetry(20), META)
    assert len(store) == 0 and list(store.iter_clips()) == []
    assert store.add_to_catalog([row, row]) == 1
    assert store.clip_ids() == {row["clip_id"]}


def test_filters_and_errors(tmp_path):
    store = ClipStore.create(tmp_path / "s")
    store.put(moving_frames(20, 32), arc_telemetry(20), META)
    store.put(moving_frames(20, 32, 3), arc_telemetry(20), ClipMeta("sim", "v2", "d2", "merge"))
    assert [r["scenario"] for r in store.catalog("scenario = 'merge'").to_pylist()] == ["merge"]
    with pytest.raises(StoreError):
        store.catalog("no_such_column = 1")
    with pytest.raises(ClipNotFound):
        store.row("0" * 20)
    with pytest.raises(StoreError):
        ClipStore(tmp_path / "missing")


def test_sim_truth_is_a_separate_table(tmp_path):
    store = ClipStore.create(tmp_path / "s")
    cid, _ = store.put(moving_frames(20, 32), arc_telemetry(20), META)
    store.put_sim_truth([{"clip_id": cid, "driver_profile": "aggressive", "rare_event": "cut_in",
                          "others": np.zeros((2, 3))}])
    assert "driver_profile" not in store.catalog().column_names
    truth = store.sim_truth().to_pylist()
    assert truth[0]["driver_profile"] == "aggressive" and truth[0]["rare_event"] == "cut_in"
