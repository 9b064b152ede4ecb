from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate

from zprime.generators.isr import (
    beta_isr,
    isr_kinematics,
    radiator,
    sample_energy_loss,
    structure_function,
)
from zprime.physics.constants import ALPHA_0, M_ELECTRON, SQRT_S

S = SQRT_S**2


def test_beta_at_belle2_energy() -> None:
    # 2 alpha/pi (ln(s/m_e^2) - 1) by hand: ln(112.0/0.000511^2) = 19.88
    expected = 2 * ALPHA_0 / np.pi * (np.log(S / M_ELECTRON**2) - 1)
    assert beta_isr(S) == pytest.approx(expected, rel=1e-12)
    assert beta_isr(S) == pytest.approx(0.0877, abs=2e-4)


def test_structure_function_is_normalised() -> None:
    # integrate in u where v = u^(2/beta): the integrand is smooth there
    b = beta_isr(S)

    def in_u(u: float) -> float:
        _, w = sample_energy_loss(np.array([u]), S)
        return float(w[0])

    total, _ = integrate.quad(in_u, 0.0, 1.0, limit=200)
    assert total == pytest.approx(1.0, abs=1e-10)
    # the weight is the density divided by the sampled singular factor
    v = np.array([1e-6, 0.01, 0.5, 0.99])
    _, w = sample_energy_loss(v ** (b / 2), S)
    np.testing.assert_allclose(
        structure_function(1 - v, S), w * b / 2 * v ** (b / 2 - 1), rtol=1e-9
    )
    by_hand = b / 2 * 0.5 ** (b / 2 - 1) * (1 + 3 * b / 8) - b / 4 * 1.5
    assert float(structure_function(0.5, S)) == pytest.approx(by_hand, rel=1e-14)


def test_sampling_reproduces_the_density(rng: np.random.Generator) -> None:
    v, w = sample_energy_loss(rng.random(2_000_000), S)
    assert np.all((w > 0.5) & (w < 1.04))
    assert np.mean(w) == pytest.approx(1.0, abs=1e-3)
    # mean energy loss: int v D(1-v) dv by quadrature in u
    mean_v, _ = integrate.quad(
        lambda u: float(np.prod(sample_energy_loss(np.array([u]), S))), 0, 1, limit=200
    )
    assert np.average(v, weights=w) * np.mean(w) == pytest.approx(mean_v, rel=5e-3)
    assert 0.005 < mean_v < 0.05


def test_two_legs_give_the_combined_radiator(rng: np.random.Generator) -> None:
    n = 4_000_000
    v1, w1 = sample_energy_loss(rng.random(n), S)
    v2, w2 = sample_energy_loss(rng.random(n), S)
    v = 1 - (1 - v1) * (1 - v2)
    w = w1 * w2
    edges = np.array([0.05, 0.1, 0.2, 0.4, 0.6, 0.8])
    hist, _ = np.histogram(v, bins=edges, weights=w)
    hist /= n
    expected = np.array(
        [
            integrate.quad(lambda x: float(radiator(x, S)), a, b)[0]
            for a, b in itertools.pairwise(edges)
        ]
    )
    # the two agree to first order in beta; the O(beta^2) difference is a few percent
    np.testing.assert_allclose(hist, expected, rtol=0.06)


def test_isr_kinematics_conserves_momentum() -> None:
    v1 = np.array([0.0, 0.3, 0.1])
    v2 = np.array([0.0, 0.0, 0.5])
    k = isr_kinematics(v1, v2, SQRT_S)
    e_beam = SQRT_S / 2
    # hard system + photons = initial state (sqrt_s, 0, 0, 0) in the c.m. frame
    x1, x2 = 1 - v1, 1 - v2
    e_hard = (x1 + x2) * e_beam
    pz_hard = (x1 - x2) * e_beam
    np.testing.assert_allclose(e_hard**2 - pz_hard**2, k.s_hat, rtol=1e-12)
    np.testing.assert_allclose(pz_hard / e_hard, k.beta_z, atol=1e-15)
    total = k.photon_electron + k.photon_positron
    np.testing.assert_allclose(total[:, 0] + e_hard, SQRT_S, rtol=1e-12)
    np.testing.assert_allclose(total[:, 3] + pz_hard, 0.0, atol=1e-12)
    assert k.s_hat[0] == pytest.approx(S)
