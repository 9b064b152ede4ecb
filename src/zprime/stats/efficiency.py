"""Efficiencies and ratios of weighted event counts, with their uncertainties.

Shared by the control samples of every analysis (data/simulation comparisons of weighted
simulation and of pseudo-data that may carry weights): :func:`weighted_efficiency` and
:func:`ratio_with_error`. Plain floats in and out.
"""

from __future__ import annotations

import math

__all__ = ["ratio_with_error", "weighted_efficiency"]


def weighted_efficiency(
    passed: tuple[float, float], total: tuple[float, float]
) -> tuple[float, float]:
    """Efficiency and its uncertainty from weighted sums.

    ``passed`` and ``total`` are (sum w, sum w2) of the passing events and of all events.
    ``var = [(1 - 2 eps) sum_pass w2 + eps^2 sum_all w2] / (sum_all w)^2`` (the normal
    approximation of the weighted binomial, as ROOT's TEfficiency for weighted events); for unit
    weights it is ``eps (1 - eps) / N``. At eps = 0 or 1 it would vanish: it is floored at the
    value for half an event, ``e (1 - e) / N_eff`` with ``e = 0.5 / (N_eff + 1)``.

    Returns
    -------
    (float, float)
        The efficiency and its uncertainty; (nan, nan) without events.
    """
    sp, sp2 = passed
    st, st2 = total
    if st <= 0:
        return math.nan, math.nan
    eps = sp / st
    var = ((1.0 - 2.0 * eps) * sp2 + eps * eps * st2) / (st * st)
    n_eff = st * st / st2 if st2 > 0 else 0.0
    e_min = 0.5 / (n_eff + 1.0)
    floor = e_min * (1.0 - e_min) / max(n_eff, 1.0)
    return eps, math.sqrt(max(var, floor))


def ratio_with_error(a: float, sa: float, b: float, sb: float) -> tuple[float, float]:
    """``a / b`` and its uncertainty for independent ``a +- sa`` and ``b +- sb``
    (first-order propagation); (nan, nan) when ``b`` is 0 or either is not finite."""
    if b == 0 or not (math.isfinite(a) and math.isfinite(b)):
        return math.nan, math.nan
    r = a / b
    rel = (sa / a) ** 2 if a != 0 else 0.0
    rel += (sb / b) ** 2
    err = abs(r) * math.sqrt(rel) if a != 0 else abs(sa / b)
    return r, err
