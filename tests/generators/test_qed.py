"""Tests of zprime.generators.qed: Bhabha, radiative Bhabha and pi+ pi- gamma(ISR) generators.

The matrix elements are checked against Feynman diagrams evaluated with explicit Dirac matrices
(zprime.physics.dirac, an independent implementation), against textbook formulas and analytic limits
(soft-photon factorisation, the ISR radiator, the Binner-Kuhn-Melnikov photon angular
distribution), and the generators for four-momentum conservation, cuts, weights and seeds.
"""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
import pytest
from scipy import integrate

from zprime.errors import ConfigError, InputError
from zprime.generators import isr, qed
from zprime.physics import dirac
from zprime.physics.constants import ALPHA_0, GEV2_TO_FB, GEV2_TO_NB, M_ELECTRON, M_PION, SQRT_S
from zprime.physics.kinematics import lab_to_cm

S = SQRT_S**2
E2 = 4.0 * math.pi * ALPHA_0


# --------------------------------------------------------------------------------------------
# helpers


def _p4(events: ak.Array) -> np.ndarray:
    """(n, k, 4) lab four-momenta of events with a fixed particle count."""
    p = events["particles"]
    return np.stack([ak.to_numpy(p[f]) for f in ("e", "px", "py", "pz")], axis=-1)


def _theta(p: np.ndarray) -> np.ndarray:
    return np.arctan2(np.hypot(p[..., 1], p[..., 2]), p[..., 3])


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cross = np.linalg.norm(np.cross(a[..., 1:], b[..., 1:]), axis=-1)
    return np.arctan2(cross, np.sum(a[..., 1:] * b[..., 1:], axis=-1))


def _beams(n: int, m: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    e = 0.5 * SQRT_S
    p = math.sqrt(e * e - m * m)
    p1 = np.tile([e, 0.0, 0.0, p], (n, 1))
    p2 = np.tile([e, 0.0, 0.0, -p], (n, 1))
    return p1, p2


def _random_three_body(rng: np.random.Generator, n: int, m: float, e_range=(0.3, 4.0)):
    """Random c.m. configurations gamma + two particles of mass m (photon, a, b)."""
    omega = rng.uniform(*e_range, n)
    cg = rng.uniform(-0.95, 0.95, n)
    phig = rng.uniform(0, 2 * math.pi, n)
    cd = rng.uniform(-0.9, 0.9, n)
    phid = rng.uniform(0, 2 * math.pi, n)
    q2 = S - 2.0 * SQRT_S * omega
    k, a, b = qed._photon_and_pair(
        q2, cg, np.sqrt(1 - cg**2), phig, cd, np.sqrt(1 - cd**2), phid, m
    )
    return k, a, b


def _eegamma_dirac(p1, p2, q1, q2, k) -> np.ndarray:
    """Spin-averaged |M|^2 of e-(p1) e+(p2) -> e-(q1) e+(q2) gamma(k) from the 8 diagrams."""
    m = 0.0
    gam = dirac.GAMMA
    prop = dirac.fermion_propagator
    total = np.zeros(p1.shape[0])
    for hg in (-1, 1):
        es = dirac.slash(dirac.polarization_vector(k, 0.0, hg, conjugate=True))
        t_e = dirac.minkowski_dot(p2 - q2, p2 - q2)  # photon exchanged, emission on e- line
        t_p = dirac.minkowski_dot(p1 - q1, p1 - q1)  # emission on e+ line
        s_in = dirac.minkowski_dot(p1 + p2, p1 + p2)
        s_out = dirac.minkowski_dot(q1 + q2, q1 + q2)
        for h1, h2, h3, h4 in itertools.product((-1, 1), repeat=4):
            u1 = dirac.u_spinor(p1, m, h1)
            v2b = dirac.dirac_bar(dirac.v_spinor(p2, m, h2))
            u3b = dirac.dirac_bar(dirac.u_spinor(q1, m, h3))
            v4 = dirac.v_spinor(q2, m, h4)
            amp_t = 0
            amp_s = 0
            for mu in range(4):
                g = gam[mu]
                sign = 1.0 if mu == 0 else -1.0
                el_rad = es @ prop(q1 + k, m) @ g + g @ prop(p1 - k, m) @ es
                po_rad = es @ prop(k - p2, m) @ g + g @ prop(-q2 - k, m) @ es
                an_rad = es @ prop(k - p2, m) @ g + g @ prop(p1 - k, m) @ es
                pr_rad = es @ prop(q1 + k, m) @ g + g @ prop(-q2 - k, m) @ es
                el = dirac.sandwich(u3b, np.broadcast_to(g, el_rad.shape), u1)
                po = dirac.sandwich(v2b, np.broadcast_to(g, el_rad.shape), v4)
                an = dirac.sandwich(v2b, np.broadcast_to(g, el_rad.shape), u1)
                pr = dirac.sandwich(u3b, np.broadcast_to(g, el_rad.shape), v4)
                amp_t = amp_t + sign * (
                    dirac.sandwich(u3b, el_rad, u1) * po / t_e
                    + el * dirac.sandwich(v2b, po_rad, v4) / t_p
                )
                amp_s = amp_s + sign * (
                    dirac.sandwich(v2b, an_rad, u1) * pr / s_out
                    + an * dirac.sandwich(u3b, pr_rad, v4) / s_in
                )
            total = total + np.abs(amp_t - amp_s) ** 2
    return 0.25 * E2**3 * total


def _pipi_dirac(p1, p2, k, qp, qm, m) -> np.ndarray:
    """Spin-averaged |M|^2 of e-(p1) e+(p2) -> gamma(k) pi+(qp) pi-(qm), ISR diagrams."""
    j = qp - qm
    q = qp + qm
    q2 = dirac.minkowski_dot(q, q)
    js = dirac.slash(j)
    total = np.zeros(p1.shape[0])
    for hg in (-1, 1):
        es = dirac.slash(dirac.polarization_vector(k, 0.0, hg, conjugate=True))
        op = (
            js @ dirac.fermion_propagator(p1 - k, m) @ es
            + es @ dirac.fermion_propagator(k - p2, m) @ js
        )
        for h1, h2 in itertools.product((-1, 1), repeat=2):
            amp = dirac.sandwich(
                dirac.dirac_bar(dirac.v_spinor(p2, m, h2)), op, dirac.u_spinor(p1, m, h1)
            )
            total = total + np.abs(amp) ** 2
    ff2 = np.abs(qed.pion_form_factor(q2)) ** 2
    return 0.25 * E2**3 * ff2 / q2**2 * total


# --------------------------------------------------------------------------------------------
# Bhabha


def test_bhabha_dsigma_matches_textbook_half_angle_form():
    c = np.linspace(-0.95, 0.98, 41)
    half_c2 = 0.5 * (1 + c)  # cos^2(theta/2)
    half_s2 = 0.5 * (1 - c)  # sin^2(theta/2)
    # dsigma/dOmega = alpha^2/(2s) [(1 + cos^4)/sin^4 - 2 cos^4/sin^2 + (1 + cos^2 theta)/2]
    textbook = (
        ALPHA_0**2
        / (2 * S)
        * ((1 + half_c2**2) / half_s2**2 - 2 * half_c2**2 / half_s2 + (1 + c**2) / 2)
    )
    np.testing.assert_allclose(qed.bhabha_dsigma_dcos(c, S), 2 * math.pi * textbook, rtol=1e-12)


def test_bhabha_integral_and_known_number():
    lo, hi = math.radians(10.0), math.radians(170.0)
    analytic = qed.bhabha_cross_section(S, lo, hi)
    numeric = integrate.quad(
        lambda c: float(qed.bhabha_dsigma_dcos(c, S)), math.cos(hi), math.cos(lo), limit=200
    )[0]
    assert analytic == pytest.approx(numeric, rel=1e-10)
    # Born value at 10.583 GeV, 10-170 deg: 286.6 nb; the Belle II Physics Book quotes
    # 300 +- 3 nb from BabaYaga@NLO (with radiative corrections and vacuum polarisation)
    sigma_nb = analytic * GEV2_TO_NB
    assert sigma_nb == pytest.approx(286.59, abs=0.05)
    assert 0.92 < sigma_nb / 300.0 < 1.0


def test_ee_born_monte_carlo_matches_analytic():
    wide = {"isr": False, "theta_min_deg": 10.0, "theta_max_deg": 170.0}
    res = qed.ee_chunk({"options": wide}, 20_000, 11)
    analytic = qed.bhabha_cross_section(S, math.radians(10), math.radians(170)) * GEV2_TO_FB
    assert res.sigma_err_fb / res.sigma_fb < 2e-4  # the t-channel map makes the weight flat
    assert res.sigma_fb == pytest.approx(analytic, abs=4 * res.sigma_err_fb)
    assert float(ak.sum(res.events.weight)) == pytest.approx(res.sigma_fb, rel=1e-12)
    # the e- angular distribution follows dsigma/dcos (c.m. frame, no ISR)
    cm = lab_to_cm(_p4(res.events))
    cos_e = np.cos(_theta(cm[:, 0]))
    edges = np.array([-0.98, -0.5, 0.0, 0.5, 0.9, 0.98])
    w = ak.to_numpy(res.events.weight)
    hist, _ = np.histogram(cos_e, edges, weights=w)
    err = np.sqrt(np.histogram(cos_e, edges, weights=w * w)[0])
    expect = np.array(
        [
            integrate.quad(lambda c: float(qed.bhabha_dsigma_dcos(c, S)), a, b)[0] * GEV2_TO_FB
            for a, b in itertools.pairwise(edges)
        ]
    )
    assert np.all(np.abs(hist - expect) < 4 * err)
    assert np.all(err / hist < 0.25)


def test_ee_isr_changes_kinematics_as_expected():
    born = qed.ee_chunk({"options": {"isr": False}}, 20_000, 5)
    res = qed.ee_chunk({}, 40_000, 5)
    ev = res.events
    p = _p4(ev)
    # ISR photons are collinear with the beams and the hard system lost energy to them
    assert np.all(p[:, 2:, 1:3] == 0.0)
    assert np.all(p[:, 2, 3] >= 0.0)
    assert np.all(p[:, 3, 3] <= 0.0)
    shat = ak.to_numpy(ev.sqrt_s_hat)
    assert np.all(shat <= SQRT_S)
    assert np.all(shat >= 1.0)
    w = ak.to_numpy(ev.weight)
    # fraction of the cross section that lost more than 10% of s: the radiator integral
    # int_0.1 W(v) dv (about 14%), up to the 1/s_hat growth and the acceptance of the boost
    frac = w[shat**2 < 0.9 * S].sum() / w.sum()
    v_max = 1.0 - 1.0 / S
    expect = integrate.quad(lambda v: float(isr.radiator(v, S)), 0.1, v_max)[0]
    assert 0.12 < expect < 0.16
    assert frac == pytest.approx(expect, rel=0.25)
    # within the fixed c.m. angular cuts the rate changes by little (1/s_hat growth against
    # acollinearity losses), but the hard system is boosted: the leptons are acollinear
    assert abs(res.sigma_fb / born.sigma_fb - 1.0) < 0.03
    cm = lab_to_cm(p)
    acol = math.pi - _angle(cm[:, 0], cm[:, 1])
    assert w[acol > math.radians(5)].sum() / w.sum() > 0.03
    opts = qed.DEFAULT_SETTINGS["ee"]["options"]
    lo, hi = math.radians(opts["theta_min_deg"]), math.radians(opts["theta_max_deg"])
    assert np.all((_theta(cm[:, :2]) >= lo - 1e-7) & (_theta(cm[:, :2]) <= hi + 1e-7))


# --------------------------------------------------------------------------------------------
# radiative Bhabha


def test_eegamma_matrix_element_matches_feynman_diagrams():
    rng = np.random.default_rng(1)
    k, qm, qp = _random_three_body(rng, 12, 0.0)
    p1, p2 = _beams(12)
    ours = qed.eegamma_me2(p1, p2, qm, qp, k)
    ref = _eegamma_dirac(p1, p2, qm, qp, k)
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_eegamma_soft_photon_factorises_to_bhabha_times_eikonal():
    rng = np.random.default_rng(2)
    n = 8
    k, qm, qp = _random_three_body(rng, n, 0.0, e_range=(1e-5, 1e-5))
    p1, p2 = _beams(n)
    me2 = qed.eegamma_me2(p1, p2, qm, qp, k)
    # Bhabha |M|^2 at the same angle: dsigma/dcos = |M|^2/(32 pi s)
    cos = np.cos(_angle(qm, p1))
    bhabha = qed.bhabha_dsigma_dcos(cos, S) * 32 * math.pi * S

    # eikonal factor -e^2 J^2, J = sum_i eta_i p_i/(p_i.k): + outgoing e+ / incoming e-,
    # - outgoing e- / incoming e+
    def term(p, eta):
        return eta * p / dirac.minkowski_dot(p, k)[:, None]

    cur = term(p1, 1.0) + term(p2, -1.0) + term(qm, -1.0) + term(qp, 1.0)
    eikonal = -E2 * dirac.minkowski_dot(cur, cur)
    np.testing.assert_allclose(me2, bhabha * eikonal, rtol=1e-3)


def test_eegamma_charge_conjugation_symmetry():
    rng = np.random.default_rng(3)
    k, qm, qp = _random_three_body(rng, 50, 0.0)
    p1, p2 = _beams(50)
    np.testing.assert_allclose(
        qed.eegamma_me2(p1, p2, qm, qp, k), qed.eegamma_me2(p2, p1, qp, qm, k), rtol=1e-12
    )
    # generated events: cos(theta) of the e- is distributed as -cos(theta) of the e+
    res = qed.eegamma_chunk({}, 60_000, 4)
    cm = lab_to_cm(_p4(res.events))
    w = ak.to_numpy(res.events.weight)
    edges = np.linspace(-1, 1, 6)
    h_e, _ = np.histogram(np.cos(_theta(cm[:, 0])), edges, weights=w)
    h_p, _ = np.histogram(-np.cos(_theta(cm[:, 1])), edges, weights=w)
    h2_e, _ = np.histogram(np.cos(_theta(cm[:, 0])), edges, weights=w * w)
    h2_p, _ = np.histogram(-np.cos(_theta(cm[:, 1])), edges, weights=w * w)
    pull = (h_e - h_p) / np.sqrt(h2_e + h2_p)
    assert np.all(np.abs(pull) < 4.0)
    assert abs(np.average(np.cos(_theta(cm[:, 0])), weights=w)) > 0.3  # t channel: forward


def test_eegamma_events_respect_generation_cuts():
    opts = qed.DEFAULT_SETTINGS["eegamma"]["options"]
    res = qed.eegamma_chunk({}, 30_000, 6)
    cm = lab_to_cm(_p4(res.events))
    assert np.all(cm[:, 2, 0] >= opts["e_gamma_min_gev"] * (1 - 1e-12))
    tg = np.degrees(_theta(cm[:, 2]))
    assert np.all(tg >= opts["theta_gamma_min_deg"] - 1e-6)
    assert np.all(tg <= opts["theta_gamma_max_deg"] + 1e-6)
    tl = np.degrees(_theta(cm[:, :2]))
    assert np.all((tl >= opts["theta_min_deg"] - 1e-6) & (tl <= opts["theta_max_deg"] + 1e-6))
    for i in (0, 1):
        sep = np.degrees(_angle(cm[:, i], cm[:, 2]))
        assert np.all(sep >= opts["angle_gamma_lepton_min_deg"] - 1e-6)
    mee2 = dirac.minkowski_dot(cm[:, 0] + cm[:, 1], cm[:, 0] + cm[:, 1])
    assert np.all(mee2 >= opts["m_ee_min_gev"] ** 2 - 1e-9)
    # a 0.5 GeV photon at wide angle costs ~ (2 alpha/pi) ln(E/E_min) ln(..) of Bhabha: a few nb
    assert 3e6 < res.sigma_fb < 15e6
    assert res.sigma_err_fb / res.sigma_fb < 0.01


# --------------------------------------------------------------------------------------------
# pi+ pi- gamma


def test_pion_form_factor():
    assert qed.pion_form_factor(0.0) == pytest.approx(1.0)
    q2 = np.linspace(0.3, 1.2, 901)
    ff2 = np.abs(qed.pion_form_factor(q2)) ** 2
    assert 0.75 < math.sqrt(q2[np.argmax(ff2)]) < 0.78
    assert 30 < ff2.max() < 60  # 40 here; e+e- data peak near 45


def test_pipi_born_cross_section_formula():
    """pi alpha^2 beta^3 |F|^2/(3 s) against the Dirac-matrix 2 -> 2 amplitude, integrated."""
    for s in (0.6, 1.0, 4.0):
        p1, p2 = _beams(1)
        p1 *= math.sqrt(s) / SQRT_S
        p2 *= math.sqrt(s) / SQRT_S
        x, wq = np.polynomial.legendre.leggauss(24)
        e = 0.5 * math.sqrt(s)
        pp = math.sqrt(e * e - M_PION**2)
        sn = np.sqrt(1 - x * x)
        qp = np.stack([np.full_like(x, e), pp * sn, 0 * x, pp * x], -1)
        qm = qp * np.array([1, -1, -1, -1])
        js = dirac.slash(qp - qm)
        tot = np.zeros_like(x)
        for h1, h2 in itertools.product((-1, 1), repeat=2):
            amp = dirac.sandwich(
                dirac.dirac_bar(dirac.v_spinor(np.repeat(p2, len(x), 0), 0.0, h2)),
                js,
                dirac.u_spinor(np.repeat(p1, len(x), 0), 0.0, h1),
            )
            tot = tot + np.abs(amp) ** 2
        me2 = 0.25 * E2**2 * np.abs(qed.pion_form_factor(s)) ** 2 / s**2 * tot
        beta = pp / e
        sigma = np.sum(wq * beta * me2 / (32 * math.pi * s))
        assert sigma == pytest.approx(float(qed.pipi_born_cross_section(s)), rel=1e-10)


def test_pipi_matrix_element_matches_feynman_diagrams():
    rng = np.random.default_rng(7)
    k, qp, qm = _random_three_body(rng, 10, M_PION, e_range=(0.5, 5.2))
    p1, p2 = _beams(10, M_ELECTRON)
    ours = qed.pipi_isr_me2(p1, p2, k, qp, qm)
    ref = _pipi_dirac(p1, p2, k, qp, qm, M_ELECTRON)
    np.testing.assert_allclose(ours, ref, rtol=1e-8)
    # nearly collinear photons, where the electron mass matters
    for theta in (1e-2, 1e-3, 1e-4):
        kk = np.array([[4.0, 4.0 * math.sin(theta), 0.0, 4.0 * math.cos(theta)]])
        q = p1[:1] + p2[:1] - kk
        # a pion pair in the Q rest frame, boosted
        mq = math.sqrt(dirac.minkowski_dot(q, q)[0])
        ps = math.sqrt(mq**2 / 4 - M_PION**2)
        a = np.array([[mq / 2, ps * 0.6, ps * 0.8, 0.0]])
        b = a * np.array([1, -1, -1, -1])
        gb = q[:, 1:] / mq
        g = q[:, 0] / mq
        qp1, qm1 = qed._boost(a, gb, g), qed._boost(b, gb, g)
        ours = qed.pipi_isr_me2(p1[:1], p2[:1], kk, qp1, qm1)
        ref = _pipi_dirac(p1[:1], p2[:1], kk, qp1, qm1, M_ELECTRON)
        np.testing.assert_allclose(ours, ref, rtol=1e-6)


def _window_options(m_lo, m_hi, **extra):
    e_min = (S - m_hi**2) / (2 * SQRT_S)
    return {"e_gamma_min_gev": e_min, "m_pipi_min_gev": m_lo, **extra}


def test_pipi_reproduces_isr_radiator_times_born():
    """Integrated over all photon and pion angles, the spectrum is the O(alpha) radiator
    (alpha/pi)(L - 1)(1 + (1 - x)^2)/x times the Born cross section (electron mass kept)."""
    m_lo, m_hi = 0.70, 0.85
    opts = _window_options(
        m_lo,
        m_hi,
        theta_min_deg=0.0,
        theta_max_deg=180.0,
        theta_gamma_min_deg=0.0,
        theta_gamma_max_deg=180.0,
    )
    res = qed.pipi_chunk({"options": opts}, 60_000, 3)
    big_l = math.log(S / M_ELECTRON**2)

    def spectrum(q2):
        x = 1 - q2 / S
        rad = ALPHA_0 / math.pi * (big_l - 1) * (1 + (1 - x) ** 2) / x
        return rad / S * float(qed.pipi_born_cross_section(q2))

    ref = integrate.quad(spectrum, m_lo**2, m_hi**2, limit=200)[0] * GEV2_TO_FB
    assert res.sigma_err_fb / res.sigma_fb < 1e-3
    assert res.sigma_fb == pytest.approx(ref, abs=4 * res.sigma_err_fb)


def test_pipi_photon_angular_distribution_wide_angle():
    """Massless wide-angle ISR: dsigma/(dQ^2 dcos) = (alpha/(pi s)) sigma_0(Q^2)
    [(1 + q^2)/(1 - q)/sin^2 - (1 - q)/2], q = Q^2/s (Binner, Kuhn, Melnikov,
    Phys. Lett. B 459 (1999) 279)."""
    m_lo, m_hi = 0.5, 1.0
    c0 = 0.5
    opts = _window_options(
        m_lo,
        m_hi,
        theta_min_deg=0.0,
        theta_max_deg=180.0,
        theta_gamma_min_deg=math.degrees(math.acos(c0)),
        theta_gamma_max_deg=180 - math.degrees(math.acos(c0)),
    )
    res = qed.pipi_chunk({"options": opts}, 40_000, 4)

    def bkm(q2):
        q = q2 / S
        ang = (1 + q * q) / (1 - q) * math.log((1 + c0) / (1 - c0)) - (1 - q) * c0
        return ALPHA_0 / (math.pi * S) * ang * float(qed.pipi_born_cross_section(q2))

    ref = integrate.quad(bkm, m_lo**2, m_hi**2, limit=200, points=[0.773**2])[0] * GEV2_TO_FB
    assert res.sigma_fb == pytest.approx(ref, abs=4 * res.sigma_err_fb)
    assert res.sigma_err_fb / res.sigma_fb < 1e-3


def test_pipi_spectrum_peaks_at_rho_and_photon_along_beams():
    opts = {
        "theta_gamma_min_deg": 0.0,
        "theta_gamma_max_deg": 180.0,
        "theta_min_deg": 0.0,
        "theta_max_deg": 180.0,
    }
    res = qed.pipi_chunk({"options": opts}, 40_000, 8)
    w = ak.to_numpy(res.events.weight)
    m = ak.to_numpy(res.events.m_pipi)
    hist, edges = np.histogram(m, np.arange(0.28, 2.0, 0.02), weights=w)
    peak = 0.5 * (edges[np.argmax(hist)] + edges[np.argmax(hist) + 1])
    assert 0.72 < peak < 0.82
    cm = lab_to_cm(_p4(res.events))
    cos_g = np.cos(_theta(cm[:, 2]))
    dens_edge = w[np.abs(cos_g) > 0.99].sum() / 0.02
    dens_mid = w[np.abs(cos_g) < 0.5].sum() / 1.0
    assert dens_edge > 20 * dens_mid
    # the photon recoils against the pions: its c.m. pT balances theirs
    np.testing.assert_allclose(cm[:, 2, 1:3], -(cm[:, 0, 1:3] + cm[:, 1, 1:3]), atol=1e-9)


def test_pipi_default_cross_section():
    res = qed.pipi_chunk({}, 20_000, 9)
    # photon 5-175 deg, pions 20-160 deg (c.m.): about 17 pb; the radiative return to the rho
    # with a wide-angle photon, of order (alpha/pi) ln(...) x sigma(pi pi at the rho) x s'/s
    assert 12e3 < res.sigma_fb < 25e3
    assert res.sigma_err_fb / res.sigma_fb < 0.01


# --------------------------------------------------------------------------------------------
# generator plumbing common to the three samples


@pytest.mark.parametrize("chunk", [qed.ee_chunk, qed.eegamma_chunk, qed.pipi_chunk])
def test_four_momentum_conservation_weights_and_seed(chunk):
    res = chunk({}, 5_000, 21)
    p = _p4(res.events)
    total = p.sum(axis=1)
    np.testing.assert_allclose(total, np.tile([11.0, 0.0, 0.0, 3.0], (len(p), 1)), atol=1e-9)
    assert res.n_generated == 5_000
    w = ak.to_numpy(res.events.weight)
    assert np.all(w > 0)
    assert w.sum() == pytest.approx(res.sigma_fb, rel=1e-12)
    ev = ak.to_numpy(res.events.event)
    assert np.all(np.diff(ev) > 0)
    assert ev.min() >= 0
    assert ev.max() < 5_000
    again = chunk({}, 5_000, 21)
    assert ak.to_list(again.events[:50]) == ak.to_list(res.events[:50])
    assert again.sigma_fb == res.sigma_fb
    other = chunk({}, 5_000, 22)
    assert other.sigma_fb != res.sigma_fb
    # masses of the final-state particles
    m2 = p[..., 0] ** 2 - np.sum(p[..., 1:] ** 2, axis=-1)
    assert np.all(np.abs(m2[:, 2:]) < 1e-6)


def test_filter_and_reference_normalisation():
    filt = {
        "enabled": True,
        "min_tracks": 2,
        "track_pt_min_gev": 0.3,
        "theta_min_deg": 17.0,
        "theta_max_deg": 150.0,
    }
    base = qed.ee_chunk({}, 5_000, 31)
    res = qed.ee_chunk({"filter": filt}, 5_000, 31)
    assert 0 < len(res.events) < len(base.events)
    assert res.sigma_fb == base.sigma_fb
    theta = np.degrees(_theta(_p4(res.events)[:, :2]))
    assert np.all((theta > 17) & (theta < 150))
    ref = qed.ee_chunk({"normalisation": "reference", "xsec_ref_fb": 3.0e8}, 5_000, 31)
    assert float(ak.sum(ref.events.weight)) == pytest.approx(3.0e8, rel=1e-12)


def test_options_validation_and_defaults():
    with pytest.raises(ConfigError, match="unknown option 'foo'"):
        qed.ee_chunk({"options": {"foo": 1}}, 10, 1)
    with pytest.raises(ConfigError, match="theta_min_deg"):
        qed.ee_chunk({"options": {"theta_min_deg": 0.0}}, 10, 1)
    with pytest.raises(ConfigError, match="isr"):
        qed.ee_chunk({"options": {"isr": 1}}, 10, 1)
    with pytest.raises(ConfigError, match="e_gamma_min_gev"):
        qed.eegamma_chunk({"options": {"e_gamma_min_gev": 6.0}}, 10, 1)
    with pytest.raises(InputError, match="n_generate"):
        qed.pipi_chunk({}, 0, 1)
    info = qed.describe(
        {"name": "pipi", "generator": "zprime.generators.qed:pipi_chunk", "options": {}}
    )
    assert info["br_weight"] == 1.0
    assert info["qed_options"] == qed.DEFAULT_SETTINGS["pipi"]["options"]
    with pytest.raises(ConfigError, match="unknown generator"):
        qed.describe({"name": "x", "generator": "zprime.generators.qed:nothing"})
    for name, entry in qed.DEFAULT_SETTINGS.items():
        assert set(entry["options"]) == set(qed.OPTION_DOCS[name])
        assert entry["generator"] == f"zprime.generators.qed:{name}_chunk"


def test_default_settings_fit_the_background_configuration():
    config = pytest.importorskip("zprime.config")
    model = getattr(config, "BackgroundSampleConfig", None)
    if model is None:
        pytest.skip("zprime.config has no BackgroundSampleConfig")
    for entry in qed.DEFAULT_SETTINGS.values():
        model(**entry)


# --------------------------------------------------------------------------------------------
# slow: higher statistics


@pytest.mark.slow
@pytest.mark.parametrize(("m_lo", "m_hi"), [(0.3, 0.6), (0.75, 0.80), (1.0, 2.0), (2.0, 5.0)])
def test_pipi_radiator_in_several_windows_slow(m_lo, m_hi):
    opts = _window_options(
        m_lo,
        m_hi,
        theta_min_deg=0.0,
        theta_max_deg=180.0,
        theta_gamma_min_deg=0.0,
        theta_gamma_max_deg=180.0,
    )
    res = qed.pipi_chunk({"options": opts}, 400_000, 13)
    big_l = math.log(S / M_ELECTRON**2)

    def spectrum(q2):
        x = 1 - q2 / S
        rad = ALPHA_0 / math.pi * (big_l - 1) * (1 + (1 - x) ** 2) / x
        return rad / S * float(qed.pipi_born_cross_section(q2))

    ref = integrate.quad(spectrum, m_lo**2, m_hi**2, limit=400, points=[0.773**2])[0]
    assert res.sigma_fb == pytest.approx(ref * GEV2_TO_FB, abs=4 * res.sigma_err_fb)


@pytest.mark.slow
def test_eegamma_cross_section_stable_across_seeds_slow():
    values = [qed.eegamma_chunk({}, 400_000, seed) for seed in (1, 2, 3)]
    sig = np.array([v.sigma_fb for v in values])
    err = np.array([v.sigma_err_fb for v in values])
    mean = np.average(sig, weights=1 / err**2)
    assert np.all(np.abs(sig - mean) < 4 * err)
    assert np.all(err / sig < 3e-3)


@pytest.mark.slow
def test_eegamma_cross_section_against_flat_sampling_slow():
    """The multichannel eegamma integral against plain flat sampling of the same phase space
    (photon energy flat in log E, photon direction and pair-frame lepton direction uniform)."""
    o = qed.DEFAULT_SETTINGS["eegamma"]["options"]
    rng = np.random.default_rng(99)
    e_min = o["e_gamma_min_gev"]
    e_max = (S - o["m_ee_min_gev"] ** 2) / (2 * SQRT_S)
    c_g = math.cos(math.radians(o["theta_gamma_min_deg"]))
    vals = []
    for _ in range(20):
        n = 200_000
        omega = e_min * (e_max / e_min) ** rng.random(n)
        cg = rng.uniform(-c_g, c_g, n)
        cd = rng.uniform(-1, 1, n)
        k, qm, qp = qed._photon_and_pair(
            S - 2 * SQRT_S * omega,
            cg,
            np.sqrt(1 - cg**2),
            rng.uniform(0, 2 * math.pi, n),
            cd,
            np.sqrt(1 - cd**2),
            rng.uniform(0, 2 * math.pi, n),
            M_ELECTRON,
        )
        p1, p2 = _beams(n, M_ELECTRON)
        me2 = qed.eegamma_me2(p1, p2, qm, qp, k)
        th_lo, th_hi = math.radians(o["theta_min_deg"]), math.radians(o["theta_max_deg"])
        sep = math.radians(o["angle_gamma_lepton_min_deg"])
        ok = (
            (_theta(qm) >= th_lo)
            & (_theta(qm) <= th_hi)
            & (_theta(qp) >= th_lo)
            & (_theta(qp) <= th_hi)
            & (_angle(qm, k) >= sep)
            & (_angle(qp, k) >= sep)
        )
        q2 = S - 2 * SQRT_S * omega
        beta = np.sqrt(1 - 4 * M_ELECTRON**2 / q2)
        # dPhi3 = omega/(16 pi^2 sqrt s) dOmega_g * 2 sqrt(s) domega/(2 pi) * beta/(32 pi^2) dOmega*
        vol = (4 * math.pi * c_g) * (4 * math.pi) * math.log(e_max / e_min)
        dphi3 = omega / (16 * math.pi**2 * SQRT_S) * 2 * SQRT_S * omega / (2 * math.pi)
        dphi3 = dphi3 * beta / (32 * math.pi**2) * vol
        vals.append(np.where(ok, me2 * dphi3 / (2 * S), 0.0) * GEV2_TO_FB)
    f = np.concatenate(vals)
    flat, flat_err = f.mean(), f.std() / math.sqrt(len(f))
    res = qed.eegamma_chunk({}, 400_000, 5)
    assert res.sigma_fb == pytest.approx(flat, abs=4 * math.hypot(flat_err, res.sigma_err_fb))
