"""The tau-tau resonance search end to end on a tiny configuration (issue 19): generate,
simulate, select, train, limits, report; the limits and couplings obey the relations they must."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from zprime.analyses.tautau_resonance.xsec import point_xsec
from zprime.config import load_config
from zprime.pipeline import run

TINY = {
    "tautau.signal.models": ["zprime", "scalar"],
    "tautau.signal.masses_gev": [5.2, 6.0, 6.8],
    "tautau.signal.events_per_point": 1500,
    "tautau.networks.edges_gev": [5.2, 6.0, 6.8],
    "tautau.networks.epochs": 8,
    "tautau.fit.bias_toys": 30,
    "tautau.fit.step": 3.0,
    "luminosity_fb": 0.3,
    "projections.luminosities_fb": [3.0, 30.0],
    # the four-fermion samples spend minutes adapting their maps: the two largest only
    "backgrounds.default_run": ["tautau_4trk", "qqbar"],
    "backgrounds.samples.qqbar.luminosity_factor": 0.05,
    "backgrounds.samples.tautau_4trk.luminosity_factor": 1.0,
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
        "tautau_summary.md",
        "tautau_control.json",
        "networks/tautau_range_0.pt",
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


def test_bias_study_recorded(tiny_run: Path) -> None:
    rows = _rows(tiny_run / "tautau_bias.csv")
    assert rows
    for r in rows:
        assert float(r["converged_fraction"]) > 0.9
        assert math.isfinite(float(r["relative_bias"]))
        assert np.isfinite(float(r["relative_bias_error"]))


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
