"""Control-sample events: the arrays every measurement takes, and reading them from files.

Owns :class:`ChannelSample` (the events of one channel after every selection step except
:data:`DEFERRED_STEPS`, which are kept as flags/values) and :class:`ControlSample` (data and
simulation of one channel); the event-level flags computed from reconstructed events
(:func:`photon_veto_recoverable`, :func:`trigger_acceptance`, :func:`recoil_bhabha_veto`); and
:func:`read_channels`, which reads reconstructed files batch by batch into channel samples
(applying the Punzi-net, filling the cut flows) and draws the pseudo-data (``_draw``). The
weights ``w`` and ``w2`` are described in :mod:`zprime.analyses.invisible_zprime.control`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime._util import chunk_rng
from zprime.analyses.invisible_zprime.selection import CutFlow, apply_selection, step_masks
from zprime.config import Config, SelectionConfig, TriggerConfig
from zprime.errors import InputError
from zprime.io.events import iter_events
from zprime.physics.constants import BETA_BOOST, GAMMA_BOOST, P_BEAMS_LAB
from zprime.physics.kinematics import photon_recoil_variables, polar_angle
from zprime.stats.pseudodata import event_counts

__all__ = [
    "CONTROL_CHANNELS",
    "DEFERRED_STEPS",
    "ChannelSample",
    "ControlSample",
    "photon_veto_recoverable",
    "read_channels",
    "recoil_bhabha_veto",
    "trigger_acceptance",
]

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
        # lazy: punzinet imports torch at its top, needed only when a network is given
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
