"""Tests of the M_recoil window fit (zprime.analyses.tautau_resonance.fit): the Bernstein basis,
the workspace against pyhf, the fit's closure and its bias on a non-polynomial background."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from zprime.analyses.tautau_resonance.fit import (
    POI,
    bernstein_bins,
    bias_study,
    smooth_background,
    window_edges,
    window_workspace,
)
from zprime.errors import ConfigError, InputError
from zprime.stats import compile_workspace, upper_limit
from zprime.stats.limits import hypotest
from zprime.stats.pyhf_engine import pyhf_hypotest

MASS, SIGMA, LUMI, EFF = 6.2, 0.02, 62.8, 0.05


def _window(bkg_scale: float = 30.0, slope: float = -1.5):
    edges = window_edges(MASS, SIGMA)
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = np.diff(edges)
    sig = EFF * LUMI * np.diff(norm.cdf(edges, MASS, SIGMA))  # events per fb
    # an exponential background: not a polynomial
    bkg = bkg_scale * np.exp(slope * (centres - MASS)) * width / width.sum()
    return edges, sig, bkg


def test_bernstein_basis_partitions_unity_and_is_exact() -> None:
    edges = np.linspace(2.0, 5.0, 13)
    for degree in (0, 1, 2, 4):
        b = bernstein_bins(edges, degree)
        assert b.shape == (degree + 1, 12)
        assert np.all(b >= 0)
        np.testing.assert_allclose(b.sum(axis=1), 1.0, rtol=1e-12)
        # sum_k B_k = 1 everywhere: the bins' share of the window
        np.testing.assert_allclose(b.sum(axis=0) / (degree + 1), np.diff(edges) / 3.0, rtol=1e-12)
    # degree 1: B_1 = t integrates to (t1^2 - t0^2) / 2, times 2 for the normalisation
    t = (edges - 2.0) / 3.0
    np.testing.assert_allclose(bernstein_bins(edges, 1)[1], t[1:] ** 2 - t[:-1] ** 2, rtol=1e-12)
    with pytest.raises(ConfigError):
        bernstein_bins(edges[::-1], 2)


def test_workspace_agrees_with_pyhf() -> None:
    edges, sig, bkg = _window()
    obs = np.random.default_rng(4).poisson(bkg + 2.0 * sig).astype(float)
    spec = window_workspace("m6.2", edges, obs, sig)
    model = compile_workspace(spec)
    for mu in (1.0, 4.0):
        cls, band = hypotest(model, mu)
        ref, ref_band = pyhf_hypotest(spec, mu, tolerance=1e-12)
        assert float(cls[0]) == pytest.approx(ref, rel=2e-4, abs=1e-6)
        np.testing.assert_allclose(np.asarray(band)[0], ref_band, rtol=2e-4, atol=1e-6)
    res = upper_limit(spec)
    assert res.status == "ok"
    assert res.observed > 0


def test_single_event_at_the_peak_agrees_with_pyhf() -> None:
    """One observed event in the signal's peak bin: the free fit puts every background
    coefficient on its zero bound; the background-only fit must not start there (-log L is
    infinite) and the limit is pyhf's: CLs = 0.10 at the observed limit."""
    edges, sig, _ = _window()
    obs = np.zeros(edges.size - 1)
    obs[np.argmax(sig)] = 1.0
    spec = window_workspace("m6.2", edges, obs, sig)
    res = upper_limit(spec, level=0.10)
    assert res.status == "ok", res.message
    ref, _ = pyhf_hypotest(spec, res.observed, tolerance=1e-12)
    assert ref == pytest.approx(0.10, rel=2e-3)


def test_fit_closure_and_bias_on_a_non_polynomial_background() -> None:
    edges, sig, bkg = _window(bkg_scale=200.0, slope=-3.0)
    spec = window_workspace("m6.2", edges, bkg, sig)
    inj = 5.0  # fb: 15.7 signal events on 200 background events
    res = bias_study(spec, bkg, inj, ntoys=300, seed=2)
    assert res.converged.mean() > 0.98
    # an exponential over +-6 sigma of a 20 MeV resolution is nearly quadratic: small bias
    assert abs(res.relative_bias) < 0.1
    assert res.relative_bias_error < 0.1
    assert abs(res.relative_bias) < 3 * res.relative_bias_error + 0.03


def test_bad_input() -> None:
    edges, sig, bkg = _window()
    with pytest.raises(InputError, match="bins"):
        window_workspace("w", edges, bkg[:-1], sig)
    with pytest.raises(InputError, match="empty"):
        window_workspace("w", edges, bkg, 0 * sig)
    with pytest.raises(InputError, match=">= 0"):
        window_workspace("w", edges, bkg, sig, systematics={"x": -0.1})
    with pytest.raises(ConfigError, match="finite"):
        window_edges(6.0, 0.0)
    spec = window_workspace("w", edges, bkg, sig)
    assert spec["measurements"][0]["config"]["poi"] == POI
    with pytest.raises(ConfigError, match="injected"):
        bias_study(spec, bkg, 0.0)


def test_smooth_background_keeps_the_total_and_removes_the_spikes() -> None:
    """The bias toys' truth from a coarse simulation: six events of weight ten in a window
    become a smooth non-negative shape with (about) the same total; a smooth simulated
    background is returned nearly unchanged."""
    edges, sig, bkg = _window(bkg_scale=600.0)
    spiky = np.zeros(edges.size - 1)
    spiky[[1, 5, 6, 12, 17, 22]] = 10.0
    smooth = smooth_background(edges, spiky, sig, degree=4)
    assert np.all(smooth >= 0)
    assert smooth.sum() == pytest.approx(60.0, rel=0.02)
    assert smooth.max() < 0.5 * spiky.max()
    again = smooth_background(edges, bkg, sig, degree=4)
    np.testing.assert_allclose(again, bkg, rtol=0.1)
