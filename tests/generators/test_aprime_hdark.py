"""Tests of the dark Higgsstrahlung generator e+e- -> A'(-> mu+ mu-) h': the matrix element
against an explicit Dirac-matrix helicity sum, the Born cross section of the 2 -> 3 matrix
element against the analytic formula, the A' polar-angle and muon helicity-angle distributions,
the ISR luminosity, cross section and energy-loss spectra against independent integrations, the
events, the files and the input checks."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from scipy.integrate import quad

from zprime._util import chunk_rng
from zprime.errors import ConfigError
from zprime.generators import aprime_hdark as G
from zprime.generators.isr import beta_isr, sample_energy_loss, structure_function
from zprime.io.events import read_events, read_metadata, validate_generator_events
from zprime.physics import dirac as D
from zprime.physics.constants import (
    ALPHA_0,
    INVISIBLE_PDG,
    M_MUON,
    PDG_DARK_HIGGS,
    PDG_DARK_PHOTON,
    SQRT_S,
)
from zprime.physics.constants import S as S_NOM
from zprime.physics.dark_higgs import sigma_born_fb
from zprime.physics.kinematics import lab_to_cm

BEAMS_LAB = np.array([11.0, 0.0, 0.0, 3.0])


# --------------------------------------------------------------------------- helpers
def _random_lorentz(rng: np.random.Generator) -> np.ndarray:
    """A random Lorentz transformation (rotation, then a boost up to beta = 0.6)."""
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    b = rng.uniform(-0.6, 0.6, 3)
    gam = 1.0 / math.sqrt(1.0 - b @ b)
    lam = np.eye(4)
    lam[0, 0] = gam
    lam[0, 1:] = lam[1:, 0] = gam * b
    lam[1:, 1:] += (gam - 1.0) * np.outer(b, b) / (b @ b)
    return lam @ np.block([[np.eye(1), np.zeros((1, 3))], [np.zeros((3, 1)), rot]])


def _points(rng: np.random.Generator, n: int, rs: float, ma: float, mh: float):
    """Phase-space points (p1, p2, k1, k2, kh) in the c.m. frame, angles uniform."""
    h, _ = G._hard(np.full(n, rs), ma, mh, rng.random((n, 5)), flat_cos=True)
    p1 = np.tile([rs / 2, 0.0, 0.0, rs / 2], (n, 1))
    p2 = np.tile([rs / 2, 0.0, 0.0, -rs / 2], (n, 1))
    return p1, p2, h.k1, h.k2, h.kh


def _boost_to_rest(p: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Four-momenta ``p`` in the rest frame of ``frame`` (both (n, 4))."""
    m = np.sqrt(D.minkowski_dot(frame, frame))
    b = frame[:, 1:] / frame[:, :1]
    b2 = np.sum(b * b, axis=1)
    gam = frame[:, 0] / m
    bp = np.sum(b * p[:, 1:], axis=1)
    out = np.empty_like(p)
    out[:, 0] = gam * (p[:, 0] - bp)
    out[:, 1:] = p[:, 1:] + (((gam - 1.0) * bp / b2) - gam * p[:, 0])[:, None] * b
    return out


def me2_dirac(p1, p2, k1, k2, ma: float, *, alpha: float = ALPHA_0, full: bool = True):
    """Spin-averaged |M|^2 (A' Breit-Wigner stripped) by an explicit helicity sum.

    e-(p1) e+(p2) -> A'*(P): ``vbar(p2) gamma^a u(p1)``, s-channel numerator
    ``-g + P P / M^2`` (``full=False``: ``-g`` only), h'A'A' vertex ``2 g_D M g``, on-shell A'
    polarisation sum built from :func:`zprime.physics.dirac.polarization_vector` (which is
    ``-g + q q / M^2``), A' -> mu-(k1) mu+(k2): ``ubar(k1) gamma^b v(k2)``. eps = alpha_D = 1.
    """
    e2 = 4.0 * math.pi * alpha
    gd = math.sqrt(4.0 * math.pi)
    big_p = p1 + p2
    q = k1 + k2
    s = D.minkowski_dot(big_p, big_p)
    pols = [D.polarization_vector(q, ma, h) for h in (-1, 0, 1)]
    total = np.zeros(len(p1))
    for h1, h2, h3, h4 in itertools.product((-1, 1), repeat=4):
        je = D.current(D.dirac_bar(D.v_spinor(p2, 0.0, h2)), D.u_spinor(p1, 0.0, h1))
        jm = D.current(D.dirac_bar(D.u_spinor(k1, M_MUON, h3)), D.v_spinor(k2, M_MUON, h4))
        # J_e^a (-g_ab + P_a P_b / M^2): a vector with a lower index, written with an upper one
        x = -je
        if full:
            x = x + (D.contract(je, big_p) / ma**2)[:, None] * big_p
        amp = sum(D.contract(x, eps) * D.contract(np.conj(eps), jm) for eps in pols)
        total = total + np.abs(amp) ** 2
    coupling = e2 * e2 * gd * gd * 4.0 * ma * ma / (s - ma * ma) ** 2
    return 0.25 * coupling * total


ORACLE_CASES = [
    (SQRT_S, 4.0, 0.5),
    (SQRT_S, 10.0, 0.3),  # close to threshold
    (SQRT_S, 6.0, 4.5),  # M_A' + M_h' = 10.5 GeV
    (SQRT_S, 2.0, 0.0),  # massless h'
    (SQRT_S, 0.25, 1e-3),  # A' just above 2 m_mu
    (5.0, 3.0, 1.9),  # a reduced c.m. energy (after ISR)
]


# --------------------------------------------------------------------------- matrix element
@pytest.mark.parametrize(("rs", "ma", "mh"), ORACLE_CASES)
def test_me_matches_dirac_oracle(rng: np.random.Generator, rs: float, ma: float, mh: float):
    p1, p2, k1, k2, _ = _points(rng, 64, rs, ma, mh)
    lam = _random_lorentz(rng)
    p1, p2, k1, k2 = (v @ lam.T for v in (p1, p2, k1, k2))
    oracle = me2_dirac(p1, p2, k1, k2, ma)
    analytic = G.matrix_element_squared(p1, p2, k1, k2, ma)
    np.testing.assert_allclose(analytic, oracle, rtol=1e-10)
    assert np.all(analytic > 0.0)
    # couplings: |M|^2 ~ alpha^2 eps^4 alpha_D
    np.testing.assert_allclose(
        G.matrix_element_squared(p1, p2, k1, k2, ma, alpha=0.01, eps=0.1, alpha_d=0.3),
        analytic * (0.01 / ALPHA_0) ** 2 * 1e-4 * 0.3,
        rtol=1e-12,
    )


@pytest.mark.parametrize(("rs", "ma", "mh"), ORACLE_CASES[:3])
def test_propagator_momentum_terms_vanish(
    rng: np.random.Generator, rs: float, ma: float, mh: float
) -> None:
    """The P P / M^2 (s channel) and q q / M^2 (A') numerator terms vanish on the conserved
    currents: J_e . P = 0 (massless electrons) and J_mu . q = 0 (ubar(k1) qslash v(k2) = 0)."""
    p1, p2, k1, k2, _ = _points(rng, 32, rs, ma, mh)
    for h1, h2, h3, h4 in itertools.product((-1, 1), repeat=4):
        je = D.current(D.dirac_bar(D.v_spinor(p2, 0.0, h2)), D.u_spinor(p1, 0.0, h1))
        jm = D.current(D.dirac_bar(D.u_spinor(k1, M_MUON, h3)), D.v_spinor(k2, M_MUON, h4))
        norm_e = np.sqrt(np.sum(np.abs(je) ** 2, axis=1)) * rs
        norm_m = np.sqrt(np.sum(np.abs(jm) ** 2, axis=1)) * ma
        assert np.all(np.abs(D.contract(je, p1 + p2)) <= 1e-13 * norm_e)
        assert np.all(np.abs(D.contract(jm, k1 + k2)) <= 1e-13 * norm_m + 1e-13)
    np.testing.assert_allclose(
        me2_dirac(p1, p2, k1, k2, ma, full=False), me2_dirac(p1, p2, k1, k2, ma), rtol=1e-12
    )


def test_phase_space_momenta(rng: np.random.Generator) -> None:
    rs, ma, mh = 8.3, 3.1, 1.2
    p1, p2, k1, k2, kh = _points(rng, 500, rs, ma, mh)
    np.testing.assert_allclose(k1 + k2 + kh, p1 + p2, atol=1e-12)
    np.testing.assert_allclose(D.minkowski_dot(k1, k1), M_MUON**2, atol=1e-11)
    np.testing.assert_allclose(D.minkowski_dot(k2, k2), M_MUON**2, atol=1e-11)
    np.testing.assert_allclose(D.minkowski_dot(kh, kh), mh**2, atol=1e-11)
    np.testing.assert_allclose(D.minkowski_dot(k1 + k2, k1 + k2), ma**2, rtol=1e-12)


@pytest.mark.parametrize(("ma", "mh"), [(0.3, 0.1), (4.0, 0.5), (9.0, 1.0)])
def test_spin_weight_mean_and_bound(ma: float, mh: float) -> None:
    """r = T/<T> averages to 1 over the decay angles at every A' direction, and never exceeds
    its analytic bound 1 / (1 - b^2/3) (which it nearly reaches)."""
    rng = np.random.default_rng(7)
    n_dir, n_dec = 12, 4096
    u_dir = rng.random((n_dir, 3))
    means = []
    r_all = []
    for k in range(n_dir):
        x = np.empty((n_dec, 5))
        x[:, :3] = u_dir[k]
        x[:, 1] = u_dir[k, 1]
        x[:, 3:] = rng.random((n_dec, 2))
        h, _ = G._hard(np.full(n_dec, SQRT_S), ma, mh, x, flat_cos=True)
        means.append(h.r.mean())
        r_all.append(h.r)
    # the decay average of r is a quadratic form in the decay direction: 4096 points give 1e-2
    np.testing.assert_allclose(means, 1.0, atol=0.03)
    r_max = G._r_max(ma)
    r = np.concatenate(r_all)
    assert r.max() <= r_max * (1 + 1e-12)
    assert r.max() > 0.97 * r_max


# --------------------------------------------------------------------------- Born cross section
BORN_TABLE = [  # the (M_A', M_h') points (GeV) of the table in the dark-Higgsstrahlung notes
    (2.0, 0.0),
    (4.0, 0.5),
    (4.0, 3.0),
    (6.0, 1.0),
    (6.0, 4.0),
    (8.0, 1.0),
    (8.0, 2.0),
    (9.7, 0.5),
    (10.0, 0.3),
]
BORN_EXTRA = [
    (6.0, 4.55),  # 0.033 GeV below threshold
    (10.3, 0.27),  # 0.013 GeV below threshold
    (4.0, 0.0),
    (1.0, 1e-4),
    (0.25, 0.0),  # M_A' just above 2 m_mu
    (0.5, 0.45),
]


@pytest.mark.parametrize(("ma", "mh"), BORN_TABLE + BORN_EXTRA, ids=lambda v: f"{v:g}")
def test_born_mc_matches_formula(ma: float, mh: float) -> None:
    """The 2 -> 3 NWA matrix element integrated over phase space (randomised QMC) equals the
    Batell-Pospelov-Ritz formula (issue 17: to 0.1%; it does to ~1e-5, the MC precision)."""
    mc = G.born_cross_section_mc(ma, mh, seed=3)
    born = sigma_born_fb(ma, mh)
    assert mc.error_fb < 2e-5 * born
    assert abs(mc.sigma_fb / born - 1.0) < 1e-3
    assert abs(mc.sigma_fb - born) < 5.0 * mc.error_fb + 1e-6 * born
    # the generator's Born sigma is the formula
    assert G.sigma_fb(ma, mh, isr=False) == (pytest.approx(born, rel=1e-12), 0.0)


def test_vectorised_born_matches_physics_module() -> None:
    rng = np.random.default_rng(4)
    ma = rng.uniform(0.22, 10.3, 200)
    mh = rng.uniform(0.0, 1.0, 200) * ma
    rs = rng.uniform(0.0, 1.0, 200) * (SQRT_S - ma - mh) + ma + mh + 1e-9
    mine = [
        G._sigma_born(np.array([r * r]), a, h, ALPHA_0)[0]
        for a, h, r in zip(ma, mh, rs, strict=True)
    ]
    ref = [sigma_born_fb(a, h, sqrt_s=r) for a, h, r in zip(ma, mh, rs, strict=True)]
    np.testing.assert_allclose(mine, ref, rtol=1e-9)


def test_width_mumu() -> None:
    m = 3.0
    r = M_MUON**2 / m**2
    expected = ALPHA_0 * 1e-4 * m / 3 * (1 + 2 * r) * math.sqrt(1 - 4 * r)
    assert G.width_mumu(m, eps=1e-2) == pytest.approx(expected, rel=1e-14)
    assert G.width_mumu(2 * M_MUON) == 0.0


# --------------------------------------------------------------------------- angular distributions
def _cm_momenta(events: ak.Array, pdg: int) -> np.ndarray:
    p = events.particles[events.particles.pdg == pdg]
    lab = np.column_stack([ak.to_numpy(ak.flatten(p[f])) for f in ("e", "px", "py", "pz")])
    return lab_to_cm(lab)


def _chi2(counts: np.ndarray, prob: np.ndarray) -> float:
    expected = prob / prob.sum() * counts.sum()
    return float(np.sum((counts - expected) ** 2 / expected))


@pytest.fixture(scope="module", params=[(4.0, 0.5), (9.0, 1.0), (0.5, 0.2)], ids=str)
def born_sample(request: pytest.FixtureRequest) -> tuple[float, float, ak.Array]:
    ma, mh = request.param
    gen = G.AprimeHdarkGenerator(ma, mh, isr=False, seed=5)
    return ma, mh, gen.generate(60_000, np.random.default_rng(21)).events


def test_aprime_polar_angle(born_sample: tuple[float, float, ak.Array]) -> None:
    """dsigma/dcos(theta) of the A' in the c.m. frame ~ lambda sin^2(theta) + 8 M^2 / s."""
    ma, mh, ev = born_sample
    q = _cm_momenta(ev, 13) + _cm_momenta(ev, -13)
    cos = q[:, 3] / np.linalg.norm(q[:, 1:], axis=1)
    edges = np.linspace(-1.0, 1.0, 21)
    lam = (1 - (ma + mh) ** 2 / S_NOM) * (1 - (ma - mh) ** 2 / S_NOM)
    cdf = lam * (edges - edges**3 / 3) + 8 * ma**2 / S_NOM * edges
    chi2 = _chi2(np.histogram(cos, edges)[0], np.diff(cdf))
    assert chi2 < 45.3  # 19 degrees of freedom, p = 7e-4
    if lam > 8 * ma**2 / S_NOM:  # the sin^2 part dominates: far from flat
        assert _chi2(np.histogram(cos, edges)[0], np.ones(20)) > 1000.0


def test_muon_helicity_angle(born_sample: tuple[float, float, ak.Array]) -> None:
    """cos(theta*) of the mu- in the A' rest frame against the A' direction (c.m. frame):
    f_L (1 - b^2 cos^2) + (1 - f_L)(1 - b^2 sin^2 / 2), f_L = E^2 / (E^2 + 2 M^2)."""
    ma, mh, ev = born_sample
    k1 = _cm_momenta(ev, 13)
    q = k1 + _cm_momenta(ev, -13)
    k1_rest = _boost_to_rest(k1, q)
    cos = np.sum(k1_rest[:, 1:] * q[:, 1:], axis=1) / (
        np.linalg.norm(k1_rest[:, 1:], axis=1) * np.linalg.norm(q[:, 1:], axis=1)
    )
    e_a = (S_NOM + ma**2 - mh**2) / (2 * SQRT_S)
    f_long = e_a**2 / (e_a**2 + 2 * ma**2)
    b2 = 1 - 4 * M_MUON**2 / ma**2
    edges = np.linspace(-1.0, 1.0, 21)
    cdf = f_long * (edges - b2 * edges**3 / 3) + (1 - f_long) * (
        edges - b2 / 2 * (edges - edges**3 / 3)
    )
    counts = np.histogram(cos, edges)[0]
    assert _chi2(counts, np.diff(cdf)) < 45.3
    # the longitudinal fraction from the second moment: <c^2> = (1/3 - b^2 f/5 - b^2(1-f)/15 ...)
    c2 = np.mean(cos**2)
    norm_l, norm_t = 2 - 2 * b2 / 3, 2 - 2 * b2 / 3
    m2_l = (2 / 3 - 2 * b2 / 5) / norm_l
    m2_t = (2 / 3 - b2 / 2 * (2 / 3 - 2 / 5)) / norm_t
    f_fit = (c2 - m2_t) / (m2_l - m2_t)
    err = np.std(cos**2) / math.sqrt(len(cos)) / abs(m2_l - m2_t)
    assert abs(f_fit - f_long) < 4 * err
    if ma < 1.0:  # M_A'^2 / s -> 0: the A' is longitudinal
        assert f_long > 0.97


# --------------------------------------------------------------------------- ISR
def test_isr_luminosity_normalised_and_matches_convolution() -> None:
    b = beta_isr(S_NOM)

    def lum(v: float) -> float:
        return float(G.isr_luminosity(np.array([v]), S_NOM)[0])

    lo = quad(lambda y: lum(y ** (1 / b)) * y ** (1 / b - 1) / b, 0, 0.01**b, limit=200)[0]
    hi = quad(lum, 0.01, 1.0, limit=400)[0]
    assert lo + hi == pytest.approx(1.0, abs=1e-9)
    # L(z) against a direct convolution with zprime.generators.isr.structure_function: twice the
    # integral over x1 in (sqrt(z), 1) (symmetry x1 <-> z/x1); D(x1) split into its
    # (1 - x1)^(beta/2 - 1) part, integrated with quad's algebraic weight, and the regular rest
    a = b / 2 - 1
    for v in (1e-4, 0.05, 0.5, 0.97):
        z = 1.0 - v

        def d_other(x1: float, z: float = z) -> float:
            return float(structure_function(z / x1, S_NOM)) / x1

        lo = math.sqrt(z)
        sing = quad(
            lambda x: 0.5 * b * (1 + 0.375 * b) * d_other(x),
            lo,
            1.0,
            weight="alg",
            wvar=(0.0, a),
            epsabs=0.0,
            epsrel=1e-13,
            limit=200,
        )[0]
        reg = quad(lambda x: -0.25 * b * (1 + x) * d_other(x), lo, 1.0, epsabs=0.0, epsrel=1e-13)[0]
        assert lum(v) == pytest.approx(2 * (sing + reg), rel=1e-11)
    x = np.array([1e-12, 1e-6, 0.3, 0.9, 0.999999])
    np.testing.assert_allclose(G._d_of_v(1 - x, b), structure_function(x, S_NOM), rtol=1e-9)


def _isr_reference(ma: float, mh: float, n: int, seed: int) -> dict[str, np.ndarray]:
    """Weighted ISR points from the per-leg sampling of zprime.generators.isr (independent of
    the generator's proposal): w = w1 w2 sigma_Born(s')."""
    rng = np.random.default_rng(seed)
    v1, w1 = sample_energy_loss(rng.random(n), S_NOM)
    v2, w2 = sample_energy_loss(rng.random(n), S_NOM)
    s_hat = (1 - v1) * (1 - v2) * S_NOM
    open_ = s_hat > (ma + mh) ** 2
    w = np.zeros(n)
    w[open_] = w1[open_] * w2[open_] * G._sigma_born(s_hat[open_], ma, mh, ALPHA_0)
    return {"v1": v1, "v": 1 - (1 - v1) * (1 - v2), "w": w}


@pytest.mark.parametrize(("ma", "mh"), [(6.0, 1.0), (4.0, 0.05), (0.6, 0.3)])
def test_isr_sigma_matches_independent_mc(ma: float, mh: float) -> None:
    ref = _isr_reference(ma, mh, 2_000_000, 8)
    mean, err = ref["w"].mean(), ref["w"].std() / math.sqrt(len(ref["w"]))
    res = G.sigma_fb(ma, mh)
    assert res.error_fb < 1e-7 * res.sigma_fb
    assert abs(res.sigma_fb - mean) < 4 * err
    assert err < 5e-3 * mean


@pytest.mark.parametrize(("ma", "mh"), [(4.0, 0.05), (0.6, 0.3)])
def test_isr_spectra_match_weighted_reference(ma: float, mh: float) -> None:
    """The unweighted events' total energy loss v = 1 - s'/s and the electron's share v1 (from
    the photon energy) follow the weighted reference: checks the proposal and the split."""
    gen = G.AprimeHdarkGenerator(ma, mh, seed=2, n_pilot=100_000)
    sample = gen.generate(40_000, np.random.default_rng(6))
    ev = sample.events
    v_gen = 1.0 - ak.to_numpy(ev.sqrt_s_hat) ** 2 / S_NOM
    ph = ev.particles[ev.particles.pdg == 22]
    lab = np.column_stack([ak.to_numpy(ak.flatten(ph[f])) for f in ("e", "px", "py", "pz")])
    cm = lab_to_cm(lab)
    counts = ak.to_numpy(ak.num(ph))
    event_of = np.repeat(np.arange(len(ev)), counts)
    v1_gen = np.zeros(len(ev))
    from_e = cm[:, 3] > 0
    v1_gen[event_of[from_e]] = cm[from_e, 0] / (SQRT_S / 2)
    ref = _isr_reference(ma, mh, 1_000_000, 9)
    v_thr = 1 - (ma + mh) ** 2 / S_NOM
    for name, x_gen, x_ref, edges in (
        ("v", v_gen, ref["v"], np.concatenate([[0], np.geomspace(1e-8, v_thr, 15)])),
        ("v1", v1_gen, ref["v1"], np.concatenate([[0], np.geomspace(1e-8, 1, 15)])),
    ):
        h_gen = np.histogram(x_gen, edges)[0]
        h_ref = np.histogram(x_ref, edges, weights=ref["w"])[0]
        h_ref2 = np.histogram(x_ref, edges, weights=ref["w"] ** 2)[0]
        frac = h_gen / len(x_gen)
        tot = ref["w"].sum()
        var = frac * (1 - frac) / len(x_gen) + h_ref2 / tot**2
        pull = (frac - h_ref / tot) / np.sqrt(np.where(var > 0, var, 1.0))
        assert np.max(np.abs(pull)) < 4.5, (name, pull)
        assert np.sum(pull**2) < 40.0, (name, pull)  # 15 bins
    # the mean of the trial weights is an independent MC estimate of sigma
    mean = sample.sum_weights / sample.n_trials
    err = math.sqrt((sample.sum_weights2 / sample.n_trials - mean**2) / sample.n_trials)
    assert abs(mean - gen.sigma_fb) < 4 * err
    assert sample.overweight_fraction == 0.0


def test_isr_cross_section_grows_as_mh_goes_to_zero() -> None:
    """Radiative return toward an on-shell A'* with a soft h': sigma_ISR / sigma_Born grows like
    ln(1/M_h') (0.546 per decade at M_A' = 4 GeV, resolved down to 1e-12 GeV); at M_h' = 0 it
    diverges, hence the ConfigError below MIN_HDARK_ISR_GEV."""
    masses = (1e-1, 1e-2, 1e-3, 1e-6, 1e-9, 1e-12)
    # below MIN_HDARK_ISR_GEV through the quadrature itself (sigma_fb refuses such masses)
    ratios = [
        G._IsrProposal(4.0, mh, SQRT_S, ALPHA_0).sigma_fb / sigma_born_fb(4.0, mh) for mh in masses
    ]
    assert ratios[3] == G.sigma_fb(4.0, 1e-6).sigma_fb / sigma_born_fb(4.0, 1e-6)
    assert ratios[0] > 1.0
    steps = np.diff(ratios) / np.diff(np.log10(masses))
    np.testing.assert_allclose(steps[1:], -0.5463, rtol=2e-3)  # logarithmic
    G.sigma_fb(4.0, G.MIN_HDARK_ISR_GEV)
    with pytest.raises(ConfigError, match=r"M_h' = 0\.0 GeV with ISR"):
        G.sigma_fb(4.0, 0.0)
    with pytest.raises(ConfigError, match=r"M_h' = 1e-07 GeV with ISR: below 1e-06 GeV"):
        G.AprimeHdarkGenerator(4.0, 1e-7)


# --------------------------------------------------------------------------- events and files
def _p4(events: ak.Array, pdg: int) -> np.ndarray:
    p = events.particles[events.particles.pdg == pdg]
    return np.column_stack([ak.to_numpy(ak.flatten(p[f])) for f in ("e", "px", "py", "pz")])


def _sum_p4(events: ak.Array) -> np.ndarray:
    p = events.particles
    return np.column_stack([ak.to_numpy(ak.sum(p[f], axis=1)) for f in ("e", "px", "py", "pz")])


@pytest.mark.parametrize("isr", [True, False])
def test_events_kinematics(isr: bool) -> None:
    ma, mh = 3.0, 1.0
    gen = G.AprimeHdarkGenerator(ma, mh, isr=isr, seed=1, n_pilot=50_000)
    sample = gen.generate(5000, np.random.default_rng(2), first_event=10)
    ev = sample.events
    validate_generator_events(ev)
    np.testing.assert_array_equal(ak.to_numpy(ev.event), np.arange(10, 5010))
    np.testing.assert_allclose(_sum_p4(ev), np.tile(BEAMS_LAB, (len(ev), 1)), atol=1e-9)
    mu_m, mu_p, h = _p4(ev, 13), _p4(ev, -13), _p4(ev, PDG_DARK_HIGGS)
    assert len(mu_m) == len(mu_p) == len(h) == len(ev)
    np.testing.assert_allclose(D.minkowski_dot(mu_m, mu_m), M_MUON**2, atol=1e-9)
    np.testing.assert_allclose(D.minkowski_dot(mu_p, mu_p), M_MUON**2, atol=1e-9)
    np.testing.assert_allclose(D.minkowski_dot(h, h), mh**2, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(D.minkowski_dot(mu_m + mu_p, mu_m + mu_p)), ma, rtol=1e-9)
    pdgs = set(np.unique(ak.to_numpy(ak.flatten(ev.particles.pdg))))
    assert PDG_DARK_HIGGS in INVISIBLE_PDG
    assert PDG_DARK_PHOTON not in pdgs  # the A' decays in the generator
    np.testing.assert_allclose(ak.to_numpy(ev.m_aprime), ma)
    np.testing.assert_allclose(ak.to_numpy(ev.m_hdark), mh)
    rs_hat = ak.to_numpy(ev.sqrt_s_hat)
    assert ak.sum(ev.weight) == pytest.approx(gen.sigma_fb, rel=1e-12)
    if isr:
        assert pdgs == {13, -13, PDG_DARK_HIGGS, 22}
        gam = _p4(ev, 22)
        np.testing.assert_array_equal(gam[:, 1:3], 0.0)
        assert len(gam) > 1.9 * len(ev)
        assert np.all(rs_hat > ma + mh)
        assert np.all(rs_hat <= SQRT_S)
        assert sample.overweight_fraction == 0.0
        assert 0.3 < sample.efficiency < 1.0
    else:
        assert pdgs == {13, -13, PDG_DARK_HIGGS}
        rec = BEAMS_LAB - mu_m - mu_p  # the recoil mass is M_h'
        np.testing.assert_allclose(np.sqrt(D.minkowski_dot(rec, rec)), mh, rtol=1e-7)
        np.testing.assert_allclose(rs_hat, SQRT_S)
        assert sample.efficiency == pytest.approx(1 / G._r_max(ma), rel=0.05)
    # no charge asymmetry at this order; the azimuth is uniform
    cos = {}
    for c in (13, -13):
        p = _cm_momenta(ev, c)
        cos[c] = p[:, 3] / np.linalg.norm(p[:, 1:], axis=1)
    assert abs(np.mean(cos[13]) - np.mean(cos[-13])) < 0.05
    assert abs(np.mean(h[:, 1])) < 4 * np.std(h[:, 1]) / math.sqrt(len(h))


def test_write_reproducible_and_worker_independent(tmp_path: Path) -> None:
    kw = {"seed": 42, "chunk_size": 700, "progress": False}
    p1 = G.write_aprime_hdark(5.0, 2.0, 2000, tmp_path / "a", executor="serial", **kw)
    with ThreadPoolExecutor(2) as pool:
        p2 = G.write_aprime_hdark(5.0, 2.0, 2000, tmp_path / "b", executor=pool, workers=2, **kw)
    assert p1.name == "aprime_hdark_MA5.0000_MH2.0000.parquet" == G.aprime_hdark_file_name(5, 2)
    a, b = read_events(p1), read_events(p2)
    assert ak.to_list(a[:3]) == ak.to_list(b[:3])
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(a.particles.px)), ak.to_numpy(ak.flatten(b.particles.px))
    )
    np.testing.assert_array_equal(ak.to_numpy(a.event), np.arange(2000))
    meta = read_metadata(p1)
    assert meta == {**read_metadata(p2), "provenance": meta["provenance"]}
    assert ak.sum(a.weight) == pytest.approx(meta["sigma_fb"], rel=1e-12)
    assert meta["sigma_fb"] == pytest.approx(G.sigma_fb(5.0, 2.0).sigma_fb, rel=1e-12)
    assert 0 < meta["sigma_error_fb"] < 1e-6 * meta["sigma_fb"]
    assert abs(meta["sigma_mc_fb"] - meta["sigma_fb"]) < 4 * meta["sigma_mc_error_fb"]
    for key, value in (("m_aprime_gev", 5.0), ("m_hdark_gev", 2.0), ("n_events", 2000)):
        assert meta[key] == value
    assert meta["seed"] == 42
    assert meta["isr"] is True
    assert 0.3 < meta["unweighting_efficiency"] < 1
    assert meta["overweight_fraction"] == 0
    assert "git" in meta["provenance"]
    # a chunk regenerated on its own is identical (its seed is chunk_rng(seed, 2, index))
    gen = G.AprimeHdarkGenerator(
        5.0, 2.0, seed=int(np.random.SeedSequence([42, 1]).generate_state(1)[0])
    )
    chunk = gen.generate(700, chunk_rng(42, 2, 1), weight_fb=gen.sigma_fb / 2000, first_event=700)
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(chunk.events.particles.e)),
        ak.to_numpy(ak.flatten(a[700:1400].particles.e)),
    )


def test_write_with_worker_processes(tmp_path: Path) -> None:
    """The generator pickles into a local process pool (2 workers) and gives the serial file."""
    kw = {"seed": 3, "chunk_size": 400, "progress": False, "isr": False}
    p1 = G.write_aprime_hdark(2.0, 0.0, 1000, tmp_path / "a", workers=2, **kw)
    p2 = G.write_aprime_hdark(2.0, 0.0, 1000, tmp_path / "b", executor="serial", **kw)
    a, b = read_events(p1), read_events(p2)
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(a.particles.pz)), ak.to_numpy(ak.flatten(b.particles.pz))
    )
    assert read_metadata(p1)["sigma_fb"] == pytest.approx(sigma_born_fb(2.0, 0.0), rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"m_hdark": 4.0}, r"M_h' = 4\.0 GeV must be below M_A' = 4\.0"),
        ({"m_hdark": 4.5}, r"M_h' = 4\.5 GeV must be below"),
        ({"m_aprime": 9.0, "m_hdark": 2.0}, r"M_A' \+ M_h' = 11 GeV"),
        ({"m_aprime": 0.2, "m_hdark": 0.1}, r"M_A' = 0\.2 GeV must be above"),
        ({"m_aprime": -1.0}, r"M_A' = -1\.0 GeV"),
        ({"m_hdark": -0.5}, r"M_h' = -0\.5 GeV must be >= 0"),
        ({"m_aprime": float("nan")}, "M_A' must be finite, got nan"),
        ({"m_hdark": "x"}, "M_h' must be a number, got 'x'"),
        ({"m_hdark": 0.0}, "M_h' = 0.0 GeV with ISR"),
        ({"n_events": 0}, "n_events must be a positive integer, got 0"),
        ({"n_events": 2.5}, "n_events must be a positive integer, got 2.5"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
    ],
)
def test_bad_input(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"m_aprime": 4.0, "m_hdark": 1.0, "n_events": 10, **kwargs}
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match) as info:
        G.write_aprime_hdark(
            args["m_aprime"],
            args["m_hdark"],
            args["n_events"],
            out,
            seed=1,
            progress=False,
            **{k: v for k, v in kwargs.items() if k == "chunk_size"},
        )
    assert "\n" not in str(info.value)
    assert not out.exists() or not any(out.iterdir())
    if "n_events" not in kwargs and "chunk_size" not in kwargs:
        with pytest.raises(ConfigError, match=match):
            G.sigma_fb(args["m_aprime"], args["m_hdark"])
    assert G.sigma_fb(4.0, 0.0, isr=False).sigma_fb > 0.0  # M_h' = 0 is fine without ISR


@pytest.mark.slow
def test_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/bench_aprime_hdark_generator.py runs and prints its figures (small sizes)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_aprime_hdark_generator.py"
    spec = importlib.util.spec_from_file_location("bench_aprime_hdark_generator", path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    rates = mod.bench_events(100_000)
    mod.bench_grid(3, 5_000)
    out = capsys.readouterr().out
    assert "ratio dark Higgsstrahlung / Z' signal" in out
    assert rates["rate_mem"] > 0.0
