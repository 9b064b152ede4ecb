"""The event selection of the dark Higgsstrahlung search: observables, named steps, cut flow.

This module owns the selection of e+e- -> A' h', A' -> mu+ mu-, h' invisible (Belle II,
PRL 130, 071804 (2023), arXiv:2207.00509; 8.34 fb^-1 of 2019 data, two-track trigger with an
azimuthal opening above 90 deg): the per-event observables (:func:`observables`), the masks of
the steps (:func:`step_masks`), their application with a weighted cut flow (:func:`select`)
and the file-level streaming selection (:func:`select_file`). The mass windows in
(M_mumu, M_recoil) are not here (``windows.py``).

Observables (all from the two highest-momentum tracks, muon mass hypothesis; NaN when an event
has fewer than two tracks):

- ``m_mumu``: invariant mass of the two muon candidates, GeV;
- ``m_recoil2``: M_recoil^2 = (p_beams - p1 - p2)^2 = s + M_mumu^2 - 2 sqrt(s) E*_mumu, GeV^2,
  signed (resolution and ISR); ``m_recoil`` = sqrt(max(0, M_recoil^2)), GeV;
- ``pt_mumu_cm``: transverse momentum of the mu mu system in the c.m. frame (equal to the lab
  one: the boost is along z), GeV;
- ``theta_recoil``: lab polar angle of the recoil momentum, rad;
- ``cos_helicity``: cos theta*, the angle between the mu- in the mu mu rest frame and the mu mu
  flight direction in the c.m. frame (the boost to the pair's rest frame is taken from the c.m.
  frame, not from the lab: the two differ by a Wigner rotation). For a pair of equal charges
  (which the ``two_tracks`` step removes) the first track stands in for the mu-. The signal
  (a massive vector into two fermions) follows ``f_L (1 - b^2 cos^2) + (1 - f_L)(1 - b^2
  sin^2 / 2)`` (:mod:`zprime.generators.aprime_hdark`) before the trigger; pairs with one hard
  and one soft muon have |cos theta*| -> 1 (in the study tau tau pairs do; the 2019 trigger
  also pushes the light signal there, ``docs/dark_higgs_selection.md``);
- ``eta_mumu_cm``: pseudorapidity of the mu mu system in the c.m. frame; ``eta_sum_cm`` and
  ``eta_diff_cm``: eta(mu-) + eta(mu+) and eta(mu-) - eta(mu+) of the two muons in the c.m.
  frame (the candidates for C_eta);
- ``c_eta``: our definition of the talk's "C_eta" (below).

**C_eta is our definition.** The talk (``shared/papers/talk-2022-dark-sector-belle2.md``) names
a "C_eta cut" only in its systematics table (1% on the background) and never defines it; no
public source we have does. We define ``c_eta = |eta_mumu_cm|``, the absolute pseudorapidity of
the mu mu system in the c.m. frame (the "C" read as "c.m."). It measures how far the pair, and
so the recoil, is thrown along the beam axis in the c.m. frame, which is what two-photon
e e mu mu events and radiative mu mu events do; the A' of the signal is produced centrally
(``dsigma/dcos ~ lambda sin^2 + 8 M^2 / s``) and its c_eta distribution hardly depends on
(M_A', M_h'). The lab-frame ``recoil_barrel`` step constrains the same direction only in part:
for a heavy recoil the lab angle of the recoil and the c.m. angle of the pair differ. Among the
three candidates above it removed the most background at a given signal efficiency in
``validation/dark_higgs_selection_study.py`` (the pseudorapidity sum of the muons depends
strongly on M_A', their difference separates little; results in
``docs/dark_higgs_selection.md``).

Steps (in order; each can be switched off with ``DarkHiggsSelection.disabled``):

=================  ==============================================================================
step               requirement (default; source)
=================  ==============================================================================
``trigger``        the two-track trigger fired (``trg_two_track``, its Bhabha veto included)
``two_tracks``     exactly two tracks, of opposite charge, from the interaction point: abs(d0) <
                   0.5 cm, abs(z0) < 2 cm (PRL 130, 231801, as the invisible-Z' selection)
``muon_id``        both tracks muonID > 0.5 (the invisible-Z' logic, PRL 130, 231801)
``acceptance``     both tracks with lab polar angle in [37, 120] deg and an azimuthal opening
                   above 90 deg: the two-track trigger's acceptance in 2019 (PRL 130, 231801;
                   ``shared/ANALYSIS.md``), required offline so that the trigger efficiency is
                   that of a fixed acceptance
``pt_mumu``        p_T(mu mu) in the c.m. frame above 0.1 GeV (talk)
``recoil_barrel``  the recoil momentum points into the ECL barrel: theta_recoil in [34, 123] deg and
                   not in the 90-deg gap [89, 91] deg (the invisible-Z' barrel range, PRL 130,
                   231801 / ``shared/ANALYSIS.md``; talk: "recoil momentum in the ECL barrel")
``photon_veto``    no photon above 0.1 GeV within 30 deg of the recoil momentum (lab; talk: "no
                   nearby photon"; the logic of the invisible-Z' helper ``_photon_near_recoil``;
                   values our choice from the study)
``helicity``       abs(cos_helicity) < 1, i.e. no cut (talk: "cut on helicity angle"; the value is
                   our choice from the study, where no cut raised the figure of merit)
``c_eta``          abs(eta_mumu_cm) < 0.9 (our definition and value, see above)
=================  ==============================================================================

Every step is evaluated on its own (:func:`step_masks`); :func:`select` applies them in order.
Required columns (``docs/event-schema.md``): ``weight``, ``trg_two_track``,
``tracks.{charge, px, py, pz, muon_id, d0, z0}`` and ``photons.{e, px, py, pz}``; the stored
analysis variables are not used (everything is computed from the objects). A missing column
raises a one-line :class:`~zprime.errors.InputError` naming it. Reconstructed data mapped with
only ``e_photons`` and ``min_angle_photon_recoil`` (no photon list) cannot be vetoed with an
energy threshold: the empty photon list would let every event through the veto.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from zprime._util import atomic_path
from zprime.analyses.cutflow import CutFlow
from zprime.config import DarkHiggsSelectionConfig
from zprime.errors import ConfigError, InputError
from zprime.io.events import iter_events
from zprime.physics.constants import M_MUON, P_BEAMS_LAB, SQRT_S
from zprime.physics.kinematics import angle_between, four_momentum, lab_to_cm, mass2, polar_angle

__all__ = [
    "CONTROL_COLUMNS",
    "CONTROL_REGIONS",
    "OBSERVABLES",
    "OUTPUT_COLUMNS",
    "STEPS",
    "CutFlow",
    "DarkHiggsSelection",
    "control_masks",
    "observables",
    "photon_near_recoil",
    "photons_near_recoil",
    "select",
    "select_file",
    "step_masks",
]

F64 = NDArray[np.float64]

STEPS: tuple[str, ...] = (
    "trigger",
    "two_tracks",
    "muon_id",
    "acceptance",
    "pt_mumu",
    "recoil_barrel",
    "photon_veto",
    "helicity",
    "c_eta",
)
"""The selection steps, in the order :func:`select` applies them."""

OBSERVABLES: tuple[str, ...] = (
    "m_mumu",
    "m_recoil",
    "m_recoil2",
    "pt_mumu_cm",
    "theta_recoil",
    "cos_helicity",
    "c_eta",
    "eta_mumu_cm",
    "eta_sum_cm",
    "eta_diff_cm",
)
"""Names of the per-event observables of :func:`observables`."""

OUTPUT_COLUMNS: tuple[str, ...] = (
    "weight",
    "event",
    "m_mumu",
    "m_recoil",
    "m_recoil2",
    "pt_mumu_cm",
    "cos_helicity",
    "c_eta",
    "theta_recoil",
)
"""Columns of the file :func:`select_file` writes (one row per selected event)."""

CONTROL_REGIONS: dict[str, int] = {"mumugamma": 1, "emu": 2}
"""The control samples (talk: mu mu gamma for the mu mu (gamma) background, e mu for tau tau)
and their codes in the control file's ``region`` column (:func:`control_masks`)."""

CONTROL_COLUMNS: tuple[str, ...] = (*OUTPUT_COLUMNS, "region", "n_near_photons")
"""Columns of the control file :func:`select_file` writes next to the selected events."""

_DEG = math.pi / 180.0
_TRACK_FIELDS = ("charge", "px", "py", "pz", "muon_id", "d0", "z0")
_PHOTON_FIELDS = ("e", "px", "py", "pz")
_WHERE = "dark Higgs selection"


@dataclass(frozen=True)
class DarkHiggsSelection:
    """Cut values of the dark Higgsstrahlung selection (angles in degrees, as in a config).

    Defaults and their sources: the talk (``shared/papers/talk-2022-dark-sector-belle2.md``),
    the invisible-Z' analysis for the shared ones (PRL 130, 231801; ``shared/ANALYSIS.md``),
    and our choices from ``validation/dark_higgs_selection_study.py``
    (``docs/dark_higgs_selection.md``).
    """

    disabled: frozenset[str] = field(default_factory=frozenset)
    """Steps switched off (names of :data:`STEPS`)."""
    track_d0_max_cm: float = 0.5
    """abs(d0) of both tracks below this, cm (PRL 130, 231801)."""
    track_z0_max_cm: float = 2.0
    """abs(z0) of both tracks below this, cm (PRL 130, 231801)."""
    muon_id_min: float = 0.5
    """muonID of both tracks above this (PRL 130, 231801; the invisible-Z' selection)."""
    track_theta_deg: tuple[float, float] = (37.0, 120.0)
    """Lab polar-angle range of both tracks, deg (two-track trigger, PRL 130, 231801)."""
    track_dphi_min_deg: float = 90.0
    """Azimuthal opening of the two tracks above this, deg (the 2019 two-track trigger,
    ``shared/ANALYSIS.md``; 0 switches it off)."""
    pt_mumu_cm_min_gev: float = 0.1
    """p_T of the mu mu system in the c.m. frame above this, GeV (talk)."""
    theta_recoil_barrel_deg: tuple[float, float] = (34.0, 123.0)
    """Lab polar-angle range of the recoil, deg: the ECL barrel range of the invisible-Z'
    selection (PRL 130, 231801)."""
    theta_recoil_gap_deg: tuple[float, float] | None = (89.0, 91.0)
    """Recoil polar angles left out (the 1.5 mm ECL gap at 90 deg, PRL 130, 231801); None:
    none."""
    photon_energy_min_gev: float = 0.1
    """A photon above this energy near the recoil vetoes the event, GeV (our choice from the
    study; 0.1 GeV is the photon candidates' threshold, so every photon candidate counts: near
    M_A' + M_h' = sqrt(s) the mu mu (gamma) events that fake the signal leave photons of
    0.1-0.5 GeV)."""
    photon_cone_deg: float = 30.0
    """Half-angle of the cone around the recoil momentum (lab), deg (our choice from the study:
    the figure of merit grows with the cone; 30 deg is our cap, twice the PRL's 15 deg, because
    the random-veto loss in data grows with the cone's solid angle)."""
    cos_helicity_max: float = 1.0
    """abs(cos theta*) below this (our choice from the study: 1, no cut. The 2019 trigger's
    90-deg opening already sculpts the signal toward abs(cos) -> 1, and no single value raised
    the figure of merit averaged over the study's mass points)."""
    c_eta_max: float = 0.9
    """c_eta = abs(eta) of the mu mu system in the c.m. frame below this (our definition and
    choice from the study)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "disabled", frozenset(self.disabled))
        for name in sorted(self.disabled):
            if name not in STEPS:
                raise ConfigError(
                    f"DarkHiggsSelection.disabled: unknown step '{name}' (steps: "
                    f"{', '.join(STEPS)})"
                )
        for name in ("track_theta_deg", "theta_recoil_barrel_deg", "theta_recoil_gap_deg"):
            value = getattr(self, name)
            if value is not None and not (0.0 <= value[0] < value[1] <= 180.0):
                raise ConfigError(
                    f"DarkHiggsSelection.{name} = {value!r} must be an increasing range in "
                    "[0, 180] deg"
                )
        for name in ("photon_cone_deg", "cos_helicity_max", "c_eta_max"):
            if not getattr(self, name) >= 0.0:
                raise ConfigError(f"DarkHiggsSelection.{name} must be >= 0")

    @classmethod
    def from_config(cls, section: DarkHiggsSelectionConfig) -> DarkHiggsSelection:
        """The cut values of the ``dark_higgs.selection`` configuration section (same names)."""
        data = section.model_dump()
        data["disabled"] = frozenset(data["disabled"])
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# --------------------------------------------------------------------------- column access
def _require(events: ak.Array, column: str) -> None:
    """Raise a one-line InputError when ``column`` (``name`` or ``record.field``) is absent."""
    head, _, rest = column.partition(".")
    fields = ak.fields(events)
    if head not in fields or (rest and rest not in ak.fields(events[head])):
        raise InputError(f"{_WHERE}: missing column '{column}'")


def _column(events: ak.Array, name: str) -> np.ndarray:
    _require(events, name)
    return np.asarray(ak.to_numpy(events[name]))


def _two(events: ak.Array, name: str) -> tuple[F64, F64]:
    """A track field of the first two tracks (NaN where an event has fewer)."""
    _require(events, f"tracks.{name}")
    padded = ak.pad_none(events["tracks"][name], 2, axis=1, clip=True)
    arr = np.asarray(ak.to_numpy(ak.fill_none(padded, np.nan)), dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def _n_tracks(events: ak.Array) -> np.ndarray:
    _require(events, "tracks")
    return np.asarray(ak.to_numpy(ak.num(events["tracks"], axis=1)), dtype=np.int64)


def _track_momenta(events: ak.Array) -> tuple[F64, F64]:
    """(n, 3) lab momenta of the first and the second track (NaN without them)."""
    comps = [_two(events, f) for f in ("px", "py", "pz")]
    return (
        np.stack([c[0] for c in comps], axis=-1),
        np.stack([c[1] for c in comps], axis=-1),
    )


def _recoil_lab(p1: F64, p2: F64) -> F64:
    """(n, 3) lab recoil momentum p_beams - p1 - p2."""
    return np.asarray(P_BEAMS_LAB[1:], dtype=np.float64) - p1 - p2


def _pseudorapidity(p3: F64) -> F64:
    """eta = atanh(pz / |p|) of (..., 3) momenta (+-inf along the axis)."""
    mag = np.sqrt(np.sum(p3 * p3, axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arctanh(p3[..., 2] / mag)


def _cos_helicity(mu_minus_cm: F64, pair_cm: F64) -> F64:
    """cos of the angle between the mu- in the pair rest frame and the pair's c.m. direction.

    The boost along the pair direction n with beta = |P|/E_P, gamma = E_P/M changes only the
    component along n: ``p*_par = gamma (p . n - beta E)``, ``p*_perp = p_perp``.
    """
    p_vec = pair_cm[..., 1:]
    p_mag = np.sqrt(np.sum(p_vec * p_vec, axis=-1))
    m_pair = np.sqrt(np.maximum(mass2(pair_cm), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        n = p_vec / p_mag[..., None]
        par = np.sum(mu_minus_cm[..., 1:] * n, axis=-1)
        perp2 = np.maximum(np.sum(mu_minus_cm[..., 1:] ** 2, axis=-1) - par * par, 0.0)
        # gamma (p.n - beta E) = (E_P p.n - |P| E) / M
        par_star = (pair_cm[..., 0] * par - p_mag * mu_minus_cm[..., 0]) / m_pair
        return par_star / np.sqrt(par_star * par_star + perp2)


# --------------------------------------------------------------------------- observables
def observables(events: ak.Array) -> dict[str, np.ndarray]:
    """Per-event observables of the two muon candidates (module docstring), vectorised.

    Parameters
    ----------
    events
        Reconstructed events (``docs/event-schema.md``); needs ``tracks.{px, py, pz, charge}``.

    Returns
    -------
    dict
        Name -> (n,) float64 array for every name of :data:`OBSERVABLES` (GeV, GeV^2, rad;
        NaN for events with fewer than two tracks).

    Raises
    ------
    InputError
        A missing column (named).
    """
    p1, p2 = _track_momenta(events)
    q1, _ = _two(events, "charge")
    a_cm = lab_to_cm(four_momentum(p1, M_MUON))
    b_cm = lab_to_cm(four_momentum(p2, M_MUON))
    pair = a_cm + b_cm
    # the recoil in the c.m. frame, where the beams are (sqrt(s), 0, 0, 0):
    # M_recoil^2 = (sqrt(s) - E*)^2 - |p*|^2 = s + M_mumu^2 - 2 sqrt(s) E*
    rec_cm = -pair
    rec_cm[:, 0] = SQRT_S - pair[:, 0]
    m2_rec = mass2(rec_cm)
    first_is_minus = ~(q1 > 0)  # the first track is the mu- unless it is positive
    mu_minus = np.where(first_is_minus[:, None], a_cm, b_cm)
    mu_plus = np.where(first_is_minus[:, None], b_cm, a_cm)
    eta_minus = _pseudorapidity(mu_minus[:, 1:])
    eta_plus = _pseudorapidity(mu_plus[:, 1:])
    eta_sum = eta_minus + eta_plus
    eta_pair = _pseudorapidity(pair[:, 1:])
    return {
        "m_mumu": np.sqrt(np.maximum(mass2(pair), 0.0)),
        "m_recoil": np.sqrt(np.maximum(m2_rec, 0.0)),
        "m_recoil2": m2_rec,
        "pt_mumu_cm": np.hypot(pair[:, 1], pair[:, 2]),
        "theta_recoil": polar_angle(_recoil_lab(p1, p2)),
        "cos_helicity": _cos_helicity(mu_minus, pair),
        "c_eta": np.abs(eta_pair),
        "eta_mumu_cm": eta_pair,
        "eta_sum_cm": eta_sum,
        "eta_diff_cm": eta_minus - eta_plus,
    }


def photons_near_recoil(events: ak.Array, e_min_gev: float, cone_rad: float) -> np.ndarray:
    """Number of photons above ``e_min_gev`` within ``cone_rad`` of the recoil (lab), per event.

    The recoil is that of the first two tracks; events with fewer tracks get 0. The same
    logic as the invisible-Z' helper (``invisible_zprime.selection._photon_near_recoil``), with
    the angle from atan2 (:func:`zprime.physics.kinematics.angle_between`).
    """
    for f in _PHOTON_FIELDS:
        _require(events, f"photons.{f}")
    p1, p2 = _track_momenta(events)
    rec = _recoil_lab(p1, p2)
    ph = events["photons"]
    counts = np.asarray(ak.to_numpy(ak.num(ph, axis=1)), dtype=np.int64)
    flat = {
        f: np.asarray(ak.to_numpy(ak.flatten(ph[f], axis=1)), dtype=np.float64)
        for f in _PHOTON_FIELDS
    }
    event_of = np.repeat(np.arange(counts.size), counts)
    p = np.stack([flat["px"], flat["py"], flat["pz"]], axis=-1)
    with np.errstate(invalid="ignore"):
        near = (flat["e"] > e_min_gev) & (angle_between(p, rec[event_of]) < cone_rad)
    return np.bincount(event_of, weights=near.astype(float), minlength=counts.size).astype(np.int64)


def photon_near_recoil(events: ak.Array, e_min_gev: float, cone_rad: float) -> np.ndarray:
    """True where a photon above ``e_min_gev`` lies within ``cone_rad`` of the recoil (lab)
    (:func:`photons_near_recoil` > 0)."""
    return photons_near_recoil(events, e_min_gev, cone_rad) > 0


# --------------------------------------------------------------------------- steps
def step_masks(
    events: ak.Array,
    sel: DarkHiggsSelection | None = None,
    obs: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Boolean mask of every enabled step, each evaluated on its own (not cumulative).

    Parameters
    ----------
    events
        Reconstructed events (columns in the module docstring).
    sel
        The cut values (default :class:`DarkHiggsSelection`).
    obs
        The events' :func:`observables`, if already computed.

    Returns
    -------
    dict
        Step name -> (n,) bool mask, in the order of :data:`STEPS`, for the enabled steps. Every
        step after ``trigger`` includes "exactly two tracks" (its variables need them).

    Raises
    ------
    InputError
        A missing column (named).
    """
    s = sel if sel is not None else DarkHiggsSelection()
    enabled = [name for name in STEPS if name not in s.disabled]
    for name in ("weight", "trg_two_track"):
        _require(events, name)
    for f in _TRACK_FIELDS:
        _require(events, f"tracks.{f}")
    if "photon_veto" in enabled:
        for f in _PHOTON_FIELDS:
            _require(events, f"photons.{f}")
    o = obs if obs is not None else observables(events)
    two = _n_tracks(events) == 2
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):  # NaN observables (fewer than two tracks) compare False
        for name in enabled:
            if name == "trigger":
                out[name] = _column(events, "trg_two_track").astype(bool)
                continue
            if name == "two_tracks":
                q = _two(events, "charge")
                d0 = _two(events, "d0")
                z0 = _two(events, "z0")
                mask = (
                    (q[0] * q[1] < 0)
                    & (np.abs(d0[0]) < s.track_d0_max_cm)
                    & (np.abs(d0[1]) < s.track_d0_max_cm)
                    & (np.abs(z0[0]) < s.track_z0_max_cm)
                    & (np.abs(z0[1]) < s.track_z0_max_cm)
                )
            elif name == "muon_id":
                mu = _two(events, "muon_id")
                mask = (mu[0] > s.muon_id_min) & (mu[1] > s.muon_id_min)
            elif name == "acceptance":
                p1, p2 = _track_momenta(events)
                lo, hi = (x * _DEG for x in s.track_theta_deg)
                th1, th2 = polar_angle(p1), polar_angle(p2)
                dphi = np.abs(
                    np.mod(
                        np.arctan2(p1[:, 1], p1[:, 0]) - np.arctan2(p2[:, 1], p2[:, 0]) + np.pi,
                        2.0 * np.pi,
                    )
                    - np.pi
                )
                mask = (
                    (th1 >= lo)
                    & (th1 <= hi)
                    & (th2 >= lo)
                    & (th2 <= hi)
                    & (dphi > s.track_dphi_min_deg * _DEG)
                )
            elif name == "pt_mumu":
                mask = o["pt_mumu_cm"] > s.pt_mumu_cm_min_gev
            elif name == "recoil_barrel":
                th = o["theta_recoil"]
                lo, hi = (x * _DEG for x in s.theta_recoil_barrel_deg)
                mask = (th >= lo) & (th <= hi)
                if s.theta_recoil_gap_deg is not None:
                    g_lo, g_hi = (x * _DEG for x in s.theta_recoil_gap_deg)
                    mask &= ~((th >= g_lo) & (th <= g_hi))
            elif name == "photon_veto":
                # computed once per batch by _apply_all (the control sample needs it too)
                mask = (
                    o["n_near_photons"] == 0
                    if "n_near_photons" in o
                    else ~photon_near_recoil(
                        events, s.photon_energy_min_gev, s.photon_cone_deg * _DEG
                    )
                )
            elif name == "helicity":
                mask = np.abs(o["cos_helicity"]) < s.cos_helicity_max
            else:  # c_eta
                mask = o["c_eta"] < s.c_eta_max
            out[name] = np.asarray(mask, dtype=bool) & two
    return out


def control_masks(
    events: ak.Array,
    masks: Mapping[str, np.ndarray],
    sel: DarkHiggsSelection | None = None,
    electron_id_min: float = 0.5,
) -> dict[str, np.ndarray]:
    """The events of the two control samples (talk: mu mu gamma and e mu), disjoint from the
    selected events and from each other.

    - ``mumugamma``: every enabled step passed but the photon veto, which failed: a photon
      above the veto's energy within its cone around the recoil. With the selected events
      (the veto passed) and M_recoil^2 near 0 it is the tag-and-probe sample of the photon
      detection efficiency along the recoil (``control.py``);
    - ``emu``: every enabled step passed, with ``muon_id`` replaced by one track identified as
      a muon and the other as an electron (``electron_id`` above ``electron_id_min``; the
      invisible-Z' analysis's e mu logic, PRL 130, 231801) and not both as muons.

    Parameters
    ----------
    events
        The reconstructed events; ``emu`` needs ``tracks.electron_id`` (an all-False mask
        without it: a user's ntuple may have no electron identification).
    masks
        The events' :func:`step_masks`.
    sel
        The cut values.
    electron_id_min
        Electron-identification threshold of the e mu sample (PRL 130, 231801 gives none; 0.5,
        as ``selection.electron_id_min`` of the invisible-Z' analysis).

    Returns
    -------
    dict
        ``mumugamma`` and ``emu`` -> (n,) bool masks.
    """
    s = sel if sel is not None else DarkHiggsSelection()
    n = len(events)
    others = [m for name, m in masks.items() if name not in ("photon_veto", "muon_id")]
    base = np.logical_and.reduce(others) if others else np.ones(n, dtype=bool)
    veto = masks.get("photon_veto", np.ones(n, dtype=bool))
    mu_id = masks.get("muon_id", np.ones(n, dtype=bool))
    out = {"mumugamma": base & mu_id & ~veto if "photon_veto" in masks else np.zeros(n, bool)}
    fields = ak.fields(events["tracks"]) if "tracks" in ak.fields(events) else []
    if "electron_id" in fields:
        mu = _two(events, "muon_id")
        el = _two(events, "electron_id")
        is_mu = (mu[0] > s.muon_id_min, mu[1] > s.muon_id_min)
        is_e = (el[0] > electron_id_min, el[1] > electron_id_min)
        emu = ((is_e[0] & is_mu[1]) | (is_mu[0] & is_e[1])) & ~(is_mu[0] & is_mu[1])
        out["emu"] = base & veto & emu
    else:
        out["emu"] = np.zeros(n, dtype=bool)
    return out


def _apply(
    events: ak.Array, sel: DarkHiggsSelection, luminosity_fb: float, sample: str
) -> tuple[np.ndarray, dict[str, np.ndarray], CutFlow]:
    mask, obs, flow, _ = _apply_all(events, sel, luminosity_fb, sample)
    return mask, obs, flow


def _apply_all(
    events: ak.Array, sel: DarkHiggsSelection, luminosity_fb: float, sample: str
) -> tuple[np.ndarray, dict[str, np.ndarray], CutFlow, dict[str, np.ndarray]]:
    obs = observables(events)
    obs["n_near_photons"] = photons_near_recoil(
        events, sel.photon_energy_min_gev, sel.photon_cone_deg * _DEG
    )
    masks = step_masks(events, sel, obs)
    weights = np.asarray(ak.to_numpy(events["weight"]), dtype=np.float64)
    mask, flow = CutFlow.from_masks(sample, luminosity_fb, weights, masks)
    obs["weight"] = weights
    obs["event"] = np.asarray(ak.to_numpy(events["event"]), dtype=np.int64)
    return mask, obs, flow, masks


def select(
    events: ak.Array,
    sel: DarkHiggsSelection | None = None,
    *,
    luminosity_fb: float = 1.0,
    sample: str = "sample",
) -> tuple[dict[str, np.ndarray], CutFlow]:
    """Apply the enabled steps in order: the selected events' observables and the cut flow.

    Parameters
    ----------
    events
        Reconstructed events (columns in the module docstring, and ``event``).
    sel
        The cut values (default :class:`DarkHiggsSelection`).
    luminosity_fb
        Luminosity at which the cut flow's yields are quoted (yield = sum of weights x L).
    sample
        Name in the cut flow.

    Returns
    -------
    (dict, CutFlow)
        :data:`OBSERVABLES` plus ``weight`` (fb) and ``event`` of the selected events, and the
        weighted cut flow (``"all"`` then the enabled steps).
    """
    _require(events, "event")
    mask, obs, flow = _apply(events, sel or DarkHiggsSelection(), luminosity_fb, sample)
    return {k: v[mask] for k, v in obs.items()}, flow


def select_file(
    reco_path: str | Path,
    out_path: str | Path,
    sel: DarkHiggsSelection | None = None,
    *,
    luminosity_fb: float = 1.0,
    batch_size: int = 200_000,
    control_path: str | Path | None = None,
    electron_id_min: float = 0.5,
) -> tuple[Path, CutFlow]:
    """Select a reconstructed Parquet file batch by batch; write the selected observables.

    Writes ``out_path`` (Parquet, one row per selected event, the columns of
    :data:`OUTPUT_COLUMNS`) and ``out_path`` with the suffix ``.cutflow.csv`` (the cut flow),
    both atomically (:func:`zprime._util.atomic_path`); with ``control_path`` also the events
    of the control samples (:func:`control_masks`, the columns of :data:`CONTROL_COLUMNS`:
    ``region`` is the sample's code in :data:`CONTROL_REGIONS`, ``n_near_photons`` the number
    of photons that vetoed the event), in the same pass over the file.

    Returns
    -------
    (Path, CutFlow)
        The Parquet file written and the cut flow (sample name: the input file's stem).

    Raises
    ------
    InputError
        Missing or unreadable input, a missing column.
    """
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    src = Path(reco_path)
    out = Path(out_path)
    s = sel or DarkHiggsSelection()
    flow = CutFlow(src.stem, luminosity_fb)
    ints = ("event", "region", "n_near_photons")
    schema = pa.schema([(c, pa.int64() if c in ints else pa.float64()) for c in OUTPUT_COLUMNS])
    c_schema = pa.schema([(c, pa.int64() if c in ints else pa.float64()) for c in CONTROL_COLUMNS])
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        writer = stack.enter_context(pq.ParquetWriter(tmp, schema))
        c_writer = None
        if control_path is not None:
            c_tmp = stack.enter_context(atomic_path(Path(control_path)))
            c_writer = stack.enter_context(pq.ParquetWriter(c_tmp, c_schema))
        for batch in iter_events(src, batch_size=batch_size):
            _require(batch, "event")
            mask, obs, part, masks = _apply_all(batch, s, luminosity_fb, src.stem)
            flow = flow.add(part)
            writer.write_table(pa.table({c: obs[c][mask] for c in OUTPUT_COLUMNS}, schema=schema))
            if c_writer is not None:
                regions = control_masks(batch, masks, s, electron_id_min)
                code = np.zeros(len(batch), dtype=np.int64)
                for name, m in regions.items():
                    code[m] = CONTROL_REGIONS[name]
                keep = code > 0
                obs["region"] = code
                c_writer.write_table(
                    pa.table({c: obs[c][keep] for c in CONTROL_COLUMNS}, schema=c_schema)
                )
    with atomic_path(out.with_suffix(".cutflow.csv")) as tmp:
        tmp.write_text(flow.to_csv())
    return out, flow
