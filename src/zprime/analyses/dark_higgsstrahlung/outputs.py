"""The typed outputs of the dark Higgsstrahlung search's stages (recorded in ``stages/``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zprime.io.rundir import StageOutput

__all__ = [
    "DhControlOutput",
    "DhLimitsOutput",
    "DhReportOutput",
    "DhSelectOutput",
    "DhWindowsOutput",
]


@dataclass(frozen=True)
class DhSelectOutput(StageOutput):
    """``select``: the selected events' observables by group (signal by point label,
    backgrounds and the pseudo-data's samples by name), and the control samples' events of
    the backgrounds and the data (``controls["backgrounds"]``, ``controls["data"]``, by
    sample name)."""

    signal: dict[str, Path]
    backgrounds: dict[str, Path]
    data: dict[str, Path]
    controls: dict[str, dict[str, Path]]


@dataclass(frozen=True)
class DhControlOutput(StageOutput):
    """``control``: the control samples' measurements and corrections
    (``dark_higgs_control.json``)."""

    corrections: Path


@dataclass(frozen=True)
class DhWindowsOutput(StageOutput):
    """``windows``: the fitted windows of the simulated points and the hypothesis grid with its
    interpolated windows and efficiencies."""

    points: Path
    hypotheses: Path


@dataclass(frozen=True)
class DhLimitsOutput(StageOutput):
    """``limits``: counts, limits and significances per hypothesis; the global significance."""

    limits: Path
    significance: Path
    projections: Path


@dataclass(frozen=True)
class DhReportOutput(StageOutput):
    """``report``: the summary, the figures and the HEPData archive (None when switched
    off)."""

    summary: Path
    figures: dict[str, Path]
    hepdata: Path | None
