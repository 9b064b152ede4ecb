"""Configuration of the invisible-Z' analysis's control samples (the ``control`` section).

Owns :class:`ControlConfig` and its blocks (trigger efficiency, photon veto, resolution scale,
signal efficiency and background shape), read by
:mod:`zprime.analyses.invisible_zprime.control`: the data-driven corrections and the derived
systematic uncertainties.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from zprime.config.base import _Strict

__all__ = [
    "BackgroundShapeControlConfig",
    "ControlConfig",
    "EfficiencyControlConfig",
    "PhotonVetoControlConfig",
    "ResolutionControlConfig",
    "TriggerControlConfig",
]


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
