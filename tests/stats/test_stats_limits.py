"""CLs upper limits: closed forms, pyhf, toys, coverage, failures."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm
from test_stats_engine import pyhf_model, window_spec

from zprime.stats import (
    LEVEL,
    Params,
    asymptotic_limits,
    build_workspace,
    compile_workspace,
    expected_limits_toys,
    expected_main,
    fit,
    hypotest,
    limit_result,
    limits,
    pyhf_engine,
    qtilde,
    sample_toys,
    scan_limits,
    toy_limits,
    upper_limit,
)

pyhf = pytest.importorskip("pyhf")


def counting_spec(n: float, b: float, s: float) -> dict:
    """One bin, no systematics, background known: the textbook counting experiment."""
    return build_workspace([s], {"bkg": [b]}, [n], name="count", background_norm="fixed")


def closed_form_limits(n: float, b: float, s: float, level: float = LEVEL):
    """q~_mu and q~_mu,A in closed form (Cowan et al. EPJC 71 (2011) 1554, eqs. (16), (62)),
    CLs = CLs+b / CLb with the Asimov background-only dataset n_A = b."""

    def nll(mu: float, k: float) -> float:
        lam = mu * s + b
        return lam - (k * math.log(lam) if k > 0 else 0.0)

    muhat = max(0.0, (n - b) / s)

    def cls(mu: float) -> float:
        q = 0.0 if muhat > mu else max(0.0, 2 * (nll(mu, n) - nll(muhat, n)))
        qa = 2 * (nll(mu, b) - nll(0.0, b))
        sq, sa = math.sqrt(q), math.sqrt(qa)
        if sq <= sa:
            clsb, clb = norm.sf(sq), norm.sf(sq - sa)
        else:
            t = (q - qa) / (2 * sa)
            clsb, clb = norm.sf(t + sa), norm.sf(t)
        return clsb / clb

    obs = brentq(lambda mu: cls(mu) - level, 1e-3, 1e3, xtol=1e-12)
    exp = []
    for k in (2, 1, 0, -1, -2):  # -2 sigma (lowest) first
        target = norm.isf(level * norm.sf(k)) - k  # sqrt(q_A) where expected CLs = level
        exp.append(
            brentq(
                lambda mu, tg=target: math.sqrt(2 * (nll(mu, b) - nll(0, b))) - tg,
                1e-9,
                1e3,
                xtol=1e-12,
            )
        )
    return obs, exp


@pytest.mark.parametrize(("n", "b", "s"), [(5, 3.0, 1.0), (0, 2.0, 0.5), (25, 10.0, 2.0)])
def test_single_bin_matches_closed_form(n, b, s) -> None:
    res = upper_limit(counting_spec(n, b, s))
    obs, exp = closed_form_limits(n, b, s)
    assert res.ok
    assert res.observed == pytest.approx(obs, rel=1e-6)
    np.testing.assert_allclose(res.expected, exp, rtol=1e-6)


def _pyhf_quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("mu", [0.6, 2.5])
def test_cls_and_qtilde_match_pyhf(mu) -> None:
    """Per-bin histosys per sample, normsys, lumi, staterror, near-empty bins."""
    spec = window_spec(seed=5)
    pm, data = pyhf_model(spec)
    model = compile_workspace(spec)
    cls, band = hypotest(model, mu)
    ref_cls, ref_band = _pyhf_quiet(pyhf.infer.hypotest, mu, data, pm, return_expected_set=True)
    assert cls[0] == pytest.approx(float(ref_cls), rel=1e-4)
    np.testing.assert_allclose(band[0], np.asarray(ref_band, dtype=float), rtol=1e-4)
    init, bounds = pm.config.suggested_init(), pm.config.suggested_bounds()
    fixed = pm.config.suggested_fixed()
    q_ref = _pyhf_quiet(pyhf.infer.test_statistics.qmu_tilde, mu, data, pm, init, bounds, fixed)
    assert qtilde(model, mu)[0] == pytest.approx(float(q_ref), rel=1e-4, abs=1e-6)


def mini_spec() -> dict:
    return build_workspace(
        [2.0, 1.0, 0.3],
        {"bkg": [10.0, 5.0, 0.2]},
        [12, 4, 1],
        name="mini",
        signal_shape_unc=0.1,
        background_shape_unc=0.2,
        signal_efficiency_unc=0.05,
    )


def test_upper_limit_matches_pyhf() -> None:
    """Both engines on the same workspace: 90% CL observed and expected limits."""
    ours = upper_limit(mini_spec())
    ref = upper_limit(mini_spec(), engine="pyhf")
    assert ours.ok
    assert ref.ok
    assert ref.engine == "pyhf"
    assert ours.observed == pytest.approx(ref.observed, rel=1e-4)
    np.testing.assert_allclose(ours.expected, ref.expected, rtol=1e-4)
    assert ours.expected[0] < ours.expected[2] < ours.expected[4]


@pytest.mark.slow
def test_pyhf_upper_limit_ignores_level() -> None:
    """pyhf 0.7.6's upper_limit(scan=None) drops ``level`` (scikit-hep/pyhf#2563): asked for
    level=0.10 it returns the 95% CL limit, which is why our pyhf engine calls toms748_scan."""
    pm, data = pyhf_model(mini_spec())
    obs, _ = _pyhf_quiet(
        pyhf.infer.intervals.upper_limits.upper_limit, data, pm, scan=None, level=0.10
    )
    assert float(obs) == pytest.approx(upper_limit(mini_spec(), level=0.05).observed, rel=1e-3)
    assert float(obs) > 1.05 * upper_limit(mini_spec(), level=0.10).observed


def test_toys_vs_asymptotics_low_and_high_counts() -> None:
    # n = 0, b = 0.2: toy CLs is exactly P(0 | mu s + b) / P(0 | b) = exp(-mu s), limit ln 10
    low = compile_workspace(counting_spec(0, 0.2, 1.0))
    toys = toy_limits(low, 4000, np.random.default_rng(7), scan=np.linspace(1.0, 4.0, 16))
    asym = upper_limit(low)
    assert toys.ok
    assert toys.observed == pytest.approx(math.log(10.0), rel=0.05)
    assert abs(asym.observed / toys.observed - 1.0) > 0.10  # asymptotics fail at low counts
    # large counts: toys and asymptotics agree (at n = b = 400 the Poisson discreteness, i.e.
    # counting the observed n itself in the tail, still shifts the toy limit up by ~6%)
    high = compile_workspace(counting_spec(10000, 10000.0, 50.0))
    t_hi = toy_limits(high, 6000, np.random.default_rng(8))
    a_hi = upper_limit(high)
    assert t_hi.observed == pytest.approx(a_hi.observed, rel=0.04)
    assert t_hi.expected[2] == pytest.approx(a_hi.expected[2], rel=0.06)


def test_coverage_with_injected_signal() -> None:
    """Toys with a true cross section mu_true: the 90% CL upper limit covers it in >= 90% of
    them within toy statistics (CLs over-covers)."""
    model = compile_workspace(window_spec(seed=2, nbins=8))
    truth = model.init_params()
    mu_true = 3.0
    truth.g[0, model.poi_index] = mu_true
    ntoys = 400
    main, aux = sample_toys(model, truth, ntoys, np.random.default_rng(11))
    # toys sample the auxiliary data around the true (nominal) nuisance values
    res = asymptotic_limits(model, main=main, aux=aux, expected=False)
    assert all(s == "ok" for s in res.status)
    covered = np.mean(res.observed >= mu_true)
    assert covered >= 0.90 - 2.5 * math.sqrt(0.09 / ntoys)


def test_signal_injection_recovered() -> None:
    model = compile_workspace(window_spec(seed=4, nbins=10))
    truth = model.init_params()
    mu_true = 8.0
    truth.g[0, model.poi_index] = mu_true
    asimov = expected_main(model, truth)
    free = fit(model, asimov, poi_sigma=True)
    assert free.params.g[0, model.poi_index] == pytest.approx(mu_true, rel=1e-4)
    main, aux = sample_toys(model, truth, 200, np.random.default_rng(3))
    toys = fit(model, main, aux, poi_sigma=True)
    pull = (toys.params.g[:, model.poi_index] - mu_true) / toys.poi_sigma
    assert abs(pull.mean()) < 0.3
    assert 0.75 < pull.std() < 1.25
    assert np.mean(np.abs(pull) < 1) == pytest.approx(0.68, abs=0.1)


def test_failed_hypotheses_are_kept_with_a_reason() -> None:
    spec = window_spec(seed=6)
    # a fit that cannot converge in one Newton step
    res = asymptotic_limits(compile_workspace(spec), maxiter=1)
    assert res.status == ["failed"]
    assert "window6" in res.message[0]
    assert "converge" in res.message[0]
    assert math.isnan(res.observed[0])
    # a POI upper bound below the limit
    tight = copy.deepcopy(spec)
    tight["measurements"][0]["config"]["parameters"][0]["bounds"] = [[0.0, 0.5]]
    tight["measurements"][0]["config"]["parameters"][0]["inits"] = [0.25]
    r2 = upper_limit(tight)
    assert r2.status == "failed"
    assert "upper bound" in r2.message
    assert "window6" in r2.message
    # a scan keeps every hypothesis in place
    bad = copy.deepcopy(spec)
    bad["channels"][0]["samples"][0]["modifiers"].append(
        {"name": "cm", "type": "custom_mod", "data": None}
    )
    bad["channels"][0]["name"] = "broken"
    bad["observations"][0]["name"] = "broken"
    out = scan_limits([window_spec(seed=1), bad, window_spec(seed=3)])
    assert [r.status for r in out] == ["ok", "failed", "ok"]
    assert out[1].name == "broken"
    assert "custom_mod" in out[1].message


def test_scan_limits_equal_single_limits() -> None:
    specs = [window_spec(seed=s) for s in (1, 2, 3)]
    scan = scan_limits(specs)
    for spec, r in zip(specs, scan, strict=True):
        one = upper_limit(spec)
        assert r.ok
        assert r.observed == pytest.approx(one.observed, rel=1e-6)
        np.testing.assert_allclose(r.expected, one.expected, rtol=1e-6)


def test_expected_band_from_background_toys() -> None:
    """The PRL's expected band (limits of background-only toys) at large counts equals the
    asymptotic band within toy statistics."""
    spec = build_workspace(
        np.full(4, 5.0),
        {"bkg": np.full(4, 100.0)},
        [100, 100, 100, 100],
        name="big",
        background_norm="fixed",
        background_shape_unc=0.02,
    )
    model = compile_workspace(spec)
    band = expected_limits_toys(model, 400, np.random.default_rng(5))
    asym = upper_limit(model)
    assert band["failed"] == 0
    assert band["expected"][2] == pytest.approx(asym.expected[2], rel=0.08)
    assert band["expected"][1] == pytest.approx(asym.expected[1], rel=0.1)
    assert band["expected"][3] == pytest.approx(asym.expected[3], rel=0.1)
    assert isinstance(Params, type)


def test_result_types_are_shared() -> None:
    for name in ("LEVEL", "NSIGMA", "LimitResult"):
        assert getattr(limits, name) is getattr(limit_result, name)
    assert pyhf_engine.LimitResult is limits.LimitResult
