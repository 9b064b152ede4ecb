"""The stages of the tau-tau resonance search after the engine's ``simulate``.

``select``  every reconstructed sample through the four-track pre-selection
            (``selected/tautau/``), the backgrounds and the data also as the pion-pair control
            sample (``selected/tautau_control/``)
``train``   one classifier per M_recoil range, trained on the range's mass-continuum samples
            (``networks/tautau_range_<i>.pt``, ``tautau_networks.json``)
``limits``  the signal resolution per simulated mass; for every model and hypothesis mass the
            window's signal template (the nearest simulated mass, shifted), the data, the
            workspace and the CLs limit on sigma(e+e- -> mu mu X) x B(X -> tau tau) (from toys
            in windows with few events); the fit bias
            from injected signals at the simulated masses (toys from a smooth, more flexible
            fit to the simulated background); the coupling limits; the expected
            limits at the ``projections.luminosities_fb`` (the simulated background as Asimov
            data, systematics kept); the efficiency between the simulated masses measured
            with the held-out part of the continuum samples (``tautau_limits.csv``,
            ``tautau_bias.csv``, ``tautau_projections.csv``, ``tautau_efficiency_check.csv``)

Signal samples of the simulated points are labelled ``<model>_M<mass>``; their files' weights
sum to the generated cross section at unit coupling with B(X -> tau tau) = 1, so a template per
fb of sigma x B is the selected weight x L over that sum. The training samples
(``train_<model>_M<lo>-<hi>``) cover the X masses of a network range continuously.
"""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from zprime._util import write_json_atomic
from zprime.analyses.base import SimulateOutput, StageContext
from zprime.analyses.observed import injected_total, observed_events
from zprime.analyses.tautau_resonance.fit import (
    bias_study,
    smooth_background,
    window_edges,
    window_workspace,
)
from zprime.analyses.tautau_resonance.networks import RangeClassifier, load, save, train_range
from zprime.analyses.tautau_resonance.outputs import (
    TtLimitsOutput,
    TtSelectOutput,
    TtTrainOutput,
)
from zprime.analyses.tautau_resonance.selection import FEATURES, TautauSelection, select_file
from zprime.config import Config
from zprime.errors import ConfigError, InputError
from zprime.io.events import read_events, read_metadata
from zprime.io.tables import write_csv
from zprime.parallel import map_tasks
from zprime.physics.leptophilic import ANALYSIS_MASS_RANGE, coupling_limit
from zprime.physics.xsec_table import load_xsec_table, spin_table_path
from zprime.stats import LimitResult, compile_workspace, scan_limits, toy_limits

__all__ = [
    "SPIN_OF",
    "efficiency_check",
    "point_label",
    "resolution_model",
    "signal_points",
    "stage_limits",
    "stage_select",
    "stage_train",
    "training_label",
    "training_ranges",
]

SPIN_OF: dict[str, str] = {"zprime": "vector", "scalar": "scalar", "alp": "pseudoscalar"}
"""The spin of each model's X, as the generator names it."""

_COLS = ("m_recoil", *FEATURES, "weight", "mass_true", "event")
#: signal candidates farther than this from their point's mass (wrong muon pairs, the ISR
#: tail) do not train the networks; the same distance bounds the resolution measurement
_SIGNAL_CORE_GEV = 0.5
#: every this-th event of a training sample (``event % _HOLDOUT == 0``) does not train: it
#: measures the efficiency between the simulated masses (:func:`efficiency_check`)
_HOLDOUT = 4
#: the mass bins of that measurement, GeV
_CHECK_BIN_GEV = 0.1
#: the talk's signal-yield systematics besides the fit bias (measured) and the luminosity
_SIGNAL_SYSTEMATICS = (
    "trigger",
    "particle_id",
    "tracking",
    "mlp_selection",
    "mass_resolution",
    "efficiency_interpolation",
    "other",
)
_STREAM_DATA = 2


def point_label(model: str, mass: float) -> str:
    """``<model>_M<mass>`` (four decimals): the sample label of a simulated point."""
    return f"{model}_M{mass:.4f}"


def signal_points(config: Config) -> list[tuple[str, float]]:
    """Every (model, mass) of ``tautau.signal``."""
    sig = config.tautau.signal
    return [(m, float(x)) for m in sig.models for x in sig.masses_gev]


def training_label(model: str, lo: float, hi: float) -> str:
    """``train_<model>_M<lo>-<hi>`` (four decimals): the label of a mass-continuum sample."""
    return f"train_{model}_M{lo:.4f}-{hi:.4f}"


def _training_masses(config: Config, lo: float, hi: float) -> tuple[float, float]:
    """The X masses of a network range's training samples: the range widened by
    ``tautau.networks.margin_gev``, clipped to the analysis's 3.6-10 GeV."""
    margin = config.tautau.networks.margin_gev
    a = max(ANALYSIS_MASS_RANGE[0], lo - margin)
    b = min(ANALYSIS_MASS_RANGE[1], hi + margin)
    if not b - a >= 0.01:
        raise ConfigError(
            f"tautau.networks.edges_gev: range {lo:g}-{hi:g} GeV lies outside the "
            f"search's {ANALYSIS_MASS_RANGE[0]:g}-{ANALYSIS_MASS_RANGE[1]:g} GeV"
        )
    return round(a, 6), round(b, 6)


def training_ranges(config: Config) -> list[tuple[str, float, float]]:
    """(model, lowest, highest X mass) of every training sample: one per model and network
    range (:func:`_training_masses`)."""
    pairs = list(itertools.pairwise(config.tautau.networks.edges_gev))
    return [
        (model, *_training_masses(config, lo, hi))
        for model in config.tautau.signal.models
        for lo, hi in pairs
    ]


def selection_of(config: Config, control: bool = False) -> TautauSelection:
    """The pre-selection of the ``tautau.selection`` section."""
    d = config.tautau.selection.model_dump()
    d["disabled"] = frozenset(d["disabled"])
    d["m_recoil_range_gev"] = tuple(d["m_recoil_range_gev"])
    return TautauSelection(control=control, **d)


def _read(path: Path) -> dict[str, np.ndarray]:
    ev = read_events(path, list(_COLS))
    return {c: np.asarray(ev[c], dtype=float) for c in _COLS}


def _x(cols: dict[str, np.ndarray]) -> np.ndarray:
    return (
        np.stack([cols[f] for f in FEATURES], axis=1)
        if len(cols["weight"])
        else np.zeros((0, len(FEATURES)))
    )


# ----------------------------------------------------------------------------- select
def stage_select(ctx: StageContext) -> TtSelectOutput:
    """The pre-selection of every reconstructed sample, and the control sample."""
    sim: SimulateOutput = ctx.output("simulate", SimulateOutput)
    cfg = ctx.config
    lumi = float(cfg.luminosity_fb)
    sel = selection_of(cfg)
    out: dict[str, dict[str, Path]] = {}
    controls: dict[str, dict[str, Path]] = {"backgrounds": {}, "data": {}}
    for group, files in (
        ("signal", sim.signal),
        ("backgrounds", sim.backgrounds),
        ("data", sim.data),
    ):
        out[group] = {}
        for name, reco in files.items():
            target = ctx.run.selected("tautau") / group / f"{name}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            c_target = None
            if group != "signal":
                c_target = ctx.run.selected("tautau_control") / group / f"{name}.parquet"
                c_target.parent.mkdir(parents=True, exist_ok=True)
                controls[group][name] = c_target
            # the control sample in the same pass over the file
            path, flow = select_file(reco, target, sel, luminosity_fb=lumi, control_path=c_target)
            out[group][name] = path
            if group != "signal":
                ctx.console.print(
                    f"select {group}/{name}: {flow.yields[-1]:.4g} events at {lumi:g} fb^-1 "
                    f"({flow.counts[-1]} simulated)",
                    markup=False,
                    highlight=False,
                )
    summary = _control_summary(cfg, controls, injected_total(sim.data))
    path = write_json_atomic(ctx.run.root / "tautau_control.json", summary)
    ctx.console.print(
        f"control sample (pi pi + 2 tracks): {summary['data']:.0f} data candidates, "
        f"{summary['simulation']:.4g} simulated (ratio {summary['ratio']:.3f} +- "
        f"{summary['ratio_err']:.3f})",
        markup=False,
        highlight=False,
    )
    return TtSelectOutput(out["signal"], out["backgrounds"], out["data"], path)


def _control_summary(
    cfg: Config, controls: dict[str, dict[str, Path]], signal_total_fb: float | None = None
) -> dict[str, Any]:
    """Data and simulation in the pion-pair control sample (talk: "2 pi + 2 e/mu/pi"): a check of
    the simulated backgrounds' normalisation without the muon pair (mu mu pi pi and e e +
    hadrons, which neither the paper nor we simulate, enter the data only)."""
    lumi = float(cfg.luminosity_fb)
    per_sample = {
        name: float(read_events(p, ["weight"])["weight"].to_numpy().sum() * lumi)
        for name, p in controls["backgrounds"].items()
    }
    data_files = controls["data"] or controls["backgrounds"]
    data = observed_events(
        cfg,
        data_files,
        ("event", "n_candidates"),
        stream=_STREAM_DATA + 1,
        signal_total_fb=signal_total_fb,
        group_by="event",
    )
    # candidates are counted; an event's m candidates fluctuate together, so the variance of
    # the count is sum over events of m^2 = (candidates) x (mean m over the candidates)
    n_data = float(len(data["weight"]))
    mult = float(np.mean(data["n_candidates"])) if n_data else 1.0
    n_sim = sum(per_sample.values())
    ratio = n_data / n_sim if n_sim > 0 else math.nan
    err = ratio * math.sqrt(mult / max(n_data, 1.0)) if n_sim > 0 else math.nan
    return {
        "sample": "pi pi + 2 tracks (e, mu or pi), candidates",
        "data": n_data,
        "simulation": n_sim,
        "simulation_by_sample": per_sample,
        "candidates_per_event": mult,
        "ratio": ratio,
        "ratio_err": err,
    }


# ----------------------------------------------------------------------------- train
def _sigma_generated(sim: SimulateOutput, label: str) -> float:
    sigma = float(read_metadata(sim.signal[label]).get("sigma_fb", math.nan))
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"tau-tau: signal {label}: no generated cross section in its file")
    return sigma


def stage_train(ctx: StageContext) -> TtTrainOutput:
    """One classifier per M_recoil range, trained on the range's mass-continuum samples
    (:func:`training_ranges`; each model at equal total weight, flat in the X mass: each event
    weighted by 1 / sigma(M) of the cross-section table) against every background candidate in
    the range. Signal candidates farther than 0.5 GeV from their event's X mass (wrong muon
    pairs, the ISR tail) do not train, nor does every fourth event (held out for
    :func:`efficiency_check`). The simulated points stay out of the training: they measure the
    efficiencies without the networks' training bias."""
    cfg = ctx.config
    nc = cfg.tautau.networks
    sel: TtSelectOutput = ctx.output("select", TtSelectOutput)
    lumi = float(cfg.luminosity_fb)
    tables = {m: load_xsec_table(spin_table_path(SPIN_OF[m])) for m in cfg.tautau.signal.models}
    bkg = [_read(p) for p in sel.backgrounds.values()]
    edges = nc.edges_gev
    models: dict[str, Path] = {}
    summary: list[dict[str, Any]] = []
    out_dir = ctx.run.root / "networks"
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        a, b = lo - nc.margin_gev, hi + nc.margin_gev
        xs, ws = [], []
        for name, table in tables.items():
            cols = _read(sel.signal[training_label(name, *_training_masses(cfg, lo, hi))])
            keep = (
                (np.abs(cols["m_recoil"] - cols["mass_true"]) < _SIGNAL_CORE_GEV)
                & (cols["m_recoil"] >= a)
                & (cols["m_recoil"] <= b)
                & (cols["event"] % _HOLDOUT != 0)
            )
            if np.count_nonzero(keep) < 10:
                continue
            w = 1.0 / table.sigma_fb(cols["mass_true"][keep], isr=cfg.tautau.signal.isr)
            xs.append(_x(cols)[keep])
            ws.append(w / w.sum())
        xb = [_x(c)[(c["m_recoil"] >= a) & (c["m_recoil"] <= b)] for c in bkg]
        wb = [c["weight"][(c["m_recoil"] >= a) & (c["m_recoil"] <= b)] * lumi for c in bkg]
        if not xs or sum(len(x) for x in xb) < 10:
            raise InputError(
                f"tau-tau: range {lo:g}-{hi:g} GeV has too few selected signal or background "
                "events to train its network"
            )
        model = train_range(
            (lo, hi),
            FEATURES,
            np.concatenate(xs),
            np.concatenate(ws),
            np.concatenate(xb),
            np.concatenate(wb),
            hidden_layers=nc.hidden_layers,
            epochs=nc.epochs,
            seed=cfg.seed + nc.seed_offset + i,
        )
        models[str(i)] = save(model, out_dir / f"tautau_range_{i}.pt")
        summary.append(
            {
                "range_gev": [lo, hi],
                "cut": model.cut,
                "signal_events": int(sum(len(x) for x in xs)),
                "background_events": int(sum(len(x) for x in xb)),
                "epochs": len(model.history["validation"]),
                "validation_loss": min(model.history["validation"]),
            }
        )
        ctx.console.print(
            f"train: range {lo:g}-{hi:g} GeV: cut {model.cut:.3f}, "
            f"{summary[-1]['signal_events']} signal / {summary[-1]['background_events']} "
            "background events",
            markup=False,
            highlight=False,
        )
    path = write_json_atomic(ctx.run.root / "tautau_networks.json", {"ranges": summary})
    return TtTrainOutput(models, path)


# ----------------------------------------------------------------------------- limits
def resolution_model(masses: np.ndarray, widths: np.ndarray) -> Any:
    """sigma(M) by linear interpolation of the simulated masses' core widths (flat outside)."""
    order = np.argsort(masses)
    m, w = np.asarray(masses, float)[order], np.asarray(widths, float)[order]
    return lambda x: np.interp(x, m, w)


def _core_width(m_recoil: np.ndarray, weights: np.ndarray, mass: float) -> float:
    """Half the central 68% interval of M_recoil within +-0.5 GeV of the mass (a robust core
    width; ISR and wrong pairs make long tails)."""
    near = np.abs(m_recoil - mass) < _SIGNAL_CORE_GEV
    if np.count_nonzero(near) < 20:
        return math.nan
    x, w = m_recoil[near], weights[near]
    order = np.argsort(x)
    c = np.cumsum(w[order]) / w.sum()
    lo, hi = np.interp([0.16, 0.84], c, x[order])
    return float(0.5 * (hi - lo))


def _classifier_for(mass: float, edges: list[float], nets: list[RangeClassifier]) -> int:
    i = int(np.searchsorted(edges, mass, side="right") - 1)
    return min(max(i, 0), len(nets) - 1)


def hypothesis_masses(width: Any, lo: float, hi: float, step: float) -> np.ndarray:
    """Masses from ``lo`` to ``hi`` spaced ``step`` resolution widths apart."""
    out = [lo]
    while out[-1] < hi:
        out.append(out[-1] + step * float(width(out[-1])))
    out[-1] = min(out[-1], hi)
    return np.unique(np.asarray(out))


def stage_limits(ctx: StageContext) -> TtLimitsOutput:
    """Window fits, limits on sigma x B and on the couplings, and the fit bias."""
    cfg = ctx.config
    tc = cfg.tautau
    lumi = float(cfg.luminosity_fb)
    sim: SimulateOutput = ctx.output("simulate", SimulateOutput)
    sel: TtSelectOutput = ctx.output("select", TtSelectOutput)
    trained: TtTrainOutput = ctx.output("train", TtTrainOutput)
    nets = [load(trained.networks[str(i)]) for i in range(len(trained.networks))]
    edges = tc.networks.edges_gev
    # the signal of every simulated point after every classifier: a hypothesis between two
    # points interpolates their efficiencies with its own range's classifier, which for half of
    # the intervals is not the classifier of one of the points
    sig: dict[tuple[str, float, int], dict[str, np.ndarray]] = {}
    widths: dict[float, list[float]] = {}
    for model, mass in signal_points(cfg):
        label = point_label(model, mass)
        cols = _read(sel.signal[label])
        x = _x(cols)
        per_fb = cols["weight"] * lumi / _sigma_generated(sim, label)  # events per fb
        for i, net in enumerate(nets):
            keep = net.passes(x) if len(x) else np.zeros(0, bool)
            sig[(model, mass, i)] = {"m_recoil": cols["m_recoil"][keep], "weight": per_fb[keep]}
        own = sig[(model, mass, _classifier_for(mass, edges, nets))]
        widths.setdefault(mass, []).append(_core_width(own["m_recoil"], own["weight"], mass))
    wm = {m: float(np.nanmean(v)) for m, v in widths.items() if np.isfinite(v).any()}
    if len(wm) < 2:
        raise InputError("tau-tau: fewer than two simulated masses with a measurable resolution")
    width = resolution_model(np.array(list(wm)), np.array(list(wm.values())))
    # the background (simulation) and the data after the classifiers, per range
    bkg = [_read(p) for p in sel.backgrounds.values()]
    data = observed_events(
        cfg,
        sel.data or sel.backgrounds,
        ("m_recoil", *FEATURES, "event"),
        stream=_STREAM_DATA,
        signal_total_fb=injected_total(sim.data),
        group_by="event",
    )
    x_data = (
        np.stack([data[f] for f in FEATURES], axis=1)
        if len(data["weight"])
        else np.zeros((0, len(FEATURES)))
    )
    passed_data = [n.passes(x_data) if len(x_data) else np.zeros(0, bool) for n in nets]
    passed_bkg = [
        [n.passes(_x(c)) if len(c["weight"]) else np.zeros(0, bool) for c in bkg] for n in nets
    ]
    # hypotheses inside the simulated range (the templates come from the nearest point)
    sim_lo, sim_hi = min(wm), max(wm)
    masses = hypothesis_masses(width, max(3.6, sim_lo), min(10.0, sim_hi), tc.fit.step)
    syst = tc.systematics.model_dump()
    sim_masses = np.array(sorted(wm))
    # the fit bias at the simulated masses, with the expected background of the simulation
    bias_rows = []
    bias_by_mass: dict[float, float] = {}
    for mass in sim_masses:
        i = _classifier_for(mass, edges, nets)
        e = window_edges(
            mass, float(width(mass)), half_width=tc.fit.half_width, n_bins=tc.fit.n_bins
        )
        b_exp = sum(
            np.histogram(c["m_recoil"][p], bins=e, weights=c["weight"][p] * lumi)[0]
            for c, p in zip(bkg, passed_bkg[i], strict=True)
        )
        s_t = _template(sig, tc.signal.models[0], mass, sim_masses, e, i)
        if not s_t.sum() > 0:
            continue
        # the toys' truth: a smooth, more flexible shape through the simulated background
        # (smooth_background says what it works around)
        b_exp = smooth_background(e, b_exp, s_t, degree=tc.fit.degree + 2)
        spec = window_workspace(f"bias_{mass:.3f}", e, np.round(b_exp), s_t, degree=tc.fit.degree)
        # inject a signal of three times the background's fluctuation in the window
        inj = 3.0 * math.sqrt(max(float(b_exp.sum()), 1.0)) / float(s_t.sum())
        res = bias_study(spec, b_exp, inj, ntoys=tc.fit.bias_toys, seed=cfg.seed + int(1000 * mass))
        bias_by_mass[float(mass)] = math.hypot(res.relative_bias, res.relative_bias_error)
        bias_rows.append(
            {
                "mass_gev": float(mass),
                "injected_fb": inj,
                "relative_bias": res.relative_bias,
                "relative_bias_error": res.relative_bias_error,
                "converged_fraction": float(res.converged.mean()),
            }
        )
    bias_csv = write_csv(ctx.run.root / "tautau_bias.csv", bias_rows)
    bm = np.array(sorted(bias_by_mass))
    bv = np.array([bias_by_mass[m] for m in bm]) if bm.size else np.zeros(0)
    specs, meta = [], []
    proj_specs: list[dict[str, Any]] = []
    proj_meta: list[tuple[str, float, float]] = []
    # the window of each mass: its classifier, edges, data, background and systematics (shared
    # by the models)
    windows = []
    for mass in masses:
        i = _classifier_for(mass, edges, nets)
        e = window_edges(
            mass, float(width(mass)), half_width=tc.fit.half_width, n_bins=tc.fit.n_bins
        )
        fit_bias = max(float(np.interp(mass, bm, bv)) if bm.size else 0.0, syst["fit_bias_floor"])
        systematics = {k: syst[k] for k in _SIGNAL_SYSTEMATICS}
        systematics["fit_bias"] = fit_bias
        windows.append(
            (
                float(mass),
                e,
                np.histogram(data["m_recoil"][passed_data[i]], bins=e)[0].astype(float),
                sum(
                    np.histogram(c["m_recoil"][p], bins=e, weights=c["weight"][p] * lumi)[0]
                    for c, p in zip(bkg, passed_bkg[i], strict=True)
                ),
                systematics,
            )
        )
    for model in tc.signal.models:
        for mass, e, n_obs, b_win, systematics in windows:
            s_t = _template(sig, model, mass, sim_masses, e, _classifier_for(mass, edges, nets))
            if not s_t.sum() > 0:
                continue
            fit_bias = systematics["fit_bias"]
            for lum in cfg.projections.luminosities_fb:
                f = float(lum) / lumi
                # expected limits at another luminosity: the simulated background scaled as
                # the "observed" Asimov data, the signal template scaled, systematics kept
                proj_specs.append(
                    window_workspace(
                        f"{model}_{mass:.4f}_L{lum:g}",
                        e,
                        np.asarray(b_win, dtype=float) * f,
                        s_t * f,
                        degree=tc.fit.degree,
                        systematics=systematics,
                        lumi_unc=syst["luminosity"],
                    )
                )
                proj_meta.append((model, float(mass), float(lum)))
            specs.append(
                window_workspace(
                    f"{model}_{mass:.4f}",
                    e,
                    n_obs,
                    s_t,
                    degree=tc.fit.degree,
                    systematics=systematics,
                    lumi_unc=syst["luminosity"],
                )
            )
            meta.append(
                (model, mass, float(s_t.sum()), float(n_obs.sum()), float(b_win.sum()), fit_bias)
            )
    results = scan_limits(specs, level=tc.fit.level)
    results = _toys_where_few(ctx, specs, [m[3] for m in meta], results)
    rows = []
    tables = {m: load_xsec_table(spin_table_path(SPIN_OF[m])) for m in tc.signal.models}
    for (model, mass, eff_l, n_obs, b_sim, fb), res in zip(meta, results, strict=True):
        sigma1 = float(tables[model].sigma_fb(mass, isr=tc.signal.isr))
        row: dict[str, Any] = {
            "model": model,
            "mass_gev": mass,
            "signal_events_per_fb": eff_l,
            "efficiency": eff_l / lumi,
            "n_observed": n_obs,
            "background_simulated": b_sim,
            "fit_bias": fb,
            "status": res.status,
            "method": res.method,
            "obs_xsec_br_fb": res.observed,
        }
        for k, v in zip(("m2", "m1", "median", "p1", "p2"), res.expected, strict=True):
            row[f"exp_xsec_br_fb_{k}"] = v
        ok = res.ok and res.observed > 0 and res.expected[2] > 0
        row["obs_coupling"] = (
            float(coupling_limit(model, mass, res.observed, sigma1)) if ok else math.nan
        )
        row["exp_coupling_median"] = (
            float(coupling_limit(model, mass, res.expected[2], sigma1)) if ok else math.nan
        )
        rows.append(row)
    limits_csv = write_csv(ctx.run.root / "tautau_limits.csv", rows)
    check = efficiency_check(cfg, sim, sel, nets, width, sig)
    check_csv = write_csv(ctx.run.root / "tautau_efficiency_check.csv", check)
    for model in tc.signal.models:
        r = [c for c in check if c["model"] == model and np.isfinite(c["ratio"])]
        if r:
            ratio = np.array([c["ratio"] for c in r])
            pull = np.array(
                [
                    (c["efficiency_continuum"] - c["efficiency_interpolated"])
                    / c["efficiency_continuum_error"]
                    for c in r
                ]
            )
            ctx.console.print(
                f"efficiency between the simulated masses ({model}): continuum / interpolated "
                f"{np.median(ratio):.3f} (median of {len(r)} bins), chi2/bins "
                f"{float(np.mean(pull**2)):.2f}",
                markup=False,
                highlight=False,
            )
    proj_rows = []
    for (model, mass, lum), res in zip(
        proj_meta, scan_limits(proj_specs, level=tc.fit.level), strict=True
    ):
        sigma1 = float(tables[model].sigma_fb(mass, isr=tc.signal.isr))
        med = res.expected[2]
        proj_rows.append(
            {
                "model": model,
                "mass_gev": mass,
                "luminosity_fb": lum,
                "status": res.status,
                "exp_xsec_br_fb_median": med,
                "exp_coupling_median": (
                    float(coupling_limit(model, mass, med, sigma1))
                    if res.ok and med > 0
                    else math.nan
                ),
            }
        )
    proj_csv = write_csv(ctx.run.root / "tautau_projections.csv", proj_rows)
    ctx.console.print(
        f"limits: {len(rows)} (model, mass) hypotheses, {len(masses)} masses; fit bias "
        f"{', '.join(f'{m:.1f}: {v:.3f}' for m, v in zip(bm, bv, strict=True))}",
        markup=False,
        highlight=False,
    )
    return TtLimitsOutput(limits_csv, bias_csv, proj_csv, check_csv)


def _toy_limit(
    task: tuple[dict[str, Any], int], *, ntoys: int, npoints: int, level: float
) -> LimitResult:
    spec, seed = task
    model = compile_workspace(spec, name=spec["channels"][0]["name"])
    return toy_limits(model, ntoys, np.random.default_rng(seed), level=level, npoints=npoints)


def _toys_where_few(
    ctx: StageContext, specs: list[dict[str, Any]], n_obs: list[float], asym: list[LimitResult]
) -> list[LimitResult]:
    """The limits of the windows with fewer than ``tautau.fit.toys_below_events`` observed
    events again from toys (:func:`zprime.stats.toy_limits`, the workers share them): there
    the asymptotic formulae undercover (an empty window gives 1.4 signal events instead of the
    exact 2.3). A window whose toys fail keeps its asymptotic result."""
    fc = ctx.config.tautau.fit
    idx = [
        k
        for k, (n, r) in enumerate(zip(n_obs, asym, strict=True))
        if r.ok and n < fc.toys_below_events
    ]
    if not idx:
        return asym
    fn = functools.partial(
        _toy_limit, ntoys=fc.limit_toys, npoints=fc.limit_toy_points, level=fc.level
    )
    tasks = [(specs[k], ctx.config.seed + 7919 * k) for k in idx]
    toys = map_tasks(
        fn,
        tasks,
        executor=ctx.executor,
        workers=ctx.workers,
        description=f"toy limits ({len(idx)} windows)",
        progress=ctx.progress,
    )
    out = list(asym)
    for k, r in zip(idx, toys, strict=True):
        if r.ok:
            out[k] = r
    ctx.console.print(
        f"limits: {sum(r.ok for r in toys)} of {len(idx)} windows with fewer than "
        f"{fc.toys_below_events:g} events from toys",
        markup=False,
        highlight=False,
    )
    return out


def efficiency_check(
    cfg: Config,
    sim: SimulateOutput,
    sel: TtSelectOutput,
    nets: list[RangeClassifier],
    width: Any,
    sig: dict[tuple[str, float, int], dict[str, np.ndarray]],
) -> list[dict[str, Any]]:
    """The efficiency between the simulated masses, measured against what the limits use.

    In bins of 0.1 GeV of the X mass, the held-out events of the mass-continuum samples
    (``event % 4 == 0``, never trained on) that pass the network of the bin's centre ``M`` and
    fall in the window of ``M`` (each shifted by ``M`` minus its own mass, as the templates are),
    divided by the events generated in the bin (the sample's count times the cross-section
    table's share of the bin); next to it the efficiency the limits use at ``M``, interpolated
    between the simulated points (:func:`_template`). The talk gives 2.5% for the efficiency
    interpolation's systematic; these rows measure ours."""
    tc = cfg.tautau
    edges = tc.networks.edges_gev
    lumi = float(cfg.luminosity_fb)
    sim_masses = np.array(sorted({m for _, m, _ in sig}))
    rows: list[dict[str, Any]] = []
    for model in tc.signal.models:
        table = load_xsec_table(spin_table_path(SPIN_OF[model]))
        for lo, hi in itertools.pairwise(edges):
            a, b = _training_masses(cfg, lo, hi)
            label = training_label(model, a, b)
            cols = _read(sel.signal[label])
            n_gen = int(read_metadata(sim.signal[label]).get("n_events", 0))
            if n_gen <= 0:
                raise InputError(f"tau-tau: training sample {label}: no event count in its file")
            held = cols["event"] % _HOLDOUT == 0
            n_held = (n_gen + _HOLDOUT - 1) // _HOLDOUT
            grid = np.linspace(a, b, 2001)
            sg = table.sigma_fb(grid, isr=tc.signal.isr)
            total = float(np.trapezoid(sg, grid))
            lo_c, hi_c = max(lo, a), min(hi, b)
            n_bins = max(1, round((hi_c - lo_c) / _CHECK_BIN_GEV))
            bins = np.linspace(lo_c, hi_c, n_bins + 1)
            for m1, m2 in itertools.pairwise(bins):
                mc = 0.5 * (m1 + m2)
                if mc < sim_masses[0] or mc > sim_masses[-1]:
                    continue
                e = window_edges(
                    mc, float(width(mc)), half_width=tc.fit.half_width, n_bins=tc.fit.n_bins
                )
                inb = held & (cols["mass_true"] >= m1) & (cols["mass_true"] < m2)
                shifted = cols["m_recoil"][inb] - cols["mass_true"][inb] + mc
                inw = (shifted >= e[0]) & (shifted < e[-1])
                x = _x({k: v[inb][inw] for k, v in cols.items()})
                i = _classifier_for(mc, edges, nets)
                k = int(np.count_nonzero(nets[i].passes(x))) if len(x) else 0
                gi = (grid >= m1) & (grid <= m2)
                n_bin = n_held * float(np.trapezoid(sg[gi], grid[gi])) / total
                eff_interp = float(_template(sig, model, mc, sim_masses, e, i).sum()) / lumi
                eff = k / n_bin if n_bin > 0 else math.nan
                rows.append(
                    {
                        "model": model,
                        "mass_gev": round(mc, 6),
                        "events_generated": n_bin,
                        "events_passed": k,
                        "efficiency_continuum": eff,
                        "efficiency_continuum_error": math.sqrt(max(k, 1)) / n_bin,
                        "efficiency_interpolated": eff_interp,
                        "ratio": eff / eff_interp if eff_interp > 0 else math.nan,
                    }
                )
    return rows


def _template(
    sig: dict[tuple[str, float, int], dict[str, np.ndarray]],
    model: str,
    mass: float,
    sim_masses: np.ndarray,
    edges: np.ndarray,
    net: int,
) -> np.ndarray:
    """Signal events per fb of sigma x B in the window's bins at ``mass`` after classifier
    ``net`` (the one of ``mass``'s range): the shape of the nearest simulated mass, shifted to
    ``mass``; its total interpolated linearly between the two neighbouring simulated masses
    (efficiency interpolation)."""
    near = float(sim_masses[np.argmin(np.abs(sim_masses - mass))])
    cols = sig.get((model, near, net))
    if cols is None or not len(cols["weight"]):
        return np.zeros(edges.size - 1)
    shape = np.histogram(cols["m_recoil"] - near + mass, bins=edges, weights=cols["weight"])[0]
    # the neighbours' signal in the window (each shifted to ``mass``)
    j = int(np.clip(np.searchsorted(sim_masses, mass) - 1, 0, sim_masses.size - 2))
    m0, m1 = float(sim_masses[j]), float(sim_masses[j + 1])
    tot = []
    for m in (m0, m1):
        c = sig.get((model, m, net))
        if c is None or not len(c["weight"]):
            tot.append(math.nan)
            continue
        tot.append(
            float(
                np.sum(
                    c["weight"][
                        (c["m_recoil"] - m + mass >= edges[0])
                        & (c["m_recoil"] - m + mass < edges[-1])
                    ]
                )
            )
        )
    if not all(math.isfinite(t) for t in tot) or shape.sum() <= 0:
        return shape
    f = (mass - m0) / (m1 - m0)
    target = (1.0 - f) * tot[0] + f * tot[1]
    return shape * target / shape.sum()
