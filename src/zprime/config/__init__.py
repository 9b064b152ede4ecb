"""Typed configuration of a zprime run.

The configuration is a YAML document validated by pydantic models. The defaults ship with the
package (``zprime/data/default.yaml``); a user file only needs the fields it changes and is merged
over the defaults. Unknown fields and out-of-range values are refused with a one-line
:class:`~zprime.errors.ConfigError` naming the field, e.g.::

    config field 'signal.events_per_mass': Input should be greater than 0 (got -5)

Units: GeV, GeV^2, fb, fb^-1 in the code; angles are in degrees in the configuration only and are
converted to radians by the stage that reads them.

The package's modules: :mod:`~zprime.config.base` (the strict base model, shared helpers),
:mod:`~zprime.config.samples` (signal, backgrounds, detector: what the engine reads),
:mod:`~zprime.config.analysis` (selection, Punzi-net, binning, templates),
:mod:`~zprime.config.control` (control samples), :mod:`~zprime.config.results` (fit,
pseudo-data, projections, observed data, report) and :mod:`~zprime.config.core` (the root
:class:`Config`, defaults, presets, loading). Every name is importable from ``zprime.config``.
"""

from __future__ import annotations

from zprime.config.analysis import (
    SELECTION_STEPS,
    BinningConfig,
    PunziNetConfig,
    ResolutionConfig,
    SelectionConfig,
    SystematicsConfig,
    SystematicsValues,
    TemplatesConfig,
    ThetaBinningConfig,
    ThetaRangeConfig,
    WideWindowConfig,
)
from zprime.config.base import DegRange
from zprime.config.base import _check_range as _check_range
from zprime.config.base import _deep_merge as _deep_merge
from zprime.config.base import _format_validation_error as _format_validation_error
from zprime.config.base import _Strict as _Strict
from zprime.config.control import (
    BackgroundShapeControlConfig,
    ControlConfig,
    EfficiencyControlConfig,
    PhotonVetoControlConfig,
    ResolutionControlConfig,
    TriggerControlConfig,
)
from zprime.config.core import (
    Config,
    available_presets,
    config_from_dict,
    default_config,
    load_config,
)
from zprime.config.core import _default_dict as _default_dict
from zprime.config.core import _preset_dict as _preset_dict
from zprime.config.dark_higgs import (
    DarkHiggsConfig,
    DarkHiggsControlConfig,
    DarkHiggsLimitsConfig,
    DarkHiggsSelectionConfig,
    DarkHiggsSignalConfig,
    DarkHiggsSystematicsConfig,
    DarkHiggsWindowsConfig,
)
from zprime.config.results import (
    FitConfig,
    ObservedDataConfig,
    ProjectionsConfig,
    PseudoDataConfig,
    ReportConfig,
)
from zprime.config.samples import (
    BackgroundSampleConfig,
    BackgroundsConfig,
    DetectorConfig,
    DetectorSection,
    ECLConfig,
    ElectronIDConfig,
    GeneratorFilterConfig,
    MuonIDConfig,
    PionIDConfig,
    SignalConfig,
    TrackingConfig,
    TriggerConfig,
    XsecGridConfig,
)
from zprime.config.samples import _z_mass_max_gev as _z_mass_max_gev
from zprime.config.tautau import (
    TautauConfig,
    TautauFitConfig,
    TautauNetworksConfig,
    TautauSelectionConfig,
    TautauSignalConfig,
    TautauSystematicsConfig,
)

# Private helpers (``_format_validation_error``, ``_z_mass_max_gev``, ...) are re-exported above by
# redundant alias for the code and tests that import them from ``zprime.config``.
__all__ = [
    "SELECTION_STEPS",
    "BackgroundSampleConfig",
    "BackgroundShapeControlConfig",
    "BackgroundsConfig",
    "BinningConfig",
    "Config",
    "ControlConfig",
    "DarkHiggsConfig",
    "DarkHiggsControlConfig",
    "DarkHiggsLimitsConfig",
    "DarkHiggsSelectionConfig",
    "DarkHiggsSignalConfig",
    "DarkHiggsSystematicsConfig",
    "DarkHiggsWindowsConfig",
    "DegRange",
    "DetectorConfig",
    "DetectorSection",
    "ECLConfig",
    "EfficiencyControlConfig",
    "ElectronIDConfig",
    "FitConfig",
    "GeneratorFilterConfig",
    "MuonIDConfig",
    "ObservedDataConfig",
    "PhotonVetoControlConfig",
    "PionIDConfig",
    "ProjectionsConfig",
    "PseudoDataConfig",
    "PunziNetConfig",
    "ReportConfig",
    "ResolutionConfig",
    "ResolutionControlConfig",
    "SelectionConfig",
    "SignalConfig",
    "SystematicsConfig",
    "SystematicsValues",
    "TautauConfig",
    "TautauFitConfig",
    "TautauNetworksConfig",
    "TautauSelectionConfig",
    "TautauSignalConfig",
    "TautauSystematicsConfig",
    "TemplatesConfig",
    "ThetaBinningConfig",
    "ThetaRangeConfig",
    "TrackingConfig",
    "TriggerConfig",
    "TriggerControlConfig",
    "WideWindowConfig",
    "XsecGridConfig",
    "available_presets",
    "config_from_dict",
    "default_config",
    "load_config",
]
