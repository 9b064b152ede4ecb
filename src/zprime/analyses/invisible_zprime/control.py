"""Control samples, data-driven corrections and the systematic uncertainties they give.

PRL 130, 231801 (2023), "Three control samples are used to validate the analysis and estimate
systematic uncertainties": mu mu gamma (photon veto reversed: a photon above 1 GeV within 15 deg
of the recoil), e mu and ee (one or both tracks identified as electrons, all else equal). They
are the selection channels ``mumugamma``, ``emu`` and ``ee`` of
:mod:`zprime.analyses.invisible_zprime.selection`. Data
are compared with simulation in each; from the comparisons come

1. the two-track **trigger** efficiency versus M_recoil^2 in e mu events taken by the ECL trigger
   (the reference): efficiency in data and simulation per bin, and a polynomial (a straight
   line by default) fitted to their ratio, the **trigger correction** ``c(M^2)`` for signal and
   background (:class:`TriggerResult`);
2. the **photon-veto inefficiency** in the backward barrel from ee events with
   M_recoil^2 < 1 GeV^2 (Bhabha + one photon, the photon along the recoil): the fraction that
   passes the veto (photon missed) in data and in simulation, the extra probability of missing a
   backward-barrel photon in data, the correction of the mu mu background it implies and the
   photon-veto background-shape uncertainty below / above 1 GeV^2
   (:class:`PhotonVetoResult`). Events whose photon could fire the two-track line's Bhabha
   veto are left out (:func:`recoil_bhabha_veto`): their trigger decision depends on whether
   the photon is seen, which would bias the measured loss upwards (x1.7);
3. the **resolution scale**: the width of the Gaussian core of M_recoil^2 (from the muons) of
   mu mu gamma events in data over simulation, and the signal-shape uncertainty it implies
   (:func:`signal_shape_from_scale`, :class:`ResolutionResult`);
4. the **signal-efficiency** uncertainty per M_recoil^2 range: the differences from unity of the
   data/simulation ratio of yields before the Punzi-net and of the ratio of Punzi-net
   efficiencies, summed in quadrature (:class:`EfficiencyRange`);
5. the **background-shape** uncertainty per range: twice the largest, over the search windows
   of the range, standard deviation of the bin-by-bin data/simulation ratios, mu mu gamma up to
   56 GeV^2 and e mu above (:class:`ShapeRange`).

Everything is measured with its statistical uncertainty; a sample too small for a measurement
gives a one-line warning naming it, and the configured fallback (``control`` and, for the
systematics, ``templates.systematics.prl``: the PRL's values) is used **and recorded**.

Layers
------
- arrays: :class:`ChannelSample` (events of one channel after all selection steps except the
  trigger, the photon veto and the Punzi-net, which are kept as flags/values), a
  :class:`ControlSample` (data and simulation of one channel), and :func:`derive`, which makes
  every measurement; all tests run on synthetic arrays;
- files: :func:`read_channels` reads reconstructed files batch by batch into channel samples
  (applying the Punzi-net, drawing the pseudo-data, filling cut flows); :func:`run_control` is
  the single entry point of the pipeline: it reads the simulation and the data-detector samples,
  derives everything and writes ``corrections.json``, the comparison table, cut flows and plots;
- application: :class:`Corrections` (from ``corrections.json``) gives the trigger weight
  ``c(M^2)`` and the photon-veto weights of the mu mu background; the ``systematics`` entry of
  ``corrections.json`` is what :func:`zprime.analyses.invisible_zprime.templates.load_systematics`
  reads with
  ``source: derived``.

Weights: every event carries ``w`` (expected events: weight in fb times the luminosity for the
simulation; 1, or the multiplicity of a drawn event, for data) and ``w2`` (its variance
contribution, ``w^2``). The statistical uncertainty of a sum is ``sqrt(sum w2)``. The
pseudo-data are thinned as the run's are (:func:`zprime.stats.pseudodata.event_counts`):
``m_j = floor(L w_j) + Bernoulli(frac(L w_j))`` per independently generated data-detector event,
so an event with ``L w <= 1`` enters at most once and the counts are Poisson, as real data's
are; an event that enters ``m`` times counts with ``w = m``, ``w2 = m^2``.

Formulas and the comparison with the PRL are in ``docs/control.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from zprime import __version__
from zprime._util import atomic_path, chunk_rng, write_json_atomic
from zprime.analyses.invisible_zprime.selection import CutFlow, apply_selection, step_masks
from zprime.config import (
    Config,
    ControlConfig,
    SelectionConfig,
    SystematicsValues,
    TriggerConfig,
)
from zprime.errors import ConfigError, InputError
from zprime.physics.constants import BETA_BOOST, GAMMA_BOOST, P_BEAMS_LAB
from zprime.stats.pseudodata import event_counts

__all__ = [
    "CONTROL_CHANNELS",
    "DEFERRED_STEPS",
    "FORMAT",
    "FORMAT_VERSION",
    "ChannelSample",
    "ControlResult",
    "ControlSample",
    "Corrections",
    "EfficiencyRange",
    "PhotonVetoResult",
    "ResolutionResult",
    "ShapeRange",
    "TriggerResult",
    "comparison_figure",
    "core_width",
    "derive",
    "measure_background_shape",
    "measure_photon_veto",
    "measure_resolution",
    "measure_signal_efficiency",
    "measure_trigger",
    "photon_veto_recoverable",
    "read_channels",
    "read_corrections",
    "recoil_bhabha_veto",
    "run_control",
    "signal_shape_from_scale",
    "trigger_acceptance",
    "trigger_figure",
    "weighted_efficiency",
]

log = logging.getLogger(__name__)

FORMAT = "zprime-corrections"
FORMAT_VERSION = 1
"""Version of the ``corrections.json`` format."""

CONTROL_CHANNELS: tuple[str, ...] = ("emu", "ee", "mumugamma")
"""The PRL's control samples (selection channels)."""

DEFERRED_STEPS: tuple[str, ...] = ("trigger", "photon_veto", "punzinet")
"""Selection steps kept as flags instead of being applied when a channel sample is read: the
trigger study needs events without the trigger, the photon-veto study events without the veto,
the efficiency study events before the Punzi-net."""

_DEG = math.pi / 180.0
_SIGNAL_REGION = "mumu"


# ============================================================================ samples
def _f64(a: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(a, dtype=np.float64).ravel()


def _bool(a: ArrayLike) -> NDArray[np.bool_]:
    return np.asarray(a, dtype=bool).ravel()


@dataclass
class ChannelSample:
    """Events of one channel after every selection step except :data:`DEFERRED_STEPS`.

    Attributes
    ----------
    channel
        Selection channel (``emu``, ``ee``, ``mumugamma``; ``mumu`` for the signal region).
    m_recoil2, theta_recoil, theta_recoil_cm
        M_recoil^2 (GeV^2) and the lab / c.m. polar angles of the recoil (rad).
    w, w2
        Expected events per event and their variance contribution (see the module docstring).
    trigger
        The two-track trigger fired (``trg_two_track``).
    reference
        The reference ECL trigger fired (``trg_ecl``).
    veto
        The channel's photon-veto step passed (for ``mumugamma`` the reversed one).
    punzinet
        Punzi-net output (NaN where not evaluated).
    source, sources
        Index of the sample each event comes from, and the sample names.
    recoverable
        The photon veto failed only because of photons in the backward barrel (would pass if
        they were missed); only filled for the signal-region channel.
    acceptance
        The two tracks meet the two-track trigger line's conditions offline (polar angle range
        and azimuthal opening, :func:`trigger_acceptance`).
    recoil_bhabha
        The recoil, taken as a photon, could fire the two-track line's 3D Bhabha veto together
        with one of the tracks (:func:`recoil_bhabha_veto`); only filled for the ``ee`` and ``emu``
        channels.
    """

    channel: str
    m_recoil2: NDArray[np.float64]
    theta_recoil: NDArray[np.float64]
    theta_recoil_cm: NDArray[np.float64]
    w: NDArray[np.float64]
    w2: NDArray[np.float64]
    trigger: NDArray[np.bool_]
    reference: NDArray[np.bool_]
    veto: NDArray[np.bool_]
    punzinet: NDArray[np.float64]
    source: NDArray[np.int32]
    sources: tuple[str, ...] = ("sample",)
    recoverable: NDArray[np.bool_] | None = None
    acceptance: NDArray[np.bool_] | None = None
    recoil_bhabha: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        n = self.m_recoil2.size
        for name in (
            "theta_recoil",
            "theta_recoil_cm",
            "w",
            "w2",
            "trigger",
            "reference",
            "veto",
            "punzinet",
            "source",
        ):
            if getattr(self, name).size != n:
                raise InputError(
                    f"control sample '{self.channel}': column '{name}' has "
                    f"{getattr(self, name).size} entries, expected {n}"
                )
        if self.recoverable is None:
            self.recoverable = np.zeros(n, dtype=bool)
        if self.acceptance is None:
            self.acceptance = np.ones(n, dtype=bool)
        if self.recoil_bhabha is None:
            self.recoil_bhabha = np.zeros(n, dtype=bool)
        for name in ("recoverable", "acceptance", "recoil_bhabha"):
            if getattr(self, name).size != n:
                raise InputError(f"control sample '{self.channel}': column '{name}' has wrong size")
        for name in ("m_recoil2", "w", "w2"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise InputError(
                    f"control sample '{self.channel}': column '{name}' has NaN or infinite values"
                )
        if np.any(self.w < 0) or np.any(self.w2 < 0):
            raise InputError(f"control sample '{self.channel}': negative weights")
        if n and (self.source.min() < 0 or self.source.max() >= len(self.sources)):
            raise InputError(f"control sample '{self.channel}': source index out of range")

    @classmethod
    def from_columns(
        cls,
        channel: str,
        columns: Mapping[str, ArrayLike],
        *,
        luminosity_fb: float = 1.0,
        sources: Sequence[str] = ("sample",),
    ) -> ChannelSample:
        """From plain columns.

        Required: ``m_recoil2``, ``theta_recoil``, ``weight`` (fb per event for simulation:
        ``w = weight * luminosity_fb``; for data pass ``luminosity_fb=1`` and weights 1).
        Optional: ``theta_recoil_cm`` (default ``theta_recoil``), ``weight2`` (variance per
        event before the luminosity scaling; default ``weight**2``), ``trg_two_track``,
        ``trg_ecl``, ``photon_veto``, ``trigger_acceptance`` (default all true), ``punzinet``
        (default NaN), ``source`` (default 0), ``recoverable`` and ``recoil_bhabha`` (default
        false).
        """
        for req in ("m_recoil2", "theta_recoil", "weight"):
            if req not in columns:
                raise InputError(f"control sample '{channel}': missing column '{req}'")
        m2 = _f64(columns["m_recoil2"])
        n = m2.size
        weight = _f64(columns["weight"])
        weight2 = _f64(columns["weight2"]) if "weight2" in columns else weight**2

        def flag(name: str, default: bool) -> NDArray[np.bool_]:
            return _bool(columns[name]) if name in columns else np.full(n, default)

        th = _f64(columns["theta_recoil"])
        return cls(
            channel=channel,
            m_recoil2=m2,
            theta_recoil=th,
            theta_recoil_cm=_f64(columns["theta_recoil_cm"])
            if "theta_recoil_cm" in columns
            else th,
            w=weight * luminosity_fb,
            w2=weight2 * luminosity_fb**2,
            trigger=flag("trg_two_track", True),
            reference=flag("trg_ecl", True),
            veto=flag("photon_veto", True),
            punzinet=_f64(columns["punzinet"]) if "punzinet" in columns else np.full(n, np.nan),
            source=np.asarray(columns.get("source", np.zeros(n)), dtype=np.int32).ravel(),
            sources=tuple(sources),
            recoverable=flag("recoverable", False),
            acceptance=flag("trigger_acceptance", True),
            recoil_bhabha=flag("recoil_bhabha", False),
        )

    def __len__(self) -> int:
        return int(self.m_recoil2.size)

    @property
    def selected(self) -> NDArray[np.bool_]:
        """The channel's full selection before the Punzi-net: trigger and photon veto."""
        return self.trigger & self.veto

    def subset(self, mask: ArrayLike) -> ChannelSample:
        """The events where ``mask`` is true."""
        m = _bool(mask)
        assert self.recoverable is not None
        assert self.acceptance is not None
        assert self.recoil_bhabha is not None
        return ChannelSample(
            self.channel,
            self.m_recoil2[m],
            self.theta_recoil[m],
            self.theta_recoil_cm[m],
            self.w[m],
            self.w2[m],
            self.trigger[m],
            self.reference[m],
            self.veto[m],
            self.punzinet[m],
            self.source[m],
            self.sources,
            self.recoverable[m],
            self.acceptance[m],
            self.recoil_bhabha[m],
        )

    def scaled(self, factor: ArrayLike) -> ChannelSample:
        """A copy with per-event weights multiplied by ``factor`` (variances by its square)."""
        f = np.broadcast_to(np.asarray(factor, dtype=float), self.w.shape)
        out = self.subset(np.ones(len(self), dtype=bool))
        out.w = self.w * f
        out.w2 = self.w2 * f**2
        return out

    def total(self, mask: ArrayLike | None = None) -> tuple[float, float]:
        """(sum of w, sum of w2) over ``mask`` (all events by default)."""
        if mask is None:
            return float(self.w.sum()), float(self.w2.sum())
        m = _bool(mask)
        return float(self.w[m].sum()), float(self.w2[m].sum())

    def n_eff(self, mask: ArrayLike | None = None) -> float:
        """Effective number of events ``(sum w)^2 / sum w2`` over ``mask``."""
        s, s2 = self.total(mask)
        return s * s / s2 if s2 > 0 else 0.0

    @staticmethod
    def concatenate(channel: str, parts: Sequence[ChannelSample]) -> ChannelSample:
        """Join samples of the same channel (sources are merged by name)."""
        names: list[str] = []
        for p in parts:
            names.extend(s for s in p.sources if s not in names)
        if not parts:
            return ChannelSample.from_columns(
                channel, {"m_recoil2": [], "theta_recoil": [], "weight": []}, sources=["none"]
            )
        remapped = [
            np.asarray([names.index(s) for s in p.sources], dtype=np.int32)[p.source]
            if len(p)
            else np.zeros(0, dtype=np.int32)
            for p in parts
        ]

        def cat(name: str) -> NDArray[Any]:
            return np.concatenate([getattr(p, name) for p in parts])

        return ChannelSample(
            channel,
            cat("m_recoil2"),
            cat("theta_recoil"),
            cat("theta_recoil_cm"),
            cat("w"),
            cat("w2"),
            cat("trigger"),
            cat("reference"),
            cat("veto"),
            cat("punzinet"),
            np.concatenate(remapped).astype(np.int32),
            tuple(names),
            cat("recoverable"),
            cat("acceptance"),
            cat("recoil_bhabha"),
        )


@dataclass
class ControlSample:
    """Data and simulation of one control channel."""

    channel: str
    data: ChannelSample
    simulation: ChannelSample


# ============================================================================ statistics helpers
def weighted_efficiency(
    passed: tuple[float, float], total: tuple[float, float]
) -> tuple[float, float]:
    """Efficiency and its uncertainty from weighted sums.

    ``passed`` and ``total`` are (sum w, sum w2) of the passing events and of all events.
    ``var = [(1 - 2 eps) sum_pass w2 + eps^2 sum_all w2] / (sum_all w)^2`` (the normal
    approximation of the weighted binomial, as ROOT's TEfficiency for weighted events); for unit
    weights it is ``eps (1 - eps) / N``. At eps = 0 or 1 it would vanish: it is floored at the
    value for half an event, ``e (1 - e) / N_eff`` with ``e = 0.5 / (N_eff + 1)``.
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


def _ratio(a: float, sa: float, b: float, sb: float) -> tuple[float, float]:
    """a / b and its uncertainty (independent inputs)."""
    if b == 0 or not (math.isfinite(a) and math.isfinite(b)):
        return math.nan, math.nan
    r = a / b
    rel = (sa / a) ** 2 if a != 0 else 0.0
    rel += (sb / b) ** 2
    err = abs(r) * math.sqrt(rel) if a != 0 else abs(sa / b)
    return r, err


def _weighted_quantile(x: NDArray[np.float64], w: NDArray[np.float64], q: ArrayLike) -> Any:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return np.interp(np.asarray(q) * cw[-1], cw, x[order])


def core_width(
    values: ArrayLike,
    weights: ArrayLike | None = None,
    weights2: ArrayLike | None = None,
    *,
    n_sigma: float = 2.0,
    n_bins: int = 40,
    label: str = "sample",
) -> tuple[float, float, float]:
    """Mean, width and width uncertainty of the Gaussian core of a weighted distribution.

    The weighted counterpart of :func:`zprime.analyses.invisible_zprime.binning.measure_width`
    (which takes unweighted
    residuals): a least-squares Gaussian fit (:func:`scipy.optimize.curve_fit`, bin errors
    ``sqrt(sum w2)``, at least one typical event's) to an ``n_bins`` histogram within
    ``+- n_sigma`` widths of the current centre, started from the weighted median and 68%
    half-width and iterated until the width moves by less than a tenth of its error.

    Raises
    ------
    InputError
        No spread, or a fit that fails.
    """
    from scipy.optimize import curve_fit

    x = _f64(values)
    w = np.ones_like(x) if weights is None else _f64(weights)
    w2 = w**2 if weights2 is None else _f64(weights2)
    ok = np.isfinite(x) & (w > 0)
    x, w, w2 = x[ok], w[ok], w2[ok]
    if x.size < 3:
        raise InputError(f"{label}: {x.size} events, too few for a width")
    lo, med, hi = _weighted_quantile(x, w, [0.15865, 0.5, 0.84135])
    sigma = 0.5 * float(hi - lo)
    mu = float(med)
    if not sigma > 0:
        raise InputError(f"{label}: the distribution has zero spread")
    typical = float(np.median(w2))

    def gauss(t: NDArray[np.float64], a: float, m: float, s: float) -> NDArray[np.float64]:
        return a * np.exp(-0.5 * ((t - m) / s) ** 2)

    err = math.inf
    for _ in range(30):
        half = n_sigma * sigma
        rng_ = (mu - half, mu + half)
        counts, edges = np.histogram(x, bins=n_bins, range=rng_, weights=w)
        var, _ = np.histogram(x, bins=n_bins, range=rng_, weights=w2)
        centres = 0.5 * (edges[1:] + edges[:-1])
        try:
            p, cov = curve_fit(
                gauss,
                centres,
                counts,
                p0=(float(max(counts.max(), 1e-12)), mu, sigma),
                sigma=np.sqrt(np.maximum(var, typical)),
                absolute_sigma=True,
            )
        except (RuntimeError, ValueError) as exc:
            raise InputError(f"{label}: the Gaussian core fit failed ({exc})") from None
        new = abs(float(p[2]))
        err = float(np.sqrt(cov[2, 2]))
        moved = abs(new - sigma)
        mu, sigma = float(p[1]), new
        if not (math.isfinite(sigma) and sigma > 0):
            raise InputError(f"{label}: the Gaussian core fit gave no width")
        if moved < 0.1 * err:
            break
    return mu, sigma, err


def signal_shape_from_scale(scale: float, *, n_bins: int = 20, offset: float = 0.0) -> float:
    """Signal-shape uncertainty implied by a resolution ``scale`` (data width / simulation).

    The signal template of a window is a Gaussian of width sigma in ``n_bins`` bins one sigma
    wide (PRL: bin width = resolution, windows of 20 bins;
    :mod:`zprime.analyses.invisible_zprime.binning` puts the
    hypothesis on the middle edge, ``offset = 0``; the result hardly depends on it). Widening
    the Gaussian by ``scale`` changes bin i's share of the window by ``delta_i``; the
    uncertainty is the content-weighted r.m.s. ``sqrt(sum p_i delta_i^2)``, the per-bin
    relative uncertainty that covers the change on average. ``scale = 1.08`` (PRL: "8% larger in
    data") gives 0.110, close to the PRL's 10%; 1.04 gives 0.054.
    """
    if not scale > 0:
        raise ConfigError(f"resolution scale must be positive, got {scale}")
    edges = np.arange(n_bins + 1, dtype=float) - 0.5 * n_bins + offset

    def probs(e: NDArray[np.float64]) -> NDArray[np.float64]:
        # upper tails from the survival function: no cancellation far from the centre
        p = np.where(e[:-1] >= 0, ndtr(-e[:-1]) - ndtr(-e[1:]), ndtr(e[1:]) - ndtr(e[:-1]))
        return p / p.sum()

    p0, p1 = probs(edges), probs(edges / scale)
    use = p0 > 0
    return float(np.sqrt(np.sum(p0[use] * (p1[use] / p0[use] - 1.0) ** 2)))


def _fallback(
    records: list[dict[str, Any]],
    measurement: str,
    sample: str,
    reason: str,
    value: Any,
) -> None:
    """Log the one-line warning and record the fallback."""
    message = f"control sample '{sample}': {reason}; {measurement} uses the fallback {value}"
    log.warning(message)
    records.append({"measurement": measurement, "sample": sample, "reason": reason, "value": value})


# ============================================================================ 1. trigger
@dataclass
class TriggerResult:
    """Two-track trigger efficiency in data and simulation and the fitted correction.

    Arrays are per M^2 bin; ``used`` marks the bins that enter the fit. The correction is
    ``c(M^2) = sum_k coefficients[k] * M^2**k`` with M^2 clipped to ``fit_range``.
    """

    edges: NDArray[np.float64]
    x: NDArray[np.float64]
    eff_data: NDArray[np.float64]
    err_data: NDArray[np.float64]
    eff_sim: NDArray[np.float64]
    err_sim: NDArray[np.float64]
    ratio: NDArray[np.float64]
    ratio_err: NDArray[np.float64]
    n_data: NDArray[np.float64]
    n_sim: NDArray[np.float64]
    used: NDArray[np.bool_]
    coefficients: tuple[float, ...]
    covariance: NDArray[np.float64]
    chi2: float
    ndof: int
    fit_range: tuple[float, float]
    fallback: bool = False
    reason: str = ""

    def correction(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Trigger correction (data / simulation efficiency) at ``m2``."""
        return _poly(self.coefficients, np.clip(_f64(m2), *self.fit_range))

    def correction_uncertainty(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Uncertainty of :meth:`correction` from the fit covariance."""
        return _poly_err(self.covariance, np.clip(_f64(m2), *self.fit_range))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "sample": "emu",
            "reference": "trg_ecl",
            "m2_edges_gev2": self.edges.tolist(),
            "m2_mean_gev2": _jl(self.x),
            "efficiency_data": _jl(self.eff_data),
            "efficiency_data_err": _jl(self.err_data),
            "efficiency_simulation": _jl(self.eff_sim),
            "efficiency_simulation_err": _jl(self.err_sim),
            "ratio": _jl(self.ratio),
            "ratio_err": _jl(self.ratio_err),
            "events_data": _jl(self.n_data),
            "events_simulation": _jl(self.n_sim),
            "used_in_fit": self.used.tolist(),
            "coefficients": list(self.coefficients),
            "covariance": self.covariance.tolist(),
            "chi2": _jf(self.chi2),
            "ndof": self.ndof,
            "fit_range_gev2": list(self.fit_range),
            "fallback": self.fallback,
            "reason": self.reason,
        }


def _poly(coef: Sequence[float], x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.polynomial.polynomial.polyval(x, np.asarray(coef, dtype=float))


def _poly_err(cov: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    k = cov.shape[0]
    basis = np.stack([x**i for i in range(k)], axis=-1)
    return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", basis, cov, basis), 0.0))


def _jf(x: float) -> float | None:
    """A float for JSON (NaN -> null)."""
    return float(x) if math.isfinite(x) else None


def _jl(a: ArrayLike) -> list[float | None]:
    return [_jf(float(v)) for v in np.asarray(a, dtype=float).ravel()]


def measure_trigger(
    emu: ControlSample | None, cfg: ControlConfig, fallbacks: list[dict[str, Any]]
) -> TriggerResult:
    """Two-track trigger efficiency versus M_recoil^2 with the e mu sample (PRL).

    Events: the e mu selection without the trigger step, with the photon veto, taken by the
    reference ECL trigger (``trg_ecl``) and, with ``require_acceptance``, whose two tracks meet
    the line's conditions offline (:func:`trigger_acceptance`; the PRL's offline requirement
    that the events "pass the trigger requirements"), so that the efficiency is the line's;
    with ``exclude_recoil_bhabha``, without the events whose recoil could fire the line's Bhabha
    veto (:func:`recoil_bhabha_veto`: radiative Bhabhas with an electron taken for a muon, whose
    trigger decision depends on whether their photon is seen).
    Per bin: ``eps = sum_w(trg_two_track) / sum_w`` in data
    and simulation (:func:`weighted_efficiency`), ``r = eps_data / eps_sim``. A polynomial of
    ``cfg.trigger.degree`` in M^2 is fitted to ``r`` by weighted least squares at the data's
    mean M^2 per bin (bins with fewer than ``min_events_per_bin`` effective events in either
    sample are left out); when chi2/ndof > 1 the covariance is scaled by it (PDG S factor).
    Fewer usable bins than parameters: the fallback correction (warning, recorded).
    """
    tc = cfg.trigger
    edges = np.asarray(tc.m2_edges_gev2, dtype=float)
    nb = edges.size - 1
    names = ("x", "eff_data", "err_data", "eff_sim", "err_sim", "ratio", "ratio_err")
    bins: dict[str, NDArray[np.float64]] = {k: np.full(nb, np.nan) for k in names}
    bins["n_data"] = np.zeros(nb)
    bins["n_sim"] = np.zeros(nb)
    used = np.zeros(nb, dtype=bool)
    if emu is not None:
        for i in range(nb):
            for kind, smp in (("data", emu.data), ("sim", emu.simulation)):
                inb = (
                    (smp.m_recoil2 >= edges[i])
                    & (smp.m_recoil2 < edges[i + 1])
                    & smp.veto
                    & smp.reference
                )
                if tc.require_acceptance:
                    inb &= smp.acceptance
                if tc.exclude_recoil_bhabha and smp.recoil_bhabha is not None:
                    inb &= ~smp.recoil_bhabha
                bins[f"n_{kind}"][i] = smp.n_eff(inb)
                bins[f"eff_{kind}"][i], bins[f"err_{kind}"][i] = weighted_efficiency(
                    smp.total(inb & smp.trigger), smp.total(inb)
                )
                if kind == "data" and smp.total(inb)[0] > 0:
                    bins["x"][i] = float(np.average(smp.m_recoil2[inb], weights=smp.w[inb]))
            bins["ratio"][i], bins["ratio_err"][i] = _ratio(
                bins["eff_data"][i], bins["err_data"][i], bins["eff_sim"][i], bins["err_sim"][i]
            )
            used[i] = (
                min(bins["n_data"][i], bins["n_sim"][i]) >= tc.min_events_per_bin
                and math.isfinite(bins["ratio"][i])
                and bins["ratio_err"][i] > 0
            )
    k = tc.degree + 1
    if used.sum() < k:
        reason = (
            "no e mu sample"
            if emu is None
            else f"{int(used.sum())} M^2 bins with >= {tc.min_events_per_bin:g} reference-"
            f"triggered events, need {k}"
        )
        _fallback(fallbacks, "trigger correction", "emu", reason, list(tc.fallback_coefficients))
        coef = tuple(float(c) for c in tc.fallback_coefficients)
        cov = np.zeros((len(coef), len(coef)))
        cov[0, 0] = tc.fallback_uncertainty**2
        return TriggerResult(
            edges=edges,
            **bins,
            used=used,
            coefficients=coef,
            covariance=cov,
            chi2=math.nan,
            ndof=0,
            fit_range=(float(edges[0]), float(edges[-1])),
            fallback=True,
            reason=reason,
        )
    x, y, s = bins["x"][used], bins["ratio"][used], bins["ratio_err"][used]
    design = np.stack([x**i for i in range(k)], axis=1)
    wts = 1.0 / s**2
    cov = np.linalg.inv(design.T @ (design * wts[:, None]))
    coef = cov @ (design.T @ (wts * y))
    chi2 = float(np.sum(wts * (y - design @ coef) ** 2))
    ndof = int(used.sum()) - k
    if ndof > 0 and chi2 / ndof > 1.0:
        cov = cov * (chi2 / ndof)
    return TriggerResult(
        edges=edges,
        **bins,
        used=used,
        coefficients=tuple(float(c) for c in coef),
        covariance=cov,
        chi2=chi2,
        ndof=ndof,
        # a fitted slope is not extrapolated: M^2 is clipped to the span of the fitted bins
        fit_range=(float(x.min()), float(x.max()))
        if k > 1
        else (float(edges[0]), float(edges[-1])),
    )


# ============================================================================ 2. photon veto
@dataclass
class PhotonVetoResult:
    """Photon-veto inefficiency in the backward barrel (ee sample) and what it implies.

    ``eff_*`` are the fractions of ee events (M^2 < ``m2_max``, recoil in the backward barrel,
    every other selection step passed) that pass the photon veto: the photon was missed.
    ``extra_miss`` = (eps_data - eps_sim) / (1 - eps_sim) is the probability that data miss a
    backward-barrel photon that the simulation sees; ``ratio`` = eps_data / eps_sim (``nan``
    when the simulation misses none, as with a perfect simulated backward barrel).
    """

    theta_range: tuple[float, float]
    m2_max: float
    eff_data: float
    err_data: float
    eff_sim: float
    err_sim: float
    n_data: float
    n_sim: float
    ratio: float
    ratio_err: float
    extra_miss: float
    extra_miss_err: float
    shape: tuple[float, float]
    shape_inputs: dict[str, Any] = field(default_factory=dict)
    fallback: bool = False
    shape_fallback: tuple[bool, bool] = (False, False)
    reason: str = ""
    trigger: str = "two_track"
    """Trigger of the ee events (``control.photon_veto.trigger``)."""
    excluded: tuple[float, float] = (0.0, 0.0)
    """Fraction of the region's events (data, simulation) left out because their recoil could
    fire the two-track line's Bhabha veto (``exclude_recoil_bhabha``)."""
    raw: tuple[int, int] = (0, 0)
    """Distinct events in the region (data, simulation): with weighted samples the effective
    numbers ``n_data``, ``n_sim`` are smaller, and the uncertainties follow those."""
    yields: tuple[float, float] = (0.0, 0.0)
    """Sum of the weights in the region (data: events counted with their multiplicity;
    simulation: expected events at the luminosity): ``yields / raw`` is the mean number of
    data events one generated event stands for, the clump size of the pseudo-data."""

    @property
    def pass_scale(self) -> float:
        """Weight of simulated events that pass the veto with the recoil in the region:
        ``eps_data / eps_sim`` when data miss fewer photons than simulation, else 1."""
        return _pass_scale(self.extra_miss, self.eff_sim)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "sample": "ee",
            "theta_recoil_deg": [math.degrees(t) for t in self.theta_range],
            "m2_max_gev2": self.m2_max,
            "trigger": self.trigger,
            "excluded_recoil_bhabha": list(self.excluded),
            "inefficiency_data": _jf(self.eff_data),
            "inefficiency_data_err": _jf(self.err_data),
            "inefficiency_simulation": _jf(self.eff_sim),
            "inefficiency_simulation_err": _jf(self.err_sim),
            "events_data": _jf(self.n_data),
            "events_simulation": _jf(self.n_sim),
            "events_raw_data": self.raw[0],
            "events_raw_simulation": self.raw[1],
            "yield_data": _jf(self.yields[0]),
            "yield_simulation": _jf(self.yields[1]),
            "ratio": _jf(self.ratio),
            "ratio_err": _jf(self.ratio_err),
            "extra_miss_probability": _jf(self.extra_miss),
            "extra_miss_probability_err": _jf(self.extra_miss_err),
            "pass_scale": _jf(self.pass_scale),
            "shape_below_above": list(self.shape),
            "shape_inputs": self.shape_inputs,
            "fallback": self.fallback,
            "shape_fallback": list(self.shape_fallback),
            "reason": self.reason,
        }


def _pass_scale(extra_miss: float, eff_sim: float) -> float:
    if extra_miss >= 0 or not eff_sim > 0:
        return 1.0
    return max(0.0, 1.0 + extra_miss * (1.0 - eff_sim) / eff_sim)


def _veto_weights(
    smp: ChannelSample,
    extra_miss: float,
    eff_sim: float,
    theta_range: tuple[float, float],
    m2_max: float,
) -> NDArray[np.float64]:
    """Per-event weights of the corrected mu mu background (see :class:`Corrections`)."""
    assert smp.recoverable is not None
    region = (
        (smp.theta_recoil >= theta_range[0])
        & (smp.theta_recoil <= theta_range[1])
        & (smp.m_recoil2 < m2_max)
    )
    passed = smp.veto
    rec = smp.recoverable & ~passed
    return np.where(
        passed,
        np.where(region, _pass_scale(extra_miss, eff_sim), 1.0),
        np.where(rec, max(extra_miss, 0.0), 0.0),
    )


def measure_photon_veto(
    ee: ControlSample | None,
    cfg: Config,
    fallbacks: list[dict[str, Any]],
    mumu: ChannelSample | None = None,
) -> PhotonVetoResult:
    """Photon-veto inefficiency in the backward barrel from the ee sample (PRL).

    Region: ee events with M^2 < ``m2_max_gev2``, the recoil in ``theta_recoil_deg``, every
    other selection step passed and the trigger ``photon_veto.trigger`` (the two-track line, or
    the reference ECL line); with the two-track line and ``exclude_recoil_bhabha``, events whose
    recoil could fire the line's Bhabha veto with an electron (:func:`recoil_bhabha_veto`) are
    left out, so that the trigger decision does not depend on whether the photon is seen.
    ``eps`` = fraction of the region passing the photon veto (the photon was missed), in data
    and simulation; ``extra_miss = (eps_data - eps_sim) / (1 - eps_sim)``: the probability per
    photon (one photon carries the recoil) that data miss a photon the simulation sees.

    ``mumu`` is the simulated signal-region sample of the ``photon_veto_samples`` (PRL: mu mu)
    with the ``recoverable`` flags; from it the photon-veto background-shape uncertainty below
    and above ``photon_veto_split_m2_gev2``: the relative change of the corrected mu mu yield in
    that M^2 region when the extra-miss probability moves by its uncertainty (its yield-weighted
    average over bins, "on average" in the PRL's words). Without ``mumu``, or an empty region,
    the PRL's values (fallback, recorded).
    """
    pc = cfg.control.photon_veto
    prl = cfg.templates.systematics.prl
    th = (pc.theta_recoil_deg[0] * _DEG, pc.theta_recoil_deg[1] * _DEG)
    v: dict[str, float] = {}
    excluded = {"data": 0.0, "sim": 0.0}
    raw = {"data": 0, "sim": 0}
    yields = {"data": 0.0, "sim": 0.0}
    for kind, smp in (("data", ee.data if ee else None), ("sim", ee.simulation if ee else None)):
        if smp is None:
            v |= {f"eff_{kind}": math.nan, f"err_{kind}": math.nan, f"n_{kind}": 0.0}
            continue
        region = (
            (smp.reference if pc.trigger == "reference" else smp.trigger)
            & (smp.m_recoil2 < pc.m2_max_gev2)
            & (smp.theta_recoil >= th[0])
            & (smp.theta_recoil <= th[1])
        )
        if pc.trigger == "two_track" and pc.exclude_recoil_bhabha:
            assert smp.recoil_bhabha is not None
            s_all = smp.total(region)[0]
            region &= ~smp.recoil_bhabha
            excluded[kind] = 1.0 - smp.total(region)[0] / s_all if s_all > 0 else 0.0
        v[f"n_{kind}"] = smp.n_eff(region)
        raw[kind] = int(np.count_nonzero(region))
        yields[kind] = smp.total(region)[0]
        v[f"eff_{kind}"], v[f"err_{kind}"] = weighted_efficiency(
            smp.total(region & smp.veto), smp.total(region)
        )
    reason = ""
    if ee is None or min(v["n_data"], v["n_sim"]) < pc.min_events:
        reason = (
            "no ee sample"
            if ee is None
            else f"{min(v['n_data'], v['n_sim']):.0f} events with M^2 < {pc.m2_max_gev2:g} GeV^2 "
            f"and the recoil in the backward barrel, need {pc.min_events:g}"
        )
        value = pc.fallback_extra_miss_probability
        _fallback(fallbacks, "photon-veto correction", "ee", reason, value)
        extra, extra_err = value, 0.0
    else:
        ed, sd, es, ss = v["eff_data"], v["err_data"], v["eff_sim"], v["err_sim"]
        extra = (ed - es) / (1.0 - es)
        extra_err = math.hypot(sd / (1.0 - es), ss * (1.0 - ed) / (1.0 - es) ** 2)
    ratio, ratio_err = (
        _ratio(v["eff_data"], v["err_data"], v["eff_sim"], v["err_sim"])
        if v["eff_sim"] > 0
        else (math.nan, math.nan)
    )
    eff_sim = v["eff_sim"] if math.isfinite(v["eff_sim"]) else 0.0
    shape = list(prl.photon_veto_shape)
    shape_fb = [True, True]
    inputs: dict[str, Any] = {}
    split = prl.photon_veto_split_m2_gev2
    if mumu is not None and len(mumu):
        weights = {
            key: _veto_weights(mumu, p, eff_sim, th, pc.m2_max_gev2)
            for key, p in (
                ("nominal", extra),
                ("up", extra + extra_err),
                ("down", extra - extra_err),
            )
        }
        for j, (side, part) in enumerate(
            (("below", mumu.m_recoil2 < split), ("above", mumu.m_recoil2 >= split))
        ):
            sel = mumu.trigger & part
            y = {key: float(np.sum(mumu.w[sel] * wt[sel])) for key, wt in weights.items()}
            inputs[side] = {
                "uncorrected_yield": float(np.sum(mumu.w[sel & mumu.veto])),
                "recoverable_yield": float(np.sum(mumu.w[sel & mumu.recoverable & ~mumu.veto])),
                **{f"yield_{key}": val for key, val in y.items()},
            }
            if y["nominal"] > 0 and not reason:
                shape[j] = abs(y["up"] - y["down"]) / (2.0 * y["nominal"])
                shape_fb[j] = False
    if any(shape_fb):
        why = (
            "the ee sample is too small"
            if reason
            else f"no simulated signal-region (mu mu) events on both sides of M^2 = {split:g} GeV^2"
        )
        used = [shape[j] if shape_fb[j] else "measured" for j in range(2)]
        _fallback(fallbacks, "photon-veto background shape", "ee", why, used)
    return PhotonVetoResult(
        theta_range=th,
        m2_max=pc.m2_max_gev2,
        **v,
        ratio=ratio,
        ratio_err=ratio_err,
        extra_miss=extra,
        extra_miss_err=extra_err,
        shape=(shape[0], shape[1]),
        shape_inputs=inputs,
        fallback=bool(reason),
        shape_fallback=(shape_fb[0], shape_fb[1]),
        reason=reason,
        trigger=pc.trigger,
        excluded=(excluded["data"], excluded["sim"]),
        raw=(raw["data"], raw["sim"]),
        yields=(yields["data"], yields["sim"]),
    )


# ============================================================================ 3. resolution
@dataclass
class ResolutionResult:
    """M_recoil^2 core widths of mu mu gamma events and the signal-shape uncertainty."""

    mean_data: float
    sigma_data: float
    err_data: float
    mean_sim: float
    sigma_sim: float
    err_sim: float
    n_data: float
    n_sim: float
    scale: float
    scale_err: float
    signal_shape: float
    signal_shape_err: float
    fallback: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "sample": "mumugamma",
            "variable": "m_recoil2 (from the two muons)",
            "mean_data_gev2": _jf(self.mean_data),
            "sigma_data_gev2": _jf(self.sigma_data),
            "sigma_data_err_gev2": _jf(self.err_data),
            "mean_simulation_gev2": _jf(self.mean_sim),
            "sigma_simulation_gev2": _jf(self.sigma_sim),
            "sigma_simulation_err_gev2": _jf(self.err_sim),
            "events_data": _jf(self.n_data),
            "events_simulation": _jf(self.n_sim),
            "scale": _jf(self.scale),
            "scale_err": _jf(self.scale_err),
            "signal_shape": _jf(self.signal_shape),
            "signal_shape_err": _jf(self.signal_shape_err),
            "mapping": "content-weighted r.m.s. change of a Gaussian template in 20 bins one "
            "sigma wide when its width is multiplied by the scale",
            "fallback": self.fallback,
            "reason": self.reason,
        }


def measure_resolution(
    mumugamma: ControlSample | None, cfg: Config, fallbacks: list[dict[str, Any]]
) -> ResolutionResult:
    """Resolution scale from the mu mu gamma sample (PRL: "The width of the M_recoil^2
    distribution is 8% larger in data than in simulation").

    M_recoil^2 is computed from the two muons (the fit variable); the selected photon carries
    the recoil, so M^2_true = 0 up to further radiation, which makes a one-sided tail that the
    Gaussian core fit (:func:`core_width`, events in ``m2_range_gev2``) leaves out. The scale is
    sigma_data / sigma_sim; the signal-shape uncertainty is :func:`signal_shape_from_scale`
    with the window size of ``binning.window_bins``, its error from the scale's.
    """
    rc = cfg.control.resolution
    nbins = cfg.binning.window_bins
    widths = ("mean_data", "sigma_data", "err_data", "mean_sim", "sigma_sim", "err_sim")
    v: dict[str, float] = dict.fromkeys(widths, math.nan) | {"n_data": 0.0, "n_sim": 0.0}
    reason = "" if mumugamma is not None else "no mu mu gamma sample"
    if mumugamma is not None:
        for kind, smp in (("data", mumugamma.data), ("sim", mumugamma.simulation)):
            sel = (
                smp.selected
                & (smp.m_recoil2 >= rc.m2_range_gev2[0])
                & (smp.m_recoil2 <= rc.m2_range_gev2[1])
            )
            v[f"n_{kind}"] = smp.n_eff(sel)
            if v[f"n_{kind}"] < rc.min_events:
                reason = (
                    f"{v[f'n_{kind}']:.0f} {kind} events in M^2 {list(rc.m2_range_gev2)} GeV^2, "
                    f"need {rc.min_events:g}"
                )
                break
            try:
                v[f"mean_{kind}"], v[f"sigma_{kind}"], v[f"err_{kind}"] = core_width(
                    smp.m_recoil2[sel],
                    smp.w[sel],
                    smp.w2[sel],
                    n_sigma=rc.n_sigma,
                    label=f"mumugamma {kind}",
                )
            except InputError as err:
                reason = str(err)
                break
    if reason:
        _fallback(fallbacks, "resolution scale", "mumugamma", reason, rc.fallback_scale)
        shape = cfg.templates.systematics.prl.signal_shape
        _fallback(fallbacks, "signal shape", "mumugamma", reason, shape)
        return ResolutionResult(
            **v,
            scale=rc.fallback_scale,
            scale_err=0.0,
            signal_shape=shape,
            signal_shape_err=0.0,
            fallback=True,
            reason=reason,
        )
    scale, scale_err = _ratio(v["sigma_data"], v["err_data"], v["sigma_sim"], v["err_sim"])
    shape = signal_shape_from_scale(scale, n_bins=nbins)
    hi = signal_shape_from_scale(scale + scale_err, n_bins=nbins)
    lo = signal_shape_from_scale(max(scale - scale_err, 1e-3), n_bins=nbins)
    # the mapping grows like |scale - 1|: take the larger side
    shape_err = max(abs(hi - shape), abs(shape - lo))
    return ResolutionResult(
        **v, scale=scale, scale_err=scale_err, signal_shape=shape, signal_shape_err=shape_err
    )


# ============================================================================ 4. signal efficiency
@dataclass
class EfficiencyRange:
    """Data/simulation comparison of one M^2 range for the signal-efficiency uncertainty."""

    m2_range: tuple[float, float]
    sample: str
    yield_data: float
    yield_data_err: float
    yield_sim: float
    yield_sim_err: float
    ratio_pre: float
    ratio_pre_err: float
    pn_eff_data: float
    pn_eff_data_err: float
    pn_eff_sim: float
    pn_eff_sim_err: float
    ratio_pn: float
    ratio_pn_err: float
    systematic: float
    systematic_err: float
    measured: float = math.nan
    """The measured value (``systematic`` holds the fallback when one was used)."""
    fallback: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "m2_range_gev2": list(self.m2_range),
            "sample": self.sample,
            "measured": _jf(self.measured),
            "yield_data": _jf(self.yield_data),
            "yield_data_err": _jf(self.yield_data_err),
            "yield_simulation": _jf(self.yield_sim),
            "yield_simulation_err": _jf(self.yield_sim_err),
            "ratio_before_punzinet": _jf(self.ratio_pre),
            "ratio_before_punzinet_err": _jf(self.ratio_pre_err),
            "punzinet_efficiency_data": _jf(self.pn_eff_data),
            "punzinet_efficiency_data_err": _jf(self.pn_eff_data_err),
            "punzinet_efficiency_simulation": _jf(self.pn_eff_sim),
            "punzinet_efficiency_simulation_err": _jf(self.pn_eff_sim_err),
            "ratio_punzinet_efficiency": _jf(self.ratio_pn),
            "ratio_punzinet_efficiency_err": _jf(self.ratio_pn_err),
            "systematic": _jf(self.systematic),
            "systematic_err": _jf(self.systematic_err),
            "fallback": self.fallback,
            "reason": self.reason,
        }


def measure_signal_efficiency(
    samples: Mapping[str, ControlSample],
    cfg: Config,
    fallbacks: list[dict[str, Any]],
) -> list[EfficiencyRange]:
    """Signal-efficiency uncertainty per M^2 range of ``templates.systematics.prl`` (PRL).

    In each range, with the control sample ``control.efficiency.samples[i]`` selected up to the
    Punzi-net: ``R_pre = N_data / N_sim`` (yields) and ``R_PN = eps_PN,data / eps_PN,sim``
    (fraction above ``selection.punzinet_min``); the uncertainty is
    ``sqrt((R_pre - 1)^2 + (R_PN - 1)^2)``, its error propagated from theirs. Events without a
    Punzi-net output (no network given) leave out the second term (recorded as NaN). A range
    with fewer than ``min_events`` effective events: the PRL value (fallback, recorded).
    """
    ec = cfg.control.efficiency
    prl = cfg.templates.systematics.prl
    cut = cfg.selection.punzinet_min
    keys = (
        "yield_data", "yield_data_err", "yield_sim", "yield_sim_err",
        "pn_eff_data", "pn_eff_data_err", "pn_eff_sim", "pn_eff_sim_err",
    )  # fmt: skip
    out = []
    for i, (lo, hi) in enumerate(prl.m2_ranges_gev2):
        name = ec.samples[i]
        cs = samples.get(name)
        v: dict[str, float] = dict.fromkeys(keys, math.nan)
        reason = "" if cs is not None else f"no {name} sample"
        if cs is not None:
            n_eff = []
            for kind, smp in (("data", cs.data), ("sim", cs.simulation)):
                sel = smp.selected & (smp.m_recoil2 >= lo) & (smp.m_recoil2 < hi)
                v[f"yield_{kind}"], var = smp.total(sel)
                v[f"yield_{kind}_err"] = math.sqrt(var)
                n_eff.append(smp.n_eff(sel))
                if sel.any() and np.all(np.isfinite(smp.punzinet[sel])):
                    v[f"pn_eff_{kind}"], v[f"pn_eff_{kind}_err"] = weighted_efficiency(
                        smp.total(sel & (smp.punzinet > cut)), smp.total(sel)
                    )
            if min(n_eff) < ec.min_events:
                reason = (
                    f"{min(n_eff):.0f} events in M^2 [{lo:g}, {hi:g}] GeV^2, need {ec.min_events:g}"
                )
        if reason:
            value = prl.signal_efficiency[i]
            what = f"signal efficiency in M^2 [{lo:g}, {hi:g}] GeV^2"
            _fallback(fallbacks, what, name, reason, value)
            out.append(
                EfficiencyRange(
                    m2_range=(lo, hi),
                    sample=name,
                    **v,
                    ratio_pre=math.nan,
                    ratio_pre_err=math.nan,
                    ratio_pn=math.nan,
                    ratio_pn_err=math.nan,
                    systematic=value,
                    systematic_err=0.0,
                    fallback=True,
                    reason=reason,
                )
            )
            continue
        r_pre, s_pre = _ratio(
            v["yield_data"], v["yield_data_err"], v["yield_sim"], v["yield_sim_err"]
        )
        r_pn, s_pn = _ratio(
            v["pn_eff_data"], v["pn_eff_data_err"], v["pn_eff_sim"], v["pn_eff_sim_err"]
        )
        terms = [(r_pre - 1.0, s_pre)]
        if math.isfinite(r_pn):
            terms.append((r_pn - 1.0, s_pn))
        syst = math.sqrt(sum(d * d for d, _ in terms))
        err = (
            math.sqrt(sum((d * e) ** 2 for d, e in terms)) / syst
            if syst > 0
            else math.sqrt(sum(e * e for _, e in terms))
        )
        measured = syst
        # an effect of the fallback's size would not stand out at 2 sigma, and none does
        if ec.require_sensitivity and 2.0 * err > prl.signal_efficiency[i] and syst < 2.0 * err:
            reason = (
                f"measured {100 * syst:.1f} +- {100 * err:.1f}% in M^2 [{lo:g}, {hi:g}] GeV^2: "
                "compatible with zero, too imprecise to resolve the fallback"
            )
            syst = prl.signal_efficiency[i]
            what = f"signal efficiency in M^2 [{lo:g}, {hi:g}] GeV^2"
            _fallback(fallbacks, what, name, reason, syst)
        out.append(
            EfficiencyRange(
                m2_range=(lo, hi),
                sample=name,
                **v,
                ratio_pre=r_pre,
                ratio_pre_err=s_pre,
                ratio_pn=r_pn,
                ratio_pn_err=s_pn,
                systematic=syst,
                systematic_err=err,
                measured=measured,
                fallback=bool(reason),
                reason=reason,
            )
        )
    return out


# ============================================================================ 5. background shape
@dataclass
class ShapeRange:
    """Background-shape uncertainty of one M^2 range from the per-window deviations."""

    m2_range: tuple[float, float]
    samples: tuple[str, ...]
    n_windows: int
    largest_std: float
    at_mass_gev: float
    statistic: float
    null_median: float
    null_std: float
    systematic: float
    measured: float = math.nan
    """The measured value (``systematic`` holds the fallback when one was used)."""
    fallback: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "m2_range_gev2": list(self.m2_range),
            "samples": list(self.samples),
            "windows": self.n_windows,
            "largest_std": _jf(self.largest_std),
            "at_mass_gev": _jf(self.at_mass_gev),
            "prl_statistic": _jf(self.statistic),
            "statistics_only_median": _jf(self.null_median),
            "statistics_only_std": _jf(self.null_std),
            "measured": _jf(self.measured),
            "systematic": _jf(self.systematic),
            "fallback": self.fallback,
            "reason": self.reason,
        }


def _bin_sums(
    x: NDArray[np.float64], w: NDArray[np.float64], edges: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Sums of ``w`` in the bins of every row of ``edges`` [n_windows, n_bins + 1]."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    cw = np.concatenate([[0.0], np.cumsum(w[order])])
    idx = np.searchsorted(xs, edges, side="left")
    return np.diff(cw[idx], axis=-1)


def _window_deviation(
    d: NDArray[np.float64], s: NDArray[np.float64], ok: NDArray[np.bool_], min_bins: int
) -> NDArray[np.float64]:
    """Standard deviation (ddof 1) of the normalised ratios per row; NaN below ``min_bins``."""
    n_ok = ok.sum(axis=-1)
    dn = np.where(ok, d, 0.0)
    sn = np.where(ok, s, 0.0)
    td = dn.sum(axis=-1, keepdims=True)
    ts = sn.sum(axis=-1, keepdims=True)
    good = (n_ok >= max(min_bins, 2)) & (td[..., 0] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(ok, (dn / td) / np.where(ok, sn / ts, 1.0), 0.0)
        mean = r.sum(axis=-1, keepdims=True) / np.maximum(n_ok, 1)[..., None]
        var = np.where(ok, (r - mean) ** 2, 0.0).sum(axis=-1) / np.maximum(n_ok - 1, 1)
    return np.where(good, np.sqrt(var), np.nan)


def _gamma_draw(
    rng: np.random.Generator, mean: NDArray[np.float64], var: NDArray[np.float64], size: int
) -> NDArray[np.float64]:
    """Positive draws with the given mean and variance (Gamma; zero where the mean is zero)."""
    m = np.broadcast_to(mean, (size, *mean.shape))
    v = np.broadcast_to(var, (size, *var.shape))
    pos = (m > 0) & (v > 0)
    shape = np.where(pos, m * m / np.where(pos, v, 1.0), 1.0)
    scale = np.where(pos, v / np.where(pos, m, 1.0), 0.0)
    return np.where(pos, rng.gamma(shape, scale), m)


def measure_background_shape(
    samples: Mapping[str, ControlSample],
    cfg: Config,
    fallbacks: list[dict[str, Any]],
    windows: Sequence[Any],
    rng: np.random.Generator,
) -> tuple[list[ShapeRange], list[dict[str, Any]]]:
    """Background-shape uncertainty per M^2 range (PRL definition, plus a statistics-only
    reference).

    For every search window (``windows``: :class:`zprime.analyses.invisible_zprime.binning.Window`,
    1D in M^2) the control
    sample is mu mu gamma when the hypothesis M^2 is up to ``split_m2_gev2`` and e mu above.
    Bin i of the window has data ``D_i`` and simulation ``S_i`` (selected up to, or with,
    the Punzi-net); bins with at least ``min_sim_events_per_bin`` effective simulated events
    give ``r_i = (D_i / sum D) / (S_i / sum S)`` (shape only: the fit leaves the background
    normalisation free). The window's deviation is the standard deviation of the r_i (at
    least ``min_bins`` of them). The PRL's statistic of a range is ``factor`` times the largest
    deviation among the windows whose hypothesis lies in the range.

    The same statistic for data that agree with the simulation up to statistics is estimated
    with ``toys`` pseudo-experiments (data ~ sum D * S_i / sum S with the data's variance per
    event, simulation ~ S_i with its sum w2; Gamma-distributed). With ``subtract_statistics``
    the systematic is ``sqrt(max(0, T^2 - median_toys^2))``, else ``T`` (the PRL's). Values are
    capped at ``max_uncertainty``. Returns the ranges and one row per window.
    """
    bc = cfg.control.background_shape
    prl = cfg.templates.systematics.prl
    cut = cfg.selection.punzinet_min
    win_m2 = np.array([w.m2_gev2 for w in windows], dtype=float)
    rows: list[dict[str, Any]] = []
    per_window = np.full(win_m2.size, np.nan)
    toys = np.full((bc.toys, win_m2.size), np.nan)
    for name, use in (
        ("mumugamma", win_m2 <= bc.split_m2_gev2),
        ("emu", win_m2 > bc.split_m2_gev2),
    ):
        cs = samples.get(name)
        if cs is None or not use.any():
            continue
        sel_w = [w for w, u in zip(windows, use, strict=True) if u]
        nbins = max(w.m2_edges.size for w in sel_w)
        edges = np.array(
            [np.pad(w.m2_edges, (0, nbins - w.m2_edges.size), mode="edge") for w in sel_w]
        )
        sums = {}
        for tag, smp in (("d", cs.data), ("s", cs.simulation)):
            sel = smp.selected
            if bc.after_punzinet:
                sel = sel & (smp.punzinet > cut)
            x = smp.m_recoil2[sel]
            sums[tag] = _bin_sums(x, smp.w[sel], edges)
            sums[f"v{tag}"] = _bin_sums(x, smp.w2[sel], edges)
        d, vd, s, vs = sums["d"], sums["vd"], sums["s"], sums["vs"]
        with np.errstate(invalid="ignore", divide="ignore"):
            n_eff_s = np.where(vs > 0, s * s / vs, 0.0)
        ok = n_eff_s >= bc.min_sim_events_per_bin
        dev = _window_deviation(d, s, ok, bc.min_bins)
        idx = np.flatnonzero(use)
        per_window[idx] = dev
        # statistics-only expectation, per window and toy
        td = np.where(ok, d, 0.0).sum(axis=1, keepdims=True)
        ts = np.where(ok, s, 0.0).sum(axis=1, keepdims=True)
        tvd = np.where(ok, vd, 0.0).sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            mult = np.where(td > 0, tvd / td, 1.0)
            exp_d = np.where(ok & (ts > 0), td * s / ts, 0.0)
        d_toy = _gamma_draw(rng, exp_d, mult * exp_d, bc.toys)
        s_toy = _gamma_draw(rng, np.where(ok, s, 0.0), np.where(ok, vs, 0.0), bc.toys)
        toys[:, idx] = _window_deviation(
            d_toy, s_toy, np.broadcast_to(ok, d_toy.shape), bc.min_bins
        )
        for j, w in enumerate(sel_w):
            rows.append(
                {
                    "name": w.name,
                    "mass_gev": w.mass_gev,
                    "m2_gev2": w.m2_gev2,
                    "sample": name,
                    "bins_used": int(ok[j].sum()),
                    "data": float(np.where(ok[j], d[j], 0.0).sum()),
                    "simulation": float(np.where(ok[j], s[j], 0.0).sum()),
                    "std": _jf(float(dev[j])),
                }
            )
    rows.sort(key=lambda r: r["m2_gev2"])
    out = []
    for i, (lo, hi) in enumerate(prl.m2_ranges_gev2):
        in_range = (
            (win_m2 >= lo) & (win_m2 < hi)
            if i < len(prl.m2_ranges_gev2) - 1
            else ((win_m2 >= lo) & (win_m2 <= hi))
        )
        names = tuple(
            sorted(
                {"mumugamma" for m in win_m2[in_range] if m <= bc.split_m2_gev2}
                | {"emu" for m in win_m2[in_range] if m > bc.split_m2_gev2}
            )
        )
        vals = per_window[in_range]
        good = np.isfinite(vals)
        if not good.any():
            reason = (
                "no search window in the range"
                if not in_range.any()
                else f"no window in M^2 [{lo:g}, {hi:g}] GeV^2 with {bc.min_bins} bins of >= "
                f"{bc.min_sim_events_per_bin:g} simulated events and data"
            )
            value = prl.background_shape[i]
            _fallback(
                fallbacks,
                f"background shape in M^2 [{lo:g}, {hi:g}] GeV^2",
                "+".join(names) or "mumugamma+emu",
                reason,
                value,
            )
            out.append(
                ShapeRange(
                    m2_range=(lo, hi),
                    samples=names,
                    n_windows=0,
                    largest_std=math.nan,
                    at_mass_gev=math.nan,
                    statistic=math.nan,
                    null_median=math.nan,
                    null_std=math.nan,
                    systematic=value,
                    fallback=True,
                    reason=reason,
                )
            )
            continue
        j = int(np.nanargmax(np.where(good, vals, -np.inf)))
        largest = float(vals[j])
        at = float(np.sqrt(max(win_m2[in_range][j], 0.0)))
        stat = bc.factor * largest
        tvals = toys[:, in_range]
        with np.errstate(invalid="ignore"):
            null = bc.factor * np.nanmax(np.where(np.isfinite(tvals), tvals, -np.inf), axis=1)
        null = null[np.isfinite(null)]
        med = float(np.median(null)) if null.size else math.nan
        sd = float(np.std(null, ddof=1)) if null.size > 1 else math.nan
        syst = (
            math.sqrt(max(0.0, stat * stat - med * med))
            if bc.subtract_statistics and math.isfinite(med)
            else stat
        )
        measured = syst
        reason = ""
        unresolved = not med <= prl.background_shape[i] and not stat > med + 2.0 * sd
        if bc.require_sensitivity and unresolved:
            reason = (
                f"statistics alone give {100 * med:.1f} +- {100 * sd:.1f}% in M^2 "
                f"[{lo:g}, {hi:g}] GeV^2, measured {100 * stat:.1f}%: the sample cannot resolve "
                "the fallback"
            )
            syst = prl.background_shape[i]
            what = f"background shape in M^2 [{lo:g}, {hi:g}] GeV^2"
            _fallback(fallbacks, what, "+".join(names), reason, syst)
        if syst > bc.max_uncertainty:
            log.warning(
                f"background shape in M^2 [{lo:g}, {hi:g}] GeV^2: {syst:.3g} capped at "
                f"{bc.max_uncertainty:g}"
            )
            syst = bc.max_uncertainty
        out.append(
            ShapeRange(
                m2_range=(lo, hi),
                samples=names,
                n_windows=int(good.sum()),
                largest_std=largest,
                at_mass_gev=at,
                statistic=stat,
                null_median=med,
                null_std=sd,
                systematic=syst,
                measured=measured,
                fallback=bool(reason),
                reason=reason,
            )
        )
    return out, rows


# ============================================================================ all together
@dataclass
class ControlResult:
    """Every measurement, the derived systematics, the fallbacks used and the inputs."""

    trigger: TriggerResult
    photon_veto: PhotonVetoResult
    resolution: ResolutionResult
    efficiency: list[EfficiencyRange]
    background_shape: list[ShapeRange]
    systematics: SystematicsValues
    fallbacks: list[dict[str, Any]]
    windows: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def corrections(self) -> Corrections:
        """The corrections to apply to simulation (:class:`Corrections`)."""
        return Corrections.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The content of ``corrections.json``."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "zprime_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "inputs": self.inputs,
            "samples": self.samples,
            "trigger": self.trigger.to_dict(),
            "photon_veto": self.photon_veto.to_dict(),
            "resolution": self.resolution.to_dict(),
            "signal_efficiency": [e.to_dict() for e in self.efficiency],
            "background_shape": [s.to_dict() for s in self.background_shape],
            "systematics": self.systematics.model_dump(mode="json"),
            "fallbacks": self.fallbacks,
            "comparison": self.comparison_rows(),
        }

    def write(self, path: str | Path) -> Path:
        """Write ``corrections.json`` atomically."""
        return write_json_atomic(path, self.to_dict())

    def comparison_rows(self) -> list[dict[str, Any]]:
        """The derived systematics and corrections next to the configured fallbacks
        (``config``: ``templates.systematics.prl`` and the ``control`` fallbacks) and the PRL's
        values (one row per quantity)."""
        prl = SystematicsValues()  # the model's defaults are the PRL's values (cited there)
        fb = (
            SystematicsValues(**self.inputs["fallback_systematics"])
            if "fallback_systematics" in self.inputs
            else prl
        )
        cc = ControlConfig(**self.inputs["control"]) if "control" in self.inputs else None
        rows: list[dict[str, Any]] = []
        trig = self.trigger
        fin = np.isfinite(trig.eff_data) & trig.used
        rows.append(
            {
                "quantity": "two-track trigger efficiency (data)",
                "range": "M^2 bins used",
                "derived": (
                    f"{np.min(trig.eff_data[fin]):.3f} - {np.max(trig.eff_data[fin]):.3f}"
                    if fin.any()
                    else "n/a"
                ),
                "config": "{:g} - {:g}".format(*cc.trigger.prl_efficiency) if cc else "",
                "prl": "0.89 - 0.93",
                "source": "fallback" if trig.fallback else "measured",
            }
        )
        rows.append(
            {
                "quantity": "trigger correction data/simulation",
                "range": "c(M^2) = "
                + " + ".join(
                    f"{c:.4g} M^{2 * k}" if k else f"{c:.4g}"
                    for k, c in enumerate(trig.coefficients)
                ),
                "derived": f"{float(trig.correction(trig.fit_range[0])[0]):.3f} - "
                f"{float(trig.correction(trig.fit_range[1])[0]):.3f}",
                "config": (
                    "c = " + " + ".join(f"{c:g}" for c in cc.trigger.fallback_coefficients)
                    if cc
                    else ""
                ),
                "prl": "not quoted",
                "source": "fallback" if trig.fallback else "measured",
            }
        )
        pv = self.photon_veto
        rows.append(
            {
                "quantity": "photon-veto inefficiency, backward barrel (data / simulation)",
                "range": f"M^2 < {pv.m2_max:g}",
                "derived": f"{_fmt(pv.eff_data, pv.err_data)} / {_fmt(pv.eff_sim, pv.err_sim)}",
                "config": "",
                "prl": "larger in data",
                "source": "fallback" if pv.fallback else "measured",
            }
        )
        rows.append(
            {
                "quantity": f"extra photon loss per photon, backward barrel ({pv.trigger} trigger)",
                "range": f"M^2 < {pv.m2_max:g}",
                # two decimals: the stratified ee sample measures it to ~0.07%
                "derived": (
                    f"{100 * pv.extra_miss:.2f} +- {100 * pv.extra_miss_err:.2f}% "
                    f"({pv.n_data:.0f} / {pv.n_sim:.0f} effective events)"
                    if math.isfinite(pv.extra_miss_err) and pv.extra_miss_err > 0
                    else _pct(pv.extra_miss)
                ),
                "config": _pct(cc.photon_veto.fallback_extra_miss_probability) if cc else "",
                "prl": "not quoted",
                "source": "fallback" if pv.fallback else "measured",
            }
        )
        res = self.resolution
        rows.append(
            {
                "quantity": "resolution scale data/simulation",
                "range": "mu mu gamma",
                "derived": _fmt(res.scale, res.scale_err, 4),
                "config": f"{cc.resolution.fallback_scale:g}" if cc else "",
                "prl": "1.08",
                "source": "fallback" if res.fallback else "measured",
            }
        )
        rows.append(
            {
                "quantity": "signal shape",
                "range": "all",
                "derived": _pct(res.signal_shape, res.signal_shape_err),
                "config": _pct(fb.signal_shape),
                "prl": _pct(prl.signal_shape),
                "source": "fallback" if res.fallback else "measured",
            }
        )
        for i, e in enumerate(self.efficiency):
            rows.append(
                {
                    "quantity": f"signal efficiency ({e.sample})",
                    "range": f"[{e.m2_range[0]:g}, {e.m2_range[1]:g}]",
                    "derived": (
                        f"{_pct(e.systematic)} (measured {_pct(e.measured, e.systematic_err)})"
                        if e.fallback and math.isfinite(e.measured)
                        else _pct(e.systematic, e.systematic_err)
                    ),
                    "config": _pct(fb.signal_efficiency[i])
                    if i < len(fb.signal_efficiency)
                    else "",
                    "prl": _pct(prl.signal_efficiency[i]) if i < len(prl.signal_efficiency) else "",
                    "source": "fallback" if e.fallback else "measured",
                }
            )
        for i, s in enumerate(self.background_shape):
            raw = (
                f" (PRL definition {_pct(s.statistic)}, statistics alone {_pct(s.null_median)})"
                if math.isfinite(s.statistic)
                else ""
            )
            rows.append(
                {
                    "quantity": f"background shape ({'+'.join(s.samples)})",
                    "range": f"[{s.m2_range[0]:g}, {s.m2_range[1]:g}]",
                    "derived": _pct(s.systematic) + raw,
                    "config": _pct(fb.background_shape[i]) if i < len(fb.background_shape) else "",
                    "prl": _pct(prl.background_shape[i]) if i < len(prl.background_shape) else "",
                    "source": "fallback" if s.fallback else "measured",
                }
            )
        split = self.systematics.photon_veto_split_m2_gev2
        for j, label in enumerate((f"< {split:g}", f"> {split:g}")):
            rows.append(
                {
                    "quantity": "photon-veto background shape (ee)",
                    "range": label,
                    "derived": _pct(pv.shape[j]),
                    "config": _pct(fb.photon_veto_shape[j]),
                    "prl": _pct(prl.photon_veto_shape[j]),
                    "source": "fallback" if pv.shape_fallback[j] else "measured",
                }
            )
        return rows

    def comparison_markdown(self) -> str:
        """:meth:`comparison_rows` as a Markdown table."""
        lines = [
            "Derived corrections and systematic uncertainties next to the configured fallbacks "
            "and the PRL's (PRL 130, 231801 (2023))",
            "",
            "| quantity | M^2 range [GeV^2] | derived | fallback (config) | PRL | source |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.comparison_rows():
            lines.append(
                f"| {r['quantity']} | {r['range']} | {r['derived']} | {r['config']} | {r['prl']} "
                f"| {r['source']} |"
            )
        if self.fallbacks:
            lines += ["", "Fallbacks used:", ""]
            lines += [
                f"- {f['measurement']} (sample `{f['sample']}`): {f['reason']}; value {f['value']}"
                for f in self.fallbacks
            ]
        return "\n".join(lines) + "\n"


def _fmt(v: float, e: float | None = None, digits: int = 4) -> str:
    if not math.isfinite(v):
        return "n/a"
    if e is None or not math.isfinite(e):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g} +- {e:.2g}"


def _pct(v: float, e: float | None = None) -> str:
    if not math.isfinite(v):
        return "n/a"
    if e is None or not math.isfinite(e) or e == 0:
        return f"{100 * v:.1f}%"
    return f"{100 * v:.1f} +- {100 * e:.1f}%"


def _check_config(cfg: Config) -> None:
    prl = cfg.templates.systematics.prl
    n = len(prl.m2_ranges_gev2)
    if len(cfg.control.efficiency.samples) != n:
        raise ConfigError(
            f"config field 'control.efficiency.samples': needs one sample per M^2 range of "
            f"templates.systematics.prl ({n}), got {len(cfg.control.efficiency.samples)}"
        )


def derive(
    samples: Mapping[str, ControlSample],
    config: Config,
    *,
    mumu_simulation: ChannelSample | None = None,
    resolution: Any = None,
    rng: np.random.Generator | None = None,
) -> ControlResult:
    """Every measurement of the control samples and the systematics derived from them.

    Parameters
    ----------
    samples
        Channel name (``emu``, ``ee``, ``mumugamma``) -> data and simulation. A missing channel
        makes its measurements fall back (warning, recorded).
    config
        The configuration (``control``, ``templates.systematics.prl`` for the ranges and the
        fallbacks, ``selection.punzinet_min``, ``binning`` for the search windows).
    mumu_simulation
        The simulated signal-region sample of ``photon_veto_samples`` with ``recoverable``
        flags, for the photon-veto shape uncertainty.
    resolution
        :class:`zprime.analyses.invisible_zprime.binning.ResolutionModel` of the search windows
        (default: the PRL's).
    rng
        Random numbers for the statistics-only toys (default: from ``seed`` and
        ``control.seed_offset``).
    """
    from zprime.analyses.invisible_zprime.binning import ResolutionModel, windows_from_config

    _check_config(config)
    cc = config.control
    prl = config.templates.systematics.prl
    if rng is None:
        rng = chunk_rng(config.seed, cc.seed_offset, 1)
    fallbacks: list[dict[str, Any]] = []
    trig = measure_trigger(samples.get("emu"), cc, fallbacks)
    veto = measure_photon_veto(samples.get("ee"), config, fallbacks, mumu_simulation)
    res = measure_resolution(samples.get("mumugamma"), config, fallbacks)
    corrected = dict(samples)
    if cc.correct_simulation and not trig.fallback:
        corrected = {
            k: ControlSample(
                k, v.data, v.simulation.scaled(trig.correction(v.simulation.m_recoil2))
            )
            for k, v in samples.items()
        }
    eff = measure_signal_efficiency(corrected, config, fallbacks)
    model = resolution if resolution is not None else ResolutionModel.prl()
    _, _, windows = windows_from_config(config.binning, model)
    shape, rows = measure_background_shape(corrected, config, fallbacks, windows, rng)
    cap = cc.background_shape.max_uncertainty

    def capped(v: float) -> float:
        return float(min(max(v, 0.0), cap))

    systematics = SystematicsValues(
        m2_ranges_gev2=list(prl.m2_ranges_gev2),
        signal_efficiency=[capped(e.systematic) for e in eff],
        signal_shape=capped(res.signal_shape),
        background_shape=[capped(s.systematic) for s in shape],
        photon_veto_split_m2_gev2=prl.photon_veto_split_m2_gev2,
        photon_veto_shape=(capped(veto.shape[0]), capped(veto.shape[1])),
        photon_veto_samples=list(prl.photon_veto_samples),
        luminosity=prl.luminosity,
    )
    summary = {}
    for name, cs in samples.items():
        summary[name] = {
            kind: {
                "events": len(smp),
                "yield_selected": smp.total(smp.selected)[0],
                "yield_selected_err": math.sqrt(smp.total(smp.selected)[1]),
                "sources": list(smp.sources),
            }
            for kind, smp in (("data", cs.data), ("simulation", cs.simulation))
        }
    return ControlResult(
        trigger=trig,
        photon_veto=veto,
        resolution=res,
        efficiency=eff,
        background_shape=shape,
        systematics=systematics,
        fallbacks=fallbacks,
        windows=rows,
        samples=summary,
        inputs={
            "luminosity_fb": config.luminosity_fb,
            "control": cc.model_dump(mode="json"),
            "selection": config.selection.model_dump(mode="json"),
            "fallback_systematics": prl.model_dump(mode="json"),
            "resolution_model": getattr(model, "source", "prl"),
            "windows": len(windows),
        },
    )


# ============================================================================ corrections
@dataclass(frozen=True)
class Corrections:
    """Corrections measured in the control samples, to apply to the simulation.

    - trigger: every simulated event (signal and background) gets ``trigger_weight(M^2)``;
    - photon veto (the mu mu background, ``photon_veto_samples``): an event that passes the veto
      keeps weight 1 (``pass_scale`` when data miss fewer photons than the simulation and its
      recoil is in the backward barrel at M^2 < ``m2_max``); an event that fails the veto only
      because of photons in the backward barrel (:func:`photon_veto_recoverable`) enters with
      weight ``extra_miss`` (the probability that data miss such a photon); other failing
      events have weight 0.
    """

    trigger_coefficients: tuple[float, ...]
    trigger_covariance: tuple[tuple[float, ...], ...]
    trigger_range: tuple[float, float]
    extra_miss: float
    extra_miss_err: float
    eff_sim: float
    theta_range: tuple[float, float]
    m2_max: float
    photon_veto_samples: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "corrections") -> Corrections:
        """From the content of ``corrections.json``."""
        try:
            t = data["trigger"]
            p = data["photon_veto"]
            return cls(
                tuple(float(c) for c in t["coefficients"]),
                tuple(tuple(float(v) for v in row) for row in t["covariance"]),
                (float(t["fit_range_gev2"][0]), float(t["fit_range_gev2"][1])),
                float(p["extra_miss_probability"] or 0.0),
                float(p["extra_miss_probability_err"] or 0.0),
                float(p["inefficiency_simulation"] or 0.0),
                (p["theta_recoil_deg"][0] * _DEG, p["theta_recoil_deg"][1] * _DEG),
                float(p["m2_max_gev2"]),
                tuple(data["systematics"]["photon_veto_samples"]),
            )
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise InputError(f"{where}: not a corrections file ({err!r})") from None

    def trigger_weight(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Trigger correction at ``m2`` (clipped to the fitted M^2 range)."""
        return _poly(self.trigger_coefficients, np.clip(_f64(m2), *self.trigger_range))

    def trigger_weight_uncertainty(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Uncertainty of :meth:`trigger_weight`."""
        cov = np.asarray(self.trigger_covariance, dtype=float)
        return _poly_err(cov, np.clip(_f64(m2), *self.trigger_range))

    def photon_veto_weight(
        self,
        passed: ArrayLike,
        recoverable: ArrayLike,
        theta_recoil: ArrayLike,
        m2: ArrayLike,
    ) -> NDArray[np.float64]:
        """Per-event weight of the mu mu background for the photon-veto correction.

        ``passed``: the event passes the photon veto; ``recoverable``: it fails it only because
        of photons in the backward barrel; ``theta_recoil`` (rad) and ``m2`` (GeV^2).
        """
        smp = ChannelSample.from_columns(
            _SIGNAL_REGION,
            {
                "m_recoil2": m2,
                "theta_recoil": theta_recoil,
                "weight": np.ones(np.size(m2)),
                "photon_veto": passed,
                "recoverable": recoverable,
            },
        )
        return _veto_weights(smp, self.extra_miss, self.eff_sim, self.theta_range, self.m2_max)


def read_corrections(path: str | Path) -> Corrections:
    """Read the corrections of a ``corrections.json`` (written by :func:`run_control`).

    Raises
    ------
    InputError
        Missing or unreadable file, another format or version, missing entries.
    """
    from zprime._util import read_json_object

    data = read_json_object(path, "corrections")
    if data.get("format") != FORMAT:
        raise InputError(f"{path}: not a zprime corrections file")
    if data.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: corrections version {data.get('format_version')} "
            f"(this zprime reads {FORMAT_VERSION})"
        )
    return Corrections.from_dict(data, where=str(path))


# ============================================================================ reading files
def _first_two(events: ak.Array, name: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    padded = ak.fill_none(ak.pad_none(events["tracks"][name], 2, axis=1, clip=True), np.nan)
    arr = np.asarray(ak.to_numpy(padded), dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def photon_veto_recoverable(
    events: ak.Array, selection: SelectionConfig, theta_deg: tuple[float, float]
) -> NDArray[np.bool_]:
    """True where the photon veto passes once photons with lab polar angle in ``theta_deg``
    (the backward barrel) are removed: what a data detector that misses those photons sees.

    The veto is recomputed like the selection's (total photon energy below
    ``photon_energy_max_gev``, no photon within ``photon_recoil_angle_min_deg`` of the recoil)
    with :func:`zprime.physics.kinematics.photon_recoil_variables`.
    """
    from zprime.physics.kinematics import photon_recoil_variables, polar_angle

    p1 = [_first_two(events, c) for c in ("px", "py", "pz")]
    rec = np.stack([P_BEAMS_LAB[1 + k] - (p1[k][0] + p1[k][1]) for k in range(3)], axis=-1)
    ph = events["photons"]
    counts = np.asarray(ak.to_numpy(ak.num(ph, axis=1)), dtype=np.int64)
    flat = np.stack(
        [
            np.asarray(ak.to_numpy(ak.flatten(ph[c], axis=1)), dtype=float)
            for c in ("e", "px", "py", "pz")
        ],
        axis=-1,
    )
    theta = polar_angle(flat)
    keep = ~((theta >= theta_deg[0] * _DEG) & (theta <= theta_deg[1] * _DEG))
    event_of = np.repeat(np.arange(counts.size), counts)
    kept_counts = np.bincount(event_of[keep], minlength=counts.size).astype(np.int64)
    e_sum, min_angle = photon_recoil_variables(rec, flat[keep], kept_counts)
    return (e_sum < selection.photon_energy_max_gev) & (
        min_angle > selection.photon_recoil_angle_min_deg * _DEG
    )


def trigger_acceptance(events: ak.Array, trigger: TriggerConfig) -> NDArray[np.bool_]:
    """True where the first two tracks meet the two-track line's conditions offline.

    Both tracks with lab polar angle in ``trigger.track_theta_deg`` and an azimuthal opening
    above ``dphi_min_2019_deg`` / ``dphi_min_2020_deg`` by the ``period`` column (PRL: "at least
    one pair of tracks with theta in [37, 120] deg and an azimuthal opening angle larger than
    90 deg or 30 deg for data collected in 2019 and 2020"); for the selected events, which have
    exactly two tracks, that pair is the only one.
    """
    px = _first_two(events, "px")
    py = _first_two(events, "py")
    pz = _first_two(events, "pz")
    lo, hi = (t * _DEG for t in trigger.track_theta_deg)
    ok = np.ones(len(events), dtype=bool)
    phi = []
    for k in range(2):
        theta = np.arctan2(np.hypot(px[k], py[k]), pz[k])
        with np.errstate(invalid="ignore"):
            ok &= (theta >= lo) & (theta <= hi)
        phi.append(np.arctan2(py[k], px[k]))
    dphi = np.abs(np.mod(phi[0] - phi[1] + np.pi, 2.0 * np.pi) - np.pi)
    period = np.asarray(ak.to_numpy(events["period"])) if "period" in ak.fields(events) else None
    if period is None:
        raise InputError("control sample: missing column 'period'")
    dmin = np.where(period == 2019, trigger.dphi_min_2019_deg, trigger.dphi_min_2020_deg) * _DEG
    with np.errstate(invalid="ignore"):
        return ok & (dphi > dmin)


def _cm_cluster(
    e: NDArray[np.float64],
    px: NDArray[np.float64],
    py: NDArray[np.float64],
    pz: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """c.m. energy and polar angle and the azimuth of a massless cluster of lab energy ``e``
    along (px, py, pz) (the boost of :func:`zprime.detector.simulation.simulate`'s Bhabha veto)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_t = pz / np.hypot(np.hypot(px, py), pz)
    e_cm = GAMMA_BOOST * e * (1.0 - BETA_BOOST * cos_t)
    theta_cm = np.arctan2(
        e * np.sqrt(np.maximum(1.0 - cos_t**2, 0.0)), GAMMA_BOOST * e * (cos_t - BETA_BOOST)
    )
    return e_cm, theta_cm, np.arctan2(py, px)


def recoil_bhabha_veto(
    events: ak.Array,
    trigger: TriggerConfig,
    *,
    energy_margin: float = 0.05,
    angle_margin_deg: float = 2.0,
    track_pair: bool = False,
) -> NDArray[np.bool_]:
    """True where the recoil, taken as a photon, could fire the two-track line's 3D Bhabha veto
    together with one of the two tracks taken as electron showers (with ``track_pair``: or the
    two tracks together).

    The veto (basf2 TrgEclBhabha, :func:`zprime.detector.simulation.simulate`; settings
    ``trigger.bhabha_*``
    of the detector configuration) fires on two ECL clusters with c.m. energies above
    ``bhabha_e_min_cm_gev``, the larger above ``bhabha_e_max_cm_gev``, back to back in azimuth
    (``bhabha_dphi_cm_deg``) and with polar angles summing to ``bhabha_theta_sum_cm_deg`` in the
    c.m. frame. In an ee event with M_recoil^2 ~ 0 the photon carries the recoil; when it and an
    electron meet these conditions, the two-track line is vetoed if the photon is seen and not
    if it is missed, so that among triggered events missed photons are over-represented (the
    photon-veto measurement needs a trigger decision that does not depend on the photon:
    ``docs/control.md``). The photon is the recoil (energy ``|p_recoil|``), the electrons have
    energy ``|p|``; the thresholds are lowered by ``energy_margin`` (relative) and the angular
    windows widened by ``angle_margin_deg`` to cover the cluster resolutions (ECL ~2% at a few
    GeV; the recoil direction from the tracks), so that the flag errs on the side of "could".

    ``track_pair`` is for the e mu sample of the trigger study: a radiative Bhabha in which one
    electron is taken for a muon and the photon is missed has two electron showers nearly back
    to back, which fire the veto whether or not the photon is seen, so that such events (more
    frequent in data, which lose more photons) would lower the measured efficiency; a true
    muon leaves a minimum-ionising deposit and cannot fire it.
    """
    p = [_first_two(events, c) for c in ("px", "py", "pz")]
    rec = [P_BEAMS_LAB[1 + k] - (p[k][0] + p[k][1]) for k in range(3)]
    e_rec = np.sqrt(rec[0] ** 2 + rec[1] ** 2 + rec[2] ** 2)
    clusters = [_cm_cluster(e_rec, *rec)]
    for k in range(2):
        e_k = np.sqrt(p[0][k] ** 2 + p[1][k] ** 2 + p[2][k] ** 2)
        clusters.append(_cm_cluster(e_k, p[0][k], p[1][k], p[2][k]))
    e_min = trigger.bhabha_e_min_cm_gev * (1.0 - energy_margin)
    e_max = trigger.bhabha_e_max_cm_gev * (1.0 - energy_margin)
    lo_d, hi_d = trigger.bhabha_dphi_cm_deg
    lo_t, hi_t = trigger.bhabha_theta_sum_cm_deg
    m = angle_margin_deg
    out = np.zeros(e_rec.size, dtype=bool)
    pairs = [(1, 0), (2, 0)] + ([(1, 2)] if track_pair else [])
    for a, b in pairs:
        ec_a, th_a, ph_a = clusters[a]
        ec_b, th_b, ph_b = clusters[b]
        d = np.mod(ph_a - ph_b, 2.0 * np.pi) / _DEG  # [0, 360), as the detector's veto
        tsum = (th_a + th_b) / _DEG
        with np.errstate(invalid="ignore"):
            phi_ok = ((d > lo_d - m) & (d < hi_d + m)) | (
                (360.0 - d > lo_d - m) & (360.0 - d < hi_d + m)
            )
            out |= (
                phi_ok
                & (tsum > lo_t - m)
                & (tsum < hi_t + m)
                & (ec_a > e_min)
                & (ec_b > e_min)
                & (np.maximum(ec_a, ec_b) > e_max)
            )
    return out


def _extract_channel(
    batch: ak.Array,
    selection: SelectionConfig,
    channel: str,
    *,
    model: Any,
    lumi: float,
    recoverable_theta: tuple[float, float] | None,
    trigger: TriggerConfig | None = None,
) -> tuple[ChannelSample, ak.Array]:
    """The events of ``batch`` passing every non-deferred step of ``channel``, and the batch
    with a ``punzinet`` column (NaN outside them) for the cut flow."""
    cfg = selection.model_copy(
        update={"disabled": sorted(set(selection.disabled) | set(DEFERRED_STEPS))}
    )
    masks = step_masks(batch, cfg, channel)
    base = np.ones(len(batch), dtype=bool)
    for m in masks.values():
        base &= m
    full = step_masks(
        batch,
        selection.model_copy(update={"disabled": sorted(set(selection.disabled) | {"punzinet"})}),
        channel,
    )
    ones = np.ones(len(batch), dtype=bool)
    kept = batch[base]
    fields = ak.fields(batch)
    pn_full = np.full(len(batch), np.nan)
    if model is not None and len(kept):
        from zprime.analyses.invisible_zprime.punzinet import predict

        pn_full[base] = predict(model, kept)
    elif "punzinet" in fields:
        pn_full = np.asarray(ak.to_numpy(batch["punzinet"]), dtype=float)
    scored = ak.with_field(batch, pn_full, "punzinet")

    def col(name: str) -> NDArray[np.float64]:
        if name not in fields:
            raise InputError(f"control sample '{channel}': missing column '{name}'")
        return np.asarray(ak.to_numpy(batch[name]), dtype=float)[base]

    rec = None
    if recoverable_theta is not None:
        rec = photon_veto_recoverable(kept, selection, recoverable_theta)
    acc = trigger_acceptance(kept, trigger) if trigger is not None else None
    rb = (
        recoil_bhabha_veto(kept, trigger, track_pair=channel == "emu")
        if trigger is not None and channel in ("ee", "emu")
        else None
    )
    w = col("weight")
    smp = ChannelSample(
        channel,
        col("m_recoil2"),
        col("theta_recoil"),
        col("theta_recoil_cm"),
        w * lumi,
        (w * lumi) ** 2,
        full.get("trigger", ones)[base],
        col("trg_ecl").astype(bool),
        full.get("photon_veto", ones)[base],
        pn_full[base],
        np.zeros(int(base.sum()), dtype=np.int32),
        ("",),
        rec,
        acc,
        rb,
    )
    return smp, scored


def read_channels(
    paths: Mapping[str, str | Path],
    config: Config,
    *,
    channels: Sequence[str] = CONTROL_CHANNELS,
    model: Any = None,
    is_data: bool = False,
    signal_region_samples: Sequence[str] = (),
    seed_key: int = 0,
) -> tuple[dict[str, ChannelSample], dict[str, list[CutFlow]]]:
    """Read reconstructed files into channel samples, batch by batch.

    Parameters
    ----------
    paths
        Sample name -> reconstructed file (``docs/event-schema.md``; a file selected with
        :func:`zprime.analyses.invisible_zprime.selection.select_file` is fine as long as no step of
        :data:`DEFERRED_STEPS` was applied).
    config
        The configuration (``selection``, ``luminosity_fb``, ``control``).
    channels
        Channels to fill.
    model
        A trained Punzi-net (:class:`zprime.analyses.invisible_zprime.punzinet.TrainedPunziNet`)
        applied to the kept
        events; ``None``: a ``punzinet`` column of the files is used if present, else NaN.
    is_data
        Data-detector samples: with ``control.data_mode: poisson`` every kept event is drawn
        ``m ~ Poisson(L w)`` times (seeded by ``seed``, ``control.seed_offset``, ``seed_key``,
        the sample name, channel and batch) and enters with ``w = m``, ``w2 = m^2``.
    signal_region_samples
        Samples for which the signal-region channel ``mumu`` is also read, with the
        ``recoverable`` flags (:func:`photon_veto_recoverable`).

    Returns
    -------
    (samples, cut_flows)
        Channel -> sample (all files joined), channel -> the cut flows of every file (weighted
        expected yields at ``luminosity_fb``; the full channel selection, the Punzi-net step
        included when outputs exist).
    """
    from zprime.io.events import iter_events

    cc = config.control
    lumi = config.luminosity_fb
    names = sorted(paths)
    parts: dict[str, list[ChannelSample]] = {}
    flows: dict[str, list[CutFlow]] = {}
    theta = cc.photon_veto.theta_recoil_deg
    trigger = config.detector.get().trigger
    for name in names:
        key = zlib.crc32(name.encode())  # a stable stream per sample, whatever the others
        todo = [(c, None) for c in channels]
        if name in signal_region_samples:
            todo.append((_SIGNAL_REGION, theta))
        sample_flows: dict[str, CutFlow] = {}
        label = f"data:{name}" if is_data else name
        for bi, batch in enumerate(iter_events(paths[name], batch_size=cc.batch_size)):
            for channel, rec_theta in todo:
                ci = CONTROL_CHANNELS.index(channel) if channel in CONTROL_CHANNELS else 9
                smp, scored = _extract_channel(
                    batch,
                    config.selection,
                    channel,
                    model=model,
                    lumi=lumi,
                    recoverable_theta=rec_theta,
                    trigger=trigger,
                )
                smp.sources = (name,)
                # the same steps in every batch: the network step when outputs exist at all
                no_pn = model is None and "punzinet" not in ak.fields(batch)
                skip = ["punzinet"] if no_pn and "punzinet" not in config.selection.disabled else []
                _, flow = apply_selection(
                    scored,
                    config.selection,
                    channel=channel,
                    luminosity_fb=lumi,
                    sample=label,
                    skip=skip,
                )
                prev = sample_flows.get(channel)
                sample_flows[channel] = flow if prev is None else prev.add(flow)
                if is_data:
                    smp = _draw(
                        smp,
                        cc.data_mode,
                        chunk_rng(config.seed, cc.seed_offset, seed_key, key, ci, bi),
                    )
                parts.setdefault(channel, []).append(smp)
        for channel, flow in sample_flows.items():
            flows.setdefault(channel, []).append(flow)
    samples = {
        channel: ChannelSample.concatenate(channel, plist) for channel, plist in parts.items()
    }
    return samples, flows


def _draw(smp: ChannelSample, mode: str, rng: np.random.Generator) -> ChannelSample:
    """Pseudo-data from a weighted data-detector sample (see :func:`read_channels`)."""
    if mode == "weighted":
        return smp
    # the same thinning as the run's pseudo-data (zprime.stats.pseudodata.event_counts): each
    # independently generated data-detector event enters at most once when L w <= 1
    m = event_counts(smp.w, rng).astype(float)
    out = smp.subset(m > 0)
    out.w = m[m > 0]
    out.w2 = out.w**2
    return out


# ============================================================================ plots
def _stack_hist(
    smp: ChannelSample,
    values: NDArray[np.float64],
    mask: NDArray[np.bool_],
    edges: NDArray[np.float64],
) -> tuple[list[NDArray[np.float64]], list[str], NDArray[np.float64]]:
    hists, labels = [], []
    for k, name in enumerate(smp.sources):
        sel = mask & (smp.source == k)
        h, _ = np.histogram(values[sel], bins=edges, weights=smp.w[sel])
        if h.sum() > 0:
            hists.append(h)
            labels.append(name)
    var, _ = np.histogram(values[mask], bins=edges, weights=smp.w2[mask])
    return hists, labels, var


def comparison_figure(
    sample: ControlSample,
    variable: str,
    edges: ArrayLike,
    *,
    xlabel: str,
    luminosity_fb: float,
    mask: Callable[[ChannelSample], NDArray[np.bool_]] | None = None,
    transform: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
    log_y: bool = True,
    title: str = "",
) -> Any:
    """Data (points) over stacked simulation with a data/simulation ratio panel.

    ``variable`` is a :class:`ChannelSample` attribute; ``mask`` selects events (default: the
    channel's selection before the Punzi-net); ``transform`` maps values (e.g. to degrees).
    """
    import matplotlib.pyplot as plt
    import mplhep as mh

    from zprime.report import plots

    mh.style.use("plothist")
    e = np.asarray(edges, dtype=float)
    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=(7.0, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    tot = {}
    for kind, smp in (("data", sample.data), ("sim", sample.simulation)):
        sel = smp.selected if mask is None else mask(smp)
        vals = getattr(smp, variable)
        vals = transform(vals) if transform is not None else vals
        sel = sel & np.isfinite(vals)
        hists, labels, var = _stack_hist(smp, vals, sel, e)
        tot[kind] = (np.sum(hists, axis=0) if hists else np.zeros(e.size - 1), var)
        if kind == "sim" and hists:
            mh.histplot(
                hists,
                e,
                stack=True,
                histtype="fill",
                ax=ax,
                label=[plots.SAMPLE_LABELS.get(n, n) for n in labels],
                color=[plots.SAMPLE_COLORS.get(n) for n in labels],
            )
    centres = 0.5 * (e[1:] + e[:-1])
    d, vd = tot["data"]
    s, vs = tot["sim"]
    ax.errorbar(centres, d, yerr=np.sqrt(vd), fmt="o", color="black", markersize=3, label="data")
    if log_y and np.any(d > 0) | np.any(s > 0):
        ax.set_yscale("log")
        pos = np.concatenate([d[d > 0], s[s > 0]])
        if pos.size:
            ax.set_ylim(bottom=0.5 * pos.min())
    ax.set_ylabel("events / bin")
    ax.legend(title=title or None, fontsize="small", ncols=2)
    plots.label(ax, luminosity_fb)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(s > 0, d / s, np.nan)
        rerr = np.where(s > 0, np.sqrt(vd) / s, np.nan)
        band = np.where(s > 0, np.sqrt(vs) / s, np.nan)
    rax.fill_between(
        e,
        np.append(1 - band, (1 - band)[-1:]),
        np.append(1 + band, (1 + band)[-1:]),
        step="post",
        color="0.8",
        label="simulation stat.",
    )
    rax.errorbar(centres, ratio, yerr=rerr, fmt="o", color="black", markersize=3)
    rax.axhline(1.0, color="0.4", lw=0.8)
    rax.set_ylim(0.5, 1.5)
    rax.set_ylabel("data / sim.")
    rax.set_xlabel(xlabel)
    rax.set_xlim(e[0], e[-1])
    return fig


def trigger_figure(trig: TriggerResult, luminosity_fb: float) -> Any:
    """Trigger efficiency in data and simulation (top) and their ratio with the fit (bottom)."""
    import matplotlib.pyplot as plt
    import mplhep as mh

    from zprime.report import plots

    mh.style.use("plothist")
    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=(7.0, 6.0), sharex=True, gridspec_kw={"height_ratios": [2, 1], "hspace": 0.05}
    )
    c = 0.5 * (trig.edges[1:] + trig.edges[:-1])
    x = np.where(np.isfinite(trig.x), trig.x, c)
    ax.errorbar(x, trig.eff_data, yerr=trig.err_data, fmt="o", color="black", label="data")
    ax.errorbar(x, trig.eff_sim, yerr=trig.err_sim, fmt="s", mfc="none", label="simulation")
    ax.set_ylabel("two-track trigger efficiency")
    ax.legend(title=r"$e\mu$, ECL-triggered", fontsize="small")
    plots.label(ax, luminosity_fb)
    rax.errorbar(
        x[trig.used], trig.ratio[trig.used], yerr=trig.ratio_err[trig.used], fmt="o", color="black"
    )
    grid = np.linspace(trig.edges[0], trig.edges[-1], 200)
    cval = trig.correction(grid)
    cerr = trig.correction_uncertainty(grid)
    rax.plot(grid, cval, color="C1", label="fit")
    rax.fill_between(grid, cval - cerr, cval + cerr, color="C1", alpha=0.3)
    rax.axhline(1.0, color="0.4", lw=0.8)
    rax.set_ylabel("data / sim.")
    rax.set_xlabel(r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]")
    rax.set_xlim(trig.edges[0], trig.edges[-1])
    return fig


def _write_plots(
    samples: Mapping[str, ControlSample], result: ControlResult, out: Path, config: Config
) -> list[str]:
    from zprime.report import plots

    lumi = config.luminosity_fb
    written: list[str] = []
    specs = {
        "m_recoil2": (np.linspace(-1.0, 81.0, 83), r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]", None),
        "theta_recoil": (
            np.linspace(0.0, 180.0, 37),
            r"$\theta_{\mathrm{recoil}}$ [deg]",
            np.degrees,
        ),
        "punzinet": (np.linspace(0.0, 1.0, 21), "Punzi-net output", None),
    }
    titles = {"emu": r"$e\mu$", "ee": r"$ee$", "mumugamma": r"$\mu\mu\gamma$"}
    for name, cs in samples.items():
        for var, (edges, xlabel, tr) in specs.items():
            if var == "punzinet" and not np.any(np.isfinite(cs.simulation.punzinet)):
                continue
            fig = comparison_figure(
                cs,
                var,
                edges,
                xlabel=xlabel,
                luminosity_fb=lumi,
                transform=tr,
                title=titles.get(name, name),
            )
            written += [str(p) for p in plots.save(fig, out / f"{name}_{var}")]
    if not result.trigger.fallback:
        written += [
            str(p)
            for p in plots.save(trigger_figure(result.trigger, lumi), out / "trigger_efficiency")
        ]
    if "mumugamma" in samples:
        rc = config.control.resolution
        fig = comparison_figure(
            samples["mumugamma"],
            "m_recoil2",
            np.linspace(*rc.m2_range_gev2, 61),
            xlabel=r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]",
            luminosity_fb=lumi,
            log_y=False,
            title=r"$\mu\mu\gamma$, core",
        )
        written += [str(p) for p in plots.save(fig, out / "mumugamma_resolution")]
    return written


# ============================================================================ entry point
def _write_text(path: Path, text: str) -> str:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return str(path)


def run_control(
    simulation: Mapping[str, str | Path],
    data: Mapping[str, str | Path],
    out_dir: str | Path,
    config: Config,
    *,
    model: Any = None,
    resolution: Any = None,
    make_plots: bool = True,
) -> ControlResult:
    """The control-sample stage: read, measure, derive, write.

    Parameters
    ----------
    simulation
        Background sample name -> reconstructed file made with the ``simulation`` detector.
    data
        Sample name -> reconstructed file made with the data detector
        (``control.data_detector``) from independently generated events; the pseudo-data are
        drawn from them (``control.data_mode``).
    out_dir
        Where everything goes: ``corrections.json``, ``comparison.md``,
        ``background_shape_windows.csv``, ``cutflows/<channel>.md|csv`` and ``plots/``.
    config
        The configuration.
    model
        The trained Punzi-net (object or path of
        :func:`zprime.analyses.invisible_zprime.punzinet.save`); ``None``: no
        network-efficiency term (recorded).
    resolution
        :class:`zprime.analyses.invisible_zprime.binning.ResolutionModel` of the search windows
        (default: the PRL's).
    make_plots
        Draw the data/simulation figures.

    Returns
    -------
    ControlResult
        With ``files`` naming what was written; ``corrections.json`` is ``files['corrections']``.
    """
    _check_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, str | Path):
        from zprime.analyses.invisible_zprime.punzinet import load

        model = load(model)
    pv_samples = [
        s for s in config.templates.systematics.prl.photon_veto_samples if s in simulation
    ]
    sim, sim_flows = read_channels(
        simulation, config, model=model, signal_region_samples=pv_samples
    )
    dat, dat_flows = read_channels(data, config, model=model, is_data=True, seed_key=1)
    samples: dict[str, ControlSample] = {}
    for ch in CONTROL_CHANNELS:
        if ch in sim and ch in dat:
            samples[ch] = ControlSample(ch, dat[ch], sim[ch])
    result = derive(
        samples,
        config,
        mumu_simulation=sim.get(_SIGNAL_REGION),
        resolution=resolution,
        rng=chunk_rng(config.seed, config.control.seed_offset, 2),
    )
    if model is None:
        log.warning(
            "control: no Punzi-net given; the signal-efficiency systematic has no "
            "network-efficiency term"
        )
    result.inputs.update(
        {
            "simulation": {k: str(v) for k, v in simulation.items()},
            "data": {k: str(v) for k, v in data.items()},
            "data_detector": config.control.data_detector,
            "data_mode": config.control.data_mode,
            "punzinet": None if model is None else "applied",
        }
    )
    files: dict[str, str] = {}
    for ch in [*CONTROL_CHANNELS, _SIGNAL_REGION]:
        flows = sim_flows.get(ch, []) + dat_flows.get(ch, [])
        if not flows:
            continue
        md = f"# Cut flows of the `{ch}` channel\n\n" + "\n".join(f.to_markdown() for f in flows)
        files[f"cutflow_{ch}"] = _write_text(out / "cutflows" / f"{ch}.md", md)
        csv_text = "".join(
            f.to_csv() if i == 0 else f.to_csv().split("\n", 1)[1] for i, f in enumerate(flows)
        )
        _write_text(out / "cutflows" / f"{ch}.csv", csv_text)
    if result.windows:
        keys = list(result.windows[0])
        lines = [",".join(keys)] + [
            ",".join("" if r[k] is None else str(r[k]) for k in keys) for r in result.windows
        ]
        files["windows"] = _write_text(
            out / "background_shape_windows.csv", "\n".join(lines) + "\n"
        )
    files["comparison"] = _write_text(out / "comparison.md", result.comparison_markdown())
    if make_plots:
        written = _write_plots(samples, result, out / "plots", config)
        files["plots"] = str(out / "plots") if written else ""
    result.files = files
    files["corrections"] = str(result.write(out / "corrections.json"))
    return result
