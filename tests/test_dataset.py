"""Dataset versions and the loader: seeded order, worker-independence, rank shards, resumable position."""

import itertools

import numpy as np
import pytest
import torch

from opendojo.clips.store import ClipStore
from opendojo.errors import DatasetError
from opendojo.label.hindsight import LabelSpec
from opendojo.train.dataset import create_dataset, list_datasets, load_dataset
from opendojo.train.loader import LoaderConfig, TrainLoader
from opendojo.train.synthetic import make_synthetic_store

from clipfactory import labelled_synthetic_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return labelled_synthetic_store(tmp_path_factory.mktemp("store"), clips=6, frames=50, size=16, seed=4)


def _take(loader, n):
    return list(itertools.islice(iter(loader), n))


def _same(a, b):
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def test_dataset_versions_split_by_clip_and_are_immutable(store):
    v = create_dataset(store, "v1", holdout=0.34, seed=1)
    assert len(v.splits["heldout"]) == 2 and len(v.splits["train"]) == 4
    assert not set(v.splits["heldout"]) & set(v.splits["train"])
    assert load_dataset(store, "v1").splits == v.splits and "v1" in list_datasets(store)
    assert v.code_version
    with pytest.raises(DatasetError, match="already exists"):
        create_dataset(store, "v1", seed=2)
    assert load_dataset(store, "v1").splits == v.splits          # nothing overwritten
    with pytest.raises(DatasetError, match="cannot be empty"):
        create_dataset(store, "empty", filter="scenario = 'nowhere'")
    assert "empty" not in list_datasets(store)
    with pytest.raises(DatasetError, match="no dataset"):
        load_dataset(store, "nope")


def test_order_is_seeded_and_independent_of_workers(store):
    ids = sorted(store.clip_ids())
    cfg = LoaderConfig(batch_size=4, image_size=16, block_clips=2, workers=0, seed=3)
    a = _take(TrainLoader(store, ids, LabelSpec(), cfg), 12)
    b = _take(TrainLoader(store, ids, LabelSpec(), LoaderConfig(**{**cfg.__dict__, "workers": 2})), 12)
    c = _take(TrainLoader(store, ids, LabelSpec(), LoaderConfig(**{**cfg.__dict__, "seed": 4})), 12)
    assert _same(a, b)
    assert not _same(a, c)
    # frames really are the decoded history: the newest frame of a sample equals the clip's frame
    assert a[0]["frames"].shape == (4, 4, 16, 16, 3) and a[0]["frames"].dtype == torch.uint8


def test_resume_from_saved_position_gives_the_same_batches(store):
    ids = sorted(store.clip_ids())
    cfg = LoaderConfig(batch_size=4, image_size=16, block_clips=2, workers=1, seed=5)
    full = TrainLoader(store, ids, LabelSpec(), cfg)
    n = full.steps_per_epoch + 5                     # cross an epoch boundary
    ref = _take(full, n)
    first = TrainLoader(store, ids, LabelSpec(), cfg)
    it = iter(first)
    for _ in range(7):
        next(it)
    state = dict(first.state_dict())                 # position after 7 batches (mid-block)
    resumed = TrainLoader(store, ids, LabelSpec(), cfg)
    resumed.load_state_dict(state)
    assert _same(ref[7:n], _take(resumed, n - 7))
    bad = TrainLoader(store, ids, LabelSpec(), LoaderConfig(**{**cfg.__dict__, "batch_size": 2}))
    with pytest.raises(DatasetError, match="batch_size"):
        bad.load_state_dict(state)


def test_ranks_get_disjoint_shards_and_the_same_step_count(store):
    ids = sorted(store.clip_ids())
    cfg = LoaderConfig(batch_size=2, image_size=16, block_clips=1, workers=0, seed=6)
    r0 = TrainLoader(store, ids, LabelSpec(), cfg, rank=0, world=2)
    r1 = TrainLoader(store, ids, LabelSpec(), cfg, rank=1, world=2)
    assert r0.steps_per_epoch == r1.steps_per_epoch > 0
    c0 = {c for _, _, clips, _ in itertools.islice(r0._blocks_from(0, 0), 3) for c in clips}
    c1 = {c for _, _, clips, _ in itertools.islice(r1._blocks_from(0, 0), 3) for c in clips}
    assert c0 and c1 and not c0 & c1


def test_unlabelled_clips_are_refused(tmp_path):
    make_synthetic_store(tmp_path / "s", clips=2, frames=40, size=16, seed=7)
    s = ClipStore(tmp_path / "s")
    with pytest.raises(DatasetError, match="no labels"):
        TrainLoader(s, sorted(s.clip_ids()), LabelSpec(), LoaderConfig(image_size=16))


def test_frame_cache_gives_the_decoded_frames_and_is_read_instead_of_the_video(tmp_path):
    from opendojo.clips.frame_cache import cache_dir, cached_frames
    from opendojo.clips.video import decode_rgb

    s = labelled_synthetic_store(tmp_path / "s", clips=3, frames=50, size=16, seed=7)
    ids = sorted(s.clip_ids())
    cfg = LoaderConfig(batch_size=4, image_size=12, block_clips=2, workers=0, seed=1)
    plain = _take(TrainLoader(s, ids, LabelSpec(), LoaderConfig(**{**cfg.__dict__, "frame_cache": False})), 30)
    assert not cache_dir(s, 12).exists()
    cold = _take(TrainLoader(s, ids, LabelSpec(), cfg), 30)       # decodes and fills the cache
    assert sorted(p.stem for p in cache_dir(s, 12).glob("*.npy")) == ids
    assert not list(cache_dir(s, 12).glob(".*"))                  # no temporary files left
    n = s.row(ids[0])["n_frames"]
    np.testing.assert_array_equal(cached_frames(s, ids[0], n, 12),
                                  decode_rgb(s.video_source(ids[0]), n_frames=n, size=12))
    # a warm cache is read, not the video: break every video and the loader still delivers
    for cid in ids:
        (tmp_path / "s" / "clips" / cid / "video.mp4").write_bytes(b"not a video")
    warm = _take(TrainLoader(s, ids, LabelSpec(), cfg), 30)     # more than an epoch
    assert _same(plain, cold) and _same(plain, warm)
    with pytest.raises(Exception):
        _take(TrainLoader(s, ids, LabelSpec(), LoaderConfig(**{**cfg.__dict__, "frame_cache": False})), 1)


def test_route_command_is_the_given_one_and_hindsight_only_where_none_was_recorded(tmp_path):
    from clipfactory import labelled_synthetic_store
    from opendojo.label.hindsight import read_labels
    from opendojo.train.loader import ClipLabels

    # Clips long enough to turn within a label horizon of a straight stretch.
    store = labelled_synthetic_store(tmp_path / "sim", clips=4, frames=120, size=16, seed=4)
    ids = sorted(store.clip_ids())
    tab = read_labels(store, ids, LabelSpec(), columns=["clip_id", "frame", "command", "given_command"])
    given = tab.column("given_command").to_numpy().astype(np.int64)
    hindsight = tab.column("command").fill_null(-1).to_numpy().astype(np.int64)
    route = np.concatenate([ClipLabels(store, ids, LabelSpec(), 4, 1)
                            .per_clip[c]["command"] for c in ids])
    hind = np.concatenate([ClipLabels(store, ids, LabelSpec(), 4, 1, command="hindsight")
                           .per_clip[c]["command"] for c in ids])
    assert (given >= 0).all()
    np.testing.assert_array_equal(route, given)
    np.testing.assert_array_equal(hind, hindsight)
    # The two differ where the car turned later than now: hindsight reads the future.
    valid = hindsight >= 0
    assert (route[valid] != hind[valid]).any()
    with pytest.raises(DatasetError, match="command must be"):
        ClipLabels(store, ids, LabelSpec(), 4, 1, command="future")

    # A dashcam clip recorded no command: the route falls back to hindsight.
    cam = labelled_synthetic_store(tmp_path / "cam", clips=2, frames=50, size=16, seed=9,
                                   drop_controls=True)
    cids = sorted(cam.clip_ids())
    a = ClipLabels(cam, cids, LabelSpec(), 4, 1)
    b = ClipLabels(cam, cids, LabelSpec(), 4, 1, command="hindsight")
    for c in cids:
        np.testing.assert_array_equal(a.per_clip[c]["command"], b.per_clip[c]["command"])
        assert (a.per_clip[c]["command"][a.per_clip[c]["sample_frames"]] >= 0).all()


def test_a_checkpoint_from_before_the_command_option_was_trained_on_hindsight():
    from opendojo.train.checkpoint import trained_command

    assert trained_command({"train": {"steps": 10}}) == "hindsight"
    assert trained_command({}) == "hindsight"
    assert trained_command({"train": {"command": "route"}}) == "route"


def test_reaction_frames_are_the_horizon_before_a_reaction_and_its_span():
    from clipfactory import arc_telemetry
    from opendojo.train.loader import reaction_frames

    tel = arc_telemetry(100, fps=10.0, speed=12.0, yaw_rate=0.0001)
    assert not reaction_frames(tel, 3.0).any()              # steady driving: no reaction
    tel["acceleration"] = np.where((np.arange(100) >= 60) & (np.arange(100) <= 64), -5.0, 0.0)
    hot = reaction_frames(tel, 3.0)                         # hard braking in frames 60-64
    assert hot[30] and hot[64] and not hot[29] and not hot[65]
    assert hot.sum() == 35
    assert reaction_frames(tel, 1.0).sum() == 15            # the window follows the horizon


def test_start_frames_and_reaction_oversampling_add_the_samples_they_promise(store):
    from opendojo.engine.tables import telemetry_arrays
    from opendojo.train.loader import ClipLabels, reaction_frames

    ids = sorted(store.clip_ids())
    spec = LabelSpec()
    base = ClipLabels(store, ids, spec, 4, 1)
    start = ClipLabels(store, ids, spec, 4, 1, start_frames=True)
    over = ClipLabels(store, ids, spec, 4, 1, reaction_oversample=2)
    hot_total = 0
    for c in ids:
        plain = base.per_clip[c]["sample_frames"]
        assert plain.min() == 3                              # a full history of 4 frames
        assert list(start.per_clip[c]["sample_frames"]) == [0, 1, 2] + list(plain)
        hot = reaction_frames(telemetry_arrays(store.telemetry(c)), spec.horizon_s)[plain]
        hot_total += int(hot.sum())
        drawn = over.per_clip[c]["sample_frames"]
        assert len(drawn) == len(plain) + 2 * hot.sum()
        assert set(drawn) == set(plain)                     # only repeats, nothing new
        counts = np.bincount(drawn, minlength=plain.max() + 1)[plain]
        assert np.array_equal(counts, np.where(hot, 3, 1))
    assert 0 < hot_total < base.n_samples                   # the synthetic drives do react
    with pytest.raises(DatasetError, match="reaction_oversample"):
        ClipLabels(store, ids, spec, 4, 1, reaction_oversample=-1)


def test_a_start_frame_is_fed_its_clips_first_frame_as_history(store):
    ids = sorted(store.clip_ids())[:2]
    cfg = LoaderConfig(batch_size=4, image_size=16, block_clips=2, workers=0, seed=0,
                       start_frames=True)
    loader = TrainLoader(store, ids, LabelSpec(), cfg)
    videos = [np.stack([np.full((16, 16, 3), i, np.uint8) for i in range(50)])] * 2
    info = [loader.labels.per_clip[c] for c in ids]
    batch = loader._assemble(videos, info, np.array([[0, 0], [0, 2], [1, 3], [1, 7]]))
    history = batch["frames"][:, :, 0, 0, 0].tolist()   # each frame's value is its index
    assert history == [[0, 0, 0, 0], [0, 0, 1, 2], [0, 1, 2, 3], [4, 5, 6, 7]]
