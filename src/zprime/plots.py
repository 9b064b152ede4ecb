"""Figures of the analysis in the spirit of the PRL's, drawn with mplhep's neutral ``plothist``
style.

Every function takes arrays (or hist objects) and returns a matplotlib ``Figure``; nothing here
recomputes physics. :func:`save` writes PNG and PDF atomically. Labels say what the figure is
(zprime simulation, sqrt(s) = 10.58 GeV, the luminosity) and never carry an experiment's
official label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import mplhep as mh
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from zprime._util import atomic_path

__all__ = [
    "DEFAULT_LABEL",
    "background_composition",
    "fom_gain",
    "label",
    "save",
    "signal_efficiency",
    "theta_m2_plane",
]

DEFAULT_LABEL = "zprime simulation"
"""Left label of every figure: this is a simulation by this tool, not a Belle II result."""

SAMPLE_LABELS: dict[str, str] = {
    "mumu": r"$\mu^+\mu^-(\gamma)$",
    "tautau": r"$\tau^+\tau^-(\gamma)$",
    "eemumu": r"$e^+e^-\mu^+\mu^-$",
    "eeee": r"$e^+e^-e^+e^-$",
    "ee": r"$e^+e^-(\gamma)$",
    "eegamma": r"$e^+e^-\gamma$",
    "pipi": r"$\pi^+\pi^-(\gamma)$",
}
SAMPLE_COLORS: dict[str, str] = {
    "mumu": "#5790fc",
    "tautau": "#f89c20",
    "eemumu": "#e42536",
    "eeee": "#964a8b",
    "ee": "#9c9ca1",
    "eegamma": "#7a21dd",
    "pipi": "#2a9d8f",
}


def _style() -> None:
    mh.style.use("plothist")


def label(ax: plt.Axes, luminosity_fb: float | None = None, text: str = DEFAULT_LABEL) -> None:
    """The standard label: ``text`` on the left, sqrt(s) and the luminosity on the right."""
    right = r"$\sqrt{s}$ = 10.58 GeV"
    if luminosity_fb is not None:
        right += f", {luminosity_fb:g} fb$^{{-1}}$"
    ax.set_title(text, loc="left", fontsize="medium")
    ax.set_title(right, loc="right", fontsize="medium")


def save(fig: Figure, path_stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` atomically; close it."""
    stem = Path(path_stem)
    written = []
    for ext in ("png", "pdf"):
        target = stem.with_suffix(f".{ext}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written


def background_composition(
    samples: Mapping[str, tuple[ArrayLike, ArrayLike]],
    edges: ArrayLike,
    *,
    luminosity_fb: float,
    title: str = "",
    data: ArrayLike | None = None,
    log: bool = True,
) -> Figure:
    """Stacked M_recoil^2 distributions of the background samples (expected events per bin).

    Parameters
    ----------
    samples
        Sample name -> (M_recoil^2 values in GeV^2, weights in fb per event).
    edges
        Bin edges in GeV^2.
    luminosity_fb
        Yields are weight x luminosity.
    data
        Optional observed (pseudo-)data M_recoil^2 values, drawn as points with Poisson errors.
    """
    _style()
    edges = np.asarray(edges, dtype=float)
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    names = [n for n, (m2, _) in samples.items() if np.size(m2)]
    hists = []
    for name in names:
        m2, w = samples[name]
        h, _ = np.histogram(np.asarray(m2), bins=edges, weights=np.asarray(w) * luminosity_fb)
        hists.append(h)
    if hists:
        mh.histplot(
            hists,
            edges,
            stack=True,
            histtype="fill",
            ax=ax,
            label=[SAMPLE_LABELS.get(n, n) for n in names],
            color=[SAMPLE_COLORS.get(n) for n in names],
        )
    if data is not None:
        n_obs, _ = np.histogram(np.asarray(data), bins=edges)
        centres = 0.5 * (edges[1:] + edges[:-1])
        from hist.intervals import poisson_interval

        lo, hi = poisson_interval(n_obs.astype(float))
        lo = np.nan_to_num(lo)
        ax.errorbar(
            centres,
            n_obs,
            yerr=[n_obs - lo, hi - n_obs],
            fmt="o",
            color="black",
            markersize=3,
            label="pseudo-data",
        )
    ax.set_xlabel(r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]")
    ax.set_ylabel("events / bin")
    if log:
        ax.set_yscale("log")
        positive = [h[h > 0].min() for h in hists if np.any(h > 0)]
        if positive:
            ax.set_ylim(bottom=0.5 * min(positive))
    ax.set_xlim(edges[0], edges[-1])
    ax.legend(title=title or None, loc="upper left", ncols=2, fontsize="small")
    label(ax, luminosity_fb)
    return fig


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
    _style()
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
    _style()
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
    _style()
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


# --- result figures (issue 8: limits, couplings, significance) ---


# --- spectra figures (issue 8: data versus simulation in the signal region) ---
