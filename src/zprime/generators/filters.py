"""Generator-level filters: named cuts applied before an event is written.

A filter keeps the events that can pass the selection a sample serves and drops the rest before
they cost simulation time and disk. Each cut is looser than the selection step it anticipates
(:func:`check_against_selection` refuses one that is not), and the fraction it keeps is recorded
in the sample's metadata, so the weights of the kept events stay those of the full sample.

The cuts (fields of :class:`zprime.config.GeneratorFilterConfig`; ``None`` switches a cut off):

======================  ====================================================================
cut                     keeps events ...
======================  ====================================================================
``min_tracks``          with at least this many *good prongs*: charged final-state particles
                        with ``track_pt_min_gev`` < p_T and ``theta_min_deg`` < theta_lab <
                        ``theta_max_deg`` (the CDC acceptance, basf2 ``thetaInCDCAcceptance``)
``prong_theta_deg``     whose two good prongs (if exactly two) both lie inside this lab polar-
                        angle range (the two-track trigger needs both tracks in 37-120 deg,
                        PRL 130, 231801)
``recoil_pt_cm_min_gev`` whose recoil against the two good prongs (if exactly two) has a c.m.
                        transverse momentum above this (the selection: 0.5 GeV)
``recoil_theta_max_deg`` whose recoil (if exactly two good prongs) has a lab polar angle below
                        this (the selection: theta_recoil < 123 deg at every M_recoil^2)
``max_tracks``          with at most this many good prongs (four-track filter)
``min_tracks_per_charge`` with at least this many good prongs of each charge sign
                        (four-track filter)
======================  ====================================================================

``serves`` names the selection the filter is checked against (:func:`check_against_selection`):
``two_track`` (the default; the invisible-Z' and two-track control selections) or
``four_track`` (the tau-tau resonance search, PRL 131, 121802: exactly four tracks, two muons
and two one-prong tau daughters, M(4 tracks) < 9.5 GeV).

The four-track filter
---------------------
The tau-tau search keeps events with exactly four reconstructed tracks. The detector
(:mod:`zprime.detector.simulation`) finds a charged particle with a *true* p_T above
``tracking.pt_min_gev`` (0.1 GeV) and a *true* polar angle in ``tracking.theta_deg``
(17-150 deg) with probability ``tracking.efficiency`` (0.99), independently per particle. A
four-track filter with ``track_pt_min_gev`` and ``theta_*_deg`` at (or below / outside) these
values, ``min_tracks: 4`` and no other cut therefore keeps every event that can have four found
tracks: it is strictly looser than the selection's track count. ``max_tracks`` (e.g. 6) drops
events with more good prongs: such an event has exactly four found tracks only if
``n - 4`` of its tracks are lost, probability ``C(n, 4) eps^4 (1 - eps)^(n - 4)`` (3.4e-5 for
n = 7, eps = 0.99), so with ``max_tracks: 6`` the filter loses a fraction ~3e-5 of the
four-track yield of e+e- -> q qbar (docs/backgrounds.md) and halves its disk.
``min_tracks_per_charge: 1`` keeps events whose good prongs include both charges (the
selection's opposite-charge muon pair); 2 would assume a neutral four-track selection, which
the talk does not state.

Events with more than two good prongs pass the two-prong cuts: the selection needs exactly two
tracks, which such an event reaches only when a track is lost, and the filter must not decide
which one. (``max_tracks`` and ``min_tracks_per_charge`` act on every event.) The recoil is
computed from the true momenta; the margins between a cut and the
selection (0.1 GeV in p_T, 2 deg for the trigger angles, 5 deg for the recoil angle, whose
resolution is a few degrees for a 0.5 GeV recoil) are many standard deviations of the detector
resolution (docs/generators.md checks that filtered and unfiltered samples select alike).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import awkward as ak
import numpy as np
from numpy.typing import NDArray
from particle.pdgid import three_charge

from zprime.errors import ConfigError
from zprime.physics.constants import P_BEAMS_LAB

__all__ = [
    "CHARGED_PDG",
    "charge_sign",
    "charged_mask",
    "check_against_selection",
    "filter_mask",
    "filter_particles",
]

CHARGED_PDG: frozenset[int] = frozenset({11, 13, 15, 211, 321, 2212})
"""Absolute PDG codes of the long-lived charged particles our generators write; any other code
is looked up in the PDG tables of ``particle`` (Pythia's final states hold a few more)."""

_CHARGED_TABLE = np.zeros(2213, dtype=bool)
_CHARGED_TABLE[list(CHARGED_PDG)] = True


@lru_cache(maxsize=4096)
def _is_charged(pdg: int) -> bool:
    try:
        return bool(three_charge(int(pdg)))
    except Exception:  # an unknown code: not a track
        return False


def charged_mask(pdg: NDArray[np.integer]) -> NDArray[np.bool_]:
    """Which PDG codes are charged (0, the padding, is not)."""
    pdg = np.asarray(pdg)
    apdg = np.abs(pdg)
    out = _CHARGED_TABLE[np.minimum(apdg, _CHARGED_TABLE.size - 1)]
    other = (apdg >= _CHARGED_TABLE.size) | ((apdg > 0) & ~out & ~np.isin(apdg, _NEUTRAL))
    if np.any(other):
        codes, inverse = np.unique(pdg[other], return_inverse=True)
        table = np.array([_is_charged(int(c)) for c in codes], dtype=bool)
        out = out.copy()
        out[other] = table[inverse]
    return out


_NEUTRAL = np.array([12, 14, 16, 22, 111, 130, 310, 2112])


@lru_cache(maxsize=4096)
def _sign_of(pdg: int) -> int:
    try:
        return int(np.sign(three_charge(int(pdg)) or 0))
    except Exception:  # an unknown code: no charge
        return 0


def charge_sign(pdg: NDArray[np.integer]) -> NDArray[np.int8]:
    """Sign of the electric charge of each PDG code (+1, -1, 0; 0 for the padding 0).

    Parameters
    ----------
    pdg
        PDG codes of any shape.

    Returns
    -------
    numpy.ndarray
        ``int8`` array of the shape of ``pdg``.
    """
    pdg = np.asarray(pdg)
    codes, inverse = np.unique(pdg, return_inverse=True)
    table = np.array([_sign_of(int(c)) if c != 0 else 0 for c in codes], dtype=np.int8)
    return table[inverse].reshape(pdg.shape)


def filter_mask(
    pdg: NDArray[np.integer], p4: NDArray[np.float64], filt: Mapping[str, Any]
) -> NDArray[np.bool_]:
    """Events of a fixed-shape batch that pass the filter.

    Parameters
    ----------
    pdg
        ``(n_events, k)`` PDG codes of the final-state particles; 0 marks padding.
    p4
        ``(n_events, k, 4)`` lab-frame four-momenta (E, px, py, pz) in GeV.
    filt
        The filter settings (:class:`zprime.config.GeneratorFilterConfig` as a dict).

    Returns
    -------
    numpy.ndarray
        Boolean mask over events.
    """
    pdg = np.asarray(pdg)
    p4 = np.asarray(p4, dtype=np.float64)
    n = pdg.shape[0]
    if not filt.get("enabled", True):
        return np.ones(n, dtype=bool)
    charged = charged_mask(pdg)
    pt = np.hypot(p4[..., 1], p4[..., 2])
    theta = np.arctan2(pt, p4[..., 3])
    good = (
        charged
        & (pt > float(filt["track_pt_min_gev"]))
        & (theta > math.radians(float(filt["theta_min_deg"])))
        & (theta < math.radians(float(filt["theta_max_deg"])))
    )
    n_good = good.sum(axis=1)
    keep = n_good >= int(filt["min_tracks"])
    if filt.get("max_tracks") is not None:
        keep &= n_good <= int(filt["max_tracks"])
    per_charge = filt.get("min_tracks_per_charge")
    if per_charge is not None and int(per_charge) > 0:
        sign = charge_sign(pdg)
        keep &= np.sum(good & (sign > 0), axis=1) >= int(per_charge)
        keep &= np.sum(good & (sign < 0), axis=1) >= int(per_charge)
    two = keep & (n_good == 2)
    cuts = ("prong_theta_deg", "recoil_pt_cm_min_gev", "recoil_theta_max_deg")
    if not np.any(two) or all(filt.get(c) is None for c in cuts):
        return np.asarray(keep)
    idx = np.flatnonzero(two)
    g = good[idx]
    # the two good prongs of each two-prong event, in order of appearance
    order = np.argsort(~g, axis=1, kind="stable")[:, :2]
    rows = np.arange(idx.size)[:, None]
    prongs = p4[idx][rows, order]  # (m, 2, 4)
    ok = np.ones(idx.size, dtype=bool)
    window = filt.get("prong_theta_deg")
    if window is not None:
        th = theta[idx][rows, order]
        lo, hi = math.radians(float(window[0])), math.radians(float(window[1]))
        ok &= np.all((th > lo) & (th < hi), axis=1)
    rec = np.asarray(P_BEAMS_LAB, dtype=np.float64) - prongs.sum(axis=1)
    rec_pt_min = filt.get("recoil_pt_cm_min_gev")
    if rec_pt_min is not None:  # p_T is invariant under the boost along z
        ok &= np.hypot(rec[:, 1], rec[:, 2]) > float(rec_pt_min)
    rec_theta_max = filt.get("recoil_theta_max_deg")
    if rec_theta_max is not None:
        th_rec = np.arctan2(np.hypot(rec[:, 1], rec[:, 2]), rec[:, 3])
        ok &= th_rec < math.radians(float(rec_theta_max))
    keep[idx] = ok
    return np.asarray(keep)


def filter_particles(particles: ak.Array, filt: Mapping[str, Any]) -> NDArray[np.bool_]:
    """:func:`filter_mask` on the ragged ``particles`` column of the generator schema."""
    n = len(particles)
    if n == 0:
        return np.zeros(0, dtype=bool)
    counts = ak.to_numpy(ak.num(particles))
    k = max(1, int(counts.max()))
    padded = ak.pad_none(particles, k, clip=True)
    pdg = ak.to_numpy(ak.fill_none(padded.pdg, 0)).astype(np.int64)
    p4 = np.stack(
        [
            ak.to_numpy(ak.fill_none(padded[f], 0.0)).astype(np.float64)
            for f in ("e", "px", "py", "pz")
        ],
        axis=-1,
    )
    return filter_mask(pdg, p4, filt)


def check_against_selection(
    filt: Mapping[str, Any],
    selection: Any,
    trigger_theta_deg: tuple[float, float],
    where: str,
    *,
    tracking: Any = None,
) -> None:
    """Refuse a filter that is tighter than the selection it must serve.

    The filter's ``serves`` field names that selection: ``two_track`` (default) is checked
    against ``selection`` and the two-track trigger, ``four_track`` against the tau-tau
    search's exactly-four-tracks requirement and the detector's track finding
    (:func:`_check_four_track`).

    Parameters
    ----------
    filt
        The filter settings.
    selection
        :class:`zprime.config.SelectionConfig` of the run.
    trigger_theta_deg
        Track polar-angle range of the two-track trigger (detector configuration ``simulation``).
    where
        Name of the filter in the configuration, e.g. ``backgrounds.samples.tautau.filter``.
    tracking
        :class:`zprime.config.TrackingConfig` of the detector (``pt_min_gev``, ``theta_deg``):
        a four-track filter's prongs must include every particle the detector can find. ``None``
        skips that comparison.

    Raises
    ------
    ConfigError
        Naming the first field that would cut harder than the selection.
    """
    if not filt.get("enabled", True):
        return
    if filt.get("serves", "two_track") == "four_track":
        _check_four_track(filt, where, tracking)
        return
    disabled = set(getattr(selection, "disabled", []) or [])
    if int(filt["min_tracks"]) > 2:
        raise ConfigError(
            f"{where}.min_tracks = {filt['min_tracks']} is tighter than the selection "
            "(exactly two tracks; a four-track filter needs serves: four_track)"
        )
    if filt.get("max_tracks") is not None and int(filt["max_tracks"]) < 3:
        raise ConfigError(
            f"{where}.max_tracks = {filt['max_tracks']} is tighter than the selection "
            "(exactly two tracks: keep at least the events with one lost track, max_tracks >= 3)"
        )
    if filt.get("min_tracks_per_charge") is not None and int(filt["min_tracks_per_charge"]) > 1:
        raise ConfigError(
            f"{where}.min_tracks_per_charge = {filt['min_tracks_per_charge']} is tighter than "
            "the selection (two tracks of opposite charge)"
        )
    if float(filt["track_pt_min_gev"]) > float(selection.track_pt_min_gev) and (
        "track_pt" not in disabled
    ):
        raise ConfigError(
            f"{where}.track_pt_min_gev = {filt['track_pt_min_gev']} is tighter than "
            f"selection.track_pt_min_gev = {selection.track_pt_min_gev}"
        )
    window = filt.get("prong_theta_deg")
    if window is not None:
        lo, hi = float(window[0]), float(window[1])
        if "trigger" in disabled or lo > trigger_theta_deg[0] or hi < trigger_theta_deg[1]:
            raise ConfigError(
                f"{where}.prong_theta_deg = [{lo}, {hi}] is tighter than the two-track trigger's "
                f"track range [{trigger_theta_deg[0]}, {trigger_theta_deg[1]}] deg"
                + (" (the trigger step is disabled)" if "trigger" in disabled else "")
            )
    rec_pt = filt.get("recoil_pt_cm_min_gev")
    if rec_pt is not None and (
        "recoil_pt" in disabled or float(rec_pt) > float(selection.recoil_pt_cm_min_gev)
    ):
        raise ConfigError(
            f"{where}.recoil_pt_cm_min_gev = {rec_pt} is tighter than "
            f"selection.recoil_pt_cm_min_gev = {selection.recoil_pt_cm_min_gev}"
            + (" (the recoil_pt step is disabled)" if "recoil_pt" in disabled else "")
        )
    rec_th = filt.get("recoil_theta_max_deg")
    if rec_th is not None:
        needed = max(
            float(selection.theta_recoil_max_high_m2_deg),
            float(selection.theta_recoil_barrel_deg[1]),
        )
        if "theta_recoil" in disabled or float(rec_th) < needed:
            raise ConfigError(
                f"{where}.recoil_theta_max_deg = {rec_th} is tighter than the selection's "
                f"theta_recoil < {needed} deg"
                + (" (the theta_recoil step is disabled)" if "theta_recoil" in disabled else "")
            )


FOUR_TRACKS = 4
"""Tracks of the tau-tau resonance search's selection (PRL 131, 121802: exactly four)."""


def _check_four_track(filt: Mapping[str, Any], where: str, tracking: Any) -> None:
    """Refuse a four-track filter that can drop an event with four found tracks.

    The selection counts the tracks the detector finds: charged particles with true p_T above
    ``tracking.pt_min_gev`` and true polar angle in ``tracking.theta_deg``. The filter's good
    prongs must include all of them (p_T threshold not above, angular range not narrower), it may
    ask for at most four, must keep the events with one lost track (``max_tracks >= 5``) and at
    most one prong of each charge sign (the opposite-charge muon pair; a neutral four-track
    combination is not stated by the talk). The two-prong cuts do not apply to four tracks.
    """
    if int(filt["min_tracks"]) > FOUR_TRACKS:
        raise ConfigError(
            f"{where}.min_tracks = {filt['min_tracks']} is tighter than the four-track "
            "selection (exactly four tracks)"
        )
    max_tracks = filt.get("max_tracks")
    if max_tracks is not None and int(max_tracks) < FOUR_TRACKS + 1:
        raise ConfigError(
            f"{where}.max_tracks = {max_tracks} is tighter than the four-track selection "
            f"(keep at least the events with one lost track, max_tracks >= {FOUR_TRACKS + 1})"
        )
    per_charge = filt.get("min_tracks_per_charge")
    if per_charge is not None and int(per_charge) > 1:
        raise ConfigError(
            f"{where}.min_tracks_per_charge = {per_charge} assumes a neutral four-track "
            "selection, which the tau-tau search's talk does not state (use 1: the muon pair)"
        )
    for key in ("prong_theta_deg", "recoil_pt_cm_min_gev", "recoil_theta_max_deg"):
        if filt.get(key) is not None:
            raise ConfigError(
                f"{where}.{key} is a two-prong cut: it does not apply to a four-track filter "
                "(set it to null)"
            )
    if tracking is None:
        return
    pt_min = float(tracking.pt_min_gev)
    if float(filt["track_pt_min_gev"]) > pt_min:
        raise ConfigError(
            f"{where}.track_pt_min_gev = {filt['track_pt_min_gev']} is tighter than the "
            f"detector's tracking threshold detector.tracking.pt_min_gev = {pt_min} (the "
            "four-track selection counts every found track)"
        )
    lo, hi = (float(x) for x in tracking.theta_deg)
    if float(filt["theta_min_deg"]) > lo or float(filt["theta_max_deg"]) < hi:
        raise ConfigError(
            f"{where}.theta_min_deg/theta_max_deg = [{filt['theta_min_deg']}, "
            f"{filt['theta_max_deg']}] is narrower than the detector's tracking acceptance "
            f"detector.tracking.theta_deg = [{lo}, {hi}] (the four-track selection counts every "
            "found track)"
        )
