"""Smoothed background templates (an option, off by default): a Gaussian kernel density in
M_recoil^2 with kernels of the signal resolution, times theta_recoil^CM fractions taken from a
wider M^2 interval.

The default run fits histogram templates (``templates.background_smoothing: none``): its
background samples stand for ten times the luminosity (``docs/generators.md``). This option is
for a simulation that is small against the data, where most bins of a search window would be
empty (the standard remedy is a kernel estimate: K. Cranmer, "Kernel estimation in high-energy
physics", Comput. Phys. Commun. 136 (2001) 198, hep-ex/0011057). Its kernels are **never wider
than the signal resolution**: a wider kernel erases structure that the fit resolves (an earlier
adaptive version with kernels up to 30 resolution units wide flattened the M^2 ~ 0 peak and made
goodness-of-fit p-values of 1e-11; issue 14).

Method, per background sample (:func:`smooth_background`):

- **M_recoil^2 density**: a weighted Gaussian kernel estimate of *all* the sample's selected
  events (not per window). Event ``i`` at ``x_i`` gets the width ``h_i = k sigma(x_i)``:
  ``sigma`` is the signal M^2 resolution of the
  :class:`~zprime.analyses.invisible_zprime.binning.ResolutionModel` (the
  bin width of the search windows) and ``k <= 1`` the configured ``smoothing_bandwidth``.
- **edges and discontinuities**: the M^2 axis is cut into *segments* at the ends of the
  binning's M^2 range and at the M^2 where the selection's theta_recoil requirement changes
  (PRL: "M_recoil^2 < 4 GeV^2" barrel-only vs "< 123 deg" above; the acceptance, hence the
  density, jumps there). Each kernel is truncated to its event's segment and renormalised to
  one there (no weight crosses a boundary), so the total weight of the events inside the range
  is conserved exactly; the weight of events outside the range is reported
  (:attr:`KdeBackground.outside_weight`).
- **bin contents**: exact kernel integrals over each M^2 bin (normal CDF differences, taken on
  the side of the kernel's tail for precision), ``B_j = sum_i w_i p_i(j)``. Events closer than
  ``h_min / 20`` are merged into one kernel first (weights and squared weights summed;
  "binned KDE"), so the cost is bounded for large samples and exact for sparse ones.
- **theta_recoil^CM**: a window's bins of one segment get the weighted theta fractions ``f_t``
  of the sample's events in an M^2 interval about the window (clipped to the segment), widened
  2, 4, 8, ... times until it holds ``theta_min_events`` simulated events or fills the segment
  (the fractions never mix the two sides of the theta_recoil discontinuity). The 2D template is
  ``B_j f_t``.
- **MC-statistical variance**: ``V_jt = f_t^2 sum_i (w_i p_i(j))^2 + B_j^2 f_t (1 - f_t) /
  n_eff,theta`` (the kernel weights' Poisson variance plus the binomial variance of the theta
  fractions). It is much smaller than the raw ``sum w^2`` of a bin when the kernels span several
  bins, and it is honest in total, but neighbouring bins are *correlated* (one event feeds
  several bins) while HistFactory's ``staterror`` treats bins as independent.

Units: GeV^2 for M^2 and bandwidths, rad for theta, fb for weights (x luminosity = events).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from zprime.analyses.invisible_zprime.samples import EventSample, _from_arrays
from zprime.errors import ConfigError, InputError

if TYPE_CHECKING:
    import hist

    from zprime.analyses.invisible_zprime.binning import ResolutionModel, Window
    from zprime.config import Config

__all__ = [
    "MC_VARIANCE_MODES",
    "SMOOTHING_METHODS",
    "KdeBackground",
    "kde_bin_integrals",
    "kernel_widths",
    "smooth_background",
    "smoothing_from_config",
]

SMOOTHING_METHODS = ("none", "kde")
"""Values of ``templates.background_smoothing``."""
MC_VARIANCE_MODES = ("full", "shape")
"""Values of ``templates.smoothing_mc_variance``."""

_REACH = 7.0
"""Kernels are cut at +-7 h (normal tail 1.3e-12)."""
_MERGE = 1.0 / 20.0
"""Events closer than this fraction of the smallest bandwidth share one kernel."""
_MAX_CELLS = 1 << 20
_CHUNK = 1 << 15
"""Kernels per vectorised block (kernels x bin edges)."""
_WIDEN_MAX = 40
"""Most doublings of the theta interval (2^40 times the window: always the whole segment)."""


# --------------------------------------------------------------------------- bandwidths
def kernel_widths(sigma: ArrayLike, factor: float = 1.0) -> NDArray[np.float64]:
    """Per-event kernel widths ``h_i = factor * sigma_i``, GeV^2.

    Parameters
    ----------
    sigma
        The signal resolution sigma(M^2) at each event, GeV^2 (> 0).
    factor
        ``templates.smoothing_bandwidth``, in (0, 1]: a kernel is never wider than the
        resolution.

    Raises
    ------
    ConfigError
        ``factor`` outside (0, 1].
    InputError
        A non-positive resolution.
    """
    if not (math.isfinite(factor) and 0 < factor <= 1.0):
        raise ConfigError(
            "config field 'templates.smoothing_bandwidth': must be in (0, 1] (kernels never "
            f"wider than the signal resolution), got {factor}"
        )
    s = np.asarray(sigma, dtype=float).ravel()
    if np.any(~(s > 0)):
        raise InputError("kde: the resolution must be positive at every event")
    return factor * s


# --------------------------------------------------------------------------- bin integrals
def _cdf_diff(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Normal probabilities between consecutive standardised edges (last axis), taken on the
    tail side (``ndtr(-a) - ndtr(-b)`` where ``a > 0``) to keep far tails precise."""
    lower = ndtr(z)
    upper = ndtr(-z)
    right = z[..., :-1] > 0
    return np.where(right, upper[..., :-1] - upper[..., 1:], lower[..., 1:] - lower[..., :-1])


def kde_bin_integrals(
    x: ArrayLike,
    w: ArrayLike,
    w2: ArrayLike,
    h: ArrayLike,
    edges: ArrayLike,
    segment: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]:
    """Bin integrals of Gaussian kernels at ``x`` of widths ``h``, truncated to ``segment`` and
    renormalised there (``p_i`` integrates to one over the segment).

    Returns the contents ``B_j = sum_i w_i p_i(j)``, the variances ``V_j = sum_i w2_i
    p_i(j)^2``, and for the covariance with the total of the bins ``U_j = sum_i w2_i p_i(j)
    P_i`` and ``T = sum_i w2_i P_i^2`` (``P_i = sum_j p_i(j)``: the kernel's mass in the
    bins). ``w2`` is the sum of squared event weights of each kernel (``w**2`` for single
    events). Kernels are processed in blocks of 2^15 (memory: kernels x edges).
    """
    x = np.asarray(x, dtype=float).ravel()
    w = np.asarray(w, dtype=float).ravel()
    w2 = np.asarray(w2, dtype=float).ravel()
    h = np.asarray(h, dtype=float).ravel()
    e = np.asarray(edges, dtype=float).ravel()
    a, b = float(segment[0]), float(segment[1])
    ec = np.clip(e, a, b)
    vals = np.zeros(e.size - 1)
    var = np.zeros(e.size - 1)
    cross = np.zeros(e.size - 1)
    tot = 0.0
    for start in range(0, x.size, _CHUNK):
        sl = slice(start, start + _CHUNK)
        xi, hi = x[sl, None], h[sl, None]
        z = (ec[None, :] - xi) / hi
        p = _cdf_diff(z)
        if math.isfinite(a) or math.isfinite(b):
            norm = _cdf_diff(np.concatenate([(a - xi) / hi, (b - xi) / hi], axis=1))[:, 0]
            p = p / norm[:, None]
        mass = p.sum(axis=1)
        vals += w[sl] @ p
        var += w2[sl] @ (p * p)
        cross += (w2[sl] * mass) @ p
        tot += float(np.sum(w2[sl] * mass * mass))
    return vals, var, cross, tot


# --------------------------------------------------------------------------- per sample
@dataclass
class _Segment:
    lo: float
    hi: float
    x: NDArray[np.float64]
    """Kernel centres (sorted), GeV^2."""
    w: NDArray[np.float64]
    w2: NDArray[np.float64]
    h: NDArray[np.float64]
    m2: NDArray[np.float64]
    """The events of the segment (sorted by M^2), for the theta fractions."""
    theta: NDArray[np.float64]
    weight: NDArray[np.float64]

    def reach(self, lo: float, hi: float) -> NDArray[np.int64]:
        """Kernels whose +-7 h reach overlaps [lo, hi)."""
        if self.x.size == 0:
            return np.empty(0, dtype=np.int64)
        hmax = float(self.h.max())
        i0 = int(np.searchsorted(self.x, lo - _REACH * hmax, "left"))
        i1 = int(np.searchsorted(self.x, hi + _REACH * hmax, "right"))
        idx = np.arange(i0, i1)
        xs, hs = self.x[i0:i1], self.h[i0:i1]
        return idx[(xs + _REACH * hs > lo) & (xs - _REACH * hs < hi)]


@dataclass
class KdeBackground:
    """The smoothed density of one background sample (:func:`smooth_background`)."""

    name: str
    segments: list[_Segment]
    boundaries: tuple[float, ...]
    """Segment boundaries, GeV^2 (the M^2 range's ends and the discontinuities inside)."""
    bandwidth_factor: float
    theta_min_events: int
    mc_variance: str
    """``"full"`` or ``"shape"`` (:meth:`arrays`)."""
    bandwidth: NDArray[np.float64]
    """h_i of every event inside the range (sorted by M^2), GeV^2."""
    total_weight: float
    """Sum of the weights of the events inside the M^2 range, fb (conserved exactly)."""
    outside_weight: float
    """Sum of the weights of the events outside the M^2 range, fb (lost)."""
    n_events: int
    n_outside: int
    notes: list[str] = field(default_factory=list)

    # -- M^2 -----------------------------------------------------------------------------------
    def m2_bins(self, edges: ArrayLike) -> tuple[NDArray[np.float64], ...]:
        """Per segment, the :func:`kde_bin_integrals` of the M^2 bins ``edges``: contents
        (fb), variances (fb^2), covariances with the total ``U`` (``(n_segments, n_bins)``) and
        ``T`` (``n_segments``)."""
        e = np.asarray(edges, dtype=float)
        vals = np.zeros((len(self.segments), e.size - 1))
        var = np.zeros_like(vals)
        cross = np.zeros_like(vals)
        tot = np.zeros(len(self.segments))
        for k, seg in enumerate(self.segments):
            if seg.hi <= e[0] or seg.lo >= e[-1]:
                continue
            idx = seg.reach(float(e[0]), float(e[-1]))
            if idx.size == 0:
                continue
            vals[k], var[k], cross[k], tot[k] = kde_bin_integrals(
                seg.x[idx], seg.w[idx], seg.w2[idx], seg.h[idx], e, (seg.lo, seg.hi)
            )
        return vals, var, cross, tot

    def m2_template(self, edges: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Contents (fb) and variances (fb^2) of the M^2 bins ``edges`` (all segments)."""
        vals, var, _, _ = self.m2_bins(edges)
        return vals.sum(axis=0), var.sum(axis=0)

    # -- theta ---------------------------------------------------------------------------------
    def theta_fractions(
        self, segment: int, m2_lo: float, m2_hi: float, theta_edges: ArrayLike
    ) -> tuple[NDArray[np.float64], float, int]:
        """Weighted theta^CM fractions of the events of ``segment`` in ``[m2_lo, m2_hi)``
        widened 2, 4, 8, ... times about its centre (clipped to the segment) until it holds
        ``theta_min_events`` events; returns (fractions, n_eff, events used). Uniform in theta
        (by bin width) if the segment has no event."""
        seg = self.segments[segment]
        te = np.asarray(theta_edges, dtype=float)
        lo, hi = max(m2_lo, seg.lo), min(m2_hi, seg.hi)
        mid, half = 0.5 * (lo + hi), max(0.5 * (hi - lo), 1e-9)
        sl = slice(0, 0)
        for k in range(_WIDEN_MAX + 1):
            f = 2.0**k
            a, b = max(mid - f * half, seg.lo), min(mid + f * half, seg.hi)
            sl = slice(
                int(np.searchsorted(seg.m2, a, "left")), int(np.searchsorted(seg.m2, b, "left"))
            )
            whole = a <= seg.lo and b >= seg.hi
            if sl.stop - sl.start >= self.theta_min_events or whole:
                if whole:
                    sl = slice(0, seg.m2.size)
                break
        w = seg.weight[sl]
        if w.size == 0 or not w.sum() > 0:
            width = np.diff(te)
            return width / width.sum(), 0.0, 0
        th = np.clip(seg.theta[sl], te[0], np.nextafter(te[-1], te[0]))
        counts, _ = np.histogram(th, bins=te, weights=w)
        n_eff = float(w.sum() ** 2 / np.sum(w * w))
        return counts / counts.sum(), n_eff, int(w.size)

    # -- 2D ------------------------------------------------------------------------------------
    def arrays(
        self, window: Window, luminosity_fb: float, mc_variance: str | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Expected events and their MC-statistical variances in the window's 2D bins
        (``window.shape``).

        ``mc_variance`` (default :attr:`mc_variance`): ``"full"``, the variance of each bin;
        ``"shape"``, the variance of each bin *after removing the fluctuation of the window's
        total* (the diagonal of ``P C P^T`` with ``P = 1 - b 1^T / sum(b)``, ``C`` the bins'
        covariance and ``b`` the template): the part that a free background normalisation
        cannot absorb.
        """
        mode = self.mc_variance if mc_variance is None else mc_variance
        if mode not in MC_VARIANCE_MODES:
            raise ConfigError(
                f"config field 'templates.smoothing_mc_variance': unknown {mode!r} "
                f"{MC_VARIANCE_MODES}"
            )
        e = np.asarray(window.m2_edges, dtype=float)
        te = np.asarray(window.theta_edges, dtype=float)
        vals, var, cross, tot = self.m2_bins(e)
        out = np.zeros(window.shape)
        out_var = np.zeros(window.shape)
        c1 = np.zeros(window.shape)  # covariance of each bin with the window's total
        for k in range(len(self.segments)):
            if not np.any(vals[k] > 0):
                continue
            frac, n_eff, _ = self.theta_fractions(k, float(e[0]), float(e[-1]), te)
            f_var = frac * (1.0 - frac) / n_eff if n_eff > 0 else np.zeros_like(frac)
            out += np.outer(vals[k], frac)
            out_var += np.outer(var[k], frac**2) + np.outer(vals[k] ** 2, f_var)
            # the theta fractions sum to one: their covariance with the total vanishes
            c1 += np.outer(cross[k], frac)
        total = float(out.sum())
        if mode == "shape" and total > 0:
            t = float(tot.sum())
            out_var = out_var - 2.0 * out * c1 / total + out**2 * t / total**2
            out_var = np.maximum(out_var, 0.0)  # a diagonal of P C P^T: >= 0 up to rounding
        return out * luminosity_fb, out_var * luminosity_fb**2

    def template(self, window: Window, luminosity_fb: float) -> hist.Hist:
        """The smoothed template of the window (expected events; ``Weight`` storage with the
        variances above), on the window's 2D bins."""
        vals, var = self.arrays(window, luminosity_fb)
        return _from_arrays(window, vals, var)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON description (bandwidths, conservation, settings)."""
        h = self.bandwidth
        return {
            "name": self.name,
            "method": "kde",
            "n_events": self.n_events,
            "n_outside_range": self.n_outside,
            "total_weight_fb": self.total_weight,
            "outside_weight_fb": self.outside_weight,
            "boundaries_gev2": list(self.boundaries),
            "bandwidth_factor": self.bandwidth_factor,
            "bandwidth_gev2": {
                "min": float(h.min()) if h.size else None,
                "median": float(np.median(h)) if h.size else None,
                "max": float(h.max()) if h.size else None,
            },
            "theta_min_events": self.theta_min_events,
            "mc_variance": self.mc_variance,
            "notes": list(self.notes),
        }


def _merge(
    x: NDArray[np.float64], w: NDArray[np.float64], h: NDArray[np.float64], cell: float, lo: float
) -> tuple[NDArray[np.float64], ...]:
    """Merge sorted events closer than ``cell`` (same cell) into one kernel: mean position and
    width, summed weights and squared weights."""
    if x.size == 0:
        return x, w, w * w, h
    key = np.floor((x - lo) / cell).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    n = np.diff(np.r_[starts, x.size]).astype(float)
    xm = np.add.reduceat(x, starts) / n
    hm = np.add.reduceat(h, starts) / n
    return xm, np.add.reduceat(w, starts), np.add.reduceat(w * w, starts), hm


def smooth_background(
    sample: EventSample,
    resolution: ResolutionModel,
    *,
    m2_range: tuple[float, float],
    boundaries: Sequence[float] = (),
    bandwidth: float = 1.0,
    theta_min_events: int = 50,
    mc_variance: str = "full",
) -> KdeBackground:
    """The kernel density of one background sample (see the module docstring).

    Parameters
    ----------
    sample
        Selected events (weights in fb; a data sample is refused).
    resolution
        sigma(M^2) of the signal, GeV^2 (the kernels' smallest width, times ``bandwidth``).
    m2_range
        The binning's M^2 range, GeV^2: kernels are truncated to it and renormalised.
    boundaries
        M^2 values inside the range that no kernel and no theta interval crosses (the
        theta_recoil requirement's split, PRL: 4 GeV^2).
    bandwidth
        The factor ``k <= 1`` in ``h_i = k sigma(x_i)``.
    theta_min_events
        Fewest simulated events behind a window's theta fractions (per segment).
    mc_variance
        ``"full"`` or ``"shape"``: the bin variances stored (:meth:`KdeBackground.arrays`).

    Raises
    ------
    InputError
        Negative weights or a data sample.
    ConfigError
        A non-positive bandwidth factor, a bad range or ``theta_min_events < 1``.
    """
    if sample.is_data:
        raise InputError(f"kde: sample {sample.name!r} is data; only simulation is smoothed")
    lo, hi = float(m2_range[0]), float(m2_range[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"config field 'binning.m2_range_gev2': bad range [{lo}, {hi}]")
    if mc_variance not in MC_VARIANCE_MODES:
        raise ConfigError(
            f"config field 'templates.smoothing_mc_variance': unknown {mc_variance!r} "
            f"{MC_VARIANCE_MODES}"
        )
    if int(theta_min_events) < 1:
        raise ConfigError("config field 'templates.smoothing_theta_min_events': must be >= 1")
    if np.any(sample.weight < 0):
        raise InputError(
            f"kde: sample {sample.name!r} has a negative weight at event "
            f"{int(np.argmax(sample.weight < 0))}"
        )
    bounds = (lo, *sorted({float(b) for b in boundaries if lo < b < hi}), hi)
    inside = (sample.m2 >= lo) & (sample.m2 < hi)
    x, th, w = sample.m2[inside], sample.theta[inside], sample.weight[inside]
    keep = w > 0  # zero-weight events carry nothing
    x, th, w = x[keep], th[keep], w[keep]
    if x.size:
        h = kernel_widths(np.asarray(resolution.sigma(x)), bandwidth)
    else:
        kernel_widths(np.ones(1), bandwidth)  # the factor is checked even without events
        h = np.empty(0)
    seg_of = np.searchsorted(np.asarray(bounds[1:-1]), x, side="right")
    segments: list[_Segment] = []
    for k in range(len(bounds) - 1):
        m = seg_of == k
        a, b = bounds[k], bounds[k + 1]
        xs, ws, hs = x[m], w[m], h[m]
        cell = max(float(hs.min()) * _MERGE if hs.size else 1.0, (b - a) / _MAX_CELLS)
        xk, wk, w2k, hk = _merge(xs, ws, hs, cell, a)
        segments.append(_Segment(a, b, xk, wk, w2k, hk, xs, th[m], ws))
    notes = []
    n_out = int(np.count_nonzero(~inside))
    if n_out:
        notes.append(f"{n_out} events outside the M^2 range [{lo:g}, {hi:g}] GeV^2 not used")
    return KdeBackground(
        name=sample.name,
        segments=segments,
        boundaries=bounds,
        bandwidth_factor=float(bandwidth),
        theta_min_events=int(theta_min_events),
        mc_variance=mc_variance,
        bandwidth=h,
        total_weight=float(w.sum()),
        outside_weight=float(sample.weight[~inside].sum()),
        n_events=len(sample),
        n_outside=n_out,
        notes=notes,
    )


def smoothing_from_config(
    config: Config,
    backgrounds: Mapping[str, EventSample],
    resolution: ResolutionModel,
) -> dict[str, KdeBackground] | None:
    """The smoothed backgrounds the configuration asks for (``templates.background_smoothing``),
    or ``None`` for ``none``.

    The M^2 range is ``binning.m2_range_gev2``; the boundary inside it is the selection's
    ``theta_recoil_split_m2_gev2`` unless the ``theta_recoil`` step is disabled.
    """
    tcfg = config.templates
    method = tcfg.background_smoothing
    if method == "none":
        return None
    if method != "kde":
        raise ConfigError(
            f"config field 'templates.background_smoothing': unknown {method!r} {SMOOTHING_METHODS}"
        )
    sel = config.selection
    bounds = [] if "theta_recoil" in sel.disabled else [sel.theta_recoil_split_m2_gev2]
    return {
        name: smooth_background(
            s,
            resolution,
            m2_range=tuple(config.binning.m2_range_gev2),  # type: ignore[arg-type]
            boundaries=bounds,
            bandwidth=tcfg.smoothing_bandwidth,
            theta_min_events=tcfg.smoothing_theta_min_events,
            mc_variance=tcfg.smoothing_mc_variance,
        )
        for name, s in backgrounds.items()
    }
