"""Data/simulation figures of the control samples; the only module of
:mod:`zprime.analyses.invisible_zprime.control` that uses matplotlib.

Pure functions from samples and results to a matplotlib ``Figure`` in the package's plot style
(:mod:`zprime.report.plots`): :func:`comparison_figure`, :func:`trigger_figure` and
:func:`control_figures` (every figure of the stage); :func:`write_figures` saves them with
:func:`zprime.report.plots.save`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import mplhep as mh
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from zprime.analyses.invisible_zprime.control.corrections import ControlResult
from zprime.analyses.invisible_zprime.control.measurements import TriggerResult
from zprime.analyses.invisible_zprime.control.samples import ChannelSample, ControlSample
from zprime.config import Config
from zprime.report import plots

__all__ = ["comparison_figure", "control_figures", "trigger_figure", "write_figures"]


def _stack_hist(
    smp: ChannelSample,
    values: NDArray[np.float64],
    mask: NDArray[np.bool_],
    edges: NDArray[np.float64],
) -> tuple[list[NDArray[np.float64]], list[str], NDArray[np.float64]]:
    hists, labels = [], []
    for k, name in enumerate(smp.sources):
        sel = mask & (smp.source == k)
        h, _ = np.histogram(values[sel], bins=edges, weights=smp.w[sel])
        if h.sum() > 0:
            hists.append(h)
            labels.append(name)
    var, _ = np.histogram(values[mask], bins=edges, weights=smp.w2[mask])
    return hists, labels, var


def comparison_figure(
    sample: ControlSample,
    variable: str,
    edges: ArrayLike,
    *,
    xlabel: str,
    luminosity_fb: float,
    mask: Callable[[ChannelSample], NDArray[np.bool_]] | None = None,
    transform: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
    log_y: bool = True,
    title: str = "",
) -> Figure:
    """Data (points) over stacked simulation with a data/simulation ratio panel.

    ``variable`` is a :class:`ChannelSample` attribute; ``mask`` selects events (default: the
    channel's selection before the Punzi-net); ``transform`` maps values (e.g. to degrees).
    """
    plots.style()
    e = np.asarray(edges, dtype=float)
    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=(7.0, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    tot = {}
    for kind, smp in (("data", sample.data), ("sim", sample.simulation)):
        sel = smp.selected if mask is None else mask(smp)
        vals = getattr(smp, variable)
        vals = transform(vals) if transform is not None else vals
        sel = sel & np.isfinite(vals)
        hists, labels, var = _stack_hist(smp, vals, sel, e)
        tot[kind] = (np.sum(hists, axis=0) if hists else np.zeros(e.size - 1), var)
        if kind == "sim" and hists:
            mh.histplot(
                hists,
                e,
                stack=True,
                histtype="fill",
                ax=ax,
                label=[plots.SAMPLE_LABELS.get(n, n) for n in labels],
                color=[plots.SAMPLE_COLORS.get(n) for n in labels],
            )
    centres = 0.5 * (e[1:] + e[:-1])
    d, vd = tot["data"]
    s, vs = tot["sim"]
    ax.errorbar(centres, d, yerr=np.sqrt(vd), fmt="o", color="black", markersize=3, label="data")
    if log_y and np.any(d > 0) | np.any(s > 0):
        ax.set_yscale("log")
        pos = np.concatenate([d[d > 0], s[s > 0]])
        if pos.size:
            ax.set_ylim(bottom=0.5 * pos.min())
    ax.set_ylabel("events / bin")
    ax.legend(title=title or None, fontsize="small", ncols=2)
    plots.label(ax, luminosity_fb)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(s > 0, d / s, np.nan)
        rerr = np.where(s > 0, np.sqrt(vd) / s, np.nan)
        band = np.where(s > 0, np.sqrt(vs) / s, np.nan)
    rax.fill_between(
        e,
        np.append(1 - band, (1 - band)[-1:]),
        np.append(1 + band, (1 + band)[-1:]),
        step="post",
        color="0.8",
        label="simulation stat.",
    )
    rax.errorbar(centres, ratio, yerr=rerr, fmt="o", color="black", markersize=3)
    rax.axhline(1.0, color="0.4", lw=0.8)
    rax.set_ylim(0.5, 1.5)
    rax.set_ylabel("data / sim.")
    rax.set_xlabel(xlabel)
    rax.set_xlim(e[0], e[-1])
    return fig


def trigger_figure(trig: TriggerResult, luminosity_fb: float) -> Figure:
    """Trigger efficiency in data and simulation (top) and their ratio with the fit (bottom)."""
    plots.style()
    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=(7.0, 6.0), sharex=True, gridspec_kw={"height_ratios": [2, 1], "hspace": 0.05}
    )
    c = 0.5 * (trig.edges[1:] + trig.edges[:-1])
    x = np.where(np.isfinite(trig.x), trig.x, c)
    ax.errorbar(x, trig.eff_data, yerr=trig.err_data, fmt="o", color="black", label="data")
    ax.errorbar(x, trig.eff_sim, yerr=trig.err_sim, fmt="s", mfc="none", label="simulation")
    ax.set_ylabel("two-track trigger efficiency")
    ax.legend(title=r"$e\mu$, ECL-triggered", fontsize="small")
    plots.label(ax, luminosity_fb)
    rax.errorbar(
        x[trig.used], trig.ratio[trig.used], yerr=trig.ratio_err[trig.used], fmt="o", color="black"
    )
    grid = np.linspace(trig.edges[0], trig.edges[-1], 200)
    cval = trig.correction(grid)
    cerr = trig.correction_uncertainty(grid)
    rax.plot(grid, cval, color="C1", label="fit")
    rax.fill_between(grid, cval - cerr, cval + cerr, color="C1", alpha=0.3)
    rax.axhline(1.0, color="0.4", lw=0.8)
    rax.set_ylabel("data / sim.")
    rax.set_xlabel(r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]")
    rax.set_xlim(trig.edges[0], trig.edges[-1])
    return fig


def control_figures(
    samples: Mapping[str, ControlSample], result: ControlResult, config: Config
) -> Iterator[tuple[str, Figure]]:
    """Every figure of the control stage, one at a time, as (file stem, figure).

    Per control sample the data/simulation comparison of M_recoil^2, of the recoil polar angle
    and, when the simulation has network outputs, of the Punzi-net output; the trigger
    efficiency (:func:`trigger_figure`) unless it fell back; the M_recoil^2 core of the
    mu mu gamma sample. Each figure is drawn when asked for, so that it can be saved and closed
    before the next one.
    """
    lumi = config.luminosity_fb
    specs = {
        "m_recoil2": (np.linspace(-1.0, 81.0, 83), r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]", None),
        "theta_recoil": (
            np.linspace(0.0, 180.0, 37),
            r"$\theta_{\mathrm{recoil}}$ [deg]",
            np.degrees,
        ),
        "punzinet": (np.linspace(0.0, 1.0, 21), "Punzi-net output", None),
    }
    titles = {"emu": r"$e\mu$", "ee": r"$ee$", "mumugamma": r"$\mu\mu\gamma$"}
    for name, cs in samples.items():
        for var, (edges, xlabel, tr) in specs.items():
            if var == "punzinet" and not np.any(np.isfinite(cs.simulation.punzinet)):
                continue
            fig = comparison_figure(
                cs,
                var,
                edges,
                xlabel=xlabel,
                luminosity_fb=lumi,
                transform=tr,
                title=titles.get(name, name),
            )
            yield f"{name}_{var}", fig
    if not result.trigger.fallback:
        yield "trigger_efficiency", trigger_figure(result.trigger, lumi)
    if "mumugamma" in samples:
        rc = config.control.resolution
        fig = comparison_figure(
            samples["mumugamma"],
            "m_recoil2",
            np.linspace(*rc.m2_range_gev2, 61),
            xlabel=r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]",
            luminosity_fb=lumi,
            log_y=False,
            title=r"$\mu\mu\gamma$, core",
        )
        yield "mumugamma_resolution", fig


def write_figures(
    samples: Mapping[str, ControlSample], result: ControlResult, out: Path, config: Config
) -> list[str]:
    """Save every figure of :func:`control_figures` as ``out/<stem>.png`` and ``.pdf``
    (:func:`zprime.report.plots.save`, which closes it); the paths written."""
    written: list[str] = []
    for stem, fig in control_figures(samples, result, config):
        written += [str(p) for p in plots.save(fig, out / stem)]
    return written
