"""The four-track selection of the tau-tau resonance search e+e- -> mu+ mu- X, X -> tau+ tau-.

Belle II, PRL 131, 121802 (2023), arXiv:2306.12294, 62.8 fb^-1; the 2022 talk
(``shared/papers/talk-2022-dark-sector-belle2.md``): "exactly four tracks: two muons plus two
tracks identified as e, mu or pi (one-prong tau decays); M(4 tracks) < 9.5 GeV; the three-track
or the single-muon trigger", and a control sample with the muon pair replaced by a pion pair.
The talk gives no charge requirement, track-quality or identification thresholds, nor how the
muon pair is chosen when three or four tracks are muons: those are **our choices**, listed
below. The neural networks that follow this pre-selection are not here.

Candidates (our choice): every opposite-charge pair of tracks that are both identified as muons
(``muon_id > muon_id_min``) makes a candidate, the other two tracks its tau candidates; an event
with three or four muons has two to four candidates, each with its own M_recoil, and every
candidate that passes the steps is kept (one output row each, ``n_candidates`` per event). No
single pair is right at every mass: the prompt muons of e+e- -> mu mu X share sqrt(s) - M_X
(0.6 GeV at M_X = 10 GeV) while a tau's muon carries a share of M_X / 2, so the harder pair is
the prompt one at low M_X and often a wrong one above: with the harder pair alone, our Z'
signal (2000 events per mass) kept 543, 512 and 56 selected events within 0.15 GeV of
M_X = 3.6, 6.8 and 10 GeV, with every candidate 559, 638 and 210. In the control sample the
pair is made of tracks identified as pions and not as muons (``pion_id > pion_id_min``,
``muon_id <= muon_id_min``).

The cut flow counts events: an event passes the steps up to a candidate-level one when one of
its candidates passes all of them.

Mass hypotheses: muon for the pair; for each of the other two tracks the species of its
highest identification score among e, mu, pi.

Steps (in order; each can be switched off with ``TautauSelection.disabled``):

================  ===============================================================================
step              requirement (default; source)
================  ===============================================================================
``trigger``       the three-track or the single-muon trigger fired (talk)
``four_tracks``   exactly four tracks, total charge 0, each abs(d0) < 0.5 cm, abs(z0) < 2 cm (talk:
                  four tracks; the charge and impact-parameter cuts are ours, as the
                  invisible-Z' selection's, PRL 130, 231801)
``muon_pair``     an opposite-charge pair of identified muons (talk; pions in the control sample)
``other_ids``     the two other tracks each identified as e, mu or pi (talk), ID above 0.5 (ours)
``m_four``        M(4 tracks) < 9.5 GeV (talk)
``recoil_range``  M_recoil(mu mu) in [3.0, 10.3] GeV: the fit range 3.6-10 GeV with room for the
                  resolution and the fit's sidebands (ours)
================  ===============================================================================

Observables (:data:`OBSERVABLES`, per candidate): ``m_recoil`` (GeV, from
``m_recoil2`` = s + M_mumu^2 - 2 sqrt(s) E*_mumu, signed; ``m_recoil`` = sqrt(max(0, .))),
``m_mumu``, ``m_four`` (M of the four tracks), ``m_other`` (M of the other two), the network
features of :data:`FEATURES` (c.m. frame unless said) and ``other_species`` (10 e, 13 mu, 211
pi, per track, as a code 100 * a + b with a <= b).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from zprime._util import atomic_path
from zprime.analyses.cutflow import CutFlow
from zprime.errors import ConfigError, InputError
from zprime.io.events import iter_events
from zprime.physics.constants import M_ELECTRON, M_MUON, M_PION, SQRT_S
from zprime.physics.kinematics import (
    angle_between,
    four_momentum,
    lab_to_cm,
    mass2,
    momentum,
    transverse_momentum,
    wrt_direction,
)

__all__ = [
    "FEATURES",
    "OBSERVABLES",
    "OUTPUT_COLUMNS",
    "PAIRS",
    "STEPS",
    "TRIGGERS",
    "TautauSelection",
    "candidates",
    "select",
    "select_file",
    "step_masks",
]

F64 = NDArray[np.float64]

STEPS: tuple[str, ...] = (
    "trigger",
    "four_tracks",
    "muon_pair",
    "other_ids",
    "m_four",
    "recoil_range",
)
"""The selection steps, in the order :func:`select` applies them."""

FEATURES: tuple[str, ...] = (
    "pt_mumu_cm",
    "p_mu_hi_cm",
    "p_mu_lo_cm",
    "cos_recoil_other_cm",
    "pt_other_wrt_recoil_cm",
    "e_other_cm",
    "m_other",
    "p_recoil_cm",
    "cos_theta_recoil_cm",
)
"""Inputs of the networks (our choice): the mu mu system's p_T; the two muon momenta; the
angle between the recoil and the other two tracks' momentum sum (the taus of X fly along the
recoil); that sum's momentum transverse to the recoil; its energy and mass; the recoil
momentum and polar angle (all in the c.m. frame)."""

OBSERVABLES: tuple[str, ...] = ("m_recoil", "m_recoil2", "m_mumu", "m_four", *FEATURES)
OUTPUT_COLUMNS: tuple[str, ...] = (
    "weight",
    "event",
    *OBSERVABLES,
    "other_species",
    "candidate",
    "n_candidates",
    "mass_true",
)
"""Columns of the file :func:`select_file` writes (one row per selected candidate; the event's
weight on each of its candidates, ``n_candidates`` of them; ``mass_true`` the generated X mass
of a signal event, NaN for the other samples)."""

_DEG = math.pi / 180.0
_TRACK_FIELDS = ("charge", "px", "py", "pz", "muon_id", "electron_id", "pion_id", "d0", "z0")
TRIGGERS: tuple[str, ...] = ("trg_three_track", "trg_single_muon")
"""The selection's triggers (either fires)."""
_WHERE = "tau-tau selection"
PAIRS: tuple[tuple[int, int], ...] = tuple(combinations(range(4), 2))
"""The track pairs (of the first four tracks) a candidate's muon pair can be; ``candidate``
indexes it."""
_COMPLEMENTS = tuple(tuple(t for t in range(4) if t not in p) for p in PAIRS)
_SPECIES = np.array([11, 13, 211])
_MASSES = np.array([M_ELECTRON, M_MUON, M_PION])


@dataclass(frozen=True)
class TautauSelection:
    """Cut values of the pre-selection (module docstring: sources and our choices)."""

    disabled: frozenset[str] = field(default_factory=frozenset)
    """Steps switched off (names of :data:`STEPS`)."""
    control: bool = False
    """True: the control sample, the muon pair replaced by a pion pair (talk)."""
    track_d0_max_cm: float = 0.5
    track_z0_max_cm: float = 2.0
    muon_id_min: float = 0.5
    electron_id_min: float = 0.5
    pion_id_min: float = 0.5
    m_four_max_gev: float = 9.5
    """M(4 tracks) below this, GeV (talk)."""
    m_recoil_range_gev: tuple[float, float] = (3.0, 10.3)

    def __post_init__(self) -> None:
        object.__setattr__(self, "disabled", frozenset(self.disabled))
        for name in sorted(self.disabled):
            if name not in STEPS:
                raise ConfigError(
                    f"TautauSelection.disabled: unknown step '{name}' (steps: {', '.join(STEPS)})"
                )
        lo, hi = self.m_recoil_range_gev
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"TautauSelection.m_recoil_range_gev = {(lo, hi)!r} must increase")
        if not self.m_four_max_gev > 0:
            raise ConfigError("TautauSelection.m_four_max_gev must be > 0")


def _require(events: ak.Array, column: str) -> None:
    head, _, rest = column.partition(".")
    fields = ak.fields(events)
    if head not in fields or (rest and rest not in ak.fields(events[head])):
        raise InputError(f"{_WHERE}: missing column '{column}'")


def _four(events: ak.Array, name: str) -> F64:
    """(n, 4) array of a track field for the first four tracks (NaN where fewer)."""
    _require(events, f"tracks.{name}")
    padded = ak.pad_none(events["tracks"][name], 4, axis=1, clip=True)
    return np.asarray(ak.to_numpy(ak.fill_none(padded, np.nan)), dtype=np.float64)


def _event_level(events: ak.Array, s: TautauSelection) -> dict[str, np.ndarray]:
    """``n_tracks``, ``charge_sum`` and ``ip_ok`` (impact parameters of the first four tracks)
    of every event."""
    q = _four(events, "charge")
    d0 = _four(events, "d0")
    z0 = _four(events, "z0")
    with np.errstate(invalid="ignore"):
        ip_ok = np.all((np.abs(d0) < s.track_d0_max_cm) & (np.abs(z0) < s.track_z0_max_cm), axis=1)
    return {
        "n_tracks": np.asarray(ak.to_numpy(ak.num(events["tracks"], axis=1)), dtype=np.int64),
        "charge_sum": np.nansum(q, axis=1),
        "ip_ok": ip_ok,
    }


def candidates(events: ak.Array, sel: TautauSelection | None = None) -> dict[str, np.ndarray]:
    """Every candidate of every four-track event and its observables (vectorised; module
    docstring): one row per opposite-charge pair of identified muons (pions in the control
    sample), the other two tracks as the tau candidates.

    Returns
    -------
    dict
        (m,) arrays, one entry per candidate, ordered by event: ``event_index`` (the event's
        position in ``events``), ``candidate`` (the pair's index in :data:`PAIRS`),
        ``other_ok`` (the other two tracks identified), the :data:`OBSERVABLES` and
        ``other_species``.
    """
    s = sel if sel is not None else TautauSelection()
    for f in _TRACK_FIELDS:
        _require(events, f"tracks.{f}")
    n_tr = np.asarray(ak.to_numpy(ak.num(events["tracks"], axis=1)), dtype=np.int64)
    n = n_tr.size
    q = _four(events, "charge")
    mu = _four(events, "muon_id")
    el = _four(events, "electron_id")
    pi = _four(events, "pion_id")
    p3 = np.stack([_four(events, c) for c in ("px", "py", "pz")], axis=-1)  # (n, 4, 3)
    with np.errstate(invalid="ignore"):
        is_mu = mu > s.muon_id_min
        pair_ok_track = (pi > s.pion_id_min) & ~is_mu if s.control else is_mu
        ids = np.stack([el, mu, pi], axis=-1)  # (n, 4, 3) scores in species order e, mu, pi
        mins = np.array([s.electron_id_min, s.muon_id_min, s.pion_id_min])
        ided = np.any(ids > mins, axis=-1)  # (n, 4)
        species = np.argmax(np.nan_to_num(ids, nan=-1.0), axis=-1)  # (n, 4)
        # c.m. four-momenta of every track as a muon (the pair) and as its own species (the
        # other two)
        as_mu = lab_to_cm(four_momentum(p3, M_MUON))
        as_own = lab_to_cm(four_momentum(p3, _MASSES[species]))
        valid = np.zeros((n, len(PAIRS)), dtype=bool)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in (*OBSERVABLES, "other_ok", "sp")}
        for k, ((i, j), (c, d)) in enumerate(zip(PAIRS, _COMPLEMENTS, strict=True)):
            valid[:, k] = (
                (n_tr == 4) & (q[:, i] * q[:, j] < 0) & pair_ok_track[:, i] & pair_ok_track[:, j]
            )
            a_cm, b_cm = as_mu[:, i], as_mu[:, j]
            pair = a_cm + b_cm
            rec = -pair
            rec[:, 0] = SQRT_S - pair[:, 0]
            m2_rec = mass2(rec)
            other = as_own[:, c] + as_own[:, d]
            four = pair + other
            pt_o, _ = wrt_direction(other[:, 1:], rec[:, 1:])
            p_a, p_b = momentum(a_cm[:, 1:]), momentum(b_cm[:, 1:])
            sp = np.sort(np.stack([_SPECIES[species[:, c]], _SPECIES[species[:, d]]]), axis=0)
            for key, v in (
                ("m_recoil", np.sqrt(np.maximum(m2_rec, 0.0))),
                ("m_recoil2", m2_rec),
                ("m_mumu", np.sqrt(np.maximum(mass2(pair), 0.0))),
                ("m_four", np.sqrt(np.maximum(mass2(four), 0.0))),
                ("pt_mumu_cm", transverse_momentum(pair)),
                ("p_mu_hi_cm", np.maximum(p_a, p_b)),
                ("p_mu_lo_cm", np.minimum(p_a, p_b)),
                ("cos_recoil_other_cm", np.cos(angle_between(rec[:, 1:], other[:, 1:]))),
                ("pt_other_wrt_recoil_cm", pt_o),
                ("e_other_cm", other[:, 0]),
                ("m_other", np.sqrt(np.maximum(mass2(other), 0.0))),
                ("p_recoil_cm", momentum(rec[:, 1:])),
                (
                    "cos_theta_recoil_cm",
                    rec[:, 3] / np.maximum(momentum(rec[:, 1:]), 1e-300),
                ),
                ("other_ok", ided[:, c] & ided[:, d]),
                ("sp", 100 * sp[0] + sp[1]),
            ):
                cols[key].append(v)
    ev, k = np.nonzero(valid)  # row-major: ordered by event, then pair
    out: dict[str, np.ndarray] = {"event_index": ev.astype(np.int64), "candidate": k}
    for key, parts in cols.items():
        v = np.stack(parts, axis=1)[ev, k]
        if key == "sp":
            out["other_species"] = np.nan_to_num(v).astype(np.int64)
        elif key == "other_ok":
            out[key] = v.astype(bool)
        else:
            out[key] = v.astype(np.float64)
    return out


def _any_per_event(n: int, event_index: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """True for the events with at least one candidate in ``mask``."""
    return np.bincount(event_index[mask], minlength=n) > 0


def _candidate_masks(cand: Mapping[str, np.ndarray], s: TautauSelection) -> dict[str, np.ndarray]:
    """The candidate-level steps' masks (one entry per candidate), each on its own."""
    lo, hi = s.m_recoil_range_gev
    with np.errstate(invalid="ignore"):
        return {
            "muon_pair": np.ones(cand["event_index"].size, dtype=bool),
            "other_ids": np.asarray(cand["other_ok"], dtype=bool),
            "m_four": cand["m_four"] < s.m_four_max_gev,
            "recoil_range": (cand["m_recoil"] >= lo) & (cand["m_recoil"] <= hi),
        }


def _event_masks(
    events: ak.Array, s: TautauSelection, level: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The event-level steps' masks (``trigger``, ``four_tracks``)."""
    for t in TRIGGERS:
        _require(events, t)
    trig = np.zeros(len(events), dtype=bool)
    for t in TRIGGERS:
        trig |= np.asarray(ak.to_numpy(events[t]), dtype=bool)
    four = (level["n_tracks"] == 4) & (level["charge_sum"] == 0) & level["ip_ok"]
    return {"trigger": trig, "four_tracks": np.asarray(four, dtype=bool)}


def step_masks(
    events: ak.Array,
    sel: TautauSelection | None = None,
    cand: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Boolean mask of every enabled step per event, each on its own (not cumulative), in
    :data:`STEPS` order; a candidate-level step passes an event when one of its candidates
    passes it. A missing column is a one-line :class:`InputError` naming it."""
    s = sel if sel is not None else TautauSelection()
    c = cand if cand is not None else candidates(events, s)
    n = len(events)
    per_event = _event_masks(events, s, _event_level(events, s))
    per_cand = _candidate_masks(c, s)
    out: dict[str, np.ndarray] = {}
    for name in STEPS:
        if name in s.disabled:
            continue
        if name in per_event:
            out[name] = per_event[name]
        else:
            out[name] = _any_per_event(n, c["event_index"], per_cand[name])
    return out


def _apply(
    events: ak.Array, sel: TautauSelection, luminosity_fb: float, sample: str
) -> tuple[np.ndarray, dict[str, np.ndarray], CutFlow]:
    """The selected candidates (a mask over the candidates, their columns) and the event cut
    flow: an event passes the steps up to k when it passes the event-level ones and one of its
    candidates passes every candidate-level one."""
    _require(events, "weight")
    _require(events, "event")
    cand = candidates(events, sel)
    n = len(events)
    per_event = _event_masks(events, sel, _event_level(events, sel))
    per_cand = _candidate_masks(cand, sel)
    ev_idx = cand["event_index"]
    weights = np.asarray(ak.to_numpy(events["weight"]), dtype=np.float64)
    ev_cum = np.ones(n, dtype=bool)
    c_cum = np.ones(ev_idx.size, dtype=bool)
    cumulative: dict[str, np.ndarray] = {}
    for name in STEPS:
        if name in sel.disabled:
            continue
        if name in per_event:
            ev_cum = ev_cum & per_event[name]
        else:
            c_cum = c_cum & per_cand[name]
        cumulative[name] = ev_cum & _any_per_event(n, ev_idx, c_cum)
    _, flow = CutFlow.from_masks(sample, luminosity_fb, weights, cumulative)
    mask = ev_cum[ev_idx] & c_cum
    out = {k: cand[k] for k in (*OBSERVABLES, "other_species", "candidate")}
    out["n_candidates"] = np.bincount(ev_idx[mask], minlength=n)[ev_idx]
    out["weight"] = weights[ev_idx]
    out["event"] = np.asarray(ak.to_numpy(events["event"]), dtype=np.int64)[ev_idx]
    # the generator's X mass (a signal sample over a mass range has one per event)
    out["mass_true"] = (
        np.asarray(ak.to_numpy(events["mass"]), dtype=np.float64)[ev_idx]
        if "mass" in events.fields
        else np.full(ev_idx.size, np.nan)
    )
    return mask, out, flow


def select(
    events: ak.Array,
    sel: TautauSelection | None = None,
    *,
    luminosity_fb: float = 1.0,
    sample: str = "sample",
) -> tuple[dict[str, np.ndarray], CutFlow]:
    """Apply the enabled steps in order: the selected candidates' columns
    (:data:`OUTPUT_COLUMNS`) and the weighted cut flow of the events."""
    mask, obs, flow = _apply(events, sel or TautauSelection(), luminosity_fb, sample)
    return {k: v[mask] for k, v in obs.items()}, flow


def select_file(
    reco_path: str | Path,
    out_path: str | Path,
    sel: TautauSelection | None = None,
    *,
    luminosity_fb: float = 1.0,
    batch_size: int = 200_000,
    control_path: str | Path | None = None,
) -> tuple[Path, CutFlow]:
    """Select a reconstructed Parquet file batch by batch; write the selected candidates'
    columns (:data:`OUTPUT_COLUMNS`) and the cut flow (``.cutflow.csv``), atomically; with
    ``control_path`` also the pion-pair control sample (``sel`` with ``control=True``) and its
    cut flow, in the same pass over the file."""
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    src, out = Path(reco_path), Path(out_path)
    s = sel or TautauSelection()
    targets = [(out, s)]
    if control_path is not None:
        targets.append((Path(control_path), dataclasses.replace(s, control=True)))
    flows = [CutFlow(src.stem, luminosity_fb) for _ in targets]
    ints = ("event", "other_species", "candidate", "n_candidates")
    schema = pa.schema([(c, pa.int64() if c in ints else pa.float64()) for c in OUTPUT_COLUMNS])
    with contextlib.ExitStack() as stack:
        writers = []
        for target, _ in targets:
            tmp = stack.enter_context(atomic_path(target))
            writers.append(stack.enter_context(pq.ParquetWriter(tmp, schema)))
        for batch in iter_events(src, batch_size=batch_size):
            for k, (_, t_sel) in enumerate(targets):
                mask, obs, part = _apply(batch, t_sel, luminosity_fb, src.stem)
                flows[k] = flows[k].add(part)
                writers[k].write_table(
                    pa.table({c: obs[c][mask] for c in OUTPUT_COLUMNS}, schema=schema)
                )
    for (target, _), flow in zip(targets, flows, strict=True):
        with atomic_path(target.with_suffix(".cutflow.csv")) as tmp:
            tmp.write_text(flow.to_csv())
    return out, flows[0]
