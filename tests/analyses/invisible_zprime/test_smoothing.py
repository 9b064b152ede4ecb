"""Tests of zprime.analyses.invisible_zprime.smoothing: kernel-density background templates (kernels
of the resolution)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from zprime.analyses.invisible_zprime.binning import ResolutionModel, ResolutionScale, Window
from zprime.analyses.invisible_zprime.smoothing import (
    kde_bin_integrals,
    kernel_widths,
    smooth_background,
    smoothing_from_config,
)
from zprime.analyses.invisible_zprime.templates import (
    EventSample,
    SignalModel,
    SimulatedSignal,
    build_templates,
    templates_from_config,
)
from zprime.config import config_from_dict
from zprime.errors import ConfigError, InputError

RES = ResolutionModel.prl()
CONST = ResolutionModel.from_points([0.0], [0.2], source="test")  # sigma = 0.2 GeV^2 everywhere
LUMI = 79.7


def window(m2_lo: float, m2_hi: float, n: int = 20, theta=(0.0, math.pi)) -> Window:
    return Window(
        0,
        math.sqrt(max(0.5 * (m2_lo + m2_hi), 0.0)),
        np.linspace(m2_lo, m2_hi, n + 1),
        np.asarray(theta, dtype=float),
    )


def res_window(m2: float, n: int = 20) -> Window:
    """A search window of n resolution-wide bins centred on m2 (PRL resolution)."""
    scale = ResolutionScale(RES)
    u = scale.u(m2)
    return Window(0, math.sqrt(m2), np.asarray(scale.m2(u + np.arange(n + 1) - n / 2)))


def exp_sample(n: int, rng: np.random.Generator, scale: float = 10.0, w: float = 1.0):
    """Exponential M^2 (scale 10 GeV^2) from 0, truncated at 60 GeV^2; uniform theta."""
    m2 = -scale * np.log1p(-rng.random(n) * (1.0 - math.exp(-60.0 / scale)))
    return EventSample("bkg", m2, rng.uniform(0.0, math.pi, n), np.full(n, w))


def exp_integrals(edges: np.ndarray, n: int, scale: float = 10.0) -> np.ndarray:
    cdf = (1.0 - np.exp(-np.asarray(edges) / scale)) / (1.0 - math.exp(-60.0 / scale))
    return n * np.diff(cdf)


def test_kde_agrees_with_the_exact_density_better_than_the_histogram(rng) -> None:
    n = 20_000
    s = exp_sample(n, rng)
    kde = smooth_background(s, RES, m2_range=(0.0, 60.0))
    chi_kde, chi_raw, ndf = 0.0, 0.0, 0
    for lo in (5.0, 12.0, 20.0, 30.0):  # 20-bin windows away from the range's ends
        win = res_window(lo + 2.0)
        e = win.m2_edges
        exact = exp_integrals(e, n)
        vals, var = kde.m2_template(e)
        raw, _ = np.histogram(s.m2, e)
        chi_kde += float(np.sum((vals - exact) ** 2 / exact))
        chi_raw += float(np.sum((raw - exact) ** 2 / exact))
        ndf += exact.size
        # the KDE's own variance is far below the raw (Poisson) one when h spans bins
        assert var.sum() < 0.5 * exact.sum()
    # the raw histogram scatters with chi2/ndf ~ 1; the KDE much less (it is smooth)
    assert 0.6 < chi_raw / ndf < 1.5
    assert chi_kde < 0.3 * chi_raw
    # bandwidths: exactly the resolution (never wider)
    h = kde.bandwidth
    np.testing.assert_allclose(h, np.asarray(RES.sigma(np.sort(s.m2))), rtol=1e-12)


def test_total_weight_is_conserved_and_boundaries_are_respected(rng) -> None:
    n = 300
    m2 = rng.uniform(-1.0, 30.0, n)
    w = rng.uniform(0.5, 2.0, n)
    out = np.array([-5.0, 120.0])  # outside the range: reported, not used
    s = EventSample("bkg", np.r_[m2, out], rng.uniform(0, 3, n + 2), np.r_[w, 1.0, 2.0])
    kde = smooth_background(s, RES, m2_range=(-2.0, 100.0), boundaries=[4.0])
    vals, _ = kde.m2_template(np.linspace(-2.0, 100.0, 1001))
    assert vals.sum() == pytest.approx(w.sum(), rel=1e-12)
    assert kde.total_weight == pytest.approx(w.sum(), rel=1e-12)
    assert kde.outside_weight == pytest.approx(3.0)
    assert kde.n_outside == 2
    # no weight crosses M^2 = 4 GeV^2 (the theta_recoil requirement's split)
    below, _ = kde.m2_template([-2.0, 4.0])
    assert below[0] == pytest.approx(w[m2 < 4.0].sum(), rel=1e-12)


def test_a_single_event_is_a_gaussian_of_the_resolution_width() -> None:
    for x0, k in ((20.0, 1.0), (9.0, 0.7), (0.3, 0.5)):
        s = EventSample("one", [x0], [1.0], [3.0])
        kde = smooth_background(s, RES, m2_range=(-2.0, 100.0), bandwidth=k)
        h = k * RES.sigma(x0)
        assert kde.bandwidth[0] == pytest.approx(h, rel=1e-12)
        e = x0 + h * np.linspace(-4.0, 4.0, 17)
        vals, var = kde.m2_template(e)
        exact = 3.0 * np.diff(ndtr((e - x0) / h))
        np.testing.assert_allclose(vals, exact, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(var, exact**2, rtol=1e-9, atol=1e-15)


def test_sparse_sample_template_has_smaller_variance_than_the_histogram(rng) -> None:
    n = 300
    s = EventSample("mumu", rng.uniform(10.0, 60.0, n), rng.uniform(0.0, 3.0, n), np.full(n, 9.0))
    kde = smooth_background(s, RES, m2_range=(-2.0, 100.0), boundaries=[4.0])
    for lo in (12.0, 25.0, 45.0):
        win = res_window(lo)
        tmpl = kde.template(win, LUMI)
        v, var = tmpl.values().ravel(), tmpl.variances().ravel()
        raw, _ = np.histogram(s.m2, win.m2_edges, weights=s.weight * LUMI)
        raw_var, _ = np.histogram(s.m2, win.m2_edges, weights=(s.weight * LUMI) ** 2)
        assert v.sum() == pytest.approx(raw.sum(), rel=0.5)
        assert var.sum() < raw_var.sum() or raw_var.sum() == 0
    # the kernel width never exceeds the resolution
    assert np.all(kde.bandwidth <= np.asarray(RES.sigma(np.sort(s.m2))) * (1 + 1e-12))


def test_theta_fractions_come_from_the_widened_interval_on_one_side_of_the_split(rng) -> None:
    n = 4000
    m2 = rng.uniform(-1.0, 20.0, n)
    theta = np.where(m2 < 4.0, 0.5, 2.5)  # the theta distribution jumps at the split
    s = EventSample("mumu", m2, theta, np.ones(n))
    kde = smooth_background(s, CONST, m2_range=(-2.0, 100.0), boundaries=[4.0], theta_min_events=50)
    win = window(3.0, 5.0, 20, theta=(0.0, 1.5, math.pi))
    t = kde.template(win, 1.0).values()
    centres = 0.5 * (win.m2_edges[1:] + win.m2_edges[:-1])
    low = centres < 4.0
    assert np.all(t[low, 1] == 0)
    assert np.all(t[~low, 0] == 0)
    assert np.all(t[low, 0] > 0)
    assert np.all(t[~low, 1] > 0)
    # a narrow interval is widened until it holds the requested events
    frac, n_eff, used = kde.theta_fractions(1, 10.0, 10.01, [0.0, 1.5, math.pi])
    assert used >= 50
    assert n_eff == pytest.approx(used)
    np.testing.assert_allclose(frac, [0.0, 1.0])
    # fractions times the M^2 density: the theta projection is the M^2 template
    vals, _ = kde.m2_template(win.m2_edges)
    np.testing.assert_allclose(t.sum(axis=1), vals, rtol=1e-12)


def test_shape_variance_removes_the_window_normalisation() -> None:
    # one event with a kernel much wider than the window (a resolution of 50 GeV^2 against the
    # window's PRL bins): a flat template whose MC error is pure normalisation
    s = EventSample("one", [30.0], [1.0], [2.0])
    wide = ResolutionModel.from_points([0.0], [50.0], source="test")
    kde = smooth_background(s, wide, m2_range=(-2.0, 100.0))
    win = res_window(30.0)
    v, full = kde.arrays(win, LUMI, "full")
    _, shape = kde.arrays(win, LUMI, "shape")
    np.testing.assert_allclose(full, v**2, rtol=1e-9)  # one event: 100% per bin
    assert np.all(shape < 1e-4 * full)
    # many events: shape variance below the full one, never negative
    rng = np.random.default_rng(3)
    s = EventSample("b", rng.uniform(20.0, 40.0, 200), rng.uniform(0, 3, 200), np.ones(200))
    kde = smooth_background(s, RES, m2_range=(-2.0, 100.0), mc_variance="shape")
    v, shape = kde.arrays(win, 1.0)
    _, full = kde.arrays(win, 1.0, "full")
    assert np.all(shape >= 0)
    assert np.all(shape <= full + 1e-15)
    assert shape.sum() < full.sum()


def test_kde_bin_integrals_far_tails_are_precise() -> None:
    vals, var, cross, tot = kde_bin_integrals([0.0], [1.0], [1.0], [1.0], [10.0, 11.0])
    assert vals[0] == pytest.approx(ndtr(-10.0) - ndtr(-11.0), rel=1e-9)
    assert vals[0] > 0
    assert var[0] == pytest.approx(vals[0] ** 2)
    assert cross[0] == pytest.approx(tot)


def test_bad_inputs_are_named(rng) -> None:
    s = EventSample("neg", [1.0, 2.0], [1.0, 1.0], [1.0, -1.0])
    with pytest.raises(InputError, match=r"'neg'.*negative weight"):
        smooth_background(s, RES, m2_range=(-2.0, 100.0))
    ok = EventSample("ok", [1.0, 2.0], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ConfigError, match="smoothing_bandwidth"):
        smooth_background(ok, RES, m2_range=(-2.0, 100.0), bandwidth=0.0)
    with pytest.raises(ConfigError, match="smoothing_mc_variance"):
        smooth_background(ok, RES, m2_range=(-2.0, 100.0), mc_variance="diag")
    with pytest.raises(InputError, match="data"):
        smooth_background(
            EventSample("d", [1.0], [1.0], None, is_data=True), RES, m2_range=(-2.0, 100.0)
        )
    with pytest.raises(ConfigError):
        config_from_dict({"templates": {"background_smoothing": "spline"}})
    # a kernel wider than the resolution is refused, from the function and from the config
    with pytest.raises(ConfigError, match="never wider than the signal resolution"):
        smooth_background(ok, RES, m2_range=(-2.0, 100.0), bandwidth=1.5)
    with pytest.raises(ConfigError, match="smoothing_bandwidth"):
        config_from_dict({"templates": {"smoothing_bandwidth": 2.0}})
    np.testing.assert_allclose(kernel_widths([0.2, 0.1], 0.5), [0.1, 0.05])


def _signals(rng: np.random.Generator) -> list[SimulatedSignal]:
    out = []
    for mass in (1.0, 2.0, 3.0, 4.0, 5.0):
        n = 4000
        m2 = mass**2 + RES.sigma(mass**2) * rng.standard_normal(n)
        out.append(
            SimulatedSignal(
                mass,
                m2,
                rng.uniform(0.5, 2.5, n),
                np.full(n, 1e-4),
                1.0,
                m2_true=np.full(n, mass**2),
            )
        )
    return out


def test_option_off_is_the_current_behaviour_and_on_fills_every_bin(rng) -> None:
    signals = _signals(rng)
    n = 150  # sparse: most bins of a window are empty in the histogram
    bk = {
        "mumu": EventSample(
            "mumu", rng.exponential(15.0, n) - 1.0, rng.uniform(0.2, 3.0, n), np.full(n, 1.2)
        )
    }
    base = {
        "binning": {"mass_min_gev": 2.0, "mass_max_gev": 3.0, "resolution": {"source": "prl"}},
        "templates": {
            "backgrounds": ["mumu"],
            "reapply_theta_recoil": False,
            "systematics": {"source": "prl"},
            "background_smoothing": "none",
        },
    }
    off = templates_from_config(config_from_dict(base), signals, bk)
    assert smoothing_from_config(config_from_dict(base), bk, RES) is None
    # the same as build_templates without the hook
    direct = build_templates(
        [w.window for w in off.windows],
        off_signal_model(signals),
        bk,
        luminosity_fb=LUMI,
        systematics=off.windows[0].systematics,
    )
    for a, b in zip(off.windows, direct.windows, strict=True):
        np.testing.assert_array_equal(
            a.backgrounds["mumu"].values(), b.backgrounds["mumu"].values()
        )
        np.testing.assert_array_equal(
            a.backgrounds["mumu"].variances(), b.backgrounds["mumu"].variances()
        )
    assert any(np.any(w.total_background() <= 0) for w in off.windows)
    base["templates"]["background_smoothing"] = "kde"
    on = templates_from_config(config_from_dict(base), signals, bk)
    assert on.info["background_smoothing"] == "kde"
    assert "mumu" in on.info["smoothing"]
    for w in on.windows:
        assert np.all(w.total_background() > 0)
        assert not any("without expected background" in note for note in w.notes)
    # signal and data untouched
    for a, b in zip(off.windows, on.windows, strict=True):
        np.testing.assert_array_equal(a.signal.values(), b.signal.values())


def off_signal_model(signals):
    return SignalModel(signals, RES, None)
