"""The typed outputs of the tau-tau resonance search's stages (recorded in ``stages/``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zprime.io.rundir import StageOutput

__all__ = ["TtLimitsOutput", "TtReportOutput", "TtSelectOutput", "TtTrainOutput"]


@dataclass(frozen=True)
class TtSelectOutput(StageOutput):
    """``select``: the pre-selected events by group (signal by point label, backgrounds and the
    pseudo-data's samples by name); the pion-pair control sample beside them."""

    signal: dict[str, Path]
    backgrounds: dict[str, Path]
    data: dict[str, Path]
    control: Path


@dataclass(frozen=True)
class TtTrainOutput(StageOutput):
    """``train``: the range classifiers (by range index) and their summary."""

    networks: dict[str, Path]
    summary: Path


@dataclass(frozen=True)
class TtLimitsOutput(StageOutput):
    """``limits``: limits per (model, mass), the fit-bias study, the projections and the
    efficiency between the simulated masses (``stages.efficiency_check``)."""

    limits: Path
    bias: Path
    projections: Path
    efficiency_check: Path


@dataclass(frozen=True)
class TtReportOutput(StageOutput):
    """``report``: the summary, the figures and the HEPData archive (None when switched
    off)."""

    summary: Path
    figures: dict[str, Path]
    hepdata: Path | None
