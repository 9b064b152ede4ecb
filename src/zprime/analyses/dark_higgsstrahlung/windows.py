"""Rotated elliptical search windows of the dark Higgsstrahlung search in the (M_mumu, M_recoil)
plane: the window of one simulated signal point, their interpolation across the (M_A', M_h')
plane, the hypothesis grid, and counting events in thousands of windows.

The talk (``shared/papers/talk-2022-dark-sector-belle2.md``) says "~9000 rotated elliptical mass
windows to test signal hypotheses" in the plane of M_recoil vs M_mumu; sizes, shapes and
spacing are not public, so the choices below are ours and say why.

This module owns:

- :class:`EllipseWindow` (one window: centre, semi-axes ``a >= b``, angle of ``a`` to the
  M_mumu axis) and :class:`EllipseWindows` (many, as arrays);
- :func:`robust_core` / :func:`fit_window`: the window of one simulated point from its selected
  signal events;
- :class:`WindowInterpolator`: windows and efficiencies at any hypothesis from the simulated
  points;
- :func:`hypothesis_grid`: the (M_A', M_h') hypotheses;
- :func:`count_in_windows` (exact), :func:`membership_matrix`, :func:`histogram_cells` and
  :func:`cell_size` (the sparse windows x cells path used for toys).

Window shape
------------
Muon-momentum smearing moves M_mumu and the recoil energy, hence M_recoil, together, so the
signal core is a tilted ellipse; initial-state radiation adds a tail to high M_recoil that the
window should leave out. The core's centre and covariance are an *iteratively trimmed*
estimate: start from the weighted medians and MADs, then repeatedly take the weighted mean and
covariance of the events within Mahalanobis distance ``trim`` (2.5) of the current estimate,
multiplied by the consistency factor ``P(chi2_2 <= c^2) / P(chi2_4 <= c^2)`` that makes the
trimmed covariance of a bivariate Gaussian equal its covariance (the reweighting step of the
minimum covariance determinant estimator, C. Croux and G. Haesbroeck, J. Multivariate Anal. 71
(1999) 161; P. J. Rousseeuw and K. Van Driessen, Technometrics 41 (1999) 212). Events beyond
2.5 core sigma have no say; tail events inside that radius still widen the core a little (a 20%
exponential tail of scale 3 sigma along M_recoil: minor axis +5%, major +0.3%; a 10% tail:
+2%; a trim of 2.0 halves that at twice the statistical noise). The window is the ``k``-sigma
ellipse of that covariance.

Default size :data:`DEFAULT_K` = 2.0, from a toy: a bivariate Gaussian core holding 85% of the
signal plus a 15% ISR tail (exponential, scale 3 sigma, to high M_recoil) on a flat background
with ``B1`` events inside the 1-sigma ellipse (``B1 k^2`` inside the window); figure of merit
the expected 90% credible upper limit (:func:`zprime.stats.counting.credible_upper_limits`,
averaged over the Poisson background-only count: the mean is smooth in ``k`` where the median
jumps with the discrete count). The best ``k`` falls with the background: 3.25 at ``B1 = 0.01``
(background-free, the limit is 2.3 / efficiency), 2.45 at 0.1, 2.2 at 0.3, 2.0 at 1, 1.85 at 3,
1.75 at 10, 1.65 at 100 (towards 1.59, the ``s / sqrt(b)`` optimum of a 2-d Gaussian).
``k = 2.0`` minimises the largest loss over ``B1`` from 0.1 to 100: at most 3.6% above the best
expected limit (k = 1.8: 8.9%, 2.2: 6.4%); nearly background-free windows (``B1 <= 0.03``) lose
9 to 14% (``test_default_k_minimises_the_worst_expected_limit`` repeats the scan coarsely).

Interpolation
-------------
:class:`WindowInterpolator` interpolates, piecewise linearly on the Delaunay triangulation of
the simulated (M_A', M_h') points (``scipy.interpolate.LinearNDInterpolator``), the centre's
offset from the hypothesis (``centre - (M_A', M_h')``), the window's shape matrix ``S``
(``{d : d^T S^-1 d <= 1}``; its three entries) and the signal efficiency. Linear on triangles
is a convex combination of the corners: an interpolated ``S`` stays positive definite and an
efficiency stays inside the range of its neighbours (no overshoot where the simulated points
are sparse, near the edges of the triangle), which a Clough-Tocher or spline fit does not
guarantee; its error is second order in the spacing of the simulated points (bounded by
``h^2 / 8 x`` the largest second derivative on a regular grid). Interpolating ``S`` rather
than ``(a, b, angle)`` avoids the undefined angle of a round window and its wrap at
``+-pi/2``. Hypotheses outside the convex hull of the simulated points (near the kinematic edge)
take the values of the nearest simulated point and are flagged ``extrapolated``.

Hypothesis grid
---------------
Rows of constant M_A' from 1.65 to 10.51 GeV (both ends included) at equal steps of the
resolution coordinate ``u(M) = int dM / sigma_mumu`` (``sigma_mumu`` the 1-sigma core width along
M_mumu, the smallest over the row); in each row M_h' from 0 in steps of ``step x sigma_recoil``
(the core width along M_recoil) up to, not including, ``min(M_A', sqrt(s) - M_A')``. The default
``step = 1`` (one core width, the spacing of the invisible Z' search's scan: PRL 130, 231801,
"steps corresponding to one unit of signal resolution") keeps neighbouring windows (half-widths
``k = 2`` core widths) overlapping by three quarters of their width; a signal midway between
four hypotheses is offset by half a width in each direction, and its best window keeps 92% of
what a centred window would have (an untilted Gaussian core, k = 2; more for a tilted one,
whose nearest of the four windows is closer in Mahalanobis distance). Vetoed M_A' intervals (J/psi,
psi(2S), Upsilon(1S-3S), from the physics module) remove whole rows.

Counting
--------
:func:`count_in_windows` is exact: the events are sorted into narrow M_mumu columns (a quarter
of the smallest window's half-width), and by M_recoil inside each column; for every window and
every column it crosses, the events between the ellipse's lowest and highest point over that
column are one contiguous slice (binary search), and only those candidates are tested against
the ellipse. The candidates are about 1.07 times the events inside; chunks hold at most
``max_pairs`` (2^19) candidate pairs. Measured (one core): 8421 windows (``k = 2``, tilted, a
grid of the tests' illustrative width model) and 1e6 weighted events in 0.6 s, peak memory 68
MB above the inputs (``tracemalloc``): about 40 bytes per event for the sort, the rest for
one chunk of candidates.

The sparse path (:func:`histogram_cells` -> :func:`membership_matrix` -> ``M @ cells``) moves each
event to the centre of its cell (uniform cells, only occupied ones kept, so no dense array);
windows are then counted from cell centres. With cells of a tenth of the smallest minor
semi-axis (:func:`cell_size`, ``per_axis=10``; 0.8 MeV for the grid above: 1e6 events fill
1e6 cells, 6e6 memberships, built in 2 s), the expected counts of a flat density differ from
the exact ones by at most 0.7% (0.15 to 0.3% rms), those of the window's Gaussian core by at most
0.2% (0.05% rms); the error falls linearly with the cell size. On top of that, with few
events, each event within half a cell of the edge can fall on the wrong side (a Poisson-like
difference of a fraction of the edge events). The exact counter is the one for data and
simulation; the sparse path is for toys (:func:`zprime.stats.counting.max_local_z_toys`).

Length: one geometry: the window type, its fit, interpolation, grid and the two counters share
the ellipse's shape matrix and bounding-box algebra.

Units: GeV.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator
from scipy.spatial import Delaunay, QhullError

from zprime.errors import ConfigError, InputError
from zprime.physics.constants import SQRT_S

__all__ = [
    "DEFAULT_K",
    "DEFAULT_STEP",
    "DEFAULT_TRIM",
    "M_A_RANGE",
    "Cells",
    "EllipseWindow",
    "EllipseWindows",
    "HypothesisGrid",
    "InterpolatedWindows",
    "WindowCounts",
    "WindowInterpolator",
    "cell_size",
    "count_in_windows",
    "fit_window",
    "histogram_cells",
    "hypothesis_grid",
    "inside_any",
    "membership_matrix",
    "robust_core",
]

Array = NDArray[np.float64]
WidthModel = Callable[[Array, Array], tuple[ArrayLike, ArrayLike]]

DEFAULT_K = 2.0
"""Window size: the ``k``-sigma ellipse of the core covariance (module docstring: minimises the
expected limit of a toy to within 3% for every background level)."""
DEFAULT_TRIM = 2.5
"""Mahalanobis radius of the trimmed core estimate (the ISR tail beyond it has no weight)."""
DEFAULT_STEP = 1.0
"""Hypothesis spacing in units of the 1-sigma core width along each axis."""
M_A_RANGE = (1.65, 10.51)
"""Scanned M_A' range in GeV (the talk: "world leading limits for 1.65 < M_A' < 10.51 GeV")."""

_MIN_EVENTS = 10
_MAX_PAIRS = 1 << 19  # candidate (window, event) pairs per chunk
_MAX_COLUMNS = 1 << 16


# ----------------------------------------------------------------------------- validation
def _points(name: str, x: ArrayLike, y: ArrayLike, weights: ArrayLike | None) -> tuple:
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.size != ya.size:
        raise InputError(f"{name}: {xa.size} M_mumu values and {ya.size} M_recoil values")
    wa = np.ones(xa.size) if weights is None else np.asarray(weights, dtype=float).ravel()
    if wa.size != xa.size:
        raise InputError(f"{name}: {wa.size} weights for {xa.size} events")
    for label, arr in (("M_mumu", xa), ("M_recoil", ya), ("weight", wa)):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{name}: {label} of event {i} is {float(arr[i])!r}")
    return xa, ya, wa


# ----------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class EllipseWindow:
    """One rotated elliptical window: centre (GeV), semi-axes ``a, b > 0`` (GeV; fitted and
    interpolated windows have ``a >= b``) and the angle of the ``a`` axis to the M_mumu axis
    (radians, in (-pi/2, pi/2])."""

    centre_x: float
    centre_y: float
    a: float
    b: float
    angle: float

    def __post_init__(self) -> None:
        for name in ("centre_x", "centre_y", "a", "b", "angle"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise InputError(f"ellipse window: {name} is {v!r}")
        if not (self.a > 0 and self.b > 0):
            raise InputError(f"ellipse window: semi-axes must be > 0, got a={self.a}, b={self.b}")

    @classmethod
    def from_covariance(
        cls, centre_x: float, centre_y: float, cov: ArrayLike, k: float = DEFAULT_K
    ) -> EllipseWindow:
        """The ``k``-sigma ellipse of the 2x2 covariance ``cov`` about the centre."""
        c = np.asarray(cov, dtype=float)
        if c.shape != (2, 2) or not np.all(np.isfinite(c)):
            raise InputError(
                f"ellipse window: covariance must be a finite 2x2 matrix, got {c.tolist()}"
            )
        k2 = k * k
        sxy = 0.5 * (c[0, 1] + c[1, 0])
        return EllipseWindows.from_shape(
            [centre_x], [centre_y], [k2 * c[0, 0]], [k2 * sxy], [k2 * c[1, 1]]
        )[0]

    @property
    def shape_matrix(self) -> Array:
        """``S`` with the window ``{d : d^T S^-1 d <= 1}`` (GeV^2)."""
        return EllipseWindows.from_windows([self]).shape_matrices()[0]

    def contains(self, x: ArrayLike, y: ArrayLike) -> NDArray[np.bool_]:
        """Whether the points ``(x, y)`` (any broadcastable shapes) lie inside or on the edge."""
        dx = np.asarray(x, dtype=float) - self.centre_x
        dy = np.asarray(y, dtype=float) - self.centre_y
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = (dx * c + dy * s) / self.a
        v = (-dx * s + dy * c) / self.b
        return u * u + v * v <= 1.0


@dataclass(frozen=True, eq=False)
class EllipseWindows:
    """``W`` windows as arrays (fields as :class:`EllipseWindow`)."""

    centre_x: Array
    centre_y: Array
    a: Array
    b: Array
    angle: Array

    def __post_init__(self) -> None:
        arrays = [np.atleast_1d(np.asarray(getattr(self, f), dtype=float)) for f in _FIELDS]
        sizes = {a.size for a in arrays}
        if len(sizes) != 1 or any(a.ndim != 1 for a in arrays):
            raise InputError(f"ellipse windows: fields of different lengths {sorted(sizes)}")
        for name, arr in zip(_FIELDS, arrays, strict=True):
            bad = ~np.isfinite(arr)
            if name in ("a", "b"):
                bad |= arr <= 0
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(f"ellipse window {i}: {name} is {float(arr[i])!r}")
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.a.size)

    def __getitem__(self, i: int) -> EllipseWindow:
        return EllipseWindow(*(float(getattr(self, f)[i]) for f in _FIELDS))

    def take(self, idx: ArrayLike) -> EllipseWindows:
        """The windows ``idx`` (indices or a boolean mask)."""
        return EllipseWindows(*(getattr(self, f)[idx] for f in _FIELDS))

    @classmethod
    def from_windows(cls, windows: Sequence[EllipseWindow]) -> EllipseWindows:
        """Stack single windows."""
        return cls(*(np.array([getattr(w, f) for w in windows], dtype=float) for f in _FIELDS))

    @classmethod
    def from_shape(
        cls,
        centre_x: ArrayLike,
        centre_y: ArrayLike,
        s_xx: ArrayLike,
        s_xy: ArrayLike,
        s_yy: ArrayLike,
    ) -> EllipseWindows:
        """Windows ``{d : d^T S^-1 d <= 1}`` from the entries of ``S`` (closed-form
        eigen-decomposition of the 2x2 matrices)."""
        sxx, sxy, syy = (np.asarray(v, dtype=float) for v in (s_xx, s_xy, s_yy))
        det = sxx * syy - sxy * sxy
        bad = ~np.isfinite(det) | (det <= 0) | (sxx <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"ellipse window {i}: shape matrix [[{sxx.flat[i]:.6g}, {sxy.flat[i]:.6g}], "
                f"[{sxy.flat[i]:.6g}, {syy.flat[i]:.6g}]] is not positive definite"
            )
        half = 0.5 * (sxx + syy)
        root = np.hypot(0.5 * (sxx - syy), sxy)
        lam_hi = half + root
        lam_lo = det / lam_hi  # no cancellation for thin ellipses
        angle = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)  # of the major axis, in (-pi/2, pi/2]
        angle = np.where(angle <= -0.5 * np.pi, angle + np.pi, angle)
        return cls(centre_x, centre_y, np.sqrt(lam_hi), np.sqrt(lam_lo), angle)

    def shape_entries(self) -> tuple[Array, Array, Array]:
        """``(S_xx, S_xy, S_yy)`` of every window."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        a2, b2 = self.a**2, self.b**2
        return a2 * c * c + b2 * s * s, (a2 - b2) * c * s, a2 * s * s + b2 * c * c

    def shape_matrices(self) -> Array:
        """``S`` of every window, shape (W, 2, 2)."""
        sxx, sxy, syy = self.shape_entries()
        return np.stack([np.stack([sxx, sxy], -1), np.stack([sxy, syy], -1)], -2)

    def _inverse(self) -> tuple[Array, Array, Array]:
        """Entries ``(A, B, C)`` of ``S^-1``: inside iff ``A dx^2 + 2 B dx dy + C dy^2 <= 1``."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        ia, ib = 1.0 / self.a**2, 1.0 / self.b**2
        return ia * c * c + ib * s * s, (ia - ib) * c * s, ia * s * s + ib * c * c

    def half_widths(self) -> tuple[Array, Array]:
        """Half-widths of the bounding boxes along M_mumu and M_recoil."""
        sxx, _, syy = self.shape_entries()
        return np.sqrt(sxx), np.sqrt(syy)

    def contains(self, x: ArrayLike, y: ArrayLike) -> NDArray[np.bool_]:
        """Membership of N points in every window, shape (W, N) (for small cases: W x N
        booleans; use :func:`count_in_windows` or :func:`membership_matrix` for large ones)."""
        xa = np.atleast_1d(np.asarray(x, dtype=float))[None, :]
        ya = np.atleast_1d(np.asarray(y, dtype=float))[None, :]
        aa, bb, cc = (v[:, None] for v in self._inverse())
        dx = xa - self.centre_x[:, None]
        dy = ya - self.centre_y[:, None]
        return aa * dx * dx + 2.0 * bb * dx * dy + cc * dy * dy <= 1.0


_FIELDS = ("centre_x", "centre_y", "a", "b", "angle")


# ----------------------------------------------------------------------------- fit
def _weighted_median(v: Array, w: Array) -> float:
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cw, 0.5 * cw[-1])])


def _consistency(trim: float) -> float:
    """``P(chi2_2 <= c^2) / P(chi2_4 <= c^2)``: trimmed -> full covariance of a 2-d Gaussian."""
    h = 0.5 * trim * trim
    return -math.expm1(-h) / (1.0 - math.exp(-h) * (1.0 + h))


def robust_core(
    x: ArrayLike,
    y: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    trim: float = DEFAULT_TRIM,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> tuple[Array, Array]:
    """Centre and covariance of the core of a 2-d distribution (iteratively trimmed at
    Mahalanobis distance ``trim``, consistency-corrected; see the module docstring).

    Parameters
    ----------
    x, y
        M_mumu and M_recoil of the selected signal events (GeV).
    weights
        Event weights (>= 0; default 1).
    trim
        Trimming radius in core standard deviations (> 1).
    max_iter, tol
        The iteration stops when the centre moves by less than ``tol`` core widths and the
        covariance changes by less than ``tol`` relative, or after ``max_iter`` steps (with a
        hard boundary it may end cycling between subsets that differ by a few events).

    Returns
    -------
    centre : ndarray, shape (2,)
    cov : ndarray, shape (2, 2)

    Raises
    ------
    InputError
        NaN or infinite values, negative weights, fewer than 10 weighted events, a degenerate
        (zero-width) distribution.
    ConfigError
        ``trim <= 1``.
    """
    xa, ya, wa = _points("robust_core", x, y, weights)
    if not (math.isfinite(trim) and trim > 1.0):
        raise ConfigError(f"robust_core: trim {trim!r} must be > 1 (core standard deviations)")
    if np.any(wa < 0):
        i = int(np.argmax(wa < 0))
        raise InputError(f"robust_core: weight of event {i} is negative ({float(wa[i])!r})")
    keep = wa > 0
    if np.count_nonzero(keep) < _MIN_EVENTS:
        raise InputError(
            f"robust_core: {np.count_nonzero(keep)} events with weight > 0, need {_MIN_EVENTS}"
        )
    xa, ya, wa = xa[keep], ya[keep], wa[keep]
    pts = np.stack([xa, ya], axis=1)
    centre = np.array([_weighted_median(xa, wa), _weighted_median(ya, wa)])
    mad = np.array(
        [_weighted_median(np.abs(xa - centre[0]), wa), _weighted_median(np.abs(ya - centre[1]), wa)]
    )
    scale = 1.482602218505602 * mad  # the MAD of a Gaussian is 0.6745 sigma
    if np.any(scale <= 0):
        scale = np.sqrt(np.average((pts - centre) ** 2, axis=0, weights=wa))
    if np.any(~(scale > 0)):
        raise InputError("robust_core: the events have zero spread along M_mumu or M_recoil")
    cov = np.diag(scale**2)
    kappa = _consistency(trim)
    for _ in range(max_iter):
        d = pts - centre
        inv = np.linalg.inv(cov)
        d2 = np.einsum("ni,ij,nj->n", d, inv, d)
        sel = d2 <= trim * trim
        if np.count_nonzero(sel) < _MIN_EVENTS:
            raise InputError("robust_core: fewer than 10 events in the trimmed core")
        ws = wa[sel]
        new_centre = np.average(pts[sel], axis=0, weights=ws)
        ds = pts[sel] - new_centre
        new_cov = kappa * (ds * ws[:, None]).T @ ds / ws.sum()
        if np.linalg.det(new_cov) <= 0:
            raise InputError("robust_core: the trimmed core is degenerate (collinear events)")
        moved = np.sqrt((new_centre - centre) @ np.linalg.inv(new_cov) @ (new_centre - centre))
        change = np.max(np.abs(new_cov - cov)) / np.max(np.abs(new_cov))
        centre, cov = new_centre, new_cov
        if moved < tol and change < tol:
            break
    return centre, cov


def fit_window(
    x: ArrayLike,
    y: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    k: float = DEFAULT_K,
    trim: float = DEFAULT_TRIM,
) -> EllipseWindow:
    """The window of one simulated (M_A', M_h') point: the ``k``-sigma ellipse of the trimmed
    core (:func:`robust_core`) of its selected signal events."""
    if not (math.isfinite(k) and k > 0):
        raise ConfigError(f"fit_window: window size k {k!r} must be > 0")
    centre, cov = robust_core(x, y, weights, trim=trim)
    return EllipseWindow.from_covariance(centre[0], centre[1], cov, k)


# ----------------------------------------------------------------------------- interpolation
def _check_hypotheses(m_a: ArrayLike, m_h: ArrayLike, sqrt_s: float) -> tuple[Array, Array]:
    ma = np.atleast_1d(np.asarray(m_a, dtype=float)).ravel()
    mh = np.atleast_1d(np.asarray(m_h, dtype=float)).ravel()
    if ma.size != mh.size:
        raise InputError(f"{ma.size} M_A' values and {mh.size} M_h' values")
    bad = ~np.isfinite(ma) | ~np.isfinite(mh) | (mh < 0) | (ma <= 0) | (mh >= ma)
    bad |= ma + mh >= sqrt_s
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"hypothesis (M_A', M_h') = ({float(ma[i])!r}, {float(mh[i])!r}) GeV is outside "
            f"0 <= M_h' < M_A', M_A' + M_h' < sqrt(s) = {sqrt_s:.4f} GeV"
        )
    return ma, mh


@dataclass(frozen=True, eq=False)
class InterpolatedWindows:
    """Windows and signal efficiencies at hypotheses; ``extrapolated`` marks those outside the
    convex hull of the simulated points (nearest-point values)."""

    windows: EllipseWindows
    efficiency: Array
    extrapolated: NDArray[np.bool_]


class WindowInterpolator:
    """Windows and efficiencies at any (M_A', M_h') from those of simulated points (module
    docstring: piecewise linear on the Delaunay triangulation).

    Parameters
    ----------
    m_a, m_h
        The simulated points (GeV), at least three not on a line.
    windows
        Their windows (all built with the same ``k``).
    efficiency
        Their signal efficiencies inside the windows (any per-point scalar).
    k
        The size the windows were built with (for :meth:`widths`).
    sqrt_s
        Centre-of-mass energy bounding the hypotheses (GeV).
    """

    def __init__(
        self,
        m_a: ArrayLike,
        m_h: ArrayLike,
        windows: EllipseWindows | Sequence[EllipseWindow],
        efficiency: ArrayLike,
        *,
        k: float = DEFAULT_K,
        sqrt_s: float = SQRT_S,
    ) -> None:
        ma = np.asarray(m_a, dtype=float).ravel()
        mh = np.asarray(m_h, dtype=float).ravel()
        win = (
            windows if isinstance(windows, EllipseWindows) else EllipseWindows.from_windows(windows)
        )
        eff = np.asarray(efficiency, dtype=float).ravel()
        if not (ma.size == mh.size == len(win) == eff.size):
            raise InputError(
                f"window interpolator: {ma.size} M_A', {mh.size} M_h', {len(win)} windows and "
                f"{eff.size} efficiencies"
            )
        for name, arr in (("M_A'", ma), ("M_h'", mh), ("efficiency", eff)):
            bad = ~np.isfinite(arr)
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(f"window interpolator: {name} of point {i} is {float(arr[i])!r}")
        if not (math.isfinite(k) and k > 0):
            raise ConfigError(f"window interpolator: k {k!r} must be > 0")
        self.k = float(k)
        self.sqrt_s = float(sqrt_s)
        self.points = np.stack([ma, mh], axis=1)
        sxx, sxy, syy = win.shape_entries()
        self.values = np.stack([win.centre_x - ma, win.centre_y - mh, sxx, sxy, syy, eff], axis=1)
        try:
            tri = Delaunay(self.points)
        except (QhullError, ValueError) as err:
            raise InputError(
                f"window interpolator: the {ma.size} simulated points do not span the plane "
                f"({str(err).splitlines()[0]})"
            ) from None
        self._linear = LinearNDInterpolator(tri, self.values)
        self._nearest = NearestNDInterpolator(self.points, self.values)

    def _values(self, m_a: ArrayLike, m_h: ArrayLike) -> tuple[Array, Array, Array, NDArray]:
        ma, mh = _check_hypotheses(m_a, m_h, self.sqrt_s)
        q = np.stack([ma, mh], axis=1)
        vals = self._linear(q)
        outside = np.isnan(vals[:, 0])
        if outside.any():
            vals[outside] = self._nearest(q[outside])
        return ma, mh, vals, outside

    def __call__(self, m_a: ArrayLike, m_h: ArrayLike) -> InterpolatedWindows:
        """Windows, efficiencies and the extrapolation flags at the hypotheses.

        Raises
        ------
        InputError
            A hypothesis outside ``0 <= M_h' < M_A'``, ``M_A' + M_h' < sqrt(s)`` or NaN.
        """
        ma, mh, v, outside = self._values(m_a, m_h)
        win = EllipseWindows.from_shape(ma + v[:, 0], mh + v[:, 1], v[:, 2], v[:, 3], v[:, 4])
        return InterpolatedWindows(windows=win, efficiency=v[:, 5], extrapolated=outside)

    def widths(self, m_a: ArrayLike, m_h: ArrayLike) -> tuple[Array, Array]:
        """1-sigma core widths along M_mumu and M_recoil at the hypotheses (GeV): the width
        model of :func:`hypothesis_grid`."""
        shape = np.broadcast(np.asarray(m_a), np.asarray(m_h)).shape
        a, h = np.broadcast_arrays(np.asarray(m_a, dtype=float), np.asarray(m_h, dtype=float))
        _, _, v, _ = self._values(a.ravel(), h.ravel())
        # the shape of the hypotheses (hypothesis_grid asks on a 2-d mesh)
        return (
            (np.sqrt(v[:, 2]) / self.k).reshape(shape),
            (np.sqrt(v[:, 4]) / self.k).reshape(shape),
        )


# ----------------------------------------------------------------------------- grid
@dataclass(frozen=True, eq=False)
class HypothesisGrid:
    """The (M_A', M_h') hypotheses (GeV), by row of M_A' then increasing M_h'."""

    m_a: Array
    m_h: Array
    step: float

    def __len__(self) -> int:
        return int(self.m_a.size)

    def names(self) -> list[str]:
        """Labels ``"ma<M_A'>_mh<M_h'>"`` with masses in MeV (unique for steps >= 1 MeV)."""
        return [f"ma{a * 1e3:.0f}_mh{h * 1e3:.0f}" for a, h in zip(self.m_a, self.m_h, strict=True)]


def _widths(model: WidthModel, ma: Array, mh: Array) -> tuple[Array, Array]:
    sx, sy = model(ma, mh)
    sx = np.broadcast_to(np.asarray(sx, dtype=float), ma.shape)
    sy = np.broadcast_to(np.asarray(sy, dtype=float), ma.shape)
    for name, s in (("M_mumu", sx), ("M_recoil", sy)):
        bad = ~np.isfinite(s) | (s <= 0)
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), s.shape)
            raise ConfigError(
                f"hypothesis grid: the width model gives {float(s[i])!r} along {name} at "
                f"(M_A', M_h') = ({ma[i]:.4f}, {mh[i]:.4f}) GeV; it must be finite and > 0"
            )
    return sx, sy


def hypothesis_grid(
    widths: WidthModel,
    *,
    step: float = DEFAULT_STEP,
    m_a_range: tuple[float, float] = M_A_RANGE,
    sqrt_s: float = SQRT_S,
    vetoes: Sequence[tuple[float, float]] = (),
    n_fine: int = 2048,
) -> HypothesisGrid:
    """The hypothesis grid (module docstring): rows of M_A' at equal steps of the M_mumu
    resolution coordinate, M_h' in each row from 0 in steps of ``step`` M_recoil core widths.

    Parameters
    ----------
    widths
        ``widths(m_a, m_h) -> (sigma_mumu, sigma_recoil)``: 1-sigma core widths (GeV) of the
        signal at the hypotheses, vectorised (e.g. :meth:`WindowInterpolator.widths`, or a
        constant model for a fixed step).
    step
        Spacing in core widths (> 0).
    m_a_range
        First and last M_A' rows (GeV), ``0 < lo < hi < sqrt(s)``.
    vetoes
        M_A' intervals ``(lo, hi)`` (GeV) whose rows are removed (closed intervals).
    n_fine
        Points of the fine meshes on which the resolution coordinates are integrated (midpoint
        rule).

    Raises
    ------
    ConfigError
        A bad range, step, veto or width.
    """
    lo, hi = (float(v) for v in m_a_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo < hi < sqrt_s):
        raise ConfigError(
            f"hypothesis grid: M_A' range ({lo!r}, {hi!r}) GeV must satisfy "
            f"0 < lo < hi < sqrt(s) = {sqrt_s:.4f} GeV"
        )
    if not (math.isfinite(step) and step > 0):
        raise ConfigError(f"hypothesis grid: step {step!r} must be > 0 (core widths)")
    veto = np.asarray(list(vetoes), dtype=float).reshape(-1, 2)
    if np.any(~np.isfinite(veto)) or np.any(veto[:, 0] >= veto[:, 1]):
        i = int(np.argmax(np.any(~np.isfinite(veto), axis=1) | (veto[:, 0] >= veto[:, 1])))
        raise ConfigError(f"hypothesis grid: veto {tuple(veto[i])} is not an interval lo < hi")
    if int(n_fine) != n_fine or n_fine < 16:
        raise ConfigError(f"hypothesis grid: n_fine {n_fine!r} must be an integer >= 16")
    n_h = max(16, int(n_fine) // 16)
    t_mid = (np.arange(n_h) + 0.5) / n_h  # midpoints in units of the row's M_h' span

    def span(ma: Array) -> Array:
        return np.minimum(ma, sqrt_s - ma)

    # rows: u_a(M_A') = int dM / sigma_mumu (smallest over the row)
    edges_a = np.linspace(lo, hi, int(n_fine) + 1)
    mid_a = 0.5 * (edges_a[1:] + edges_a[:-1])
    mesh_h = span(mid_a)[:, None] * t_mid[None, :]
    sx, _ = _widths(widths, np.broadcast_to(mid_a[:, None], mesh_h.shape), mesh_h)
    u_a = np.concatenate([[0.0], np.cumsum(np.diff(edges_a) / sx.min(axis=1))])
    n_rows = max(1, round(u_a[-1] / step))
    rows = np.interp(np.linspace(0.0, u_a[-1], n_rows + 1), u_a, edges_a)
    rows[0], rows[-1] = lo, hi
    for v_lo, v_hi in veto:
        rows = rows[(rows < v_lo) | (rows > v_hi)]
    if rows.size == 0:
        return HypothesisGrid(np.zeros(0), np.zeros(0), float(step))
    # columns: u_h(M_h') = int_0^M_h' dM / sigma_recoil in every row
    h_max = span(rows)
    dh = h_max / n_h
    mesh_h = h_max[:, None] * t_mid[None, :]
    _, sy = _widths(widths, np.broadcast_to(rows[:, None], mesh_h.shape), mesh_h)
    u_h = np.concatenate([np.zeros((rows.size, 1)), np.cumsum(dh[:, None] / sy, axis=1)], axis=1)
    u_top = u_h[:, -1]
    count = np.maximum(np.ceil(u_top / step - 1e-12), 1).astype(np.int64)  # j step < u_top
    row_of = np.repeat(np.arange(rows.size), count)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    level = (np.arange(count.sum()) - first[row_of]) * step
    # one monotone key over all rows: row r occupies [r * span_u, r * span_u + u_top[r]]
    span_u = float(u_top.max()) + 1.0
    key = (np.arange(rows.size)[:, None] * span_u + u_h).ravel()
    grid_h = (h_max[:, None] * np.linspace(0.0, 1.0, n_h + 1)[None, :]).ravel()
    m_h = np.interp(row_of * span_u + level, key, grid_h)
    return HypothesisGrid(m_a=rows[row_of], m_h=m_h, step=float(step))


# ----------------------------------------------------------------------------- counting
@dataclass(frozen=True, eq=False)
class WindowCounts:
    """Per window: number of events (``count``, int), sum of weights and of squared weights."""

    count: NDArray[np.int64]
    sumw: Array
    sumw2: Array


def _pairs(
    windows: EllipseWindows, x: Array, y: Array, max_pairs: int
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """(window, point) index pairs with the point inside the window, in chunks of at most
    ``max_pairs`` candidates (exact: every candidate is tested against the ellipse)."""
    n_win = len(windows)
    hx, hy = windows.half_widths()
    cx, cy = windows.centre_x, windows.centre_y
    x_lo = float(np.min(cx - hx))
    x_hi = float(np.max(cx + hx))
    width = max(float(np.min(hx)) / 4.0, (x_hi - x_lo) / _MAX_COLUMNS)
    n_col = math.floor((x_hi - x_lo) / width) + 1
    pid = np.flatnonzero((x >= x_lo) & (x <= x_hi))
    if pid.size == 0 or n_win == 0:
        return
    col = np.minimum(((x[pid] - x_lo) / width).astype(np.int64), n_col - 1)
    y_lo = float(min(np.min(y[pid]), np.min(cy - hy)))
    y_span = float(max(np.max(y[pid]), np.max(cy + hy))) - y_lo
    y_span = y_span * (1.0 + 1e-9) + 1e-300

    def frac(v: Array) -> Array:  # M_recoil -> [0, 1) inside a column's key
        return np.clip((v - y_lo) / y_span, 0.0, 1.0 - 1e-9)

    order = np.lexsort((y[pid], col))
    pid = pid[order]
    key = col[order] + frac(y[pid])  # sorted: column, then M_recoil
    del col, order
    # segments: every (window, column) pair the window's bounding box crosses
    c0 = np.clip(np.floor((cx - hx - x_lo) / width).astype(np.int64), 0, n_col - 1)
    n_seg = np.clip(np.floor((cx + hx - x_lo) / width).astype(np.int64), 0, n_col - 1) - c0 + 1
    sxx, sxy, syy = windows.shape_entries()
    inv_a, inv_b, inv_c = windows._inverse()
    # windows in groups of at most max_pairs / 4 segments (bounded memory)
    cum_seg = np.cumsum(n_seg)
    w_bounds = [0]
    while w_bounds[-1] < n_win:
        base = cum_seg[w_bounds[-1] - 1] if w_bounds[-1] > 0 else 0
        nxt = int(np.searchsorted(cum_seg, base + max(1, max_pairs // 4), side="right"))
        w_bounds.append(max(nxt, w_bounds[-1] + 1))
    for w0, w1 in itertools.pairwise(w_bounds):
        ns = n_seg[w0:w1]
        w = np.repeat(np.arange(w0, w1), ns)
        seg_c = c0[w] + np.arange(ns.sum()) - np.repeat(np.cumsum(ns) - ns, ns)
        # lowest and highest point of the ellipse over the column's x-range: the upper edge
        # is concave with its maximum at the topmost point, the lower one convex
        dxa = np.maximum(x_lo + seg_c * width, cx[w] - hx[w]) - cx[w]
        dxb = np.minimum(x_lo + (seg_c + 1) * width, cx[w] + hx[w]) - cx[w]
        slope = sxy[w] / sxx[w]
        half = np.sqrt((sxx[w] * syy[w] - sxy[w] ** 2) / sxx[w])
        x_top = sxy[w] / np.sqrt(syy[w])  # the topmost point; the lowest is at -x_top

        def edge(dx: Array, sign: float, slope=slope, half=half, w=w) -> Array:
            return slope * dx + sign * half * np.sqrt(np.clip(1.0 - dx * dx / sxx[w], 0.0, None))

        top = cy[w] + edge(np.clip(x_top, dxa, dxb), 1.0)
        bottom = cy[w] + edge(np.clip(-x_top, dxa, dxb), -1.0)
        pad = 1e-9 * (y_span + hy[w])  # rounding of the keys: candidates are tested anyway
        start = np.searchsorted(key, seg_c + frac(bottom - pad), side="left")
        length = np.maximum(np.searchsorted(key, seg_c + frac(top + pad), side="right") - start, 0)
        # chunks of segments holding at most max_pairs candidates (a longer segment alone)
        cum = np.cumsum(length)
        bounds = [0]
        while bounds[-1] < length.size:
            base = cum[bounds[-1] - 1] if bounds[-1] > 0 else 0
            nxt = int(np.searchsorted(cum, base + max_pairs, side="right"))
            bounds.append(max(nxt, bounds[-1] + 1))
        for s0, s1 in itertools.pairwise(bounds):
            ln = length[s0:s1]
            total = int(ln.sum())
            if total == 0:
                continue
            idx = pid[np.repeat(start[s0:s1] - (np.cumsum(ln) - ln), ln) + np.arange(total)]
            wid = np.repeat(w[s0:s1], ln)
            dx = x[idx] - cx[wid]
            dy = y[idx] - cy[wid]
            ok = inv_a[wid] * dx * dx + 2.0 * inv_b[wid] * dx * dy + inv_c[wid] * dy * dy <= 1.0
            yield wid[ok], idx[ok]


def _check_windows(windows: Any) -> EllipseWindows:
    if isinstance(windows, EllipseWindow):
        return EllipseWindows.from_windows([windows])
    if isinstance(windows, EllipseWindows):
        return windows
    return EllipseWindows.from_windows(list(windows))


def _check_max_pairs(max_pairs: int) -> int:
    if int(max_pairs) != max_pairs or max_pairs < 1:
        raise ConfigError(f"max_pairs {max_pairs!r} must be an integer >= 1")
    return int(max_pairs)


def count_in_windows(
    windows: EllipseWindows | Sequence[EllipseWindow],
    x: ArrayLike,
    y: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    max_pairs: int = _MAX_PAIRS,
) -> WindowCounts:
    """Events inside every window, exactly (module docstring: columns, binary search, ellipse
    test of the candidates; memory bounded by ``max_pairs`` candidate pairs per chunk).

    Parameters
    ----------
    windows
        The W windows.
    x, y
        M_mumu and M_recoil of the N events (GeV).
    weights
        Event weights (simulation; default 1: data).

    Returns
    -------
    WindowCounts
        ``count`` (events), ``sumw`` and ``sumw2`` per window.

    Raises
    ------
    InputError
        NaN or infinite masses or weights, arrays of different lengths.
    """
    win = _check_windows(windows)
    xa, ya, wa = _points("count_in_windows", x, y, weights)
    n_win = len(win)
    count = np.zeros(n_win, dtype=np.int64)
    sumw = np.zeros(n_win)
    sumw2 = np.zeros(n_win)
    for wid, idx in _pairs(win, xa, ya, _check_max_pairs(max_pairs)):
        count += np.bincount(wid, minlength=n_win)
        ww = wa[idx]
        sumw += np.bincount(wid, weights=ww, minlength=n_win)
        sumw2 += np.bincount(wid, weights=ww * ww, minlength=n_win)
    return WindowCounts(count=count, sumw=sumw, sumw2=sumw2)


def inside_any(
    windows: EllipseWindows | Sequence[EllipseWindow],
    x: ArrayLike,
    y: ArrayLike,
    *,
    max_pairs: int = _MAX_PAIRS,
) -> NDArray[np.bool_]:
    """Whether each event lies inside at least one window (the search region: the union of
    the windows), exactly as :func:`count_in_windows` tests it."""
    win = _check_windows(windows)
    xa, ya, _ = _points("inside_any", x, y, None)
    out = np.zeros(xa.size, dtype=bool)
    for _, idx in _pairs(win, xa, ya, _check_max_pairs(max_pairs)):
        out[idx] = True
    return out


def membership_matrix(
    windows: EllipseWindows | Sequence[EllipseWindow],
    x: ArrayLike,
    y: ArrayLike,
    *,
    max_pairs: int = _MAX_PAIRS,
) -> sp.csr_array:
    """Sparse W x P matrix with 1 where point ``p`` (a cell centre, or an event) lies inside
    window ``w`` (the same exact test as :meth:`EllipseWindow.contains`). ``M @ values``
    sums per-point values (cell contents) into the windows."""
    win = _check_windows(windows)
    xa, ya, _ = _points("membership_matrix", x, y, None)
    rows, cols = [], []
    for wid, idx in _pairs(win, xa, ya, _check_max_pairs(max_pairs)):
        rows.append(wid)
        cols.append(idx)
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.intp)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.intp)
    mat = sp.csr_array((np.ones(r.size), (r, c)), shape=(len(win), xa.size))
    mat.sort_indices()
    return mat


@dataclass(frozen=True, eq=False)
class Cells:
    """Occupied cells of a uniform 2-d histogram: centres (GeV), events, sum of weights and of
    squared weights per cell."""

    x: Array
    y: Array
    count: NDArray[np.int64]
    sumw: Array
    sumw2: Array


def cell_size(windows: EllipseWindows | Sequence[EllipseWindow], per_axis: float = 10.0) -> float:
    """Cell size (GeV) of :func:`histogram_cells`: the smallest minor semi-axis over
    ``per_axis`` (module docstring: the sparse path's error for ``per_axis = 10``)."""
    win = _check_windows(windows)
    if not (math.isfinite(per_axis) and per_axis > 0):
        raise ConfigError(f"cell_size: per_axis {per_axis!r} must be > 0")
    return float(np.min(win.b)) / float(per_axis)


def histogram_cells(
    x: ArrayLike,
    y: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    size: float | tuple[float, float],
    origin: tuple[float, float] = (0.0, 0.0),
) -> Cells:
    """Histogram of events in uniform cells of ``size`` (GeV; one value or (M_mumu, M_recoil))
    whose edges include ``origin``; only occupied cells are returned (no dense array).

    Raises
    ------
    InputError
        NaN or infinite masses or weights.
    ConfigError
        A non-positive cell size.
    """
    xa, ya, wa = _points("histogram_cells", x, y, weights)
    hx, hy = (size, size) if np.isscalar(size) else size  # type: ignore[misc]
    if not (math.isfinite(hx) and math.isfinite(hy) and hx > 0 and hy > 0):
        raise ConfigError(f"histogram_cells: cell size {size!r} must be > 0")
    ix = np.floor((xa - origin[0]) / hx).astype(np.int64)
    iy = np.floor((ya - origin[1]) / hy).astype(np.int64)
    uniq, inverse = np.unique(np.stack([ix, iy], axis=1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return Cells(
        x=origin[0] + (uniq[:, 0] + 0.5) * hx,
        y=origin[1] + (uniq[:, 1] + 0.5) * hy,
        count=np.bincount(inverse, minlength=uniq.shape[0]).astype(np.int64),
        sumw=np.bincount(inverse, weights=wa, minlength=uniq.shape[0]),
        sumw2=np.bincount(inverse, weights=wa * wa, minlength=uniq.shape[0]),
    )
