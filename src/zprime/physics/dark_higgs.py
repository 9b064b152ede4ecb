"""Physics of the dark Higgsstrahlung model: e+e- -> A' h', A' -> mu+ mu-, h' invisible.

This module owns the model's numbers: the Born cross section, the dark-photon widths and
branching fractions with the hadronic R ratio they need (the PDG compilation shipped as
``zprime/data/rratio_pdg.csv``, its smoothing and uncertainty, a perturbative-QCD cross-check),
the veto of the narrow J/psi, psi(2S), Upsilon(1S, 2S, 3S) regions, sigma x B and its
inversion into a limit on epsilon^2 alpha_D, and the checks of the masses an analysis or the
command line may ask for. How each number is made is described in ``docs/dark_higgs_physics.md``.

Length: one model's numbers, which the search needs together (B needs R, R needs the veto's
resonances, the limit needs sigma and B); the R table and its smoothing (about 300 lines) are
the part that could move to a module of its own if another search needs R.

A dark photon A' of mass M_A' (kinetic mixing epsilon: it couples to the electromagnetic current
with strength epsilon e) gets its mass from a dark Higgs h' of unit U(1)' charge, which couples
to it with the vertex 2 g_D M_A' g^{mu nu}, alpha_D = g_D^2 / (4 pi) [1]_. For M_h' < M_A' the
h' is long-lived and leaves the detector unseen.

Born cross section [1]_ (eq. 21 there; the SM Higgsstrahlung formula with the Z coupling
replaced by epsilon e and g_ZZh by 2 g_D M_A'):

.. math::

    \\sigma(e^+e^- \\to A'h') = \\frac{\\pi \\alpha \\alpha_D \\epsilon^2}{3 s}
        \\frac{\\lambda^{1/2} (\\lambda + 12 M_{A'}^2 / s)}{(1 - M_{A'}^2 / s)^2},
    \\quad \\lambda = \\Big[1 - \\frac{(M_{A'} + M_{h'})^2}{s}\\Big]
                      \\Big[1 - \\frac{(M_{A'} - M_{h'})^2}{s}\\Big].

alpha here is the fine-structure constant at zero momentum transfer (:data:`ALPHA_0`): epsilon
is defined by the mixing with the photon field of the Thomson limit, as in the Belle II paper's
model [2]_; a running alpha(s) would rescale every epsilon^2 by 137.04 / 131.

Dark-photon widths (tree level, the A' couples like a photon of charge epsilon e) [3]_:

* Gamma(A' -> l+ l-) = (alpha epsilon^2 M / 3) (1 + 2 m_l^2/M^2) sqrt(1 - 4 m_l^2/M^2),
  l = e, mu, tau (0 below 2 m_l);
* Gamma(A' -> hadrons) = Gamma(A' -> mu+ mu-, m_mu -> 0) x R(M) = (alpha epsilon^2 M / 3) R(M),
  R(sqrt s) = sigma(e+e- -> hadrons) / sigma(e+e- -> mu+ mu-) at sqrt(s) = M [3]_;

B(A' -> mu+ mu-) = Gamma_mumu / (Gamma_ee + Gamma_mumu + Gamma_tautau + Gamma_hadrons), the
SM final states only, as in the Belle II paper's B [2]_. The branching fractions do not depend
on epsilon.

R(M) is a smooth continuum made from the PDG compilation [4]_ between 1.0 and 11.5 GeV (see
:func:`r_ratio`); below 1.0 GeV, the rho and omega region where the table shipped here has no
points, R is not provided (NaN) except below the two-pion threshold, where no
hadronic final state but the radiative pi0 gamma, eta gamma (suppressed by alpha, neglected)
is open and R = 0. The narrow vector states J/psi, psi(2S), Upsilon(1S, 2S, 3S) are *vetoed*:
no A' hypothesis is allowed within a half-width of their masses (:func:`check_aprime_mass`);
the continuum R is interpolated across them.

References
----------
.. [1] B. Batell, M. Pospelov, A. Ritz, "Probing a secluded U(1) at B-factories", PRD 79,
   115008 (2009), arXiv:0903.0363.
.. [2] Belle II, "Search for a dark photon and an invisible dark Higgs boson in mu+ mu- and
   missing energy final states with the Belle II experiment", PRL 130, 071804 (2023),
   arXiv:2207.00509.
.. [3] B. Batell, M. Pospelov, A. Ritz, "Exploring portals to a hidden sector through fixed
   targets", PRD 80, 095024 (2009), arXiv:0906.5614 (eqs. for Gamma(V -> l l) and the R-ratio
   form of Gamma(V -> hadrons)); P. Ilten, Y. Soreq, M. Williams, W. Xue, "Serendipity in dark
   photon searches", JHEP 06 (2018) 004, arXiv:1801.04847 (DarkCast, the cross-check).
.. [4] J. Beringer et al. (Particle Data Group), PRD 86, 010001 (2012): the compilation of
   R = sigma(e+e- -> hadrons) / sigma(e+e- -> mu+ mu-), file rpp2012-hadronicrpp_page1001.dat.
.. [5] J. Beringer et al. (Particle Data Group), PRD 86, 010001 (2012), review "Quantum
   chromodynamics" (S. Bethke, G. Dissertori, G. P. Salam): alpha_s(M_Z) = 0.1184 +- 0.0007,
   the expansion of R in alpha_s/pi, m_b(m_b) = 4.18 GeV.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from particle import Particle

from zprime.errors import ConfigError, InputError
from zprime.physics.constants import (
    ALPHA_0,
    GEV2_TO_FB,
    M_ELECTRON,
    M_MUON,
    M_PION,
    M_TAU,
    SQRT_S,
)

__all__ = [
    "ALPHA_S_MZ",
    "ALPHA_S_MZ_UNCERTAINTY",
    "BR_MUMU_REL_UNCERTAINTY",
    "DEFAULT_VETO_HALF_WIDTH_GEV",
    "M_B_MSBAR",
    "M_JPSI",
    "M_PSI2S",
    "M_UPSILON1S",
    "M_UPSILON2S",
    "M_UPSILON3S",
    "M_Z",
    "NARROW_RESONANCES",
    "R_EXCLUSION_HALF_WIDTH_GEV",
    "R_M_MAX_GEV",
    "R_M_MIN_GEV",
    "RRatioTable",
    "alpha_s",
    "br_mumu",
    "br_mumu_uncertainty",
    "branching_fractions",
    "check_aprime_mass",
    "check_masses",
    "eps2_alpha_d_limit",
    "in_resonance_veto",
    "kallen_reduced",
    "load_rratio_table",
    "partial_widths",
    "r_ratio",
    "r_ratio_pqcd",
    "r_ratio_uncertainty",
    "sigma_born_fb",
    "sigma_times_br_fb",
    "total_width",
    "width_hadrons",
    "width_lepton_pair",
]


def _mass_gev(pdgid: int) -> float:
    mass = Particle.from_pdgid(pdgid).mass
    if mass is None:  # pragma: no cover - the states below all have masses
        raise ValueError(f"PDG id {pdgid} has no mass in the particle tables")
    return float(mass) / 1000.0  # particle gives MeV


# --- the narrow vector resonances (PDG masses through `particle`, as zprime.physics.constants)
M_JPSI: float = _mass_gev(443)
"""J/psi(1S) mass, 3.0969 GeV (PDG through ``particle``)."""
M_PSI2S: float = _mass_gev(100443)
"""psi(2S) mass, 3.6861 GeV (PDG through ``particle``)."""
M_UPSILON1S: float = _mass_gev(553)
"""Upsilon(1S) mass, 9.4604 GeV (PDG through ``particle``)."""
M_UPSILON2S: float = _mass_gev(100553)
"""Upsilon(2S) mass, 10.0234 GeV (PDG through ``particle``)."""
M_UPSILON3S: float = _mass_gev(200553)
"""Upsilon(3S) mass, 10.3551 GeV (PDG through ``particle``)."""
NARROW_RESONANCES: Mapping[str, float] = MappingProxyType(
    {
        "J/psi(1S)": M_JPSI,
        "psi(2S)": M_PSI2S,
        "Upsilon(1S)": M_UPSILON1S,
        "Upsilon(2S)": M_UPSILON2S,
        "Upsilon(3S)": M_UPSILON3S,
    }
)
"""The vetoed narrow resonances, name -> mass in GeV (total widths 20-300 keV, PDG)."""

DEFAULT_VETO_HALF_WIDTH_GEV: float = 0.050
"""Default half-width (GeV) of the vetoed region around each narrow resonance: the analysis's
choice (it passes its own). At 50 MeV from the peak the Breit-Wigner tail of each of the five,
9 s Gamma_ee Gamma_had / (alpha^2 [(s - M^2)^2 + M^2 Gamma^2]), adds < 0.5% to R (0.35% for
the J/psi, 0.43% for the psi(2S), < 0.05% for the Upsilons, with the PDG widths; table in
the module's physics page under docs/), so outside the veto the continuum R gives the A''s
hadronic width well within the 4% theory uncertainty. It is about 5-6 sigma of the mu mu mass
resolution at the J/psi and psi(2S) but only 1.4-1.6 sigma at the Upsilons (sigma_M ~ 8, 10,
32-37 MeV, estimated from the track resolution of docs/detector.md): an analysis whose mass
windows must stay clear of the Upsilons passes a larger half-width there."""

R_EXCLUSION_HALF_WIDTH_GEV: float = 0.050
"""Points of the R compilation whose centre-of-mass energy lies within this distance (GeV) of a
narrow resonance are left out of the continuum R(M), which is then interpolated across (the
same 50 MeV argument as :data:`DEFAULT_VETO_HALF_WIDTH_GEV`; fixed, so that R does not change
with an analysis's veto). 18 points go: 11 near the psi(2S), 5 near the Upsilon(1S), 2 near the
Upsilon(2S); the compilation has none within 50 MeV of the J/psi or the Upsilon(3S)."""

BR_MUMU_REL_UNCERTAINTY: float = 0.04
"""Relative uncertainty of B(A' -> mu+ mu-) that the Belle II paper assigns ("Theory (BR A')",
4%, systematics table of the PASCOS 2022 talk on PRL 130, 071804 (2023); shared/papers/
talk-2022-dark-sector-belle2.md). :func:`br_mumu_uncertainty` gives the part that comes from
the R data: 1-4% of B above 3 GeV, 4-5% at 1.65-2 GeV."""

R_M_MIN_GEV: float = 1.0
"""Lowest mass (GeV) of the R table shipped (the PDG compilation's point at 1.00000 GeV)."""
R_M_MAX_GEV: float = 11.5
"""Highest mass (GeV) of the smoothed R(M) (the table is cut at 11.5 GeV)."""

ALPHA_S_MZ: float = 0.1184
"""alpha_s(M_Z), MS-bar, the PDG 2012 world average (+- 0.0007) [5]_; used only by
:func:`r_ratio_pqcd`, the cross-check of the data."""
ALPHA_S_MZ_UNCERTAINTY: float = 0.0007
"""Its uncertainty, PDG 2012 [5]_."""
M_B_MSBAR: float = 4.18
"""m_b(m_b) in GeV, MS-bar, PDG 2012 [5]_: the 5 -> 4 flavour threshold of alpha_s."""
M_Z: float = _mass_gev(23)
"""Z mass in GeV (PDG through ``particle``): the reference scale of alpha_s."""

_RESOURCE = "data/rratio_pdg.csv"
_COLUMNS = (
    "sqrt_s_gev",
    "sqrt_s_min_gev",
    "sqrt_s_max_gev",
    "r",
    "stat_up",
    "stat_down",
    "norm_frac",
    "ptp_frac",
    "syst_frac",
    "code",
    "reference",
)
# The "EXCLSUM 07" rows below 2 GeV are the PDG compilers' sum of exclusive channels; their one
# error column is dominated by the channels' systematics, which are correlated between
# neighbouring energies, so the smoothing treats it as fully correlated (conservative).
_CORRELATED_CODES = frozenset({"EXCLSUM 07"})

# Kernel bandwidth h(M) of the R smoothing, (M, h) in GeV, log h interpolated linearly in M
# between the anchors. Each region's h follows the density of the data and the narrowest
# structure that the data resolve: the phi(1020) (Gamma = 4.2 MeV) below 1.035 GeV (h small
# also because inverse-variance weights of points whose errors grow with R pull a kernel
# average at a peak down: 1 MeV would lower the phi peak by 20%), the dense
# EXCLSUM points (3-10 MeV apart) to 1.95 GeV, the BES points 0.1-0.2 GeV apart to 3.6 GeV, the
# charm threshold (psi(3770), psi(4040), psi(4160), psi(4415); points 2-6 MeV apart) from 3.7
# to 4.55 GeV, and the sparse continuum (0.1-0.8 GeV apart) above 4.65 GeV.
_BANDWIDTH_ANCHORS: tuple[tuple[float, float], ...] = (
    (1.00, 0.0003),
    (1.035, 0.0003),
    (1.10, 0.010),
    (1.95, 0.010),
    (2.05, 0.080),
    (3.60, 0.080),
    (3.70, 0.015),
    (4.55, 0.015),
    (4.65, 0.200),
    (11.50, 0.200),
)
_NODES_PER_BANDWIDTH = 4.0
# A node with less kernel weight than this (about half a point within one bandwidth) has no
# data of its own; its R is interpolated from the neighbouring nodes.
_MIN_KERNEL_SUM = 0.5


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
    return float(np.broadcast_to(arr, bad.shape)[bad].flat[0])


def _check_mass(value: ArrayLike, name: str) -> tuple[NDArray[np.float64], bool]:
    arr, scalar = _as_array(value, name)
    bad = ~np.isfinite(arr) | (arr < 0.0)
    if np.any(bad):
        raise ConfigError(f"{name} = {_first_bad(arr, bad)!r} GeV is not a mass (finite, >= 0)")
    return arr, scalar


def _check_positive(
    value: ArrayLike, name: str, unit: str = ""
) -> tuple[NDArray[np.float64], bool]:
    arr, scalar = _as_array(value, name)
    bad = ~np.isfinite(arr) | (arr <= 0.0)
    if np.any(bad):
        suffix = f" {unit}" if unit else ""
        raise ConfigError(f"{name} = {_first_bad(arr, bad)!r}{suffix} must be finite and > 0")
    return arr, scalar


def _check_non_negative(value: ArrayLike, name: str) -> tuple[NDArray[np.float64], bool]:
    arr, scalar = _as_array(value, name)
    bad = ~np.isfinite(arr) | (arr < 0.0)
    if np.any(bad):
        raise ConfigError(f"{name} = {_first_bad(arr, bad)!r} must be finite and >= 0")
    return arr, scalar


def _out(arr: NDArray[np.float64], scalar: bool) -> Any:
    """A float for scalar inputs, else the array."""
    return float(arr) if scalar else arr


# --------------------------------------------------------------------------- Born cross section
def kallen_reduced(m_aprime: ArrayLike, m_hdark: ArrayLike, s: float) -> Any:
    """lambda = [1 - (M_A' + M_h')^2 / s] [1 - (M_A' - M_h')^2 / s] (0 at threshold)."""
    ma = np.asarray(m_aprime, dtype=np.float64)
    mh = np.asarray(m_hdark, dtype=np.float64)
    return (1.0 - (ma + mh) ** 2 / s) * (1.0 - (ma - mh) ** 2 / s)


def sigma_born_fb(
    m_aprime: ArrayLike,
    m_hdark: ArrayLike,
    *,
    sqrt_s: float = SQRT_S,
    eps2_alpha_d: float = 1.0,
    alpha: float = ALPHA_0,
) -> Any:
    """Born sigma(e+e- -> A' h') in fb for epsilon^2 alpha_D = ``eps2_alpha_d`` [1]_.

    Parameters
    ----------
    m_aprime, m_hdark
        Dark photon and dark Higgs masses in GeV (broadcast together).
    sqrt_s
        Centre-of-mass energy in GeV.
    eps2_alpha_d
        epsilon^2 x alpha_D (the cross section is proportional to it).
    alpha
        The fine-structure constant of the electron-A' vertex (see the module docstring).

    Returns
    -------
    float or ndarray
        The cross section in fb; 0 at and above the threshold M_A' + M_h' >= sqrt(s).

    Raises
    ------
    ConfigError
        A negative or non-finite mass, or a negative coupling.
    """
    ma = np.asarray(m_aprime, dtype=np.float64)
    mh = np.asarray(m_hdark, dtype=np.float64)
    for arr, name in ((ma, "M_A'"), (mh, "M_h'")):
        bad = ~np.isfinite(arr) | (arr < 0.0)
        if bad.any():
            raise ConfigError(f"{name} = {arr[bad].flat[0]:g} GeV is not a mass")
    if not (math.isfinite(eps2_alpha_d) and eps2_alpha_d >= 0.0):
        raise ConfigError(f"epsilon^2 alpha_D = {eps2_alpha_d:g} must be >= 0")
    s = sqrt_s**2
    lam = kallen_reduced(ma, mh, s)
    open_ = (ma + mh < sqrt_s) & (lam > 0.0)
    lam = np.where(open_, lam, 0.0)
    # closed channels get r = 0: M_A' = sqrt(s) would divide by zero below, though the result
    # is discarded there
    r = np.where(open_, ma**2 / s, 0.0)
    sigma = (
        math.pi
        * alpha
        * eps2_alpha_d
        / (3.0 * s)
        * np.sqrt(lam)
        * (lam + 12.0 * r)
        / (1.0 - r) ** 2
    )
    out = np.where(open_, sigma * GEV2_TO_FB, 0.0)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- the R table
@dataclass(frozen=True)
class RRatioTable:
    """The PDG R compilation between 1.0 and 11.5 GeV, one entry per measured point.

    Energies in GeV; ``stat_up``, ``stat_down`` absolute; ``norm_frac`` (normalisation),
    ``ptp_frac`` (point-to-point systematics) and ``syst_frac`` (both in quadrature) as
    fractions of R. Rows are in increasing energy.
    """

    sqrt_s: NDArray[np.float64]
    sqrt_s_min: NDArray[np.float64] = field(repr=False)
    sqrt_s_max: NDArray[np.float64] = field(repr=False)
    r: NDArray[np.float64] = field(repr=False)
    stat_up: NDArray[np.float64] = field(repr=False)
    stat_down: NDArray[np.float64] = field(repr=False)
    norm_frac: NDArray[np.float64] = field(repr=False)
    ptp_frac: NDArray[np.float64] = field(repr=False)
    syst_frac: NDArray[np.float64] = field(repr=False)
    code: tuple[str, ...] = field(repr=False)
    reference: tuple[str, ...] = field(repr=False)
    header: tuple[str, ...] = field(default=(), repr=False)
    """The ``#`` comment lines of the file (the citation and provenance)."""

    def __len__(self) -> int:
        return int(self.sqrt_s.size)


def _parse_rratio_csv(text: str, source: str) -> RRatioTable:
    header = tuple(line[1:].strip() for line in text.splitlines() if line.startswith("#"))
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    rows = list(csv.reader(io.StringIO(body)))
    if not rows or tuple(rows[0]) != _COLUMNS:
        raise InputError(f"{source}: the column line must be {','.join(_COLUMNS)}")
    data = [r for r in rows[1:] if r]
    if len(data) < 2:
        raise InputError(f"{source}: needs at least two rows")
    try:
        num = np.array([[float(x) for x in r[:9]] for r in data], dtype=np.float64)
    except (ValueError, IndexError):
        raise InputError(f"{source}: a row is not nine numbers, a code and a reference") from None
    if not np.all(np.isfinite(num)) or np.any(num[:, [3, 4, 5, 6, 7, 8]] < 0.0):
        raise InputError(f"{source}: R and its errors must be finite and >= 0")
    if np.any(np.diff(num[:, 0]) < 0.0) or np.any(num[:, 1] > num[:, 2]):
        raise InputError(f"{source}: rows must be in increasing sqrt_s with min <= max")
    return RRatioTable(
        sqrt_s=num[:, 0],
        sqrt_s_min=num[:, 1],
        sqrt_s_max=num[:, 2],
        r=num[:, 3],
        stat_up=num[:, 4],
        stat_down=num[:, 5],
        norm_frac=num[:, 6],
        ptp_frac=num[:, 7],
        syst_frac=num[:, 8],
        code=tuple(r[9] for r in data),
        reference=tuple(r[10] for r in data),
        header=header,
    )


@functools.lru_cache(maxsize=1)
def _package_table() -> RRatioTable:
    res = resources.files("zprime").joinpath(_RESOURCE)
    if not res.is_file():
        raise InputError(
            "package R table zprime/data/rratio_pdg.csv is missing "
            "(remake it with tools/parse_rratio.py)"
        )
    return _parse_rratio_csv(res.read_text(encoding="utf-8"), "zprime/data/rratio_pdg.csv")


def load_rratio_table(path: str | Path | None = None) -> RRatioTable:
    """The PDG R compilation [4]_ (default: ``zprime/data/rratio_pdg.csv``, read once).

    Raises
    ------
    InputError
        A missing file, a wrong column line or a bad row.
    """
    if path is None:
        return _package_table()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: R table not found")
    return _parse_rratio_csv(p.read_text(encoding="utf-8"), str(p))


# --------------------------------------------------------------------------- smoothing of R
def _bandwidth(m: NDArray[np.float64]) -> NDArray[np.float64]:
    anchors = np.asarray(_BANDWIDTH_ANCHORS)
    return np.exp(np.interp(m, anchors[:, 0], np.log(anchors[:, 1])))


def _nodes() -> NDArray[np.float64]:
    """Nodes between R_M_MIN_GEV and R_M_MAX_GEV, a quarter of the local bandwidth apart."""
    fine = np.linspace(R_M_MIN_GEV, R_M_MAX_GEV, 200_001)
    # u(M) = integral dM / h(M) (trapezoids); nodes equally spaced in u
    inv_h = 1.0 / _bandwidth(fine)
    u = np.concatenate([[0.0], np.cumsum(0.5 * (inv_h[1:] + inv_h[:-1]) * np.diff(fine))])
    n = math.ceil(float(u[-1]) * _NODES_PER_BANDWIDTH) + 1
    return np.interp(np.linspace(0.0, u[-1], n), u, fine)


@dataclass(frozen=True)
class _RGrid:
    m: NDArray[np.float64]
    r: NDArray[np.float64]
    sigma: NDArray[np.float64]


def _excluded(table: RRatioTable) -> NDArray[np.bool_]:
    masses = np.fromiter(NARROW_RESONANCES.values(), dtype=np.float64)
    return np.any(
        np.abs(table.sqrt_s[:, None] - masses[None, :]) < R_EXCLUSION_HALF_WIDTH_GEV, axis=1
    )


def _smooth(table: RRatioTable, nodes: NDArray[np.float64]) -> _RGrid:
    """Kernel-weighted, inverse-variance weighted average of the R points at each node.

    Point i gets the weight k_i w_i at node M, k_i = exp(-(E_i - M)^2 / (2 (h(M)^2 + W_i^2/12)))
    (W_i = E_max - E_min, the energy spread of a point measured over a bin), w_i = 1/sigma_i^2
    with sigma_i the point's total error (statistical (+) systematic). The uncertainty adds the
    uncorrelated errors (statistical, point-to-point) in quadrature, scaled by
    sqrt(chi^2 / dof) where the points scatter more than their errors (the PDG scale factor),
    and the correlated ones (normalisation; EXCLSUM) linearly, i.e. as fully correlated.
    """
    keep = ~_excluded(table)
    e = table.sqrt_s[keep]
    r = table.r[keep]
    width = (table.sqrt_s_max - table.sqrt_s_min)[keep]
    stat = np.maximum(table.stat_up, table.stat_down)[keep]
    corr_code = np.array([c in _CORRELATED_CODES for c in table.code])[keep]
    sigma_tot = np.hypot(stat, table.syst_frac[keep] * r)
    sigma_unc = np.where(corr_code, 0.0, np.hypot(stat, table.ptp_frac[keep] * r))
    sigma_cor = np.where(corr_code, stat, 0.0) + table.norm_frac[keep] * r
    w = 1.0 / sigma_tot**2

    h = _bandwidth(nodes)
    var = h[:, None] ** 2 + width[None, :] ** 2 / 12.0
    k = np.exp(-0.5 * (e[None, :] - nodes[:, None]) ** 2 / var)
    kw = k * w[None, :]
    sum_k = k.sum(axis=1)
    sum_kw = kw.sum(axis=1)
    supported = sum_k >= _MIN_KERNEL_SUM
    safe_kw = np.where(sum_kw > 0.0, sum_kw, 1.0)
    r_bar = (kw * r[None, :]).sum(axis=1) / safe_kw
    sig_unc = np.sqrt((kw**2 * sigma_unc[None, :] ** 2).sum(axis=1)) / safe_kw
    sig_cor = (kw * sigma_cor[None, :]).sum(axis=1) / safe_kw
    chi2 = (kw * (r[None, :] - r_bar[:, None]) ** 2).sum(axis=1)
    # expected chi^2 of a kernel-weighted average of consistent points
    dof = sum_k - (k**2 * w[None, :]).sum(axis=1) / safe_kw
    scale2 = np.where(dof > 0.2, np.maximum(1.0, chi2 / np.where(dof > 0.2, dof, 1.0)), 1.0)
    sig = np.sqrt(scale2 * sig_unc**2 + sig_cor**2)
    # nodes without data of their own (the vetoed gaps): linear interpolation across
    r_out = np.interp(nodes, nodes[supported], r_bar[supported])
    s_out = np.interp(nodes, nodes[supported], sig[supported])
    return _RGrid(m=nodes, r=r_out, sigma=s_out)


@functools.lru_cache(maxsize=1)
def _package_grid() -> _RGrid:
    return _smooth(_package_table(), _nodes())


def _r_and_sigma(m: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    grid = _package_grid()
    r = np.interp(m, grid.m, grid.r)
    s = np.interp(m, grid.m, grid.sigma)
    below_pions = m < 2.0 * M_PION
    undefined = ((m >= 2.0 * M_PION) & (m < R_M_MIN_GEV)) | (m > R_M_MAX_GEV)
    r = np.where(below_pions, 0.0, np.where(undefined, np.nan, r))
    s = np.where(below_pions, 0.0, np.where(undefined, np.nan, s))
    return r, s


def r_ratio(m: ArrayLike) -> Any:
    """The continuum R(M) = sigma(e+e- -> hadrons) / sigma(e+e- -> mu+ mu-) at sqrt(s) = M.

    A smooth curve through the PDG compilation [4]_: at nodes a quarter of a bandwidth h(M)
    apart, the kernel- and inverse-variance-weighted average of the points (Gaussian kernel of
    width h(M): 0.3 MeV at the phi(1020), 10 MeV from 1.1 to 1.95 GeV, 80 MeV to 3.6 GeV,
    15 MeV over the charm threshold 3.7-4.55 GeV, 200 MeV above 4.65 GeV; log h linear in M
    in between), linearly interpolated between nodes.
    The points within :data:`R_EXCLUSION_HALF_WIDTH_GEV` of the five narrow resonances are left
    out and the curve interpolates across them: inside a vetoed region R(M) is the continuum,
    not the resonance.

    Parameters
    ----------
    m
        Mass (sqrt(s)) in GeV.

    Returns
    -------
    float or ndarray
        R; 0 below 2 m_pi; NaN from 2 m_pi to :data:`R_M_MIN_GEV` (the rho, omega region
        that the table shipped does not cover) and above :data:`R_M_MAX_GEV`.
    """
    mm, scalar = _check_mass(m, "M")
    return _out(_r_and_sigma(mm)[0], scalar)


def r_ratio_uncertainty(m: ArrayLike) -> Any:
    """The 1-sigma uncertainty of :func:`r_ratio` (absolute; same domain, NaN where R is).

    Uncorrelated errors (statistical, point-to-point systematics) combine in quadrature, scaled
    by sqrt(chi^2/dof) where the points disagree; normalisation errors and the EXCLSUM
    compilation's errors (dominated by correlated systematics) combine linearly.
    """
    mm, scalar = _check_mass(m, "M")
    return _out(_r_and_sigma(mm)[1], scalar)


# --------------------------------------------------------------------------- pQCD cross-check
def _run_alpha(
    a0: float, t0: float, t1: NDArray[np.float64], n_f: int, steps: int = 64
) -> NDArray[np.float64]:
    """Two-loop running of a = alpha_s / (4 pi) from t0 = ln mu0^2 to t1 (RK4, vectorised)."""
    b0 = 11.0 - 2.0 * n_f / 3.0
    b1 = 102.0 - 38.0 * n_f / 3.0

    def beta(a: NDArray[np.float64]) -> NDArray[np.float64]:
        return -(b0 * a**2 + b1 * a**3)

    dt = (t1 - t0) / steps
    a = np.full_like(t1, a0)
    for _ in range(steps):  # steps of the integrator, each vectorised over all masses
        k1 = beta(a)
        k2 = beta(a + 0.5 * dt * k1)
        k3 = beta(a + 0.5 * dt * k2)
        k4 = beta(a + dt * k3)
        a = a + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return a


def alpha_s(mu: ArrayLike, alpha_s_mz: float = ALPHA_S_MZ) -> Any:
    """The strong coupling alpha_s(mu), MS-bar, two-loop running from alpha_s(M_Z).

    Five flavours above m_b(m_b) = :data:`M_B_MSBAR`, four below, continuous at m_b (the
    matching is continuous to this order at mu = m_b(m_b)). Two loops differ from four by < 1%
    in alpha_s(5-10 GeV), 0.05% in R. For the pQCD cross-check only.
    """
    m, scalar = _check_positive(mu, "mu", "GeV")
    t = np.log(m**2)
    tz = math.log(M_Z**2)
    tb = math.log(M_B_MSBAR**2)
    a_z = alpha_s_mz / (4.0 * math.pi)
    a5 = _run_alpha(a_z, tz, np.maximum(t, tb), 5)
    a_b = float(_run_alpha(a_z, tz, np.array([tb]), 5)[0])
    a4 = _run_alpha(a_b, tb, np.minimum(t, tb), 4)
    a = np.where(t >= tb, a5, a4)
    return _out(4.0 * math.pi * a, scalar)


def r_ratio_pqcd(sqrt_s: ArrayLike, *, n_f: int = 4, alpha_s_mz: float = ALPHA_S_MZ) -> Any:
    """Massless perturbative-QCD R for ``n_f`` active quarks, to O(alpha_s^3) [5]_.

    R = 3 sum Q_q^2 [1 + a + (1.9857 - 0.1152 n_f) a^2
    + (-6.63694 - 1.20013 n_f - 0.00518 n_f^2 - 1.240 eta) a^3], a = alpha_s(sqrt s)/pi,
    eta = (sum Q_q)^2 / (3 sum Q_q^2) (the singlet term), alpha_s from :func:`alpha_s`.
    Quark masses are neglected: for charm (m_c = 1.5 GeV) the Born factor beta (3 - beta^2)/2
    would lower R by 2.2% at 5 GeV and 0.2% at 9 GeV.
    """
    if n_f not in (3, 4, 5):
        raise ConfigError(f"n_f = {n_f!r} must be 3, 4 or 5")
    charges = np.array([2 / 3, -1 / 3, -1 / 3, 2 / 3, -1 / 3])[:n_f]
    sum_q2 = float(np.sum(charges**2))
    eta = float(np.sum(charges)) ** 2 / (3.0 * sum_q2)
    a = np.asarray(alpha_s(sqrt_s, alpha_s_mz)) / math.pi
    scalar = a.ndim == 0
    r2 = 1.9857 - 0.1152 * n_f
    r3 = -6.63694 - 1.20013 * n_f - 0.00518 * n_f**2 - 1.240 * eta
    return _out(3.0 * sum_q2 * (1.0 + a + r2 * a**2 + r3 * a**3), scalar)


# --------------------------------------------------------------------------- resonance veto
def _half_widths(half_width: float | Mapping[str, float]) -> NDArray[np.float64]:
    """Half-width per resonance, in the order of NARROW_RESONANCES."""
    if isinstance(half_width, Mapping):
        unknown = sorted(set(half_width) - set(NARROW_RESONANCES))
        if unknown:
            raise ConfigError(
                f"unknown resonance {unknown[0]!r} in the veto half-widths; "
                f"expected {', '.join(NARROW_RESONANCES)}"
            )
        values = [half_width.get(n, DEFAULT_VETO_HALF_WIDTH_GEV) for n in NARROW_RESONANCES]
    else:
        values = [half_width] * len(NARROW_RESONANCES)
    hw, _ = _check_non_negative(values, "veto half-width (GeV)")
    return hw


def _veto_index(
    m: NDArray[np.float64], half_width: float | Mapping[str, float]
) -> NDArray[np.intp]:
    """Index into NARROW_RESONANCES of the vetoed region containing each mass, -1 if none."""
    hw = _half_widths(half_width)
    masses = np.fromiter(NARROW_RESONANCES.values(), dtype=np.float64)
    inside = np.abs(m[..., None] - masses) <= hw
    return np.where(inside.any(axis=-1), np.argmax(inside, axis=-1), -1)


def in_resonance_veto(
    m_aprime: ArrayLike, half_width: float | Mapping[str, float] = DEFAULT_VETO_HALF_WIDTH_GEV
) -> Any:
    """Mask: True where M_A' lies within ``half_width`` of a narrow resonance (vetoed).

    Parameters
    ----------
    m_aprime
        Dark-photon mass(es) in GeV.
    half_width
        Half-width of the vetoed regions in GeV, one number for all five or a mapping from
        resonance name (keys of :data:`NARROW_RESONANCES`) to half-width; missing names take
        :data:`DEFAULT_VETO_HALF_WIDTH_GEV`. The interval |M - M_V| <= half_width is vetoed.

    Returns
    -------
    bool or ndarray of bool
    """
    m, scalar = _check_mass(m_aprime, "M_A'")
    mask = _veto_index(m, half_width) >= 0
    return bool(mask) if scalar else mask


def check_aprime_mass(
    m_aprime: ArrayLike, half_width: float | Mapping[str, float] = DEFAULT_VETO_HALF_WIDTH_GEV
) -> None:
    """Raise :class:`ConfigError` if a mass lies in a vetoed resonance region.

    Raises
    ------
    ConfigError
        "M_A' = 3.1 GeV is inside the J/psi(1S) veto (3.0969 +- 0.05 GeV)", one line.
    """
    m, _ = _check_mass(m_aprime, "M_A'")
    idx = _veto_index(m, half_width)
    if np.any(idx >= 0):
        first = np.flatnonzero(idx.ravel() >= 0)[0]
        name = list(NARROW_RESONANCES)[int(idx.ravel()[first])]
        hw = float(_half_widths(half_width)[list(NARROW_RESONANCES).index(name)])
        raise ConfigError(
            f"M_A' = {float(m.ravel()[first]):g} GeV is inside the {name} veto "
            f"({NARROW_RESONANCES[name]:.4f} +- {hw:g} GeV): no A' hypothesis there"
        )


def check_masses(
    m_aprime: ArrayLike,
    m_hdark: ArrayLike,
    *,
    sqrt_s: float = SQRT_S,
    half_width: float | Mapping[str, float] = DEFAULT_VETO_HALF_WIDTH_GEV,
) -> None:
    """Check (M_A', M_h') hypotheses of the search; raise a one-line :class:`ConfigError`.

    Accepted: finite masses with 2 m_mu < M_A' (the A' must decay to mu mu), M_A' where R is
    known (not from 2 m_pi to :data:`R_M_MIN_GEV`, not above :data:`R_M_MAX_GEV`),
    0 <= M_h' < M_A' (the invisible, long-lived h'), M_A' + M_h' < sqrt(s), and M_A' outside the
    vetoed resonance regions (:func:`check_aprime_mass`). Arrays are broadcast together.
    """
    ma, _ = _check_mass(m_aprime, "M_A'")
    mh, _ = _check_mass(m_hdark, "M_h'")
    if not (math.isfinite(sqrt_s) and sqrt_s > 0.0):
        raise ConfigError(f"sqrt(s) = {sqrt_s!r} GeV must be finite and > 0")
    try:
        ma, mh = np.broadcast_arrays(ma, mh)
    except ValueError:
        raise ConfigError(
            f"M_A' (shape {ma.shape}) and M_h' (shape {mh.shape}) do not broadcast together"
        ) from None
    bad = ma <= 2.0 * M_MUON
    if np.any(bad):
        raise ConfigError(
            f"M_A' = {_first_bad(ma, bad):g} GeV is below the mu mu threshold "
            f"{2.0 * M_MUON:.4f} GeV"
        )
    bad = (ma >= 2.0 * M_PION) & (ma < R_M_MIN_GEV)
    if np.any(bad):
        raise ConfigError(
            f"M_A' = {_first_bad(ma, bad):g} GeV is below {R_M_MIN_GEV:g} GeV, where zprime has no "
            "R ratio for B(A' -> mu mu) (rho, omega region)"
        )
    bad = ma > R_M_MAX_GEV
    if np.any(bad):
        raise ConfigError(
            f"M_A' = {_first_bad(ma, bad):g} GeV is above {R_M_MAX_GEV:g} GeV, "
            "the end of the R table"
        )
    bad = mh >= ma
    if np.any(bad):
        i = np.flatnonzero(bad.ravel())[0]
        raise ConfigError(
            f"M_h' = {float(mh.ravel()[i]):g} GeV must be below M_A' = {float(ma.ravel()[i]):g} "
            "GeV (the model's long-lived, invisible h' region)"
        )
    bad = ma + mh >= sqrt_s
    if np.any(bad):
        i = np.flatnonzero(bad.ravel())[0]
        raise ConfigError(
            f"M_A' + M_h' = {float(ma.ravel()[i]):g} + {float(mh.ravel()[i]):g} GeV is not below "
            f"sqrt(s) = {sqrt_s:g} GeV"
        )
    check_aprime_mass(ma, half_width)


# --------------------------------------------------------------------------- widths and B
def _two_body(m: NDArray[np.float64], m_f: float) -> NDArray[np.float64]:
    """(1 + 2 x) sqrt(1 - 4 x), x = m_f^2/M^2; 0 at and below threshold."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(m > 0.0, (m_f / np.where(m > 0.0, m, 1.0)) ** 2, np.inf)
    beta2 = 1.0 - 4.0 * x
    return np.where(beta2 > 0.0, (1.0 + 2.0 * x) * np.sqrt(np.clip(beta2, 0.0, None)), 0.0)


def _gamma0(m: NDArray[np.float64], eps2: NDArray[np.float64]) -> NDArray[np.float64]:
    """alpha epsilon^2 M / 3: the width to a massless lepton pair."""
    return ALPHA_0 * eps2 * m / 3.0


def width_lepton_pair(m_aprime: ArrayLike, m_lepton: float, eps2: ArrayLike = 1.0) -> Any:
    """Gamma(A' -> l+ l-) in GeV [3]_.

    (alpha epsilon^2 M / 3) (1 + 2 m_l^2/M^2) sqrt(1 - 4 m_l^2/M^2); 0 for M <= 2 m_l.

    Parameters
    ----------
    m_aprime
        A' mass in GeV.
    m_lepton
        Lepton mass in GeV (:data:`zprime.physics.constants.M_MUON`, ...).
    eps2
        epsilon^2 (the width is proportional to it).
    """
    m, scalar = _check_mass(m_aprime, "M_A'")
    e2, escalar = _check_non_negative(eps2, "epsilon^2")
    ml, _ = _check_mass(m_lepton, "m_lepton")
    return _out(_gamma0(m, e2) * _two_body(m, float(ml)), scalar and escalar)


def width_hadrons(m_aprime: ArrayLike, eps2: ArrayLike = 1.0) -> Any:
    """Gamma(A' -> hadrons) = (alpha epsilon^2 M / 3) R(M) in GeV [3]_ (NaN where R is)."""
    m, scalar = _check_mass(m_aprime, "M_A'")
    e2, escalar = _check_non_negative(eps2, "epsilon^2")
    return _out(_gamma0(m, e2) * _r_and_sigma(m)[0], scalar and escalar)


def _widths(m: NDArray[np.float64], eps2: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    g0 = _gamma0(m, eps2)
    out = {
        "ee": g0 * _two_body(m, M_ELECTRON),
        "mumu": g0 * _two_body(m, M_MUON),
        "tautau": g0 * _two_body(m, M_TAU),
        "hadrons": g0 * _r_and_sigma(m)[0],
    }
    shape = np.broadcast_shapes(*(w.shape for w in out.values()))
    return {k: np.broadcast_to(w, shape).copy() for k, w in out.items()}


def partial_widths(m_aprime: ArrayLike, eps2: ArrayLike = 1.0) -> dict[str, Any]:
    """All partial widths of the A' in GeV: ``ee``, ``mumu``, ``tautau``, ``hadrons``.

    ``hadrons`` (hence the total) is NaN where R(M) is not provided (see :func:`r_ratio`).
    """
    m, scalar = _check_mass(m_aprime, "M_A'")
    e2, escalar = _check_non_negative(eps2, "epsilon^2")
    return {k: _out(w, scalar and escalar) for k, w in _widths(m, e2).items()}


def total_width(m_aprime: ArrayLike, eps2: ArrayLike = 1.0) -> Any:
    """Total A' width in GeV, the sum of :func:`partial_widths` (no invisible decay)."""
    m, scalar = _check_mass(m_aprime, "M_A'")
    e2, escalar = _check_non_negative(eps2, "epsilon^2")
    return _out(sum(_widths(m, e2).values()), scalar and escalar)


def _branching(m: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    widths = _widths(m, np.ones(()))
    total = sum(widths.values())
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            k: np.where(total > 0.0, w / np.where(total > 0.0, total, 1.0), np.nan)
            for k, w in widths.items()
        }


def branching_fractions(m_aprime: ArrayLike) -> dict[str, Any]:
    """B(A' -> ee, mumu, tautau, hadrons) at mass(es) M_A' in GeV; they sum to 1.

    Independent of epsilon. NaN where R is not provided (2 m_pi <= M < :data:`R_M_MIN_GEV`,
    M > :data:`R_M_MAX_GEV`) and at M <= 2 m_e (no open channel). Inside the vetoed resonance
    regions they use the continuum R (not the resonance).
    """
    m, scalar = _check_mass(m_aprime, "M_A'")
    return {k: _out(b, scalar) for k, b in _branching(m).items()}


def br_mumu(m_aprime: ArrayLike) -> Any:
    """B(A' -> mu+ mu-) at mass(es) M_A' in GeV (see :func:`branching_fractions`)."""
    m, scalar = _check_mass(m_aprime, "M_A'")
    return _out(_branching(m)["mumu"], scalar)


def br_mumu_uncertainty(m_aprime: ArrayLike) -> Any:
    """Absolute 1-sigma uncertainty of :func:`br_mumu` from the R data alone.

    dB/dR = -B Gamma_0 / Gamma_tot (Gamma_0 = alpha epsilon^2 M/3), so
    sigma_B = B Gamma_0 sigma_R / Gamma_tot = B_mumu (B_hadrons / R) sigma_R. The analysis's
    theory uncertainty is :data:`BR_MUMU_REL_UNCERTAINTY` (4%, the paper's).
    """
    m, scalar = _check_mass(m_aprime, "M_A'")
    r, sig_r = _r_and_sigma(m)
    widths = _widths(m, np.ones(()))
    total = sum(widths.values())
    g0 = _gamma0(m, np.ones(()))
    with np.errstate(divide="ignore", invalid="ignore"):
        b = widths["mumu"] / total
        out = b * g0 * sig_r / total
    return _out(np.where(r > 0.0, out, np.where(np.isnan(r), np.nan, 0.0)), scalar)


# --------------------------------------------------------------------------- sigma x B, limits
def sigma_times_br_fb(
    m_aprime: ArrayLike,
    m_hdark: ArrayLike,
    eps2_alpha_d: ArrayLike = 1.0,
    *,
    sqrt_s: float = SQRT_S,
    half_width: float | Mapping[str, float] = DEFAULT_VETO_HALF_WIDTH_GEV,
) -> Any:
    """Born sigma(e+e- -> A' h') x B(A' -> mu+ mu-) in fb.

    Parameters
    ----------
    m_aprime, m_hdark
        Masses in GeV (broadcast together; checked by :func:`check_masses`).
    eps2_alpha_d
        epsilon^2 alpha_D (>= 0); sigma is proportional to it, B does not depend on it.
    sqrt_s
        Centre-of-mass energy in GeV.
    half_width
        Veto half-width(s) of the narrow resonances, as in :func:`in_resonance_veto`.

    Raises
    ------
    ConfigError
        Bad masses (see :func:`check_masses`) or a negative or non-finite coupling.
    """
    e2a, escalar = _check_non_negative(eps2_alpha_d, "epsilon^2 alpha_D")
    check_masses(m_aprime, m_hdark, sqrt_s=sqrt_s, half_width=half_width)
    ma, mscalar = _as_array(m_aprime, "M_A'")
    mh, hscalar = _as_array(m_hdark, "M_h'")
    sigma1 = np.asarray(sigma_born_fb(ma, mh, sqrt_s=sqrt_s, eps2_alpha_d=1.0))
    return _out(e2a * sigma1 * _branching(ma)["mumu"], mscalar and hscalar and escalar)


def eps2_alpha_d_limit(
    sigma_br_limit_fb: ArrayLike,
    m_aprime: ArrayLike,
    m_hdark: ArrayLike,
    sigma_fb: ArrayLike | None = None,
    *,
    sqrt_s: float = SQRT_S,
    half_width: float | Mapping[str, float] = DEFAULT_VETO_HALF_WIDTH_GEV,
) -> Any:
    """Upper limit on epsilon^2 alpha_D from an upper limit on sigma x B(A' -> mu mu).

    sigma is proportional to epsilon^2 alpha_D and B does not depend on it, so
    (epsilon^2 alpha_D)_UL = (sigma x B)_UL / (sigma_1 B_mumu), sigma_1 the cross section at
    epsilon^2 alpha_D = 1.

    Parameters
    ----------
    sigma_br_limit_fb
        Upper limit on sigma x B in fb (> 0), broadcast with the masses.
    m_aprime, m_hdark
        Masses in GeV (checked by :func:`check_masses`).
    sigma_fb
        The analysis's own sigma(e+e- -> A' h') at epsilon^2 alpha_D = 1 in fb (e.g. with ISR),
        broadcast with the masses; ``None`` uses the Born :func:`sigma_born_fb`.
    sqrt_s, half_width
        As in :func:`sigma_times_br_fb`.
    """
    ul, ulscalar = _check_positive(sigma_br_limit_fb, "sigma x B limit", "fb")
    check_masses(m_aprime, m_hdark, sqrt_s=sqrt_s, half_width=half_width)
    ma, mscalar = _as_array(m_aprime, "M_A'")
    mh, hscalar = _as_array(m_hdark, "M_h'")
    if sigma_fb is None:
        sigma1 = np.asarray(sigma_born_fb(ma, mh, sqrt_s=sqrt_s, eps2_alpha_d=1.0))
        sscalar = True
    else:
        sigma1, sscalar = _check_positive(sigma_fb, "sigma(epsilon^2 alpha_D = 1)", "fb")
    return _out(
        ul / (sigma1 * _branching(ma)["mumu"]), ulscalar and mscalar and hscalar and sscalar
    )
