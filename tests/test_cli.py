"""The top-level commands take their settings from flags, then the config file, then defaults."""

import pytest
from typer.testing import CliRunner


def test_config_file_run_dir_is_kept_unless_a_flag_overrides_it(tmp_path, monkeypatch):
    import opendojo.demo
    import opendojo.loop
    from opendojo.cli import app

    seen = []
    monkeypatch.setattr(opendojo.demo, "run_demo", seen.append)
    monkeypatch.setattr(opendojo.loop, "run_loop", seen.append)
    f = tmp_path / "c.toml"
    f.write_text('[demo]\nrun_dir = "runs/mine"\n\n[loop]\nrun_dir = "runs/flywheel"\nrounds = 2\n')
    runner = CliRunner()
    for args in (["demo", "--config", str(f)], ["demo"], ["demo", "--config", str(f), "--run-dir", "x"],
                 ["loop", "--config", str(f)], ["loop"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    assert [c.run_dir for c in seen] == ["runs/mine", "runs/demo", "x", "runs/flywheel", "runs/loop"]
    assert [seen[3].rounds, seen[4].rounds] == [2, 3]


def test_loop_run_json_names_the_code_of_every_round():
    from opendojo.loop import LoopConfig, run_meta

    rounds = [{"round": 1, "seconds": 3.0, "code_version": "0.1.0+aaa"},
              {"round": 2, "seconds": 4.0, "code_version": "0.1.0+aaa"},
              {"round": 3, "seconds": 5.0, "code_version": "0.1.0+bbb"},
              {"round": 4, "seconds": 6.0}]                    # recorded before versions were
    meta = run_meta("loop", LoopConfig(), rounds)
    assert meta["code_version"] == "0.1.0+aaa, 0.1.0+bbb, unknown"
    assert meta["stages"] == {"round 1": 3.0, "round 2": 4.0, "round 3": 5.0, "round 4": 6.0}


def test_a_fresh_flywheel_round_trains_as_long_as_the_warm_started_chain_up_to_it():
    from opendojo.loop import LoopConfig, round_training

    fresh, warm = LoopConfig(steps_first=300, steps_per_round=70), \
        LoopConfig(steps_first=300, steps_per_round=70, warm_start=True)
    chain = 0
    for k in range(1, 5):
        prev = None if k == 1 else f"round-{k - 1}.safetensors"
        w_steps, w_init = round_training(warm, k, prev)
        chain += w_steps
        assert w_init == prev                    # warm: goes on from the last round's weights
        assert round_training(fresh, k, prev) == (chain, None)


@pytest.mark.parametrize("channel,path,mirror,ema", [(True, True, True, True), (False, True, True, True),
                                                     (True, False, True, True), (True, True, False, True),
                                                     (True, True, True, False)])
def test_loop_rounds_train_the_demos_network(tmp_path, monkeypatch, channel, path, mirror, ema):
    """Each round trains what `dojo demo` trains: the object channel with pasted road users,
    the path head, mirrored samples and averaged weights (opendojo.runs.network_fields), or
    without any of them when told."""
    import opendojo.train.trainer
    from opendojo.runs import EMA_DECAY, MIRROR_SHARE, OBJECT_CHANNEL_TRAINING, PATH_POINTS
    from opendojo.loop import LoopConfig, _train

    seen = []
    monkeypatch.setattr(opendojo.train.trainer, "train", lambda tc, *a, **k: seen.append(tc) or {})

    class Store:
        url = str(tmp_path / "store")

    _train(LoopConfig(object_channel=channel, path_head=path, mirror=mirror,
                      ema_decay=EMA_DECAY if ema else 0.0), Store(), "ds", tmp_path / "train", None, 120)
    (tc,) = seen
    assert tc.model.object_channel is channel and tc.steps == 120 and tc.dataset == "ds"
    assert tc.model.path_points == (PATH_POINTS if path else 0) and PATH_POINTS > 0
    assert tc.mirror_share == (MIRROR_SHARE if mirror else 0.0) and MIRROR_SHARE > 0
    assert tc.ema_decay == (EMA_DECAY if ema else 0.0) and 0 < EMA_DECAY < 1
    trained = {k: getattr(tc, k) for k in OBJECT_CHANNEL_TRAINING}
    defaults = {k: getattr(type(tc)(), k) for k in OBJECT_CHANNEL_TRAINING}
    assert trained == (OBJECT_CHANNEL_TRAINING if channel else defaults)
