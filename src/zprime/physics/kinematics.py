"""Four-vector kinematics: boosts between the lab and the c.m. frame, the recoil quantities and
the Punzi-net features computed from the two muon candidates (PRL 130, 231801).

Four-momenta are numpy arrays with the last axis ``(E, px, py, pz)`` in GeV, three-momenta arrays
with the last axis ``(px, py, pz)``; the lab z axis is the electron beam direction, and the c.m.
frame moves along +z with beta*gamma = 0.28 (PRL 130, 231801). Every function is vectorised over
the leading axes. Angles are in radians.

Analysis variables (:func:`pair_variables`, PRL 130, 231801):

- ``m_recoil2``: M_recoil^2 = (p_beams - p1 - p2)^2 = s + m_mumu^2 - 2 sqrt(s) E*_mumu, GeV^2;
  it may be negative (resolution), so it is computed as a signed mass squared, never as a mass.
- ``p_recoil``/``theta_recoil``: recoil momentum and polar angle in the lab; ``p_recoil_cm``,
  ``theta_recoil_cm``, ``pt_recoil_cm`` the same in the c.m. frame.
- ``opening_angle_cm``: angle between the two muons in the c.m. frame (the PRL cuts at 179 deg).
- the four Punzi-net inputs, all in the c.m. frame: ``pt_thrust_cm`` (transverse momentum of a
  muon with respect to the dimuon thrust axis), ``pt_hi_lo_cm``/``pl_hi_lo_cm`` (transverse and
  longitudinal momentum of the higher-energy muon with respect to the direction of the
  lower-energy muon), ``pt_mumu_cm`` (transverse momentum of the dimuon system).

Thrust axis of two particles. Thrust is T = max_n sum_i |p_i . n| / sum_i |p_i| (Brandt et al.,
Phys. Lett. 12 (1964) 57; Farhi, PRL 39 (1977) 1587). For two particles
|p1.n| + |p2.n| = max(|(p1 + p2).n|, |(p1 - p2).n|), so the maximum over unit vectors n is
max(|p1 + p2|, |p1 - p2|), reached for n along p1 - p2 when p1.p2 < 0 (opening angle above
90 deg, the usual case) and along p1 + p2 otherwise. The axis follows the momentum vectors, not
their unit vectors. Both muons have the same momentum transverse to it:
|p1 x n| = |p2 x n| = |p1 x p2| / max(|p1 + p2|, |p1 - p2|), because the components of p1 and p2
perpendicular to p1 -/+ p2 are equal (opposite). So "a muon" in the PRL's definition is
unambiguous.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime.physics.constants import BETA_BOOST, P_BEAMS_LAB, SQRT_S

__all__ = [
    "PAIR_VARIABLES",
    "angle_between",
    "boost_z",
    "cm_to_lab",
    "four_momentum",
    "lab_to_cm",
    "mass2",
    "momentum",
    "pair_variables",
    "photon_recoil_variables",
    "polar_angle",
    "pt_thrust",
    "recoil",
    "thrust_axis",
    "transverse_momentum",
    "wrt_direction",
]

PAIR_VARIABLES: tuple[str, ...] = (
    "m_recoil2",
    "p_recoil",
    "theta_recoil",
    "p_recoil_cm",
    "theta_recoil_cm",
    "pt_recoil_cm",
    "m_mumu",
    "opening_angle_cm",
    "pt_thrust_cm",
    "pt_hi_lo_cm",
    "pl_hi_lo_cm",
    "pt_mumu_cm",
)
"""Names of the per-event variables returned by :func:`pair_variables`."""

F64 = NDArray[np.float64]


def boost_z(p4: ArrayLike, beta: ArrayLike) -> F64:
    """Boost four-momenta along +z by velocity ``beta`` (a frame moving with -beta sees this).

    A particle at rest in frame F is given momentum ``+gamma*beta*m`` along z: this takes
    momenta from the rest frame of a system moving with ``beta`` into the frame where it moves.

    Parameters
    ----------
    p4
        (..., 4) four-momenta (E, px, py, pz).
    beta
        Velocity along z, broadcastable to ``p4[..., 0]``; |beta| < 1.
    """
    p = np.asarray(p4, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    g = 1.0 / np.sqrt(1.0 - b * b)
    e = p[..., 0]
    pz = p[..., 3]
    out = p.copy()
    out[..., 0] = g * (e + b * pz)
    out[..., 3] = g * (pz + b * e)
    return out


def cm_to_lab(p4: ArrayLike) -> F64:
    """Boost four-momenta from the e+e- c.m. frame to the Belle II lab frame."""
    return boost_z(p4, BETA_BOOST)


def lab_to_cm(p4: ArrayLike) -> F64:
    """Boost four-momenta from the Belle II lab frame to the e+e- c.m. frame."""
    return boost_z(p4, -BETA_BOOST)


def mass2(p4: ArrayLike) -> F64:
    """Signed invariant mass squared E^2 - |p|^2 of (..., 4) four-momenta, GeV^2."""
    p = np.asarray(p4, dtype=np.float64)
    return p[..., 0] ** 2 - (p[..., 1] ** 2 + p[..., 2] ** 2 + p[..., 3] ** 2)


def _three(p: ArrayLike) -> F64:
    """The three-momentum part of (..., 4) four-vectors, or (..., 3) three-vectors unchanged."""
    a = np.asarray(p, dtype=np.float64)
    if a.shape[-1] == 4:
        return a[..., 1:]
    if a.shape[-1] != 3:
        raise ValueError(f"last axis must have length 3 or 4, got {a.shape[-1]}")
    return a


def momentum(p: ArrayLike) -> F64:
    """Magnitude |p| of (..., 3) three-momenta or (..., 4) four-momenta."""
    v = _three(p)
    return np.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2 + v[..., 2] ** 2)


def transverse_momentum(p: ArrayLike) -> F64:
    """Momentum transverse to the z axis of (..., 3) or (..., 4) arrays."""
    v = _three(p)
    return np.hypot(v[..., 0], v[..., 1])


def polar_angle(p: ArrayLike) -> F64:
    """Polar angle theta in [0, pi] with respect to +z (the electron beam), radians."""
    v = _three(p)
    return np.arctan2(np.hypot(v[..., 0], v[..., 1]), v[..., 2])


def angle_between(a: ArrayLike, b: ArrayLike) -> F64:
    """Angle in [0, pi] between two sets of (three- or four-) momenta, radians.

    Uses atan2(|a x b|, a.b), which stays accurate for nearly parallel and nearly
    back-to-back vectors (where arccos of the normalised dot product loses precision).
    """
    u = _three(a)
    v = _three(b)
    cross = np.cross(u, v)
    return np.arctan2(momentum(cross), np.sum(u * v, axis=-1))


def four_momentum(p3: ArrayLike, mass: ArrayLike) -> F64:
    """(..., 4) four-momenta from (..., 3) momenta and a mass hypothesis (GeV)."""
    v = np.asarray(p3, dtype=np.float64)
    m = np.asarray(mass, dtype=np.float64)
    e = np.sqrt(np.sum(v * v, axis=-1) + m * m)
    return np.concatenate([e[..., None], v], axis=-1)


def recoil(p1: ArrayLike, p2: ArrayLike, p_initial: ArrayLike = P_BEAMS_LAB) -> F64:
    """Recoil four-momentum ``p_initial - p1 - p2`` (default: the lab beams, 7 + 4 GeV)."""
    return (
        np.asarray(p_initial, dtype=np.float64)
        - np.asarray(p1, dtype=np.float64)
        - np.asarray(p2, dtype=np.float64)
    )


def thrust_axis(p1: ArrayLike, p2: ArrayLike) -> F64:
    """Unit thrust axis of a two-particle system (sign arbitrary), see the module docstring.

    Along ``p1 - p2`` when ``p1 . p2 < 0`` and along ``p1 + p2`` otherwise.
    """
    u = _three(p1)
    v = _three(p2)
    plus = u + v
    minus = u - v
    use_minus = (np.sum(u * v, axis=-1) < 0.0)[..., None]
    axis = np.where(use_minus, minus, plus)
    return axis / momentum(axis)[..., None]


def pt_thrust(p1: ArrayLike, p2: ArrayLike) -> F64:
    """Momentum of a particle transverse to the thrust axis of the pair (same for both).

    ``|p1 x p2| / max(|p1 + p2|, |p1 - p2|)``.
    """
    u = _three(p1)
    v = _three(p2)
    denom = np.maximum(momentum(u + v), momentum(u - v))
    return momentum(np.cross(u, v)) / denom


def wrt_direction(p: ArrayLike, ref: ArrayLike) -> tuple[F64, F64]:
    """Transverse and longitudinal momentum of ``p`` with respect to the direction of ``ref``.

    Returns
    -------
    (pt, pl)
        ``|p x ref_hat|`` (>= 0) and ``p . ref_hat`` (signed), GeV.
    """
    u = _three(p)
    r = _three(ref)
    r_mag = momentum(r)
    pl = np.sum(u * r, axis=-1) / r_mag
    pt = momentum(np.cross(u, r)) / r_mag
    return pt, pl


def pair_variables(p1: ArrayLike, p2: ArrayLike) -> dict[str, F64]:
    """All per-event analysis variables of a muon pair given in the LAB frame.

    Parameters
    ----------
    p1, p2
        (n, 4) lab four-momenta of the two muon candidates (E from the muon mass hypothesis).

    Returns
    -------
    dict
        Arrays of shape (n,) named as in :data:`PAIR_VARIABLES` (GeV, GeV^2, radians).
    """
    a = np.asarray(p1, dtype=np.float64)
    b = np.asarray(p2, dtype=np.float64)
    rec_lab = recoil(a, b)
    a_cm = lab_to_cm(a)
    b_cm = lab_to_cm(b)
    # In the c.m. frame the beams are (sqrt(s), 0, 0, 0): the recoil is computed there, which
    # gives M^2 = (sqrt(s) - E*)^2 - |p*|^2 = s + m_mumu^2 - 2 sqrt(s) E*_mumu directly.
    pair_cm = a_cm + b_cm
    rec_cm = -pair_cm
    rec_cm[..., 0] = SQRT_S - pair_cm[..., 0]
    hi_first = a_cm[..., 0] >= b_cm[..., 0]
    hi = np.where(hi_first[..., None], a_cm, b_cm)
    lo = np.where(hi_first[..., None], b_cm, a_cm)
    pt_hl, pl_hl = wrt_direction(hi, lo)
    return {
        "m_recoil2": mass2(rec_cm),
        "p_recoil": momentum(rec_lab),
        "theta_recoil": polar_angle(rec_lab),
        "p_recoil_cm": momentum(rec_cm),
        "theta_recoil_cm": polar_angle(rec_cm),
        "pt_recoil_cm": transverse_momentum(rec_cm),
        "m_mumu": np.sqrt(np.maximum(mass2(pair_cm), 0.0)),
        "opening_angle_cm": angle_between(a_cm, b_cm),
        "pt_thrust_cm": pt_thrust(a_cm, b_cm),
        "pt_hi_lo_cm": pt_hl,
        "pl_hi_lo_cm": pl_hl,
        "pt_mumu_cm": transverse_momentum(pair_cm),
    }


def photon_recoil_variables(
    recoil_lab: ArrayLike,
    photon_p4: ArrayLike,
    counts: ArrayLike,
) -> tuple[F64, F64]:
    """Total photon energy and smallest photon-to-recoil angle per event (lab frame).

    Parameters
    ----------
    recoil_lab
        (n, 3) or (n, 4) recoil momenta in the lab.
    photon_p4
        (m, 4) lab four-momenta of all photons, grouped by event (event 0's photons first).
    counts
        (n,) number of photons per event, summing to m.

    Returns
    -------
    (e_photons, min_angle)
        Sum of photon energies (0 without photons), GeV, and the smallest angle between a
        photon and the recoil momentum (pi without photons: no photon is near), radians.
    """
    rec = _three(recoil_lab)
    ph = np.asarray(photon_p4, dtype=np.float64).reshape(-1, 4)
    cnt = np.asarray(counts, dtype=np.int64)
    n = cnt.shape[0]
    if int(cnt.sum()) != ph.shape[0]:
        raise ValueError("counts do not add up to the number of photons")
    event_of = np.repeat(np.arange(n), cnt)
    e_sum = np.bincount(event_of, weights=ph[:, 0], minlength=n).astype(np.float64)
    min_angle = np.full(n, np.pi)
    if ph.shape[0]:
        angles = angle_between(ph, rec[event_of])
        has = cnt > 0
        starts = (np.cumsum(cnt) - cnt)[has]
        min_angle[has] = np.minimum.reduceat(angles, starts)
    # an undefined recoil (NaN: fewer than two tracks) gives NaN, not a spurious pi
    min_angle[np.isnan(rec).any(axis=-1)] = np.nan
    return e_sum, min_angle
