"""Configuration of the tau-tau resonance search (``tautau`` section; issue 19).

e+e- -> mu+ mu- X, X -> tau+ tau- (Belle II, PRL 131, 121802 (2023), arXiv:2306.12294; the 2022
talk ``shared/papers/talk-2022-dark-sector-belle2.md``). The section is read only by
``zprime.analyses.tautau_resonance``; the preset ``tautau_resonance`` sets ``analysis``, the
luminosity and the background samples around it.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, model_validator

from zprime.config.base import _Strict

__all__ = [
    "TautauConfig",
    "TautauFitConfig",
    "TautauNetworksConfig",
    "TautauSelectionConfig",
    "TautauSignalConfig",
    "TautauSystematicsConfig",
]

_Mass = Annotated[float, Field(ge=3.6, le=10.0)]
Model = Literal["zprime", "scalar", "alp"]


class TautauSignalConfig(_Strict):
    """The simulated X masses and models (every model at every mass)."""

    models: list[Model] = Field(
        default_factory=lambda: ["zprime", "scalar", "alp"],
        min_length=1,
        description="X models: the L_mu - L_tau Z' (vector), the leptophilic scalar, the ALP "
        "(pseudoscalar)",
    )
    masses_gev: list[_Mass] = Field(
        default_factory=lambda: [round(3.6 + 0.4 * i, 1) for i in range(17)],
        min_length=2,
        description="simulated X masses, GeV (our choice: every 0.4 GeV over 3.6-10.0)",
    )
    events_per_point: int = Field(20_000, ge=100, description="generated events per point")
    isr: bool = Field(True, description="initial-state radiation (structure function)")


class TautauSelectionConfig(_Strict):
    """Cut values of the pre-selection (``analyses.tautau_resonance.selection``: sources)."""

    disabled: list[str] = Field(default_factory=list)
    track_d0_max_cm: float = Field(0.5, gt=0.0)
    track_z0_max_cm: float = Field(2.0, gt=0.0)
    muon_id_min: float = Field(0.5, ge=0.0, le=1.0)
    electron_id_min: float = Field(0.5, ge=0.0, le=1.0)
    pion_id_min: float = Field(0.5, ge=0.0, le=1.0)
    m_four_max_gev: float = Field(9.5, gt=0.0, description="talk: M(4 tracks) < 9.5 GeV")
    m_recoil_range_gev: tuple[float, float] = (3.0, 10.3)


class TautauNetworksConfig(_Strict):
    """The range classifiers (``analyses.tautau_resonance.networks``; our choices)."""

    edges_gev: list[float] = Field(
        default_factory=lambda: [round(3.6 + 0.8 * i, 1) for i in range(9)],
        min_length=2,
        description="M_recoil range edges of the networks (talk: 8 networks; ranges ours)",
    )
    margin_gev: float = Field(0.3, ge=0.0, description="training events this far outside a range")
    training_events: int = Field(
        50_000,
        ge=100,
        description="generated events per model of each range's mass-continuum training sample",
    )
    hidden_layers: list[int] = Field(default_factory=lambda: [32, 32])
    epochs: int = Field(60, ge=1)
    seed_offset: int = Field(41, description="the networks' seeds: seed + this + range index")

    @model_validator(mode="after")
    def _increasing(self) -> TautauNetworksConfig:
        e = self.edges_gev
        if any(b <= a for a, b in itertools.pairwise(e)):
            raise ValueError("edges_gev must increase")
        return self


class TautauFitConfig(_Strict):
    """The M_recoil window fits (``analyses.tautau_resonance.fit``; our choices)."""

    half_width: float = Field(6.0, gt=0.0, description="window half-width, resolution widths")
    n_bins: int = Field(24, ge=4)
    degree: int = Field(2, ge=0, le=6, description="Bernstein background degree")
    step: float = Field(1.0, gt=0.0, description="hypothesis spacing, resolution widths")
    bias_toys: int = Field(300, ge=10, description="pseudo-experiments per bias study")
    level: float = Field(0.10, gt=0.0, lt=1.0, description="CLs level (0.10: 90% CL, the paper)")
    toys_below_events: float = Field(
        5.0,
        ge=0.0,
        description="windows with fewer observed events get toy-based CLs limits (the "
        "asymptotic formulae undercover there: 1.4 instead of 2.3 events for an empty window); "
        "0: asymptotic everywhere",
    )
    limit_toys: int = Field(500, ge=50, description="toys per POI value of a toy-based limit")
    limit_toy_points: int = Field(12, ge=4, description="POI values of a toy-based limit's scan")


class TautauSystematicsConfig(_Strict):
    """Relative uncertainties on the signal yield (talk's table)."""

    trigger: float = Field(0.027, ge=0.0)
    particle_id: float = Field(0.05, ge=0.0, description="talk: 3.9-6.2%")
    tracking: float = Field(0.036, ge=0.0)
    fit_bias_floor: float = Field(
        0.0,
        ge=0.0,
        description="lower bound of the fit-bias uncertainty (the measured bias is used; the "
        "talk: 4%)",
    )
    mlp_selection: float = Field(0.028, ge=0.0)
    mass_resolution: float = Field(0.03, ge=0.0)
    efficiency_interpolation: float = Field(0.025, ge=0.0)
    other: float = Field(0.01, ge=0.0)
    luminosity: float = Field(0.01, ge=0.0)


class TautauConfig(_Strict):
    """The ``tautau`` section."""

    signal: TautauSignalConfig = Field(default_factory=TautauSignalConfig)
    selection: TautauSelectionConfig = Field(default_factory=TautauSelectionConfig)
    networks: TautauNetworksConfig = Field(default_factory=TautauNetworksConfig)
    fit: TautauFitConfig = Field(default_factory=TautauFitConfig)
    systematics: TautauSystematicsConfig = Field(default_factory=TautauSystematicsConfig)
    inject_model: Model = Field(
        "zprime",
        description="model of a signal injected into the pseudo-data (its mass: "
        "pseudo_data.inject_mass_gev, its sigma x B(X -> tau tau): inject_xsec_fb; CLI "
        "--inject-model)",
    )
