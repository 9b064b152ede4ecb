"""Typed configuration of a zprime run.

The configuration is a YAML document validated by pydantic models. The defaults ship with the
package (``zprime/data/default.yaml``); a user file only needs the fields it changes and is merged
over the defaults. Unknown fields and out-of-range values are refused with a one-line
:class:`~zprime.errors.ConfigError` naming the field, e.g.::

    config field 'signal.events_per_mass': Input should be greater than 0 (got -5)

Units: GeV, GeV^2, fb, fb^-1 in the code; angles are in degrees in the configuration only and are
converted to radians by the stage that reads them.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zprime.errors import ConfigError

__all__ = [
    "Config",
    "SelectionConfig",
    "SignalConfig",
    "XsecGridConfig",
    "available_presets",
    "default_config",
    "load_config",
]


class _Strict(BaseModel):
    """Base model: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


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
        from zprime.physics.constants import M_MUON, SQRT_S

        upper = SQRT_S - 2.0 * M_MUON
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


def _check_range(value: tuple[float, float]) -> tuple[float, float]:
    lo, hi = value
    if not lo < hi:
        raise ValueError(f"range must be increasing, got [{lo}, {hi}]")
    return value


DegRange = tuple[float, float]


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


# --- punzinet section (issue 5: zprime.analyses.invisible_zprime.punzinet) ---
# The Punzi-net (zprime.analyses.invisible_zprime.punzinet; docs/punzinet.md). [PL] F. Abudinen et
# al., Eur. Phys. J. C 82,
# 121 (2022), arXiv:2110.00810 and its public code github.com/feichtip/punzinet; [Punzi] G. Punzi,
# eConf C030908, MODT002 (2003); [PRL] PRL 130, 231801 (2023).


class PunziNetConfig(_Strict):
    """Network, loss, data split and training schedule of the Punzi-net.

    The defaults follow the public code of [PL] (``examples/punzi_training.ipynb``,
    ``src/punzinet/train.py``) where it gives a value; docs/punzinet.md lists each choice.
    """

    hidden_layers: list[int] = Field(
        default_factory=lambda: [8, 4],
        min_length=1,
        max_length=6,
        description="units per hidden layer ([PL] notebook: 4-8-4-1)",
    )
    activation: str = Field(
        "tanh", pattern=r"^(tanh|relu|silu)$", description="hidden activation ([PL]: tanh)"
    )
    a: float = Field(3.0, gt=0.0, description="Punzi a: discovery significance, sigma ([PL] code)")
    b: float = Field(1.28155, gt=0.0, description="Punzi b: 90% power, Phi^-1(0.9) ([PL] code)")
    refined_constant: bool = Field(
        False,
        description="constant term a^2/8 + 9 b^2/13 (Punzi's fit to the Poisson case, [PL] code) "
        "instead of b^2/2 (Punzi's Gaussian formula)",
    )
    window_sigmas: float = Field(
        2.0, gt=0.0, le=10.0, description="window half-width in signal resolutions ([PL] code: 2)"
    )
    bce_epochs: int = Field(
        150, ge=0, description="epochs of weighted-BCE pre-training ([PL]: 150)"
    )
    bce_batch_size: int = Field(
        4096, gt=0, description="mini-batch size of the pre-training ([PL]: 2^12)"
    )
    bce_learning_rate: float = Field(
        1.0, gt=0.0, description="SGD learning rate of the pre-training ([PL]: 1)"
    )
    bce_lr_patience: int = Field(
        10,
        gt=0,
        description="epochs without improvement before the pre-training lr is halved "
        "([PL]: ReduceLROnPlateau patience 10)",
    )
    bce_patience: int = Field(
        30, gt=0, description="early-stopping patience of the pre-training (epochs)"
    )
    punzi_epochs: int = Field(
        500, ge=0, description="full-batch epochs on the Punzi loss ([PL]: 500)"
    )
    punzi_learning_rate: float = Field(
        0.05, gt=0.0, description="SGD learning rate, Punzi loss ([PL]: 0.05)"
    )
    punzi_lr_patience: int = Field(
        20,
        gt=0,
        description="epochs without improvement before the Punzi-phase lr is halved "
        "([PL]: ReduceLROnPlateau patience 20)",
    )
    lr_factor: float = Field(
        0.5, gt=0.0, lt=1.0, description="factor of each plateau lr reduction ([PL]: 0.5)"
    )
    patience: int = Field(
        60, gt=0, description="Punzi phase: epochs without validation improvement before stopping"
    )
    min_delta: float = Field(
        1e-4,
        ge=0.0,
        lt=1.0,
        description="relative improvement that counts (early stopping and plateau schedule)",
    )
    background_floor: float = Field(
        1.0,
        ge=0.0,
        description="in the loss, B of each window + this many mean background event weights "
        "of the window (a simulated sample cannot resolve less than about one event); 0: the "
        "bare [PL] loss",
    )
    training_fraction: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="fraction of the background events for training + validation; the rest is "
        "the test sample of the figure of merit",
    )
    validation_fraction: float = Field(
        0.3,
        gt=0.0,
        lt=1.0,
        description="fraction of the training part (background, training-mass signal) held out "
        "for validation: early stopping and the plateau schedule",
    )
    seed: int = Field(
        1, ge=0, lt=2**63, description="seed of the splits, initialisation and batches"
    )
    ensemble: int = Field(
        1,
        ge=1,
        le=50,
        description="networks trained on the same split from initialisations seed + 1000 k; "
        "their mean output is the Punzi-net output",
    )
    threads: int = Field(
        1,
        gt=0,
        le=256,
        description="torch CPU threads (fixed: determinism); the network is too small to gain "
        "from more, and on a busy machine extra threads spin (docs/punzinet.md)",
    )


# --- binning and templates section (issue 6: zprime.analyses.invisible_zprime.binning,
# zprime.analyses.invisible_zprime.templates) ---
# Resolution model, hypothesis grid, search windows (zprime.analyses.invisible_zprime.binning) and
# the fit templates with
# their systematic uncertainties (zprime.analyses.invisible_zprime.templates); docs/templates.md.
# [PRL] PRL 130, 231801.


class ResolutionConfig(_Strict):
    """Where the signal M_recoil^2 resolution sigma(M^2) comes from
    (zprime.analyses.invisible_zprime.binning)."""

    source: Literal["measured", "prl", "file"] = Field(
        "measured",
        description="'measured': fit to the widths of the simulated signal samples; 'prl': the "
        "PRL's quoted values (fallback); 'file': a ResolutionModel JSON",
    )
    file: str | None = Field(None, description="ResolutionModel JSON for source 'file'")
    estimator: Literal["core", "sigma68"] = Field(
        "core",
        description="width per simulated mass: Gaussian fit to the core of M^2_reco - M^2_true "
        "(+-2 sigma, iterated), or the 68% half-width",
    )
    variable: Literal["sqrt_m", "m", "m2"] = Field(
        "sqrt_m", description="variable of the smoothing polynomial: M^(1/2), M or M^2"
    )
    degree: int = Field(4, ge=0, le=8, description="degree of the smoothing polynomial")
    min_events: int = Field(200, ge=20, description="fewest events for one width measurement")


class ThetaRangeConfig(_Strict):
    """theta_recoil^CM binning of the windows whose hypothesis M^2 is below ``m2_max_gev2``."""

    m2_max_gev2: float = Field(description="upper end of the M^2 range, GeV^2")
    n_bins: int = Field(ge=1, le=20, description="theta_recoil^CM bins (PRL: 5 low to 1 high)")
    edges_deg: list[float] | None = Field(
        None, description="explicit edges for method 'fixed' (n_bins + 1 increasing values)"
    )

    @field_validator("edges_deg")
    @classmethod
    def _edges(cls, value: list[float] | None, info: Any) -> list[float] | None:
        if value is None:
            return value
        n = info.data.get("n_bins")
        if n is not None and len(value) != n + 1:
            raise ValueError(f"edges_deg needs n_bins + 1 = {n + 1} values, got {len(value)}")
        if any(value[i + 1] <= value[i] for i in range(len(value) - 1)):
            raise ValueError("edges_deg must increase")
        if value[0] < 0.0 or value[-1] > 180.0:
            raise ValueError("edges_deg must lie in [0, 180]")
        return value


class ThetaBinningConfig(_Strict):
    """theta_recoil^CM binning: follows the mu mu (gamma) background [PRL]."""

    method: Literal["quantile", "fixed"] = Field(
        "quantile",
        description="'quantile': inner edges at weighted quantiles of the background samples "
        "in the window (equal background per bin); 'fixed': edges_deg (or uniform in degrees)",
    )
    samples: list[str] = Field(
        default_factory=lambda: ["mumu"], description="samples whose distribution sets the edges"
    )
    min_events_per_bin: int = Field(
        25, ge=1, description="quantile method: fewer MC events per bin reduce the bin count"
    )
    ranges: list[ThetaRangeConfig] = Field(
        default_factory=lambda: [
            ThetaRangeConfig(m2_max_gev2=1.0, n_bins=5),
            ThetaRangeConfig(m2_max_gev2=9.0, n_bins=4),
            ThetaRangeConfig(m2_max_gev2=25.0, n_bins=3),
            ThetaRangeConfig(m2_max_gev2=50.0, n_bins=2),
            ThetaRangeConfig(m2_max_gev2=1000.0, n_bins=1),
        ],
        min_length=1,
        description="bin count by hypothesis M^2 (first range whose m2_max_gev2 exceeds it)",
    )

    @field_validator("ranges")
    @classmethod
    def _increasing(cls, value: list[ThetaRangeConfig]) -> list[ThetaRangeConfig]:
        ends = [r.m2_max_gev2 for r in value]
        if any(ends[i + 1] <= ends[i] for i in range(len(ends) - 1)):
            raise ValueError("m2_max_gev2 of the theta ranges must increase")
        return value


class WideWindowConfig(_Strict):
    """Search windows of the wide-Z' benchmark (Gamma = 0.1 M; 1D M_recoil^2 templates) [PRL]."""

    width_over_mass: float = Field(
        0.1, gt=0.0, le=1.0, description="Gamma / M of the benchmark (PRL: 0.1, alpha_D = 2.9)"
    )
    n_gamma: float = Field(
        3.0, gt=0.0, description="window half-width in units of the Breit-Wigner's M*Gamma"
    )
    max_bins: int = Field(
        80, ge=2, le=1000, description="most M^2 bins; wider windows get bins wider than sigma"
    )


class BinningConfig(_Strict):
    """Hypothesis grid and search windows [PRL: steps and bins of one resolution unit]."""

    resolution: ResolutionConfig = Field(default_factory=ResolutionConfig)
    mass_min_gev: float = Field(0.01, gt=0.0, description="lowest hypothesis, GeV (PRL: 0.01)")
    mass_max_gev: float = Field(8.5, gt=0.0, lt=10.3, description="highest hypothesis (PRL: 8.5)")
    step_resolution_units: float = Field(
        1.0, gt=0.0, le=10.0, description="grid step in units of sigma(M^2) (PRL: 1)"
    )
    window_bins: int = Field(20, ge=2, le=200, description="M^2 bins per search window (PRL: 20)")
    m2_range_gev2: tuple[float, float] = Field(
        (-2.0, 100.0), description="windows are shifted to stay inside this M_recoil^2 range"
    )
    theta: ThetaBinningConfig = Field(default_factory=ThetaBinningConfig)
    wide: WideWindowConfig = Field(default_factory=WideWindowConfig)

    @field_validator("mass_max_gev")
    @classmethod
    def _mass_order(cls, value: float, info: Any) -> float:
        low = info.data.get("mass_min_gev")
        if low is not None and value <= low:
            raise ValueError(f"mass_max_gev {value} must be above mass_min_gev {low}")
        return value

    @field_validator("m2_range_gev2")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"range must be increasing, got {list(value)}")
        return value


class SystematicsValues(_Strict):
    """A table of systematic uncertainties (relative), by M_recoil^2 range [PRL]."""

    m2_ranges_gev2: list[tuple[float, float]] = Field(
        default_factory=lambda: [(-0.5, 9.0), (9.0, 36.0), (36.0, 81.0)],
        min_length=1,
        description="contiguous M_recoil^2 ranges, GeV^2 (PRL: [-0.5, 9], [9, 36], [36, 81])",
    )
    signal_efficiency: list[float] = Field(
        default_factory=lambda: [0.027, 0.065, 0.083],
        description="signal efficiency per range (PRL: 2.7, 6.5, 8.3%)",
    )
    signal_shape: float = Field(0.10, ge=0.0, lt=1.0, description="per-bin signal shape (10%)")
    background_shape: list[float] = Field(
        default_factory=lambda: [0.032, 0.086, 0.25],
        description="per-bin background shape per range (PRL: 3.2, 8.6, 25%)",
    )
    photon_veto_split_m2_gev2: float = Field(
        1.0, description="photon-veto uncertainty changes here, GeV^2 (PRL: 1)"
    )
    photon_veto_shape: tuple[float, float] = Field(
        (0.34, 0.05), description="per-bin photon-veto shape below / above the split (34%, 5%)"
    )
    photon_veto_samples: list[str] = Field(
        default_factory=lambda: ["mumu"], description="samples it applies to (PRL: mu mu)"
    )
    luminosity: float = Field(0.01, ge=0.0, lt=1.0, description="luminosity (PRL: 1%)")

    @field_validator("m2_ranges_gev2")
    @classmethod
    def _contiguous(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for lo, hi in value:
            if not lo < hi:
                raise ValueError(f"range must be increasing, got [{lo}, {hi}]")
        for i in range(len(value) - 1):
            if value[i][1] != value[i + 1][0]:
                raise ValueError("M^2 ranges must be contiguous and increasing")
        return value

    @field_validator("signal_efficiency", "background_shape")
    @classmethod
    def _per_range(cls, value: list[float], info: Any) -> list[float]:
        ranges = info.data.get("m2_ranges_gev2")
        if ranges is not None and len(value) != len(ranges):
            raise ValueError(f"needs one value per M^2 range ({len(ranges)}), got {len(value)}")
        if any(not 0.0 <= v < 1.0 for v in value):
            raise ValueError("relative uncertainties must lie in [0, 1)")
        return value


class SystematicsConfig(_Strict):
    """Which systematic uncertainties the templates carry and where their values come from."""

    source: Literal["prl", "file", "derived"] = Field(
        "derived",
        description="'prl': the table below; 'file': a JSON with the same fields; 'derived': "
        "the 'systematics' entry of corrections.json written by the control stage",
    )
    file: str | None = Field(None, description="JSON file for source 'file' / 'derived'")
    prl: SystematicsValues = Field(default_factory=SystematicsValues)
    mc_stat: bool = Field(True, description="attach the templates' MC statistical uncertainty")


class TemplatesConfig(_Strict):
    """Fit templates per search window (zprime.analyses.invisible_zprime.templates)."""

    backgrounds: list[str] | None = Field(
        None, description="background samples in the fit (default: backgrounds.default_run)"
    )
    data_sample: str = Field("data", description="sample holding the (pseudo-)data")
    merge_backgrounds: bool = Field(
        True, description="fit one total background template (PRL) instead of one per sample"
    )
    reapply_theta_recoil: bool = Field(
        True,
        description="re-apply the M^2-dependent theta_recoil cut to signal events moved to a "
        "hypothesis (the signal samples are then selected without that step)",
    )
    systematics: SystematicsConfig = Field(default_factory=SystematicsConfig)
    apply_corrections: bool = Field(
        True,
        description="apply the control-sample corrections (control/corrections.json) to the "
        "simulation: the trigger correction to every event, the photon-veto re-weighting to "
        "the mu mu background; only with pseudo_data.source: data_detector (pseudo-data drawn "
        "from the simulation itself need no correction)",
    )
    empty_background: Literal["flat", "fail"] = Field(
        "flat",
        description="a window in which no simulated background event falls: 'flat' uses a flat "
        "template at the simulation's density around it (with a note), 'fail' records the "
        "hypothesis as failed",
    )
    # --- background smoothing (H9: zprime.analyses.invisible_zprime.smoothing) ---
    background_smoothing: Literal["none", "kde"] = Field(
        "none",
        description="'none': histograms of the simulated events (the default: the background "
        "samples stand for ten times the luminosity); 'kde': a Gaussian kernel density in "
        "M_recoil^2 with kernels of the signal resolution, times theta fractions "
        "(zprime.analyses.invisible_zprime.smoothing; for a simulation much smaller than the data)",
    )
    smoothing_bandwidth: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="kernel width factor k in (0, 1]: h_i = k sigma(M^2_i), sigma = the signal "
        "M_recoil^2 resolution (a kernel is never wider than the resolution)",
    )
    smoothing_theta_min_events: int = Field(
        50,
        ge=1,
        description="fewest simulated events behind a window's theta_recoil^CM fractions (the "
        "M^2 interval about the window is widened until it holds them)",
    )
    smoothing_mc_variance: Literal["full", "shape"] = Field(
        "shape",
        description="MC-statistical variance of a smoothed bin: 'full' (sum_i (w_i p_i)^2 plus "
        "the theta fractions' binomial term) or 'shape' (without the fluctuation of the "
        "window's total, which the free background normalisation absorbs)",
    )


# control-sample section (issue 7: zprime.analyses.invisible_zprime.control)


class TriggerControlConfig(_Strict):
    """Two-track trigger efficiency in the e mu sample, against the ECL trigger [PRL]."""

    m2_edges_gev2: list[float] = Field(
        default_factory=lambda: [-0.5, 2.0, 5.0, 9.0, 16.0, 25.0, 36.0, 49.0, 64.0, 81.0],
        min_length=2,
        description="M_recoil^2 bins of the efficiency, GeV^2 (our choice over the PRL's range)",
    )
    degree: int = Field(
        1,
        ge=0,
        le=3,
        description="degree of the polynomial in M_recoil^2 fitted to data/simulation "
        "(1: a straight line; the PRL's data efficiency rises 89 -> 93% with M_recoil^2)",
    )
    min_events_per_bin: float = Field(
        10.0, gt=0.0, description="fewest (effective) reference-triggered events in a bin"
    )
    require_acceptance: bool = Field(
        True,
        description="count only events whose two tracks meet the two-track line's conditions "
        "offline (polar angle, azimuthal opening: detector trigger settings), so that the "
        "efficiency is the line's (PRL: 89-93%); false: all e mu events",
    )
    exclude_recoil_bhabha: bool = Field(
        True,
        description="leave out events whose recoil, taken as a photon, could fire the line's "
        "Bhabha veto with one of the tracks "
        "(zprime.analyses.invisible_zprime.control.recoil_bhabha_veto): radiative "
        "Bhabhas with an electron taken for a muon, whose trigger decision depends on whether "
        "the photon is seen, so that a data-simulation difference in photon loss would enter "
        "the trigger efficiency",
    )
    fallback_coefficients: list[float] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        description="correction used when the e mu sample is too small (PRL: none applied)",
    )
    fallback_uncertainty: float = Field(
        0.0, ge=0.0, description="absolute uncertainty of the fallback correction"
    )
    prl_efficiency: tuple[float, float] = Field(
        (0.89, 0.93), description="PRL: the two-track efficiency rises from 89 to 93% (table)"
    )

    @field_validator("m2_edges_gev2")
    @classmethod
    def _edges_increase(cls, value: list[float]) -> list[float]:
        if any(value[i + 1] <= value[i] for i in range(len(value) - 1)):
            raise ValueError("bin edges must increase")
        return value


class PhotonVetoControlConfig(_Strict):
    """Photon-veto inefficiency in the backward barrel from the ee sample [PRL]."""

    theta_recoil_deg: tuple[float, float] = Field(
        (90.0, 128.7),
        description="the backward barrel: from 90 deg to the barrel's end at 128.7 deg "
        "(basf2 thetaInECLAcceptance); the selection keeps recoils up to 123 deg",
    )
    m2_max_gev2: float = Field(
        1.0, description="PRL: ee events with M_recoil^2 < 1 GeV^2 (Bhabha + one photon)"
    )
    min_events: float = Field(
        30.0, gt=0.0, description="fewest (effective) ee events in the region, data and simulation"
    )
    trigger: Literal["two_track", "reference"] = Field(
        "two_track",
        description="trigger of the ee events: 'two_track' (the signal region's line, as in "
        "the PRL's ee sample) or 'reference' (the ECL line, trg_ecl: about ten times more "
        "events, and its decision hardly depends on the photon)",
    )
    exclude_recoil_bhabha: bool = Field(
        True,
        description="with trigger 'two_track': leave out events whose recoil, taken as a "
        "photon, could fire the line's 3D Bhabha veto with an electron (their trigger decision "
        "depends on whether the photon is seen, which biases the measured loss upwards: "
        "docs/control.md)",
    )
    fallback_extra_miss_probability: float = Field(
        0.0,
        ge=-1.0,
        le=1.0,
        description="extra photon-loss probability used when the ee sample is too small",
    )

    @field_validator("theta_recoil_deg")
    @classmethod
    def _ordered_theta(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= value[0] < value[1] <= 180.0:
            raise ValueError(f"range must increase within [0, 180], got {list(value)}")
        return value


class ResolutionControlConfig(_Strict):
    """M_recoil^2 resolution scale from the mu mu gamma sample [PRL]."""

    m2_range_gev2: tuple[float, float] = Field(
        (-3.0, 3.0), description="mu mu gamma events entering the core fit, GeV^2 (around 0)"
    )
    n_sigma: float = Field(2.0, gt=0.5, description="half-range of the Gaussian core fit")
    min_events: float = Field(200.0, gt=0.0, description="fewest (effective) events to fit")
    fallback_scale: float = Field(
        1.08, gt=0.0, description="PRL: the M_recoil^2 width is 8% larger in data"
    )


class EfficiencyControlConfig(_Strict):
    """Signal-efficiency systematic: data/simulation yields and Punzi-net efficiencies [PRL]."""

    samples: list[Literal["mumugamma", "emu"]] = Field(
        default_factory=lambda: ["mumugamma", "mumugamma", "emu"],
        description="control sample per M^2 range of templates.systematics (PRL: mu mu gamma "
        "for the lower region, e mu for the higher)",
    )
    min_events: float = Field(
        20.0, gt=0.0, description="fewest (effective) events in a range, data and simulation"
    )
    require_sensitivity: bool = Field(
        True,
        description="use the fallback when the measured value is within 2 sigma of zero and "
        "twice its statistical uncertainty exceeds the fallback (the sample cannot resolve an "
        "effect of that size)",
    )


class BackgroundShapeControlConfig(_Strict):
    """Background-shape systematic from bin-by-bin data/simulation ratios per window [PRL]."""

    split_m2_gev2: float = Field(
        56.0, description="PRL: mu mu gamma for windows up to 56 GeV^2, e mu above"
    )
    factor: float = Field(2.0, gt=0.0, description="PRL: twice the largest standard deviation")
    min_sim_events_per_bin: float = Field(
        5.0, gt=0.0, description="fewest (effective) simulated events for a bin's ratio"
    )
    min_bins: int = Field(5, ge=2, description="fewest usable bins for a window's deviation")
    subtract_statistics: bool = Field(
        True,
        description="subtract in quadrature the value expected from statistics alone (toys); "
        "false: the PRL's definition as is",
    )
    toys: int = Field(200, ge=10, description="toys for the statistics-only expectation")
    require_sensitivity: bool = Field(
        True,
        description="use the fallback when the statistics-only expectation of the statistic "
        "exceeds the fallback and the measured one is within 2 sigma of it (the sample cannot "
        "resolve an effect of that size)",
    )
    after_punzinet: bool = Field(
        False, description="use the samples after the Punzi-net cut (default: before it)"
    )
    max_uncertainty: float = Field(
        0.95, gt=0.0, lt=1.0, description="cap of a derived relative uncertainty"
    )


class ControlConfig(_Strict):
    """Control samples, data-driven corrections and derived systematics
    (zprime.analyses.invisible_zprime.control).

    Fallbacks of the systematic uncertainties are ``templates.systematics.prl`` (the PRL's).
    """

    data_detector: str = Field(
        "data", description="detector configuration that makes the (pseudo-)data"
    )
    data_mode: Literal["poisson", "weighted"] = Field(
        "poisson",
        description="'poisson': data are Poisson draws of the data-detector samples at the "
        "luminosity; 'weighted': those samples' weights used directly",
    )
    seed_offset: int = Field(11, ge=0, description="random stream: (seed, seed_offset, ...)")
    correct_simulation: bool = Field(
        True,
        description="weight the simulation with the measured trigger correction in the "
        "efficiency and shape comparisons",
    )
    batch_size: int = Field(300_000, gt=0, description="events read per batch")
    trigger: TriggerControlConfig = Field(default_factory=TriggerControlConfig)
    photon_veto: PhotonVetoControlConfig = Field(default_factory=PhotonVetoControlConfig)
    resolution: ResolutionControlConfig = Field(default_factory=ResolutionControlConfig)
    efficiency: EfficiencyControlConfig = Field(default_factory=EfficiencyControlConfig)
    background_shape: BackgroundShapeControlConfig = Field(
        default_factory=BackgroundShapeControlConfig
    )


# --- fit section (issue 6: the template fits, zprime.stats) ---


class FitConfig(_Strict):
    """Limits and significances of the mass scan (zprime.stats; PRL: CLs with q~_mu, 90% CL)."""

    toys: int = Field(
        0,
        ge=0,
        description="background-only toys per hypothesis for the expected bands "
        "(0: asymptotic formulae, as the default run)",
    )
    background_floor: float = Field(
        1e-3,
        gt=0.0,
        description="expected background (events) given to a template bin in which no simulated "
        "event falls, so that sparse simulation does not make a bin background-free",
    )
    wide: bool = Field(True, description="also fit the Gamma = 0.1 M benchmark (1D templates)")
    impact_masses_gev: list[float] = Field(
        default_factory=lambda: [0.5, 2.0, 4.0, 6.0, 7.0, 8.0],
        description="masses at which the effect of each systematic uncertainty on the expected "
        "limit is reported (PRL: < 5% below 6 GeV, about 40% above)",
    )
    limits: Literal["cls", "bayesian"] = Field(
        "cls",
        description="'cls': CLs with q~_mu (PRL 130, 231801); 'bayesian': credible upper limits "
        "with a flat prior on the cross section, nuisances marginalised (PRL 124, 141801)",
    )
    # --- bayesian fit fields (issue 8: zprime.stats.bayesian) ---
    bayesian_level: float = Field(
        0.90,
        gt=0.0,
        lt=1.0,
        description="credibility of the Bayesian upper limits (limits: bayesian; PRL 124, "
        "141801 quotes 90% credibility level)",
    )
    bayesian_samples: int = Field(
        32,
        ge=2,
        description="joint draws of the global nuisance parameters per dataset (importance "
        "sampling; the MC noise of a limit is ~0.5-1% at the default)",
    )
    bayesian_local_samples: int = Field(
        16, ge=2, description="draws of the per-bin nuisance parameters per global draw"
    )
    bayesian_toys: int = Field(
        0,
        ge=0,
        description="background-only pseudo-experiments for the Bayesian expected band; 0: the "
        "median is the limit on the Asimov dataset and the bands are NaN (each toy costs as "
        "much as the observed limit, ~0.1 s for a 20-bin window)",
    )


class PseudoDataConfig(_Strict):
    """The "observed" data of the default run: an independently generated sample seen by the
    data detector (``zprime.stats.pseudodata``)."""

    seed_offset: int = Field(
        7, ge=0, description="pseudo-data random stream: SeedSequence(seed, seed_offset)"
    )
    source: Literal["simulation", "data_detector"] = Field(
        "data_detector",
        description="'data_detector': every background sample generated again with its own "
        "seeds, simulated with the data detector (control.data_detector) and selected like the "
        "simulation, then thinned to unit-weight events at the luminosity "
        "(zprime.stats.pseudodata): "
        "an independent sample, as real data are (the default); 'simulation': the same thinning "
        "applied to the selected simulation itself (a closure test: the pseudo-data then share "
        "events with the templates)",
    )
    max_copies: int = Field(
        100,
        ge=1,
        description="a pseudo-data event that stands for k > 1 data events (a corner of phase "
        "space generated at less than the luminosity) is simulated as k copies, each with its "
        "own detector random numbers, as real data's k events would be, up to this many copies "
        "(heavier events, e.g. of the Bhabha samples, enter as one event counted k times)",
    )
    inject_mass_gev: float | None = Field(
        None, gt=0.0, lt=10.3, description="inject a signal of this Z' mass (GeV)"
    )
    inject_xsec_fb: float = Field(
        0.0, ge=0.0, description="injected sigma(e+e- -> mu mu Z') x B(invisible), fb"
    )


# --- issue 8 sections: projections, observed data, report ---


class ProjectionsConfig(_Strict):
    """Expected limits projected to other luminosities (``zprime run --lumi``)."""

    luminosities_fb: list[float] = Field(
        default_factory=list,
        description="luminosities (fb^-1) to project the expected limits to; empty: no projection",
    )
    masses_gev: list[float] = Field(
        default_factory=lambda: [0.5, 2.0, 4.0, 6.0, 8.0],
        description="Z' masses of the projection table and plot",
    )
    systematics: Literal["kept", "scaled", "none"] = Field(
        "kept",
        description="'kept': relative systematics as measured; 'scaled': shrink as "
        "1/sqrt(L/L0) (they come from control samples); 'none': statistics only",
    )
    # --- projections fields (issue 8: zprime.analyses.invisible_zprime.projections) ---
    mc_stat: Literal["keep", "drop"] = Field(
        "keep",
        description="'keep': the templates' MC statistical uncertainty keeps its relative size "
        "at every luminosity (the simulation does not grow with the data); 'drop': left out "
        "(a simulation that grows with the data)",
    )
    scaled_floor: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="with systematics 'scaled': relative uncertainties shrink as sqrt(L0/L) "
        "but not below min(this, their value at L0); 0: no floor",
    )
    smooth_background: bool = Field(
        False,
        description="replace each window's background templates by their yield spread flat in "
        "M_recoil^2 (times the window's theta distribution): for a background simulation much "
        "smaller than the projected luminosity, whose empty bins would count as background-free",
    )


class ObservedDataConfig(_Strict):
    """A user's reconstructed ntuple as the observed data (``zprime run --data --columns``)."""

    file: str | None = Field(
        None, description="ROOT or Parquet file of reconstructed events; null: pseudo-data"
    )
    columns: str | None = Field(
        None, description="YAML file mapping the file's columns onto zprime's event schema"
    )
    # --- observed data fields (issue 8: zprime.detector.realdata) ---
    tree: str | None = Field(
        None,
        description="TTree (or RNTuple) of a ROOT file; overrides the map's 'tree'; null: the "
        "map's, or the file's only tree",
    )


class ReportConfig(_Strict):
    """The report stage: results tables, figures and HEPData."""

    hepdata: bool = Field(True, description="write the HEPData submission (hepdata_lib)")
    # --- report fields (issue 8: zprime.analyses.invisible_zprime.results, zprime.report.plots,
    # zprime.analyses.invisible_zprime.hepdata) ---


# --- selection section (issue 5: zprime.analyses.invisible_zprime.selection) ---


class SelectionConfig(_Strict):
    """The event selection of PRL 130, 231801 (every default is the PRL's number).

    ``disabled`` switches steps off by name (see
    :data:`zprime.analyses.invisible_zprime.selection.STEPS`).
    """

    disabled: list[str] = Field(default_factory=list, description="selection steps switched off")
    track_d0_max_cm: float = Field(0.5, gt=0.0, description="PRL: abs(d0) < 0.5 cm")
    track_z0_max_cm: float = Field(2.0, gt=0.0, description="PRL: abs(z0) < 2.0 cm")
    muon_id_min: float = Field(0.5, ge=0.0, le=1.0, description="PRL: muonID > 0.5")
    electron_id_min: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="electronID cut of the e mu / ee control samples (the PRL uses 'a similar "
        "likelihood-ratio method'; 0.5 as for muons is our assumption)",
    )
    track_pt_min_gev: float = Field(0.4, ge=0.0, description="PRL: p_T > 0.4 GeV for both")
    opening_angle_max_deg: float = Field(
        179.0, gt=0.0, le=180.0, description="PRL: c.m. opening angle < 179 deg"
    )
    theta_recoil_split_m2_gev2: float = Field(
        4.0, description="PRL: the theta_recoil requirement changes at M_recoil^2 = 4 GeV^2"
    )
    theta_recoil_barrel_deg: tuple[float, float] = Field(
        (34.0, 123.0), description="PRL: below the split, theta_recoil in the ECL barrel"
    )
    theta_recoil_gap_deg: tuple[float, float] = Field(
        (89.0, 91.0), description="PRL: below the split, veto of the 1.5 mm ECL gap"
    )
    theta_recoil_max_high_m2_deg: float = Field(
        123.0, gt=0.0, le=180.0, description="PRL: above the split, theta_recoil < 123 deg"
    )
    # --- pilot2018 selection fields (issue 8: cut-based tau suppression) ---
    # 2018 pilot-run analysis (PRL 124, 141801; 2020 talk: "tau suppression cut on muon and
    # recoil momenta", in M_recoil^2 regions). The talk gives the form, not the numbers: the
    # values are our choice (docs/selection.md, "The 2018 pilot-run preset").
    tau_suppression: bool = Field(
        False,
        description="apply the step 'tau_suppression' (the 2018 cut-based tau tau suppression; "
        "off in the PRL 130 analysis, on in the pilot2018 preset)",
    )
    tau_m2_edges_gev2: list[float] = Field(
        default_factory=lambda: [1.0, 9.0, 36.0, 50.0],
        description="M_recoil^2 region boundaries of the tau suppression, GeV^2 (n edges: n + 1 "
        "regions, open at both ends); 1 and 50 from the PRL 130 background regions, 9 and 36 "
        "from its systematics ranges (our choice of regions)",
    )
    tau_recoil_pt_min_gev: list[float] = Field(
        default_factory=lambda: [0.75, 0.75, 1.25, 1.5, 1.25],
        description="per region: recoil transverse momentum in the c.m. frame above, GeV "
        "(our choice: Punzi figure of merit on simulation, docs/selection.md)",
    )
    tau_muon_p_max_gev: list[float] = Field(
        default_factory=lambda: [5.5, 5.25, 3.5, 2.75, 1.75],
        description="per region: the larger c.m. muon momentum below, GeV; 5.5 is above the "
        "kinematic limit sqrt(s)/2 = 5.29 GeV, i.e. no cut (our choice, docs/selection.md)",
    )

    @model_validator(mode="after")
    def _tau_regions(self) -> SelectionConfig:
        edges = self.tau_m2_edges_gev2
        if any(edges[i + 1] <= edges[i] for i in range(len(edges) - 1)):
            raise ValueError(f"tau_m2_edges_gev2 must be increasing, got {edges}")
        for name in ("tau_recoil_pt_min_gev", "tau_muon_p_max_gev"):
            if len(getattr(self, name)) != len(edges) + 1:
                raise ValueError(
                    f"{name} needs {len(edges) + 1} values (one per region of "
                    f"tau_m2_edges_gev2), got {len(getattr(self, name))}"
                )
        return self

    photon_energy_max_gev: float = Field(
        0.5, ge=0.0, description="PRL photon veto: total photon energy < 0.5 GeV"
    )
    photon_recoil_angle_min_deg: float = Field(
        15.0, ge=0.0, le=180.0, description="PRL photon veto: no photon within 15 deg of recoil"
    )
    control_photon_energy_min_gev: float = Field(
        1.0, ge=0.0, description="PRL mu mu gamma control sample: a photon above 1 GeV near recoil"
    )
    recoil_pt_cm_min_gev: float = Field(
        0.5, ge=0.0, description="PRL: recoil transverse momentum in the c.m. frame > 0.5 GeV"
    )
    punzinet_min: float = Field(0.5, ge=0.0, le=1.0, description="PRL: Punzi-net output > 0.5")

    @field_validator("disabled")
    @classmethod
    def _known_steps(cls, names: list[str]) -> list[str]:
        from zprime.analyses.invisible_zprime.selection import STEPS

        for name in names:
            if name not in STEPS:
                raise ValueError(f"unknown selection step '{name}'")
        return names

    @field_validator("theta_recoil_barrel_deg", "theta_recoil_gap_deg")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"range must be increasing, got {list(value)}")
        return value


class Config(_Strict):
    """A complete zprime configuration."""

    version: int = Field(1, ge=1, le=1, description="schema version of this configuration")
    seed: int = Field(20230607, ge=0, lt=2**63, description="master random seed of the run")
    luminosity_fb: float = Field(
        79.7, gt=0.0, description="integrated luminosity, fb^-1 (PRL: 79.7 fb^-1, 2019-2020)"
    )
    signal: SignalConfig = Field(default_factory=SignalConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    fit: FitConfig = Field(default_factory=FitConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    pseudo_data: PseudoDataConfig = Field(default_factory=PseudoDataConfig)
    projections: ProjectionsConfig = Field(default_factory=ProjectionsConfig)
    observed_data: ObservedDataConfig = Field(default_factory=ObservedDataConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    # binning and templates fields (issue 6)
    binning: BinningConfig = Field(default_factory=BinningConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    punzinet: PunziNetConfig = Field(default_factory=PunziNetConfig)
    # backgrounds field (issue 4)
    backgrounds: BackgroundsConfig = Field(default_factory=BackgroundsConfig)
    # detector field (issue 4)
    detector: DetectorSection = Field(default_factory=DetectorSection)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain Python types (for YAML/JSON and provenance)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The configuration as a YAML document."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    elif "input" in first and not isinstance(first["input"], dict | list):
        msg = f"{msg} (got {first['input']!r})"
    more = len(err.errors()) - 1
    tail = f" (+{more} more)" if more > 0 else ""
    return f"{source}: config field '{field}': {msg}{tail}"


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _default_dict() -> dict[str, Any]:
    text = resources.files("zprime").joinpath("data/default.yaml").read_text()
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def config_from_dict(data: dict[str, Any], *, source: str = "config") -> Config:
    """Validate a mapping (merged over the shipped defaults) into a :class:`Config`.

    Parameters
    ----------
    data
        Fields to set; nested mappings are merged into the defaults.
    source
        Name used in error messages (a file name).

    Raises
    ------
    ConfigError
        On the first unknown or invalid field, with its dotted name.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the configuration must be a mapping, got {type(data).__name__}"
        )
    merged = _deep_merge(_default_dict(), data)
    try:
        return Config.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def default_config() -> Config:
    """The built-in default configuration (the PRL's analysis)."""
    return config_from_dict({}, source="default config")


def available_presets() -> list[str]:
    """Names of the analysis presets shipped in ``zprime/data/presets/`` (e.g. ``pilot2018``)."""
    folder = resources.files("zprime").joinpath("data/presets")
    if not folder.is_dir():
        return []
    return sorted(e.name[: -len(".yaml")] for e in folder.iterdir() if e.name.endswith(".yaml"))


def _preset_dict(name: str) -> dict[str, Any]:
    """The partial configuration of preset ``name`` (ConfigError if there is none)."""
    names = available_presets()
    if name not in names:
        raise ConfigError(f"unknown preset '{name}' (presets: {', '.join(names) or 'none'})")
    text = resources.files("zprime").joinpath(f"data/presets/{name}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset '{name}': the configuration must be a YAML mapping")
    return data


def load_config(
    path: str | Path | None = None, *, preset: str | None = None, **overrides: Any
) -> Config:
    """Load a YAML configuration file merged over the defaults (and over a preset).

    Order: the shipped defaults, then the preset, then the file, then ``overrides`` (mappings
    are merged key by key; a list or a value replaces the earlier one).

    Parameters
    ----------
    path
        YAML file; ``None`` gives the defaults (or the preset).
    preset
        Name of a shipped analysis preset (:func:`available_presets`, e.g. ``pilot2018``: the
        2018 pilot-run analysis of PRL 124, 141801); ``None``: none.
    **overrides
        Dotted-path overrides applied last, e.g. ``{"signal.isr": False}`` passed as
        ``load_config(None, **{"signal.isr": False})``.

    Raises
    ------
    ConfigError
        If the preset is unknown, the file is missing or not valid YAML, or a field fails
        validation.
    """
    data: dict[str, Any] = {}
    source = "config"
    base = _preset_dict(preset) if preset is not None else {}
    if preset is not None:
        source = f"preset '{preset}'"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: configuration file not found")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as err:
            line = getattr(getattr(err, "problem_mark", None), "line", None)
            where = f" (line {line + 1})" if line is not None else ""
            raise ConfigError(f"{p}: not valid YAML{where}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the configuration must be a YAML mapping")
        data = loaded
    data = _deep_merge(base, data)
    for dotted, value in overrides.items():
        node = data
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return config_from_dict(data, source=source)
