"""The ``report`` stage of the tau-tau resonance search: ``tautau_summary.md`` and the figures
(``figures/tt_*``). A quick run (``report.smoke_test``) says it is a smoke test."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from zprime._util import atomic_path
from zprime.analyses.base import StageContext
from zprime.analyses.tautau_resonance.figures import limit_figures
from zprime.analyses.tautau_resonance.outputs import (
    TtLimitsOutput,
    TtReportOutput,
    TtSelectOutput,
)
from zprime.physics.leptophilic import COUPLING_NAMES, COUPLING_UNITS

__all__ = ["read_limits", "stage_report", "summary_markdown"]


def read_limits(path: Path) -> dict[str, np.ndarray]:
    """The columns of ``tautau_limits.csv`` (``model`` and ``status`` as text)."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    cols: dict[str, np.ndarray] = {}
    for key in rows[0] if rows else []:
        vals = [r[key] for r in rows]
        cols[key] = np.asarray(vals) if key in ("model", "status") else np.asarray(vals, float)
    return cols


def summary_markdown(
    cols: dict[str, np.ndarray],
    luminosity_fb: float,
    smoke: bool,
    control: dict[str, Any] | None = None,
) -> str:
    """Limits per model: the range over the masses and a few masses; the control sample."""
    lines = ["# zprime results: tau-tau resonance" + (", smoke test" if smoke else ""), ""]
    if smoke:
        lines += [
            "**A smoke test** (`zprime run --quick`): these numbers show that the chain runs; "
            "they are not physics results.",
            "",
        ]
    lines += [
        f"sqrt(s) = 10.58 GeV, L = {luminosity_fb:g} fb^-1; 90% CL (CLs) upper limits on "
        "sigma(e+e- -> mu mu X) x B(X -> tau tau) and on the couplings.",
        "",
        "| model | M_X [GeV] | efficiency | n obs. | obs. sigma x B [fb] | exp. [fb] | obs. "
        "coupling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    if not len(cols.get("model", [])):
        return "\n".join(lines) + "\n"
    for model in dict.fromkeys(cols["model"].tolist()):
        sel = cols["model"] == model
        for target in (4.0, 6.0, 8.0, 9.5):
            i = np.flatnonzero(sel)[np.argmin(np.abs(cols["mass_gev"][sel] - target))]
            unit = COUPLING_UNITS[model]
            lines.append(
                f"| {model} | {cols['mass_gev'][i]:.3f} | {cols['efficiency'][i]:.3g} "
                f"| {int(cols['n_observed'][i])} | {cols['obs_xsec_br_fb'][i]:.3g} "
                f"| {cols['exp_xsec_br_fb_median'][i]:.3g} | {COUPLING_NAMES[model]} = "
                f"{cols['obs_coupling'][i]:.3g}{' ' + unit if unit else ''} |"
            )
    ok = np.isfinite(cols["obs_xsec_br_fb"])
    if ok.any():
        lines += [
            "",
            f"Observed sigma x B limits: {np.min(cols['obs_xsec_br_fb'][ok]):.3g}-"
            f"{np.max(cols['obs_xsec_br_fb'][ok]):.3g} fb.",
        ]
    if control:
        lines += [
            "",
            f"Control sample ({control['sample']}): {control['data']:.0f} data events, "
            f"{control['simulation']:.4g} simulated, data / simulation = "
            f"{control['ratio']:.3f} +- {control['ratio_err']:.3f}.",
        ]
    return "\n".join(lines) + "\n"


def stage_report(ctx: StageContext) -> TtReportOutput:
    """``tautau_summary.md`` and the limit figures."""
    lim: TtLimitsOutput = ctx.output("limits", TtLimitsOutput)
    sel: TtSelectOutput = ctx.output("select", TtSelectOutput)
    cols = read_limits(lim.limits)
    lumi = float(ctx.config.luminosity_fb)
    control = json.loads(sel.control.read_text())
    text = summary_markdown(cols, lumi, bool(ctx.config.report.smoke_test), control)
    target = ctx.run.root / "tautau_summary.md"
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    figures = limit_figures(cols, ctx.run.figures, lumi) if len(cols) else {}
    ctx.console.print(text, markup=False, highlight=False)
    return TtReportOutput(target, figures)
