"""The tau-tau resonance search's cross sections (zprime.analyses.tautau_resonance.xsec) and its
registration as an analysis."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from zprime.analyses.registry import get_analysis
from zprime.analyses.tautau_resonance.analysis import xsec_rows
from zprime.analyses.tautau_resonance.xsec import point_xsec
from zprime.cli import app
from zprime.config import load_config
from zprime.errors import ConfigError
from zprime.physics.constants import M_MUON
from zprime.physics.leptophilic import V_HIGGS, branching_tautau
from zprime.physics.xsec_table import load_xsec_table, spin_table_path
from zprime.pipeline import check_inputs


def test_point_xsec_scales_with_the_coupling_squared() -> None:
    one = point_xsec("zprime", 6.0, 1.0)
    two = point_xsec("zprime", 6.0, 0.01)
    assert two["sigma_fb"] == pytest.approx(1e-4 * one["sigma_fb"], rel=1e-12)
    table = load_xsec_table(spin_table_path("vector"))
    assert one["sigma_fb"] == pytest.approx(float(table.sigma_fb(6.0)), rel=1e-12)
    assert one["br_tautau"] == pytest.approx(float(branching_tautau("zprime", 6.0)))
    # the scalar's muon coupling is xi m_mu / v
    s = point_xsec("scalar", 6.0, 50.0)
    y = 50.0 * M_MUON / V_HIGGS
    table_s = load_xsec_table(spin_table_path("scalar"))
    assert s["sigma_fb"] == pytest.approx(y * y * float(table_s.sigma_fb(6.0)), rel=1e-9)
    assert s["sigma_br_fb"] == pytest.approx(s["sigma_fb"] * s["br_tautau"])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("axion", 6.0, 1.0), "unknown model"),
        (("alp", 10.5, 1.0), "outside"),
        (("alp", 6.0, 0.0), "> 0"),
    ],
)
def test_bad_points_are_one_line(args: tuple, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as exc:
        point_xsec(*args)
    assert "\n" not in str(exc.value)


def test_cli_and_registration() -> None:
    res = CliRunner().invoke(
        app, ["xsec", "--analysis", "tautau-resonance", "--model", "alp", "--mass", "8", "--json"]
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output.strip().splitlines()[-1])
    assert rec["model"] == "alp"
    assert math.isfinite(rec["sigma_br_fb"])
    bad = CliRunner().invoke(
        app, ["xsec", "--analysis", "tautau-resonance", "--model", "alp", "--mass", "3"]
    )
    assert isinstance(bad.exception, ConfigError)  # zprime.cli.main: one line, status 2
    assert "outside the search range" in str(bad.exception)
    cfg = load_config(None, preset="tautau_resonance")
    assert cfg.analysis == "tautau_resonance"
    assert cfg.luminosity_fb == 62.8
    ana = get_analysis("tautau_resonance")
    assert ana.min_tracks == 4
    assert [s.name for s in ana.stages] == ["select", "train", "limits", "report"]
    rows = xsec_rows(cfg)
    assert len(rows) == 3 * len(cfg.tautau.signal.masses_gev)
    assert all(r["sigma_br_fb"] > 0 for r in rows)


def test_injection_settings_are_checked() -> None:
    """The injected X: its model and mass from the configuration; a mass outside 3.6-10 GeV or
    --inject-model without --inject-mass is one line; no injection without a cross section."""
    ana = get_analysis("tautau_resonance")
    base = {"pseudo_data.inject_mass_gev": 7.0, "pseudo_data.inject_xsec_fb": 20.0}
    good = load_config(None, preset="tautau_resonance", **base, **{"tautau.inject_model": "alp"})
    sample = ana.injected_signal(good)
    assert sample is not None
    assert (sample.params["model"], sample.params["mass"]) == ("alp", 7.0)
    low = load_config(
        None, preset="tautau_resonance", **{**base, "pseudo_data.inject_mass_gev": 2.0}
    )
    with pytest.raises(ConfigError, match=r"inject_mass_gev.*outside the search range") as exc:
        ana.injected_signal(low)
    assert "\n" not in str(exc.value)
    assert ana.injected_signal(load_config(None, preset="tautau_resonance")) is None
    # pseudo-data thinned from the simulation hold no injected sample: refused before any stage
    thinned = load_config(
        None, preset="tautau_resonance", **base, **{"pseudo_data.source": "simulation"}
    )
    with pytest.raises(ConfigError, match="data detector's pseudo-data only"):
        check_inputs(thinned)
    check_inputs(good)
    invisible = load_config(None, **base, **{"pseudo_data.source": "simulation"})
    check_inputs(invisible)  # the invisible Z' draws it from its own simulated samples
    with pytest.raises(ConfigError, match=r"tautau\.inject_model"):
        load_config(None, preset="tautau_resonance", **{"tautau.inject_model": "axion"})
    res = CliRunner().invoke(
        app, ["run", "--analysis", "tautau-resonance", "--inject-model", "alp", "--until", "xsec"]
    )
    assert isinstance(res.exception, ConfigError)
    assert "--inject-model goes with --inject-mass" in str(res.exception)


def test_data_skim_follows_the_selection() -> None:
    """The pseudo-data keep exactly four tracks and, unless the trigger step is off, one of
    the selection's triggers: what every candidate needs (no selected event is lost)."""
    ana = get_analysis("tautau_resonance")
    skim = ana.data_skim(load_config(None, preset="tautau_resonance"))
    assert (skim.min_tracks, skim.max_tracks) == (4, 4)
    assert set(skim.triggers) == {"trg_three_track", "trg_single_muon"}
    off = load_config(None, preset="tautau_resonance", **{"tautau.selection.disabled": ["trigger"]})
    assert ana.data_skim(off).triggers == ()
    assert get_analysis("invisible_zprime").data_skim(off).params() == {
        "min_tracks": 2,
        "max_tracks": None,
        "triggers": [],
    }
