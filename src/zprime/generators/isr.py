"""Initial-state radiation with the electron structure function.

Each beam lepton radiates collinear photons and enters the hard process with a fraction ``x`` of
its energy, distributed according to the leading-logarithmic electron structure function of
Kuraev and Fadin [1]_ with the exponentiated soft part and the first-order hard correction
(the form used in Jadach and Ward's YFS-type analyses and in most e+e- ISR generators [2]_):

.. math::

    D(x, s) = \\frac{\\beta}{2} (1-x)^{\\beta/2 - 1}\\left(1 + \\frac{3}{8}\\beta\\right)
              - \\frac{\\beta}{4}(1 + x),
    \\qquad \\beta = \\frac{2\\alpha}{\\pi}\\left(\\ln\\frac{s}{m_e^2} - 1\\right),

normalised to :math:`\\int_0^1 D\\,dx = 1`. The cross section with ISR is

.. math::

    \\sigma(s) = \\int_0^1 dx_1 \\int_0^1 dx_2\\, D(x_1, s) D(x_2, s)\\, \\hat\\sigma(x_1 x_2 s),

and the hard system moves along the beam axis. Convolving the two legs reproduces, to first
order in beta, the combined radiator
:math:`W(v) = \\beta v^{\\beta-1}(1 + 3\\beta/4) - \\beta(1 - v/2)` of the fractional energy
loss ``v = 1 - s'/s``.

The singular factor :math:`v^{\\beta/2-1}` (``v = 1 - x``) is sampled exactly by
``v = u**(2/beta)`` for uniform ``u``; what is left is a smooth weight between 0.5 and 1.03,
so that the convolution is a smooth integrand in ``u`` for ``vegas``.

Real photons couple with the Thomson-limit coupling, so the structure function uses
:data:`zprime.physics.constants.ALPHA_0` unless told otherwise.

References
----------
.. [1] E. A. Kuraev and V. S. Fadin, Sov. J. Nucl. Phys. 41 (1985) 466.
.. [2] S. Jadach, B. F. L. Ward and Z. Was, Comput. Phys. Commun. 130 (2000) 260 (KKMC, the PRL's
       mu mu and tau tau generator), and O. Nicrosini and L. Trentadue, Phys. Lett. B 196 (1987)
       551 for the structure-function form.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime.physics.constants import ALPHA_0, M_ELECTRON

__all__ = [
    "IsrKinematics",
    "beta_isr",
    "isr_kinematics",
    "radiator",
    "sample_energy_loss",
    "structure_function",
]


def beta_isr(s: float, alpha: float = ALPHA_0) -> float:
    """The large logarithm beta = (2 alpha / pi)(ln(s/m_e^2) - 1), 0.0878 at sqrt(s) = 10.58 GeV."""
    if s <= 0:
        raise ValueError(f"s must be positive, got {s}")
    return 2.0 * alpha / math.pi * (math.log(s / M_ELECTRON**2) - 1.0)


def structure_function(x: ArrayLike, s: float, alpha: float = ALPHA_0) -> NDArray[np.float64]:
    """The per-leg electron structure function D(x, s) (density in the momentum fraction x)."""
    x = np.asarray(x, dtype=np.float64)
    b = beta_isr(s, alpha)
    v = 1.0 - x
    with np.errstate(divide="ignore"):
        soft = 0.5 * b * np.power(v, 0.5 * b - 1.0) * (1.0 + 0.375 * b)
    return soft - 0.25 * b * (1.0 + x)


def radiator(v: ArrayLike, s: float, alpha: float = ALPHA_0) -> NDArray[np.float64]:
    """Combined two-leg radiator W(v) of the fractional energy loss v = 1 - s'/s (O(beta))."""
    v = np.asarray(v, dtype=np.float64)
    b = beta_isr(s, alpha)
    with np.errstate(divide="ignore"):
        return b * np.power(v, b - 1.0) * (1.0 + 0.75 * b) - b * (1.0 - 0.5 * v)


def sample_energy_loss(
    u: ArrayLike, s: float, alpha: float = ALPHA_0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Map uniform numbers ``u`` in (0, 1) to energy losses ``v = 1 - x`` of one beam.

    Returns
    -------
    v, weight
        ``v = u**(2/beta)`` and the weight ``D(1 - v) / ((beta/2) v^(beta/2 - 1))`` such that
        ``E_u[weight * f(v)] = int_0^1 D(x) f(1 - x) dx`` for any f.
    """
    u = np.asarray(u, dtype=np.float64)
    b = beta_isr(s, alpha)
    v = np.power(u, 2.0 / b)
    weight = (1.0 + 0.375 * b) - 0.5 * (2.0 - v) * np.power(v, 1.0 - 0.5 * b)
    return v, weight


class IsrKinematics(NamedTuple):
    """The hard system after ISR, in the e+e- c.m. frame (electron beam along +z)."""

    s_hat: NDArray[np.float64]
    """Squared c.m. energy of the hard process, x1 x2 s."""
    beta_z: NDArray[np.float64]
    """Velocity of the hard system along +z in the e+e- c.m. frame."""
    photon_electron: NDArray[np.float64]
    """(N, 4) four-momentum (E, px, py, pz) of the photon radiated by the electron (along +z)."""
    photon_positron: NDArray[np.float64]
    """(N, 4) four-momentum of the photon radiated by the positron (along -z)."""


def isr_kinematics(v1: ArrayLike, v2: ArrayLike, sqrt_s: float) -> IsrKinematics:
    """Kinematics of collinear ISR with energy losses ``v1`` (electron) and ``v2`` (positron).

    Parameters
    ----------
    v1, v2
        Fractions of the beam energy (in the c.m. frame) carried away by the photons.
    sqrt_s
        Nominal c.m. energy in GeV.
    """
    v1 = np.asarray(v1, dtype=np.float64)
    v2 = np.asarray(v2, dtype=np.float64)
    e_beam = 0.5 * sqrt_s
    x1 = 1.0 - v1
    x2 = 1.0 - v2
    s_hat = x1 * x2 * sqrt_s**2
    beta_z = (x1 - x2) / (x1 + x2)
    zero = np.zeros_like(v1)
    k1 = np.stack([v1 * e_beam, zero, zero, v1 * e_beam], axis=-1)
    k2 = np.stack([v2 * e_beam, zero, zero, -v2 * e_beam], axis=-1)
    return IsrKinematics(s_hat=s_hat, beta_z=beta_z, photon_electron=k1, photon_positron=k2)
