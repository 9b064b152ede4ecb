"""The dark Higgsstrahlung search end to end on a tiny configuration (issue 17): generate,
simulate, select, windows, limits, report; the limits obey the closed forms a counting
experiment must."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from zprime.analyses.dark_higgsstrahlung.stages import _sigma_isr
from zprime.config import load_config
from zprime.generators.aprime_hdark import sigma_fb
from zprime.physics.dark_higgs import br_mumu
from zprime.pipeline import run

TINY = {
    "dark_higgs.signal.aprime_masses_gev": [4.0, 6.0, 8.0],
    "dark_higgs.signal.hdark_fractions": [0.1, 0.5, 0.9],
    "dark_higgs.signal.events_per_point": 1000,
    "dark_higgs.limits.lee_toys": 50,
    "dark_higgs.windows.aprime_range_gev": [4.0, 8.0],
    # a hypothesis every three core widths and two projections keep the limits and HEPData short
    "dark_higgs.windows.step": 3.0,
    "projections.luminosities_fb": [100.0, 1000.0],
    "luminosity_fb": 1.0,
    **{f"backgrounds.samples.{s}.luminosity_factor": 1.0 for s in ("mumu", "tautau", "eemumu")},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dh") / "run"
    cfg = load_config(None, preset="dark_higgsstrahlung", **TINY)
    run(cfg, out, workers=1, progress=False, console=Console(quiet=True))
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_every_output_exists(tiny_run: Path) -> None:
    for name in (
        "xsec.csv",
        "dark_higgs_points.csv",
        "dark_higgs_windows.parquet",
        "dark_higgs_limits.csv",
        "dark_higgs_significance.json",
        "dark_higgs_summary.md",
        "figures/dh_limit_map.png",
        "figures/dh_limit_slices.png",
        "figures/dh_limit_slices_mh.png",
        "figures/dh_control_photon.png",
        "figures/dh_projections.png",
        "dark_higgs_control.json",
        "dark_higgs_projections.csv",
        "hepdata/submission.tar.gz",
        "hepdata/submission/submission.yaml",
        "provenance.json",
    ):
        assert (tiny_run / name).is_file(), name
    summary = json.loads((tiny_run / "dark_higgs_significance.json").read_text())
    assert summary["toys"] == 50
    assert 0.0 <= summary["global_p"] <= 1.0


def test_limits_obey_the_counting_closed_forms(tiny_run: Path) -> None:
    """n = 0: the flat-prior limit is -ln(0.1) / (eff L) whatever the background, raised only
    by the signal's uncertainty; the epsilon^2 alpha_D limit is the sigma x B one over
    sigma(eps^2 alpha_D = 1) x B, raised only by B's uncertainty; bands are ordered."""
    rows = [r for r in _rows(tiny_run / "dark_higgs_limits.csv") if float(r["efficiency"]) > 0]
    assert len(rows) > 500
    zero = [r for r in rows if int(r["n_observed"]) == 0]
    assert zero
    for r in zero[:: max(1, len(zero) // 200)]:
        closed = -math.log(0.1) / float(r["efficiency"])  # L = 1 fb^-1
        assert 1.0 <= float(r["obs_xsec_br_fb"]) / closed < 1.05
    for r in rows[:: max(1, len(rows) // 50)]:
        bands = [float(r[f"exp_xsec_br_fb_{k}"]) for k in ("m2", "m1", "median", "p1", "p2")]
        assert bands == sorted(bands)
        ma, mh = float(r["m_aprime_gev"]), float(r["m_hdark_gev"])
        ratio = (
            float(r["obs_eps2_alpha_d"])
            * sigma_fb(ma, mh).sigma_fb
            * float(br_mumu(ma))
            / float(r["obs_xsec_br_fb"])
        )
        assert 0.99 <= ratio < 1.03, (ma, mh, ratio)


def test_control_samples_measure_the_data_detectors_photon_loss(tiny_run: Path) -> None:
    """The mu mu gamma tag and probe finds the pseudo-data detector's extra photon loss in the
    backward barrel (a setting of the data detector that the analysis never reads) and none
    in the forward barrel; the normalisations are within a few per cent of 1."""
    ctl = json.loads((tiny_run / "dark_higgs_control.json").read_text())
    truth = load_config(None, preset="dark_higgsstrahlung", **TINY).detector.configurations
    ecl = truth["data"].ecl
    lo, hi = ecl.backward_barrel_theta_deg
    ph = ctl["photon_detection"]
    edges = ph["theta_recoil_edges_deg"]
    checked = 0
    for i in range(len(edges) - 1):
        if ph["fallback"][i]:
            continue
        # bins wholly inside or outside the data detector's backward barrel
        if edges[i] >= lo and edges[i + 1] <= hi:
            expected = ecl.backward_barrel_extra_inefficiency
        elif edges[i + 1] <= lo - 10.0:
            expected = 0.0
        else:
            continue
        assert abs(ph["extra"][i] - expected) < 4.0 * ph["extra_err"][i], (i, ph["extra"][i])
        checked += 1
    assert checked >= 3
    for norm in ctl["normalisation"].values():
        assert not norm["fallback"]
        assert abs(norm["ratio"] - 1.0) < 0.1
    assert ctl["applied"] is True


def test_projections_scale_as_a_counting_experiment(tiny_run: Path) -> None:
    """Projected median limits fall with the luminosity, and never faster than 1/L (the
    scaling without background; background and kept systematics make them fall slower)."""
    rows = _rows(tiny_run / "dark_higgs_projections.csv")
    by: dict[str, dict[float, float]] = {}
    for r in rows:
        v = float(r["exp_xsec_br_fb_median"])
        if math.isfinite(v):
            by.setdefault(r["name"], {})[float(r["luminosity_fb"])] = v
    lums = sorted({float(r["luminosity_fb"]) for r in rows})
    assert len(lums) >= 2
    for name, v in list(by.items())[:: max(1, len(by) // 100)]:
        vals = [v[lum] for lum in lums if lum in v]
        assert vals == sorted(vals, reverse=True), name
        assert vals[-1] >= vals[0] * lums[0] / lums[-1] * 0.99, name


def test_efficiencies_of_the_simulated_points(tiny_run: Path) -> None:
    """The windows keep a sizeable part of the selected signal: efficiency inside the window
    between 1% and 40% (the selection study: 13-34% after all cuts at these masses)."""
    pts = _rows(tiny_run / "dark_higgs_points.csv")
    assert len(pts) >= 6
    eff = np.array([float(p["efficiency"]) for p in pts])
    assert np.all((eff > 0.01) & (eff < 0.4)), eff


def test_isr_cross_section_interpolation_is_within_one_percent() -> None:
    rng = np.random.default_rng(7)
    ma = rng.uniform(1.7, 10.4, 40)
    top = np.minimum(ma, 10.583 - ma)
    mh = rng.uniform(0.003, 0.99, 40) * top
    fast = _sigma_isr(ma, mh, True)
    exact = np.array([sigma_fb(a, h).sigma_fb for a, h in zip(ma, mh, strict=True)])
    assert np.max(np.abs(fast / exact - 1.0)) < 0.01
