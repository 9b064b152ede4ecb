"""The ``report`` stage of the tau-tau resonance search: ``tautau_summary.md``, the figures
(``figures/tt_*``, among them the efficiency between the simulated masses) and the HEPData
submission (``hepdata/``, unless ``report.hepdata: false``). A quick run
(``report.smoke_test``) says it is a smoke test."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from zprime._util import atomic_path
from zprime.analyses.base import StageContext
from zprime.analyses.tautau_resonance.figures import (
    efficiency_figure,
    limit_figures,
    projection_figure,
)
from zprime.analyses.tautau_resonance.hepdata import write_hepdata
from zprime.analyses.tautau_resonance.outputs import (
    TtLimitsOutput,
    TtReportOutput,
    TtSelectOutput,
)
from zprime.physics.leptophilic import COUPLING_NAMES, COUPLING_UNITS

__all__ = ["TABLE_MASSES", "read_limits", "stage_report", "summary_markdown"]

TABLE_MASSES: tuple[float, ...] = (4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.5, 10.0)
"""The summary's table shows the hypotheses nearest these masses (GeV), each once."""

_TEXT = ("model", "status", "method")


def read_limits(path: Path) -> dict[str, np.ndarray]:
    """The columns of ``tautau_limits.csv`` (``model``, ``status`` and ``method`` as text)."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    cols: dict[str, np.ndarray] = {}
    for key in rows[0] if rows else []:
        vals = [r[key] for r in rows]
        cols[key] = np.asarray(vals) if key in _TEXT else np.asarray(vals, float)
    return cols


def summary_markdown(
    cols: dict[str, np.ndarray],
    luminosity_fb: float,
    smoke: bool,
    control: dict[str, Any] | None = None,
    projections: dict[str, np.ndarray] | None = None,
    injected: str | None = None,
) -> str:
    """Limits per model: the range over the masses and a few masses; the control sample; the
    best projected expected limits; the injected signal, if any."""
    lines = ["# zprime results: tau-tau resonance" + (", smoke test" if smoke else ""), ""]
    if smoke:
        lines += [
            "**A smoke test** (`zprime run --quick`): these numbers show that the chain runs; "
            "they are not physics results.",
            "",
        ]
    if injected:
        lines += [f"**The pseudo-data hold an injected signal**: {injected}.", ""]
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
        sel = np.flatnonzero(cols["model"] == model)
        nearest = [int(sel[np.argmin(np.abs(cols["mass_gev"][sel] - t))]) for t in TABLE_MASSES]
        for i in dict.fromkeys(nearest):
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
            f"Control sample ({control['sample']}): {control['data']:.0f} data candidates, "
            f"{control['simulation']:.4g} simulated, data / simulation = "
            f"{control['ratio']:.3f} +- {control['ratio_err']:.3f}.",
        ]
    if projections is not None and len(projections.get("model", [])):
        lines += ["", "Projected median expected sigma x B limits (best mass, per model):", ""]
        for lum in np.unique(projections["luminosity_fb"]):
            parts = []
            for model in dict.fromkeys(projections["model"].tolist()):
                sel = (projections["model"] == model) & (projections["luminosity_fb"] == lum)
                v = projections["exp_xsec_br_fb_median"][sel]
                v = v[np.isfinite(v)]
                if v.size:
                    parts.append(f"{model} {np.min(v):.3g} fb")
            if parts:
                lines.append(f"- {lum:g} fb^-1: {', '.join(parts)}")
    return "\n".join(lines) + "\n"


def stage_report(ctx: StageContext) -> TtReportOutput:
    """``tautau_summary.md``, the limit and projection figures and the HEPData submission."""
    lim: TtLimitsOutput = ctx.output("limits", TtLimitsOutput)
    sel: TtSelectOutput = ctx.output("select", TtSelectOutput)
    cols = read_limits(lim.limits)
    lumi = float(ctx.config.luminosity_fb)
    control = json.loads(sel.control.read_text())
    proj = read_limits(lim.projections)
    pcfg = ctx.config.pseudo_data
    injected = None
    if pcfg.inject_mass_gev is not None and pcfg.inject_xsec_fb > 0:
        injected = (
            f"{ctx.config.tautau.inject_model} at M_X = {pcfg.inject_mass_gev:g} GeV, "
            f"sigma x B = {pcfg.inject_xsec_fb:g} fb"
        )
    text = summary_markdown(
        cols,
        lumi,
        bool(ctx.config.report.smoke_test),
        control,
        proj,
        injected,
    )
    target = ctx.run.root / "tautau_summary.md"
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    figures = limit_figures(cols, ctx.run.figures, lumi) if len(cols) else {}
    pfig = projection_figure(cols, proj, ctx.run.figures, lumi) if len(cols) else None
    if pfig is not None:
        figures["tt_projections"] = pfig
    efig = efficiency_figure(read_limits(lim.efficiency_check), ctx.run.figures, lumi)
    if efig is not None:
        figures["tt_efficiency_check"] = efig
    hepdata = None
    if ctx.config.report.hepdata and len(cols) and np.isfinite(cols["obs_xsec_br_fb"]).any():
        hepdata = write_hepdata(
            lim.limits,
            lim.bias,
            lim.projections,
            ctx.run.root / "hepdata",
            luminosity_fb=lumi,
            level=ctx.config.tautau.fit.level,
            half_width=ctx.config.tautau.fit.half_width,
        )
    ctx.console.print(text, markup=False, highlight=False)
    return TtReportOutput(target, figures, hepdata)
