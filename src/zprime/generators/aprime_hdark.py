"""The dark Higgsstrahlung signal e+e- -> A' h', A' -> mu+ mu-, h' invisible: matrix element,
cross section with and without ISR, and unweighted events.

This module owns the signal generator of the dark-photon + invisible-dark-Higgs search
(Belle II, PRL 130, 071804 (2023), arXiv:2207.00509); the model and its Born cross section are
in :mod:`zprime.physics.dark_higgs` (Batell, Pospelov, Ritz, PRD 79, 115008 (2009),
arXiv:0903.0363).

Process and matrix element
--------------------------
``e-(p1) e+(p2) -> A'*(P) -> A'(q) h'(k)``, ``A'(q) -> mu-(k1) mu+(k2)``: the electron and the
muon couple to the A' with ``epsilon e gamma^mu`` (kinetic mixing), the h' to two A' with
``2 g_D M g^{mu nu}`` (M = M_A', alpha_D = g_D^2 / 4 pi, unit dark charge). Massless electrons,
massive muons. The ``P P / M^2`` part of the s-channel propagator vanishes on the conserved
electron current and the ``q q / M^2`` part of the A' propagator on the muon current
(``ubar(k1) (k1 + k2)slash v(k2) = (m - m) ubar v = 0``), so the Lorentz structure is
``J_e . J_mu`` and the spin sum is that of e+e- -> mu+ mu- with ``k1 + k2 = q != p1 + p2``:

.. math::

    \\overline{|M|^2} = \\frac{32\\, e^4 \\epsilon^4\\, g_D^2 M^2}{(s - M^2)^2}\\,
        \\frac{T}{(q^2 - M^2)^2 + M^2\\Gamma^2},\\qquad
    T = (p_1 k_1)(p_2 k_2) + (p_1 k_2)(p_2 k_1) + m_\\mu^2 (p_1 p_2),

averaged over the initial spins (1/4 included). The A' width is of order
``epsilon^2 alpha M`` (~1e-9 GeV for epsilon = 1e-4), so the narrow-width approximation
``1/((q^2 - M^2)^2 + M^2 Gamma^2) -> (pi / M Gamma) delta(q^2 - M^2)`` is exact for every
purpose here and keeps the full spin correlation between production and decay.
:func:`matrix_element_squared` is the first factor times T (the Breit-Wigner stripped); the
tests compare it with an explicit Dirac-matrix helicity sum (:mod:`zprime.physics.dirac`).

Normalisation: the cross section is sigma(e+e- -> A' h') for ``epsilon^2 alpha_D = 1`` and
B(A' -> mu mu) = 1, i.e. the NWA with ``Gamma = Gamma(A' -> mu mu) = (alpha epsilon^2 M / 3)
(1 + 2 m^2/M^2) (1 - 4 m^2/M^2)^(1/2)``; epsilon cancels. alpha is
:data:`~zprime.physics.constants.ALPHA_0` (as :func:`zprime.physics.dark_higgs.sigma_born_fb`).
Integrated over the decay, ``T`` averages to ``<T> = (M^2 + 2 m^2) s (2 + p^2 sin^2(theta) /
M^2) / 12`` (p: A' momentum, theta: its polar angle in the c.m. frame), so the A' polar-angle
distribution is ``dsigma/dcos(theta) ~ lambda sin^2(theta) + 8 M^2 / s`` exactly, and the total
is the Batell-Pospelov-Ritz formula (:func:`born_cross_section_mc` integrates the 2 -> 3 matrix
element; the tests find agreement to ~1e-5, its quasi-Monte Carlo precision). The A'
is longitudinal with probability ``f_L = E^2 / (E^2 + 2 M^2)`` (E: its c.m. energy), and the
mu- helicity angle theta* (in the A' rest frame, against the A' direction) follows
``f_L (1 - b^2 cos^2) + (1 - f_L)(1 - b^2 sin^2 / 2)``, ``b^2 = 1 - 4 m^2 / M^2``.

Event sampling (exact, no adaptation)
-------------------------------------
Given s_hat, the A' polar angle is drawn from its exact marginal ``2 + (p/M)^2 sin^2`` (a
mixture of a flat and a ``(3/4) sin^2`` density, the latter inverted in closed form,
``cos = 2 sin(arcsin(2u - 1) / 3)``), the azimuth and the decay direction uniformly; the weight
left is the spin correlation ``r = T / <T>``. For any A' spin state (pure or mixed) the decay
distribution is ``1 - b^2 |eps . n|^2`` over its mean ``1 - b^2/3``, so
``r <= 1 / (1 - b^2/3) <= 1.5``: an exact bound, so the hard process never overweights.

ISR
---
The same Kuraev-Fadin structure function and collinear kinematics as the Z' signal
(:mod:`zprime.generators.isr`): both beams lose fractions v1, v2 of their energy,
``s' = (1 - v1)(1 - v2) s``, the hard system moves along z and the ISR photons are written as
particles (PDG 22, along the beams; a photon of exactly zero energy is left out), then the
event is boosted to the Belle II lab frame as in :func:`zprime.generators.signal.write_signal`.
The Born sigma is steep near threshold: for small M_h' it grows as ``12 M^2 / (s' - M^2)`` when
s' comes down to (M_A' + M_h')^2 (an A'* close to its mass shell radiating a soft h'), so
radiative return makes sigma_ISR / sigma_Born grow as ln(1/M_h') (at M_A' = 4 GeV: 1.04 at
M_h' = 3 GeV, 1.37 at 0.5 GeV, 2.25 at 10 MeV, 2.80 at 1 MeV, +0.546 per decade below), and
for ``M_h' = 0`` it diverges logarithmically (only the A' width would cut it off): with ISR,
M_h' must be at least :data:`MIN_HDARK_ISR_GEV` = 1 keV. Most of that excess has a hard ISR
photon, so it lands at large recoil mass, outside a signal window.

- **Cross section** (:func:`sigma_fb`): ``sigma = int dz L(z) sigma_Born(z s)`` with the
  two-beam luminosity ``L(z) = int dx1/x1 D(x1) D(z/x1)``. Both integrals are Gauss-Legendre
  quadratures in variables that take out the singularities: ``v1 = a t^(2/beta)`` (the
  ``v^(beta/2 - 1)`` of one leg; ``L`` is symmetric, half the range doubled) and
  ``v = v_thr y^(1/beta)`` (the ``v^(beta - 1)`` of the pair), with a mesh in y refined
  geometrically toward the threshold. The quoted error is the difference between two rules of
  different order (~1e-14 relative; a 4x finer mesh agrees to 1e-13): sigma is not a Monte
  Carlo number. It is the error of the integral only, not of the O(beta) structure function.
- **Events**: v is drawn from a piecewise-constant density in y whose bins carry the quadrature
  integrals, the split (v1, v2) from a mixture of ``v1 = v t^(2/beta)`` and
  ``v2 = v t^(2/beta)`` (the two ends of the ``Beta(beta/2, beta/2)`` split of two soft legs)
  and, with probability ``0.1 v^2``, ``ln x1`` uniform (both legs hard, for small s'), and the
  weight ``D(x1) D(x2) sigma_Born(s') / q(v1, v2)`` corrects exactly for the proposal.
  Its maximum comes from a pilot run (50k points, times a 2% margin: 50k points reach 99.7% of
  the maximum of 4M); events beyond it are kept and counted (``overweight_fraction``, 0 in
  every test and benchmark so far). The mean of the trial weights is an independent Monte
  Carlo estimate of sigma (``sigma_mc_fb`` in the metadata).

Events are vectorised numpy; :func:`write_aprime_hdark` cuts a sample into chunks with seeds from
``zprime._util.chunk_rng(seed, 2, index)`` and maps them with :func:`zprime.parallel.map_tasks`,
so the file does not depend on the number of workers. Units: GeV, GeV^2, fb.

Length: one process: matrix element, phase space, ISR quadrature and proposal, and event writing
share the kinematic conventions (as in :mod:`zprime.generators.signal`).
"""

from __future__ import annotations

import contextlib
import functools
import math
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import awkward as ak
import numpy as np
from numpy.typing import ArrayLike, NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from scipy.stats import qmc

from zprime import __version__
from zprime._util import chunk_rng, provenance
from zprime.errors import ConfigError
from zprime.generators.isr import beta_isr
from zprime.io.events import EventWriter
from zprime.parallel import default_workers, local_pool, map_tasks
from zprime.physics.constants import (
    ALPHA_0,
    BETA_BOOST,
    E_ELECTRON_BEAM,
    E_POSITRON_BEAM,
    GEV2_TO_FB,
    M_MUON,
    PDG_DARK_HIGGS,
    SQRT_S,
)
from zprime.physics.dirac import minkowski_dot

__all__ = [
    "DEFAULT_SEED",
    "MIN_HDARK_ISR_GEV",
    "AprimeHdarkGenerator",
    "AprimeHdarkSample",
    "SigmaResult",
    "aprime_hdark_file_name",
    "born_cross_section_mc",
    "isr_luminosity",
    "matrix_element_squared",
    "sigma_fb",
    "width_mumu",
    "write_aprime_hdark",
]

DEFAULT_SEED: int = 20220701
"""Default seed of the pilot run of :class:`AprimeHdarkGenerator`."""

MIN_HDARK_ISR_GEV: float = 1e-6
"""Smallest M_h' (GeV) with ISR. sigma_ISR grows as ln(1/M_h') (module docstring); the NWA
s-channel propagator used here holds while 2 M_A' M_h' is far above M_A' Gamma_A' (Gamma_A' ~
1e-9 GeV at epsilon ~ 1e-4, ~1e-7 GeV at epsilon ~ 1e-3), and the quadrature resolves the
threshold peak down to M_h' ~ 1e-12 GeV."""

_M2 = M_MUON * M_MUON
_PDG_MU_MINUS = 13
_PDG_MU_PLUS = -13
_PDG_PHOTON = 22
_N_INNER = 48
"""Gauss-Legendre points of the inner (luminosity) integral; 64 agrees to ~1e-13."""
_N_OUTER = 8
"""Gauss-Legendre points per bin of the outer integral over y (the error rule uses 12)."""
_N_UNIFORM_BINS = 192
"""Bins of equal width in y (the bulk of the ISR spectrum)."""
_GRADED_DECADES = 14
"""The mesh in y is refined toward the threshold y = 1 down to 1 - y = 10^-14 ..."""
_GRADED_PER_DECADE = 8
"""... with this many bins per decade (neighbouring bins differ by 10^(1/8) = 1.33 in width)."""
_SPLIT_MIDDLE = 0.1
"""The middle component of the split of v between the two beams has probability this x v^2."""
_PILOT_MARGIN = 1.02
"""The unweighting maximum is the pilot run's largest ISR weight times this margin."""

F64 = NDArray[np.float64]


# --------------------------------------------------------------------------- input checks
def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return v


def _check_masses(
    m_aprime: Any, m_hdark: Any, sqrt_s: Any, isr: bool
) -> tuple[float, float, float]:
    """Validated (M_A', M_h', sqrt(s)); one-line ConfigErrors naming the offending value."""
    rs = _number(sqrt_s, "sqrt_s")
    if rs <= 0.0:
        raise ConfigError(f"sqrt_s must be positive, got {sqrt_s!r}")
    ma = _number(m_aprime, "M_A'")
    mh = _number(m_hdark, "M_h'")
    if ma <= 2.0 * M_MUON:
        raise ConfigError(
            f"M_A' = {m_aprime!r} GeV must be above the mu+ mu- threshold 2 m_mu = "
            f"{2.0 * M_MUON:.6f} GeV"
        )
    if mh < 0.0:
        raise ConfigError(f"M_h' = {m_hdark!r} GeV must be >= 0")
    if mh >= ma:
        raise ConfigError(
            f"M_h' = {m_hdark!r} GeV must be below M_A' = {m_aprime!r} GeV (the h' is then "
            "long-lived and invisible)"
        )
    if ma + mh >= rs:
        raise ConfigError(
            f"M_A' + M_h' = {ma + mh:g} GeV (M_A' = {m_aprime!r}, M_h' = {m_hdark!r}) must be "
            f"below sqrt(s) = {rs:g} GeV"
        )
    if isr and mh < MIN_HDARK_ISR_GEV:
        raise ConfigError(
            f"M_h' = {m_hdark!r} GeV with ISR: below {MIN_HDARK_ISR_GEV:g} GeV sigma grows as "
            "ln(1/M_h') (a soft h' from an A'* on its mass shell) until the A' width cuts it "
            "off; give a larger M_h' or isr=False"
        )
    return ma, mh, rs


def _check_count(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 1:
        raise ConfigError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _check_alpha(alpha: Any) -> float:
    a = _number(alpha, "alpha")
    if a <= 0.0:
        raise ConfigError(f"alpha must be positive, got {alpha!r}")
    return a


# --------------------------------------------------------------------------- matrix element


def matrix_element_squared(
    p1: ArrayLike,
    p2: ArrayLike,
    k1: ArrayLike,
    k2: ArrayLike,
    m_aprime: float,
    *,
    alpha: float = ALPHA_0,
    eps: float = 1.0,
    alpha_d: float = 1.0,
) -> F64:
    """Spin-averaged |M|^2 of e-(p1) e+(p2) -> h' A'(-> mu-(k1) mu+(k2)), A' Breit-Wigner stripped.

    Returns ``32 e^4 eps^4 g_D^2 M^2 T / (s - M^2)^2`` with
    ``T = (p1.k1)(p2.k2) + (p1.k2)(p2.k1) + m_mu^2 (p1.p2)``, ``e^2 = 4 pi alpha`` and
    ``g_D^2 = 4 pi alpha_D`` (see the module docstring); the full |M|^2 is this divided by
    ``(q^2 - M^2)^2 + M^2 Gamma^2``, ``q = k1 + k2``.

    Parameters
    ----------
    p1, p2
        (..., 4) four-momenta (E, px, py, pz) of the e- and the e+ (massless), GeV.
    k1, k2
        (..., 4) four-momenta of the mu- and the mu+ (on shell), in the same frame.
    m_aprime
        M_A' in GeV (the h'A'A' vertex is ``2 g_D M_A'``; in the NWA ``(k1 + k2)^2 = M_A'^2``).
    alpha, eps, alpha_d
        alpha of the e-A' and mu-A' vertices (times eps), and alpha_D.

    Returns
    -------
    ndarray
        |M|^2 times the A' propagator denominator, GeV^2.
    """
    p1, p2, k1, k2 = (np.asarray(v, dtype=np.float64) for v in (p1, p2, k1, k2))
    s = 2.0 * minkowski_dot(p1, p2)
    t = (
        minkowski_dot(p1, k1) * minkowski_dot(p2, k2)
        + minkowski_dot(p1, k2) * minkowski_dot(p2, k1)
        + _M2 * 0.5 * s
    )
    e2 = 4.0 * math.pi * alpha
    g2 = 4.0 * math.pi * alpha_d
    m2 = float(m_aprime) ** 2
    return 32.0 * e2 * e2 * eps**4 * g2 * m2 * t / (s - m2) ** 2


def width_mumu(m_aprime: ArrayLike, *, alpha: float = ALPHA_0, eps: float = 1.0) -> Any:
    """Gamma(A' -> mu+ mu-) = (alpha eps^2 M / 3)(1 + 2 m^2/M^2)(1 - 4 m^2/M^2)^(1/2), GeV.

    The NWA normalisation of the generator (B(A' -> mu mu) = 1 means Gamma = this width).
    """
    m = np.asarray(m_aprime, dtype=np.float64)
    r = _M2 / (m * m)
    out = alpha * eps * eps * m / 3.0 * (1.0 + 2.0 * r) * np.sqrt(np.maximum(1.0 - 4.0 * r, 0.0))
    return float(out) if out.ndim == 0 else out


def _sigma_born(s_hat: F64, ma: float, mh: float, alpha: float) -> F64:
    """Born sigma(e+e- -> A' h') in fb at eps^2 alpha_D = 1, vectorised over s_hat (GeV^2).

    The threshold factor is computed from ``Delta = s_hat - (M_A' + M_h')^2`` so that it stays
    accurate at ``Delta / s ~ 1e-12`` (the formula of :func:`zprime.physics.dark_higgs.
    sigma_born_fb`, which the tests compare with this one).
    """
    delta = np.maximum(s_hat - (ma + mh) ** 2, 0.0)
    lam = delta * (delta + 4.0 * ma * mh) / (s_hat * s_hat)
    one_minus_r = (delta + 2.0 * ma * mh + mh * mh) / s_hat
    r = ma * ma / s_hat
    sig = math.pi * alpha / (3.0 * s_hat) * np.sqrt(lam) * (lam + 12.0 * r) / one_minus_r**2
    return GEV2_TO_FB * sig


# --------------------------------------------------------------------------- hard process
def _sqrt_lambda(a: Any, b: Any, c: Any) -> Any:
    return np.sqrt(np.maximum((a - b - c) ** 2 - 4.0 * b * c, 0.0))


@dataclass
class _Hard:
    """Momenta in the c.m. frame of the hard process (e- along +z) and the spin weight."""

    k1: F64
    k2: F64
    kh: F64
    r: F64
    """``T / <T>``: the production-decay spin correlation (mean 1 at fixed s_hat)."""


def _aprime_cos(u_mix: F64, u: F64, kappa: F64) -> F64:
    """cos(theta) of the A' from the density ``2 + kappa (1 - c^2)`` on [-1, 1] (kappa = p^2/M^2).

    A mixture: flat with probability ``3 / (3 + kappa)``, else ``(3/4)(1 - c^2)`` by its inverse
    CDF ``c = 2 sin(arcsin(2u - 1) / 3)`` (the root in [-1, 1] of ``c^3 - 3c + 4u - 2 = 0``).
    """
    flat = u_mix * (3.0 + kappa) < 3.0
    return np.where(flat, 2.0 * u - 1.0, 2.0 * np.sin(np.arcsin(2.0 * u - 1.0) / 3.0))


def _hard(rs: F64, ma: float, mh: float, x: F64, *, flat_cos: bool = False) -> tuple[_Hard, F64]:
    """Hard-process kinematics from five unit-interval numbers per point.

    ``x[:, 0:2]``: the A' polar angle (mixture choice, position; see :func:`_aprime_cos`), or
    with ``flat_cos`` ``x[:, 1]`` uniform in cos; ``x[:, 2]``: A' azimuth; ``x[:, 3:5]``: cos and
    azimuth of the mu- in the A' rest frame (isotropic, axes parallel to the c.m. ones).
    Returns the momenta with ``r = T / <T>`` and ``cos(theta)`` of the A'.
    """
    s = rs * rs
    ma2, mh2 = ma * ma, mh * mh
    ea = (s + ma2 - mh2) / (2.0 * rs)
    p = _sqrt_lambda(s, ma2, mh2) / (2.0 * rs)
    kappa = (p / ma) ** 2
    c = 2.0 * x[:, 1] - 1.0 if flat_cos else _aprime_cos(x[:, 0], x[:, 1], kappa)
    st = np.sqrt(np.maximum(1.0 - c * c, 0.0))
    phi = (2.0 * math.pi) * x[:, 2]
    nx, ny, nz = st * np.cos(phi), st * np.sin(phi), c
    # the mu- in the A' rest frame, then boosted along n with gamma = E/M, gamma beta = p/M
    pstar = math.sqrt(0.25 * ma2 - _M2)
    cs = 2.0 * x[:, 3] - 1.0
    ss = np.sqrt(np.maximum(1.0 - cs * cs, 0.0))
    phs = (2.0 * math.pi) * x[:, 4]
    dx, dy, dz = pstar * ss * np.cos(phs), pstar * ss * np.sin(phs), pstar * cs
    gam = ea / ma
    gb = p / ma
    dpar = dx * nx + dy * ny + dz * nz
    coef = (gam - 1.0) * dpar + gb * (0.5 * ma)
    n = len(rs)
    k1 = np.empty((n, 4))
    k1[:, 0] = gam * (0.5 * ma) + gb * dpar
    k1[:, 1] = dx + coef * nx
    k1[:, 2] = dy + coef * ny
    k1[:, 3] = dz + coef * nz
    q = np.empty((n, 4))
    q[:, 0] = ea
    q[:, 1] = p * nx
    q[:, 2] = p * ny
    q[:, 3] = p * nz
    k2 = q - k1
    kh = -q
    kh[:, 0] = rs - ea
    # T = (s/2)(E1 E2 - z1 z2 + m^2) for p1,2 = (rs/2)(1, 0, 0, +-1); <T> over the decay
    t = 0.5 * s * (k1[:, 0] * k2[:, 0] - k1[:, 3] * k2[:, 3] + _M2)
    t_mean = (ma2 + 2.0 * _M2) * s * (2.0 + kappa * st * st) / 12.0
    return _Hard(k1=k1, k2=k2, kh=kh, r=t / t_mean), c


def _r_max(ma: float) -> float:
    """The exact bound 1 / (1 - b^2/3) of T / <T> (module docstring), b^2 = 1 - 4 m^2/M^2."""
    b2 = 1.0 - 4.0 * _M2 / (ma * ma)
    return 1.0 / (1.0 - b2 / 3.0)


class SigmaResult(NamedTuple):
    """A cross section in fb with its (numerical or Monte Carlo) uncertainty."""

    sigma_fb: float
    error_fb: float


def born_cross_section_mc(
    m_aprime: float,
    m_hdark: float,
    *,
    sqrt_s: float = SQRT_S,
    alpha: float = ALPHA_0,
    log2_points: int = 16,
    n_replicas: int = 8,
    seed: int = DEFAULT_SEED,
) -> SigmaResult:
    """Born sigma(e+e- -> A' h', A' -> mu mu) from the 2 -> 3 NWA matrix element, integrated
    over flat phase space by randomised quasi-Monte Carlo; eps^2 alpha_D = 1, B = 1.

    ``sigma = (1/2s) int dPhi2(P; q, k) dPhi2(q; k1, k2) |M|^2 / (2 M Gamma_mumu)`` with
    :func:`matrix_element_squared` and :func:`width_mumu` (eps = 1), the four angles uniform
    (scrambled Sobol points, ``n_replicas`` independent scramblings of ``2**log2_points``
    points; the error is the spread of the replicas over sqrt(n_replicas)). This is the check of
    the matrix element's normalisation against the analytic formula; the generator itself uses
    the analytic sigma_Born(s') and samples the angles exactly.
    """
    ma, mh, rs = _check_masses(m_aprime, m_hdark, sqrt_s, isr=False)
    a = _check_alpha(alpha)
    s = rs * rs
    p = _sqrt_lambda(s, ma * ma, mh * mh) / (2.0 * rs)
    pstar = math.sqrt(0.25 * ma * ma - _M2)
    # (1/2s) x |p|/(16 pi^2 rs) x |p*|/(16 pi^2 M) x (4 pi)^2 (the solid angles) / (2 M Gamma)
    norm = (
        1.0
        / (2.0 * s)
        * p
        / (16.0 * math.pi**2 * rs)
        * pstar
        / (16.0 * math.pi**2 * ma)
        * (4.0 * math.pi) ** 2
        / (2.0 * ma * width_mumu(ma, alpha=a))
    )
    p1 = np.array([0.5 * rs, 0.0, 0.0, 0.5 * rs])
    p2 = np.array([0.5 * rs, 0.0, 0.0, -0.5 * rs])
    means = []
    for rep in range(_check_count(n_replicas, "n_replicas")):
        sobol = qmc.Sobol(d=5, scramble=True, seed=np.random.default_rng([int(seed), rep]))
        x = sobol.random_base2(int(log2_points))
        h, _ = _hard(np.full(len(x), rs), ma, mh, x, flat_cos=True)
        me2 = matrix_element_squared(p1, p2, h.k1, h.k2, ma, alpha=a)
        means.append(float(np.mean(me2)) * norm * GEV2_TO_FB)
    arr = np.asarray(means)
    err = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else float("nan")
    return SigmaResult(float(arr.mean()), err)


# --------------------------------------------------------------------------- ISR
def _d_of_v(v: F64, beta: float) -> F64:
    """The structure function D(x) of :func:`zprime.generators.isr.structure_function` as a
    function of ``v = 1 - x`` (no rounding of 1 - v for tiny v)."""
    with np.errstate(divide="ignore"):
        return 0.5 * beta * (1.0 + 0.375 * beta) * np.power(v, 0.5 * beta - 1.0) - 0.25 * beta * (
            2.0 - v
        )


@functools.cache
def _gauss_legendre(n: int) -> tuple[F64, F64]:
    """Nodes and weights of the n-point Gauss-Legendre rule on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


def isr_luminosity(v: ArrayLike, s: float, *, n_points: int = _N_INNER) -> F64:
    """The two-beam ISR luminosity L(z) = int dx1/x1 D(x1) D(z/x1) at ``z = 1 - v``.

    ``D`` is the per-leg structure function of :mod:`zprime.generators.isr` at the nominal s;
    ``int_0^1 L dz = 1``. L is symmetric under x1 <-> z/x1, so it is twice the integral over
    ``v1 = 1 - x1 in (0, a)``, ``a = 1 - sqrt(z)``: Gauss-Legendre in ``t`` with
    ``v1 = (a/2) t^(2/beta)`` on ``(0, a/2)`` (which absorbs the ``v1^(beta/2 - 1)`` end point)
    and in ``ln x1`` on the rest (which absorbs the ``1/x1`` that matters when z is small).

    Parameters
    ----------
    v
        Total fractional energy loss ``1 - s'/s`` in (0, 1).
    s
        Nominal squared c.m. energy (GeV^2; fixes beta).
    n_points
        Gauss-Legendre points of each of the two pieces.
    """
    v = np.asarray(v, dtype=np.float64)
    b = beta_isr(s)
    t, w = _gauss_legendre(n_points)
    z = (1.0 - v)[..., None]
    vv = v[..., None]
    half = 0.5 * vv / (1.0 + np.sqrt(z))
    # piece 1: v1 in (0, a/2); D(v1) dv1 = [(1 + 3b/8) h^(b/2) - (2 - v1) h t^(2/b - 1) / 2] dt
    tp = np.power(t, 2.0 / b - 1.0)
    v1 = half * tp * t
    v2 = (vv - v1) / (1.0 - v1)
    dv1 = (1.0 + 0.375 * b) * np.power(half, 0.5 * b) - 0.5 * (2.0 - v1) * half * tp
    low = np.sum(w * dv1 * _d_of_v(v2, b) / (1.0 - v1), axis=-1)
    # piece 2: ln x1 from ln(sqrt(z)) to ln(1 - a/2); dx1/x1 = d(ln x1)
    lo = 0.5 * np.log1p(-vv)
    hi = np.log1p(-half)
    ln_x1 = lo + (hi - lo) * t
    v1 = -np.expm1(ln_x1)  # not 1 - x1: v1 ~ v/2 may be tiny
    v2 = (vv - v1) * np.exp(-ln_x1)
    high = (hi - lo)[..., 0] * np.sum(w * _d_of_v(v1, b) * _d_of_v(v2, b), axis=-1)
    return 2.0 * (low + high)


class _IsrProposal:
    """The ISR integral and the proposal density of the total energy loss v.

    ``v = v_thr y^(1/beta)``; the integrand in y, ``g(y) = L(v) sigma_Born((1 - v) s) dv/dy``,
    is smooth at y = 0 and has the threshold structure at y = 1, where the mesh is refined
    geometrically. The bins' Gauss-Legendre integrals give sigma and the bin probabilities of
    a piecewise-constant proposal in y.
    """

    def __init__(self, ma: float, mh: float, sqrt_s: float, alpha: float) -> None:
        self.s = sqrt_s * sqrt_s
        self.beta = beta_isr(self.s)
        self.v_thr = 1.0 - (ma + mh) ** 2 / self.s
        graded = 1.0 - 10.0 ** (
            -np.arange(_GRADED_PER_DECADE, _GRADED_DECADES * _GRADED_PER_DECADE + 1)
            / _GRADED_PER_DECADE
        )
        edges = np.unique(np.concatenate([np.linspace(0.0, 1.0, _N_UNIFORM_BINS + 1), graded]))
        self.edges = edges
        self.width = np.diff(edges)
        integ = functools.partial(self._integrand, ma=ma, mh=mh, alpha=alpha)
        self.bin_integral = self._bins(integ, _N_OUTER, _N_INNER)
        check = self._bins(integ, _N_OUTER + 4, _N_INNER + 16)
        self.sigma_fb = float(self.bin_integral.sum())
        self.error_fb = float(abs(check.sum() - self.sigma_fb) + 1e-14 * self.sigma_fb)
        prob = self.bin_integral / self.sigma_fb
        self.cdf = np.cumsum(prob)
        self.cdf[-1] = 1.0
        # the inverse of the proposal density in y in each bin: sigma * width / I
        with np.errstate(divide="ignore"):
            self.inv_density = np.where(
                self.bin_integral > 0.0, self.sigma_fb * self.width / self.bin_integral, 0.0
            )

    def _v_of_y(self, y: F64) -> tuple[F64, F64]:
        """v and ``v_thr - v`` (accurate near the threshold) for y in (0, 1)."""
        with np.errstate(divide="ignore"):
            ly = np.log(y) / self.beta
        v = self.v_thr * np.exp(ly)
        return v, -self.v_thr * np.expm1(ly)

    def _integrand(self, y: F64, *, ma: float, mh: float, alpha: float, n_inner: int) -> F64:
        v, to_thr = self._v_of_y(y)
        s_hat = (ma + mh) ** 2 + self.s * to_thr
        lum = isr_luminosity(v, self.s, n_points=n_inner)
        return lum * _sigma_born(s_hat, ma, mh, alpha) * v / (self.beta * y)

    def _bins(self, integ: Any, n_outer: int, n_inner: int) -> F64:
        t, w = _gauss_legendre(n_outer)
        y = self.edges[:-1, None] + self.width[:, None] * t
        vals = integ(y.ravel(), n_inner=n_inner).reshape(y.shape)
        return self.width * np.sum(w * vals, axis=1)

    def sample(self, u_bin: F64, u_pos: F64) -> tuple[F64, F64, F64]:
        """(v, v_thr - v, 1/q(v)) with the proposal density q of v, from two uniforms."""
        idx = np.minimum(np.searchsorted(self.cdf, u_bin, side="right"), len(self.width) - 1)
        y = self.edges[idx] + self.width[idx] * u_pos
        y = np.clip(y, 1e-300, np.nextafter(1.0, 0.0))
        v, to_thr = self._v_of_y(y)
        # q(v) = q(y) dy/dv with dy/dv = beta y / v; q(y) = I_bin / (sigma width)
        return v, to_thr, self.inv_density[idx] * v / (self.beta * y)


def _split(v: F64, u_mix: F64, u: F64, beta: float) -> tuple[F64, F64, F64]:
    """Energy losses (v1, v2) with (1 - v1)(1 - v2) = 1 - v, and 1 / (c(x1 | v) x1).

    A mixture: ``v1 = v t^(2/beta)`` or ``v2 = v t^(2/beta)`` (the two ends of the
    ``Beta(beta/2, beta/2)``-like split of two soft legs), each with probability
    ``(1 - p_mid) / 2``, or with ``p_mid = _SPLIT_MIDDLE v^2`` ``ln x1`` uniform in
    ``(ln z, 0)`` (the middle, where both legs lose much when z = 1 - v is small). c is the
    mixture's density in x1 = 1 - v1 at fixed z.
    """
    ln_z = np.log1p(-v)
    soft = v * np.power(u, 2.0 / beta)
    other = (v - soft) / (1.0 - soft)
    p_mid = _SPLIT_MIDDLE * v * v
    p_end = 0.5 * (1.0 - p_mid)
    first = u_mix < p_end
    middle = u_mix >= 2.0 * p_end
    v1 = np.where(first, soft, other)
    v2 = np.where(first, other, soft)
    v1 = np.where(middle, -np.expm1(u * ln_z), v1)
    v2 = np.where(middle, -np.expm1((1.0 - u) * ln_z), v2)
    x1 = 1.0 - v1
    with np.errstate(divide="ignore", invalid="ignore"):
        vb = np.power(v, -0.5 * beta)
        dens_a = 0.5 * beta * np.power(v1, 0.5 * beta - 1.0) * vb
        dens_b = 0.5 * beta * np.power(v2, 0.5 * beta - 1.0) * vb * (1.0 - v) / (x1 * x1)
        dens = p_end * (dens_a + dens_b) - p_mid / (x1 * ln_z)
        inv = 1.0 / (dens * x1)
    return v1, v2, np.where(np.isfinite(inv), inv, 0.0)


# --------------------------------------------------------------------------- cross section
def sigma_fb(
    m_aprime: float,
    m_hdark: float,
    isr: bool = True,
    *,
    sqrt_s: float = SQRT_S,
    alpha: float = ALPHA_0,
) -> SigmaResult:
    """sigma(e+e- -> A' h') x B(A' -> mu mu) in fb for eps^2 alpha_D = 1 and B = 1.

    Without ISR the Born formula (checked against the 2 -> 3 matrix element by
    :func:`born_cross_section_mc`); with ISR the quadrature ``int dz L(z) sigma_Born(z s)``
    over the structure-function luminosity (:func:`isr_luminosity`), see the module docstring.
    The error is the quadrature's (difference of two rules), ~1e-9 relative; it is 0 without
    ISR.

    Parameters
    ----------
    m_aprime, m_hdark
        M_A' (above 2 m_mu) and M_h' (in [0, M_A'), at least :data:`MIN_HDARK_ISR_GEV` with
        ISR), GeV.
    isr
        Convolve with the electron structure function (both beams).
    sqrt_s
        Nominal c.m. energy, GeV.
    alpha
        alpha of the e-A' vertex (sigma is proportional to it); ISR always uses alpha(0).

    Raises
    ------
    ConfigError
        For masses outside the kinematic range (one line naming the value).
    """
    ma, mh, rs = _check_masses(m_aprime, m_hdark, sqrt_s, bool(isr))
    a = _check_alpha(alpha)
    if not isr:
        return SigmaResult(float(_sigma_born(np.array([rs * rs]), ma, mh, a)[0]), 0.0)
    prop = _IsrProposal(ma, mh, rs, a)
    return SigmaResult(prop.sigma_fb, prop.error_fb)


# --------------------------------------------------------------------------- events
def aprime_hdark_file_name(m_aprime: float, m_hdark: float) -> str:
    """File name of a sample: ``aprime_hdark_MA{M_A':.4f}_MH{M_h':.4f}.parquet``."""
    return f"aprime_hdark_MA{float(m_aprime):.4f}_MH{float(m_hdark):.4f}.parquet"


@dataclass
class AprimeHdarkSample:
    """Unweighted e+e- -> A'(-> mu mu) h' events and what describes them."""

    events: ak.Array
    """Events in the generator-level schema (lab frame): mu-, mu+, h' (PDG 54) and the ISR
    photons, plus the truth columns ``m_aprime``, ``m_hdark`` and ``sqrt_s_hat`` (GeV)."""
    sigma_fb: float
    """Cross section of the sample, fb (sum of the weights)."""
    efficiency: float
    """Unweighting efficiency: events / points tried."""
    overweight_fraction: float
    """Fraction of the events whose weight exceeded the unweighting maximum."""
    n_trials: int
    """Points tried."""
    sum_weights: float
    """Sum of the (ISR) weights of all points tried, fb: ``sum / n_trials`` estimates sigma."""
    sum_weights2: float
    """Sum of their squares (for the error of that estimate)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Generator settings and statistics."""


class AprimeHdarkGenerator:
    """Unweighted e+e- -> A' h', A' -> mu+ mu- events for one (M_A', M_h') point.

    Construction computes the cross section (the ISR quadrature, or the Born formula) and the
    proposal of the ISR energy loss, then the largest ISR weight in a pilot run of ``n_pilot``
    points (seeded by ``seed``). :meth:`generate` keeps a point with probability
    ``w / w_max`` in two steps (the ISR weight, then the spin weight ``r`` against its exact
    bound). The generator is picklable, so chunks can run in worker processes.
    """

    def __init__(
        self,
        m_aprime: float,
        m_hdark: float,
        *,
        isr: bool = True,
        sqrt_s: float = SQRT_S,
        alpha: float = ALPHA_0,
        seed: int = DEFAULT_SEED,
        n_pilot: int = 50_000,
    ) -> None:
        self.isr = bool(isr)
        self.m_aprime, self.m_hdark, self.sqrt_s = _check_masses(
            m_aprime, m_hdark, sqrt_s, self.isr
        )
        self.alpha = _check_alpha(alpha)
        self.seed = int(seed)
        self.n_pilot = _check_count(n_pilot, "n_pilot")
        self.r_max = _r_max(self.m_aprime)
        if self.isr:
            self._prop: _IsrProposal | None = _IsrProposal(
                self.m_aprime, self.m_hdark, self.sqrt_s, self.alpha
            )
            self.sigma_fb = self._prop.sigma_fb
            self.sigma_error_fb = self._prop.error_fb
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xD4]))
            w = self._isr_trial(rng.random((self.n_pilot, 4)))[0]
            self.isr_max = _PILOT_MARGIN * float(w.max())
            self.pilot_efficiency = float(w.mean()) / self.isr_max / self.r_max
        else:
            self._prop = None
            self.sigma_fb = sigma_fb(
                self.m_aprime, self.m_hdark, False, sqrt_s=self.sqrt_s, alpha=self.alpha
            ).sigma_fb
            self.sigma_error_fb = 0.0
            self.isr_max = self.sigma_fb
            self.pilot_efficiency = 1.0 / self.r_max

    def _isr_trial(self, u: F64) -> tuple[F64, F64, F64, F64]:
        """ISR weights (fb), v1, v2 and s_hat of points from four uniforms each."""
        prop = self._prop
        assert prop is not None
        v, to_thr, inv_q = prop.sample(u[:, 0], u[:, 1])
        v1, v2, inv_c = _split(v, u[:, 2], u[:, 3], prop.beta)
        ma, mh = self.m_aprime, self.m_hdark
        s_hat = (ma + mh) ** 2 + prop.s * to_thr
        w = (
            _d_of_v(v1, prop.beta)
            * _d_of_v(v2, prop.beta)
            * _sigma_born(s_hat, ma, mh, self.alpha)
            * inv_q
            * inv_c
        )
        return np.where(np.isfinite(w), w, 0.0), v1, v2, s_hat

    def _accept(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        """Hit-or-miss until ``n`` points are kept; their kinematics and the trial statistics.

        ``hard``: (n, 3, 4) momenta of the mu-, mu+ and h' in the hard c.m. frame; ``rs``:
        sqrt(s_hat); ``v1``, ``v2``: the beams' energy losses.
        """
        hard_out = np.empty((n, 3, 4))
        rs_out = np.empty(n)
        v1_out = np.zeros(n)
        v2_out = np.zeros(n)
        n_acc = n_trials = n_over = 0
        sum_w = sum_w2 = 0.0
        eff = max(self.pilot_efficiency, 1e-3)
        w_max = self.isr_max * self.r_max
        while n_acc < n:
            b = int(min(max(1.1 * (n - n_acc) / eff + 64, 1024), 1 << 17))
            if self._prop is not None:
                w_all, v1, v2, s_hat = self._isr_trial(rng.random((b, 4)))
                trial = np.flatnonzero(rng.random(b) * self.isr_max < w_all)
                w_isr, v1, v2, s_hat = w_all[trial], v1[trial], v2[trial], s_hat[trial]
            else:
                w_all = np.full(b, self.sigma_fb)
                trial = np.arange(b)
                w_isr, s_hat = w_all, np.full(b, self.sqrt_s**2)
            rs = np.sqrt(s_hat)
            hard, _ = _hard(rs, self.m_aprime, self.m_hdark, rng.random((len(rs), 5)))
            ok = np.flatnonzero(rng.random(len(rs)) * self.r_max < hard.r)
            # the statistics count the trials up to the last one used (the rest of the last
            # batch is drawn but not looked at), so that n / n_trials is the efficiency
            used = b
            if len(ok) >= n - n_acc:
                ok = ok[: n - n_acc]
                used = int(trial[ok[-1]]) + 1
            n_trials += used
            sum_w += float(w_all[:used].sum())
            sum_w2 += float(np.dot(w_all[:used], w_all[:used]))
            if len(ok) == 0:
                continue
            n_over += int(np.count_nonzero(w_isr[ok] * hard.r[ok] > w_max))
            sl = slice(n_acc, n_acc + len(ok))
            hard_out[sl, 0] = hard.k1[ok]
            hard_out[sl, 1] = hard.k2[ok]
            hard_out[sl, 2] = hard.kh[ok]
            rs_out[sl] = rs[ok]
            if self._prop is not None:
                v1_out[sl] = v1[ok]
                v2_out[sl] = v2[ok]
            n_acc += len(ok)
        return {
            "hard": hard_out,
            "rs": rs_out,
            "v1": v1_out,
            "v2": v2_out,
            "n_trials": n_trials,
            "n_overweight": n_over,
            "sum_w": sum_w,
            "sum_w2": sum_w2,
        }

    def generate(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        weight_fb: float | None = None,
        first_event: int = 0,
    ) -> AprimeHdarkSample:
        """Draw ``n`` unweighted events in the Belle II lab frame.

        Parameters
        ----------
        n
            Number of events.
        rng
            The random numbers.
        weight_fb
            Weight of every event (default ``sigma_fb / n``); :func:`write_aprime_hdark` passes
            ``sigma_fb / n_total`` to each chunk.
        first_event
            Number of the first event (column ``event``).
        """
        n = _check_count(n, "n")
        acc = self._accept(n, rng)
        hard = acc["hard"]
        # one boost along z to the lab: the hard system's velocity in the c.m. frame after ISR
        # (that of zprime.generators.isr.isr_kinematics) composed with the c.m. frame's
        if self.isr:
            x1, x2 = 1.0 - acc["v1"], 1.0 - acc["v2"]
            bz = (x1 - x2) / (x1 + x2)
            beta = ((bz + BETA_BOOST) / (1.0 + bz * BETA_BOOST))[:, None]
        else:
            beta = np.full((n, 1), BETA_BOOST)
        gam = 1.0 / np.sqrt(1.0 - beta * beta)
        gb = gam * beta
        # the components as (n, particles) arrays, so that each is one contiguous flat column
        k = 5 if self.isr else 3
        e, px, py, pz = (np.empty((n, k)) for _ in range(4))
        e[:, :3] = gam * hard[..., 0] + gb * hard[..., 3]
        px[:, :3] = hard[..., 1]
        py[:, :3] = hard[..., 2]
        pz[:, :3] = gam * hard[..., 3] + gb * hard[..., 0]
        pdg = [_PDG_MU_MINUS, _PDG_MU_PLUS, PDG_DARK_HIGGS]
        if self.isr:
            # the ISR photons as in the Z' signal (collinear, one per beam): a photon with the
            # fraction v of its beam's c.m. energy has v times the beam energy in the lab
            e[:, 3] = pz[:, 3] = E_ELECTRON_BEAM * acc["v1"]
            e[:, 4] = E_POSITRON_BEAM * acc["v2"]
            pz[:, 4] = -e[:, 4]
            px[:, 3:] = py[:, 3:] = 0.0
            pdg += [_PDG_PHOTON, _PDG_PHOTON]
        pdg_arr = np.broadcast_to(np.asarray(pdg, dtype=np.int32), (n, k))
        keep = e > 0.0  # a photon of exactly zero energy is left out (as in the Z' signal)
        fields = {"pdg": pdg_arr, "e": e, "px": px, "py": py, "pz": pz}
        counts = keep.sum(axis=1)
        # the particles column of zprime.io.events.make_particles, built from the flat columns
        if keep.all():  # the usual case: reshaping costs no copy
            flat = ak.zip(
                {name: np.ascontiguousarray(col).reshape(-1) for name, col in fields.items()}
            )
        else:
            flat = ak.zip({name: np.ascontiguousarray(col[keep]) for name, col in fields.items()})
        particles = ak.unflatten(flat, counts)
        weight = self.sigma_fb / n if weight_fb is None else float(weight_fb)
        events = ak.zip(
            {
                "event": np.arange(first_event, first_event + n, dtype=np.int64),
                "weight": np.full(n, weight),
                "particles": particles,
                "m_aprime": np.full(n, self.m_aprime),
                "m_hdark": np.full(n, self.m_hdark),
                "sqrt_s_hat": acc["rs"],
            },
            depth_limit=1,
        )
        eff = n / acc["n_trials"]
        over = acc["n_overweight"] / n
        return AprimeHdarkSample(
            events=events,
            sigma_fb=weight * n,
            efficiency=eff,
            overweight_fraction=over,
            n_trials=acc["n_trials"],
            sum_weights=acc["sum_w"],
            sum_weights2=acc["sum_w2"],
            metadata={
                **self.describe(),
                "n_events": n,
                "n_trials": acc["n_trials"],
                "n_overweight": acc["n_overweight"],
                "unweighting_efficiency": eff,
                "overweight_fraction": over,
            },
        )

    def describe(self) -> dict[str, Any]:
        """Settings and cross section (for the file metadata)."""
        return {
            "sample": "aprime_hdark",
            "process": "e+e- -> A' h', A' -> mu+ mu-, h' invisible (NWA, B(A' -> mu mu) = 1)",
            "generator": f"{__name__} {__version__}",
            "m_aprime_gev": self.m_aprime,
            "m_hdark_gev": self.m_hdark,
            "eps2_alpha_d": 1.0,
            "isr": self.isr,
            "alpha": self.alpha,
            "sqrt_s_gev": self.sqrt_s,
            "sigma_fb": self.sigma_fb,
            "sigma_error_fb": self.sigma_error_fb,
            "sigma_method": "ISR quadrature" if self.isr else "Born formula",
            "pilot_seed": self.seed,
            "n_pilot": self.n_pilot,
            "isr_max_weight_fb": self.isr_max,
            "spin_weight_max": self.r_max,
            "pilot_efficiency": self.pilot_efficiency,
        }


def _chunk_task(
    gen: AprimeHdarkGenerator, weight_fb: float, task: tuple[int, int, int, int]
) -> tuple[ak.Array, int, int, float, float]:
    index, n, first, seed = task
    sample = gen.generate(n, chunk_rng(seed, 2, index), weight_fb=weight_fb, first_event=first)
    return (
        sample.events,
        sample.n_trials,
        int(sample.metadata["n_overweight"]),
        sample.sum_weights,
        sample.sum_weights2,
    )


def write_aprime_hdark(
    m_aprime: float,
    m_hdark: float,
    n_events: int,
    out_dir: str | Path,
    *,
    seed: int,
    isr: bool = True,
    chunk_size: int = 100_000,
    workers: int | None = None,
    executor: Executor | str | None = None,
    progress: bool = True,
    sqrt_s: float = SQRT_S,
    alpha: float = ALPHA_0,
) -> Path:
    """Generate ``n_events`` events and stream them to ``out_dir/`` :func:`aprime_hdark_file_name`.

    The pilot run is seeded from ``(seed, 1)``; chunk ``i`` uses
    ``zprime._util.chunk_rng(seed, 2, i)``, so the file does not depend on the number of
    workers. Every event has ``weight = sigma_fb / n_events`` (eps^2 alpha_D = 1, B(A' -> mu mu)
    = 1: multiply by the physical eps^2 alpha_D x B). The metadata hold the settings, sigma and
    its error, the unweighting efficiency, the overweight fraction, the Monte Carlo estimate of
    sigma from the trials (``sigma_mc_fb`` +- ``sigma_mc_error_fb``) and the provenance.

    Parameters
    ----------
    m_aprime, m_hdark
        M_A' and M_h' in GeV (see :func:`sigma_fb`).
    n_events
        Number of events (>= 1).
    out_dir
        Output directory (created).
    seed
        Master seed.
    isr
        Initial-state radiation on or off.
    chunk_size
        Events per chunk (one Parquet row group each).
    workers, executor
        Worker processes of the local pool zprime makes (default
        :func:`zprime.parallel.default_workers`), or an executor (``"serial"``, any
        :class:`concurrent.futures.Executor`).
    progress
        Show a progress bar (stderr).
    sqrt_s, alpha
        Nominal c.m. energy (GeV) and alpha of the A' vertices.

    Returns
    -------
    Path
        The file written (atomically; nothing is written on error).

    Raises
    ------
    ConfigError
        Masses outside the kinematic range, n_events or chunk_size below 1.
    """
    n = _check_count(n_events, "n_events")
    chunk_size = _check_count(chunk_size, "chunk_size")
    ma, mh, rs = _check_masses(m_aprime, m_hdark, sqrt_s, bool(isr))
    setup_seed = int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])
    gen = AprimeHdarkGenerator(ma, mh, isr=isr, sqrt_s=rs, alpha=alpha, seed=setup_seed)
    sizes = [min(chunk_size, n - i) for i in range(0, n, chunk_size)]
    tasks = [(i, k, i * chunk_size, int(seed)) for i, k in enumerate(sizes)]
    fn = functools.partial(_chunk_task, gen, gen.sigma_fb / n)
    n_workers = workers or default_workers()
    if len(tasks) == 1 or (executor is None and n_workers == 1):
        executor = "serial"
    own_pool = executor is None  # one pool for the whole file (map_tasks makes one per call)
    group = max(1, 2 * n_workers) if executor != "serial" else 1
    path = Path(out_dir) / aprime_hdark_file_name(ma, mh)
    meta = {**gen.describe(), "n_events": n, "seed": int(seed), "chunk_size": chunk_size}
    n_trials = n_over = 0
    sum_w = sum_w2 = 0.0
    bar = Progress(
        TextColumn("[bold]A' h' M_A' = {task.fields[ma]:.4g}, M_h' = {task.fields[mh]:.4g} GeV"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with contextlib.ExitStack() as stack, bar, EventWriter(path, metadata=meta) as writer:
        if own_pool:
            executor = stack.enter_context(local_pool(n_workers))
        tid = bar.add_task("events", total=n, ma=ma, mh=mh)
        for start in range(0, len(tasks), group):
            results = map_tasks(fn, tasks[start : start + group], executor=executor, progress=False)
            for events, trials, over, sw, sw2 in results:
                writer.write(events)
                n_trials += trials
                n_over += over
                sum_w += sw
                sum_w2 += sw2
                bar.advance(tid, len(events))
        mean = sum_w / n_trials
        err = math.sqrt(max(sum_w2 / n_trials - mean * mean, 0.0) / n_trials)
        writer.update_metadata(
            n_trials=n_trials,
            n_overweight=n_over,
            unweighting_efficiency=n / n_trials,
            overweight_fraction=n_over / n,
            sigma_mc_fb=mean,
            sigma_mc_error_fb=err,
            provenance=provenance(),
        )
    return path
