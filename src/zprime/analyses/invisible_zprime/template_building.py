"""Building the fit templates: one window, every window of a scan, and the whole stage from
the configuration.

This module owns :func:`build_window` (a window's signal, background and observed histograms,
the quantile theta edges, the flat fallback of a window the simulation leaves empty, the checks
of the contents), :func:`build_templates` (every window, split into chunks for
:func:`zprime.parallel.map_tasks`; failed windows are recorded, never dropped),
:func:`templates_from_config` (resolution model, hypothesis grid, windows, systematics,
smoothing and templates from a :class:`~zprime.config.Config`) and :class:`EmptyWindowError`.
:mod:`zprime.analyses.invisible_zprime.templates` re-exports them.

Backgrounds hold expected events (event weight in fb times the luminosity in fb^-1); the signal
holds expected events per fb of sigma x B. Failed windows are logged on the logger
``zprime.analyses.invisible_zprime.templates`` (the public module's name).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import hist
import numpy as np
from numpy.typing import NDArray

from zprime.analyses.invisible_zprime.binning import (
    ResolutionModel,
    ResolutionScale,
    Window,
    grid_summary,
    hypothesis_grid,
    make_windows,
    resolution_model_from_config,
    theta_bin_count,
    theta_edges,
    wide_window,
)
from zprime.analyses.invisible_zprime.samples import EventSample, _filled, _from_arrays
from zprime.analyses.invisible_zprime.signal_model import SignalModel, SimulatedSignal
from zprime.analyses.invisible_zprime.smoothing import smoothing_from_config
from zprime.analyses.invisible_zprime.systematics_table import SystematicsTable, load_systematics
from zprime.analyses.invisible_zprime.window_templates import TemplateSet, WindowTemplates
from zprime.config import Config, ThetaBinningConfig
from zprime.errors import InputError
from zprime.parallel import map_tasks

__all__ = [
    "EmptyWindowError",
    "build_templates",
    "build_window",
    "templates_from_config",
]

log = logging.getLogger("zprime.analyses.invisible_zprime.templates")
"""The public module's logger (the name users and tests configure)."""


class EmptyWindowError(InputError):
    """A window without expected background (or signal); the fit records it as failed."""


# --------------------------------------------------------------------------- histograms
def _check_hist(h: hist.Hist, window: str, sample: str) -> None:
    v = h.values()
    for what, arr in (("content", v), ("variance", h.variances())):
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = np.unravel_index(int(np.argmax(bad)), arr.shape)
            raise InputError(
                f"templates {window}: sample {sample!r} has a NaN/inf {what} "
                f"in bin {tuple(map(int, idx))}"
            )
    if np.any(v < 0):
        idx = np.unravel_index(int(np.argmin(v)), v.shape)
        raise InputError(
            f"templates {window}: sample {sample!r} has negative content {v.min():g} "
            f"in bin {tuple(map(int, idx))}"
        )


_WIDEN = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Factors by which the M^2 range that places the quantile theta edges is widened (about the
window's centre) until it holds ``n_bins * min_events_per_bin`` background MC events."""


def _theta_events(
    window: Window, backgrounds: Mapping[str, EventSample], cfg: ThetaBinningConfig
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """theta^CM and weights of the binning samples around the window (quantile method)."""
    if cfg.method != "quantile":
        return None, None
    samples = [backgrounds[n] for n in cfg.samples if n in backgrounds]
    if not samples:
        return None, None
    need = theta_bin_count(window.m2_gev2, cfg) * cfg.min_events_per_bin
    lo, hi = float(window.m2_edges[0]), float(window.m2_edges[-1])
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    th = ww = np.empty(0)
    for f in _WIDEN:
        a, b = (lo, hi) if f == 1.0 else (mid - f * half, mid + f * half)
        sls = [s.window(a, b) for s in samples]
        th = np.concatenate([s.theta[sl] for s, sl in zip(samples, sls, strict=True)])
        ww = np.concatenate([s.weight[sl] for s, sl in zip(samples, sls, strict=True)])
        if th.size >= need:
            break
    return th, ww


def _flat_background(
    window: Window, backgrounds: Mapping[str, EventSample], luminosity_fb: float
) -> dict[str, hist.Hist]:
    """Flat templates for a window that the simulation leaves empty (see :func:`build_window`).

    Each sample gets its density in a five times wider M^2 range (events per GeV^2, uniform in
    theta over the window's theta range) times the bin areas; a sample empty there too gets the
    yield of its smallest-weight event spread over the window. The bin variance is the square of
    the content: the template is an estimate known to about 100%.
    """
    lo, hi = window.m2_edges[0], window.m2_edges[-1]
    span = hi - lo
    dm2 = np.diff(window.m2_edges)
    dth = np.diff(window.theta_edges)
    area = np.outer(dm2, dth) / (span * (window.theta_edges[-1] - window.theta_edges[0]))
    out: dict[str, hist.Hist] = {}
    for name, s in backgrounds.items():
        sl = s.window(lo - 2.0 * span, hi + 2.0 * span)
        yield_wide = float(np.sum(s.weight[sl])) * luminosity_fb
        if yield_wide > 0:
            level = yield_wide / 5.0
        elif s.weight.size:
            level = float(np.min(s.weight[s.weight > 0], initial=np.inf)) * luminosity_fb
            level = level if np.isfinite(level) else 0.0
        else:
            level = 0.0
        values = level * area
        out[name] = _from_arrays(window, values, values**2)
    return out


def build_window(
    window: Window,
    signal: SignalModel,
    backgrounds: Mapping[str, EventSample],
    data: EventSample | None = None,
    *,
    luminosity_fb: float,
    systematics: SystematicsTable,
    theta_cfg: ThetaBinningConfig | None = None,
    empty_background: str = "fail",
    smoothing: Mapping[str, Any] | None = None,
) -> WindowTemplates:
    """Templates of one window.

    ``empty_background`` says what to do when no simulated background event falls in the
    window: ``"fail"`` raises :class:`EmptyWindowError`; ``"flat"`` uses a flat template whose
    level is the background density of the simulation in a five times wider M^2 range around the
    window (or, if that is empty too, one simulated event's yield spread over the window), with a
    note; the fit's free background normalisation then takes its level from the data.

    Parameters
    ----------
    window
        The window (:mod:`zprime.analyses.invisible_zprime.binning`). A wide window (``width_gev``
        set) gets 1D templates
        (one theta bin) and the Breit-Wigner signal.
    signal
        The signal model.
    backgrounds
        Selected background samples by name.
    data
        Selected (pseudo-)data, or ``None``.
    luminosity_fb
        Integrated luminosity, fb^-1.
    systematics
        The uncertainties to attach.
    theta_cfg
        theta binning; ``None`` keeps ``window.theta_edges``. With the quantile method the edges
        come from the events of ``theta_cfg.samples`` inside the window; where these are fewer
        than ``n_bins * min_events_per_bin``, from a range about the window's centre widened
        2, 4, 8 or 16 times (only the edges; the templates are filled in the window).
    smoothing
        Smoothed backgrounds by name
        (:class:`zprime.analyses.invisible_zprime.smoothing.KdeBackground`, from
        :func:`zprime.analyses.invisible_zprime.smoothing.smoothing_from_config`): a sample named
        here gets its smoothed
        template instead of the histogram of its events; ``None``: none.

    Raises
    ------
    InputError
        Negative or NaN template contents, naming the hypothesis and the sample.
    EmptyWindowError
        No expected background (or no signal) anywhere in the window.
    """
    if not backgrounds:
        raise InputError(f"templates {window.name}: no background sample given")
    lo, hi = float(window.m2_edges[0]), float(window.m2_edges[-1])
    wide = window.width_gev is not None
    if wide:
        window = window.with_theta([0.0, math.pi])
    elif theta_cfg is not None:
        th, ww = _theta_events(window, backgrounds, theta_cfg)
        edges = theta_edges(window.m2_gev2, theta_cfg, th, ww)
        window = window.with_theta(edges)

    notes: list[str] = []
    bk: dict[str, hist.Hist] = {}
    for name, s in backgrounds.items():
        if smoothing is not None and name in smoothing:
            h = smoothing[name].template(window, luminosity_fb)
        else:
            sl = s.window(lo, hi)
            h = _filled(window, s.m2[sl], s.theta[sl], s.weight[sl] * luminosity_fb)
        _check_hist(h, window.name, name)
        bk[name] = h
    obs = None
    if data is not None:
        sl = data.window(lo, hi)
        obs = _filled(window, data.m2[sl], data.theta[sl], np.ones(sl.stop - sl.start))
    if wide:
        sig = signal.wide_template(window, luminosity_fb)
        eff = signal.efficiency(window.mass_gev)
    else:
        sig = signal.template(window, luminosity_fb)
        eff = signal.efficiency(window.mass_gev)
    _check_hist(sig, window.name, "signal")
    extrapolated = signal.components(window.mass_gev)[1]
    if extrapolated:
        notes.append("signal extrapolated from the nearest simulated mass")

    total = np.sum([h.values() for h in bk.values()], axis=0)
    if not np.any(total > 0) and empty_background == "flat":
        bk = _flat_background(window, backgrounds, luminosity_fb)
        total = np.sum([h.values() for h in bk.values()], axis=0)
        notes.append(
            "no simulated background in the window: flat template at the density of the "
            "simulation around it (normalisation free in the fit)"
        )
    if not np.any(total > 0):
        raise EmptyWindowError(f"templates {window.name}: zero expected background in every bin")
    if not np.any(sig.values() > 0):
        raise EmptyWindowError(f"templates {window.name}: zero expected signal in every bin")
    n_empty = int(np.count_nonzero(total <= 0))
    if n_empty:
        notes.append(f"{n_empty} of {total.size} bins without expected background")
    return WindowTemplates(
        window=window,
        luminosity_fb=luminosity_fb,
        signal=sig,
        backgrounds=bk,
        observed=obs,
        signal_efficiency=float(eff),
        systematics=systematics,
        extrapolated=extrapolated,
        notes=notes,
    )


def _build_chunk(
    indices: Sequence[int],
    *,
    windows: Sequence[Window],
    signal: SignalModel,
    backgrounds: Mapping[str, EventSample],
    data: EventSample | None,
    luminosity_fb: float,
    systematics: SystematicsTable,
    theta_cfg: ThetaBinningConfig | None,
    empty_background: str = "fail",
    smoothing: Mapping[str, Any] | None = None,
) -> list[WindowTemplates | tuple[str, float, str]]:
    out: list[WindowTemplates | tuple[str, float, str]] = []
    for i in indices:
        w = windows[i]
        try:
            out.append(
                build_window(
                    w,
                    signal,
                    backgrounds,
                    data,
                    luminosity_fb=luminosity_fb,
                    systematics=systematics,
                    theta_cfg=theta_cfg,
                    empty_background=empty_background,
                    smoothing=smoothing,
                )
            )
        except EmptyWindowError as exc:
            out.append((w.name, w.mass_gev, str(exc)))
    return out


def build_templates(
    windows: Sequence[Window],
    signal: SignalModel,
    backgrounds: Mapping[str, EventSample],
    data: EventSample | None = None,
    *,
    luminosity_fb: float,
    systematics: SystematicsTable,
    theta_cfg: ThetaBinningConfig | None = None,
    empty_background: str = "fail",
    executor: Any = "serial",
    chunks: int = 1,
    smoothing: Mapping[str, Any] | None = None,
) -> TemplateSet:
    """Templates of every window. A window without expected background (or signal) is recorded
    in :attr:`TemplateSet.failed` with its reason and logged as a warning, never dropped
    silently; bad inputs (negative/NaN contents) raise.

    ``executor``/``chunks``: windows are split into ``chunks`` tasks for
    :func:`zprime.parallel.map_tasks` (default: serial in this process; the inputs are sent
    once per chunk).
    """
    n = len(windows)
    parts = [list(a) for a in np.array_split(np.arange(n), max(1, min(chunks, n))) if a.size]
    fn = partial(
        _build_chunk,
        empty_background=empty_background,
        smoothing=smoothing,
        windows=windows,
        signal=signal,
        backgrounds=backgrounds,
        data=data,
        luminosity_fb=luminosity_fb,
        systematics=systematics,
        theta_cfg=theta_cfg,
    )
    results = map_tasks(fn, parts, executor=executor, progress=False)
    tset = TemplateSet(windows=[], resolution=signal.resolution)
    for chunk in results:
        for r in chunk:
            if isinstance(r, WindowTemplates):
                tset.windows.append(r)
            else:
                name, mass, msg = r
                tset.failed[name] = msg
                tset.failed_mass[name] = mass
                log.warning("%s (recorded as failed)", msg)
    return tset


def templates_from_config(
    config: Config,
    signals: Sequence[SimulatedSignal],
    backgrounds: Mapping[str, EventSample],
    data: EventSample | None = None,
    *,
    wide: bool = False,
    resolution: ResolutionModel | None = None,
    corrections: str | Path | None = None,
    executor: Any = "serial",
    chunks: int = 1,
) -> TemplateSet:
    """The whole template stage from a configuration: resolution model (measured from
    ``signals`` unless given), hypothesis grid, windows (narrow, or wide with ``wide=True``),
    systematics, templates of every window.

    Only the backgrounds named by ``templates.backgrounds`` (default
    ``backgrounds.default_run``) that are present in ``backgrounds`` are used; a named one
    that is missing is an error.
    """
    bcfg, tcfg = config.binning, config.templates
    if resolution is None:
        measured = {s.mass: s.residuals for s in signals}
        resolution = resolution_model_from_config(bcfg, measured)
    names = tcfg.backgrounds if tcfg.backgrounds is not None else config.backgrounds.default_run
    if tcfg.backgrounds is not None:
        missing = [n for n in names if n not in backgrounds]
        if missing:
            raise InputError(f"templates: background sample {missing[0]!r} was not given")
    used = {n: backgrounds[n] for n in names if n in backgrounds} or dict(backgrounds)
    lo, hi = bcfg.m2_range_gev2
    scale = ResolutionScale(resolution, lo, hi)
    grid = hypothesis_grid(scale, bcfg.mass_min_gev, bcfg.mass_max_gev, bcfg.step_resolution_units)
    if wide:
        windows = [
            wide_window(i, float(m), scale, bcfg.wide, min_bins=bcfg.window_bins, m2_range=(lo, hi))
            for i, m in enumerate(grid.masses)
        ]
    else:
        windows = make_windows(grid, scale, bcfg.window_bins, (lo, hi))
    syst = load_systematics(tcfg.systematics, corrections)
    smoothing = smoothing_from_config(config, used, resolution)
    tset = build_templates(
        windows,
        SignalModel(signals, resolution, config.selection if tcfg.reapply_theta_recoil else None),
        used,
        data,
        luminosity_fb=config.luminosity_fb,
        systematics=syst,
        theta_cfg=bcfg.theta,
        empty_background=tcfg.empty_background,
        executor=executor,
        chunks=chunks,
        smoothing=smoothing,
    )
    tset.info = {
        "grid": grid_summary(grid),
        "wide": wide,
        "width_over_mass": bcfg.wide.width_over_mass if wide else None,
        "backgrounds": list(used),
        "simulated_masses_gev": sorted(s.mass for s in signals),
        "luminosity_fb": config.luminosity_fb,
        "merge_backgrounds": tcfg.merge_backgrounds,
        "background_smoothing": tcfg.background_smoothing,
    }
    if smoothing is not None:
        tset.info["smoothing"] = {k: v.summary() for k, v in smoothing.items()}
    return tset
