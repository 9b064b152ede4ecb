#!/usr/bin/env python3
"""Is final-state radiation off the taus negligible after the preselection? (issue 12)

``zprime.generators.tautau`` generates no photons off the taus or in their decays. Pythia 8
does (its QED shower off the tau leptons, ``TimeShower:QEDshowerByL``, and photon emission in
the decays, ``ParticleDecays:FSRinDecays``). This script generates Pythia tau pairs with both
taus forced to mu nu nu (the pairs that make 88% of the preselected tau tau background) with and
without that radiation, and ours with the same forced channel, all through the default
generator filter, the fast detector and the preselection, and compares the preselected yields in
the PRL's three M_recoil^2 ranges and the M_recoil^2 and theta_recoil shapes::

    python validation/tau_fsr.py --pythia-events 60000 --out validation/out/tau_fsr
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from zprime.analyses.invisible_zprime.selection import select_file
from zprime.config import config_from_dict, default_config
from zprime.detector.simulation import simulate_file
from zprime.generators import backgrounds as bg
from zprime.io.events import read_events, read_metadata

M2_RANGES = ((-0.5, 9.0), (9.0, 36.0), (36.0, 81.0))


def _chi2(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], edges) -> str:
    ha, _ = np.histogram(a[0], edges, weights=a[1])
    va, _ = np.histogram(a[0], edges, weights=a[1] ** 2)
    hb, _ = np.histogram(b[0], edges, weights=b[1])
    vb, _ = np.histogram(b[0], edges, weights=b[1] ** 2)
    sa, sb = ha.sum(), hb.sum()
    var = va / sa**2 + vb / sb**2
    ok = var > 0
    c2 = float(np.sum((ha[ok] / sa - hb[ok] / sb) ** 2 / var[ok]))
    return f"{c2:.1f} / {int(ok.sum()) - 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pythia-events", type=int, default=60_000)
    parser.add_argument("--ours-events", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("validation/out/tau_fsr"))
    args = parser.parse_args()
    base = default_config()
    pythia = base.backgrounds.samples["tautau_pythia"].model_dump(mode="json")
    filt = base.backgrounds.samples["tautau"].filter.model_dump(mode="json")
    no_fsr = {
        **pythia,
        "pythia": [
            *pythia["pythia"],
            "TimeShower:QEDshowerByL = off",
            "ParticleDecays:FSRinDecays = off",
        ],
    }
    mu_only = [[16, 13, -14]]
    cfg = config_from_dict(
        {
            "backgrounds": {
                "samples": {
                    "tau_pythia_fsr": {
                        **pythia,
                        "filter": filt,
                        "tau_channels": mu_only,
                        "chunk_size": 5_000,
                    },
                    "tau_pythia_nofsr": {
                        **no_fsr,
                        "filter": filt,
                        "tau_channels": mu_only,
                        "chunk_size": 5_000,
                    },
                    "tautau": {"luminosity_factor": None, "options": {"channels": ["mu"]}},
                }
            }
        }
    )
    lumi = cfg.luminosity_fb
    sizes = {
        "tau_pythia_fsr": args.pythia_events,
        "tau_pythia_nofsr": args.pythia_events,
        "tautau": args.ours_events,
    }
    sel = {}
    for name, n in sizes.items():
        gen = args.out / "events" / f"{name}.parquet"
        if not gen.exists():
            bg.generate_sample(name, n, args.out / "events", config=cfg, workers=args.workers)
        reco = args.out / "reco" / f"{name}.parquet"
        if not reco.exists():
            simulate_file(gen, args.out / "reco", detector="simulation", seed=9, config=cfg)
        path, _ = select_file(
            reco, args.out / "selected", cfg.selection, luminosity_fb=lumi, skip=["punzinet"]
        )
        ev = read_events(path, ["weight", "m_recoil2", "theta_recoil"])
        meta = read_metadata(gen)
        sel[name] = (
            np.asarray(ev["m_recoil2"]),
            np.asarray(ev["weight"]) * lumi,
            np.asarray(ev["theta_recoil"]),
        )
        print(
            f"{name}: {meta['n_generated']:,} generated, {meta['n_events']:,} kept, "
            f"{len(ev):,} preselected"
        )
    summary: dict[str, object] = {"yields": []}
    for lo, hi in M2_RANGES:
        row: dict[str, object] = {"range": [lo, hi]}
        for name, (m2, w, _) in sel.items():
            k = (m2 >= lo) & (m2 < hi)
            row[name] = [float(w[k].sum()), float(np.sqrt(np.sum(w[k] ** 2)))]
        summary["yields"].append(row)  # type: ignore[attr-defined]
        f, nf, us = row["tau_pythia_fsr"], row["tau_pythia_nofsr"], row["tautau"]
        print(
            f"M^2 in [{lo}, {hi}): Pythia with FSR {f[0]:.4g} +- {f[1]:.2g}, without "  # type: ignore[index]
            f"{nf[0]:.4g} +- {nf[1]:.2g} (ratio {f[0] / nf[0]:.3f} +- "  # type: ignore[index]
            f"{f[0] / nf[0] * np.hypot(f[1] / f[0], nf[1] / nf[0]):.3f}); ours "  # type: ignore[index]
            f"{us[0]:.4g} +- {us[1]:.2g} (ours / Pythia without FSR {us[0] / nf[0]:.3f})"  # type: ignore[index]
        )
    m2_edges = np.linspace(-2, 82, 22)
    th_edges = np.linspace(0.4, 2.3, 20)
    for a, b in (("tau_pythia_fsr", "tau_pythia_nofsr"), ("tautau", "tau_pythia_nofsr")):
        c_m2 = _chi2(sel[a][:2], sel[b][:2], m2_edges)
        c_th = _chi2((sel[a][2], sel[a][1]), (sel[b][2], sel[b][1]), th_edges)
        summary[f"{a}_vs_{b}"] = {"m2_chi2_ndf": c_m2, "theta_chi2_ndf": c_th}
        print(f"shapes {a} vs {b}: M^2 chi2/ndf {c_m2}, theta_recoil chi2/ndf {c_th}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
