"""`dojo train`, `dojo dataset`, `dojo model info`: every user error is one line and a
non-zero exit, refused before anything is written; --resume changes nothing it cannot; the
store defaults to the config file's, else $DOJO_STORE, else data/fleet; a Ctrl-C'd run says
how to resume it."""

import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from opendojo.errors import ConfigError
from opendojo.train.config import ModelSettings, TrainConfig
from opendojo.train.dataset import create_dataset

from clipfactory import labelled_synthetic_store
from cliutil import QUICK_TRAIN, TINY_MODEL


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = labelled_synthetic_store(tmp_path_factory.mktemp("store"), clips=4, frames=60, size=16, seed=11)
    create_dataset(s, "d", holdout=0.25, seed=0)
    return s


def _invoke(*args, **kw):
    from opendojo.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def _dojo(*args, env=None):
    return subprocess.run([sys.executable, "-m", "opendojo.cli", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def _snapshot(run_dir):
    return {p.relative_to(run_dir): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(store, tmp_path_factory):
    """A 2-step run (checkpoint at step 2) that tests resume from; snapshot to check nothing moved."""
    run = tmp_path_factory.mktemp("finished") / "run"
    r = _invoke("train", "--store", store.url, "--dataset", "d", "--steps", "2", "--checkpoint-every", "2",
                "--run-dir", run, *QUICK_TRAIN)
    assert r.exit_code == 0, r.output
    return run


# 1. zero and negative numbers ---------------------------------------------------------------

@pytest.mark.parametrize("flag,value,field", [
    ("--batch-size", "0", "batch_size"), ("--checkpoint-every", "0", "checkpoint_every"),
    ("--log-every", "0", "log_every"), ("--frames", "0", "model.frames"), ("--lr", "-1", "lr"),
    ("--steps", "0", "steps"), ("--steps", "-5", "steps"), ("--image-size", "0", "model.image_size"),
    ("--width", "0", "model.width"), ("--stages", "0", "model.stages"), ("--hidden", "0", "model.hidden"),
    ("--workers", "-1", "workers"), ("--seed", "-1", "seed"), ("--min-lr", "-1", "min_lr"),
])
def test_non_positive_numbers_are_refused_in_one_line_before_anything_is_written(store, tmp_path, flag,
                                                                                    value, field):
    run = tmp_path / "run"
    r = _invoke("train", "--store", store.url, "--dataset", "d", "--run-dir", run, *QUICK_TRAIN, flag, value)
    assert isinstance(r.exception, ConfigError), r.output
    assert f"{field}:" in str(r.exception) and "\n" not in str(r.exception)
    assert not run.exists()


def test_config_file_values_are_checked_too_and_the_cli_prints_one_line(store, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\ncheckpoint_every = 0\n')
    r = _dojo("train", "--store", store.url, "--dataset", "d", "--config", cfg, "--run-dir", tmp_path / "run")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "checkpoint_every" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()
    for bad in (dict(grad_clip=0.0), dict(accel_scale=0.0), dict(steering_scale=-1.0),
                dict(controls_weight=-1.0), dict(block_clips=0), dict(warmup_steps=-1),
                dict(weight_decay=-0.1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)
    for bad in (dict(frame_stride=0), dict(horizon=0), dict(horizon_s=0.0), dict(spatial_channels=0),
                dict(modes=0), dict(path_points=-1), dict(path_spacing=0.0), dict(image_size=4)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ModelSettings(**bad)
    # the edges that are meaningful stay allowed
    TrainConfig(workers=0, warmup_steps=0, collision_weight=0.0, deviation_weight=0.0, min_lr=0.0,
                model=ModelSettings(path_points=0, image_size=8, frames=1, stages=1))


@pytest.mark.parametrize("flag,value", [("--width", "0"), ("--frames", "0"), ("--image-size", "0")])
def test_model_info_refuses_bad_sizes_in_one_line(flag, value):
    r = _invoke("model", "info", flag, value)
    assert isinstance(r.exception, ConfigError) and "\n" not in str(r.exception), r.output
    assert flag.lstrip("-").replace("-", "_") in str(r.exception)


def test_model_info_refuses_sizes_it_would_ignore_beside_a_checkpoint(finished_run):
    r = _invoke("model", "info", "--checkpoint", finished_run, "--width", "8")
    assert isinstance(r.exception, ConfigError) and "--width" in str(r.exception)


def test_resume_without_more_steps_is_refused_and_rewrites_nothing(finished_run):
    before = _snapshot(finished_run)
    r = _invoke("train", "--run-dir", finished_run, "--resume", "--no-progress")
    assert isinstance(r.exception, ConfigError) and "already at step 2 of 2" in str(r.exception)
    assert _snapshot(finished_run) == before


# 2. lr below min_lr ------------------------------------------------------------------------

def test_lr_below_min_lr_is_refused_naming_both_and_the_schedule_then_decays(store, tmp_path):
    from opendojo.train.trainer import lr_at

    r = _invoke("train", "--store", store.url, "--dataset", "d", "--lr", "1e-5", "--run-dir", tmp_path / "r")
    assert isinstance(r.exception, ConfigError), r.output
    msg = str(r.exception)
    assert "min_lr" in msg and "0.0001" in msg and "1e-05" in msg and "\n" not in msg
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="above lr"):
        TrainConfig(lr=1e-3, min_lr=2e-3)
    cfg = TrainConfig(lr=1e-5, min_lr=0.0, steps=50, warmup_steps=5)
    after = [lr_at(s, cfg) for s in range(5, 51)]
    assert after[0] == pytest.approx(1e-5) and all(a >= b for a, b in zip(after, after[1:]))
    assert after[-1] == pytest.approx(0.0, abs=1e-12)


# 3. --resume does not silently ignore flags ------------------------------------------------

def test_resume_refuses_flags_that_differ_from_the_saved_run(finished_run, tmp_path):
    before = _snapshot(finished_run)
    r = _invoke("train", "--run-dir", finished_run, "--resume", "--steps", "10", "--lr", "0.5",
                "--precision", "cfloat8", "--dataset", "other", "--no-progress")
    assert isinstance(r.exception, ConfigError), r.output
    msg = str(r.exception)
    assert "\n" not in msg and "new --run-dir" in msg
    for part in ("lr would be 0.5 (the run has 0.001)", "precision would be 'cfloat8' (the run has 'float32')",
                 "dataset would be 'other' (the run has 'd')"):
        assert part in msg
    assert "steps" not in msg.split(";")[0]                     # --steps is not a difference
    # a model flag and a config-file value count as given too
    r = _invoke("train", "--run-dir", finished_run, "--resume", "--steps", "4", "--width", "8")
    assert isinstance(r.exception, ConfigError) and "model.width would be 8 (the run has 4)" in str(r.exception)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nsteps = 4\nseed = 9\n")
    r = _invoke("train", "--run-dir", finished_run, "--resume", "--config", cfg)
    assert isinstance(r.exception, ConfigError) and "seed would be 9 (the run has 0)" in str(r.exception)
    assert _snapshot(finished_run) == before


def test_resume_may_raise_steps_and_change_runtime_settings_and_given_equal_values(store, tmp_path):
    run = tmp_path / "run"
    common = ["--run-dir", run, "--no-progress", "--checkpoint-every", "2"]
    assert _invoke("train", "--store", store.url, "--dataset", "d", "--steps", "2", *common, "--batch-size", "4",
                   *TINY_MODEL, "--workers", "0").exit_code == 0
    r = _invoke("train", "--resume", "--steps", "4", "--workers", "1", "--store", store.url,
                "--dataset", "d", "--batch-size", "4", *TINY_MODEL, *common)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[-1])["step"] == 4
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["steps"] == 4 and saved["workers"] == 1 and saved["dataset"] == "d"


# 4. the progress bar shows no NaN loss before one is known ---------------------------------

def test_progress_bar_shows_a_neutral_loss_until_the_first_logged_step():
    from rich.console import Console

    from opendojo.train.trainer import _Bar

    def shown(bar):
        out = io.StringIO()
        Console(file=out, width=200, color_system=None).print(bar.p.get_renderable())
        return out.getvalue()

    bar = _Bar(5, 20)
    try:
        assert "loss \u2013" in shown(bar) and "nan" not in shown(bar)
        bar.update(1, None)
        assert "loss \u2013" in shown(bar) and "nan" not in shown(bar)
        bar.update(1, 1.23456)
        assert "loss 1.235" in shown(bar)
    finally:
        bar.close()


# 5. help texts and defaults ---------------------------------------------------------------

def test_train_help_shows_the_config_defaults_and_dataset_commands_are_described():
    r = _invoke("train", "--help", env={"TERMINAL_WIDTH": "200", "COLUMNS": "200"})
    assert r.exit_code == 0
    rows = {line.split()[1]: line for line in r.output.splitlines() if line.startswith("│ --")}
    for flag, field in (("--steps", "steps"), ("--batch-size", "batch_size"), ("--lr", "lr"),
                        ("--min-lr", "min_lr"), ("--checkpoint-every", "checkpoint_every")):
        default = TrainConfig.model_fields[field].default
        assert f"default: ({default:g})" in rows[flag], rows[flag]
    assert "DOJO_STORE" in rows["--store"]
    for cmd in ("list", "show"):
        r = _invoke("dataset", cmd, "--help", env={"TERMINAL_WIDTH": "200"})
        assert r.exit_code == 0
        assert {"list": "List the store's dataset versions", "show": "Print a dataset version"}[cmd] in r.output
        assert "DOJO_STORE" in r.output


# 6. --store defaults to the config file's, else $DOJO_STORE, else data/fleet ----------------

def test_dataset_commands_take_the_store_from_dojo_store(store):
    r = _dojo("dataset", "list", env={"DOJO_STORE": store.url})
    assert r.returncode == 0 and r.stdout.split() == ["d"], r.stderr
    r = _dojo("dataset", "show", "d", env={"DOJO_STORE": store.url})
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "d", r.stderr
    r = _dojo("dataset", "list", env={"DOJO_STORE": "/nonexistent/store"})
    assert r.returncode == 1 and "/nonexistent/store" in r.stderr and r.stderr.count("\n") == 1


def test_train_store_comes_from_the_flag_else_the_config_file_else_dojo_store(store, tmp_path):
    args = ["--dataset", "d", "--steps", "1", "--checkpoint-every", "1", *QUICK_TRAIN]
    r = _dojo("train", *args, "--run-dir", tmp_path / "env", env={"DOJO_STORE": store.url})
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "env" / "config.json").read_text())["train"]["store"] == store.url
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[train]\nstore = "{store.url}"\n')
    r = _dojo("train", *args, "--config", cfg, "--run-dir", tmp_path / "file",
              env={"DOJO_STORE": "/nonexistent/env-store"})
    assert r.returncode == 0, r.stderr                            # the file's store beats the default
    assert json.loads((tmp_path / "file" / "config.json").read_text())["train"]["store"] == store.url
    r = _invoke("train", *args, "--config", cfg, "--store", "/nonexistent/flag-store",
                "--run-dir", tmp_path / "flag")
    assert r.exit_code == 1 and "/nonexistent/flag-store" in str(r.exception)   # the flag beats the file


# 7. Ctrl-C says where the run stopped and how to resume it ----------------------------------

@pytest.mark.parametrize("stop_at,checkpoint", [(3, 2), (1, None)])
def test_an_interrupted_run_says_where_it_stopped_and_how_to_resume(store, tmp_path, monkeypatch,
                                                                    stop_at, checkpoint):
    import opendojo.train.trainer as trainer

    real = trainer.lr_at

    def lr_at(step, cfg):
        if step == stop_at:
            raise KeyboardInterrupt
        return real(step, cfg)

    monkeypatch.setattr(trainer, "lr_at", lr_at)
    run = tmp_path / "run"
    r = _invoke("train", "--store", store.url, "--dataset", "d", "--steps", "5", "--checkpoint-every", "2",
                "--run-dir", run, *QUICK_TRAIN)
    assert r.exit_code == 130
    line, = r.stderr.splitlines()
    assert f"stopped at step {stop_at} of 5" in line
    if checkpoint:
        assert f"last checkpoint is step {checkpoint}" in line and f"dojo train --run-dir {run} --resume" in line
    else:
        assert "before the first checkpoint" in line and "--resume" not in line
