"""User errors outside training and evaluation: a config file's stray tables, the default
store, store URLs without their filesystem, and bad counts on the clip and engine commands.
Each is refused with one line (a DojoError) before anything runs."""

import importlib.util
import os

import pytest
from typer.testing import CliRunner

from opendojo.cli import app
from opendojo.config import SECTIONS, load_config
from opendojo.errors import ConfigError, DojoError, StoreError

runner = CliRunner()


def _refused(args, *words):
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, DojoError), res.exception
    msg = str(res.exception)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_a_config_file_with_a_misspelled_table_or_a_stray_key_is_refused(tmp_path):
    from opendojo.demo import DemoConfig

    typo = tmp_path / "typo.toml"
    typo.write_text('[trian]\nlr = 0.5\n\n[demo]\nclips = 20\n')
    with pytest.raises(ConfigError, match=r"unknown table \[trian\]"):
        load_config(DemoConfig, typo, section="demo")
    stray = tmp_path / "stray.toml"
    stray.write_text('clips = 20\n\n[demo]\nseed = 1\n')
    with pytest.raises(ConfigError, match="key 'clips' outside any table"):
        load_config(DemoConfig, stray, section="demo")
    # every stage's table may share one file; each stage reads its own
    ok = tmp_path / "ok.toml"
    ok.write_text("".join(f"[{s}]\n" for s in SECTIONS) + "[train.model]\nwidth = 8\n")
    ok.write_text(ok.read_text().replace("[demo]\n", "[demo]\nclips = 20\n"))
    assert load_config(DemoConfig, ok, section="demo").clips == 20


def test_store_commands_default_to_the_documented_store(tmp_path, monkeypatch):
    from opendojo.clips import DEFAULT_STORE
    from opendojo.clips.store import ClipStore

    if os.path.isabs(DEFAULT_STORE):
        pytest.skip("DOJO_STORE points at an absolute store")
    monkeypatch.chdir(tmp_path)
    msg = _refused(["fleet", "stats"], "no clip store here")
    assert msg.startswith(DEFAULT_STORE), msg
    ClipStore.create(DEFAULT_STORE)
    for args in (["fleet", "stats", "--json"], ["label"], ["engine", "triggers"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output, res.exception)


def test_store_urls_whose_filesystem_is_missing_or_unknown_are_one_line():
    from opendojo.clips.store import ClipStore

    with pytest.raises(StoreError, match="not a store URL fsspec knows"):
        ClipStore("nosuchprotocol://bucket/store")
    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(StoreError, match="s3fs"):
            ClipStore("s3://bucket/store")


def test_bad_counts_on_clip_and_engine_commands_are_refused(tmp_path):
    from opendojo.clips.store import ClipStore

    store = str(ClipStore.create(tmp_path / "s").url)
    _refused(["clips", "ls", "--store", store, "--limit", "-1"], "--limit")
    _refused(["clips", "similar", "abc", "--store", store, "-k", "0"], "-k")
    drive = ["engine", "fleet-drive", "-c", str(tmp_path / "none"), "--store", store]
    _refused([*drive, "--profile", "nobody"], "--profile", "nobody", "expert")
    _refused([*drive, "--mode", "both"], "--mode")
    _refused([*drive, "--episodes", "0"], "--episodes")


def test_the_printed_error_keeps_square_brackets(tmp_path):
    """`dojo` prints a DojoError with rich: a message quoting a table ("[trian]") must not
    lose it as if it were markup."""
    import subprocess
    import sys

    cfg = tmp_path / "c.toml"
    cfg.write_text("[trian]\nlr = 0.5\n")
    res = subprocess.run([sys.executable, "-m", "opendojo.cli", "train", "--config", str(cfg),
                          "--run-dir", str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown table [trian]" in lines[0] and "[train]" in lines[0], res.stderr
    assert not (tmp_path / "run").exists()


def test_demo_and_loop_settings_are_checked_before_any_work():
    from opendojo.demo import DemoConfig
    from opendojo.loop import LoopConfig

    for bad in ("abc", "0%", "150%", "-5%"):
        with pytest.raises(ConfigError, match="budget"):
            load_config(LoopConfig, None, budget=bad)
    assert LoopConfig(budget="1%").budget == "1%"
    with pytest.raises(ConfigError, match="image_size"):
        load_config(LoopConfig, None, image_size=0)
    with pytest.raises(ConfigError, match="control"):
        load_config(DemoConfig, None, control="bogus")
    with pytest.raises(ConfigError, match="width"):
        load_config(DemoConfig, None, width=0)


def test_a_loop_resumes_only_its_own_config_and_refuses_a_broken_state(tmp_path):
    import json

    from opendojo.loop import LoopConfig, _saved_state

    cfg = LoopConfig(run_dir=str(tmp_path), rounds=1)
    state = tmp_path / "loop.json"
    state.write_text(json.dumps({"config": cfg.model_dump(), "rounds": [{"round": 1}]}))
    more = LoopConfig(run_dir=str(tmp_path), rounds=3, workers=1)      # more rounds: allowed
    assert _saved_state(state, more)["rounds"] == [{"round": 1}]
    with pytest.raises(ConfigError, match="seed=0"):
        _saved_state(state, LoopConfig(run_dir=str(tmp_path), seed=7))
    for broken in ("garbage", '{"x": 1}', '{"config": [], "rounds": []}'):
        state.write_text(broken)
        with pytest.raises(ConfigError, match="not a loop state"):
            _saved_state(state, cfg)



def test_a_loop_from_before_a_setting_resumes_as_it_ran_or_is_refused(tmp_path):
    """A loop.json written before `object_channel`, `path_head`, `mirror` and `ema_decay`
    existed trained the blind network without a path head, mirrored samples or averaged
    weights; one written between the first two trained the channel without the head; one
    written before `mirror` trained both without mirroring or averaging; one written before
    `ema_decay` alone did not average. Each resumes only as it ran, never with half its
    rounds another network."""
    import json

    from opendojo.loop import LoopConfig, _saved_state

    state = tmp_path / "loop.json"

    def saved_without(*settings, **cfg):
        old = LoopConfig(run_dir=str(tmp_path), **cfg).model_dump()
        for k in settings:
            del old[k]
        state.write_text(json.dumps({"config": old, "rounds": [{"round": 1}]}))

    saved_without("object_channel", "path_head", "mirror", object_channel=False, path_head=False,
                  mirror=False)
    with pytest.raises(ConfigError, match="object_channel=False, path_head=False, mirror=False"):
        _saved_state(state, LoopConfig(run_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="path_head=False"):
        _saved_state(state, LoopConfig(run_dir=str(tmp_path), object_channel=False))
    as_it_ran = LoopConfig(run_dir=str(tmp_path), object_channel=False, path_head=False, mirror=False)
    assert _saved_state(state, as_it_ran)["rounds"] == [{"round": 1}]

    saved_without("path_head", "mirror", object_channel=True, path_head=False, mirror=False)
    with pytest.raises(ConfigError, match="path_head=False, mirror=False") as refused:
        _saved_state(state, LoopConfig(run_dir=str(tmp_path)))
    assert "object_channel" not in str(refused.value)
    assert _saved_state(state, LoopConfig(run_dir=str(tmp_path), path_head=False, mirror=False))["rounds"]

    saved_without("mirror", "ema_decay", mirror=False, ema_decay=0.0)
    with pytest.raises(ConfigError, match="mirror=False, ema_decay=0.0") as refused:
        _saved_state(state, LoopConfig(run_dir=str(tmp_path)))
    assert "path_head" not in str(refused.value)
    assert _saved_state(state, LoopConfig(run_dir=str(tmp_path), mirror=False, ema_decay=0.0))["rounds"]

    saved_without("ema_decay", ema_decay=0.0)
    with pytest.raises(ConfigError, match="ema_decay=0.0") as refused:
        _saved_state(state, LoopConfig(run_dir=str(tmp_path)))
    assert "mirror" not in str(refused.value)
    assert _saved_state(state, LoopConfig(run_dir=str(tmp_path), ema_decay=0.0))["rounds"]


def test_a_path_through_a_file_is_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "afile").write_text("in the way")
    res = subprocess.run([sys.executable, "-m", "opendojo.cli", "fleet", "generate", "--store",
                          str(tmp_path / "afile"), "--clips", "10", "--workers", "1", "--quiet"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SDL_VIDEODRIVER": "offscreen"})
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "afile" in lines[0] and "Not a directory" in lines[0], res.stderr
