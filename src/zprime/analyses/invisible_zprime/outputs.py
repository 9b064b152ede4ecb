"""The typed outputs of the invisible-Z' analysis's stages (recorded in ``stages/<stage>.json``
through :func:`zprime.io.rundir.to_manifest`, paths relative to the run directory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zprime.io.rundir import StageOutput

__all__ = [
    "ControlOutput",
    "FitOutput",
    "ReportOutput",
    "SelectOutput",
    "TemplateOutput",
    "TrainOutput",
]


@dataclass(frozen=True)
class SelectOutput(StageOutput):
    """``select``: every sample selected without the network (``signal`` by mass label,
    ``backgrounds`` and ``data`` by sample name), the signal also without the M^2-dependent
    theta_recoil cut (``signal_notheta``: the templates move it to every hypothesis), and the
    cut flows."""

    signal: dict[str, Path]
    backgrounds: dict[str, Path]
    data: dict[str, Path]
    signal_notheta: dict[str, Path]
    cutflows: Path


@dataclass(frozen=True)
class TrainOutput(StageOutput):
    """``train``: the measured resolution model, the network (``None`` when disabled), the
    final selection of every sample and the selection's diagnostics (by name)."""

    resolution: Path
    model: Path | None
    signal: dict[str, Path]
    backgrounds: dict[str, Path]
    data: dict[str, Path]
    signal_notheta: dict[str, Path]
    cutflows: Path
    diagnostics: dict[str, Path]


@dataclass(frozen=True)
class ControlOutput(StageOutput):
    """``control``: the control-sample files by name (``corrections`` among them unless the
    measurement could not run), and per background of the photon-veto correction that sample
    re-selected without the veto and re-weighted with the measured correction (``M^2``,
    ``theta^CM``, weight; empty when the measured extra loss is zero)."""

    files: dict[str, Path]
    photon_veto_reweighted: dict[str, Path]

    @property
    def corrections(self) -> Path | None:
        """``corrections.json``, if written."""
        return self.files.get("corrections")


@dataclass(frozen=True)
class TemplateOutput(StageOutput):
    """``template``: the observed (pseudo-)data, the resolution model used and the template
    folders of the narrow and (if configured) wide scans."""

    data: Path
    resolution: Path
    templates: dict[str, Path]


@dataclass(frozen=True)
class FitOutput(StageOutput):
    """``fit``: per scan label the limits table, the workspaces and the significance summary;
    the systematics-impact tables."""

    limits: dict[str, Path]
    workspaces: dict[str, Path]
    summaries: dict[str, dict[str, Any]]
    impact: dict[str, Path]


@dataclass(frozen=True)
class ReportOutput(StageOutput):
    """``report``: the results tables, figures, projections and HEPData submission."""

    tables: dict[str, Path]
    figures: dict[str, Path]
    projections: dict[str, Path]
    hepdata: Path | None
