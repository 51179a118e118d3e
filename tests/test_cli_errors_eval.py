"""User errors in eval, export, report and checkpoints: one line, exit 1, nothing half written."""

import json
import math
import os
from pathlib import Path

import pytest
import torch

from opendojo.atomic import atomic_path, write_json, write_text
from opendojo.errors import CheckpointError, ConfigError, DojoError
from opendojo.train.checkpoint import resolve, save_checkpoint
from opendojo.train.model import PolicyConfig, PolicyNet
from cliutil import dojo as _dojo, one_line_error as _one_line_error, tree as _tree


@pytest.fixture
def ckpt(tmp_path):
    pc = PolicyConfig(frames=2, image_size=16, width=4, stages=2, hidden=16)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck", 1, PolicyNet(pc), None, {"model": pc.to_dict(), "train": {}})
    return tmp_path / "ck" / "step-1.safetensors"


def _strict_json(text: str):
    def refuse(c):
        raise ValueError(f"{c} is not JSON")
    return json.loads(text, parse_constant=refuse)


# -- 1. closed-loop arguments ----------------------------------------------------------------

@pytest.mark.parametrize("kw, word", [
    ({"episodes_per_item": 0}, "--episodes"), ({"episodes_per_item": -1}, "--episodes"),
    ({"duration_s": 0.0}, "--duration"), ({"duration_s": -3.0}, "--duration"),
    ({"duration_s": float("nan")}, "--duration"), ({"workers": 0}, "--workers"),
    ({"workers": -2}, "--workers"),
])
def test_evaluate_suite_refuses_empty_suites_before_anything_runs(kw, word, monkeypatch):
    from opendojo.evaluate import closed_loop

    monkeypatch.setattr(closed_loop, "evaluate", lambda *a, **k: pytest.fail("episodes ran"))
    with pytest.raises(ConfigError, match=word):
        closed_loop.evaluate_suite(None, **kw)


@pytest.mark.parametrize("flag, value", [("--episodes", 0), ("--episodes", -1), ("--duration", 0),
                                         ("--duration", -3), ("--workers", 0)])
def test_eval_cli_refuses_bad_suite_flags_in_one_line_writing_nothing(flag, value, ckpt, capsys, monkeypatch):
    args = {"--episodes": 1, "--workers": 1, "--duration": 2}
    args[flag] = value
    before = _tree(ckpt.parent)
    code, err = _dojo(capsys, monkeypatch, "eval", "--closed-loop", "--checkpoint", ckpt,
                      *[x for kv in args.items() for x in kv], "--no-baselines")
    _one_line_error(code, err, flag)
    assert _tree(ckpt.parent) == before


# -- 2. non-finite figures are valid JSON, and the report reads them --------------------------

def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    import numpy as np

    obj = {"collisions_per_km": float("nan"), "ci": [float("nan"), float("inf")], "km": 0.0,
           "t": (np.float32("nan"), np.float64(-np.inf), np.float32(1.5)), "n": 3, "s": "nan"}
    got = _strict_json(write_json(tmp_path / "r.json", obj).read_text())
    assert got == {"collisions_per_km": None, "ci": [None, None], "km": 0.0,
                   "t": [None, None, 1.5], "n": 3, "s": "nan"}


def test_a_zero_km_suite_is_valid_json_and_reported(tmp_path):
    import numpy as np

    from opendojo.evaluate.scoring import episode_metrics, summarize
    from opendojo.report.build import build_report

    n = 20                                  # a car that never moves: 0 km, rate undefined
    ep = episode_metrics("network", "merge", "", 9_000_000, np.arange(n) * 0.1, np.zeros(n),
                         np.zeros(n), np.zeros(n), np.ones(n, bool), np.zeros(n), "", 60.0)
    summary = {d: summarize([ep]) for d in ("network", "expert", "fleet (humans)")}
    assert math.isnan(summary["network"]["collisions_per_km"])
    run = tmp_path / "run"
    write_json(run / "closed_loop.json", {"summary": summary, "seeds": "9000000..9000000",
                                          "episodes": [ep.to_dict()]})
    _strict_json((run / "closed_loop.json").read_text())
    rows = [{"round": 1, "closed_loop": summary["network"], "selection": {"clips": 1},
             "dataset": "d1", "seconds": 1.0, "vs_round_1": {"mean": None, "ci": [None, None]}}]
    write_json(run / "loop.json", {"rounds": rows, "baselines": {}})
    html = build_report(run).read_text()
    assert "collisions/km" in html and "None" not in html and "nan" not in html.lower()
    assert (run / "assets" / "closed_loop.png").stat().st_size > 0


# -- 3. export onto a directory; temporary files never left behind ----------------------------

def test_export_refuses_a_directory_target_in_one_line(ckpt, tmp_path, capsys, monkeypatch):
    target = tmp_path / "x" / "somedir"
    target.mkdir(parents=True)
    code, err = _dojo(capsys, monkeypatch, "export", "--checkpoint", ckpt, "--out", target, "--overwrite")
    _one_line_error(code, err, "is a directory")
    assert _tree(tmp_path / "x") == ["somedir"]


def test_export_removes_its_temporary_file_when_the_export_fails(ckpt, tmp_path, monkeypatch):
    from opendojo.train.export import export_onnx

    def broken(module, args, f, **kw):
        Path(f).write_bytes(b"half an onnx file")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_onnx(ckpt, out / "policy.onnx")
    assert _tree(out) == []


def test_atomic_writers_leave_no_temporary_file_on_failure(tmp_path):
    with pytest.raises(DojoError, match="is a directory"):
        write_text(tmp_path, "x")
    (tmp_path / "d").mkdir()
    with pytest.raises(DojoError, match="is a directory"):
        write_json(tmp_path / "d", {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "f.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer died")
    with pytest.raises(TypeError):
        write_json(tmp_path / "g.json", {"a": object()})
    assert _tree(tmp_path) == ["d"]


# -- 4. report on something that is not a run directory ---------------------------------------

@pytest.mark.parametrize("kind", ["empty", "train"])
def test_report_refuses_a_directory_that_is_not_a_run(kind, tmp_path, capsys, monkeypatch):
    from opendojo.report.build import build_report

    d = tmp_path / "d"
    d.mkdir()
    if kind == "train":                      # what `dojo train` leaves
        (d / "config.json").write_text("{}")
        (d / "metrics.jsonl").write_text(json.dumps({"step": 0, "loss": 1.0}) + "\n")
        (d / "checkpoints").mkdir()
    before = _tree(d)
    with pytest.raises(DojoError, match="not a run directory"):
        build_report(d)
    code, err = _dojo(capsys, monkeypatch, "report", d)
    _one_line_error(code, err, "not a run directory", "run.json", "loop.json")
    if kind == "train":
        assert "dojo train" in err
    assert _tree(d) == before


# -- 5. permissions of atomically written files -------------------------------------------------

def test_written_files_get_the_umask_permissions(ckpt, tmp_path):
    old = os.umask(0o027)
    try:
        pc = PolicyConfig(frames=2, image_size=16, width=4, stages=2, hidden=16)
        path = save_checkpoint(tmp_path / "run", 3, PolicyNet(pc), None, {"model": pc.to_dict()})
        written = [path, path.with_suffix(".json"), write_json(tmp_path / "a.json", {}),
                   write_text(tmp_path / "b.txt", "b")]
    finally:
        os.umask(old)
    for p in written:
        assert oct(p.stat().st_mode & 0o777) == oct(0o640), p


# -- 6. a file that exists but is not a checkpoint ------------------------------------------------

def test_an_existing_non_checkpoint_is_named_as_such(ckpt, tmp_path, capsys, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    with pytest.raises(CheckpointError, match="exists but is not a checkpoint.*step-N.safetensors"):
        resolve(notes)
    half = tmp_path / "half" / "step-2.safetensors"
    half.parent.mkdir()
    half.write_bytes(ckpt.read_bytes())
    with pytest.raises(CheckpointError, match="step-2.json is missing"):
        resolve(half)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        resolve(tmp_path / "missing.safetensors")
    code, err = _dojo(capsys, monkeypatch, "eval", "--closed-loop", "--checkpoint", notes,
                      "--episodes", "1", "--workers", "1", "--duration", "2", "--no-baselines")
    _one_line_error(code, err, "exists but is not a checkpoint")
    assert "no such checkpoint" not in err
