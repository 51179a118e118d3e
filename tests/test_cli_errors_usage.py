"""User errors from an audit, fourth round: Click's usage errors (a bad, missing or unknown
flag or argument, and `typer.BadParameter`) are one `error:` line with exit code 2, not a
boxed panel (a value out of its range is the command's ConfigError, exit 1, like every
other bad value), while --help and Ctrl-C behave as before; a catalog filter Lance cannot parse
is one line without Lance's Rust source paths, for every command that filters; `dojo train`
saves its store absolute so that a run resumes from any working directory; and a loop
refuses a demo's run directory."""

import json
from pathlib import Path

import pytest

from opendojo.errors import StoreError
from cliutil import TINY_TRAIN, run as _dojo, one_line_error as _one_line_error, tree as _tree, Ran as _Ran


# -- 1. Click's usage errors: one line, exit 2 --------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["train", "--steps", "abc"], ["--steps", "integer", "(see dojo train --help)"]),
    (["clips", "ls", "--limit", "x"], ["--limit", "(see dojo clips ls --help)"]),
    (["train", "--no-such-flag"], ["No such option: --no-such-flag"]),
    (["clips", "show"], ["Missing argument", "clip_id", "(see dojo clips show --help)"]),
    (["dataset", "create"], ["Missing argument", "name"]),
    (["trian"], ["No such command 'trian'", "train", "(see dojo --help)"]),
    (["train", "--precision"], ["--precision", "requires an argument"]),
])
def test_a_usage_error_is_one_line_with_exit_code_2(args, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _dojo(capsys, monkeypatch, *args)
    _one_line_error(code, err, *words, exit_code=2)
    assert out == ""
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("args, words", [
    (["ingest", "in.mp4", "--size", "3"], ["--size must be a positive even number", "not 3"]),
    (["ingest", "in.mp4", "--fps", "0"], ["--fps must be positive", "not 0"]),
    (["ingest", "in.mp4", "--fps", "inf"], ["--fps must be positive and finite", "not inf"]),
    (["clips", "ls", "--limit", "-1"], ["--limit must be at least 0", "not -1"]),
    (["engine", "shadow", "-c", "none", "--every", "0"], ["--every must be at least 1", "not 0"]),
    (["engine", "fleet-drive", "-c", "none", "--rare-event-rate", "2"],
     ["--rare-event-rate must be between 0 and 1", "not 2"]),
    (["curate", "--name", "x", "--coverage", "-0.5"], ["--coverage must be between 0 and 1"]),
    (["curate", "--name", "x", "--drop-worst", "0.995"], ["--drop-worst must be between 0 and 0.99"]),
])
def test_a_flag_value_out_of_its_range_is_one_line_with_exit_code_1(args, words, tmp_path, capsys,
                                                                     monkeypatch):
    """A value Click parses but the command refuses (`ingest --size 3`, `engine shadow
    --every 0`) is a ConfigError like every other bad value (`--episodes 0`, `train --steps
    0`): one line, exit 1, checked before any store is opened or made."""
    monkeypatch.chdir(tmp_path)
    code, _, err = _dojo(capsys, monkeypatch, *args, "--store", tmp_path / "s")
    _one_line_error(code, err, *words, exit_code=1)
    assert _tree(tmp_path) == []


@pytest.mark.parametrize("args, words", [
    (["--help"], ["Usage: dojo", "train", "clips"]),
    (["train", "--help"], ["Usage: dojo train", "--steps", "--resume"]),
    (["clips", "ls", "--help"], ["Usage: dojo clips ls", "--where", "--limit"]),
])
def test_help_still_prints_help_and_exits_0(args, words, capsys, monkeypatch):
    code, out, err = _dojo(capsys, monkeypatch, *args)
    assert code == 0 and err == ""
    for w in words:
        assert w in out, (w, out)


@pytest.mark.parametrize("args, words", [([], ["Usage: dojo", "train"]),
                                         (["clips"], ["Usage: dojo clips", "ls", "show"])])
def test_a_group_without_its_command_prints_its_help_as_before(args, words, capsys, monkeypatch):
    code, out, err = _dojo(capsys, monkeypatch, *args)
    assert code == 2 and err == ""            # Click's no_args_is_help: help, and exit 2
    for w in words:
        assert w in out, (w, out)


def test_ctrl_c_in_a_command_still_exits_130_without_a_traceback(capsys, monkeypatch):
    import opendojo.loop

    def interrupted(cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr(opendojo.loop, "run_loop", interrupted)
    code, _, err = _dojo(capsys, monkeypatch, "loop")
    assert code == 130 and "Traceback" not in err and "error:" not in err


def test_a_command_exit_code_and_success_still_pass_through(tmp_path, capsys, monkeypatch):
    """A command's own `typer.Exit(1)` (ingest with a failed input) and a plain success."""
    from clipfactory import write_mp4_csv

    good = write_mp4_csv(tmp_path / "in", "good", n=10)
    bad = tmp_path / "in" / "bad.mp4"
    bad.write_bytes(b"not a video")
    bad.with_suffix(".csv").write_text((tmp_path / "in" / "good.csv").read_text())
    code, out, _ = _dojo(capsys, monkeypatch, "ingest", good, bad, "--store", tmp_path / "s")
    assert code == 1 and "1 clip(s) added" in out and "1 failed" in out
    code, out, err = _dojo(capsys, monkeypatch, "clips", "ls", "--store", tmp_path / "s")
    assert code == 0 and err == "" and "1 clip(s)" in out


# -- 2. a catalog filter Lance cannot parse: one line, no Rust source paths ----------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from clipfactory import labelled_synthetic_store

    return labelled_synthetic_store(tmp_path_factory.mktemp("filter") / "store", clips=2, frames=30,
                                    size=16, seed=3)


BAD_FILTERS = [("scenario ==== 'x'", "sql parser error"),
               ("no_such_column = 1", "no_such_column"),
               ("foo(n_frames) = 1", "Invalid function 'foo'")]


@pytest.mark.parametrize("command", [["clips", "ls", "--where"], ["clips", "ls", "--filter"],
                                     ["label", "--filter"], ["dataset", "create", "d", "--filter"],
                                     ["curate", "--name", "c", "--filter"]])
@pytest.mark.parametrize("bad, why", BAD_FILTERS)
def test_a_bad_filter_is_one_line_without_rust_source_paths(command, bad, why, store, capsys,
                                                           monkeypatch):
    root = Path(store.url)
    before = _tree(root)
    code, _, err = _dojo(capsys, monkeypatch, *command, bad, "--store", store.url)
    line = _one_line_error(code, err, "--filter", bad, why)
    assert ".rs:" not in line and "/src/" not in line and "Invalid user input" not in line, line
    assert _tree(root) == before


def test_the_store_raises_a_filter_error_naming_the_filter(store):
    from opendojo.errors import FilterError

    with pytest.raises(FilterError) as e:
        store.catalog("scenario ==== 'x'")
    assert isinstance(e.value, StoreError)          # what callers caught before
    assert e.value.filter == "scenario ==== 'x'"
    assert e.value.reason and "\n" not in e.value.reason and ".rs:" not in e.value.reason
    # a good filter still filters
    some = store.catalog().column("clip_id").to_pylist()[0]
    assert store.clip_ids(f"clip_id = '{some}'") == {some}


# -- 3. dojo train saves its store absolute --------------------------------------------------

def test_local_store_paths_are_made_absolute_and_urls_kept(tmp_path, monkeypatch):
    from opendojo.clips import absolute_store

    monkeypatch.chdir(tmp_path)
    assert absolute_store("data/fleet") == str(tmp_path / "data" / "fleet")
    assert absolute_store(str(tmp_path / "s")) == str(tmp_path / "s")
    for url in ("s3://bucket/fleet", "gs://b/f", "memory://fleet", "file:///x/y", ""):
        assert absolute_store(url) == url


def test_a_run_saves_a_relative_store_absolute_and_resumes_from_elsewhere(train_store, tmp_path,
                                                                         capsys, monkeypatch):
    monkeypatch.chdir(train_store)
    run = tmp_path / "run"
    code, _, err = _dojo(capsys, monkeypatch, "train", "--store", "st", "--dataset", "d", "--steps", "1",
                         "--run-dir", run, *TINY_TRAIN)
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())["train"]["store"]
    assert saved == str(train_store / "st")
    assert f'store = "{train_store / "st"}"' in (run / "config.toml").read_text()

    # --resume from another working directory finds the store
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = _dojo(capsys, monkeypatch, "train", "--run-dir", run, "--resume", "--steps", "2",
                           "--workers", "0", "--no-progress")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["step"] == 2

    # the same relative --store, given where the run started, is the run's store
    monkeypatch.chdir(train_store)
    code, out, err = _dojo(capsys, monkeypatch, "train", "--store", "./st", "--run-dir", run, "--resume",
                           "--steps", "3", "--workers", "0", "--no-progress")
    assert code == 0, err

    # ... and given elsewhere, another store: refused
    monkeypatch.chdir(elsewhere)
    before = _tree(run)
    code, _, err = _dojo(capsys, monkeypatch, "train", "--store", "st", "--run-dir", run, "--resume",
                         "--steps", "4", "--workers", "0", "--no-progress")
    _one_line_error(code, err, "--resume", str(elsewhere / "st"), str(train_store / "st"))
    assert _tree(run) == before


def test_a_run_saved_with_a_relative_store_still_resumes_with_it(train_store, tmp_path, capsys,
                                                                monkeypatch):
    """A run from before stores were saved absolute: the relative store given again, from
    where it was started, is the same store."""
    monkeypatch.chdir(train_store)
    run = tmp_path / "old"
    code, _, err = _dojo(capsys, monkeypatch, "train", "--store", "st", "--dataset", "d", "--steps", "1",
                         "--run-dir", run, *TINY_TRAIN)
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["store"] = "st"
    (run / "config.json").write_text(json.dumps(cfg))
    code, _, err = _dojo(capsys, monkeypatch, "train", "--store", "st", "--run-dir", run, "--resume",
                         "--steps", "2", "--workers", "0", "--no-progress")
    assert code == 0, err


# -- 4. dojo loop refuses a demo's run directory --------------------------------------------

def _demo_run(path: Path, *files: str) -> Path:
    from opendojo.demo import DemoConfig

    (path / "store").mkdir(parents=True)
    for f in files:
        (path / f).write_text(json.dumps({"config": DemoConfig(run_dir=str(path)).model_dump()}))
    return path


@pytest.mark.parametrize("files", [("run.json", "fleet_stats.json", "open_loop.json", "closed_loop.json"),
                                   ("fleet_stats.json",)])   # a demo stopped after its fleet stage
def test_loop_refuses_a_demo_run_dir(files, tmp_path, capsys, monkeypatch, no_fleet):
    demo = _demo_run(tmp_path / "demo", *files)
    before = _tree(demo)
    code, _, err = _dojo(capsys, monkeypatch, "loop", "--run-dir", demo)
    _one_line_error(code, err, str(demo), "dojo demo", files[0])
    assert _tree(demo) == before


def test_loop_still_resumes_its_own_run_dir(tmp_path, capsys, monkeypatch, no_fleet):
    """A loop's directory has a run.json too, but also its loop.json."""
    from opendojo.loop import LoopConfig

    run = tmp_path / "loop"
    (run / "store").mkdir(parents=True)
    (run / "loop.json").write_text(json.dumps({"config": LoopConfig(run_dir=str(run)).model_dump(),
                                               "rounds": []}))
    (run / "run.json").write_text("{}")
    with pytest.raises(_Ran, match="fleet"):
        _dojo(capsys, monkeypatch, "loop", "--run-dir", run)
