"""The tau-tau resonance search end to end on a tiny configuration (issue 19): generate,
simulate, select, train, limits, report; the limits and couplings obey the relations they must,
a signal injected into the pseudo-data shows in the observed limit, the HEPData submission is
valid."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from zprime.analyses.tautau_resonance.hepdata import write_hepdata
from zprime.analyses.tautau_resonance.xsec import point_xsec
from zprime.config import load_config
from zprime.errors import InputError
from zprime.pipeline import run
from zprime.report.hepdata import validate_hepdata

# at the lowest simulated mass, where the hypothesis grid starts: the template is exact there
INJECT_MASS, INJECT_FB = 5.2, 1500.0
TINY = {
    "tautau.signal.models": ["zprime", "scalar"],
    "tautau.signal.masses_gev": [5.2, 6.0, 6.8],
    "tautau.signal.events_per_point": 1500,
    "tautau.networks.training_events": 1500,
    "tautau.networks.edges_gev": [5.2, 6.0, 6.8],
    "tautau.networks.epochs": 8,
    "tautau.fit.bias_toys": 30,
    "tautau.fit.step": 3.0,
    # a few windows through the toy-based limits (cheaply)
    "tautau.fit.toys_below_events": 15.0,
    "tautau.fit.limit_toys": 100,
    "tautau.fit.limit_toy_points": 6,
    "luminosity_fb": 0.3,
    "projections.luminosities_fb": [3.0, 30.0],
    # the four-fermion samples spend minutes adapting their maps: the two largest only
    "backgrounds.default_run": ["tautau_4trk", "qqbar"],
    "backgrounds.samples.qqbar.luminosity_factor": 0.05,
    "backgrounds.samples.tautau_4trk.luminosity_factor": 1.0,
    # a strong Z' signal in the pseudo-data: about 20 events after the network in the window
    "pseudo_data.inject_mass_gev": INJECT_MASS,
    "pseudo_data.inject_xsec_fb": INJECT_FB,
    "tautau.inject_model": "zprime",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tt") / "run"
    cfg = load_config(None, preset="tautau_resonance", **TINY)
    run(cfg, out, workers=1, progress=False, console=Console(quiet=True))
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_outputs_and_limits(tiny_run: Path) -> None:
    for name in (
        "xsec.csv",
        "tautau_networks.json",
        "tautau_limits.csv",
        "tautau_bias.csv",
        "tautau_projections.csv",
        "tautau_efficiency_check.csv",
        "tautau_summary.md",
        "tautau_control.json",
        "networks/tautau_range_0.pt",
        "figures/tt_xsec_zprime.png",
        "figures/tt_coupling_scalar.png",
        "figures/tt_projections.png",
        "figures/tt_efficiency_check.png",
        "hepdata/submission.tar.gz",
        "provenance.json",
    ):
        assert (tiny_run / name).is_file(), name
    rows = [r for r in _rows(tiny_run / "tautau_limits.csv") if r["status"] == "ok"]
    assert {r["model"] for r in rows} == {"zprime", "scalar"}
    for r in rows:
        bands = [float(r[f"exp_xsec_br_fb_{k}"]) for k in ("m2", "m1", "median", "p1", "p2")]
        assert bands == sorted(bands)
        obs = float(r["obs_xsec_br_fb"])
        assert obs > 0
        # the coupling limit reproduces the cross-section limit through the model
        c = float(r["obs_coupling"])
        rec = point_xsec(r["model"], float(r["mass_gev"]), c)
        assert rec["sigma_br_fb"] == pytest.approx(obs, rel=2e-3)
        assert 0.0 < float(r["efficiency"]) < 0.5


def test_toy_limits_where_few_events(tiny_run: Path) -> None:
    """The windows with fewer observed events than ``toys_below_events`` have toy-based
    limits, the others asymptotic ones."""
    rows = _rows(tiny_run / "tautau_limits.csv")
    few = [r for r in rows if float(r["n_observed"]) < TINY["tautau.fit.toys_below_events"]]
    assert few
    assert len(few) < len(rows)
    for r in rows:
        want = "toys" if r in few else "asymptotic"
        assert r["method"] == want, r
        assert r["status"] == "ok"
        assert 0 < float(r["exp_xsec_br_fb_median"]) < math.inf
        assert 0 < float(r["obs_xsec_br_fb"]) < math.inf


def test_bias_study_recorded_and_used(tiny_run: Path) -> None:
    """One bias study per simulated mass, with a positive injection; every hypothesis's
    fit-bias uncertainty is the measured |bias| (with its error) interpolated between the
    simulated masses, or the configured floor where that is larger."""
    rows = sorted(_rows(tiny_run / "tautau_bias.csv"), key=lambda r: float(r["mass_gev"]))
    masses = np.array([float(r["mass_gev"]) for r in rows])
    assert masses.tolist() == TINY["tautau.signal.masses_gev"]
    for r in rows:
        assert float(r["converged_fraction"]) > 0.9
        assert float(r["injected_fb"]) > 0
        assert 0 < float(r["relative_bias_error"]) < 1
    measured = np.array(
        [math.hypot(float(r["relative_bias"]), float(r["relative_bias_error"])) for r in rows]
    )
    floor = load_config(None, preset="tautau_resonance").tautau.systematics.fit_bias_floor
    limits = _rows(tiny_run / "tautau_limits.csv")
    assert limits
    for x in limits:
        want = max(float(np.interp(float(x["mass_gev"]), masses, measured)), floor)
        assert float(x["fit_bias"]) == pytest.approx(want, rel=1e-9)


def test_efficiency_between_the_simulated_masses(tiny_run: Path) -> None:
    """The networks trained on mass-continuum samples keep their efficiency between the
    simulated masses: the held-out continuum events, bin by bin in the X mass, agree with the
    efficiency the limits interpolate between the simulated points (networks trained on the
    points themselves rejected the signal between them: 0.0% at 9.4 GeV where the points around
    gave 6.7%)."""
    rows = _rows(tiny_run / "tautau_efficiency_check.csv")
    models = {r["model"] for r in rows}
    assert models == set(TINY["tautau.signal.models"])
    masses = sorted({float(r["mass_gev"]) for r in rows})
    assert masses[0] < 5.4
    assert masses[-1] > 6.6
    assert len(masses) >= 12
    n_bin = np.array([float(r["events_generated"]) for r in rows])
    passed = np.array([float(r["events_passed"]) for r in rows])
    interp = np.array([float(r["efficiency_interpolated"]) for r in rows])
    assert np.all(interp > 0.01)
    np.testing.assert_allclose([float(r["efficiency_continuum"]) for r in rows], passed / n_bin)
    # pooled over the bins (a few events each): the count against the interpolation's
    observed, expected = float(passed.sum()), float(np.sum(interp * n_bin))
    assert expected > 50
    assert abs(observed - expected) < 3.0 * math.sqrt(expected), (observed, expected)


def test_projections_improve_with_the_luminosity(tiny_run: Path) -> None:
    """Ten times the luminosity (both projections from the simulated background as Asimov
    data): the expected limit falls, and by no more than 1/L."""
    by: dict[tuple[str, str], dict[float, float]] = {}
    for r in _rows(tiny_run / "tautau_projections.csv"):
        if r["status"] == "ok":
            by.setdefault((r["model"], r["mass_gev"]), {})[float(r["luminosity_fb"])] = float(
                r["exp_xsec_br_fb_median"]
            )
    pairs = [v for v in by.values() if len(v) == 2]
    assert len(pairs) > 5
    for v in pairs:
        assert 0.095 * v[3.0] < v[30.0] < v[3.0]


def test_injected_signal_shows_in_the_observed_limit(tiny_run: Path) -> None:
    """The Z' injected at 5.2 GeV with 1500 fb: the observed limit there lies far above the
    expected limit of the simulated background and covers the injected cross section within
    the injected count's spread; the summary says the data hold a signal.

    The pseudo-data's signal sample is unweighted at its generated cross section (632 fb here)
    and each event enters Poisson(f) times, f = 1500 / 632: the injected count's relative
    spread is sqrt((1 + f) / n) for n expected events."""
    rows = [
        r
        for r in _rows(tiny_run / "tautau_limits.csv")
        if r["status"] == "ok" and r["model"] == "zprime"
    ]
    at = min(rows, key=lambda r: abs(float(r["mass_gev"]) - INJECT_MASS))
    assert float(at["mass_gev"]) == pytest.approx(INJECT_MASS, abs=1e-9)
    obs, exp = float(at["obs_xsec_br_fb"]), float(at["exp_xsec_br_fb_median"])
    n_sig = INJECT_FB * float(at["signal_events_per_fb"])
    sigma_gen = point_xsec("zprime", INJECT_MASS, 1.0)["sigma_fb"]
    spread = math.sqrt((1.0 + INJECT_FB / sigma_gen) / n_sig)
    assert n_sig > 10
    assert obs > 3.0 * exp
    assert obs > INJECT_FB * (1.0 - 2.0 * spread)
    assert "injected signal" in (tiny_run / "tautau_summary.md").read_text()


def test_hepdata_submission(tiny_run: Path, tmp_path: Path) -> None:
    """The report's submission is valid; a limits table without a column is refused in one
    line naming the file and the column."""
    validate_hepdata(tiny_run / "hepdata")
    tables = sorted(p.name for p in (tiny_run / "hepdata" / "submission").glob("*.yaml"))
    # per model: sigma x B, coupling, efficiency; the bias; per model and luminosity: projection
    assert len(tables) == 1 + 2 * 3 + 1 + 2 * 2
    text = (tiny_run / "tautau_limits.csv").read_text().splitlines()
    header = text[0].split(",")
    drop = header.index("obs_coupling")
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "\n".join(",".join(c for j, c in enumerate(line.split(",")) if j != drop) for line in text)
    )
    with pytest.raises(InputError, match=r"broken\.csv: missing column 'obs_coupling'"):
        write_hepdata(
            broken, None, None, tmp_path / "hd", luminosity_fb=0.3, level=0.1, half_width=6.0
        )
    assert not (tmp_path / "hd").exists()
