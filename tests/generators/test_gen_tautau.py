"""Tests of zprime.generators.tau_decays and zprime.generators.tautau.

The oracle of the spin physics is :mod:`zprime.physics.dirac`: squared amplitudes with explicit
Dirac
spinors of definite spin along x, y, z of the tau rest frame.
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

from zprime.errors import ConfigError
from zprime.generators import tau_decays as td
from zprime.generators import tautau as tt
from zprime.generators.filters import filter_particles
from zprime.physics import dirac as D
from zprime.physics.constants import M_TAU, P_BEAMS_LAB
from zprime.physics.kinematics import lab_to_cm

FILTER = {
    "enabled": True,
    "min_tracks": 2,
    "track_pt_min_gev": 0.3,
    "theta_min_deg": 17,
    "theta_max_deg": 150,
    "prong_theta_deg": [35, 122],
    "recoil_pt_cm_min_gev": 0.4,
    "recoil_theta_max_deg": 128,
}
_SIG = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
_PL = D.IDENTITY - D.GAMMA5


def _chi(sdir):
    w, v = np.linalg.eigh(np.einsum("i,iab->ab", np.asarray(sdir, float), _SIG))
    return v[:, np.argmax(w)]


def _u_spin(p, sdir):
    """u(p) of a tau with rest-frame spin along sdir (rotation-free boost of the rest spinor)."""
    u0 = np.sqrt(2 * M_TAU) * np.concatenate([_chi(sdir), [0, 0]])
    return (D.slash(p) + M_TAU * D.IDENTITY) @ u0 / np.sqrt(2 * M_TAU * (p[0] + M_TAU))


def _v_spin(p, sdir):
    """v(p) of a tau+ with rest-frame spin along sdir: v = i gamma^2 u*."""
    u0 = np.sqrt(2 * M_TAU) * np.concatenate([_chi(sdir), [0, 0]])
    v0 = 1j * D.GAMMA[2] @ u0.conj()
    return (-D.slash(p) + M_TAU * D.IDENTITY) @ v0 / np.sqrt(2 * M_TAU * (p[0] + M_TAU))


_REST = np.array([M_TAU, 0.0, 0.0, 0.0])


def _asym_current(j, nu):
    """Spin asymmetries (|M(+s)|^2 - |M(-s)|^2)/sum for s = x, y, z: tau- -> nu J."""
    out = []
    for ax in np.eye(3):
        m2 = []
        for sgn in (1, -1):
            u = _u_spin(_REST, sgn * ax)
            tot = 0.0
            for hnu in (-1, 1):
                cur = np.einsum(
                    "a,mab,b->m", D.dirac_bar(D.u_spinor(nu, 0.0, hnu)), D.GAMMA @ _PL, u
                )
                tot += abs(D.contract(cur, j)) ** 2
            m2.append(tot)
        out.append((m2[0] - m2[1]) / (m2[0] + m2[1]))
    return np.array(out)


# ------------------------------------------------------------------------------------------
# spin physics against explicit Dirac spinors


def test_correlation_matrix_matches_dirac_spinors():
    rng = np.random.default_rng(3)
    for _ in range(5):
        e = rng.uniform(1.8, 5.3)
        b = math.sqrt(1 - (M_TAU / e) ** 2)
        th = rng.uniform(0, math.pi)
        # primed frame: z' along the tau-, x' in the beam plane: e- beam = (-sin th, 0, cos th)
        eb = np.array([-math.sin(th), 0, math.cos(th)])
        p1, p2 = np.r_[e, e * eb], np.r_[e, -e * eb]
        k1, k2 = np.array([e, 0, 0, e * b]), np.array([e, 0, 0, -e * b])
        m2 = {}
        for i, j, a, c in np.ndindex(3, 3, 2, 2):
            sa, sc = 1 - 2 * a, 1 - 2 * c
            jt = D.current(
                D.dirac_bar(_u_spin(k1, sa * np.eye(3)[i])), _v_spin(k2, sc * np.eye(3)[j])
            )
            tot = 0.0
            for h1 in (1, -1):
                for h2 in (1, -1):
                    je = D.current(D.dirac_bar(D.v_spinor(p2, 0.0, h2)), D.u_spinor(p1, 0.0, h1))
                    tot += abs(D.contract(je, jt)) ** 2
            m2[i, j, sa, sc] = tot
        num = np.zeros((4, 4))
        sg = (1, -1)
        num[0, 0] = sum(m2[0, 0, a, c] for a in sg for c in sg)
        for i in range(3):
            num[i + 1, 0] = sum(a * m2[i, 0, a, c] for a in sg for c in sg)
            num[0, i + 1] = sum(c * m2[0, i, a, c] for a in sg for c in sg)
            for j in range(3):
                num[i + 1, j + 1] = sum(a * c * m2[i, j, a, c] for a in sg for c in sg)
        ana = tt.correlation_matrix(np.array(math.cos(th)), np.array(b))
        np.testing.assert_allclose(num / num[0, 0], ana / ana[0, 0], atol=1e-10)


@pytest.mark.parametrize("mode", ["rho", "a1_3prong", "a1_1prong"])
def test_hadronic_polarimeter_matches_dirac(mode):
    rng = np.random.default_rng(5)
    if mode == "rho":
        nu, pi, pi0, h = td._rho_sample(20, rng)[0]
        cur = (pi - pi0) * td._bw_rho(td._dot(pi + pi0, pi + pi0), td.M_PI, td.M_PI0)[:, None]
        idx = range(4)
    else:
        key = (td.M_PI, td.M_PI) if mode == "a1_3prong" else (td.M_PI0, td.M_PI)
        (nu, q1, q2, q3, h), w = td._a1_sample_factory(*key)(60, rng)
        big = q1 + q2 + q3
        qq = td._dot(big, big)
        v1 = (q1 - q3) - big * (td._dot(big, q1 - q3) / qq)[:, None]
        v2 = (q2 - q3) - big * (td._dot(big, q2 - q3) / qq)[:, None]
        s13, s23 = td._dot(q1 + q3, q1 + q3), td._dot(q2 + q3, q2 + q3)
        cur = td._bw_a1(qq)[:, None] * (
            td._bw_rho(s13, *key)[:, None] * v1 + td._bw_rho(s23, *key)[:, None] * v2
        )
        idx = np.flatnonzero(w > 0)[:4]
    for i in idx:
        np.testing.assert_allclose(h[i], _asym_current(cur[i], nu[i]), atol=1e-10)
        assert np.linalg.norm(h[i]) <= 1 + 1e-12


def test_two_body_and_leptonic_polarimeters_match_dirac():
    rng = np.random.default_rng(7)
    p4, h = td._decay_mode(td.MODES[2], 3, rng)  # pi nu: current f_pi p_pi
    for i in range(3):
        np.testing.assert_allclose(
            h[i], _asym_current(p4[i, 1].astype(complex), p4[i, 0]), atol=1e-10
        )
    p4, h = td._decay_mode(td.MODES[1], 3, rng)  # mu nubar nu: J = ubar(mu) gamma (1-g5) v(nubar)
    for i in range(3):
        nut, mu, nub = p4[i]
        m2 = []
        for ax in np.eye(3):
            for sgn in (1, -1):
                u = _u_spin(_REST, sgn * ax)
                tot = 0.0
                for a in (1, -1):
                    for b in (1, -1):
                        lep = np.einsum(
                            "a,mab,b->m",
                            D.dirac_bar(D.u_spinor(mu, td.M_MUON, a)),
                            D.GAMMA @ _PL,
                            D.v_spinor(nub, 0.0, b),
                        )
                        for c in (1, -1):
                            cur = np.einsum(
                                "a,mab,b->m",
                                D.dirac_bar(D.u_spinor(nut, 0.0, c)),
                                D.GAMMA @ _PL,
                                u,
                            )
                            tot += abs(D.contract(cur, lep)) ** 2
                m2.append(tot)
        m2 = np.array(m2).reshape(3, 2)
        np.testing.assert_allclose(h[i], (m2[:, 0] - m2[:, 1]) / m2.sum(axis=1), atol=1e-10)


def test_tau_plus_is_cp_image_dirac():
    """tau+ -> pi+ nubar: |vbar(tau, s) p_pi (1 - g5) v(nubar)|^2 ~ 1 + h . s, h of the CP image."""
    rng = np.random.default_rng(9)
    dec = td.decay_rest(np.full(3, td.MODE_CODES["pi"]), +1, rng)
    for i in range(3):
        nub, pi = dec.p4[i, 0], dec.p4[i, 1]
        assert dec.pdg[i, 1] == 211
        assert dec.pdg[i, 0] == -16
        asym = []
        for ax in np.eye(3):
            m2 = []
            for sgn in (1, -1):
                v = _v_spin(_REST, sgn * ax)
                tot = 0.0
                for b in (1, -1):
                    cur = np.einsum(
                        "a,mab,b->m", D.dirac_bar(v), D.GAMMA @ _PL, D.v_spinor(nub, 0.0, b)
                    )
                    tot += abs(D.contract(cur, pi.astype(complex))) ** 2
                m2.append(tot)
            asym.append((m2[0] - m2[1]) / sum(m2))
        np.testing.assert_allclose(dec.h[i], asym, atol=1e-10)


# ------------------------------------------------------------------------------------------
# distributions


def test_michel_spectrum():
    dec = td.decay_rest(np.full(200_000, td.MODE_CODES["e"]), -1, np.random.default_rng(11))
    x = 2 * dec.p4[:, 1, 0] / M_TAU
    hist, edges = np.histogram(x, bins=20, range=(0, 1))
    cdf = lambda t: t**3 - t**4 / 2  # noqa: E731  (x^2 (3 - 2x), normalised to 1/2)
    expect = (cdf(edges[1:]) - cdf(edges[:-1])) / 0.5 * x.size
    chi2 = np.sum((hist - expect) ** 2 / expect)
    assert chi2 < 20 + 5 * math.sqrt(40)


def test_rho_line_shape():
    dec = td.decay_rest(np.full(200_000, td.MODE_CODES["rho"]), -1, np.random.default_rng(12))
    pi = dec.p4[:, 1]
    pi0 = dec.p4[:, 2] + dec.p4[:, 3]  # the two photons
    m = np.sqrt(td._dot(pi + pi0, pi + pi0))
    edges = np.linspace(0.3, 1.7, 36)
    hist, _ = np.histogram(m, bins=edges)
    fine = np.linspace(edges[0], edges[-1], 35 * 200 + 1)
    s = fine**2
    ps = td._pstar(fine, td.M_PI, td.M_PI0) / fine
    dens = (
        (1 - s / M_TAU**2) ** 2
        * (1 + 2 * s / M_TAU**2)
        * np.abs(td._form_factor_pipi0(s)) ** 2
        * ps**3
    )
    dens *= 2 * fine  # ds = 2 m dm
    per_bin = dens[:-1].reshape(35, 200).sum(axis=1)
    expect = per_bin / per_bin.sum() * hist.sum()
    ok = expect > 20
    chi2 = np.sum((hist[ok] - expect[ok]) ** 2 / expect[ok])
    assert chi2 < ok.sum() + 5 * math.sqrt(2 * ok.sum())


def _pion_pairs(n, spin, seed, method=None):
    opts = tt.resolve_options(
        {"channels": ["pi"], "isr": False, "spin_correlations": spin, "keep_neutrinos": True}
    )
    ev = tt.generate(n, np.random.default_rng(seed), opts)
    cm = lab_to_cm(ev.p4)
    e_tau = lab_to_cm(ev.tau_minus)[:, 0]
    x1 = cm[:, 2:][np.arange(n), np.argmax(ev.pdg[:, 2:] == -211, axis=1), 0] / e_tau
    x2 = cm[:, 2:][np.arange(n), np.argmax(ev.pdg[:, 2:] == 211, axis=1), 0] / e_tau
    return x1, x2, ev


def test_pion_energy_fraction_and_correlation():
    n = 200_000
    r = (td.M_PI / M_TAU) ** 2
    x1, x2, _ = _pion_pairs(n, False, 21)
    assert x1.min() >= r - 1e-9
    assert x1.max() <= 1 + 1e-9
    # flat in [r', 1'] of the moving tau: a flat x has mean (x_lo + x_hi)/2, variance L^2/12
    hist, _ = np.histogram(x1, bins=10, range=(x1.min(), x1.max()))
    assert np.all(np.abs(hist / (n / 10) - 1) < 0.04)
    y = (2 * x1 - 1) * (2 * x2 - 1)
    assert abs(y.mean()) < 5 * y.std() / math.sqrt(n) + r
    x1, x2, _ = _pion_pairs(n, True, 22)
    y = (2 * x1 - 1) * (2 * x2 - 1)
    b2 = 1 - 4 * M_TAU**2 / tt.S
    rzz = 2 * b2 + 2 * (2 - b2) / 3  # integrals over cos(theta) of R_zz and R_00
    r00 = 2 * (2 - b2) + 2 * b2 / 3
    expect = r * r + b2 * (1 - r) ** 2 / 9 * rzz / r00
    assert abs(y.mean() - expect) < 5 * y.std() / math.sqrt(n)
    assert expect > 0.08  # positive: opposite helicities of the gamma* pair


def test_reject_and_rotate_methods_agree():
    rng = np.random.default_rng(31)
    n = 100_000
    c = 2 * rng.random(n) - 1
    d = np.stack([np.sqrt(1 - c * c), np.zeros(n), c], axis=1)
    b = 0.9
    tm = np.concatenate(
        [np.full((n, 1), M_TAU / math.sqrt(1 - b * b)), M_TAU * b / math.sqrt(1 - b * b) * d], 1
    )
    tp = tm * np.array([1, -1, -1, -1])
    ax = td.helicity_axes(d)
    rr = tt.correlation_matrix(c, np.full(n, b))
    codes = np.full(n, td.MODE_CODES["rho"])
    res = {}
    for method in ("rotate", "reject"):
        dm, dp, *_ = td.decay_pair(tm, tp, ax, ax, rr, codes, codes, rng, method=method)
        res[method] = np.array(
            [np.mean(dm.h[:, i] * dp.h[:, j]) for i, j in ((0, 0), (1, 1), (2, 2), (0, 2))]
        )
    assert np.all(np.abs(res["rotate"] - res["reject"]) < 0.006)
    assert td.STATS["spin_weight_violations"] == 0


def test_polar_angle_distribution():
    n = 200_000
    opts = tt.resolve_options({"channels": ["e"], "isr": False})
    ev = tt.generate(n, np.random.default_rng(41), opts)
    t = lab_to_cm(ev.tau_minus)
    c = t[:, 3] / np.linalg.norm(t[:, 1:], axis=1)
    b2 = 1 - 4 * M_TAU**2 / tt.S
    expect = ((2 - b2) * 2 / 3 + b2 * 2 / 5) / (2 * (2 - b2) + 2 * b2 / 3)
    c2 = c * c
    assert abs(c2.mean() - expect) < 5 * c2.std() / math.sqrt(n)
    assert abs(c.mean()) < 5 * c.std() / math.sqrt(n)


def test_four_momentum_conservation_all_modes():
    opts = tt.resolve_options({"keep_neutrinos": True, "keep_isr_photons": True})
    ev = tt.generate(20_000, np.random.default_rng(51), opts)
    tot = (ev.p4 * (ev.pdg != 0)[..., None]).sum(axis=1)
    np.testing.assert_allclose(tot, np.broadcast_to(P_BEAMS_LAB, tot.shape), atol=1e-9)
    assert set(np.unique(ev.tau_minus_mode)) == set(td.MODE_CODES.values())
    assert not np.any(np.isin(np.abs(ev.pdg), [111, 15]))
    assert np.all(ev.sqrt_s_hat >= 3.6)
    assert np.any(ev.pdg[:, :2] == 22)
    assert td.STATS["weight_violations"] == 0


# ------------------------------------------------------------------------------------------
# branching fractions and options


def test_branching_fractions_sum_and_pythia():
    brs = td.branching_fractions()
    assert sum(brs.values()) == pytest.approx(1.0, abs=1e-12)
    assert 0 < brs["1prong_rest"] < 0.02
    pythia8mc = pytest.importorskip("pythia8mc")
    entry = pythia8mc.Pythia("", False).particleData.particleDataEntryPtr(15)
    table = {}
    for i in range(entry.sizeChannels()):
        ch = entry.channel(i)
        key = tuple(sorted(ch.product(j) for j in range(ch.multiplicity())))
        table[key] = table.get(key, 0.0) + ch.bRatio()
    # Pythia's table is an older PDG snapshot (and counts omega in 3pi); they share ~3-4%
    for name, tol in (
        ("e", 0.01),
        ("mu", 0.01),
        ("pi", 0.01),
        ("K", 0.02),
        ("rho", 0.01),
        ("a1_3prong", 0.04),
        ("a1_1prong", 0.01),
        ("pi_3pi0", 0.01),
        ("K_pi0", 0.03),
    ):
        mode = td.MODES[td.MODE_CODES[name] - 1]
        key = tuple(sorted(mode.products))
        assert brs[name] == pytest.approx(table[key], rel=tol), name


def test_options_errors_and_br_weight():
    with pytest.raises(
        ConfigError, match=r"backgrounds\.samples\.tt\.options\.channels: unknown channel 'tau'"
    ):
        tt.describe({"name": "tt", "xsec_ref_fb": 1.0, "options": {"channels": ["tau"]}})
    with pytest.raises(
        ConfigError, match=r"options\.branching_fractions: branching fractions sum to .* > 1"
    ):
        tt.resolve_options({"branching_fractions": {"e": 0.5}}, "tt")
    with pytest.raises(ConfigError, match=r"options\.isr must be true or false"):
        tt.resolve_options({"isr": "yes"}, "tt")
    info = tt.describe(
        {"name": "tt", "xsec_ref_fb": 0.919e6, "options": {"channels": ["e", "mu", "pi"]}}
    )
    expect = (0.1782 + 0.1739 + 0.1082) ** 2
    assert info["br_weight"] == pytest.approx(expect)
    assert info["sigma_equivalent_fb"] == pytest.approx(0.919e6 * expect)
    assert info["mode_codes"] == td.MODE_CODES
    opts = tt.resolve_options({"channels": ["e", "mu", "pi"]})
    ev = tt.generate(60_000, np.random.default_rng(3), opts)
    frac = np.mean(ev.tau_minus_mode == td.MODE_CODES["pi"])
    assert frac == pytest.approx(0.1082 / (0.1782 + 0.1739 + 0.1082), abs=0.01)
    assert tt.describe({"name": "tt", "xsec_ref_fb": 1.0, "options": {}})[
        "br_weight"
    ] == pytest.approx(1.0)


def test_chunk_weights_filter_and_determinism():
    settings = {
        "name": "tautau",
        "filter": FILTER,
        "normalisation": "reference",
        "xsec_ref_fb": 0.919e6,
        "options": {"channels": ["e", "mu", "pi", "K", "rho"]},
    }
    n = 50_000
    res = tt.chunk(settings, n, 7)
    ev = res.events
    bw = tt.describe(settings)["br_weight"]
    kept = len(ev)
    assert 0.2 < kept / n < 0.6
    assert float(ak.sum(ev.weight)) == pytest.approx(0.919e6 * bw * kept / n, rel=1e-9)
    assert np.all(filter_particles(ev.particles, FILTER))
    assert res.n_generated == n
    assert 7e5 < res.sigma_fb < 1e6
    assert set(ak.fields(ev)) >= {
        "event",
        "weight",
        "particles",
        "sqrt_s_hat",
        "tau_minus_mode",
        "tau_plus_mode",
    }
    assert not np.any(np.isin(np.abs(ak.to_numpy(ak.flatten(ev.particles.pdg))), [12, 14, 16]))
    again = tt.chunk(settings, n, 7)
    assert ak.to_list(again.events[:50]) == ak.to_list(ev[:50])
    np.testing.assert_array_equal(ak.to_numpy(again.events.event), ak.to_numpy(ev.event))


def test_mode_pair_importance_sampling_keeps_exact_weights():
    """mode_weights and require_one_of change where the events go, not what they sum to."""
    opts = {
        "channels": ["e", "mu", "pi", "rho"],
        "require_one_of": ["mu"],
        "mode_weights": {"e": 0.2, "pi": 0.5, "rho": 0.1},
    }
    res = tt.resolve_options(opts)
    table = td.branching_fractions()
    br = {m: table[m] for m in res["_modes"]}
    # allowed pairs: at least one tau -> mu nu nu
    b_expected = sum(br[a] * br[b] for a in br for b in br if "mu" in (a, b))
    assert tt.br_weight(res) == pytest.approx(b_expected, rel=1e-12)
    n = 400_000
    ev = tt.generate(n, np.random.default_rng(8), res)
    f = ev.pair_weight
    assert f.mean() == pytest.approx(1.0, abs=0.01)
    is_mu = np.isin(ev.tau_minus_mode, [td.MODE_CODES[m] for m in td.CHANNEL_GROUPS["mu"]])
    is_mu |= np.isin(ev.tau_plus_mode, [td.MODE_CODES[m] for m in td.CHANNEL_GROUPS["mu"]])
    assert is_mu.all()  # no pair without a muon
    # weighted pair fractions follow BR_i BR_j / B
    for a, b in (("mu", "mu"), ("mu", "pi"), ("e", "mu"), ("rho", "mu")):
        ca = td.MODE_CODES[a]
        cb = td.MODE_CODES[b]
        sel = (ev.tau_minus_mode == ca) & (ev.tau_plus_mode == cb)
        expected = br[a] * br[b] / tt.br_weight(res)
        assert f[sel].sum() / n == pytest.approx(expected, rel=0.05)
    # mu mu pairs (unit mode weights) carry Z / B: the equivalent cross section is xsec * Z
    cmu = td.MODE_CODES["mu"]
    mumu = (ev.tau_minus_mode == cmu) & (ev.tau_plus_mode == cmu)
    np.testing.assert_allclose(f[mumu], tt.equivalent_br(res) / tt.br_weight(res), rtol=1e-12)
    info = tt.describe({"name": "t", "xsec_ref_fb": 1000.0, "options": opts})
    assert info["sigma_equivalent_fb"] == pytest.approx(1000.0 * tt.equivalent_br(res))
    assert info["br_weight"] == pytest.approx(tt.br_weight(res))


def test_mode_pair_options_errors():
    with pytest.raises(ConfigError, match=r"options\.mode_weights\.pi must be"):
        tt.resolve_options({"mode_weights": {"pi": 0.0}})
    with pytest.raises(ConfigError, match=r"options\.mode_weights: unknown channel 'pion'"):
        tt.resolve_options({"mode_weights": {"pion": 0.5}})
    with pytest.raises(ConfigError, match=r"options\.require_one_of: unknown channel"):
        tt.resolve_options({"require_one_of": ["muon"]})
    with pytest.raises(ConfigError, match=r"require_one_of: none of"):
        tt.resolve_options({"channels": ["e", "pi"], "require_one_of": ["mu"]})
