"""`dojo ingest`: real-video importers and what happens with bad input."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pymap3d
import pytest
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from clipfactory import arc_telemetry, moving_frames, write_mp4_csv
from opendojo.cli import app
from opendojo.clips.ingest import ingest
from opendojo.clips.store import ClipStore

runner = CliRunner()


def _save(path: Path, array) -> None:
    """comma2k19 stores numpy arrays in files without an extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.save(f, np.asarray(array))


def make_comma2k19_segment(root: Path, n: int = 40, fps: float = 20.0,
                           lat0: float = 37.4, lon0: float = -122.1) -> dict:
    """A segment in comma2k19's published layout, from a known local trajectory."""
    rng = np.random.default_rng(0)
    t_boot = 1000.0 + np.arange(n) / fps
    speed = 15 + np.linspace(0, 3, n)
    heading = 0.7 + 0.2 * np.sin(np.arange(n) / n * np.pi)     # CCW from east
    east = np.concatenate([[0], np.cumsum(speed[:-1] * np.cos(heading[:-1]) / fps)])
    north = np.concatenate([[0], np.cumsum(speed[:-1] * np.sin(heading[:-1]) / fps)])
    up = np.zeros(n)
    ex, ey, ez = pymap3d.enu2ecef(east, north, up, lat0, lon0, 10.0)
    positions = np.column_stack([ex, ey, ez])
    # device->ECEF: device forward/left/up = ENU rotated by heading, then ENU -> ECEF
    fwd = np.column_stack(pymap3d.enu2uvw(np.cos(heading), np.sin(heading), up, lat0, lon0))
    left = np.column_stack(pymap3d.enu2uvw(-np.sin(heading), np.cos(heading), up, lat0, lon0))
    upv = np.cross(fwd, left)
    mats = np.stack([fwd, left, upv], axis=-1)                 # columns: device axes in ECEF
    quats = Rotation.from_matrix(mats).as_quat(scalar_first=True)
    vel = np.column_stack(pymap3d.enu2uvw(speed * np.cos(heading), speed * np.sin(heading), up, lat0, lon0))
    _save(root / "global_pose" / "frame_times", t_boot)
    _save(root / "global_pose" / "frame_positions", positions)
    _save(root / "global_pose" / "frame_orientations", quats)
    _save(root / "global_pose" / "frame_velocities", vel)
    can_t = np.arange(t_boot[0] - 1, t_boot[-1] + 1, 0.01)
    _save(root / "processed_log" / "CAN" / "speed" / "t", can_t)
    _save(root / "processed_log" / "CAN" / "speed" / "value", np.interp(can_t, t_boot, speed))
    _save(root / "processed_log" / "CAN" / "steering_angle" / "t", can_t)
    _save(root / "processed_log" / "CAN" / "steering_angle" / "value", np.full(len(can_t), 30.0))
    # raw HEVC elementary stream, as the dataset ships it
    frames = rng.integers(0, 255, (n, 72, 96, 3), dtype=np.uint8)
    with av.open(str(root / "video.hevc"), "w", format="hevc") as c:
        s = c.add_stream("libx265", rate=Fraction(int(fps)))
        s.width, s.height, s.pix_fmt = 96, 72, "yuv420p"
        s.options = {"x265-params": "log-level=none"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    return {"east": east, "north": north, "heading": heading, "speed": speed, "t": t_boot - t_boot[0]}


def test_comma2k19_segment_trajectory_matches_poses(tmp_path):
    truth = make_comma2k19_segment(tmp_path / "Chunk_1" / "route" / "3")
    store = ClipStore.create(tmp_path / "store")
    result = ingest([tmp_path / "Chunk_1"], store, size=32, fps=10.0)
    assert not result.failed and len(result.added) == 1
    row = store.row(result.added[0])
    assert row["source"] == "comma2k19" and row["fps"] == 10.0
    assert row["n_frames"] == 20  # 40 frames at 20 fps -> 20 at 10 fps
    tel = store.telemetry(row["clip_id"]).to_pydict()
    src = np.arange(0, 40, 2)  # every other source frame
    np.testing.assert_allclose(tel["t"], truth["t"][src], atol=1e-9)
    np.testing.assert_allclose(tel["x"], truth["east"][src], atol=0.01)   # centimetres
    np.testing.assert_allclose(tel["y"], truth["north"][src], atol=0.01)
    np.testing.assert_allclose(tel["heading"], truth["heading"][src], atol=1e-4)
    np.testing.assert_allclose(tel["speed"], truth["speed"][src], atol=1e-3)
    np.testing.assert_allclose(tel["steering"], np.deg2rad(30.0) / 15.3, rtol=1e-6)
    assert store.read_frames(row["clip_id"]).shape == (20, 32, 32, 3)


def test_mp4_with_csv_is_resampled_to_frames(tmp_path):
    video = write_mp4_csv(tmp_path / "in", "drive", n=30, fps=15.0)
    store = ClipStore.create(tmp_path / "store")
    result = ingest([video], store, size=32, fps=10.0)
    assert not result.failed
    row = store.row(result.added[0])
    assert row["n_frames"] == 20 and row["width"] == 32  # 2 s of video at 10 fps
    tel = store.telemetry(row["clip_id"]).to_pydict()
    truth = arc_telemetry(60, fps=30.0)  # what write_mp4_csv wrote
    np.testing.assert_allclose(tel["x"], np.interp(tel["t"], truth["t"], truth["x"]), atol=1e-6)
    # ingesting it again stores nothing new
    again = ingest([video], store, size=32, fps=10.0)
    assert again.duplicates == result.added and not again.added and len(store) == 1


def _bad_inputs(d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (input path, words the one-line error must contain)."""
    out = {}
    good = write_mp4_csv(d, "truncated")
    good.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    out["truncated"] = (good, "truncated.mp4")
    corrupt = write_mp4_csv(d, "corrupt")
    corrupt.write_bytes(b"\x00\x01garbage" * 100)
    out["corrupt"] = (corrupt, "cannot decode")
    empty = d / "empty.mp4"
    with av.open(str(empty), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height = 32, 32
    write_mp4_csv(d / "tmp", "empty")
    (d / "tmp" / "empty.csv").rename(d / "empty.csv")
    out["no frames"] = (empty, "")
    tel = arc_telemetry(60, fps=20.0)
    tel["speed"][7] = np.nan
    out["nan"] = (write_mp4_csv(d, "nan", csv_columns=tel), "NaN")
    tel = arc_telemetry(60, fps=20.0)
    del tel["heading"]
    out["missing column"] = (write_mp4_csv(d, "missing", csv_columns=tel), "missing telemetry column(s): heading")
    tel = arc_telemetry(60, fps=20.0)
    tel["t"][10] = tel["t"][8]
    out["non-monotonic"] = (write_mp4_csv(d, "nonmono", csv_columns=tel), "not strictly increasing")
    tel = arc_telemetry(10, fps=20.0)  # half a second of telemetry for 3 s of video
    out["mismatched"] = (write_mp4_csv(d, "short", csv_columns=tel), "do not cover")
    out["wrong path"] = (d / "does" / "not" / "exist.mp4", "no such file")
    return out


def test_bad_inputs_are_quarantined_and_good_ones_still_ingest(tmp_path):
    bad = _bad_inputs(tmp_path / "bad")
    good = [write_mp4_csv(tmp_path / "good", f"ok{i}", seed=i) for i in range(2)]
    store = ClipStore.create(tmp_path / "store")
    paths = [good[0]] + [p for p, _ in bad.values()] + [good[1]]
    result = ingest(paths, store, size=32)
    assert len(result.added) == 2 and len(store) == 2
    assert len(result.failed) == len(bad)
    for name, (path, words) in bad.items():
        errs = [e for e in result.failed if Path(e.path).stem == path.stem or Path(e.path) == path]
        assert errs, f"{name}: no error for {path}"
        msg = str(errs[0])
        assert "\n" not in msg and (str(path) in msg or path.stem in msg), msg
        assert words.lower() in msg.lower(), f"{name}: {msg}"
    quarantined = {Path(q["path"]).stem for q in store.quarantined()}
    assert {p.stem for p, _ in bad.values()} <= quarantined
    # no partial clips: every catalogued clip decodes fully
    for clip in store.iter_clips():
        assert len(clip.frames()) == clip.row["n_frames"]


def test_ingest_cli_exit_code_and_one_line_errors(tmp_path):
    good = write_mp4_csv(tmp_path, "fine")
    res = runner.invoke(app, ["ingest", str(good), str(tmp_path / "nope.mp4"),
                              "--store", str(tmp_path / "store"), "--size", "32"])
    assert res.exit_code == 1
    assert "nope.mp4: no such file or directory" in res.output
    assert "1 clip(s) added" in res.output
    res = runner.invoke(app, ["ingest", str(good), "--store", str(tmp_path / "store"), "--size", "32"])
    assert res.exit_code == 0 and "1 already stored" in res.output


def test_comma2k19_mismatched_frame_count(tmp_path):
    seg = tmp_path / "seg"
    make_comma2k19_segment(seg, n=30)
    _save(seg / "global_pose" / "frame_times", 1000.0 + np.arange(31) / 20)
    result = ingest([seg], ClipStore.create(tmp_path / "store"), size=32)
    assert len(result.failed) == 1 and "disagree" in str(result.failed[0])


@pytest.mark.parametrize("clip_frames", [moving_frames(5, 32)])
def test_clips_cli_ls_and_show(tmp_path, clip_frames):
    store = ClipStore.create(tmp_path / "s")
    from opendojo.clips.schema import ClipMeta
    cid, _ = store.put(clip_frames, arc_telemetry(5), ClipMeta("sim", "v", "d", "merge"))
    res = runner.invoke(app, ["clips", "ls", "--store", str(tmp_path / "s"), "--where", "scenario = 'merge'"])
    assert res.exit_code == 0 and cid in res.output
    gif = tmp_path / "c.gif"
    res = runner.invoke(app, ["clips", "show", cid, "--store", str(tmp_path / "s"), "--gif", str(gif)])
    assert res.exit_code == 0 and "speed" in res.output
    from PIL import Image
    with Image.open(gif) as im:
        assert im.n_frames == 5
