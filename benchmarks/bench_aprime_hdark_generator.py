"""Benchmarks of the dark Higgsstrahlung generator (zprime.generators.aprime_hdark).

Prints:
1. unweighted e+e- -> A'(-> mu mu) h' events per second on one core (M_A' = 4, M_h' = 0.5 GeV,
   ISR on): the set-up (ISR quadrature, proposal, pilot run) timed separately, in-memory
   generation, and ``write_aprime_hdark`` to Parquet; then, in the same run, the Z' signal
   generator ``write_signal`` at a comparable setting (M_Z' = 4 GeV, ISR on, same number of
   events, one core) and the ratio;
2. a grid of (M_A', M_h') points of 20k events each, as the analysis needs (time per point,
   unweighting efficiency, overweight events), extrapolated to 300 points;
3. sigma(e+e- -> A' h') x B at eps^2 alpha_D = 1e-8 with and without ISR, the quadrature error,
   and the 2 -> 3 matrix element's Monte Carlo Born integral against the analytic formula.

Run: ``python benchmarks/bench_aprime_hdark_generator.py [--events N] [--quick]``. Other processes
on the machine slow it down: the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from zprime.generators import aprime_hdark as G
from zprime.generators import signal as S
from zprime.io.events import read_metadata
from zprime.physics.dark_higgs import sigma_born_fb


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def bench_events(n: int) -> dict[str, float]:
    """Events per second of both generators, measured in this run (one core)."""
    ma, mh = 4.0, 0.5
    print(f"== unweighted events, M_A' = {ma} GeV, M_h' = {mh} GeV, ISR on, one core ==")
    t0 = time.perf_counter()
    gen = G.AprimeHdarkGenerator(ma, mh)
    t_setup = time.perf_counter() - t0
    gen.generate(10_000, np.random.default_rng(0))  # warm caches
    chunk = 100_000
    n_chunks = max(1, n // chunk)
    t0 = time.perf_counter()
    samples = [gen.generate(chunk, np.random.default_rng(1 + i)) for i in range(n_chunks)]
    dt = time.perf_counter() - t0
    rate_mem = n_chunks * chunk / dt
    eff = np.mean([s.efficiency for s in samples])
    over = np.mean([s.overweight_fraction for s in samples])
    print(f"set-up (ISR quadrature + proposal + {gen.n_pilot} pilot points): {t_setup:.3f} s")
    print(f"generate: {n_chunks} chunks of {chunk}: {dt:.2f} s -> {rate_mem:,.0f} events/s")
    print(f"unweighting efficiency {eff:.3f}, overweight fraction {over:.1e}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        G.write_aprime_hdark(ma, mh, n, Path(tmp), seed=1, executor="serial", progress=False)
        dt_dh = time.perf_counter() - t0
        print(
            f"write_aprime_hdark({n}) incl. set-up and Parquet: {dt_dh:.2f} s -> "
            f"{n / dt_dh:,.0f} events/s"
        )
        t0 = time.perf_counter()
        S.write_signal(ma, n, Path(tmp), seed=1, executor="serial", progress=False)
        dt_z = time.perf_counter() - t0
    print(
        f"write_signal(M_Z' = {ma} GeV, {n}) incl. set-up and Parquet: {dt_z:.2f} s -> "
        f"{n / dt_z:,.0f} events/s"
    )
    print(f"ratio dark Higgsstrahlung / Z' signal (events/s, same run): {dt_z / dt_dh:.1f}")
    print(_load())
    print()
    return {"rate_mem": rate_mem, "rate_write": n / dt_dh, "rate_zprime": n / dt_z}


def bench_grid(n_points: int, n_events: int) -> None:
    """A grid of (M_A', M_h') points as the analysis scans them, one core."""
    print(f"== grid of {n_points} (M_A', M_h') points x {n_events} events, ISR on, one core ==")
    rng = np.random.default_rng(3)
    ma = rng.uniform(0.3, 10.3, n_points)
    mh = rng.uniform(0.0, 1.0, n_points) * np.minimum(ma, 10.5 - ma)
    mh = np.maximum(mh, 1e-3)
    effs, overs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for a, h in zip(ma, mh, strict=True):
            path = G.write_aprime_hdark(
                a, h, n_events, Path(tmp), seed=7, executor="serial", progress=False
            )
            meta = read_metadata(path)
            effs.append(meta["unweighting_efficiency"])
            overs.append(meta["n_overweight"])
            path.unlink()
        dt = time.perf_counter() - t0
    print(
        f"{dt:.1f} s in all, {dt / n_points:.2f} s per point -> "
        f"{n_points * n_events / dt:,.0f} events/s incl. set-up and Parquet"
    )
    print(
        f"unweighting efficiency {min(effs):.3f} .. {max(effs):.3f}, "
        f"overweight events {sum(overs)} in {n_points * n_events}"
    )
    print(f"300 points x {n_events} events: ~{300 * dt / n_points / 60:.1f} core-minutes")
    print(_load())
    print()


def bench_sigma() -> None:
    print("== sigma x B(A' -> mu mu) at eps^2 alpha_D = 1e-8, B = 1, sqrt(s) = 10.583 GeV ==")
    print(
        f"{'M_A':>5s} {'M_h':>6s} {'Born [fb]':>10s} {'ISR [fb]':>10s} {'ISR/Born':>8s} "
        f"{'quad err':>9s} {'MC Born / formula - 1':>22s} {'t_ISR [ms]':>10s}"
    )
    for ma, mh in (
        (0.25, 0.01),
        (1.0, 0.1),
        (2.0, 1.0),
        (4.0, 0.001),
        (4.0, 0.01),
        (4.0, 0.5),
        (4.0, 3.0),
        (6.0, 1.0),
        (8.0, 2.0),
        (9.7, 0.5),
        (10.0, 0.3),
        (10.3, 0.2),
    ):
        born = sigma_born_fb(ma, mh, eps2_alpha_d=1e-8)
        t0 = time.perf_counter()
        isr = G.sigma_fb(ma, mh)
        t_isr = time.perf_counter() - t0
        mc = G.born_cross_section_mc(ma, mh)
        rel = mc.sigma_fb * 1e-8 / born - 1
        print(
            f"{ma:5.2f} {mh:6.3f} {born:10.4g} {isr.sigma_fb * 1e-8:10.4g} "
            f"{isr.sigma_fb * 1e-8 / born:8.3f} {isr.error_fb / isr.sigma_fb:9.1e} "
            f"{rel:+13.1e} +- {mc.error_fb * 1e-8 / born:.0e} {1e3 * t_isr:10.1f}"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--quick", action="store_true", help="a smaller grid, no sigma table")
    args = parser.parse_args()
    print(_load())
    print()
    bench_events(args.events)
    bench_grid(10 if args.quick else 40, 20_000)
    if not args.quick:
        bench_sigma()


if __name__ == "__main__":
    main()
