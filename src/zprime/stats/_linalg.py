"""Batched Cholesky factorisation and solves for many small matrices (last two axes).

numpy's ``linalg`` routines loop over the batch in C but pay a per-matrix overhead that dominates
for 2x2..8x8 matrices, and ``cholesky`` raises for the whole batch if one matrix is not positive
definite. These loops run over the (small) matrix dimension instead and vectorise over the batch,
returning a per-matrix success flag.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def cholesky(a: Array, rel_eps: float = 1e-13) -> tuple[Array, NDArray[np.bool_]]:
    """Lower Cholesky factors of ``a`` (..., K, K) and a flag (...) that the matrix is
    positive definite (every pivot above ``rel_eps`` times its diagonal element)."""
    k = a.shape[-1]
    low = np.zeros_like(a)
    ok = np.ones(a.shape[:-2], dtype=bool)
    for j in range(k):
        s = a[..., j, j] - np.einsum("...i,...i->...", low[..., j, :j], low[..., j, :j])
        good = s > rel_eps * np.abs(a[..., j, j]) + 1e-300
        ok &= good
        d = np.sqrt(np.where(good, s, 1.0))
        low[..., j, j] = d
        if j + 1 < k:
            rest = a[..., j + 1 :, j] - np.einsum(
                "...ri,...i->...r", low[..., j + 1 :, :j], low[..., j, :j]
            )
            low[..., j + 1 :, j] = rest / d[..., None]
    return low, ok


def solve_lower(low: Array, b: Array) -> Array:
    """Solve ``L x = b`` for lower-triangular ``L`` (..., K, K) and ``b`` (..., K, R)."""
    k = low.shape[-1]
    x = np.empty(np.broadcast_shapes((*low.shape[:-2], k), b.shape[:-1]) + b.shape[-1:])
    for i in range(k):
        acc = b[..., i, :]
        if i:
            acc = acc - np.einsum("...j,...jr->...r", low[..., i, :i], x[..., :i, :])
        x[..., i, :] = acc / low[..., i, i, None]
    return x


def solve_upper_t(low: Array, b: Array) -> Array:
    """Solve ``L^T x = b`` for lower-triangular ``L`` (..., K, K) and ``b`` (..., K, R)."""
    k = low.shape[-1]
    x = np.empty(np.broadcast_shapes((*low.shape[:-2], k), b.shape[:-1]) + b.shape[-1:])
    for i in range(k - 1, -1, -1):
        acc = b[..., i, :]
        if i + 1 < k:
            acc = acc - np.einsum("...j,...jr->...r", low[..., i + 1 :, i], x[..., i + 1 :, :])
        x[..., i, :] = acc / low[..., i, i, None]
    return x


def cho_solve(low: Array, b: Array) -> Array:
    """Solve ``A x = b`` given the Cholesky factor of ``A``; ``b`` is (..., K, R)."""
    return solve_upper_t(low, solve_lower(low, b))
