#!/usr/bin/env python3
"""Choose the cuts of the dark Higgsstrahlung selection that the talk does not give.

The dark Higgsstrahlung search (Belle II, PRL 130, 071804 (2023); the 2022 talk,
``shared/papers/talk-2022-dark-sector-belle2.md``) names its selection steps but gives the value
of only one (p_T(mu mu) > 0.1 GeV). This script makes small samples with zprime's own tools,
simulates them with the fast detector and the 2019 trigger, and picks the photon-veto settings,
the helicity-angle cut and the C_eta variable and cut (our definition) of
:mod:`zprime.analyses.dark_higgsstrahlung.selection`. The numbers go to
``docs/dark_higgs_selection.md``; every output stays under ``--out`` (default
``/tmp/dh_study``), and sample files found there are reused.

Samples:

- signal e+e- -> A'(-> mu mu) h' at (M_A', M_h') = (2, 0.5), (4, 1), (6, 2), (8, 1), (9.5, 0.5)
  and (10.2, 0.2) GeV (the last one near M_A' + M_h' = sqrt(s), where the mu mu (gamma)
  background gathers), ``--signal-events`` each, five times more at (2, 0.5), where the 2019
  trigger keeps 2.5% (:func:`zprime.generators.aprime_hdark.write_aprime_hdark`, ISR on);
- backgrounds mu mu (gamma), tau tau (gamma) and e e mu mu
  (:func:`zprime.generators.backgrounds.generate_sample`) with generator-level filters loosened
  for p_T(mu mu) > 0.1 GeV: ``recoil_pt_cm_min_gev`` 0.09 GeV (the default 0.4 GeV serves the
  invisible-Z' recoil cut of 0.5 GeV) and, since this selection has no track p_T cut,
  ``track_pt_min_gev`` 0.1 GeV (the tracking threshold of the detector configuration); the mu mu
  generator's ``pt_gamma_min_gev`` 0.03 GeV (it must stay below a third of the recoil cut) and
  ``detected_photon_suppression`` 1 (``--suppression``; the default 0.1 thins the events that
  fail the invisible-Z' photon veto, which is not ours). mu mu and tau tau are sized by
  ``--lumi-factor`` times 8.34 fb^-1, e e mu mu (whose cross section is known only after
  generation) by ``--eemumu-points``;
- all simulated with the ``simulation`` detector with ``trigger.fraction_2019 = 1`` (every event
  in the 2019 run: the two-track trigger needs an azimuthal opening above 90 deg).

Figure of merit. For each signal point the window is the ellipse
``(dM_mumu / 3 sigma_mumu)^2 + (dM_recoil / 3 sigma_recoil)^2 < 1`` around (M_A', M_h'); the
sigmas are the detector resolution, 1.4826 x the median absolute deviation from the nominal
masses of the preselected signal events with almost no ISR (sqrt(s_hat) within 0.05% of sqrt(s):
the ISR tail of M_recoil would otherwise set the width). ``FOM = eps / (a/2 + sqrt(B))`` with
a = 3 (Punzi, arXiv:physics/0308063), eps the signal efficiency in the window (of all generated
events) and B the background in the window at 8.34 fb^-1. A cut value is scored by the geometric
mean over the six points of FOM / FOM(without that cut). The steps are tuned one after the
other: the photon veto (energy threshold x cone) with the helicity and C_eta cuts off, then the
helicity cut, then the C_eta cut (each candidate variable), then the helicity cut once more.
From each scan the loosest value within 1% of the best score is taken (our rule: the windows'
backgrounds are a few simulated events, so differences below that are noise). The photon cone
is taken at most 30 deg: zprime's detector has no beam-induced photons, so a wider cone costs
the simulated signal nothing, while in data its random-veto loss grows with the cone's solid
angle (our cap, twice the PRL's 15 deg).

The C_eta variable is the candidate that keeps the least background at 95% signal efficiency
(pooled over the six points, each with the same weight), computed after the photon veto.

Usage::

    python validation/dark_higgs_selection_study.py [--out /tmp/dh_study] [--workers 2]
        [--lumi-factor 8] [--eemumu-points 6000000] [--signal-events 40000]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq

from zprime.analyses.dark_higgsstrahlung.selection import (
    STEPS,
    DarkHiggsSelection,
    observables,
    photon_near_recoil,
    select_file,
    step_masks,
)
from zprime.config import Config, load_config
from zprime.detector.simulation import simulate_file
from zprime.generators.aprime_hdark import write_aprime_hdark
from zprime.generators.backgrounds import generate_sample
from zprime.io.events import iter_events, read_metadata
from zprime.physics.constants import SQRT_S

LUMI_FB = 8.34  # 2019 data of the dark Higgsstrahlung search (talk; PRL 130, 071804)
SIGNAL_POINTS: tuple[tuple[float, float], ...] = (
    (2.0, 0.5),
    (4.0, 1.0),
    (6.0, 2.0),
    (8.0, 1.0),
    (9.5, 0.5),
    (10.2, 0.2),  # near threshold, where the mu mu (gamma) background piles up
)
SIGNAL_EVENTS_FACTOR = {(2.0, 0.5): 5}  # the 2019 trigger keeps 2.5% of this point
BACKGROUNDS: tuple[str, ...] = ("mumu", "tautau", "eemumu")
TALK_COMPOSITION = {"mumu": 0.79, "tautau": 0.18, "eemumu": 0.03}  # talk, observed yields
PRESELECTION = STEPS[: STEPS.index("recoil_barrel") + 1]
PUNZI_A = 3.0
WINDOW_SIGMAS = 3.0
CORE_ISR = 5e-4  # "no ISR": sqrt(s_hat) > sqrt(s) (1 - CORE_ISR), for the window widths
PICK_TOLERANCE = 0.01  # the loosest cut within 1% of the best score (our rule)
PHOTON_CONE_MAX_DEG = 30.0  # our cap (module docstring)
SIGNAL_EFFICIENCY_SEPARATION = 0.95
# the grids scanned (our choice): photon energy threshold (GeV; 0.1 is the photon candidates'
# threshold) x cone half-angle (deg), the helicity cut and the C_eta cut for each candidate
PHOTON_E_GEV = (0.1, 0.2, 0.3, 0.5, 1.0)
PHOTON_CONE_DEG = (5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
HELICITY_CUTS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 1.0)
C_ETA_CANDIDATES = ("eta_mumu_cm", "eta_sum_cm", "eta_diff_cm")
C_ETA_CUTS = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, np.inf)
DEG = math.pi / 180.0

Arrays = dict[str, np.ndarray]
Cut = Callable[[Arrays], np.ndarray]


def _name(ma: float, mh: float) -> str:
    return f"signal_{ma:g}_{mh:g}"


# --------------------------------------------------------------------------- samples
def study_config(lumi_factor: float, suppression: float) -> Config:
    """The built-in configuration with the study's filters, the 2019 trigger and 8.34 fb^-1."""
    ov: dict[str, Any] = {
        "luminosity_fb": LUMI_FB,
        "detector.configurations.simulation.trigger.fraction_2019": 1.0,
        "backgrounds.samples.mumu.options.pt_gamma_min_gev": 0.03,
        "backgrounds.samples.mumu.options.detected_photon_suppression": suppression,
    }
    for name in BACKGROUNDS:
        ov[f"backgrounds.samples.{name}.filter.recoil_pt_cm_min_gev"] = 0.09
        ov[f"backgrounds.samples.{name}.filter.track_pt_min_gev"] = 0.1
    for name in ("mumu", "tautau"):
        ov[f"backgrounds.samples.{name}.luminosity_factor"] = lumi_factor
    return load_config(None, **ov)


def make_samples(args: argparse.Namespace, cfg: Config) -> dict[str, Path]:
    """Generate and simulate every sample (reusing files already there); name -> reco file."""
    gen_dir, reco_dir = args.out / "events", args.out / "reco"
    out: dict[str, Path] = {}
    timing: dict[str, float] = {}
    for k, (ma, mh) in enumerate(SIGNAL_POINTS):
        name = _name(ma, mh)
        reco = reco_dir / f"{name}.parquet"
        if not reco.exists():
            t0 = time.perf_counter()
            n = args.signal_events * SIGNAL_EVENTS_FACTOR.get((ma, mh), 1)
            gen = write_aprime_hdark(
                ma, mh, n, gen_dir, seed=args.seed + k, workers=args.workers, progress=False
            )
            target = gen.with_name(f"{name}.parquet")
            gen.rename(target)
            simulate_file(target, reco_dir, config=cfg, seed=args.seed + 100 + k)
            timing[name] = time.perf_counter() - t0
        out[name] = reco
    for k, name in enumerate(BACKGROUNDS):
        reco = reco_dir / f"{name}.parquet"
        if not reco.exists():
            t0 = time.perf_counter()
            n = args.eemumu_points if name == "eemumu" else None
            gen = generate_sample(
                name, n, gen_dir, config=cfg, seed=args.seed + 200 + k,
                workers=args.workers, progress=False,
            )  # fmt: skip
            simulate_file(gen, reco_dir, config=cfg, seed=args.seed + 300 + k)
            timing[name] = time.perf_counter() - t0
        out[name] = reco
    if timing:
        print("made (wall s):", {k: round(v, 1) for k, v in timing.items()})
    return out


# --------------------------------------------------------------------------- per-event arrays
def preselected(path: Path, batch_size: int = 200_000) -> Arrays:
    """Observables and photon-veto flags of the events that pass the preselection.

    The preselection is the steps up to ``recoil_barrel``; ``veto[:, i, j]`` is True when the
    event passes a veto with threshold ``PHOTON_E_GEV[i]`` and cone ``PHOTON_CONE_DEG[j]``.
    ``sqrt_s_hat`` is the generator's (signal only; NaN otherwise).
    """
    sel = DarkHiggsSelection()
    parts: list[Arrays] = []
    for batch in iter_events(path, batch_size=batch_size):
        obs = observables(batch)
        masks = step_masks(batch, sel, obs)
        keep = np.ones(len(batch), dtype=bool)
        for step in PRESELECTION:
            keep &= masks[step]
        sub = batch[keep]
        veto = np.zeros((len(sub), len(PHOTON_E_GEV), len(PHOTON_CONE_DEG)), dtype=bool)
        for i, e in enumerate(PHOTON_E_GEV):
            for j, c in enumerate(PHOTON_CONE_DEG):
                veto[:, i, j] = ~photon_near_recoil(sub, e, c * DEG)
        part = {k: v[keep] for k, v in obs.items()}
        part["weight"] = np.asarray(ak.to_numpy(sub["weight"]), dtype=np.float64)
        part["sqrt_s_hat"] = (
            np.asarray(ak.to_numpy(sub["sqrt_s_hat"]), dtype=np.float64)
            if "sqrt_s_hat" in ak.fields(sub)
            else np.full(len(sub), np.nan)
        )
        part["veto"] = veto
        parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# --------------------------------------------------------------------------- figure of merit
class Fom:
    """Signal efficiencies and backgrounds in each point's window, for any event-level cut."""

    def __init__(self, sig: dict[str, Arrays], n_gen: dict[str, int], bkg: dict[str, Arrays]):
        self.points = list(sig)
        self.sig, self.n_gen, self.bkg = sig, n_gen, bkg
        self.windows: dict[str, tuple[float, float, float, float]] = {}
        self.in_sig: dict[str, np.ndarray] = {}
        self.in_bkg: dict[tuple[str, str], np.ndarray] = {}
        for name, (ma, mh) in zip(self.points, SIGNAL_POINTS, strict=True):
            s = sig[name]
            core = s["sqrt_s_hat"] > SQRT_S * (1.0 - CORE_ISR)
            sm = 1.4826 * float(np.median(np.abs(s["m_mumu"][core] - ma)))
            sr = 1.4826 * float(np.median(np.abs(s["m_recoil"][core] - mh)))
            self.windows[name] = (ma, mh, sm, sr)
            self.in_sig[name] = self._inside(s, name)
            for b, arr in bkg.items():
                self.in_bkg[(name, b)] = self._inside(arr, name)

    def _inside(self, arr: Arrays, name: str) -> np.ndarray:
        ma, mh, sm, sr = self.windows[name]
        with np.errstate(invalid="ignore"):
            d2 = ((arr["m_mumu"] - ma) / (WINDOW_SIGMAS * sm)) ** 2 + (
                (arr["m_recoil"] - mh) / (WINDOW_SIGMAS * sr)
            ) ** 2
        return d2 < 1.0

    def values(self, cut: Cut) -> dict[str, tuple[float, float, float]]:
        """Point -> (efficiency, background at 8.34 fb^-1, FOM) for ``cut(arrays) -> mask``."""
        out = {}
        for name in self.points:
            eff = np.count_nonzero(self.in_sig[name] & cut(self.sig[name])) / self.n_gen[name]
            b = 0.0
            for bname, arr in self.bkg.items():
                m = self.in_bkg[(name, bname)] & cut(arr)
                b += float(arr["weight"][m].sum()) * LUMI_FB
            out[name] = (eff, b, eff / (PUNZI_A / 2.0 + math.sqrt(b)))
        return out

    def score(self, cut: Cut, ref: dict[str, tuple[float, float, float]]) -> float:
        """Geometric mean over the points of FOM / FOM(ref)."""
        vals = self.values(cut)
        # a point that loses all its signal counts with a ratio of 1e-6 (not -inf)
        logs = [math.log(max(vals[p][2] / ref[p][2], 1e-6)) for p in self.points]
        return math.exp(float(np.mean(logs)))


def make_cut(sel: DarkHiggsSelection, c_eta_var: str = "eta_mumu_cm") -> Cut:
    """A mask function of the preselected arrays for the last three steps of ``sel``."""
    veto_on = "photon_veto" not in sel.disabled
    i = PHOTON_E_GEV.index(sel.photon_energy_min_gev) if veto_on else -1
    j = PHOTON_CONE_DEG.index(sel.photon_cone_deg) if veto_on else -1

    def mask(arr: Arrays) -> np.ndarray:
        m = np.ones(len(arr["weight"]), dtype=bool)
        if veto_on:
            m &= arr["veto"][:, i, j]
        with np.errstate(invalid="ignore"):
            if "helicity" not in sel.disabled:
                m &= np.abs(arr["cos_helicity"]) < sel.cos_helicity_max
            if "c_eta" not in sel.disabled:
                m &= np.abs(arr[c_eta_var]) < sel.c_eta_max
        return m

    return mask


def _pick(scan: dict[float, tuple[float, Any]]) -> float:
    """The loosest (largest) cut value whose score is within PICK_TOLERANCE of the best."""
    best = max(v[0] for v in scan.values())
    return max(x for x, v in scan.items() if v[0] >= (1.0 - PICK_TOLERANCE) * best)


def separation(
    sig: dict[str, Arrays], bkg: dict[str, Arrays], base: Cut, variables: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """For each variable, the cut on abs(variable) that keeps 95% of the pooled signal (every
    point with the same weight), and the fraction of each sample it keeps."""
    out = {}
    for var in variables:
        xs, ws = [], []
        for arr in sig.values():
            m = base(arr)
            xs.append(np.abs(arr[var][m]))
            ws.append(np.full(int(m.sum()), 1.0 / max(int(m.sum()), 1)))
        x, w = np.concatenate(xs), np.concatenate(ws)
        order = np.argsort(x)
        cdf = np.cumsum(w[order]) / w.sum()
        cut = float(x[order][np.searchsorted(cdf, SIGNAL_EFFICIENCY_SEPARATION)])
        row = {"cut": cut}
        for name, arr in {**sig, **bkg}.items():
            m = base(arr)
            with np.errstate(invalid="ignore"):
                kept = m & (np.abs(arr[var]) <= cut)
            row[name] = float(arr["weight"][kept].sum() / arr["weight"][m].sum())
        out[var] = row
    return out


def tune(fom: Fom, bkg: dict[str, Arrays]) -> tuple[DarkHiggsSelection, str, dict[str, Any]]:
    """Photon veto, helicity cut, C_eta variable and cut, helicity again (module docstring)."""
    t: dict[str, Any] = {}
    off = DarkHiggsSelection(disabled=frozenset({"photon_veto", "helicity", "c_eta"}))
    ref0 = fom.values(make_cut(off))
    t["reference"] = ref0
    # 1. photon veto: the full grid, then the choice among cones up to the cap
    grid = {}
    for e in PHOTON_E_GEV:
        for c in PHOTON_CONE_DEG:
            s = replace(off, disabled=frozenset({"helicity", "c_eta"}),
                        photon_energy_min_gev=e, photon_cone_deg=c)  # fmt: skip
            grid[(e, c)] = fom.score(make_cut(s), ref0)
    t["photon_veto"] = grid
    allowed = {k: v for k, v in grid.items() if k[1] <= PHOTON_CONE_MAX_DEG}
    best_e, best_c = max(allowed, key=lambda k: allowed[k])
    at_cone = {e: (v, None) for (e, c), v in allowed.items() if c == best_c}
    best_e = _pick(at_cone)  # the highest threshold within 1% (soft beam photons in data)
    sel = replace(off, disabled=frozenset({"helicity", "c_eta"}),
                  photon_energy_min_gev=best_e, photon_cone_deg=best_c)  # fmt: skip
    t["after_veto"] = fom.values(make_cut(sel))

    def scan(
        base: DarkHiggsSelection, field: str, values: tuple[float, ...], var: str
    ) -> dict[float, tuple[float, Any]]:
        ref = fom.values(make_cut(replace(base, disabled=base.disabled | {_step(field)}), var))
        out = {}
        for x in values:
            s = replace(base, **{field: float(x)})
            out[float(x)] = (fom.score(make_cut(s, var), ref), fom.values(make_cut(s, var)))
        return out

    # 2. helicity, C_eta off
    sel = replace(sel, disabled=frozenset({"c_eta"}))
    t["helicity"] = scan(sel, "cos_helicity_max", HELICITY_CUTS, "eta_mumu_cm")
    sel = replace(sel, cos_helicity_max=_pick(t["helicity"]))
    # 3. C_eta: the variable by its separation, each candidate's FOM scan
    veto_only = make_cut(replace(sel, disabled=frozenset({"helicity", "c_eta"})))
    t["separation"] = separation(fom.sig, bkg, veto_only, (*C_ETA_CANDIDATES, "cos_helicity"))
    bkg_kept = {
        v: sum(t["separation"][v][b] for b in BACKGROUNDS) / len(BACKGROUNDS)
        for v in C_ETA_CANDIDATES
    }
    var = min(bkg_kept, key=lambda v: bkg_kept[v])
    sel = replace(sel, disabled=frozenset())
    t["c_eta"] = {v: scan(sel, "c_eta_max", C_ETA_CUTS, v) for v in C_ETA_CANDIDATES}
    sel = replace(sel, c_eta_max=_pick(t["c_eta"][var]))
    # 4. helicity again, with the C_eta cut
    t["helicity_after_c_eta"] = scan(sel, "cos_helicity_max", HELICITY_CUTS, var)
    sel = replace(sel, cos_helicity_max=_pick(t["helicity_after_c_eta"]))
    t["final"] = fom.values(make_cut(sel, var))
    return sel, var, t


def _step(field: str) -> str:
    return {"cos_helicity_max": "helicity", "c_eta_max": "c_eta"}[field]


# --------------------------------------------------------------------------- report
def _md_flow(flows: dict[str, Any]) -> str:
    steps = flows[next(iter(flows))].steps
    lines = ["| step | " + " | ".join(flows) + " |", "| --- |" + " ---: |" * len(flows)]
    for i, step in enumerate(steps):
        cells = [
            f"{f.yields[i] / f.yields[0]:.4f}" if n.startswith("signal") else f"{f.yields[i]:.4g}"
            for n, f in flows.items()
        ]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _print_scan(title: str, scan: dict[float, Any], label: str, points: list[str]) -> None:
    print(f"\n### {title}\n")
    print(f"| {label} | score | " + " | ".join(points) + " |")
    print("| --- | ---: |" + " ---: |" * len(points))
    for x, (score, vals) in scan.items():
        cells = [f"{vals[p][0]:.3f} / {vals[p][1]:.3g}" for p in points]
        print(f"| {x:g} | {score:.3f} | " + " | ".join(cells) + " |")


def _figure(t: dict[str, Any], var: str, out: Path) -> None:
    """The FOM scans as one PNG/PDF (zprime.report.plots)."""
    import matplotlib.pyplot as plt  # figures only; the study's numbers need no matplotlib

    from zprime.report import plots

    plots.style()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for c in PHOTON_CONE_DEG:
        axes[0].plot(PHOTON_E_GEV, [t["photon_veto"][(e, c)] for e in PHOTON_E_GEV],
                     marker="o", label=f"cone {c:g} deg")  # fmt: skip
    axes[0].set_xlabel("photon energy threshold [GeV]")
    axes[0].set_ylabel("score: geometric mean of FOM / FOM(no cut)")
    axes[0].legend(fontsize="small")
    for key, lab in (("helicity", "C_eta off"), ("helicity_after_c_eta", "C_eta on")):
        xs = list(t[key])
        axes[1].plot(xs, [t[key][x][0] for x in xs], marker="o", label=lab)
    axes[1].set_xlabel("|cos theta*| cut")
    axes[1].legend(fontsize="small")
    for v in C_ETA_CANDIDATES:
        xs = [x for x in t["c_eta"][v] if math.isfinite(x)]
        axes[2].plot(xs, [t["c_eta"][v][x][0] for x in xs], marker="o",
                     label=v + (" (chosen)" if v == var else ""))  # fmt: skip
    axes[2].set_xlabel("C_eta candidate cut")
    axes[2].legend(fontsize="small")
    fig.suptitle(r"zprime simulation, $\sqrt{s}$ = 10.58 GeV, 8.34 fb$^{-1}$")
    plots.save(fig, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", type=Path, default=Path("/tmp/dh_study"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20190417)
    ap.add_argument("--lumi-factor", type=float, default=8.0)
    ap.add_argument("--eemumu-points", type=int, default=6_000_000)
    ap.add_argument("--signal-events", type=int, default=40_000)
    ap.add_argument("--suppression", type=float, default=1.0)
    ap.add_argument("--no-figure", action="store_true")
    args = ap.parse_args()
    t_start = time.perf_counter()
    cfg = study_config(args.lumi_factor, args.suppression)
    files = make_samples(args, cfg)
    lumi_eq = {
        b: float(read_metadata(args.out / "events" / f"{b}.parquet")["luminosity_equivalent_fb"])
        for b in BACKGROUNDS
    }
    print("equivalent luminosity of the backgrounds (fb^-1):", lumi_eq)

    arrays = {}
    for name, path in files.items():  # cached beside the samples (the pass takes minutes)
        cache = args.out / "preselected" / f"{name}.npz"
        if not cache.exists() or cache.stat().st_mtime < path.stat().st_mtime:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **preselected(path))
        with np.load(cache) as z:
            arrays[name] = {k: z[k] for k in z.files}
    sig = {k: v for k, v in arrays.items() if k.startswith("signal")}
    bkg = {k: v for k, v in arrays.items() if not k.startswith("signal")}
    n_gen = {k: int(read_metadata(files[k])["n_input_events"]) for k in sig}
    fom = Fom(sig, n_gen, bkg)
    sel, var, t = tune(fom, bkg)
    pts = fom.points
    print("\nwindows (M_A', M_h', sigma_mumu, sigma_recoil):")
    for p, w in fom.windows.items():
        print(f"  {p}: sigma_mumu {w[2]:.4f} GeV, sigma_recoil {w[3]:.4f} GeV")
    print("\nchosen:", {k: v for k, v in asdict(sel).items() if k != "disabled"})
    print("C_eta variable:", var)
    if replace(sel, disabled=frozenset()) != DarkHiggsSelection():
        print("NOTE: the chosen values differ from the defaults of DarkHiggsSelection")
    if var != "eta_mumu_cm":
        print(f"WARNING: the best C_eta variable is {var}; the selection module's c_eta is "
              "abs(eta_mumu_cm): the cut flows below use the module's definition")  # fmt: skip

    print("\n### Photon veto: score (cones above 30 deg not chosen)\n")
    print("| E_min (GeV) | " + " | ".join(f"{c:g} deg" for c in PHOTON_CONE_DEG) + " |")
    print("| --- |" + " ---: |" * len(PHOTON_CONE_DEG))
    for e in PHOTON_E_GEV:
        row = [t["photon_veto"][(e, c)] for c in PHOTON_CONE_DEG]
        print(f"| {e:g} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    print("\n### Separation at 95% signal efficiency (fraction kept; after the photon veto)\n")
    names = [*pts, *BACKGROUNDS]
    print("| variable | cut | " + " | ".join(names) + " |")
    print("| --- | ---: |" + " ---: |" * len(names))
    for v, row in t["separation"].items():
        print(f"| {v} | {row['cut']:.3f} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    _print_scan("Helicity cut, C_eta off (eff / B per point)", t["helicity"], "abs(cos) <", pts)
    for v in C_ETA_CANDIDATES:
        _print_scan(f"C_eta candidate {v} (abs <)", t["c_eta"][v], "cut", pts)
    _print_scan("Helicity cut with the C_eta cut", t["helicity_after_c_eta"], "abs(cos) <", pts)

    # the final selection through the public file-level API
    flows = {}
    for name, path in files.items():
        _, flows[name] = select_file(
            path, args.out / "selected" / f"{name}.parquet", sel, luminosity_fb=LUMI_FB
        )
    print("\n### Cut flows (signal: cumulative efficiency; backgrounds: events at 8.34 fb^-1)\n")
    print(_md_flow(flows))
    tot = {b: flows[b].yields[-1] for b in BACKGROUNDS}
    err = {}
    for b in BACKGROUNDS:
        w = pq.read_table(args.out / "selected" / f"{b}.parquet").column("weight").to_numpy()
        err[b] = float(np.sqrt(np.sum(w * w))) * LUMI_FB
    total = sum(tot.values())
    print("\n### Background composition after the selection\n")
    print("| sample | events at 8.34 fb^-1 | MC error | fraction | talk |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for b in BACKGROUNDS:
        print(f"| {b} | {tot[b]:.4g} | {err[b]:.2g} | {tot[b] / total:.3f} | "
              f"{TALK_COMPOSITION[b]:.2f} |")  # fmt: skip
    print("\n### Per point in its window (final selection)\n")
    print("| point | sigma_mumu | sigma_recoil | eff (window) | eff (all) | B (window) | FOM |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for p in pts:
        _, _, sm, sr = fom.windows[p]
        eff, b, f = t["final"][p]
        eff_all = flows[p].yields[-1] / flows[p].yields[0]
        print(f"| {p} | {sm:.4f} | {sr:.4f} | {eff:.4f} | {eff_all:.4f} | {b:.3g} | {f:.4f} |")
    ref = t["reference"]
    print("\nFOM gain of the three tuned steps per point:",
          {p: round(t["final"][p][2] / ref[p][2], 2) for p in pts})  # fmt: skip
    if not args.no_figure:
        _figure(t, var, args.out / "figures" / "dark_higgs_selection_fom")
    result = {
        "selection": {k: v for k, v in asdict(sel).items() if k != "disabled"},
        "c_eta_variable": var,
        "luminosity_equivalent_fb": lumi_eq,
        "windows": fom.windows,
        "final": t["final"],
        "composition": {b: tot[b] / total for b in BACKGROUNDS},
        "yields": tot,
        "cut_flows": {k: f.rows() for k, f in flows.items()},
        "wall_s": time.perf_counter() - t_start,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"\nwall time {result['wall_s']:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
