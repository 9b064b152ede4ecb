"""Tests of the explicit Dirac-matrix toolkit zprime.physics.dirac."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from zprime.physics import dirac as D
from zprime.physics.constants import M_MUON


def _momenta(rng: np.random.Generator, n: int, mass: float) -> np.ndarray:
    """Random on-shell momenta, including the awkward directions +z, -z and at rest."""
    p3 = rng.normal(size=(n, 3)) * rng.uniform(0.1, 5.0, size=(n, 1))
    p3[0] = [0.0, 0.0, 2.0]
    p3[1] = [0.0, 0.0, -3.0]
    if mass > 0:
        p3[2] = [0.0, 0.0, 0.0]
    e = np.sqrt((p3**2).sum(axis=1) + mass**2)
    return np.column_stack([e, p3])


def test_clifford_algebra() -> None:
    for mu, nu in itertools.product(range(4), repeat=2):
        anti = D.GAMMA[mu] @ D.GAMMA[nu] + D.GAMMA[nu] @ D.GAMMA[mu]
        np.testing.assert_allclose(anti, 2.0 * D.METRIC[mu, nu] * D.IDENTITY, atol=1e-15)
        np.testing.assert_allclose(
            D.GAMMA5 @ D.GAMMA[mu] + D.GAMMA[mu] @ D.GAMMA5, np.zeros((4, 4)), atol=1e-15
        )
    np.testing.assert_allclose(D.GAMMA5 @ D.GAMMA5, D.IDENTITY, atol=1e-15)
    # gamma^0 gamma^mu gamma^0 = gamma^mu dagger
    for mu in range(4):
        np.testing.assert_allclose(
            D.GAMMA[0] @ D.GAMMA[mu] @ D.GAMMA[0], D.GAMMA[mu].conj().T, atol=1e-15
        )


def test_slash_squares_to_mass(rng: np.random.Generator) -> None:
    p = _momenta(rng, 20, 0.7)
    ps = D.slash(p)
    np.testing.assert_allclose(ps @ ps, (0.49 * D.IDENTITY)[None].repeat(20, 0), atol=1e-12)


@pytest.mark.parametrize("mass", [0.0, M_MUON, 1.3])
def test_spinors_dirac_equation_norm_completeness(rng: np.random.Generator, mass: float) -> None:
    p = _momenta(rng, 30, mass)
    ps = D.slash(p)
    m1 = mass * D.IDENTITY
    sum_u = 0.0
    sum_v = 0.0
    for h in (-1, 1):
        u = D.u_spinor(p, mass, h)
        v = D.v_spinor(p, mass, h)
        np.testing.assert_allclose(np.einsum("nab,nb->na", ps - m1, u), 0.0, atol=1e-12)
        np.testing.assert_allclose(np.einsum("nab,nb->na", ps + m1, v), 0.0, atol=1e-12)
        ubar = D.dirac_bar(u)
        vbar = D.dirac_bar(v)
        np.testing.assert_allclose(np.einsum("na,na->n", ubar, u), 2.0 * mass, atol=1e-12)
        np.testing.assert_allclose(np.einsum("na,na->n", vbar, v), -2.0 * mass, atol=1e-12)
        # Gordon identity for the diagonal current: ubar gamma^mu u = 2 p^mu
        np.testing.assert_allclose(D.current(ubar, u), 2.0 * p, atol=1e-12)
        np.testing.assert_allclose(D.current(vbar, v), 2.0 * p, atol=1e-12)
        sum_u = sum_u + np.einsum("na,nb->nab", u, ubar)
        sum_v = sum_v + np.einsum("na,nb->nab", v, vbar)
    np.testing.assert_allclose(sum_u, ps + m1, atol=1e-12)
    np.testing.assert_allclose(sum_v, ps - m1, atol=1e-12)


def test_helicity_eigenstates(rng: np.random.Generator) -> None:
    p = _momenta(rng, 30, M_MUON)[3:]  # not at rest
    phat = p[:, 1:] / np.linalg.norm(p[:, 1:], axis=1, keepdims=True)
    # spin operator Sigma^i = gamma5 gamma^0 gamma^i (block-diagonal sigma^i)
    sigma = np.array([D.GAMMA5 @ D.GAMMA[0] @ D.GAMMA[i] for i in (1, 2, 3)])
    hel_op = np.einsum("ni,iab->nab", phat, sigma)
    for h in (-1, 1):
        u = D.u_spinor(p, M_MUON, h)
        v = D.v_spinor(p, M_MUON, h)
        np.testing.assert_allclose(np.einsum("nab,nb->na", hel_op, u), h * u, atol=1e-12)
        # v(p, h) describes an antiparticle of helicity h: Sigma.p v = -h v
        np.testing.assert_allclose(np.einsum("nab,nb->na", hel_op, v), -h * v, atol=1e-12)


def test_massive_polarisation_sum(rng: np.random.Generator) -> None:
    mass = 2.3
    k = _momenta(rng, 25, mass)
    total = 0.0
    vecs = {}
    for h in (-1, 0, 1):
        eps = D.polarization_vector(k, mass, h)
        vecs[h] = eps
        np.testing.assert_allclose(D.contract(eps, k), 0.0, atol=1e-12)
        np.testing.assert_allclose(D.contract(eps, np.conj(eps)), -1.0, atol=1e-12)
        total = total + np.einsum("nm,nv->nmv", eps, np.conj(eps))
    expected = -np.linalg.inv(D.METRIC)[None] + np.einsum("nm,nv->nmv", k, k) / mass**2
    np.testing.assert_allclose(total, expected, atol=1e-12)
    # orthogonality between helicities
    for a, b in itertools.combinations((-1, 0, 1), 2):
        np.testing.assert_allclose(D.contract(vecs[a], np.conj(vecs[b])), 0.0, atol=1e-12)
    conj = D.polarization_vector(k, mass, 1, conjugate=True)
    np.testing.assert_allclose(conj, np.conj(vecs[1]))


def test_massless_polarisation_transverse(rng: np.random.Generator) -> None:
    k = _momenta(rng, 25, 0.0)
    for h in (-1, 1):
        eps = D.polarization_vector(k, 0.0, h)
        np.testing.assert_allclose(D.contract(eps, k), 0.0, atol=1e-12)
        np.testing.assert_allclose(eps[:, 0], 0.0, atol=1e-15)
        np.testing.assert_allclose(D.contract(eps, np.conj(eps)), -1.0, atol=1e-12)
    with pytest.raises(ValueError, match="positive mass"):
        D.polarization_vector(k, 0.0, 0)


def test_propagator_inverts_dirac_operator(rng: np.random.Generator) -> None:
    p = rng.normal(size=(10, 4)) * 3.0  # off shell
    s = D.fermion_propagator(p, M_MUON)
    np.testing.assert_allclose(
        (D.slash(p) - M_MUON * D.IDENTITY) @ s, np.broadcast_to(D.IDENTITY, s.shape), atol=1e-10
    )


def test_born_mumu_matches_textbook(rng: np.random.Generator) -> None:
    """(1/4) sum |M|^2 of e+e- -> mu+ mu- = e^4 [1 + 4m^2/s + (1 - 4m^2/s) cos^2 theta]."""
    n = 40
    rs = 3.0
    m = M_MUON
    cth = rng.uniform(-1, 1, n)
    phi = rng.uniform(0, 2 * math.pi, n)
    pk = math.sqrt(rs**2 / 4 - m**2)
    sth = np.sqrt(1 - cth**2)
    k1 = np.column_stack(
        [np.full(n, rs / 2), pk * sth * np.cos(phi), pk * sth * np.sin(phi), pk * cth]
    )
    k2 = k1 * np.array([1, -1, -1, -1])
    p1 = np.tile([rs / 2, 0, 0, rs / 2], (n, 1))
    p2 = np.tile([rs / 2, 0, 0, -rs / 2], (n, 1))
    total = 0.0
    for h1, h2, h3, h4 in itertools.product((-1, 1), repeat=4):
        je = D.current(D.dirac_bar(D.v_spinor(p2, 0.0, h2)), D.u_spinor(p1, 0.0, h1))
        jm = D.current(D.dirac_bar(D.u_spinor(k1, m, h3)), D.v_spinor(k2, m, h4))
        total = total + np.abs(D.contract(je, jm) / rs**2) ** 2
    # units e = 1; M = J_e . J_mu / s
    expected = 1 + 4 * m**2 / rs**2 + (1 - 4 * m**2 / rs**2) * cth**2
    np.testing.assert_allclose(total / 4, expected, rtol=1e-12)


def test_bad_arguments() -> None:
    p = np.array([1.0, 0.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="helicity"):
        D.u_spinor(p, 0.1, 0)
    with pytest.raises(ValueError, match="helicity"):
        D.polarization_vector(p, 0.1, 2)
    with pytest.raises(ValueError, match="last axis"):
        D.u_spinor(np.zeros(3), 0.0, 1)
