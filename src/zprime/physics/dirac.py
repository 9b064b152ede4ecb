"""Explicit Dirac-matrix toolkit for tree-level helicity amplitudes, vectorised over events.

A small, general set of building blocks to evaluate Feynman amplitudes numerically with
explicit 4x4 matrices, for arrays of phase-space points at once: gamma matrices, ``slash``,
massive or massless helicity spinors ``u``/``v``, polarisation vectors of massive and massless
vector bosons, and fermion propagators. It is the independent oracle against which the
analytic (FORM-derived) matrix element of :mod:`zprime.generators.signal` is tested, and it is meant
for
other amplitudes as well (e+e- -> e+e- gamma, e+e- -> pi+ pi- gamma).

Conventions
-----------
- Metric ``g = diag(+1, -1, -1, -1)``; four-vectors are arrays with the last axis
  ``(E, px, py, pz)`` (upper index), any leading shape ``(...)``.
- Gamma matrices in the Dirac (standard) representation, as in Bjorken-Drell and
  Peskin-Schroeder's Dirac form: ``gamma^0 = diag(1, 1, -1, -1)``,
  ``gamma^i = [[0, sigma_i], [-sigma_i, 0]]``, ``gamma5 = i gamma^0 gamma^1 gamma^2 gamma^3``.
  :data:`GAMMA` holds ``gamma^mu`` with an upper index.
- Spinors are normalised to ``ubar u = 2m``, ``vbar v = -2m`` and satisfy the completeness
  relations ``sum_h u ubar = pslash + m`` and ``sum_h v vbar = pslash - m``. Helicity
  ``h = +1/-1`` is twice the spin projection on the momentum direction; for ``v`` it is the
  physical helicity of the antiparticle (``v(p, h)`` is built from the two-spinor of helicity
  ``-h``). Two-component helicity spinors follow the HELAS conventions (Murayama, Watanabe,
  Hagiwara, KEK-91-11 (1992)):
  ``chi_+(p) = (cos(theta/2), e^{i phi} sin(theta/2))``,
  ``chi_-(p) = (-e^{-i phi} sin(theta/2), cos(theta/2))``.
- Polarisation vectors (HELAS): ``eps(k, +-1) = (-+ e1 - i e2)/sqrt(2)`` with
  ``e1 = (0, cos th cos ph, cos th sin ph, -sin th)``, ``e2 = (0, -sin ph, cos ph, 0)``, and
  ``eps(k, 0) = (|k|, E k_hat)/m`` for a massive boson, so that
  ``sum_h eps^mu eps^nu* = -g^{mu nu} + k^mu k^nu / m^2``. Use the complex conjugate for an
  outgoing boson (``conjugate=True``).
- :func:`fermion_propagator` returns ``(pslash + m) / (p^2 - m^2)`` *without* the factor ``i``;
  vertex factors and the ``i``'s are left to the caller (for a squared amplitude only the
  relative phases between diagrams matter).

Everything is plain numpy (complex128); shapes broadcast over the leading axes. A momentum
along the z axis gets the azimuth ``phi = 0``; a particle at rest is given the direction +z.

Example: the spin-summed ``|vbar(p2) gamma^mu u(p1) ubar(k1) gamma_mu v(k2)|^2`` ::

    total = 0
    for h1, h2, h3, h4 in itertools.product((-1, 1), repeat=4):
        je = current(dirac_bar(v_spinor(p2, 0.0, h2)), u_spinor(p1, 0.0, h1))
        jm = current(dirac_bar(u_spinor(k1, m, h3)), v_spinor(k2, m, h4))
        total = total + abs(contract(je, jm)) ** 2
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "GAMMA",
    "GAMMA5",
    "IDENTITY",
    "METRIC",
    "chain",
    "contract",
    "current",
    "dirac_bar",
    "fermion_propagator",
    "lower",
    "minkowski_dot",
    "polarization_vector",
    "sandwich",
    "slash",
    "u_spinor",
    "v_spinor",
]

METRIC: NDArray[np.float64] = np.diag([1.0, -1.0, -1.0, -1.0])
"""The Minkowski metric g_{mu nu} = diag(+1, -1, -1, -1)."""

_SIGMA = np.array(
    [
        [[0, 1], [1, 0]],
        [[0, -1j], [1j, 0]],
        [[1, 0], [0, -1]],
    ],
    dtype=np.complex128,
)
_I2 = np.eye(2, dtype=np.complex128)
_Z2 = np.zeros((2, 2), dtype=np.complex128)

IDENTITY: NDArray[np.complex128] = np.eye(4, dtype=np.complex128)
"""The 4x4 unit matrix."""

GAMMA: NDArray[np.complex128] = np.array(
    [np.block([[_I2, _Z2], [_Z2, -_I2]])]
    + [np.block([[_Z2, _SIGMA[i]], [-_SIGMA[i], _Z2]]) for i in range(3)]
)
"""``GAMMA[mu]`` = gamma^mu (upper index), Dirac representation, shape (4, 4, 4)."""

GAMMA5: NDArray[np.complex128] = 1j * GAMMA[0] @ GAMMA[1] @ GAMMA[2] @ GAMMA[3]
"""gamma5 = i gamma^0 gamma^1 gamma^2 gamma^3 = [[0, 1], [1, 0]] in the Dirac representation."""

_GAMMA_LOWER = np.einsum("mn,nab->mab", METRIC, GAMMA)


def _as4(p: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape[-1:] != (4,):
        raise ValueError(f"four-vectors need a last axis of length 4, got shape {arr.shape}")
    return arr


def lower(p: ArrayLike) -> NDArray[np.generic]:
    """Lower the index: p_mu = g_{mu nu} p^nu (real or complex, shape (..., 4))."""
    arr = np.asarray(p)
    return arr * np.array([1.0, -1.0, -1.0, -1.0])


def minkowski_dot(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Real Minkowski product a.b = a^0 b^0 - a.b of (..., 4) arrays."""
    a = _as4(a)
    b = _as4(b)
    return (
        a[..., 0] * b[..., 0]
        - a[..., 1] * b[..., 1]
        - a[..., 2] * b[..., 2]
        - a[..., 3] * b[..., 3]
    )


def contract(a: ArrayLike, b: ArrayLike) -> NDArray[np.complex128]:
    """a^mu b_mu for complex (..., 4) vectors, no complex conjugation."""
    a = np.asarray(a)
    b = np.asarray(b)
    return (
        a[..., 0] * b[..., 0]
        - a[..., 1] * b[..., 1]
        - a[..., 2] * b[..., 2]
        - a[..., 3] * b[..., 3]
    )


def slash(p: ArrayLike) -> NDArray[np.complex128]:
    """pslash = gamma^mu p_mu for real or complex (..., 4) vectors; shape (..., 4, 4)."""
    arr = np.asarray(p)
    return np.einsum("...m,mab->...ab", arr, _GAMMA_LOWER)


def chain(*matrices: ArrayLike) -> NDArray[np.complex128]:
    """Matrix product of (..., 4, 4) arrays (or constant 4x4 matrices), broadcasting."""
    if not matrices:
        return IDENTITY.copy()
    out = np.asarray(matrices[0], dtype=np.complex128)
    for m in matrices[1:]:
        out = out @ np.asarray(m, dtype=np.complex128)
    return out


def dirac_bar(psi: ArrayLike) -> NDArray[np.complex128]:
    """psibar = psi^dagger gamma^0 of (..., 4) spinors (a row spinor, same shape)."""
    arr = np.asarray(psi, dtype=np.complex128)
    return np.conj(arr) * np.array([1.0, 1.0, -1.0, -1.0])


def sandwich(bar: ArrayLike, matrix: ArrayLike, psi: ArrayLike) -> NDArray[np.complex128]:
    """bar . matrix . psi for row spinors (..., 4), matrices (..., 4, 4), spinors (..., 4)."""
    return np.einsum("...a,...ab,...b->...", bar, matrix, psi)


def current(bar: ArrayLike, psi: ArrayLike) -> NDArray[np.complex128]:
    """The vector current J^mu = bar gamma^mu psi, shape (..., 4) (upper index)."""
    return np.einsum("...a,mab,...b->...m", bar, GAMMA, psi)


def _angles(p: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """|p|, cos(theta/2), sin(theta/2), cos(phi), sin(phi) of the momentum direction."""
    px, py, pz = p[..., 1], p[..., 2], p[..., 3]
    pabs = np.sqrt(px * px + py * py + pz * pz)
    pt = np.hypot(px, py)
    at_rest = pabs == 0.0
    safe = np.where(at_rest, 1.0, pabs)
    cos_half = np.where(at_rest, 1.0, np.sqrt(np.clip((safe + pz) / (2.0 * safe), 0.0, 1.0)))
    sin_half = np.where(at_rest, 0.0, np.sqrt(np.clip((safe - pz) / (2.0 * safe), 0.0, 1.0)))
    on_axis = pt == 0.0
    pt_safe = np.where(on_axis, 1.0, pt)
    cos_phi = np.where(on_axis, 1.0, px / pt_safe)
    sin_phi = np.where(on_axis, 0.0, py / pt_safe)
    return pabs, cos_half, sin_half, cos_phi, sin_phi


def _chi(p: NDArray[np.float64], helicity: int) -> NDArray[np.complex128]:
    """Two-component helicity eigenspinor chi_h(p_hat) (sigma.p_hat chi_h = h chi_h)."""
    _, ch, sh, cphi, sphi = _angles(p)
    eiphi = cphi + 1j * sphi
    if helicity == 1:
        return np.stack([ch + 0j, eiphi * sh], axis=-1)
    if helicity == -1:
        return np.stack([-np.conj(eiphi) * sh, ch + 0j], axis=-1)
    raise ValueError(f"fermion helicity must be +1 or -1, got {helicity}")


def _energy_factors(
    p: NDArray[np.float64], mass: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """sqrt(E + m) and sqrt(E - m) with E from p[..., 0] (clipped at 0 against rounding)."""
    m = np.asarray(mass, dtype=np.float64)
    e = p[..., 0]
    return np.sqrt(np.clip(e + m, 0.0, None)), np.sqrt(np.clip(e - m, 0.0, None))


def u_spinor(p: ArrayLike, mass: ArrayLike, helicity: int) -> NDArray[np.complex128]:
    """Dirac spinor u(p, h) of a fermion with mass ``mass`` and helicity ``h = +-1``.

    ``u = (sqrt(E+m) chi_h, h sqrt(E-m) chi_h)``; satisfies ``(pslash - m) u = 0``.

    Parameters
    ----------
    p
        (..., 4) on-shell four-momenta (E, px, py, pz).
    mass
        Mass (scalar or broadcastable to ``p[..., 0]``); 0 for a massless fermion.
    helicity
        +1 or -1.
    """
    p = _as4(p)
    chi = _chi(p, helicity)
    a, b = _energy_factors(p, mass)
    return np.concatenate([a[..., None] * chi, helicity * b[..., None] * chi], axis=-1)


def v_spinor(p: ArrayLike, mass: ArrayLike, helicity: int) -> NDArray[np.complex128]:
    """Dirac spinor v(p, h) of an antifermion with physical helicity ``h = +-1``.

    ``v = (-h sqrt(E-m) chi_{-h}, sqrt(E+m) chi_{-h})``; satisfies ``(pslash + m) v = 0``.
    """
    p = _as4(p)
    chi = _chi(p, -helicity)
    a, b = _energy_factors(p, mass)
    return np.concatenate([-helicity * b[..., None] * chi, a[..., None] * chi], axis=-1)


def polarization_vector(
    k: ArrayLike, mass: ArrayLike, helicity: int, *, conjugate: bool = False
) -> NDArray[np.complex128]:
    """Polarisation vector eps^mu(k, h) of a vector boson (upper index), shape (..., 4).

    Parameters
    ----------
    k
        (..., 4) four-momenta.
    mass
        Boson mass; helicity 0 needs ``mass > 0``.
    helicity
        +1, -1, or 0 (longitudinal, massive bosons only).
    conjugate
        Return eps* (for an outgoing boson).
    """
    k = _as4(k)
    kabs, ch, sh, cphi, sphi = _angles(k)
    cth = ch * ch - sh * sh
    sth = 2.0 * ch * sh
    if helicity in (1, -1):
        zero = np.zeros_like(cth)
        e1 = np.stack([zero, cth * cphi, cth * sphi, -sth], axis=-1)
        e2 = np.stack([zero, -sphi, cphi, zero], axis=-1)
        eps = (-helicity * e1 - 1j * e2) / np.sqrt(2.0)
    elif helicity == 0:
        m = np.asarray(mass, dtype=np.float64)
        if np.any(m <= 0.0):
            raise ValueError("a longitudinal polarisation needs a positive mass")
        e = k[..., 0]
        eps = (
            np.stack(
                [kabs, e * sth * cphi, e * sth * sphi, e * cth],
                axis=-1,
            )
            / m[..., None]
            + 0j
        )
    else:
        raise ValueError(f"vector-boson helicity must be -1, 0 or +1, got {helicity}")
    return np.conj(eps) if conjugate else eps


def fermion_propagator(p: ArrayLike, mass: ArrayLike) -> NDArray[np.complex128]:
    """Fermion propagator numerator over denominator, (pslash + m) / (p^2 - m^2), without i.

    ``p`` is the momentum along the fermion-number flow; shape (..., 4, 4).
    """
    p = _as4(p)
    m = np.asarray(mass, dtype=np.float64)
    den = minkowski_dot(p, p) - m * m
    num = slash(p) + m[..., None, None] * IDENTITY
    return num / den[..., None, None]
