"""Fast simulation of the Belle II detector: generator-level events in, reconstructed events out.

The simulation is columnar: every step works on flat numpy arrays of all particles of a batch
(no loop over events) and the result is assembled into awkward arrays at the end. It models what
the PRL 130, 231801 (2023) analysis uses, with the parameters of a named
:class:`~zprime.config.DetectorConfig` (``detector.configurations`` in the configuration;
sources and assumptions in ``docs/detector.md``):

- tracking: charged e, mu, pi, K, p in the CDC acceptance above a pT threshold, with a
  finding efficiency, Gaussian pT, theta and phi smearing, prompt impact parameters d0/z0;
- particle identification: ``muon_id``, ``electron_id`` and ``pion_id`` scores in [0, 1] whose
  probability of exceeding 0.5 is the parametrised efficiency or mis-identification rate;
- ECL: clusters from photons (acceptance of the three regions, gaps, per-region and backward-
  barrel inefficiencies, the 90 deg gap), from electrons (full shower), muons (MIP) and hadrons
  (MIP or hadronic shower); photons are the clusters above 0.1 GeV not matched to a track;
- trigger: the two-track line (pair of tracks in 37-120 deg with an azimuthal opening above
  90 deg in 2019 or 30 deg in 2020, an efficiency linear in q = s - 2 sqrt(s) E*_tracks, Bhabha
  veto), the ECL energy line, and the run period drawn from the 2019/2020 luminosity split;
  for the tau-tau search (PRL 131, 121802) the three-track line (three CDC trigger tracks) and
  the single-muon line (a CDC track matched to the barrel KLM).

Two configurations ship: ``simulation`` (the analysis' simulation) and ``data`` (the pseudo-data
detector, which differs the way the PRL says real data do: 8% wider M_recoil^2 resolution, a
larger photon loss in the backward barrel, a trigger efficiency rising from 89% to 93% with
M_recoil^2, a slightly lower muon identification). The random numbers drawn do not depend on
efficiencies, resolutions or probabilities, so the two see the same events the same way but for
their differences (``docs/detector.md``, "The data configuration"). The pion identification
and the two tau-tau trigger lines draw theirs from a second generator derived from the state of
``rng`` without advancing it (:func:`_aux_rng`), so every column that existed before them is
unchanged, bit for bit, and does not depend on their parameters.

The reconstructed-event schema is described in ``docs/event-schema.md`` and checked by
:func:`validate_reco_events`.

Length: one detector: its steps share the flat-array batch representation and the detector
configuration.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtr, ndtri

from zprime._util import chunk_rng, provenance
from zprime.config import (
    Config,
    DetectorConfig,
    DetectorSection,
    ECLConfig,
    ElectronIDConfig,
    MuonIDConfig,
    TrackingConfig,
    TriggerConfig,
    default_config,
)
from zprime.config.samples import PionIDConfig
from zprime.errors import ConfigError, InputError
from zprime.generators.signal import generate as generate_signal
from zprime.io.events import (
    EventWriter,
    iter_events,
    read_metadata,
    validate_generator_events,
)
from zprime.io.unweighting import unweight_batch
from zprime.physics.constants import BETA_BOOST, GAMMA_BOOST, M_MUON, SQRT_S, S
from zprime.physics.kinematics import (
    PAIR_VARIABLES,
    four_momentum,
    lab_to_cm,
    mass2,
    pair_variables,
    photon_recoil_variables,
    recoil,
)

__all__ = [
    "OPTIONAL_RECO_COLUMNS",
    "OPTIONAL_TRACK_FIELDS",
    "PHOTON_FIELDS",
    "RECO_COLUMNS",
    "RECO_SCHEMA_VERSION",
    "TRACK_FIELDS",
    "VARIABLE_COLUMNS",
    "VARIABLE_DTYPE",
    "DetectorConfig",
    "RecoSkim",
    "analysis_variables",
    "configuration_differences",
    "get_detector",
    "m_recoil2_resolution",
    "resolution_preselection",
    "signal_resolution",
    "simulate",
    "simulate_file",
    "trigger_variable",
    "two_track_efficiency",
    "validate_reco_events",
]

RECO_SCHEMA_VERSION = 1
TRACK_FIELDS: tuple[str, ...] = (
    "charge",
    "px",
    "py",
    "pz",
    "muon_id",
    "electron_id",
    "d0",
    "z0",
    "true_pdg",
)
PHOTON_FIELDS: tuple[str, ...] = ("e", "px", "py", "pz")
RECO_COLUMNS: tuple[str, ...] = (
    "event",
    "weight",
    "period",
    "trg_two_track",
    "trg_bhabha_veto",
    "trg_ecl",
    "tracks",
    "photons",
)
OPTIONAL_TRACK_FIELDS: tuple[str, ...] = ("pion_id",)
"""Track fields that the simulation writes but the schema does not require (files written before
the tau-tau search, and a user's ntuple that does not map them, lack them: not available)."""
OPTIONAL_RECO_COLUMNS: tuple[str, ...] = ("trg_three_track", "trg_single_muon")
"""Event columns that the simulation writes but the schema does not require (as above)."""
VARIABLE_COLUMNS: tuple[str, ...] = (
    *PAIR_VARIABLES,
    "e_photons",
    "min_angle_photon_recoil",
)
"""Analysis variables stored as flat columns (NaN when the event has fewer than two tracks,
except ``e_photons``, which is always defined)."""

VARIABLE_DTYPE = np.float32
"""Storage precision of the analysis variables (and ``m_recoil2_true``): single precision is a
relative 6e-8 (M_recoil^2: 1e-5 GeV^2 at 100 GeV^2, against a resolution of 0.06-0.23 GeV^2)
and a quarter less disk per reconstructed event, which matters for samples at ten times the
luminosity. They are computed in double precision; tracks and photons stay double."""

_STAGE_KEY = 4  # seeds of this stage: chunk_rng(seed, _STAGE_KEY, file key, batch index)

# charge of the particle with positive PDG code; the antiparticle has the opposite charge
_CHARGE_OF_POSITIVE_PDG = {11: -1, 13: -1, 211: 1, 321: 1, 2212: 1}
_CHARGE_TABLE = np.zeros(max(_CHARGE_OF_POSITIVE_PDG) + 2, dtype=np.int64)
for _code, _q in _CHARGE_OF_POSITIVE_PDG.items():
    _CHARGE_TABLE[_code] = _q

_MIN_DEPOSIT_GEV = 1e-6
"""Smallest ECL deposit that is simulated as a cluster, GeV (1 keV)."""
_DEG = np.pi / 180.0


# ---------------------------------------------------------------------------------------------
# configuration


@functools.lru_cache(maxsize=1)
def _default_section() -> DetectorSection:
    """The built-in detector configurations (parsed once per process)."""
    return default_config().detector


def get_detector(
    detector: DetectorConfig | str | None = None, config: Config | None = None
) -> tuple[str, DetectorConfig]:
    """Resolve a detector configuration.

    Parameters
    ----------
    detector
        A :class:`DetectorConfig`, the name of one in ``config.detector.configurations``, or
        ``None`` for ``config.detector.use``.
    config
        The configuration holding the named detectors (default: the built-in one).

    Returns
    -------
    (name, DetectorConfig)
        ``name`` is ``"custom"`` for a configuration object passed directly.

    Raises
    ------
    ConfigError
        If no configuration has that name.
    """
    if isinstance(detector, DetectorConfig):
        return "custom", detector
    if config is not None:
        section = config.detector
        name = section.use if detector is None else str(detector)
        return name, section.get(name)
    section = _default_section()
    name = section.use if detector is None else str(detector)
    # a copy: the cached defaults must not change if the caller edits the returned object
    return name, section.get(name).model_copy(deep=True)


def configuration_differences(a: DetectorConfig, b: DetectorConfig) -> dict[str, tuple[Any, Any]]:
    """The parameters in which two detector configurations differ.

    Parameters
    ----------
    a, b
        Two configurations, e.g. ``get_detector("simulation")[1]`` and ``get_detector("data")[1]``.

    Returns
    -------
    dict
        ``"block.parameter"`` (e.g. ``"tracking.resolution_scale"``) -> ``(value in a, value
        in b)``, in the order of the model's fields; ``description`` and ``based_on`` are not
        parameters and are ignored. Empty when the two simulate identically.
    """
    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    out: dict[str, tuple[Any, Any]] = {}
    for block in ("tracking", "muon_id", "electron_id", "pion_id", "ecl", "trigger"):
        for name, value in da[block].items():
            if value != db[block][name]:
                out[f"{block}.{name}"] = (value, db[block][name])
    return out


# ---------------------------------------------------------------------------------------------
# helpers on flat arrays


def _flat_particles(events: ak.Array, where: str) -> dict[str, np.ndarray]:
    """Flat numpy columns of all particles and the event index of each."""
    parts = events["particles"]
    try:
        counts = np.asarray(ak.to_numpy(ak.num(parts, axis=1)), dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        for name, dtype in (
            ("pdg", np.int64),
            ("e", np.float64),
            ("px", np.float64),
            ("py", np.float64),
            ("pz", np.float64),
        ):
            flat = ak.flatten(parts[name], axis=1)
            out[name] = np.asarray(ak.to_numpy(flat, allow_missing=False), dtype=dtype)
    except (ValueError, TypeError) as err:  # option types with None, wrong dtypes
        kind = err.__class__.__name__
        raise InputError(
            f"{where}: column 'particles' has missing or malformed values ({kind})"
        ) from None
    out["counts"] = counts
    out["event_of"] = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    return out


def _in_range(x: np.ndarray, bounds: tuple[float, float], scale: float = _DEG) -> np.ndarray:
    lo, hi = bounds
    return (x >= lo * scale) & (x <= hi * scale)


def _pairs(event_of: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of the elements of each event; ``event_of`` must be sorted."""
    counts = np.bincount(event_of, minlength=n_events)
    ends = np.cumsum(counts)
    idx = np.arange(event_of.size)
    n_after = ends[event_of] - 1 - idx
    first = np.repeat(idx, n_after)
    group_start = np.repeat(np.cumsum(n_after) - n_after, n_after)
    second = first + 1 + (np.arange(first.size) - group_start)
    return first, second


def _any_per_event(event_of: np.ndarray, ok: np.ndarray, n_events: int) -> np.ndarray:
    out = np.zeros(n_events, dtype=bool)
    out[event_of[ok]] = True
    return out


def _score(prob: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """A likelihood-ratio-like score in [0, 1] with P(score > 0.5) = ``prob``.

    score = Phi(spread * (Phi^-1(prob) + g)), g ~ N(0, 1): the score exceeds 0.5 exactly when
    g > -Phi^-1(prob), i.e. with probability ``prob``. A larger ``spread`` pushes the scores
    towards 0 and 1 (like the PID likelihood ratios), without changing the 0.5 efficiency.
    """
    g = rng.standard_normal(prob.size)
    with np.errstate(invalid="ignore", over="ignore"):
        z = spread * (ndtri(np.clip(prob, 0.0, 1.0)) + g)
    return ndtr(z).astype(np.float32)


def _linear_in_p(p: np.ndarray, p0: float, p1: float, v0: float, v1: float) -> np.ndarray:
    frac = np.clip((p - p0) / max(p1 - p0, 1e-12), 0.0, 1.0)
    return v0 + (v1 - v0) * frac


def _ragged(fields: Mapping[str, np.ndarray], counts: np.ndarray) -> ak.Array:
    """A ``var * {fields}`` awkward array from flat columns grouped by event."""
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    n = int(offsets[-1])
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in fields.values()],
        list(fields),
        length=n,
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


# ---------------------------------------------------------------------------------------------
# the detector, step by step (each step draws its random numbers in a fixed order)


@dataclass
class _Particles:
    """Flat generator-level particles of a batch, with derived lab quantities."""

    pdg: np.ndarray
    e: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    event_of: np.ndarray
    n_events: int

    def __post_init__(self) -> None:
        self.apdg = np.abs(self.pdg)
        self.pt = np.hypot(self.px, self.py)
        self.p = np.sqrt(self.pt * self.pt + self.pz * self.pz)
        self.theta = np.arctan2(self.pt, self.pz)
        self.phi = np.arctan2(self.py, self.px)
        self.charged = _CHARGE_TABLE[np.minimum(self.apdg, _CHARGE_TABLE.size - 1)] != 0


@dataclass
class _Tracks:
    """Reconstructed tracks (flat, in particle order, so grouped by event)."""

    source: np.ndarray  # index of the generator particle
    event: np.ndarray
    pt: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray
    d0: np.ndarray
    z0: np.ndarray
    muon_id: np.ndarray | None = None
    electron_id: np.ndarray | None = None
    pion_id: np.ndarray | None = None

    @property
    def p(self) -> np.ndarray:
        return self.pt / np.sin(self.theta)

    def subset(self, mask: np.ndarray) -> _Tracks:
        """The tracks where ``mask`` is true."""
        return _Tracks(
            **{
                f: (None if v is None else v[mask])
                for f, v in ((f, getattr(self, f)) for f in self.__dataclass_fields__)
            }
        )


@dataclass
class _Clusters:
    """ECL clusters (flat, any order) and their particle of origin."""

    source: np.ndarray
    event: np.ndarray
    e: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    region: np.ndarray  # 1 forward endcap, 2 barrel, 3 backward endcap
    matched: np.ndarray  # made by a particle that has a reconstructed track


def _ecl_region(theta: np.ndarray, cfg: ECLConfig) -> np.ndarray:
    """ECL region of each polar angle: 0 outside or in a gap, 1 forward, 2 barrel, 3 backward."""
    region = np.zeros(theta.size, dtype=np.int8)
    region[_in_range(theta, cfg.forward_theta_deg)] = 1
    region[_in_range(theta, cfg.barrel_theta_deg)] = 2
    region[_in_range(theta, cfg.backward_theta_deg)] = 3
    return region


def _track(
    parts: _Particles, cfg: TrackingConfig, gen: np.random.Generator
) -> tuple[_Tracks, np.ndarray]:
    """CDC acceptance, pT threshold, pT/theta/phi smearing, d0/z0, finding efficiency.

    Returns every candidate in the acceptance, smeared, and the mask of those found: the
    random numbers drawn do not depend on the efficiency (see :func:`simulate`).
    """
    it = np.flatnonzero(
        parts.charged
        & _in_range(parts.theta, cfg.theta_deg)
        & (parts.pt > cfg.pt_min_gev)
        & (parts.p > 0)
    )
    k = it.size
    found = gen.random(k) < cfg.efficiency
    scale = cfg.resolution_scale
    beta = parts.p[it] / parts.e[it]
    # sigma(pT)/pT = a pT (+) b / beta [TDR]
    sigma_rel = scale * np.hypot(cfg.pt_resolution_pt * parts.pt[it], cfg.pt_resolution_beta / beta)
    pt = np.maximum(parts.pt[it] * (1.0 + sigma_rel * gen.standard_normal(k)), 1e-6)
    theta = parts.theta[it] + scale * cfg.theta_resolution_mrad * 1e-3 * gen.standard_normal(k)
    phi = parts.phi[it] + scale * cfg.phi_resolution_mrad * 1e-3 * gen.standard_normal(k)
    cands = _Tracks(
        source=it,
        event=parts.event_of[it],
        pt=pt,
        theta=np.clip(theta, 1e-6, np.pi - 1e-6),
        phi=phi,
        charge=(np.sign(parts.pdg[it]) * _CHARGE_TABLE[parts.apdg[it]]).astype(np.int32),
        d0=(cfg.d0_resolution_cm * gen.standard_normal(k)).astype(np.float32),
        z0=(cfg.z0_resolution_cm * gen.standard_normal(k)).astype(np.float32),
    )
    return cands, found


def _identify(
    tracks: _Tracks,
    parts: _Particles,
    reaches_ecl: np.ndarray,
    mcfg: MuonIDConfig,
    ecfg: ElectronIDConfig,
    gen: np.random.Generator,
) -> None:
    """Fill ``muon_id`` and ``electron_id`` (scores with P(score > 0.5) = efficiency).

    Kaons and protons take the pion rates unless ``muon_id.kaon_fake_scale`` and
    ``electron_id.kaon_fake`` say otherwise (the defaults reproduce the earlier model exactly).
    """
    apdg = parts.apdg[tracks.source]
    is_mu = apdg == 13
    is_e = apdg == 11
    is_pi = apdg == 211
    p = tracks.p
    # muon ID: KLM for p > 0.7 GeV inside its acceptance [PRL, basf2-acc]; linear model between
    in_klm = _in_range(tracks.theta, mcfg.klm_theta_deg) & (
        ~_in_range(tracks.theta, mcfg.klm_barrel_theta_deg)
        | (tracks.pt > mcfg.klm_barrel_pt_min_gev)
    )
    p0, p1 = mcfg.klm_p_min_gev, mcfg.plateau_p_gev
    mu_eff = np.where(
        in_klm,
        _linear_in_p(p, p0, p1, mcfg.muon_efficiency_low, mcfg.muon_efficiency_high),
        mcfg.muon_efficiency_low,
    )
    pi_fake = np.where(
        in_klm,
        _linear_in_p(p, p0, p1, mcfg.pion_fake_low, mcfg.pion_fake_high),
        mcfg.pion_fake_low,
    )
    prob_mu = np.select(
        [is_mu, is_e, is_pi], [mu_eff, mcfg.electron_fake, pi_fake], pi_fake * mcfg.kaon_fake_scale
    )
    tracks.muon_id = _score(prob_mu, mcfg.score_spread, gen)
    # electron ID: E/p needs an ECL cluster
    e_eff = np.where(reaches_ecl[tracks.source], ecfg.efficiency, ecfg.efficiency_no_ecl)
    kaon_e = ecfg.pion_fake if ecfg.kaon_fake is None else ecfg.kaon_fake
    prob_e = np.select([is_e, is_mu, is_pi], [e_eff, ecfg.muon_fake, ecfg.pion_fake], kaon_e)
    tracks.electron_id = _score(prob_e, ecfg.score_spread, gen)


def _aux_rng(gen: np.random.Generator) -> np.random.Generator:
    """A second generator, seeded from a hash of ``gen``'s current state, which it leaves as is.

    The steps added for the tau-tau search (pion identification, three-track and single-muon
    lines) draw from it, so the random numbers of every earlier step, and everything the caller
    later draws from ``gen``, are those of the simulation without them.
    """
    state = repr(gen.bit_generator.state).encode()
    words = np.frombuffer(hashlib.sha256(b"zprime-aux:" + state).digest(), dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence([int(w) for w in words]))


def _klm_turn_on(tracks: _Tracks, mcfg: MuonIDConfig, low: float, high: float) -> np.ndarray:
    """``low`` below the KLM or outside it, ``high`` on its plateau, linear in p between
    (the muon identification's KLM model)."""
    in_klm = _in_range(tracks.theta, mcfg.klm_theta_deg) & (
        ~_in_range(tracks.theta, mcfg.klm_barrel_theta_deg)
        | (tracks.pt > mcfg.klm_barrel_pt_min_gev)
    )
    return np.where(
        in_klm, _linear_in_p(tracks.p, mcfg.klm_p_min_gev, mcfg.plateau_p_gev, low, high), low
    )


def _identify_pion(
    tracks: _Tracks,
    parts: _Particles,
    mcfg: MuonIDConfig,
    pcfg: PionIDConfig,
    aux: np.random.Generator,
) -> None:
    """Fill ``pion_id`` (score with P(score > 0.5) = pion efficiency or mis-identification).

    Pions and muons are separated by the KLM, so the pion efficiency and the muon -> pion rate
    follow the muon identification's KLM acceptance and turn-on; electrons and kaons (and
    protons) have flat rates. One normal number per candidate track, drawn from ``aux``.
    """
    apdg = parts.apdg[tracks.source]
    pi_eff = _klm_turn_on(tracks, mcfg, pcfg.efficiency_low, pcfg.efficiency_high)
    mu_fake = _klm_turn_on(tracks, mcfg, pcfg.muon_fake_low, pcfg.muon_fake_high)
    prob = np.select(
        [apdg == 211, apdg == 13, apdg == 11], [pi_eff, mu_fake, pcfg.electron_fake], pcfg.kaon_fake
    )
    tracks.pion_id = _score(prob, pcfg.score_spread, aux)


def _three_track_trigger(tracks: _Tracks, cfg: TriggerConfig, n: int, u: np.ndarray) -> np.ndarray:
    """The CDC three-track line (L1 ``fff``): at least ``three_track_min_tracks`` tracks with
    polar angle in ``three_track_theta_deg`` and pT above ``three_track_pt_min_gev``, then an
    efficiency ``three_track_efficiency`` applied with the per-event uniform numbers ``u``."""
    ok = _in_range(tracks.theta, cfg.three_track_theta_deg) & (
        tracks.pt > cfg.three_track_pt_min_gev
    )
    count = np.bincount(tracks.event[ok], minlength=n)
    return (count >= cfg.three_track_min_tracks) & (u < cfg.three_track_efficiency)


def _single_muon_trigger(
    tracks: _Tracks, parts: _Particles, cfg: TriggerConfig, n: int, u: np.ndarray
) -> np.ndarray:
    """The CDC-KLM single-muon line (L1 ``cdcklm``): some track in ``single_muon_theta_deg``
    with pT above ``single_muon_pt_min_gev`` and p above ``single_muon_p_min_gev`` that makes a
    matched KLM trigger track: with probability ``single_muon_efficiency`` for a muon,
    ``single_muon_hadron_probability`` for a charged hadron (punch-through, decay in flight),
    never for an electron; ``u`` holds one uniform number per track."""
    apdg = parts.apdg[tracks.source]
    prob = np.select(
        [apdg == 13, apdg == 11],
        [cfg.single_muon_efficiency, 0.0],
        cfg.single_muon_hadron_probability,
    )
    ok = (
        _in_range(tracks.theta, cfg.single_muon_theta_deg)
        & (tracks.pt > cfg.single_muon_pt_min_gev)
        & (tracks.p > cfg.single_muon_p_min_gev)
        & (u < prob)
    )
    return _any_per_event(tracks.event, ok, n)


def _clusters(
    parts: _Particles,
    region: np.ndarray,
    reaches_ecl: np.ndarray,
    tracked: np.ndarray,
    cfg: ECLConfig,
    gen: np.random.Generator,
) -> _Clusters:
    """ECL clusters of photons and charged particles, energies and directions smeared."""
    # photons, with the per-region, backward-barrel and 90-degree-gap losses
    ig = np.flatnonzero((parts.pdg == 22) & (region > 0))
    keep = np.choose(
        region[ig] - 1,
        [
            1.0 - cfg.inefficiency_forward,
            1.0 - cfg.inefficiency_barrel,
            1.0 - cfg.inefficiency_backward,
        ],
    )
    theta_g = parts.theta[ig]
    in_bwd_barrel = (region[ig] == 2) & _in_range(theta_g, cfg.backward_barrel_theta_deg)
    keep = keep * np.where(in_bwd_barrel, 1.0 - cfg.backward_barrel_extra_inefficiency, 1.0)
    keep = keep * np.where(
        _in_range(theta_g, cfg.gap90_theta_deg), 1.0 - cfg.gap90_inefficiency, 1.0
    )
    # the loss is applied after the smearing, so that every photon candidate draws the same
    # random numbers whatever the inefficiencies (see simulate)
    seen_g = gen.random(ig.size) < keep

    # charged particles: electrons shower, muons are MIPs, hadrons shower or are MIPs
    ic = np.flatnonzero(parts.charged & reaches_ecl)
    e_c = parts.e[ic]
    kin = np.maximum(e_c - np.sqrt(np.maximum(e_c**2 - parts.p[ic] ** 2, 0.0)), 0.0)
    mip = np.clip(cfg.mip_energy_gev + cfg.mip_spread_gev * gen.standard_normal(ic.size), 0, kin)
    showers = gen.random(ic.size) < cfg.hadron_interaction_probability
    hadron = np.where(showers, gen.random(ic.size) * kin, mip)
    apdg = parts.apdg[ic]
    dep_c = np.where(apdg == 11, e_c, np.where(apdg == 13, mip, hadron))

    src = np.concatenate([ig, ic])
    true_e = np.concatenate([parts.e[ig], dep_c])
    seen = np.concatenate([seen_g, np.ones(ic.size, dtype=bool)])
    # deposits below 1 keV form no cluster (the ECL's thresholds are MeV-scale; the photon
    # threshold is 100 MeV); keeping them let a/E overflow for ~1e-160 GeV deposits and gave
    # clusters of infinite energy
    nonzero = true_e > _MIN_DEPOSIT_GEV
    src, true_e, seen = src[nonzero], true_e[nonzero], seen[nonzero]
    # sigma_E/E = a/E (+) b/sqrt(E) (+) c [PB/TDR]; angles 4 mrad/sqrt(E) [PB]
    rel = np.sqrt(
        (cfg.energy_resolution_noise / true_e) ** 2
        + cfg.energy_resolution_stochastic**2 / true_e
        + cfg.energy_resolution_constant**2
    )
    e = np.maximum(true_e * (1.0 + rel * gen.standard_normal(src.size)), 0.0)
    sig_ang = cfg.angle_resolution_mrad * 1e-3 / np.sqrt(true_e)
    theta = np.clip(parts.theta[src] + sig_ang * gen.standard_normal(src.size), 0.0, np.pi)
    phi = parts.phi[src] + sig_ang * gen.standard_normal(src.size)
    src = src[seen]
    return _Clusters(
        source=src,
        event=parts.event_of[src],
        e=e[seen],
        theta=theta[seen],
        phi=phi[seen],
        region=region[src],
        matched=tracked[src],
    )


def _two_track_pair(tracks: _Tracks, period: np.ndarray, cfg: TriggerConfig, n: int) -> np.ndarray:
    """Some pair of tracks in the trigger polar-angle range with a large azimuthal opening."""
    sel = np.flatnonzero(_in_range(tracks.theta, cfg.track_theta_deg))  # grouped by event
    a, b = _pairs(tracks.event[sel], n)
    ia, ib = sel[a], sel[b]
    dphi = np.abs(np.mod(tracks.phi[ia] - tracks.phi[ib] + np.pi, 2.0 * np.pi) - np.pi)
    dphi_min = np.where(period == 2019, cfg.dphi_min_2019_deg, cfg.dphi_min_2020_deg) * _DEG
    ev = tracks.event[ia]
    return _any_per_event(ev, dphi > dphi_min[ev], n)


def _trigger_q(tracks: _Tracks, cfg: TriggerConfig, n: int) -> np.ndarray:
    """Trigger variable q = s - 2 sqrt(s) E*_trk of each event, GeV^2.

    E*_trk is the c.m. energy (muon mass hypothesis) of the tracks in the trigger polar-angle
    range; for two tracks q = M_recoil^2 - m_trk^2 (kinematics: M_recoil^2 = s + m^2 -
    2 sqrt(s) E*), so q <= M_recoil^2 and q -> M_recoil^2 when the pair mass is small.
    """
    sel = _in_range(tracks.theta, cfg.track_theta_deg)
    pt, theta, phi = tracks.pt[sel], tracks.theta[sel], tracks.phi[sel]
    p3 = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt / np.tan(theta)], axis=-1)
    e_cm = lab_to_cm(four_momentum(p3, M_MUON))[:, 0]
    e_trk = np.bincount(tracks.event[sel], weights=e_cm, minlength=n)
    return S - 2.0 * SQRT_S * e_trk


def two_track_efficiency(q: np.ndarray, cfg: TriggerConfig) -> np.ndarray:
    """Probability that the two-track line fires when its conditions hold.

    Linear in the trigger variable ``q`` (see :func:`trigger_variable`) between the two points
    ``cfg.two_track_q_gev2``, where it takes the values ``cfg.two_track_efficiency``, and
    constant outside; equal values give a flat efficiency.

    Parameters
    ----------
    q
        Trigger variable per event, GeV^2.
    cfg
        The trigger configuration.

    Returns
    -------
    numpy.ndarray
        Efficiencies in [0, 1], same shape as ``q``.
    """
    q0, q1 = cfg.two_track_q_gev2
    e0, e1 = cfg.two_track_efficiency
    return np.interp(np.asarray(q, dtype=np.float64), [q0, q1], [e0, e1])


def trigger_variable(tracks: ak.Array, config: TriggerConfig | None = None) -> np.ndarray:
    """The trigger variable q = s - 2 sqrt(s) E*_trk of reconstructed events, GeV^2.

    E*_trk is the summed c.m. energy (muon mass hypothesis) of the tracks with polar angle in
    ``config.track_theta_deg`` (the two-track trigger range, default [37, 120] deg [PRL]).
    For an event with two such tracks q = M_recoil^2 - m_trk^2, because M_recoil^2 = s + m^2 -
    2 sqrt(s) E*: q never exceeds M_recoil^2, equals it for a massless pair, and is at most
    (sqrt(s) - M_recoil)^2 below it. The trigger sees the track momenta, not M_recoil^2.

    Parameters
    ----------
    tracks
        ``var * {px, py, pz, ...}`` lab momenta (GeV).
    config
        The trigger configuration (default: that of the built-in "simulation").

    Returns
    -------
    numpy.ndarray
        q per event (s = 112.0 GeV^2 for an event without tracks in the range).
    """
    cfg = config if config is not None else _default_section().get("simulation").trigger
    counts = np.asarray(ak.to_numpy(ak.num(tracks, axis=1)), dtype=np.int64)
    px, py, pz = (
        np.asarray(ak.to_numpy(ak.flatten(tracks[f], axis=1)), dtype=np.float64)
        for f in ("px", "py", "pz")
    )
    pt = np.hypot(px, py)
    theta = np.arctan2(pt, pz)
    flat = _Tracks(
        source=np.zeros(pt.size, dtype=np.int64),
        event=np.repeat(np.arange(counts.size), counts),
        pt=pt,
        theta=theta,
        phi=np.arctan2(py, px),
        charge=np.zeros(pt.size, dtype=np.int32),
        d0=np.zeros(pt.size),
        z0=np.zeros(pt.size),
    )
    return _trigger_q(flat, cfg, counts.size)


def _bhabha_veto(cl: _Clusters, cfg: TriggerConfig, n: int) -> np.ndarray:
    """3D Bhabha veto [basf2-trg]: two energetic clusters back to back in the c.m. frame."""
    cos_t = np.cos(cl.theta)
    e_cm = GAMMA_BOOST * cl.e * (1.0 - BETA_BOOST * cos_t)
    theta_cm = np.arctan2(cl.e * np.sin(cl.theta), GAMMA_BOOST * cl.e * (cos_t - BETA_BOOST))
    energetic = np.flatnonzero(e_cm > cfg.bhabha_e_min_cm_gev)
    energetic = energetic[np.argsort(cl.event[energetic], kind="stable")]
    a, b = _pairs(cl.event[energetic], n)
    ia, ib = energetic[a], energetic[b]
    d = np.mod(cl.phi[ia] - cl.phi[ib], 2.0 * np.pi) / _DEG  # in [0, 360)
    lo_d, hi_d = cfg.bhabha_dphi_cm_deg
    phi_ok = ((d > lo_d) & (d < hi_d)) | ((360.0 - d > lo_d) & (360.0 - d < hi_d))
    tsum = (theta_cm[ia] + theta_cm[ib]) / _DEG
    lo_t, hi_t = cfg.bhabha_theta_sum_cm_deg
    ok = (
        phi_ok
        & (tsum > lo_t)
        & (tsum < hi_t)
        & (np.maximum(e_cm[ia], e_cm[ib]) > cfg.bhabha_e_max_cm_gev)
    )
    return _any_per_event(cl.event[ia], ok, n)


def simulate(
    events: ak.Array,
    detector: DetectorConfig | str | None = None,
    rng: np.random.Generator | None = None,
    *,
    config: Config | None = None,
    where: str = "events",
) -> ak.Array:
    """Simulate and reconstruct generator-level events (a pure function of its arguments).

    The random numbers are drawn for every candidate (charged particle in the tracking
    acceptance, photon in an ECL region) before efficiencies and losses are applied, and once
    per event for the trigger: configurations that differ only in efficiencies, resolutions,
    identification or trigger probabilities use the same random numbers for the same ``rng``
    (equal configurations give identical output). The pion identification and the three-track
    and single-muon lines draw from a generator derived from ``rng``'s state
    (:func:`_aux_rng`), so the other columns, and ``rng`` itself, are what they were before
    those steps existed.

    Parameters
    ----------
    events
        Generator-level events (``zprime.io.events`` schema: ``event``, ``weight``, ``particles``
        in the lab frame). Extra scalar columns (truth such as ``mass``) are passed through.
    detector
        A :class:`DetectorConfig`, or the name of a configuration in ``config`` (default: the
        configuration's ``detector.use``).
    rng
        Random generator (required for reproducible results; a fresh unseeded one otherwise).
    config
        Configuration that holds the named detectors (default: the built-in one).
    where
        Name used in error messages (a file name).

    Returns
    -------
    awkward.Array
        Reconstructed events in the schema of ``docs/event-schema.md``.

    Raises
    ------
    ConfigError
        Unknown detector name.
    InputError
        Missing column or NaN/infinite values in the input.
    """
    _, det = get_detector(detector, config)
    gen = rng if rng is not None else np.random.default_rng()
    aux = _aux_rng(gen)  # before any draw from gen: a function of the caller's rng state
    validate_generator_events(events, where)
    n = len(events)
    flat = _flat_particles(events, where)
    parts = _Particles(
        flat["pdg"], flat["e"], flat["px"], flat["py"], flat["pz"], flat["event_of"], n
    )

    candidates, found = _track(parts, det.tracking, gen)
    region = _ecl_region(parts.theta, det.ecl)
    # a charged particle reaches the barrel ECL only with pT > 0.28 GeV [basf2-acc]
    reaches_ecl = (region > 0) & ((region != 2) | (parts.pt > det.ecl.charged_barrel_pt_min_gev))
    _identify(candidates, parts, reaches_ecl, det.muon_id, det.electron_id, gen)
    tracks = candidates.subset(found)
    tracked = np.zeros(parts.pdg.size, dtype=bool)
    tracked[tracks.source] = True
    cl = _clusters(parts, region, reaches_ecl, tracked, det.ecl, gen)

    # ECL trigger: total energy in the forward endcap and the barrel [PRL]
    fwd_or_barrel = (cl.region == 1) | (cl.region == 2)
    ecl_energy = np.bincount(
        cl.event[fwd_or_barrel], weights=cl.e[fwd_or_barrel], minlength=n
    ).astype(np.float64)
    # two-track trigger with the Bhabha veto [PRL]; run period from the luminosity split
    trg = det.trigger
    period = np.where(gen.random(n) < trg.fraction_2019, 2019, 2020).astype(np.int32)
    pair_ok = _two_track_pair(tracks, period, trg, n)
    bhabha = _bhabha_veto(cl, trg, n)
    fires = gen.random(n) < two_track_efficiency(_trigger_q(tracks, trg, n), trg)

    # photons: clusters not matched to a track, above threshold [PRL]
    is_photon = (~cl.matched) & (cl.e > det.ecl.photon_e_min_gev)

    # tau-tau search [PRL 131, 121802]: pion ID and the three-track and single-muon lines, with
    # random numbers from aux (per candidate track, then per event), drawn whatever the
    # efficiencies
    _identify_pion(candidates, parts, det.muon_id, det.pion_id, aux)
    u_klm = aux.random(candidates.source.size)
    u_three = aux.random(n)
    tracks.pion_id = candidates.pion_id[found]
    three_track = _three_track_trigger(tracks, trg, n, u_three)
    single_muon = _single_muon_trigger(tracks, parts, trg, n, u_klm[found])

    return _assemble(
        events,
        parts,
        tracks,
        cl,
        is_photon,
        {
            "period": period,
            "trg_two_track": pair_ok & fires & ~bhabha,
            "trg_bhabha_veto": bhabha,
            "trg_ecl": ecl_energy > trg.ecl_energy_min_gev,
            "ecl_energy": ecl_energy,
            "trg_three_track": three_track,
            "trg_single_muon": single_muon,
        },
    )


def _assemble(
    events: ak.Array,
    parts: _Particles,
    tracks: _Tracks,
    cl: _Clusters,
    is_photon: np.ndarray,
    event_columns: dict[str, np.ndarray],
) -> ak.Array:
    """Reconstructed events: tracks by decreasing momentum, photons by decreasing energy."""
    n = parts.n_events
    t_p = tracks.p
    t_order = np.lexsort((-t_p, tracks.event))
    t_counts = np.bincount(tracks.event, minlength=n)
    sin_t = np.sin(tracks.theta)
    t_cols = {
        "charge": tracks.charge,
        "px": tracks.pt * np.cos(tracks.phi),
        "py": tracks.pt * np.sin(tracks.phi),
        "pz": tracks.pt * np.cos(tracks.theta) / sin_t,
        "muon_id": tracks.muon_id,
        "electron_id": tracks.electron_id,
        "d0": tracks.d0,
        "z0": tracks.z0,
        "true_pdg": parts.pdg[tracks.source].astype(np.int32),
    }
    if tracks.pion_id is not None:
        t_cols["pion_id"] = tracks.pion_id  # last: the earlier fields keep their positions
    t_cols = {k: np.asarray(v)[t_order] for k, v in t_cols.items()}

    g_event = cl.event[is_photon]
    g_e = cl.e[is_photon]
    g_order = np.lexsort((-g_e, g_event))
    g_counts = np.bincount(g_event, minlength=n)
    ge, gth, gph = g_e[g_order], cl.theta[is_photon][g_order], cl.phi[is_photon][g_order]
    sin_g = np.sin(gth)
    g_cols = {
        "e": ge,
        "px": ge * sin_g * np.cos(gph),
        "py": ge * sin_g * np.sin(gph),
        "pz": ge * np.cos(gth),
    }
    variables = _variables_from_flat(
        t_cols["px"],
        t_cols["py"],
        t_cols["pz"],
        t_counts,
        np.stack([g_cols[f] for f in PHOTON_FIELDS], axis=-1),
        g_counts,
    )
    # MC truth: M_recoil^2 from the generator four-momenta of the same two candidate tracks
    src_sorted = tracks.source[t_order]
    m2_true = np.full(n, np.nan)
    has_pair = t_counts >= 2
    first = (np.cumsum(t_counts) - t_counts)[has_pair]
    if first.size:
        i1, i2 = src_sorted[first], src_sorted[first + 1]
        t1 = np.stack([parts.e[i1], parts.px[i1], parts.py[i1], parts.pz[i1]], axis=-1)
        t2 = np.stack([parts.e[i2], parts.px[i2], parts.py[i2], parts.pz[i2]], axis=-1)
        m2_true[has_pair] = mass2(recoil(t1, t2))

    columns: dict[str, Any] = {
        "event": np.asarray(ak.to_numpy(events["event"]), dtype=np.int64),
        "weight": np.asarray(ak.to_numpy(events["weight"]), dtype=np.float64),
        **event_columns,
        "n_tracks": t_counts.astype(np.int32),
        "n_photons": g_counts.astype(np.int32),
        "tracks": _ragged(t_cols, t_counts),
        "photons": _ragged(g_cols, g_counts),
        **variables,
        "m_recoil2_true": m2_true.astype(VARIABLE_DTYPE),
    }
    for name in ak.fields(events):
        if name in columns or name == "particles":
            continue
        col = events[name]
        if col.ndim == 1 and not isinstance(col.layout, ak.contents.RecordArray):
            columns[name] = col
    return ak.zip(columns, depth_limit=1)


# ---------------------------------------------------------------------------------------------
# analysis variables from reconstructed objects


def _variables_from_flat(
    tpx: np.ndarray,
    tpy: np.ndarray,
    tpz: np.ndarray,
    t_counts: np.ndarray,
    photon_p4: np.ndarray,
    g_counts: np.ndarray,
) -> dict[str, np.ndarray]:
    """Analysis variables from flat track momenta (sorted by decreasing p in each event),
    computed in double precision and returned as :data:`VARIABLE_DTYPE`."""
    n = t_counts.size
    out = {name: np.full(n, np.nan) for name in PAIR_VARIABLES}
    has_pair = t_counts >= 2
    first = (np.cumsum(t_counts) - t_counts)[has_pair]
    rec = np.full((n, 4), np.nan)
    if first.size:
        second = first + 1
        p1 = four_momentum(np.stack([tpx[first], tpy[first], tpz[first]], axis=-1), M_MUON)
        p2 = four_momentum(np.stack([tpx[second], tpy[second], tpz[second]], axis=-1), M_MUON)
        for name, values in pair_variables(p1, p2).items():
            out[name][has_pair] = values
        rec[has_pair] = recoil(p1, p2)
    e_sum, min_angle = photon_recoil_variables(rec, photon_p4, g_counts)
    out["e_photons"] = e_sum
    out["min_angle_photon_recoil"] = min_angle
    return {name: value.astype(VARIABLE_DTYPE) for name, value in out.items()}


def analysis_variables(tracks: ak.Array, photons: ak.Array) -> dict[str, np.ndarray]:
    """Analysis variables of reconstructed events from their two muon candidates.

    The candidates are the two highest-momentum tracks (lab |p|) of each event, with the muon
    mass hypothesis; the selection later requires exactly two tracks, both identified as muons
    and of opposite charge, so the choice matters only for events that the selection rejects.

    Parameters
    ----------
    tracks
        ``var * {px, py, pz, ...}`` lab momenta (GeV), any order.
    photons
        ``var * {e, px, py, pz, ...}`` lab four-momenta (GeV).

    Returns
    -------
    dict
        Flat arrays named as in :data:`VARIABLE_COLUMNS`; NaN for events with fewer than two
        tracks (``e_photons`` is always defined).
    """
    t_counts = np.asarray(ak.to_numpy(ak.num(tracks, axis=1)), dtype=np.int64)
    tpx, tpy, tpz = (
        np.asarray(ak.to_numpy(ak.flatten(tracks[f], axis=1)), dtype=np.float64)
        for f in ("px", "py", "pz")
    )
    event_of = np.repeat(np.arange(t_counts.size), t_counts)
    order = np.lexsort((-(tpx**2 + tpy**2 + tpz**2), event_of))
    g_counts = np.asarray(ak.to_numpy(ak.num(photons, axis=1)), dtype=np.int64)
    photon_p4 = np.stack(
        [
            np.asarray(ak.to_numpy(ak.flatten(photons[f], axis=1)), dtype=np.float64)
            for f in PHOTON_FIELDS
        ],
        axis=-1,
    )
    return _variables_from_flat(
        tpx[order], tpy[order], tpz[order], t_counts, photon_p4.reshape(-1, 4), g_counts
    )


# ---------------------------------------------------------------------------------------------
# schema check


def validate_reco_events(
    events: ak.Array, where: str = "events", *, require_variables: bool = True
) -> None:
    """Check the reconstructed-event schema (``docs/event-schema.md``).

    The optional columns (:data:`OPTIONAL_RECO_COLUMNS`, :data:`OPTIONAL_TRACK_FIELDS`) are
    checked where present: the trigger lines must be boolean, ``pion_id`` finite.

    Parameters
    ----------
    events
        Reconstructed events.
    where
        Name used in error messages (a file name).
    require_variables
        Also require the analysis-variable columns (:data:`VARIABLE_COLUMNS`); they may be NaN
        only in events with fewer than two tracks.

    Raises
    ------
    InputError
        Naming the first missing column or the first column with NaN/infinite values.
    """
    fields = set(ak.fields(events))
    for col in RECO_COLUMNS:
        if col not in fields:
            raise InputError(f"{where}: missing column '{col}'")
    for col, sub in (("tracks", TRACK_FIELDS), ("photons", PHOTON_FIELDS)):
        have = set(ak.fields(events[col]))
        for f in sub:
            if f not in have:
                raise InputError(f"{where}: missing column '{col}.{f}'")
    if not np.all(np.isfinite(np.asarray(ak.to_numpy(events["weight"]), dtype=np.float64))):
        raise InputError(f"{where}: column 'weight' has NaN or infinite values")
    for col in OPTIONAL_RECO_COLUMNS:
        if col in fields and ak.to_numpy(events[col]).dtype != np.bool_:
            raise InputError(f"{where}: column '{col}' is not boolean")
    track_fields = set(ak.fields(events["tracks"]))
    optional = tuple(f for f in OPTIONAL_TRACK_FIELDS if f in track_fields)
    for col, sub in (
        ("tracks", ("px", "py", "pz", "muon_id", "electron_id", "d0", "z0", *optional)),
        ("photons", PHOTON_FIELDS),
    ):
        for f in sub:
            flat = np.asarray(ak.to_numpy(ak.flatten(events[col][f], axis=1)), dtype=np.float64)
            if not np.all(np.isfinite(flat)):
                raise InputError(f"{where}: column '{col}.{f}' has NaN or infinite values")
    if not require_variables:
        return
    n_tracks = np.asarray(ak.to_numpy(ak.num(events["tracks"], axis=1)))
    defined = n_tracks >= 2
    for col in VARIABLE_COLUMNS:
        if col not in fields:
            raise InputError(f"{where}: missing column '{col}'")
        values = np.asarray(ak.to_numpy(events[col]), dtype=np.float64)
        if np.isinf(values).any() or np.isnan(values[defined]).any():
            raise InputError(f"{where}: column '{col}' has NaN or infinite values")


# ---------------------------------------------------------------------------------------------
# files


@dataclass(frozen=True)
class RecoSkim:
    """Reconstructed events an analysis can never select, dropped as they are simulated: fewer
    than ``min_tracks`` or more than ``max_tracks`` tracks, or none of ``triggers`` fired (no
    trigger requirement when empty). The analysis defines it from its own selection
    (``Analysis.data_skim``), so the selected events are the same with or without it."""

    min_tracks: int = 0
    max_tracks: int | None = None
    triggers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.min_tracks < 0 or (
            self.max_tracks is not None and self.max_tracks < self.min_tracks
        ):
            raise ConfigError(
                f"reco skim: tracks {self.min_tracks}-{self.max_tracks} is not a range >= 0"
            )

    def mask(self, reco: ak.Array) -> np.ndarray:
        """The events kept."""
        n = np.asarray(ak.to_numpy(reco["n_tracks"]))
        keep = n >= self.min_tracks
        if self.max_tracks is not None:
            keep &= n <= self.max_tracks
        if self.triggers:
            fired = np.zeros(len(reco), dtype=bool)
            for t in self.triggers:
                if t not in ak.fields(reco):
                    raise InputError(f"reco skim: missing trigger column '{t}'")
                fired |= np.asarray(ak.to_numpy(reco[t]), dtype=bool)
            keep &= fired
        return keep

    def params(self) -> dict[str, Any]:
        """The skim as plain data (cache keys, metadata)."""
        return {
            "min_tracks": self.min_tracks,
            "max_tracks": self.max_tracks,
            "triggers": list(self.triggers),
        }


def simulate_file(
    input_path: str | Path,
    out_dir: str | Path,
    *,
    detector: DetectorConfig | str | None = None,
    seed: int | None = None,
    config: Config | None = None,
    batch_size: int = 200_000,
    min_tracks: int = 0,
    skim: RecoSkim | None = None,
    unweight_fb: float | None = None,
    unweight_rng: np.random.Generator | None = None,
    max_copies: int = 1,
) -> Path:
    """Simulate one generator-level Parquet file into ``out_dir/<same name>`` (streamed).

    The input is read in batches of ``batch_size`` events and every batch is written as one row
    group, so memory stays flat whatever the file size. The output appears only on success.
    Batch ``i`` uses ``chunk_rng(seed, 4, crc32(file name), i)``: the result depends on the
    seed, the file name and the batch size, not on the order in which files are processed.

    Parameters
    ----------
    input_path
        Generator-level events (``zprime.io.events`` schema).
    out_dir
        Output directory (created if needed), e.g. ``<run>/reco``.
    detector
        Name of a configuration in ``config.detector.configurations`` (default
        ``config.detector.use``) or a :class:`DetectorConfig`.
    seed
        Master seed (default ``config.seed``).
    config
        The run configuration (default: the built-in one).
    batch_size
        Events per batch.
    min_tracks
        Drop events with fewer reconstructed tracks (0 keeps every event; the selection needs
        2). The metadata record ``n_input_events`` and ``min_tracks`` so that a cut flow can
        still start from the generated total.
    skim
        Drop the events outside this skim as well (recorded as ``skim`` in the metadata).
    unweight_fb, unweight_rng, max_copies
        Unweight every input batch to ``unweight_fb`` first, in memory
        (:func:`zprime.io.unweighting.unweight_batch`, the rule of
        :func:`zprime.io.events.unweight_file`), each copy of a heavy event simulated with its
        own random numbers: the pseudo-data of a sample generated below the luminosity,
        without writing its copies to disk. ``n_input_events`` then counts the copies.
    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ConfigError
        Unknown detector name, bad batch size, or an output path equal to the input.
    InputError
        Missing or corrupt input, missing column, NaN values.
    """
    cfg = config or default_config()
    name, det = get_detector(detector, cfg)
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if min_tracks < 0:
        raise ConfigError(f"min_tracks must be >= 0, got {min_tracks}")
    src = Path(input_path)
    out = Path(out_dir) / src.name
    if out.resolve() == src.resolve():
        raise ConfigError(f"{out}: output would overwrite the input file")
    master = cfg.seed if seed is None else int(seed)
    file_key = zlib.crc32(src.name.encode())
    meta_in = read_metadata(src)
    metadata = {
        **meta_in,
        "stage": "reco",
        "reco_schema_version": RECO_SCHEMA_VERSION,
        "input": str(src),
        "detector": name,
        "detector_config": det.model_dump(mode="json"),
        "seed": master,
        "batch_size": batch_size,
        "min_tracks": min_tracks,
        "provenance": provenance(None),
    }
    if skim is not None:
        metadata["skim"] = skim.params()
    if unweight_fb is not None:
        if unweight_rng is None:
            raise ConfigError("simulate_file: unweight_fb needs unweight_rng")
        metadata.update(unweighted_to_fb=unweight_fb, unweighted_max_copies=max_copies)
    n_input = 0
    i = 0
    with EventWriter(out, metadata) as writer:
        for batch in iter_events(src, batch_size=batch_size):
            if unweight_fb is not None:
                batch = unweight_batch(batch, unweight_fb, unweight_rng, max_copies)
            # the copies of heavy events can make a batch larger than batch_size
            for start in range(0, max(len(batch), 1), batch_size):
                part = batch[start : start + batch_size]
                rng = chunk_rng(master, _STAGE_KEY, file_key, i)
                i += 1
                reco = simulate(part, det, rng, where=str(src))
                n_input += len(part)
                if min_tracks > 0:
                    reco = reco[np.asarray(ak.to_numpy(reco["n_tracks"])) >= min_tracks]
                if skim is not None:
                    reco = reco[skim.mask(reco)]
                writer.write(reco)
        writer.update_metadata(n_input_events=n_input, n_events=writer.n_events)
    return out


# ---------------------------------------------------------------------------------------------
# validation: the signal M_recoil^2 resolution


def resolution_preselection(reco: ak.Array) -> np.ndarray:
    """Events used for the resolution check: exactly two tracks of opposite charge, both with
    pT > 0.4 GeV and polar angle in [37, 120] deg (the PRL's track and trigger requirements;
    no particle identification or other cuts)."""
    tr = reco["tracks"]
    pt = np.hypot(tr["px"], tr["py"])
    theta = np.arctan2(pt, tr["pz"])
    ok = (
        (ak.num(tr, axis=1) == 2)
        & (ak.sum(tr["charge"], axis=1) == 0)
        & ak.all(pt > 0.4, axis=1)
        & ak.all((theta > 37.0 * _DEG) & (theta < 120.0 * _DEG), axis=1)
    )
    return np.asarray(ak.to_numpy(ok), dtype=bool)


def m_recoil2_resolution(reco: ak.Array, mask: np.ndarray | None = None) -> float:
    """Detector resolution on M_recoil^2 from simulated events, GeV^2.

    The estimator is the 68% half-width (half the distance between the 15.87% and 84.13%
    quantiles) of ``m_recoil2 - m_recoil2_true``, the reconstructed value minus the value from
    the generator four-momenta of the same two tracks. ISR photons are part of the recoil in
    both terms, so the difference is the detector resolution alone.
    """
    d = np.asarray(ak.to_numpy(reco["m_recoil2"]) - ak.to_numpy(reco["m_recoil2_true"]))
    if mask is not None:
        d = d[mask]
    d = d[np.isfinite(d)]
    if d.size < 10:
        raise InputError("too few events with two tracks to estimate the resolution")
    lo, hi = np.percentile(d, [15.865, 84.135])
    return float(0.5 * (hi - lo))


def signal_resolution(
    masses: Any,
    n_events: int = 50_000,
    *,
    seed: int = 1,
    detector: DetectorConfig | str | None = None,
    config: Config | None = None,
) -> list[dict[str, float]]:
    """Signal M_recoil^2 resolution from the full chain (zprime.generators.signal with ISR, then
    this
    simulation) at each Z' mass.

    Returns one row per mass: ``mass_gev``, ``m2_gev2``, ``sigma68_gev2`` (see
    :func:`m_recoil2_resolution`), ``fwhm_gev2`` (FWHM / 2.355 of the reconstructed M^2 peak,
    which includes the ISR smearing of the peak), ``preselection_efficiency`` and ``n``.
    """
    rows = []
    for i, mass in enumerate(np.atleast_1d(np.asarray(masses, dtype=float))):
        sample = generate_signal(float(mass), n_events, chunk_rng(seed, _STAGE_KEY, 1000, i))
        reco = simulate(
            sample.events, detector, chunk_rng(seed, _STAGE_KEY, 2000, i), config=config
        )
        ok = resolution_preselection(reco)
        sigma = m_recoil2_resolution(reco, ok)
        m2 = np.asarray(ak.to_numpy(reco["m_recoil2"]))[ok]
        edges = np.linspace(mass**2 - 8 * sigma, mass**2 + 8 * sigma, 321)
        h = gaussian_filter1d(np.histogram(m2, bins=edges)[0].astype(float), 2.0)
        centres = 0.5 * (edges[1:] + edges[:-1])
        above = centres[h >= 0.5 * h.max()]
        rows.append(
            {
                "mass_gev": float(mass),
                "m2_gev2": float(mass**2),
                "sigma68_gev2": sigma,
                "fwhm_gev2": float((above.max() - above.min()) / 2.3548),
                "preselection_efficiency": float(ok.mean()),
                "n": int(ok.sum()),
            }
        )
    return rows
