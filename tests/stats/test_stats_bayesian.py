"""Bayesian credible upper limits (flat prior, nuisances marginalised): closed forms, numerical
integration, CLs comparison, determinism, bad input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gammaincc
from scipy.stats import norm, poisson

from zprime.errors import ConfigError, InputError
from zprime.stats import (
    LimitResult,
    bayesian_limits,
    bayesian_posterior,
    bayesian_upper_limit,
    build_workspace,
    compile_workspace,
    scan_bayesian,
    stack_models,
    upper_limit,
)


def single_bin(n: float, b: float, s: float, mu_max: float = 1000.0, bkg_mods=None) -> dict:
    """One bin: signal ``s`` per unit POI (normfactor ``mu``), background ``b`` (optionally
    with modifiers), ``n`` observed."""
    samples = [
        {
            "name": "signal",
            "data": [s],
            "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
        }
    ]
    if b > 0 or bkg_mods:
        samples.append({"name": "bkg", "data": [b], "modifiers": bkg_mods or []})
    return {
        "channels": [{"name": "count", "samples": samples}],
        "observations": [{"name": "count", "data": [n]}],
        "measurements": [
            {
                "name": "m",
                "config": {
                    "poi": "mu",
                    "parameters": [{"name": "mu", "bounds": [[0.0, mu_max]], "inits": [1.0]}],
                },
            }
        ],
        "version": "1.0.0",
    }


def poisson_credible_limit(n: int, b: float, s: float, level: float = 0.90) -> float:
    """Flat prior on the signal: 1 - Q(n+1, s+b)/Q(n+1, b) = level (Q the regularised upper
    incomplete gamma function), in POI units."""
    f = lambda x: gammaincc(n + 1, x + b) / gammaincc(n + 1, b) - (1.0 - level)  # noqa: E731
    return brentq(f, 0.0, 10.0 * (n + b + 10), xtol=1e-12) / s


def test_zero_events_no_background_is_ln10() -> None:
    for s in (1.0, 2.5):
        lim = bayesian_upper_limit(single_bin(0, 0.0, s))
        assert lim == pytest.approx(-math.log(0.1) / s, rel=1e-5)
    # with a known background and n = 0 the limit does not depend on b (Helene 1983)
    assert bayesian_upper_limit(single_bin(0, 3.0, 1.0)) == pytest.approx(2.302585, rel=1e-5)


@pytest.mark.parametrize(("n", "b", "s"), [(1, 0.5, 1.0), (3, 1.0, 1.0), (10, 4.0, 0.5)])
def test_poisson_known_background_matches_incomplete_gamma(n, b, s) -> None:
    lim = bayesian_upper_limit(single_bin(n, b, s))
    assert lim == pytest.approx(poisson_credible_limit(n, b, s), rel=1e-3)


def test_large_counts_approach_gaussian() -> None:
    b = 10_000.0
    for n in (10_000, 10_300):
        lim = bayesian_upper_limit(single_bin(n, b, 1.0, mu_max=5000.0))
        assert lim == pytest.approx(poisson_credible_limit(n, b, 1.0), rel=1e-3)
        # Gaussian posterior of s (mean n - b, width sqrt(n)) truncated at s >= 0
        m, sd = n - b, math.sqrt(n)
        gauss = m + sd * norm.ppf(norm.cdf(-m / sd) + 0.90 * norm.sf(-m / sd))
        assert lim == pytest.approx(gauss, rel=0.02)
    # n = b: 1.645 sigma (half-Gaussian), beside the unbounded 1.2816 sigma
    assert bayesian_upper_limit(single_bin(10_000, b, 1.0, 5000.0)) / 100.0 == pytest.approx(
        1.645, rel=0.02
    )


def grid_limit(n: int, lam_of, prior_x: np.ndarray, mu_hi: float, level: float = 0.90) -> float:
    """Reference: the marginal likelihood on a fine mu grid, integrating the nuisance ``x`` on
    a fine grid (trapezoid) with prior weights; ``lam_of(mu, x)`` the expected yield."""
    x, px = prior_x
    mu = np.linspace(0.0, mu_hi, 3001)
    lam = lam_of(mu[:, None], x[None, :])
    like = np.trapezoid(poisson.pmf(n, lam) * px[None, :], x, axis=1)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (like[1:] + like[:-1]) * np.diff(mu))])
    return float(np.interp(level, cdf / cdf[-1], mu))


def test_histosys_background_uncertainty_marginalised() -> None:
    """Background b(1 + 0.2 alpha), alpha ~ N(0, 1) in [-5, 5]: the limit grows and equals the
    numerical integral over alpha."""
    n, b, s, rel = 8, 5.0, 1.0, 0.2
    mods = [
        {
            "name": "bunc",
            "type": "histosys",
            "data": {"hi_data": [b * (1 + rel)], "lo_data": [b * (1 - rel)]},
        }
    ]
    lim = bayesian_upper_limit(single_bin(n, b, s, bkg_mods=mods))
    a = np.linspace(-5.0, 5.0, 2001)
    ref = grid_limit(n, lambda mu, x: mu * s + b * (1 + rel * x), (a, norm.pdf(a)), 40.0)
    assert lim == pytest.approx(ref, rel=3e-3)
    assert lim > poisson_credible_limit(n, b, s) * 1.01  # uncertainty widens the posterior


def test_staterror_gamma_marginalised() -> None:
    """A staterror factor gamma ~ N(1, sigma) in [1e-10, 10] (the conditional-gamma path)
    against the numerical integral: on the background only, then on both samples. (On both,
    the posterior of mu has a tail ~ prior(gamma -> 0) / mu, improper for a flat prior on an
    unbounded mu: sigma is kept small enough that the tail is e^-20 below the peak.)"""
    n, b, s, sig = 6, 4.0, 1.0, 0.15
    mods = [{"name": "mcstat", "type": "staterror", "data": [sig * b]}]
    spec = single_bin(n, b, s, bkg_mods=mods)
    g = np.linspace(1e-10, 4.0, 4001)
    ref = grid_limit(n, lambda mu, x: mu * s + x * b, (g, norm.pdf(g, 1.0, sig)), 40.0)
    assert bayesian_upper_limit(spec) == pytest.approx(ref, rel=3e-3)
    spec2 = copy.deepcopy(spec)
    spec2["channels"][0]["samples"][0]["modifiers"].append(
        {"name": "mcstat", "type": "staterror", "data": [0.0]}
    )
    sig2 = sig * b / (b + s)  # pyhf: sqrt(sum of squared uncertainties) / sum of nominals
    ref2 = grid_limit(n, lambda mu, x: x * (mu * s + b), (g, norm.pdf(g, 1.0, sig2)), 60.0)
    assert bayesian_upper_limit(spec2) == pytest.approx(ref2, rel=3e-3)


def window(seed: int = 4, nbins: int = 12, syst: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    x = np.linspace(-2.0, 2.0, nbins)
    sig = 1.5 * np.exp(-0.5 * x**2)
    b1 = 200.0 * np.exp(-0.3 * (x + 2))
    b2 = 40.0 * np.ones(nbins)
    kw = {}
    if syst:
        kw = {
            "signal_shape_unc": 0.10,
            "background_shape_unc": {"mumu": 0.03, "eegamma": 0.10},
            "signal_efficiency_unc": 0.05,
            "lumi_unc": 0.01,
            "signal_mc_unc": 0.05 * sig,
            "background_mc_unc": {"mumu": 0.05 * b1},
        }
    return build_workspace(
        sig, {"mumu": b1, "eegamma": b2}, rng.poisson(b1 + b2), name=f"w{seed}", **kw
    )


def test_multibin_close_to_cls_and_deterministic() -> None:
    """High counts, no systematics: flat-prior Bayesian and CLs limits coincide for a Gaussian
    likelihood; with the systematics the marginalised limit lies a little above CLs (profile)."""
    stat = window(syst=False)
    b_stat = bayesian_upper_limit(stat, rng=np.random.default_rng(1))
    assert b_stat == pytest.approx(upper_limit(stat).observed, rel=0.04)
    spec = window()
    cls = upper_limit(spec).observed
    r1 = bayesian_upper_limit(spec, rng=np.random.default_rng(7))
    r2 = bayesian_upper_limit(spec, rng=np.random.default_rng(7))
    r3 = bayesian_upper_limit(spec, rng=np.random.default_rng(8))
    assert r1 == r2  # seeded: bit-identical
    assert r3 == pytest.approx(r1, rel=0.03)  # MC noise of the marginalisation
    assert 1.0 < r1 / cls < 1.25


def test_posterior_is_normalisable_and_monotone_cdf() -> None:
    post = bayesian_posterior(window(), rng=np.random.default_rng(0))[0]
    assert post.status == "ok"
    assert post.mu[0] == 0.0
    assert np.all(np.diff(post.mu) > 0)
    assert np.max(post.log_posterior) == 0.0
    assert post.log_posterior[-1] < -10.0  # the grid covers the tail
    assert post.ess > 5.0


def test_limits_result_fields_and_toys() -> None:
    res = bayesian_limits(window(), ntoys=6, rng=np.random.default_rng(3))
    assert isinstance(res, LimitResult)
    assert res.ok
    assert res.method == "bayesian"
    assert res.level == 0.90
    assert res.ntoys == 6
    exp = np.asarray(res.expected)
    assert np.all(np.isfinite(exp))
    assert np.all(np.diff(exp) >= 0)
    assert len(res.extra["toy_limits"]) == 6
    assert exp[0] < res.extra["asimov"] < exp[-1]
    asimov_only = bayesian_limits(window(), ntoys=0, rng=np.random.default_rng(3))
    assert math.isnan(asimov_only.expected[0])
    assert math.isnan(asimov_only.expected[4])
    assert asimov_only.expected[2] == pytest.approx(asimov_only.extra["asimov"])


def test_scan_keeps_order_and_failures() -> None:
    bad = copy.deepcopy(window(5))
    bad["channels"][0]["samples"][0]["modifiers"].append(
        {"name": "cm", "type": "custom_mod", "data": None}
    )
    tight = single_bin(20, 1.0, 1.0, mu_max=5.0)  # the posterior reaches the POI bound
    specs = [single_bin(0, 0.0, 1.0), bad, tight, single_bin(0, 0.0, 2.0)]
    out = scan_bayesian(specs, names=["a", "b", "c", "d"], ntoys=0, seed=1)
    assert [r.name for r in out] == ["a", "b", "c", "d"]
    assert out[0].observed == pytest.approx(2.302585, rel=1e-5)
    assert out[3].observed == pytest.approx(1.151293, rel=1e-5)
    assert out[1].status == "failed"
    assert "custom_mod" in out[1].message
    assert out[2].status == "failed"
    assert "POI upper bound" in out[2].message
    assert "\n" not in out[1].message + out[2].message
    again = scan_bayesian(specs, ntoys=0, seed=1)
    assert [r.observed for r in again] == pytest.approx([r.observed for r in out], nan_ok=True)


def test_bad_input_is_one_line() -> None:
    spec = single_bin(3, 1.0, 1.0)
    for level in (0.0, 1.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ConfigError, match="level"):
            bayesian_upper_limit(spec, level=level)
    with pytest.raises(InputError, match="negative"):
        bayesian_upper_limit(spec, [-1.0])
    with pytest.raises(InputError, match="1 bins"):
        bayesian_upper_limit(spec, [1.0, 2.0])
    with pytest.raises(ConfigError, match="n_samples"):
        bayesian_upper_limit(spec, n_samples=1)
    with pytest.raises(ConfigError, match="ntoys"):
        bayesian_limits(spec, ntoys=-1)
    m = compile_workspace(spec)
    stacked = stack_models([m, m])
    with pytest.raises(InputError, match="stacked"):
        bayesian_upper_limit(stacked)


@pytest.mark.parametrize(
    "modifier",
    [
        {"name": "uncorr", "type": "shapesys", "data": [0.3]},
        {"name": "free_bin", "type": "shapefactor", "data": None},
    ],
)
def test_non_gaussian_per_bin_parameters_are_refused(modifier: dict) -> None:
    """The posterior sampling assumes Gaussian per-bin constraints: a Poisson-constrained
    shapesys or a free per-bin shapefactor is refused in one line, not integrated wrongly."""
    spec = single_bin(3, 1.0, 1.0, bkg_mods=[modifier])
    upper_limit(spec)  # the CLs limits take them
    with pytest.raises(InputError, match="Gaussian-constrained") as exc:
        bayesian_upper_limit(spec)
    assert "\n" not in str(exc.value)
