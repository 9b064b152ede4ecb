"""Tests of the figures: the data-versus-simulation figures
(zprime.analyses.invisible_zprime.spectra.spectra_figures), the search's figure functions
(zprime.analyses.invisible_zprime.figures) and the search-independent helpers (zprime.report.plots).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import matplotlib.pyplot as plt
import numpy as np
import pytest

from zprime.analyses.invisible_zprime import figures
from zprime.analyses.invisible_zprime.spectra import (
    M2_EDGES,
    before_network_pseudo_data,
    spectra_figures,
)
from zprime.config import load_config
from zprime.errors import InputError
from zprime.io.events import write_events

LUMI = 20.0  # fb^-1


def _sample(rng: np.random.Generator, n: int, w: float, m2_range: tuple[float, float]) -> dict:
    """Weighted selected events (fb per event) spread over an M^2 interval."""
    return {
        "m_recoil2": rng.uniform(*m2_range, n),
        "theta_recoil_cm": rng.uniform(0.3, 2.8, n),
        "theta_recoil": rng.uniform(0.6, 2.1, n),
        "weight": np.full(n, w),
    }


def _write(path: Path, cols: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_events(path, ak.zip({k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}))


def _run_dir(tmp: Path, *, data_scale: float | None = None) -> tuple[Path, dict]:
    """A tiny run directory: two non-empty samples, one empty, a signal hypothesis (not a
    background), the run's pseudo-data; with ``data_scale`` also the data detector's samples
    before the network, with weights ``data_scale`` times the simulation's."""
    rng = np.random.default_rng(11)
    presel = {
        "tautau": _sample(rng, 300, 2.0, (0.0, 50.0)),
        "eemumu": _sample(rng, 200, 5.0, (20.0, 80.0)),
        "mumu": _sample(rng, 0, 1.0, (0.0, 1.0)),
    }
    final = {k: {c: v[: len(v) // 4] for c, v in s.items()} for k, s in presel.items()}
    for name in presel:
        _write(tmp / "selected" / "presel" / f"{name}.parquet", presel[name])
        _write(tmp / "selected" / "final" / f"{name}.parquet", final[name])
        if data_scale is not None:
            scaled = {**presel[name], "weight": presel[name]["weight"] * data_scale}
            _write(tmp / "selected" / "data_presel" / f"{name}.parquet", scaled)
    signal = _sample(rng, 50, 0.01, (0.9, 1.1))
    _write(tmp / "selected" / "presel" / "signal_M1.0000.parquet", signal)
    _write(tmp / "selected" / "final" / "signal_M1.0000.parquet", signal)
    observed = _sample(rng, 400, 1.0, (0.0, 80.0))
    _write(tmp / "data" / "pseudo_data.parquet", observed)
    return tmp, {"presel": presel, "final": final}


def test_spectrum_histograms_totals() -> None:
    """Stacked yields = sum of weight x luminosity, variance = sum (w L)^2, data = counts; an
    empty sample is left out of the stack."""
    rng = np.random.default_rng(3)
    a = _sample(rng, 500, 0.4, (0.0, 80.0))
    b = _sample(rng, 100, 3.0, (10.0, 30.0))
    empty = _sample(rng, 0, 1.0, (0.0, 1.0))
    data = rng.uniform(0.0, 80.0, 700)
    hs = figures.spectrum_histograms(
        data,
        {
            "a": (a["m_recoil2"], a["weight"]),
            "b": (b["m_recoil2"], b["weight"]),
            "e": (empty["m_recoil2"], empty["weight"]),
        },
        M2_EDGES,
        luminosity_fb=LUMI,
    )
    assert list(hs.backgrounds) == ["a", "b"]
    assert hs.backgrounds["a"].sum() == pytest.approx(500 * 0.4 * LUMI)
    assert hs.backgrounds["b"].sum() == pytest.approx(100 * 3.0 * LUMI)
    assert hs.total.sum() == pytest.approx((500 * 0.4 + 100 * 3.0) * LUMI)
    # MC statistical uncertainty: sqrt(sum (w L)^2) per bin
    assert np.sum(hs.total_error**2) == pytest.approx(
        500 * (0.4 * LUMI) ** 2 + 100 * (3.0 * LUMI) ** 2
    )
    assert hs.data is not None
    assert hs.data.sum() == 700
    # every b event lies in [10, 30] GeV^2
    centres = 0.5 * (M2_EDGES[1:] + M2_EDGES[:-1])
    assert np.all(hs.backgrounds["b"][(centres < 9.5) | (centres > 30.5)] == 0)


def test_m2_spectrum_figure_draws_the_data_counts() -> None:
    rng = np.random.default_rng(5)
    s = _sample(rng, 300, 1.0, (0.0, 80.0))
    data = rng.uniform(0.0, 80.0, 6000)
    fig = figures.m2_spectrum_figure(
        data, {"tautau": (s["m_recoil2"], s["weight"])}, M2_EDGES, luminosity_fb=LUMI, title="t"
    )
    ax, rax = fig.axes
    counts, _ = np.histogram(data, bins=M2_EDGES)
    drawn = [line.get_ydata() for line in ax.lines if line.get_marker() == "o"]
    assert len(drawn) == 1
    np.testing.assert_array_equal(np.asarray(drawn[0]), counts[counts > 0])
    assert ax.get_yscale() == "log"
    assert rax.get_ylabel() == "data / sim."
    plt.close(fig)


def test_figures_with_empty_inputs() -> None:
    """No data, no simulated event: the figures are still drawn (rendered, not saved)."""
    empty = (np.zeros(0), np.zeros(0))
    cfg = load_config(None)
    figs = [
        figures.m2_spectrum_figure(data, {"mumu": empty}, M2_EDGES, luminosity_fb=LUMI)
        for data in (None, np.zeros(0))
    ]
    figs += [
        figures.theta_plane_figure(
            None,
            (np.zeros(0), np.zeros(0), np.zeros(0)),
            luminosity_fb=LUMI,
            frame=frame,
            selection=cfg.selection,
        )
        for frame in ("cm", "lab")
    ]
    for fig in figs:
        fig.canvas.draw()
        assert fig.axes
        plt.close(fig)


def test_spectra_figures_writes_every_figure(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path / "run")
    cfg = load_config(None, **{"luminosity_fb": LUMI, "pseudo_data.source": "simulation"})
    out = tmp_path / "figures"
    written = spectra_figures(run, out, cfg)
    expected = {
        "m2_presel",
        "m2_final",
        "m2_final_linear",
        "theta_plane_data_sim",
        "theta_lab_plane_data_sim",
        "theta_plane_data_sim_presel",
    }
    assert set(written) == expected
    for name, png in written.items():
        assert png == out / f"{name}.png"
        assert png.stat().st_size > 1000
        assert png.with_suffix(".pdf").stat().st_size > 1000


def test_before_network_pseudo_data_follows_the_source(tmp_path: Path) -> None:
    """The before-network pseudo-data are L x sum(w) unit-weight events of the configured source
    (signal hypotheses excluded), reproducible from the run's seed."""
    run, samples = _run_dir(tmp_path / "run", data_scale=2.0)
    sim_total = sum(float(np.sum(s["weight"])) for s in samples["presel"].values()) * LUMI
    backgrounds_m2 = np.concatenate([s["m_recoil2"] for s in samples["presel"].values()])
    base = {"luminosity_fb": LUMI}
    cases = [
        ({"pseudo_data.source": "simulation"}, 1.0, "simulation"),
        ({"pseudo_data.source": "data_detector"}, 2.0, "data detector"),
    ]
    for overrides, scale, what in cases:
        cfg = load_config(None, **base, **overrides)
        data, source = before_network_pseudo_data(run, cfg)
        assert source == what
        mu = scale * sim_total
        n = data["m_recoil2"].size
        assert abs(n - mu) < 5.0 * np.sqrt(mu), (overrides, n, mu)
        # every event is a background event (the signal hypothesis is not drawn)
        assert np.isin(data["m_recoil2"], backgrounds_m2).all()
        again, _ = before_network_pseudo_data(run, cfg)
        np.testing.assert_array_equal(again["m_recoil2"], data["m_recoil2"])
    # without the data detector's samples, data_detector falls back to the simulation
    run2, _ = _run_dir(tmp_path / "run2")
    cfg = load_config(None, **base, **{"pseudo_data.source": "data_detector"})
    assert before_network_pseudo_data(run2, cfg)[1] == "simulation"


def test_missing_inputs_raise(tmp_path: Path) -> None:
    cfg = load_config(None, luminosity_fb=LUMI)
    with pytest.raises(InputError, match="presel"):
        spectra_figures(tmp_path / "nothing", tmp_path / "out", cfg)
    run, _ = _run_dir(tmp_path / "run")
    cfg = load_config(
        None,
        **{
            "luminosity_fb": LUMI,
            "pseudo_data.source": "simulation",
            "pseudo_data.inject_mass_gev": 2.0,
            "pseudo_data.inject_xsec_fb": 1.0,
        },
    )
    with pytest.raises(InputError, match=r"signal_M2\.0000"):
        before_network_pseudo_data(run, cfg)


def test_punzi_cut_scan_figure() -> None:
    """One line per test mass (non-finite sigma_min are gaps) and the applied cut marked."""
    cuts = [0.1, 0.3, 0.5, 0.7]
    scan = {
        "cuts": cuts,
        "rows": [
            {"mass_gev": 1.0, "sigma_min_fb": [3.0, 2.0, 1.5, float("inf")]},
            {"mass_gev": 5.0, "sigma_min_fb": [4.0, 3.0, 2.5, 2.8]},
        ],
    }
    fig = figures.punzi_cut_scan_figure(scan, 0.5, LUMI)
    ax = fig.axes[0]
    curves = [line for line in ax.lines if line.get_marker() == "o"]
    assert [line.get_label() for line in curves] == ["1 GeV", "5 GeV"]
    assert np.isnan(np.asarray(curves[0].get_ydata())[-1])
    assert "applied cut 0.5" in [line.get_label() for line in ax.lines]
    assert ax.get_yscale() == "log"
    fig.canvas.draw()
    plt.close(fig)
