"""The report layer's plot machinery, common to every search: the one plot style (mplhep's
neutral ``plothist``), the standard label, atomic saving (PNG and PDF) and generic drawing helpers
(stacked weighted histograms, Poisson error bars, step bands, expected-limit bands, log y ranges).

Nothing here knows a particular search: the figures of one live in its analysis package (for the
invisible Z': :mod:`zprime.analyses.invisible_zprime.figures`), which draws with these helpers.
Labels say what the figure is (zprime simulation, sqrt(s) = 10.58 GeV, the luminosity) and never
carry an experiment's official label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import mplhep as mh
import numpy as np
from hist.intervals import poisson_interval
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from zprime._util import atomic_path

__all__ = [
    "BAND_1SIGMA_COLOR",
    "BAND_2SIGMA_COLOR",
    "DEFAULT_LABEL",
    "SAMPLE_COLORS",
    "SAMPLE_LABELS",
    "background_composition",
    "label",
    "limit_bands",
    "poisson_errors",
    "save",
    "step_band",
    "style",
    "ylim_decades",
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
"""Legend entries of the simulated e+e- processes, by the generators' sample names."""
SAMPLE_COLORS: dict[str, str] = {
    "mumu": "#5790fc",
    "tautau": "#f89c20",
    "eemumu": "#e42536",
    "eeee": "#964a8b",
    "ee": "#9c9ca1",
    "eegamma": "#7a21dd",
    "pipi": "#2a9d8f",
}
"""Colour of each simulated process in stacked histograms."""


def style() -> None:
    """Select the package's one plot style (mplhep's ``plothist``); every figure calls it first."""
    mh.style.use("plothist")


_style = style
"""Former private name of :func:`style`, kept for callers not yet switched."""

# Conventional colours of expected-limit bands ("Brazil" plot): +-1 sigma green, +-2 sigma yellow.
BAND_1SIGMA_COLOR = "#00cc00"
BAND_2SIGMA_COLOR = "#ffcc00"


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
    xlabel: str = r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]",
    data_label: str = "pseudo-data",
) -> Figure:
    """Stacked distributions of weighted background samples (expected events per bin), by
    default in M_recoil^2.

    Parameters
    ----------
    samples
        Sample name -> (values, in the unit of ``edges``; weights in fb per event). Samples named
        in :data:`SAMPLE_LABELS` get their label and colour.
    edges
        Bin edges (GeV^2 for M_recoil^2).
    luminosity_fb
        Yields are weight x luminosity.
    title
        Legend title.
    data
        Optional observed (pseudo-)data values, drawn as points with Poisson errors.
    log
        Logarithmic y axis.
    xlabel
        Label of the x axis.
    data_label
        Legend entry of the data.
    """
    style()
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
        ax.errorbar(
            centres,
            n_obs,
            yerr=list(poisson_errors(n_obs.astype(float))),
            fmt="o",
            color="black",
            markersize=3,
            label=data_label,
        )
    ax.set_xlabel(xlabel)
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


# --- generic helpers of the figures of a search ---


def poisson_errors(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper 68% Garwood (central Poisson) intervals around observed counts.

    Parameters
    ----------
    counts
        Observed counts (float array).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The distances from ``counts`` down and up to the interval's ends (``yerr`` of
        ``errorbar``); the lower one is ``counts`` where the interval starts at 0.
    """
    lo, hi = poisson_interval(counts)
    return counts - np.nan_to_num(lo), hi - counts


def step_band(
    ax: plt.Axes, edges: np.ndarray, low: np.ndarray, high: np.ndarray, *, hatch: bool, **kw: Any
) -> Any:
    """A step band between ``low`` and ``high`` per bin of ``edges``: hatched (over a stack) or
    grey. ``kw`` goes to ``fill_between`` (e.g. ``label``)."""
    look: dict[str, Any] = (
        {"facecolor": "none", "edgecolor": "0.3", "hatch": "////", "linewidth": 0.0}
        if hatch
        else {"facecolor": "0.75", "edgecolor": "none", "alpha": 0.8}
    )
    return ax.fill_between(
        edges,
        np.append(low, low[-1]),
        np.append(high, high[-1]),
        step="post",
        **look,
        **kw,
    )


def limit_bands(
    ax: plt.Axes,
    mass: np.ndarray,
    obs: np.ndarray | None,
    exp: Sequence[np.ndarray],
    *,
    obs_label: str,
    exp_label: str = "expected (median)",
    markers: bool = False,
) -> None:
    """Observed line, expected median dashed, +-1 sigma green and +-2 sigma yellow bands (the
    "Brazil" plot of an upper limit versus a mass).

    Parameters
    ----------
    ax
        Where to draw.
    mass
        The x values.
    obs
        Observed limits (``None``: not drawn); NaN makes a gap.
    exp
        Expected limits at -2, -1, 0, +1, +2 sigma; where a band's ends are not finite it is not
        drawn.
    obs_label, exp_label
        Legend entries.
    markers
        Small markers on the observed line (where the hypotheses are).
    """
    m2, m1, med, p1, p2 = exp
    ok2 = np.isfinite(m2) & np.isfinite(p2)
    ok1 = np.isfinite(m1) & np.isfinite(p1)
    ax.fill_between(
        mass,
        m2,
        p2,
        where=ok2,
        color=BAND_2SIGMA_COLOR,
        lw=0,
        # no band at all (Bayesian limits without toys): no legend entry either
        label=r"expected $\pm 2\sigma$" if ok2.any() else None,
        interpolate=False,
    )
    ax.fill_between(
        mass,
        m1,
        p1,
        where=ok1,
        color=BAND_1SIGMA_COLOR,
        lw=0,
        label=r"expected $\pm 1\sigma$" if ok1.any() else None,
        interpolate=False,
    )
    ax.plot(mass, med, color="black", ls="--", lw=1.2, label=exp_label)
    if obs is not None:
        # small markers show where the hypotheses are (the grid is sparse at low mass)
        ax.plot(
            mass,
            obs,
            color="black",
            ls="-",
            lw=1.6,
            marker="o" if markers else None,
            ms=1.8,
            label=obs_label,
        )


def ylim_decades(
    ax: plt.Axes,
    arrays: Sequence[np.ndarray],
    headroom: float = 10.0,
    cap: float | None = None,
) -> None:
    """Log y range from the decade below the smallest value to ``headroom`` times the largest
    (room for the legend), at most ``cap`` (values above it run off the top)."""
    vals = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size:
        lo = 10 ** np.floor(np.log10(vals.min()))
        hi = vals.max() * headroom
        if cap is not None:
            hi = max(min(hi, cap), 100.0 * lo)
        ax.set_ylim(lo, hi)
