"""Tests of zprime.physics.kinematics: boosts, recoil quantities and the Punzi-net features."""

from __future__ import annotations

import numpy as np
import pytest

from zprime.physics.constants import BETA_GAMMA, M_MUON, P_BEAMS_LAB, SQRT_S, S
from zprime.physics.kinematics import (
    PAIR_VARIABLES,
    angle_between,
    boost_z,
    cm_to_lab,
    four_momentum,
    lab_to_cm,
    mass2,
    momentum,
    pair_variables,
    photon_recoil_variables,
    polar_angle,
    pt_thrust,
    recoil,
    thrust_axis,
    wrt_direction,
)


def _random_p4(rng: np.random.Generator, n: int, mass: float = M_MUON) -> np.ndarray:
    return four_momentum(rng.normal(scale=2.0, size=(n, 3)), mass)


def _two_body_cm(rng: np.random.Generator, n: int, m_recoil: np.ndarray | float) -> tuple:
    """mu+ mu- X in the c.m. frame with a recoil of mass m_recoil: muons from a random
    dimuon mass, random directions; returns the lab four-momenta (p1, p2, recoil)."""
    m_rec = np.broadcast_to(np.asarray(m_recoil, dtype=float), (n,))
    m_mumu = rng.uniform(2 * M_MUON + 0.1, SQRT_S - m_rec - 0.1)
    # recoil against the dimuon system
    p_star = np.sqrt((S - (m_mumu + m_rec) ** 2) * (S - (m_mumu - m_rec) ** 2)) / (2 * SQRT_S)
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pair = np.concatenate([np.sqrt(m_mumu**2 + p_star**2)[:, None], p_star[:, None] * u], 1)
    rec = np.concatenate([np.sqrt(m_rec**2 + p_star**2)[:, None], -p_star[:, None] * u], 1)
    # muons in the dimuon rest frame, then boosted with the pair velocity (general boost)
    q = np.sqrt(m_mumu**2 / 4 - M_MUON**2)
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    k1 = np.concatenate([(m_mumu / 2)[:, None], q[:, None] * v], 1)
    k2 = k1.copy()
    k2[:, 1:] *= -1
    beta = pair[:, 1:] / pair[:, :1]
    b2 = np.sum(beta**2, 1)
    g = 1 / np.sqrt(1 - b2)

    def boost(k: np.ndarray) -> np.ndarray:
        bp = np.sum(beta * k[:, 1:], 1)
        e = g * (k[:, 0] + bp)
        coef = np.where(b2 > 0, (g - 1) * bp / np.where(b2 > 0, b2, 1), 0) + g * k[:, 0]
        return np.concatenate([e[:, None], k[:, 1:] + coef[:, None] * beta], 1)

    return cm_to_lab(boost(k1)), cm_to_lab(boost(k2)), cm_to_lab(rec)


def test_boosts_invert_and_preserve_mass(rng: np.random.Generator) -> None:
    p = _random_p4(rng, 1000)
    np.testing.assert_allclose(cm_to_lab(lab_to_cm(p)), p, atol=1e-12)
    np.testing.assert_allclose(mass2(cm_to_lab(p)), mass2(p), atol=1e-10)
    beta = rng.uniform(-0.9, 0.9, size=1000)
    np.testing.assert_allclose(boost_z(boost_z(p, beta), -beta), p, atol=1e-10)


def test_beams_in_cm_are_at_rest() -> None:
    cm = lab_to_cm(np.asarray(P_BEAMS_LAB))
    np.testing.assert_allclose(cm, [SQRT_S, 0, 0, 0], atol=1e-12)
    # a particle at rest in the c.m. frame moves with beta*gamma = 0.28 in the lab
    lab = cm_to_lab([1.0, 0, 0, 0])
    assert lab[3] / 1.0 == pytest.approx(BETA_GAMMA, rel=1e-12)


def test_angles_and_magnitudes() -> None:
    v = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0], [0.0, 0.0, -3.0], [1.0, 1.0, np.sqrt(2)]])
    np.testing.assert_allclose(polar_angle(v), [0, np.pi / 2, np.pi, np.pi / 4], atol=1e-15)
    np.testing.assert_allclose(momentum(v), [2, 1, 3, 2], atol=1e-15)
    a = np.array([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [1.0, 1e-9, 0]])
    b = np.array([[0.0, 2, 0], [-1.0, 0, 0], [3.0, 0, 0], [-1.0, 0, 0]])
    np.testing.assert_allclose(angle_between(a, b), [np.pi / 2, np.pi, 0, np.pi - 1e-9], atol=1e-15)
    with pytest.raises(ValueError, match="length 3 or 4"):
        momentum(np.zeros((2, 5)))


def test_back_to_back_full_energy_has_zero_recoil_mass() -> None:
    e = SQRT_S / 2
    p = np.sqrt(e**2 - M_MUON**2)
    cm1 = np.array([[e, p * np.sin(1.0), 0.0, p * np.cos(1.0)]])
    cm2 = cm1.copy()
    cm2[:, 1:] *= -1
    v = pair_variables(cm_to_lab(cm1), cm_to_lab(cm2))
    assert set(v) == set(PAIR_VARIABLES)
    assert abs(v["m_recoil2"][0]) < 1e-9
    assert v["p_recoil_cm"][0] < 1e-9
    assert v["opening_angle_cm"][0] == pytest.approx(np.pi, abs=1e-9)
    assert v["pt_thrust_cm"][0] < 1e-9
    assert v["pt_hi_lo_cm"][0] < 1e-9
    assert v["pl_hi_lo_cm"][0] == pytest.approx(-p, rel=1e-12)
    assert v["m_mumu"][0] == pytest.approx(SQRT_S, rel=1e-12)


def test_single_photon_recoil_is_massless_along_the_photon(rng: np.random.Generator) -> None:
    """e+e- -> mu mu gamma: the recoil is the photon (M^2 = 0, same direction, both frames)."""
    n = 500
    p1, p2, gamma = _two_body_cm(rng, n, 0.0)
    v = pair_variables(p1, p2)
    np.testing.assert_allclose(v["m_recoil2"], 0.0, atol=1e-9)
    np.testing.assert_allclose(v["theta_recoil"], polar_angle(gamma), atol=1e-9)
    np.testing.assert_allclose(v["p_recoil"], momentum(gamma), rtol=1e-9)
    np.testing.assert_allclose(v["theta_recoil_cm"], polar_angle(lab_to_cm(gamma)), atol=1e-9)
    np.testing.assert_allclose(recoil(p1, p2), gamma, atol=1e-9)
    # the photon is found at zero angle from the recoil
    e_sum, amin = photon_recoil_variables(recoil(p1, p2), gamma, np.ones(n, dtype=int))
    np.testing.assert_allclose(e_sum, gamma[:, 0])
    np.testing.assert_allclose(amin, 0.0, atol=1e-6)


def test_known_zprime_mass_and_identity(rng: np.random.Generator) -> None:
    """A Z' of known mass gives M_recoil^2 = M^2, and M^2 = s + m_mumu^2 - 2 sqrt(s) E*."""
    masses = rng.uniform(0.01, 8.5, size=2000)
    p1, p2, zp = _two_body_cm(rng, masses.size, masses)
    v = pair_variables(p1, p2)
    np.testing.assert_allclose(v["m_recoil2"], masses**2, atol=1e-8)
    e_star = lab_to_cm(p1 + p2)[:, 0]
    m2 = mass2(p1 + p2)
    np.testing.assert_allclose(v["m_recoil2"], S + m2 - 2 * SQRT_S * e_star, atol=1e-8)
    np.testing.assert_allclose(v["m_mumu"], np.sqrt(m2), rtol=1e-10)
    # recoil quantities against the generated Z'
    np.testing.assert_allclose(v["p_recoil"], momentum(zp), rtol=1e-8, atol=1e-10)
    zp_cm = lab_to_cm(zp)
    np.testing.assert_allclose(v["pt_recoil_cm"], np.hypot(zp_cm[:, 1], zp_cm[:, 2]), atol=1e-9)
    # no crossing angle: pT of the dimuon = pT of the recoil, the same in lab and c.m.
    np.testing.assert_allclose(v["pt_mumu_cm"], v["pt_recoil_cm"], atol=1e-12)


def test_recoil_mass_squared_may_be_negative() -> None:
    """Muons carrying more than the beam energy (resolution) give M^2 < 0, not NaN."""
    e = SQRT_S / 2 + 0.05
    p = np.sqrt(e**2 - M_MUON**2)
    cm1 = np.array([[e, 0.0, p, 0.0]])
    cm2 = np.array([[e, 0.0, -p, 0.0]])
    v = pair_variables(cm_to_lab(cm1), cm_to_lab(cm2))
    assert v["m_recoil2"][0] == pytest.approx((SQRT_S - 2 * e) ** 2 - 0.0, abs=1e-9)
    cm2[0, 2] = -p + 0.3  # unbalanced: p* != 0 and E* > sqrt(s) -> M^2 < 0
    cm2[0, 0] = np.sqrt(M_MUON**2 + (p - 0.3) ** 2)
    cm1[0, 0] = e + 0.3
    cm1[0, 2] = np.sqrt(cm1[0, 0] ** 2 - M_MUON**2)
    w = pair_variables(cm_to_lab(cm1), cm_to_lab(cm2))
    assert w["m_recoil2"][0] < 0


def test_thrust_axis_maximises_thrust(rng: np.random.Generator) -> None:
    """The closed-form axis beats every random axis and gives pT equal for both muons."""
    a = rng.normal(size=(300, 3))
    b = rng.normal(size=(300, 3))
    n = thrust_axis(a, b)
    best = np.abs(np.sum(a * n, 1)) + np.abs(np.sum(b * n, 1))
    trial = rng.normal(size=(300, 200, 3))
    trial /= np.linalg.norm(trial, axis=-1, keepdims=True)
    tr = np.abs(np.einsum("nk,ntk->nt", a, trial)) + np.abs(np.einsum("nk,ntk->nt", b, trial))
    assert np.all(best[:, None] >= tr - 1e-12)
    pt_a, _ = wrt_direction(a, n)
    pt_b, _ = wrt_direction(b, n)
    np.testing.assert_allclose(pt_a, pt_b, rtol=1e-10)
    np.testing.assert_allclose(pt_thrust(a, b), pt_a, rtol=1e-10)
    # opening angle > 90 deg: axis along p1 - p2; < 90 deg: along p1 + p2
    back = np.array([[1.0, 0.2, 0.0]]), np.array([[-2.0, 0.1, 0.0]])
    d = back[0] - back[1]
    np.testing.assert_allclose(np.abs(thrust_axis(*back)), np.abs(d / np.linalg.norm(d)))
    fwd = np.array([[1.0, 0.5, 0.0]]), np.array([[2.0, -0.1, 0.0]])
    s_ = fwd[0] + fwd[1]
    np.testing.assert_allclose(np.abs(thrust_axis(*fwd)), np.abs(s_ / np.linalg.norm(s_)))


def test_punzi_features_hand_built() -> None:
    """Muons in the c.m. frame with known geometry give the expected feature values."""
    # higher-energy muon along +x with |p| = 4, lower-energy muon along -y with |p| = 2:
    # p_hi . lo_hat = 0, |p_hi x lo_hat| = 4; thrust axis along p1 - p2 = (4, 2, 0)
    # (p1.p2 = 0 -> the p1 + p2 branch, |p1+p2| = |p1-p2|: same value either way)
    p_hi = four_momentum(np.array([[4.0, 0.0, 0.0]]), M_MUON)
    p_lo = four_momentum(np.array([[0.0, -2.0, 0.0]]), M_MUON)
    v = pair_variables(cm_to_lab(p_lo), cm_to_lab(p_hi))  # order must not matter
    assert v["pt_hi_lo_cm"][0] == pytest.approx(4.0, rel=1e-10)
    assert v["pl_hi_lo_cm"][0] == pytest.approx(0.0, abs=1e-10)
    assert v["pt_thrust_cm"][0] == pytest.approx(8.0 / np.sqrt(20.0), rel=1e-10)
    assert v["pt_mumu_cm"][0] == pytest.approx(np.hypot(4.0, 2.0), rel=1e-10)
    assert v["opening_angle_cm"][0] == pytest.approx(np.pi / 2, rel=1e-10)
    # a 30 deg opening: pl = |p_hi| cos 30, pt = |p_hi| sin 30
    p_lo2 = four_momentum(np.array([[0.0, 0.0, 1.0]]), M_MUON)
    p_hi2 = four_momentum(np.array([[3 * np.sin(np.pi / 6), 0.0, 3 * np.cos(np.pi / 6)]]), M_MUON)
    w = pair_variables(cm_to_lab(p_hi2), cm_to_lab(p_lo2))
    assert w["pl_hi_lo_cm"][0] == pytest.approx(3 * np.cos(np.pi / 6), rel=1e-10)
    assert w["pt_hi_lo_cm"][0] == pytest.approx(1.5, rel=1e-10)
    assert w["pt_mumu_cm"][0] == pytest.approx(1.5, rel=1e-10)


def test_photon_recoil_variables_grouping() -> None:
    rec = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [np.nan, np.nan, np.nan], [0, 1.0, 0]])
    photons = np.array(
        [
            [1.0, 0.0, 1.0, 0.0],  # event 0: 90 deg
            [0.5, 0.0, 0.0, 0.5],  # event 0: 0 deg
            [0.2, 0.0, 0.2, 0.0],  # event 2 (undefined recoil)
        ]
    )
    e_sum, amin = photon_recoil_variables(rec, photons, np.array([2, 0, 1, 0]))
    np.testing.assert_allclose(e_sum, [1.5, 0.0, 0.2, 0.0])
    assert amin[0] == pytest.approx(0.0, abs=1e-12)
    assert amin[1] == pytest.approx(np.pi)  # no photon
    assert np.isnan(amin[2])
    assert amin[3] == pytest.approx(np.pi)
    with pytest.raises(ValueError, match="counts"):
        photon_recoil_variables(rec, photons, np.array([1, 0, 0, 0]))
