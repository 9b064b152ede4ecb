"""Derive (and check) the cut values of the pilot2018 tau suppression from a run's samples.

    python tools/pilot2018_tau_cuts.py RUN_DIR [--lumi 0.276] [--min-events 10]

Reads ``RUN_DIR/selected/presel/*.parquet`` (a ``zprime run --until select``, any preset) and,
in each M_recoil^2 region of ``selection.tau_m2_edges_gev2``, scans the two thresholds (recoil
p_T^CM > a, larger c.m. muon momentum < b) for the largest Punzi figure of merit
eps / (A/2 + sqrt(B)) (A = 3, as punzinet.a), averaged over the simulated masses whose median
M_recoil^2 lies in the region, B in a window of the signal's central 68% in M_recoil^2, at least
``--min-events`` simulated background events left in those windows (so that the optimum is not
a downward fluctuation of the sparse simulation). The 2020 talk gives the form of the cut, not its
values: these are our choice. Prints the chosen values and the step's effect on each sample.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from zprime.analyses.invisible_zprime.selection import (
    tau_suppression_mask,
    tau_suppression_variables,
)
from zprime.config import default_config
from zprime.io.events import read_events


def _load(path: Path, lumi: float) -> dict[str, np.ndarray]:
    ev = read_events(path)
    if len(ev) == 0:
        return {k: np.zeros(0) for k in ("m_recoil2", "pt_recoil_cm", "p_mu_max_cm", "w")}
    v = tau_suppression_variables(ev)
    v["w"] = np.asarray(ev["weight"], dtype=float) * lumi
    return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--lumi", type=float, default=0.276)
    ap.add_argument("--min-events", type=int, default=10)
    args = ap.parse_args()
    presel = args.run_dir / "selected" / "presel"
    sig = {p.stem: _load(p, args.lumi) for p in sorted(presel.glob("signal_M*.parquet"))}
    bkg = {
        p.stem: _load(p, args.lumi)
        for p in sorted(presel.glob("*.parquet"))
        if not p.stem.startswith("signal")
    }
    every = {k: np.concatenate([b[k] for b in bkg.values()]) for k in ("m_recoil2", "w")}
    every.update({k: np.concatenate([b[k] for b in bkg.values()]) for k in ("pt_recoil_cm",)})
    every["p_mu_max_cm"] = np.concatenate([b["p_mu_max_cm"] for b in bkg.values()])
    sel = default_config().selection
    edges = [-np.inf, *sel.tau_m2_edges_gev2, np.inf]
    a_punzi = default_config().punzinet.a
    print("| M^2 region (GeV^2) | recoil pT^CM > | max muon p^CM < | signal eff. | FOM gain |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for lo, hi in itertools.pairwise(edges):
        windows = []
        for s in sig.values():
            if len(s["w"]) and lo <= np.median(s["m_recoil2"]) < hi:
                w_lo, w_hi = np.percentile(s["m_recoil2"], [16, 84])
                in_s = (s["m_recoil2"] > w_lo) & (s["m_recoil2"] < w_hi)
                in_b = (every["m_recoil2"] > w_lo) & (every["m_recoil2"] < w_hi)
                windows.append((s, in_s, in_b))
        if not windows:
            continue
        f0 = np.mean([1.0 / (a_punzi / 2 + np.sqrt(every["w"][b].sum())) for _, _, b in windows])
        best = None
        for pt_min in np.arange(0.5, 3.01, 0.25):
            for p_max in np.arange(1.0, 5.51, 0.25):
                keep_b = (every["pt_recoil_cm"] > pt_min) & (every["p_mu_max_cm"] < p_max)
                if sum(int((keep_b & b).sum()) for _, _, b in windows) < args.min_events:
                    continue
                effs, foms = [], []
                for s, in_s, in_b in windows:
                    keep_s = (s["pt_recoil_cm"] > pt_min) & (s["p_mu_max_cm"] < p_max)
                    eff = float(np.mean(keep_s[in_s]))
                    effs.append(eff)
                    foms.append(eff / (a_punzi / 2 + np.sqrt(every["w"][keep_b & in_b].sum())))
                if best is None or np.mean(foms) > best[0]:
                    best = (float(np.mean(foms)), pt_min, p_max, float(np.mean(effs)))
        if best is None:
            continue
        fom, pt_min, p_max, eff = best
        print(f"| [{lo:g}, {hi:g}) | {pt_min:.2f} | {p_max:.2f} | {eff:.3f} | {fom / f0:.2f} |")
    print("\nthe configured step on each sample (yields at the luminosity):")
    print("| sample | preselected | after tau_suppression | fraction kept |")
    print("| --- | ---: | ---: | ---: |")
    for name in [*sorted(bkg), *sig]:
        ev = read_events(presel / f"{name}.parquet")
        if len(ev) == 0:
            continue
        w = np.asarray(ev["weight"], dtype=float) * args.lumi
        keep = tau_suppression_mask(ev, sel.model_copy(update={"tau_suppression": True}))
        print(f"| {name} | {w.sum():.4g} | {w[keep].sum():.4g} | {w[keep].sum() / w.sum():.3f} |")


if __name__ == "__main__":
    main()
