"""Configuration of the dark Higgsstrahlung search (``dark_higgs`` section; issue 17).

e+e- -> A' h', A' -> mu+ mu-, h' invisible (Belle II, PRL 130, 071804 (2023),
arXiv:2207.00509; the 2022 talk ``shared/papers/talk-2022-dark-sector-belle2.md``). The section
is read only by ``zprime.analyses.dark_higgsstrahlung``; the preset ``dark_higgsstrahlung``
(``zprime/data/presets/``) sets ``analysis``, the luminosity, the backgrounds and the 2019
trigger around it.
"""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field, model_validator

from zprime.config.base import _Strict

__all__ = [
    "DarkHiggsConfig",
    "DarkHiggsControlConfig",
    "DarkHiggsLimitsConfig",
    "DarkHiggsSelectionConfig",
    "DarkHiggsSignalConfig",
    "DarkHiggsSystematicsConfig",
    "DarkHiggsWindowsConfig",
]

_Mass = Annotated[float, Field(gt=0.0, lt=10.58)]
_Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class DarkHiggsSignalConfig(_Strict):
    """The simulated (M_A', M_h') grid: every M_A' with M_h' at fractions of its largest value
    min(M_A', sqrt(s) - M_A'); the efficiency and the window shapes between the points are
    interpolated (``dark_higgs.windows``)."""

    aprime_masses_gev: list[_Mass] = Field(
        default_factory=lambda: [1.65, 2.0, 2.5, 3.0, 3.4, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.7, 10.2],
        min_length=2,
        description="simulated M_A', GeV (our choice: 1.65-10.51 GeV is the talk's range; "
        "none inside a vetoed resonance region)",
    )
    hdark_fractions: list[_Fraction] = Field(
        default_factory=lambda: [0.02, 0.2, 0.4, 0.6, 0.8, 0.95],
        min_length=2,
        description="simulated M_h' as fractions of min(M_A', sqrt(s) - M_A') (our choice)",
    )
    events_per_point: int = Field(20_000, ge=100, description="generated events per point")
    isr: bool = Field(True, description="initial-state radiation (structure function)")


class DarkHiggsSelectionConfig(_Strict):
    """Cut values (``zprime.analyses.dark_higgsstrahlung.selection.DarkHiggsSelection``: the
    sources of every default are there and in ``docs/dark_higgs_selection.md``)."""

    disabled: list[str] = Field(default_factory=list, description="selection steps switched off")
    track_d0_max_cm: float = Field(0.5, gt=0.0)
    track_z0_max_cm: float = Field(2.0, gt=0.0)
    muon_id_min: float = Field(0.5, ge=0.0, le=1.0)
    track_theta_deg: tuple[float, float] = (37.0, 120.0)
    track_dphi_min_deg: float = Field(90.0, ge=0.0, le=180.0)
    pt_mumu_cm_min_gev: float = Field(0.1, ge=0.0, description="talk: p_T(mu mu) > 0.1 GeV")
    theta_recoil_barrel_deg: tuple[float, float] = (34.0, 123.0)
    theta_recoil_gap_deg: tuple[float, float] | None = (89.0, 91.0)
    photon_energy_min_gev: float = Field(0.1, ge=0.0)
    photon_cone_deg: float = Field(30.0, ge=0.0, le=180.0)
    cos_helicity_max: float = Field(
        1.0, gt=0.0, le=1.0, description="1: no cut (the study: docs/dark_higgs_selection.md)"
    )
    c_eta_max: float = Field(0.9, gt=0.0, description="our definition of C_eta: |eta(mu mu)| c.m.")


class DarkHiggsWindowsConfig(_Strict):
    """The rotated elliptical windows in (M_mumu, M_recoil), one per (M_A', M_h') hypothesis."""

    veto_half_width_gev: float = Field(
        0.05,
        ge=0.0,
        description="no M_A' hypothesis within this of the J/psi, psi(2S), Upsilon(1S-3S) "
        "masses (zprime.physics.dark_higgs: the resonances' tails change R by < 0.5% beyond)",
    )
    aprime_range_gev: tuple[float, float] = Field(
        (1.65, 10.51), description="M_A' range of the scan, GeV (talk: 1.65-10.51 GeV)"
    )
    hdark_min_gev: float = Field(
        0.01,
        gt=0.0,
        description="lowest M_h' hypothesis, GeV (our choice: with ISR, sigma grows as "
        "ln(1/M_h') towards 0, cut off only by the A' width, i.e. by epsilon itself)",
    )
    k: float = Field(
        2.0,
        gt=0.0,
        description="window size in units of the signal core's covariance (a k-sigma ellipse; "
        "our choice from a toy scan, zprime.analyses.dark_higgsstrahlung.windows)",
    )
    step: float = Field(
        1.0, gt=0.0, description="hypothesis spacing in units of the local core width"
    )


class DarkHiggsSystematicsConfig(_Strict):
    """Relative systematic uncertainties (talk, systematics table)."""

    preselection: float = Field(0.05, ge=0.0, description="talk: 2-9.1% (BKG and signal)")
    background_shape: float = Field(0.093, ge=0.0, description="talk: 9.3% (region specific)")
    c_eta: float = Field(0.01, ge=0.0, description="talk: C_eta cut, 1% (BKG)")
    mass_resolution: float = Field(0.024, ge=0.0, description="talk: 2.4% on average (signal)")
    window_efficiency: float = Field(0.035, ge=0.0, description="talk: 2-5% (signal)")
    br_aprime: float = Field(0.04, ge=0.0, description="talk: theory (BR A'), 4% (signal)")


class DarkHiggsControlConfig(_Strict):
    """The control samples and the corrections of the simulated backgrounds they give
    (talk: mu mu gamma for the mu mu (gamma) background, e mu for tau tau;
    ``zprime.analyses.dark_higgsstrahlung.control``; values our choice)."""

    apply: bool = Field(
        True,
        description="correct the simulated backgrounds with the control samples' measurements "
        "(false: the simulation as it is, the measurements still reported)",
    )
    mumugamma_m2_max_gev2: float = Field(
        1.0,
        gt=0.0,
        description="the mu mu gamma tag-and-probe region: |M_recoil^2| below this, GeV^2 (a "
        "photon-like recoil; the PRL's ee photon-veto region uses M^2 < 1 GeV^2)",
    )
    theta_bins_deg: list[Annotated[float, Field(ge=0.0, le=180.0)]] = Field(
        default_factory=lambda: [34.0, 62.0, 89.0, 91.0, 107.0, 123.0],
        min_length=2,
        description="recoil polar-angle bins of the photon-detection measurement, deg (the "
        "selected barrel range in four bins; the 89-91 deg bin holds no selected recoil)",
    )
    electron_id_min: float = Field(
        0.5, ge=0.0, le=1.0, description="electron identification of the e mu sample"
    )
    min_events: float = Field(
        20.0,
        gt=0.0,
        description="fewest (effective) events a measurement needs; below, no correction "
        "(recorded as a fallback)",
    )

    @model_validator(mode="after")
    def _increasing(self) -> DarkHiggsControlConfig:
        b = self.theta_bins_deg
        if any(b2 <= b1 for b1, b2 in itertools.pairwise(b)):
            raise ValueError("theta_bins_deg must increase")
        return self


class DarkHiggsLimitsConfig(_Strict):
    """Counting limits and significances."""

    level: float = Field(0.9, gt=0.0, lt=1.0, description="credibility of the upper limits")
    lee_toys: int = Field(
        1000, ge=10, description="background-only toys for the global significance"
    )


class DarkHiggsConfig(_Strict):
    """The ``dark_higgs`` section."""

    signal: DarkHiggsSignalConfig = Field(default_factory=DarkHiggsSignalConfig)
    selection: DarkHiggsSelectionConfig = Field(default_factory=DarkHiggsSelectionConfig)
    windows: DarkHiggsWindowsConfig = Field(default_factory=DarkHiggsWindowsConfig)
    systematics: DarkHiggsSystematicsConfig = Field(default_factory=DarkHiggsSystematicsConfig)
    limits: DarkHiggsLimitsConfig = Field(default_factory=DarkHiggsLimitsConfig)
    control: DarkHiggsControlConfig = Field(default_factory=DarkHiggsControlConfig)
    inject_hdark_gev: float | None = Field(
        None,
        gt=0.0,
        description="M_h' of a signal injected into the pseudo-data (GeV; with "
        "pseudo_data.inject_mass_gev = M_A' and inject_xsec_fb = sigma x B; CLI --inject-hdark)",
    )

    @model_validator(mode="after")
    def _ranges(self) -> DarkHiggsConfig:
        lo, hi = self.windows.aprime_range_gev
        if not 0.0 < lo < hi:
            raise ValueError("windows.aprime_range_gev must increase")
        return self
