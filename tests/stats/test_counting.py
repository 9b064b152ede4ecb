"""Counting experiments in many windows (zprime.stats.counting): closed forms, the quadrature
against independent integrals and against the workspace engine, expected bands, local and
global significance, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import integrate
from scipy.optimize import brentq
from scipy.special import gammainc, gammaincc
from scipy.stats import lognorm, norm, poisson

from zprime.errors import ConfigError, InputError
from zprime.stats import bayesian_upper_limit, build_workspace
from zprime.stats.counting import (
    credible_upper_limits,
    expected_upper_limits,
    limit_results,
    local_significance,
    max_local_z_toys,
    predictive_quantiles,
    toy_global_significance,
)

LN10 = 2.302585092994046  # -ln(1 - 0.90)


def closed_form(n: int, b: float, level: float = 0.90) -> float:
    """Flat-prior limit on the signal yield, known background:
    Q(n + 1, b + x) / Q(n + 1, b) = 1 - level."""
    q0 = gammaincc(n + 1, b)
    return brentq(
        lambda x: gammaincc(n + 1, b + x) / q0 - (1 - level),
        0.0,
        50.0 + 10 * n,
        xtol=1e-14,
        rtol=1e-14,
    )


def truncated_normal(c: float, s: float):
    mass = norm.sf(-c / s)
    return (lambda v: norm.pdf(v, c, s) / mass), max(0.0, c - 12 * s), c + 12 * s


def lognormal_mean_sd(c: float, s: float):
    s2 = math.log1p((s / c) ** 2)
    dist = lognorm(math.sqrt(s2), scale=c * math.exp(-0.5 * s2))
    return dist.pdf, dist.ppf(1e-15), dist.isf(1e-15)


def limit_by_quad(n: int, tail_of_x) -> float:
    """Solve T(x) = 0.1 T(0) for the posterior tail T given as a 1-d integral."""
    d = tail_of_x(0.0)
    return brentq(lambda x: tail_of_x(x) / d - 0.1, 1e-6, 5000.0, xtol=1e-12, rtol=1e-12)


# ----------------------------------------------------------------------------- limits
@pytest.mark.parametrize("a", [0.5, 1.0, 3.7])
def test_no_events_no_background_is_ln10(a: float) -> None:
    lim = credible_upper_limits(0, a, 0.0)
    assert lim[0] == pytest.approx(LN10 / a, rel=1e-12)
    assert credible_upper_limits(0, a, 0.0, level=0.95)[0] == pytest.approx(
        -math.log(0.05) / a, rel=1e-12
    )


def test_known_background_matches_incomplete_gamma() -> None:
    cases = [(0, 0.5), (1, 0.0), (3, 2.5), (10, 4.0), (25, 30.0), (100, 90.0), (1000, 1020.0)]
    n = np.array([c[0] for c in cases], dtype=float)
    b = np.array([c[1] for c in cases])
    lims = credible_upper_limits(n, 2.0, b)
    ref = np.array([closed_form(int(k), bb) for k, bb in cases]) / 2.0
    np.testing.assert_allclose(lims, ref, rtol=1e-10)


@pytest.mark.parametrize(
    ("n", "b", "sb"), [(8, 5.0, 1.0), (3, 2.0, 2.0), (120, 100.0, 10.0), (1063, 1000.0, 300.0)]
)
def test_background_uncertainty_against_quad(n: int, b: float, sb: float) -> None:
    """Truncated-normal background marginalised by adaptive quadrature; (3, 2, 2) has 16% of
    its Gaussian below 0, (1063, 1000, 300) is integrated on the Gamma side with the kink."""
    pdf, lo, hi = truncated_normal(b, sb)

    def tail(x: float) -> float:
        f = lambda v: pdf(v) * gammaincc(n + 1, v + x)  # noqa: E731
        return integrate.quad(f, lo, hi, points=[b], limit=400, epsabs=0, epsrel=1e-12)[0]

    ref = limit_by_quad(n, tail)
    assert credible_upper_limits(n, 1.0, b, background_unc=sb)[0] == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize(("n", "b", "sf"), [(0, 0.0, 0.3), (5, 2.0, 0.1), (40, 30.0, 0.2)])
def test_signal_uncertainty_against_quad(n: int, b: float, sf: float) -> None:
    """Log-normal efficiency scale (mean 1, sd sf): T(x) = E[Q(n + 1, b + x f) / f]."""
    pdf, lo, hi = lognormal_mean_sd(1.0, sf)

    def tail(x: float) -> float:
        f = lambda v: pdf(v) / v * gammaincc(n + 1, b + x * v)  # noqa: E731
        return integrate.quad(f, lo, hi, points=[1.0], limit=400, epsabs=0, epsrel=1e-12)[0]

    ref = limit_by_quad(n, tail)
    assert credible_upper_limits(n, 1.0, b, signal_unc=sf)[0] == pytest.approx(ref, rel=1e-6)


# Both nuisances (signal sd 0.3, log-normal): references from a trapezoid rule on 4001 x 601
# normal scores (z in [-13, 13] x [-9, 9]) of the same integrals, computed once.
REFERENCES = [
    ("normal", 2, 2.0, 0.6, 4.86472887709607),
    ("normal", 17, 10.0, 3.0, 18.86788941825965),
    ("normal", 120, 100.0, 30.0, 83.08991835570492),
    ("normal", 1063, 1000.0, 300.0, 658.3818989663026),
    ("lognormal", 5, 2.0, 0.6, 9.272902000587314),
    ("lognormal", 17, 10.0, 3.0, 18.786700155888546),
    ("lognormal", 1000, 1000.0, 300.0, 501.56717464847134),
]


def test_both_uncertainties_against_dense_integration() -> None:
    for kind in ("normal", "lognormal"):
        rows = [r for r in REFERENCES if r[0] == kind]
        n, b, sb, ref = (np.array([r[i] for r in rows], dtype=float) for i in range(1, 5))
        lims = credible_upper_limits(n, 1.0, b, signal_unc=0.3, background_unc=sb,
                                     background_prior=kind)  # fmt: skip
        np.testing.assert_allclose(lims, ref, rtol=1e-5)


@pytest.mark.parametrize(
    ("n", "b", "a", "rel_b", "sig"),
    [
        (8, 5.0, 1.0, 0.2, 0.0),
        (3, 2.0, 0.5, 0.3, 0.1),
        (20, 15.0, 2.0, 0.1, 0.1),
        (0, 1.0, 1.0, 0.2, 0.1),
    ],
)
def test_against_workspace_engine(n: int, b: float, a: float, rel_b: float, sig: float) -> None:
    """One-bin workspace: background ``histosys`` b (1 +- rel_b) (Gaussian on b, bounds
    +-5 sigma), luminosity modifier (Gaussian on the signal scale, bounds +-10 sigma): the
    truncated-normal priors. The workspace engine samples its integrals (importance sampling):
    with 256 x 64 draws it agrees to a few 1e-4 (1e-3 asserted); its default draws to 5e-3."""
    spec = build_workspace(
        [a],
        {"bkg": [b]},
        [n],
        name="one_bin",
        background_norm="fixed",
        background_shape_unc=rel_b,
        lumi_unc=sig,
    )
    ref = bayesian_upper_limit(spec, n_samples=256, n_local=64)
    mine = credible_upper_limits(
        n, a, b, signal_unc=sig, background_unc=rel_b * b, signal_prior="normal"
    )[0]
    assert mine == pytest.approx(ref, rel=1e-3)


def test_limit_grows_with_uncertainties() -> None:
    sb = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    by_b = credible_upper_limits(12, 1.0, 10.0, background_unc=sb)
    assert np.all(np.diff(by_b) > 0)
    sf = np.array([0.0, 0.05, 0.1, 0.2, 0.4])
    by_f = credible_upper_limits(12, 1.0, 10.0, signal_unc=sf)
    assert np.all(np.diff(by_f) > 0)
    assert by_b[0] == pytest.approx(closed_form(12, 10.0), rel=1e-10)
    assert by_f[0] == pytest.approx(closed_form(12, 10.0), rel=1e-10)


def test_chunks_and_mixed_windows_consistent(rng: np.random.Generator) -> None:
    """20,000 windows (several chunks, mixed with and without uncertainties) give the limits
    of the same windows computed one by one."""
    w = 20_000
    b = rng.uniform(0.0, 200.0, w)
    n = rng.poisson(b).astype(float)
    sf = np.where(rng.random(w) < 0.5, 0.0, 0.05)
    sb = np.where(rng.random(w) < 0.5, 0.0, 0.1 * b)
    lims = credible_upper_limits(n, 3.0, b, signal_unc=sf, background_unc=sb)
    assert np.all(np.isfinite(lims))
    for i in rng.choice(w, 12, replace=False):
        one = credible_upper_limits(n[i], 3.0, b[i], signal_unc=sf[i], background_unc=sb[i])
        assert lims[i] == pytest.approx(one[0], rel=1e-12)


# ----------------------------------------------------------------------------- expected
def test_expected_band_is_limit_at_count_quantiles(rng: np.random.Generator) -> None:
    """The quantiles of the prior-predictive count (brute force: pmf by quadrature) and the
    band; background-only toys reproduce the quantiles."""
    b, sb = np.array([0.5, 4.0, 30.0]), np.array([0.05, 0.4, 3.0])
    probs = norm.cdf([-2, -1, 0, 1, 2])
    nq = predictive_quantiles(b, probs, background_unc=sb)
    for i in range(b.size):
        pdf, lo, hi = truncated_normal(b[i], sb[i])
        ks = np.arange(0, 70)
        pmf = [
            integrate.quad(lambda v, k=k, f=pdf: f(v) * poisson.pmf(k, v), lo, hi, epsabs=1e-14)[0]
            for k in ks
        ]
        cdf = np.cumsum(pmf)
        np.testing.assert_array_equal(nq[i], [int(np.argmax(cdf >= p)) for p in probs])
        beta = np.maximum(rng.normal(b[i], sb[i], 200_000), 0.0)
        counts = rng.poisson(beta)
        for p, q in zip(probs, nq[i], strict=True):
            # empirical CDF brackets p at the quantile (5 standard errors)
            err = 5 * math.sqrt(p * (1 - p) / counts.size)
            assert np.mean(counts <= q) >= p - err
            assert np.mean(counts <= q - 1) < p + err
    band = expected_upper_limits(2.0, b, signal_unc=0.05, background_unc=sb)
    direct = credible_upper_limits(nq.ravel(), 2.0, np.repeat(b, 5), signal_unc=0.05,
                                   background_unc=np.repeat(sb, 5)).reshape(3, 5)  # fmt: skip
    np.testing.assert_allclose(band, direct, rtol=1e-12)
    assert np.all(np.diff(band, axis=1) >= 0)
    nominal = predictive_quantiles(b, probs, predictive="nominal")
    np.testing.assert_array_equal(nominal, poisson.ppf(probs[None, :], b[:, None]).astype(int))


# ----------------------------------------------------------------------------- significance
def test_local_significance_matches_poisson() -> None:
    n = np.array([0, 0, 3, 5, 9, 14, 25, 60], dtype=float)
    b = np.array([0.1, 5.0, 3.0, 2.0, 3.0, 5.0, 10.0, 40.0])
    sig = local_significance(n, b)
    np.testing.assert_allclose(sig.p_excess, poisson.sf(n - 1, b), rtol=1e-12)
    np.testing.assert_allclose(sig.p_deficit, poisson.cdf(n, b), rtol=1e-12)
    excess = n > b + 1
    np.testing.assert_allclose(sig.z[excess], norm.isf(poisson.sf(n - 1, b))[excess], rtol=1e-10)
    assert sig.z[0] == 0.0  # no event where 0.1 were expected: no deficit
    assert sig.z[1] == pytest.approx(-norm.isf(math.exp(-5.0)), rel=1e-10)  # a deficit
    assert sig.z[2] == 0.0  # n at the median


def test_local_significance_with_uncertainty_against_quad() -> None:
    n, b, sb = 25, 12.0, 2.0
    pdf, lo, hi = truncated_normal(b, sb)
    ref = integrate.quad(lambda v: pdf(v) * gammainc(n, v), lo, hi, epsabs=0, epsrel=1e-12)[0]
    sig = local_significance(n, b, background_unc=sb)
    assert sig.p_excess[0] == pytest.approx(ref, rel=1e-8)
    assert 0 < sig.z[0] < local_significance(n, b).z[0]  # the uncertainty lowers Z


def test_global_significance_of_independent_windows() -> None:
    """N disjoint windows: P(max Z >= Z(n_obs)) = 1 - (1 - P(N >= n_obs))^N."""
    windows, b, n_obs, ntoys = 100, 5.0, 14, 20_000
    z_obs = local_significance(n_obs, b).z[0]
    toys = max_local_z_toys(sp.identity(windows, format="csr"), np.full(windows, b),
                            ntoys=ntoys, seed=3)  # fmt: skip
    res = toy_global_significance(z_obs, toys)
    p_local = poisson.sf(n_obs - 1, b)
    expected = 1.0 - (1.0 - p_local) ** windows
    assert res.p_global == pytest.approx(expected, abs=4 * math.sqrt(expected / ntoys))
    assert res.z_global == pytest.approx(norm.isf(res.p_global))
    assert res.z_global < z_obs  # the look-elsewhere effect


def test_toys_by_event_match_independent_cells(rng: np.random.Generator) -> None:
    """A sparse background (fewer events than cells: drawn as Poisson total + multinomial)
    and overlapping windows: the largest-Z distribution agrees with independent Poisson cells
    drawn directly (two-sample Kolmogorov-Smirnov distance)."""
    cells, width, step = 4000, 200, 50
    starts = np.arange(0, cells - width + 1, step)
    rows = np.repeat(np.arange(starts.size), width)
    cols = (starts[:, None] + np.arange(width)).ravel()
    member = sp.csr_array((np.ones(rows.size), (rows, cols)), shape=(starts.size, cells))
    bc = np.full(cells, 0.02)
    toys = max_local_z_toys(member, bc, ntoys=4000, seed=1)
    direct = member @ rng.poisson(bc, size=(4000, cells)).T
    z = local_significance(direct.ravel(), np.repeat(member @ bc, 4000)).z
    zmax = np.maximum(z.reshape(direct.shape).max(axis=0), 0.0)
    grid = np.union1d(toys, zmax)
    cdf_toys = np.searchsorted(np.sort(toys), grid, side="right") / toys.size
    cdf_direct = np.searchsorted(np.sort(zmax), grid, side="right") / zmax.size
    ks = np.max(np.abs(cdf_toys - cdf_direct))
    assert ks < 0.05  # the 1% critical value for 4000 + 4000 draws is 0.036
    again = max_local_z_toys(member, bc, ntoys=4000, seed=1)
    np.testing.assert_array_equal(toys, again)


def test_toy_global_significance_counts_ties() -> None:
    res = toy_global_significance(2.0, [0.0, 1.0, 2.0, 3.0])
    assert (res.p_global, res.n_exceed, res.n_toys) == (0.5, 2, 4)
    none = toy_global_significance(5.0, [0.0, 1.0])
    assert none.p_global == 0.0
    assert math.isinf(none.z_global)


def test_limit_results_rows() -> None:
    rows = limit_results(["w0", "w1"], [1.5, math.nan], [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
    assert rows[0].ok
    assert rows[0].expected[2] == 3.0
    assert rows[0].method == "bayesian"
    assert not rows[1].ok
    assert "w1" in rows[1].message


# ----------------------------------------------------------------------------- errors
def test_bad_input_is_one_line() -> None:
    with pytest.raises(InputError, match=r"n of window 1 is nan"):
        credible_upper_limits([1, math.nan], 1.0, 1.0)
    with pytest.raises(InputError, match=r"n of window 0 is -1.0"):
        credible_upper_limits(-1, 1.0, 1.0)
    with pytest.raises(InputError, match="not a whole number"):
        local_significance(2.5, 1.0)
    with pytest.raises(InputError, match="signal_per_mu of window 0"):
        credible_upper_limits(1, 0.0, 1.0)
    with pytest.raises(InputError, match="different lengths"):
        credible_upper_limits([1, 2, 3], [1.0, 2.0], 1.0)
    with pytest.raises(InputError, match="log-normal prior needs a centre > 0"):
        credible_upper_limits(1, 1.0, 0.0, background_unc=1.0, background_prior="lognormal")
    with pytest.raises(ConfigError, match="credibility level"):
        credible_upper_limits(1, 1.0, 1.0, level=1.5)
    with pytest.raises(ConfigError, match="improper"):
        credible_upper_limits(1, 1.0, 1.0, signal_unc=0.3, signal_prior="normal")
    with pytest.raises(ConfigError, match="not one of"):
        credible_upper_limits(1, 1.0, 1.0, background_prior="gamma")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="entries must be 0 or 1"):
        max_local_z_toys(sp.csr_array(np.array([[0.5, 1.0]])), [1.0, 1.0], ntoys=2)
    with pytest.raises(InputError, match="one column per cell"):
        max_local_z_toys(sp.identity(3, format="csr"), [1.0, 1.0], ntoys=2)
