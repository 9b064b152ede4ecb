"""The ``fit`` and ``report`` stages of the invisible-Z' search.

``fit``     one pyhf workspace per hypothesis window (``workspaces_<label>/``), the scan of the
            statistics engine (:mod:`zprime.stats.scan`: limits, toy bands, local and global
            significance, goodness of fit; ``limits_<label>.csv``, ``significance_<label>.json``)
            and the cost of each systematic uncertainty (``systematics_impact.csv``/``.md``)
``report``  the results table (``limits.csv``, ``limits.parquet``, ``summary.md``), figures
            (``figures/``), projections (``projections/``) and HEPData (``hepdata/``)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from zprime._util import atomic_path, write_json_atomic
from zprime.analyses.base import StageContext
from zprime.analyses.invisible_zprime import figures
from zprime.analyses.invisible_zprime.hepdata import write_hepdata
from zprime.analyses.invisible_zprime.outputs import FitOutput, ReportOutput, TemplateOutput
from zprime.analyses.invisible_zprime.projections import projections_from_config
from zprime.analyses.invisible_zprime.results import build_results, write_results
from zprime.analyses.invisible_zprime.spectra import spectra_figures
from zprime.analyses.invisible_zprime.templates import read_templates
from zprime.errors import InputError
from zprime.io.tables import write_csv
from zprime.stats import build_workspace, write_workspace
from zprime.stats.scan import hypothesis_rows, scan, scan_summary, systematics_impact

__all__ = ["IMPACT_VARIANTS", "stage_fit", "stage_report"]

#: the systematic uncertainties whose cost the fit stage measures, and how each is switched off
#: in a window's systematics table (``None``: every entry set to zero)
IMPACT_VARIANTS: dict[str, dict[str, Any]] = {
    "signal efficiency": {"signal_efficiency": None},
    "signal shape": {"signal_shape": 0.0},
    "background shape": {"background_shape": None},
    "photon-veto shape": {"photon_veto_shape": (0.0, 0.0)},
    "luminosity": {"luminosity": 0.0},
    "MC statistics": {"mc_stat": False},
}


def _fit_scan(ctx: StageContext, folder: Path, label: str) -> dict[str, Any]:
    """Workspaces, limits and significances of every window of one template set."""
    cfg = ctx.config
    tset = read_templates(folder)
    ws_dir = ctx.run.workspaces(label)
    specs, names, metas = [], [], []
    failed: list[dict[str, Any]] = []
    for w in tset.windows:
        meta = w.metadata()
        try:
            spec = build_workspace(
                **w.workspace_inputs(cfg.templates.merge_backgrounds),
                background_floor=cfg.fit.background_floor,
            )
        except InputError as err:
            failed.append(
                {
                    "name": w.name,
                    "mass_gev": meta["mass_gev"],
                    "status": "failed",
                    "message": str(err),
                }
            )
            continue
        write_workspace(ws_dir / f"{w.name}.json", spec, meta)
        specs.append(spec)
        names.append(w.name)
        metas.append(meta)
    limits = scan(
        specs,
        names,
        method="bayesian" if cfg.fit.limits == "bayesian" else "cls",
        toys=cfg.fit.toys,
        seed=cfg.seed,
        bayesian_level=cfg.fit.bayesian_level,
        bayesian_samples=cfg.fit.bayesian_samples,
        bayesian_local_samples=cfg.fit.bayesian_local_samples,
        bayesian_toys=cfg.fit.bayesian_toys,
        executor=ctx.executor,
        workers=ctx.workers,
        progress=ctx.progress,
    )
    rows = failed + hypothesis_rows(
        specs,
        limits,
        [{"mass_gev": m["mass_gev"]} for m in metas],
        [
            {
                "signal_efficiency": float(eff)
                if (eff := m.get("signal_efficiency")) is not None
                else float("nan"),
                "extrapolated": bool(m.get("extrapolated", False)),
            }
            for m in metas
        ],
    )
    for name, reason in tset.failed.items():
        rows.append(
            {
                "name": name,
                "mass_gev": tset.failed_mass.get(name, float("nan")),
                "status": "failed",
                "message": reason,
            }
        )
    rows.sort(key=lambda r: r["mass_gev"])
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    full = [
        {k: r.get(k, float("nan") if k not in ("status", "message", "name") else "") for k in keys}
        for r in rows
    ]
    limits_csv = write_csv(ctx.run.scan_limits(label), full)
    summary = scan_summary(full)
    write_json_atomic(ctx.run.significance(label), summary)
    if cfg.report.smoke_test:  # a quick run's significances mean nothing (ResultsTable.smoke_test)
        ctx.console.print(
            f"{label}: {summary.get('hypotheses')} hypotheses, {summary.get('failed')} failed "
            "(smoke test: no significance)"
        )
    else:
        ctx.console.print(f"{label}: {summary}")
    return {"limits": limits_csv, "workspaces": ws_dir, "summary": summary}


def _systematics_impact(ctx: StageContext, folder: Path) -> dict[str, Path]:
    """Median expected limit at a few masses with all systematics, with none (statistics only)
    and with each one left out: how much each uncertainty costs (PRL: below 6 GeV the
    systematics degrade the limits by less than 5%, above by about 40%)."""
    cfg = ctx.config
    windows = read_templates(folder).windows
    if not windows or not cfg.fit.impact_masses_gev:
        return {}
    masses = np.array([w.window.mass_gev for w in windows])
    chosen = sorted({int(np.argmin(np.abs(masses - m))) for m in cfg.fit.impact_masses_gev})

    def zeroed(table: Any, changes: dict[str, Any]) -> Any:
        upd = {
            k: (tuple(0.0 for _ in getattr(table, k)) if v is None else v)
            for k, v in changes.items()
        }
        return dataclasses.replace(table, **upd)

    everything = {k: v for d in IMPACT_VARIANTS.values() for k, v in d.items()}
    variants = {
        "all": {},
        "statistics only": everything,
        **{f"without {k}": v for k, v in IMPACT_VARIANTS.items()},
    }
    specs: dict[str, dict[str, dict[str, Any]]] = {}
    for i in chosen:
        w = windows[i]
        specs[w.name] = {}
        for label, changes in variants.items():
            wv = dataclasses.replace(w, systematics=zeroed(w.systematics, changes))
            specs[w.name][label] = build_workspace(
                **wv.workspace_inputs(cfg.templates.merge_backgrounds),
                background_floor=cfg.fit.background_floor,
            )
    impact = systematics_impact(specs, list(IMPACT_VARIANTS))
    rows = []
    for i in chosen:
        w = windows[i]
        r = impact[w.name]
        row: dict[str, Any] = {
            "mass_gev": w.window.mass_gev,
            "expected_all_fb": r["expected_all_fb"],
            "expected_stat_only_fb": r["expected_stat_only_fb"],
            "degradation_all": r["degradation_all"],
        }
        for k in IMPACT_VARIANTS:
            row[f"cost_{k.replace(' ', '_').replace('-', '_')}"] = r[f"cost_{k}"]
        rows.append(row)
    csv_path = write_csv(ctx.run.systematics_impact_csv, rows)
    lines = [
        "Effect of the systematic uncertainties on the median expected 90% CL limit",
        "",
        "degradation = limit with all systematics / statistics-only limit - 1; cost of one = "
        "limit with all / limit without that one - 1 (PRL: < 5% below 6 GeV, ~40% above).",
        "",
        "| M (GeV) | stat. only (fb) | all (fb) | degradation | "
        + " | ".join(IMPACT_VARIANTS)
        + " |",
        "| --- " * (4 + len(IMPACT_VARIANTS)) + "|",
    ]
    for r in rows:
        costs = [v for k, v in r.items() if k.startswith("cost_")]
        lines.append(
            f"| {r['mass_gev']:.3f} | {r['expected_stat_only_fb']:.4g} | "
            f"{r['expected_all_fb']:.4g} | {100 * r['degradation_all']:.1f}% | "
            + " | ".join(f"{100 * c:.1f}%" for c in costs)
            + " |"
        )
    md_path = ctx.run.systematics_impact_md
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    ctx.console.print("\n".join(lines[4:]))
    return {"csv": csv_path, "md": md_path}


def stage_fit(ctx: StageContext) -> FitOutput:
    """Limits and significances of the narrow and (if configured) wide scans, and the
    systematics impact on the narrow one."""
    tpl: TemplateOutput = ctx.output("template", TemplateOutput)
    scans = {label: _fit_scan(ctx, folder, label) for label, folder in tpl.templates.items()}
    return FitOutput(
        limits={k: v["limits"] for k, v in scans.items()},
        workspaces={k: v["workspaces"] for k, v in scans.items()},
        summaries={k: v["summary"] for k, v in scans.items()},
        impact=_systematics_impact(ctx, tpl.templates["narrow"]),
    )


def stage_report(ctx: StageContext) -> ReportOutput:
    """Results tables (CSV, Parquet, Markdown), figures, projections and HEPData."""
    cfg = ctx.config
    fit: FitOutput = ctx.output("fit", FitOutput)
    tpl: TemplateOutput = ctx.output("template", TemplateOutput)
    table = build_results(ctx.run, cfg)
    tables = write_results(table, ctx.run)
    figs: dict[str, Path] = {
        p.stem: p
        for p in figures.result_figures(table, ctx.run.figures, prefix="")
        if p.suffix == ".png"
    }
    figs.update(spectra_figures(ctx.run, ctx.run.figures, cfg))
    projections: dict[str, Path] = {}
    if cfg.projections.luminosities_fb:
        written = projections_from_config(tpl.templates["narrow"], cfg, ctx.run.projections)
        projections = {k: Path(v) for k, v in written.items()}
    hepdata: Path | None = None
    if cfg.report.hepdata:
        hepdata = write_hepdata(
            ctx.run.limits,
            ctx.run.hepdata,
            workspaces={k: v for k, v in fit.workspaces.items() if v.is_dir()},
            luminosity_fb=cfg.luminosity_fb,
            config_summary={
                "seed": cfg.seed,
                "luminosity_fb": cfg.luminosity_fb,
                "limits": cfg.fit.limits,
                "toys": cfg.fit.toys,
            },
        )
    if ctx.run.summary.is_file():
        ctx.console.print(ctx.run.summary.read_text())
    return ReportOutput(
        tables={k: Path(v) for k, v in tables.items()},
        figures=figs,
        projections=projections,
        hepdata=hepdata,
    )
