"""Batched exact maximum-likelihood fits of a :class:`~zprime.stats.compiled.CompiledModel`.

The objective is pyhf's ``twice_nll`` (``-2 log L``) of the HistFactory model::

    -log L = sum_b [lambda_b - n_b log lambda_b + lgamma(n_b + 1)]
             + sum_c [(theta_c - a_c)^2 / (2 sigma_c^2) + log(sigma_c sqrt(2 pi))]

(Poisson main term in the continuous form of ``pyhf.tensor.numpy_backend.poisson_logpdf``,
Gaussian constraints of ``pyhf.constraints.gaussian_constraint_combined``; ``a_c`` is the
auxiliary datum), plus ``sum_p [tau_p t_p - a_p log(tau_p t_p) + lgamma(a_p + 1)]`` for the
Poisson-constrained (shapesys) parameters of ``pyhf.constraints.poisson_constraint_combined``;
normfactors and shapefactors are unconstrained. It is minimised by a damped Newton method on the
exact gradient and Hessian. Every local parameter (per-bin factors, single-bin histosys) couples
to one bin only, so the Hessian is an arrow matrix: a dense global block, one small block per
bin, and global-local couplings. Each Newton step eliminates the per-bin blocks (batched
Cholesky) and solves the Schur complement in the few global parameters, so a step costs O(B K^3
+ G^3) per fit instead of O((G + B K)^3), and is vectorised over the batch of fits (toys, POI
values, stacked workspaces).

Bounds are handled by an active set (a parameter on its bound with the gradient pointing outward
is held there for that step) and projection; a backtracking line search with Levenberg-Marquardt
damping guarantees descent far from the minimum. A fit converges when the Newton decrement
``-g . step`` drops below ``tol`` (default 1e-10 in ``-log L``), so ``twice_nll`` is exact to
~1e-9, far below pyhf's own optimiser tolerance.

Length: one solver: the batched Newton step, its Schur complement over the per-bin blocks and
the derivatives it needs share the batch layout and cannot be tested apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from zprime.stats import interp
from zprime.stats._linalg import cho_solve, cholesky, solve_lower
from zprime.stats.compiled import CON_GAUSS, CON_POISSON, KIND_FACTOR, CompiledModel, Params

__all__ = ["FitResult", "expected_main", "fit", "poi_uncertainty", "twice_nll"]

Array = NDArray[np.float64]
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _excl_prod(f: Array, axis: int) -> Array:
    """Product of all other entries along ``axis`` (no division, exact for zeros)."""
    f = np.moveaxis(f, axis, -1)
    ones = np.ones((*f.shape[:-1], 1))
    pre = np.concatenate([ones, np.cumprod(f[..., :-1], axis=-1)], axis=-1)
    suf = np.concatenate([np.cumprod(f[..., :0:-1], axis=-1)[..., ::-1], ones], axis=-1)
    return np.moveaxis(pre * suf, -1, axis)


def _symmetric(up: Array, dn: Array) -> bool:
    return bool(np.all(np.abs(up - dn) <= 1e-12 * np.maximum(np.abs(up), np.abs(dn))))


def _sum_s(a: Array, b: Array, sig: NDArray[np.bool_]) -> Array:
    """``sum_s a[:, s] * b[:, s]`` over the sample axis 1, skipping samples that no slot of
    ``b``'s last axis touches (``sig`` (K, S))."""
    out = None
    for s in np.flatnonzero(sig.any(axis=0)):
        term = a[:, s] * b[:, s]
        out = term if out is None else out + term
    if out is None:
        return np.zeros(np.broadcast_shapes(a[:, 0].shape, b[:, 0].shape))
    return out


_BATCH_ARRAYS = (
    "nominal",
    "g_lo",
    "g_hi",
    "g_sigma",
    "ns_hi",
    "ns_lo",
    "ns_coef",
    "gh_up",
    "gh_dn",
    "lh_up",
    "lh_dn",
    "l_present",
    "l_lo",
    "l_hi",
    "l_sigma",
    "g_tau",
    "l_tau",
    "l_gauss",
    "l_pois",
)


class _Batch:
    """The model arrays seen by a batch of fits (leading axis 1 when shared, else N)."""

    def __init__(self, model: CompiledModel, widx: NDArray[np.intp] | None) -> None:
        self.model = model
        self.per_elem = model.n_workspaces > 1
        derived = {
            "l_gauss": model.l_present & (model.l_ctype == CON_GAUSS),
            "l_pois": model.l_present & (model.l_ctype == CON_POISSON),
        }
        for nm in _BATCH_ARRAYS:
            arr = derived[nm] if nm in derived else getattr(model, nm)
            setattr(self, nm, arr[widx] if self.per_elem else arr)
        self.g_gauss = model.g_ctype == CON_GAUSS
        self.g_pois = model.g_ctype == CON_POISSON
        self.any_g_pois = bool(self.g_pois.any())
        self.any_l_pois = bool(np.any(derived["l_pois"]))
        self.S = model.n_samples
        self.B = model.nbins
        self.G = model.n_globals
        self.kh = model.kh
        self.kg = model.kg
        self.K = model.kh + model.kg
        self.fac_idx = np.flatnonzero(model.g_kind == KIND_FACTOR)
        self.ns_index = model.ns_index
        self.gh_index = model.gh_index
        self.g_mask = model.g_mask
        self.g_con = model.g_constrained
        self.st_mask = model.st_mask
        self.lh_sig = model.lh_sig
        # symmetric variations: code4p and code0 are exactly linear; round-off differences
        # between hi - nominal and nominal - lo (1e-16 relative) are averaged away
        self.lh_sym = _symmetric(self.lh_up, self.lh_dn)
        self.gh_sym = _symmetric(self.gh_up, self.gh_dn)
        if self.lh_sym:
            self.lh_up = 0.5 * (self.lh_up + self.lh_dn)
        if self.gh_sym:
            self.gh_up = 0.5 * (self.gh_up + self.gh_dn)
        self.hcode = interp.code4p if model.histosys_code == "code4p" else interp.code0
        self.ncode = interp.code4 if model.normsys_code == "code4" else interp.code1

    def take(self, idx: NDArray[np.intp]) -> _Batch:
        if not self.per_elem:
            return self
        new = object.__new__(_Batch)
        new.__dict__.update(self.__dict__)
        for nm in _BATCH_ARRAYS:
            setattr(new, nm, getattr(self, nm)[idx])
        return new

    # ------------------------------------------------------------------ pieces
    def factors(self, tg: Array) -> tuple[Array, Array, Array]:
        n = tg.shape[0]
        f = np.ones((n, self.G, self.S))
        f1 = np.zeros((n, self.G, self.S))
        f2 = np.zeros((n, self.G, self.S))
        fi = self.fac_idx
        if fi.size:
            m = self.g_mask[fi]
            f[:, fi, :] = np.where(m, tg[:, fi, None], 1.0)
            f1[:, fi, :] = m
        if self.ns_index.size:
            a = tg[:, self.ns_index, None]
            v, v1, v2 = self.ncode(a, self.ns_hi, self.ns_lo, self.ns_coef)
            f[:, self.ns_index] = v
            f1[:, self.ns_index] = v1
            f2[:, self.ns_index] = v2
        return f, f1, f2

    def gammas(self, tl: Array) -> tuple[Array, Array | None]:
        n = tl.shape[0]
        if self.kg == 0:
            return np.ones((n, self.S, self.B)), None
        gam = np.moveaxis(tl[:, :, self.kh :], 2, 1)  # (N, Kg, B)
        gm = np.where(self.st_mask[None, :, :, None], gam[:, :, None, :], 1.0)  # (N,Kg,S,B)
        if self.kg == 1:
            return gm[:, 0], np.ones_like(gm)
        return np.prod(gm, axis=1), _excl_prod(gm, 1)

    def shapes(self, tg: Array, tl: Array) -> tuple[Array, Any, Any, Any, Any]:
        """H = nominal + deltas (N,S,B); global deltas' d1, d2 (N,Gh,S,B); local d1, d2
        (N,S,B,Kh)."""
        h = np.broadcast_to(self.nominal, (tg.shape[0], self.S, self.B)).copy()
        g1 = g2 = l1 = l2 = None
        if self.gh_index.size:
            a = tg[:, self.gh_index, None, None]
            if self.gh_sym:
                h += np.einsum(
                    "nj,njsb->nsb",
                    tg[:, self.gh_index],
                    np.broadcast_to(self.gh_up, (tg.shape[0], *self.gh_up.shape[1:])),
                )
                g1 = np.broadcast_to(self.gh_up, (tg.shape[0], *self.gh_up.shape[1:]))
                g2 = None
            else:
                d, g1, g2 = self.hcode(a, self.gh_up, self.gh_dn)
                h += d.sum(axis=1)
        if self.kh:
            a = tl[:, None, :, : self.kh]
            if self.lh_sym:
                h += np.einsum(
                    "nbk,nsbk->nsb",
                    tl[:, :, : self.kh],
                    np.broadcast_to(self.lh_up, (tg.shape[0], *self.lh_up.shape[1:])),
                )
                l1 = self.lh_up
                l2 = None
            else:
                d, l1, l2 = self.hcode(a, self.lh_up, self.lh_dn)
                h += d.sum(axis=-1)
        return h, g1, g2, l1, l2

    def expected(self, tg: Array, tl: Array) -> Array:
        f, _, _ = self.factors(tg)
        gam, _ = self.gammas(tl)
        h, *_ = self.shapes(tg, tl)
        fs = np.prod(f, axis=1)
        return np.einsum("ns,nsb->nb", fs, gam * h)

    def constraint(self, tg: Array, tl: Array, ag: Array, al: Array) -> Array:
        """Constraint part of -log L without constants: Gaussian ``(t - a)^2 / (2 s^2)``,
        Poisson ``tau t - a log t`` (shapesys, ``a`` the auxiliary count), none."""
        cg = np.where(self.g_gauss, ((tg - ag) / self.g_sigma) ** 2, 0.0).sum(axis=1)
        cl = np.where(self.l_gauss, ((tl - al) / self.l_sigma) ** 2, 0.0).sum(axis=(1, 2))
        out = 0.5 * (cg + cl)
        if self.any_g_pois:
            out = out + _pois_term(tg, ag, self.g_tau, self.g_pois).sum(axis=1)
        if self.any_l_pois:
            out = out + _pois_term(tl, al, self.l_tau, self.l_pois).sum(axis=(1, 2))
        return out

    def con_grad_hess(self, t: Array, a: Array, which: str) -> tuple[Array, Array]:
        """Gradient and Hessian diagonal of the constraint terms of the globals (``"g"``) or
        locals (``"l"``)."""
        if which == "g":
            gauss, pois, sig, tau, anyp = (
                self.g_gauss,
                self.g_pois,
                self.g_sigma,
                self.g_tau,
                self.any_g_pois,
            )
        else:
            gauss, pois, sig, tau, anyp = (
                self.l_gauss,
                self.l_pois,
                self.l_sigma,
                self.l_tau,
                self.any_l_pois,
            )
        grad = np.where(gauss, (t - a) / sig**2, 0.0)
        hess = np.where(gauss, 1.0 / sig**2, 0.0) + 0.0 * t
        if anyp:
            safe = np.where(pois & (t > 0), t, 1.0)
            grad = grad + np.where(pois, tau - a / safe, 0.0)
            hess = hess + np.where(pois, a / safe**2, 0.0)
        return grad, hess

    def nll(self, tg: Array, tl: Array, n: Array, ag: Array, al: Array) -> Array:
        """-log L without the parameter-independent constants (inf where lambda <= 0 < n)."""
        lam = self.expected(tg, tl)
        return _main_nll(lam, n) + self.constraint(tg, tl, ag, al)

    # ------------------------------------------------------------------ derivatives
    def grad_hess(self, tg: Array, tl: Array, n: Array, ag: Array, al: Array) -> _Derivs:
        """Value, gradient and the blocks of the exact Hessian of -log L.

        Local histosys parameters only meet each other through ``w J J^T`` (their deltas are
        additive), so their block is diagonal plus rank one; staterror factors form a small
        dense block per bin; globals a dense G x G block.
        """
        nb, S, B, G, kh, kg = tg.shape[0], self.S, self.B, self.G, self.kh, self.kg
        f, f1, f2 = self.factors(tg)
        fs = np.prod(f, axis=1)  # (N,S)
        fwo = _excl_prod(f, 1)  # (N,G,S)
        gam, gam_wo = self.gammas(tl)
        h, g1, g2, l1, l2 = self.shapes(tg, tl)
        u = gam * h  # (N,S,B)
        p = fs[:, :, None] * gam  # (N,S,B)
        lam = np.einsum("ns,nsb->nb", fs, u)
        lam_safe = np.where(lam > 0, lam, 1.0)
        ratio = np.where(n > 0, n / lam_safe, 0.0)
        r = 1.0 - ratio  # dNLL/dlambda
        w = ratio / lam_safe  # n / lambda^2
        d = _Derivs()
        d.nll = _main_nll(lam, n) + self.constraint(tg, tl, ag, al)
        d.r, d.w = r, w
        a_gs = fwo * f1  # (N,G,S): d F_s / d theta_g

        # ---- globals: first derivatives of lambda_b, gradient, dense block
        jg = np.matmul(a_gs, u)  # (N,G,B)
        if self.gh_index.size:
            jg[:, self.gh_index] += np.einsum("nsb,njsb->njb", p, g1)
        d.jg = jg
        gg = np.einsum("nb,ngb->ng", r, jg)
        cgrad, chess = self.con_grad_hess(tg, ag, "g")
        gg += cgrad
        d.gg = gg
        hgg = np.matmul(jg * w[:, None, :], np.swapaxes(jg, 1, 2))
        rs = np.einsum("nb,nsb->ns", r, u)  # (N,S)
        if G > 1:
            fwo2 = np.empty((nb, G, G, S))
            for g in range(G):
                fg = f.copy()
                fg[:, g] = 1.0
                fwo2[:, g] = _excl_prod(fg, 1)
            mix = np.einsum("nghs,ngs,nhs,ns->ngh", fwo2, f1, f1, rs)
            idx = np.arange(G)
            mix[:, idx, idx] = 0.0
            hgg += mix
        diag = np.einsum("ngs,ngs,ns->ng", fwo, f2, rs)
        if self.gh_index.size:
            gi = self.gh_index
            rg = r[:, None, :] * gam  # (N,S,B)
            t_js = np.einsum("nsb,njsb->njs", rg, g1)  # (N,Gh,S)
            cross = np.matmul(a_gs, np.swapaxes(t_js, 1, 2))  # (N,G,Gh)
            hgg[:, :, gi] += cross
            hgg[:, gi, :] += np.swapaxes(cross, 1, 2)
            if g2 is not None:
                diag[:, gi] += np.einsum("ns,nsb,njsb->nj", fs, rg, g2)
        hgg[:, np.arange(G), np.arange(G)] += diag + chess
        d.hgg = hgg

        # ---- local histosys: diagonal + rank one, and couplings
        if kh:
            l1b = np.broadcast_to(l1, (nb, S, B, kh))
            v = _sum_s(p[..., None], l1b, self.lh_sig)  # d lambda_b / d alpha_k
            a = tl[:, :, :kh]
            present = self.l_present[..., :kh]
            sig = self.l_sigma[..., :kh]
            dd = np.where(present, 1.0 / sig**2, 1.0) + 0.0 * v
            if l2 is not None:
                dd = dd + r[:, :, None] * _sum_s(p[..., None], l2, self.lh_sig)
            d.v, d.dd = v, dd
            d.ga = r[:, :, None] * v + np.where(present, (a - al[:, :, :kh]) / sig**2, 0.0)
            ql = gam[..., None] * l1b  # (N,S,B,Kh)
            # r-part of alpha x global: sum_s A_gs Gamma_s d1_sk, as one batched matmul
            d.q = (
                np.matmul(a_gs, ql.reshape(nb, S, B * kh))
                .reshape(nb, G, B, kh)
                .transpose(0, 2, 3, 1)
            )
        # ---- staterror factors
        if kg:
            vm = np.where(self.st_mask[None, :, :, None], gam_wo * h[:, None], 0.0)  # (N,Kg,S,B)
            jm = np.einsum("ns,nmsb->nbm", fs, vm)  # (N,B,Kg)
            lgrad, lhess = self.con_grad_hess(tl, al, "l")
            d.gm = r[:, :, None] * jm + lgrad[..., kh:]
            hmm = jm[:, :, :, None] * (w[:, :, None] * jm)[:, :, None, :]
            if kg > 1:
                gmat = np.where(
                    self.st_mask[None, :, :, None],
                    np.moveaxis(tl[:, :, kh:], 2, 1)[:, :, None, :],
                    1.0,
                )
                for m1 in range(kg):
                    for m2 in range(m1 + 1, kg):
                        both = self.st_mask[m1] & self.st_mask[m2]
                        rest = np.ones((nb, S, B))
                        for m3 in range(kg):
                            if m3 not in (m1, m2):
                                rest = rest * gmat[:, m3]
                        val = r * np.einsum("ns,nsb->nb", fs * both, rest * h)
                        hmm[:, :, m1, m2] += val
                        hmm[:, :, m2, m1] += val
            midx = np.arange(kg)
            hmm[:, :, midx, midx] += lhess[..., kh:]
            d.hmm = hmm
            # gamma x global: w jm jg + r d2
            cmg = jm[:, :, :, None] * (w[:, :, None, None] * np.swapaxes(jg, 1, 2)[:, :, None, :])
            cross = (
                np.matmul(a_gs, vm.transpose(0, 2, 1, 3).reshape(nb, S, kg * B))
                .reshape(nb, G, kg, B)
                .transpose(0, 3, 2, 1)
            )
            if self.gh_index.size:
                gwo = np.where(self.st_mask[None, :, :, None], gam_wo, 0.0)
                cr = np.einsum("ns,nmsb,njsb->nbmj", fs, gwo, g1)
                cross[:, :, :, self.gh_index] += cr
            d.cmg = cmg + r[:, :, None, None] * cross
            d.jm = jm
            if kh:
                gwo = np.where(self.st_mask[None, :, :, None], gam_wo, 0.0)
                # r-part of alpha x gamma: sum_s F_s Gamma_s^(-m) d1_sk
                d.e = np.stack(
                    [
                        _sum_s((fs[:, :, None] * gwo[:, mm])[..., None], l1b, self.lh_sig)
                        for mm in range(kg)
                    ],
                    axis=-1,
                )
        return d


class _Derivs:
    """Value, gradient and Hessian blocks of -log L for a batch (see ``_Batch.grad_hess``)."""

    nll: Array
    r: Array
    w: Array
    jg: Array
    gg: Array
    hgg: Array
    v: Array  # (N,B,Kh) d lambda / d alpha
    dd: Array  # (N,B,Kh) diagonal of the alpha block
    ga: Array  # (N,B,Kh) gradient
    q: Array  # (N,B,Kh,G)
    e: Array  # (N,B,Kh,Kg)
    jm: Array  # (N,B,Kg)
    gm: Array  # (N,B,Kg)
    hmm: Array  # (N,B,Kg,Kg)
    cmg: Array  # (N,B,Kg,G)

    def take(self, idx: NDArray[np.intp]) -> _Derivs:
        new = _Derivs()
        for k, val in self.__dict__.items():
            new.__dict__[k] = val[idx]
        return new


def _pois_term(t: Array, a: Array, tau: Array, mask: Array) -> Array:
    """``tau t - a log t`` where ``mask`` (Poisson constraint of ``a`` with mean ``t tau``,
    without the constant ``lgamma(a + 1) - a log tau``), else 0; +inf for ``t <= 0 < a``."""
    pos = a > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        alog = np.where(pos, a * np.log(np.where(t > 0, t, 1.0)), 0.0)
    val = np.where(mask, tau * t - alog, 0.0)
    return np.where(mask & pos & (t <= 0), np.inf, val)


def _main_nll(lam: Array, n: Array) -> Array:
    pos = n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        logl = np.where(pos, n * np.log(np.where(lam > 0, lam, 1.0)), 0.0)
    out = np.sum(lam - logl, axis=-1)
    bad = np.any(pos & (lam <= 0), axis=-1)
    return np.where(bad, np.inf, out)


@dataclass
class FitResult:
    """Best-fit parameters of a batch of fits.

    Attributes
    ----------
    params
        The fitted parameters (:class:`~zprime.stats.compiled.Params`).
    twice_nll
        ``-2 log L`` at the optimum, with all constants, as pyhf's ``twice_nll`` (N,).
    converged
        Per fit: the Newton decrement fell below the tolerance (N,).
    n_iter
        Newton iterations used (N,).
    grad_g
        Gradient of ``-log L`` in the global parameters at the optimum (N, G); for a fixed-POI
        fit its POI entry is ``d(-log L_profiled)/d mu`` (envelope theorem).
    poi_sigma
        Uncertainty of the POI from the inverse Hessian (locals profiled), if requested.
    """

    params: Params
    twice_nll: Array
    converged: NDArray[np.bool_]
    n_iter: NDArray[np.int_]
    grad_g: Array | None = None
    poi_sigma: Array | None = None


def _as_batch(
    model: CompiledModel, main: Array, aux: Params | None, widx: Any
) -> tuple[Array, Params, NDArray[np.intp]]:
    main = np.atleast_2d(np.asarray(main, dtype=float))
    n = main.shape[0]
    w = model._widx(n, None if widx is None else np.asarray(widx))
    if aux is None:
        aux = model.nominal_aux(n, w)
    return main, aux, w


def expected_main(model: CompiledModel, params: Params, widx: Any = None) -> Array:
    """Expected yields per bin (N, B) of the main measurement at ``params``."""
    w = model._widx(params.n, None if widx is None else np.asarray(widx))
    return _Batch(model, w).expected(params.g, params.l)


def twice_nll(
    model: CompiledModel, params: Params, main: Array, aux: Params | None = None, widx: Any = None
) -> Array:
    """``-2 log L`` with all constants, equal to ``-2 * pyhf.Model.logpdf(pars, data)``."""
    main, aux, w = _as_batch(model, main, aux, widx)
    bt = _Batch(model, w)
    tg, tl, td = params.g, params.l, params.d
    nll = bt.nll(tg, tl, main, aux.g, aux.l)
    nll = nll + 0.5 * np.sum(((td - aux.d) / model.d_sigma[w]) ** 2, axis=1)
    nll = nll + np.sum(gammaln(main + 1.0), axis=1) - model.constraint_constant()[w]
    if bt.any_g_pois:
        nll = nll + _pois_constant(aux.g, bt.g_tau, bt.g_pois).sum(axis=1)
    if bt.any_l_pois:
        nll = nll + _pois_constant(aux.l, bt.l_tau, bt.l_pois).sum(axis=(1, 2))
    return 2.0 * nll


def _pois_constant(a: Array, tau: Array, mask: Array) -> Array:
    """``lgamma(a + 1) - a log tau`` of the Poisson constraints (continuous Poisson)."""
    return np.where(mask, gammaln(a + 1.0) - a * np.log(tau), 0.0)


def poi_uncertainty(
    model: CompiledModel, params: Params, main: Array, aux: Params | None = None, widx: Any = None
) -> Array:
    """Profiled POI uncertainty (inverse Hessian, all free parameters profiled) at ``params``."""
    main, aux, w = _as_batch(model, main, aux, widx)
    free_g = ~model.g_fixed[w]
    free_l = model.l_present[w] & ~model.l_fixed[w]
    return _poi_sigma(_Batch(model, w), params, main, aux, free_g, free_l, model.poi_index)


def fit(
    model: CompiledModel,
    main: Array,
    aux: Params | None = None,
    *,
    fixed_poi: float | Array | None = None,
    init: Params | None = None,
    widx: Any = None,
    tol: float = 1e-10,
    maxiter: int = 200,
    poi_sigma: bool = False,
    code0_restarts: bool = False,
) -> FitResult:
    """Maximum-likelihood fits of ``N`` datasets (all parameters free, or the POI fixed).

    Parameters
    ----------
    model
        The compiled model (one workspace, or ``W`` stacked ones selected by ``widx``).
    main
        Main-measurement data, (N, B) or (B,).
    aux
        Auxiliary data laid out as :class:`Params` (default: the measurement's auxdata).
    fixed_poi
        Fix the POI to this value (scalar or one per fit), as ``pyhf.infer.mle.fixed_poi_fit``.
    init
        Starting values (default: the measurement's inits, as pyhf).
    widx
        Workspace index of every fit for stacked models.
    tol
        Convergence threshold on the Newton decrement in ``-log L``.
    maxiter
        Maximum Newton iterations; a fit that has not converged by then is flagged.
    poi_sigma
        Also return the POI uncertainty from the profiled inverse Hessian.
    code0_restarts
        With histosys code0 (piecewise linear, a kink at 0) -log L can have a minimum on each
        side of the kink. By default the fit follows the minimum reached from ``init`` (the
        slope at the kink taken from the up side), as pyhf's and ROOT's fits do; with
        ``code0_restarts`` it also starts from every histosys alpha at +1 and -1 and keeps the
        lowest minimum.
    """
    main, aux, w = _as_batch(model, main, aux, widx)
    n = main.shape[0]
    bt = _Batch(model, w)
    p = model.init_params(n, w) if init is None else init.copy()
    free_g = ~model.g_fixed[w].copy()
    if fixed_poi is not None:
        p.g[:, model.poi_index] = np.broadcast_to(np.asarray(fixed_poi, dtype=float), (n,))
        free_g[:, model.poi_index] = False
    free_l = model.l_present[w] & ~model.l_fixed[w]
    # decoupled parameters: analytic optimum
    free_d = ~model.d_fixed[w]
    p.d = np.where(free_d, np.clip(aux.d, model.d_lo[w], model.d_hi[w]), p.d)
    glo, ghi = model.g_lo[w], model.g_hi[w]
    llo, lhi = model.l_lo[w], model.l_hi[w]
    p.g = np.where(free_g, np.clip(p.g, glo, ghi), p.g)
    p.l = np.where(free_l, np.clip(p.l, llo, lhi), p.l)
    if init is not None:
        # A given start can sit where some bin with data expects nothing (a free fit that put
        # every background normfactor on its zero bound and the signal on one event, then
        # reused with the POI fixed at 0): -log L is infinite there and Newton cannot move.
        # Such fits start from the measurement's inits instead.
        bad = ~np.isfinite(bt.nll(p.g, p.l, main, aux.g, aux.l))
        if bad.any():
            p0 = model.init_params(n, w)
            if fixed_poi is not None:
                p0.g[:, model.poi_index] = p.g[:, model.poi_index]
            p.g[bad] = np.where(free_g[bad], np.clip(p0.g[bad], glo[bad], ghi[bad]), p.g[bad])
            p.l[bad] = np.where(free_l[bad], np.clip(p0.l[bad], llo[bad], lhi[bad]), p.l[bad])

    def run(tg: Array, tl: Array) -> FitResult:
        converged = np.zeros(n, dtype=bool)
        n_iter = np.zeros(n, dtype=np.int_)
        grad_g = np.zeros_like(tg)
        state = _State(bt, tg, tl, main, aux.g, aux.l, free_g, free_l, glo, ghi, llo, lhi)
        _newton(state, tol, maxiter, converged, n_iter, grad_g)
        q = Params(state.tg_full, state.tl_full, p.d)
        return FitResult(q, twice_nll(model, q, main, aux, w), converged, n_iter, grad_g)

    res = run(p.g.copy(), p.l.copy())
    if code0_restarts and model.histosys_code == "code0" and (model.gh_index.size or model.kh):
        # code0 is piecewise linear: -log L has a kink at alpha = 0 and may have a local
        # minimum on each side of it; start again with every histosys alpha at +1 and at -1
        # and keep the lower minimum of each fit
        gi = model.gh_index
        for sign in (1.0, -1.0):
            tg, tl = p.g.copy(), p.l.copy()
            tg[:, gi] = np.where(free_g[:, gi], np.clip(sign, glo[:, gi], ghi[:, gi]), tg[:, gi])
            kh = model.kh
            tl[..., :kh] = np.where(
                free_l[..., :kh], np.clip(sign, llo[..., :kh], lhi[..., :kh]), tl[..., :kh]
            )
            alt = run(tg, tl)
            better = alt.converged & (~res.converged | (alt.twice_nll < res.twice_nll))
            if better.any():
                idx = np.flatnonzero(better)
                res.params.put(idx, alt.params.take(idx))
                res.twice_nll[idx] = alt.twice_nll[idx]
                res.converged[idx] = True
                res.n_iter[idx] = alt.n_iter[idx]
                res.grad_g[idx] = alt.grad_g[idx]
    p = res.params
    if poi_sigma:
        res.poi_sigma = _poi_sigma(bt, p, main, aux, free_g, free_l, model.poi_index)
    return res


class _State:
    """Working arrays of the Newton iteration, compacted to the fits still running."""

    def __init__(self, bt, tg, tl, n, ag, al, free_g, free_l, glo, ghi, llo, lhi) -> None:
        self.bt_full = bt
        self.tg_full, self.tl_full = tg, tl
        self.full = {
            "n": n,
            "ag": ag,
            "al": al,
            "free_g": free_g,
            "free_l": free_l,
            "glo": glo,
            "ghi": ghi,
            "llo": llo,
            "lhi": lhi,
        }
        self.set_active(np.arange(tg.shape[0]))

    def set_active(self, idx: NDArray[np.intp]) -> None:
        self.idx = idx
        self.bt = self.bt_full.take(idx)
        for k, v in self.full.items():
            setattr(self, k, v[idx])
        self.tg = self.tg_full[idx]
        self.tl = self.tl_full[idx]

    def store(self) -> None:
        self.tg_full[self.idx] = self.tg
        self.tl_full[self.idx] = self.tl


def _solve(d: _Derivs, act_g, act_a, act_m, nu, kh: int, kg: int, schur_only: bool = False):
    """Damped Newton step on the structured Hessian; returns (dg, da, dm, dec, ok).

    Local histosys parameters are eliminated with Sherman-Morrison (their block is diagonal
    plus rank one), then the staterror block per bin (Cholesky), then the G x G Schur
    complement in the globals is solved. Inactive parameters (fixed, padding, or held on a
    bound) get zero step. With ``schur_only`` the undamped Schur complement is returned."""
    n, G = d.gg.shape
    w, r = d.w, d.r
    eye_g = np.eye(G, dtype=bool)
    mg = act_g[:, :, None] & act_g[:, None, :]
    hgg = np.where(mg, d.hgg, 0.0) + np.where(eye_g & ~act_g[:, :, None], 1.0, 0.0)
    gg = np.where(act_g, d.gg, 0.0)
    dgg = np.abs(np.diagonal(hgg, axis1=1, axis2=2))
    hgg = hgg + eye_g * (nu[:, None] * (dgg + 1e-12))[:, :, None]
    jgm = np.where(act_g[:, None, :], np.swapaxes(d.jg, 1, 2), 0.0)  # (N,B,G)
    ok = np.ones(n, dtype=bool)
    m = kg + G + 1
    gi = slice(kg, kg + G)
    schur = hgg.copy()
    rhs = gg.copy()
    rows = None
    if kh:
        # Eliminate the alphas. Their block is A = diag(dd) + w v v^T; the couplings to the
        # other unknowns (gammas, globals, and the gradient as last column) are
        # X = w v c^T + R. With y = v / dd and den = 1 + w v.y (Sherman-Morrison),
        # X^T A^-1 X = X^T D^-1 X - (w / den) (X^T y)(X^T y)^T. Per bin we only need the gamma
        # rows; the global rows are summed over bins with matmuls over the bin axis.
        all_a = bool(act_a.all())
        v = d.v if all_a else np.where(act_a, d.v, 0.0)
        dd = d.dd if all_a else np.where(act_a, d.dd, 1.0)
        ga = d.ga if all_a else np.where(act_a, d.ga, 0.0)
        if np.any(nu > 0):
            dd = dd + np.where(
                act_a, nu[:, None, None] * (np.abs(dd) + w[:, :, None] * v**2 + 1e-12), 0.0
            )
        ok &= np.all(dd > 0, axis=(1, 2))
        inv = 1.0 / dd
        y = v * inv
        s_vy = np.sum(v * y, axis=-1)
        den = 1.0 + w * s_vy
        ok &= np.all(den > 0, axis=1)
        den = np.where(den > 0, den, 1.0)
        nb_, bb = v.shape[0], v.shape[1]
        c = np.zeros((nb_, bb, m))
        rmat = np.empty((*v.shape, m))
        rr = r[:, :, None, None]
        if kg:
            e = d.e
            if not (all_a and act_m.all()):
                e = np.where(act_m[:, :, None, :] & act_a[..., None], e, 0.0)
            c[..., :kg] = np.where(act_m, d.jm, 0.0)
            rmat[..., :kg] = rr * e
        q = d.q
        if not (all_a and act_g.all()):
            q = np.where(act_g[:, None, None, :] & act_a[..., None], q, 0.0)
        c[..., kg : kg + G] = jgm
        rmat[..., kg : kg + G] = rr * q
        rmat[..., -1] = ga
        drm = rmat * inv[..., None]
        vdr = np.matmul(v[:, :, None, :], drm)[:, :, 0, :]  # y^T R  (N,B,m)
        xty = (w * s_vy)[..., None] * c + vdr
        cw2 = (w * w * s_vy)[..., None] * c
        cw = w[..., None] * c
        dw = (w / den)[..., None] * xty
        jj = slice(kg, m)
        cwt = np.swapaxes(cw[..., jj], 1, 2)
        glob = (
            np.matmul(np.swapaxes(cw2[..., jj], 1, 2), c[..., jj])
            + np.matmul(cwt, vdr[..., jj])
            + np.matmul(np.swapaxes(vdr[..., jj], 1, 2), cw[..., jj])
            - np.matmul(np.swapaxes(dw[..., jj], 1, 2), xty[..., jj])
        )
        rj = rmat[..., jj].reshape(nb_, bb * kh, G + 1)
        drj = drm[..., jj].reshape(nb_, bb * kh, G + 1)
        glob += np.matmul(np.swapaxes(rj, 1, 2), drj)
        schur -= glob[:, :G, :G]
        rhs -= glob[:, :G, G]
        if kg:
            rows = (
                cw2[..., :kg, None] * c[..., None, :]
                + cw[..., :kg, None] * vdr[..., None, :]
                + vdr[..., :kg, None] * cw[..., None, :]
                + np.matmul(np.swapaxes(rmat[..., :kg], 2, 3), drm)
                - dw[..., :kg, None] * xty[..., None, :]
            )  # (N,B,Kg,m)
    low_m = None
    if kg:
        eye_m = np.eye(kg, dtype=bool)
        mm = act_m[..., :, None] & act_m[..., None, :]
        hmm = np.where(mm, d.hmm, 0.0) + np.where(eye_m & ~act_m[..., :, None], 1.0, 0.0)
        dmm = np.abs(np.diagonal(hmm, axis1=2, axis2=3))
        hmm = hmm + eye_m * (nu[:, None, None] * (dmm + 1e-12))[..., None]
        cmg = np.where(act_m[..., :, None] & act_g[:, None, None, :], d.cmg, 0.0)
        gm = np.where(act_m, d.gm, 0.0)
        if rows is not None:
            hmm = hmm - rows[..., :kg]
            cmg = cmg - rows[..., gi]
            gm = gm - rows[..., -1]
        low_m, okm = cholesky(hmm)
        ok &= okm.all(axis=1)
        xm = solve_lower(low_m, cmg)  # (N,B,Kg,G)
        zm = solve_lower(low_m, gm[..., None])[..., 0]
        schur -= np.matmul(np.swapaxes(xm, 2, 3), xm).sum(axis=1)
        rhs -= np.einsum("nbkg,nbk->ng", xm, zm)
    if schur_only:
        return schur
    low_g, okg = cholesky(schur)
    ok &= okg
    dg = -cho_solve(low_g, rhs[..., None])[..., 0]
    dg = np.where(act_g, dg, 0.0)
    dec = -np.einsum("ng,ng->n", gg, dg)
    dm = da = None
    if kg:
        dm = -cho_solve(low_m, (gm + np.einsum("nbmg,ng->nbm", cmg, dg))[..., None])[..., 0]
        dm = np.where(act_m, dm, 0.0)
        dec -= np.einsum("nbm,nbm->n", np.where(act_m, d.gm, 0.0), dm)
    if kh:
        t = np.empty((nb_, bb, m))
        t[..., gi] = dg[:, None, :]
        t[..., -1] = 1.0
        if kg:
            t[..., :kg] = dm
        xt = (w * np.sum(c * t, axis=-1))[..., None] * v + np.matmul(rmat, t[..., None])[..., 0]
        ainv_xt = xt * inv - y * (w * np.sum(y * xt, axis=-1) / den)[..., None]
        da = np.where(act_a, -ainv_xt, 0.0)
        dec -= np.einsum("nbk,nbk->n", np.where(act_a, d.ga, 0.0), da)
    ok &= np.isfinite(dg).all(axis=1) & np.isfinite(dec)
    return dg, da, dm, dec, ok


def _join_local(da, dm, shape) -> Array:
    out = np.zeros(shape)
    kh = 0 if da is None else da.shape[-1]
    if da is not None:
        out[..., :kh] = da
    if dm is not None:
        out[..., kh:] = dm
    return out


def _newton(st: _State, tol: float, maxiter: int, converged, n_iter, grad_g) -> None:
    nfull = st.tg_full.shape[0]
    nu = np.zeros(nfull)
    done = np.zeros(nfull, dtype=bool)
    kh, kg = st.bt.kh, st.bt.kg
    for _it in range(maxiter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        if act.size < st.idx.size:
            st.store()
            st.set_active(act)
        nu_a = nu[act]
        d = st.bt.grad_hess(st.tg, st.tl, st.n, st.ag, st.al)
        nll = d.nll
        grad_g[act] = d.gg
        gl = np.zeros_like(st.tl)
        if kh:
            gl[..., :kh] = d.ga
        if kg:
            gl[..., kh:] = d.gm
        eps_g = 1e-12 * (1.0 + np.abs(st.glo))
        eps_l = 1e-12 * (1.0 + np.abs(st.llo))
        gg = d.gg
        pin_g = ((st.tg <= st.glo + eps_g) & (gg > 0)) | ((st.tg >= st.ghi - eps_g) & (gg < 0))
        pin_l = ((st.tl <= st.llo + eps_l) & (gl > 0)) | ((st.tl >= st.lhi - eps_l) & (gl < 0))
        act_g = st.free_g & ~pin_g
        act_l = st.free_l & ~pin_l
        act_a, act_m = act_l[..., :kh], act_l[..., kh:]
        dg, da, dm, dec, ok = _solve(d, act_g, act_a, act_m, nu_a, kh, kg)
        for _ in range(30):
            if ok.all():
                break
            bad = np.flatnonzero(~ok)
            nu_a[bad] = np.maximum(nu_a[bad] * 10.0, 1e-6)
            sub = d.take(bad)
            dg2, da2, dm2, dec2, ok2 = _solve(
                sub, act_g[bad], act_a[bad], act_m[bad], nu_a[bad], kh, kg
            )
            dg[bad], dec[bad], ok[bad] = dg2, dec2, ok2
            if da is not None:
                da[bad] = da2
            if dm is not None:
                dm[bad] = dm2
        dl = _join_local(da, dm, st.tl.shape)
        n_iter[act] += 1
        fin = np.isfinite(nll)
        conv = ok & fin & (dec < tol) & (nu_a == 0.0)
        todo = ~conv
        t = np.ones(act.size)
        accepted = np.zeros(act.size, dtype=bool)
        new_tg, new_tl = st.tg.copy(), st.tl.copy()
        for _ls in range(40):
            trial = todo & ~accepted
            if not trial.any():
                break
            sel = np.flatnonzero(trial)
            tg_t = np.clip(st.tg[sel] + t[sel, None] * dg[sel], st.glo[sel], st.ghi[sel])
            tl_t = np.clip(st.tl[sel] + t[sel, None, None] * dl[sel], st.llo[sel], st.lhi[sel])
            tg_t = np.where(st.free_g[sel], tg_t, st.tg[sel])
            tl_t = np.where(st.free_l[sel], tl_t, st.tl[sel])
            f_t = st.bt.take(sel).nll(tg_t, tl_t, st.n[sel], st.ag[sel], st.al[sel])
            good = f_t <= nll[sel] - 1e-4 * t[sel] * np.maximum(dec[sel], 0.0)
            # tiny decrements: accept any non-increase (round-off level)
            good |= (f_t <= nll[sel] + 1e-13 * np.abs(nll[sel])) & (dec[sel] < 1e3 * tol)
            acc = sel[good]
            accepted[acc] = True
            new_tg[acc], new_tl[acc] = tg_t[good], tl_t[good]
            t[sel[~good]] *= 0.5
        full_step = accepted & (t == 1.0)
        # inside Newton's quadratic region a full undamped step from a decrement below
        # sqrt(tol)/10 leaves an error of order dec^2 << tol: no need to evaluate again
        quick = full_step & (nu_a == 0.0) & (dec < 0.1 * np.sqrt(tol)) & ok & fin
        nu_a = np.where(full_step, np.where(nu_a < 1e-8, 0.0, nu_a * 0.1), nu_a)
        failed = todo & ~accepted
        nu_a = np.where(failed, np.maximum(nu_a * 10.0, 1e-4), nu_a)
        # a failed line search with a round-off-sized decrement is converged
        stuck = failed & (dec < 1e3 * tol) & fin
        st.tg, st.tl = new_tg, new_tl
        nu[act] = nu_a
        newly = conv | stuck | quick
        converged[act[newly]] = True
        done[act[newly]] = True
        done[act[nu_a > 1e12]] = True  # hopeless: flagged as not converged
    st.store()


def _poi_sigma(bt, p, main, aux, free_g, free_l, poi) -> Array:
    d = bt.grad_hess(p.g, p.l, main, aux.g, aux.l)
    act_g = free_g.copy()
    act_g[:, poi] = True
    kh = bt.kh
    schur = _solve(
        d, act_g, free_l[..., :kh], free_l[..., kh:], np.zeros(p.n), kh, bt.kg, schur_only=True
    )
    with np.errstate(all="ignore"):
        try:
            cov = np.linalg.inv(schur)
        except np.linalg.LinAlgError:
            # a parameter without any information (e.g. a free normalisation of an empty
            # template): the POI variance from the pseudo-inverse, NaN where it is undefined
            cov = np.linalg.pinv(schur)
            singular = np.linalg.matrix_rank(schur) < schur.shape[-1]
            cov[singular] = np.nan
    return np.sqrt(np.maximum(cov[:, poi, poi], 0.0))
