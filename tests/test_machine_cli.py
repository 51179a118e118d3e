"""`dojo machine` commands through the root app."""

from typer.testing import CliRunner

from opendojo.cli import app
from opendojo.errors import DojoError


def test_show_exapod_prints_derived_hierarchy():
    r = CliRunner().invoke(app, ["machine", "show", "exapod"])
    assert r.exit_code == 0, r.output
    assert "1,062,000" in r.output and "1.09 EFLOPS" in r.output and "⚠" in r.output


def test_unknown_machine_is_a_dojo_error():
    r = CliRunner().invoke(app, ["machine", "show", "tpu_v9"])
    assert r.exit_code != 0 and isinstance(r.exception, DojoError)


def test_bad_number_is_a_dojo_error():
    r = CliRunner().invoke(app, ["machine", "plan", "--frames-per-day", "-5", "--width", "4"])
    assert isinstance(r.exception, DojoError)
