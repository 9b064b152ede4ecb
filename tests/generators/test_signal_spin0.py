"""Tests of e+e- -> mu+ mu- X for a spin-0 X (scalar, pseudoscalar): the FORM matrix element
against an explicit Dirac helicity sum, gauge invariance, the chiral limit, cross sections,
tables and events."""

from __future__ import annotations

import importlib.util
import itertools
import math
import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from zprime.errors import ConfigError
from zprime.generators import _signal_spin0_me_generated as G
from zprime.generators import signal as S
from zprime.io.events import read_events, read_metadata, validate_generator_events
from zprime.physics import dirac as D
from zprime.physics.constants import ALPHA_0, M_MUON, SQRT_S
from zprime.physics.xsec_table import load_xsec_table, spin_table_path

ROOT = Path(__file__).resolve().parents[2]
SPIN0 = ("scalar", "pseudoscalar")


# --------------------------------------------------------------------------- oracle
def me2_dirac_spin0(
    p1: np.ndarray,
    p2: np.ndarray,
    k1: np.ndarray,
    k2: np.ndarray,
    q: np.ndarray,
    spin: str,
    *,
    alpha: float = S.ALPHA_DEFAULT,
    y: float = 1.0,
    electron_current: np.ndarray | None = None,
    m: float = M_MUON,
) -> np.ndarray:
    """Spin-averaged |M|^2 from an explicit helicity sum with zprime.physics.dirac.

    Vertices -i e gamma^mu (photon), -i y (scalar, L = -y S mubar mu) or y gamma5
    (pseudoscalar, L = -i y a mubar gamma5 mu); the factors i of vertices and propagators are
    common to both diagrams and drop out of |M|^2, the vertex matrix Gamma = 1 or gamma5 and
    its sign are kept. ``electron_current`` replaces vbar(p2) gamma^mu u(p1) (Ward test).
    """
    e2 = 4.0 * math.pi * alpha
    s = D.minkowski_dot(p1 + p2, p1 + p2)
    gam_x = y * (D.IDENTITY if spin == "scalar" else D.GAMMA5)
    s1 = D.fermion_propagator(k1 + q, np.full(len(p1), m))
    s2 = D.fermion_propagator(-k2 - q, np.full(len(p1), m))
    total = np.zeros(len(p1))
    for h1, h2 in itertools.product((-1, 1), repeat=2):
        if electron_current is None:
            je = D.current(D.dirac_bar(D.v_spinor(p2, 0.0, h2)), D.u_spinor(p1, 0.0, h1))
        else:
            je = electron_current + 0j
        for h3, h4 in itertools.product((-1, 1), repeat=2):
            ubar = D.dirac_bar(D.u_spinor(k1, m, h3))
            v = D.v_spinor(k2, m, h4)
            amp = 0.0
            for mu in range(4):
                gam = D.GAMMA[mu]
                line = D.chain(gam_x, s1, gam) + D.chain(gam, s2, gam_x)
                amp = amp + D.METRIC[mu, mu] * je[..., mu] * D.sandwich(ubar, line, v)
            total = total + np.abs(amp) ** 2
    return 0.25 * e2**2 / s**2 * total


def _random_boost(rng: np.random.Generator, *vecs: np.ndarray) -> list[np.ndarray]:
    """Apply one random Lorentz transformation (rotation + boost) to all vectors."""
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    b = rng.uniform(-0.6, 0.6, 3)
    gam = 1 / math.sqrt(1 - b @ b)
    lam = np.eye(4)
    lam[0, 0] = gam
    lam[0, 1:] = lam[1:, 0] = gam * b
    lam[1:, 1:] += (gam - 1) * np.outer(b, b) / (b @ b)
    full = lam @ np.block([[np.eye(1), np.zeros((1, 3))], [np.zeros((3, 1)), rot]])
    return [v @ full.T for v in vecs]


def _phase_space(rng: np.random.Generator, n: int, rs: float, mx: float):
    h = S._hard_kinematics(np.full(n, rs), np.full(n, mx), rng.random((n, 4)))
    p1 = np.tile([rs / 2, 0, 0, rs / 2], (n, 1))
    p2 = np.tile([rs / 2, 0, 0, -rs / 2], (n, 1))
    return p1, p2, h.k1, h.k2, h.q, h


CASES = [(SQRT_S, 3.6), (SQRT_S, 6.0), (SQRT_S, 10.0), (SQRT_S, 0.3), (4.0, 1.5)]


# --------------------------------------------------------------------------- matrix element
@pytest.mark.parametrize("spin", SPIN0)
@pytest.mark.parametrize(("rs", "mx"), CASES)
def test_me_matches_dirac_oracle(rng: np.random.Generator, spin: str, rs: float, mx: float) -> None:
    p1, p2, k1, k2, q, h = _phase_space(rng, 40, rs, mx)
    p1, p2, k1, k2, q = _random_boost(rng, p1, p2, k1, k2, q)
    form = S.matrix_element_squared(p1, p2, k1, k2, q, spin=spin)
    oracle = me2_dirac_spin0(p1, p2, k1, k2, q, spin)
    np.testing.assert_allclose(form, oracle, rtol=1e-10)
    fast = S._me2_hard(h, np.full(40, rs), mx * mx, S.ALPHA_DEFAULT, 1.0, spin)
    np.testing.assert_allclose(fast, oracle, rtol=1e-10)


@pytest.mark.parametrize("spin", SPIN0)
def test_photon_current_conservation(rng: np.random.Generator, spin: str) -> None:
    """The muon tensor contracted with Q = k1 + k2 + q vanishes (gauge invariance)."""
    p1, p2, k1, k2, q, _ = _phase_space(rng, 32, SQRT_S, 5.0)
    full = me2_dirac_spin0(p1, p2, k1, k2, q, spin)
    aside = me2_dirac_spin0(p1, p2, k1, k2, q, spin, electron_current=k1 + k2 + q)
    assert np.max(aside / SQRT_S**2 / full) < 1e-20


def test_chiral_limit_scalar_equals_pseudoscalar(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Physics check: for massless muons gamma5 can be moved onto the massless spinor (a helicity
    sign), so the scalar and pseudoscalar |M|^2 coincide point by point. Checked on the FORM
    expressions (m2 = 0, massless kinematics); with m_mu they differ."""
    monkeypatch.setattr(S, "M_MUON", 0.0)
    monkeypatch.setattr(S, "_M2", 0.0)
    rs, mx = SQRT_S, 4.0
    _, _, k1, k2, q, h = _phase_space(rng, 200, rs, mx)
    p1 = np.array([rs / 2, 0, 0, rs / 2])
    p2 = np.array([rs / 2, 0, 0, -rs / 2])
    args = (
        np.full(200, rs * rs),
        D.minkowski_dot(p1, k1),
        D.minkowski_dot(p1, k2),
        D.minkowski_dot(p2, k1),
        D.minkowski_dot(p2, k2),
        h.d1,
        h.d2,
        0.0,
        mx * mx,
    )
    sc, ps = G.lh_scalar(*args), G.lh_pseudoscalar(*args)
    assert np.all(sc > 0)
    np.testing.assert_allclose(sc, ps, rtol=1e-10)
    # and the oracle agrees in that limit
    oracle = me2_dirac_spin0(p1 + 0 * k1, p2 + 0 * k1, k1, k2, q, "scalar", m=0.0)
    e4 = (4 * math.pi * S.ALPHA_DEFAULT) ** 2
    np.testing.assert_allclose(0.25 * e4 * sc / (rs**4), oracle, rtol=1e-9)
    # with the muon mass they differ (by O(m^2/M^2) somewhere)
    monkeypatch.undo()
    _, _, k1, k2, q, _ = _phase_space(rng, 200, rs, 0.5)
    pp1, pp2 = np.tile(p1, (200, 1)), np.tile(p2, (200, 1))
    a = S.matrix_element_squared(pp1, pp2, k1, k2, q, spin="scalar")
    b = S.matrix_element_squared(pp1, pp2, k1, k2, q, spin="pseudoscalar")
    assert np.max(np.abs(a / b - 1)) > 1e-3


@pytest.mark.parametrize("spin", SPIN0)
def test_scaling_and_symmetry(rng: np.random.Generator, spin: str) -> None:
    p1, p2, k1, k2, q, _ = _phase_space(rng, 200, SQRT_S, 4.2)
    base = S.matrix_element_squared(p1, p2, k1, k2, q, spin=spin)
    got = S.matrix_element_squared(p1, p2, k1, k2, q, g=0.3, spin=spin)
    np.testing.assert_allclose(got, 0.09 * base)
    np.testing.assert_allclose(
        S.matrix_element_squared(p1, p2, k1, k2, q, alpha=ALPHA_0, spin=spin),
        base * (ALPHA_0 / S.ALPHA_DEFAULT) ** 2,
    )
    # mu+ <-> mu- (C invariance; the two-channel trick of the phase space relies on it)
    swapped = S.matrix_element_squared(p1, p2, k2, k1, q, spin=spin)
    np.testing.assert_allclose(swapped, base, rtol=1e-12)
    assert np.all(base > 0)


def test_bad_spin() -> None:
    with pytest.raises(ConfigError, match="spin"):
        S.cross_section(5.0, spin="tensor")  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("form") is None, reason="FORM not installed")
def test_generated_module_is_reproducible(tmp_path: Path) -> None:
    """Running tools/generate_signal_spin0_me.py gives the shipped module byte for byte."""
    out = tmp_path / "gen.py"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_signal_spin0_me.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    shipped = ROOT / "src" / "zprime" / "generators" / "_signal_spin0_me_generated.py"
    assert out.read_text() == shipped.read_text()
    spec = importlib.util.spec_from_file_location("gen", out)
    assert spec is not None
    assert spec.loader is not None


# --------------------------------------------------------------------------- cross section
def test_cross_section_scalar_over_pseudoscalar(monkeypatch: pytest.MonkeyPatch) -> None:
    """sigma_S / sigma_P -> 1 in the chiral limit m_mu -> 0 at fixed M and s: with the real muon
    mass it is 1.0095 at M = 6 GeV (the mass terms go as m^2 s / M^2, not m^2 / M^2), with a
    muon ten times lighter within 2e-4 of 1 (same vegas seed: the two are correlated)."""
    kw = {"isr": False, "rel_precision": 0.003}
    sc = S.cross_section(6.0, spin="scalar", **kw)
    ps = S.cross_section(6.0, spin="pseudoscalar", **kw)
    assert sc.spin == "scalar"
    assert ps.spin == "pseudoscalar"
    assert sc.sigma_fb / ps.sigma_fb == pytest.approx(1.0095, abs=2e-3)
    y2 = S.cross_section(6.0, spin="scalar", g=0.5, **kw)
    assert y2.sigma_fb == pytest.approx(0.25 * sc.sigma_fb, rel=1e-9)
    light = M_MUON / 10
    monkeypatch.setattr(S, "M_MUON", light)
    monkeypatch.setattr(S, "_M2", light * light)
    sc_l = S.cross_section(6.0, spin="scalar", **kw)
    ps_l = S.cross_section(6.0, spin="pseudoscalar", **kw)
    assert sc_l.sigma_fb / ps_l.sigma_fb == pytest.approx(1.0, abs=2e-4)


def test_shipped_spin0_tables() -> None:
    for spin in ("vector", *SPIN0):
        t = load_xsec_table(spin_table_path(spin))
        assert t.mass_gev[0] == pytest.approx(3.6)
        assert t.mass_gev[-1] == pytest.approx(10.0)
        assert t.metadata.get("spin", "vector") == spin
        assert np.all(t.error_isr / t.sigma_isr < 0.01)
    sc = load_xsec_table(spin_table_path("scalar"))
    ps = load_xsec_table(spin_table_path("pseudoscalar"))
    ratio = sc.sigma_noisr / ps.sigma_noisr
    # 1.009 at low mass (the m_mu^2 s / M^2 terms), rising to 1.38 at 10 GeV where the muons
    # are slow (S-wave scalar against P-wave pseudoscalar coupling of the muon pair)
    assert np.all(ratio > 1.0)
    np.testing.assert_allclose(ratio[sc.mass_gev <= 7.0], 1.01, atol=0.01)
    assert ratio[-1] == pytest.approx(1.38, abs=0.03)
    # the vector table reproduces the shipped Z' table where they overlap (same seeds)
    vec = load_xsec_table(spin_table_path("vector"))
    shipped = load_xsec_table()
    m = vec.mass_gev[vec.mass_gev <= shipped.mass_gev[-1]]
    np.testing.assert_allclose(vec.sigma_isr[: m.size], shipped.sigma_fb(m), rtol=1e-6)


# --------------------------------------------------------------------------- events
def test_spin0_events(tmp_path: Path) -> None:
    path = S.write_signal(
        5.0, 300, tmp_path, seed=3, spin="pseudoscalar", rel_precision=0.02, progress=False
    )
    assert path.name == "signal_pseudoscalar_M5.0000.parquet"
    ev = read_events(path)
    validate_generator_events(ev)
    meta = read_metadata(path)
    assert meta["spin"] == "pseudoscalar"
    assert meta["yukawa_y"] == 1.0
    assert "g_prime" not in meta
    pdg = set(np.unique(ak.to_numpy(ak.flatten(ev.particles.pdg))))
    assert {13, -13, S.PDG_SPIN0} <= pdg <= {13, -13, S.PDG_SPIN0, 22}
    assert ak.sum(ev.weight) == pytest.approx(meta["sigma_fb"], rel=1e-12)
