"""Training: a run killed with SIGKILL mid-epoch and resumed ends with the same weights,
bit for bit, as an uninterrupted run; bad inputs fail with one line and overwrite nothing."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from opendojo.errors import CheckpointError, ConfigError, DatasetError
from opendojo.train.config import ModelSettings, TrainConfig
from opendojo.train.dataset import create_dataset
from opendojo.train.trainer import KILL_ENV, train

from clipfactory import labelled_synthetic_store

TINY = dict(frames=2, image_size=16, width=4, stages=2, hidden=16)
ARGS = ["--batch-size", "4", "--steps", "12", "--checkpoint-every", "5", "--log-every", "1",
        "--workers", "1", "--seed", "3", "--no-progress", "--frames", "2", "--image-size", "16",
        "--width", "4", "--stages", "2", "--hidden", "16"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = labelled_synthetic_store(tmp_path_factory.mktemp("store"), clips=4, frames=60, size=16, seed=11)
    create_dataset(s, "d", holdout=0.25, seed=0)
    return s


def _dojo(*args, env=None):
    return subprocess.run([sys.executable, "-m", "opendojo.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_killed_and_resumed_run_matches_uninterrupted_run_bitwise(store, tmp_path):
    common = ["train", "--store", store.url, "--dataset", "d", *ARGS]
    cfg = TrainConfig(store=store.url, dataset="d", steps=12, batch_size=4, checkpoint_every=5,
                      log_every=1, workers=1, seed=3, model=ModelSettings(**TINY))
    train(cfg, tmp_path / "ref", progress=False)                   # uninterrupted, in this process

    run = tmp_path / "killed"
    killed = _dojo(*common, "--run-dir", str(run), env={KILL_ENV: "8"})
    assert killed.returncode == -signal.SIGKILL                    # really died, mid-epoch
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-5.json", "step-5.safetensors"]
    state = json.loads((run / "checkpoints" / "step-5.json").read_text())["loader"]
    assert state["epoch"] == 0 and state["batch"] == 5              # mid-epoch position saved
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 8                     # steps 6-8 were done, then lost

    resumed = _dojo("train", "--run-dir", str(run), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    a = load_file(str(tmp_path / "ref" / "checkpoints" / "step-12.safetensors"))
    b = load_file(str(run / "checkpoints" / "step-12.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k                          # weights and optimizer state
    # the resumed run saw the same samples: its loss curve equals the uninterrupted one
    ref_m = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    res_m = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in res_m] == list(range(1, 13))
    assert [m["loss"] for m in res_m] == [m["loss"] for m in ref_m]


def test_bad_inputs_fail_cleanly_and_overwrite_nothing(store, tmp_path):
    cfg = TrainConfig(store=store.url, dataset="d", steps=2, batch_size=4, checkpoint_every=2,
                      log_every=1, workers=0, model=ModelSettings(**TINY))
    out = train(cfg, tmp_path / "run", progress=False)
    ck = tmp_path / "run" / "checkpoints" / "step-2.safetensors"
    before = ck.read_bytes(), (tmp_path / "run" / "metrics.jsonl").read_text()
    assert out["step"] == 2

    with pytest.raises(ConfigError, match="already holds a run"):
        train(cfg, tmp_path / "run", progress=False)
    other = cfg.model_copy(update={"steps": 4, "model": ModelSettings(**{**TINY, "width": 8})})
    with pytest.raises(CheckpointError, match="another model config"):
        train(other, tmp_path / "run", resume=True, progress=False)
    with pytest.raises(CheckpointError, match="another model config"):
        train(other.model_copy(update={"init_from": str(ck)}), tmp_path / "fresh", progress=False)
    assert (ck.read_bytes(), (tmp_path / "run" / "metrics.jsonl").read_text()) == before

    create_dataset(store, "all-train", holdout=0.0, seed=0)
    with pytest.raises(DatasetError, match="split 'heldout' is empty"):
        train(cfg.model_copy(update={"dataset": "all-train", "split": "heldout"}), tmp_path / "r1",
              progress=False)
    with pytest.raises(DatasetError, match="has no split"):
        train(cfg.model_copy(update={"split": "val"}), tmp_path / "r2", progress=False)

    from opendojo.cli import app
    r = CliRunner().invoke(app, ["train", "--store", store.url, "--dataset", "d", "--nproc", "999",
                                 "--run-dir", str(tmp_path / "r3")])
    assert r.exit_code != 0 and "--nproc 999 is more than" in str(r.exception)
    assert not (tmp_path / "r3").exists()
    r = _dojo("train", "--store", store.url, "--dataset", "nope", "--run-dir", str(tmp_path / "r4"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no dataset 'nope'" in r.stderr


def test_resuming_a_run_from_before_the_command_option_keeps_the_hindsight_command(store, tmp_path):
    from opendojo.train.trainer import prepare_run_dir

    cfg = TrainConfig(store=store.url, dataset="d", steps=2, batch_size=4, checkpoint_every=2,
                      log_every=1, workers=0, model=ModelSettings(**TINY))
    train(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["command"] == "route"
    assert prepare_run_dir(cfg, tmp_path / "run", resume=True).command == "route"
    del saved["train"]["command"]                       # as a run written before the option
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    assert prepare_run_dir(cfg, tmp_path / "run", resume=True).command == "hindsight"


def test_a_run_from_before_frame_stride_moved_into_the_model_resumes_with_its_stride(store, tmp_path):
    """`frame_stride` describes the network's input, so it moved from [train] to
    [train.model] (where closed-loop driving, shadow mode and embeddings read it);
    runs saved with the old key still resume, with the stride they were trained with."""
    from opendojo.train.trainer import prepare_run_dir

    cfg = TrainConfig(store=store.url, dataset="d", steps=2, batch_size=4, checkpoint_every=2,
                      log_every=1, workers=0, model=ModelSettings(**TINY, frame_stride=2))
    train(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    saved["train"]["frame_stride"] = saved["train"]["model"].pop("frame_stride")
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    resumed = prepare_run_dir(cfg, tmp_path / "run", resume=True)
    assert resumed.model.frame_stride == 2 and resumed == cfg
