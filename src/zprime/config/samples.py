"""Configuration of what the engine reads: the signal, the background samples, the detector.

Owns the ``signal`` section (:class:`SignalConfig`, read by :mod:`zprime.generators.signal`), the
``backgrounds`` section (:class:`BackgroundsConfig`, :mod:`zprime.generators.backgrounds`) and the
``detector`` section (:class:`DetectorSection`, :mod:`zprime.detector.simulation`), with the
kinematic limit of the Z' mass that bounds the signal masses.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from particle import Particle
from pydantic import Field, field_validator

from zprime.config.base import DegRange, _check_range, _deep_merge, _Strict
from zprime.errors import ConfigError

__all__ = [
    "BackgroundSampleConfig",
    "BackgroundsConfig",
    "DetectorConfig",
    "DetectorSection",
    "ECLConfig",
    "ElectronIDConfig",
    "GeneratorFilterConfig",
    "MuonIDConfig",
    "SignalConfig",
    "TrackingConfig",
    "TriggerConfig",
    "XsecGridConfig",
]


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
    231801) and than the control samples, which need two tracks too.
    """

    enabled: bool = Field(True, description="apply the filter (off: keep every event)")
    min_tracks: int = Field(2, ge=0, le=10, description="charged particles required")
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
# PRL 130, 071804 (2023) (8.34 fb^-1 of 2019 data).


class TrackingConfig(_Strict):
    """Charged-particle tracking: acceptance, efficiency, momentum and angle resolution."""

    theta_deg: DegRange = Field(
        (17.0, 150.0), description="lab polar-angle acceptance of the CDC, deg [basf2-acc]"
    )
    pt_min_gev: float = Field(
        0.1, ge=0.0, description="smallest transverse momentum of a found track, GeV (assumption)"
    )
    efficiency: float = Field(
        0.99, ge=0.0, le=1.0, description="track-finding efficiency in the acceptance (assumption)"
    )
    pt_resolution_pt: float = Field(
        0.0011, ge=0.0, description="sigma(pT)/pT term proportional to pT, 1/GeV [TDR]"
    )
    pt_resolution_beta: float = Field(
        0.0025, ge=0.0, description="sigma(pT)/pT multiple-scattering term, times 1/beta [TDR]"
    )
    theta_resolution_mrad: float = Field(
        1.0, ge=0.0, description="polar-angle resolution, mrad (assumption)"
    )
    phi_resolution_mrad: float = Field(
        1.0, ge=0.0, description="azimuthal-angle resolution, mrad (assumption)"
    )
    resolution_scale: float = Field(
        1.0,
        gt=0.0,
        description="factor on the pT, theta and phi resolutions; the M_recoil^2 detector "
        "resolution scales 1:1 with it (measured 1.080 for 1.08 at M = 0.5-8.9 GeV). "
        "Data: 1.08, 'the width of the M_recoil^2 distribution is 8% larger in data' [PRL]",
    )
    d0_resolution_cm: float = Field(
        0.002,
        ge=0.0,
        description="Gaussian width of the transverse impact parameter, cm "
        "(assumption; prompt tracks)",
    )
    z0_resolution_cm: float = Field(
        0.003,
        ge=0.0,
        description="Gaussian width of the longitudinal impact parameter, cm "
        "(assumption; prompt tracks)",
    )

    @field_validator("theta_deg")
    @classmethod
    def _increasing(cls, value: DegRange) -> DegRange:
        return _check_range(value)


class MuonIDConfig(_Strict):
    """Parametrised muon identification: P(muon_id > 0.5) per true species (model assumption
    anchored on the PRL's end points 93-99% muon efficiency, 80-97% pion rejection)."""

    klm_theta_deg: DegRange = Field(
        (18.0, 155.0), description="KLM polar-angle acceptance, deg [basf2-acc]"
    )
    klm_barrel_theta_deg: DegRange = Field(
        (37.0, 130.0), description="barrel KLM polar-angle range, deg [basf2-acc]"
    )
    klm_barrel_pt_min_gev: float = Field(
        0.6, ge=0.0, description="pT needed to reach the barrel KLM, GeV [basf2-acc]"
    )
    klm_p_min_gev: float = Field(
        0.7, ge=0.0, description="momentum above which KLM penetration is used, GeV [PRL]"
    )
    plateau_p_gev: float = Field(
        1.5,
        gt=0.0,
        description="momentum where the KLM performance plateau is reached, GeV "
        "(assumption; linear in p between klm_p_min_gev and this; data: 1.8, a slower "
        "turn-on, assumption)",
    )
    muon_efficiency_low: float = Field(
        0.93, ge=0.0, le=1.0, description="muon efficiency without KLM (low p / outside KLM) [PRL]"
    )
    muon_efficiency_high: float = Field(
        0.99,
        ge=0.0,
        le=1.0,
        description="muon efficiency on the KLM plateau [PRL] (data: 0.985, assumption)",
    )
    pion_fake_low: float = Field(
        0.20, ge=0.0, le=1.0, description="pion -> muon fake rate without KLM [PRL]"
    )
    pion_fake_high: float = Field(
        0.03, ge=0.0, le=1.0, description="pion -> muon fake rate on the KLM plateau [PRL]"
    )
    electron_fake: float = Field(
        0.002, ge=0.0, le=1.0, description="electron -> muon fake rate (assumption)"
    )
    score_spread: float = Field(
        2.0,
        gt=0.0,
        description="width of the latent Gaussian behind the score (shape only; "
        "the efficiency at the 0.5 cut does not depend on it)",
    )

    @field_validator("klm_theta_deg", "klm_barrel_theta_deg")
    @classmethod
    def _increasing(cls, value: DegRange) -> DegRange:
        return _check_range(value)


class ElectronIDConfig(_Strict):
    """Parametrised electron identification (ECL E/p based; model assumption)."""

    efficiency: float = Field(
        0.95, ge=0.0, le=1.0, description="electron efficiency with an ECL cluster (assumption)"
    )
    efficiency_no_ecl: float = Field(
        0.50, ge=0.0, le=1.0, description="electron efficiency without an ECL cluster (assumption)"
    )
    muon_fake: float = Field(
        0.005, ge=0.0, le=1.0, description="muon -> electron fake rate (assumption)"
    )
    pion_fake: float = Field(
        0.01, ge=0.0, le=1.0, description="pion -> electron fake rate (assumption)"
    )
    score_spread: float = Field(2.0, gt=0.0, description="latent Gaussian width (shape only)")


class ECLConfig(_Strict):
    """Electromagnetic calorimeter: acceptance, clusters, resolution, photon inefficiencies."""

    forward_theta_deg: DegRange = Field((12.4, 31.4), description="forward endcap, deg [basf2-acc]")
    barrel_theta_deg: DegRange = Field((32.2, 128.7), description="barrel, deg [basf2-acc]")
    backward_theta_deg: DegRange = Field(
        (130.7, 155.1), description="backward endcap, deg [basf2-acc]"
    )
    photon_e_min_gev: float = Field(
        0.1, ge=0.0, description="photon = cluster above this energy not matched to a track [PRL]"
    )
    energy_resolution_noise: float = Field(
        0.00515,
        ge=0.0,
        description="sigma_E/E term a/E, GeV (fit through [PB]/[TDR] "
        "7.7% at 0.1 GeV and 2.25% at 1 GeV with c = 1.3%)",
    )
    energy_resolution_stochastic: float = Field(
        0.0176, ge=0.0, description="sigma_E/E term b/sqrt(E), GeV^0.5 (same fit)"
    )
    energy_resolution_constant: float = Field(
        0.013, ge=0.0, description="sigma_E/E constant term (Belle CsI(Tl), recall)"
    )
    angle_resolution_mrad: float = Field(
        4.0,
        ge=0.0,
        description="cluster theta and phi resolution at 1 GeV, mrad, "
        "scaling as 1/sqrt(E) ([PB] ~5 mm at 1 GeV, recall)",
    )
    inefficiency_forward: float = Field(
        0.0, ge=0.0, le=1.0, description="photon loss probability in the forward endcap"
    )
    inefficiency_barrel: float = Field(
        0.0, ge=0.0, le=1.0, description="photon loss probability in the barrel"
    )
    inefficiency_backward: float = Field(
        0.0, ge=0.0, le=1.0, description="photon loss probability in the backward endcap"
    )
    backward_barrel_theta_deg: DegRange = Field(
        (90.0, 128.7), description="definition of the backward barrel, deg (assumption)"
    )
    backward_barrel_extra_inefficiency: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="extra photon loss probability in the backward barrel "
        "(0 in simulation; data: 0.02, an assumption: the PRL says only that it is larger "
        "in data)",
    )
    gap90_theta_deg: DegRange = Field(
        (89.965, 90.035),
        description="1.5 mm gap at theta = 90 deg seen from the IP at the "
        "barrel radius 1.25 m, deg ([PRL] gap width; [TDR] radius)",
    )
    gap90_inefficiency: float = Field(
        0.5, ge=0.0, le=1.0, description="photon loss probability in the 90 deg gap (assumption)"
    )
    charged_barrel_pt_min_gev: float = Field(
        0.28,
        ge=0.0,
        description="pT a charged particle needs to reach the barrel ECL, GeV [basf2-acc]",
    )
    mip_energy_gev: float = Field(
        0.2, ge=0.0, description="mean ECL deposit of a minimum-ionising track, GeV (assumption)"
    )
    mip_spread_gev: float = Field(
        0.03, ge=0.0, description="Gaussian spread of the MIP deposit, GeV (assumption)"
    )
    hadron_interaction_probability: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="probability that a charged hadron showers in the ECL "
        "(assumption; ~0.8 interaction lengths of CsI)",
    )

    @field_validator(
        "forward_theta_deg",
        "barrel_theta_deg",
        "backward_theta_deg",
        "backward_barrel_theta_deg",
        "gap90_theta_deg",
    )
    @classmethod
    def _increasing(cls, value: DegRange) -> DegRange:
        return _check_range(value)


class TriggerConfig(_Strict):
    """Level-1 trigger: two-track line with Bhabha veto, ECL energy line, run periods."""

    track_theta_deg: DegRange = Field(
        (37.0, 120.0), description="polar-angle range of two-track-trigger tracks, deg [PRL]"
    )
    dphi_min_2019_deg: float = Field(
        90.0, ge=0.0, le=180.0, description="azimuthal opening of the pair, 2019 data, deg [PRL]"
    )
    dphi_min_2020_deg: float = Field(
        30.0, ge=0.0, le=180.0, description="azimuthal opening of the pair, 2020 data, deg [PRL]"
    )
    fraction_2019: float = Field(
        0.1046,
        ge=0.0,
        le=1.0,
        description="fraction of the luminosity taken in 2019: 8.34 / 79.7 "
        "([DH] 2019 sample; assumption that it is the 2019 part of the PRL's data)",
    )
    two_track_efficiency: tuple[float, float] = Field(
        (0.91, 0.91),
        description="probability that the two-track line fires when its conditions hold, at "
        "the two points two_track_q_gev2 of the trigger variable q = s - 2 sqrt(s) E*_trk "
        "(linear in q between them, constant outside; a single number means flat). "
        "Simulation: flat 0.91, the midpoint of the PRL's 89-93% (assumption); "
        "data: 0.89 -> 0.93 with M_recoil^2 [PRL]",
    )
    two_track_q_gev2: DegRange = Field(
        (0.0, 80.0),
        description="the two values of q = s - 2 sqrt(s) E*_trk, GeV^2, at which "
        "two_track_efficiency is given; E*_trk = c.m. energy of the tracks in the trigger "
        "polar-angle range (muon mass), so for two tracks q = M_recoil^2 - m_trk^2 <= "
        "M_recoil^2 (ends of the PRL's M_recoil^2 range)",
    )
    bhabha_dphi_cm_deg: DegRange = Field(
        (160.0, 200.0), description="Bhabha veto: c.m. azimuthal difference, deg [basf2-trg]"
    )
    bhabha_theta_sum_cm_deg: DegRange = Field(
        (165.0, 190.0), description="Bhabha veto: sum of c.m. polar angles, deg [basf2-trg]"
    )
    bhabha_e_min_cm_gev: float = Field(
        3.0, ge=0.0, description="Bhabha veto: both clusters above, c.m. GeV [basf2-trg]"
    )
    bhabha_e_max_cm_gev: float = Field(
        4.5, ge=0.0, description="Bhabha veto: one cluster above, c.m. GeV [basf2-trg]"
    )
    ecl_energy_min_gev: float = Field(
        1.0, ge=0.0, description="ECL trigger: energy in barrel + forward endcap above, GeV [PRL]"
    )

    @field_validator(
        "track_theta_deg", "bhabha_dphi_cm_deg", "bhabha_theta_sum_cm_deg", "two_track_q_gev2"
    )
    @classmethod
    def _increasing(cls, value: DegRange) -> DegRange:
        return _check_range(value)

    @field_validator("two_track_efficiency", mode="before")
    @classmethod
    def _flat_shorthand(cls, value: Any) -> Any:
        """A single number is a flat efficiency: ``0.9`` means ``[0.9, 0.9]``."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (value, value)
        return value

    @field_validator("two_track_efficiency")
    @classmethod
    def _probabilities(cls, value: tuple[float, float]) -> tuple[float, float]:
        for v in value:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"efficiency must be in [0, 1], got {v}")
        return value


class DetectorConfig(_Strict):
    """One named configuration of the fast Belle II simulation.

    ``based_on`` names another configuration whose values this one starts from, so a variant
    (e.g. ``data``) only lists the parameters that differ.
    """

    based_on: str | None = Field(
        None, description="configuration this one inherits unlisted values from"
    )
    description: str = Field("", description="free text")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    muon_id: MuonIDConfig = Field(default_factory=MuonIDConfig)
    electron_id: ElectronIDConfig = Field(default_factory=ElectronIDConfig)
    ecl: ECLConfig = Field(default_factory=ECLConfig)
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)


class DetectorSection(_Strict):
    """Named detector configurations and the one used by default (``use``)."""

    configurations: dict[str, DetectorConfig] = Field(
        default_factory=lambda: {"simulation": DetectorConfig()},
        min_length=1,
        description="named configurations of the fast simulation",
    )
    use: str = Field("simulation", description="configuration used when none is named")

    @field_validator("configurations", mode="before")
    @classmethod
    def _resolve_inheritance(cls, raw: Any) -> Any:
        """Fill each configuration that has ``based_on`` with its base's values."""
        if not isinstance(raw, dict):
            return raw
        resolved: dict[str, Any] = {}

        def resolve(name: str, chain: tuple[str, ...]) -> Any:
            if name in resolved:
                return resolved[name]
            entry = raw[name]
            if isinstance(entry, DetectorConfig):
                entry = entry.model_dump()
            base = entry.get("based_on") if isinstance(entry, dict) else None
            if base is None:
                resolved[name] = entry
                return entry
            if base not in raw:
                raise ValueError(f"configuration '{name}' is based on unknown '{base}'")
            if base in chain:
                cycle = " -> ".join((*chain, base))
                raise ValueError(f"configurations inherit in a cycle: {cycle}")
            parent = resolve(base, (*chain, base))
            merged = _deep_merge(parent, entry) if isinstance(parent, dict) else entry
            resolved[name] = merged
            return merged

        for name in raw:
            resolve(name, (name,))
        return resolved

    @field_validator("use")
    @classmethod
    def _use_exists(cls, use: str, info: Any) -> str:
        known = info.data.get("configurations")
        if known is not None and use not in known:
            raise ValueError(f"'{use}' is not one of the configurations {sorted(known)}")
        return use

    def get(self, name: str | None = None) -> DetectorConfig:
        """The configuration called ``name`` (default: ``use``).

        Raises
        ------
        ConfigError
            If no configuration has that name.
        """
        key = self.use if name is None else name
        try:
            return self.configurations[key]
        except KeyError:
            raise ConfigError(
                f"unknown detector configuration '{key}' (known: "
                f"{', '.join(sorted(self.configurations))})"
            ) from None
