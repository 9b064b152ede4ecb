"""Figures of the dark Higgsstrahlung search: the limit map over (M_A', M_h') and slices.

Pure functions of the limits table (``dark_higgs_limits.csv`` columns); saved with
:func:`zprime.report.plots.save` (PNG and PDF, atomically).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from zprime.report.plots import label, save, style

__all__ = ["limit_figures"]


def limit_figures(
    cols: Mapping[str, np.ndarray], out_dir: Path, luminosity_fb: float
) -> dict[str, Path]:
    """The observed sigma x B and epsilon^2 alpha_D limit maps and sigma x B slices at a few
    M_h' / M_A' ratios (observed and expected median). Returns stem -> PNG path."""
    style()
    out_dir.mkdir(parents=True, exist_ok=True)
    ma, mh = cols["m_aprime_gev"], cols["m_hdark_gev"]
    written: dict[str, Path] = {}
    for key, title, stem in (
        ("obs_xsec_br_fb", r"90% credible limit on $\sigma \times B$ [fb]", "dh_limit_map"),
        ("obs_eps2_alpha_d", r"90% credible limit on $\epsilon^2 \alpha_D$", "dh_eps2_alpha_d_map"),
    ):
        val = cols[key]
        ok = np.isfinite(val) & (val > 0)
        if not ok.any():
            continue
        fig, ax = plt.subplots(figsize=(7, 5.5))
        sc = ax.scatter(
            ma[ok], mh[ok], c=val[ok], s=4, norm=LogNorm(), cmap="viridis", rasterized=True
        )
        fig.colorbar(sc, ax=ax, label=title)
        ax.set_xlabel(r"$M_{A'}$ [GeV]")
        ax.set_ylabel(r"$M_{h'}$ [GeV]")
        label(ax, luminosity_fb)
        written[stem] = save(fig, out_dir / stem)[0]
    fig, ax = plt.subplots(figsize=(7, 5))
    ratio = np.where(ma > 0, mh / ma, np.nan)
    for r in (0.1, 0.5, 0.9):
        near = np.abs(ratio - r) < 0.05
        if near.sum() < 2:
            continue
        order = np.argsort(ma[near])
        (line,) = ax.plot(
            ma[near][order],
            cols["obs_xsec_br_fb"][near][order],
            label=f"obs., $M_{{h'}} / M_{{A'}} \\approx {r:g}$",
        )
        ax.plot(
            ma[near][order],
            cols["exp_xsec_br_fb_median"][near][order],
            ls="--",
            color=line.get_color(),
        )
    ax.set_yscale("log")
    ax.set_xlabel(r"$M_{A'}$ [GeV]")
    ax.set_ylabel(r"90% credible limit on $\sigma \times B$ [fb] (dashed: expected)")
    ax.legend(fontsize="small")
    label(ax, luminosity_fb)
    written["dh_limit_slices"] = save(fig, out_dir / "dh_limit_slices")[0]
    return written
