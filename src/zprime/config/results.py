"""Configuration of the fit and what follows it: limits, pseudo-data, projections, report.

Owns the ``fit`` section (:class:`FitConfig`, :mod:`zprime.stats`), ``pseudo_data``
(:class:`PseudoDataConfig`, :mod:`zprime.stats.pseudodata`), ``projections``
(:class:`ProjectionsConfig`, :mod:`zprime.analyses.invisible_zprime.projections`),
``observed_data`` (:class:`ObservedDataConfig`, :mod:`zprime.detector.realdata`) and ``report``
(:class:`ReportConfig`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from zprime.config.base import _Strict

__all__ = [
    "FitConfig",
    "ObservedDataConfig",
    "ProjectionsConfig",
    "PseudoDataConfig",
    "ReportConfig",
]


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

    luminosities_fb: list[Annotated[float, Field(gt=0.0)]] = Field(
        default_factory=list,
        description="luminosities (fb^-1) to project the expected limits to; empty: no projection",
    )
    masses_gev: list[Annotated[float, Field(gt=0.0)]] = Field(
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
    smoke_test: bool = Field(
        False,
        description="set by `zprime run --quick`: the summary says that its numbers test the "
        "chain and are no physics result, and reports no significance (a quick run's simulation "
        "is too small for a significance: zprime.pipeline.stages.quick_config)",
    )
    # --- report fields (issue 8: zprime.analyses.invisible_zprime.results, zprime.report.plots,
    # zprime.analyses.invisible_zprime.hepdata) ---
