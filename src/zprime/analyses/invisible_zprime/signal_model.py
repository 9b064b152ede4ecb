"""Simulated Z' signal and its templates at every hypothesis (PRL 130, 231801 (2023)).

This module owns the signal side of the fit templates
(:mod:`zprime.analyses.invisible_zprime.templates` re-exports it):

- :class:`SimulatedSignal`: the selected events of one simulated Z' mass (M_recoil^2,
  theta_recoil^CM, weights, generated cross section), read from a selected Parquet file or
  from events;
- :class:`SignalModel`: signal templates at every hypothesis from a handful of simulated
  masses. Each simulated event is placed at the hypothesis by the *shift-and-scale* map
  ``M^2_reco -> M_h^2 + sigma(M_h^2) (M^2_reco - M_s^2) / sigma(M_s^2)`` (the shape in
  resolution units is carried over), its theta_recoil^CM is kept, and the two simulated masses
  that bracket ``M_h`` are mixed with weights linear in M; the efficiency is thereby
  interpolated linearly in M as well. Outside the simulated range the nearest sample is used
  alone (shape mapped, efficiency held) and the window is flagged ``extrapolated``. Wide Z'
  (Gamma = 0.1 M): a Breit-Wigner convolved with the Gaussian resolution, 1D in M_recoil^2
  (:meth:`SignalModel.wide_template`);
- :func:`theta_recoil_acceptance`: the selection's M^2-dependent theta_recoil requirement,
  re-applied after the move;
- the checks of the interpolation: :func:`interpolation_closure` (hold out one simulated mass,
  numbers in ``docs/templates.md``) and :func:`measured_widths`.

Units: GeV, GeV^2 for M^2, rad for angles; efficiency weights are weight / generated weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hist
import numpy as np
import pyarrow.parquet as pq
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr
from scipy.stats import chi2 as chi2_dist
from scipy.stats import kstwobign

from zprime.analyses.invisible_zprime.binning import (
    ResolutionModel,
    ResolutionScale,
    Window,
    measure_width,
)
from zprime.analyses.invisible_zprime.samples import (
    _check_finite,
    _column,
    _filled,
    _from_arrays,
)
from zprime.config import SelectionConfig
from zprime.errors import InputError
from zprime.io.events import read_events, read_metadata
from zprime.physics.constants import M_MUON, SQRT_S

__all__ = [
    "SignalModel",
    "SimulatedSignal",
    "interpolation_closure",
    "measured_widths",
    "theta_recoil_acceptance",
]

_BW_CUTOFF = (
    15.0  # MadGraph5 bwcutoff, as zprime.generators.signal.BW_CUTOFF (Breit-Wigner truncation)
)
_MU_MIN = (
    1e-3  # lowest Z' virtuality of a truncated Breit-Wigner, GeV (as zprime.generators.signal)
)


# --------------------------------------------------------------------------- inputs
@dataclass
class SimulatedSignal:
    """Selected signal events of one simulated Z' mass.

    ``total_weight`` is the cross section of the generated sample in fb (the sum of the weights
    of all generated events, before any selection), so ``weight / total_weight`` is each
    selected event's contribution to the efficiency.
    """

    mass: float
    m2: NDArray[np.float64]
    theta: NDArray[np.float64]
    weight: NDArray[np.float64]
    total_weight: float
    m2_true: NDArray[np.float64] | None = None
    """M_recoil^2 from the generator four-momenta of the two tracks (for the resolution)."""
    theta_lab: NDArray[np.float64] | None = None
    """Lab polar angle of the recoil, rad (to re-apply the M^2-dependent theta_recoil cut)."""

    def __post_init__(self) -> None:
        label = f"signal M={self.mass:g} GeV"
        self.m2 = np.asarray(self.m2, dtype=np.float64).ravel()
        self.theta = np.asarray(self.theta, dtype=np.float64).ravel()
        self.weight = np.asarray(self.weight, dtype=np.float64).ravel()
        if not (self.m2.size == self.theta.size == self.weight.size):
            raise InputError(f"sample {label!r}: m2, theta and weight lengths differ")
        _check_finite(label, m_recoil2=self.m2, theta_recoil_cm=self.theta, weight=self.weight)
        if not (math.isfinite(self.total_weight) and self.total_weight > 0):
            raise InputError(f"sample {label!r}: total_weight must be positive")
        if not (math.isfinite(self.mass) and self.mass > 0):
            raise InputError(f"sample {label!r}: the mass must be positive")
        for key in ("m2_true", "theta_lab"):
            arr = getattr(self, key)
            if arr is not None:
                arr = np.asarray(arr, dtype=np.float64).ravel()
                if arr.size != self.m2.size:
                    raise InputError(f"sample {label!r}: {key} has the wrong length")
                setattr(self, key, arr)

    @property
    def efficiency(self) -> float:
        """Selection efficiency (selected over generated weight)."""
        return float(self.weight.sum() / self.total_weight)

    @property
    def residuals(self) -> NDArray[np.float64]:
        """``m2 - m2_true`` (the detector resolution) if the truth is known, else ``m2 - M^2``."""
        ref = self.mass**2 if self.m2_true is None else self.m2_true
        return self.m2 - ref

    @classmethod
    def from_events(cls, mass: float, events: Any, total_weight: float) -> SimulatedSignal:
        """From selected signal events (reconstructed schema)."""
        label = f"signal M={mass:g} GeV"
        optional = {}
        for key, col in (("m2_true", "m_recoil2_true"), ("theta_lab", "theta_recoil")):
            try:
                optional[key] = _column(events, col, label)
            except InputError:
                optional[key] = None
        return cls(
            float(mass),
            _column(events, "m_recoil2", label),
            _column(events, "theta_recoil_cm", label),
            _column(events, "weight", label),
            float(total_weight),
            **optional,
        )

    @classmethod
    def read(cls, path: str | Path) -> SimulatedSignal:
        """From a selected signal Parquet file; mass and cross section from its metadata
        (``mass_gev``, ``sigma_fb``)."""
        meta = read_metadata(path)
        try:
            mass, sigma = float(meta["mass_gev"]), float(meta["sigma_fb"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{path}: metadata lacks mass_gev / sigma_fb of a signal sample"
            ) from None
        names = pq.read_schema(path).names
        cols = ["m_recoil2", "theta_recoil_cm", "weight"]
        cols += [c for c in ("m_recoil2_true", "theta_recoil") if c in names]  # optional
        return cls.from_events(mass, read_events(path, cols), sigma)


# --------------------------------------------------------------------------- signal model
def theta_recoil_acceptance(
    m2: NDArray[np.float64], theta_lab: NDArray[np.float64], cfg: SelectionConfig
) -> NDArray[np.bool_]:
    """The selection's M^2-dependent theta_recoil requirement (PRL;
    ``zprime.analyses.invisible_zprime.selection`` step
    ``theta_recoil``): below ``theta_recoil_split_m2_gev2`` the lab recoil angle must lie in
    the ECL barrel range and outside the 90 deg gap, above it below the maximum angle."""
    deg = math.pi / 180.0
    lo, hi = (x * deg for x in cfg.theta_recoil_barrel_deg)
    g_lo, g_hi = (x * deg for x in cfg.theta_recoil_gap_deg)
    low = (theta_lab >= lo) & (theta_lab <= hi) & ~((theta_lab >= g_lo) & (theta_lab <= g_hi))
    high = theta_lab < cfg.theta_recoil_max_high_m2_deg * deg
    return np.where(m2 < cfg.theta_recoil_split_m2_gev2, low, high)


@dataclass
class _Mapped:
    mass: float
    z: NDArray[np.float64]  # (M^2_reco - M_s^2) / sigma(M_s^2), sorted
    theta: NDArray[np.float64]
    eff: NDArray[np.float64]  # weight / total_weight
    theta_lab: NDArray[np.float64] | None


class SignalModel:
    """Signal templates at any hypothesis from simulated masses (module docstring).

    Parameters
    ----------
    samples
        Selected signal events at several Z' masses (distinct masses).
    resolution
        The resolution model used for the shift-and-scale map.
    acceptance
        If given, the selection's M^2-dependent ``theta_recoil`` requirement is applied to the
        events *after* they are moved to the hypothesis (:func:`theta_recoil_acceptance`);
        the samples must then carry ``theta_lab`` and have been selected **without** that
        step (``apply_selection(..., skip=["theta_recoil"])``). Without it, a sample near
        M^2 = 4 GeV^2, where the requirement changes, carries its own mixture of the two
        requirements to the hypotheses around it.
    """

    def __init__(
        self,
        samples: Sequence[SimulatedSignal],
        resolution: ResolutionModel,
        acceptance: SelectionConfig | None = None,
    ) -> None:
        if not samples:
            raise InputError("signal model: no simulated signal sample given")
        ordered = sorted(samples, key=lambda s: s.mass)
        masses = np.array([s.mass for s in ordered])
        if np.any(np.diff(masses) <= 0):
            raise InputError(f"signal model: simulated masses are not distinct: {masses.tolist()}")
        if acceptance is not None:
            for s in ordered:
                if s.theta_lab is None:
                    raise InputError(
                        f"signal model: sample M={s.mass:g} GeV lacks theta_recoil (lab), "
                        "needed to re-apply the theta_recoil requirement"
                    )
        self.resolution = resolution
        self.acceptance = acceptance
        self.masses = masses
        self._mapped: list[_Mapped] = []
        for s in ordered:
            z = (s.m2 - s.mass**2) / float(resolution.sigma(s.mass**2))
            o = np.argsort(z, kind="stable")
            self._mapped.append(
                _Mapped(
                    s.mass,
                    z[o],
                    s.theta[o],
                    s.weight[o] / s.total_weight,
                    None if s.theta_lab is None else s.theta_lab[o],
                )
            )
        self.efficiencies = np.array([self._efficiency(float(m)) for m in masses])
        self._eff_grid: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def components(self, mass: float) -> tuple[list[tuple[int, float]], bool]:
        """The simulated samples used at ``mass`` with their mixture weights, and whether the
        mass lies outside the simulated range (extrapolation)."""
        ms = self.masses
        if mass <= ms[0] or mass >= ms[-1]:
            i = 0 if mass <= ms[0] else ms.size - 1
            return [(i, 1.0)], not math.isclose(mass, ms[i], rel_tol=1e-9)
        j = int(np.searchsorted(ms, mass, "right")) - 1
        f = (mass - ms[j]) / (ms[j + 1] - ms[j])
        comps = [(j, 1.0 - f), (j + 1, f)]
        return [(k, w) for k, w in comps if w > 0.0], False

    def _efficiency(self, mass: float) -> float:
        return float(self.events(mass)[2].sum())

    def efficiency(self, mass: ArrayLike) -> Any:
        """Selection efficiency at ``mass`` (GeV), all M^2.

        Without ``acceptance`` it is linear in M between the simulated masses and constant
        beyond them. With it, a scalar mass gets the efficiency of its moved events after
        the requirement; an array of masses interpolates a table of that on 256 masses.
        """
        a = np.asarray(mass, dtype=float)
        if self.acceptance is None:
            out = np.interp(a, self.masses, self.efficiencies)
        elif a.ndim == 0:
            return self._efficiency(float(a))
        else:
            if self._eff_grid is None:
                lo, hi = float(self.masses[0]), float(self.masses[-1])
                grid = np.unique(np.concatenate([np.linspace(lo, hi, 256), self.masses]))
                self._eff_grid = (grid, np.array([self._efficiency(float(m)) for m in grid]))
            out = np.interp(a, *self._eff_grid)
        return float(out) if np.ndim(out) == 0 else out

    def events(
        self, mass: float, m2_lo: float = -math.inf, m2_hi: float = math.inf
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Signal events placed at hypothesis ``mass``: (M^2, theta^CM, efficiency weight),
        only those with ``m2_lo <= M^2 < m2_hi``. Over all M^2 the weights sum to the
        efficiency at ``mass``."""
        m2h = mass * mass
        sh = float(self.resolution.sigma(m2h))
        zlo, zhi = (m2_lo - m2h) / sh, (m2_hi - m2h) / sh
        parts_m2, parts_th, parts_w = [], [], []
        for k, mix in self.components(mass)[0]:
            mp = self._mapped[k]
            sl = slice(
                int(np.searchsorted(mp.z, zlo, "left")), int(np.searchsorted(mp.z, zhi, "left"))
            )
            m2 = m2h + sh * mp.z[sl]
            th, w = mp.theta[sl], mix * mp.eff[sl]
            if self.acceptance is not None and mp.theta_lab is not None:
                ok = theta_recoil_acceptance(m2, mp.theta_lab[sl], self.acceptance)
                m2, th, w = m2[ok], th[ok], w[ok]
            parts_m2.append(m2)
            parts_th.append(th)
            parts_w.append(w)
        return np.concatenate(parts_m2), np.concatenate(parts_th), np.concatenate(parts_w)

    def template(self, window: Window, luminosity_fb: float) -> hist.Hist:
        """Expected events per fb of signal cross section in the window's 2D bins."""
        m2, th, w = self.events(window.mass_gev, window.m2_edges[0], window.m2_edges[-1])
        return _filled(window, m2, th, w * luminosity_fb)

    def wide_template(self, window: Window, luminosity_fb: float, n_nodes: int = 4096) -> hist.Hist:
        """Wide-Z' template (one theta bin): a relativistic Breit-Wigner in M^2 (half width
        ``M Gamma``, truncated like the generator to ``max(M - 15 Gamma, 1 MeV) < mu <
        sqrt(s) - 2 m_mu``, normalised to one there) convolved with a Gaussian of width
        ``sigma(mu^2)``, times the efficiency ``eps(mu)`` and the luminosity.

        The Breit-Wigner is integrated on ``n_nodes`` midpoints uniform in ``t = atan((mu^2 -
        M^2) / (M Gamma))`` (in which it is flat); the Gaussian bin integrals are exact (normal
        CDF). The MC statistical variance is set to zero (the shape is analytic).
        """
        if window.width_gev is None or window.width_gev <= 0:
            raise InputError(f"templates {window.name}: a wide template needs a Z' width")
        mass, width = window.mass_gev, window.width_gev
        mg = mass * width
        m2h = mass * mass
        mu_lo = max(mass - _BW_CUTOFF * width, _MU_MIN)
        mu_hi = SQRT_S - 2.0 * M_MUON
        t_lo, t_hi = math.atan((mu_lo**2 - m2h) / mg), math.atan((mu_hi**2 - m2h) / mg)
        t = t_lo + (np.arange(n_nodes) + 0.5) * ((t_hi - t_lo) / n_nodes)
        mu2 = m2h + mg * np.tan(t)
        eff = np.asarray(self.efficiency(np.sqrt(np.maximum(mu2, 0.0))))
        sig = np.asarray(self.resolution.sigma(mu2))
        cdf = (eff[None, :] * ndtr((window.m2_edges[:, None] - mu2[None, :]) / sig[None, :])).mean(
            axis=1
        )
        values = np.diff(cdf) * luminosity_fb
        one = window.with_theta([0.0, math.pi])
        return _from_arrays(one, values[:, None], np.zeros((values.size, 1)))


# --------------------------------------------------------------------------- validation
def _weighted_ks(
    a: NDArray[np.float64], wa: NDArray[np.float64], b: NDArray[np.float64], wb: NDArray[np.float64]
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic with weights, and its asymptotic p-value with the
    effective sample sizes ``(sum w)^2 / sum w^2`` (scipy's ``ks_2samp`` takes no weights)."""
    x = np.concatenate([a, b])
    order = np.argsort(x, kind="stable")
    ca = np.cumsum(np.concatenate([wa / wa.sum(), np.zeros(b.size)])[order])
    cb = np.cumsum(np.concatenate([np.zeros(a.size), wb / wb.sum()])[order])
    xs = x[order]
    last = np.r_[xs[1:] != xs[:-1], True]  # compare the ECDFs after each distinct value
    d = float(np.max(np.abs(ca - cb)[last]))
    na = wa.sum() ** 2 / np.sum(wa**2)
    nb = wb.sum() ** 2 / np.sum(wb**2)
    ne = na * nb / (na + nb)
    return d, float(kstwobign.sf(d * math.sqrt(ne)))


def interpolation_closure(
    samples: Sequence[SimulatedSignal],
    resolution: ResolutionModel,
    index: int,
    *,
    n_bins: int = 20,
    theta_edges_rad: ArrayLike | None = None,
    acceptance: SelectionConfig | None = None,
) -> dict[str, float]:
    """Hold out simulated mass ``index`` (not the first or last), build its template from the
    neighbours by interpolation, and compare it with its own simulation in a standard window
    (``n_bins`` resolution-wide bins centred on it, theta bins ``theta_edges_rad``).

    Returns ``mass``, the efficiencies (``eff_true``, ``eff_interp``, ``eff_ratio``,
    ``eff_pull``), the shape chi2 of the unit-normalised templates (``chi2``, ``ndf`` = filled
    bins - 1, ``p_value``) and a weighted KS test of the M^2 distributions in the window
    (``ks``, ``ks_p_value``). ``acceptance``: as for :class:`SignalModel` (applied to the
    held-out sample too).
    """
    ordered = sorted(samples, key=lambda s: s.mass)
    if not 0 < index < len(ordered) - 1:
        raise InputError("interpolation closure: the held-out mass needs a neighbour on each side")
    held = ordered[index]
    others = [s for i, s in enumerate(ordered) if i != index]
    model = SignalModel(others, resolution, acceptance)
    truth = SignalModel([held], resolution, acceptance)
    m2h = held.mass**2
    lo = m2h - 3.0 * float(resolution.sigma(m2h)) * n_bins
    scale = ResolutionScale(resolution, min(-2.0, lo), max(100.0, m2h + 3.0 * n_bins))
    uh = scale.u(m2h)
    edges = np.asarray(scale.m2(uh + np.arange(n_bins + 1) - 0.5 * n_bins))
    th = np.array([0.0, math.pi]) if theta_edges_rad is None else np.asarray(theta_edges_rad)
    win = Window(index=index, mass_gev=held.mass, m2_edges=edges, theta_edges=th)
    a, b = truth.template(win, 1.0), model.template(win, 1.0)
    va, vb = a.values().ravel(), b.values().ravel()
    ea, eb = a.variances().ravel(), b.variances().ravel()
    sa, sb = va.sum(), vb.sum()
    pa, pb = va / sa, vb / sb
    var = ea / sa**2 + eb / sb**2
    ok = var > 0
    chi2 = float(np.sum((pa - pb)[ok] ** 2 / var[ok]))
    ndf = int(ok.sum()) - 1
    ma, _, wa = truth.events(held.mass, edges[0], edges[-1])
    mb, _, wb = model.events(held.mass, edges[0], edges[-1])
    ks, ks_p = _weighted_ks(ma, wa, mb, wb)
    eff_t = float(truth.efficiency(held.mass))
    eff_i = float(model.efficiency(held.mass))
    n_eff = held.weight.sum() ** 2 / np.sum(held.weight**2)
    err = eff_t * math.sqrt(max(1.0 - eff_t, 0.0) / n_eff) if n_eff > 0 else math.inf
    # the neighbours' efficiencies carry their own statistical errors: combine (linear mix)
    err_i = 0.0
    for k, wmix in model.components(held.mass)[0]:
        s = others[k]
        ne = s.weight.sum() ** 2 / np.sum(s.weight**2)
        e_k = float(model.efficiencies[k])
        err_i += (wmix * e_k) ** 2 * max(1.0 - e_k, 0.0) / ne
    return {
        "mass": held.mass,
        "eff_true": eff_t,
        "eff_interp": eff_i,
        "eff_ratio": eff_i / eff_t,
        "eff_pull": float((eff_i - eff_t) / math.sqrt(err**2 + err_i)),
        "chi2": chi2,
        "ndf": ndf,
        "p_value": float(chi2_dist.sf(chi2, ndf)),
        "ks": ks,
        "ks_p_value": ks_p,
    }


def measured_widths(
    samples: Sequence[SimulatedSignal], estimator: str = "core", min_events: int = 200
) -> list[dict[str, float]]:
    """Width per simulated mass (for reports): ``mass_gev``, ``m2_gev2``, ``width_gev2``,
    ``error_gev2``, ``n``."""
    rows = []
    for s in sorted(samples, key=lambda x: x.mass):
        w, e = measure_width(
            s.residuals,
            estimator=estimator,
            min_events=min_events,
            label=f"signal M={s.mass:g} GeV",
        )
        rows.append(
            {
                "mass_gev": s.mass,
                "m2_gev2": s.mass**2,
                "width_gev2": w,
                "error_gev2": e,
                "n": len(s.m2),
            }
        )
    return rows
