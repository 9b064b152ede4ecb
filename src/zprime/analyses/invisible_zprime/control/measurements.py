"""The measurements that give the corrections applied to the simulation, and the weighted
statistics that every measurement shares.

1. the two-track **trigger** efficiency versus M_recoil^2 in e mu events and the data /
   simulation correction ``c(M^2)`` fitted to it (:func:`measure_trigger`,
   :class:`TriggerResult`);
2. the **photon-veto** inefficiency in the backward barrel from ee events, the weights of the
   mu mu background it implies and the photon-veto background-shape uncertainty
   (:func:`measure_photon_veto`, :class:`PhotonVetoResult`).

Shared with ``systematics`` (measurements 3 to 5): :func:`weighted_efficiency` and ratios with
their uncertainties (from :mod:`zprime.stats.efficiency`, which the dark Higgsstrahlung control
samples share), the one-line warning and record of a fallback, JSON floats. Arrays in,
results out: nothing here reads or writes files.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime.analyses.invisible_zprime.control.samples import (
    _DEG,
    ChannelSample,
    ControlSample,
    _f64,
)
from zprime.config import Config, ControlConfig
from zprime.stats.efficiency import ratio_with_error as _ratio
from zprime.stats.efficiency import weighted_efficiency

__all__ = [
    "PhotonVetoResult",
    "TriggerResult",
    "measure_photon_veto",
    "measure_trigger",
    "weighted_efficiency",
]

log = logging.getLogger(__name__)


# ============================================================================ statistics helpers
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
