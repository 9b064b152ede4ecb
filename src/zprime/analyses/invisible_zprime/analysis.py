"""The invisible-Z' search as an :class:`zprime.analyses.base.Analysis`: what it hands the
engine (signal samples, the injected signal, the cross-section table, its stages and their
configuration keys, its part of a quick run).

Stages after the engine's ``generate`` and ``simulate``:

``select``    :func:`~zprime.analyses.invisible_zprime.selecting.stage_select`
``train``     :func:`~zprime.analyses.invisible_zprime.selecting.stage_train`
``control``   :func:`~zprime.analyses.invisible_zprime.observed.stage_control`
``template``  :func:`~zprime.analyses.invisible_zprime.observed.stage_template`
``fit``       :func:`~zprime.analyses.invisible_zprime.fitting.stage_fit`
``report``    :func:`~zprime.analyses.invisible_zprime.fitting.stage_report`
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from zprime.analyses.base import (
    Analysis,
    AnalysisStage,
    SignalSample,
    StageContext,
    XsecOutput,
)
from zprime.analyses.invisible_zprime.fitting import stage_fit, stage_report
from zprime.analyses.invisible_zprime.observed import stage_control, stage_template
from zprime.analyses.invisible_zprime.outputs import (
    ControlOutput,
    FitOutput,
    ReportOutput,
    SelectOutput,
    TemplateOutput,
    TrainOutput,
)
from zprime.analyses.invisible_zprime.selecting import stage_select, stage_train
from zprime.config import Config
from zprime.generators.signal import write_signal
from zprime.io.tables import write_csv
from zprime.physics.model import branching_invisible, g2_band
from zprime.physics.xsec_table import load_xsec_table

__all__ = ["InvisibleZprime", "xsec_summary"]


def xsec_summary(config: Config) -> list[dict[str, float]]:
    """Cross section, B(invisible) and the (g-2)_mu band at the configured signal masses.

    Returns one row per mass with ``mass_gev``, ``sigma_g1_fb`` (sigma(e+e- -> mu mu Z') at
    g' = 1 with ISR, from the cached table), ``br_inv_vanilla``, ``br_inv_fully_invisible`` and
    the band ``g2_low``/``g2_high`` of g' that explains Delta a_mu within 2 sigma.
    """
    masses = np.asarray(config.signal.masses_gev, dtype=float)
    sigma = np.broadcast_to(load_xsec_table().sigma_fb(masses, g=1.0), masses.shape)
    br_van = np.broadcast_to(branching_invisible(masses, "vanilla"), masses.shape)
    br_inv = np.broadcast_to(branching_invisible(masses, "fully_invisible"), masses.shape)
    g_lo, _, g_hi = g2_band(masses)
    return [
        {
            "mass_gev": float(masses[i]),
            "sigma_g1_fb": float(sigma[i]),
            "br_inv_vanilla": float(br_van[i]),
            "br_inv_fully_invisible": float(br_inv[i]),
            "g2_low": float(np.asarray(g_lo)[i]),
            "g2_high": float(np.asarray(g_hi)[i]),
        }
        for i in range(masses.size)
    ]


def _signal_seed(config: Config, index: int) -> int:
    return int(np.random.SeedSequence([config.seed, 3, index]).generate_state(1)[0])


def _signal_sample(config: Config, mass: float, seed: int) -> SignalSample:
    params = {
        "mass": mass,
        "n": config.signal.events_per_mass,
        "seed": seed,
        "isr": config.signal.isr,
        "alpha_inverse": config.signal.alpha_inverse,
    }

    def write(out_dir: Path, seed: int, ctx: StageContext) -> Path:
        return write_signal(
            mass,
            config.signal.events_per_mass,
            out_dir,
            seed=seed,
            isr=config.signal.isr,
            alpha=1.0 / config.signal.alpha_inverse,
            executor=ctx.executor,
            workers=ctx.workers,
            progress=ctx.progress,
        )

    return SignalSample(f"{mass:g}", params, write)


class InvisibleZprime(Analysis):
    """e+e- -> mu+ mu- Z', Z' -> invisible (PRL 130, 231801 (2023)); ``pilot2018`` is a preset."""

    name = "invisible_zprime"
    # the signal region and every control sample hold two tracks
    min_tracks = 2
    # the injected mass is among the simulated signal samples (signal_samples)
    injects_into_thinned_simulation = True

    def xsec(self, ctx: StageContext) -> XsecOutput:
        """``xsec.csv`` and a table on the console (g' = 1, ISR)."""
        rows = xsec_summary(ctx.config)
        path = write_csv(ctx.run.xsec, rows)
        table = Table(title="e+e- -> mu+ mu- Z' at sqrt(s) = 10.58 GeV (g' = 1, ISR)")
        for col in (
            "M_Z' [GeV]",
            "sigma [fb]",
            "B(inv) vanilla",
            "B(inv) fully inv.",
            "(g-2) band g'",
        ):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(
                f"{r['mass_gev']:.3f}",
                f"{r['sigma_g1_fb']:.4g}",
                f"{r['br_inv_vanilla']:.3f}",
                f"{r['br_inv_fully_invisible']:.3f}",
                f"{r['g2_low']:.2e}-{r['g2_high']:.2e}",
            )
        ctx.console.print(table)
        return XsecOutput(path)

    def signal_samples(self, config: Config) -> list[SignalSample]:
        """One sample per ``signal.masses_gev`` and one at an injected mass not among them."""
        masses = list(config.signal.masses_gev)
        inject = config.pseudo_data.inject_mass_gev
        if inject is not None and config.pseudo_data.inject_xsec_fb > 0 and inject not in masses:
            masses.append(inject)
        return [_signal_sample(config, m, _signal_seed(config, i)) for i, m in enumerate(masses)]

    def injected_signal(self, config: Config) -> SignalSample | None:
        """The signal at ``pseudo_data.inject_mass_gev`` (seeded by the engine)."""
        inject = config.pseudo_data.inject_mass_gev
        if inject is None or config.pseudo_data.inject_xsec_fb <= 0:
            return None
        return _signal_sample(config, inject, 0)

    @property
    def stages(self) -> tuple[AnalysisStage, ...]:
        """select, train, control, template, fit, report."""
        return (
            AnalysisStage(
                "select", stage_select, SelectOutput, ("simulate",), ("selection", "luminosity_fb")
            ),
            AnalysisStage(
                "train",
                stage_train,
                TrainOutput,
                ("select",),
                ("punzinet", "selection", "luminosity_fb", "binning"),
            ),
            AnalysisStage(
                "control",
                stage_control,
                ControlOutput,
                ("train",),
                # the photon-veto samples are those of templates.systematics.prl
                ("control", "selection", "luminosity_fb", "templates.systematics"),
            ),
            AnalysisStage(
                "template",
                stage_template,
                TemplateOutput,
                ("control",),
                ("binning", "templates", "pseudo_data", "luminosity_fb", "fit.wide", "seed"),
            ),
            AnalysisStage("fit", stage_fit, FitOutput, ("template",), ("fit",)),
            AnalysisStage(
                "report",
                stage_report,
                ReportOutput,
                ("fit",),
                ("report", "projections", "luminosity_fb"),
            ),
        )

    def quick_config(self, data: dict[str, Any], factor: float) -> dict[str, Any]:
        """Five signal masses, short training, a hypothesis every four resolution units, few
        background-shape toys."""
        data["signal"]["events_per_mass"] = max(
            2000, int(data["signal"]["events_per_mass"] * factor)
        )
        masses = data["signal"]["masses_gev"]
        picks = sorted({round(i * (len(masses) - 1) / 4) for i in range(5)})
        data["signal"]["masses_gev"] = [masses[i] for i in picks]
        data["punzinet"]["punzi_epochs"] = min(data["punzinet"]["punzi_epochs"], 30)
        data["punzinet"]["bce_epochs"] = min(data["punzinet"]["bce_epochs"], 3)
        data["binning"]["step_resolution_units"] = max(
            data["binning"]["step_resolution_units"], 4.0
        )
        data["binning"]["resolution"]["min_events"] = min(
            data["binning"]["resolution"]["min_events"], 100
        )
        data["control"]["background_shape"]["toys"] = min(
            data["control"]["background_shape"]["toys"], 20
        )
        return data
