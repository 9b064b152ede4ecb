"""The stages of the dark Higgsstrahlung search after the engine's ``simulate``.

``select``   every reconstructed sample through the selection (``selected/dark_higgs/``)
``windows``  a rotated ellipse and an efficiency per simulated (M_A', M_h') point, interpolated
             onto the hypothesis grid (``dark_higgs_points.csv``, ``dark_higgs_windows.parquet``)
``limits``   counts of the backgrounds and the pseudo-data in every window; 90% credible upper
             limits on sigma(e+e- -> A' h') x B(A' -> mu mu) and on epsilon^2 alpha_D, local
             significances and the global one from background-only toys
             (``dark_higgs_limits.csv``, ``dark_higgs_significance.json``)

The windows and the counting are :mod:`zprime.analyses.dark_higgsstrahlung.windows`, the
statistics :mod:`zprime.stats.counting`. The signal efficiency of a point is its selected
weight inside its window over its generated cross section (the files' ``sigma_fb``); the
limits are on sigma x B because the signal is generated with B(A' -> mu mu) = 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.interpolate import RegularGridInterpolator

from zprime._util import atomic_path, write_json_atomic
from zprime.analyses.base import SimulateOutput, StageContext
from zprime.analyses.dark_higgsstrahlung.control import (
    CONTROL_COLUMNS_READ,
    Corrections,
    measure,
    observed_events,
    read_corrections,
)
from zprime.analyses.dark_higgsstrahlung.outputs import (
    DhControlOutput,
    DhLimitsOutput,
    DhSelectOutput,
    DhWindowsOutput,
)
from zprime.analyses.dark_higgsstrahlung.selection import DarkHiggsSelection, select_file
from zprime.analyses.dark_higgsstrahlung.windows import (
    EllipseWindows,
    HypothesisGrid,
    WindowInterpolator,
    count_in_windows,
    fit_window,
    histogram_cells,
    hypothesis_grid,
    membership_matrix,
)
from zprime.analyses.observed import injected_total
from zprime.config import Config
from zprime.errors import InputError
from zprime.generators.aprime_hdark import sigma_fb as sigma_aprime_hdark
from zprime.io.events import read_events, read_metadata
from zprime.io.tables import write_csv
from zprime.physics.constants import SQRT_S
from zprime.physics.dark_higgs import (
    NARROW_RESONANCES,
    br_mumu,
    br_mumu_uncertainty,
    sigma_born_fb,
)
from zprime.stats.counting import (
    credible_upper_limits,
    expected_upper_limits,
    local_significance,
    max_local_z_toys,
    toy_global_significance,
)

__all__ = [
    "point_label",
    "signal_points",
    "stage_control",
    "stage_limits",
    "stage_select",
    "stage_windows",
]

_OBS = ("m_mumu", "m_recoil")
#: the fewest selected signal events a window is fitted to (our choice: the trimmed core
#: covariance of fewer is dominated by its own statistical error)
MIN_SELECTED = 50


def signal_points(config: Config) -> list[tuple[float, float]]:
    """The simulated (M_A', M_h') points: every ``dark_higgs.signal.aprime_masses_gev`` with
    M_h' at ``hdark_fractions`` of min(M_A', sqrt(s) - M_A')."""
    sig = config.dark_higgs.signal
    points = []
    for ma in sig.aprime_masses_gev:
        top = min(ma, SQRT_S - ma)
        points += [(float(ma), round(float(f * top), 4)) for f in sig.hdark_fractions]
    return points


def point_label(m_aprime: float, m_hdark: float) -> str:
    """``MA<M_A'>_MH<M_h'>`` (GeV, four decimals): the sample label of a simulated point."""
    return f"MA{m_aprime:.4f}_MH{m_hdark:.4f}"


def _vetoes(config: Config) -> list[tuple[float, float]]:
    hw = config.dark_higgs.windows.veto_half_width_gev
    return [(m - hw, m + hw) for m in NARROW_RESONANCES.values()]


# ----------------------------------------------------------------------------- select
def stage_select(ctx: StageContext) -> DhSelectOutput:
    """The selection of every reconstructed sample (signal, backgrounds, pseudo-data)."""
    sim: SimulateOutput = ctx.output("simulate", SimulateOutput)
    sel = DarkHiggsSelection.from_config(ctx.config.dark_higgs.selection)
    root = ctx.run.selected("dark_higgs")
    out: dict[str, dict[str, Path]] = {}
    controls: dict[str, dict[str, Path]] = {"backgrounds": {}, "data": {}}
    for group, files in (
        ("signal", sim.signal),
        ("backgrounds", sim.backgrounds),
        ("data", sim.data),
    ):
        out[group] = {}
        for name, reco in files.items():
            target = root / group / f"{name}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            # the control samples (mu mu gamma, e mu) of the backgrounds and the data, in the
            # same pass over the file
            ctl = root / group / f"{name}.control.parquet" if group != "signal" else None
            path, flow = select_file(
                reco,
                target,
                sel,
                luminosity_fb=ctx.config.luminosity_fb,
                control_path=ctl,
                electron_id_min=ctx.config.dark_higgs.control.electron_id_min,
            )
            out[group][name] = path
            if ctl is not None:
                controls[group][name] = ctl
            if group != "signal":
                ctx.console.print(
                    f"select {group}/{name}: {flow.yields[-1]:.4g} events at "
                    f"{ctx.config.luminosity_fb:g} fb^-1",
                    markup=False,
                    highlight=False,
                )
    return DhSelectOutput(out["signal"], out["backgrounds"], out["data"], controls)


# ----------------------------------------------------------------------------- control
def _read(path: Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    ev = read_events(path, list(columns))
    return {c: np.asarray(ev[c], dtype=float) for c in columns}


_SEL_COLS = (*CONTROL_COLUMNS_READ, "weight")
_CTL_COLS = (*CONTROL_COLUMNS_READ, "weight", "region", "n_near_photons")
#: random streams of the pseudo-data draws: the selected events (shared by the limits and the
#: control stage, so that both see one data set) and the control events
_STREAM_SELECTED, _STREAM_CONTROL = 2, 3


def _data_files(sel: DhSelectOutput) -> dict[str, Path]:
    """The selected files of the observed data (the simulation itself without data files)."""
    return sel.data if sel.data else sel.backgrounds


def _data_controls(sel: DhSelectOutput) -> dict[str, Path]:
    return sel.controls["data"] if sel.data else sel.controls["backgrounds"]


def stage_control(ctx: StageContext) -> DhControlOutput:
    """The control samples' measurements (:mod:`.control`): ``dark_higgs_control.json``."""
    cfg = ctx.config
    sel: DhSelectOutput = ctx.output("select", DhSelectOutput)
    sim_sel = {n: _read(p, _SEL_COLS) for n, p in sel.backgrounds.items()}
    sim_ctl = {n: _read(p, _CTL_COLS) for n, p in sel.controls["backgrounds"].items()}
    total = injected_total(ctx.output("simulate", SimulateOutput).data)
    data_sel = observed_events(
        cfg, _data_files(sel), _SEL_COLS[:-1], stream=_STREAM_SELECTED, signal_total_fb=total
    )
    data_ctl = observed_events(
        cfg,
        _data_controls(sel),
        _CTL_COLS[:4] + _CTL_COLS[5:],
        stream=_STREAM_CONTROL,
        signal_total_fb=total,
    )
    corr = measure(cfg, sim_sel, sim_ctl, data_sel, data_ctl)
    path = corr.write(ctx.run.root / "dark_higgs_control.json")
    ph = corr.photon
    for i in range(len(ph.extra)):
        lo, hi = np.degrees(ph.edges_rad[i : i + 2])
        ctx.console.print(
            f"control: photon missed along the recoil, theta {lo:.0f}-{hi:.0f} deg: data "
            f"{ph.eff_data[i]:.4f}, simulation {ph.eff_sim[i]:.4f}, extra {ph.extra[i]:+.4f} "
            f"+- {ph.extra_err[i]:.4f}"
            + (" (too few events: not corrected)" if ph.fallback[i] else ""),
            markup=False,
            highlight=False,
        )
    for norm in (corr.mumu, corr.tautau):
        why = f"; fallback: {norm.reason}" if norm.fallback else ""
        ctx.console.print(
            f"control: {norm.sample} data / simulation = {norm.ratio:.4f} +- "
            f"{norm.ratio_err:.4f} (applied to {norm.applies_to}{why})",
            markup=False,
            highlight=False,
        )
    return DhControlOutput(path)


# ----------------------------------------------------------------------------- windows
def _columns(path: Path) -> dict[str, np.ndarray]:
    ev = read_events(path, [*_OBS, "weight"])
    return {c: np.asarray(ev[c], dtype=float) for c in (*_OBS, "weight")}


def stage_windows(ctx: StageContext) -> DhWindowsOutput:
    """Fit a window to every simulated point, interpolate onto the hypothesis grid."""
    cfg = ctx.config
    sel: DhSelectOutput = ctx.output("select", DhSelectOutput)
    sim: SimulateOutput = ctx.output("simulate", SimulateOutput)
    rows: list[dict[str, Any]] = []
    windows = []
    for ma, mh in signal_points(cfg):
        label = point_label(ma, mh)
        ev = _columns(sel.signal[label])
        # the generated cross section (B = 1) rides on the reconstructed file's metadata
        sigma = float(read_metadata(sim.signal[label]).get("sigma_fb", math.nan))
        if not (math.isfinite(sigma) and sigma > 0):
            raise InputError(f"windows: point {label}: no generated cross section in its file")
        n_sel = len(ev["weight"])
        if n_sel < MIN_SELECTED:
            # too few to fit a window (e.g. M_A' = 1.65 GeV, where the 2019 trigger keeps ~1%):
            # the point is left out of the interpolation, and said so
            ctx.console.print(
                f"windows: point {label}: {n_sel} selected events, fewer than {MIN_SELECTED}: "
                "left out",
                markup=False,
                highlight=False,
            )
            continue
        win = fit_window(ev["m_mumu"], ev["m_recoil"], ev["weight"], k=cfg.dark_higgs.windows.k)
        inside = win.contains(ev["m_mumu"], ev["m_recoil"])
        eff = float(ev["weight"][inside].sum()) / sigma
        windows.append(win)
        rows.append(
            {
                "label": label,
                "m_aprime_gev": ma,
                "m_hdark_gev": mh,
                "centre_mumu_gev": win.centre_x,
                "centre_recoil_gev": win.centre_y,
                "axis_a_gev": win.a,
                "axis_b_gev": win.b,
                "angle_rad": win.angle,
                "efficiency": eff,
                "selected_events": n_sel,
            }
        )
    if len(rows) < 3:
        raise InputError(
            f"windows: {len(rows)} simulated points with at least {MIN_SELECTED} selected events; "
            "the interpolation needs three (dark_higgs.signal.events_per_point)"
        )
    points_csv = write_csv(ctx.run.root / "dark_higgs_points.csv", rows)
    interp = WindowInterpolator(
        [r["m_aprime_gev"] for r in rows],
        [r["m_hdark_gev"] for r in rows],
        windows,
        [r["efficiency"] for r in rows],
        k=cfg.dark_higgs.windows.k,
    )
    grid = hypothesis_grid(
        interp.widths,
        step=cfg.dark_higgs.windows.step,
        m_a_range=tuple(cfg.dark_higgs.windows.aprime_range_gev),
        vetoes=_vetoes(cfg),
    )
    # every row starts at M_h' = 0, which the search cannot have (the h' mass is the recoil's):
    # that hypothesis moves up to hdark_min. Dropping it instead emptied the rows below
    # M_A' ~ 2 GeV, where the recoil mass resolution is wider than the row's whole M_h' range
    # and M_h' = 0 is the row's only hypothesis.
    m_h = np.maximum(grid.m_h, cfg.dark_higgs.windows.hdark_min_gev)
    grid = HypothesisGrid(grid.m_a, m_h, grid.step)
    at = interp(grid.m_a, grid.m_h)
    w = at.windows
    table = pa.table(
        {
            "name": grid.names(),
            "m_aprime_gev": grid.m_a,
            "m_hdark_gev": grid.m_h,
            "centre_mumu_gev": w.centre_x,
            "centre_recoil_gev": w.centre_y,
            "axis_a_gev": w.a,
            "axis_b_gev": w.b,
            "angle_rad": w.angle,
            "efficiency": np.clip(at.efficiency, 0.0, None),
            "extrapolated": at.extrapolated,
        }
    )
    target = ctx.run.root / "dark_higgs_windows.parquet"
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    ctx.console.print(
        f"windows: {len(rows)} simulated points, {len(grid)} hypotheses "
        f"({int(np.sum(at.extrapolated))} extrapolated)",
        markup=False,
        highlight=False,
    )
    return DhWindowsOutput(points_csv, target)


# ----------------------------------------------------------------------------- limits
def _read_windows(path: Path) -> tuple[dict[str, np.ndarray], EllipseWindows]:
    t = pq.read_table(path).to_pydict()
    cols = {k: np.asarray(v) for k, v in t.items()}
    win = EllipseWindows(
        cols["centre_mumu_gev"],
        cols["centre_recoil_gev"],
        cols["axis_a_gev"],
        cols["axis_b_gev"],
        cols["angle_rad"],
    )
    return cols, win


def _corrected_background(
    sel: DhSelectOutput, corr: Corrections, lumi: float
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The simulated backgrounds' events that enter the windows, corrected (:mod:`.control`).

    Returns the events (``m_mumu``, ``m_recoil`` and the nominal expected counts ``weight``,
    the selected events followed by the control events recovered by the photon-loss
    correction), their weights with the photon-loss probability raised by one standard
    deviation, and each event's weight times its sample's relative normalisation uncertainty.
    """
    parts: list[dict[str, np.ndarray]] = []
    for name, path in sel.backgrounds.items():
        s_cols = _read(path, _SEL_COLS)
        ctl_path = sel.controls["backgrounds"].get(name)
        c_cols = _read(ctl_path, _CTL_COLS) if ctl_path is not None else None
        w_s, w_c = corr.weights(name, s_cols, c_cols)
        u_s, u_c = corr.weights(name, s_cols, c_cols, extra_shift=1.0)
        scale, scale_err = corr.scale_of(name)
        rel = scale_err / scale if scale > 0 else 0.0
        groups = [(s_cols, w_s, u_s)]
        if c_cols is not None:
            keep = (w_c > 0) | (u_c > 0)
            groups.append(({c: v[keep] for c, v in c_cols.items()}, w_c[keep], u_c[keep]))
        for cols, w, u in groups:
            parts.append(
                {
                    "m_mumu": cols["m_mumu"],
                    "m_recoil": cols["m_recoil"],
                    "weight": w * lumi,
                    "extra": u * lumi,
                    "scale_err": w * lumi * rel,
                }
            )
    keys = ("m_mumu", "m_recoil", "weight", "extra", "scale_err")
    if not parts:
        return {c: np.zeros(0) for c in (*_OBS, "weight")}, np.zeros(0), np.zeros(0)
    cat = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    return (
        {c: cat[c] for c in (*_OBS, "weight")},
        cat["extra"],
        cat["scale_err"],
    )


def stage_limits(ctx: StageContext) -> DhLimitsOutput:
    """Counts, Bayesian limits, local and global significances of every hypothesis."""
    cfg = ctx.config
    dh = cfg.dark_higgs
    lumi = float(cfg.luminosity_fb)
    sel: DhSelectOutput = ctx.output("select", DhSelectOutput)
    win_out: DhWindowsOutput = ctx.output("windows", DhWindowsOutput)
    cols, windows = _read_windows(win_out.hypotheses)
    corr = read_corrections(ctx.output("control", DhControlOutput).corrections)
    # the expected background: the simulation at the luminosity, corrected with the control
    # samples (control.py); its nominal weights and those with extra +1 sigma
    bkg, w_extra, w_scale_err = _corrected_background(sel, corr, lumi)
    counts = count_in_windows(windows, bkg["m_mumu"], bkg["m_recoil"], bkg["weight"])
    b = counts.sumw
    # the corrections' uncertainties: the photon-loss probability (every angle bin together)
    # and the normalisations (each sample's scale uncertainty times its corrected count)
    d_extra = count_in_windows(windows, bkg["m_mumu"], bkg["m_recoil"], w_extra).sumw - b
    d_scale = count_in_windows(windows, bkg["m_mumu"], bkg["m_recoil"], w_scale_err).sumw
    corr_unc = np.hypot(d_extra, d_scale)
    syst = dh.systematics
    rel_b = math.hypot(syst.background_shape, syst.preselection, syst.c_eta)
    # an empty window still has the uncertainty of one simulated event of the typical weight
    w_typ = float(np.sum(bkg["weight"] ** 2) / max(np.sum(bkg["weight"]), 1e-300))
    # (a window is empty when no simulated event has a positive weight in it: control events
    # kept only for the +1 sigma photon-loss variation carry zero nominal weight)
    filled = counts.sumw > 0
    mc = np.sqrt(np.where(filled, counts.sumw2, w_typ**2))
    sigma_b = np.sqrt(mc**2 + (rel_b * b) ** 2 + corr_unc**2)
    # the observed data: a user's ntuple (every selected event once), or the pseudo-data
    # samples thinned to unit weight at the luminosity (the control stage's data set)
    data = observed_events(
        cfg,
        _data_files(sel),
        _OBS,
        stream=_STREAM_SELECTED,
        signal_total_fb=injected_total(ctx.output("simulate", SimulateOutput).data),
    )
    n_obs = count_in_windows(windows, data["m_mumu"], data["m_recoil"]).count
    # the signal: efficiency x luminosity per fb of sigma x B
    eff = cols["efficiency"]
    a = eff * lumi
    rel_s = math.hypot(syst.preselection, syst.mass_resolution, syst.window_efficiency)
    ok = a > 0
    obs = np.full(len(windows), np.nan)
    exp = np.full((len(windows), 5), np.nan)
    obs[ok] = credible_upper_limits(
        n_obs[ok], a[ok], b[ok], signal_unc=rel_s, background_unc=sigma_b[ok], level=dh.limits.level
    )
    exp[ok] = expected_upper_limits(
        a[ok], b[ok], signal_unc=rel_s, background_unc=sigma_b[ok], level=dh.limits.level
    )
    # epsilon^2 alpha_D: sigma(eps^2 alpha_D = 1) x B with B's uncertainty in the signal's
    ma, mh = cols["m_aprime_gev"], cols["m_hdark_gev"]
    sig1 = _sigma_isr(ma, mh, dh.signal.isr)
    br = np.asarray(br_mumu(ma), dtype=float)
    rel_br = np.maximum(np.asarray(br_mumu_uncertainty(ma), dtype=float) / br, syst.br_aprime)
    a_eps = a * sig1 * br
    eps = np.full(len(windows), np.nan)
    eps[ok] = credible_upper_limits(
        n_obs[ok],
        a_eps[ok],
        b[ok],
        signal_unc=np.hypot(rel_s, rel_br[ok]),
        background_unc=sigma_b[ok],
        level=dh.limits.level,
    )
    z = local_significance(n_obs, b, background_unc=sigma_b).z
    # look-elsewhere: background-only toys of the background's own 2-d histogram
    size = 0.25 * float(np.min(np.minimum(windows.a, windows.b)))
    cells = histogram_cells(bkg["m_mumu"], bkg["m_recoil"], bkg["weight"], size=size)
    member = membership_matrix(windows, cells.x, cells.y)
    toys = max_local_z_toys(
        member, cells.sumw, ntoys=dh.limits.lee_toys, seed=cfg.seed, background_unc=sigma_b
    )
    i_max = int(np.nanargmax(z)) if np.isfinite(z).any() else 0
    glob = toy_global_significance(float(z[i_max]), toys)
    rows = [
        {
            "name": str(cols["name"][i]),
            "m_aprime_gev": float(ma[i]),
            "m_hdark_gev": float(mh[i]),
            "efficiency": float(eff[i]),
            "extrapolated": bool(cols["extrapolated"][i]),
            "n_observed": int(n_obs[i]),
            "background": float(b[i]),
            "background_unc": float(sigma_b[i]),
            "obs_xsec_br_fb": float(obs[i]),
            **{f"exp_xsec_br_fb_{k}": float(exp[i, j]) for j, k in enumerate(_BANDS)},
            "obs_eps2_alpha_d": float(eps[i]),
            "z_local": float(z[i]),
        }
        for i in range(len(windows))
    ]
    limits_csv = write_csv(ctx.run.root / "dark_higgs_limits.csv", rows)
    proj_csv = write_csv(
        ctx.run.root / "dark_higgs_projections.csv",
        _projections(
            cols,
            ok,
            lumi,
            cfg.projections.luminosities_fb,
            cfg.projections.systematics,
            cfg.projections.mc_stat,
            eff=eff,
            mc=mc,
            b=np.where(filled, b, w_typ),
            rel_b=rel_b,
            corr_unc=corr_unc,
            rel_s=rel_s,
            rel_br=rel_br,
            sig1_br=sig1 * br,
            level=dh.limits.level,
        ),
    )
    summary = {
        "hypotheses": len(rows),
        "largest_local_z": float(z[i_max]),
        "at_m_aprime_gev": float(ma[i_max]),
        "at_m_hdark_gev": float(mh[i_max]),
        "global_p": float(glob.p_global),
        "global_z": float(glob.z_global),
        "toys": int(glob.n_toys),
    }
    sig_path = ctx.run.root / "dark_higgs_significance.json"
    write_json_atomic(sig_path, summary)
    ctx.console.print(f"limits: {summary}", markup=False, highlight=False)
    return DhLimitsOutput(limits_csv, sig_path, proj_csv)


def _projections(
    cols: dict[str, np.ndarray],
    ok: np.ndarray,
    lumi: float,
    luminosities: list[float],
    systematics: str,
    mc_stat: str,
    *,
    eff: np.ndarray,
    mc: np.ndarray,
    b: np.ndarray,
    rel_b: float,
    corr_unc: np.ndarray,
    rel_s: float,
    rel_br: np.ndarray,
    sig1_br: np.ndarray,
    level: float,
) -> list[dict[str, Any]]:
    """Expected limits (median and +-1 sigma) at other luminosities (``projections``).

    The efficiencies and the corrected background of this run scale with the luminosity. The
    relative systematic uncertainties (the talk's and the corrections') stay as they are
    (``projections.systematics: kept``), shrink as 1/sqrt(L/L0) (``scaled``: they come from
    control samples that grow with the data) or are left out (``none``). The simulation's
    statistical uncertainty keeps its relative size (``projections.mc_stat: keep``) or is left
    out (``drop``: simulated samples that grow with the data). The signal uncertainties are
    kept. Our choice: the talk shows no projection for this search.

    A window without a simulated background event is given one event of the simulation's
    typical weight (``b`` as the caller passes it): the posterior mean of a Poisson mean given
    zero events and a flat prior. At this run's luminosity that is a tenth of an event or
    less; taking zero instead would let such windows' projected limits fall as 1/L for ever,
    which the simulation cannot support.
    """
    rows: list[dict[str, Any]] = []
    rel_corr = np.divide(corr_unc, b, out=np.zeros_like(b), where=b > 0)
    rel_mc = np.divide(mc, b, out=np.zeros_like(b), where=b > 0)
    for lum in luminosities:
        f = float(lum) / lumi
        b_l = b * f
        k = {"kept": 1.0, "scaled": 1.0 / math.sqrt(f), "none": 0.0}[systematics]
        rel = np.hypot(k * rel_b, k * rel_corr)
        if mc_stat == "keep":
            rel = np.hypot(rel, rel_mc)
        sb_l = b_l * rel
        a_l = eff * float(lum)
        xs = np.full((len(b), 5), np.nan)
        ep = np.full((len(b), 5), np.nan)
        xs[ok] = expected_upper_limits(
            a_l[ok], b_l[ok], signal_unc=rel_s, background_unc=sb_l[ok], level=level
        )
        ep[ok] = expected_upper_limits(
            a_l[ok] * sig1_br[ok],
            b_l[ok],
            signal_unc=np.hypot(rel_s, rel_br[ok]),
            background_unc=sb_l[ok],
            level=level,
        )
        rows += [
            {
                "name": str(cols["name"][i]),
                "m_aprime_gev": float(cols["m_aprime_gev"][i]),
                "m_hdark_gev": float(cols["m_hdark_gev"][i]),
                "luminosity_fb": float(lum),
                "background": float(b_l[i]),
                "exp_xsec_br_fb_m1": float(xs[i, 1]),
                "exp_xsec_br_fb_median": float(xs[i, 2]),
                "exp_xsec_br_fb_p1": float(xs[i, 3]),
                "exp_eps2_alpha_d_median": float(ep[i, 2]),
            }
            for i in range(len(b))
        ]
    return rows


_BANDS = ("m2", "m1", "median", "p1", "p2")


def _logit(f: Any) -> Any:
    return np.log(f) - np.log1p(-f)


def _sigma_isr(ma: np.ndarray, mh: np.ndarray, isr: bool) -> np.ndarray:
    """sigma(e+e- -> A' h') for epsilon^2 alpha_D = 1 at every hypothesis (fb).

    The Born formula times the ISR factor K = sigma_ISR / sigma_Born, which is smooth in M_A'
    and in the logit of f = M_h' / min(M_A', sqrt(s) - M_A') (dense nodes towards M_h' -> 0,
    where K grows as ln(1/M_h'), and towards the threshold, where it falls): K is computed by
    quadrature (:func:`zprime.generators.aprime_hdark.sigma_fb`, ~17 ms each) on a 40 x 32
    grid of (M_A', logit f) and interpolated linearly, instead of a quadrature at each of
    ~10^4 hypotheses (minutes); ``tests/analyses/dark_higgsstrahlung`` bounds the error.
    """
    born = np.asarray(sigma_born_fb(ma, mh), dtype=float)
    if not isr:
        return born
    lo, hi = float(np.min(ma)), float(np.max(ma))
    grid_a = np.linspace(lo, hi, 40) if hi > lo else np.array([lo, lo + 1e-6])
    grid_lf = np.linspace(_logit(1e-3), _logit(0.999), 32)
    k = np.empty((grid_a.size, grid_lf.size))
    for i, a in enumerate(grid_a):
        top = min(a, SQRT_S - a)
        for j, lf in enumerate(grid_lf):
            h = float(1.0 / (1.0 + np.exp(-lf))) * top
            k[i, j] = sigma_aprime_hdark(float(a), h, isr=True).sigma_fb / float(
                sigma_born_fb(float(a), h)
            )
    f = mh / np.minimum(ma, SQRT_S - ma)
    lf = _logit(np.clip(f, 1e-3, 0.999))
    interp = RegularGridInterpolator((grid_a, grid_lf), k, bounds_error=False, fill_value=None)
    return born * interp(np.stack([ma, lf], axis=1))
