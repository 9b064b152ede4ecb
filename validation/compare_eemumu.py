#!/usr/bin/env python3
"""zprime's exact e+e- -> e+e- mu+mu- against Pythia 8's equivalent-photon sample (issue 13).

Two comparisons, both written to ``--out`` (figure ``eemumu_vs_pythia.png``, ``summary.json``):

1. **Generator level, no filter** (W_mumu > 0.5 GeV): our weighted events (exact tree-level
   matrix element) against Pythia's ``eemumu_pythia`` (EPA photon flux, Q^2 < 2 GeV^2,
   direct-direct gamma gamma -> mu mu, pTHat > 0.2 GeV, which ours gets too). In the
   *quasi-real* region (both Q^2 < 0.01 GeV^2)
   the equivalent-photon approximation is valid and the two must agree in the mu mu mass and
   rapidity spectra (absolute, nb per bin); in the *tail* (one Q^2 > 0.25 GeV^2) they differ
   and the script shows where and by how much (dsigma/dQ^2 and dsigma/dW there).
2. **After the filter, the fast detector and the preselection** (the PRL selection without the
   Punzi-net): yields in the PRL's three M_recoil^2 ranges and the M_recoil^2 spectrum, ours
   (``eemumu`` at ``--lumi-factor``) against Pythia (``--pythia-events``), each normalised to
   its own cross section: the background composition the analysis now sees.

    python validation/compare_eemumu.py --out validation/out/eemumu
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
from zprime.generators import fourfermion as ff
from zprime.io.events import iter_events, read_metadata
from zprime.physics.constants import SQRT_S
from zprime.physics.kinematics import lab_to_cm

M2_RANGES = ((-0.5, 9.0), (9.0, 36.0), (36.0, 81.0))
E_BEAM = 0.5 * SQRT_S


def _observables(p_cm: np.ndarray) -> dict[str, np.ndarray]:
    """Q^2 of both beam leptons, W and rapidity of the mu pair from (n, 4, 4) c.m. momenta
    (scattered e-, e+, mu-, mu+)."""
    pb = np.sqrt(E_BEAM**2 - 0.000511**2)
    e3, e4 = p_cm[:, 0], p_cm[:, 1]
    q1 = 2.0 * (E_BEAM * e3[:, 0] - pb * e3[:, 3]) - 2.0 * 0.000511**2
    q2 = 2.0 * (E_BEAM * e4[:, 0] + pb * e4[:, 3]) - 2.0 * 0.000511**2
    pair = p_cm[:, 2] + p_cm[:, 3]
    w = np.sqrt(np.maximum(pair[:, 0] ** 2 - np.sum(pair[:, 1:] ** 2, axis=1), 0.0))
    y = 0.5 * np.log((pair[:, 0] + pair[:, 3]) / (pair[:, 0] - pair[:, 3]))
    # Pythia's pTHat: the muon p_T in the pair rest frame about the beam axis (the gamma gamma
    # axis for quasi-real photons); its sample has pTHat > 0.2 GeV, so ours gets the same cut
    mu = boost(p_cm[:, 2], pair)
    pthat = np.hypot(mu[:, 1], mu[:, 2])
    return {"q1": q1, "q2": q2, "w": w, "y": y, "pthat": pthat}


def boost(p: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """(n, 4) momenta p into the rest frame of the (n, 4) momenta ``frame``."""
    b = frame[:, 1:] / frame[:, :1]
    b2 = np.sum(b * b, axis=1)
    g = 1.0 / np.sqrt(1.0 - b2)
    bp = np.sum(b * p[:, 1:], axis=1)
    out = np.empty_like(p)
    out[:, 0] = g * (p[:, 0] - bp)
    coef = np.where(b2 > 0, (g - 1.0) * bp / np.where(b2 > 0, b2, 1.0), 0.0) - g * p[:, 0]
    out[:, 1:] = p[:, 1:] + coef[:, None] * b
    return out


def ours_unfiltered(n: int, seed: int) -> dict[str, np.ndarray]:
    g = ff.generate(n, np.random.default_rng(seed), {"final_state": "eemumu", "w_min_gev": 0.5})
    obs = _observables(g["p_cm"][:, 2:])
    # the generator's own Q^2 (exact; the four-vectors lose 1 - cos(theta) below ~1e-8)
    obs["q1"], obs["q2"] = g["q2"][:, 0], g["q2"][:, 1]
    obs["weight"] = g["weight"]
    return obs


def pythia_unfiltered(n: int, seed: int) -> dict[str, np.ndarray]:
    cfg = default_config()
    settings = bg.sample_settings("eemumu_pythia", cfg)
    settings["filter"] = {"enabled": False}
    res = bg.chunk(settings, n, seed)
    parts = res.events.particles

    def pick(code: int, largest_e: bool = True) -> np.ndarray:
        sel = parts[parts.pdg == code]
        idx = ak.argmax(sel.e, axis=1, keepdims=True) if largest_e else slice(None)
        one = ak.firsts(sel[idx])
        return np.stack([ak.to_numpy(one[f]) for f in ("e", "px", "py", "pz")], axis=-1)

    lab = np.stack([pick(11), pick(-11), pick(13), pick(-13)], axis=1)
    obs = _observables(lab_to_cm(lab))
    obs["weight"] = ak.to_numpy(res.events.weight)
    return obs


def hist(x: np.ndarray, w: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, _ = np.histogram(x, edges, weights=w)
    e2, _ = np.histogram(x, edges, weights=w**2)
    return h, np.sqrt(e2)


def chi2(a: tuple, b: tuple) -> tuple[float, int]:
    var = a[1] ** 2 + b[1] ** 2
    ok = var > 0
    return float(np.sum((a[0][ok] - b[0][ok]) ** 2 / var[ok])), int(ok.sum())


def selected(path: Path, lumi: float) -> dict[str, np.ndarray]:
    parts = list(iter_events(path, columns=["weight", "m_recoil2"]))
    return {
        "w": np.concatenate([ak.to_numpy(b["weight"]) for b in parts]) * lumi,
        "m2": np.concatenate([ak.to_numpy(b["m_recoil2"]) for b in parts]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=2_000_000, help="ours, unfiltered")
    parser.add_argument("--pythia-unfiltered", type=int, default=1_000_000)
    parser.add_argument("--pythia-events", type=int, default=20_000_000, help="filtered sample")
    parser.add_argument("--lumi-factor", type=float, default=1.0, help="ours: x 79.7 fb^-1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("validation/out/eemumu"))
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {}

    # 1. generator level
    t = time.time()
    ours = ours_unfiltered(args.points, 1)
    summary["sigma_ours_pthat_nb"] = float(ours["weight"][ours["pthat"] > 0.2].sum() / 1e6)
    summary["ours_unfiltered_s"] = time.time() - t
    t = time.time()
    py = pythia_unfiltered(args.pythia_unfiltered, 2)
    summary["pythia_unfiltered_s"] = time.time() - t
    summary["sigma_nb"] = {"ours": ours["weight"].sum() / 1e6, "pythia": py["weight"].sum() / 1e6}
    regions = {  # both with Pythia's generation cut pTHat > 0.2 GeV
        "quasi_real": lambda o: (o["q1"] < 0.01) & (o["q2"] < 0.01) & (o["pthat"] > 0.2),
        "tail": lambda o: (np.maximum(o["q1"], o["q2"]) > 0.25) & (o["pthat"] > 0.2),
    }
    specs = [
        ("quasi_real", "w", np.geomspace(0.5, 6.0, 25), "W(mu mu) [GeV]"),
        ("quasi_real", "y", np.linspace(-2.5, 2.5, 26), "rapidity of mu mu (c.m.)"),
        ("tail", "qmax", np.geomspace(0.25, 2.0, 13), "max Q^2 [GeV^2] (Pythia: Q^2 < 2)"),
        ("tail", "w", np.geomspace(0.5, 6.0, 13), "W(mu mu) [GeV], one Q^2 > 0.25"),
    ]
    fig, axes = plt.subplots(2, len(specs), figsize=(5 * len(specs), 7), sharex="col")
    for col, (reg, key, edges, label) in enumerate(specs):
        hs = {}
        for name, o in (("ours", ours), ("pythia", py)):
            o = {**o, "qmax": np.maximum(o["q1"], o["q2"])}
            m = regions[reg](o)
            if reg == "tail":
                m &= o["qmax"] < 2.0  # Pythia's cut-off
            hs[name] = hist(o[key][m], o["weight"][m] / 1e6, edges)
        c2, ndf = chi2(hs["ours"], hs["pythia"])
        tot = {k: float(v[0].sum()) for k, v in hs.items()}
        summary[f"{reg}_{key}"] = {
            "chi2": c2,
            "ndf": ndf,
            "sigma_nb": tot,
            "ratio": tot["ours"] / tot["pythia"] if tot["pythia"] else None,
            "bin_ratios": (hs["ours"][0] / np.where(hs["pythia"][0] > 0, hs["pythia"][0], np.nan))
            .round(3)
            .tolist(),
        }
        centres = np.sqrt(edges[1:] * edges[:-1]) if key != "y" else 0.5 * (edges[1:] + edges[:-1])
        ax = axes[0, col]
        for name, style in (("ours", "-"), ("pythia", "--")):
            ax.errorbar(
                centres, hs[name][0], hs[name][1], ls=style, drawstyle="steps-mid", label=name
            )
        ax.set_title(f"{reg}: chi2/ndf = {c2:.0f}/{ndf}")
        ax.set_ylabel("nb per bin")
        ax.legend()
        if key != "y":
            ax.set_xscale("log")
        r = hs["ours"][0] / np.where(hs["pythia"][0] > 0, hs["pythia"][0], np.nan)
        axes[1, col].plot(centres, r, "o-")
        axes[1, col].axhline(1.0, color="gray")
        axes[1, col].set_ylabel("ours / Pythia")
        axes[1, col].set_xlabel(label)
    fig.tight_layout()
    fig.savefig(out / "eemumu_vs_pythia.png", dpi=110)

    # 2. after the filter, the detector and the preselection
    base = default_config()
    filt = base.backgrounds.samples["eemumu"].filter.model_dump(mode="json")
    cfg = config_from_dict(
        {
            "backgrounds": {
                "samples": {
                    "eemumu_pythia": {"filter": filt},
                    "eemumu": {"luminosity_factor": args.lumi_factor},
                }
            }
        }
    )
    lumi = cfg.luminosity_fb
    sel = {}
    for name, n in (("eemumu", None), ("eemumu_pythia", args.pythia_events)):
        target = out / "events" / f"{name}.parquet"
        t = time.time()
        if not target.exists():
            bg.generate_sample(name, n, out / "events", config=cfg, workers=args.workers)
        reco = out / "reco" / f"{name}.parquet"
        if not reco.exists():
            simulate_file(target, out / "reco", detector="simulation", seed=5, config=cfg)
        path, _flow = select_file(
            reco, out / "selected", cfg.selection, luminosity_fb=lumi, skip=["punzinet"]
        )
        summary[f"{name}_s"] = time.time() - t
        meta = read_metadata(target)
        summary[f"{name}_meta"] = {
            k: meta.get(k) for k in ("n_generated", "n_events", "sigma_filtered_fb")
        }
        sel[name] = selected(path, lumi)
    rows = []
    for lo, hi in M2_RANGES:
        row: dict[str, object] = {"range": [lo, hi]}
        for name, s in sel.items():
            m = (s["m2"] >= lo) & (s["m2"] < hi)
            w = s["w"][m]
            row[name] = [float(w.sum()), float(np.sqrt(np.sum(w**2))), int(m.sum())]
        rows.append(row)
        a, b = row["eemumu"], row["eemumu_pythia"]
        print(
            f"M^2 in [{lo}, {hi}): exact {a[0]:.4g} +- {a[1]:.2g} ({a[2]} events), Pythia EPA "
            f"{b[0]:.4g} +- {b[1]:.2g} ({b[2]} events), ratio {a[0] / max(b[0], 1e-300):.3f}"
        )
    summary["preselected_yields"] = rows
    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.linspace(-2.0, 82.0, 43)
    for name, style in (("eemumu", "-"), ("eemumu_pythia", "--")):
        h, e = hist(sel[name]["m2"], sel[name]["w"], edges)
        ax.errorbar(
            0.5 * (edges[1:] + edges[:-1]), h, e, ls=style, drawstyle="steps-mid", label=name
        )
    ax.set_yscale("log")
    ax.set_xlabel("M_recoil^2 after the preselection [GeV^2]")
    ax.set_ylabel(f"events per bin at {lumi} fb^-1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "eemumu_preselected_m2.png", dpi=110)
    for k, v in summary.items():
        if isinstance(v, dict) and "chi2" in v:
            print(f"{k}: chi2 {v['chi2']:.1f}/{v['ndf']}, sigma ours/Pythia {v['ratio']:.3f}")
    print("sigma (nb):", summary["sigma_nb"])
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))


if __name__ == "__main__":
    main()
