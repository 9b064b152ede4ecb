"""Local significance, goodness of fit, and the Gross-Vitells look-elsewhere correction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import fftconvolve
from scipy.stats import norm
from test_stats_engine import window_spec
from test_stats_limits import counting_spec

from zprime.errors import InputError
from zprime.stats import (
    build_workspace,
    compile_workspace,
    discovery,
    expected_main,
    global_significance,
    goodness_of_fit,
    upcrossings,
)


@pytest.mark.parametrize(("n", "b"), [(15, 8.0), (3, 5.0), (130, 100.0)])
def test_q0_single_bin_closed_form(n, b) -> None:
    model = compile_workspace(counting_spec(n, b, 2.0))
    res = discovery(model)
    q0 = 2 * (n * math.log(n / b) - (n - b)) if n > b else 0.0  # EPJC 71 (2011) 1554 eq. (97)
    assert res.q0[0] == pytest.approx(q0, rel=1e-7, abs=1e-9)
    assert res.p0[0] == pytest.approx(norm.sf(math.sqrt(q0)), rel=1e-6)
    assert res.status == ["ok"]


def test_injected_signal_is_significant() -> None:
    model = compile_workspace(window_spec(seed=4, nbins=10))
    p = model.init_params()
    p.g[0, model.poi_index] = 12.0
    strong = discovery(model, main=expected_main(model, p))
    assert strong.z[0] > 3.0
    assert strong.mu_hat[0] == pytest.approx(12.0, rel=1e-4)
    p.g[0, model.poi_index] = 0.0
    none = discovery(model, main=expected_main(model, p))
    assert none.z[0] == pytest.approx(0.0, abs=1e-3)


def test_goodness_of_fit_refuses_non_gaussian_per_bin_parameters() -> None:
    spec = counting_spec(5, 3.0, 1.0)
    spec["channels"][0]["samples"][-1]["modifiers"].append(
        {"name": "uncorr", "type": "shapesys", "data": [0.3]}
    )
    with pytest.raises(InputError, match="Gaussian-constrained"):
        goodness_of_fit(compile_workspace(spec))


def test_goodness_of_fit() -> None:
    rng = np.random.default_rng(21)
    bkg = 50.0 + 10.0 * np.sin(np.linspace(0, 3, 20))
    obs = rng.poisson(bkg)
    spec = build_workspace(
        np.full(20, 0.5), {"bkg": bkg}, obs, name="gof", background_shape_unc=0.03
    )
    model = compile_workspace(spec)
    res = goodness_of_fit(model, ntoys=300, rng=np.random.default_rng(2))
    assert res.ndof == 18  # 20 bins - POI - background normalisation
    assert 0.0 < res.p_value < 1.0
    assert res.p_value_toys == pytest.approx(res.p_value, abs=0.1)
    # data equal to the expectation: perfect fit
    perfect = build_workspace(np.full(20, 0.5), {"bkg": bkg}, bkg, name="perfect")
    r2 = goodness_of_fit(compile_workspace(perfect))
    assert r2.t == pytest.approx(0.0, abs=1e-6)
    assert r2.p_value == pytest.approx(1.0, abs=1e-6)


def test_upcrossings() -> None:
    assert upcrossings([0, 2, 0, 3, 3, 0, 0.5], 1.0) == 2
    assert upcrossings([2, 2, 0], 1.0) == 0


def _gaussian_scans(n_scans: int, n_points: int, width: float, rng) -> np.ndarray:
    """Stationary unit-variance Gaussian processes: white noise smoothed by a Gaussian."""
    half = int(5 * width)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))
    noise = rng.standard_normal((n_scans, n_points + 2 * half))
    return fftconvolve(noise, kernel[None, :], mode="valid", axes=1)


def test_gross_vitells_against_toy_scans() -> None:
    """Synthetic local-q0 scans (q0 = max(Z, 0)^2 of a smooth Gaussian process, as for a
    mass scan with correlated neighbours): the Gross-Vitells global p-value, with up-crossings
    counted at a low level on 20 scans, matches the toy rate of max q0 > u (to 7% at u = 9 with
    20000 scans; below u ~ 6 it over-estimates, i.e. stays conservative)."""
    rng = np.random.default_rng(1)
    z = _gaussian_scans(4000, 300, 3.0, rng)
    q0 = np.maximum(z, 0.0) ** 2
    masses = np.linspace(0.2, 8.0, 300)
    n_ref = np.mean([upcrossings(q, 1.0) for q in q0[:20]])
    qmax = q0.max(axis=1)
    for u in (9.0, 12.0):  # 3 and 3.5 sigma local; GV is asymptotic (conservative below)
        p_toys = np.mean(qmax > u)
        scan = q0[0].copy()
        scan[150] = u + 1e-9  # a scan whose largest excess is u
        gv = global_significance(masses, scan, ref_level=1.0, n_ref=n_ref)
        assert gv.q_max == pytest.approx(u)
        assert gv.p_local == pytest.approx(norm.sf(math.sqrt(u)))
        err = 3 * math.sqrt(p_toys * (1 - p_toys) / q0.shape[0])
        assert gv.p_global == pytest.approx(p_toys, abs=err + 0.15 * p_toys)
        assert gv.z_global < gv.z_local
