"""CLs upper limits with the q~_mu test statistic: asymptotic and toy-based.

The test statistic is q~_mu of Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554, eq. (16),
with the POI bounded below at zero, exactly as ``pyhf.infer.test_statistics.qmu_tilde``::

    q~_mu = 2 [nll(mu, theta^^(mu)) - nll(mu^, theta^)]  if mu^ <= mu,   0 otherwise

(clipped at 0; ``mu^ >= 0`` because the POI is bounded). Asymptotic p-values follow
``pyhf.infer.calculators.AsymptoticCalculator``: the Asimov dataset is the expectation (main and
auxiliary data) at the conditional fit with ``mu = 0`` to the observed data; with
``s = sqrt(q~_mu,A)`` the statistic is mapped to ``t = sqrt(q) - s`` if ``q <= s^2`` else
``(q - s^2) / (2 s)`` (eq. (66) of the paper, in pyhf's ``-mu^/sigma`` convention), and

    CLs+b = Phi(-(t + s)),   CLb = Phi(-t),   CLs = CLs+b / CLb;

the expected CLs at ``n`` sigma is ``Phi(-(n + s)) / Phi(-n)``. Upper limits solve
``CLs(mu) = level`` (``level = 0.10`` for 90% CL) by a safeguarded Newton iteration whose
derivative comes from the envelope theorem (``d nll(mu, theta^^(mu)) / d mu`` is the POI
gradient at the conditional optimum), vectorised over datasets and the six limits.

Toy-based CLs follows ``pyhf.infer.calculators.ToyCalculator``: pseudo-experiments are drawn
from the model at the conditional fits to the data with ``mu`` (signal-like) and ``0``
(background-like), sampling the main data (Poisson) *and* the auxiliary data (Gaussian around
the fitted nuisance values); p-values are the fractions of toys with ``q~_mu`` at least the
observed one, and the expected CLs band is the set of percentiles of CLs over the
background-like toys. The PRL's expected bands are the quantiles of the upper limits of
background-only pseudo-experiments (:func:`expected_limits_toys`).

Length: one family of calculators: q~_mu, q_mu and q0, their asymptotic and toy CLs and the
root finding on them share the profile fits and the band conventions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from zprime.errors import InputError, ZprimeError
from zprime.stats.compiled import (
    CON_GAUSS,
    CON_POISSON,
    CompiledModel,
    Params,
    compile_workspace,
    stack_models,
)
from zprime.stats.engine import expected_main, fit, poi_uncertainty, twice_nll
from zprime.stats.limit_result import LEVEL, NSIGMA, LimitResult
from zprime.stats.pyhf_engine import pyhf_upper_limit

__all__ = [
    "LEVEL",
    "NSIGMA",
    "AsymptoticLimits",
    "LimitResult",
    "asymptotic_limits",
    "cls_asymptotic",
    "expected_limits_toys",
    "hypotest",
    "profile_statistic",
    "sample_toys",
    "scan_limits",
    "toy_hypotest",
    "toy_limits",
    "upper_limit",
]

Array = NDArray[np.float64]


# ---------------------------------------------------------------------------- CLs formulas
TEST_STATS = ("qtilde", "q", "q0")


def _check_test_stat(test_stat: str, allowed: Sequence[str] = TEST_STATS) -> None:
    if test_stat not in allowed:
        raise InputError(f"test statistic {test_stat!r} is not one of {', '.join(allowed)}")


def cls_asymptotic(
    q: Array, q_asimov: Array, test_stat: str = "qtilde"
) -> tuple[Array, Array, Array]:
    """Asymptotic ``(CLs, CLs+b, CLb)`` from q_mu and q_mu,A (pyhf's formulas).

    For ``"qtilde"`` the statistic is mapped to ``t = sqrt(q) - sqrt(qA)`` below ``qA`` and
    ``(q - qA) / (2 sqrt(qA))`` above; for ``"q"`` (and ``"q0"``) always ``sqrt(q) - sqrt(qA)``
    (pyhf's ``AsymptoticCalculator.teststatistic``). For ``q0`` the p-value is ``CLs+b``.
    """
    q = np.maximum(np.asarray(q, dtype=float), 0.0)
    qa = np.maximum(np.asarray(q_asimov, dtype=float), 0.0)
    sq, sa = np.sqrt(q), np.sqrt(qa)
    with np.errstate(divide="ignore", invalid="ignore"):
        piecewise = np.where(sq <= sa, sq - sa, (q - qa) / (2.0 * sa))
        t = piecewise if test_stat == "qtilde" else sq - sa
        clsb = norm.sf(t + sa)
        clb = norm.sf(t)
        return clsb / clb, clsb, clb


def _expected_cls(q_asimov: Array) -> Array:
    """Expected CLs at -2..+2 sigma (NSIGMA order), shape (..., 5)."""
    sa = np.sqrt(np.maximum(np.asarray(q_asimov, dtype=float), 0.0))[..., None]
    n = -np.asarray(NSIGMA)  # pyhf evaluates t = n for n in [2, 1, 0, -1, -2]
    return norm.sf(n + sa) / norm.sf(n)


def _expected_targets(level: float) -> Array:
    """``sqrt(q_A)`` at which the expected CLs crosses ``level`` for each band (NSIGMA order)."""
    n = -np.asarray(NSIGMA)
    return norm.isf(level * norm.sf(n)) - n


def _g_obs(q: Array, qa: Array, level: float, test_stat: str = "qtilde") -> Array:
    cls, _, _ = cls_asymptotic(q, qa, test_stat)
    with np.errstate(divide="ignore", invalid="ignore"):
        return norm.isf(np.clip(cls, 1e-300, 1.0)) - norm.isf(level)


# ---------------------------------------------------------------------------- results
@dataclass
class AsymptoticLimits:
    """Vectorised asymptotic limits of N datasets: observed (N,), expected (N, 5), mu^ (N,),
    a per-dataset status (``"ok"``/``"failed"``) and message."""

    observed: Array
    expected: Array
    mu_hat: Array
    sigma_asimov: Array
    status: list[str]
    message: list[str]


# ---------------------------------------------------------------------------- asymptotics
class _Calculator:
    """Fits shared by all asymptotic quantities of N datasets (pyhf's AsymptoticCalculator)."""

    def __init__(
        self,
        model: CompiledModel,
        main: Array,
        aux: Params | None,
        widx: NDArray[np.intp] | None,
        init: Params | None = None,
        maxiter: int = 200,
        test_stat: str = "qtilde",
    ) -> None:
        self.model = model
        self.maxiter = maxiter
        self.test_stat = test_stat
        self.main = np.atleast_2d(np.asarray(main, dtype=float))
        n = self.main.shape[0]
        self.widx = model._widx(n, widx)
        self.aux = model.nominal_aux(n, self.widx) if aux is None else aux
        self.poi = model.poi_index
        self.free = fit(model, self.main, self.aux, widx=self.widx, init=init, maxiter=maxiter)
        self.bkg = fit(
            model,
            self.main,
            self.aux,
            fixed_poi=0.0,
            widx=self.widx,
            init=self.free.params,
            maxiter=maxiter,
        )
        pa = self.bkg.params
        self.main_a = expected_main(model, pa, self.widx)
        self.aux_a = model.asimov_aux(pa, self.widx)
        # The Asimov data are reproduced exactly by pa (main and auxiliary): every gradient
        # vanishes there and mu = 0 sits on its bound, so pa is the free fit to the Asimov data.
        self.pars_a = pa
        self.nll_a = twice_nll(model, pa, self.main_a, self.aux_a, self.widx)
        self.mu_hat = self.free.params.g[:, self.poi]
        self.sigma_a = poi_uncertainty(model, pa, self.main_a, self.aux_a, self.widx)
        self.poi_hi = model.g_hi[self.widx, self.poi]
        self.ok = self.free.converged & self.bkg.converged
        self.ok &= np.isfinite(self.free.twice_nll) & np.isfinite(self.bkg.twice_nll)

    def q_data(self, rows: NDArray[np.intp], mu: Array, init: Params | None):
        """q~_mu on the data of datasets ``rows`` at ``mu``; returns (q, dq/dmu, fit)."""
        r = fit(
            self.model,
            self.main[rows],
            self.aux.take(rows),
            fixed_poi=mu,
            widx=self.widx[rows],
            init=init,
            maxiter=self.maxiter,
        )
        t = r.twice_nll - self.free.twice_nll[rows]
        above = self.mu_hat[rows] > mu
        q = np.where(above, 0.0, np.maximum(t, 0.0))
        dq = np.where(above | (t <= 0), 0.0, 2.0 * r.grad_g[:, self.poi])
        return q, dq, r

    def q_asimov(self, rows: NDArray[np.intp], mu: Array, init: Params | None):
        """q~_mu,A on the Asimov data of datasets ``rows``; returns (qA, dqA/dmu, fit)."""
        r = fit(
            self.model,
            self.main_a[rows],
            self.aux_a.take(rows),
            fixed_poi=mu,
            widx=self.widx[rows],
            init=init,
            maxiter=self.maxiter,
        )
        t = r.twice_nll - self.nll_a[rows]
        q = np.maximum(t, 0.0)
        dq = np.where(t <= 0, 0.0, 2.0 * r.grad_g[:, self.poi])
        return q, dq, r


def _newton_roots(
    calc: _Calculator,
    rows: NDArray[np.intp],
    kind: NDArray[np.int_],
    level: float,
    rtol: float = 1e-6,
    maxiter: int = 60,
):
    """Solve for every (dataset row, kind) pair: kind -1 = observed CLs, 0..4 = expected band.

    Returns (mu, ok, message) arrays over the pairs."""
    m = rows.size
    targets = _expected_targets(level)
    sig = np.where(
        np.isfinite(calc.sigma_a[rows]) & (calc.sigma_a[rows] > 0), calc.sigma_a[rows], 1.0
    )
    muh = np.maximum(calc.mu_hat[rows], 0.0)
    mu = np.where(kind < 0, muh + targets[2] * sig, targets[np.maximum(kind, 0)] * sig)
    hi_b = calc.poi_hi[rows]
    mu = np.clip(mu, 1e-9 * hi_b, 0.5 * hi_b)
    lo = np.zeros(m)
    hi = np.full(m, np.inf)
    done = np.zeros(m, dtype=bool)
    ok = np.ones(m, dtype=bool)
    msg = np.array([""] * m, dtype=object)
    pars_d = calc.bkg.params.take(rows)
    pars_a = calc.pars_a.take(rows)
    obs = kind < 0
    for _ in range(maxiter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        r_act = rows[act]
        qa, dqa, fa = calc.q_asimov(r_act, mu[act], pars_a.take(act))
        pars_a.put(act, fa.params)
        conv = fa.converged.copy()
        g = np.empty(act.size)
        dg = np.empty(act.size)
        ex = ~obs[act]
        sa = np.sqrt(qa)
        with np.errstate(divide="ignore", invalid="ignore"):
            g[ex] = sa[ex] - targets[np.maximum(kind[act][ex], 0)]
            dg[ex] = dqa[ex] / (2.0 * sa[ex])
        oi = np.flatnonzero(obs[act])
        if oi.size:
            ob = act[oi]
            q, dq, fd = calc.q_data(rows[ob], mu[ob], pars_d.take(ob))
            pars_d.put(ob, fd.params)
            conv[oi] &= fd.converged
            qa_o = qa[oi]
            ts = calc.test_stat
            g[oi] = _g_obs(q, qa_o, level, ts)
            hq = 1e-6 * (1.0 + q)
            ha = 1e-6 * (1.0 + qa_o)
            # at a too small mu CLs is 1 and g = -inf: the difference is NaN there, and the
            # step below falls back to bisection (``good`` needs a finite Newton step)
            with np.errstate(invalid="ignore"):
                dgq = (
                    _g_obs(q + hq, qa_o, level, ts) - _g_obs(np.maximum(q - hq, 0), qa_o, level, ts)
                ) / (q + hq - np.maximum(q - hq, 0))
                dga = (
                    _g_obs(q, qa_o + ha, level, ts) - _g_obs(q, np.maximum(qa_o - ha, 0), level, ts)
                ) / (qa_o + ha - np.maximum(qa_o - ha, 0))
                dg[oi] = dgq * dq + dga * dqa[oi]
        bad = ~conv
        if bad.any():
            ok[act[bad]] = False
            done[act[bad]] = True
            for j in act[bad]:
                msg[j] = f"fit did not converge at {calc.model.poi_name}={mu[j]:.6g}"
        cur = mu[act]
        neg = (g < 0) | ~np.isfinite(g)  # undefined CLs only occurs at too small mu
        lo[act] = np.where(neg, np.maximum(lo[act], cur), lo[act])
        hi[act] = np.where(~neg, np.minimum(hi[act], cur), hi[act])
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = cur - g / dg
        good = np.isfinite(newton) & (dg > 0) & (newton > lo[act]) & (newton < hi[act])
        fallback = np.where(
            np.isfinite(hi[act]), 0.5 * (lo[act] + hi[act]), np.minimum(2.0 * cur, hi_b[act])
        )
        nxt = np.where(good, newton, fallback)
        step_small = np.abs(nxt - cur) <= rtol * np.maximum(cur, 1e-300)
        zero_g = np.abs(g) < 1e-10
        finished = (step_small | zero_g) & conv
        # the upper bound of the POI cannot bracket the root
        stuck = (~np.isfinite(hi[act])) & (cur >= hi_b[act]) & neg
        for j in act[stuck & conv]:
            ok[j] = False
            msg[j] = (
                f"limit above the {calc.model.poi_name} upper bound {hi_b[j]:.6g}; "
                "widen the POI bounds"
            )
        mu[act] = np.where(finished & good, nxt, np.where(finished, cur, nxt))
        done[act[finished | stuck]] = True
    not_done = ~done
    if not_done.any():
        ok[not_done] = False
        for j in np.flatnonzero(not_done):
            msg[j] = "root finding on CLs did not converge"
    return mu, ok, msg


def asymptotic_limits(
    model: CompiledModel,
    *,
    main: Array | None = None,
    aux: Params | None = None,
    widx: Any = None,
    level: float = LEVEL,
    expected: bool = True,
    init: Params | None = None,
    maxiter: int = 200,
    test_stat: str = "qtilde",
) -> AsymptoticLimits:
    """Observed and expected asymptotic CLs upper limits of ``N`` datasets at once.

    Parameters
    ----------
    model
        Compiled model (one workspace, or several stacked with :func:`stack_models`).
    main, aux
        Datasets (N, B) and their auxiliary data; default: each workspace's observed data and
        nominal auxdata.
    widx
        Workspace index of every dataset for stacked models.
    level
        CLs threshold (0.10 for 90% CL).
    expected
        Also solve for the five expected limits (from each dataset's own Asimov dataset).
    init
        Starting values of the free fits (default: the measurement's inits).
    maxiter
        Newton iterations allowed per fit; a dataset whose fits do not converge is "failed".
    test_stat
        ``"qtilde"`` (q~_mu, default) or ``"q"`` (q_mu, pyhf's ``qmu``); the expected limits do
        not depend on the choice.
    """
    _check_test_stat(test_stat, ("qtilde", "q"))
    if main is None:
        main = model.observed if widx is None else model.observed[np.asarray(widx)]
    calc = _Calculator(
        model, main, aux, None if widx is None else np.asarray(widx), init, maxiter, test_stat
    )
    n = calc.main.shape[0]
    nk = 6 if expected else 1
    rows = np.repeat(np.arange(n), nk)
    kind = np.tile(np.arange(-1, nk - 1), n)
    mu = np.full(rows.size, np.nan)
    okr = np.zeros(rows.size, dtype=bool)
    msg = np.array([""] * rows.size, dtype=object)
    good = np.flatnonzero(calc.ok[rows])
    if good.size:
        mu[good], okr[good], msg[good] = _newton_roots(calc, rows[good], kind[good], level)
    obs = mu.reshape(n, nk)[:, 0]
    exp = mu.reshape(n, nk)[:, 1:] if expected else np.full((n, 5), np.nan)
    okm = okr.reshape(n, nk).all(axis=1)
    status, message = [], []
    for i in range(n):
        wname = calc.model.names[calc.widx[i]]
        if not calc.ok[i]:
            status.append("failed")
            message.append(f"workspace {wname}: the fit to the data did not converge")
        elif not okm[i]:
            status.append("failed")
            first = next(m for m in msg.reshape(n, nk)[i] if m)
            message.append(f"workspace {wname}: {first}")
        else:
            status.append("ok")
            message.append("")
    obs = np.where(okm, obs, np.nan)
    exp = np.where(okm[:, None], exp, np.nan)
    return AsymptoticLimits(obs, exp, calc.mu_hat, calc.sigma_a, status, message)


def hypotest(
    model: CompiledModel,
    mu: float | Array,
    *,
    main: Array | None = None,
    aux: Params | None = None,
    widx: Any = None,
    test_stat: str = "qtilde",
) -> tuple[Array, Array]:
    """Asymptotic CLs at ``mu`` and the expected CLs band (N, 5), as ``pyhf.infer.hypotest``
    with ``return_expected_set=True`` and the same ``test_stat``.

    Parameters
    ----------
    model
        The compiled model.
    mu
        POI value(s) tested (ignored for ``"q0"``, which tests ``mu = 0``).
    main, aux, widx
        Datasets (default: the observed data and the measurement's auxdata).
    test_stat
        ``"qtilde"``, ``"q"`` or ``"q0"``. For ``"q0"`` the discovery p-value ``p0`` and its
        expected band (Asimov data at ``mu = 1``) are returned instead of CLs, as pyhf does.

    Returns
    -------
    tuple
        CLs (or p0) (N,) and the expected values at -2..+2 sigma (N, 5).
    """
    _check_test_stat(test_stat)
    if main is None:
        main = model.observed
    if test_stat == "q0":
        return _hypotest_q0(model, main, aux, widx)
    calc = _Calculator(
        model, main, aux, None if widx is None else np.asarray(widx), None, 200, test_stat
    )
    rows = np.arange(calc.main.shape[0])
    mu_a = np.broadcast_to(np.asarray(mu, dtype=float), rows.shape).copy()
    q, _, _ = calc.q_data(rows, mu_a, None)
    qa, _, _ = calc.q_asimov(rows, mu_a, None)
    cls, _, _ = cls_asymptotic(q, qa, test_stat)
    return cls, _expected_cls(qa)


def _hypotest_q0(
    model: CompiledModel, main: Array, aux: Params | None, widx: Any
) -> tuple[Array, Array]:
    """p0 and its expected band (pyhf's AsymptoticCalculator with ``test_stat="q0"``)."""
    main = np.atleast_2d(np.asarray(main, dtype=float))
    n = main.shape[0]
    w = model._widx(n, None if widx is None else np.asarray(widx))
    aux = model.nominal_aux(n, w) if aux is None else aux
    q0 = profile_statistic(model, 0.0, "q0", main, aux, w)
    # Asimov data at the conditional fit with mu = 1 to the data; mu^ = 1 on them
    p1 = fit(model, main, aux, fixed_poi=1.0, widx=w).params
    main_a = expected_main(model, p1, w)
    aux_a = model.asimov_aux(p1, w)
    nll_a = twice_nll(model, p1, main_a, aux_a, w)
    c0 = fit(model, main_a, aux_a, fixed_poi=0.0, widx=w, init=p1)
    q0a = np.maximum(c0.twice_nll - nll_a, 0.0)
    sa = np.sqrt(q0a)
    p0 = norm.sf(np.sqrt(q0))
    nsig = -np.asarray(NSIGMA)
    return p0, norm.sf(nsig[None, :] + sa[:, None])


def profile_statistic(
    model: CompiledModel,
    mu: float | Array,
    test_stat: str = "qtilde",
    main: Array | None = None,
    aux: Params | None = None,
    widx: Any = None,
) -> Array:
    """q~_mu, q_mu or q0 of N datasets, as pyhf's ``qmu_tilde``, ``qmu`` and ``q0``.

    ``q~_mu`` and ``q_mu`` are both ``2 [nll(mu, theta^^) - nll(mu^, theta^)]`` (0 where
    ``mu^ > mu``) with the POI bounds of the model: they differ only in their asymptotic
    distribution (a lower POI bound of 0 makes ``q_mu`` the ``q~_mu`` of pyhf). ``q0`` is the
    same ratio at ``mu = 0``, set to 0 where ``mu^ < 0``.
    """
    _check_test_stat(test_stat)
    if main is None:
        main = model.observed
    main = np.atleast_2d(np.asarray(main, dtype=float))
    n = main.shape[0]
    w = model._widx(n, None if widx is None else np.asarray(widx))
    aux = model.nominal_aux(n, w) if aux is None else aux
    free = fit(model, main, aux, widx=w)
    mu_a = np.zeros(n) if test_stat == "q0" else np.broadcast_to(np.asarray(mu, float), (n,))
    cond = fit(model, main, aux, fixed_poi=mu_a, widx=w, init=free.params)
    t = np.maximum(cond.twice_nll - free.twice_nll, 0.0)
    muhat = free.params.g[:, model.poi_index]
    if test_stat == "q0":
        return np.where(muhat < 0.0, 0.0, t)
    return np.where(muhat > mu_a, 0.0, t)


def qtilde(
    model: CompiledModel,
    mu: float | Array,
    main: Array | None = None,
    aux: Params | None = None,
    widx: Any = None,
) -> Array:
    """The test statistic q~_mu of N datasets (pyhf's ``qmu_tilde``)."""
    if main is None:
        main = model.observed
    main = np.atleast_2d(np.asarray(main, dtype=float))
    n = main.shape[0]
    w = model._widx(n, None if widx is None else np.asarray(widx))
    aux = model.nominal_aux(n, w) if aux is None else aux
    free = fit(model, main, aux, widx=w)
    mu_a = np.broadcast_to(np.asarray(mu, dtype=float), (n,))
    cond = fit(model, main, aux, fixed_poi=mu_a, widx=w, init=free.params)
    t = np.maximum(cond.twice_nll - free.twice_nll, 0.0)
    return np.where(free.params.g[:, model.poi_index] > mu_a, 0.0, t)


# ---------------------------------------------------------------------------- toys
def sample_toys(
    model: CompiledModel, params: Params, ntoys: int, rng: np.random.Generator, widx: Any = None
) -> tuple[Array, Params]:
    """Pseudo-experiments at ``params`` (one parameter set): Poisson main data, Gaussian
    auxiliary data around the parameter values (width sigma) and Poisson auxiliary counts with
    mean ``gamma * tau`` for shapesys, as pyhf's ``make_pdf().sample``.

    Returns main (ntoys, B) and aux :class:`Params` (ntoys, ...)."""
    w = np.zeros(1, dtype=np.intp) if widx is None else np.asarray([widx]).ravel()[:1]
    lam = expected_main(model, params, w)[0]
    main = rng.poisson(np.maximum(lam, 0.0), size=(ntoys, lam.size)).astype(float)
    wi = int(w[0])
    ag = params.g[0] + model.g_sigma[wi] * rng.standard_normal((ntoys, model.n_globals))
    ag = np.where(model.g_ctype == CON_GAUSS, ag, params.g[0])
    al = params.l[0] + model.l_sigma[wi] * rng.standard_normal((ntoys, *params.l.shape[1:]))
    al = np.where(model.l_present[wi] & (model.l_ctype[wi] == CON_GAUSS), al, params.l[0])
    if model.has_poisson:
        gp = model.g_ctype == CON_POISSON
        rate_g = np.maximum(params.g[0] * model.g_tau[wi], 0.0)
        ag = np.where(gp, rng.poisson(np.where(gp, rate_g, 0.0), size=ag.shape), ag)
        lp = model.l_present[wi] & (model.l_ctype[wi] == CON_POISSON)
        rate_l = np.maximum(params.l[0] * model.l_tau[wi], 0.0)
        al = np.where(lp, rng.poisson(np.where(lp, rate_l, 0.0), size=al.shape), al)
    ad = params.d[0] + model.d_sigma[wi] * rng.standard_normal((ntoys, model.n_decoupled))
    return main, Params(ag.astype(float), al.astype(float), ad)


def toy_hypotest(
    model: CompiledModel,
    mu: float,
    ntoys: int,
    rng: np.random.Generator,
    *,
    main: Array | None = None,
    aux: Params | None = None,
    w: int = 0,
) -> dict[str, Any]:
    """Toy-based CLs at ``mu`` (pyhf's ToyCalculator with q~_mu) for one workspace.

    Returns a dict with ``cls``, ``clsb``, ``clb``, the expected CLs band ``cls_expected``
    (NSIGMA order), ``q_obs`` and the sampled statistics ``q_sb``, ``q_b``.
    """
    wi = np.array([w])
    main0 = (model.observed[w] if main is None else np.asarray(main, dtype=float))[None]
    aux0 = model.nominal_aux(1, wi) if aux is None else aux
    q_obs = qtilde(model, mu, main0, aux0, wi)[0]
    sb_pars = fit(model, main0, aux0, fixed_poi=mu, widx=wi).params
    b_pars = fit(model, main0, aux0, fixed_poi=0.0, widx=wi).params
    m_sb, a_sb = sample_toys(model, sb_pars, ntoys, rng, w)
    m_b, a_b = sample_toys(model, b_pars, ntoys, rng, w)
    main_all = np.concatenate([m_sb, m_b])
    aux_all = Params(*(np.concatenate([getattr(a_sb, k), getattr(a_b, k)]) for k in "gld"))
    q_all = qtilde(model, mu, main_all, aux_all, np.full(2 * ntoys, w))
    q_sb, q_b = q_all[:ntoys], q_all[ntoys:]
    clsb = np.mean(q_sb >= q_obs)
    clb = np.mean(q_b >= q_obs)
    cls = clsb / clb if clb > 0 else math.nan
    # expected band: CLs of every background-like toy, then percentiles
    qs = np.sort(q_sb)
    qb = np.sort(q_b)
    p_sb = 1.0 - np.searchsorted(qs, q_b, side="left") / ntoys
    p_b = 1.0 - np.searchsorted(qb, q_b, side="left") / ntoys
    cls_b = p_sb / p_b
    pct = norm.cdf(np.asarray(NSIGMA)) * 100.0
    band = np.percentile(cls_b, pct)
    return {
        "cls": cls,
        "clsb": clsb,
        "clb": clb,
        "cls_expected": band,
        "q_obs": q_obs,
        "q_sb": q_sb,
        "q_b": q_b,
    }


def toy_limits(
    model: CompiledModel,
    ntoys: int,
    rng: np.random.Generator,
    *,
    level: float = LEVEL,
    scan: Array | None = None,
    npoints: int = 25,
    w: int = 0,
) -> LimitResult:
    """Toy-based CLs upper limits (observed and expected) of workspace ``w`` on a POI scan.

    The scan defaults to ``npoints`` values spanning the asymptotic limits (0.3x the -2 sigma
    to 2x the larger of observed and +2 sigma). The limit is where CLs first falls below
    ``level``, interpolating log CLs between the scan points (pyhf's ``linear_grid_scan``
    interpolates CLs linearly, which biases coarse scans upwards). Each POI value reuses the
    same random stream (common random numbers) so that CLs(mu) is smooth.
    """
    t0 = time.perf_counter()
    name = model.names[w]
    sub = model.take([w])
    if scan is None:
        asym = asymptotic_limits(sub, level=level)
        if asym.status[0] != "ok":
            return LimitResult.failed(name, asym.message[0], method="toys", ntoys=ntoys)
        lo = 0.3 * np.nanmin(asym.expected[0])
        hi = 2.0 * max(asym.observed[0], asym.expected[0, -1])
        hi = min(hi, sub.g_hi[0, sub.poi_index])
        scan = np.linspace(lo, hi, npoints)
    scan = np.asarray(scan, dtype=float)
    seed = rng.integers(2**63)
    obs, exp = [], []
    for mu in scan:
        res = toy_hypotest(sub, float(mu), ntoys, np.random.default_rng(seed))
        obs.append(res["cls"])
        exp.append(res["cls_expected"])
    obs_a = np.asarray(obs)
    exp_a = np.asarray(exp)
    lim_obs = _crossing(scan, obs_a, level)
    lim_exp = tuple(_crossing(scan, exp_a[:, k], level) for k in range(5))
    vals = (lim_obs, *lim_exp)
    status, message = "ok", ""
    if not np.all(np.isfinite(vals)):
        status = "failed"
        message = f"workspace {name}: CLs does not cross {level} inside the toy scan"
    return LimitResult(
        name=name,
        observed=lim_obs,
        expected=lim_exp,
        method="toys",
        status=status,
        message=message,
        ntoys=ntoys,
        seconds=time.perf_counter() - t0,
        extra={"scan": scan.tolist(), "cls_obs": obs_a.tolist(), "cls_exp": exp_a.tolist()},
    )


def _crossing(x: Array, y: Array, level: float) -> float:
    """First crossing of ``y`` below ``level`` along increasing ``x`` (interpolating log y)."""
    below = np.flatnonzero(y < level)
    if below.size == 0:
        return math.nan
    i = int(below[0])
    if i == 0:
        return math.nan
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    if y1 > 0:  # CLs falls roughly exponentially: interpolate its logarithm
        y0, y1, level = math.log(y0), math.log(y1), math.log(level)
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))


def expected_limits_toys(
    model: CompiledModel,
    ntoys: int,
    rng: np.random.Generator,
    *,
    level: float = LEVEL,
    w: int = 0,
    chunk: int = 500,
) -> dict[str, Any]:
    """The PRL's expected band: asymptotic upper limits of ``ntoys`` background-only
    pseudo-experiments (main and auxiliary data sampled at the conditional ``mu = 0`` fit to the
    data, as pyhf's background-like toys), and their quantiles.

    Returns ``{"expected": (5,) quantiles at NSIGMA, "limits": (ntoys,), "failed": count}``.
    """
    sub = model.take([w])
    b_pars = fit(sub, sub.observed, fixed_poi=0.0).params
    main, aux = sample_toys(sub, b_pars, ntoys, rng)
    lims = np.empty(ntoys)
    for s in range(0, ntoys, chunk):
        sl = slice(s, min(ntoys, s + chunk))
        nsl = sl.stop - sl.start
        start = Params(*(np.repeat(getattr(b_pars, k), nsl, axis=0) for k in "gld"))
        res = asymptotic_limits(
            sub,
            main=main[sl],
            aux=Params(aux.g[sl], aux.l[sl], aux.d[sl]),
            level=level,
            expected=False,
            init=start,
        )
        lims[sl] = res.observed
    good = np.isfinite(lims)
    q = norm.cdf(np.asarray(NSIGMA))
    band = np.quantile(lims[good], q) if good.any() else np.full(5, np.nan)
    return {"expected": band, "limits": lims, "failed": int((~good).sum())}


# ---------------------------------------------------------------------------- front ends
def _compile(
    spec_or_model: Any,
    name: str | None = None,
    modifier_settings: dict[str, dict[str, str]] | None = None,
) -> CompiledModel:
    if isinstance(spec_or_model, CompiledModel):
        return spec_or_model
    return compile_workspace(spec_or_model, name=name, modifier_settings=modifier_settings)


def upper_limit(
    spec_or_model: Any,
    *,
    level: float = LEVEL,
    engine: str = "fast",
    ntoys: int = 0,
    seed: int = 0,
    name: str | None = None,
    test_stat: str = "qtilde",
    modifier_settings: dict[str, dict[str, str]] | None = None,
) -> LimitResult:
    """90% CL (``level=0.10``) upper limits of one workspace; never raises for a failed fit.

    Parameters
    ----------
    spec_or_model
        A pyhf workspace dict or a compiled model.
    engine
        ``"fast"`` (this package) or ``"pyhf"`` (``pyhf.infer.intervals.upper_limits``).
    ntoys
        0 for asymptotics, else toy-based CLs with this many toys per hypothesis and POI value.
    seed
        Seed of the toys.
    name
        Label of the result (default: the first channel's name).
    test_stat
        ``"qtilde"`` (default) or ``"q"`` (asymptotic limits only; toys use q~_mu).
    modifier_settings
        Interpolation codes as ``pyhf.Workspace.model`` (default: code4 / code4p).

    Raises
    ------
    InputError
        For a workspace outside the model class (one line naming the channel, sample or
        modifier), an unknown engine or test statistic.
    """
    t0 = time.perf_counter()
    label = name or _label(spec_or_model)
    _check_test_stat(test_stat, ("qtilde", "q"))
    if engine == "pyhf":
        if isinstance(spec_or_model, CompiledModel):
            raise InputError("the pyhf engine needs the workspace dict, not a compiled model")
        return pyhf_upper_limit(
            spec_or_model,
            level=level,
            ntoys=ntoys,
            seed=seed,
            name=label,
            test_stat=test_stat,
            modifier_settings=modifier_settings,
        )
    if engine != "fast":
        raise InputError(f"engine {engine!r} is not one of fast, pyhf")
    if ntoys > 0 and test_stat != "qtilde":
        raise InputError("toy-based limits use q~_mu only (test_stat='qtilde')")
    try:
        model = _compile(spec_or_model, label, modifier_settings)
        if ntoys > 0:
            res = toy_limits(model, ntoys, np.random.default_rng(seed), level=level)
        else:
            a = asymptotic_limits(model, level=level, test_stat=test_stat)
            res = LimitResult(
                name=model.names[0],
                observed=float(a.observed[0]),
                expected=tuple(float(v) for v in a.expected[0]),  # type: ignore[arg-type]
                status=a.status[0],
                message=a.message[0],
                mu_hat=float(a.mu_hat[0]),
                level=level,
            )
    except ZprimeError:
        raise
    except (FloatingPointError, np.linalg.LinAlgError, ValueError) as err:
        res = LimitResult.failed(label, f"workspace {label}: {err}")
    res.seconds = time.perf_counter() - t0
    return res


def _label(spec: Any) -> str:
    if isinstance(spec, CompiledModel):
        return spec.names[0]
    try:
        return str(sorted(c["name"] for c in spec["channels"])[0])
    except (KeyError, IndexError, TypeError):
        return "workspace"


def scan_limits(
    specs: Sequence[Any], *, level: float = LEVEL, names: Sequence[str] | None = None
) -> list[LimitResult]:
    """Asymptotic limits of many workspaces (a mass scan), batched by structure.

    Workspaces with the same structure are stacked and solved together. A workspace that cannot
    be read gives a failed :class:`LimitResult` at its place; nothing is dropped.
    """
    t0 = time.perf_counter()
    out: list[LimitResult | None] = [None] * len(specs)
    groups: dict[tuple, list[tuple[int, CompiledModel]]] = {}
    for i, spec in enumerate(specs):
        label = names[i] if names is not None else _label(spec)
        try:
            m = _compile(spec, label)
        except ZprimeError as err:
            out[i] = LimitResult.failed(label, str(err))
            continue
        key = (
            tuple(m.samples),
            m.nbins,
            tuple(m.g_names),
            m.kh,
            m.kg,
            m.n_decoupled,
            m.g_mask.tobytes(),
            m.lh_sig.tobytes(),
            m.st_mask.tobytes(),
            m.g_ctype.tobytes(),
            repr(m.vec_layout),
            m.histosys_code,
            m.normsys_code,
        )
        groups.setdefault(key, []).append((i, m))
    for members in groups.values():
        model = stack_models([m for _, m in members])
        res = asymptotic_limits(model, widx=np.arange(len(members)), level=level)
        for j, (i, m) in enumerate(members):
            out[i] = LimitResult(
                name=m.names[0],
                observed=float(res.observed[j]),
                expected=tuple(float(v) for v in res.expected[j]),  # type: ignore[arg-type]
                status=res.status[j],
                message=res.message[j],
                mu_hat=float(res.mu_hat[j]),
                level=level,
            )
    elapsed = time.perf_counter() - t0
    final = [r for r in out if r is not None]
    for r in final:
        r.seconds = elapsed / max(len(final), 1)
    return final
