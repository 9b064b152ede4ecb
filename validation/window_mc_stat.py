#!/usr/bin/env python3
"""Simulation statistics per search window of a run: sum(w^2)/sum(w) and (sum w)^2/sum(w^2).

For every narrow search window of a finished run (the run's resolution model and binning) and
every background sample, the background events after the full selection (``selected/final``)
or after the preselection (``--level presel``) inside the window's M_recoil^2 range give

- ``w_mean = sum(w^2) / sum(w)``: the expected events per simulated event at the data
  luminosity (issue 12's goal: <= 0.1, i.e. simulation at >= 10x the luminosity with unit
  weights), and
- ``n_eff = (sum w)^2 / sum(w^2)``: the effective number of simulated events.

Prints a Markdown table over a selection of windows and a summary per sample, and writes the
full table as CSV::

    python validation/window_mc_stat.py results/ --out validation/out/window_mc_stat.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from zprime.analyses.invisible_zprime.binning import ResolutionModel, windows_from_config
from zprime.config import Config
from zprime.io.events import read_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument("--level", choices=("final", "presel"), default="final")
    parser.add_argument("--out", type=Path, default=None, help="CSV with every window")
    parser.add_argument("--show", type=int, default=12, help="windows in the printed table")
    args = parser.parse_args()
    prov = json.loads((args.run / "provenance.json").read_text())
    cfg = Config.model_validate(prov["config"])
    model = ResolutionModel.load(args.run / "resolution.json")
    _, _, windows = windows_from_config(cfg.binning, model)
    lumi = cfg.luminosity_fb
    folder = args.run / "selected" / args.level
    samples = {}
    for name in cfg.backgrounds.default_run:
        path = folder / f"{name}.parquet"
        if not path.exists():
            continue
        ev = read_events(path, ["weight", "m_recoil2"])
        samples[name] = (np.asarray(ev["m_recoil2"]), np.asarray(ev["weight"]) * lumi)
    rows = []
    for win in windows:
        lo, hi = float(win.m2_edges[0]), float(win.m2_edges[-1])
        row: dict[str, float | str] = {"mass_gev": win.mass_gev, "m2_lo": lo, "m2_hi": hi}
        for name, (m2, w) in samples.items():
            k = (m2 >= lo) & (m2 < hi)
            s1, s2 = float(w[k].sum()), float(np.sum(w[k] ** 2))
            row[f"{name}_yield"] = s1
            row[f"{name}_w_mean"] = s2 / s1 if s1 > 0 else float("nan")
            row[f"{name}_n_eff"] = s1 * s1 / s2 if s2 > 0 else 0.0
        rows.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    names = list(samples)
    print(f"{len(windows)} windows, {args.level} selection, {lumi} fb^-1")
    print(
        "| M (GeV) | M^2 window (GeV^2) | "
        + " | ".join(f"{n}: yield, sum w^2/sum w, n_eff" for n in names)
        + " |"
    )
    print("| ---: | --- | " + " | ".join("---" for _ in names) + " |")
    picks = np.unique(np.linspace(0, len(rows) - 1, args.show).round().astype(int))
    for i in picks:
        r = rows[i]
        cells = []
        for n in names:
            y, wm, ne = r[f"{n}_yield"], r[f"{n}_w_mean"], r[f"{n}_n_eff"]
            cells.append(f"{y:.3g}, {wm:.3g}, {ne:.0f}" if y > 0 else "0")
        print(
            f"| {r['mass_gev']:.3f} | [{r['m2_lo']:.2f}, {r['m2_hi']:.2f}] | "
            + " | ".join(cells)
            + " |"
        )
    print()
    for n in names:
        wm = np.array([r[f"{n}_w_mean"] for r in rows], dtype=float)
        y = np.array([r[f"{n}_yield"] for r in rows], dtype=float)
        ok = y > 0
        if not ok.any():
            print(f"{n}: no selected event in any window")
            continue
        print(
            f"{n}: windows with events {ok.sum()}/{len(rows)}; sum(w^2)/sum(w) median "
            f"{np.median(wm[ok]):.3g}, max {wm[ok].max():.3g}; windows above 0.1: "
            f"{int(np.sum(wm[ok] > 0.1))}"
        )


if __name__ == "__main__":
    main()
