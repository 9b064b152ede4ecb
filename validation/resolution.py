#!/usr/bin/env python3
"""The signal M_recoil^2 resolution of a run against the PRL, and the hypothesis grid it gives.

The PRL (PRL 130, 231801 (2023)) quotes two resolution values, 0.23 GeV^2 at M^2 = 9 GeV^2 (its
maximum) and 0.06 GeV^2 at 80 GeV^2 (its minimum), and a grid of 582 hypotheses from 0.01 to
8.5 GeV "in steps of 3 to 202 MeV, following the resolution". For every selected signal sample
of a finished run this prints

- the width of ``M^2_reco - M^2_true`` (the residual of :attr:`SimulatedSignal.residuals`)
  with the current core estimator (``new``) next to the width the run stored in its
  ``resolution.json`` (``run``, the estimator the run was made with), the 68% half-width, the
  core of the reconstructed peak ``M^2_reco - M_Z'^2`` (ISR included), the core after the full
  selection (with the Punzi-net, ``selected/final_notheta``), the core of the same events
  before the recoil p_T^CM > 0.5 GeV cut and with two muons, the trigger and the track p_T cut
  only (both re-selected from ``reco/simulation``; skip with ``--no-cut-study``) and the mean
  recoil momentum in the c.m. frame;
- the residual width in quartiles of the recoil momentum at the lowest mass (near M = 0 the
  M^2 resolution grows with the recoil momentum, dM^2 ~ 2 E_Z' dE - 2 p_Z'.dp);
- the resolution models (the run's, the new one, and those of the other samples) at the PRL's
  two quoted points, with direct measurements where a sample sits within 1% of that M^2
  (``--extra`` adds selected signal files, e.g. one generated at M^2 = 80 GeV^2; they enter the
  tables, not the models);
- the grid summary of each model (count, first/last and smallest/largest step) next to the
  PRL's, and what the PRL's 202 MeV largest step implies for sigma near M = 0.

Usage::

    python validation/resolution.py /tmp/run13c [--extra sel/signal_M8.9443.parquet] [--csv F]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zprime.analyses.invisible_zprime.binning import (
    ResolutionModel,
    ResolutionScale,
    grid_summary,
    hypothesis_grid,
    measure_width,
    resolution_model_from_config,
)
from zprime.analyses.invisible_zprime.templates import SimulatedSignal
from zprime.config import BinningConfig, Config, SelectionConfig, default_config
from zprime.errors import InputError
from zprime.io.events import read_events, read_metadata

PRL_POINTS = ((9.0, 0.23), (80.0, 0.06))
"""(M^2, sigma) in GeV^2 quoted by the PRL ("ranges from a minimum of 0.06 GeV^2 at 80 GeV^2 to a
maximum of 0.23 GeV^2 at 9 GeV^2")."""
PRL_GRID = {"count": 582, "min_step_mev": 3.0, "max_step_mev": 202.0}
"""The PRL's grid: 582 hypotheses from 0.01 to 8.5 GeV in steps of 3 to 202 MeV."""


def _width(values: NDArray[np.float64], cfg: Config, label: str) -> tuple[float, float]:
    """Core width and error with the run's estimator settings, NaN if too few events."""
    rc = cfg.binning.resolution
    try:
        return measure_width(values, estimator="core", min_events=rc.min_events, label=label)
    except InputError:
        return math.nan, math.nan


def _sigma68(values: NDArray[np.float64]) -> float:
    lo, hi = np.percentile(values, [15.865, 84.135])
    return float(0.5 * (hi - lo))


def _signal_files(folder: Path) -> dict[float, Path]:
    """Selected signal files of a folder by Z' mass (from the metadata)."""
    out = {}
    for path in sorted(folder.glob("signal_M*.parquet")):
        out[float(read_metadata(path)["mass_gev"])] = path
    return out


LOOSER = {
    "no_pt": ["punzinet", "theta_recoil", "recoil_pt"],
    "two_mu": ["punzinet", "theta_recoil", "recoil_pt", "opening_angle", "photon_veto"],
}
"""Selection steps left out in the re-selections of the reconstructed signal: without the recoil
p_T cut; and with two muons, the trigger and the track p_T cut only."""


def _reselected_residuals(path: Path, cfg: Config) -> dict[str, NDArray[np.float64]]:
    """Residuals of a reconstructed (unselected) signal file after the run's selection without
    the steps of each :data:`LOOSER` entry."""
    from zprime.analyses.invisible_zprime.selection import apply_selection

    ev = read_events(path)
    res = np.asarray(ev["m_recoil2"], dtype=float) - np.asarray(ev["m_recoil2_true"], dtype=float)
    out = {}
    for key, skip in LOOSER.items():
        mask, _ = apply_selection(ev, cfg.selection, skip=skip, sample=path.stem)
        out[key] = res[mask]
    return out


def _run_config(run: Path) -> Config:
    """The default configuration with the run's ``binning`` and ``selection`` sections (the only
    ones used here; other sections of an older run may no longer validate)."""
    cfg = default_config()
    prov = run / "provenance.json"
    if not prov.exists():
        return cfg
    stored = json.loads(prov.read_text()).get("config") or {}
    update = {}
    for key, kind in (("binning", BinningConfig), ("selection", SelectionConfig)):
        if key in stored:
            update[key] = kind.model_validate(stored[key])
    return cfg.model_copy(update=update)


def _fmt(v: float, digits: int = 4) -> str:
    return "-" if not math.isfinite(v) else f"{v:.{digits}f}"


def _grid_row(name: str, model: ResolutionModel, cfg: Config) -> dict[str, Any]:
    b = cfg.binning
    scale = ResolutionScale(model, *b.m2_range_gev2)
    grid = hypothesis_grid(scale, b.mass_min_gev, b.mass_max_gev, b.step_resolution_units)
    dm = np.diff(grid.masses) * 1e3
    return {
        "model": name,
        **grid_summary(grid),
        "first_step_mev": float(dm[0]),
        "last_step_mev": float(dm[-1]),
        "second_mass_gev": float(grid.masses[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument(
        "--extra", type=Path, nargs="*", default=[], help="more selected signal files"
    )
    parser.add_argument(
        "--no-cut-study", action="store_true", help="skip the re-selection without recoil p_T cut"
    )
    parser.add_argument("--csv", type=Path, default=None, help="write the per-mass table")
    args = parser.parse_args()

    cfg = _run_config(args.run)
    run_model = ResolutionModel.load(args.run / "resolution.json")
    run_points = {round(p[0], 6): p[1] for p in run_model.points}
    sel = args.run / "selected"
    presel = _signal_files(sel / "presel_notheta")
    final = _signal_files(sel / "final_notheta")
    reco = {} if args.no_cut_study else _signal_files(args.run / "reco" / "simulation")
    extra = {float(read_metadata(p)["mass_gev"]): p for p in args.extra}

    rows: list[dict[str, float]] = []
    residuals: dict[str, dict[float, NDArray[np.float64]]] = {
        "new": {},
        "final": {},
        "no_pt": {},
        "two_mu": {},
    }
    p_star: dict[float, NDArray[np.float64]] = {}
    for mass, path in sorted({**presel, **extra}.items()):
        sig = SimulatedSignal.read(path)
        res = sig.residuals
        label = f"M={mass:g}"
        p_star[mass] = np.asarray(read_events(path, ["p_recoil_cm"])["p_recoil_cm"], dtype=float)
        w, e = _width(res, cfg, label)
        row = {
            "mass_gev": mass,
            "m2_gev2": mass * mass,
            "n": float(res.size),
            "sigma_new": w,
            "error_new": e,
            "sigma_run": run_points.get(round(mass * mass, 6), math.nan),
            "sigma68": _sigma68(res),
            "sigma_peak": _width(sig.m2 - mass * mass, cfg, label)[0],
            "sigma_final": math.nan,
            "sigma_no_pt_cut": math.nan,
            "sigma_two_mu": math.nan,
            "p_star_mean": float(p_star[mass].mean()),
        }
        if mass in presel:
            residuals["new"][mass] = res
        if mass in final:
            fres = SimulatedSignal.read(final[mass]).residuals
            row["sigma_final"] = _width(fres, cfg, label)[0]
            residuals["final"][mass] = fres
        if mass in reco:
            loose = _reselected_residuals(reco[mass], cfg)
            row["sigma_no_pt_cut"] = _width(loose["no_pt"], cfg, label)[0]
            row["sigma_two_mu"] = _width(loose["two_mu"], cfg, label)[0]
            residuals["no_pt"].update({mass: loose["no_pt"]})
            residuals["two_mu"].update({mass: loose["two_mu"]})
        rows.append(row)

    models: dict[str, ResolutionModel] = {"run": run_model}
    titles = {
        "run": "run's resolution.json",
        "new": "new (core, selection w/o Punzi-net)",
        "final": "core, full selection (with Punzi-net)",
        "no_pt": "core, selection w/o Punzi-net and w/o recoil p_T cut",
        "two_mu": "core, two muons + trigger + track p_T only",
    }
    for key in ("new", "final", "no_pt", "two_mu"):
        if len(residuals[key]) >= 2:
            models[key] = resolution_model_from_config(cfg.binning, residuals[key])
    for row in rows:
        row["model_new"] = float(models["new"].sigma(row["m2_gev2"]))

    print(f"# M_recoil^2 resolution of {args.run} (GeV^2)\n")
    print(
        "| M (GeV) | M^2 | n | new core | run | sigma68 | peak core (ISR in) | "
        "full sel. | w/o recoil p_T cut | 2 mu + trg + p_T | <p*_cm> (GeV) | new model |"
    )
    print("|" + " ---: |" * 12)
    for r in rows:
        print(
            f"| {r['mass_gev']:.4g} | {r['m2_gev2']:.4g} | {int(r['n'])} | "
            f"{_fmt(r['sigma_new'])} ± {_fmt(r['error_new'])} | {_fmt(r['sigma_run'])} | "
            f"{_fmt(r['sigma68'])} | {_fmt(r['sigma_peak'])} | {_fmt(r['sigma_final'])} | "
            f"{_fmt(r['sigma_no_pt_cut'])} | {_fmt(r['sigma_two_mu'])} | "
            f"{r['p_star_mean']:.2f} | {_fmt(r['model_new'])} |"
        )

    low = min(residuals["new"])
    res, ps = residuals["new"][low], p_star[low]
    edges = np.quantile(ps, [0.0, 0.25, 0.5, 0.75, 1.0])
    print(f"\n## Residual core vs recoil momentum at M = {low:g} GeV (quartiles of p*_cm)\n")
    print("| p*_cm range (GeV) | median p* | core | core / median p* (GeV) |")
    print("| --- | ---: | ---: | ---: |")
    for a, b in itertools.pairwise(edges):
        k = (ps >= a) & (ps <= b)
        w = measure_width(res[k], min_events=20, label=f"M={low:g}, p* quartile")[0]
        med = float(np.median(ps[k]))
        print(f"| {a:.2f}-{b:.2f} | {med:.2f} | {w:.4f} | {w / med:.3f} |")

    print("\n## At the PRL's quoted points (GeV^2)\n")
    header = " | ".join(titles[k] for k in models)
    print(f"| M^2 | PRL | direct measurement (new core) | {header} |")
    print("| ---: | ---: | ---: |" + " ---: |" * len(models))
    for m2, prl in PRL_POINTS:
        direct = [r for r in rows if abs(r["m2_gev2"] / m2 - 1.0) < 0.01]
        d = f"{direct[0]['sigma_new']:.4f} ± {direct[0]['error_new']:.4f}" if direct else "-"
        vals = " | ".join(f"{float(mod.sigma(m2)):.4f}" for mod in models.values())
        print(f"| {m2:g} | {prl} | {d} | {vals} |")
    top = max(m for m in residuals["new"])
    print(
        f"\n(the models are held constant above the largest mass of the run, M^2 = {top**2:g}"
        " GeV^2: their value at 80 GeV^2 is not a measurement)"
    )

    print("\n## Hypothesis grid, 0.01-8.5 GeV in steps of one resolution unit\n")
    print("| resolution | hypotheses | first step (MeV) | last step (MeV) | steps (MeV) |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(
        f"| PRL (quoted) | {PRL_GRID['count']} | - | - | "
        f"{PRL_GRID['min_step_mev']:g}-{PRL_GRID['max_step_mev']:g} |"
    )
    grid_models: Mapping[str, ResolutionModel] = {**models, "prl": ResolutionModel.prl()}
    titles["prl"] = "PRL fallback model (0.0448 at 0)"
    for key, mod in grid_models.items():
        g = _grid_row(key, mod, cfg)
        print(
            f"| {titles[key]} | {g['count']} | {g['first_step_mev']:.1f} | "
            f"{g['last_step_mev']:.2f} | {g['min_step_mev']:.2f}-{g['max_step_mev']:.1f} |"
        )

    # what the PRL's largest step allows near M = 0: starting at 0.01 GeV, one unit to the
    # next hypothesis is sigma = (0.01 + 0.202)^2 - 0.01^2; with the lowest step a partial
    # one (grid phase free), two steps <= 202 MeV from 0.01 GeV still need
    # sigma <= 0.202^2 + 2 * 0.202 * 0.212 at M^2 <~ 0.17 GeV^2
    s_up = (0.01 + 0.202) ** 2 - 0.01**2
    s_any = 0.202**2 + 2 * 0.202 * 0.212
    near0 = np.linspace(0.0, 0.17, 18)
    print(
        "\nPRL's 202 MeV largest step: sigma(M^2 ~ 0) <= "
        f"{s_up:.4f} GeV^2 for a grid built upwards from 0.01 GeV, <= {s_any:.3f} GeV^2 "
        "at M^2 < 0.17 GeV^2 for any grid phase; the PRL's quoted minimum is 0.06 GeV^2."
    )
    for key, mod in models.items():
        s = np.asarray(mod.sigma(near0))
        print(f"  {titles[key]}: sigma on [0, 0.17] GeV^2 = {s.min():.4f}-{s.max():.4f}")

    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    main()
