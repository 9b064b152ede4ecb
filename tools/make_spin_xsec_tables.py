#!/usr/bin/env python3
"""Compute the cross-section tables sigma(e+e- -> mu+ mu- X) at coupling 1 for the tau-tau
resonance search (issue 19): X a vector Z' (g' = 1), a scalar or a pseudoscalar (Yukawa y = 1),
M_X from 3.6 to 10.0 GeV in steps of 0.1 GeV, with and without ISR.

Usage (from the repository root)::

    python tools/make_spin_xsec_tables.py                 # rewrite src/zprime/data/...
    python tools/make_spin_xsec_tables.py --out-dir DIR --step 0.5

Writes ``xsec_table_mumu_x_{spin}.csv`` (the format of :mod:`zprime.physics.xsec_table`, read
with :func:`zprime.physics.xsec_table.load_xsec_table`; the path of a shipped table is
:func:`zprime.physics.xsec_table.spin_table_path`). The generator settings (alpha, sqrt(s),
ISR, vegas precision and seed, version, commit) are in the ``# key = value`` header. Runs on
one core in well under a minute per table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from zprime.generators.signal import SPINS, xsec_table
from zprime.physics.xsec_table import write_xsec_table

DATA = Path(__file__).resolve().parent.parent / "src" / "zprime" / "data"
TITLE = {
    "vector": "sigma(e+e- -> mu+ mu- Z') at g' = 1 (vector, L_mu - L_tau Z'), fb",
    "scalar": "sigma(e+e- -> mu+ mu- S) at y = 1 (scalar, L = -y S mubar mu), fb",
    "pseudoscalar": (
        "sigma(e+e- -> mu+ mu- a) at y = 1 (pseudoscalar, L = -i y a mubar gamma5 mu), fb"
    ),
}


def make_table(spin: str, out_dir: Path, m_min: float, m_max: float, step: float) -> Path:
    """Compute and write the table of one spin hypothesis; returns the path."""
    masses = np.round(np.arange(m_min, m_max + 0.5 * step, step), 6)
    t0 = time.perf_counter()
    table = xsec_table(masses, spin=spin, executor="serial", progress=False)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    table.metadata.update(
        {
            "spin": spin,
            "mass_grid_gev": f"{m_min:g} to {m_max:g} in steps of {step:g}",
            "computed_by": "tools/make_spin_xsec_tables.py",
            "cpu_seconds": f"{seconds:.0f}",
        }
    )
    path = write_xsec_table(table, out_dir / f"xsec_table_mumu_x_{spin}.csv")
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = f"# zprime signal cross-section table: {TITLE[spin]}\n"
    path.write_text("".join(lines))
    print(f"{spin}: {len(masses)} masses in {seconds:.0f} s -> {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DATA)
    parser.add_argument("--min", type=float, default=3.6)
    parser.add_argument("--max", type=float, default=10.0)
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--spins", nargs="+", default=list(SPINS), choices=SPINS)
    args = parser.parse_args()
    for spin in args.spins:
        make_table(spin, args.out_dir, args.min, args.max, args.step)


if __name__ == "__main__":
    main()
