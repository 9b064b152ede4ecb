"""Benchmark of the Bayesian credible upper limits (zprime.stats.bayesian). Prints, never asserts.

Windows as bench_stats.py builds them (the PRL's: 20 M_recoil^2 bins x 1..5 theta bins, 2-4
samples, one histosys per bin per sample, normsys, lumi, staterror). Measured:

1. time per hypothesis for the observed + Asimov-median limits (the ``fit.limits: bayesian``
   default, ``bayesian_toys: 0``) on 20-bin and 100-bin windows, and per background-only toy;
2. the Monte Carlo noise of a limit (relative standard deviation over seeds) at the defaults;
3. the grid: ~500 hypotheses (theta bins 5 -> 1 along the scan, as bench_stats.py), a subset
   timed with ``scan_bayesian``, extrapolated to the whole grid on 2 cores.

CPU times (``time.process_time``) are reported beside wall times (the machine is shared).
Run: ``python benchmarks/bench_bayesian.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stats import window
from zprime.stats import bayesian_limits, bayesian_posterior, scan_bayesian
from zprime.stats.bayesian import BAYESIAN_LOCAL, BAYESIAN_SAMPLES

N_GRID = 500


def grid_shape(i: int, n: int = N_GRID) -> tuple[int, int]:
    frac = i / (n - 1)
    return 5 - int(frac * 4.999), 3 - int(frac * 2.999)


def timed(fn, *args, **kwargs):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer hypotheses and seeds")
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    n_rep = 3 if args.quick else 6
    n_sub = 10 if args.quick else 30
    print(
        f"zprime.stats.bayesian benchmark (n_samples={BAYESIAN_SAMPLES}, "
        f"n_local={BAYESIAN_LOCAL}; CPU = process time, wall in brackets)"
    )
    # 1. per hypothesis
    for n_theta, n_bkg in ((1, 2), (5, 3)):
        specs = [window(rng, n_theta, n_bkg, f"w{n_theta}_{i}") for i in range(n_rep)]
        nb = 20 * n_theta
        cpu = wall = 0.0
        for i, spec in enumerate(specs):
            _, c, w = timed(bayesian_limits, spec, ntoys=0, rng=np.random.default_rng(i))
            cpu, wall = cpu + c, wall + w
        print(
            f"{nb:4d}-bin window, observed + Asimov median: {cpu / n_rep * 1e3:7.0f} ms CPU "
            f"({wall / n_rep * 1e3:.0f} ms wall) per hypothesis"
        )
        _, c, w = timed(bayesian_limits, specs[0], ntoys=10, rng=np.random.default_rng(9))
        _, c0, w0 = timed(bayesian_limits, specs[0], ntoys=0, rng=np.random.default_rng(9))
        print(
            f"{nb:4d}-bin window, per background-only toy: {(c - c0) / 10 * 1e3:7.0f} ms CPU "
            f"({(w - w0) / 10 * 1e3:.0f} ms wall)"
        )
        # 2. Monte Carlo noise
        lims = np.array(
            [
                bayesian_posterior(specs[0], rng=np.random.default_rng(100 + s))[0].upper_limit
                for s in range(n_rep)
            ]
        )
        print(
            f"{nb:4d}-bin window, MC noise of the observed limit over {n_rep} seeds: "
            f"{lims.std(ddof=1) / lims.mean() * 100:.2f}% (limit {lims.mean():.4g})"
        )
    # 3. the grid
    idx = np.linspace(0, N_GRID - 1, n_sub).astype(int)
    specs = [window(rng, *grid_shape(int(i)), f"g{i}") for i in idx]
    res, c, w = timed(scan_bayesian, specs, ntoys=0, seed=1)
    ok = sum(r.ok for r in res)
    per = c / n_sub
    print(
        f"grid subset: {n_sub} hypotheses spread over {N_GRID}: {c:.1f} s CPU ({w:.1f} s wall), "
        f"{per * 1e3:.0f} ms per hypothesis, {ok} ok"
    )
    print(
        f"whole grid, {N_GRID} hypotheses, observed + Asimov median (extrapolated): "
        f"{per * N_GRID:.0f} s on 1 core, {per * N_GRID / 2:.0f} s on 2 cores"
    )


if __name__ == "__main__":
    main()
