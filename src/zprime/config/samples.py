"""Configuration of what the engine reads: the signal, the background samples, the detector.

Owns the ``signal`` section (:class:`SignalConfig`, read by :mod:`zprime.generators.signal`), the
``backgrounds`` section (:class:`BackgroundsConfig`, :mod:`zprime.generators.backgrounds`) and the
``detector`` section (:class:`DetectorSection`, defined in :mod:`zprime.config.detector` and
re-exported here), with the kinematic limit of the Z' mass that bounds the signal masses.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from particle import Particle
from pydantic import Field, field_validator

from zprime.config.base import _check_range, _Strict

__all__ = [
    "BackgroundSampleConfig",
    "BackgroundsConfig",
    "DetectorConfig",
    "DetectorSection",
    "ECLConfig",
    "ElectronIDConfig",
    "GeneratorFilterConfig",
    "MuonIDConfig",
    "PionIDConfig",
    "SignalConfig",
    "TrackingConfig",
    "TriggerConfig",
    "XsecGridConfig",
]

# the detector section lives in zprime.config.detector; re-exported for the importers of this
# module
from zprime.config.detector import (
    DetectorConfig,
    DetectorSection,
    ECLConfig,
    ElectronIDConfig,
    MuonIDConfig,
    PionIDConfig,
    TrackingConfig,
    TriggerConfig,
)


@functools.cache
def _z_mass_max_gev() -> float:
    """The kinematic limit of the Z' mass, sqrt(s) - 2 m_mu in GeV (the mass must be below it).

    Computed exactly as ``SQRT_S - 2.0 * M_MUON`` of :mod:`zprime.physics.constants` (head-on
    7 + 4 GeV beams, the PDG muon mass through ``particle``), because the base layer may not
    import the physics layer; ``tests/test_config.py`` checks that the two agree bit for bit.
    """
    sqrt_s = 2.0 * math.sqrt(7.0 * 4.0)
    m_muon = float(Particle.from_pdgid(13).mass) / 1000.0  # particle gives MeV
    return sqrt_s - 2.0 * m_muon


class XsecGridConfig(_Strict):
    """Mass grid of the cached signal cross-section table (``zprime xsec --grid``)."""

    min_gev: float = Field(0.01, gt=0.0, description="lowest Z' mass of the table, GeV")
    max_gev: float = Field(9.0, gt=0.0, lt=10.3, description="highest Z' mass of the table, GeV")
    points_per_decade_below_1gev: int = Field(
        20, ge=2, le=200, description="log-spaced points per decade below 1 GeV"
    )
    step_above_1gev: float = Field(
        0.1, gt=0.0, le=1.0, description="linear step of the grid above 1 GeV, GeV"
    )
    rel_precision: float = Field(
        0.005, gt=0.0, le=0.05, description="target relative MC uncertainty per point"
    )


class SignalConfig(_Strict):
    """The e+e- -> mu+ mu- Z' signal: matrix element, ISR and sample sizes."""

    isr: bool = Field(True, description="convolve with the electron structure function")
    alpha_inverse: float = Field(
        132.507,
        ge=120.0,
        le=140.0,
        description="1/alpha used for the e+e- -> gamma* vertex and the photon-muon vertex "
        "(default: MadGraph5 SM parameter card, the PRL's generator)",
    )
    masses_gev: list[float] = Field(
        default_factory=lambda: [
            0.01,
            0.1,
            0.2,
            0.35,
            0.5,
            0.75,
            1.0,
            1.5,
            2.0,
            2.5,
            3.0,
            3.5,
            4.0,
            4.5,
            5.0,
            5.5,
            6.0,
            6.5,
            7.0,
            7.5,
            8.0,
            8.5,
        ],
        min_length=1,
        description="Z' masses at which signal samples are generated, GeV",
    )
    events_per_mass: int = Field(20000, gt=0, description="unweighted events per mass point")
    xsec_grid: XsecGridConfig = Field(default_factory=XsecGridConfig)

    @field_validator("masses_gev")
    @classmethod
    def _masses_in_range(cls, masses: list[float]) -> list[float]:
        upper = _z_mass_max_gev()
        for m in masses:
            if not 0.0 < m < upper:
                raise ValueError(f"Z' mass {m} GeV outside (0, {upper:.4f}) GeV")
        return sorted(masses)


# --- backgrounds section (issue 4: zprime.generators.backgrounds) ---
# Standard Model background samples (zprime.generators.backgrounds; settings, sources and rates in
# docs/backgrounds.md). Pythia 8 settings follow shared/notes/generators-and-detector.md section 1.


class GeneratorFilterConfig(_Strict):
    """Generator-level filter: keep events with enough charged tracks in the CDC acceptance.

    Default: at least two charged final-state particles with pT > 0.3 GeV and a lab polar angle
    in 17-150 deg, the CDC acceptance (basf2 ``thetaInCDCAcceptance``). This is looser than the
    analysis selection (two muons with pT > 0.4 GeV, trigger tracks in 37-120 deg; PRL 130,
    231801) and than the control samples, which need two tracks too. A four-track filter
    (``serves: four_track``, the tau-tau search) is described in :mod:`zprime.generators.filters`.
    """

    enabled: bool = Field(True, description="apply the filter (off: keep every event)")
    serves: str = Field(
        "two_track",
        pattern=r"^(two_track|four_track)$",
        description="the selection the filter must be looser than: two_track (the invisible-Z' "
        "and two-track control selections) or four_track (the tau-tau resonance search: exactly "
        "four tracks, checked against the detector's track finding)",
    )
    min_tracks: int = Field(2, ge=0, le=10, description="charged particles required")
    max_tracks: int | None = Field(
        None,
        ge=0,
        description="at most this many good prongs (four-track filter: events with more reach "
        "exactly four found tracks only by losing tracks); null: no cut",
    )
    min_tracks_per_charge: int | None = Field(
        None,
        ge=0,
        le=5,
        description="at least this many good prongs of each charge sign; null: no cut",
    )
    track_pt_min_gev: float = Field(0.3, ge=0.0, description="transverse momentum, GeV")
    theta_min_deg: float = Field(17.0, ge=0.0, lt=180.0, description="lab polar angle, deg")
    theta_max_deg: float = Field(
        150.0, gt=0.0, le=180.0, validate_default=True, description="lab polar angle, deg"
    )

    prong_theta_deg: tuple[float, float] | None = Field(
        None,
        description="lab polar-angle range both good prongs of a two-prong event must lie in, "
        "deg (the two-track trigger: 37-120 deg); null: no cut",
    )
    recoil_pt_cm_min_gev: float | None = Field(
        None,
        ge=0.0,
        description="c.m. transverse momentum of the recoil against the two good prongs, GeV "
        "(the selection: 0.5 GeV); null: no cut",
    )
    recoil_theta_max_deg: float | None = Field(
        None,
        gt=0.0,
        le=180.0,
        description="largest lab polar angle of that recoil, deg (the selection: 123 deg); null: "
        "no cut",
    )

    @field_validator("theta_max_deg")
    @classmethod
    def _theta_ordered(cls, value: float, info: Any) -> float:
        low = info.data.get("theta_min_deg")
        if low is not None and value <= low:
            raise ValueError(f"theta_max_deg {value} must be above theta_min_deg {low}")
        return value

    @field_validator("max_tracks")
    @classmethod
    def _max_above_min(cls, value: int | None, info: Any) -> int | None:
        low = info.data.get("min_tracks")
        if value is not None and low is not None and value < low:
            raise ValueError(f"max_tracks {value} must not be below min_tracks {low}")
        return value

    @field_validator("prong_theta_deg")
    @classmethod
    def _prong_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None:
            _check_range(value)
            if value[0] < 0.0 or value[1] > 180.0:
                raise ValueError(f"angles must lie in [0, 180] deg, got {list(value)}")
        return value


class BackgroundSampleConfig(_Strict):
    """One background sample: generator, process settings, normalisation, filter, sizes."""

    description: str = Field("", description="what the sample is")
    generator: str = Field(
        "zprime.generators.backgrounds:chunk",
        pattern=r"^([A-Za-z_][\w.]*:[A-Za-z_]\w*|[a-z][a-z0-9_]*)$",
        description="chunk function 'module:function' with the zprime.generators.backgrounds chunk "
        "interface, or a short name: pythia, tautau, mumu "
        "(zprime.generators.backgrounds.GENERATORS)",
    )
    pythia: list[str] = Field(
        default_factory=list,
        description="Pythia readString lines of the process (added to the beam block)",
    )
    pythia_forced: dict[str, float] = Field(
        default_factory=dict,
        description="Pythia parameters set with Settings::parm(key, value, force=True), e.g. "
        "below their database minimum",
    )
    tau_channels: list[list[int]] = Field(
        default_factory=list,
        description="forced tau- decay channels (products, e.g. [16, 13, -14]); the events are "
        "weighted by the product of the open branching fractions read from Pythia; empty: all",
    )
    normalisation: str = Field(
        "reference",
        pattern=r"^(reference|generator)$",
        description="'reference': scale to xsec_ref_fb; 'generator': the generator's own sigma",
    )
    xsec_ref_fb: float | None = Field(
        None, gt=0.0, validate_default=True, description="reference cross section, fb"
    )
    xsec_source: str = Field("", description="source of the reference cross section")
    filter: GeneratorFilterConfig = Field(default_factory=GeneratorFilterConfig)
    events: int = Field(
        100_000,
        gt=0,
        description="generated events in the default run (unless luminosity_factor is set)",
    )
    luminosity_factor: float | None = Field(
        None,
        gt=0.0,
        description="the sample stands for this many times the data luminosity (luminosity_fb): "
        "the number of generated events follows from the generator's cross section; null: use "
        "'events'",
    )
    chunk_size: int = Field(200_000, gt=0, le=10_000_000, description="events per chunk")
    options: dict[str, Any] = Field(
        default_factory=dict, description="generator-specific options passed to the chunk"
    )

    @field_validator("tau_channels")
    @classmethod
    def _channels_nonempty(cls, value: list[list[int]]) -> list[list[int]]:
        for channel in value:
            if not channel:
                raise ValueError("a forced tau channel needs at least one decay product")
        return value

    @field_validator("xsec_ref_fb")
    @classmethod
    def _reference_given(cls, value: float | None, info: Any) -> float | None:
        if info.data.get("normalisation") == "reference" and value is None:
            raise ValueError("normalisation 'reference' needs xsec_ref_fb")
        return value


class BackgroundsConfig(_Strict):
    """The background samples by name (``zprime generate background --sample NAME``)."""

    samples: dict[str, BackgroundSampleConfig] = Field(default_factory=dict)
    default_run: list[str] = Field(
        default_factory=list, description="samples generated by the default end-to-end run"
    )

    @field_validator("default_run")
    @classmethod
    def _known_samples(cls, value: list[str], info: Any) -> list[str]:
        if "samples" not in info.data:  # the samples failed validation: reported already
            return value
        known = info.data["samples"]
        for name in value:
            if name not in known:
                raise ValueError(f"unknown background sample '{name}'")
        return value


# --- detector section (issue 4: zprime.detector.simulation) ---
# Parameters of the fast Belle II simulation (zprime.detector.simulation). Every default is the
# nominal
# "simulation" configuration; docs/detector.md gives the source of each number, and which ones are
# model assumptions. Sources: [PRL] PRL 130, 231801 (2023); [basf2-acc] basf2
# analysis/variables/src/AcceptanceVariables.cc; [basf2-trg] basf2 trg/ecl/src/TrgEclBhabha.cc;
# [TDR] arXiv:1011.0352; [PB] arXiv:1808.10567; [DH] Belle II dark Higgsstrahlung search,
# PRL 130, 071804 (2023) (8.34 fb^-1 of 2019 data); [TT] Belle II tau-tau resonance search,
# PRL 131, 121802 (2023), arXiv:2306.12294, and the 2022 dark-sector talk (triggers: "3-track or
# single muon trigger", "drift chamber + muon detector"); [basf2-grl] basf2
# trg/grl/modules/trggrl/TRGGRLProjectsModule.cc (the L1 bits fff, cdcklm); [TRG-DNN]
# arXiv:2510.02762 (CDC track-trigger efficiency for tracks with pT > 0.3 GeV).
