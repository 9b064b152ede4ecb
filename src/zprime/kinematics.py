"""Four-vector kinematics: boosts between the lab and the c.m. frame, and (issue 4) the
recoil quantities and Punzi-net features computed from reconstructed objects.

Four-momenta are numpy arrays with the last axis ``(E, px, py, pz)`` in GeV; the lab z axis is the
electron beam direction, and the c.m. frame moves along +z with beta*gamma = 0.28 (PRL 130,
231801).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime.constants import BETA_BOOST

__all__ = ["boost_z", "cm_to_lab", "lab_to_cm"]


def boost_z(p4: ArrayLike, beta: ArrayLike) -> NDArray[np.float64]:
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


def cm_to_lab(p4: ArrayLike) -> NDArray[np.float64]:
    """Boost four-momenta from the e+e- c.m. frame to the Belle II lab frame."""
    return boost_z(p4, BETA_BOOST)


def lab_to_cm(p4: ArrayLike) -> NDArray[np.float64]:
    """Boost four-momenta from the Belle II lab frame to the e+e- c.m. frame."""
    return boost_z(p4, -BETA_BOOST)
