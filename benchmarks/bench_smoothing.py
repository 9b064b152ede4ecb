"""Smoothed background templates (zprime.analyses.invisible_zprime.smoothing): closure and speed.

Closure: a large selected background sample (default: a run's ``selected/presel``) is
subsampled to a few hundred events (weights scaled up); the raw histogram and the KDE (kernels
of the resolution width) of the subsample are compared with the full sample's histogram in
20-bin search windows (integrated squared error, ISE, averaged over 10 subsamples). Speed: KDE
set-up and the templates of ~500 windows.

Usage: python benchmarks/bench_smoothing.py [RUN_DIR] (default /tmp/zfresh)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from zprime.analyses.invisible_zprime.binning import ResolutionModel, ResolutionScale
from zprime.analyses.invisible_zprime.smoothing import smooth_background
from zprime.analyses.invisible_zprime.templates import EventSample


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/zfresh")
    res = ResolutionModel.load(run / "resolution.json")
    scale = ResolutionScale(res, -2.0, 100.0)
    centres = np.arange(scale.u(-2.0) + 10, scale.u(100.0) - 10, 10)
    wins = [np.asarray(scale.m2(c + np.arange(21) - 10)) for c in centres]
    rng = np.random.default_rng(1)
    for name, nsub in (("eemumu", 450), ("eemumu", 3000), ("tautau", 50), ("mumu", 40)):
        path = run / "selected" / "presel" / f"{name}.parquet"
        if not path.exists():
            continue
        full = EventSample.read(path, name)
        truth = [np.histogram(full.m2, e, weights=full.weight)[0] for e in wins]
        ise = {"raw": [], "kde k=0.5": [], "kde k=1": []}
        for _ in range(10):
            pick = rng.choice(len(full), nsub, replace=False)
            w = full.weight[pick] * len(full) / nsub
            sub = EventSample("s", full.m2[pick], full.theta[pick], w)
            raw = [np.histogram(sub.m2, e, weights=sub.weight)[0] for e in wins]
            ise["raw"].append(sum(np.sum((a - t) ** 2) for a, t in zip(raw, truth, strict=True)))
            for k in (0.5, 1.0):
                kde = smooth_background(sub, res, m2_range=(-2, 100), boundaries=[4.0], bandwidth=k)
                est = [kde.m2_template(e)[0] for e in wins]
                ise[f"kde k={k:g}"].append(
                    sum(np.sum((a - t) ** 2) for a, t in zip(est, truth, strict=True))
                )
        base = np.mean(ise["raw"])
        cells = ", ".join(f"{k} {np.mean(v) / base:.3f}" for k, v in ise.items())
        print(f"{name} {len(full)} -> {nsub} events: ISE relative to raw: {cells}")
        t0 = time.perf_counter()
        kde = smooth_background(full, res, m2_range=(-2, 100), boundaries=[4.0])
        t1 = time.perf_counter()
        for e in wins:
            kde.m2_template(e)
        t2 = time.perf_counter()
        print(
            f"  full sample: KDE set-up {1e3 * (t1 - t0):.1f} ms, {len(wins)} windows "
            f"{1e3 * (t2 - t1):.1f} ms"
        )


if __name__ == "__main__":
    main()
