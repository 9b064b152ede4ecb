"""The shared base of the configuration models and their small shared helpers.

Owns the strict pydantic base model every section derives from (:class:`_Strict`: unknown keys
are errors, assignments are validated), the increasing-range validator and its type
(:func:`_check_range`, :data:`DegRange`), the key-by-key merge of configuration mappings
(:func:`_deep_merge`, used by the loader and by the detector configurations' ``based_on``) and the
one-line formatting of a pydantic validation error (:func:`_format_validation_error`).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["DegRange"]


class _Strict(BaseModel):
    """Base model: unknown keys are errors, values are validated on assignment too, and no
    number may be NaN or infinite (no field of the analysis has a meaning for them)."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False
    )


def _check_range(value: tuple[float, float]) -> tuple[float, float]:
    """``value`` if its two ends increase (ValueError otherwise)."""
    lo, hi = value
    if not lo < hi:
        raise ValueError(f"range must be increasing, got [{lo}, {hi}]")
    return value


DegRange = tuple[float, float]


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base``: mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation_error(err: ValidationError, source: str) -> str:
    """The first error of ``err`` as one line naming the dotted field (and how many more)."""
    first = err.errors()[0]
    # a key may hold any character (a YAML key "\n"): escaped, so the message stays one line
    field = ".".join(str(p) for p in first["loc"]).encode("unicode_escape").decode() or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    elif "input" in first and not isinstance(first["input"], dict | list):
        msg = f"{msg} (got {first['input']!r})"
    more = len(err.errors()) - 1
    tail = f" (+{more} more)" if more > 0 else ""
    return f"{source}: config field '{field}': {msg}{tail}"
