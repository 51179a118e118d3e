"""More user errors, from an audit: unbounded machine-model sizes, plot and host-spec targets
checked before the slow work (and the plot written atomically), negative counts and prices,
a label filter that matches nothing, an ingest with nothing to ingest, and a loop pointed
at a training run. Each is one line on stderr, exit 1, nothing written."""

from pathlib import Path

import pytest

from opendojo.errors import ConfigError
from cliutil import TINY_NETWORK, TINY_TRAIN, dojo as _dojo, one_line_error as _one_line_error, tree as _tree, Ran as _Ran


@pytest.fixture
def no_trace(monkeypatch):
    """The machine model's workload trace (the slow part of plan / compare) must not run."""
    from opendojo.machine import workload

    def traced(**kw):
        raise _Ran(f"the workload was traced: {kw}")
    monkeypatch.setattr(workload, "policy_workload", traced)


# -- 1. machine plan: network sizes and numbers are bounded ---------------------------------

@pytest.mark.parametrize("args, flag", [
    (["--stages", "40"], "--stages 40"),
    (["--stages", str(10**18)], "--stages"),
    (["--width", "100000000"], "--width 100000000"),
    (["--hidden", "10000000000"], "--hidden 10000000000"),
    (["--frames-per-day", "inf"], "--frames-per-day"),
    (["--samples-per-pflops", "inf"], "--samples-per-pflops"),
    (["--samples-per-pflops", "1e300"], "--samples-per-pflops"),
    (["--peak-flops", "inf"], "--peak-flops"),
    (["--peak-flops", "nan"], "--peak-flops"),
])
def test_machine_plan_refuses_unbounded_numbers_in_one_line(args, flag, capsys, monkeypatch, no_trace):
    code, err = _dojo(capsys, monkeypatch, "machine", "plan", *args)
    _one_line_error(code, err, flag)


def test_the_size_bound_is_on_the_last_stage_and_admits_what_it_says(monkeypatch, no_trace):
    from opendojo.machine import cli

    widest = cli.MAX_CHANNELS
    stages = widest.bit_length()            # width 1 doubled up to exactly the bound
    with pytest.raises(_Ran):
        cli._workload(1, stages, cli.MAX_HIDDEN)
    with pytest.raises(_Ran):
        cli._workload(widest, 1, 16)
    for width, n, hidden in ((1, stages + 1, 16), (widest + 1, 1, 16), (2, stages, 16),
                             (1, 1, cli.MAX_HIDDEN + 1)):
        with pytest.raises(ConfigError):
            cli._workload(width, n, hidden)


# -- 2. machine compare --plot: a suffix matplotlib writes, checked first; written atomically -

@pytest.mark.parametrize("name", ["noext", "p.txt", "p.jpg"])
def test_compare_refuses_a_plot_without_a_supported_suffix_before_the_work(
        name, tmp_path, capsys, monkeypatch, no_trace):
    code, err = _dojo(capsys, monkeypatch, "machine", "compare", *TINY_NETWORK, "--plot", tmp_path / name)
    _one_line_error(code, err, "--plot", ".png", ".svg", ".pdf")
    assert _tree(tmp_path) == []


def test_compare_refuses_a_plot_path_through_a_file_or_onto_a_directory(tmp_path, capsys, monkeypatch,
                                                                        no_trace):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "d.png").mkdir()
    code, err = _dojo(capsys, monkeypatch, "machine", "compare", *TINY_NETWORK, "--plot", tmp_path / "afile" / "p.png")
    _one_line_error(code, err, "afile")
    code, err = _dojo(capsys, monkeypatch, "machine", "compare", *TINY_NETWORK, "--plot", tmp_path / "d.png")
    _one_line_error(code, err, "is a directory")
    assert _tree(tmp_path) == ["afile", "d.png"]


def test_compare_writes_the_plot_atomically_in_the_format_of_its_suffix(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    out = tmp_path / "plots"
    code, _ = _dojo(capsys, monkeypatch, "machine", "compare", *TINY_NETWORK, "--plot", out / "c.svg")
    assert code == 0
    assert _tree(out) == ["c.svg"]
    good = (out / "c.svg").read_bytes()
    assert b"<svg" in good[:2000]

    def broken(self, fname, *a, **kw):          # a writer that dies half way through
        Path(fname).write_bytes(b"<svg half")
        raise RuntimeError("savefig died")
    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="savefig died"):
        _dojo(capsys, monkeypatch, "machine", "compare", *TINY_NETWORK, "--plot", out / "c.svg")
    assert _tree(out) == ["c.svg"] and (out / "c.svg").read_bytes() == good


# -- 3. machine calibrate: the output is checked before the benchmarks ------------------------

@pytest.fixture
def no_benchmark(monkeypatch):
    from opendojo.machine import calibrate

    def measured(*a, **kw):
        raise _Ran("the benchmarks ran")
    monkeypatch.setattr(calibrate, "measure", measured)


def test_calibrate_refuses_a_bad_out_before_benchmarking(tmp_path, capsys, monkeypatch, no_benchmark):
    (tmp_path / "outdir").mkdir()
    (tmp_path / "afile").write_text("x")
    code, err = _dojo(capsys, monkeypatch, "machine", "calibrate", "--quick", "--out", tmp_path / "outdir")
    _one_line_error(code, err, "outdir", "is a directory")
    code, err = _dojo(capsys, monkeypatch, "machine", "calibrate", "--quick",
                      "--out", tmp_path / "afile" / "host.yaml")
    _one_line_error(code, err, "afile")
    # the default target ($OPENDOJO_HOST_SPEC, else the user cache) is checked too
    monkeypatch.setenv("OPENDOJO_HOST_SPEC", str(tmp_path / "outdir"))
    code, err = _dojo(capsys, monkeypatch, "machine", "calibrate", "--quick")
    _one_line_error(code, err, "outdir")
    assert _tree(tmp_path) == ["afile", "outdir"]


# -- 4. negative counts and prices ------------------------------------------------------------

def test_curate_refuses_a_negative_show_before_selecting(tmp_path, capsys, monkeypatch):
    from opendojo.clips.store import ClipStore
    from opendojo.engine import curate

    monkeypatch.setattr(curate, "curate", lambda *a, **k: pytest.fail("curate ran"))
    store = ClipStore.create(tmp_path / "s")
    before = _tree(tmp_path)
    code, err = _dojo(capsys, monkeypatch, "curate", "--store", store.url, "--name", "x", "--show", "-3")
    _one_line_error(code, err, "--show", "-3")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("price", ["-1", "-0.01", "inf", "nan"])
def test_compare_refuses_a_negative_or_non_finite_electricity_price(price, capsys, monkeypatch, no_trace):
    code, err = _dojo(capsys, monkeypatch, "machine", "compare", *TINY_NETWORK, "--usd-per-kwh", price)
    _one_line_error(code, err, "--usd-per-kwh")


# -- 5. label --filter that matches nothing ---------------------------------------------------

def test_label_filter_matching_no_clips_is_an_error(tmp_path, capsys, monkeypatch):
    from opendojo.clips.store import ClipStore
    from opendojo.train.synthetic import make_synthetic_store

    make_synthetic_store(tmp_path / "s", clips=2, frames=30, size=16, seed=3)
    store = ClipStore(tmp_path / "s")
    before = _tree(tmp_path / "s")
    code, err = _dojo(capsys, monkeypatch, "label", "--store", store.url, "--filter", "driver_id = 'nobody'")
    _one_line_error(code, err, "--filter", "nobody", "matched no clips")
    assert _tree(tmp_path / "s") == before
    # a filter that matches still labels
    driver = sorted(store.catalog().column("driver_id").to_pylist())[0]
    code, _ = _dojo(capsys, monkeypatch, "label", "--store", store.url, "--filter", f"driver_id = '{driver}'")
    assert code == 0


# -- 6. ingest with nothing to ingest leaves no store behind ----------------------------------

def test_ingest_of_only_missing_inputs_creates_no_store(tmp_path, capsys, monkeypatch):
    code, err = _dojo(capsys, monkeypatch, "ingest", tmp_path / "missing.mp4", tmp_path / "notes.txt",
                      "--store", tmp_path / "store")
    _one_line_error(code, err, "nothing to ingest", "missing.mp4", "notes.txt")
    assert _tree(tmp_path) == []


# -- 7. loop --run-dir onto a training run ----------------------------------------------------

@pytest.fixture(scope="module")
def train_run(tmp_path_factory, train_store):
    from typer.testing import CliRunner

    from opendojo.cli import app

    run = tmp_path_factory.mktemp("trainrun") / "run"
    r = CliRunner().invoke(app, ["train", "--store", str(train_store / "st"), "--dataset", "d", "--steps", "1",
                                 "--run-dir", str(run), *TINY_TRAIN])
    assert r.exit_code == 0, r.output
    return run


@pytest.mark.parametrize("sub", ["", "checkpoints"])
def test_loop_refuses_a_training_run_dir_as_its_run_dir(sub, train_run, capsys, monkeypatch, no_fleet):
    target = train_run / sub if sub else train_run
    before = _tree(train_run)
    code, err = _dojo(capsys, monkeypatch, "loop", "--run-dir", target)
    _one_line_error(code, err, str(target), "dojo train")
    assert _tree(train_run) == before


def test_loop_still_starts_in_a_fresh_run_dir(tmp_path, capsys, monkeypatch, no_fleet):
    with pytest.raises(_Ran, match="fleet"):
        _dojo(capsys, monkeypatch, "loop", "--run-dir", tmp_path / "fresh")
