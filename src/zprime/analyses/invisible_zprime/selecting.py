"""The ``select`` and ``train`` stages of the invisible-Z' search and the selection's checks.

``select``   every reconstructed sample through the selection without the Punzi-net
             (``selected/presel/``, cut flows); the signal also without the M^2-dependent
             theta_recoil cut (the templates move the signal to every hypothesis and re-apply it)
``train``    the measured M_recoil^2 resolution (``resolution.json``), the Punzi-net trained in
             windows of it (``punzinet.pt``), applied to every sample with its weight, the final
             selection (``selected/final/``) and its diagnostics (``selection/``): the signal
             efficiency, the background composition, the theta_recoil^CM - M_recoil^2 plane and
             the network's figure of merit (PRL: efficiency ~5% and nearly flat, tau tau removed
             below 50 GeV^2, mu mu (gamma) bands, sensitivity gain 5-15)
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from zprime._util import atomic_path
from zprime.analyses.base import SimulateOutput, StageContext
from zprime.analyses.invisible_zprime import figures
from zprime.analyses.invisible_zprime.binning import resolution_model_from_config
from zprime.analyses.invisible_zprime.outputs import SelectOutput, TrainOutput
from zprime.analyses.invisible_zprime.selection import select_file
from zprime.analyses.invisible_zprime.templates import SimulatedSignal
from zprime.io.events import read_events, read_metadata, transform_file
from zprime.io.tables import write_csv
from zprime.report import plots

__all__ = ["stage_select", "stage_train"]

#: M_recoil^2 ranges (GeV^2) of the background-composition tables: the PRL's regions (below
#: 1 GeV^2, the mu mu (gamma) region 9-36 GeV^2, the tau tau region above 50 GeV^2)
COMPOSITION_RANGES = ((-0.5, 1.0), (1.0, 9.0), (9.0, 36.0), (36.0, 50.0), (50.0, 81.0))
#: M_recoil^2 bins (GeV^2) of the background-composition figures: 0.5 GeV^2 wide
COMPOSITION_EDGES = np.linspace(-0.5, 81.0, 164)


def stage_select(ctx: StageContext) -> SelectOutput:
    """The selection without the network of every sample (see the module docstring)."""
    cfg = ctx.config
    reco: SimulateOutput = ctx.output("simulate", SimulateOutput)
    presel = ctx.run.selected("presel")
    lumi = cfg.luminosity_fb
    groups: dict[str, dict[str, Path]] = {"signal": {}, "backgrounds": {}}
    flows = []
    for group in ("signal", "backgrounds"):
        for key, path in getattr(reco, group).items():
            target, flow = select_file(
                path, presel, cfg.selection, luminosity_fb=lumi, skip=["punzinet"]
            )
            groups[group][key] = target
            flows.append(flow)
    data = {}
    for key, path in reco.data.items():
        target, _ = select_file(
            path,
            ctx.run.selected("data_presel"),
            cfg.selection,
            luminosity_fb=lumi,
            skip=["punzinet"],
        )
        data[key] = target
    notheta = {}
    for key, path in reco.signal.items():
        target, _ = select_file(
            path,
            ctx.run.selected("presel_notheta"),
            cfg.selection,
            luminosity_fb=lumi,
            skip=["punzinet", "theta_recoil"],
        )
        notheta[key] = target
    cutflows = presel / "cutflows.md"
    with atomic_path(cutflows) as tmp:
        tmp.write_text("\n".join(f.to_markdown() for f in flows))
    return SelectOutput(groups["signal"], groups["backgrounds"], data, notheta, cutflows)


def stage_train(ctx: StageContext) -> TrainOutput:
    """The resolution, the network and the final selection (see the module docstring)."""
    cfg = ctx.config
    presel: SelectOutput = ctx.output("select", SelectOutput)
    # the M_recoil^2 resolution is a property of the detector: measured on the signal before
    # the network cut (and before the M^2-dependent theta_recoil cut), where the samples are
    # largest. The network's windows and the fit's use this one model (resolution.json).
    notheta = [SimulatedSignal.read(p) for p in presel.signal_notheta.values()]
    resolution = resolution_model_from_config(cfg.binning, {s.mass: s.residuals for s in notheta})
    resolution_path = resolution.save(ctx.run.resolution)
    # no network (``punzinet`` in selection.disabled, e.g. the pilot2018 preset): nothing is
    # trained; the final selection is the preselection (every enabled step but the network)
    # and the output carries ``model: None``. Otherwise the network is applied below to every
    # event of every sample with its original weight: the training/test split only serves the
    # training and its figure of merit.
    model: Any = None
    model_path: Path | None = None
    if "punzinet" not in cfg.selection.disabled:
        # lazy: the network's package imports torch (heavy), needed only when one is trained
        import zprime.analyses.invisible_zprime.punzinet as punzinet

        signals, background = punzinet.read_training_files(
            list(presel.signal.values()), list(presel.backgrounds.values())
        )
        model = punzinet.train(
            signals,
            background,
            config=cfg.punzinet,
            luminosity_fb=cfg.luminosity_fb,
            resolution=resolution,
            progress=ctx.progress,
            cut=cfg.selection.punzinet_min,
        )
        del signals, background  # the training copies (GBs at 10x the luminosity)
        model_path = punzinet.save(model, ctx.run.network)
    else:
        ctx.console.print("train: 'punzinet' is disabled; final selection = preselection")

    def select_scored(src: Path, folder: str, out_dir: Path, **kwargs: Any) -> Path:
        """The final selection of ``src`` scored by the network; the scored copy is an
        intermediate (a full copy of the preselection: 1-2 GB for samples at 10x the
        luminosity) and is removed once the selection is written."""
        path = src
        if model is not None:
            path = ctx.run.selected(folder) / src.name
            transform_file(src, path, partial(punzinet.apply, model))
        try:
            return select_file(
                path, out_dir, cfg.selection, luminosity_fb=cfg.luminosity_fb, **kwargs
            )
        finally:
            if path != src:
                path.unlink(missing_ok=True)

    final_dir = ctx.run.selected("final")
    groups: dict[str, dict[str, Path]] = {"signal": {}, "backgrounds": {}}
    flows = []
    for group in ("signal", "backgrounds"):
        for key, path in getattr(presel, group).items():
            target, flow = select_scored(path, "scored", final_dir)
            groups[group][key] = target
            flows.append(flow)
    data = {
        key: select_scored(path, "data_scored", ctx.run.selected("data_final"))[0]
        for key, path in presel.data.items()
    }
    notheta_final = {
        key: select_scored(
            path, "scored_notheta", ctx.run.selected("final_notheta"), skip=["theta_recoil"]
        )[0]
        for key, path in presel.signal_notheta.items()
    }
    cutflows = final_dir / "cutflows.md"
    with atomic_path(cutflows) as tmp:
        tmp.write_text("\n".join(f.to_markdown() for f in flows))
    diagnostics = selection_diagnostics(
        ctx.run.selection,
        presel_signal=presel.signal,
        presel_backgrounds=presel.backgrounds,
        final_signal=groups["signal"],
        final_backgrounds=groups["backgrounds"],
        model=model,
        luminosity_fb=cfg.luminosity_fb,
        events_per_mass=cfg.signal.events_per_mass,
        punzinet_cut=cfg.selection.punzinet_min,
    )
    return TrainOutput(
        resolution=resolution_path,
        model=model_path,
        signal=groups["signal"],
        backgrounds=groups["backgrounds"],
        data=data,
        signal_notheta=notheta_final,
        cutflows=cutflows,
        diagnostics=diagnostics,
    )


def selection_diagnostics(
    out_dir: Path,
    *,
    presel_signal: dict[str, Path],
    presel_backgrounds: dict[str, Path],
    final_signal: dict[str, Path],
    final_backgrounds: dict[str, Path],
    model: Any,
    luminosity_fb: float,
    events_per_mass: int,
    punzinet_cut: float,
) -> dict[str, Path]:
    """The checks of the selection and the network, written to ``out_dir``.

    Without a network (``model`` None: ``punzinet`` disabled) the final selection is the
    preselection: the figures are labelled so and the network's figure of merit is skipped.
    """
    lumi = luminosity_fb
    written: dict[str, Path] = {}
    cols = ["m_recoil2", "theta_recoil_cm", "weight"]

    rows = []
    for key, path in final_signal.items():
        meta = read_metadata(path)
        total = float(meta["sigma_fb"])
        n_gen = int(meta.get("n_events", events_per_mass))
        w_pre = float(np.sum(read_events(presel_signal[key], ["weight"])["weight"]))
        w_fin = float(np.sum(read_events(path, ["weight"])["weight"]))
        e_pre, e_fin = w_pre / total, w_fin / total
        rows.append(
            {
                "mass_gev": float(key),
                "efficiency_presel": e_pre,
                "error_presel": float(np.sqrt(e_pre * (1 - e_pre) / n_gen)),
                "efficiency_final": e_fin,
                "error_final": float(np.sqrt(e_fin * (1 - e_fin) / n_gen)),
            }
        )
    rows.sort(key=lambda r: r["mass_gev"])
    written["signal_efficiency"] = write_csv(out_dir / "signal_efficiency.csv", rows)
    m2 = np.array([r["mass_gev"] ** 2 for r in rows])
    curves = {
        "without Punzi-net": (
            np.array([r["efficiency_presel"] for r in rows]),
            np.array([r["error_presel"] for r in rows]),
        ),
        "full selection": (
            np.array([r["efficiency_final"] for r in rows]),
            np.array([r["error_final"] for r in rows]),
        ),
    }
    if model is None:  # the two curves are the same selection
        curves = {"full selection (no network)": curves["full selection"]}
    plots.save(figures.signal_efficiency(m2, curves), out_dir / "signal_efficiency")

    for label, backgrounds in (("presel", presel_backgrounds), ("final", final_backgrounds)):
        samples = {}
        pooled = []
        for name, path in backgrounds.items():
            ev = read_events(path, cols)
            samples[name] = (np.asarray(ev["m_recoil2"]), np.asarray(ev["weight"]))
            pooled.append(ev)
        if model is None:
            title = "preselection" if label == "presel" else "final selection (no network)"
        else:
            title = "before Punzi-net" if label == "presel" else "after Punzi-net"
        plots.save(
            plots.background_composition(
                samples, COMPOSITION_EDGES, luminosity_fb=lumi, title=title
            ),
            out_dir / f"background_{label}",
        )
        comp = []
        for lo, hi in COMPOSITION_RANGES:
            row: dict[str, Any] = {"m2_low": lo, "m2_high": hi}
            for name, (x, w) in samples.items():
                row[name] = float(np.sum(w[(x >= lo) & (x < hi)]) * lumi)
            comp.append(row)
        write_csv(out_dir / f"background_composition_{label}.csv", comp)
        everything = {k: np.concatenate([np.asarray(e[k]) for e in pooled]) for k in cols}
        plots.save(
            figures.theta_m2_plane(
                everything["m_recoil2"],
                everything["theta_recoil_cm"],
                everything["weight"],
                luminosity_fb=lumi,
                title=f"all backgrounds, {title}",
            ),
            out_dir / f"theta_m2_{label}",
        )
        if "mumu" in backgrounds:
            ev = read_events(backgrounds["mumu"], cols)
            plots.save(
                figures.theta_m2_plane(
                    np.asarray(ev["m_recoil2"]),
                    np.asarray(ev["theta_recoil_cm"]),
                    np.asarray(ev["weight"]),
                    luminosity_fb=lumi,
                    title=rf"$\mu^+\mu^-(\gamma)$, {title}",
                ),
                out_dir / f"theta_m2_mumu_{label}",
            )
    if model is None:
        return written
    # the network's figure of merit on the test part of the training (test masses never
    # trained on; test background events): an unbiased measure of what the network does
    table = model.fom_table()
    with atomic_path(out_dir / "punzi_fom.md") as tmp:
        tmp.write_text(table.to_markdown())
    with atomic_path(out_dir / "punzi_fom.csv") as tmp:
        tmp.write_text(table.to_csv())
    plots.save(
        figures.fom_gain(
            [r.mass_gev for r in table.rows], [r.gain for r in table.rows], luminosity_fb=lumi
        ),
        out_dir / "punzi_gain",
    )
    written["punzi_fom"] = out_dir / "punzi_fom.md"
    written.update(_punzi_cut_scan(model.cut_scan(), out_dir, lumi, punzinet_cut))
    return written


def _punzi_cut_scan(
    scan: dict[str, Any], out_dir: Path, luminosity_fb: float, cut: float
) -> dict[str, Path]:
    """Per test mass, Punzi's sigma_min versus the network output cut (measured on the test
    part at training time): ``punzi_cut_scan.csv`` (one line per mass and cut) and a figure
    with the applied cut marked. A flat minimum around the applied cut means the efficiency
    after the network does not hinge on the exact cut value."""
    rows = [
        {
            "mass_gev": r["mass_gev"],
            "cut": c,
            "efficiency": e,
            "background": b,
            "sigma_min_fb": s,
        }
        for r in scan.get("rows", [])
        for c, e, b, s in zip(
            scan["cuts"], r["efficiency"], r["background"], r["sigma_min_fb"], strict=True
        )
    ]
    if not rows:  # no test mass (a single simulated mass)
        return {}
    path = write_csv(out_dir / "punzi_cut_scan.csv", rows)
    plots.save(figures.punzi_cut_scan_figure(scan, cut, luminosity_fb), out_dir / "punzi_cut_scan")
    return {"punzi_cut_scan": path}
