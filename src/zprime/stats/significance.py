"""Local significance, goodness of fit and the look-elsewhere effect.

- Local significance: the discovery statistic q0 (Cowan et al., EPJC 71 (2011) 1554, eq. (12);
  pyhf's ``q0``): ``q0 = 2 [nll(0, theta^^(0)) - nll(mu^, theta^)]`` for ``mu^ > 0``, else 0,
  with asymptotic ``p0 = Phi(-sqrt(q0))`` and ``Z = sqrt(q0)`` (eq. (53)).
- Goodness of fit: the saturated-model likelihood ratio (Baker & Cousins, NIM 221 (1984) 437)
  ``t = 2 sum_b [lambda_b - n_b + n_b log(n_b / lambda_b)] + sum_c ((theta_c - a_c)/sigma_c)^2``
  at the best fit, compared with a chi^2 of ``ndof = bins - free unconstrained parameters``
  (each constrained nuisance parameter brings its own auxiliary measurement, so it neither adds
  nor removes a degree of freedom); optionally with toys drawn at the best fit.
- Global significance of the largest local excess in a mass scan: Gross and Vitells,
  EPJC 70 (2010) 525, eq. (4) for one degree of freedom: ``p_global = P(q0 > u) + <N(c0)>
  exp(-(u - c0)/2)`` with ``<N(c0)>`` the mean number of up-crossings of the q0 scan above a low
  reference level ``c0``; with the one-sided q0, ``P(q0 > u) = Phi(-sqrt(u))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2, norm

from zprime.errors import InputError
from zprime.stats.compiled import CompiledModel, Params
from zprime.stats.engine import expected_main, fit
from zprime.stats.limits import sample_toys

__all__ = [
    "Discovery",
    "GlobalSignificance",
    "GoodnessOfFit",
    "discovery",
    "global_significance",
    "goodness_of_fit",
    "upcrossings",
]

Array = NDArray[np.float64]


@dataclass
class Discovery:
    """Local discovery test of N datasets: q0, p0, Z (N,), the best-fit POI and a status."""

    q0: Array
    p0: Array
    z: Array
    mu_hat: Array
    status: list[str]
    message: list[str]


def discovery(
    model: CompiledModel, *, main: Array | None = None, aux: Params | None = None, widx: Any = None
) -> Discovery:
    """q0, asymptotic p0 and local significance of every dataset (default: observed data)."""
    if main is None:
        main = model.observed if widx is None else model.observed[np.asarray(widx)]
    main = np.atleast_2d(np.asarray(main, dtype=float))
    n = main.shape[0]
    w = model._widx(n, None if widx is None else np.asarray(widx))
    aux = model.nominal_aux(n, w) if aux is None else aux
    free = fit(model, main, aux, widx=w)
    bkg = fit(model, main, aux, fixed_poi=0.0, widx=w, init=free.params)
    mu_hat = free.params.g[:, model.poi_index]
    q0 = np.where(mu_hat > 0, np.maximum(bkg.twice_nll - free.twice_nll, 0.0), 0.0)
    ok = free.converged & bkg.converged
    status = ["ok" if o else "failed" for o in ok]
    message = [
        "" if o else f"workspace {model.names[w[i]]}: discovery fit did not converge"
        for i, o in enumerate(ok)
    ]
    q0 = np.where(ok, q0, np.nan)
    return Discovery(
        q0=q0, p0=norm.sf(np.sqrt(q0)), z=np.sqrt(q0), mu_hat=mu_hat, status=status, message=message
    )


@dataclass
class GoodnessOfFit:
    """Saturated-model goodness of fit of one workspace."""

    name: str
    t: float
    ndof: int
    p_value: float
    p_value_toys: float = math.nan
    ntoys: int = 0
    status: str = "ok"
    message: str = ""


def _saturated_t(model: CompiledModel, p: Params, main: Array, aux: Params, w: NDArray) -> Array:
    lam = expected_main(model, p, w)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(main > 0, main * np.log(main / lam), 0.0)
    t = 2.0 * np.sum(lam - main + term, axis=1)
    cg = np.where(model.g_constrained, ((p.g - aux.g) / model.g_sigma[w]) ** 2, 0.0).sum(axis=1)
    cl = np.where(model.l_present[w], ((p.l - aux.l) / model.l_sigma[w]) ** 2, 0.0)
    cd = ((p.d - aux.d) / model.d_sigma[w]) ** 2
    return t + cg + cl.sum(axis=(1, 2)) + cd.sum(axis=1)


def goodness_of_fit(
    model: CompiledModel, *, w: int = 0, ntoys: int = 0, rng: np.random.Generator | None = None
) -> GoodnessOfFit:
    """Saturated-model GoF p-value of workspace ``w`` (chi^2, and toys if ``ntoys > 0``)."""
    if not model.gaussian_constrained_bins:
        # the saturated statistic below adds Gaussian constraint terms for every per-bin one
        raise InputError(
            f"workspace {model.names[w]}: the goodness of fit needs Gaussian-constrained per-bin "
            "parameters (no shapesys, no per-bin shapefactor)"
        )
    wi = np.array([w])
    main = model.observed[wi]
    aux = model.nominal_aux(1, wi)
    best = fit(model, main, aux, widx=wi)
    name = model.names[w]
    free_unconstrained = (~model.g_constrained) & (~model.g_fixed[w])
    ndof = int(model.nbins - free_unconstrained.sum())
    if not best.converged[0]:
        return GoodnessOfFit(
            name,
            math.nan,
            ndof,
            math.nan,
            status="failed",
            message=f"workspace {name}: best fit did not converge",
        )
    t = float(_saturated_t(model, best.params, main, aux, wi)[0])
    res = GoodnessOfFit(name, t, ndof, float(chi2.sf(t, ndof)) if ndof > 0 else math.nan)
    if ntoys > 0:
        rng = rng or np.random.default_rng(0)
        tm, ta = sample_toys(model, best.params, ntoys, rng, w)
        wt = np.full(ntoys, w)
        ft = fit(
            model,
            tm,
            ta,
            widx=wt,
            init=Params(*(np.repeat(getattr(best.params, k), ntoys, axis=0) for k in "gld")),
        )
        tt = _saturated_t(model, ft.params, tm, ta, wt)
        good = ft.converged
        res.p_value_toys = float(np.mean(tt[good] >= t))
        res.ntoys = int(good.sum())
    return res


def upcrossings(q: ArrayLike, level: float) -> int:
    """Number of up-crossings of ``level`` by the sampled curve ``q`` (points in scan order)."""
    above = np.asarray(q, dtype=float) > level
    return int(np.count_nonzero(~above[:-1] & above[1:]))


@dataclass
class GlobalSignificance:
    """Largest local excess of a scan and its global significance (Gross-Vitells)."""

    q_max: float
    index: int
    mass: float
    z_local: float
    p_local: float
    ref_level: float
    n_ref: float
    p_global: float
    z_global: float


def global_significance(
    mass: ArrayLike, q0: ArrayLike, *, ref_level: float = 1.0, n_ref: float | None = None
) -> GlobalSignificance:
    """Global significance of the largest q0 of a scan (Gross & Vitells, EPJC 70 (2010) 525).

    Parameters
    ----------
    mass, q0
        The scan: mass hypotheses (increasing) and their local q0.
    ref_level
        Low reference level ``c0`` where up-crossings are counted.
    n_ref
        Mean number of up-crossings above ``ref_level`` (e.g. averaged over a few
        background-only toy scans); default: counted on this scan.
    """
    m = np.asarray(mass, dtype=float)
    q = np.nan_to_num(np.asarray(q0, dtype=float), nan=0.0)
    i = int(np.argmax(q))
    u = float(q[i])
    n0 = float(upcrossings(q, ref_level)) if n_ref is None else float(n_ref)
    p_local = float(norm.sf(math.sqrt(max(u, 0.0))))
    p_global = p_local + n0 * math.exp(-(u - ref_level) / 2.0) if u > ref_level else 1.0
    p_global = min(1.0, p_global)
    return GlobalSignificance(
        q_max=u,
        index=i,
        mass=float(m[i]),
        z_local=math.sqrt(max(u, 0.0)),
        p_local=p_local,
        ref_level=ref_level,
        n_ref=n0,
        p_global=p_global,
        z_global=float(norm.isf(p_global)),
    )
