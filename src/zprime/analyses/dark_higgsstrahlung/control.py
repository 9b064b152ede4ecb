"""The control samples of the dark Higgsstrahlung search and the corrections they give.

The talk (``shared/papers/talk-2022-dark-sector-belle2.md``, "control samples: mu mu gamma ->
mu mu (gamma) background, e mu -> tau tau background") names the two samples and nothing of
their use; what follows is our design, in the spirit of the invisible-Z' analysis's control
samples (PRL 130, 231801; :mod:`zprime.analyses.invisible_zprime.control`). Both samples are
written by the selection (:func:`~zprime.analyses.dark_higgsstrahlung.selection.control_masks`),
for the simulated backgrounds and for the (pseudo-)data:

1. **Photon detection along the recoil** (mu mu gamma, tag and probe). Events that pass every
   step but the photon veto, with a photon-like recoil (abs(M_recoil^2) below
   ``control.mumugamma_m2_max_gev2``), are radiative mu mu events whose photon carries the
   recoil. The fraction that passes the veto, ``eps``, is the probability that the photon was
   missed; per bin of the recoil polar angle, in data and in simulation,
   ``extra = (eps_data - eps_sim) / (1 - eps_sim)`` is the probability that data miss a photon
   that the simulation sees. The simulated events that failed the veto with a single photon in
   the cone then enter the signal region with the weight ``extra`` (x their own), and where
   ``extra < 0`` the simulated events that passed are scaled by ``eps_data / eps_sim``: the
   invisible-Z' analysis's photon-veto correction (its ``_veto_weights``), measured here on
   mu mu gamma instead of ee. The probe's denominator contains the missed photons, which sit in
   the signal region at small M_h' (below ~1 GeV); it is dominated by the tens of thousands of
   detected photons, so a signal in one window moves ``extra`` by its yield over that number
   (said in ``docs/dark_higgs_analysis.md``).
2. **Normalisation of mu mu (gamma)**: the data / simulation ratio of the same probe region,
   photon seen or not (a missed photon moves an event between the two halves, so their sum
   does not depend on the photon efficiency). It carries the data / simulation differences of
   the trigger and the muon identification for radiative mu mu events; it scales the
   simulated ``mumu`` sample.
3. **Normalisation of tau tau (gamma)** from the e mu sample (every step with one muon and one
   electron instead of two muons): data / simulation, applied to the simulated ``tautau``
   sample. ``eemumu`` (3% in the talk) has no control sample and keeps its simulated
   normalisation; the pre-selection uncertainty covers it.
4. **Background shape** (measured, reported): the spread of the data / simulation ratio across
   M_mumu bins of each sample beyond its statistical expectation, next to the talk's 9.3%; the
   limits use the talk's value (``dark_higgs.systematics.background_shape``).

The statistical uncertainties of ``extra`` and of the two normalisations are propagated to the
background of every window (:meth:`Corrections.weights`, ``stages.stage_limits``). With too few
events (``control.min_events``) a measurement falls back to no correction, recorded in
``dark_higgs_control.json``. With ``control.apply: false`` the measurements are made and
reported and the simulation is left as it is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zprime._util import read_json_object, write_json_atomic
from zprime.analyses.dark_higgsstrahlung.selection import CONTROL_REGIONS
from zprime.analyses.observed import observed_events
from zprime.config import Config
from zprime.errors import InputError
from zprime.stats.efficiency import ratio_with_error, weighted_efficiency

__all__ = [
    "CONTROL_COLUMNS_READ",
    "Corrections",
    "Normalisation",
    "PhotonDetection",
    "measure",
    "observed_events",
    "read_corrections",
]

F64 = NDArray[np.float64]
_DEG = math.pi / 180.0
FORMAT = "zprime-dark-higgs-control"
FORMAT_VERSION = 1

CONTROL_COLUMNS_READ: tuple[str, ...] = (
    "m_mumu",
    "m_recoil",
    "m_recoil2",
    "theta_recoil",
)
"""The observables the control stage and the corrected background read (with ``weight``)."""


def _jf(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _fl(x: Any) -> float:
    return math.nan if x is None else float(x)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PhotonDetection:
    """The photon-detection measurement (mu mu gamma tag and probe), per recoil-angle bin.

    ``eff_*`` are the fractions of the probe that pass the photon veto (the photon missed),
    ``extra`` the probability that data miss a photon the simulation sees; arrays per bin of
    ``edges_rad``; ``fallback`` marks bins with fewer than ``min_events`` (effective) events,
    whose ``extra`` is 0.
    """

    edges_rad: F64
    m2_max: float
    eff_data: F64
    err_data: F64
    eff_sim: F64
    err_sim: F64
    n_data: F64
    n_sim: F64
    extra: F64
    extra_err: F64
    fallback: NDArray[np.bool_]

    def bin_of(self, theta: F64) -> NDArray[np.int64]:
        """Bin index of each recoil polar angle (-1 outside the bins)."""
        i = np.searchsorted(self.edges_rad, theta, side="right") - 1
        return np.where((i >= 0) & (i < len(self.extra)), i, -1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (angles in degrees)."""
        return {
            "theta_recoil_edges_deg": [float(np.degrees(e)) for e in self.edges_rad],
            "m2_max_gev2": self.m2_max,
            **{
                k: [_jf(v) for v in getattr(self, k)]
                for k in (
                    "eff_data",
                    "err_data",
                    "eff_sim",
                    "err_sim",
                    "n_data",
                    "n_sim",
                    "extra",
                    "extra_err",
                )
            },
            "fallback": [bool(f) for f in self.fallback],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PhotonDetection:
        """Inverse of :meth:`to_dict`."""

        def arr(key: str) -> F64:
            return np.array([_fl(v) for v in d[key]], dtype=float)

        return cls(
            edges_rad=np.radians(np.asarray(d["theta_recoil_edges_deg"], dtype=float)),
            m2_max=float(d["m2_max_gev2"]),
            eff_data=arr("eff_data"),
            err_data=arr("err_data"),
            eff_sim=arr("eff_sim"),
            err_sim=arr("err_sim"),
            n_data=arr("n_data"),
            n_sim=arr("n_sim"),
            extra=arr("extra"),
            extra_err=arr("extra_err"),
            fallback=np.asarray(d["fallback"], dtype=bool),
        )


@dataclass(frozen=True)
class Normalisation:
    """Data / simulation yield ratio of one control sample, and the measured shape spread.

    ``shape`` is the relative spread of the bin-by-bin ratio across M_mumu bins beyond its
    statistical expectation (0 when the statistics explain it); ``bins`` holds the per-bin
    ratios for the report.
    """

    sample: str
    applies_to: str
    ratio: float
    ratio_err: float
    n_data: float
    n_sim: float
    yield_data: float
    yield_sim: float
    shape: float
    fallback: bool = False
    reason: str = ""
    bins: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """The factor applied to the simulated sample (1 on a fallback)."""
        return 1.0 if self.fallback else self.ratio

    @property
    def scale_err(self) -> float:
        """Its uncertainty (0 on a fallback: the pre-selection uncertainty covers it)."""
        return 0.0 if self.fallback else self.ratio_err

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "sample": self.sample,
            "applies_to": self.applies_to,
            "ratio": _jf(self.ratio),
            "ratio_err": _jf(self.ratio_err),
            "events_data": _jf(self.n_data),
            "events_simulation": _jf(self.n_sim),
            "yield_data": _jf(self.yield_data),
            "yield_simulation": _jf(self.yield_sim),
            "shape": _jf(self.shape),
            "fallback": self.fallback,
            "reason": self.reason,
            "bins": self.bins,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalisation:
        """Inverse of :meth:`to_dict`."""
        return cls(
            sample=str(d["sample"]),
            applies_to=str(d["applies_to"]),
            ratio=_fl(d["ratio"]),
            ratio_err=_fl(d["ratio_err"]),
            n_data=_fl(d["events_data"]),
            n_sim=_fl(d["events_simulation"]),
            yield_data=_fl(d["yield_data"]),
            yield_sim=_fl(d["yield_simulation"]),
            shape=_fl(d["shape"]),
            fallback=bool(d["fallback"]),
            reason=str(d.get("reason", "")),
            bins=dict(d.get("bins", {})),
        )


Sample = Mapping[str, F64]
"""Columns of one sample: :data:`CONTROL_COLUMNS_READ`, ``weight`` and, for control files,
``region`` and ``n_near_photons``."""


@dataclass(frozen=True)
class Corrections:
    """Everything the control samples measured, and the corrected background weights."""

    photon: PhotonDetection
    mumu: Normalisation
    tautau: Normalisation
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``dark_higgs_control.json``)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "applied": self.applied,
            "photon_detection": self.photon.to_dict(),
            "normalisation": {"mumu": self.mumu.to_dict(), "tautau": self.tautau.to_dict()},
        }

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` atomically."""
        return write_json_atomic(Path(path), self.to_dict())

    def scale_of(self, sample: str) -> tuple[float, float]:
        """(factor, uncertainty) of a simulated sample's normalisation (1, 0 unless measured
        for it, or when the corrections are not applied)."""
        if not self.applied:
            return 1.0, 0.0
        for norm in (self.mumu, self.tautau):
            if norm.applies_to == sample:
                return norm.scale, norm.scale_err
        return 1.0, 0.0

    def weights(
        self,
        sample: str,
        selected: Sample,
        control: Sample | None,
        *,
        extra_shift: float = 0.0,
        scale_shift: float = 0.0,
    ) -> tuple[F64, F64]:
        """Corrected weights of a simulated sample's selected events and of its recovered
        control events (module docstring, 1-3).

        Parameters
        ----------
        sample
            The sample's name (``mumu`` and ``tautau`` get their normalisation).
        selected
            Its selected events (``theta_recoil``, ``m_recoil2``, ``weight``).
        control
            Its control events (``region``, ``n_near_photons``, ``theta_recoil``, ``weight``)
            or None.
        extra_shift, scale_shift
            Shifts in units of the uncertainties of ``extra`` (every bin together) and of the
            normalisation: the variations that give the corrections' uncertainty.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            The weights of the selected events and of the control events (0 for those that
            do not enter the signal region).
        """
        w_sel = np.asarray(selected["weight"], dtype=float)
        n_ctl = 0 if control is None else len(control["weight"])
        if not self.applied:
            return w_sel.copy(), np.zeros(n_ctl)
        scale, scale_err = self.scale_of(sample)
        scale = max(scale + scale_shift * scale_err, 0.0)
        ph = self.photon
        extra = np.where(ph.fallback, 0.0, ph.extra + extra_shift * ph.extra_err)
        # passed events of a bin where data miss fewer photons: eps_data / eps_sim of the probe
        pass_scale = np.where(
            (extra < 0) & (ph.eff_sim > 0),
            np.clip(
                1.0 + extra * (1.0 - ph.eff_sim) / np.where(ph.eff_sim > 0, ph.eff_sim, 1.0),
                0,
                None,
            ),
            1.0,
        )
        b = ph.bin_of(np.asarray(selected["theta_recoil"], dtype=float))
        probe = (b >= 0) & (np.abs(np.asarray(selected["m_recoil2"])) < ph.m2_max)
        w_sel = w_sel * scale * np.where(probe, pass_scale[np.maximum(b, 0)], 1.0)
        if control is None:
            return w_sel, np.zeros(0)
        bc = ph.bin_of(np.asarray(control["theta_recoil"], dtype=float))
        recover = (
            (np.asarray(control["region"]) == CONTROL_REGIONS["mumugamma"])
            & (np.asarray(control["n_near_photons"]) == 1)
            & (bc >= 0)
        )
        p = np.where(recover, np.clip(extra[np.maximum(bc, 0)], 0.0, 1.0), 0.0)
        return w_sel, np.asarray(control["weight"], dtype=float) * scale * p


def read_corrections(path: str | Path) -> Corrections:
    """Read ``dark_higgs_control.json`` (a one-line :class:`InputError` if it is not one)."""
    d = read_json_object(Path(path), "dark Higgs control")
    if d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: not a {FORMAT} file of version {FORMAT_VERSION}")
    try:
        return Corrections(
            photon=PhotonDetection.from_dict(d["photon_detection"]),
            mumu=Normalisation.from_dict(d["normalisation"]["mumu"]),
            tautau=Normalisation.from_dict(d["normalisation"]["tautau"]),
            applied=bool(d["applied"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed control file ({exc})") from None


# ----------------------------------------------------------------------------- data
def _total(w: F64, mask: NDArray[np.bool_]) -> tuple[float, float]:
    return float(np.sum(w[mask])), float(np.sum(w[mask] ** 2))


def _n_eff(t: tuple[float, float]) -> float:
    return t[0] * t[0] / t[1] if t[1] > 0 else 0.0


def _shape_spread(
    m_data: F64, w_data: F64, m_sim: F64, w_sim: F64, ratio: float, n_bins: int = 8
) -> tuple[float, dict[str, list[float | None]]]:
    """The spread of the data / simulation ratio over M_mumu bins (equal simulated yield)
    beyond its statistical expectation: sqrt(max(0, var_w(r_i / r - 1) - <sigma_i^2>))."""
    if len(m_sim) < n_bins or not ratio > 0:
        return math.nan, {}
    order = np.argsort(m_sim)
    cum = np.cumsum(w_sim[order])
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_bins) / n_bins)
    edges = np.concatenate([[-np.inf], m_sim[order][np.clip(cuts, 0, len(m_sim) - 1)], [np.inf]])
    edges = np.unique(edges)
    r, s = [], []
    for lo, hi in itertools.pairwise(edges):
        d = (m_data >= lo) & (m_data < hi)
        m = (m_sim >= lo) & (m_sim < hi)
        td, tm = _total(w_data, d), _total(w_sim, m)
        if td[0] <= 0 or tm[0] <= 0:
            r.append(math.nan)
            s.append(math.nan)
            continue
        ri, si = ratio_with_error(td[0], math.sqrt(td[1]), tm[0], math.sqrt(tm[1]))
        r.append(ri / ratio)
        s.append(si / ratio)
    ra, sa = np.array(r), np.array(s)
    ok = np.isfinite(ra) & np.isfinite(sa) & (sa > 0)
    bins = {
        "m_mumu_edges_gev": [_jf(float(e)) for e in edges],
        "ratio_over_mean": [_jf(float(v)) for v in ra],
        "ratio_over_mean_err": [_jf(float(v)) for v in sa],
    }
    if np.count_nonzero(ok) < 2:
        return math.nan, bins
    wts = 1.0 / sa[ok] ** 2
    mean = float(np.sum(wts * ra[ok]) / np.sum(wts))
    var = float(np.sum(wts * (ra[ok] - mean) ** 2) / np.sum(wts))
    return math.sqrt(max(0.0, var - float(np.mean(sa[ok] ** 2)))), bins


def _normalisation(
    sample: str,
    applies_to: str,
    data: tuple[F64, F64],
    sim: tuple[F64, F64],
    min_events: float,
) -> Normalisation:
    """``data`` and ``sim``: (M_mumu, weight) of the control sample's events."""
    (m_d, w_d), (m_s, w_s) = data, sim
    td, ts = _total(w_d, np.ones(len(w_d), bool)), _total(w_s, np.ones(len(w_s), bool))
    nd, ns = _n_eff(td), _n_eff(ts)
    ratio, err = ratio_with_error(td[0], math.sqrt(td[1]), ts[0], math.sqrt(ts[1]))
    reason = ""
    if min(nd, ns) < min_events:
        reason = f"{min(nd, ns):.0f} events in the {sample} sample, need {min_events:g}"
    shape, bins = _shape_spread(m_d, w_d, m_s, w_s, ratio)
    return Normalisation(
        sample=sample,
        applies_to=applies_to,
        ratio=ratio,
        ratio_err=err,
        n_data=nd,
        n_sim=ns,
        yield_data=td[0],
        yield_sim=ts[0],
        shape=shape,
        fallback=bool(reason) or not math.isfinite(ratio),
        reason=reason or ("" if math.isfinite(ratio) else f"no simulated {sample} events"),
        bins=bins,
    )


def measure(
    config: Config,
    sim_selected: Mapping[str, Sample],
    sim_control: Mapping[str, Sample],
    data_selected: Sample,
    data_control: Sample,
) -> Corrections:
    """Every measurement of the module docstring from the simulated backgrounds (weights in fb)
    and the observed data (unit weights).

    Parameters
    ----------
    config
        The configuration (``dark_higgs.control``, ``luminosity_fb``).
    sim_selected, sim_control
        Per background sample: its selected events and its control events (columns of
        :data:`Sample`).
    data_selected, data_control
        The observed selected events and control events (``weight`` 1 each).

    Returns
    -------
    Corrections
    """
    cc = config.dark_higgs.control
    lumi = float(config.luminosity_fb)
    m2_max = cc.mumugamma_m2_max_gev2
    edges = np.radians(np.asarray(cc.theta_bins_deg, dtype=float))
    mg = CONTROL_REGIONS["mumugamma"]

    def probe(sel: Sample, ctl: Sample | None, lum: float) -> dict[str, F64]:
        """Probe events: (theta, m_mumu, weight, passed) of the selected and the vetoed."""
        parts: list[tuple[Sample, bool, int | None]] = [(sel, True, None)]
        if ctl is not None:
            parts.append((ctl, False, mg))
        th, mm, w, ok = [], [], [], []
        for cols, passed, region in parts:
            keep = np.abs(np.asarray(cols["m_recoil2"])) < m2_max
            if region is not None:
                keep &= np.asarray(cols["region"]) == region
            th.append(np.asarray(cols["theta_recoil"])[keep])
            mm.append(np.asarray(cols["m_mumu"])[keep])
            w.append(np.asarray(cols["weight"], dtype=float)[keep] * lum)
            ok.append(np.full(int(np.count_nonzero(keep)), passed))
        return {
            "theta": np.concatenate(th),
            "m_mumu": np.concatenate(mm),
            "w": np.concatenate(w),
            "passed": np.concatenate(ok),
        }

    sim_parts = [probe(sim_selected[n], sim_control.get(n), lumi) for n in sim_selected]
    sim = {k: np.concatenate([p[k] for p in sim_parts]) for k in ("theta", "m_mumu", "w", "passed")}
    dat = probe(data_selected, data_control, 1.0)
    nb = len(edges) - 1
    res: dict[str, F64] = {
        k: np.full(nb, np.nan)
        for k in (
            "eff_data",
            "err_data",
            "eff_sim",
            "err_sim",
            "n_data",
            "n_sim",
            "extra",
            "extra_err",
        )
    }
    fb = np.zeros(nb, dtype=bool)
    for i in range(nb):
        for kind, smp in (("data", dat), ("sim", sim)):
            inside = (smp["theta"] >= edges[i]) & (smp["theta"] < edges[i + 1])
            tot = _total(smp["w"], inside)
            res[f"n_{kind}"][i] = _n_eff(tot)
            res[f"eff_{kind}"][i], res[f"err_{kind}"][i] = weighted_efficiency(
                _total(smp["w"], inside & smp["passed"]), tot
            )
        ed, sd, es, ss = (res[k][i] for k in ("eff_data", "err_data", "eff_sim", "err_sim"))
        if min(res["n_data"][i], res["n_sim"][i]) < cc.min_events or not es < 1.0:
            fb[i] = True
            res["extra"][i], res["extra_err"][i] = 0.0, 0.0
            continue
        res["extra"][i] = (ed - es) / (1.0 - es)
        res["extra_err"][i] = math.hypot(sd / (1.0 - es), ss * (1.0 - ed) / (1.0 - es) ** 2)
    photon = PhotonDetection(edges_rad=edges, m2_max=m2_max, **res, fallback=fb)

    in_bins = (sim["theta"] >= edges[0]) & (sim["theta"] < edges[-1])
    d_in = (dat["theta"] >= edges[0]) & (dat["theta"] < edges[-1])
    mumu = _normalisation(
        "mumugamma",
        "mumu",
        (dat["m_mumu"][d_in], dat["w"][d_in]),
        (sim["m_mumu"][in_bins], sim["w"][in_bins]),
        cc.min_events,
    )
    em = CONTROL_REGIONS["emu"]

    def emu(ctl: Sample | None, lum: float) -> tuple[F64, F64]:
        if ctl is None:
            return np.zeros(0), np.zeros(0)
        keep = np.asarray(ctl["region"]) == em
        return np.asarray(ctl["m_mumu"])[keep], np.asarray(ctl["weight"], dtype=float)[keep] * lum

    e_sim = [emu(sim_control.get(n), lumi) for n in sim_selected]
    tautau = _normalisation(
        "emu",
        "tautau",
        emu(data_control, 1.0),
        (
            np.concatenate([e[0] for e in e_sim]) if e_sim else np.zeros(0),
            np.concatenate([e[1] for e in e_sim]) if e_sim else np.zeros(0),
        ),
        cc.min_events,
    )
    return Corrections(photon=photon, mumu=mumu, tautau=tautau, applied=cc.apply)
