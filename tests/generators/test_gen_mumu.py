"""Tests of zprime.generators.mumu: e+e- -> mu+ mu- (gamma) with the exact O(alpha) hard photon.

The matrix element is checked against an independent oracle (the four Feynman diagrams with the
explicit Dirac matrices of zprime.physics.dirac, summed over the 32 helicity configurations), gauge
invariance, the FSR matrix element of the signal (e+e- -> mu mu Z' at M -> 0, g' = e) and the
soft-photon limit; the phase-space integral against a plain flat-phase-space Monte Carlo.
"""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
import pytest

from zprime.errors import ConfigError
from zprime.generators import mumu
from zprime.generators.isr import beta_isr
from zprime.physics import dirac
from zprime.physics.constants import ALPHA_0, GEV2_TO_FB, M_ELECTRON, M_MUON, SQRT_S
from zprime.physics.kinematics import cm_to_lab, lab_to_cm

P_BEAMS_CM_LAB = cm_to_lab(np.array([SQRT_S, 0.0, 0.0, 0.0]))

FILTER = {
    "enabled": True,
    "min_tracks": 2,
    "track_pt_min_gev": 0.3,
    "theta_min_deg": 17.0,
    "theta_max_deg": 150.0,
    "prong_theta_deg": [35.0, 122.0],
    "recoil_pt_cm_min_gev": 0.4,
    "recoil_theta_max_deg": 128.0,
}


def _settings(**options: object) -> dict:
    return {
        "name": "mumu",
        "filter": FILTER,
        "normalisation": "reference",
        "xsec_ref_fb": 1.148e6,
        "options": dict(options),
    }


def _boost_to(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Boost p (n, 4) from the rest frame of q (n, 4) into the frame where q is given."""
    mass = np.sqrt(q[:, 0] ** 2 - np.sum(q[:, 1:] ** 2, axis=-1))
    bv = q[:, 1:] / q[:, :1]
    g = q[:, 0] / mass
    bp = np.sum(bv * p[:, 1:], axis=-1)
    b2 = np.sum(bv * bv, axis=-1)
    out = np.empty_like(p)
    out[:, 0] = g * (p[:, 0] + bp)
    coef = np.where(b2 > 0, (g - 1.0) * bp / np.where(b2 > 0, b2, 1.0), 0.0) + g * p[:, 0]
    out[:, 1:] = p[:, 1:] + coef[:, None] * bv
    return out


def _three_body(omega: np.ndarray, rng: np.random.Generator, w: float = SQRT_S):
    """Beams and mu-, mu+, gamma in the c.m. frame: photon of energy omega, random angles."""
    n = omega.size
    c = rng.uniform(-1, 1, n)
    ph = rng.uniform(0, 2 * math.pi, n)
    s_ = np.sqrt(1 - c * c)
    kh = np.stack([s_ * np.cos(ph), s_ * np.sin(ph), c], -1)
    k = np.concatenate([omega[:, None], omega[:, None] * kh], -1)
    big_q = np.concatenate([(w - omega)[:, None], -omega[:, None] * kh], -1)
    mass = np.sqrt(big_q[:, 0] ** 2 - omega**2)
    ps = np.sqrt(mass * mass / 4 - M_MUON**2)
    c2 = rng.uniform(-1, 1, n)
    p2_ = rng.uniform(0, 2 * math.pi, n)
    s2 = np.sqrt(1 - c2 * c2)
    nn = np.stack([s2 * np.cos(p2_), s2 * np.sin(p2_), c2], -1)
    a = np.concatenate([(mass / 2)[:, None], ps[:, None] * nn], -1)
    b = a.copy()
    b[:, 1:] *= -1
    p1 = np.tile([w / 2, 0, 0, w / 2], (n, 1))
    p2 = np.tile([w / 2, 0, 0, -w / 2], (n, 1))
    return p1, p2, _boost_to(a, big_q), _boost_to(b, big_q), k


def _dirac_me2(p1, p2, q1, q2, k, *, which="all", eps_override=None):
    """Spin-averaged |M|^2 of the four diagrams with explicit Dirac matrices (the oracle)."""
    m = M_MUON
    e = math.sqrt(4 * math.pi * ALPHA_0)
    sp = dirac.minkowski_dot(q1 + q2, q1 + q2)
    s = dirac.minkowski_dot(p1 + p2, p1 + p2)
    s_e1 = dirac.fermion_propagator(p1 - k, 0.0)
    s_e2 = dirac.fermion_propagator(k - p2, 0.0)
    s_m1 = dirac.fermion_propagator(q1 + k, m)
    s_m2 = dirac.fermion_propagator(-q2 - k, m)
    gam = dirac.GAMMA
    total = 0.0
    for h1, h2, h3, h4 in itertools.product((-1, 1), repeat=4):
        u1 = dirac.u_spinor(p1, 0.0, h1)
        v2b = dirac.dirac_bar(dirac.v_spinor(p2, 0.0, h2))
        u3b = dirac.dirac_bar(dirac.u_spinor(q1, m, h3))
        v4 = dirac.v_spinor(q2, m, h4)
        je = dirac.current(v2b, u1)
        jm = dirac.current(u3b, v4)
        for hk in (-1, 1) if eps_override is None else (0,):
            eps = (
                dirac.polarization_vector(k, 0.0, hk, conjugate=True)
                if eps_override is None
                else eps_override + 0j
            )
            es = dirac.slash(eps)
            li = np.stack(
                [
                    dirac.sandwich(v2b, es @ s_e2 @ gam[a] + gam[a] @ s_e1 @ es, u1)
                    for a in range(4)
                ],
                -1,
            )
            lf = np.stack(
                [
                    dirac.sandwich(u3b, es @ s_m1 @ gam[a] + gam[a] @ s_m2 @ es, v4)
                    for a in range(4)
                ],
                -1,
            )
            amp_i = dirac.contract(li, jm) / sp
            amp_f = dirac.contract(je, lf) / s
            amp = {"all": amp_i + amp_f, "isr": amp_i, "fsr": amp_f}[which]
            total = total + np.abs(amp) ** 2
    return e**6 * total / 4.0


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(7)
    omega = rng.uniform(0.05, 0.45 * SQRT_S, 40)
    return _three_body(omega, rng)


def test_me_matches_explicit_dirac(points):
    p1, p2, q1, q2, k = points
    ours = mumu.matrix_element_squared(p1, p2, q1, q2, k)
    ref = _dirac_me2(p1, p2, q1, q2, k)
    np.testing.assert_allclose(ours, ref, rtol=1e-8)
    isr, fsr, _ = mumu.matrix_element_squared(p1, p2, q1, q2, k, parts=True)
    np.testing.assert_allclose(isr, _dirac_me2(p1, p2, q1, q2, k, which="isr"), rtol=1e-8)
    np.testing.assert_allclose(fsr, _dirac_me2(p1, p2, q1, q2, k, which="fsr"), rtol=1e-8)


def test_gauge_invariance(points):
    p1, p2, q1, q2, k = points
    ref = _dirac_me2(p1, p2, q1, q2, k)
    ward = _dirac_me2(p1, p2, q1, q2, k, eps_override=k)
    assert np.all(ward <= 1e-20 * ref)
    # and a wrong relative sign between ISR and FSR would not be gauge invariant on its own,
    # but each part is: the ISR and FSR currents are conserved separately
    for which in ("isr", "fsr"):
        part = _dirac_me2(p1, p2, q1, q2, k, which=which, eps_override=k)
        assert np.all(part <= 1e-20 * ref)


def test_fsr_part_equals_signal_me_at_small_mass(points):
    from zprime.generators.signal import matrix_element_squared as signal_me2

    p1, p2, q1, q2, k = points
    _, fsr, _ = mumu.matrix_element_squared(p1, p2, q1, q2, k, parts=True)
    e = math.sqrt(4 * math.pi * ALPHA_0)
    sig = signal_me2(p1, p2, q1, q2, k, alpha=ALPHA_0, g=e)
    np.testing.assert_allclose(sig, fsr, rtol=1e-8)


def test_soft_photon_limit():
    rng = np.random.default_rng(3)
    p1, p2, q1, q2, k = _three_body(np.full(30, 1e-4), rng)
    me2 = mumu.matrix_element_squared(p1, p2, q1, q2, k)
    e2 = 4 * math.pi * ALPHA_0

    def d(a, b):
        return dirac.minkowski_dot(a, b)

    # eikonal current: incoming e- (charge -1), e+ (+1); outgoing mu- (-1), mu+ (+1)
    cur = -p1 / d(p1, k)[:, None] + p2 / d(p2, k)[:, None]
    cur = cur + q1 / d(q1, k)[:, None] - q2 / d(q2, k)[:, None]
    eikonal = -e2 * d(cur, cur)
    s = 2 * d(p1, p2)
    born = (
        8 * e2**2 / s**2 * (d(p1, q2) * d(p2, q1) + d(p1, q1) * d(p2, q2) + M_MUON**2 * d(p1, p2))
    )
    np.testing.assert_allclose(me2, eikonal * born, rtol=1e-3)


def test_sigma_sf_and_k():
    sig = mumu.sigma_sf(0.3)
    born = float(mumu.born_cross_section(SQRT_S**2)) * GEV2_TO_FB
    assert 1.2 * born < sig < 1.5 * born  # the ISR tail toward low s' raises the cross section
    info = mumu.describe(_settings())
    assert info["k_factor"] == pytest.approx(1.148e6 / sig)
    assert 0.0 < info["sigma_target_fb"] <= info["sigma_equivalent_fb"]
    assert info["sigma_hard_filtered_fb"] > info["sigma_target_fb"]
    assert info["br_weight"] == 1.0


def _plain_mc(opts: dict, n: int, rng: np.random.Generator) -> tuple[float, float]:
    """sigma_hard * K with flat sampling, written anew: SF energies through u, SF angles with
    t = 1 - b cos log-uniform, the matrix-element photon flat in energy and cos in the hard
    frame (p_T cut), muons flat; the p_T-ordering veto. The total needs only s_hat = Q^2."""
    s = SQRT_S**2
    e = SQRT_S / 2
    b = beta_isr(s)
    m_min, pt_min = opts["m_mumu_min_gev"], opts["pt_gamma_min_gev"]

    def sf(u):  # D(x) sampled through v = u^(2/b) (zprime.generators.isr convention), written anew
        v = u ** (2 / b)
        dens = 0.5 * b * v ** (0.5 * b - 1)
        dx = 0.5 * b * v ** (0.5 * b - 1) * (1 + 0.375 * b) - 0.25 * b * (2 - v)
        return v, dx / dens

    def angle(u):  # normalised density (1/t - (1 - bv^2)/(2t^2)) b / (L - bv) in cos
        eps = (M_ELECTRON / e) ** 2  # 1 - bv^2
        omb = eps / (1 + math.sqrt(1 - eps))
        bv = 1 - omb
        big_l = math.log((2 - omb) / omb)
        t = omb * np.exp(u * big_l)  # density in t: 1/(t L)
        dens_c = bv / (t * big_l)  # dt/dc = -b
        f = (1 / t - eps / (2 * t * t)) * bv / (big_l - bv)
        omc = (t - omb) / bv
        return omc, f / dens_c

    v1, w1 = sf(rng.random(n))
    v2, w2 = sf(rng.random(n))
    o1, a1 = angle(rng.random(n))
    o2, a2 = angle(rng.random(n))
    sn1, sn2 = np.sqrt(o1 * (2 - o1)), np.sqrt(o2 * (2 - o2))
    dphi = rng.uniform(0, 2 * math.pi, n)
    k1 = v1[:, None] * e * np.stack([np.ones(n), sn1, np.zeros(n), 1 - o1], -1)
    k2 = (
        v2[:, None] * e * np.stack([np.ones(n), sn2 * np.cos(dphi), sn2 * np.sin(dphi), o2 - 1], -1)
    )
    big = np.array([SQRT_S, 0, 0, 0]) - k1 - k2
    s_hat = big[:, 0] ** 2 - np.sum(big[:, 1:] ** 2, -1)
    okq = s_hat > m_min**2
    w = np.sqrt(np.where(okq, s_hat, 1.0))
    e_max = (w * w - m_min**2) / (2 * w)
    omega = rng.random(n) * (0.5 * w)  # flat in [0, W/2]
    c = rng.uniform(-1, 1, n)
    pt = omega * np.sqrt(1 - c * c)
    ph = rng.uniform(0, 2 * math.pi, n)
    s_ = np.sqrt(1 - c * c)
    kh = np.stack([s_ * np.cos(ph), s_ * np.sin(ph), c], -1)
    k = np.concatenate([omega[:, None], omega[:, None] * kh], -1)
    big_q = np.concatenate([(w - omega)[:, None], -omega[:, None] * kh], -1)
    q2m = w * w - 2 * w * omega
    veto = (v1 * e * sn1 > pt) | (v2 * e * sn2 > pt)
    ok = okq & (pt > pt_min) & (omega < e_max) & (q2m > m_min**2) & ~veto
    mass = np.sqrt(np.where(ok, q2m, 1.0))
    ps = np.sqrt(np.maximum(mass * mass / 4 - M_MUON**2, 0.0))
    c2 = rng.uniform(-1, 1, n)
    p2_ = rng.uniform(0, 2 * math.pi, n)
    s2 = np.sqrt(1 - c2 * c2)
    nn = np.stack([s2 * np.cos(p2_), s2 * np.sin(p2_), c2], -1)
    a = np.concatenate([(mass / 2)[:, None], ps[:, None] * nn], -1)
    bb = a.copy()
    bb[:, 1:] *= -1
    big_q[:, 0] = np.where(ok, big_q[:, 0], 2.0)
    big_q[:, 1:] = np.where(ok[:, None], big_q[:, 1:], 0.0)
    q1 = _boost_to(a, big_q)
    q2 = _boost_to(bb, big_q)
    p1 = np.zeros((n, 4))
    p2 = np.zeros((n, 4))
    p1[:, 0] = p1[:, 3] = p2[:, 0] = w / 2
    p2[:, 3] = -w / 2
    me2 = np.where(ok, mumu.matrix_element_squared(p1, p2, q1, q2, k), 0.0)
    beta = 2 * ps / mass
    # dPhi3 = omega/(16 pi^2 W) dOmega_g (2 W domega/(2 pi)) beta/(32 pi^2) dOmega*
    dphi3 = omega / (16 * math.pi**2 * w) * 4 * math.pi * (2 * w * 0.5 * w / (2 * math.pi))
    dphi3 = dphi3 * beta / (32 * math.pi**2) * 4 * math.pi
    k_factor = 1.148e6 / mumu.sigma_sf(m_min)
    f = w1 * w2 * a1 * a2 * me2 * dphi3 / (2 * w * w) * GEV2_TO_FB * k_factor
    return float(f.mean()), float(f.std() / math.sqrt(n))


def test_hard_cross_section_against_plain_mc():
    opts = {"pt_gamma_min_gev": 0.5, "m_mumu_min_gev": 1.0}
    full = mumu.resolve_options({"options": opts})
    plain, plain_err = _plain_mc(full, 600_000, np.random.default_rng(11))
    d = mumu.generate(200_000, np.random.default_rng(12), opts)
    ours = float(d["weight"].sum())
    ours_err = float(d["weight"].std() * math.sqrt(d["weight"].size))
    assert abs(ours - plain) < 3.0 * math.hypot(ours_err, plain_err), (ours, plain)
    assert plain_err < 0.03 * plain  # the comparison means something


def test_ll_angle_density_normalisation_and_sampling():
    e = SQRT_S / 2
    # integral over cos in [-1, 1], in t = 1 - b cos log-uniform (Gauss-Legendre), and the
    # smallest angles without cancellation
    x, wq = np.polynomial.legendre.leggauss(200)
    u = 0.5 * (x + 1)
    omc, opc, _ = mumu.sample_ll_angle(u, e)
    assert np.all(omc >= 0)
    assert np.all(opc >= 0)
    np.testing.assert_allclose(omc + opc, 2.0, rtol=1e-12)
    assert omc[0] < 1e-10
    assert omc[0] > 0
    eps = (M_ELECTRON / e) ** 2
    omb = eps / (1 + math.sqrt(1 - eps))
    big_l = math.log((2 - omb) / omb)
    t = omb + (1 - omb) * omc
    integral = float(np.sum(0.5 * wq * big_l * t * mumu.ll_angle_density(omc, e))) / (1 - omb)
    assert integral == pytest.approx(math.log(4 * e * e / M_ELECTRON**2) - 1, rel=1e-6)
    assert 2 * ALPHA_0 / math.pi * integral == pytest.approx(beta_isr(SQRT_S**2), rel=1e-6)
    # sampling: the weights average to 1 and reproduce the density in bins of log(1 - cos)
    rng = np.random.default_rng(4)
    omc, _, wt = mumu.sample_ll_angle(rng.random(400_000), e)
    assert wt.min() >= 0
    assert wt.max() < 1.06
    assert wt.mean() == pytest.approx(1.0, abs=0.005)
    edges = np.array([1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 0.1, 1.0, 2.0])
    h, _ = np.histogram(omc, edges, weights=wt / wt.size)
    for lo, hi, got in zip(edges[:-1], edges[1:], h, strict=True):
        xs, ws = np.polynomial.legendre.leggauss(60)
        z = np.log(lo) + 0.5 * (xs + 1) * (np.log(hi) - np.log(lo))
        ref = np.sum(
            0.5 * ws * (np.log(hi) - np.log(lo)) * np.exp(z) * mumu.ll_angle_density(np.exp(z), e)
        )
        assert got == pytest.approx(ref / integral, rel=0.03, abs=2e-3), (lo, hi)


def test_momentum_conservation_with_angled_isr_photons():
    d = mumu.generate(50_000, np.random.default_rng(21), {}, FILTER)
    ok = d["weight"] > 0
    p4 = d["p4"][ok]
    pdg = d["pdg"][ok]
    total = np.where((pdg != 0)[..., None], p4, 0.0).sum(axis=1)
    np.testing.assert_allclose(total, np.broadcast_to(P_BEAMS_CM_LAB, total.shape), atol=1e-9)
    m2 = p4[..., 0] ** 2 - np.sum(p4[..., 1:] ** 2, axis=-1)
    np.testing.assert_allclose(np.sqrt(m2[:, :2]), M_MUON, rtol=1e-9)
    assert np.all(np.abs(m2[:, 2:]) < 1e-9)
    # the structure-function photons have transverse momentum (not all along the beams)
    pt_isr = d["pt_isr"][ok]
    assert np.mean(pt_isr.max(axis=1) > 0.05) > 0.01
    assert np.all(np.hypot(p4[:, 3:, 1], p4[:, 3:, 2]) > 0.0)


def test_pt_ordering_veto():
    d = mumu.generate(100_000, np.random.default_rng(22), {}, FILTER)
    pt_me, pt_isr, w = d["pt_gamma_hard"], d["pt_isr"], d["weight"]
    harder = pt_isr.max(axis=1) > pt_me
    assert np.any(harder & d["vetoed"])  # the configuration is sampled, and vetoed
    assert np.all(w[harder] == 0.0)
    kept = w > 0
    assert np.all(pt_me[kept] > 0.1 * (1 - 1e-12))
    assert np.all(pt_isr[kept].max(axis=1) <= pt_me[kept])
    # what the filter's guarantee rests on: the recoil p_T against the muons never exceeds 3 x
    # the largest photon p_T (so events with all photons below pt_gamma_min stay below 3 pt_min)
    cm = lab_to_cm(d["p4"][kept])
    rec = np.where((d["pdg"][kept][:, 2:] != 0)[..., None], cm[:, 2:], 0.0).sum(axis=1)
    largest = np.maximum(pt_me[kept], pt_isr[kept].max(axis=1))
    assert np.all(np.hypot(rec[:, 1], rec[:, 2]) < 3.0 * largest)


def test_chunk_weights_sum_to_filtered_sigma_and_schema():
    settings = _settings()
    info = mumu.describe(settings)
    res = mumu.chunk(settings, 200_000, seed=5)
    ev = res.events
    total = float(ak.sum(ev.weight))
    assert total == pytest.approx(info["sigma_hard_filtered_fb"], rel=0.05)
    assert res.n_generated == 200_000
    assert set(ak.fields(ev)) >= {"event", "weight", "particles", "sqrt_s_hat", "e_gamma_hard_cm"}
    pdg = ak.to_numpy(ak.flatten(ev.particles.pdg))
    assert set(np.unique(pdg)) <= {13, -13, 22}
    assert np.all(ak.to_numpy(ak.sum(ev.particles.pdg == 13, axis=1)) == 1)
    # recoil p_T above the filter cut: the matrix-element photon has at least a third of it
    assert np.all(ak.to_numpy(ev.e_gamma_hard_cm) > 0.4 / 3.0)


def test_partial_unweighting():
    settings = _settings()
    info = mumu.describe(settings)
    w_t = info["sigma_equivalent_fb"] / 1_000_000  # the driver's N = 1e6
    s2 = dict(settings, target_weight_fb=w_t)
    n = 200_000
    res = mumu.chunk(s2, n, seed=9)
    w = ak.to_numpy(res.events.weight) * n / 1_000_000  # the driver's n_k / N
    assert w.min() >= w_t * (1 - 1e-9)
    plain = mumu.chunk(settings, n, seed=9)
    assert len(res.events) < len(plain.events)
    total = float(w.sum()) * 1_000_000 / n
    assert total == pytest.approx(info["sigma_hard_filtered_fb"], rel=0.06)


def test_deterministic():
    a = mumu.chunk(_settings(), 20_000, seed=3)
    b = mumu.chunk(_settings(), 20_000, seed=3)
    assert ak.to_list(a.events[:50]) == ak.to_list(b.events[:50])
    np.testing.assert_array_equal(ak.to_numpy(a.events.weight), ak.to_numpy(b.events.weight))
    c = mumu.chunk(_settings(), 20_000, seed=4)
    assert not np.array_equal(ak.to_numpy(a.events.event), ak.to_numpy(c.events.event))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"bogus": 1}, "options.bogus: unknown option"),
        ({"theta0_deg": 3.0}, "options.theta0_deg: unknown option"),
        ({"pt_gamma_min_gev": 0.0}, "options.pt_gamma_min_gev"),
        ({"pt_gamma_min_gev": 6.0}, "options.pt_gamma_min_gev"),
        ({"detected_photon_suppression": 0.0}, "options.detected_photon_suppression"),
        ({"detected_photon_suppression": 1.5}, "options.detected_photon_suppression"),
        ({"m_mumu_min_gev": 0.1}, "options.m_mumu_min_gev"),
        ({"pt_gamma_min_gev": "x"}, "must be a number"),
        ({"target_weight_fb": -1.0}, "options.target_weight_fb"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match) as err:
        mumu.describe(_settings(**options))
    assert "backgrounds.samples.mumu.options." in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("filt", "options"),
    [
        (None, {}),
        ({**FILTER, "enabled": False}, {}),
        ({**FILTER, "recoil_pt_cm_min_gev": None}, {}),
        ({**FILTER, "recoil_pt_cm_min_gev": 0.25}, {}),
        (FILTER, {"pt_gamma_min_gev": 0.2}),
    ],
)
def test_filter_must_cover_what_is_not_generated(filt, options):
    settings = dict(_settings(**options), filter=filt)
    for call in (lambda: mumu.describe(settings), lambda: mumu.chunk(settings, 10, seed=1)):
        with pytest.raises(ConfigError) as err:
            call()
        msg = str(err.value)
        assert "backgrounds.samples.mumu.filter.recoil_pt_cm_min_gev" in msg
        assert "backgrounds.samples.mumu.options.pt_gamma_min_gev" in msg
        assert "\n" not in msg
    ok = dict(_settings(pt_gamma_min_gev=0.1), filter={**FILTER, "recoil_pt_cm_min_gev": 0.3})
    mumu.check_filter(ok, mumu.resolve_options(ok))  # exactly 3 x pt_min is enough
