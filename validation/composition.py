#!/usr/bin/env python3
"""Background composition per M_recoil^2 range of a finished run, next to the PRL's description.

Reads the selected background samples of a run (``selected/presel`` and ``selected/final``) and
prints, per range, the expected events at the run's luminosity of every sample, its share, and
sum(w^2)/sum(w) (expected events per simulated event). The PRL (130, 231801) says that after the
full selection the background is "dominantly tau tau (gamma) [...] in the region M_recoil^2 < 50
GeV^2, and e+e- mu+ mu- elsewhere; mu mu (gamma) is subleading across the entire mass range",
and that below 1 GeV^2 mu mu (gamma) with one photon dominates (before the network).

    python validation/composition.py results/ [--out validation/out/composition.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import awkward as ak
import numpy as np

from zprime.io.events import iter_events

RANGES = ((-0.5, 1.0), (1.0, 9.0), (9.0, 36.0), (36.0, 50.0), (50.0, 64.0), (64.0, 76.0))


def _load(path: Path, lumi: float) -> tuple[np.ndarray, np.ndarray]:
    w, m2 = [], []
    for b in iter_events(path, columns=["weight", "m_recoil2"]):
        w.append(ak.to_numpy(b["weight"]))
        m2.append(ak.to_numpy(b["m_recoil2"]))
    if not w:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(w) * lumi, np.concatenate(m2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    prov = json.loads((args.run / "provenance.json").read_text())
    lumi = float(prov["config"]["luminosity_fb"])
    result: dict[str, object] = {}
    for level in ("presel", "final"):
        files = sorted(
            p
            for p in (args.run / "selected" / level).glob("*.parquet")
            if not p.name.startswith("signal")
        )
        data = {p.stem: _load(p, lumi) for p in files}
        rows = []
        print(f"\n## {level} (expected events at {lumi} fb^-1; share; sum(w^2)/sum(w))\n")
        print("| M^2 range | " + " | ".join(data) + " |")
        print("| --- |" + " ---: |" * len(data))
        for lo, hi in RANGES:
            cells = {}
            for name, (w, m2) in data.items():
                sel = (m2 >= lo) & (m2 < hi)
                s = float(w[sel].sum())
                cells[name] = {
                    "events": s,
                    "n_sim": int(sel.sum()),
                    "w_mean": float(np.sum(w[sel] ** 2) / s) if s > 0 else 0.0,
                }
            total = sum(c["events"] for c in cells.values()) or 1.0
            rows.append({"range": [lo, hi], **cells})
            print(
                f"| {lo}-{hi} | "
                + " | ".join(
                    f"{c['events']:.4g} ({100 * c['events'] / total:.0f}%; {c['w_mean']:.2g})"
                    for c in cells.values()
                )
                + " |"
            )
        result[level] = rows
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
