#!/usr/bin/env python3
"""Background composition of a dark Higgsstrahlung run, next to the talk's 79/18/3%.

Reads a finished run directory (``zprime run --analysis dark-higgsstrahlung --out RUN``): the
selected background samples and their control events, corrected as the ``limits`` stage corrects
them (``dark_higgs_control.json``), and the windows. Prints, per sample, the expected events at
the run's luminosity after the selection and inside the search region (the union of all the
windows), with their shares, and the observed pseudo-data events in both. The talk
(``shared/papers/talk-2022-dark-sector-belle2.md``) quotes the shares of the observed yields:
mu mu (gamma) 79%, tau tau (gamma) 18%, e e mu mu 3%.

    python validation/dark_higgs_composition.py RUN [--out validation/out/dh_composition.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from zprime.analyses.dark_higgsstrahlung.control import read_corrections
from zprime.analyses.dark_higgsstrahlung.windows import EllipseWindows, inside_any

TALK = {"mumu": 0.79, "tautau": 0.18, "eemumu": 0.03}
COLS = ("m_mumu", "m_recoil", "m_recoil2", "theta_recoil", "weight")


def _read(path: Path, extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    t = pq.read_table(path, columns=[*COLS, *extra]).to_pydict()
    return {k: np.asarray(v, dtype=float) for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    run: Path = args.run
    lumi = float(json.loads((run / "provenance.json").read_text())["config"]["luminosity_fb"])
    corr = read_corrections(run / "dark_higgs_control.json")
    t = pq.read_table(run / "dark_higgs_windows.parquet").to_pydict()
    win = EllipseWindows(
        *(np.asarray(t[k]) for k in ("centre_mumu_gev", "centre_recoil_gev", "axis_a_gev")),
        np.asarray(t["axis_b_gev"]),
        np.asarray(t["angle_rad"]),
    )
    sel_dir = run / "selected" / "dark_higgs"
    rows = {}
    for path in sorted((sel_dir / "backgrounds").glob("*.parquet")):
        if path.name.endswith(".control.parquet"):
            continue
        name = path.stem
        sel = _read(path)
        ctl_path = path.with_name(f"{name}.control.parquet")
        ctl = _read(ctl_path, ("region", "n_near_photons")) if ctl_path.is_file() else None
        w_s, w_c = corr.weights(name, sel, ctl)
        x = np.concatenate([sel["m_mumu"], ctl["m_mumu"] if ctl else []])
        y = np.concatenate([sel["m_recoil"], ctl["m_recoil"] if ctl else []])
        w = np.concatenate([w_s, w_c if ctl else []]) * lumi
        inside = inside_any(win, x, y)
        rows[name] = {"selected": float(w.sum()), "search_region": float(w[inside].sum())}
    data = {}
    for path in sorted((sel_dir / "data").glob("*.parquet")):
        if path.name.endswith(".control.parquet"):
            continue
        d = _read(path)
        inside = inside_any(win, d["m_mumu"], d["m_recoil"])
        data[path.stem] = {
            "selected": float(d["weight"].sum() * lumi),
            "search_region": float(d["weight"][inside].sum() * lumi),
        }
    out = {"luminosity_fb": lumi, "simulation": rows, "data_expected": data, "talk": TALK}
    for region in ("selected", "search_region"):
        tot = sum(r[region] for r in rows.values())
        print(f"{region}: {tot:.1f} expected background events at {lumi:g} fb^-1")
        for name, r in rows.items():
            share = r[region] / tot if tot > 0 else float("nan")
            talk = TALK.get(name)
            print(
                f"  {name:8s} {r[region]:10.1f}  {100 * share:5.1f}%"
                + (f"   (talk {100 * talk:.0f}%)" if talk is not None else "")
            )
        dtot = sum(r[region] for r in data.values())
        print(f"  pseudo-data (expected from the data-detector samples): {dtot:.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
