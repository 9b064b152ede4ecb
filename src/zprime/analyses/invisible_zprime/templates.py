"""Fit templates per search window: 2D (M_recoil^2 x theta_recoil^CM) histograms of the signal,
the backgrounds and the data, with the PRL's systematic uncertainties attached.

What the PRL (PRL 130, 231801 (2023)) prescribes and how it is done here:

- "a binned likelihood based on signal and background two-dimensional templates obtained from
  simulation. The parameter of interest is the signal cross section": every template is a
  :class:`hist.Hist` with ``Weight`` storage (sum of w and of w^2) on the window's bins
  (:mod:`zprime.analyses.invisible_zprime.binning`); backgrounds hold expected events (event weight
  in fb times the
  luminosity in fb^-1); the signal holds expected events **per fb of sigma x B**, i.e.
  efficiency x luminosity per bin, so the fit's POI is the cross section in fb.
- signal templates at every hypothesis from a handful of simulated masses
  (:class:`SignalModel`): each simulated event is placed at the hypothesis by the
  *shift-and-scale* map ``M^2_reco -> M_h^2 + sigma(M_h^2) (M^2_reco - M_s^2) / sigma(M_s^2)``
  (the shape in resolution units is carried over), its theta_recoil^CM is kept, and the two
  simulated masses that bracket ``M_h`` are mixed with weights linear in M; the efficiency is
  thereby interpolated linearly in M as well. Outside the simulated range the nearest sample is
  used alone (shape mapped, efficiency held) and the window is flagged ``extrapolated``.
  Closure: :func:`interpolation_closure`, numbers in ``docs/templates.md``.
- wide Z' (Gamma = 0.1 M): "Breit-Wigner distributions with the widths Gamma convolved with
  Gaussian resolution functions ... only one-dimensional M_recoil^2 templates"
  (:meth:`SignalModel.wide_template`).
- systematic uncertainties (the PRL's "Systematic uncertainties" paragraphs; values in the
  configuration, ``templates.systematics``): signal efficiency per M^2 range (normsys), per-bin
  signal shape, per-bin background shape per range, per-bin photon-veto background shape on the
  mu mu component, luminosity, and the templates' MC statistical uncertainty
  (:class:`SystematicsTable`).

Flattening: a window's 2D template is one pyhf channel; bins are flattened **row-major** with
M_recoil^2 as the slow index, ``flat = i_m2 * n_theta + i_theta`` (``values().ravel()``), and
:meth:`WindowTemplates.bin_map` lists ``(i_m2, i_theta)`` per flat bin.

Files: one JSON per hypothesis, ``<dir>/<name>.json`` (name
:func:`zprime.analyses.invisible_zprime.binning.
hypothesis_name`, e.g. ``M2.3520.json``), plus ``<dir>/index.json`` with the list of windows,
the failed ones and their reasons, the resolution model and the grid; all written atomically.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime._util import read_json_object, write_json_atomic
from zprime.analyses.invisible_zprime.binning import (
    ResolutionModel,
    ResolutionScale,
    Window,
    grid_summary,
    hypothesis_grid,
    make_windows,
    measure_width,
    resolution_model_from_config,
    theta_bin_count,
    theta_edges,
    wide_window,
)
from zprime.config import (
    Config,
    SelectionConfig,
    SystematicsConfig,
    SystematicsValues,
    ThetaBinningConfig,
)
from zprime.errors import ConfigError, InputError
from zprime.physics.constants import M_MUON, SQRT_S

__all__ = [
    "FORMAT_VERSION",
    "EmptyWindowError",
    "EventSample",
    "SignalModel",
    "SimulatedSignal",
    "SystematicsTable",
    "TemplateSet",
    "WindowTemplates",
    "build_templates",
    "build_window",
    "interpolation_closure",
    "load_systematics",
    "measured_widths",
    "read_templates",
    "read_window",
    "templates_from_config",
    "theta_recoil_acceptance",
    "write_templates",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the template JSON format."""

FLATTEN_ORDER = "row-major (m_recoil2, theta_recoil_cm): flat = i_m2 * n_theta + i_theta"

_BW_CUTOFF = (
    15.0  # MadGraph5 bwcutoff, as zprime.generators.signal.BW_CUTOFF (Breit-Wigner truncation)
)
_MU_MIN = (
    1e-3  # lowest Z' virtuality of a truncated Breit-Wigner, GeV (as zprime.generators.signal)
)


class EmptyWindowError(InputError):
    """A window without expected background (or signal); the fit records it as failed."""


# --------------------------------------------------------------------------- inputs
def _column(events: Any, name: str, sample: str) -> NDArray[np.float64]:
    try:
        col = events[name]
    except (KeyError, ValueError, ak.errors.FieldNotFoundError):
        raise InputError(f"sample {sample!r}: missing column {name!r}") from None
    return np.asarray(ak.to_numpy(col) if isinstance(col, ak.Array) else col, dtype=np.float64)


def _check_finite(sample: str, **cols: NDArray[np.float64]) -> None:
    for key, arr in cols.items():
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(
                f"sample {sample!r}: column {key!r} is NaN/inf at event {int(np.argmax(bad))}"
            )


@dataclass
class EventSample:
    """Selected events of one sample: the two fit variables and the weights.

    ``weight`` is fb per event (expected events = weight x luminosity); for a data sample
    (``is_data``) every event counts once and the weights are ignored. The arrays are sorted
    by ``m2`` on construction.
    """

    name: str
    m2: NDArray[np.float64]
    """M_recoil^2, GeV^2."""
    theta: NDArray[np.float64]
    """theta_recoil^CM, rad."""
    weight: NDArray[np.float64]
    """fb per event."""
    is_data: bool = False

    def __post_init__(self) -> None:
        self.m2 = np.asarray(self.m2, dtype=np.float64).ravel()
        self.theta = np.asarray(self.theta, dtype=np.float64).ravel()
        self.weight = (
            np.ones_like(self.m2)
            if self.weight is None
            else np.asarray(self.weight, dtype=np.float64).ravel()
        )
        if not (self.m2.size == self.theta.size == self.weight.size):
            raise InputError(f"sample {self.name!r}: m2, theta and weight lengths differ")
        _check_finite(self.name, m_recoil2=self.m2, theta_recoil_cm=self.theta, weight=self.weight)
        order = np.argsort(self.m2, kind="stable")
        self.m2, self.theta, self.weight = self.m2[order], self.theta[order], self.weight[order]

    @classmethod
    def from_events(cls, name: str, events: Any, *, is_data: bool = False) -> EventSample:
        """From selected events (reconstructed schema: ``m_recoil2``, ``theta_recoil_cm``,
        ``weight``; any mapping of arrays with these keys)."""
        m2 = _column(events, "m_recoil2", name)
        th = _column(events, "theta_recoil_cm", name)
        w = np.ones_like(m2) if is_data else _column(events, "weight", name)
        return cls(name, m2, th, w, is_data=is_data)

    @classmethod
    def read(
        cls, path: str | Path, name: str | None = None, *, is_data: bool = False
    ) -> EventSample:
        """From a selected Parquet file (``selected/<sample>.parquet``)."""
        from zprime.io.events import read_events, read_metadata

        meta = read_metadata(path)
        label = name or str(meta.get("sample", Path(path).stem))
        cols = ["m_recoil2", "theta_recoil_cm"] + ([] if is_data else ["weight"])
        return cls.from_events(label, read_events(path, cols), is_data=is_data)

    def __len__(self) -> int:
        return int(self.m2.size)

    def window(self, lo: float, hi: float) -> slice:
        """Slice of the (sorted) events with ``lo <= m2 < hi``."""
        return slice(
            int(np.searchsorted(self.m2, lo, "left")), int(np.searchsorted(self.m2, hi, "left"))
        )


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
        from zprime.io.events import read_events, read_metadata

        meta = read_metadata(path)
        try:
            mass, sigma = float(meta["mass_gev"]), float(meta["sigma_fb"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{path}: metadata lacks mass_gev / sigma_fb of a signal sample"
            ) from None
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        cols = ["m_recoil2", "theta_recoil_cm", "weight"]
        cols += [c for c in ("m_recoil2_true", "theta_recoil") if c in names]  # optional
        return cls.from_events(mass, read_events(path, cols), sigma)


# --------------------------------------------------------------------------- histograms
def _hist2d(m2_edges: ArrayLike, th_edges: ArrayLike) -> hist.Hist:
    return hist.Hist(
        hist.axis.Variable(
            np.asarray(m2_edges), name="m_recoil2", label="M_recoil^2 [GeV^2]", flow=False
        ),
        hist.axis.Variable(
            np.asarray(th_edges), name="theta_recoil_cm", label="theta_recoil^CM [rad]", flow=False
        ),
        storage=hist.storage.Weight(),
    )


def _filled(
    window: Window, m2: NDArray[np.float64], theta: NDArray[np.float64], w: NDArray[np.float64]
) -> hist.Hist:
    h = _hist2d(window.m2_edges, window.theta_edges)
    lo, hi = window.m2_edges[0], window.m2_edges[-1]
    keep = (m2 >= lo) & (m2 < hi)
    if keep.any():
        h.fill(m2[keep], np.clip(theta[keep], 0.0, np.nextafter(math.pi, 0.0)), weight=w[keep])
    return h


def _from_arrays(window: Window, values: ArrayLike, variances: ArrayLike) -> hist.Hist:
    h = _hist2d(window.m2_edges, window.theta_edges)
    v = np.asarray(values, dtype=float).reshape(window.shape)
    var = np.asarray(variances, dtype=float).reshape(window.shape)
    h.view().value = v
    h.view().variance = var
    return h


def _check_hist(h: hist.Hist, window: str, sample: str) -> None:
    v = h.values()
    for what, arr in (("content", v), ("variance", h.variances())):
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = np.unravel_index(int(np.argmax(bad)), arr.shape)
            raise InputError(
                f"templates {window}: sample {sample!r} has a NaN/inf {what} "
                f"in bin {tuple(map(int, idx))}"
            )
    if np.any(v < 0):
        idx = np.unravel_index(int(np.argmin(v)), v.shape)
        raise InputError(
            f"templates {window}: sample {sample!r} has negative content {v.min():g} "
            f"in bin {tuple(map(int, idx))}"
        )


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
        from scipy.special import ndtr

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


# --------------------------------------------------------------------------- systematics
@dataclass(frozen=True)
class SystematicsTable:
    """Relative systematic uncertainties by M_recoil^2 range (PRL values by default).

    ``signal_efficiency`` is chosen by the hypothesis M^2 (one normsys per window); the per-bin
    ``background_shape`` and ``photon_veto_shape`` by the M^2 at the centre of each bin. M^2
    outside all ranges takes the nearest range (e.g. window bins below -0.5 GeV^2 the first).
    """

    m2_ranges: tuple[tuple[float, float], ...]
    signal_efficiency: tuple[float, ...]
    signal_shape: float
    background_shape: tuple[float, ...]
    photon_veto_split: float
    photon_veto_shape: tuple[float, float]
    photon_veto_samples: tuple[str, ...]
    luminosity: float
    mc_stat: bool = True
    source: str = "prl"

    @classmethod
    def from_values(
        cls, values: SystematicsValues, *, mc_stat: bool = True, source: str = "prl"
    ) -> SystematicsTable:
        """From a validated ``SystematicsValues`` block."""
        return cls(
            m2_ranges=tuple((float(a), float(b)) for a, b in values.m2_ranges_gev2),
            signal_efficiency=tuple(values.signal_efficiency),
            signal_shape=values.signal_shape,
            background_shape=tuple(values.background_shape),
            photon_veto_split=values.photon_veto_split_m2_gev2,
            photon_veto_shape=(values.photon_veto_shape[0], values.photon_veto_shape[1]),
            photon_veto_samples=tuple(values.photon_veto_samples),
            luminosity=values.luminosity,
            mc_stat=mc_stat,
            source=source,
        )

    def range_index(self, m2: ArrayLike) -> Any:
        """Index of the M^2 range of each ``m2`` (nearest range outside them all)."""
        uppers = np.array([hi for _, hi in self.m2_ranges[:-1]])
        out = np.searchsorted(uppers, np.asarray(m2, dtype=float), side="right")
        return int(out) if np.ndim(out) == 0 else out

    def signal_efficiency_at(self, m2: float) -> float:
        """Relative signal-efficiency uncertainty of a hypothesis at ``m2``."""
        return float(self.signal_efficiency[self.range_index(m2)])

    def background_shape_at(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Relative per-bin background-shape uncertainty at bin-centre ``m2``."""
        return np.asarray(self.background_shape, dtype=float)[self.range_index(np.atleast_1d(m2))]

    def photon_veto_at(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Relative per-bin photon-veto shape uncertainty at bin-centre ``m2``."""
        a = np.atleast_1d(np.asarray(m2, dtype=float))
        return np.where(a < self.photon_veto_split, *self.photon_veto_shape)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the ``SystematicsValues`` fields plus ``mc_stat`` and ``source``)."""
        return {
            "source": self.source,
            "mc_stat": self.mc_stat,
            "m2_ranges_gev2": [list(r) for r in self.m2_ranges],
            "signal_efficiency": list(self.signal_efficiency),
            "signal_shape": self.signal_shape,
            "background_shape": list(self.background_shape),
            "photon_veto_split_m2_gev2": self.photon_veto_split,
            "photon_veto_shape": list(self.photon_veto_shape),
            "photon_veto_samples": list(self.photon_veto_samples),
            "luminosity": self.luminosity,
        }


def _values_from_json(path: Path, key: str | None) -> SystematicsValues:
    from pydantic import ValidationError

    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such systematics file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise InputError(f"{path}: no '{key}' entry (written by the control stage)")
        data = data[key]
    if not isinstance(data, dict):
        raise InputError(f"{path}: systematics must be a JSON object")
    data = {k: v for k, v in data.items() if k not in ("source", "mc_stat")}
    try:
        return SystematicsValues.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: systematics field '{where}': {first['msg']}") from None


def load_systematics(
    cfg: SystematicsConfig, corrections: str | Path | None = None
) -> SystematicsTable:
    """The systematic uncertainties the configuration asks for.

    ``source: prl``: the table in the configuration (the PRL's values by default);
    ``file``: a JSON object with the same fields at ``cfg.file``; ``derived``: the
    ``systematics`` entry of ``corrections.json`` (``corrections``, else ``cfg.file``), written
    by the control-sample stage.

    Raises
    ------
    ConfigError
        ``file``/``derived`` without a file.
    InputError
        Missing file, missing entry, or an invalid value (naming the file and field).
    """
    if cfg.source == "prl":
        return SystematicsTable.from_values(cfg.prl, mc_stat=cfg.mc_stat, source="prl")
    path = corrections if cfg.source == "derived" and corrections is not None else cfg.file
    if path is None:
        raise ConfigError(
            f"config field 'templates.systematics.file': needed for source '{cfg.source}'"
        )
    key = "systematics" if cfg.source == "derived" else None
    values = _values_from_json(Path(path), key)
    return SystematicsTable.from_values(values, mc_stat=cfg.mc_stat, source=f"{cfg.source}:{path}")


# --------------------------------------------------------------------------- window templates
@dataclass
class WindowTemplates:
    """The templates of one search window and the uncertainties attached to them.

    The 2D histograms share the window's bins; :meth:`workspace_inputs` flattens them
    (row-major, :data:`FLATTEN_ORDER`) into the keyword arguments of
    :func:`zprime.stats.workspace.build_workspace`, and :meth:`metadata` gives the bin map,
    edges and hypothesis for the workspace's sidecar file.
    """

    window: Window
    luminosity_fb: float
    signal: hist.Hist
    """Expected events per fb of signal cross section (efficiency x luminosity per bin)."""
    backgrounds: dict[str, hist.Hist]
    """Expected events per background sample."""
    observed: hist.Hist | None
    """Observed (pseudo-)data counts; ``None``: none given (the expected background is used)."""
    signal_efficiency: float
    """Selection efficiency at the hypothesis (all M^2, not only the window)."""
    systematics: SystematicsTable
    extrapolated: bool = False
    """The hypothesis lies outside the simulated signal masses."""
    notes: list[str] = field(default_factory=list)

    # -- geometry ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Hypothesis name, e.g. ``M2.3520``."""
        return self.window.name

    @property
    def mass_gev(self) -> float:
        """Hypothesis mass, GeV."""
        return self.window.mass_gev

    @property
    def shape(self) -> tuple[int, int]:
        """(M^2 bins, theta bins)."""
        return self.window.shape

    @property
    def n_bins(self) -> int:
        """Flattened bins."""
        return self.window.n_bins

    def bin_map(self) -> NDArray[np.int64]:
        """``(i_m2, i_theta)`` of every flattened bin (row-major: i_m2 slow)."""
        a, b = self.shape
        return np.stack(np.unravel_index(np.arange(a * b), (a, b)), axis=1).astype(np.int64)

    def m2_centres(self) -> NDArray[np.float64]:
        """M^2 bin centre of every flattened bin, GeV^2."""
        e = self.window.m2_edges
        return np.repeat(0.5 * (e[1:] + e[:-1]), self.shape[1])

    # -- uncertainties -----------------------------------------------------------------------
    @property
    def signal_efficiency_unc(self) -> float:
        """Relative signal-efficiency uncertainty (by the hypothesis M^2)."""
        return self.systematics.signal_efficiency_at(self.window.m2_gev2)

    def signal_shape_unc(self) -> NDArray[np.float64]:
        """Relative per-bin signal shape uncertainty (flat)."""
        return np.full(self.n_bins, self.systematics.signal_shape)

    def background_shape_unc(self) -> NDArray[np.float64]:
        """Relative per-bin shape uncertainty of the total background (flat, by bin M^2)."""
        return self.systematics.background_shape_at(self.m2_centres())

    def photon_veto_unc(self) -> NDArray[np.float64]:
        """Relative per-bin photon-veto uncertainty of the mu mu component (flat, by bin M^2)."""
        return self.systematics.photon_veto_at(self.m2_centres())

    def total_background(self) -> NDArray[np.float64]:
        """Expected background per flattened bin."""
        return np.sum([h.values().ravel() for h in self.backgrounds.values()], axis=0)

    # -- export ------------------------------------------------------------------------------
    def workspace_inputs(self, merge_backgrounds: bool = True) -> dict[str, Any]:
        """Keyword arguments of :func:`zprime.stats.workspace.build_workspace`.

        ``merge_backgrounds``: one sample ``background`` (the sum; the PRL fits one background
        template with a free normalisation) whose per-bin relative shape uncertainty is
        ``sqrt((r_bkg B)^2 + sum_k (r_pv b_k)^2) / B`` over the photon-veto samples k (the two
        are independent per-bin Gaussian shifts, so this is exact); otherwise one sample each,
        with ``sqrt(r_bkg^2 + r_pv^2)`` on the photon-veto samples and ``r_bkg`` on the rest.
        """
        syst = self.systematics
        sig = self.signal.values().ravel()
        flat = {k: h.values().ravel() for k, h in self.backgrounds.items()}
        var = {k: h.variances().ravel() for k, h in self.backgrounds.items()}
        rb = self.background_shape_unc()
        rpv = self.photon_veto_unc()
        pv = [k for k in flat if k in syst.photon_veto_samples]
        if merge_backgrounds:
            total = np.sum(list(flat.values()), axis=0)
            absq = (rb * total) ** 2 + sum(((rpv * flat[k]) ** 2 for k in pv), np.zeros_like(total))
            rel = np.where(total > 0, np.sqrt(absq) / np.where(total > 0, total, 1.0), rb)
            backgrounds = {"background": total}
            shape_unc: dict[str, NDArray[np.float64]] = {"background": rel}
            mc = {"background": np.sqrt(np.sum(list(var.values()), axis=0))}
        else:
            backgrounds = flat
            shape_unc = {k: np.sqrt(rb**2 + (rpv**2 if k in pv else 0.0)) for k in flat}
            mc = {k: np.sqrt(v) for k, v in var.items()}
        observed = (
            self.observed.values().ravel() if self.observed is not None else self.total_background()
        )
        out: dict[str, Any] = {
            "signal": sig,
            "backgrounds": backgrounds,
            "observed": observed,
            "name": self.name,
            "signal_shape_unc": self.signal_shape_unc(),
            "background_shape_unc": shape_unc,
            "signal_efficiency_unc": self.signal_efficiency_unc,
            "lumi_unc": syst.luminosity,
        }
        if syst.mc_stat:
            out["signal_mc_unc"] = np.sqrt(self.signal.variances().ravel())
            out["background_mc_unc"] = mc
        return out

    def metadata(self) -> dict[str, Any]:
        """Bin map, edges, hypothesis and bookkeeping (the workspace's sidecar metadata)."""
        w = self.window
        return {
            "name": self.name,
            "index": w.index,
            "mass_gev": w.mass_gev,
            "m2_gev2": w.m2_gev2,
            "width_gev": w.width_gev,
            "luminosity_fb": self.luminosity_fb,
            "m2_edges_gev2": w.m2_edges.tolist(),
            "theta_edges_rad": w.theta_edges.tolist(),
            "shape": list(self.shape),
            "flatten": FLATTEN_ORDER,
            "bin_map": self.bin_map().tolist(),
            "window_shift_units": w.shift,
            "signal_efficiency": self.signal_efficiency,
            "extrapolated": self.extrapolated,
            "observed_is_asimov": self.observed is None,
            "systematics_source": self.systematics.source,
            "notes": list(self.notes),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON of the window (inverse: :meth:`from_dict`)."""

        def hd(h: hist.Hist) -> dict[str, Any]:
            return {"values": h.values().tolist(), "variances": h.variances().tolist()}

        return {
            "format": FORMAT_VERSION,
            **self.metadata(),
            "signal": hd(self.signal),
            "backgrounds": {k: hd(h) for k, h in self.backgrounds.items()},
            "observed": None if self.observed is None else hd(self.observed),
            "systematics": self.systematics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "templates") -> WindowTemplates:
        """Rebuild a window from :meth:`to_dict` output.

        Raises
        ------
        InputError
            Unknown format or missing fields, naming ``where``.
        """
        if data.get("format") != FORMAT_VERSION:
            raise InputError(
                f"{where}: template format {data.get('format')!r} is not {FORMAT_VERSION}"
            )
        try:
            window = Window(
                index=int(data["index"]),
                mass_gev=float(data["mass_gev"]),
                m2_edges=np.asarray(data["m2_edges_gev2"], dtype=float),
                theta_edges=np.asarray(data["theta_edges_rad"], dtype=float),
                width_gev=None if data.get("width_gev") is None else float(data["width_gev"]),
                shift=float(data.get("window_shift_units", 0.0)),
            )

            def hh(d: Mapping[str, Any]) -> hist.Hist:
                return _from_arrays(window, d["values"], d["variances"])

            s = data["systematics"]
            table = SystematicsTable.from_values(
                SystematicsValues.model_validate(
                    {k: v for k, v in s.items() if k not in ("source", "mc_stat")}
                ),
                mc_stat=bool(s.get("mc_stat", True)),
                source=str(s.get("source", "")),
            )
            return cls(
                window=window,
                luminosity_fb=float(data["luminosity_fb"]),
                signal=hh(data["signal"]),
                backgrounds={k: hh(v) for k, v in data["backgrounds"].items()},
                observed=None if data.get("observed") is None else hh(data["observed"]),
                signal_efficiency=float(data["signal_efficiency"]),
                systematics=table,
                extrapolated=bool(data.get("extrapolated", False)),
                notes=list(data.get("notes", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed template file ({exc})") from None


_WIDEN = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Factors by which the M^2 range that places the quantile theta edges is widened (about the
window's centre) until it holds ``n_bins * min_events_per_bin`` background MC events."""


def _theta_events(
    window: Window, backgrounds: Mapping[str, EventSample], cfg: ThetaBinningConfig
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """theta^CM and weights of the binning samples around the window (quantile method)."""
    if cfg.method != "quantile":
        return None, None
    samples = [backgrounds[n] for n in cfg.samples if n in backgrounds]
    if not samples:
        return None, None
    need = theta_bin_count(window.m2_gev2, cfg) * cfg.min_events_per_bin
    lo, hi = float(window.m2_edges[0]), float(window.m2_edges[-1])
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    th = ww = np.empty(0)
    for f in _WIDEN:
        a, b = (lo, hi) if f == 1.0 else (mid - f * half, mid + f * half)
        sls = [s.window(a, b) for s in samples]
        th = np.concatenate([s.theta[sl] for s, sl in zip(samples, sls, strict=True)])
        ww = np.concatenate([s.weight[sl] for s, sl in zip(samples, sls, strict=True)])
        if th.size >= need:
            break
    return th, ww


def _flat_background(
    window: Window, backgrounds: Mapping[str, EventSample], luminosity_fb: float
) -> dict[str, hist.Hist]:
    """Flat templates for a window that the simulation leaves empty (see :func:`build_window`).

    Each sample gets its density in a five times wider M^2 range (events per GeV^2, uniform in
    theta over the window's theta range) times the bin areas; a sample empty there too gets the
    yield of its smallest-weight event spread over the window. The bin variance is the square of
    the content: the template is an estimate known to about 100%.
    """
    lo, hi = window.m2_edges[0], window.m2_edges[-1]
    span = hi - lo
    dm2 = np.diff(window.m2_edges)
    dth = np.diff(window.theta_edges)
    area = np.outer(dm2, dth) / (span * (window.theta_edges[-1] - window.theta_edges[0]))
    out: dict[str, hist.Hist] = {}
    for name, s in backgrounds.items():
        sl = s.window(lo - 2.0 * span, hi + 2.0 * span)
        yield_wide = float(np.sum(s.weight[sl])) * luminosity_fb
        if yield_wide > 0:
            level = yield_wide / 5.0
        elif s.weight.size:
            level = float(np.min(s.weight[s.weight > 0], initial=np.inf)) * luminosity_fb
            level = level if np.isfinite(level) else 0.0
        else:
            level = 0.0
        values = level * area
        out[name] = _from_arrays(window, values, values**2)
    return out


def build_window(
    window: Window,
    signal: SignalModel,
    backgrounds: Mapping[str, EventSample],
    data: EventSample | None = None,
    *,
    luminosity_fb: float,
    systematics: SystematicsTable,
    theta_cfg: ThetaBinningConfig | None = None,
    empty_background: str = "fail",
    smoothing: Mapping[str, Any] | None = None,
) -> WindowTemplates:
    """Templates of one window.

    ``empty_background`` says what to do when no simulated background event falls in the
    window: ``"fail"`` raises :class:`EmptyWindowError`; ``"flat"`` uses a flat template whose
    level is the background density of the simulation in a five times wider M^2 range around the
    window (or, if that is empty too, one simulated event's yield spread over the window), with a
    note; the fit's free background normalisation then takes its level from the data.

    Parameters
    ----------
    window
        The window (:mod:`zprime.analyses.invisible_zprime.binning`). A wide window (``width_gev``
        set) gets 1D templates
        (one theta bin) and the Breit-Wigner signal.
    signal
        The signal model.
    backgrounds
        Selected background samples by name.
    data
        Selected (pseudo-)data, or ``None``.
    luminosity_fb
        Integrated luminosity, fb^-1.
    systematics
        The uncertainties to attach.
    theta_cfg
        theta binning; ``None`` keeps ``window.theta_edges``. With the quantile method the edges
        come from the events of ``theta_cfg.samples`` inside the window; where these are fewer
        than ``n_bins * min_events_per_bin``, from a range about the window's centre widened
        2, 4, 8 or 16 times (only the edges; the templates are filled in the window).
    smoothing
        Smoothed backgrounds by name
        (:class:`zprime.analyses.invisible_zprime.smoothing.KdeBackground`, from
        :func:`zprime.analyses.invisible_zprime.smoothing.smoothing_from_config`): a sample named
        here gets its smoothed
        template instead of the histogram of its events; ``None``: none.

    Raises
    ------
    InputError
        Negative or NaN template contents, naming the hypothesis and the sample.
    EmptyWindowError
        No expected background (or no signal) anywhere in the window.
    """
    if not backgrounds:
        raise InputError(f"templates {window.name}: no background sample given")
    lo, hi = float(window.m2_edges[0]), float(window.m2_edges[-1])
    wide = window.width_gev is not None
    if wide:
        window = window.with_theta([0.0, math.pi])
    elif theta_cfg is not None:
        th, ww = _theta_events(window, backgrounds, theta_cfg)
        edges = theta_edges(window.m2_gev2, theta_cfg, th, ww)
        window = window.with_theta(edges)

    notes: list[str] = []
    bk: dict[str, hist.Hist] = {}
    for name, s in backgrounds.items():
        if smoothing is not None and name in smoothing:
            h = smoothing[name].template(window, luminosity_fb)
        else:
            sl = s.window(lo, hi)
            h = _filled(window, s.m2[sl], s.theta[sl], s.weight[sl] * luminosity_fb)
        _check_hist(h, window.name, name)
        bk[name] = h
    obs = None
    if data is not None:
        sl = data.window(lo, hi)
        obs = _filled(window, data.m2[sl], data.theta[sl], np.ones(sl.stop - sl.start))
    if wide:
        sig = signal.wide_template(window, luminosity_fb)
        eff = signal.efficiency(window.mass_gev)
    else:
        sig = signal.template(window, luminosity_fb)
        eff = signal.efficiency(window.mass_gev)
    _check_hist(sig, window.name, "signal")
    extrapolated = signal.components(window.mass_gev)[1]
    if extrapolated:
        notes.append("signal extrapolated from the nearest simulated mass")

    total = np.sum([h.values() for h in bk.values()], axis=0)
    if not np.any(total > 0) and empty_background == "flat":
        bk = _flat_background(window, backgrounds, luminosity_fb)
        total = np.sum([h.values() for h in bk.values()], axis=0)
        notes.append(
            "no simulated background in the window: flat template at the density of the "
            "simulation around it (normalisation free in the fit)"
        )
    if not np.any(total > 0):
        raise EmptyWindowError(f"templates {window.name}: zero expected background in every bin")
    if not np.any(sig.values() > 0):
        raise EmptyWindowError(f"templates {window.name}: zero expected signal in every bin")
    n_empty = int(np.count_nonzero(total <= 0))
    if n_empty:
        notes.append(f"{n_empty} of {total.size} bins without expected background")
    return WindowTemplates(
        window=window,
        luminosity_fb=luminosity_fb,
        signal=sig,
        backgrounds=bk,
        observed=obs,
        signal_efficiency=float(eff),
        systematics=systematics,
        extrapolated=extrapolated,
        notes=notes,
    )


# --------------------------------------------------------------------------- all windows
@dataclass
class TemplateSet:
    """The templates of all windows of a scan, and the windows that failed."""

    windows: list[WindowTemplates]
    failed: dict[str, str] = field(default_factory=dict)
    """Hypothesis name -> reason (e.g. no expected background); never silently dropped."""
    failed_mass: dict[str, float] = field(default_factory=dict)
    resolution: ResolutionModel | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """Grid summary, settings and provenance."""

    def __len__(self) -> int:
        return len(self.windows)

    def by_name(self) -> dict[str, WindowTemplates]:
        """The windows by hypothesis name."""
        return {w.name: w for w in self.windows}


def _build_chunk(
    indices: Sequence[int],
    *,
    windows: Sequence[Window],
    signal: SignalModel,
    backgrounds: Mapping[str, EventSample],
    data: EventSample | None,
    luminosity_fb: float,
    systematics: SystematicsTable,
    theta_cfg: ThetaBinningConfig | None,
    empty_background: str = "fail",
    smoothing: Mapping[str, Any] | None = None,
) -> list[WindowTemplates | tuple[str, float, str]]:
    out: list[WindowTemplates | tuple[str, float, str]] = []
    for i in indices:
        w = windows[i]
        try:
            out.append(
                build_window(
                    w,
                    signal,
                    backgrounds,
                    data,
                    luminosity_fb=luminosity_fb,
                    systematics=systematics,
                    theta_cfg=theta_cfg,
                    empty_background=empty_background,
                    smoothing=smoothing,
                )
            )
        except EmptyWindowError as exc:
            out.append((w.name, w.mass_gev, str(exc)))
    return out


def build_templates(
    windows: Sequence[Window],
    signal: SignalModel,
    backgrounds: Mapping[str, EventSample],
    data: EventSample | None = None,
    *,
    luminosity_fb: float,
    systematics: SystematicsTable,
    theta_cfg: ThetaBinningConfig | None = None,
    empty_background: str = "fail",
    executor: Any = "serial",
    chunks: int = 1,
    smoothing: Mapping[str, Any] | None = None,
) -> TemplateSet:
    """Templates of every window. A window without expected background (or signal) is recorded
    in :attr:`TemplateSet.failed` with its reason and logged as a warning, never dropped
    silently; bad inputs (negative/NaN contents) raise.

    ``executor``/``chunks``: windows are split into ``chunks`` tasks for
    :func:`zprime.parallel.map_tasks` (default: serial in this process; the inputs are sent
    once per chunk).
    """
    from zprime.parallel import map_tasks

    n = len(windows)
    parts = [list(a) for a in np.array_split(np.arange(n), max(1, min(chunks, n))) if a.size]
    fn = partial(
        _build_chunk,
        empty_background=empty_background,
        smoothing=smoothing,
        windows=windows,
        signal=signal,
        backgrounds=backgrounds,
        data=data,
        luminosity_fb=luminosity_fb,
        systematics=systematics,
        theta_cfg=theta_cfg,
    )
    results = map_tasks(fn, parts, executor=executor, progress=False)
    tset = TemplateSet(windows=[], resolution=signal.resolution)
    for chunk in results:
        for r in chunk:
            if isinstance(r, WindowTemplates):
                tset.windows.append(r)
            else:
                name, mass, msg = r
                tset.failed[name] = msg
                tset.failed_mass[name] = mass
                log.warning("%s (recorded as failed)", msg)
    return tset


def templates_from_config(
    config: Config,
    signals: Sequence[SimulatedSignal],
    backgrounds: Mapping[str, EventSample],
    data: EventSample | None = None,
    *,
    wide: bool = False,
    resolution: ResolutionModel | None = None,
    corrections: str | Path | None = None,
    executor: Any = "serial",
    chunks: int = 1,
) -> TemplateSet:
    """The whole template stage from a configuration: resolution model (measured from
    ``signals`` unless given), hypothesis grid, windows (narrow, or wide with ``wide=True``),
    systematics, templates of every window.

    Only the backgrounds named by ``templates.backgrounds`` (default
    ``backgrounds.default_run``) that are present in ``backgrounds`` are used; a named one
    that is missing is an error.
    """
    bcfg, tcfg = config.binning, config.templates
    if resolution is None:
        measured = {s.mass: s.residuals for s in signals}
        resolution = resolution_model_from_config(bcfg, measured)
    names = tcfg.backgrounds if tcfg.backgrounds is not None else config.backgrounds.default_run
    if tcfg.backgrounds is not None:
        missing = [n for n in names if n not in backgrounds]
        if missing:
            raise InputError(f"templates: background sample {missing[0]!r} was not given")
    used = {n: backgrounds[n] for n in names if n in backgrounds} or dict(backgrounds)
    lo, hi = bcfg.m2_range_gev2
    scale = ResolutionScale(resolution, lo, hi)
    grid = hypothesis_grid(scale, bcfg.mass_min_gev, bcfg.mass_max_gev, bcfg.step_resolution_units)
    if wide:
        windows = [
            wide_window(i, float(m), scale, bcfg.wide, min_bins=bcfg.window_bins, m2_range=(lo, hi))
            for i, m in enumerate(grid.masses)
        ]
    else:
        windows = make_windows(grid, scale, bcfg.window_bins, (lo, hi))
    syst = load_systematics(tcfg.systematics, corrections)
    from zprime.analyses.invisible_zprime.smoothing import smoothing_from_config

    smoothing = smoothing_from_config(config, used, resolution)
    tset = build_templates(
        windows,
        SignalModel(signals, resolution, config.selection if tcfg.reapply_theta_recoil else None),
        used,
        data,
        luminosity_fb=config.luminosity_fb,
        systematics=syst,
        theta_cfg=bcfg.theta,
        empty_background=tcfg.empty_background,
        executor=executor,
        chunks=chunks,
        smoothing=smoothing,
    )
    tset.info = {
        "grid": grid_summary(grid),
        "wide": wide,
        "width_over_mass": bcfg.wide.width_over_mass if wide else None,
        "backgrounds": list(used),
        "simulated_masses_gev": sorted(s.mass for s in signals),
        "luminosity_fb": config.luminosity_fb,
        "merge_backgrounds": tcfg.merge_backgrounds,
        "background_smoothing": tcfg.background_smoothing,
    }
    if smoothing is not None:
        tset.info["smoothing"] = {k: v.summary() for k, v in smoothing.items()}
    return tset


# --------------------------------------------------------------------------- files
def write_templates(
    directory: str | Path, tset: TemplateSet, *, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Write ``<directory>/<name>.json`` per window and ``<directory>/index.json``; returns the
    index path. Every file is written atomically."""
    d = Path(directory)
    entries = []
    for w in tset.windows:
        write_json_atomic(d / f"{w.name}.json", w.to_dict())
        entries.append(
            {"name": w.name, "mass_gev": w.mass_gev, "file": f"{w.name}.json", "status": "ok"}
        )
    for name, msg in tset.failed.items():
        entries.append(
            {
                "name": name,
                "mass_gev": tset.failed_mass.get(name),
                "file": None,
                "status": "failed",
                "reason": msg,
            }
        )
    entries.sort(key=lambda e: (e["mass_gev"] is None, e["mass_gev"] or 0.0))
    index = {
        "format": FORMAT_VERSION,
        "flatten": FLATTEN_ORDER,
        "n_windows": len(tset.windows),
        "n_failed": len(tset.failed),
        "windows": entries,
        "resolution": None if tset.resolution is None else tset.resolution.to_dict(),
        "info": dict(tset.info),
        "provenance": dict(provenance) if provenance is not None else None,
    }
    return write_json_atomic(d / "index.json", index)


def read_window(path: str | Path) -> WindowTemplates:
    """Read one window file.

    Raises
    ------
    InputError
        Missing, unreadable or malformed file.
    """
    data = read_json_object(path, "template")
    return WindowTemplates.from_dict(data, where=str(path))


def read_templates(directory: str | Path) -> TemplateSet:
    """Read a directory written by :func:`write_templates` (windows, failures, resolution)."""
    d = Path(directory)
    try:
        index = json.loads((d / "index.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{d}: no index.json (run the template stage)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{d / 'index.json'}: not readable ({exc})") from None
    tset = TemplateSet(windows=[], info=index.get("info", {}))
    if index.get("resolution"):
        tset.resolution = ResolutionModel.from_dict(
            index["resolution"], where=str(d / "index.json")
        )
    for e in index.get("windows", []):
        if e.get("status") == "ok":
            tset.windows.append(read_window(d / e["file"]))
        else:
            tset.failed[e["name"]] = e.get("reason", "failed")
            if e.get("mass_gev") is not None:
                tset.failed_mass[e["name"]] = float(e["mass_gev"])
    return tset


# --------------------------------------------------------------------------- validation
def _weighted_ks(
    a: NDArray[np.float64], wa: NDArray[np.float64], b: NDArray[np.float64], wb: NDArray[np.float64]
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic with weights, and its asymptotic p-value with the
    effective sample sizes ``(sum w)^2 / sum w^2`` (scipy's ``ks_2samp`` takes no weights)."""
    from scipy.stats import kstwobign

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
    from scipy.stats import chi2 as chi2_dist

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
