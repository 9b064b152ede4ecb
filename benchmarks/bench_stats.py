"""Benchmark of the statistical engine (zprime.stats) against pyhf 0.7.6. Prints, never asserts.

Windows as in the PRL (ANALYSIS.md "Fit and limits"): 20 M_recoil^2 bins x 1..5 theta bins
(up to 100 bins), a signal and 1-3 backgrounds (2-4 samples), one histosys per bin per sample
(the uncorrelated Gaussian shape uncertainties), a signal-efficiency normsys, luminosity and
MC statistical uncertainties (staterror): 200-500 parameters.

Measured in one run:

1. fast engine, time per hypothesis (observed + 5 expected asymptotic CLs limits) on the
   largest windows;
2. the grid: ~600 hypotheses (theta bins 5 -> 1, samples 4 -> 2 along the scan), a subset
   solved with ``scan_limits`` (workspaces of equal structure stacked), extrapolated to the
   whole grid on 2 cores;
3. toy bands (the PRL's expected band: asymptotic limits of 1000 background-only toys per
   hypothesis) on a few hypotheses, extrapolated to the grid on 2 cores;
4. pyhf (numpy backend, scipy SLSQP, pyhf's TOMS 748 scan with ``level`` passed): a full upper
   limit on a small window (6 bins), compared with ours (time and agreement); with
   ``--pyhf-big`` also one conditional fit on the 100-bin window, from which pyhf's time per
   hypothesis is extrapolated with the number of fits its limit needed on the small window (a
   full pyhf limit on a 100-bin window takes hours).

CPU times (``time.process_time``) are reported next to wall times because the benchmark machine
is shared; extrapolations to 2 cores assume the hypotheses are independent (they are).

Run: ``python benchmarks/bench_stats.py [--quick] [--no-pyhf] [--pyhf-big]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from zprime.stats import (
    build_workspace,
    compile_workspace,
    expected_limits_toys,
    scan_limits,
    upper_limit,
)

N_GRID = 600
N_M2 = 20


def window(rng: np.random.Generator, n_theta: int, n_bkg: int, name: str, n_m2: int = N_M2) -> dict:
    """A 2D window (n_m2 M^2 bins x n_theta theta bins, flattened row-major)."""
    m2 = np.linspace(-2.0, 2.0, n_m2)  # in units of the resolution around the hypothesis
    th = np.linspace(0.1, 0.9, n_theta)
    sig = 0.8 * np.exp(-0.5 * m2[:, None] ** 2) * (1.0 + 0.3 * th[None, :])
    sig = sig / n_theta
    shapes = [
        60.0 * np.exp(-0.3 * (m2[:, None] + 2)) * (1.2 - th[None, :]),
        8.0 * (1.0 + 0.1 * m2[:, None]) * th[None, :] ** 0.5 + 0.0 * th[None, :],
        2.0 * np.ones((n_m2, n_theta)),
    ]
    names = ["mumu", "mumugamma", "emu"]
    bkgs = {names[i]: shapes[i] / n_theta + 0.02 for i in range(n_bkg)}
    btot = np.sum(list(bkgs.values()), axis=0)
    obs = rng.poisson(btot)
    shape_unc = {"mumu": 0.086, "mumugamma": 0.34, "emu": 0.25}
    return build_workspace(
        sig,
        bkgs,
        obs,
        name=name,
        signal_shape_unc=0.10,
        background_shape_unc={k: shape_unc[k] for k in bkgs},
        signal_efficiency_unc=0.065,
        lumi_unc=0.01,
        signal_mc_unc=0.1 * sig,
        background_mc_unc={k: 0.1 * np.sqrt(v) for k, v in bkgs.items()},
    )


def grid_shape(i: int) -> tuple[int, int]:
    """(theta bins, background samples) of hypothesis i of the grid: 5 -> 1 theta bins, and
    3 -> 1 backgrounds, along the scan (as the PRL's binning and samples evolve with mass)."""
    frac = i / (N_GRID - 1)
    return 5 - int(frac * 4.999), 3 - int(frac * 2.999)


def timed(fn, *args, **kwargs):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.process_time() - c0, time.perf_counter() - w0


def pyhf_limit(spec: dict) -> tuple[float, list[float], int, float]:
    """pyhf's TOMS 748 limit (level passed, see zprime.stats.pyhf_engine); returns the limits,
    the number of hypotests it ran and the CPU time."""
    import pyhf

    from zprime.stats.pyhf_engine import pyhf_model

    model, data = pyhf_model(spec)
    bounds = model.config.suggested_bounds()[model.config.poi_index]
    calls = {"n": 0}
    orig = pyhf.infer.intervals.upper_limits.hypotest

    def counting(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)

    pyhf.infer.intervals.upper_limits.hypotest = counting
    try:
        c0 = time.process_time()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(
                    data, model, bounds[0], bounds[1], level=0.10
                )
            except ValueError:  # NaN CLs at the lower end (see pyhf_engine): pyhf's own retry
                obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(
                    data, model, 1e-4 * bounds[1], bounds[1], level=0.10
                )
        cpu = time.process_time() - c0
    finally:
        pyhf.infer.intervals.upper_limits.hypotest = orig
    return float(obs), [float(e) for e in exp], calls["n"], cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer hypotheses and toys")
    ap.add_argument("--pyhf-big", action="store_true", help="time a pyhf fit on a big window")
    ap.add_argument("--no-pyhf", action="store_true", help="skip the pyhf timings")
    args = ap.parse_args()
    rng = np.random.default_rng(2023)
    n_big = 4 if args.quick else 10
    n_sub = 30 if args.quick else 60
    n_toys = 200 if args.quick else 1000
    print("zprime.stats benchmark (CPU = process time of this process; wall in brackets)")

    # 1. largest windows
    big = [window(rng, 5, 3, f"big{i}") for i in range(n_big)]
    m0 = compile_workspace(big[0])
    print(
        f"\n[1] largest window: {m0.nbins} bins, {m0.n_samples} samples, "
        f"{m0.n_parameters()} parameters ({m0.kh} histosys slots + {m0.kg} staterror per bin)"
    )
    upper_limit(big[0])  # warm-up (imports)
    cpu_t, wall_t = [], []
    for spec in big:
        res, c, w = timed(upper_limit, spec)
        assert res.ok, res.message
        cpu_t.append(c)
        wall_t.append(w)
    t_fast = float(np.mean(cpu_t))
    print(
        f"    fast engine, obs + 5 expected asymptotic limits: {1e3 * t_fast:.1f} ms CPU per "
        f"hypothesis ({1e3 * np.mean(wall_t):.1f} ms wall), mean of {n_big}"
    )

    # 2. the grid
    idx = np.linspace(0, N_GRID - 1, n_sub).astype(int)
    specs = []
    for i in idx:
        nt, nb = grid_shape(int(i))
        specs.append(window(rng, nt, nb, f"h{i}"))
    results, c, w = timed(scan_limits, specs)
    failed = sum(not r.ok for r in results)
    per = c / len(specs)
    print(
        f"\n[2] grid subset: {len(specs)} hypotheses spread over the {N_GRID}-point grid "
        f"(stacked by structure): {c:.2f} s CPU ({w:.2f} s wall), {failed} failed"
    )
    print(
        f"    -> {1e3 * per:.1f} ms CPU per hypothesis; whole grid ({N_GRID}, obs + band): "
        f"{N_GRID * per:.1f} s on 1 core, {N_GRID * per / 2:.1f} s on 2 cores "
        "(target < 120 s)"
    )

    # 3. toy bands
    picks = [0, N_GRID // 2, N_GRID - 1]
    toy_cpu = []
    for i in picks:
        nt, nb = grid_shape(i)
        m = compile_workspace(window(rng, nt, nb, f"toy{i}"))
        band, c, w = timed(expected_limits_toys, m, n_toys, np.random.default_rng(i))
        toy_cpu.append(c)
        print(
            f"\n[3] toy band, hypothesis {i} ({m.nbins} bins, {m.n_samples} samples): "
            f"{n_toys} toys in {c:.1f} s CPU ({w:.1f} s wall), {band['failed']} failed, "
            f"band {np.array2string(band['expected'], precision=3)}"
        )
    # the grid mixes window sizes evenly along the scan: average the three
    per_hyp = float(np.mean(toy_cpu)) * 1000 / n_toys
    print(
        f"    -> 1000 toys per hypothesis: {per_hyp:.1f} s CPU; whole grid: "
        f"{N_GRID * per_hyp / 60:.1f} min on 1 core, {N_GRID * per_hyp / 120:.1f} min on 2 "
        "cores (target < 10 min)"
    )

    if args.no_pyhf:
        return
    # 4. pyhf
    small = window(np.random.default_rng(1), 1, 1, "small", n_m2=6)
    ms = compile_workspace(small)
    ours, c_ours, _ = timed(upper_limit, small)
    obs, exp, n_hyp, c_pyhf = pyhf_limit(small)
    rel = max(
        abs(ours.observed / obs - 1),
        *(abs(a / b - 1) for a, b in zip(ours.expected, exp, strict=True)),
    )
    print(
        f"\n[4] pyhf 0.7.6 vs fast, small window ({ms.nbins} bins, {ms.n_parameters()} "
        f"parameters): pyhf {c_pyhf:.1f} s CPU ({n_hyp} hypotests), fast "
        f"{1e3 * c_ours:.1f} ms CPU: ratio {c_pyhf / c_ours:.0f}x; "
        f"largest relative difference of the 6 limits {rel:.1e}"
    )
    if not args.pyhf_big:
        print("    (--pyhf-big: time one pyhf fit on the 100-bin window, ~10-20 min)")
        return
    import pyhf

    from zprime.stats.pyhf_engine import pyhf_model

    model, data = pyhf_model(big[0])
    c0 = time.process_time()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        pyhf.infer.mle.fixed_poi_fit(1.0, data, model)
    c_fit = time.process_time() - c0
    # a pyhf hypotest runs 5 fits (data free + fixed, Asimov generation, Asimov free + fixed)
    fits = 5 * n_hyp
    est = c_fit * fits
    print(
        f"    100-bin window ({m0.n_parameters()} parameters): one pyhf fixed-POI fit "
        f"{c_fit:.0f} s CPU -> ~{fits} fits per limit ~ {est / 3600:.1f} h per hypothesis; "
        f"fast {1e3 * t_fast:.1f} ms: ratio ~{est / t_fast:.0f}x (target >= 100x)"
    )


if __name__ == "__main__":
    main()
