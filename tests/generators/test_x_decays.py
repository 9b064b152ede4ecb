"""Tests of zprime.generators.x_decays: X -> tau+ tau- spin correlations against explicit Dirac
spinors, the decay-plane angle of H- and A-like parents, kinematics and the event file."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from zprime.errors import ConfigError
from zprime.generators import tau_decays as td
from zprime.generators import tautau as tt
from zprime.generators import x_decays as X
from zprime.io.events import read_events, read_metadata, validate_generator_events
from zprime.physics import dirac as D
from zprime.physics.constants import M_TAU
from zprime.physics.xsec_table import load_xsec_table, spin_table_path

_SIG = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])


# --------------------------------------------------------------------------- Dirac oracle
def _chi(sdir):
    w, v = np.linalg.eigh(np.einsum("i,iab->ab", np.asarray(sdir, float), _SIG))
    return v[:, np.argmax(w)]


def _u_spin(p, sdir):
    """u(p) of a tau- with rest-frame spin along sdir (rotation-free boost of the rest spinor)."""
    u0 = np.sqrt(2 * M_TAU) * np.concatenate([_chi(sdir), [0, 0]])
    return (D.slash(p) + M_TAU * D.IDENTITY) @ u0 / np.sqrt(2 * M_TAU * (p[0] + M_TAU))


def _v_spin(p, sdir):
    """v(p) of a tau+ with rest-frame spin along sdir: v = i gamma^2 u* (as in the tau-pair
    tests, whose Tsai matrix the generator uses)."""
    u0 = np.sqrt(2 * M_TAU) * np.concatenate([_chi(sdir), [0, 0]])
    v0 = 1j * D.GAMMA[2] @ u0.conj()
    return (-D.slash(p) + M_TAU * D.IDENTITY) @ v0 / np.sqrt(2 * M_TAU * (p[0] + M_TAU))


def _dirac_matrix(spin: str, mx: float) -> np.ndarray:
    """R_ab from |M(s-, s+)|^2 of X(at rest) -> tau-(+z) tau+(-z) with spins +-x, +-y, +-z."""
    e = mx / 2
    p = math.sqrt(e * e - M_TAU**2)
    k1, k2 = np.array([e, 0, 0, p]), np.array([e, 0, 0, -p])
    if spin == "scalar":
        vertices = [D.IDENTITY]
    elif spin == "pseudoscalar":
        vertices = [D.GAMMA5]
    else:  # unpolarised vector: sum over the three polarisations of X at rest
        q = np.array([mx, 0.0, 0.0, 0.0])
        vertices = [D.slash(D.polarization_vector(q, mx, h)) for h in (-1, 0, 1)]
    m2 = {}
    for i, j, a, c in np.ndindex(3, 3, 2, 2):
        sa, sc = 1 - 2 * a, 1 - 2 * c
        ub = D.dirac_bar(_u_spin(k1, sa * np.eye(3)[i]))
        v = _v_spin(k2, sc * np.eye(3)[j])
        m2[i, j, sa, sc] = sum(abs(ub @ g @ v) ** 2 for g in vertices)
    sg = (1, -1)
    num = np.zeros((4, 4))
    num[0, 0] = sum(m2[0, 0, a, c] for a in sg for c in sg)
    for i in range(3):
        num[i + 1, 0] = sum(a * m2[i, 0, a, c] for a in sg for c in sg)
        num[0, i + 1] = sum(c * m2[0, i, a, c] for a in sg for c in sg)
        for j in range(3):
            num[i + 1, j + 1] = sum(a * c * m2[i, j, a, c] for a in sg for c in sg)
    return num / num[0, 0]


@pytest.mark.parametrize("spin", ["scalar", "pseudoscalar", "vector"])
@pytest.mark.parametrize("mx", [3.7, 6.0, 10.0])
def test_correlation_matrix_matches_dirac(spin: str, mx: float) -> None:
    beta = math.sqrt(1 - 4 * M_TAU**2 / mx**2)
    ana = X.correlation_matrix(spin, np.array([beta]))[0]  # type: ignore[arg-type]
    np.testing.assert_allclose(ana, _dirac_matrix(spin, mx), atol=1e-10)


def test_vector_matrix_is_the_angular_average_of_tsai() -> None:
    """Unpolarised vector = gamma* -> tau tau (Tsai) averaged over the beam direction."""
    beta = 0.7
    c = np.linspace(-1, 1, 20001)
    r = tt.correlation_matrix(c, np.full(c.size, beta))
    avg = np.trapezoid(r, c, axis=0)
    # the x' and y' axes rotate about z' with the beam azimuth: average xx and yy
    avg[1, 1] = avg[2, 2] = 0.5 * (avg[1, 1] + avg[2, 2])
    np.testing.assert_allclose(
        avg / avg[0, 0], X.correlation_matrix("vector", np.array([beta]))[0], atol=1e-7
    )


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="spin"):
        X.correlation_matrix("tensor", np.array([0.5]))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="2 m_tau"):
        X.decay_x_to_tautau(np.array([[3.0, 0, 0, 0]]), "scalar", np.random.default_rng(1))


# --------------------------------------------------------------------------- generated decays
def _pion_pairs(spin: str, n: int, rng: np.random.Generator, boost: bool = True):
    """X -> tau tau -> pi nu pi nu; returns the decays and the X momenta."""
    mx = 6.0
    pz = rng.uniform(-3, 3, n) if boost else np.zeros(n)
    px = rng.uniform(-2, 2, n) if boost else np.zeros(n)
    x = np.stack([np.sqrt(mx**2 + pz**2 + px**2), px, np.zeros(n), pz], axis=1)
    code = np.full(n, td.MODE_CODES["pi"])
    dec = X.decay_x_to_tautau(x, spin, rng, codes_minus=code, codes_plus=code)  # type: ignore[arg-type]
    return dec, x


def _to_rest(p4: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Rotation-free boost of (n, 4) momenta into the rest frame of ``parent`` (n, 4)."""
    m = np.sqrt(D.minkowski_dot(parent, parent))
    e0, pv = parent[:, 0], -parent[:, 1:]  # boost by the opposite velocity
    pdotv = np.einsum("ni,ni->n", p4[:, 1:], pv)
    out = np.empty_like(p4)
    out[:, 0] = (p4[:, 0] * e0 + pdotv) / m
    coef = pdotv / (m * (e0 + m)) + p4[:, 0] / m
    out[:, 1:] = p4[:, 1:] + coef[:, None] * pv
    return out


def _charged_pion(dec, sign: int) -> np.ndarray:
    """(n, 4) momentum of the pi- (sign -1) or pi+ (sign +1)."""
    sel = dec.pdg == 211 * sign
    assert np.all(sel.sum(axis=1) == 1)
    return dec.p4[sel]


def _phi_star(dec, x):
    """Angle between the decay planes (tau-, pi-) and (tau+, pi+) in the X rest frame, in
    [0, pi], and cos theta* of the two pions in their tau rest frames (along the tau-)."""
    tm = _to_rest(dec.tau_minus, x)
    tp = _to_rest(dec.tau_plus, x)
    pim = _to_rest(_charged_pion(dec, -1), x)
    pip = _to_rest(_charged_pion(dec, +1), x)
    z = tm[:, 1:] / np.linalg.norm(tm[:, 1:], axis=1, keepdims=True)
    nm = np.cross(z, pim[:, 1:])
    npl = np.cross(z, pip[:, 1:])
    cphi = np.einsum("ni,ni->n", nm, npl) / np.linalg.norm(nm, axis=1) / np.linalg.norm(npl, axis=1)
    # pion directions in the tau rest frames (reached from the X frame)
    cm = _to_rest(pim, tm)[:, 1:]
    cp = _to_rest(pip, tp)[:, 1:]
    ctm = np.einsum("ni,ni->n", cm, z) / np.linalg.norm(cm, axis=1)
    ctp = np.einsum("ni,ni->n", cp, z) / np.linalg.norm(cp, axis=1)
    return np.arccos(np.clip(cphi, -1, 1)), ctm, ctp


def test_decay_plane_angle_scalar_vs_pseudoscalar() -> None:
    """tau -> pi nu on both sides (h = +-pion direction): dN/dphi* ~ 1 - (pi^2/16) cos phi* for
    the scalar (R_xx = R_yy = +1; with h+ = -pi+ direction the transverse pions prefer
    opposite azimuths), 1 + (pi^2/16) cos phi* for the pseudoscalar, (pi^2/16) C_T for the
    vector; <cos th- cos th+> = 1/9 for spin 0 (R_zz = -1), -C_L/9 for the vector; the
    X is boosted in the lab, the observables are computed in its rest frame."""
    rng = np.random.default_rng(7)
    n = 40_000
    a = math.pi**2 / 16
    beta2 = 1 - 4 * M_TAU**2 / 36.0
    ct, cl = (1 - beta2) / (3 - beta2), (1 + beta2) / (3 - beta2)
    expect = {"scalar": (-a, -1.0), "pseudoscalar": (a, -1.0), "vector": (-a * ct, cl)}
    moments = {}
    for spin, (fourier, rzz) in expect.items():
        dec, x = _pion_pairs(spin, n, rng)
        phi, ctm, ctp = _phi_star(dec, x)
        # density (1 + A cos phi) / pi on [0, pi]: <cos phi> = A / 2
        c1 = float(np.mean(np.cos(phi)))
        err = math.sqrt(0.5 / n)
        assert c1 == pytest.approx(fourier / 2, abs=4 * err), spin
        # longitudinal: weight 1 + R_zz h-_z h+_z, h-_z = ctm, h+_z = -ctp
        assert float(np.mean(ctm * ctp)) == pytest.approx(-rzz / 9, abs=4 / 3 / math.sqrt(n))
        moments[spin] = c1
    # scalar and pseudoscalar: opposite, about +-0.31 apart from 0
    assert moments["scalar"] < -0.25 < 0.25 < moments["pseudoscalar"]
    # no spin correlations: flat
    code = np.full(n, td.MODE_CODES["pi"])
    x = np.tile([6.0, 0, 0, 0], (n, 1))
    dec = X.decay_x_to_tautau(
        x, "scalar", rng, codes_minus=code, codes_plus=code, spin_correlations=False
    )
    phi, _, _ = _phi_star(dec, x)
    assert float(np.mean(np.cos(phi))) == pytest.approx(0.0, abs=4 * math.sqrt(0.5 / n))


def test_decay_kinematics_all_modes() -> None:
    rng = np.random.default_rng(11)
    n = 4000
    mx = 5.0
    x = np.stack(
        [np.full(n, math.sqrt(mx**2 + 4.0)), np.zeros(n), np.full(n, 1.2), np.full(n, 1.6)],
        axis=1,
    )
    dec = X.decay_x_to_tautau(x, "pseudoscalar", rng, keep_neutrinos=True)
    np.testing.assert_allclose(dec.tau_minus + dec.tau_plus, x, atol=1e-9)
    np.testing.assert_allclose(D.minkowski_dot(dec.tau_minus, dec.tau_minus), M_TAU**2, atol=1e-9)
    tot = np.where((dec.pdg != 0)[..., None], dec.p4, 0.0).sum(axis=1)
    np.testing.assert_allclose(tot, x, atol=1e-8)
    # isotropic in the X rest frame
    assert abs(float(np.mean(dec.cos_theta))) < 4 / math.sqrt(3 * n)
    # modes drawn with the branching fractions: leptonic fraction ~ 35.2 %
    lep = np.isin(dec.tau_minus_mode, [td.MODE_CODES["e"], td.MODE_CODES["mu"]])
    assert float(lep.mean()) == pytest.approx(0.3521, abs=4 * math.sqrt(0.23 / n))
    # without neutrinos: none left, charge conserved
    dec2 = X.decay_x_to_tautau(x, "scalar", rng)
    assert not np.any(np.isin(np.abs(dec2.pdg), (12, 14, 16)))
    charged = np.sign(dec2.pdg) * np.isin(np.abs(dec2.pdg), (11, 13, 211, 321))
    lepton_sign = np.where(np.isin(np.abs(dec2.pdg), (11, 13)), -1, 1)
    assert np.all((charged * lepton_sign).sum(axis=1) == 0)


# --------------------------------------------------------------------------- event file
def test_write_mumu_x_tautau(tmp_path: Path) -> None:
    path = X.write_mumu_x_tautau(
        5.0, "scalar", 400, tmp_path, seed=5, rel_precision=0.02, n_pilot=20_000, chunk_size=250
    )
    assert path.name == "signal_tautau_scalar_M5.0000.parquet"
    ev = read_events(path)
    validate_generator_events(ev)
    meta = read_metadata(path)
    assert meta["spin"] == "scalar"
    assert meta["sample"] == "signal_tautau"
    assert len(ev) == 400
    assert ak.sum(ev.weight) == pytest.approx(meta["sigma_fb"], rel=1e-12)
    assert set(ak.fields(ev)) >= {"event", "weight", "particles", "mass", "tau_minus_mode"}
    pdg = ak.to_numpy(ak.flatten(ev.particles.pdg))
    assert not np.any(np.isin(np.abs(pdg), (12, 14, 16, 15, 54, 32)))
    # exactly one mu- and one mu+ from the hard process, plus those of tau -> mu decays
    n_mu = ak.to_numpy(ak.sum(ev.particles.pdg == 13, axis=1))
    n_mu_tau = ak.to_numpy(ev.tau_minus_mode == td.MODE_CODES["mu"]).astype(int)
    np.testing.assert_array_equal(n_mu, 1 + n_mu_tau)
    np.testing.assert_array_equal(ak.to_numpy(ev.event), np.arange(400))
    # the visible system plus the missing momentum is the beam four-momentum minus the
    # dropped neutrinos: energy below the lab beam energy sum
    e_vis = ak.to_numpy(ak.sum(ev.particles.e, axis=1))
    assert np.all(e_vis < 11.0 + 1e-6)
    # deterministic in the seed
    again = read_events(
        X.write_mumu_x_tautau(
            5.0,
            "scalar",
            400,
            tmp_path / "b",
            seed=5,
            rel_precision=0.02,
            n_pilot=20_000,
            chunk_size=250,
        )
    )
    assert ak.all(again.particles.px == ev.particles.px)


def test_mass_range_sample_follows_the_cross_section(tmp_path: Path) -> None:
    """A sample over a mass range (the tau-tau networks' training samples): each event has the
    kinematics of its own X mass, and the masses follow sigma(M) of the cross-section table (an
    independent vegas integration at fixed masses); the sample's sigma is the table's mean."""
    lo, hi, n = 4.0, 7.0, 20_000
    path = X.write_mumu_x_tautau(
        lo, "scalar", n, tmp_path, seed=11, isr=False, mass_hi=hi, rel_precision=0.01
    )
    assert path.name == "signal_tautau_scalar_M4.0000-7.0000.parquet"
    ev = read_events(path)
    meta = read_metadata(path)
    assert meta["mass_hi_gev"] == hi
    mass = ak.to_numpy(ev.mass)
    assert np.all((mass >= lo) & (mass <= hi))
    # without ISR the hard muons (the first two particles) recoil against X of the event's mass
    p = ev.particles[:, :2]
    mu = np.stack([ak.to_numpy(ak.sum(p[c], axis=1)) for c in ("e", "px", "py", "pz")], axis=1)
    beam = np.array([11.0, 0.0, 0.0, 3.0])
    rec = beam - mu
    np.testing.assert_allclose(np.sqrt(D.minkowski_dot(rec, rec)), mass, rtol=1e-7)
    table = load_xsec_table(spin_table_path("scalar"))
    edges = np.linspace(lo, hi, 11)
    fine = np.linspace(lo, hi, 3001)
    sig = table.sigma_fb(fine, isr=False)
    cum = np.concatenate([[0.0], np.cumsum((sig[1:] + sig[:-1]) / 2 * np.diff(fine))])
    expected = np.diff(np.interp(edges, fine, cum)) / cum[-1] * n
    counts = np.histogram(mass, edges)[0]
    assert np.sum((counts - expected) ** 2 / expected) < 30  # 10 bins, 9 dof
    assert meta["sigma_fb"] == pytest.approx(cum[-1] / (hi - lo), rel=0.02)
    with pytest.raises(ConfigError, match="mass_hi"):
        X.write_mumu_x_tautau(5.0, "scalar", 10, tmp_path, seed=1, mass_hi=4.0)
