"""Figures of the invisible Z' search (PRL 130, 231801), in the spirit of the PRL's.

This module owns every figure that knows the search: the theta_recoil^CM - M_recoil^2 plane,
the signal efficiency, the Punzi-net's gain and its cut scan, the result figures (limits on
sigma x B and on g', the local significance), the data-versus-simulation M_recoil^2 spectra and
theta_recoil planes, and the luminosity projection. Every function takes arrays or the search's
tables and returns a matplotlib ``Figure`` (except :func:`result_figures`, which also saves);
nothing here recomputes physics beyond binning. Style, label and saving come from
:mod:`zprime.report.plots`, the search-independent report layer.

Length: every figure of one search, each an independent short function; the figures of the control
samples have their own module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import matplotlib as mpl
import matplotlib.pyplot as plt
import mplhep as mh
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from numpy.typing import ArrayLike

from zprime.analyses.invisible_zprime.results import ResultsTable
from zprime.config import SelectionConfig
from zprime.errors import ConfigError
from zprime.physics.model import g2_band
from zprime.report.plots import (
    DEFAULT_LABEL,
    SAMPLE_COLORS,
    SAMPLE_LABELS,
    label,
    limit_bands,
    poisson_errors,
    save,
    step_band,
    style,
    ylim_decades,
)

__all__ = [
    "G2_COLOR",
    "G_PRIME_YMAX",
    "NARROW_VALIDITY_GEV",
    "WIDE_COLOR",
    "ProjectionCurves",
    "SpectrumHistograms",
    "fom_gain",
    "gprime_limit_figure",
    "m2_spectrum_figure",
    "projection_figure",
    "punzi_cut_scan_figure",
    "result_figures",
    "signal_efficiency",
    "significance_figure",
    "spectrum_histograms",
    "theta_m2_plane",
    "theta_plane_figure",
    "xsec_limit_figure",
]


def theta_m2_plane(
    m2: ArrayLike,
    theta_cm: ArrayLike,
    weight: ArrayLike,
    *,
    luminosity_fb: float,
    m2_edges: ArrayLike | None = None,
    theta_edges_deg: ArrayLike | None = None,
    title: str = "",
) -> Figure:
    """The theta_recoil^CM - M_recoil^2 plane (expected events per bin), as the PRL's
    supplemental figure: the mu mu (gamma) background forms two bands there."""
    style()
    m2_edges = np.linspace(-0.5, 81.0, 84) if m2_edges is None else np.asarray(m2_edges)
    th_edges = (
        np.linspace(0.0, 180.0, 61) if theta_edges_deg is None else np.asarray(theta_edges_deg)
    )
    h, _, _ = np.histogram2d(
        np.asarray(m2),
        np.degrees(np.asarray(theta_cm)),
        bins=[m2_edges, th_edges],
        weights=np.asarray(weight) * luminosity_fb,
    )
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    masked = np.ma.masked_where(h <= 0, h)
    mesh = ax.pcolormesh(
        m2_edges,
        th_edges,
        masked.T,
        cmap="viridis",
        norm=mpl.colors.LogNorm() if masked.count() else None,
    )
    fig.colorbar(mesh, ax=ax, label="events / bin")
    ax.set_xlabel(r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]")
    ax.set_ylabel(r"$\theta_{\mathrm{recoil}}^{\mathrm{c.m.}}$ [deg]")
    if title:
        ax.text(
            0.02,
            0.96,
            title,
            transform=ax.transAxes,
            va="top",
            fontsize="small",
            color="white",
            bbox={"facecolor": "black", "alpha": 0.4, "edgecolor": "none"},
        )
    label(ax, luminosity_fb)
    return fig


def signal_efficiency(
    m2: ArrayLike,
    efficiencies: Mapping[str, tuple[ArrayLike, ArrayLike]],
    *,
    title: str = "",
) -> Figure:
    """Signal efficiency versus M_recoil^2 = M_Z'^2 after selection steps.

    Parameters
    ----------
    m2
        The simulated Z' masses squared, GeV^2.
    efficiencies
        Label -> (efficiency, its binomial uncertainty), one value per mass.
    """
    style()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    x = np.asarray(m2, dtype=float)
    for name, (eff, err) in efficiencies.items():
        ax.errorbar(x, np.asarray(eff), yerr=np.asarray(err), fmt="o-", markersize=4, label=name)
    ax.set_xlabel(r"$M_{Z'}^2$ [GeV$^2$]")
    ax.set_ylabel("signal efficiency")
    ax.set_ylim(0.0, None)
    ax.legend(title=title or None, fontsize="small")
    label(ax)
    return fig


def fom_gain(
    masses_gev: ArrayLike,
    gain: ArrayLike,
    *,
    band: Sequence[float] | None = (5.0, 15.0),
    luminosity_fb: float | None = None,
) -> Figure:
    """Sensitivity gain of the Punzi-net cut per mass window (sigma_min without / with)."""
    style()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    ax.plot(np.asarray(masses_gev), np.asarray(gain), "o-", label="zprime Punzi-net")
    if band is not None:
        ax.axhspan(band[0], band[1], color="0.85", label="PRL: gain 5-15", zorder=0)
    ax.set_xlabel(r"$M_{Z'}$ [GeV]")
    ax.set_ylabel(r"$\sigma_{\min}$ without / with network cut")
    ax.set_ylim(0.0, None)
    ax.legend(fontsize="small")
    label(ax, luminosity_fb)
    return fig


def punzi_cut_scan_figure(scan: dict[str, Any], cut: float, luminosity_fb: float) -> Figure:
    """Punzi's sigma_min versus the network output cut, one line per test mass, with the
    applied cut marked (a flat minimum around it means the efficiency after the network does
    not hinge on the exact cut value).

    Parameters
    ----------
    scan
        The network's cut scan (``PunziNet.cut_scan()``): ``cuts`` (the output cuts) and
        ``rows``, one per test mass, each with ``mass_gev`` and ``sigma_min_fb`` (one value per
        cut, fb; non-finite values are gaps).
    cut
        The applied cut (dashed vertical line).
    luminosity_fb
        For the label.
    """
    style()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    cmap = plt.get_cmap("viridis")
    n = len(scan["rows"])
    for k, r in enumerate(scan["rows"]):
        y = np.asarray(r["sigma_min_fb"], dtype=float)
        ax.plot(
            scan["cuts"],
            np.where(np.isfinite(y), y, np.nan),
            "o-",
            markersize=3,
            color=cmap(k / max(1, n - 1)),
            label=f"{r['mass_gev']:g} GeV",
        )
    ax.axvline(cut, color="0.4", linestyle="--", label=f"applied cut {cut:g}")
    ax.set_xlabel("Punzi-net output cut")
    ax.set_ylabel(r"$\sigma_{\min}$ [fb] (test events)")
    ax.set_yscale("log")
    ax.legend(fontsize="x-small", ncol=2, title="test masses", title_fontsize="x-small")
    label(ax, luminosity_fb)
    return fig


# --- result figures (issue 8: limits, couplings, significance) ---

WIDE_COLOR = "#1f6fd1"
G2_COLOR = "#e8363b"
NARROW_VALIDITY_GEV = 6.5
"""PRL 130, 231801: negligible-width fully invisible limits hold only for M_Z' <~ 6.5 GeV
(vertical dashed line of its Fig. 3); above, B(Z' -> chi chi) ~ 1 and a negligible width are not
both possible at the probed g'."""

G_PRIME_YMAX = 20.0
"""Top of the g' axis: limits above it (g' >~ 1, where perturbation theory fails anyway) run
off the top instead of squeezing the meaningful range."""

_GPRIME_MODELS = {"vanilla": "vanilla", "fully_invisible": "invisible"}
_MODEL_TITLES = {
    "vanilla": r"vanilla $L_\mu - L_\tau$",
    "fully_invisible": r"fully invisible $L_\mu - L_\tau$",
}


def _cl_text(table: ResultsTable) -> str:
    cl = f"{100 * table.confidence_level:g}%"
    return f"{cl} CL" if table.method == "cls" else f"{cl} credible"


def _ordered(t: ResultsTable) -> ResultsTable:
    """Rows sorted by mass, failed rows kept (their NaNs make gaps in lines and bands)."""
    return t.select(np.isfinite(t.mass_gev)).select(np.argsort(t.mass_gev[np.isfinite(t.mass_gev)]))


def _gapped(t: ResultsTable, values: np.ndarray) -> np.ndarray:
    """``values`` with NaN at failed rows, so that lines break there instead of reaching 0."""
    return np.where(t.ok & np.isfinite(values) & (values > 0), values, np.nan)


_LEGEND_ORDER = (
    r"observed, narrow $Z'$",
    "expected (median)",
    r"expected $\pm 1\sigma$",
    r"expected $\pm 2\sigma$",
)


def _legend_order(ax: plt.Axes) -> tuple[list, list]:
    """Legend entries: observed, expected median, +-1, +-2 sigma, then the rest as drawn."""
    handles, labels = ax.get_legend_handles_labels()

    def key(i: int) -> tuple[int, int]:
        lab = labels[i]
        return (_LEGEND_ORDER.index(lab) if lab in _LEGEND_ORDER else len(_LEGEND_ORDER), i)

    order = sorted(range(len(labels)), key=key)
    return [handles[i] for i in order], [labels[i] for i in order]


def xsec_limit_figure(
    table: ResultsTable,
    *,
    luminosity_fb: float | None = None,
    logx: bool = False,
    wide: bool = True,
) -> Figure:
    """Upper limits on sigma(e+e- -> mu+ mu- Z') x B(Z' -> invisible) versus M_Z' (PRL Fig. 2).

    Observed (solid) and median expected (dashed) limits of the narrow Z' with the +-1 sigma
    (green) and +-2 sigma (yellow) expected bands, and the observed limit of the
    Gamma = 0.1 M benchmark if the table has ``wide`` rows. Failed hypotheses are gaps.

    Parameters
    ----------
    table
        The results table (:class:`zprime.analyses.invisible_zprime.results.ResultsTable`).
    luminosity_fb
        For the label; default: the table's.
    logx
        Logarithmic mass axis.
    wide
        Draw the wide-Z' observed limit when present.
    """
    style()
    lumi = table.luminosity_fb if luminosity_fb is None else luminosity_fb
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    t = _ordered(table.narrow)
    exp = [
        _gapped(t, getattr(t, c))
        for c in (
            "exp_xsec_fb_m2",
            "exp_xsec_fb_m1",
            "exp_xsec_fb",
            "exp_xsec_fb_p1",
            "exp_xsec_fb_p2",
        )
    ]
    limit_bands(
        ax,
        t.mass_gev,
        _gapped(t, t.obs_xsec_fb),
        exp,
        obs_label=r"observed, narrow $Z'$",
        markers=logx,
    )
    w = _ordered(table.wide)
    if wide and len(w) and np.any(w.ok):
        ax.plot(
            w.mass_gev,
            _gapped(w, w.obs_xsec_fb),
            color=WIDE_COLOR,
            lw=1.6,
            label=rf"observed, $\Gamma_{{Z'}} = {table.width_over_mass:g}\,M_{{Z'}}$",
        )
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0.0, None)
    ax.set_xlabel(r"$M_{Z'}$ [GeV]")
    ax.set_ylabel(
        _cl_text(table)
        + r" upper limit on $\sigma(e^+e^- \to \mu^+\mu^- Z')$"
        + "\n"
        + r"$\times\, \mathcal{B}(Z' \to \mathrm{invisible})$ [fb]",
        fontsize="medium",
    )
    ylim_decades(ax, [*exp, _gapped(t, t.obs_xsec_fb)], headroom=10.0)
    handles, labels = _legend_order(ax)
    ax.legend(handles, labels, loc="upper left", fontsize="small", ncols=2)
    label(ax, lumi)
    return fig


def gprime_limit_figure(
    table: ResultsTable,
    model: str,
    *,
    logx: bool = True,
    luminosity_fb: float | None = None,
    g2: bool = True,
    wide: bool = True,
    narrow_validity_gev: float | None = NARROW_VALIDITY_GEV,
) -> Figure:
    """Upper limits on the coupling g' versus M_Z' (PRL Figs. 3 and 4).

    Observed and expected limits (+-1, +-2 sigma bands) of the narrow Z' for ``model``, the
    band of g' that explains (g-2)_mu within +-2 sigma (:func:`zprime.physics.model.g2_band`,
    shaded),
    and, for the fully invisible model, the observed limit of the Gamma = 0.1 M benchmark and a
    dashed line where the PRL says the negligible-width assumption stops holding.

    Parameters
    ----------
    table
        The results table.
    model
        ``"vanilla"`` or ``"fully_invisible"``.
    logx
        Logarithmic mass axis (the PRL's Figs. 3, 4) or linear.
    g2
        Draw the (g-2)_mu band.
    wide
        Fully invisible only: draw the wide benchmark when present.
    narrow_validity_gev
        Fully invisible only: where to draw the PRL's validity line (``None``: none).
    """
    if model not in _GPRIME_MODELS:
        raise ConfigError(f"unknown model {model!r}; expected one of {', '.join(_GPRIME_MODELS)}")
    tag = _GPRIME_MODELS[model]
    style()
    lumi = table.luminosity_fb if luminosity_fb is None else luminosity_fb
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    t = _ordered(table.narrow)
    names = [
        f"exp_gprime_{tag}_{b}" if b else f"exp_gprime_{tag}" for b in ("m2", "m1", "", "p1", "p2")
    ]
    exp = [_gapped(t, getattr(t, c)) for c in names]
    obs = _gapped(t, getattr(t, f"obs_gprime_{tag}"))
    drawn = [*exp, obs]
    finite_m = t.mass_gev[np.isfinite(t.mass_gev)]
    if g2 and finite_m.size:
        lo_m = max(float(finite_m.min()), 1e-3)
        hi_m = max(float(finite_m.max()), 9.0)
        grid = np.geomspace(lo_m, hi_m, 400) if logx else np.linspace(lo_m, hi_m, 400)
        band = g2_band(grid)
        ax.fill_between(
            grid,
            band.low,
            band.high,
            color=G2_COLOR,
            alpha=0.35,
            lw=0,
            label=r"$(g-2)_\mu \pm 2\sigma$",
            zorder=0,
        )
    limit_bands(ax, t.mass_gev, obs, exp, obs_label=r"observed, narrow $Z'$", markers=logx)
    if model == "fully_invisible":
        w = _ordered(table.wide)
        if wide and len(w) and np.any(w.ok):
            gw = _gapped(w, w.obs_gprime_invisible)
            drawn.append(gw)
            ax.plot(
                w.mass_gev,
                gw,
                color=WIDE_COLOR,
                lw=1.6,
                label=rf"observed, $\Gamma_{{Z'}} = {table.width_over_mass:g}\,M_{{Z'}}$",
            )
        if narrow_validity_gev is not None:
            ax.axvline(
                narrow_validity_gev,
                color="0.35",
                ls=":",
                lw=1.4,
                label=r"negligible-$\Gamma_{Z'}$ limit (PRL)",
            )
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0.0, None)
    ylim_decades(ax, drawn, headroom=20.0, cap=G_PRIME_YMAX)
    ax.set_xlabel(r"$M_{Z'}$ [GeV]")
    ax.set_ylabel(_cl_text(table) + r" upper limit on $g'$")
    handles, labels = _legend_order(ax)
    ax.legend(
        handles,
        labels,
        loc="upper left",
        fontsize="small",
        ncols=1,
        title=_MODEL_TITLES[model],
        title_fontsize="small",
    )
    label(ax, lumi)
    return fig


def significance_figure(
    table: ResultsTable,
    *,
    luminosity_fb: float | None = None,
    logx: bool = False,
    wide: bool = True,
) -> Figure:
    """Local significance of the excess versus M_Z', the global significance in the legend.

    Failed hypotheses are gaps. Z_local is 0 where the fitted signal is <= 0 (one-sided test).
    """
    style()
    lumi = table.luminosity_fb if luminosity_fb is None else luminosity_fb
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    t = _ordered(table.narrow)
    z = np.where(t.ok, t.z_local, np.nan)
    sig = table.significance
    text = r"narrow $Z'$"
    if sig.get("global_p") is not None:
        # global Z is -inf for p = 1 (no excess anywhere): shown as 0
        zg = max(float(sig.get("global_z", float("nan"))), 0.0)
        text += (
            "\n"
            rf"largest excess: {float(sig['largest_local_z']):.2f}$\sigma$ local"
            rf" at {float(sig['at_mass_gev']):.3g} GeV, {zg:.2f}$\sigma$ global,"
            rf" $p_\mathrm{{global}}$ = {float(sig['global_p']):.2g}"
        )
    ax.plot(t.mass_gev, z, color="black", lw=1.2, label=text)
    zmax = [np.nanmax(z) if np.any(np.isfinite(z)) else 0.0]
    w = _ordered(table.wide)
    if wide and len(w) and np.any(w.ok):
        zw = np.where(w.ok, w.z_local, np.nan)
        zmax.append(np.nanmax(zw))
        ax.plot(
            w.mass_gev,
            zw,
            color=WIDE_COLOR,
            lw=1.0,
            ls="--",
            label=rf"$\Gamma_{{Z'}} = {table.width_over_mass:g}\,M_{{Z'}}$",
        )
    for level in (1, 2, 3):
        ax.axhline(level, color="0.6", ls=":", lw=0.8, zorder=0)
    ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)
    ax.set_ylim(-0.2, max(5.0, 1.5 * max(zmax)))  # below 0 so that Z = 0 is not on the axis
    if logx:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0.0, None)
    ax.set_xlabel(r"$M_{Z'}$ [GeV]")
    ax.set_ylabel(r"local significance $Z_\mathrm{local}$ [$\sigma$]")
    ax.legend(loc="upper left", fontsize="small")
    label(ax, lumi)
    return fig


def result_figures(
    table: ResultsTable, out_dir: str | Path, prefix: str = "results_"
) -> list[Path]:
    """Write every result figure (PNG + PDF) to ``out_dir``; returns the files written.

    ``<prefix>xsec_limit``, ``<prefix>gprime_{vanilla,fully_invisible}_{linear,log}`` and
    ``<prefix>significance``.
    """
    out = Path(out_dir)
    written = save(xsec_limit_figure(table), out / f"{prefix}xsec_limit")
    for model in _GPRIME_MODELS:
        for logx in (False, True):
            axis = "log" if logx else "linear"
            written += save(
                gprime_limit_figure(table, model, logx=logx),
                out / f"{prefix}gprime_{model}_{axis}",
            )
    written += save(significance_figure(table), out / f"{prefix}significance")
    return written


# --- spectra figures (issue 8: data versus simulation in the signal region) ---


@dataclass(frozen=True)
class SpectrumHistograms:
    """The binned content of an M_recoil^2 data-versus-simulation figure.

    Attributes
    ----------
    edges
        Bin edges, GeV^2.
    data
        Observed counts per bin (``None`` without data).
    backgrounds
        Sample name -> expected events per bin (sum of weight x luminosity), in stacking order
        (samples without any event in range are left out).
    variances
        Sample name -> sum of (weight x luminosity)^2 per bin, the simulation's statistical
        variance.
    """

    edges: np.ndarray
    data: np.ndarray | None
    backgrounds: dict[str, np.ndarray]
    variances: dict[str, np.ndarray]

    @property
    def total(self) -> np.ndarray:
        """Expected events per bin, all samples."""
        out = np.zeros(self.edges.size - 1)
        for h in self.backgrounds.values():
            out = out + h
        return out

    @property
    def total_error(self) -> np.ndarray:
        """Statistical uncertainty of the simulation per bin, sqrt(sum w^2) x luminosity."""
        out = np.zeros(self.edges.size - 1)
        for v in self.variances.values():
            out = out + v
        return np.sqrt(out)


def spectrum_histograms(
    data_m2: ArrayLike | None,
    backgrounds: Mapping[str, tuple[ArrayLike, ArrayLike]],
    edges: ArrayLike,
    *,
    luminosity_fb: float,
) -> SpectrumHistograms:
    """Bin (pseudo-)data and weighted simulated backgrounds in M_recoil^2.

    Parameters
    ----------
    data_m2
        Observed M_recoil^2 values (GeV^2), unit weights; ``None`` for no data.
    backgrounds
        Sample name -> (M_recoil^2 values in GeV^2, weights in fb per event).
    edges
        Bin edges, GeV^2; values outside are not counted.
    luminosity_fb
        Expected events are weight x luminosity.
    """
    edges = np.asarray(edges, dtype=float)
    data = None
    if data_m2 is not None:
        data, _ = np.histogram(np.asarray(data_m2, dtype=float), bins=edges)
        data = data.astype(float)
    hists: dict[str, np.ndarray] = {}
    variances: dict[str, np.ndarray] = {}
    for name, (m2, w) in backgrounds.items():
        m2 = np.asarray(m2, dtype=float)
        yields = np.asarray(w, dtype=float) * luminosity_fb
        h, _ = np.histogram(m2, bins=edges, weights=yields)
        if not np.any(h != 0):
            continue
        hists[name] = h
        variances[name], _ = np.histogram(m2, bins=edges, weights=yields**2)
    return SpectrumHistograms(edges, data, hists, variances)


def m2_spectrum_figure(
    data_m2: ArrayLike | None,
    backgrounds: Mapping[str, tuple[ArrayLike, ArrayLike]],
    edges: ArrayLike,
    *,
    luminosity_fb: float,
    title: str = "",
    data_label: str = "pseudo-data",
    ratio: bool = True,
    log: bool = True,
) -> Figure:
    """The M_recoil^2 spectrum of (pseudo-)data against the stacked simulated backgrounds, as the
    PRL's Fig. 1 (PRL 130, 231801), with a data/simulation ratio panel.

    Data are points with 68% Poisson (Garwood) intervals; the simulation is stacked per sample,
    normalised to the luminosity, with its statistical uncertainty sqrt(sum (w L)^2) as a
    hatched band (in the ratio panel around 1, divided by the total).

    Parameters
    ----------
    data_m2
        Observed M_recoil^2 values (GeV^2); ``None`` draws the simulation only.
    backgrounds
        Sample name -> (M_recoil^2 in GeV^2, weight in fb per event), stacked in this order
        (first at the bottom).
    edges
        Bin edges, GeV^2.
    luminosity_fb
        Luminosity of the data; expected events are weight x luminosity.
    title
        Legend title (e.g. "after Punzi-net").
    data_label
        Legend entry of the data.
    ratio
        Draw the data/simulation panel below.
    log
        Logarithmic y axis.
    """
    style()
    hs = spectrum_histograms(data_m2, backgrounds, edges, luminosity_fb=luminosity_fb)
    edges = hs.edges
    if ratio:
        fig, (ax, rax) = plt.subplots(
            2,
            1,
            figsize=(8.0, 6.5),
            sharex=True,
            gridspec_kw={"height_ratios": [3, 1], "hspace": 0.06},
        )
    else:
        fig, ax = plt.subplots(figsize=(8.0, 5.0))
        rax = None
    total, err = hs.total, hs.total_error
    names = list(hs.backgrounds)
    if names:
        mh.histplot(
            [hs.backgrounds[n] for n in names],
            edges,
            stack=True,
            histtype="fill",
            ax=ax,
            label=[SAMPLE_LABELS.get(n, n) for n in names],
            color=[SAMPLE_COLORS.get(n) for n in names],
            flow="none",
        )
        step_band(ax, edges, total - err, total + err, hatch=True, label="sim. stat. unc.")
    centres = 0.5 * (edges[1:] + edges[:-1])
    if hs.data is not None:
        lo, hi = poisson_errors(hs.data)
        shown = hs.data > 0
        ax.errorbar(
            centres[shown],
            hs.data[shown],
            yerr=[lo[shown], hi[shown]],
            fmt="o",
            color="black",
            markersize=3,
            elinewidth=1.0,
            label=f"{data_label} (N = {int(hs.data.sum())})",
            zorder=5,
        )
    ax.set_ylabel("events / bin")
    ax.set_xlim(edges[0], edges[-1])
    widths = np.diff(edges)
    if np.allclose(widths, widths[0]):
        ax.set_ylabel(f"events / {widths[0]:.2g} GeV$^2$")
    positive = np.concatenate(
        [np.zeros(0)] + [h[h > 0] for h in (*hs.backgrounds.values(), hs.data) if h is not None]
    )
    top = float(positive.max()) if positive.size else 1.0
    if log:
        ax.set_yscale("log")
        bottom = 0.3 * float(positive.min()) if positive.size else 0.1
        # room above the highest bin for the legend: the top third of the decades
        ax.set_ylim(bottom, top * (top / bottom) ** 0.5)
    else:
        ax.set_ylim(0.0, 1.6 * top)
        ax.ticklabel_format(axis="y", style="plain")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            title=title or None,
            loc="upper left",
            ncols=2,
            fontsize="small",
            title_fontsize="small",
            alignment="left",
        )
    label(ax, luminosity_fb)
    xlabel = r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]"
    if rax is None:
        ax.set_xlabel(xlabel)
        return fig
    ax.set_xlabel("")
    with np.errstate(divide="ignore", invalid="ignore"):
        # a band of zero height where the simulation is empty (a NaN would also hide the
        # neighbouring bins of the step band)
        rel = np.where(total > 0, err / total, 0.0)
        step_band(rax, edges, 1.0 - rel, 1.0 + rel, hatch=False)
        rax.axhline(1.0, color="0.3", linewidth=0.8)
        if hs.data is not None:
            lo, hi = poisson_errors(hs.data)
            r = np.where(total > 0, hs.data / total, np.nan)
            ok = np.isfinite(r) & (hs.data > 0)
            rax.errorbar(
                centres[ok],
                r[ok],
                yerr=[lo[ok] / total[ok], hi[ok] / total[ok]],
                fmt="o",
                color="black",
                markersize=3,
                elinewidth=1.0,
            )
            # +-0.5 when every point fits, else +-1 (points beyond are clipped)
            spread = np.abs(r[ok] - 1.0)
            half = 0.5 if spread.size == 0 or spread.max() < 0.45 else 1.0
        else:
            half = 0.5
    rax.set_ylim(1.0 - half, 1.0 + half)
    rax.set_ylabel("data / sim.")
    rax.set_xlabel(xlabel)
    return fig


def _theta_boundaries(
    ax: plt.Axes, selection: SelectionConfig, m2_range: tuple[float, float], frame: str
) -> str:
    """Draw the PRL's theta_recoil requirement (a LAB-angle cut): the regions it rejects on the
    lab-angle plane, only the M^2 where it changes on the c.m.-angle plane (a lab angle does not
    map onto one c.m. angle: that depends on the recoil's momentum)."""
    split = selection.theta_recoil_split_m2_gev2
    ax.axvline(split, color="black", linestyle="--", linewidth=1.0)
    note = rf"dashed: $M^2$ = {split:g} GeV$^2$, where the "
    note += r"$\theta_{\mathrm{recoil}}$ cut changes"
    if frame != "lab":
        note += " (a cut on the lab angle, not drawn here: see the lab-angle plane)"
    else:
        note += "; hatched: rejected by the selection"
    if frame != "lab":
        return note
    lo_m2, hi_m2 = m2_range
    barrel = selection.theta_recoil_barrel_deg
    gap = selection.theta_recoil_gap_deg
    high_max = selection.theta_recoil_max_high_m2_deg
    shade = {"facecolor": "none", "edgecolor": "0.5", "hatch": "xx", "linewidth": 0.0}
    left = min(split, hi_m2)
    if left > lo_m2:
        for y0, y1 in ((0.0, barrel[0]), (gap[0], gap[1]), (barrel[1], 180.0)):
            ax.fill_between([lo_m2, left], y0, y1, **shade)
    if hi_m2 > split:
        ax.fill_between([max(split, lo_m2), hi_m2], high_max, 180.0, **shade)
    return note


def theta_plane_figure(
    data: tuple[ArrayLike, ArrayLike] | None,
    simulation: tuple[ArrayLike, ArrayLike, ArrayLike],
    *,
    luminosity_fb: float,
    frame: Literal["cm", "lab"] = "cm",
    selection: SelectionConfig | None = None,
    m2_edges: ArrayLike | None = None,
    theta_edges_deg: ArrayLike | None = None,
    title: str = "",
    data_label: str = "pseudo-data",
) -> Figure:
    """The theta_recoil - M_recoil^2 plane of (pseudo-)data and simulation side by side, on one
    colour scale (events per bin), as in the PRL's supplemental material.

    Parameters
    ----------
    data
        (M_recoil^2 in GeV^2, recoil polar angle in rad) of the observed events, or ``None``.
    simulation
        (M_recoil^2, angle in rad, weight in fb) of all simulated backgrounds together.
    luminosity_fb
        Expected events are weight x luminosity.
    frame
        "cm": theta_recoil^CM on the y axis (the fit variable); "lab": the laboratory angle, on
        which the selection's theta_recoil cut is defined.
    selection
        The selection whose theta_recoil requirement (PRL: [34, 123] deg without [89, 91] deg
        below M^2 = 4 GeV^2, < 123 deg above; a LAB-angle cut) is drawn: on the "lab" plane the
        rejected regions are hatched; on the "cm" plane only the line M^2 = 4 GeV^2, since a lab
        angle does not correspond to one c.m. angle.
    """
    style()
    m2_edges = np.linspace(-0.5, 81.0, 83) if m2_edges is None else np.asarray(m2_edges)
    th_edges = (
        np.linspace(0.0, 180.0, 61) if theta_edges_deg is None else np.asarray(theta_edges_deg)
    )
    m2s, ths, ws = (np.asarray(a, dtype=float) for a in simulation)
    h_sim, _, _ = np.histogram2d(
        m2s, np.degrees(ths), bins=[m2_edges, th_edges], weights=ws * luminosity_fb
    )
    panels = []
    if data is not None:
        m2d, thd = (np.asarray(a, dtype=float) for a in data)
        h_data, _, _ = np.histogram2d(m2d, np.degrees(thd), bins=[m2_edges, th_edges])
        panels.append((h_data, f"zprime {data_label}"))
    panels.append((h_sim, DEFAULT_LABEL))
    positive = np.concatenate([h[h > 0] for h, _ in panels])
    norm = (
        mpl.colors.LogNorm(vmin=float(positive.min()), vmax=float(positive.max()))
        if positive.size
        else None
    )
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(6.2 * len(panels) + 1.2, 5.0),
        sharey=True,
        layout="constrained",
        squeeze=False,
    )
    mesh = None
    note = ""
    for ax, (h, text) in zip(axes[0], panels, strict=True):
        mesh = ax.pcolormesh(
            m2_edges, th_edges, np.ma.masked_where(h <= 0, h).T, cmap="viridis", norm=norm
        )
        if selection is not None:
            note = _theta_boundaries(
                ax, selection, (float(m2_edges[0]), float(m2_edges[-1])), frame
            )
        ax.set_xlabel(r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]")
        label(ax, luminosity_fb, text=text)
        if title:
            ax.text(
                0.97,
                0.96,
                title,
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize="small",
                color="white",
                bbox={"facecolor": "black", "alpha": 0.7, "edgecolor": "none"},
            )
    angle = r"\mathrm{c.m.}" if frame == "cm" else r"\mathrm{lab}"
    axes[0][0].set_ylabel(rf"$\theta_{{\mathrm{{recoil}}}}^{{{angle}}}$ [deg]")
    fig.colorbar(mesh, ax=axes[0].tolist(), label="events / bin")
    if note:
        fig.text(0.01, -0.02, note, va="top", fontsize="small", color="0.15")
    return fig


# --- luminosity projection (zprime.analyses.invisible_zprime.projections) ---


class ProjectionCurves(Protocol):
    """What :func:`projection_figure` reads of a projection table
    (:class:`zprime.analyses.invisible_zprime.projections.ProjectionTable`)."""

    luminosity0_fb: float
    systematics: str
    mc_stat: str
    smooth: bool

    def masses(self) -> list[float]:
        """The requested masses, GeV."""
        ...

    def for_mass(self, mass_gev: float) -> Sequence[Any]:
        """The rows of one requested mass (each with ``mass_gev``, the grid's), by luminosity."""
        ...

    def expected(self, mass_gev: float) -> tuple[np.ndarray, np.ndarray]:
        """Luminosities and expected limits (-2, -1, 0, +1, +2 sigma per row) of one mass."""
        ...


def projection_figure(
    table: ProjectionCurves, *, others: Sequence[ProjectionCurves] = (), goal_fb: float
) -> Figure:
    """Expected median limit versus luminosity (log-log), one colour per mass.

    The +-1 and +-2 sigma bands of ``table`` are shaded; a thin dashed line per mass is the
    pure-statistics ``1/sqrt(L)`` extrapolation from its first luminosity; vertical lines mark
    ``L0`` and the experiment's goal ``goal_fb``. ``others`` (same masses, other systematics
    options) are drawn as median lines only, with other line styles.

    Parameters
    ----------
    table
        The projection (a :class:`~zprime.analyses.invisible_zprime.projections.ProjectionTable`).
    others
        Projections of the same masses with other systematics options.
    goal_fb
        The luminosity marked as the goal, fb^-1 (Belle II: 50 ab^-1).
    """
    style()
    fig, ax = plt.subplots(figsize=(9.5, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = [":", "-.", (0, (5, 1, 1, 1, 1, 1))]
    xs_all = []
    for i, m in enumerate(table.masses()):
        c = colors[i % len(colors)]
        lum, ex = table.expected(m)
        xs_all.append(lum)
        good = np.all(np.isfinite(ex), axis=1)
        lum, ex = lum[good], ex[good]
        if lum.size == 0:
            continue
        grid_m = table.for_mass(m)[0].mass_gev
        ax.fill_between(lum, ex[:, 0], ex[:, 4], color=c, alpha=0.12, lw=0)
        ax.fill_between(lum, ex[:, 1], ex[:, 3], color=c, alpha=0.3, lw=0)
        ax.plot(lum, ex[:, 2], "o-", color=c, ms=4, label=f"$M_{{Z'}}$ = {grid_m:.2f} GeV")
        lref = np.geomspace(lum[0], lum[-1], 50)
        ax.plot(lref, ex[0, 2] * np.sqrt(lum[0] / lref), "--", color=c, lw=0.9)
        for j, other in enumerate(others):
            if m not in other.masses():
                continue
            lo, eo = other.expected(m)
            ok = np.isfinite(eo[:, 2])
            ax.plot(lo[ok], eo[ok, 2], linestyle=styles[j % len(styles)], color=c, lw=1.3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axvline(table.luminosity0_fb, color="0.4", ls=":", lw=1.0)
    ax.axvline(goal_fb, color="0.4", ls="-.", lw=1.0)
    ymin, ymax = ax.get_ylim()
    for x, text, ha, dx in (
        (table.luminosity0_fb, f"$L_0$ = {table.luminosity0_fb:g} fb$^{{-1}}$", "left", 1.08),
        (goal_fb, f"{goal_fb / 1000.0:g} ab$^{{-1}}$", "right", 0.92),
    ):
        ax.text(x * dx, ymax / 1.15, text, ha=ha, va="top", fontsize="small", color="0.3")
    # legend entries for the line kinds
    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Patch(color="0.5", alpha=0.4, lw=0),
        Line2D([], [], color="0.3", ls="--", lw=0.9),
    ]
    labels += [
        rf"$\pm1\sigma$, $\pm2\sigma$ (syst. {table.systematics})",
        r"$\propto 1/\sqrt{L}$ from the first point",
    ]
    for j, other in enumerate(others):
        handles.append(Line2D([], [], color="0.3", ls=styles[j % len(styles)], lw=1.3))
        labels.append(f"median, syst. {other.systematics}")
    ax.legend(
        handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=1
    )
    ax.set_ylim(ymin, ymax)
    ax.set_xlabel(r"integrated luminosity $L$ [fb$^{-1}$]")
    ax.set_ylabel(r"expected 90% CL limit on $\sigma \times \mathcal{B}$ [fb]")
    smooth = "smoothed background, " if table.smooth else ""
    label(ax, None, f"zprime projection ({smooth}MC stat. {table.mc_stat})")
    return fig
