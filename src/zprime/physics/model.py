"""Physics of the L_mu - L_tau Z': widths, invisible branching fraction, (g-2)_mu, g' <-> sigma.

The Z' of gauged L_mu - L_tau couples with strength g' to the current

.. math::

    J^\\alpha = \\bar\\mu\\gamma^\\alpha\\mu - \\bar\\tau\\gamma^\\alpha\\tau
              + \\bar\\nu_\\mu\\gamma^\\alpha P_L\\nu_\\mu
              - \\bar\\nu_\\tau\\gamma^\\alpha P_L\\nu_\\tau

(vector-like to the charged leptons, left-handed neutrinos only) [1]_ [2]_; in the "fully
invisible" scenario it also decays to a Dirac dark fermion chi with coupling g_D,
alpha_D = g_D^2 / (4 pi) [3]_ (PRL 130, 231801 (2023), the "PRL" below).

Partial widths (tree level) [2]_ [3]_, with beta_f = sqrt(1 - 4 m_f^2/M^2):

* Gamma(Z' -> l+ l-) = g'^2 M / (12 pi) (1 + 2 m_l^2/M^2) beta_l, l = mu, tau (0 below 2 m_l);
* Gamma(Z' -> nu nubar) = g'^2 M / (24 pi) per flavour (nu_mu, nu_tau);
* Gamma(Z' -> chi chibar) = alpha_D M / 3 (1 + 2 m_chi^2/M^2) beta_chi.

The one-loop Z' contribution to the muon anomaly for a vector coupling is [4]_ [5]_ [6]_

.. math::

    \\Delta a_\\mu = \\frac{g'^2}{4\\pi^2}\\int_0^1 dz\\,
        \\frac{m_\\mu^2 z (1-z)^2}{m_\\mu^2 (1-z)^2 + M^2 z},

alpha'/(2 pi) for M -> 0 and g'^2 m_mu^2 / (12 pi^2 M^2) for M >> m_mu. The (g-2)_mu band of
the PRL's Figs. 3 and 4 is the g' that gives Delta a_mu = (251 +- 59) x 10^-11 within +-2 sigma
[7]_ (the PRL's Ref. [2]).

Masses come from :mod:`zprime.physics.constants` (PDG through ``particle``). Every function accepts
mass arrays and broadcasts its other array arguments against them; a scalar input gives a
``float`` back. Bad values raise :class:`zprime.errors.ConfigError` with a one-line message.

References
----------
.. [1] X. G. He, G. C. Joshi, H. Lew and R. R. Volkas, Phys. Rev. D 43 (1991) R22 (PRL Ref. [4]).
.. [2] M. Bauer, P. Foldenauer and J. Jaeckel, JHEP 07 (2018) 094, arXiv:1803.05466 (PRL Ref.
       [20]); T. Araki, S. Hoshino, T. Ota, J. Sato and T. Shimomura, Phys. Rev. D 95 (2017)
       055006, arXiv:1702.01497 (PRL Ref. [19]).
.. [3] W. Altmannshofer, S. Gori, S. Profumo and F. S. Queiroz, JHEP 12 (2016) 106,
       arXiv:1609.04026 (PRL Ref. [6]); the PRL defines alpha_D = g_D^2/(4 pi).
.. [4] J. P. Leveille, Nucl. Phys. B137 (1978) 63.
.. [5] F. Jegerlehner and A. Nyffeler, Phys. Rept. 477 (2009) 1, arXiv:0902.3360.
.. [6] W. Altmannshofer, S. Gori, M. Pospelov and I. Yavin, Phys. Rev. Lett. 113 (2014) 091801
       (PRL Ref. [7]).
.. [7] B. Abi et al. (Muon g-2 Collaboration), Phys. Rev. Lett. 126 (2021) 141801 (PRL Ref. [2]).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime.errors import ConfigError
from zprime.physics.constants import M_MUON, M_TAU
from zprime.physics.xsec_table import load_xsec_table

__all__ = [
    "G2_DELTA_A_MU",
    "G2_SIGMA_A_MU",
    "MODELS",
    "G2Band",
    "XsecFunction",
    "alpha_d_for_width",
    "branching_invisible",
    "coupling_limit",
    "delta_a_mu",
    "g2_band",
    "partial_widths",
    "sigma_times_br",
    "total_width",
    "width_dark_fermions",
    "width_lepton_pair",
    "width_neutrinos",
]

MODELS: tuple[str, ...] = ("vanilla", "fully_invisible")
"""The two scenarios of the PRL: Z' decays to SM particles only, or also to chi chibar."""

G2_DELTA_A_MU: float = 251e-11
"""a_mu(exp) - a_mu(SM) = (251 +- 59) x 10^-11: Muon g-2 Collaboration, PRL 126, 141801 (2021),
FNAL Run 1 combined with BNL E821 (the PRL's Ref. [2])."""
G2_SIGMA_A_MU: float = 59e-11
"""Uncertainty of :data:`G2_DELTA_A_MU` (same source)."""

XsecFunction = Callable[[NDArray[np.float64]], ArrayLike]
"""sigma(e+e- -> mu+ mu- Z') at g' = 1 in fb as a function of the Z' mass array in GeV."""

# Fixed Gauss-Legendre rule for the (g-2) loop integral above M = 2 m_mu (see _loop_function).
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(64)
_GL_S = 0.5 * (_GL_NODES + 1.0)
_GL_W = 0.5 * _GL_WEIGHTS


# --------------------------------------------------------------------------- input checking
def _as_array(value: ArrayLike, name: str) -> tuple[NDArray[np.float64], bool]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name} must be a number or an array of numbers, got {value!r}"
        ) from None
    return arr, arr.ndim == 0


def _first_bad(arr: NDArray[np.float64], bad: NDArray[np.bool_]) -> float:
    return float(arr[bad].flat[0]) if np.any(bad) else float("nan")


def _check_positive(
    value: ArrayLike, name: str, unit: str = ""
) -> tuple[NDArray[np.float64], bool]:
    arr, scalar = _as_array(value, name)
    bad = ~np.isfinite(arr) | (arr <= 0.0)
    if np.any(bad):
        suffix = f" {unit}" if unit else ""
        raise ConfigError(
            f"{name} must be finite and > 0{suffix}, got {_first_bad(arr, bad)!r}{suffix}"
        )
    return arr, scalar


def _check_non_negative(value: ArrayLike, name: str, unit: str = "") -> NDArray[np.float64]:
    arr, _ = _as_array(value, name)
    bad = ~np.isfinite(arr) | (arr < 0.0)
    if np.any(bad):
        suffix = f" {unit}" if unit else ""
        raise ConfigError(
            f"{name} must be finite and >= 0{suffix}, got {_first_bad(arr, bad)!r}{suffix}"
        )
    return arr


def _check_model(model: str) -> str:
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    return model


def _check_dark(
    model: str, alpha_d: ArrayLike | None, m_chi: ArrayLike | None
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64]]:
    """Validate the dark-sector arguments; returns (alpha_d or None, m_chi)."""
    if model == "vanilla" and (alpha_d is not None or m_chi is not None):
        raise ConfigError(
            "alpha_d and m_chi apply only to model 'fully_invisible', not to model 'vanilla'"
        )
    if alpha_d is None:
        if m_chi is not None:
            raise ConfigError(f"m_chi = {m_chi!r} GeV given without alpha_d")
        return None, np.zeros(())
    alpha, _ = _check_positive(alpha_d, "alpha_d")
    mchi = np.zeros(()) if m_chi is None else _check_non_negative(m_chi, "m_chi", "GeV")
    return alpha, mchi


def _out(arr: NDArray[np.float64], scalar: bool) -> Any:
    """A float for scalar inputs, else the array."""
    return float(arr) if scalar else arr


# --------------------------------------------------------------------------- partial widths
def _two_body(mass: NDArray[np.float64], m_f: ArrayLike) -> NDArray[np.float64]:
    """(1 + 2 x) sqrt(1 - 4 x), x = m_f^2/M^2, for a vector decaying to a fermion pair; 0 below
    threshold (the factor vanishes continuously at M = 2 m_f)."""
    x = (np.asarray(m_f, dtype=np.float64) / mass) ** 2
    beta2 = 1.0 - 4.0 * x
    return np.where(beta2 > 0.0, (1.0 + 2.0 * x) * np.sqrt(np.clip(beta2, 0.0, None)), 0.0)


def _lepton(mass: NDArray[np.float64], g: NDArray[np.float64], m_l: float) -> NDArray[np.float64]:
    return g**2 * mass / (12.0 * math.pi) * _two_body(mass, m_l)


def _neutrinos(mass: NDArray[np.float64], g: NDArray[np.float64]) -> NDArray[np.float64]:
    # left-handed nu_mu and nu_tau: half the width of a Dirac fermion each, two flavours
    return 2.0 * g**2 * mass / (24.0 * math.pi) + 0.0 * mass


def _dark(
    mass: NDArray[np.float64], alpha_d: NDArray[np.float64], m_chi: NDArray[np.float64]
) -> NDArray[np.float64]:
    return alpha_d * mass / 3.0 * _two_body(mass, m_chi)


def width_lepton_pair(mass: ArrayLike, m_lepton: float, g: ArrayLike = 1.0) -> Any:
    """Gamma(Z' -> l+ l-) in GeV for a vector coupling g' (Bauer, Foldenauer, Jaeckel 2018).

    Parameters
    ----------
    mass
        Z' mass in GeV (> 0).
    m_lepton
        Mass of the charged lepton in GeV (e.g. :data:`zprime.physics.constants.M_MUON`).
    g
        Coupling g'.

    Returns
    -------
    float or numpy.ndarray
        g'^2 M/(12 pi) (1 + 2 m_l^2/M^2) sqrt(1 - 4 m_l^2/M^2); zero for M <= 2 m_l.
    """
    m, scalar = _check_positive(mass, "mass", "GeV")
    gg, gscalar = _check_positive(g, "g")
    ml = _check_non_negative(m_lepton, "m_lepton", "GeV")
    return _out(_lepton(m, gg, ml), scalar and gscalar)  # type: ignore[arg-type]


def width_neutrinos(mass: ArrayLike, g: ArrayLike = 1.0) -> Any:
    """Gamma(Z' -> nu nubar) in GeV summed over nu_mu and nu_tau (left-handed only).

    Each flavour gives g'^2 M/(24 pi), half of a Dirac fermion's width because only the
    left-handed neutrino is charged (Bauer, Foldenauer, Jaeckel 2018; Araki et al. 2017).
    """
    m, scalar = _check_positive(mass, "mass", "GeV")
    gg, gscalar = _check_positive(g, "g")
    return _out(_neutrinos(m, gg), scalar and gscalar)


def width_dark_fermions(mass: ArrayLike, alpha_d: ArrayLike, m_chi: ArrayLike = 0.0) -> Any:
    """Gamma(Z' -> chi chibar) in GeV for a Dirac dark fermion (Altmannshofer et al. 2016).

    alpha_D M/3 (1 + 2 m_chi^2/M^2) sqrt(1 - 4 m_chi^2/M^2) with alpha_D = g_D^2/(4 pi), i.e.
    the charged-lepton formula with g' -> g_D; zero for M <= 2 m_chi.
    """
    m, scalar = _check_positive(mass, "mass", "GeV")
    a, ascalar = _check_positive(alpha_d, "alpha_d")
    mchi = _check_non_negative(m_chi, "m_chi", "GeV")
    return _out(_dark(m, a, mchi), scalar and ascalar and mchi.ndim == 0)


def _sm_widths(mass: NDArray[np.float64], g: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    return {
        "mumu": _lepton(mass, g, M_MUON),
        "tautau": _lepton(mass, g, M_TAU),
        "nunu": _neutrinos(mass, g),
    }


def partial_widths(
    mass: ArrayLike,
    g: ArrayLike = 1.0,
    *,
    alpha_d: ArrayLike | None = None,
    m_chi: ArrayLike | None = None,
) -> dict[str, Any]:
    """All partial widths of the Z' in GeV.

    Parameters
    ----------
    mass
        Z' mass in GeV (> 0), scalar or array.
    g
        Coupling g' to mu, tau and left-handed nu_mu, nu_tau.
    alpha_d
        Dark coupling alpha_D = g_D^2/(4 pi); ``None`` for no dark sector (``chichi`` is 0).
    m_chi
        Dark-fermion mass in GeV; ``None`` means massless (m_chi << M).

    Returns
    -------
    dict
        ``mumu``, ``tautau``, ``nunu`` (both neutrino flavours summed) and ``chichi``.
    """
    m, scalar = _check_positive(mass, "mass", "GeV")
    gg, gscalar = _check_positive(g, "g")
    widths = _sm_widths(m, gg)
    if alpha_d is None:
        if m_chi is not None:
            raise ConfigError(f"m_chi = {m_chi!r} GeV given without alpha_d")
        widths["chichi"] = np.zeros_like(widths["mumu"])
        ascalar = True
    else:
        a, ascalar = _check_positive(alpha_d, "alpha_d")
        mchi = np.zeros(()) if m_chi is None else _check_non_negative(m_chi, "m_chi", "GeV")
        ascalar = ascalar and mchi.ndim == 0
        widths["chichi"] = _dark(m, a, mchi)
    all_scalar = scalar and gscalar and ascalar
    if not all_scalar:
        shape = np.broadcast_shapes(*(w.shape for w in widths.values()))
        widths = {k: np.broadcast_to(w, shape).copy() for k, w in widths.items()}
    return {k: _out(w, all_scalar) for k, w in widths.items()}


def total_width(
    mass: ArrayLike,
    model: str,
    g: ArrayLike = 1.0,
    *,
    alpha_d: ArrayLike | None = None,
    m_chi: ArrayLike | None = None,
) -> Any:
    """Total Z' width in GeV.

    Parameters
    ----------
    mass
        Z' mass in GeV.
    model
        ``"vanilla"`` (mu mu + tau tau + nu nu) or ``"fully_invisible"`` (plus chi chibar;
        needs ``alpha_d``, since in the PRL's g_D >> g' limit the width is set by alpha_D alone).
    g
        Coupling g'.
    alpha_d, m_chi
        Dark coupling and dark-fermion mass (GeV, default massless); fully invisible only.
    """
    _check_model(model)
    alpha, mchi = _check_dark(model, alpha_d, m_chi)
    if model == "fully_invisible" and alpha is None:
        raise ConfigError("total_width for model 'fully_invisible' needs alpha_d")
    m, scalar = _check_positive(mass, "mass", "GeV")
    gg, gscalar = _check_positive(g, "g")
    total = sum(_sm_widths(m, gg).values())
    if alpha is not None:
        total = total + _dark(m, alpha, mchi)
        scalar = scalar and alpha.ndim == 0 and mchi.ndim == 0
    return _out(np.asarray(total, dtype=np.float64), scalar and gscalar)


def _branching(
    mass: NDArray[np.float64],
    model: str,
    g: NDArray[np.float64],
    alpha: NDArray[np.float64] | None,
    mchi: NDArray[np.float64],
) -> NDArray[np.float64]:
    if model == "fully_invisible" and alpha is None:
        # the PRL's limit g_D >> g': B(Z' -> chi chibar) -> 1, hence B(invisible) = 1 exactly
        return np.ones(np.broadcast_shapes(mass.shape, g.shape))
    sm = _sm_widths(mass, g)
    invisible = sm["nunu"]
    total = sm["mumu"] + sm["tautau"] + sm["nunu"]
    if alpha is not None:
        dark = _dark(mass, alpha, mchi)
        invisible = invisible + dark
        total = total + dark
    return invisible / total


def branching_invisible(
    mass: ArrayLike,
    model: str,
    *,
    g: ArrayLike = 1.0,
    alpha_d: ArrayLike | None = None,
    m_chi: ArrayLike | None = None,
) -> Any:
    """B(Z' -> invisible).

    Parameters
    ----------
    mass
        Z' mass in GeV.
    model
        ``"vanilla"``: Gamma_nunu/Gamma_tot, independent of g'; 1 below 2 m_mu and -> 1/3 far
        above 2 m_tau (PRL: "between ~33% and ~100%"). ``"fully_invisible"``:
        (Gamma_chichi + Gamma_nunu)/Gamma_tot; with ``alpha_d=None`` this is the PRL's limit
        g_D >> g' and B = 1 exactly.
    g
        Coupling g' (matters only for fully invisible with ``alpha_d`` given).
    alpha_d, m_chi
        Dark coupling and dark-fermion mass in GeV (default massless); fully invisible only.
    """
    _check_model(model)
    alpha, mchi = _check_dark(model, alpha_d, m_chi)
    m, scalar = _check_positive(mass, "mass", "GeV")
    gg, gscalar = _check_positive(g, "g")
    b = _branching(m, model, gg, alpha, mchi)
    if alpha is not None:
        scalar = scalar and alpha.ndim == 0 and mchi.ndim == 0
    return _out(b, scalar and gscalar)


def alpha_d_for_width(
    width_over_mass: ArrayLike = 0.1,
    *,
    m_chi_over_mass: float = 0.0,
    g: float | None = None,
    mass: ArrayLike | None = None,
) -> Any:
    """alpha_D for which the Z' width equals ``width_over_mass`` times its mass.

    By default (``g=None``) the SM part of the width is ignored and
    Gamma(Z' -> chi chibar) = width_over_mass * M, i.e.
    alpha_D = 3 w / ((1 + 2 r^2) sqrt(1 - 4 r^2)), r = m_chi/M: 0.3 for w = 0.1 and a light
    chi. The SM part is g'^2/(4 pi) M at most (above 2 m_tau), < 1e-4 M for g' < 0.035.
    With ``g`` and ``mass`` given, the SM width at that g' is subtracted first, so that the
    *total* width is w M; the result is then an array over ``mass``.

    Note: the PRL quotes alpha_D = 2.9 for Gamma = 0.1 M; this formula gives 0.30. See
    ``docs/model.md`` for the comparison; the formula is not adjusted to 2.9.
    """
    w, wscalar = _check_positive(width_over_mass, "width_over_mass")
    r = float(m_chi_over_mass)
    if not math.isfinite(r) or r < 0.0 or r >= 0.5:
        raise ConfigError(f"m_chi_over_mass must be in [0, 0.5), got {m_chi_over_mass!r}")
    kin = (1.0 + 2.0 * r**2) * math.sqrt(1.0 - 4.0 * r**2)
    if g is None:
        if mass is not None:
            raise ConfigError("alpha_d_for_width: mass is only used together with g")
        return _out(3.0 * w / kin, wscalar)
    if mass is None:
        raise ConfigError(f"alpha_d_for_width: g = {g!r} given without mass")
    gg, _ = _check_positive(g, "g")
    m, mscalar = _check_positive(mass, "mass", "GeV")
    sm_over_mass = sum(_sm_widths(m, gg).values()) / m
    dark = w - sm_over_mass
    if np.any(dark <= 0.0):
        bad = np.broadcast_to(m, dark.shape)[dark <= 0.0].flat[0]
        raise ConfigError(
            f"width_over_mass = {float(np.max(w))!r} is below the SM width alone at g = {g!r}, "
            f"mass = {float(bad)!r} GeV"
        )
    return _out(np.asarray(3.0 * dark / kin), mscalar and wscalar)


# --------------------------------------------------------------------------- (g-2)_mu
def _loop_function(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """F(r) = int_0^1 z (1-z)^2 / ((1-z)^2 + r z) dz with r = M^2/m_mu^2 > 0.

    F -> 1/2 - (pi/2) sqrt(r) for r -> 0 and -> 1/(3 r) for r -> infinity.

    For r <= 1 the closed form is used: partial fractions give
    F = 1/2 - r + r [ (r - 2)/2 ln r + (1 - (r - 2)^2/2) J ],
    J = int_0^1 dz / (z^2 + (r - 2) z + 1)
      = [atan(r / (2c)) - atan((r - 2) / (2c))] / c,  c = sqrt(r (4 - r)) / 2,
    which loses at most ~2 digits there. For larger r the closed form degrades (c -> 0 at
    r = 4, and beyond it F ~ 1/(3r) comes from cancelling terms ~ r), so for r > 1 a 64-point
    Gauss-Legendre rule is used
    after the substitution z = expm1(a s)/expm1(a), a = ln(1 + r), which spreads the peak of
    width ~1/r at small z over s in [0, 1] (agreement with adaptive quadrature to ~1e-14).
    """
    r = np.asarray(r, dtype=np.float64)
    out = np.empty_like(r)
    low = r <= 1.0
    if np.any(low):
        rl = np.maximum(r[low], 1e-300)  # M so small that r underflows: F = 1/2 anyway
        c = 0.5 * np.sqrt(rl * (4.0 - rl))
        j = (np.arctan2(rl, 2.0 * c) - np.arctan2(rl - 2.0, 2.0 * c)) / c
        out[low] = (
            0.5 - rl + rl * (0.5 * (rl - 2.0) * np.log(rl) + (1.0 - 0.5 * (rl - 2.0) ** 2) * j)
        )
    high = ~low
    if np.any(high):
        rh = r[high][:, None]
        a = np.log1p(rh)
        norm = np.expm1(a)
        z = np.expm1(a * _GL_S) / norm
        dz_ds = a * np.exp(a * _GL_S) / norm
        one_minus = 1.0 - z
        integrand = z * one_minus**2 / (one_minus**2 + rh * z) * dz_ds
        out[high] = integrand @ _GL_W
    return out


def delta_a_mu(g: ArrayLike, mass: ArrayLike) -> Any:
    """One-loop Z' contribution to the muon anomalous magnetic moment (vector coupling).

    Delta a_mu = g'^2/(4 pi^2) int_0^1 dz m_mu^2 z (1-z)^2 / (m_mu^2 (1-z)^2 + M^2 z)
    (Leveille 1978; Jegerlehner & Nyffeler 2009, eq. for a neutral vector; applied to
    L_mu - L_tau by Altmannshofer, Gori, Pospelov, Yavin 2014). Limits: g'^2/(8 pi^2) for
    M -> 0, g'^2 m_mu^2/(12 pi^2 M^2) for M >> m_mu.

    Parameters
    ----------
    g
        Coupling g' (> 0), broadcast against ``mass``.
    mass
        Z' mass in GeV (> 0).
    """
    gg, gscalar = _check_positive(g, "g")
    m, scalar = _check_positive(mass, "mass", "GeV")
    loop = _loop_function((m / M_MUON) ** 2)
    return _out(gg**2 / (4.0 * math.pi**2) * loop, scalar and gscalar)


class G2Band(NamedTuple):
    """The g'(M) band that explains (g-2)_mu: lower edge, central value, upper edge."""

    low: Any
    central: Any
    high: Any


def g2_band(
    mass: ArrayLike,
    *,
    delta: float = G2_DELTA_A_MU,
    sigma: float = G2_SIGMA_A_MU,
    n_sigma: float = 2.0,
) -> G2Band:
    """Couplings g'(M) for which Delta a_mu lies in [delta - n sigma, delta + n sigma].

    Defaults: Delta a_mu = (251 +- 59) x 10^-11 (Muon g-2 Collaboration, PRL 126, 141801
    (2021), combined with BNL; the PRL's Ref. [2]) and +-2 sigma as in the PRL's Figs. 3, 4.
    Since Delta a_mu is proportional to g'^2, g' = sqrt(Delta a_mu / Delta a_mu(g'=1, M)).
    If delta - n sigma <= 0 the lower edge is 0.

    Returns
    -------
    G2Band
        ``(low, central, high)`` couplings, floats for a scalar mass.
    """
    m, scalar = _check_positive(mass, "mass", "GeV")
    d, _ = _check_positive(delta, "delta")
    s = float(_check_non_negative(sigma, "sigma"))
    n = float(_check_non_negative(n_sigma, "n_sigma"))
    unit = delta_a_mu(1.0, m)
    d = float(d)
    lower = max(d - n * s, 0.0)
    return G2Band(
        low=_out(np.sqrt(lower / unit), scalar),
        central=_out(np.sqrt(d / unit), scalar),
        high=_out(np.sqrt((d + n * s) / unit), scalar),
    )


# --------------------------------------------------------------------------- coupling <-> sigma
def _sigma_g1(xsec: XsecFunction | None, mass: NDArray[np.float64]) -> NDArray[np.float64]:
    """sigma(e+e- -> mu mu Z') at g' = 1 in fb, from ``xsec`` or the package's cached table."""
    if xsec is None:
        table = load_xsec_table()
        values = table.sigma_fb(mass, g=1.0)
    else:
        values = xsec(mass)
    sig = np.broadcast_to(np.asarray(values, dtype=np.float64), mass.shape)
    bad = ~np.isfinite(sig) | (sig < 0.0)
    if np.any(bad):
        where = np.broadcast_to(mass, sig.shape)[bad].flat[0]
        raise ConfigError(
            f"cross section at g'=1 is {_first_bad(sig, bad)!r} fb at mass {float(where)!r} GeV; "
            "expected a finite value >= 0"
        )
    return sig


def sigma_times_br(
    g: ArrayLike,
    mass: ArrayLike,
    model: str,
    *,
    xsec: XsecFunction | None = None,
    alpha_d: ArrayLike | None = None,
    m_chi: ArrayLike | None = None,
) -> Any:
    """sigma(e+e- -> mu+ mu- Z') x B(Z' -> invisible) in fb at coupling g'.

    sigma is proportional to g'^2 (the Z' is radiated off a muon), so
    sigma x B = g'^2 sigma_{g'=1}(M) B_inv(M; g').

    Parameters
    ----------
    g
        Coupling g' (> 0), broadcast against ``mass``.
    mass
        Z' mass in GeV.
    model
        ``"vanilla"`` or ``"fully_invisible"`` (see :func:`branching_invisible`).
    xsec
        Callable giving sigma at g' = 1 in fb for a mass array; ``None`` uses
        ``zprime.physics.xsec_table.load_xsec_table().sigma_fb(mass, g=1.0)``.
    alpha_d, m_chi
        Dark coupling and dark-fermion mass (GeV); fully invisible only.
    """
    _check_model(model)
    alpha, mchi = _check_dark(model, alpha_d, m_chi)
    gg, gscalar = _check_positive(g, "g")
    m, scalar = _check_positive(mass, "mass", "GeV")
    sig1 = _sigma_g1(xsec, m)
    b = _branching(m, model, gg, alpha, mchi)
    if alpha is not None:
        scalar = scalar and alpha.ndim == 0 and mchi.ndim == 0
    return _out(gg**2 * sig1 * b, scalar and gscalar)


def coupling_limit(
    sigma_limit_fb: ArrayLike,
    mass: ArrayLike,
    model: str,
    *,
    xsec: XsecFunction | None = None,
    alpha_d: ArrayLike | None = None,
    m_chi: ArrayLike | None = None,
) -> Any:
    """Upper limit on g' from an upper limit on sigma(e+e- -> mu mu Z') x B(Z' -> invisible).

    With B independent of g' (vanilla, or fully invisible with ``alpha_d=None``, B = 1):
    g'_UL = sqrt(sigma_UL / (sigma_{g'=1}(M) B_inv(M))).

    Fully invisible with ``alpha_d`` given: B = (G_chi + y a)/(G_chi + y b) depends on
    y = g'^2 (a = Gamma_nunu, b = Gamma_SM at g' = 1, G_chi = Gamma_chichi). The condition
    y sigma_1 B(y) = sigma_UL is the quadratic
    sigma_1 a y^2 + (sigma_1 G_chi - sigma_UL b) y - sigma_UL G_chi = 0,
    whose single positive root is taken (y B(y) rises monotonically), so B is evaluated at the
    solution g' itself, exactly.

    Where sigma_{g'=1} B = 0 (no sensitivity) the limit is ``inf``.

    Parameters
    ----------
    sigma_limit_fb
        Upper limit on sigma x B in fb (> 0), broadcast against ``mass``.
    mass
        Z' mass in GeV.
    model, xsec, alpha_d, m_chi
        As in :func:`sigma_times_br`.
    """
    _check_model(model)
    alpha, mchi = _check_dark(model, alpha_d, m_chi)
    ul, ulscalar = _check_positive(sigma_limit_fb, "sigma_limit_fb", "fb")
    m, scalar = _check_positive(mass, "mass", "GeV")
    shape = np.broadcast_shapes(ul.shape, m.shape)
    if alpha is not None:
        shape = np.broadcast_shapes(shape, alpha.shape, mchi.shape)
        scalar = scalar and alpha.ndim == 0 and mchi.ndim == 0
    m = np.broadcast_to(m, shape)
    ul = np.broadcast_to(ul, shape)
    sig1 = _sigma_g1(xsec, m)
    one = np.ones(())
    if alpha is None:
        b = _branching(m, model, one, None, mchi)
        denom = sig1 * b
        with np.errstate(divide="ignore"):
            y = np.where(denom > 0.0, ul / np.where(denom > 0.0, denom, 1.0), np.inf)
    else:
        sm = _sm_widths(m, one)
        a_nu = sm["nunu"]
        b_sm = sm["mumu"] + sm["tautau"] + sm["nunu"]
        g_chi = np.broadcast_to(_dark(m, alpha, mchi), shape)
        qa = sig1 * a_nu
        qb = sig1 * g_chi - ul * b_sm
        qc = ul * g_chi  # = -C >= 0
        disc = np.sqrt(qb**2 + 4.0 * qa * qc)
        with np.errstate(divide="ignore", invalid="ignore"):
            # numerically stable positive root of qa y^2 + qb y - qc = 0
            root = np.where(qb > 0.0, 2.0 * qc / (qb + disc), (disc - qb) / (2.0 * qa))
        y = np.where(sig1 > 0.0, root, np.inf)
    return _out(np.sqrt(y), scalar and ulscalar)
