"""The numbers of a run that docs/results.md quotes, from its results table.

Usage::

    python validation/run_summary.py RUN_DIR

Reads ``RUN_DIR/limits.csv`` and ``RUN_DIR/significance_narrow.json`` and prints: the
smallest observed and expected narrow sigma x B limits, the range of the observed g' limits,
the hypotheses whose g' limit lies below the lower edge of the (g-2)_mu band (fully invisible
and vanilla; observed and expected), the largest local excess with the global significance,
and the goodness of fit of the narrow windows (worst p-value, fraction below 0.01 per mass
range, a Kolmogorov-Smirnov test of the p-values against a uniform distribution).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy import stats

from zprime.physics.model import g2_band


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _below(mass: np.ndarray, limit: np.ndarray) -> str:
    low = np.asarray(g2_band(mass).low, dtype=float)
    below = np.isfinite(limit) & (limit < low)
    if not below.any():
        return "none"
    lo, hi = mass[below].min(), mass[below].max()
    return f"{int(below.sum())} hypotheses between {lo:.3g} and {hi:.3g} GeV"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    rows = [r for r in _rows(args.run_dir / "limits.csv") if r["width"] == "narrow"]
    ok = [r for r in rows if r["status"] == "ok"]

    def col(name: str) -> np.ndarray:
        return np.array([float(r[name]) for r in ok])

    m = col("mass_gev")
    obs, exp = col("obs_xsec_fb"), col("exp_xsec_fb")
    i, j = int(np.nanargmin(obs)), int(np.nanargmin(exp))
    print(f"smallest observed sigma x B limit: {obs[i]:.2g} fb at {m[i]:.3g} GeV")
    print(f"smallest expected median: {exp[j]:.2g} fb at {m[j]:.3g} GeV")
    g_inv = col("obs_gprime_invisible")
    k8 = int(np.argmin(np.abs(m - 8.0)))
    print(
        f"observed g' fully invisible: {g_inv[0]:.2g} ({m[0]:g} GeV) ... {g_inv[k8]:.2g} "
        f"({m[k8]:.3g} GeV) ... {g_inv[-1]:.2g} ({m[-1]:.3g} GeV)"
    )
    print(f"fully invisible below the band (observed): {_below(m, g_inv)}")
    print(f"fully invisible below the band (expected): {_below(m, col('exp_gprime_invisible'))}")
    print(f"vanilla below the band (observed): {_below(m, col('obs_gprime_vanilla'))}")
    sig = json.loads((args.run_dir / "significance_narrow.json").read_text())
    print(
        f"largest local excess {sig['largest_local_z']:.3g} sigma at {sig['at_mass_gev']:.4g} GeV,"
        f" global {sig['global_z']:.2g} sigma (p = {sig['global_p']:.2g})"
    )
    gof = col("gof_p")
    parts = []
    for lo, hi in ((0.0, 3.0), (3.0, 6.0), (6.0, 9.0)):
        sel = (m >= lo) & (m < hi)
        parts.append(f"{lo:g}-{hi:g} GeV {100 * np.mean(gof[sel] < 0.01):.0f}%")
    print(
        f"goodness of fit: worst p = {gof.min():.2g}; {int(np.sum(gof < 0.01))} of {gof.size} "
        f"({100 * np.mean(gof < 0.01):.1f}%) below 0.01 ({', '.join(parts)}); KS against "
        f"uniform p = {stats.kstest(gof, 'uniform').pvalue:.2g}"
    )


if __name__ == "__main__":
    main()
