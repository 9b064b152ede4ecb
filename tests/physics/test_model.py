"""Tests of zprime.physics.model: Z' widths, B(invisible), (g-2)_mu and the g' <-> sigma
translation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from zprime.errors import ConfigError
from zprime.physics import model as zm
from zprime.physics.constants import M_MUON, M_TAU

TWO_MMU = 2.0 * M_MUON
TWO_MTAU = 2.0 * M_TAU


def stand_in_xsec(mass: np.ndarray) -> np.ndarray:
    """TEST INPUT, not physics: a smooth positive stand-in for sigma(g'=1) in fb."""
    return 1.0e5 * (1.0 - np.asarray(mass) / 10.58) ** 2


# --------------------------------------------------------------------------- widths
def test_mumu_width_hand_value() -> None:
    # M = 1 GeV, g' = 1: x = m_mu^2 = 0.0111637, 1 + 2x = 1.0223274, sqrt(1 - 4x) = 0.9774176,
    # product 0.999241, Gamma = 0.999241 / (12 pi) = 0.0265057 GeV
    x = M_MUON**2
    assert (1 + 2 * x) * math.sqrt(1 - 4 * x) == pytest.approx(0.999241, abs=1e-6)
    assert zm.width_lepton_pair(1.0, M_MUON, 1.0) == pytest.approx(0.0265057, rel=1e-5)
    widths = zm.partial_widths(1.0, 1.0)
    assert widths["mumu"] == pytest.approx(0.0265057, rel=1e-5)
    assert widths["tautau"] == 0.0
    # two left-handed flavours: 2 x 1/(24 pi) = 1/(12 pi) = 0.0265258
    assert widths["nunu"] == pytest.approx(1.0 / (12.0 * math.pi), rel=1e-12)
    assert widths["chichi"] == 0.0


def test_widths_scale_with_g_squared_and_mass() -> None:
    m = np.array([0.05, 0.5, 2.0, 5.0, 9.0])
    w1 = zm.partial_widths(m, 1.0)
    w2 = zm.partial_widths(m, 0.01)
    for key in ("mumu", "tautau", "nunu"):
        np.testing.assert_allclose(w2[key], 1e-4 * w1[key], rtol=1e-12)
    # far above threshold every charged lepton gives g'^2 M / (12 pi)
    assert zm.width_lepton_pair(1e4, M_TAU, 1.0) == pytest.approx(1e4 / (12 * math.pi), rel=1e-7)


@pytest.mark.parametrize("threshold", [TWO_MMU, TWO_MTAU])
def test_lepton_width_threshold_is_continuous(threshold: float) -> None:
    m_l = threshold / 2.0
    below = zm.width_lepton_pair(threshold * (1 - 1e-9), m_l)
    at = zm.width_lepton_pair(threshold, m_l)
    above = zm.width_lepton_pair(threshold * (1 + 1e-9), m_l)
    assert below == 0.0
    assert at == 0.0
    assert 0.0 < above < 1e-5


def test_dark_width_formula() -> None:
    # alpha_D M / 3 for a massless Dirac chi; zero below 2 m_chi
    assert zm.width_dark_fermions(3.0, 0.5) == pytest.approx(0.5, rel=1e-12)
    assert zm.width_dark_fermions(3.0, 0.5, m_chi=1.6) == 0.0
    r = 0.3
    expected = 0.5 * 3.0 / 3.0 * (1 + 2 * r**2) * math.sqrt(1 - 4 * r**2)
    assert zm.width_dark_fermions(3.0, 0.5, m_chi=0.9) == pytest.approx(expected, rel=1e-12)


def test_total_width() -> None:
    m = np.array([0.1, 1.0, 5.0])
    sm = zm.partial_widths(m, 0.02)
    total = zm.total_width(m, "vanilla", 0.02)
    np.testing.assert_allclose(total, sm["mumu"] + sm["tautau"] + sm["nunu"], rtol=1e-14)
    full = zm.total_width(m, "fully_invisible", 0.02, alpha_d=0.1, m_chi=0.01)
    np.testing.assert_allclose(full - total, zm.width_dark_fermions(m, 0.1, 0.01), rtol=1e-12)
    with pytest.raises(ConfigError, match="needs alpha_d"):
        zm.total_width(1.0, "fully_invisible", 0.02)


# --------------------------------------------------------------------------- B(invisible)
def test_vanilla_branching_limits() -> None:
    assert zm.branching_invisible(0.01, "vanilla") == 1.0
    assert zm.branching_invisible(TWO_MMU * 0.999, "vanilla") == 1.0
    # between the thresholds only mu mu competes: -> 1/2 once beta_mu ~ 1
    assert zm.branching_invisible(2.0, "vanilla") == pytest.approx(0.5, abs=1e-4)
    assert 0.5 < zm.branching_invisible(0.3, "vanilla") < 0.55
    # far above 2 m_tau: 1/3
    assert zm.branching_invisible(1e3, "vanilla") == pytest.approx(1.0 / 3.0, rel=1e-5)
    assert zm.branching_invisible(9.0, "vanilla") == pytest.approx(0.3344, abs=1e-4)


def test_vanilla_branching_monotonic_continuous_and_g_independent() -> None:
    m = np.geomspace(0.01, 10.0, 2001)
    b = zm.branching_invisible(m, "vanilla")
    assert np.all(np.diff(b) <= 1e-15)
    assert np.all((b >= 1 / 3) & (b <= 1.0))
    for threshold in (TWO_MMU, TWO_MTAU):
        lo = zm.branching_invisible(threshold * (1 - 1e-10), "vanilla")
        hi = zm.branching_invisible(threshold * (1 + 1e-10), "vanilla")
        assert hi == pytest.approx(lo, abs=1e-4)
    np.testing.assert_allclose(zm.branching_invisible(m, "vanilla", g=1e-3), b, rtol=1e-14)


def test_fully_invisible_branching() -> None:
    m = np.array([0.1, 1.0, 5.0, 8.0])
    # the PRL's g_D >> g' limit: exactly 1
    np.testing.assert_array_equal(zm.branching_invisible(m, "fully_invisible"), 1.0)
    vanilla = zm.branching_invisible(m, "vanilla")
    b = zm.branching_invisible(m, "fully_invisible", g=0.1, alpha_d=1e-3)
    assert b[0] == 1.0  # below 2 m_mu everything is invisible anyway
    assert np.all((b[1:] > vanilla[1:]) & (b[1:] < 1.0))
    # decreasing with g', -> 1 for alpha_D >> g'^2
    b_big_g = zm.branching_invisible(m, "fully_invisible", g=0.5, alpha_d=1e-3)
    assert np.all(b_big_g[1:] < b[1:])
    b_big_a = zm.branching_invisible(m, "fully_invisible", g=1e-3, alpha_d=1.0)
    np.testing.assert_allclose(b_big_a, 1.0, atol=1e-6)
    # chi too heavy: back to vanilla
    heavy = zm.branching_invisible(m, "fully_invisible", g=0.1, alpha_d=1.0, m_chi=5.0)
    np.testing.assert_allclose(heavy, vanilla, rtol=1e-14)


def test_fully_invisible_branching_hand_value() -> None:
    # M = 5 GeV, g' = 0.1, alpha_D = 0.01, massless chi, in units of M:
    # Gamma_chi = a/3, Gamma_nunu = g^2/(12 pi), Gamma_ll = g^2/(12 pi) k_l with
    # k_l = (1 + 2 x_l) sqrt(1 - 4 x_l), x_l = (m_l/M)^2
    m, g, a = 5.0, 0.1, 0.01
    k_mu = (1 + 2 * (M_MUON / m) ** 2) * math.sqrt(1 - 4 * (M_MUON / m) ** 2)
    k_tau = (1 + 2 * (M_TAU / m) ** 2) * math.sqrt(1 - 4 * (M_TAU / m) ** 2)
    unit = g**2 / (12 * math.pi)
    expected = (a / 3 + unit) / (a / 3 + unit * (1 + k_mu + k_tau))
    got = zm.branching_invisible(m, "fully_invisible", g=g, alpha_d=a)
    assert got == pytest.approx(expected, rel=1e-13)
    assert got == pytest.approx(0.87822575, rel=1e-7)


# --------------------------------------------------------------------------- alpha_D
def test_alpha_d_for_width() -> None:
    assert zm.alpha_d_for_width(0.1) == pytest.approx(0.3, rel=1e-12)
    a = zm.alpha_d_for_width(0.1, m_chi_over_mass=0.4)
    assert zm.width_dark_fermions(2.0, a, m_chi=0.8) == pytest.approx(0.2, rel=1e-12)
    # with the SM part at g' included, the total width is w M
    m = np.array([1.0, 5.0, 8.0])
    a_g = zm.alpha_d_for_width(0.1, g=0.5, mass=m)
    assert np.all(a_g < 0.3)
    for mi, ai in zip(m, a_g, strict=True):
        total = zm.total_width(mi, "fully_invisible", 0.5, alpha_d=ai)
        assert total == pytest.approx(0.1 * mi, rel=1e-12)
    with pytest.raises(ConfigError, match="below the SM width"):
        zm.alpha_d_for_width(0.01, g=1.0, mass=5.0)


def test_alpha_d_for_width_differs_from_prl_value() -> None:
    # PRL 130, 231801 quotes alpha_D = 2.9 for Gamma = 0.1 M; the Dirac formula gives 0.30
    # (documented in docs/model.md). Guard against the formula being silently changed.
    assert zm.alpha_d_for_width(0.1) < 0.31


# --------------------------------------------------------------------------- (g-2)_mu
def _loop_by_quad(mass: float) -> float:
    r = (mass / M_MUON) ** 2
    points = [p for p in (1.0 / r, 1.0 - math.sqrt(r)) if 0.0 < p < 1.0]
    value, _ = quad(
        lambda z: z * (1 - z) ** 2 / ((1 - z) ** 2 + r * z),
        0.0,
        1.0,
        epsabs=0.0,
        epsrel=1e-12,
        limit=400,
        points=points or None,
    )
    return value / (4.0 * math.pi**2)


def test_delta_a_mu_light_limit() -> None:
    # M -> 0: alpha'/(2 pi) = g'^2/(8 pi^2); small-r expansion of the closed form, r = M^2/m_mu^2:
    # F = 1/2 - (pi/2) sqrt(r) - r ln r - r/2 + O(r^(3/2))
    assert zm.delta_a_mu(1.0, 1e-9) == pytest.approx(1.0 / (8 * math.pi**2), rel=1e-7)
    r = (1e-4 / M_MUON) ** 2
    expected = (0.5 - 0.5 * math.pi * math.sqrt(r) - r * math.log(r) - 0.5 * r) / (4 * math.pi**2)
    assert zm.delta_a_mu(1.0, 1e-4) == pytest.approx(expected, rel=1e-7)


def test_delta_a_mu_heavy_limit() -> None:
    for m in (100.0, 1000.0):
        heavy = M_MUON**2 / (12 * math.pi**2 * m**2)
        assert zm.delta_a_mu(1.0, m) == pytest.approx(heavy, rel=1e-4)


def test_delta_a_mu_hand_value_and_quadrature() -> None:
    # M = 0.1 GeV: r = (0.1/m_mu)^2 = 0.89575, loop integral F = 0.1106800,
    # Delta a_mu(g'=1) = F / (4 pi^2) = 2.80357e-3
    assert zm.delta_a_mu(1.0, 0.1) == pytest.approx(2.80357e-3, rel=1e-5)
    assert zm.delta_a_mu(5e-4, 0.1) == pytest.approx(2.5e-7 * 2.80357e-3, rel=1e-5)
    masses = np.array([1e-3, 0.01, 0.05, 0.1, M_MUON, 0.2, TWO_MMU, 0.5, 1.0, 3.0, 9.0, 50.0])
    got = zm.delta_a_mu(1.0, masses)
    ref = np.array([_loop_by_quad(m) for m in masses])
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_delta_a_mu_is_smooth_across_method_switch() -> None:
    # closed form for M <= m_mu, Gauss-Legendre above
    lo = zm.delta_a_mu(1.0, M_MUON * (1 - 1e-12))
    hi = zm.delta_a_mu(1.0, M_MUON * (1 + 1e-12))
    assert hi == pytest.approx(lo, rel=1e-11)
    m = np.geomspace(1e-3, 10.0, 500)
    assert np.all(np.diff(zm.delta_a_mu(1.0, m)) < 0)


def test_g2_band() -> None:
    m = np.array([0.001, 0.01, 0.1, 1.0, 5.0])
    band = zm.g2_band(m)
    assert np.all((band.low < band.central) & (band.central < band.high))
    low, central, high = band
    np.testing.assert_allclose(zm.delta_a_mu(low, m), 251e-11 - 2 * 59e-11, rtol=1e-12)
    np.testing.assert_allclose(zm.delta_a_mu(central, m), 251e-11, rtol=1e-12)
    np.testing.assert_allclose(zm.delta_a_mu(high, m), 251e-11 + 2 * 59e-11, rtol=1e-12)
    # the known low-mass band: g' ~ 3-6 x 10^-4 at M = 10 MeV
    assert band.low[1] == pytest.approx(3.66e-4, rel=1e-2)
    assert band.high[1] == pytest.approx(6.10e-4, rel=1e-2)
    # a wide band reaches g' = 0
    assert zm.g2_band(0.1, n_sigma=5.0).low == 0.0
    assert isinstance(zm.g2_band(0.1).central, float)


# --------------------------------------------------------------------------- g' <-> sigma
@pytest.mark.parametrize(
    ("model", "dark"),
    [
        ("vanilla", {}),
        ("fully_invisible", {}),
        ("fully_invisible", {"alpha_d": 1e-4}),
        ("fully_invisible", {"alpha_d": 1e-3, "m_chi": 1.0}),
    ],
)
def test_coupling_limit_round_trip(model: str, dark: dict) -> None:
    m = np.array([0.05, 0.3, 1.0, 3.0, 4.0, 6.0, 8.0])
    ul = np.array([10.0, 1.0, 0.5, 0.2, 0.3, 2.0, 50.0])
    g = zm.coupling_limit(ul, m, model, xsec=stand_in_xsec, **dark)
    assert np.all(np.isfinite(g) & (g > 0))
    back = zm.sigma_times_br(g, m, model, xsec=stand_in_xsec, **dark)
    np.testing.assert_allclose(back, ul, rtol=1e-10)


def test_coupling_limit_closed_form() -> None:
    m, ul = 1.0, 0.4
    b = zm.branching_invisible(m, "vanilla")
    expected = math.sqrt(ul / (float(stand_in_xsec(np.array(m))) * b))
    assert zm.coupling_limit(ul, m, "vanilla", xsec=stand_in_xsec) == pytest.approx(expected)
    # fully invisible with B = 1 is below vanilla by sqrt(B_vanilla)
    full = zm.coupling_limit(ul, m, "fully_invisible", xsec=stand_in_xsec)
    assert full == pytest.approx(expected * math.sqrt(b))
    # a finite alpha_D lies in between; large alpha_D approaches B = 1
    mid = zm.coupling_limit(ul, m, "fully_invisible", xsec=stand_in_xsec, alpha_d=1e-7)
    assert full < mid < expected
    big = zm.coupling_limit(ul, m, "fully_invisible", xsec=stand_in_xsec, alpha_d=1.0)
    assert big == pytest.approx(full, rel=1e-6)


def test_coupling_limit_without_sensitivity_is_inf() -> None:
    def zero_above_5(mass: np.ndarray) -> np.ndarray:  # TEST INPUT
        return np.where(np.asarray(mass) < 5.0, 100.0, 0.0)

    m = np.array([1.0, 6.0])
    for dark in ({}, {"alpha_d": 0.01}):
        g = zm.coupling_limit(1.0, m, "fully_invisible", xsec=zero_above_5, **dark)
        assert np.isfinite(g[0])
        assert g[1] == np.inf


def test_coupling_limit_uses_package_table_when_xsec_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[float] = []

    class FakeTable:  # TEST INPUT standing in for zprime.physics.xsec_table's cached table
        def sigma_fb(self, mass: np.ndarray, g: float = 1.0) -> np.ndarray:
            calls.append(g)
            return stand_in_xsec(mass) * g**2

    monkeypatch.setattr(zm, "load_xsec_table", FakeTable)
    got = zm.coupling_limit(0.5, 2.0, "vanilla")
    assert got == zm.coupling_limit(0.5, 2.0, "vanilla", xsec=stand_in_xsec)
    assert calls == [1.0]


def test_scalar_and_array_outputs() -> None:
    assert isinstance(zm.branching_invisible(1.0, "vanilla"), float)
    assert isinstance(zm.delta_a_mu(1e-3, 0.5), float)
    assert isinstance(zm.coupling_limit(1.0, 1.0, "vanilla", xsec=stand_in_xsec), float)
    out = zm.delta_a_mu(np.array([1e-3, 2e-3]), np.array([[0.1], [1.0]]))
    assert out.shape == (2, 2)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: zm.branching_invisible(1.0, "dark_photon"), "unknown model 'dark_photon'"),
        (
            lambda: zm.branching_invisible(0.0, "vanilla"),
            r"mass must be finite and > 0 GeV, got 0\.0",
        ),
        (lambda: zm.branching_invisible([1.0, -2.0], "vanilla"), r"got -2\.0"),
        (lambda: zm.delta_a_mu(1.0, float("nan")), "got nan"),
        (lambda: zm.delta_a_mu(1.0, np.inf), "got inf"),
        (lambda: zm.delta_a_mu(-0.1, 1.0), r"g must be finite and > 0, got -0\.1"),
        (lambda: zm.partial_widths(1.0, 0.0), r"g must be .*got 0\.0"),
        (lambda: zm.partial_widths("heavy"), "mass must be a number"),
        (
            lambda: zm.branching_invisible(1.0, "fully_invisible", alpha_d=-1.0),
            r"alpha_d must be finite and > 0, got -1\.0",
        ),
        (lambda: zm.branching_invisible(1.0, "vanilla", alpha_d=0.1), "only to model"),
        (lambda: zm.branching_invisible(1.0, "fully_invisible", m_chi=0.1), "without alpha_d"),
        (
            lambda: zm.branching_invisible(1.0, "fully_invisible", alpha_d=0.1, m_chi=-1.0),
            "m_chi must be finite and >= 0",
        ),
        (lambda: zm.alpha_d_for_width(0.1, m_chi_over_mass=0.5), "m_chi_over_mass"),
        (lambda: zm.alpha_d_for_width(-0.1), "width_over_mass"),
        (
            lambda: zm.coupling_limit(0.0, 1.0, "vanilla", xsec=stand_in_xsec),
            r"sigma_limit_fb must be finite and > 0 fb, got 0\.0",
        ),
        (
            lambda: zm.coupling_limit(1.0, 1.0, "vanilla", xsec=lambda m: np.nan * m),
            r"cross section at g'=1 is nan fb at mass 1\.0 GeV",
        ),
    ],
)
def test_bad_input_raises_one_line_config_error(call, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
