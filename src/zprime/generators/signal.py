"""The signal e+e- -> gamma* -> mu+ mu- X (X = Z', or a scalar or pseudoscalar): matrix
element, phase space, ISR, cross section, cached cross-section table and unweighted events.

Process and matrix element
--------------------------
``e-(p1) e+(p2) -> gamma* -> mu-(k1) mu+(k2) Z'(q)`` at tree level, the Z' radiated off either
muon (PRL 130, 231801 (2023): "the Z' radiated off a final-state muon"). The Z' is a massive
vector with a vector coupling g' to muons (L_mu - L_tau), vertex ``-i g' gamma^nu``; photon
vertices ``-i e gamma^mu`` with ``e^2 = 4 pi alpha``; electron mass neglected, muon mass kept;
Z' polarisation sum ``-g + q q / M^2`` (the ``q q`` part vanishes because the muon current is
conserved); average 1/4 over the initial spins. The spin-summed tensor contraction
``L_{ab} H^{ab}`` was derived with FORM (``tools/signal_me.frm``) and code-generated into
:mod:`zprime.generators._signal_me_generated`; the tests compare it with an explicit helicity sum
built from
:mod:`zprime.physics.dirac`.

Spin-0 X (``spin="scalar"`` or ``"pseudoscalar"``; issue 19, the tau-tau resonance search,
PRL 131, 121802 (2023)): the same two diagrams with the Z' vertex replaced by the Yukawa vertex
of ``L = -y S mubar mu`` (vertex ``-i y``) or ``L = -i y a mubar gamma5 mu`` (vertex
``y gamma5``); the coupling argument ``g`` is then the Yukawa ``y`` (for a leptophilic scalar
``y = xi m_mu / v``, for an ALP ``y = C_mumu m_mu / f_a``: converting is the model's business).
No polarisation sum; the vertex factor is common to both diagrams, so |M|^2 is
``e^4 y^2 L_ab H^ab / (4 s^2)`` with ``L_ab H^ab`` from FORM (``tools/signal_spin0_me.frm``,
:mod:`zprime.generators._signal_spin0_me_generated`), checked against an explicit helicity sum,
the photon-side Ward identity, and the chiral limit (scalar and pseudoscalar |M|^2 coincide
point by point for m_mu = 0). Everything else (phase space, ISR, events) is shared with the
vector; a spin-0 X is written with PDG code 54 (:data:`PDG_SPIN0`), a Z' with 32.

Phase space
-----------
In the c.m. frame of the hard process (``s_hat``) the three-body phase space is factorised as
``dPhi3 = dPhi2(P; P1, k2) ds1/(2 pi) dPhi2(P1; k1, q)`` with ``s1 = (k1 + q)^2``. The variable
``t = s1 - m_mu^2`` (the denominator of the mu- propagator) is sampled uniformly in ``log t``
between ``M^2 + 2 m_mu M`` and ``s_hat - 2 m_mu sqrt(s_hat)``; the production angle of the mu+
and the decay angles of the (mu- Z') system are uniform. The same mapping with mu+ and mu-
exchanged (channel 2) covers the mu+ propagator; the two are combined as a two-channel
multichannel with equal weights, ``w = f / ((g1 + g2) / 2)``. Because |M|^2 and the phase space
are symmetric under mu+ <-> mu- (tested), points are drawn from channel 1 only and, for events,
the muon labels are swapped with probability 1/2, which reproduces the two-channel density
exactly. The azimuth about the beam axis is integrated analytically (factor 2 pi) and drawn
uniformly for events. ``vegas`` adapts to what is left.

ISR
---
With ``isr=True`` each beam radiates collinear photons according to the Kuraev-Fadin structure
function (:mod:`zprime.generators.isr`), sampled with ``v = u**(2/beta)`` so that vegas sees a
smooth
integrand in ``u``; the hard system then moves along z with ``beta_z``, and events are boosted to
the Belle II lab frame (:func:`zprime.physics.kinematics.cm_to_lab`).

Units: GeV, GeV^2; cross sections in fb.

Length: one process: matrix element, phase space, cross section and event writing share the
kinematic conventions (the cross-section table is in physics/xsec_table.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

import awkward as ak
import numpy as np
import vegas
from numpy.typing import ArrayLike, NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from zprime import __version__
from zprime._util import chunk_rng, provenance
from zprime.config import default_config
from zprime.errors import ConfigError
from zprime.generators._signal_me_generated import lh_contracted
from zprime.generators._signal_spin0_me_generated import lh_pseudoscalar, lh_scalar
from zprime.generators.isr import isr_kinematics, sample_energy_loss
from zprime.io.events import EventWriter, make_particles
from zprime.parallel import default_workers, local_pool, map_tasks
from zprime.physics.constants import (
    ALPHA_INVERSE_MADGRAPH,
    GEV2_TO_FB,
    M_MUON,
    PDG_DARK_HIGGS,
    PDG_ZPRIME,
    SQRT_S,
)
from zprime.physics.dirac import minkowski_dot
from zprime.physics.kinematics import boost_z, cm_to_lab
from zprime.physics.xsec_table import (
    XsecTable,
    load_xsec_table,
    package_table_path,
    spin_table_path,
    write_xsec_table,
)

__all__ = [
    "ALPHA_DEFAULT",
    "BW_CUTOFF",
    "DEFAULT_SEED",
    "PDG_SPIN0",
    "SPINS",
    "SignalGenerator",
    "SignalSample",
    "Spin",
    "XsecResult",
    "XsecTable",
    "cross_section",
    "generate",
    "load_xsec_table",
    "matrix_element_squared",
    "me2_invariants",
    "package_table_path",
    "signal_file_name",
    "spin_table_path",
    "write_signal",
    "write_xsec_table",
    "xsec_grid_masses",
    "xsec_table",
]

ALPHA_DEFAULT: float = 1.0 / ALPHA_INVERSE_MADGRAPH
"""Default alpha of the two photon vertices: 1/132.507 of the MadGraph5_aMC@NLO default SM
parameter card (the PRL's signal generator, MadGraph5_aMC@NLO 2.6.6)."""

DEFAULT_SEED: int = 20230607
"""Default seed of the vegas adaptation (results are reproducible for a given seed)."""

BW_CUTOFF: float = 15.0
"""The Breit-Wigner of a wide Z' is truncated at M - BW_CUTOFF * Gamma (MadGraph5's default
``bwcutoff = 15``) from below, and at the kinematic limit from above."""

_MU_MIN_BW: float = 1e-3
"""Lowest Z' virtuality (GeV) of a truncated Breit-Wigner."""

Spin = Literal["vector", "scalar", "pseudoscalar"]
"""Spin and parity of the X radiated off the muon line."""

SPINS: tuple[str, ...] = get_args(Spin)
"""The allowed values of ``spin``: ``"vector"`` (the L_mu - L_tau Z', default), ``"scalar"``,
``"pseudoscalar"``."""

PDG_SPIN0: int = PDG_DARK_HIGGS
"""PDG code written for a spin-0 X (54, the PDG Monte Carlo numbering's spin-0 dark-sector
mediator; used for the pseudoscalar as well)."""

_LH_SPIN0 = {"scalar": lh_scalar, "pseudoscalar": lh_pseudoscalar}
_VECTOR_ONLY = frozenset({"sample", "process", "generator", "mass_gev", "width_gev", "g_prime"})

_M2 = M_MUON * M_MUON
_PDG_MU_MINUS = 13
_PDG_MU_PLUS = -13
_PDG_PHOTON = 22


# --------------------------------------------------------------------------- input checks
def _check_mass(mass: Any, sqrt_s: float, name: str = "mass") -> float:
    try:
        m = float(mass)
    except (TypeError, ValueError):
        raise ConfigError(f"Z' {name} must be a number, got {mass!r}") from None
    upper = sqrt_s - 2.0 * M_MUON
    if not math.isfinite(m) or m <= 0.0 or m >= upper:
        raise ConfigError(
            f"Z' {name} {mass!r} GeV outside the kinematic range (0, {upper:.4f}) GeV "
            f"at sqrt(s) = {sqrt_s:g} GeV"
        )
    return m


def _check_positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0.0:
        raise ConfigError(f"{name} must be positive and finite, got {value!r}")
    return v


def _check_count(n: Any, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _check_width(width: Any, mass: float) -> float | None:
    if width is None:
        return None
    w = float(width)
    if not math.isfinite(w) or w < 0.0:
        raise ConfigError(f"Z' width must be >= 0 and finite, got {width!r}")
    if w > mass:
        raise ConfigError(f"Z' width {width!r} GeV larger than the mass {mass!r} GeV")
    return w if w > 0.0 else None


def _check_spin(spin: Any) -> Spin:
    if spin not in SPINS:
        raise ConfigError(f"spin must be one of {', '.join(SPINS)}, got {spin!r}")
    return cast(Spin, spin)


def _check_common(
    mass: Any, sqrt_s: Any, g: Any, alpha: Any, rel_precision: Any
) -> tuple[float, float, float, float, float]:
    rs = _check_positive(sqrt_s, "sqrt_s")
    m = _check_mass(mass, rs)
    gg = _check_positive(g, "g")
    a = _check_positive(alpha, "alpha")
    rp = _check_positive(rel_precision, "rel_precision")
    if rp >= 1.0:
        raise ConfigError(f"rel_precision must be below 1, got {rel_precision!r}")
    return m, rs, gg, a, rp


# --------------------------------------------------------------------------- matrix element
def me2_invariants(
    s: ArrayLike,
    p1k1: ArrayLike,
    p1k2: ArrayLike,
    p2k1: ArrayLike,
    p2k2: ArrayLike,
    d1: ArrayLike,
    d2: ArrayLike,
    mz2: ArrayLike,
    *,
    alpha: float = ALPHA_DEFAULT,
    g: float = 1.0,
    spin: Spin = "vector",
) -> NDArray[np.float64]:
    """Spin-averaged |M|^2 of e+e- -> mu- mu+ X from invariants (dimensionless).

    Parameters
    ----------
    s
        ``(p1 + p2)^2 = 2 p1.p2`` in GeV^2.
    p1k1, p1k2, p2k1, p2k2
        Dot products of the e- (p1), e+ (p2) with the mu- (k1), mu+ (k2) momenta.
    d1, d2
        ``(k1 + q)^2 - m_mu^2`` and ``(k2 + q)^2 - m_mu^2`` (the muon propagator denominators).
    mz2
        ``q^2``, the squared X mass (or virtuality).
    alpha, g
        Photon coupling ``alpha = e^2/(4 pi)`` and X coupling (g' of the Z', Yukawa y of a
        spin-0 X).
    spin
        ``"vector"`` (Z', default), ``"scalar"`` or ``"pseudoscalar"`` (module docstring).
    """
    s = np.asarray(s, dtype=np.float64)
    if spin == "vector":
        lh = lh_contracted(s, p1k1, p1k2, p2k1, p2k2, d1, d2, _M2, mz2)  # type: ignore[arg-type]
    else:
        fn = _LH_SPIN0[_check_spin(spin)]
        lh = fn(s, p1k1, p1k2, p2k1, p2k2, d1, d2, _M2, mz2)  # type: ignore[arg-type]
    e4 = (4.0 * math.pi * alpha) ** 2
    return 0.25 * e4 * g * g * lh / (s * s)


def matrix_element_squared(
    p1: ArrayLike,
    p2: ArrayLike,
    k1: ArrayLike,
    k2: ArrayLike,
    q: ArrayLike,
    *,
    alpha: float = ALPHA_DEFAULT,
    g: float = 1.0,
    spin: Spin = "vector",
) -> NDArray[np.float64]:
    """Spin-averaged tree-level |M|^2 of e-(p1) e+(p2) -> mu-(k1) mu+(k2) X(q).

    Four-momenta are (..., 4) arrays (E, px, py, pz) in GeV in any frame; they must be on
    shell (massless electrons, muons of mass m_mu) and conserve momentum. The X mass is taken
    from ``q^2``. Evaluated with the FORM-generated expressions
    (:mod:`zprime.generators._signal_me_generated` for the vector ``spin="vector"``,
    :mod:`zprime.generators._signal_spin0_me_generated` for ``"scalar"``/``"pseudoscalar"``;
    ``g`` is g' or the Yukawa y).
    """
    p1, p2, k1, k2, q = (np.asarray(v, dtype=np.float64) for v in (p1, p2, k1, k2, q))
    mz2 = minkowski_dot(q, q)
    return me2_invariants(
        2.0 * minkowski_dot(p1, p2),
        minkowski_dot(p1, k1),
        minkowski_dot(p1, k2),
        minkowski_dot(p2, k1),
        minkowski_dot(p2, k2),
        2.0 * minkowski_dot(k1, q) + mz2,
        2.0 * minkowski_dot(k2, q) + mz2,
        mz2,
        alpha=alpha,
        g=g,
        spin=spin,
    )


# --------------------------------------------------------------------------- phase space
def _sqrt_lambda(a: NDArray[np.float64], b: Any, c: Any) -> NDArray[np.float64]:
    """sqrt of the Kallen function lambda(a, b, c), clipped at 0 against rounding."""
    lam = (a - b - c) ** 2 - 4.0 * b * c
    return np.sqrt(np.maximum(lam, 0.0))


def _channel_jacobian(
    s_hat: NDArray[np.float64], t: NDArray[np.float64], log_range: NDArray[np.float64], mz2: Any
) -> NDArray[np.float64]:
    """dPhi3 / d^4x of the mapping with t = s1 - m^2 sampled in log t (azimuth integrated)."""
    s1 = _M2 + t
    return (
        _sqrt_lambda(s_hat, s1, _M2)
        / (8.0 * math.pi * s_hat)
        * (t * log_range / (2.0 * math.pi))
        * _sqrt_lambda(s1, _M2, mz2)
        / (8.0 * math.pi * s1)
    )


@dataclass
class _Hard:
    """Kinematics of the hard process in its c.m. frame (mu+ in the x-z plane)."""

    k1: NDArray[np.float64]
    k2: NDArray[np.float64]
    q: NDArray[np.float64]
    d1: NDArray[np.float64]
    d2: NDArray[np.float64]
    jac: NDArray[np.float64]


def _hard_kinematics(
    sqrt_s_hat: NDArray[np.float64],
    mz: NDArray[np.float64],
    x: NDArray[np.float64],
) -> _Hard:
    """Three-body kinematics from four unit-interval variables ``x[:, 0:4]``.

    ``x[:, 0]``: log t of the (mu- Z') pair; ``x[:, 1]``: cos of the mu+ polar angle;
    ``x[:, 2], x[:, 3]``: cos theta*, phi* of the mu- in the (mu- Z') rest frame about the pair's
    direction of flight. Returns momenta with the two-channel Jacobian ``2/(1/J1 + 1/J2)``.
    """
    m = M_MUON
    rs = sqrt_s_hat
    s_hat = rs * rs
    mz2 = mz * mz
    t_min = mz2 + 2.0 * m * mz
    t_max = s_hat - 2.0 * m * rs
    log_range = np.log(t_max / t_min)
    t1 = t_min * np.exp(x[:, 0] * log_range)
    s1 = _M2 + t1
    # mu+ against the (mu- Z') system
    p = _sqrt_lambda(s_hat, s1, _M2) / (2.0 * rs)
    e2 = (s_hat + _M2 - s1) / (2.0 * rs)
    ep1 = rs - e2
    cth = 2.0 * x[:, 1] - 1.0
    sth = np.sqrt(np.maximum(1.0 - cth * cth, 0.0))
    # mu- in the (mu- Z') rest frame
    rs1 = np.sqrt(s1)
    pstar = _sqrt_lambda(s1, _M2, mz2) / (2.0 * rs1)
    e1star = (s1 + _M2 - mz2) / (2.0 * rs1)
    cs = 2.0 * x[:, 2] - 1.0
    ss = np.sqrt(np.maximum(1.0 - cs * cs, 0.0))
    phs = (2.0 * math.pi) * x[:, 3]
    p_par = pstar * cs
    p_x = pstar * ss * np.cos(phs)  # along e_x' = (-cos th, 0, sin th)
    p_y = pstar * ss * np.sin(phs)  # along e_y' = (0, 1, 0)
    gam = ep1 / rs1
    gb = p / rs1
    e1 = gam * e1star + gb * p_par
    k1_par = gb * e1star + gam * p_par  # along n = (-sin th, 0, -cos th)
    n = len(rs)
    k1 = np.empty((n, 4))
    k1[:, 0] = e1
    k1[:, 1] = -k1_par * sth - p_x * cth
    k1[:, 2] = p_y
    k1[:, 3] = -k1_par * cth + p_x * sth
    k2 = np.empty((n, 4))
    k2[:, 0] = e2
    k2[:, 1] = p * sth
    k2[:, 2] = 0.0
    k2[:, 3] = p * cth
    q = np.empty((n, 4))
    q[:, 0] = ep1 - e1
    q[:, 1] = -k2[:, 1] - k1[:, 1]
    q[:, 2] = -k1[:, 2]
    q[:, 3] = -k2[:, 3] - k1[:, 3]
    # the mu+ propagator: (k2 + q)^2 - m^2 = (P - k1)^2 - m^2 = s_hat - 2 sqrt(s_hat) E1
    t2 = np.maximum(s_hat - 2.0 * rs * e1, 0.0)
    j1 = _channel_jacobian(s_hat, t1, log_range, mz2)
    j2 = _channel_jacobian(s_hat, t2, log_range, mz2)
    jsum = j1 + j2
    jac = np.where(jsum > 0.0, 2.0 * j1 * j2 / np.where(jsum > 0.0, jsum, 1.0), 0.0)
    return _Hard(k1=k1, k2=k2, q=q, d1=t1, d2=t2, jac=jac)


def _me2_hard(
    h: _Hard,
    sqrt_s_hat: NDArray[np.float64],
    mz2: Any,
    alpha: float,
    g: float,
    spin: Spin = "vector",
) -> NDArray[np.float64]:
    """|M|^2 with p1 = (rs/2)(1, 0, 0, 1) and p2 = (rs/2)(1, 0, 0, -1) in the hard frame."""
    half = 0.5 * sqrt_s_hat
    ep = h.k1[:, 0] - h.k1[:, 3]
    em = h.k1[:, 0] + h.k1[:, 3]
    fp = h.k2[:, 0] - h.k2[:, 3]
    fm = h.k2[:, 0] + h.k2[:, 3]
    return me2_invariants(
        sqrt_s_hat * sqrt_s_hat,
        half * ep,
        half * fp,
        half * em,
        half * fm,
        h.d1,
        h.d2,
        mz2,
        alpha=alpha,
        g=g,
        spin=spin,
    )


# --------------------------------------------------------------------------- the integrand
@dataclass
class _Point:
    """What the integrand knows about the accepted (non-zero) points of a batch."""

    index: NDArray[np.intp]
    hard: _Hard
    sqrt_s_hat: NDArray[np.float64]
    mz: NDArray[np.float64]
    v1: NDArray[np.float64] | None
    v2: NDArray[np.float64] | None


class _Integrand:
    """dsigma/d^dim x in fb on the unit hypercube; picklable.

    Dimensions: ``[u1, u2]`` (ISR, optional), four hard-process variables, ``[x_bw]`` (width,
    optional) or ``[x_m]`` (mass range, optional: ``M = mass + x_m (mass_hi - mass)``, so the
    integral is the mean of sigma(M) over the range).
    """

    def __init__(
        self,
        mass: float,
        *,
        sqrt_s: float,
        alpha: float,
        g: float,
        isr: bool,
        width: float | None,
        spin: Spin = "vector",
        mass_hi: float | None = None,
    ) -> None:
        self.mass = mass
        self.mass_hi = mass_hi
        self.spin = spin
        self.sqrt_s = sqrt_s
        self.alpha = alpha
        self.g = g
        self.isr = isr
        self.width = width
        self.s = sqrt_s * sqrt_s
        self.dim = 4 + (2 if isr else 0) + (1 if (width or mass_hi is not None) else 0)
        self._hard_offset = 2 if isr else 0
        if width:
            mu_hi = sqrt_s - 2.0 * M_MUON
            mu_lo = max(mass - BW_CUTOFF * width, _MU_MIN_BW)
            mg = mass * width
            self._bw = (
                math.atan((mu_lo * mu_lo - mass * mass) / mg),
                math.atan((mu_hi * mu_hi - mass * mass) / mg),
            )

    def virtuality(self, xbw: NDArray[np.float64]) -> NDArray[np.float64]:
        """Z' virtuality mu (GeV) from the Breit-Wigner variable (density normalised to 1)."""
        lo, hi = self._bw
        mg = self.mass * self.width  # type: ignore[operator]
        mu2 = self.mass * self.mass + mg * np.tan(lo + xbw * (hi - lo))
        return np.sqrt(np.maximum(mu2, _MU_MIN_BW**2))

    def evaluate(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], _Point]:
        """Weights (fb) of the points ``x`` (n, dim) and the kinematics of the non-zero ones."""
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        out = np.zeros(n)
        w_isr = np.ones(n)
        v1 = v2 = None
        if self.isr:
            v1, w1 = sample_energy_loss(x[:, 0], self.s)
            v2, w2 = sample_energy_loss(x[:, 1], self.s)
            w_isr = w1 * w2
            rs_hat = self.sqrt_s * np.sqrt((1.0 - v1) * (1.0 - v2))
        else:
            rs_hat = np.full(n, self.sqrt_s)
        if self.width:
            mz = self.virtuality(x[:, -1])
        elif self.mass_hi is not None:
            mz = self.mass + x[:, -1] * (self.mass_hi - self.mass)
        else:
            mz = np.full(n, self.mass)
        ok = rs_hat > 2.0 * M_MUON + mz
        idx = np.flatnonzero(ok)
        if len(idx) < n:
            rs_hat, mz, w_isr = rs_hat[idx], mz[idx], w_isr[idx]
            xh = x[idx, self._hard_offset : self._hard_offset + 4]
            if v1 is not None and v2 is not None:
                v1, v2 = v1[idx], v2[idx]
        else:
            xh = x[:, self._hard_offset : self._hard_offset + 4]
        hard = _hard_kinematics(rs_hat, mz, xh)
        mz2 = mz * mz
        me2 = _me2_hard(hard, rs_hat, mz2, self.alpha, self.g, self.spin)
        out[idx] = GEV2_TO_FB * me2 / (2.0 * rs_hat * rs_hat) * hard.jac * w_isr
        return out, _Point(index=idx, hard=hard, sqrt_s_hat=rs_hat, mz=mz, v1=v1, v2=v2)

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.evaluate(x)[0]


# --------------------------------------------------------------------------- cross section
@dataclass(frozen=True)
class XsecResult:
    """A cross section sigma(e+e- -> mu+ mu- X) from vegas."""

    sigma_fb: float
    """Cross section in fb."""
    error_fb: float
    """Monte Carlo uncertainty (one standard deviation) in fb."""
    mass: float
    """Z' mass in GeV."""
    g: float
    """Coupling g'."""
    isr: bool
    """Whether the structure-function ISR was included."""
    alpha: float
    """alpha of the photon vertices."""
    sqrt_s: float
    """Nominal c.m. energy in GeV."""
    width: float | None = None
    """Z' width in GeV (None: narrow)."""
    chi2_dof: float = float("nan")
    """chi^2 per degree of freedom of the vegas iterations that were combined."""
    q_value: float = float("nan")
    """p-value of that chi^2."""
    n_eval: int = 0
    """Integrand evaluations used (adaptation included)."""
    seed: int = DEFAULT_SEED
    spin: Spin = "vector"
    """Spin of X: ``"vector"`` (Z'; ``g`` is g'), ``"scalar"`` or ``"pseudoscalar"`` (``g`` is
    the Yukawa y)."""

    @property
    def rel_error(self) -> float:
        """Relative Monte Carlo uncertainty."""
        return self.error_fb / self.sigma_fb if self.sigma_fb else float("inf")


def _vegas_integrator(dim: int, rng: np.random.Generator) -> vegas.Integrator:
    return vegas.Integrator([[0.0, 1.0]] * dim, ran_array_generator=rng.random)


def _integrate(
    integrand: _Integrand, rel_precision: float, seed: int
) -> tuple[vegas.Integrator, XsecResult]:
    """Adapt vegas to ``integrand`` and integrate it to ``rel_precision``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5167]))
    integ = _vegas_integrator(integrand.dim, rng)
    fcn = vegas.batchintegrand(integrand)
    n_warm = 20_000
    warm = integ(fcn, nitn=8, neval=n_warm)
    n_eval = 8 * n_warm
    # one iteration of n_warm points has rel. error r1; nitn iterations of neval points reach
    # about r1 sqrt(n_warm / (nitn neval))
    nitn = 5
    r1 = float(warm.itn_results[-1].sdev / abs(warm.itn_results[-1].mean))
    neval = int(min(max(n_warm, 1.3 * n_warm * (r1 / rel_precision) ** 2 / nitn), 5_000_000))
    for _ in range(4):
        res = integ(fcn, nitn=nitn, neval=neval)
        n_eval += nitn * neval
        mean, sdev = float(res.mean), float(res.sdev)
        if sdev <= rel_precision * abs(mean):
            break
        neval = int(min(neval * 1.3 * (sdev / (rel_precision * abs(mean))) ** 2, 20_000_000))
    result = XsecResult(
        sigma_fb=mean,
        error_fb=sdev,
        mass=integrand.mass,
        g=integrand.g,
        isr=integrand.isr,
        alpha=integrand.alpha,
        sqrt_s=integrand.sqrt_s,
        width=integrand.width,
        chi2_dof=float(res.chi2 / res.dof) if res.dof > 0 else float("nan"),
        q_value=float(res.Q),
        n_eval=n_eval,
        seed=int(seed),
        spin=integrand.spin,
    )
    return integ, result


def cross_section(
    mass: float,
    *,
    sqrt_s: float = SQRT_S,
    g: float = 1.0,
    isr: bool = True,
    alpha: float = ALPHA_DEFAULT,
    rel_precision: float = 0.005,
    seed: int = DEFAULT_SEED,
    width: float | None = None,
    spin: Spin = "vector",
) -> XsecResult:
    """sigma(e+e- -> mu+ mu- X) in fb, integrated with vegas.

    Parameters
    ----------
    mass
        Z' mass in GeV, in (0, sqrt_s - 2 m_mu).
    sqrt_s
        Nominal c.m. energy in GeV (default 10.583 GeV, PRL).
    g
        Z' coupling g' (sigma scales as g'^2).
    isr
        Convolve with the electron structure function (:mod:`zprime.generators.isr`).
    alpha
        alpha of the two photon vertices (default 1/132.507, MadGraph5's SM card; pass
        :data:`zprime.physics.constants.ALPHA_0` for the Thomson limit). The ISR structure function
        always uses alpha(0).
    rel_precision
        Target relative Monte Carlo uncertainty.
    seed
        Seed of vegas' random numbers (the result is reproducible for a given seed).
    width
        Z' width in GeV; ``None`` (default) for a narrow Z'. With a width the Z' virtuality
        follows a truncated relativistic Breit-Wigner (see :class:`SignalGenerator`).
    spin
        ``"vector"`` (Z', default; ``g`` = g'), ``"scalar"`` or ``"pseudoscalar"`` (``g`` = the
        Yukawa y of ``L = -y S mubar mu`` or ``L = -i y a mubar gamma5 mu``).

    Raises
    ------
    ConfigError
        For a mass outside the kinematic range, non-positive g, alpha or rel_precision, or an
        unknown spin.
    """
    m, rs, gg, a, rp = _check_common(mass, sqrt_s, g, alpha, rel_precision)
    w = _check_width(width, m)
    sp = _check_spin(spin)
    integrand = _Integrand(m, sqrt_s=rs, alpha=a, g=gg, isr=bool(isr), width=w, spin=sp)
    return _integrate(integrand, rp, seed)[1]


# --------------------------------------------------------------------------- the cached table
def xsec_grid_masses(
    min_gev: float = 0.01,
    max_gev: float = 9.0,
    points_per_decade_below_1gev: int = 20,
    step_above_1gev: float = 0.1,
) -> NDArray[np.float64]:
    """The mass grid of the cross-section table (config ``signal.xsec_grid``).

    Log-spaced with ``points_per_decade_below_1gev`` points per decade from ``min_gev`` up to
    (not including) 1 GeV, then linear from 1 GeV in steps of ``step_above_1gev`` up to
    ``max_gev``. Masses are rounded to 1e-6 GeV.
    """
    if not 0.0 < min_gev < max_gev:
        raise ConfigError(f"xsec grid: need 0 < min_gev < max_gev, got {min_gev!r}, {max_gev!r}")
    if points_per_decade_below_1gev < 1 or step_above_1gev <= 0.0:
        raise ConfigError("xsec grid: points_per_decade_below_1gev and step_above_1gev must be > 0")
    pts: list[float] = []
    if min_gev < 1.0:
        decades = math.log10(1.0 / min_gev)
        n_log = math.ceil(decades * points_per_decade_below_1gev - 1e-9)
        pts.extend(10.0 ** (-np.arange(n_log, 0, -1) / points_per_decade_below_1gev))
        pts[0] = min_gev
    start = max(1.0, min_gev)
    n_lin = math.floor((max_gev - start) / step_above_1gev + 1e-9)
    pts.extend(start + step_above_1gev * np.arange(n_lin + 1))
    if pts[-1] < max_gev - 1e-9:
        pts.append(max_gev)
    return np.unique(np.round(np.asarray(pts, dtype=np.float64), 6))


def _table_point(task: tuple[Any, ...]) -> tuple[float, ...]:
    mass, sqrt_s, alpha, rel_precision, seed = task[:5]
    spin = task[5] if len(task) > 5 else "vector"
    seed_m = int(np.random.SeedSequence([seed, round(mass * 1e6)]).generate_state(1)[0])
    on = cross_section(
        mass,
        sqrt_s=sqrt_s,
        alpha=alpha,
        isr=True,
        rel_precision=rel_precision,
        seed=seed_m,
        spin=spin,
    )
    off = cross_section(
        mass,
        sqrt_s=sqrt_s,
        alpha=alpha,
        isr=False,
        rel_precision=rel_precision,
        seed=seed_m,
        spin=spin,
    )
    return (mass, on.sigma_fb, on.error_fb, off.sigma_fb, off.error_fb)


def xsec_table(
    masses: Sequence[float] | NDArray[np.float64] | None = None,
    *,
    sqrt_s: float = SQRT_S,
    alpha: float = ALPHA_DEFAULT,
    rel_precision: float = 0.005,
    seed: int = DEFAULT_SEED,
    workers: int | None = None,
    executor: Executor | str | None = None,
    progress: bool = True,
    spin: Spin = "vector",
) -> XsecTable:
    """Compute sigma(e+e- -> mu+ mu- X) at coupling 1 with and without ISR over a mass grid.

    Parameters
    ----------
    masses
        Z' masses in GeV (default: the grid of the default configuration,
        ``signal.xsec_grid``, see :func:`xsec_grid_masses`).
    sqrt_s, alpha, rel_precision, seed
        As in :func:`cross_section`; each mass gets its own seed derived from ``seed`` and the
        mass, so the table does not depend on the number of workers.
    workers, executor
        Passed to :func:`zprime.parallel.map_tasks` (default: a local process pool).
    progress
        Show a progress bar.
    spin
        ``"vector"`` (Z' at g' = 1, default), ``"scalar"`` or ``"pseudoscalar"`` (y = 1); a
        spin-0 table's metadata names the spin (``spin``) and the coupling (``coupling``); a
        vector table's metadata are those of the shipped Z' table.
    """
    sp = _check_spin(spin)
    if masses is None:
        grid = default_config().signal.xsec_grid
        masses = xsec_grid_masses(
            grid.min_gev, grid.max_gev, grid.points_per_decade_below_1gev, grid.step_above_1gev
        )
    rs = _check_positive(sqrt_s, "sqrt_s")
    a = _check_positive(alpha, "alpha")
    rp = _check_positive(rel_precision, "rel_precision")
    ms = sorted({_check_mass(m, rs) for m in masses})
    if len(ms) < 2:
        raise ConfigError("a cross-section table needs at least two distinct masses")
    tasks: list[tuple[Any, ...]] = [(m, rs, a, rp, int(seed)) for m in ms]
    if sp != "vector":
        tasks = [(*tk, sp) for tk in tasks]
    rows = map_tasks(
        _table_point,
        tasks,
        executor=executor,
        workers=workers,
        description=f"sigma(ee -> mu mu X, {sp})" if progress else None,
        progress=progress,
    )
    arr = np.asarray(rows, dtype=np.float64)
    prov = provenance()
    git = prov.get("git", {})
    meta = {
        "alpha": f"{a:.10g}",
        "alpha_inverse": f"{1.0 / a:.6f}",
        "alpha_isr": "alpha(0) = 1/137.036 (zprime.generators.isr structure function)",
        "sqrt_s_gev": f"{rs:.6f}",
        "g_prime": "1",
        "isr": "Kuraev-Fadin structure function, zprime.generators.isr",
        "rel_precision": f"{rp:g}",
        "seed": str(int(seed)),
        "zprime_version": __version__,
        "git_commit": f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}",
        "created": str(prov.get("created")),
    }
    if sp != "vector":
        del meta["g_prime"]
        lagr = "-y S mubar mu" if sp == "scalar" else "-i y a mubar gamma5 mu"
        meta = {
            "process": "e+e- -> mu+ mu- X, X radiated off the muon line",
            "spin": sp,
            "coupling": f"y = 1 (L = {lagr})",
            **meta,
        }
    return XsecTable(
        mass_gev=arr[:, 0],
        sigma_isr=arr[:, 1],
        error_isr=arr[:, 2],
        sigma_noisr=arr[:, 3],
        error_noisr=arr[:, 4],
        metadata=meta,
    )


# --------------------------------------------------------------------------- events
def signal_file_name(mass: float, width: float | None = None, spin: Spin = "vector") -> str:
    """File name of a signal sample: ``signal_M{mass:.4f}.parquet`` (``_W{width:.4f}`` added;
    ``signal_{spin}_M...`` for a spin-0 X)."""
    tail = f"_W{width:.4f}" if width else ""
    head = "signal" if spin == "vector" else f"signal_{spin}"
    return f"{head}_M{mass:.4f}{tail}.parquet"


@dataclass
class SignalSample:
    """Unweighted signal events and what describes them."""

    events: ak.Array
    """Events in the generator-level schema of :mod:`zprime.io.events` (lab frame) plus the
    truth columns ``mass`` (Z' mass or virtuality, GeV) and ``sqrt_s_hat`` (GeV)."""
    sigma_fb: float
    """Cross section of the sample in fb (sum of the weights)."""
    sigma_error_fb: float
    """Its Monte Carlo uncertainty in fb."""
    efficiency: float
    """Hit-or-miss unweighting efficiency: accepted / tried points."""
    overweight_fraction: float
    """Fraction of the events whose weight exceeded the unweighting maximum."""
    n_trials: int
    """Points tried."""
    max_weight: float
    """Unweighting maximum (fb per unit of the vegas y-space), from the pilot run."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Generator settings and statistics (also written to the Parquet metadata)."""


@dataclass
class _Accepted:
    k1: NDArray[np.float64]
    k2: NDArray[np.float64]
    q: NDArray[np.float64]
    sqrt_s_hat: NDArray[np.float64]
    mz: NDArray[np.float64]
    v1: NDArray[np.float64] | None
    v2: NDArray[np.float64] | None
    n_trials: int
    n_overweight: int


class SignalGenerator:
    """Unweighted e+e- -> mu+ mu- X events for one X mass (and width), X a Z' (``spin="vector"``,
    default) or a scalar or pseudoscalar (``g`` is then the Yukawa y; module docstring).

    Construction adapts vegas to the integrand and integrates it (this is the cross section of
    the sample), then finds the maximum weight in a pilot run of ``n_pilot`` points drawn from
    the adapted vegas map (:class:`vegas.AdaptiveMap`, i.e. vegas' importance sampling without
    its stratification). :meth:`generate` then draws points from the same map and keeps each
    with probability ``w / w_max`` (hit-or-miss). Events whose weight exceeds ``w_max`` are
    kept with unit weight and counted (``overweight_fraction``).

    With a ``width`` the Z' virtuality mu follows a relativistic Breit-Wigner
    ``(M Gamma / pi) / ((mu^2 - M^2)^2 + M^2 Gamma^2)`` in mu^2, normalised to one on
    ``mu in [max(M - 15 Gamma, 1 MeV), sqrt(s) - 2 m_mu]`` (MadGraph5's ``bwcutoff = 15`` below,
    the kinematic limit above); points with mu above sqrt(s_hat) - 2 m_mu after ISR have zero
    weight. sigma is then the Breit-Wigner average of sigma(mu).

    With ``mass_hi`` (and no width) the sample covers a continuum of narrow X masses: each
    event's mass M is drawn uniformly on ``[mass, mass_hi]`` before the matrix-element
    weighting, so the unweighted events follow ``sigma(M) / <sigma>`` in M, each with the exact
    kinematics of its own M (the event's ``mass``); sigma is the mean of sigma(M) over the
    range. Such samples train classifiers that must not learn a discrete set of masses (the
    tau-tau search's range networks).

    The generator is picklable, so chunks can run in worker processes.
    """

    def __init__(
        self,
        mass: float,
        *,
        width: float | None = None,
        isr: bool = True,
        alpha: float = ALPHA_DEFAULT,
        sqrt_s: float = SQRT_S,
        g: float = 1.0,
        rel_precision: float = 0.005,
        seed: int = DEFAULT_SEED,
        n_pilot: int = 400_000,
        spin: Spin = "vector",
        mass_hi: float | None = None,
    ) -> None:
        m, rs, gg, a, rp = _check_common(mass, sqrt_s, g, alpha, rel_precision)
        w = _check_width(width, m)
        self.spin = _check_spin(spin)
        _check_count(n_pilot, "n_pilot")
        self.mass_hi = None if mass_hi is None else _check_mass(mass_hi, rs, "mass_hi")
        if self.mass_hi is not None and (w is not None or self.mass_hi <= m):
            raise ConfigError(
                f"mass_hi = {mass_hi!r} GeV needs a narrow X and must exceed the mass {m!r} GeV"
            )
        self.mass = m
        self.width = w
        self.isr = bool(isr)
        self.alpha = a
        self.sqrt_s = rs
        self.g = gg
        self.seed = int(seed)
        self._integrand = _Integrand(
            m,
            sqrt_s=rs,
            alpha=a,
            g=gg,
            isr=self.isr,
            width=w,
            spin=self.spin,
            mass_hi=self.mass_hi,
        )
        integ, self.xsec = _integrate(self._integrand, rp, self.seed)
        self._map = integ.map
        pilot_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x9170]))
        wmax = 0.0
        wsum = 0.0
        done = 0
        while done < n_pilot:
            b = min(1 << 16, n_pilot - done)
            wts = self._trial(pilot_rng.random((b, self._integrand.dim)))[0]
            wmax = max(wmax, float(wts.max()))
            wsum += float(wts.sum())
            done += b
        if wmax <= 0.0:  # pragma: no cover - impossible for a mass inside the kinematic range
            raise ConfigError(f"Z' mass {mass!r} GeV: the pilot run found no non-zero weight")
        self.max_weight = wmax
        self.pilot_efficiency = wsum / n_pilot / wmax
        self.n_pilot = n_pilot

    @property
    def sigma_fb(self) -> float:
        """Cross section in fb (vegas)."""
        return self.xsec.sigma_fb

    def _trial(self, y: NDArray[np.float64]) -> tuple[NDArray[np.float64], _Point]:
        x = np.empty_like(y)
        jac = np.empty(y.shape[0])
        self._map.map(y, x, jac)
        wts, pt = self._integrand.evaluate(x)
        return wts * jac, pt

    def _accept(self, n: int, rng: np.random.Generator) -> _Accepted:
        parts: list[tuple[Any, ...]] = []
        n_acc = 0
        n_trials = 0
        n_over = 0
        eff = max(self.pilot_efficiency, 1e-4)
        while n_acc < n:
            b = int(min(max(1.1 * (n - n_acc) / eff + 64, 1024), 1 << 16))
            y = rng.random((b, self._integrand.dim))
            r = rng.random(b)
            wts, pt = self._trial(y)
            n_trials += b
            acc = (wts > r * self.max_weight)[pt.index]
            sel = np.flatnonzero(acc)
            if len(sel) == 0:
                continue
            if n_acc + len(sel) > n:
                sel = sel[: n - n_acc]
            n_over += int(np.count_nonzero(wts[pt.index[sel]] > self.max_weight))
            h = pt.hard
            parts.append(
                (
                    h.k1[sel],
                    h.k2[sel],
                    h.q[sel],
                    pt.sqrt_s_hat[sel],
                    pt.mz[sel],
                    None if pt.v1 is None else pt.v1[sel],
                    None if pt.v2 is None else pt.v2[sel],
                )
            )
            n_acc += len(sel)

        def cat(i: int) -> Any:
            if parts[0][i] is None:
                return None
            return np.concatenate([p[i] for p in parts])

        return _Accepted(
            k1=cat(0),
            k2=cat(1),
            q=cat(2),
            sqrt_s_hat=cat(3),
            mz=cat(4),
            v1=cat(5),
            v2=cat(6),
            n_trials=n_trials,
            n_overweight=n_over,
        )

    def lab_momenta(
        self, n: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_], _Accepted]:
        """Lab four-momenta of ``n`` unweighted events (what :meth:`generate` writes).

        Returns
        -------
        p4, keep, accepted
            ``p4`` (n, 3 or 5, 4): mu-, mu+, X, then (with ISR) the photons of the e- and the
            e+; ``keep`` (same leading shape) is False for ISR photons of zero energy;
            ``accepted`` holds the hard-frame truth (``mz``, ``sqrt_s_hat``, ...).
        """
        acc = self._accept(n, rng)
        # the azimuth about the beam and the mu+ <-> mu- channel choice (see the module doc)
        phi = (2.0 * math.pi) * rng.random(n)
        swap = rng.random(n) < 0.5
        c, s = np.cos(phi), np.sin(phi)
        hard = np.stack(
            [
                np.where(swap[:, None], acc.k2, acc.k1),
                np.where(swap[:, None], acc.k1, acc.k2),
                acc.q,
            ],
            axis=1,
        )
        x = hard[..., 1].copy()
        y = hard[..., 2]
        hard[..., 1] = c[:, None] * x - s[:, None] * y
        hard[..., 2] = s[:, None] * x + c[:, None] * y
        if self.isr and acc.v1 is not None and acc.v2 is not None:
            kin = isr_kinematics(acc.v1, acc.v2, self.sqrt_s)
            hard = boost_z(hard, kin.beta_z[:, None])
            p4 = np.concatenate(
                [hard, kin.photon_electron[:, None, :], kin.photon_positron[:, None, :]], axis=1
            )
        else:
            p4 = hard
        p4 = cm_to_lab(p4)
        keep = np.ones(p4.shape[:2], dtype=bool)
        keep[:, 3:] = p4[:, 3:, 0] > 0.0
        return p4, keep, acc

    def generate(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        weight_fb: float | None = None,
        first_event: int = 0,
    ) -> SignalSample:
        """Draw ``n`` unweighted events (lab frame).

        Parameters
        ----------
        n
            Number of events.
        rng
            The random numbers (a numpy Generator).
        weight_fb
            Weight of every event (default ``sigma_fb / n``); :func:`write_signal` passes
            ``sigma_fb / n_total`` to each chunk.
        first_event
            Number of the first event (column ``event``).
        """
        n = _check_count(n)
        p4, keep, acc = self.lab_momenta(n, rng)
        pdg = [_PDG_MU_MINUS, _PDG_MU_PLUS, PDG_ZPRIME if self.spin == "vector" else PDG_SPIN0]
        if p4.shape[1] > 3:
            pdg += [_PDG_PHOTON, _PDG_PHOTON]
        pdg_arr = np.broadcast_to(np.asarray(pdg, dtype=np.int32), keep.shape)
        particles = make_particles(pdg_arr[keep], p4[keep], counts=keep.sum(axis=1))
        weight = self.sigma_fb / n if weight_fb is None else float(weight_fb)
        events = ak.zip(
            {
                "event": np.arange(first_event, first_event + n, dtype=np.int64),
                "weight": np.full(n, weight),
                "particles": particles,
                "mass": acc.mz,
                "sqrt_s_hat": acc.sqrt_s_hat,
            },
            depth_limit=1,
        )
        eff = n / acc.n_trials
        over = acc.n_overweight / n
        return SignalSample(
            events=events,
            sigma_fb=self.sigma_fb if weight_fb is None else weight * n,
            sigma_error_fb=self.xsec.error_fb,
            efficiency=eff,
            overweight_fraction=over,
            n_trials=acc.n_trials,
            max_weight=self.max_weight,
            metadata={
                **self.describe(),
                "n_events": n,
                "n_trials": acc.n_trials,
                "n_overweight": acc.n_overweight,
                "unweighting_efficiency": eff,
                "overweight_fraction": over,
            },
        )

    def describe(self) -> dict[str, Any]:
        """Settings and cross section of this generator (for the file metadata)."""
        if self.spin != "vector":
            return {
                "sample": "signal",
                "process": "e+e- -> mu+ mu- X",
                "spin": self.spin,
                "generator": f"zprime.generators.signal {__version__}",
                "mass_gev": self.mass,
                "mass_hi_gev": self.mass_hi,
                "width_gev": self.width,
                "yukawa_y": self.g,
                **{k: v for k, v in self._describe_vector().items() if k not in _VECTOR_ONLY},
            }
        return self._describe_vector()

    def _describe_vector(self) -> dict[str, Any]:
        return {
            "sample": "signal",
            "process": "e+e- -> mu+ mu- Z'",
            "generator": f"zprime.generators.signal {__version__}",
            "mass_gev": self.mass,
            "mass_hi_gev": self.mass_hi,
            "width_gev": self.width,
            "g_prime": self.g,
            "isr": self.isr,
            "alpha": self.alpha,
            "sqrt_s_gev": self.sqrt_s,
            "sigma_fb": self.sigma_fb,
            "sigma_error_fb": self.xsec.error_fb,
            "vegas_seed": self.seed,
            "max_weight": self.max_weight,
            "n_pilot": self.n_pilot,
            "pilot_efficiency": self.pilot_efficiency,
        }


def generate(
    mass: float,
    n: int,
    rng: np.random.Generator,
    *,
    width: float | None = None,
    isr: bool = True,
    alpha: float = ALPHA_DEFAULT,
    sqrt_s: float = SQRT_S,
    g: float = 1.0,
    rel_precision: float = 0.005,
    spin: Spin = "vector",
) -> SignalSample:
    """Generate ``n`` unweighted e+e- -> mu+ mu- X events in the Belle II lab frame.

    The vegas adaptation is seeded from ``rng`` (one draw), then the events come from ``rng``.
    Each event carries ``weight = sigma_fb / n`` (fb). See :class:`SignalGenerator`.

    Raises
    ------
    ConfigError
        For a mass outside (0, sqrt_s - 2 m_mu), a negative width, non-positive n, g or alpha.
    """
    n = _check_count(n)
    _check_common(mass, sqrt_s, g, alpha, rel_precision)
    seed = int(rng.integers(0, 2**62))
    gen = SignalGenerator(
        mass,
        width=width,
        isr=isr,
        alpha=alpha,
        sqrt_s=sqrt_s,
        g=g,
        rel_precision=rel_precision,
        seed=seed,
        spin=spin,
    )
    return gen.generate(n, rng)


def _chunk_task(
    gen: SignalGenerator, weight_fb: float, task: tuple[int, int, int, int]
) -> tuple[ak.Array, int, int]:
    index, n, first, seed = task
    sample = gen.generate(n, chunk_rng(seed, 2, index), weight_fb=weight_fb, first_event=first)
    return sample.events, sample.n_trials, int(sample.metadata["n_overweight"])


def write_signal(
    mass: float,
    n: int,
    out_dir: str | Path,
    *,
    seed: int,
    chunk_size: int = 100_000,
    width: float | None = None,
    isr: bool = True,
    alpha: float = ALPHA_DEFAULT,
    sqrt_s: float = SQRT_S,
    g: float = 1.0,
    rel_precision: float = 0.005,
    executor: Executor | str | None = None,
    workers: int | None = None,
    progress: bool = True,
    spin: Spin = "vector",
) -> Path:
    """Generate ``n`` signal events and stream them to ``out_dir/signal_M{mass:.4f}.parquet``
    (``signal_{spin}_M...`` for a spin-0 X, see :func:`signal_file_name`; the X is written
    undecayed; for X -> tau+ tau- see :func:`zprime.generators.x_decays.write_mumu_x_tautau`).

    The vegas adaptation is seeded from ``(seed, 1)``; chunk ``i`` uses
    ``zprime._util.chunk_rng(seed, 2, i)``, so the file does not depend on the number of
    workers. Every event has ``weight = sigma_fb / n``. The metadata hold the generator
    settings, sigma, the unweighting efficiency and the overweight fraction.

    Returns
    -------
    Path
        The file written (atomically; nothing is written on error).
    """
    n = _check_count(n)
    chunk_size = _check_count(chunk_size, "chunk_size")
    rs = _check_positive(sqrt_s, "sqrt_s")
    m = _check_mass(mass, rs)
    w = _check_width(width, m)
    _check_common(m, rs, g, alpha, rel_precision)
    sp = _check_spin(spin)
    setup_seed = int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])
    gen = SignalGenerator(
        m,
        width=w,
        isr=isr,
        alpha=alpha,
        sqrt_s=rs,
        g=g,
        rel_precision=rel_precision,
        seed=setup_seed,
        spin=sp,
    )
    sizes = [min(chunk_size, n - i) for i in range(0, n, chunk_size)]
    tasks = [(i, k, i * chunk_size, int(seed)) for i, k in enumerate(sizes)]
    weight = gen.sigma_fb / n
    fn = functools.partial(_chunk_task, gen, weight)
    n_workers = workers or default_workers()
    if len(tasks) == 1 or (executor is None and n_workers == 1):
        executor = "serial"
    # one pool for the whole file (map_tasks would start a new one per group)
    own_pool = executor is None
    group = max(1, 2 * n_workers) if executor != "serial" else 1
    path = Path(out_dir) / signal_file_name(m, w, sp)
    meta = {**gen.describe(), "n_events": n, "seed": int(seed), "chunk_size": chunk_size}
    n_trials = 0
    n_over = 0
    bar = Progress(
        TextColumn("[bold]signal M = {task.fields[mass]:.4g} GeV"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with contextlib.ExitStack() as stack, bar, EventWriter(path, metadata=meta) as writer:
        if own_pool:
            executor = stack.enter_context(local_pool(n_workers))
        tid = bar.add_task("signal", total=n, mass=m)
        for start in range(0, len(tasks), group):
            results = map_tasks(fn, tasks[start : start + group], executor=executor, progress=False)
            for events, trials, over in results:
                writer.write(events)
                n_trials += trials
                n_over += over
                bar.advance(tid, len(events))
        writer.update_metadata(
            n_trials=n_trials,
            n_overweight=n_over,
            unweighting_efficiency=n / n_trials,
            overweight_fraction=n_over / n,
            provenance=provenance(),
        )
    return path
