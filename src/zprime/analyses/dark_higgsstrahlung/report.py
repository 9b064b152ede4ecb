"""The ``report`` stage of the dark Higgsstrahlung search: ``dark_higgs_summary.md``, the
figures (``figures/dh_*``) and the HEPData submission (``hepdata/``, unless
``report.hepdata: false``).

A quick run (``report.smoke_test``) says it is a smoke test and reports no significance, as the
invisible-Z' report does.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from zprime._util import atomic_path
from zprime.analyses.base import StageContext
from zprime.analyses.dark_higgsstrahlung.figures import (
    control_figure,
    limit_figures,
    projection_figure,
)
from zprime.analyses.dark_higgsstrahlung.hepdata import write_hepdata
from zprime.analyses.dark_higgsstrahlung.outputs import (
    DhControlOutput,
    DhLimitsOutput,
    DhReportOutput,
)

__all__ = ["read_limits", "stage_report", "summary_markdown"]

#: (M_A', M_h') points whose nearest hypotheses the summary lists, GeV
SUMMARY_POINTS = ((2.0, 0.5), (4.0, 1.0), (6.0, 2.0), (8.0, 1.0), (9.5, 0.5))


def read_limits(path: Path) -> dict[str, np.ndarray]:
    """The columns of ``dark_higgs_limits.csv`` (numbers as float, ``name`` as text)."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    cols: dict[str, np.ndarray] = {}
    for key in rows[0] if rows else []:
        values = [r[key] for r in rows]
        if key in ("name",):
            cols[key] = np.asarray(values)
        elif key == "extrapolated":
            cols[key] = np.asarray([v == "True" for v in values])
        else:
            cols[key] = np.asarray([float(v) for v in values])
    return cols


def _control_lines(control: dict[str, Any]) -> list[str]:
    ph = control["photon_detection"]
    edges = ph["theta_recoil_edges_deg"]
    state = "applied" if control["applied"] else "measured, not applied (control.apply: false)"
    lines = [
        f"Control samples ({state}; docs/dark_higgs_analysis.md):",
        "",
        "| recoil theta [deg] | photon missed, data | simulation | extra loss in data |",
        "| --- | ---: | ---: | ---: |",
    ]

    def f(v: float | None, d: int = 4) -> str:
        return "-" if v is None else f"{v:.{d}f}"

    for i in range(len(edges) - 1):
        extra = (
            "no events (too few)"
            if ph["fallback"][i]
            else f"{ph['extra'][i]:+.4f} +- {ph['extra_err'][i]:.4f}"
        )
        lines.append(
            f"| {edges[i]:.0f}-{edges[i + 1]:.0f} | {f(ph['eff_data'][i])} "
            f"| {f(ph['eff_sim'][i])} | {extra} |"
        )
    lines.append("")
    for key, norm in control["normalisation"].items():
        fb = f" (fallback: {norm['reason']})" if norm["fallback"] else ""
        shape = norm["shape"]
        lines.append(
            f"- {norm['sample']} data / simulation = {f(norm['ratio'], 3)} +- "
            f"{f(norm['ratio_err'], 3)}, applied to {key}{fb}; shape spread over M_mumu "
            f"{'-' if shape is None else f'{100 * shape:.1f}%'} (talk: 9.3%)"
        )
    return [*lines, ""]


def summary_markdown(
    cols: dict[str, np.ndarray],
    significance: dict[str, float],
    luminosity_fb: float,
    smoke: bool,
    control: dict[str, Any] | None = None,
    projections: dict[str, np.ndarray] | None = None,
) -> str:
    """The Markdown summary: limits at a few points, the control samples' corrections, the
    projections and, unless a smoke test, the significance."""
    lines = ["# zprime results: dark Higgsstrahlung" + (", smoke test" if smoke else ""), ""]
    if smoke:
        lines += [
            "**A smoke test** (`zprime run --quick`): these numbers show that the chain runs; "
            "they are not physics results, and no significance is reported.",
            "",
        ]
    n = len(cols.get("m_aprime_gev", []))
    lines += [
        f"sqrt(s) = 10.58 GeV, L = {luminosity_fb:g} fb^-1; {n} (M_A', M_h') hypotheses; 90% "
        "credible upper limits (flat prior) on sigma(e+e- -> A' h') x B(A' -> mu mu) and on "
        "epsilon^2 alpha_D.",
        "",
    ]
    if not smoke and significance:
        lines += [
            f"- Largest local excess {significance['largest_local_z']:.2f} sigma at M_A' = "
            f"{significance['at_m_aprime_gev']:.3f} GeV, M_h' = "
            f"{significance['at_m_hdark_gev']:.3f} GeV; global significance "
            f"{significance['global_z']:.2f} sigma (p = {significance['global_p']:.3g}, "
            f"{significance['toys']} toys).",
            "",
        ]
    lines += [
        "| M_A' [GeV] | M_h' [GeV] | efficiency | n obs. | background | obs. sigma x B [fb] "
        "| exp. sigma x B [fb] | obs. eps^2 alpha_D |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    if n:
        for ma, mh in SUMMARY_POINTS:
            d = (cols["m_aprime_gev"] - ma) ** 2 + (cols["m_hdark_gev"] - mh) ** 2
            i = int(np.argmin(d))
            lines.append(
                f"| {cols['m_aprime_gev'][i]:.3f} | {cols['m_hdark_gev'][i]:.3f} "
                f"| {cols['efficiency'][i]:.3g} | {int(cols['n_observed'][i])} "
                f"| {cols['background'][i]:.3g} +- {cols['background_unc'][i]:.2g} "
                f"| {cols['obs_xsec_br_fb'][i]:.3g} | {cols['exp_xsec_br_fb_median'][i]:.3g} "
                f"| {cols['obs_eps2_alpha_d'][i]:.3g} |"
            )
    ok = np.isfinite(cols.get("obs_xsec_br_fb", np.zeros(0)))
    if ok.any():
        lo, hi = np.nanmin(cols["obs_xsec_br_fb"][ok]), np.nanmax(cols["obs_xsec_br_fb"][ok])
        e_lo, e_hi = (
            np.nanmin(cols["obs_eps2_alpha_d"][ok]),
            np.nanmax(cols["obs_eps2_alpha_d"][ok]),
        )
        lines += [
            "",
            f"Observed limits range over {lo:.3g}-{hi:.3g} fb (sigma x B) and "
            f"{e_lo:.3g}-{e_hi:.3g} (epsilon^2 alpha_D).",
        ]
    if control:
        lines += ["", *_control_lines(control)]
    if projections and len(projections.get("luminosity_fb", [])):
        lines += ["Projections (expected median limits; docs/dark_higgs_analysis.md):", ""]
        for lum in np.unique(projections["luminosity_fb"]):
            sel = projections["luminosity_fb"] == lum
            v = projections["exp_xsec_br_fb_median"][sel]
            e = projections["exp_eps2_alpha_d_median"][sel]
            ok = np.isfinite(v)
            if ok.any():
                lines.append(
                    f"- {lum:g} fb^-1: sigma x B {np.min(v[ok]):.3g}-{np.max(v[ok]):.3g} fb, "
                    f"epsilon^2 alpha_D {np.nanmin(e[ok]):.3g}-{np.nanmax(e[ok]):.3g}"
                )
    return "\n".join(lines) + "\n"


def stage_report(ctx: StageContext) -> DhReportOutput:
    """``dark_higgs_summary.md`` and the limit figures."""
    cfg = ctx.config
    lim: DhLimitsOutput = ctx.output("limits", DhLimitsOutput)
    ctl: DhControlOutput = ctx.output("control", DhControlOutput)
    cols = read_limits(lim.limits)
    proj = read_limits(lim.projections)
    sig = json.loads(lim.significance.read_text())
    control = json.loads(ctl.corrections.read_text())
    lumi = float(cfg.luminosity_fb)
    text = summary_markdown(cols, sig, lumi, bool(cfg.report.smoke_test), control, proj)
    target = ctx.run.root / "dark_higgs_summary.md"
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    figures = limit_figures(cols, ctx.run.figures, lumi) if len(cols) else {}
    figures["dh_control_photon"] = control_figure(control, ctx.run.figures, lumi)
    pfig = projection_figure(proj, ctx.run.figures, lumi)
    if pfig is not None:
        figures["dh_projections"] = pfig
    hepdata = None
    if cfg.report.hepdata and len(cols):
        hepdata = write_hepdata(
            lim.limits,
            lim.projections,
            ctx.run.root / "hepdata",
            luminosity_fb=lumi,
            level=cfg.dark_higgs.limits.level,
            significance_json=None if cfg.report.smoke_test else lim.significance,
            with_significance=not cfg.report.smoke_test,
        )
    ctx.console.print(text, markup=False, highlight=False)
    return DhReportOutput(target, figures, hepdata)
