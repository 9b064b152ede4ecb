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

__all__ = ["control_figure", "limit_figures", "projection_figure"]

#: M_h' of the fixed-M_h' slices, GeV (a hypothesis within 10% of it at each M_A')
SLICE_HDARK_GEV = (0.1, 0.5, 1.0, 2.0, 4.0)


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
    if ax.get_legend_handles_labels()[0]:  # a sparse grid may leave no slice
        ax.legend(fontsize="small")
    label(ax, luminosity_fb)
    written["dh_limit_slices"] = save(fig, out_dir / "dh_limit_slices")[0]
    written["dh_limit_slices_mh"] = _fixed_hdark_slices(cols, out_dir, luminosity_fb)
    return written


def _legend(ax: plt.Axes, title: str) -> None:
    """A legend with ``title``, or the title alone where no line carries a label (a sparse
    grid may leave none; matplotlib warns on an empty legend)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", title=title, title_fontsize="x-small")
    else:
        ax.text(0.03, 0.95, title, transform=ax.transAxes, fontsize="x-small", va="top")


def _nearest_per_aprime(ma: np.ndarray, mh: np.ndarray, target: float) -> np.ndarray:
    """Indices of the hypothesis with M_h' closest to ``target`` (within 10%) at each M_A'."""
    near = np.flatnonzero(np.abs(mh - target) < 0.1 * target)
    if near.size == 0:
        return near
    order = np.lexsort((np.abs(mh[near] - target), ma[near]))
    idx = near[order]
    _, first = np.unique(ma[idx], return_index=True)
    return idx[first]


def _fixed_hdark_slices(
    cols: Mapping[str, np.ndarray], out_dir: Path, luminosity_fb: float
) -> Path:
    """Observed and expected (median, +-1 s.d.) sigma x B limits versus M_A' at fixed M_h'."""
    ma, mh = cols["m_aprime_gev"], cols["m_hdark_gev"]
    fig, ax = plt.subplots(figsize=(7, 5))
    for target in SLICE_HDARK_GEV:
        idx = _nearest_per_aprime(ma, mh, target)
        idx = idx[np.isfinite(cols["obs_xsec_br_fb"][idx])]
        if idx.size < 2:
            continue
        (line,) = ax.plot(
            ma[idx], cols["obs_xsec_br_fb"][idx], label=f"$M_{{h'}} = {target:g}$ GeV"
        )
        ax.plot(ma[idx], cols["exp_xsec_br_fb_median"][idx], ls="--", color=line.get_color())
        ax.fill_between(
            ma[idx],
            cols["exp_xsec_br_fb_m1"][idx],
            cols["exp_xsec_br_fb_p1"][idx],
            color=line.get_color(),
            alpha=0.15,
            lw=0,
        )
    ax.set_yscale("log")
    ax.set_xlabel(r"$M_{A'}$ [GeV]")
    ax.set_ylabel(r"90% credible limit on $\sigma \times B$ [fb]")
    _legend(ax, "solid: observed; dashed, band: expected, $\\pm1$ s.d.")
    label(ax, luminosity_fb)
    return save(fig, out_dir / "dh_limit_slices_mh")[0]


def projection_figure(
    proj: Mapping[str, np.ndarray], out_dir: Path, luminosity_fb: float
) -> Path | None:
    """Expected median sigma x B limits versus M_A' at M_h' = 0.5 GeV for the run's
    luminosity and every projection (``dark_higgs_projections.csv`` columns)."""
    style()
    lums = np.unique(proj["luminosity_fb"]) if len(proj.get("luminosity_fb", [])) else []
    if len(lums) == 0:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    for lum in lums:
        sel = proj["luminosity_fb"] == lum
        ma, mh = proj["m_aprime_gev"][sel], proj["m_hdark_gev"][sel]
        idx = _nearest_per_aprime(ma, mh, 0.5)
        val = proj["exp_xsec_br_fb_median"][sel][idx]
        ok = np.isfinite(val)
        if ok.sum() >= 2:
            ax.plot(ma[idx][ok], val[ok], label=f"{lum:g} fb$^{{-1}}$")
    ax.set_yscale("log")
    ax.set_xlabel(r"$M_{A'}$ [GeV]")
    ax.set_ylabel(r"expected 90% credible limit on $\sigma \times B$ [fb]")
    _legend(ax, f"$M_{{h'}} = 0.5$ GeV; projected from {luminosity_fb:g} fb$^{{-1}}$")
    out_dir.mkdir(parents=True, exist_ok=True)
    return save(fig, out_dir / "dh_projections")[0]


def control_figure(corr: Mapping, out_dir: Path, luminosity_fb: float) -> Path:
    """The mu mu gamma tag and probe: fraction of photon-like recoils that pass the photon veto
    (the photon missed) in data and simulation per recoil-angle bin (``dark_higgs_control.json``
    content)."""
    style()
    ph = corr["photon_detection"]
    edges = np.asarray(ph["theta_recoil_edges_deg"], dtype=float)
    mid = 0.5 * (edges[1:] + edges[:-1])
    half = 0.5 * np.diff(edges)

    def arr(key: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in ph[key]], dtype=float)

    fig, ax = plt.subplots(figsize=(7, 5))
    for kind, fmt, name in (("data", "ko", "data"), ("sim", "s", "simulation")):
        ax.errorbar(
            mid, arr(f"eff_{kind}"), xerr=half, yerr=arr(f"err_{kind}"), fmt=fmt, label=name
        )
    ax.set_xlabel(r"recoil polar angle $\theta$ [deg]")
    ax.set_ylabel(r"photon missed: $\mu\mu\gamma$ probe passing the veto")
    norm = corr["normalisation"]
    ax.legend(
        fontsize="small",
        title=f"data / simulation: $\\mu\\mu\\gamma$ {norm['mumu']['ratio']:.3f}, "
        f"$e\\mu$ {norm['tautau']['ratio']:.3f}",
        title_fontsize="x-small",
    )
    label(ax, luminosity_fb)
    out_dir.mkdir(parents=True, exist_ok=True)
    return save(fig, out_dir / "dh_control_photon")[0]
