"""The root :class:`Config` and its loading: shipped defaults, presets, files and overrides.

Owns the complete configuration model (:class:`Config`, one field per section of the other
modules of :mod:`zprime.config`), its validation from a mapping merged over the shipped
``zprime/data/default.yaml`` (:func:`config_from_dict`, :func:`default_config`), the shipped
presets of ``zprime/data/presets/`` (:func:`available_presets`) and :func:`load_config` (defaults,
then preset, then file, then dotted overrides).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from zprime.config.analysis import BinningConfig, PunziNetConfig, SelectionConfig, TemplatesConfig
from zprime.config.base import _deep_merge, _format_validation_error, _Strict
from zprime.config.control import ControlConfig
from zprime.config.dark_higgs import DarkHiggsConfig
from zprime.config.results import (
    FitConfig,
    ObservedDataConfig,
    ProjectionsConfig,
    PseudoDataConfig,
    ReportConfig,
)
from zprime.config.samples import BackgroundsConfig, DetectorSection, SignalConfig
from zprime.config.tautau import TautauConfig
from zprime.errors import ConfigError

__all__ = ["Config", "available_presets", "config_from_dict", "default_config", "load_config"]


class Config(_Strict):
    """A complete zprime configuration."""

    version: int = Field(1, ge=1, le=1, description="schema version of this configuration")
    analysis: str = Field(
        "invisible_zprime",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="the search this configuration runs (zprime.analyses.registry; a preset "
        "such as pilot2018 is a configuration of one)",
    )
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
    # the dark Higgsstrahlung search (issue 17; read by zprime.analyses.dark_higgsstrahlung)
    dark_higgs: DarkHiggsConfig = Field(default_factory=DarkHiggsConfig)
    # the tau-tau resonance search (issue 19; read by zprime.analyses.tautau_resonance)
    tautau: TautauConfig = Field(default_factory=TautauConfig)
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
