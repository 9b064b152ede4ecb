"""The event selection of the PRL as named, ordered, configurable steps, and its cut flow.

Steps (PRL 130, 231801, "we require ..."; parameters in ``selection`` of the configuration):

==================  ===========================================================================
step                requirement
==================  ===========================================================================
``two_tracks``      exactly two reconstructed tracks ("exactly two oppositely charged particles
                    ... and negligible additional activity")
``track_quality``   both tracks from the interaction point: abs(d0) < 0.5 cm, abs(z0) < 2.0 cm
``opposite_charge`` the two tracks have opposite charge
``particle_id``     both identified as muons, muonID > 0.5 (the e mu / ee control samples: one /
                    both tracks identified as electrons instead, electronID > 0.5)
``trigger``         the two-track trigger fired (its Bhabha veto included)
``track_pt``        both tracks with p_T > 0.4 GeV
``opening_angle``   muon opening angle in the c.m. frame below 179 deg
``theta_recoil``    M_recoil^2 < 4 GeV^2: theta_recoil in [34, 123] deg (ECL barrel) and not in
                    [89, 91] deg (the 1.5 mm ECL gap); M_recoil^2 > 4 GeV^2: theta_recoil < 123 deg
``photon_veto``     total photon energy below 0.5 GeV and no photon within 15 deg of the recoil
                    momentum (the mu mu gamma control sample reverses it: a photon above 1 GeV
                    within 15 deg of the recoil)
``recoil_pt``       recoil transverse momentum in the c.m. frame above 0.5 GeV
``tau_suppression`` off unless ``selection.tau_suppression`` is true (the 2018 pilot-run
                    analysis, ``--preset pilot2018``): cut-based tau tau suppression on the muon
                    and recoil momenta in M_recoil^2 regions (:func:`tau_suppression_mask`)
``punzinet``        Punzi-net output above 0.5 (column ``punzinet``, from
``zprime.analyses.invisible_zprime.punzinet``)
==================  ===========================================================================

theta_recoil is the lab polar angle ("quantities are defined in the laboratory frame unless
otherwise specified"). Each step can be switched off (``selection.disabled``) or changed. The
control samples of the PRL ("requiring one or both tracks to be identified as electrons and then
applying all the other selection criteria"; the reversed photon veto) are *channels* of the same
selection: ``mumu`` (the signal region), ``emu``, ``ee`` and ``mumugamma``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import awkward as ak
import numpy as np

from zprime._util import atomic_path
from zprime.analyses.cutflow import CutFlow
from zprime.config import SELECTION_STEPS, SelectionConfig
from zprime.errors import ConfigError, InputError
from zprime.io.events import EventWriter, iter_events, read_metadata
from zprime.physics.constants import M_MUON
from zprime.physics.kinematics import four_momentum, lab_to_cm

__all__ = [
    "CHANNELS",
    "STEPS",
    "CutFlow",
    "apply_selection",
    "check_steps",
    "select_file",
    "step_masks",
    "tau_suppression_mask",
    "tau_suppression_variables",
]

STEPS: tuple[str, ...] = SELECTION_STEPS
"""The selection steps, in the order they are applied (defined in :mod:`zprime.config`)."""

CHANNELS: tuple[str, ...] = ("mumu", "emu", "ee", "mumugamma")
"""Signal region (``mumu``) and the PRL's control samples."""

_DEG = math.pi / 180.0
_P_BEAMS_3 = np.array([0.0, 0.0, 3.0])  # lab three-momentum of the 7 + 4 GeV beams


def check_steps(names: Iterable[str]) -> None:
    """Raise :class:`ConfigError` naming the first name that is not a selection step."""
    for name in names:
        if name not in STEPS:
            raise ConfigError(f"unknown selection step '{name}' (steps: {', '.join(STEPS)})")


def _column(events: ak.Array, name: str) -> np.ndarray:
    if name not in ak.fields(events):
        raise InputError(f"selection: missing column '{name}'")
    return np.asarray(ak.to_numpy(events[name]))


def _two(events: ak.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A track field of the first two tracks (NaN / 0 where an event has fewer)."""
    tracks = events["tracks"]
    if name not in ak.fields(tracks):
        raise InputError(f"selection: missing column 'tracks.{name}'")
    padded = ak.pad_none(tracks[name], 2, axis=1, clip=True)
    filled = ak.fill_none(padded, np.nan)
    arr = np.asarray(ak.to_numpy(filled), dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def _recoil_lab(events: ak.Array) -> np.ndarray:
    px = _two(events, "px")
    py = _two(events, "py")
    pz = _two(events, "pz")
    return np.stack([-(px[0] + px[1]), -(py[0] + py[1]), _P_BEAMS_3[2] - (pz[0] + pz[1])], axis=-1)


def _photon_near_recoil(events: ak.Array, e_min: float, angle_max: float) -> np.ndarray:
    """True where a photon above ``e_min`` lies within ``angle_max`` of the recoil (lab)."""
    rec = _recoil_lab(events)
    ph = events["photons"]
    counts = np.asarray(ak.to_numpy(ak.num(ph, axis=1)), dtype=np.int64)
    flat = {f: np.asarray(ak.to_numpy(ak.flatten(ph[f], axis=1))) for f in ("e", "px", "py", "pz")}
    event_of = np.repeat(np.arange(counts.size), counts)
    p = np.stack([flat["px"], flat["py"], flat["pz"]], axis=-1)
    r = rec[event_of]
    with np.errstate(invalid="ignore", divide="ignore"):
        cosang = np.einsum("ij,ij->i", p, r) / (
            np.linalg.norm(p, axis=1) * np.linalg.norm(r, axis=1)
        )
    near = (flat["e"] > e_min) & (np.arccos(np.clip(cosang, -1.0, 1.0)) < angle_max)
    return np.bincount(event_of, weights=near.astype(float), minlength=counts.size) > 0


def tau_suppression_variables(events: ak.Array) -> dict[str, np.ndarray]:
    """The variables of the cut-based tau suppression (2018 pilot-run analysis), per event.

    Returns
    -------
    dict
        ``m_recoil2`` (GeV^2, the event column), ``pt_recoil_cm`` (recoil transverse momentum
        in the c.m. frame, GeV, the event column) and ``p_mu_max_cm`` (the larger c.m. momentum
        of the two tracks, GeV, computed from ``tracks.px/py/pz`` with the muon mass; NaN for
        events with fewer than two tracks).
    """
    p3 = np.stack([np.stack(_two(events, f), axis=-1) for f in ("px", "py", "pz")], axis=-1)
    p_cm = lab_to_cm(four_momentum(p3, M_MUON))[..., 1:]
    p_mag = np.sqrt(np.sum(p_cm * p_cm, axis=-1))
    return {
        "m_recoil2": _column(events, "m_recoil2"),
        "pt_recoil_cm": _column(events, "pt_recoil_cm"),
        "p_mu_max_cm": np.max(p_mag, axis=-1),
    }


def tau_suppression_mask(events: ak.Array, config: SelectionConfig) -> np.ndarray:
    """True for events that pass the cut-based tau suppression of the 2018 pilot-run analysis.

    The 2020 talk on PRL 124, 141801 (``shared/papers/talk-2020-invisible-zprime-belle2.md``)
    describes it as a "tau suppression cut on muon and recoil momenta" applied in regions of
    M_recoil^2. Region ``k`` is ``[edges[k-1], edges[k])`` of ``tau_m2_edges_gev2`` (open at both
    ends); in it an event passes if the recoil transverse momentum in the c.m. frame is above
    ``tau_recoil_pt_min_gev[k]`` and the larger c.m. muon momentum is below
    ``tau_muon_p_max_gev[k]`` (tau pairs give harder muons and a softer recoil than the signal
    at the same M_recoil^2). The talk gives the form, not the values: see the configuration and
    ``docs/selection.md``.
    """
    v = tau_suppression_variables(events)
    region = np.searchsorted(
        np.asarray(config.tau_m2_edges_gev2, dtype=float), v["m_recoil2"], side="right"
    )
    pt_min = np.asarray(config.tau_recoil_pt_min_gev, dtype=float)[region]
    p_max = np.asarray(config.tau_muon_p_max_gev, dtype=float)[region]
    with np.errstate(invalid="ignore"):
        return (v["pt_recoil_cm"] > pt_min) & (v["p_mu_max_cm"] < p_max)


def step_masks(
    events: ak.Array, config: SelectionConfig, channel: str = "mumu"
) -> dict[str, np.ndarray]:
    """Boolean mask of every enabled step, each evaluated on its own (not cumulative).

    Parameters
    ----------
    events
        Reconstructed events in the schema of ``docs/event-schema.md`` (with analysis
        variables). The ``punzinet`` step needs a ``punzinet`` column.
    config
        The ``selection`` section of the configuration.
    channel
        ``mumu`` (signal region), ``emu``, ``ee`` or ``mumugamma`` (control samples).

    Returns
    -------
    dict
        Step name -> mask, in the order of :data:`STEPS`, for the enabled steps.
    """
    if channel not in CHANNELS:
        raise ConfigError(
            f"unknown selection channel '{channel}' (channels: {', '.join(CHANNELS)})"
        )
    check_steps(config.disabled)
    c = config
    out: dict[str, np.ndarray] = {}
    enabled = [
        s for s in STEPS if s not in c.disabled and (s != "tau_suppression" or c.tau_suppression)
    ]
    n_tracks = np.asarray(ak.to_numpy(ak.num(events["tracks"], axis=1)))
    two = n_tracks == 2
    for step in enabled:
        if step == "two_tracks":
            mask = two
        elif step == "track_quality":
            d0 = _two(events, "d0")
            z0 = _two(events, "z0")
            mask = (
                (np.abs(d0[0]) < c.track_d0_max_cm)
                & (np.abs(d0[1]) < c.track_d0_max_cm)
                & (np.abs(z0[0]) < c.track_z0_max_cm)
                & (np.abs(z0[1]) < c.track_z0_max_cm)
            )
        elif step == "opposite_charge":
            q = _two(events, "charge")
            mask = q[0] * q[1] < 0
        elif step == "particle_id":
            mu = _two(events, "muon_id")
            el = _two(events, "electron_id")
            is_mu = (mu[0] > c.muon_id_min, mu[1] > c.muon_id_min)
            is_e = (el[0] > c.electron_id_min, el[1] > c.electron_id_min)
            if channel in ("mumu", "mumugamma"):
                mask = is_mu[0] & is_mu[1]
            elif channel == "emu":
                mask = (is_e[0] & is_mu[1]) | (is_mu[0] & is_e[1])
            else:
                mask = is_e[0] & is_e[1]
        elif step == "trigger":
            mask = _column(events, "trg_two_track").astype(bool)
        elif step == "track_pt":
            px = _two(events, "px")
            py = _two(events, "py")
            pt = (np.hypot(px[0], py[0]), np.hypot(px[1], py[1]))
            mask = (pt[0] > c.track_pt_min_gev) & (pt[1] > c.track_pt_min_gev)
        elif step == "opening_angle":
            mask = _column(events, "opening_angle_cm") < c.opening_angle_max_deg * _DEG
        elif step == "theta_recoil":
            m2 = _column(events, "m_recoil2")
            th = _column(events, "theta_recoil")
            lo, hi = (x * _DEG for x in c.theta_recoil_barrel_deg)
            g_lo, g_hi = (x * _DEG for x in c.theta_recoil_gap_deg)
            low = (th >= lo) & (th <= hi) & ~((th >= g_lo) & (th <= g_hi))
            high = th < c.theta_recoil_max_high_m2_deg * _DEG
            mask = np.where(m2 < c.theta_recoil_split_m2_gev2, low, high)
        elif step == "photon_veto":
            if channel == "mumugamma":
                mask = _photon_near_recoil(
                    events, c.control_photon_energy_min_gev, c.photon_recoil_angle_min_deg * _DEG
                )
            else:
                e_ph = _column(events, "e_photons")
                angle = _column(events, "min_angle_photon_recoil")
                mask = (e_ph < c.photon_energy_max_gev) & (
                    angle > c.photon_recoil_angle_min_deg * _DEG
                )
        elif step == "recoil_pt":
            mask = _column(events, "pt_recoil_cm") > c.recoil_pt_cm_min_gev
        elif step == "tau_suppression":
            mask = tau_suppression_mask(events, c)
        else:  # punzinet
            if "punzinet" not in ak.fields(events):
                raise InputError(
                    "selection: missing column 'punzinet' (apply "
                    "zprime.analyses.invisible_zprime.punzinet first, or "
                    "disable the step 'punzinet')"
                )
            mask = _column(events, "punzinet") > c.punzinet_min
        out[step] = np.asarray(mask, dtype=bool) & two if step != "two_tracks" else mask
    return out


def apply_selection(
    events: ak.Array,
    config: SelectionConfig,
    *,
    channel: str = "mumu",
    luminosity_fb: float = 1.0,
    sample: str = "sample",
    skip: Sequence[str] = (),
) -> tuple[np.ndarray, CutFlow]:
    """Apply the enabled steps in order; return the final mask and the cut flow.

    Parameters
    ----------
    events
        Reconstructed events with analysis variables.
    config
        The ``selection`` configuration.
    channel
        Signal region or control sample (:data:`CHANNELS`).
    luminosity_fb
        Luminosity at which yields are quoted.
    sample
        Name used in the cut flow.
    skip
        Steps to leave out in this call on top of ``config.disabled`` (e.g. ``["punzinet"]`` to
        make the samples the network is trained on).
    """
    check_steps(skip)
    cfg = config.model_copy(update={"disabled": sorted(set(config.disabled) | set(skip))})
    masks = step_masks(events, cfg, channel)
    weights = np.asarray(ak.to_numpy(events["weight"]), dtype=np.float64)
    mask, flow = CutFlow.from_masks(sample, luminosity_fb, weights, masks)
    return mask, flow


def select_file(
    path: str | Path,
    out_dir: str | Path,
    config: SelectionConfig,
    *,
    channel: str = "mumu",
    luminosity_fb: float = 1.0,
    skip: Sequence[str] = (),
    batch_size: int = 500_000,
) -> tuple[Path, CutFlow]:
    """Select a reconstructed file batch by batch; write the passing events and the cut flow.

    Writes ``<out_dir>/<stem>.parquet`` (the selected events, same schema and metadata) and
    ``<stem>.cutflow.csv`` / ``.md`` beside it, all atomically.
    """
    src = Path(path)
    out = Path(out_dir)
    meta = read_metadata(src)
    sample = src.stem  # unique per file (signal files carry their mass)
    target = out / f"{src.stem}.parquet"
    flow = CutFlow(sample, luminosity_fb)
    meta_out = {**meta, "selection_channel": channel, "selection_skipped": list(skip)}
    with EventWriter(target, meta_out) as writer:
        for batch in iter_events(src, batch_size=batch_size):
            mask, part = apply_selection(
                batch,
                config,
                channel=channel,
                luminosity_fb=luminosity_fb,
                sample=sample,
                skip=skip,
            )
            flow = flow.add(part)
            # an empty row group keeps the schema when nothing passes
            writer.write(batch[mask])
    for suffix, text in ((".cutflow.csv", flow.to_csv()), (".cutflow.md", flow.to_markdown())):
        with atomic_path(out / f"{src.stem}{suffix}") as tmp:
            tmp.write_text(text)
    return target, flow
