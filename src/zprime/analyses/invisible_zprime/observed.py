"""The ``control`` and ``template`` stages of the invisible-Z' search: the control samples and
their corrections, the observed (pseudo-)data and the fit templates.

``control``   the control samples (e mu, ee, mu mu gamma): data versus simulation, the
              corrections and the systematic uncertainties they give (``control/``), and the
              mu mu background re-selected without the photon veto and re-weighted with the
              measured correction (``control/photon_veto/``): the one place besides the train
              stage where the selection and the network are applied to a signal-region sample
``template``  the observed data (the user's data, or the pseudo-data: :func:`observed_data`),
              the corrections applied to the simulation (:func:`apply_corrections`) and the fit
              templates of the narrow and wide scans (``templates_narrow/``, ``templates_wide/``)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from zprime._util import write_json_atomic
from zprime.analyses.base import SimulateOutput, StageContext
from zprime.analyses.invisible_zprime.binning import ResolutionModel
from zprime.analyses.invisible_zprime.control import (
    photon_veto_recoverable,
    read_corrections,
    run_control,
)
from zprime.analyses.invisible_zprime.observables import PSEUDO_DATA_COLUMNS
from zprime.analyses.invisible_zprime.outputs import ControlOutput, TemplateOutput, TrainOutput
from zprime.analyses.invisible_zprime.selection import step_masks
from zprime.analyses.invisible_zprime.templates import (
    EventSample,
    SimulatedSignal,
    templates_from_config,
    write_templates,
)
from zprime.config import Config
from zprime.io.events import iter_events, read_events, read_metadata, write_events
from zprime.stats import pseudodata

__all__ = [
    "apply_corrections",
    "draw_pseudo_data",
    "observed_data",
    "stage_control",
    "stage_template",
    "user_data",
]


def stage_control(ctx: StageContext) -> ControlOutput:
    """The control samples: data versus simulation, the corrections and the systematic
    uncertainties they give (``control/corrections.json``, ``comparison.md``, cut flows and
    figures), and the backgrounds re-weighted with the measured photon-veto correction
    (:func:`_photon_veto_reweighted`, ``control/photon_veto/``) for the templates."""
    sim: SimulateOutput = ctx.output("simulate", SimulateOutput)
    train: TrainOutput = ctx.output("train", TrainOutput)
    config = ctx.config
    if config.observed_data.file is not None:  # real data: every event counts once
        config = config.model_copy(
            update={"control": config.control.model_copy(update={"data_mode": "weighted"})}
        )
    result = run_control(
        {k: str(v) for k, v in sim.backgrounds.items()},
        {k: str(v) for k, v in sim.data.items()},
        ctx.run.control,
        config,
        model=None if train.model is None else str(train.model),
    )
    for line in getattr(result, "fallbacks", []) or []:
        ctx.console.print(f"[yellow]control:[/] {line}")
    files = {k: Path(v) for k, v in result.files.items() if v}
    reweighted: dict[str, Path] = {}
    corrections = files.get("corrections")
    if corrections is not None:
        corr = read_corrections(corrections)
        model = None
        if train.model is not None:
            # lazy: the network's package imports torch (heavy), needed only with a network
            from zprime.analyses.invisible_zprime.punzinet import load

            model = load(train.model)
        for name in corr.photon_veto_samples:
            if name in sim.backgrounds and corr.extra_miss != 0.0:
                m2, th, w = _photon_veto_reweighted(ctx.config, sim.backgrounds[name], corr, model)
                reweighted[name] = write_events(
                    ctx.run.photon_veto_reweighted(name),
                    ak.zip({"m_recoil2": m2, "theta_recoil_cm": th, "weight": w}),
                    {"sample": name, "extra_miss": corr.extra_miss},
                )
    return ControlOutput(files, reweighted)


def user_data(path: Path) -> dict[str, np.ndarray]:
    """A user's selected data file as observed data: the columns :data:`PSEUDO_DATA_COLUMNS`,
    every event with weight 1."""
    events = read_events(path, list(PSEUDO_DATA_COLUMNS))
    cols = {c: np.asarray(events[c], dtype=float) for c in PSEUDO_DATA_COLUMNS}
    cols["weight"] = np.ones(len(events))
    return cols


def draw_pseudo_data(
    config: Config,
    samples: dict[str, Any],
    signal_path: Path | None,
    rng: np.random.Generator,
    *,
    stats: dict[str, dict[str, float]] | None = None,
) -> dict[str, np.ndarray]:
    """Unit-weight pseudo-data at the luminosity from selected ``samples`` (name -> events with
    :data:`PSEUDO_DATA_COLUMNS` and ``weight``), with the signal of ``signal_path`` injected at
    ``pseudo_data.inject_xsec_fb`` (:func:`zprime.stats.pseudodata.draw`)."""
    signal = None
    if signal_path is not None:
        cols = [*PSEUDO_DATA_COLUMNS, "weight"]
        signal = (read_events(signal_path, cols), float(read_metadata(signal_path)["sigma_fb"]))
    return pseudodata.draw(
        samples,
        config.luminosity_fb,
        rng,
        columns=PSEUDO_DATA_COLUMNS,
        signal=signal,
        signal_xsec_fb=config.pseudo_data.inject_xsec_fb,
        stats=stats,
    )


def observed_data(
    config: Config, final: TrainOutput, *, stats: dict[str, dict[str, float]] | None = None
) -> dict[str, np.ndarray]:
    """The observed data of the templates (columns :data:`PSEUDO_DATA_COLUMNS` and ``weight``).

    The user's data (``observed_data.file``), selected like the simulation, every event with
    weight 1; or the pseudo-data (:func:`draw_pseudo_data`): the independently generated
    data-detector samples after the full selection, thinned to unit-weight events at the
    luminosity (or, with ``pseudo_data.source: simulation``, the selected simulation thinned
    the same way), with an injected signal if asked. ``stats`` receives what each sample
    contributed.
    """
    pcfg = config.pseudo_data
    if config.observed_data.file is not None:
        return user_data(final.data["observed"])
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, pcfg.seed_offset, 2]))
    use_data = pcfg.source == "data_detector"
    files = dict(final.data if use_data else final.backgrounds)
    signal_path = files.pop("signal", None)
    if signal_path is None and pcfg.inject_mass_gev is not None and pcfg.inject_xsec_fb > 0:
        signal_path = final.signal[f"{pcfg.inject_mass_gev:g}"]
    cols = [*PSEUDO_DATA_COLUMNS, "weight"]
    samples = {name: read_events(path, cols) for name, path in files.items()}
    return draw_pseudo_data(config, samples, signal_path, rng, stats=stats)


def _photon_veto_reweighted(
    config: Config, reco_path: Path, corrections: Any, model: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M^2, theta^CM, weight) of a background selected without the photon veto and re-weighted
    with the measured photon-veto correction (``control.Corrections``): passing events keep
    their weight, events that fail only because of photons in the backward barrel enter with
    the measured extra probability that data miss them."""
    sel = config.selection.model_copy(
        update={"disabled": sorted(set(config.selection.disabled) | {"punzinet"})}
    )
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for batch in iter_events(reco_path):
        masks = step_masks(batch, sel, "mumu")
        base = np.ones(len(batch), dtype=bool)
        for step, m in masks.items():
            if step != "photon_veto":
                base &= m
        kept = batch[base]
        if "punzinet" not in config.selection.disabled and len(kept):
            # lazy: the network's package imports torch (heavy), needed only with a network
            from zprime.analyses.invisible_zprime.punzinet import predict

            net = predict(model, kept) > config.selection.punzinet_min
            kept = kept[net]
            passed = masks["photon_veto"][base][net]
        else:
            passed = masks["photon_veto"][base]
        if not len(kept):
            continue
        recoverable = photon_veto_recoverable(
            kept, config.selection, config.control.photon_veto.theta_recoil_deg
        )
        m2 = np.asarray(ak.to_numpy(kept["m_recoil2"]), dtype=float)
        w = corrections.photon_veto_weight(
            passed, recoverable, np.asarray(ak.to_numpy(kept["theta_recoil"])), m2
        )
        parts.append(
            (
                m2,
                np.asarray(ak.to_numpy(kept["theta_recoil_cm"]), dtype=float),
                np.asarray(ak.to_numpy(kept["weight"]), dtype=float) * w,
            )
        )
    if not parts:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    m2, th, w = (np.concatenate(x) for x in zip(*parts, strict=True))
    keep = w > 0
    return m2[keep], th[keep], w[keep]


def apply_corrections(
    config: Config,
    signals: list[SimulatedSignal],
    backgrounds: dict[str, EventSample],
    control: ControlOutput,
) -> tuple[list[SimulatedSignal], dict[str, EventSample], list[str]]:
    """The control-stage corrections applied to the simulated signal and backgrounds: the
    trigger correction c(M^2) on every weight; the backgrounds of the photon-veto correction
    replaced by their re-weighted selection (made by the control stage). Returns the samples
    and one line per correction applied (or why none was)."""
    if not config.templates.apply_corrections or control.corrections is None:
        return signals, backgrounds, []
    if config.pseudo_data.source != "data_detector" and config.observed_data.file is None:
        # the observed data are then the simulation itself: correcting the simulation towards
        # the data detector would create data-simulation differences that are not there
        return (
            signals,
            backgrounds,
            [
                "measured but not applied: the pseudo-data are a sample of the simulation "
                "(pseudo_data.source: simulation)"
            ],
        )
    corr = read_corrections(control.corrections)
    terms = " + ".join(f"{c:.4g} M^{2 * i}" for i, c in enumerate(corr.trigger_coefficients))
    notes = [f"trigger correction c(M^2) = {terms}"]
    for name, path in control.photon_veto_reweighted.items():
        if name in backgrounds:
            ev = read_events(path, ["m_recoil2", "theta_recoil_cm", "weight"])
            m2, th, w = (
                np.asarray(ev[c], dtype=float) for c in ("m_recoil2", "theta_recoil_cm", "weight")
            )
            before = float(np.sum(backgrounds[name].weight))
            backgrounds[name] = EventSample(name, m2, th, w)
            notes.append(
                f"photon-veto correction on {name}: extra miss probability "
                f"{corr.extra_miss:.4f}, yield x {float(np.sum(w)) / before:.3f}"
                if before > 0
                else f"photon-veto correction on {name}"
            )
    signals = [dataclasses.replace(s, weight=s.weight * corr.trigger_weight(s.m2)) for s in signals]
    backgrounds = {
        k: dataclasses.replace(b, weight=b.weight * corr.trigger_weight(b.m2))
        for k, b in backgrounds.items()
    }
    return signals, backgrounds, notes


def stage_template(ctx: StageContext) -> TemplateOutput:
    """The observed data, the corrected simulation and the templates of every scan."""
    cfg = ctx.config
    final: TrainOutput = ctx.output("train", TrainOutput)
    control: ControlOutput = ctx.output("control", ControlOutput)
    # the M_recoil^2 resolution is a property of the detector: the train stage measures it on
    # the signal before the network cut, where the samples are largest, and trains the network
    # in windows of it; the fit uses the same one
    resolution = ResolutionModel.load(final.resolution)
    stats: dict[str, dict[str, float]] = {}
    data = observed_data(cfg, final, stats=stats)
    if cfg.observed_data.file is None:
        for name, row in stats.items():
            if row["heavy_events"]:
                ctx.console.print(
                    f"[yellow]pseudo-data:[/] {name}: {row['heavy_events']} selected events "
                    f"weigh more than one data event ({row['heavy_expected']:.1f} of "
                    f"{row['expected']:.1f} expected) and enter more than once"
                )
        write_json_atomic(
            ctx.run.pseudo_data_samples,
            {
                "source": cfg.pseudo_data.source,
                "luminosity_fb": cfg.luminosity_fb,
                "samples": stats,
            },
        )
    write_events(
        ctx.run.observed,
        ak.zip(data),
        {
            "sample": "pseudo_data" if cfg.observed_data.file is None else "observed_data",
            "source": cfg.observed_data.file,
            "luminosity_fb": cfg.luminosity_fb,
            "inject_mass_gev": cfg.pseudo_data.inject_mass_gev,
            "inject_xsec_fb": cfg.pseudo_data.inject_xsec_fb,
        },
    )
    observed = EventSample(
        "data", data["m_recoil2"], data["theta_recoil_cm"], data["weight"], is_data=True
    )
    signals = [SimulatedSignal.read(p) for p in final.signal_notheta.values()]
    backgrounds = {k: EventSample.read(p, k) for k, p in final.backgrounds.items()}
    signals, backgrounds, notes = apply_corrections(cfg, signals, backgrounds, control)
    for note in notes:
        ctx.console.print(f"corrections: {note}")
    # the simulated backgrounds as the templates see them (with the corrections), for the report
    for name, smp in backgrounds.items():
        write_events(
            ctx.run.corrected / f"{name}.parquet",
            ak.zip(
                {
                    "m_recoil2": np.asarray(smp.m2),
                    "theta_recoil_cm": np.asarray(smp.theta),
                    "weight": np.asarray(smp.weight),
                }
            ),
            {"sample": name, "corrections": notes},
        )
    folders: dict[str, Path] = {}
    for label, wide in (("narrow", False), ("wide", True)):
        if wide and not cfg.fit.wide:
            continue
        tset = templates_from_config(
            cfg,
            signals,
            backgrounds,
            observed,
            wide=wide,
            resolution=resolution,
            corrections=None if control.corrections is None else str(control.corrections),
        )
        index = write_templates(ctx.run.templates(label), tset)
        ctx.console.print(
            f"{label} templates: {len(tset)} windows, {len(tset.failed)} failed -> {index.parent}"
        )
        folders[label] = index.parent
    return TemplateOutput(data=ctx.run.observed, resolution=final.resolution, templates=folders)
