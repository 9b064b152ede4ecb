"""Tests of zprime.physics.leptophilic: the Z', leptophilic scalar and ALP of the tau-tau
resonance search (widths, B(X -> tau tau), coupling <-> sigma x B, (g-2)_mu)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from zprime.errors import ConfigError
from zprime.physics import leptophilic as lp
from zprime.physics import model as zm
from zprime.physics.constants import ALPHA_0, G_FERMI, M_ELECTRON, M_MUON, M_TAU, V_HIGGS

MASSES = np.array([3.6, 4.0, 5.0, 6.0, 8.0, 10.0])
TWO_MTAU = 2.0 * M_TAU


def stand_in_sigma(mass: np.ndarray) -> np.ndarray:
    """TEST INPUT, not physics: a smooth positive stand-in for sigma(y = 1) in fb."""
    return 1.0e5 * (1.0 - np.asarray(mass) / 10.58) ** 2


def beta(mass: float, m_l: float) -> float:
    return math.sqrt(1.0 - 4.0 * m_l**2 / mass**2)


# --------------------------------------------------------------------------- constants
def test_higgs_vev_from_fermi_constant() -> None:
    # v = (sqrt2 G_F)^-1/2 = 246.22 GeV (PDG: G_F = 1.1663788e-5 GeV^-2)
    assert abs(V_HIGGS - 246.22) < 0.005
    assert 1.0 / (math.sqrt(2.0) * V_HIGGS**2) == pytest.approx(G_FERMI, rel=1e-12)


# --------------------------------------------------------------------------- widths
def test_scalar_mumu_width_hand_value() -> None:
    # M = 5 GeV, xi = 1: m_mu^2 M beta^3 / (8 pi v^2), beta^3 = (1 - 4 * 0.0111637/25)^1.5
    expected = M_MUON**2 * 5.0 * (1.0 - 4.0 * M_MUON**2 / 25.0) ** 1.5 / (8 * math.pi * 246.2196**2)
    assert expected == pytest.approx(3.6537e-8, rel=1e-4)
    assert lp.partial_widths("scalar", 5.0, 1.0)["mumu"] == pytest.approx(expected, rel=1e-6)


def test_alp_tautau_width_hand_value() -> None:
    # M = 6 GeV, C/Lambda = 1/TeV: m_tau^2 M beta / (8 pi) x 1e-6
    m, c = 6.0, 1.0e-3
    expected = c**2 * M_TAU**2 * m * beta(m, M_TAU) / (8.0 * math.pi)
    assert lp.partial_widths("alp", m, c)["tautau"] == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(6.073e-7, rel=2e-4)


def test_scalar_width_ratios_are_mass_ratios_times_beta_cubed() -> None:
    for m in (3.6, 5.0, 10.0):
        w = lp.partial_widths("scalar", m, 2.0)
        ratio = (M_TAU / M_MUON) ** 2 * (beta(m, M_TAU) / beta(m, M_MUON)) ** 3
        assert w["tautau"] / w["mumu"] == pytest.approx(ratio, rel=1e-12)
        ratio_e = (M_MUON / M_ELECTRON) ** 2 * (beta(m, M_MUON) / beta(m, M_ELECTRON)) ** 3
        assert w["mumu"] / w["ee"] == pytest.approx(ratio_e, rel=1e-12)
        assert w["nunu"] == 0.0


def test_alp_width_ratios_are_mass_ratios_times_beta() -> None:
    for m in (3.6, 5.0, 10.0):
        w = lp.partial_widths("alp", m, 1e-3)
        ratio = (M_TAU / M_MUON) ** 2 * beta(m, M_TAU) / beta(m, M_MUON)
        assert w["tautau"] / w["mumu"] == pytest.approx(ratio, rel=1e-12)


def test_threshold_scalar_beta_cubed_vs_pseudoscalar_beta() -> None:
    # same Yukawa (xi/v = C/Lambda): Gamma_S / Gamma_a = beta^2 for every lepton; near 2 m_tau
    # the scalar's tau tau width is P-wave suppressed
    for eps in (1e-4, 1e-2, 0.3):
        m = TWO_MTAU * (1.0 + eps)
        ws = lp.partial_widths("scalar", m, 1.0)
        wa = lp.partial_widths("alp", m, 1.0 / V_HIGGS)
        assert ws["tautau"] / wa["tautau"] == pytest.approx(beta(m, M_TAU) ** 2, rel=1e-9)
    assert lp.branching_tautau("scalar", TWO_MTAU * 1.0001) < 1e-3
    assert lp.branching_tautau("alp", TWO_MTAU * 1.0001) > 0.1


def test_widths_scale_with_coupling_squared_including_loops() -> None:
    for model, c in (("zprime", 0.03), ("scalar", 20.0), ("alp", 2e-3)):
        w1 = lp.partial_widths(model, MASSES, 1.0)
        wc = lp.partial_widths(model, MASSES, c)
        for k in lp.CHANNELS:
            np.testing.assert_allclose(wc[k], c**2 * w1[k], rtol=1e-12, atol=0.0)
        np.testing.assert_allclose(
            lp.total_width(model, MASSES, c), c**2 * lp.total_width(model, MASSES, 1.0), rtol=1e-12
        )


def test_branching_fractions_sum_to_one_and_tautau_dominates_spin0() -> None:
    for model in lp.MODELS:
        b = lp.branching_fractions(model, MASSES)
        np.testing.assert_allclose(sum(b.values()), 1.0, rtol=1e-12)
        assert set(b) == set(lp.CHANNELS)
    assert np.all(lp.branching_tautau("scalar", MASSES[1:]) > 0.96)
    assert np.all(lp.branching_tautau("alp", MASSES) > 0.97)


def test_branching_tautau_values() -> None:
    """Regression against the values computed in shared/notes (section 2.2, tagged [C], i.e.
    computed from the same formulas, not published numbers)."""
    np.testing.assert_allclose(
        lp.branching_tautau("zprime", MASSES), [0.106, 0.242, 0.306, 0.321, 0.330, 0.332], atol=6e-4
    )
    np.testing.assert_allclose(
        lp.branching_tautau("scalar", [3.6, 4.0, 5.0, 8.0]), [0.54, 0.965, 0.990, 0.995], atol=5e-3
    )
    np.testing.assert_allclose(
        lp.branching_tautau("alp", [3.6, 4.0, 8.0]), [0.978, 0.992, 0.996], atol=6e-4
    )


def test_gammagamma_is_tiny_and_zero_for_the_vector() -> None:
    assert np.all(lp.branching_fractions("zprime", MASSES)["gammagamma"] == 0.0)
    for model in ("scalar", "alp"):
        bgg = lp.branching_fractions(model, MASSES)["gammagamma"]
        assert np.all(bgg > 0.0)
        assert np.all(bgg < 5e-4)


def test_scalar_gammagamma_is_the_higgs_formula() -> None:
    # Djouadi (2008): Gamma = G_F alpha^2 M^3 / (128 sqrt2 pi^3) |sum A_1/2|^2, times xi^2
    m, xi = 7.0, 3.0
    amp = sum(lp.a_half_scalar(4 * ml**2 / m**2) for ml in (M_ELECTRON, M_MUON, M_TAU))
    expected = (
        xi**2 * G_FERMI * ALPHA_0**2 * m**3 / (128 * math.sqrt(2) * math.pi**3) * abs(amp) ** 2
    )
    assert lp.partial_widths("scalar", m, xi)["gammagamma"] == pytest.approx(expected, rel=1e-12)


def test_alp_gammagamma_is_bauer_neubert_thamm() -> None:
    # 4 pi alpha^2 M^3 |C_eff|^2 / Lambda^2, C_eff = sum C B_1 / (16 pi^2) (C_gammagamma = 0);
    # the same as alpha^2 M^3 |c_eff|^2 / ((4 pi)^3 f^2) with c_eff = sum c B_1 (the ALPaca form)
    m, c = 9.0, 1.0e-3
    ceff = sum(c * lp.b1_alp(4 * ml**2 / m**2) for ml in (M_ELECTRON, M_MUON, M_TAU))
    bnt = 4 * math.pi * ALPHA_0**2 * m**3 * abs(ceff / (16 * math.pi**2)) ** 2
    alpaca = ALPHA_0**2 * m**3 * abs(ceff) ** 2 / (4 * math.pi) ** 3
    assert bnt == pytest.approx(alpaca, rel=1e-12)
    assert lp.partial_widths("alp", m, c)["gammagamma"] == pytest.approx(bnt, rel=1e-12)


def test_zprime_widths_are_those_of_model_py() -> None:
    mine = lp.partial_widths("zprime", MASSES, 0.02)
    ref = zm.partial_widths(MASSES, 0.02)
    for k in ("mumu", "tautau", "nunu"):
        np.testing.assert_allclose(mine[k], ref[k], rtol=1e-15)
    b = ref["tautau"] / (ref["mumu"] + ref["tautau"] + ref["nunu"])
    np.testing.assert_allclose(lp.branching_tautau("zprime", MASSES), b, rtol=1e-14)
    # far above threshold mu mu : tau tau : nu nu -> 1 : 1 : 1
    assert lp.branching_tautau("zprime", 10.5) == pytest.approx(1 / 3, abs=2e-3)


def test_scalar_input_gives_float_and_arrays_broadcast() -> None:
    assert isinstance(lp.branching_tautau("alp", 5.0), float)
    assert isinstance(lp.total_width("scalar", 5.0, 2.0), float)
    out = lp.partial_widths("scalar", MASSES[:, None], np.array([1.0, 2.0]))
    assert out["tautau"].shape == (MASSES.size, 2)


# --------------------------------------------------------------------------- loop functions
def test_loop_f_is_continuous_at_threshold_and_matches_the_higgs_form() -> None:
    assert lp.loop_f(1.0) == pytest.approx(math.pi / 2, abs=1e-15)
    assert abs(lp.loop_f(1.0 - 1e-10) - math.pi / 2) < 1e-4
    assert abs(lp.loop_f(1.0 + 1e-10) - math.pi / 2) < 1e-4
    for tau in (1e-3, 0.3, 0.99):
        s = math.sqrt(1 - tau)
        djouadi = -0.25 * (math.log((1 + s) / (1 - s)) - 1j * math.pi) ** 2  # f^2, tau < 1
        assert lp.loop_f(tau) ** 2 == pytest.approx(djouadi, rel=1e-9)
    # tau -> 0: f = pi/2 + (i/2) ln(4/tau) + O(tau), kept to full precision
    assert lp.loop_f(1e-12) == pytest.approx(math.pi / 2 + 0.5j * math.log(4e12), rel=1e-12)
    for tau in (1.5, 10.0):
        assert lp.loop_f(tau) ** 2 == pytest.approx(math.asin(1 / math.sqrt(tau)) ** 2, rel=1e-14)


def test_a_half_limits() -> None:
    # heavy lepton: 4/3 + 7/(45 tau)... -> 4/3 (the top-quark limit of the Higgs literature)
    assert lp.a_half_scalar(1e6).real == pytest.approx(4 / 3, rel=1e-6)
    assert lp.a_half_scalar(1e6).imag == 0.0
    # light lepton: -> 0 like tau ln^2 tau
    assert abs(lp.a_half_scalar(1e-10)) < 1e-7
    assert abs(lp.a_half_scalar(1e-10)) > 1e-9


def test_b1_limits() -> None:
    # light: B_1 -> 1 (a light lepton does not decouple from the derivative ALP coupling);
    # heavy: B_1 -> -1/(3 tau) -> 0
    assert lp.b1_alp(1e-12) == pytest.approx(1.0, abs=1e-9)
    assert lp.b1_alp(1e4).real == pytest.approx(-1 / (3e4), rel=1e-3)
    np.testing.assert_allclose(lp.b1_alp(np.array([2.0, 5.0])).imag, 0.0)


# --------------------------------------------------------------------------- couplings
def test_vertex_couplings() -> None:
    assert lp.vertex_coupling("zprime", 0.01) == 0.01
    assert lp.vertex_coupling("zprime", 0.01, "tau") == -0.01
    assert lp.vertex_coupling("scalar", 10.0) == pytest.approx(10 * M_MUON / V_HIGGS, rel=1e-15)
    assert lp.vertex_coupling("scalar", 1.0, "tau") == pytest.approx(M_TAU / 246.22, rel=1e-4)
    # ALP: C m_l / Lambda with C/Lambda = 1/TeV = 1e-3 / GeV
    assert lp.vertex_coupling("alp", 1e-3) == pytest.approx(1e-3 * M_MUON, rel=1e-15)
    for model in lp.MODELS:
        c = np.array([0.5, 2.0])
        back = lp.coupling_from_vertex(model, lp.vertex_coupling(model, c))
        np.testing.assert_allclose(back, c, rtol=1e-15)


def test_alp_vertex_gives_the_alp_width() -> None:
    # the on-shell pseudoscalar Yukawa y = C m/Lambda gives y^2 M beta / (8 pi)
    m, c = 8.0, 4e-3
    y = lp.vertex_coupling("alp", c, "tau")
    expected = y**2 * m * beta(m, M_TAU) / (8 * math.pi)
    assert lp.partial_widths("alp", m, c)["tautau"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("model", lp.MODELS)
def test_coupling_limit_inverts_sigma_times_br(model: str) -> None:
    coupling = {"zprime": 0.03, "scalar": 40.0, "alp": 2e-3}[model]
    sxb = lp.sigma_times_br(model, MASSES, coupling, stand_in_sigma)
    back = lp.coupling_limit(model, MASSES, sxb, stand_in_sigma)
    np.testing.assert_allclose(back, coupling, rtol=1e-12)
    # tables as arrays work the same
    back2 = lp.coupling_limit(model, MASSES, sxb, stand_in_sigma(MASSES))
    np.testing.assert_allclose(back2, coupling, rtol=1e-12)


def test_coupling_limit_closed_form() -> None:
    # scalar: xi = sqrt(UL / (sigma1 B)) v / m_mu
    m, ul, s1 = 7.0, 2.0, 3.0e4
    xi = lp.coupling_limit("scalar", m, ul, s1)
    assert isinstance(xi, float)
    b = lp.branching_tautau("scalar", m)
    assert xi == pytest.approx(math.sqrt(ul / (s1 * b)) * V_HIGGS / M_MUON, rel=1e-14)
    c = lp.coupling_limit("alp", m, ul, s1)
    b = lp.branching_tautau("alp", m)
    assert c == pytest.approx(math.sqrt(ul / (s1 * b)) / M_MUON, rel=1e-14)
    assert c * lp.GEV_INV_TO_TEV_INV == pytest.approx(1e3 * c)
    assert math.isinf(lp.coupling_limit("zprime", m, ul, 0.0))


# --------------------------------------------------------------------------- (g-2)_mu
@pytest.mark.parametrize("r", [1e-3, 0.7, 4.0, 50.0, 2.0e3, 1.0e4, 1.0e6])
def test_g2_loop_integrals_against_quadrature(r: float) -> None:
    opts = {"epsabs": 0.0, "epsrel": 1e-12, "limit": 400, "points": [min(1 / r, 0.5)]}
    i_s = quad(lambda z: (1 - z) ** 2 * (1 + z) / ((1 - z) ** 2 + r * z), 0, 1, **opts)[0]
    i_p = quad(lambda z: (1 - z) ** 3 / ((1 - z) ** 2 + r * z), 0, 1, **opts)[0]
    assert lp._scalar_loop(np.array(r)) == pytest.approx(i_s, rel=1e-11)
    assert lp._pseudoscalar_loop(np.array(r)) == pytest.approx(i_p, rel=1e-11)


def test_g2_loop_limits() -> None:
    # Jegerlehner & Nyffeler (2009): light exchange 3/2 (scalar) and 1/2 (pseudoscalar);
    # heavy: (ln r - 7/6)/r and (ln r - 11/6)/r
    assert lp._scalar_loop(np.array(1e-9)) == pytest.approx(1.5, rel=1e-3)
    assert lp._pseudoscalar_loop(np.array(1e-9)) == pytest.approx(0.5, rel=1e-3)
    r = 1e8
    assert lp._scalar_loop(np.array(r)) * r == pytest.approx(math.log(r) - 7 / 6, rel=1e-6)
    assert lp._pseudoscalar_loop(np.array(r)) * r == pytest.approx(math.log(r) - 11 / 6, rel=1e-6)


@pytest.mark.parametrize("x", [5.0, 10.0, 30.0])
def test_pseudoscalar_loop_closed_form(x: float) -> None:
    # u = 1 - z: int u^3/(u^2 - x u + x) = 1/2 + x - (x^2 - x) ln(x)/2
    #   + x^2 (x - 3)/(4 d) [ln|(1 - x/2 - d)/(1 - x/2 + d)| - ln|(x/2 + d)/(x/2 - d)|],
    # d = sqrt(x (x - 4))/2 (partial fractions, x > 4; cancels badly at large x)
    d = math.sqrt(x * (x - 4)) / 2
    log_term = math.log(abs((1 - x / 2 - d) / (1 - x / 2 + d))) - math.log(
        (x / 2 + d) / (x / 2 - d)
    )
    closed = 0.5 + x - (x**2 - x) * math.log(x) / 2 + x**2 * (x - 3) / (4 * d) * log_term
    assert lp._pseudoscalar_loop(np.array(x)) == pytest.approx(closed, rel=1e-9)


def test_g2_signs_and_zprime_consistency() -> None:
    np.testing.assert_allclose(
        lp.delta_a_mu("zprime", MASSES, 0.02), zm.delta_a_mu(0.02, MASSES), rtol=1e-15
    )
    assert np.all(lp.delta_a_mu("scalar", MASSES, 10.0) > 0)
    assert np.all(lp.delta_a_mu("alp", MASSES, 1e-3) < 0)
    # scalar at 5 GeV, xi = 1: y^2/(8 pi^2) (ln r - 7/6)/r to 1%
    r = (5.0 / M_MUON) ** 2
    approx = (M_MUON / V_HIGGS) ** 2 / (8 * math.pi**2) * (math.log(r) - 7 / 6) / r
    assert lp.delta_a_mu("scalar", 5.0, 1.0) == pytest.approx(approx, rel=1e-2)


def test_g2_band() -> None:
    for model in ("zprime", "scalar"):
        band = lp.g2_band(model, MASSES)
        assert band is not None
        np.testing.assert_allclose(
            lp.delta_a_mu(model, MASSES, band.central), lp.G2_DELTA_A_MU_2021, rtol=1e-12
        )
        np.testing.assert_allclose(
            lp.delta_a_mu(model, MASSES, band.low), 251e-11 - 2 * 59e-11, rtol=1e-12
        )
        assert np.all(band.low < band.central)
        assert np.all(band.central < band.high)
    ref = zm.g2_band(MASSES)
    np.testing.assert_allclose(lp.g2_band("zprime", MASSES).central, ref.central, rtol=1e-15)
    assert lp.g2_band("alp", MASSES) is None
    b23 = lp.g2_band("scalar", 6.0, delta=lp.G2_DELTA_A_MU_2023, sigma=lp.G2_SIGMA_A_MU_2023)
    assert isinstance(b23.central, float)
    assert lp.delta_a_mu("scalar", 6.0, b23.high) == pytest.approx(249e-11 + 96e-11, rel=1e-12)


def _bz_integrand(x: float, z: float, scalar: bool) -> float:
    w = x * (1 - x)
    if w <= 0.0:
        return 0.0
    kernel = 1.0 / z if w == z else math.log(w / z) / (w - z)  # removable at w = z
    return (2 * w - 1) * kernel if scalar else kernel


def test_barr_zee_functions_against_their_integrals() -> None:
    for z in (1e-9, 1e-4, 0.03, 0.2, 0.249):
        root = 0.5 * (1 - math.sqrt(1 - 4 * z))
        opts = {"limit": 400, "points": [root]}  # the integrand is symmetric in x <-> 1 - x
        fps = 2 * z * quad(_bz_integrand, 0, 0.5, args=(z, False), **opts)[0]
        fs = 2 * z * quad(_bz_integrand, 0, 0.5, args=(z, True), **opts)[0]
        assert lp.barr_zee_f_ps(z) == pytest.approx(fps, rel=1e-8)
        assert lp.barr_zee_f_s(z) == pytest.approx(fs, rel=1e-8)
    # f_PS(1/4) = ln 4 (hep-ph/0609168)
    assert lp.barr_zee_f_ps(0.25 - 1e-12) == pytest.approx(math.log(4.0), rel=1e-5)


def test_two_loop_scalar_reduces_delta_a_mu() -> None:
    one = lp.delta_a_mu("scalar", MASSES, 1.0)
    two = lp.delta_a_mu("scalar", MASSES, 1.0, two_loop=True)
    frac = (two - one) / one
    assert np.all(frac < 0)
    assert np.all(np.diff(frac) < 0)
    assert frac[1] == pytest.approx(-0.51, abs=0.01)  # 4 GeV
    band = lp.g2_band("scalar", MASSES, two_loop=True)
    assert band is not None
    assert np.all(band.central > lp.g2_band("scalar", MASSES).central)
    with pytest.raises(ConfigError, match="'scalar' only"):
        lp.delta_a_mu("alp", 5.0, 1e-3, two_loop=True)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: lp.branching_tautau("axion", 5.0), "unknown model 'axion'"),
        (lambda: lp.branching_tautau(None, 5.0), "unknown model None"),
        (lambda: lp.partial_widths("scalar", 3.5, 1.0), "mass = 3.5 GeV"),
        (lambda: lp.partial_widths("scalar", 10.6, 1.0), "mass = 10.6 GeV"),
        (lambda: lp.partial_widths("alp", [5.0, float("nan")], 1.0), "mass = nan"),
        (lambda: lp.partial_widths("scalar", 5.0, 0.0), "xi = 0.0"),
        (lambda: lp.partial_widths("alp", 5.0, -1e-3), "|C_ll|/Lambda [GeV^-1] = -0.001"),
        (lambda: lp.total_width("zprime", 5.0, float("nan")), "g' = nan"),
        (lambda: lp.sigma_times_br("scalar", 3.59, 1.0, 1.0), "mass = 3.59 GeV"),
        (lambda: lp.coupling_limit("alp", 10.01, 1.0, 1.0), "outside the search range"),
        (lambda: lp.coupling_limit("alp", 5.0, 0.0, 1.0), "sigma_limit_fb = 0.0 fb"),
        (lambda: lp.coupling_limit("alp", 5.0, 1.0, float("nan")), "sigma_unit_fb = nan"),
        (lambda: lp.coupling_limit("alp", MASSES, 1.0, [1.0, 2.0]), "does not broadcast"),
        (lambda: lp.delta_a_mu("scalar", 5.0, -2.0), "xi = -2.0"),
        (lambda: lp.g2_band("scalar", 5.0, sigma=-1.0), "sigma = -1.0"),
        (lambda: lp.vertex_coupling("scalar", 1.0, "nu"), "unknown lepton 'nu'"),
        (lambda: lp.loop_f(0.0), "tau = 0.0"),
        (lambda: lp.partial_widths("scalar", "five", 1.0), "mass must be a number"),
    ],
)
def test_bad_input_is_one_line(call, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    assert fragment in message


def test_analysis_range_edges_are_accepted() -> None:
    np.testing.assert_array_equal(lp.check_analysis_mass([3.6, 10.0]), [3.6, 10.0])
    assert lp.coupling_limit("scalar", 3.6, 1.0, 1.0) > 0
    assert lp.coupling_limit("scalar", 10.0, 1.0, 1.0) > 0
