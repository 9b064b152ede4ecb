"""Bayesian credible upper limits: flat prior on the signal strength, nuisances marginalised.

The Belle II pilot-run analysis (PRL 124, 141801 (2020), 0.276 fb^-1) quotes 90% credibility
level upper limits computed with a flat prior on the cross section and the nuisance parameters
integrated out. For a compiled HistFactory workspace (:mod:`zprime.stats.compiled`) with POI
``mu`` (the signal cross section in fb: the signal template is the yield for ``mu = 1``) the
posterior is::

    p(mu | n) ~ prior(mu) * integral L(n | mu, theta) pi(theta) d theta,   prior(mu) flat on
                                                                              [0, mu_max]

with ``L`` the Poisson main measurement (the continuous form that :func:`engine.twice_nll`
uses) and ``pi`` the prior of the nuisance parameters. As in RooStats/HistFactory Bayesian
calculators, ``pi`` is the auxiliary-measurement likelihood times a flat prior inside the
parameter bounds: ``normsys``/``histosys``/``lumi``/``staterror`` parameters get the Gaussian
of their constraint term (centre = the auxiliary datum, width = its sigma; ``compiled.py``
constrains ``staterror`` with a Gaussian, exactly as pyhf does, so no Gamma prior is used),
truncated to the bounds; free normalisations (``normfactor`` other than the POI) a flat prior
on their bounds; fixed parameters stay at their value. The upper limit ``mu_up`` solves
``integral_0^mu_up p(mu | n) dmu = level`` (0.90).

Marginalisation (importance sampling, vectorised):

- The expected yield is linear in the POI, ``lambda_b = mu A_b(theta) + C_b(theta)``, so each
  nuisance draw costs one ``A, C`` evaluation (:func:`engine.expected_main`) and the likelihood
  on the whole mu grid is a broadcast.
- Parameters acting on one bin only (``staterror`` factors, single-bin ``histosys``; the
  "local" parameters of ``compiled.py``) are independent between bins given the others, so
  the integral factorises: ``integral = E_global[ prod_b E_local,b[ L_b ] ]``. Each bin's
  local integral is estimated from its own ``M`` draws and only the few global parameters
  (normalisations, normsys, lumi, multi-bin histosys) are sampled jointly (``N`` draws). A
  plain joint Monte Carlo over the ~100-500 parameters of a window would have a useless
  effective sample size (the weight variance grows with the number of bins).
- Both are importance-sampled from Gaussians fitted to the data, not from the priors: in the
  analysis windows the MC-statistics ``staterror`` priors are 10-50 times wider than the
  Poisson constraint of the bin, where prior sampling would waste nearly every draw. Globals:
  centre between the conditional fits at ``mu = 0`` and at a first limit estimate, width 1.5 x
  the profiled uncertainty (:func:`engine.poi_uncertainty`) plus half the shift between the
  fits, capped at the prior width. Locals: for every global draw, the Laplace approximation
  of their conditional posterior (Gauss-Newton steps per bin, prior precision plus the Poisson
  information ``n / lambda^2 J J^T``, inverted with Sherman-Morrison); a ``staterror`` factor
  gets its proposal at every mu from its exact conditional mode (see :class:`_Marginal`).
  Weights are ``prior / proposal``; draws outside the bounds get weight zero.
- The standard-normal draws are stratified (Latin hypercube per bin and slot, and over the
  globals), which makes the estimates of these nearly additive integrands far more precise
  than independent draws; the same draws are used at every mu (common random numbers), so
  ``log L(mu)`` is smooth in mu.

The marginal ``log L(mu)`` is evaluated on a uniform grid over ``[0, mu_top]`` (``mu_top``
from the likelihood at fixed nuisances, extended until the tail is ``e^-12`` below the
maximum), interpolated with a cubic spline, integrated on a fine grid; the quantile is then
refined with extra grid points around it. Expected limits are the Bayesian limits of
background-only pseudo-experiments drawn at the conditional ``mu = 0`` fit to the data (main
and auxiliary data, :func:`limits.sample_toys`): the median and the 2.3, 15.9, 84.1, 97.7%
quantiles over the toys; the limit on the Asimov dataset (expected data at that fit) is
reported beside it (``extra["asimov"]``).

Length: one method: the posterior, its integration over the nuisances, the toys and the scan share
the sampling state and its checks.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline
from scipy.special import logsumexp, ndtri
from scipy.stats import norm, qmc

from zprime._util import chunk_rng
from zprime.errors import ConfigError, InputError, ZprimeError
from zprime.parallel import map_tasks
from zprime.stats.compiled import CompiledModel, Params, compile_workspace
from zprime.stats.engine import expected_main, fit, poi_uncertainty
from zprime.stats.limits import NSIGMA, LimitResult, _label, sample_toys

__all__ = [
    "BAYESIAN_LEVEL",
    "BAYESIAN_LOCAL",
    "BAYESIAN_SAMPLES",
    "BAYESIAN_TOYS",
    "BayesianPosterior",
    "bayesian_limits",
    "bayesian_posterior",
    "bayesian_upper_limit",
    "scan_bayesian",
]

Array = NDArray[np.float64]

BAYESIAN_LEVEL = 0.90
"""Credibility of the upper limits (PRL 124, 141801: 90% credibility level)."""
BAYESIAN_SAMPLES = 32
"""Default joint draws ``N`` of the global nuisance parameters."""
BAYESIAN_LOCAL = 16
"""Default draws ``M`` of the local (per-bin) nuisance parameters of each bin, per global draw
(``N x M`` yield evaluations per dataset)."""
BAYESIAN_TOYS = 0
"""Default background-only pseudo-experiments for the expected limits."""

_WIDEN = 1.5  # global proposal width / profiled width (covers the posterior tails)
_WIDEN_LOCAL = 1.0  # the same for the locals of a bin (their Laplace form is near exact)
_GN_STEPS = 3  # Gauss-Newton steps to the conditional modes of the locals
_WIDEN_GAMMA = 1.3  # the conditional proposal of a staterror gamma (skewed posterior)
_N_GRID = 32  # mu grid points of the second pass (the first has half)
_N_REFINE = 8  # extra points around the quantile
_TAIL = 12.0  # the grid ends where log L is this far below its maximum
_KEEP = 40.0  # points further below the maximum carry no mass (e^-40)
_N_FINE = 4001
_MAX_ELEMENTS = 2_000_000  # per broadcast chunk (mu x globals x locals x bins)


def _check_level(level: float) -> float:
    lv = float(level)
    if not (0.0 < lv < 1.0) or not math.isfinite(lv):
        raise ConfigError(f"bayesian credibility level {level!r} must lie strictly in (0, 1)")
    return lv


def _check_samples(n_samples: int) -> int:
    if int(n_samples) != n_samples or n_samples < 2:
        raise ConfigError(f"bayesian n_samples {n_samples!r} must be an integer >= 2")
    return int(n_samples)


def _check_data(model: CompiledModel, data: Any) -> Array:
    main = np.atleast_2d(np.asarray(data, dtype=float))
    if main.ndim != 2 or main.shape[1] != model.nbins:
        raise InputError(
            f"workspace {model.name}: data have shape {np.shape(data)}, the model "
            f"{model.nbins} bins"
        )
    bad = ~np.isfinite(main) | (main < 0)
    if bad.any():
        i, b = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(
            f"workspace {model.name}: data bin {b} is negative or not finite ({main[i, b]!r})"
        )
    return main


def _as_model(spec_or_model: Any, name: str | None = None) -> CompiledModel:
    if isinstance(spec_or_model, CompiledModel):
        model = spec_or_model
    else:
        model = compile_workspace(spec_or_model, name=name)
    if model.n_workspaces != 1:
        raise InputError(
            f"workspace {model.name}: give one workspace, not {model.n_workspaces} stacked"
        )
    if not model.gaussian_constrained_bins:
        # the posterior sampling draws every per-bin parameter from its Gaussian constraint
        raise InputError(
            f"workspace {model.name}: Bayesian limits need Gaussian-constrained per-bin "
            "parameters (no shapesys, no per-bin shapefactor); use the CLs limits"
        )
    return model


def _with_poi(p: Params, poi: int, value: float | Array) -> Params:
    q = p.copy()
    q.g[:, poi] = value
    return q


def _lhs_normal(rng: np.random.Generator, shape: tuple[int, ...], axis: int) -> Array:
    """Standard normals stratified along ``axis`` (a Latin hypercube: every other index gets
    its own random permutation of the ``shape[axis]`` strata)."""
    m = shape[axis]
    moved = (*shape[:axis], *shape[axis + 1 :], m)
    strata = np.broadcast_to(np.arange(m, dtype=float), moved)
    u = (rng.permuted(strata, axis=-1) + rng.random(moved)) / m
    return np.moveaxis(ndtri(u), -1, axis)


def _qmc_normal(rng: np.random.Generator, n: int, dim: int) -> Array:
    """Standard normals from a scrambled Sobol' sequence (randomised quasi-Monte Carlo)."""
    with warnings.catch_warnings():  # n not a power of 2: still a valid (less balanced) set
        warnings.filterwarnings("ignore", message=".*balance properties.*", category=UserWarning)
        u = qmc.Sobol(dim, scramble=True, seed=rng).random(n)
    return ndtri(np.clip(u, 1e-12, 1 - 1e-12))


# ----------------------------------------------------------------------------- proposals
@dataclass
class _Setup:
    """Fits of N datasets of one workspace and the Gaussian proposal of their globals."""

    mu_hat: Array  # (N,) best fit
    mu_mid: Array  # (N,) POI value at which the local proposals are built
    centre: Params  # (N) proposal centres: average of the conditional fits at 0 and mu_guess
    l_shift: Array  # (N, B, K) half the change of the local fit values between the two fits
    g_free: NDArray[np.intp]  # free non-POI globals
    g_width: Array  # (N, Gf)
    mu_top: Array  # (N,) first grid end
    ok: NDArray[np.bool_]
    message: list[str]


def _proxy_range(a: Array, c: Array, n: Array, mu_max: Array) -> tuple[Array, Array]:
    """Rough (limit, grid end) from the likelihood at fixed nuisances: lambda = mu a + c."""
    s_tot = np.maximum(a.sum(axis=1), 1e-300)
    rel = np.geomspace(1e-4, 1e7, 361)
    mus = rel[None, :] / s_tot[:, None]  # (N, P)
    lam = mus[:, :, None] * a[:, None, :] + c[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.where(n[:, None, :] > 0, n[:, None, :] * np.log(lam), 0.0) - lam
    ll = np.where(np.isnan(ll), -np.inf, ll).sum(axis=2)
    imax = np.argmax(ll, axis=1)
    rows = np.arange(ll.shape[0])
    top = ll[rows, imax]
    after = np.arange(rel.size)[None, :] > imax[:, None]
    beyond = after & (ll < top[:, None] - _TAIL)
    iend = np.where(beyond.any(axis=1), np.argmax(beyond, axis=1), rel.size - 1)
    # a first limit estimate: where log L has fallen by 1.28^2 / 2 + 0.5 beyond its maximum
    past = after & (ll < top[:, None] - 1.35)
    iguess = np.where(past.any(axis=1), np.argmax(past, axis=1), iend)
    return np.minimum(mus[rows, iguess], mu_max), np.minimum(mus[rows, iend], mu_max)


def _setup(model: CompiledModel, main: Array, aux: Params) -> _Setup:
    n_data = main.shape[0]
    poi = model.poi_index
    mu_max = np.full(n_data, model.g_hi[0, poi])
    msg = [""] * n_data
    free = fit(model, main, aux, poi_sigma=True)
    f0 = fit(model, main, aux, fixed_poi=0.0, init=free.params)
    c0 = expected_main(model, _with_poi(f0.params, poi, 0.0))
    a0 = expected_main(model, _with_poi(f0.params, poi, 1.0)) - c0
    guess, mu_end = _proxy_range(a0, c0, main, mu_max)
    # the nuisances widen the posterior: a Gaussian estimate from the profiled uncertainty
    sig = free.poi_sigma if free.poi_sigma is not None else np.full(n_data, np.nan)
    gauss = free.params.g[:, poi] + 1.64 * sig
    ok_s = np.isfinite(gauss) & (gauss > 0)
    guess = np.minimum(np.where(ok_s, np.maximum(guess, gauss), guess), mu_max)
    mu_end = np.where(ok_s, np.maximum(mu_end, free.params.g[:, poi] + 5.0 * sig), mu_end)
    mu_end = np.minimum(mu_end, mu_max)
    f1 = fit(model, main, aux, fixed_poi=guess, init=f0.params)
    ok = free.converged & f0.converged & f1.converged
    for i in np.flatnonzero(~ok):
        msg[i] = f"workspace {model.name}: a fit to the data did not converge"
    if not np.any(a0 > 0):
        ok[:] = False
        msg = [f"workspace {model.name}: the signal has no expected yield"] * n_data
    p0, p1 = f0.params, f1.params
    centre = Params(0.5 * (p0.g + p1.g), 0.5 * (p0.l + p1.l), p0.d.copy())
    centre.g[:, poi] = 0.0
    active = model.l_present[0] & ~model.l_fixed[0]
    # globals: profiled (POI fixed) widths at both fits, widened, capped at the prior width
    g_free = np.flatnonzero(~model.g_fixed[0] & (np.arange(model.n_globals) != poi))
    widths = np.empty((n_data, g_free.size))
    gfix = model.g_fixed.copy()
    gfix[:, poi] = True
    for j, g in enumerate(g_free):
        sub = replace(model, poi_index=int(g), g_fixed=gfix)
        with np.errstate(all="ignore"):
            sig = np.fmax(poi_uncertainty(sub, p0, main, aux), poi_uncertainty(sub, p1, main, aux))
        shift = 0.5 * np.abs(p1.g[:, g] - p0.g[:, g])
        w = np.sqrt((_WIDEN * sig) ** 2 + shift**2)
        if model.g_constrained[g]:
            prior = model.g_sigma[0, g]
            w = np.where(np.isfinite(w) & (w > 0), np.minimum(w, prior), prior)
        else:
            span = model.g_hi[0, g] - model.g_lo[0, g]
            w = np.where(np.isfinite(w) & (w > 0), w, 0.25 * span)
        widths[:, j] = w
    return _Setup(
        mu_hat=free.params.g[:, poi].copy(),
        mu_mid=0.5 * guess,
        centre=centre,
        l_shift=0.5 * np.abs(p1.l - p0.l) * active[None],
        g_free=g_free,
        g_width=widths,
        mu_top=np.minimum(1.25 * mu_end, mu_max),
        ok=ok,
        message=msg,
    )


def _sherman_morrison(var: Array, jac: Array, w: Array) -> Array:
    """Covariance ``(diag(1/var) + w J J^T)^-1`` per bin: var, jac (..., B, K), w (..., B)."""
    dj = var * jac
    den = 1.0 + w * np.sum(jac * dj, axis=-1)
    kk = var.shape[-1]
    cov = -(w / den)[..., None, None] * dj[..., :, None] * dj[..., None, :]
    cov[..., np.arange(kk), np.arange(kk)] += var
    return cov


def _local_laplace(
    model: CompiledModel,
    g: Array,
    l0: Array,
    d: Array,
    main: Array,
    aux_l: Array,
    active: NDArray[np.bool_],
    steps: int = _GN_STEPS,
) -> tuple[Array, Array]:
    """Conditional modes of the local parameters given the globals ``g`` (R rows) and their
    Laplace covariance per bin: Gauss-Newton steps on each bin's ``K`` locals (the Poisson
    information ``n / lambda^2 J J^T`` plus the Gaussian prior), all bins and rows at once.
    Returns modes (R, B, K) and covariances (R, B, K, K). Only a proposal: its accuracy
    affects the efficiency of the sampling, not the result."""
    kk = model.n_slots
    sig = model.l_sigma[0]
    var = np.where(active, sig**2, 1.0)[None]
    lo, hi = model.l_lo[0], model.l_hi[0]
    slots = [k for k in range(kk) if active[:, k].any()]
    l = l0.copy()  # noqa: E741
    pos = main > 0

    def lam_jac(lv: Array) -> tuple[Array, Array]:
        lam = expected_main(model, Params(g, lv, d))
        jac = np.zeros(lv.shape)
        for k in slots:
            h = 1e-4 * float(np.max(sig[:, k]))
            up, dn = lv.copy(), lv.copy()
            up[:, :, k] += h
            dn[:, :, k] -= h
            jac[:, :, k] = (
                expected_main(model, Params(g, up, d)) - expected_main(model, Params(g, dn, d))
            ) / (2 * h)
        return lam, np.where(active[None], jac, 0.0)

    lam, jac = lam_jac(l)
    for _ in range(steps):
        good = (lam > 0) | ~pos
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(pos & good, main / np.where(lam > 0, lam, 1.0), 0.0)
        w = ratio / np.where(lam > 0, lam, 1.0)
        grad = (1.0 - ratio)[..., None] * jac + np.where(active[None], (l - aux_l) / var, 0.0)
        cov = _sherman_morrison(var, jac, w)
        step = -np.einsum("rbkj,rbj->rbk", cov, grad)
        new = np.where(active[None] & good[..., None], np.clip(l + step, lo, hi), l)
        lam_n, jac_n = lam_jac(new)
        ok = (lam_n > 0) | ~pos
        l = np.where(ok[..., None], new, l)  # noqa: E741
        lam = np.where(ok, lam_n, lam)
        jac = np.where(ok[..., None], jac_n, jac)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(pos & (lam > 0), main / np.where(lam > 0, lam, 1.0) ** 2, 0.0)
    return l, _sherman_morrison(var, jac, w)


# ----------------------------------------------------------------------------- the marginal
class _Marginal:
    """Importance-sampled marginal likelihood of one dataset as a function of mu.

    Globals: ``N`` joint draws from their Gaussian proposal (scrambled Sobol'). Locals: per
    global draw, the Laplace approximation of their conditional posterior (at ``mu_mid``); the
    ``histosys`` slots of a bin are drawn from it (``M`` stratified draws per bin). The
    ``staterror`` factor ``gamma`` of a bin (when the model has one staterror set) multiplies a
    part ``P`` of the bin's yield, ``lambda = gamma P + Q``: its proposal is recomputed at every
    mu and draw from the exact conditional mode (a quadratic equation) and curvature of
    ``Poisson(n | gamma P + Q) N(gamma; a, sigma)``, which follows the curved ("banana")
    posterior of ``gamma`` times a shape shift that a single Gaussian cannot.
    """

    def __init__(
        self,
        model: CompiledModel,
        setup: _Setup,
        i: int,
        main: Array,
        aux: Params,
        n_samples: int,
        n_local: int,
        rng: np.random.Generator,
    ) -> None:
        poi = model.poi_index
        self.n = main
        cen = setup.centre.take(np.array([i]))
        nb, kk = model.nbins, model.n_slots
        # globals: N joint draws from the Gaussian proposal
        gf = setup.g_free
        ng = n_samples if gf.size else 1
        g = np.repeat(cen.g, ng, axis=0)
        lw_g = np.zeros(ng)
        if gf.size:
            z = _qmc_normal(rng, ng, gf.size)
            x = cen.g[0, gf] + setup.g_width[i] * z
            g[:, gf] = x
            lo, hi = model.g_lo[0, gf], model.g_hi[0, gf]
            con = model.g_constrained[gf]
            a, s = aux.g[0, gf], model.g_sigma[0, gf]
            lp = np.where(con, -0.5 * ((x - a) / s) ** 2, 0.0)
            lw_g = np.sum(lp + 0.5 * z**2, axis=1)
            lw_g = np.where(np.all((x >= lo) & (x <= hi), axis=1), lw_g, -np.inf)
        active = model.l_present[0] & ~model.l_fixed[0]  # (B, K)
        gs = model.kh if model.kg == 1 else None  # the staterror slot handled conditionally
        self.gs = gs
        act_a = active.copy()
        if gs is not None:
            act_a[:, gs] = False
        m = n_local if active.any() else 1
        d1 = np.repeat(cen.d, ng, axis=0)
        loc = np.repeat(np.repeat(cen.l, ng, axis=0)[:, None], m, axis=1)  # (Ng, M, B, K)
        lw_l = np.zeros((ng, m, nb))
        if active.any():
            g_mid = g.copy()
            g_mid[:, poi] = setup.mu_mid[i]
            mode, cov = _local_laplace(
                model,
                g_mid,
                np.repeat(cen.l, ng, axis=0),
                d1,
                np.repeat(main[None], ng, axis=0),
                np.repeat(aux.l, ng, axis=0),
                active,
            )
            loc[:] = mode[:, None]
        if act_a.any():
            # the histosys slots: marginal (over gamma) Laplace block, widened
            keep = act_a[None, :, :, None] & act_a[None, :, None, :]
            cov = np.where(keep, _WIDEN_LOCAL**2 * cov, 0.0)
            diag = np.arange(kk)
            cov[..., diag, diag] += np.where(act_a, setup.l_shift[i] ** 2 + 1e-12, 1.0)
            chol = np.linalg.cholesky(0.5 * (cov + np.swapaxes(cov, -1, -2)))  # (Ng, B, K, K)
            z = _lhs_normal(rng, (m, nb, kk), axis=0) * act_a[None]  # (M, B, K)
            x = mode[:, None] + np.einsum("jbkl,mbl->jmbk", chol, z)  # (Ng, M, B, K)
            x = np.where(act_a, x, mode[:, None])
            lo, hi = model.l_lo[0], model.l_hi[0]
            a, s = aux.l[0], model.l_sigma[0]
            lp = np.sum(np.where(act_a, -0.5 * ((x - a) / s) ** 2, 0.0), axis=-1)
            logdet = np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)) * act_a, axis=-1)
            lw_l = lp + 0.5 * np.sum(z**2, axis=-1)[None] + logdet[:, None]  # (Ng, M, B)
            inside = np.all(((x >= lo) & (x <= hi)) | ~act_a, axis=-1)
            lw_l = np.where(inside, lw_l, -np.inf)
            loc = x
        # yields of every (global, local) pair: mu = 1 part A and mu = 0 part C, split into the
        # part under the conditional gamma (u) and the rest (v): (Ng, M, B) each
        parts = {}
        per = max(1, 200_000 // max(m * nb * model.n_samples, 1))
        gvals = [("full", None)] if gs is None else [("one", 1.0), ("zero", 0.0)]
        for key, gv in gvals:
            aa = np.empty((ng, m, nb))
            cc = np.empty((ng, m, nb))
            for j0 in range(0, ng, per):
                js = np.arange(j0, min(ng, j0 + per))
                gg = np.repeat(g[js], m, axis=0)
                ll = loc[js].reshape(js.size * m, nb, kk).copy()
                if gv is not None:
                    ll[:, :, gs] = np.where(active[:, gs], gv, ll[:, :, gs])
                dd = np.repeat(cen.d, gg.shape[0], axis=0)
                gg[:, poi] = 0.0
                c = expected_main(model, Params(gg, ll, dd))
                gg[:, poi] = 1.0
                a_ = expected_main(model, Params(gg, ll, dd)) - c
                cc[js] = c.reshape(js.size, m, nb)
                aa[js] = a_.reshape(js.size, m, nb)
            parts[key] = (aa, cc)
        if gs is None:
            self.av, self.cv = parts["full"]
            self.au = self.cu = None
        else:
            (a1, c1), (a0, c0) = parts["one"], parts["zero"]
            self.au, self.cu = a1 - a0, c1 - c0
            self.av, self.cv = a0, c0
            self.g_act = active[:, gs]
            self.g_aux = aux.l[0, :, gs]
            self.g_var = model.l_sigma[0, :, gs] ** 2
            self.g_lo, self.g_hi = model.l_lo[0, :, gs], model.l_hi[0, :, gs]
            self.z_g = _lhs_normal(rng, (m, nb), axis=0)  # (M, B)
        with np.errstate(divide="ignore"):
            self.ref = np.where(main > 0, main * np.log(np.where(main > 0, main, 1.0)), 0.0) - main
        self.lw_l = lw_l[None]  # (1, Ng, M, B)
        self.lw_g = lw_g
        self.ng, self.m = ng, m

    def _gamma(self, p: Array, q: Array) -> tuple[Array, Array]:
        """Draw the conditional gamma: returns (lambda, log weight) for yields
        ``gamma p + q``."""
        n, a, s2 = self.n, self.g_aux, self.g_var
        pos = n > 0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            t = p * s2 - a
            b = p * t + q
            c = q * t - n * p * s2
            disc = np.sqrt(np.maximum(b * b - 4.0 * p * c, 0.0))
            root = np.where(b >= 0, -2.0 * c / (b + disc), (-b + disc) / (2.0 * p))
            root = np.where(pos, root, a - p * s2)
            root = np.where(p > 0, root, a)
            lam_r = root * p + q
            curv = np.where(pos & (lam_r > 0), n * p * p / (lam_r * lam_r), 0.0) + 1.0 / s2
            sd = 1.0 / np.sqrt(curv)
            # a mode below the lower bound: the posterior decays from the bound with slope r
            low = root < self.g_lo
            r = np.abs(
                np.where(pos, n * p / np.maximum(self.g_lo * p + q, 1e-300), 0.0)
                - p
                - (self.g_lo - a) / s2
            )
            r = np.maximum(r, 1.0 / np.sqrt(s2))
            root = np.where(low, self.g_lo + 1.0 / r, root)
            sd = np.where(low, 1.0 / r, _WIDEN_GAMMA * sd)
            z = self.z_g
            gam = root + sd * z
            lam = gam * p + q
            lw = -0.5 * (gam - a) ** 2 / s2 + 0.5 * z * z + np.log(sd)
            lw = np.where((gam >= self.g_lo) & (gam <= self.g_hi), lw, -np.inf)
        act = self.g_act
        return np.where(act, lam, q + p), np.where(act, lw, 0.0)

    def _per_global(self, mu: Array) -> Array:
        """log of prod_b mean_k w_bk L_b(mu) per global draw: (len(mu), N_g)."""
        mu = np.asarray(mu, dtype=float)
        out = np.empty((mu.size, self.ng))
        nel = self.ng * self.m * self.n.size
        step = max(1, _MAX_ELEMENTS // max(nel, 1))
        n = self.n
        pos = n > 0
        for s0 in range(0, mu.size, step):
            mus = mu[s0 : s0 + step, None, None, None]
            q = mus * self.av[None] + self.cv[None]
            if self.au is None:
                lam, lw = q, 0.0
            else:
                lam, lw = self._gamma(mus * self.au[None] + self.cu[None], q)
            with np.errstate(divide="ignore", invalid="ignore"):
                ll = np.where(pos, n * np.log(lam), 0.0) - lam
            bad = (lam < 0) | (pos & (lam <= 0))
            ll = np.where(bad | np.isnan(ll), -np.inf, ll) + (self.lw_l - self.ref) + lw
            mx = ll.max(axis=2, keepdims=True)
            mx = np.where(np.isfinite(mx), mx, 0.0)
            with np.errstate(divide="ignore"):
                per_bin = np.log(np.mean(np.exp(ll - mx), axis=2)) + mx[:, :, 0, :]
            out[s0 : s0 + step] = per_bin.sum(axis=2)
        return out + self.lw_g[None]

    def log_marginal(self, mu: Array) -> Array:
        """log of the marginal likelihood (up to a constant) at every mu."""
        return logsumexp(self._per_global(mu), axis=1)

    def ess(self, mu: float) -> float:
        """Effective number of global draws at ``mu`` (Kish): (sum w)^2 / sum w^2."""
        t = self._per_global(np.array([mu]))[0]
        if not np.isfinite(t).any():
            return 0.0
        w = np.exp(t - t.max())
        return float(w.sum() ** 2 / np.sum(w**2))


def _quantile(mus: Array, logl: Array, level: float) -> tuple[float, Array]:
    """The ``level`` quantile of the posterior ~ exp(logl) (flat prior) from grid values."""
    order = np.argsort(mus)
    x, y = mus[order], logl[order]
    top = np.max(y)
    keep = np.flatnonzero(y >= top - _KEEP)
    lo, hi = keep[0], keep[-1]
    x, y = x[lo : hi + 1], np.maximum(y[lo : hi + 1], top - _KEEP)
    if x.size < 2:
        return float(x[0]), np.array([x[0], x[0]])
    if x.size >= 4:
        spline = CubicSpline(x, y)
        fine = np.linspace(x[0], x[-1], _N_FINE)
        vals = np.minimum(spline(fine), top + 1.0)
    else:
        fine = np.linspace(x[0], x[-1], _N_FINE)
        vals = np.interp(fine, x, y)
    dens = np.exp(vals - vals.max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine))])
    cdf /= cdf[-1]
    q = float(np.interp(level, cdf, fine))
    return q, x


@dataclass
class BayesianPosterior:
    """The marginal posterior of the POI of one dataset on its grid.

    ``mu`` and ``log_posterior`` (up to a constant; flat prior) are the evaluated grid points,
    ``upper_limit`` the ``level`` quantile, ``ess`` the effective number of global draws at
    the limit, ``status``/``message`` as :class:`~zprime.stats.limits.LimitResult`.
    """

    upper_limit: float
    mu: Array
    log_posterior: Array
    level: float
    mu_hat: float
    ess: float
    status: str = "ok"
    message: str = ""


def _support(mus: Array, logl: Array) -> tuple[float, float, int]:
    """The grid points bracketing the region where log L is within _TAIL of its maximum, and
    how many points lie inside it."""
    inside = mus[logl >= np.max(logl) - _TAIL]
    below = mus[mus < inside[0]]
    above = mus[mus > inside[-1]]
    lo = float(below[-1]) if below.size else float(inside[0])
    hi = float(above[0]) if above.size else float(inside[-1])
    return lo, hi, int(inside.size)


def _solve(marg: _Marginal, mu_top: float, mu_max: float, level: float, name: str):
    """Grid, tail extension, quantile and refinement for one dataset."""

    def add(mus: Array, logl: Array, extra: Array) -> tuple[Array, Array]:
        mus = np.concatenate([mus, extra])
        logl = np.concatenate([logl, marg.log_marginal(extra)])
        mus, idx = np.unique(mus, return_index=True)
        return mus, logl[idx]

    # pass 1: a coarse uniform grid, extended until the tail is negligible
    mus = np.linspace(0.0, mu_top, _N_GRID // 2)
    logl = marg.log_marginal(mus)
    for _ in range(8):
        if not np.isfinite(logl).any():
            break
        if logl[-1] < np.max(logl) - _TAIL or mus[-1] >= mu_max:
            break
        mus, logl = add(mus, logl, np.linspace(mus[-1], min(2.0 * mus[-1], mu_max), 9)[1:])
    if not np.isfinite(logl).any():
        return math.nan, mus, logl, f"workspace {name}: the marginal likelihood vanishes"
    if logl[-1] >= np.max(logl) - 7.0:
        return (
            math.nan,
            mus,
            logl,
            f"workspace {name}: posterior mass beyond the POI upper bound {mu_max:.6g}; "
            "widen the POI bounds",
        )
    # zoom in while the support holds only a few points (a posterior much narrower than mu_top)
    for _ in range(6):
        lo, hi, n_in = _support(mus, logl)
        if n_in >= 6:
            break
        mus, logl = add(mus, logl, np.linspace(lo, hi, _N_GRID // 2 + 2)[1:-1])
    # pass 2: Chebyshev-Lobatto nodes on the support (dense at its ends, where log L of a
    # low-count posterior bends most), then points around the quantile
    lo, hi, _ = _support(mus, logl)
    nodes = lo + (hi - lo) * 0.5 * (1.0 - np.cos(np.pi * np.linspace(0.0, 1.0, _N_GRID)))
    mus, logl = add(mus, logl, nodes[1:-1])
    q, _ = _quantile(mus, logl, level)
    gaps = np.sort(np.abs(mus - q))
    h = gaps[min(2, gaps.size - 1)]
    mus, logl = add(mus, logl, np.linspace(max(0.0, q - 1.5 * h), q + 1.5 * h, _N_REFINE))
    q, _ = _quantile(mus, logl, level)
    return q, mus, logl, ""


def _posteriors(
    model: CompiledModel,
    main: Array,
    aux: Params | None,
    level: float,
    n_samples: int,
    n_local: int,
    rng: np.random.Generator,
) -> list[BayesianPosterior]:
    n_data = main.shape[0]
    aux = model.nominal_aux(n_data) if aux is None else aux
    setup = _setup(model, main, aux)
    mu_max = float(model.g_hi[0, model.poi_index])
    out = []
    for i in range(n_data):
        if not setup.ok[i]:
            out.append(
                BayesianPosterior(
                    math.nan,
                    np.zeros(0),
                    np.zeros(0),
                    level,
                    math.nan,
                    0.0,
                    "failed",
                    setup.message[i],
                )
            )
            continue
        aux_i = aux.take(np.array([i]))
        marg = _Marginal(model, setup, i, main[i], aux_i, n_samples, n_local, rng)
        q, mus, logl, msg = _solve(marg, float(setup.mu_top[i]), mu_max, level, model.name)
        ess = marg.ess(q) if math.isfinite(q) else 0.0
        out.append(
            BayesianPosterior(
                upper_limit=q,
                mu=mus,
                log_posterior=logl - np.max(logl) if np.isfinite(logl).any() else logl,
                level=level,
                mu_hat=float(setup.mu_hat[i]),
                ess=ess,
                status="failed" if msg else "ok",
                message=msg,
            )
        )
    return out


# ----------------------------------------------------------------------------- public API
def bayesian_posterior(
    spec_or_model: Any,
    data: Any = None,
    *,
    aux: Params | None = None,
    level: float = BAYESIAN_LEVEL,
    n_samples: int = BAYESIAN_SAMPLES,
    n_local: int = BAYESIAN_LOCAL,
    rng: np.random.Generator | None = None,
) -> list[BayesianPosterior]:
    """Marginal posteriors of the POI (flat prior) and their ``level`` upper quantiles.

    Parameters
    ----------
    spec_or_model
        A pyhf workspace dict or a one-workspace :class:`CompiledModel`.
    data
        Main-measurement counts, (B,) or (N, B) for N datasets (default: the observed data).
    aux
        Auxiliary data of the N datasets (default: the measurement's auxdata): the centres of
        the Gaussian nuisance priors.
    level
        Credibility (0.90 for 90% credibility level upper limits).
    n_samples
        Draws of the global parameters and, per bin, of the local parameters.
    rng
        Random generator of the draws (default: seeded with 0).

    Raises
    ------
    ConfigError
        ``level`` outside (0, 1), ``n_samples`` < 2.
    InputError
        Data of the wrong length, negative or not finite; an unsupported workspace.
    """
    level = _check_level(level)
    n_samples = _check_samples(n_samples)
    n_local = _check_samples(n_local)
    model = _as_model(spec_or_model)
    main = _check_data(model, model.observed if data is None else data)
    rng = np.random.default_rng(0) if rng is None else rng
    return _posteriors(model, main, aux, level, n_samples, n_local, rng)


def bayesian_upper_limit(
    spec_or_model: Any,
    data: Any = None,
    *,
    level: float = BAYESIAN_LEVEL,
    n_samples: int = BAYESIAN_SAMPLES,
    n_local: int = BAYESIAN_LOCAL,
    rng: np.random.Generator | None = None,
) -> float:
    """The ``level`` credible upper limit on the POI (flat prior on ``[0, mu_max]``, nuisances
    marginalised) of one dataset; NaN if it cannot be computed (see
    :func:`bayesian_posterior` for the message).

    The limit is in POI units: the signal cross section in fb for the analysis workspaces
    (whose signal template is the yield for 1 fb). Arguments as :func:`bayesian_posterior`.
    """
    main = None if data is None else np.asarray(data, dtype=float)
    if main is not None and main.ndim != 1:
        raise InputError(f"bayesian_upper_limit takes one dataset, got data of shape {main.shape}")
    return bayesian_posterior(
        spec_or_model, main, level=level, n_samples=n_samples, n_local=n_local, rng=rng
    )[0].upper_limit


def bayesian_limits(
    spec_or_model: Any,
    *,
    data: Any = None,
    level: float = BAYESIAN_LEVEL,
    n_samples: int = BAYESIAN_SAMPLES,
    n_local: int = BAYESIAN_LOCAL,
    ntoys: int = BAYESIAN_TOYS,
    rng: np.random.Generator | None = None,
    name: str | None = None,
) -> LimitResult:
    """Observed and expected Bayesian upper limits of one workspace as a :class:`LimitResult`.

    ``observed`` is the credible limit on ``data`` (default: the observed data); ``expected``
    the 2.3/15.9/50/84.1/97.7% quantiles (NSIGMA order) of the limits of ``ntoys``
    background-only pseudo-experiments (main and auxiliary data sampled at the conditional
    ``mu = 0`` fit to the data). With ``ntoys = 0`` the median is the limit on the Asimov
    dataset and the bands are NaN. ``extra`` holds the Asimov limit, the toy limits, the
    effective number of global draws at the observed limit and the credibility; ``level`` is
    the credibility (0.90), not a CLs threshold. Never raises for a failed fit: the result is
    then ``"failed"`` with a one-line message.
    """
    t0 = time.perf_counter()
    level = _check_level(level)
    n_samples = _check_samples(n_samples)
    n_local = _check_samples(n_local)
    if int(ntoys) != ntoys or ntoys < 0:
        raise ConfigError(f"bayesian ntoys {ntoys!r} must be an integer >= 0")
    label = name or _label(spec_or_model)
    kw: dict[str, Any] = {"method": "bayesian", "level": level, "test_stat": "posterior"}
    try:
        model = _as_model(spec_or_model, label)
    except ZprimeError as err:
        return LimitResult.failed(label, str(err), ntoys=ntoys, **kw)
    main_obs = _check_data(model, model.observed if data is None else data)
    rng = np.random.default_rng(0) if rng is None else rng
    try:
        b_fit = fit(model, main_obs, fixed_poi=0.0)
        b_pars = b_fit.params
        main_a = expected_main(model, b_pars)
        mains = [main_obs, main_a]
        auxs = [model.nominal_aux(1), b_pars.copy()]
        if ntoys:
            tm, ta = sample_toys(model, b_pars, int(ntoys), rng)
            mains.append(tm)
            auxs.append(ta)
        main_all = np.concatenate(mains)
        aux_all = Params(*(np.concatenate([getattr(a, k) for a in auxs]) for k in "gld"))
        post = _posteriors(model, main_all, aux_all, level, n_samples, n_local, rng)
    except (FloatingPointError, np.linalg.LinAlgError, ValueError) as err:
        if isinstance(err, ZprimeError):
            raise
        res = LimitResult.failed(label, f"workspace {label}: {err}", ntoys=ntoys, **kw)
        res.seconds = time.perf_counter() - t0
        return res
    obs, asimov, toys = post[0], post[1], post[2:]
    toy_lims = np.array([p.upper_limit for p in toys])
    good = np.isfinite(toy_lims)
    if ntoys:
        if good.sum() >= max(1, 0.5 * ntoys):
            expected = np.quantile(toy_lims[good], norm.cdf(np.asarray(NSIGMA)))
        else:
            expected = np.full(5, np.nan)
    else:
        expected = np.array([np.nan, np.nan, asimov.upper_limit, np.nan, np.nan])
    status, message = obs.status, obs.message
    if status == "ok" and ntoys and not np.all(np.isfinite(expected)):
        status = "failed"
        failed = next((p.message for p in toys if p.message), "")
        message = f"workspace {label}: most background-only toys failed ({failed})"
    res = LimitResult(
        name=model.names[0],
        observed=obs.upper_limit if status == "ok" else math.nan,
        expected=tuple(float(v) for v in expected),  # type: ignore[arg-type]
        status=status,
        message=message,
        mu_hat=obs.mu_hat,
        ntoys=int(ntoys),
        extra={
            "asimov": asimov.upper_limit,
            "toy_limits": toy_lims.tolist(),
            "toys_failed": int((~good).sum()),
            "ess_global": obs.ess,
            "n_samples": n_samples,
            "n_local": n_local,
            "credibility": level,
        },
        **kw,
    )
    if status != "ok":
        res.expected = (math.nan,) * 5  # type: ignore[assignment]
    res.seconds = time.perf_counter() - t0
    return res


def _scan_one(
    task: tuple[int, Any, str, Any], *, level, n_samples, n_local, ntoys, seed
) -> LimitResult:
    i, spec, label, data = task
    return bayesian_limits(
        spec,
        data=data,
        level=level,
        n_samples=n_samples,
        n_local=n_local,
        ntoys=ntoys,
        rng=chunk_rng(seed, i),
        name=label,
    )


def scan_bayesian(
    specs_or_models: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
    data: Sequence[Any] | None = None,
    level: float = BAYESIAN_LEVEL,
    n_samples: int = BAYESIAN_SAMPLES,
    n_local: int = BAYESIAN_LOCAL,
    ntoys: int = BAYESIAN_TOYS,
    seed: int = 0,
    executor: Any = "serial",
    workers: int | None = None,
    progress: bool = False,
) -> list[LimitResult]:
    """Bayesian limits of many workspaces (a mass scan), one :class:`LimitResult` each, in order.

    The results have the fields of :func:`~zprime.stats.limits.scan_limits`'s (``observed``,
    ``expected`` -2..+2 sigma, ``status``, ``message``, ``mu_hat``), so a caller switches
    method with one branch. Hypothesis ``i`` draws from ``chunk_rng(seed, i)``: results do not
    depend on the executor. A workspace that cannot be read or solved gives a failed result at
    its place; nothing is dropped. ``executor``/``workers`` as :func:`zprime.parallel.map_tasks`
    (default: serial in this process).
    """
    level = _check_level(level)
    n_samples = _check_samples(n_samples)
    n_local = _check_samples(n_local)
    if int(ntoys) != ntoys or ntoys < 0:
        raise ConfigError(f"bayesian ntoys {ntoys!r} must be an integer >= 0")
    if data is not None and len(data) != len(specs_or_models):
        raise InputError(
            f"scan_bayesian: {len(data)} datasets for {len(specs_or_models)} workspaces"
        )
    tasks = [
        (
            i,
            spec,
            names[i] if names is not None else _label(spec),
            None if data is None else data[i],
        )
        for i, spec in enumerate(specs_or_models)
    ]
    fn = partial(
        _scan_one, level=level, n_samples=n_samples, n_local=n_local, ntoys=int(ntoys), seed=seed
    )
    return map_tasks(
        fn,
        tasks,
        executor=executor,
        workers=workers,
        description="bayesian limits" if progress else None,
        progress=progress,
    )
