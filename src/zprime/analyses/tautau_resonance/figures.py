"""Figures of the tau-tau resonance search: sigma x B limits and coupling limits per model, the
projections, and the efficiency between the simulated masses.

Pure functions of the stage tables (``tautau_limits.csv``, ``tautau_projections.csv``,
``tautau_efficiency_check.csv`` columns); saved with :func:`zprime.report.plots.save`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from zprime.physics.leptophilic import COUPLING_NAMES, COUPLING_UNITS, g2_band
from zprime.report.plots import label, save, style

__all__ = ["efficiency_figure", "limit_figures", "projection_figure"]


def limit_figures(
    cols: Mapping[str, np.ndarray], out_dir: Path, luminosity_fb: float
) -> dict[str, Path]:
    """Per model: the sigma x B limits (observed, expected with +-1 and +-2 sigma) and the
    coupling limit with the (g-2)_mu band where it applies. Returns stem -> PNG path."""
    style()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for model in dict.fromkeys(np.asarray(cols["model"]).tolist()):
        sel = (cols["model"] == model) & np.isfinite(cols["obs_xsec_br_fb"])
        if np.count_nonzero(sel) < 2:
            continue
        m = cols["mass_gev"][sel]
        order = np.argsort(m)
        m = m[order]

        def col(key: str, sel=sel, order=order) -> np.ndarray:
            return cols[key][sel][order]

        fig, ax = plt.subplots(figsize=(7, 5))
        ax.fill_between(
            m,
            col("exp_xsec_br_fb_m2"),
            col("exp_xsec_br_fb_p2"),
            color="#f5e26a",
            lw=0,
            label="expected $\\pm2\\sigma$",
        )
        ax.fill_between(
            m,
            col("exp_xsec_br_fb_m1"),
            col("exp_xsec_br_fb_p1"),
            color="#7fcf7f",
            lw=0,
            label="expected $\\pm1\\sigma$",
        )
        ax.plot(m, col("exp_xsec_br_fb_median"), "k--", lw=1, label="expected")
        ax.plot(m, col("obs_xsec_br_fb"), "k-", lw=1.2, label="observed")
        ax.set_yscale("log")
        ax.set_xlabel(r"$M_X$ [GeV]")
        ax.set_ylabel(r"90% CL limit on $\sigma(e^+e^-\to\mu\mu X)\times B(X\to\tau\tau)$ [fb]")
        ax.legend(fontsize="small", title=model, title_fontsize="small")
        label(ax, luminosity_fb)
        written[f"tt_xsec_{model}"] = save(fig, out_dir / f"tt_xsec_{model}")[0]
        obs_c = col("obs_coupling")
        ok = np.isfinite(obs_c)
        if np.count_nonzero(ok) < 2:
            continue
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.plot(m[ok], obs_c[ok], "k-", label="observed")
        ax.plot(m[ok], col("exp_coupling_median")[ok], "k--", label="expected")
        band = g2_band(model, m[ok])
        if band is not None:
            ax.fill_between(
                m[ok],
                band.low,
                band.high,
                color="#9ecae1",
                alpha=0.6,
                lw=0,
                label="$(g-2)_\\mu$ $\\pm2\\sigma$",
            )
        ax.set_yscale("log")
        ax.set_xlabel(r"$M_X$ [GeV]")
        unit = COUPLING_UNITS[model]
        ax.set_ylabel(f"90% CL limit on {COUPLING_NAMES[model]}" + (f" [{unit}]" if unit else ""))
        ax.legend(fontsize="small", title=model, title_fontsize="small")
        label(ax, luminosity_fb)
        written[f"tt_coupling_{model}"] = save(fig, out_dir / f"tt_coupling_{model}")[0]
    return written


def projection_figure(
    cols: Mapping[str, np.ndarray],
    proj: Mapping[str, np.ndarray],
    out_dir: Path,
    luminosity_fb: float,
) -> Path | None:
    """The median expected sigma x B limits of every model at the run's luminosity and at each
    projection luminosity (``tautau_projections.csv``); None without projections."""
    if not len(proj.get("model", [])):
        return None
    style()
    out_dir.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys(np.asarray(cols["model"]).tolist()))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        runs = [(luminosity_fb, cols, "exp_xsec_br_fb_median")]
        runs += [
            (float(lum), {k: v[proj["luminosity_fb"] == lum] for k, v in proj.items()}, None)
            for lum in np.unique(proj["luminosity_fb"])
        ]
        for lum, table, key in runs:
            sel = (table["model"] == model) & np.isfinite(table[key or "exp_xsec_br_fb_median"])
            if np.count_nonzero(sel) < 2:
                continue
            m = table["mass_gev"][sel]
            order = np.argsort(m)
            ax.plot(
                m[order],
                table[key or "exp_xsec_br_fb_median"][sel][order],
                label=f"{lum / 1000:g} ab$^{{-1}}$" if lum >= 1000 else f"{lum:g} fb$^{{-1}}$",
            )
        ax.set_yscale("log")
        ax.set_xlabel(r"$M_X$ [GeV]")
        ax.set_ylabel(r"expected 90% CL limit on $\sigma\times B(X\to\tau\tau)$ [fb]")
        ax.legend(fontsize="small", title=model, title_fontsize="small")
    fig.tight_layout()
    return save(fig, out_dir / "tt_projections")[0]


def efficiency_figure(
    check: Mapping[str, np.ndarray], out_dir: Path, luminosity_fb: float
) -> Path | None:
    """Per model: the efficiency of the held-out mass-continuum events in bins of the X mass
    (with their binomial errors) and the efficiency the limits interpolate between the
    simulated masses (``tautau_efficiency_check.csv``); None without rows."""
    if not len(check.get("model", [])):
        return None
    style()
    out_dir.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys(np.asarray(check["model"]).tolist()))
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        sel = check["model"] == model
        m = check["mass_gev"][sel]
        order = np.argsort(m)
        ax.errorbar(
            m[order],
            check["efficiency_continuum"][sel][order],
            yerr=check["efficiency_continuum_error"][sel][order],
            fmt="o",
            ms=3,
            color="k",
            label="mass continuum (held out)",
        )
        ax.plot(
            m[order],
            check["efficiency_interpolated"][sel][order],
            "-",
            color="#d95f02",
            label="interpolated (limits)",
        )
        ax.set_xlabel(r"$M_X$ [GeV]")
        ax.set_ylabel("efficiency (network, fit window)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small", title=model, title_fontsize="small")
        label(ax, luminosity_fb)
    fig.tight_layout()
    return save(fig, out_dir / "tt_efficiency_check")[0]
