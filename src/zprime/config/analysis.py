"""Configuration of the invisible-Z' analysis chain: selection, Punzi-net, binning, templates.

Owns the sections read by :mod:`zprime.analyses.invisible_zprime` from the selected events to the
fit templates: ``selection`` (:class:`SelectionConfig` and the step names
:data:`SELECTION_STEPS`, :mod:`~zprime.analyses.invisible_zprime.selection`), ``punzinet``
(:class:`PunziNetConfig`, :mod:`~zprime.analyses.invisible_zprime.punzinet`), ``binning``
(:class:`BinningConfig`, :mod:`~zprime.analyses.invisible_zprime.binning`) and ``templates``
(:class:`TemplatesConfig`, :mod:`~zprime.analyses.invisible_zprime.templates`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from zprime.config.base import _Strict

__all__ = [
    "SELECTION_STEPS",
    "BinningConfig",
    "PunziNetConfig",
    "ResolutionConfig",
    "SelectionConfig",
    "SystematicsConfig",
    "SystematicsValues",
    "TemplatesConfig",
    "ThetaBinningConfig",
    "ThetaRangeConfig",
    "WideWindowConfig",
]


# --- selection section (issue 5: zprime.analyses.invisible_zprime.selection) ---

SELECTION_STEPS: tuple[str, ...] = (
    "two_tracks",
    "track_quality",
    "opposite_charge",
    "particle_id",
    "trigger",
    "track_pt",
    "opening_angle",
    "theta_recoil",
    "photon_veto",
    "recoil_pt",
    "tau_suppression",
    "punzinet",
)
"""The selection steps, in the order they are applied (names ``selection.disabled`` may give;
:data:`zprime.analyses.invisible_zprime.selection.STEPS` is this tuple)."""


class SelectionConfig(_Strict):
    """The event selection of PRL 130, 231801 (every default is the PRL's number).

    ``disabled`` switches steps off by name (see :data:`SELECTION_STEPS`).
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
        for name in names:
            if name not in SELECTION_STEPS:
                raise ValueError(f"unknown selection step '{name}'")
        return names

    @field_validator("theta_recoil_barrel_deg", "theta_recoil_gap_deg")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"range must be increasing, got {list(value)}")
        return value


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
