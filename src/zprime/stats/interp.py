"""HistFactory interpolation codes with their first and second derivatives.

These are the interpolations that pyhf 0.7.6 applies to ``normsys`` and ``histosys`` modifiers
(``pyhf.interpolators``): a workspace read by ``pyhf.Workspace(spec).model()`` uses the defaults
``normsys: code4`` and ``histosys: code4p`` (``pyhf.pdf._ModelConfig``); ``code1`` and ``code0``
are the alternatives a user can request with ``modifier_settings``. The formulas follow the
HistFactory note (K. Cranmer et al., CERN-OPEN-2012-016, section 4.1) and pyhf's documentation;
the code4 polynomial coefficients are obtained here by solving the six continuity conditions at
``alpha = +-1`` (value, first and second derivative), which defines them uniquely.

Every function returns ``(value, d/dalpha, d2/dalpha2)`` and broadcasts ``alpha`` against the
variation arrays.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "code0",
    "code1",
    "code4",
    "code4_coefficients",
    "code4p",
]

Array = NDArray[np.float64]

# Rows: f(1), f(-1), f'(1), f'(-1), f''(1), f''(-1) for f(a) = 1 + sum_{i=1..6} c_i a^i.
_POWERS = np.arange(1, 7)
_CODE4_MATRIX = np.array(
    [
        np.ones(6),
        (-1.0) ** _POWERS,
        _POWERS * 1.0,
        _POWERS * (-1.0) ** (_POWERS - 1),
        _POWERS * (_POWERS - 1) * 1.0,
        _POWERS * (_POWERS - 1) * (-1.0) ** (_POWERS - 2),
    ]
)
_CODE4_INVERSE = np.linalg.inv(_CODE4_MATRIX)


def code4_coefficients(hi: Array, lo: Array) -> Array:
    """Coefficients ``c_1..c_6`` (last axis) of the code4 polynomial for factors ``hi``, ``lo``.

    The polynomial ``1 + sum_i c_i a^i`` used for ``|a| < 1`` matches ``hi**a`` at ``a = 1`` and
    ``lo**(-a)`` at ``a = -1`` in value, slope and curvature (HistFactory "code 4", alpha0 = 1).
    """
    hi = np.asarray(hi, dtype=float)
    lo = np.asarray(lo, dtype=float)
    lh, ll = np.log(hi), np.log(lo)
    rhs = np.stack([hi - 1.0, lo - 1.0, hi * lh, -lo * ll, hi * lh**2, lo * ll**2], axis=-1)
    return rhs @ _CODE4_INVERSE.T


def code4(alpha: Array, hi: Array, lo: Array, coef: Array) -> tuple[Array, Array, Array]:
    """Multiplicative factor of a normsys with code4: exponential outside ``|a| >= 1``,
    a 6th-order polynomial inside (pyhf's default for ``normsys``)."""
    a = np.asarray(alpha, dtype=float)
    lh, ll = np.log(hi), np.log(lo)
    up = a >= 1.0
    dn = a <= -1.0
    # exponential branches
    f_up = np.exp(a * lh)
    f_dn = np.exp(-a * ll)
    # polynomial branch: Horner for value and derivatives
    c = [coef[..., i] for i in range(6)]
    p = 1.0 + a * (c[0] + a * (c[1] + a * (c[2] + a * (c[3] + a * (c[4] + a * c[5])))))
    p1 = c[0] + a * (2 * c[1] + a * (3 * c[2] + a * (4 * c[3] + a * (5 * c[4] + a * 6 * c[5]))))
    p2 = 2 * c[1] + a * (6 * c[2] + a * (12 * c[3] + a * (20 * c[4] + a * 30 * c[5])))
    f = np.where(up, f_up, np.where(dn, f_dn, p))
    f1 = np.where(up, lh * f_up, np.where(dn, -ll * f_dn, p1))
    f2 = np.where(up, lh**2 * f_up, np.where(dn, ll**2 * f_dn, p2))
    return f, f1, f2


def code1(
    alpha: Array, hi: Array, lo: Array, coef: Array | None = None
) -> tuple[Array, Array, Array]:
    """Multiplicative factor of a normsys with code1 (piecewise exponential)."""
    a = np.asarray(alpha, dtype=float)
    lh, ll = np.log(hi), np.log(lo)
    pos = a > 0
    f = np.where(pos, np.exp(a * lh), np.exp(-a * ll))
    f1 = np.where(pos, lh, -ll) * f
    f2 = np.where(pos, lh**2, ll**2) * f
    return f, f1, f2


def code4p(alpha: Array, d_up: Array, d_dn: Array) -> tuple[Array, Array, Array]:
    """Additive delta of a histosys with code4p (pyhf's default for ``histosys``).

    ``d_up = hi - nominal`` and ``d_dn = nominal - lo``. Linear outside ``|a| > 1``; inside, the
    polynomial ``a S + A (3 a^6 - 10 a^4 + 15 a^2)`` with ``S = (d_up + d_dn)/2`` and
    ``A = (d_up - d_dn)/16``, which joins the linear branches with continuous slope.
    For symmetric variations (``d_up == d_dn``) it is exactly linear.
    """
    a = np.asarray(alpha, dtype=float)
    s = 0.5 * (d_up + d_dn)
    asym = 0.0625 * (d_up - d_dn)
    a2 = a * a
    inner = a * s + asym * a2 * (15.0 + a2 * (-10.0 + 3.0 * a2))
    inner1 = s + asym * a * (30.0 + a2 * (-40.0 + 18.0 * a2))
    inner2 = asym * (30.0 + a2 * (-120.0 + 90.0 * a2))
    up = a > 1.0
    dn = a < -1.0
    d = np.where(up, a * d_up, np.where(dn, a * d_dn, inner))
    d1 = np.where(up, d_up, np.where(dn, d_dn, inner1))
    d2 = np.where(up | dn, 0.0, inner2)
    return d, d1, d2


def code0(alpha: Array, d_up: Array, d_dn: Array) -> tuple[Array, Array, Array]:
    """Additive delta of a histosys with code0 (piecewise linear)."""
    a = np.asarray(alpha, dtype=float)
    # at the kink alpha = 0 the slope of the up side is used (as a forward difference would)
    pos = a >= 0
    d1 = np.where(pos, d_up, d_dn)
    return a * d1, d1 * np.ones_like(a), np.zeros(np.broadcast(a, d_up).shape)
