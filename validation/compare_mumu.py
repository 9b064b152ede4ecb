#!/usr/bin/env python3
"""zprime's e+e- -> mu+ mu- (gamma) generator against Pythia 8 (issue 12's checks).

Both samples get the same generator-level filter (the default ``mumu`` sample's), the same fast
detector (``simulation``) and the same preselection (the PRL selection without the Punzi-net).
Compared, each with a chi^2 per degree of freedom of the two normalised histograms (statistical
errors of both, weighted), and drawn into ``--out``:

- at generator level after the filter: the c.m. energy and the lab polar angle of the hardest
  photon, and the recoil mass squared against the muon pair;
- after the preselection: M_recoil^2, theta_recoil (lab), and the yields in the PRL's three
  M_recoil^2 ranges (-0.5-9, 9-36, 36-81 GeV^2, the ranges of its systematic uncertainties).

Pythia differs by construction: its ISR is a leading-log shower from the electron PDF (several
photons per beam, each with p_T), its FSR a shower without ISR-FSR interference; ours is the
exact O(alpha) matrix element for the photon of largest p_T and one leading-log
structure-function photon per beam (p_T-ordered), no further FSR. Differences are
reported as measured (``docs/generators.md``).

    python validation/compare_mumu.py --pythia-events 20000000 --lumi-factor 1 \
        --out validation/out/mumu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import awkward as ak
import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from zprime.analyses.invisible_zprime.selection import select_file
from zprime.config import config_from_dict, default_config
from zprime.detector.simulation import simulate_file
from zprime.generators import backgrounds as bg
from zprime.io.events import iter_events, read_metadata
from zprime.physics.constants import P_BEAMS_LAB
from zprime.physics.kinematics import lab_to_cm

M2_RANGES = ((-0.5, 9.0), (9.0, 36.0), (36.0, 81.0))


def chi2_ndf(a: np.ndarray, ea: np.ndarray, b: np.ndarray, eb: np.ndarray) -> tuple[float, int]:
    """chi^2 and degrees of freedom of two histograms normalised to unit area."""
    sa, sb = a.sum(), b.sum()
    if sa <= 0 or sb <= 0:
        return float("nan"), 0
    a, ea, b, eb = a / sa, ea / sa, b / sb, eb / sb
    var = ea**2 + eb**2
    ok = var > 0
    return float(np.sum((a[ok] - b[ok]) ** 2 / var[ok])), int(ok.sum() - 1)


def hist(x: np.ndarray, w: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, _ = np.histogram(x, edges, weights=w)
    e2, _ = np.histogram(x, edges, weights=w**2)
    return h, np.sqrt(e2)


def generator_observables(path: Path) -> dict[str, np.ndarray]:
    """Hardest-photon c.m. energy and lab angle, and M_recoil^2 of the muon pair (truth)."""
    out: dict[str, list[np.ndarray]] = {"w": [], "e_gamma": [], "theta_gamma": [], "m2": []}
    for batch in iter_events(path, columns=["weight", "particles"]):
        parts = batch["particles"]
        w = ak.to_numpy(batch["weight"])
        mu = parts[abs(parts.pdg) == 13]
        mu = mu[ak.argsort(mu.e, ascending=False)][:, :2]
        p4 = np.stack([ak.to_numpy(ak.sum(mu[f], axis=1)) for f in ("e", "px", "py", "pz")], -1)
        rec = np.asarray(P_BEAMS_LAB) - p4
        m2 = rec[:, 0] ** 2 - np.sum(rec[:, 1:] ** 2, axis=1)
        ph = parts[parts.pdg == 22]
        ph4 = np.stack([ak.to_numpy(ak.flatten(ph[f])) for f in ("e", "px", "py", "pz")], -1)
        cm = lab_to_cm(ph4)
        counts = ak.to_numpy(ak.num(ph))
        e_cm = ak.unflatten(cm[:, 0], counts)
        lead = ak.argmax(e_cm, axis=1, keepdims=True)
        e_lead = ak.to_numpy(ak.fill_none(ak.firsts(e_cm[lead]), 0.0))
        th_all = ak.unflatten(np.arctan2(np.hypot(ph4[:, 1], ph4[:, 2]), ph4[:, 3]), counts)
        th_lead = ak.to_numpy(ak.fill_none(ak.firsts(th_all[lead]), np.nan))
        for k, v in (("w", w), ("e_gamma", e_lead), ("theta_gamma", th_lead), ("m2", m2)):
            out[k].append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def selected_observables(path: Path, lumi: float) -> dict[str, np.ndarray]:
    cols = ["weight", "m_recoil2", "theta_recoil"]
    parts = list(iter_events(path, columns=cols))
    return {
        "w": np.concatenate([ak.to_numpy(b["weight"]) for b in parts]) * lumi,
        "m2": np.concatenate([ak.to_numpy(b["m_recoil2"]) for b in parts]),
        "theta": np.concatenate([ak.to_numpy(b["theta_recoil"]) for b in parts]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pythia-events", type=int, default=20_000_000)
    parser.add_argument("--lumi-factor", type=float, default=1.0, help="ours: x 79.7 fb^-1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("validation/out/mumu"))
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    base = default_config()
    filt = base.backgrounds.samples["mumu"].filter.model_dump(mode="json")
    cfg = config_from_dict(
        {
            "backgrounds": {
                "samples": {
                    "mumu_pythia": {"filter": filt},
                    "mumu": {"luminosity_factor": args.lumi_factor},
                }
            }
        }
    )
    lumi = cfg.luminosity_fb
    files = {}
    timings = {}
    for name, n in (("mumu", None), ("mumu_pythia", args.pythia_events)):
        target = out / "events" / f"{name}.parquet"
        t = time.time()
        if not target.exists():
            bg.generate_sample(name, n, out / "events", config=cfg, workers=args.workers)
        reco = out / "reco" / f"{name}.parquet"
        if not reco.exists():
            simulate_file(target, out / "reco", detector="simulation", seed=5, config=cfg)
        sel, _flow = select_file(
            reco, out / "selected", cfg.selection, luminosity_fb=lumi, skip=["punzinet"]
        )
        timings[name] = time.time() - t
        files[name] = (target, sel)
        meta = read_metadata(target)
        print(
            f"{name}: {meta['n_generated']:,} generated, {meta['n_events']:,} kept, "
            f"filtered sigma {meta['sigma_filtered_fb']:.4g} +- "
            f"{meta['sigma_filtered_err_fb']:.2g} fb, {timings[name]:.0f} s"
        )

    summary: dict[str, object] = {}
    gen = {k: generator_observables(v[0]) for k, v in files.items()}
    sel = {k: selected_observables(v[1], lumi) for k, v in files.items()}
    specs = [
        ("gen", "e_gamma", np.linspace(0.0, 5.5, 56), "hardest photon E (c.m.) [GeV]"),
        ("gen", "theta_gamma", np.linspace(0.0, np.pi, 46), "hardest photon theta (lab) [rad]"),
        ("gen", "m2", np.linspace(-2.0, 100.0, 52), "M_recoil^2 (truth) [GeV^2]"),
        ("sel", "m2", np.linspace(-2.0, 82.0, 43), "M_recoil^2 after preselection [GeV^2]"),
        ("sel", "theta", np.linspace(0.5, 2.3, 37), "theta_recoil after preselection [rad]"),
    ]
    fig, axes = plt.subplots(1, len(specs), figsize=(5 * len(specs), 4))
    for ax, (level, key, edges, label) in zip(axes, specs, strict=True):
        src = gen if level == "gen" else sel
        hs = {}
        for name in files:
            x, w = src[name][key], src[name]["w"]
            ok = np.isfinite(x)
            hs[name] = hist(x[ok], w[ok], edges)
        c2, ndf = chi2_ndf(*hs["mumu"], *hs["mumu_pythia"])
        summary[f"{level}_{key}_chi2_ndf"] = [c2, ndf]
        centres = 0.5 * (edges[1:] + edges[:-1])
        for name, style in (("mumu", "-"), ("mumu_pythia", "--")):
            h, e = hs[name]
            norm = h.sum() or 1.0
            ax.errorbar(centres, h / norm, e / norm, ls=style, drawstyle="steps-mid", label=name)
        ax.set_xlabel(label)
        ax.set_title(f"chi2/ndf = {c2:.0f}/{ndf}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "mumu_vs_pythia.png", dpi=110)
    rows = []
    for lo, hi in M2_RANGES:
        row = {"range": [lo, hi]}
        for name in files:
            m = (sel[name]["m2"] >= lo) & (sel[name]["m2"] < hi)
            w = sel[name]["w"][m]
            row[name] = [float(w.sum()), float(np.sqrt(np.sum(w**2))), int(m.sum())]
        rows.append(row)
        a, b = row["mumu"], row["mumu_pythia"]
        ratio = a[0] / b[0] if b[0] else float("nan")
        print(
            f"M^2 in [{lo}, {hi}): ours {a[0]:.4g} +- {a[1]:.2g} ({a[2]} events), Pythia "
            f"{b[0]:.4g} +- {b[1]:.2g} ({b[2]} events), ratio {ratio:.3f}"
        )
    summary["yields"] = rows
    summary["timings_s"] = timings
    for k, v in summary.items():
        if k.endswith("chi2_ndf"):
            print(f"{k}: {v[0]:.1f} / {v[1]}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
