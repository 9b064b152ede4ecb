#!/usr/bin/env python3
"""Background composition and signal efficiencies of a tau-tau resonance run, per network range.

Reads a finished run directory (``zprime run --analysis tautau-resonance --out RUN``): the
selected background and pseudo-data samples, the selected signal points and the range networks.
Prints, per M_recoil range of the networks, the expected events of every background sample at the
run's luminosity after the pre-selection and after the range's network (with their shares), the
pseudo-data events in both, and the signal efficiency (of the generated events) of each model
at the simulated masses inside the range after the pre-selection and after the network. Every
opposite-charge muon pair of an event is a candidate (``candidate``, ``n_candidates``): an event
counts once in a range if any of its candidates there passes, as in the cut flow. The
talk (``shared/papers/talk-2022-dark-sector-belle2.md``) names the backgrounds but gives no
shares: the table is ours to report, not to compare.

    python validation/tautau_composition.py RUN [--out validation/out/tt_composition.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from zprime.analyses.tautau_resonance.networks import load
from zprime.analyses.tautau_resonance.selection import FEATURES
from zprime.io.events import read_events, read_metadata

COLS = ("event", "m_recoil", *FEATURES, "weight")


def _read(path: Path) -> dict[str, np.ndarray]:
    ev = read_events(path, list(COLS))
    return {c: np.asarray(ev[c], dtype=float) for c in COLS}


def _events(c: dict[str, np.ndarray], mask: np.ndarray) -> float:
    """Sum of the weights of the events with a candidate in ``mask`` (an event's candidates
    share its weight)."""
    _, first = np.unique(c["event"][mask], return_index=True)
    return float(c["weight"][mask][first].sum())


def _x(c: dict[str, np.ndarray]) -> np.ndarray:
    return (
        np.stack([c[f] for f in FEATURES], axis=1)
        if len(c["weight"])
        else np.zeros((0, len(FEATURES)))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    run: Path = args.run
    cfg = json.loads((run / "provenance.json").read_text())["config"]
    lumi = float(cfg["luminosity_fb"])
    edges = [float(e) for e in cfg["tautau"]["networks"]["edges_gev"]]
    nets = [load(run / "networks" / f"tautau_range_{i}.pt") for i in range(len(edges) - 1)]
    sel_dir = run / "selected" / "tautau"
    bkg = {p.stem: _read(p) for p in sorted((sel_dir / "backgrounds").glob("*.parquet"))}
    data = {p.stem: _read(p) for p in sorted((sel_dir / "data").glob("*.parquet"))}
    signal = {p.stem: p for p in sorted((sel_dir / "signal").glob("*.parquet"))}
    sim = json.loads((run / "stages" / "simulate.json").read_text())["outputs"]["signal"]
    out = []
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        net = nets[i]
        row = {"range_gev": [lo, hi], "cut": net.cut, "backgrounds": {}, "signal": {}}
        for name, c in bkg.items():
            inr = (c["m_recoil"] >= lo) & (c["m_recoil"] < hi)
            passed = inr & (net.passes(_x(c)) if len(c["weight"]) else inr)
            row["backgrounds"][name] = {
                "preselected": _events(c, inr) * lumi,
                "after_network": _events(c, passed) * lumi,
            }
        n_data = [0, 0]
        for c in data.values():
            inr = (c["m_recoil"] >= lo) & (c["m_recoil"] < hi)
            passed = inr & (net.passes(_x(c)) if len(c["weight"]) else inr)
            # the pseudo-data files are unweighted to 1 / L: weight x L is the event count
            n_data[0] += _events(c, inr) * lumi
            n_data[1] += _events(c, passed) * lumi
        row["data"] = {"preselected": n_data[0], "after_network": n_data[1]}
        for label, path in signal.items():
            if label.startswith("train_"):  # the networks' mass-continuum samples
                continue
            mass = label.split("_M")[1]
            if not lo <= float(mass) <= hi:
                continue
            c = _read(path)
            sigma = float(read_metadata(run / sim[label]["$path"])["sigma_fb"])
            near = np.abs(c["m_recoil"] - float(mass)) < 0.5
            passed = net.passes(_x(c)) if len(c["weight"]) else near
            row["signal"][label] = {
                "preselected": _events(c, np.ones(len(c["weight"]), dtype=bool)) / sigma,
                "after_network": _events(c, passed) / sigma,
                "after_network_within_0.5_gev": _events(c, passed & near) / sigma,
            }
        out.append(row)
        tot_p = sum(v["preselected"] for v in row["backgrounds"].values())
        tot_n = sum(v["after_network"] for v in row["backgrounds"].values())
        print(f"\nrange {lo:g}-{hi:g} GeV (network cut {net.cut:.3f})")
        print(f"{'sample':<14}{'pre-selected':>14}{'share':>8}{'after net':>12}{'share':>8}")
        for name, v in row["backgrounds"].items():
            print(
                f"{name:<14}{v['preselected']:>14.1f}{v['preselected'] / max(tot_p, 1e-300):>8.1%}"
                f"{v['after_network']:>12.1f}{v['after_network'] / max(tot_n, 1e-300):>8.1%}"
            )
        print(f"{'simulated':<14}{tot_p:>14.1f}{'':>8}{tot_n:>12.1f}")
        print(f"{'pseudo-data':<14}{n_data[0]:>14.0f}{'':>8}{n_data[1]:>12.0f}")
        for label, v in row["signal"].items():
            print(
                f"  signal {label:<16} efficiency: pre-selection {v['preselected']:.3f}, "
                f"after network {v['after_network']:.3f} "
                f"(within 0.5 GeV: {v['after_network_within_0.5_gev']:.3f})"
            )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
