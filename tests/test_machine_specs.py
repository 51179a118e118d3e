"""The hardware specs: aggregates derived from parts match the published figures."""

import pytest

from opendojo.errors import DojoError
from opendojo.machine.spec import Catalog, units_for_flops


@pytest.fixture(scope="module")
def cat():
    return Catalog.load(host=__import__("pathlib").Path("/nonexistent/host.yaml"))


def test_aggregates_are_derived_not_typed(cat):
    for name in ("tile", "system_tray", "cabinet", "exapod"):
        lv = cat.get(name)
        assert "bf16_flops" not in lv.figures and "sram_bytes" not in lv.figures
        assert lv.parts


def test_tile_and_exapod_match_published(cat):
    tile, pod = cat.derived("tile"), cat.derived("exapod")
    assert tile["bf16_flops"] == pytest.approx(9e15, rel=0.01)
    assert tile["sram_bytes"] == pytest.approx(11e9, rel=0.01)
    assert pod["bf16_flops"] == pytest.approx(1.1e18, rel=0.02)
    assert pod["sram_bytes"] == pytest.approx(1.3e12, rel=0.03)
    assert pod["hbm_bytes"] == pytest.approx(13e12, rel=0.03)
    assert pod["nodes"] == 1_062_000
    assert cat.count("exapod", "d1") == 3000 and cat.count("exapod", "tile") == 120
    for name in ("d1", "tile", "system_tray", "cabinet", "exapod"):
        for fig, derived, published, err in cat.checks(name):
            assert abs(err) < 0.07, (name, fig, derived, published)


def test_100_eflops_unit_counts(cat):
    assert units_for_flops(100e18, "d1", cat) == 276_243
    assert units_for_flops(100e18, "a100", cat) == 320_513


def test_every_figure_has_a_source_and_weak_ones_are_marked(cat):
    weak = 0
    for lv in cat.levels.values():
        for f in list(lv.figures.values()) + list(lv.published.values()):
            assert f.source, lv.name
            weak += f.weak.startswith("⚠")
    assert weak >= 5


def test_power_is_summed_with_hosts(cat):
    assert cat.power_w("dgx_h100") == pytest.approx(10_200)
    assert cat.power_w("exapod") == pytest.approx(120 * 15_000 + 20 * 4_000)


def test_unknown_machine_is_a_user_error(cat):
    with pytest.raises(DojoError, match="unknown machine"):
        cat.get("tpu_v9")
