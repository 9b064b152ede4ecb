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
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zprime.errors import ConfigError

__all__ = [
    "Config",
    "SignalConfig",
    "XsecGridConfig",
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
        default_factory=lambda: [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        min_length=1,
        description="Z' masses at which signal samples are generated, GeV",
    )
    events_per_mass: int = Field(20000, gt=0, description="unweighted events per mass point")
    xsec_grid: XsecGridConfig = Field(default_factory=XsecGridConfig)

    @field_validator("masses_gev")
    @classmethod
    def _masses_in_range(cls, masses: list[float]) -> list[float]:
        from zprime.constants import M_MUON, SQRT_S

        upper = SQRT_S - 2.0 * M_MUON
        for m in masses:
            if not 0.0 < m < upper:
                raise ValueError(f"Z' mass {m} GeV outside (0, {upper:.4f}) GeV")
        return sorted(masses)


# --- backgrounds section (issue 4: zprime.backgrounds) ---

# --- detector section (issue 4: zprime.detector) ---


class Config(_Strict):
    """A complete zprime configuration."""

    version: int = Field(1, ge=1, le=1, description="schema version of this configuration")
    seed: int = Field(20230607, ge=0, lt=2**63, description="master random seed of the run")
    luminosity_fb: float = Field(
        79.7, gt=0.0, description="integrated luminosity, fb^-1 (PRL: 79.7 fb^-1, 2019-2020)"
    )
    signal: SignalConfig = Field(default_factory=SignalConfig)
    # backgrounds field (issue 4)
    # detector field (issue 4)

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


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Load a YAML configuration file merged over the defaults.

    Parameters
    ----------
    path
        YAML file; ``None`` gives the defaults.
    **overrides
        Dotted-path overrides applied last, e.g. ``{"signal.isr": False}`` passed as
        ``load_config(None, **{"signal.isr": False})``.

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or a field fails validation.
    """
    data: dict[str, Any] = {}
    source = "config"
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
    for dotted, value in overrides.items():
        node = data
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return config_from_dict(data, source=source)
