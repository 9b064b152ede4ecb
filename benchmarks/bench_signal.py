"""Benchmarks of the e+e- -> mu+ mu- Z' signal generator (zprime.generators.signal).

Prints:
1. unweighted signal events per second on one core (M = 1 GeV, ISR on), with the one-off vegas
   adaptation + pilot run timed separately, and the same through ``write_signal`` (Parquet);
2. unweighting efficiency and overweight fraction at several masses;
3. the time for the whole cross-section table (config grid) on 2 worker processes;
4. sigma(g' = 1) at M = 0.1, 1, 2, 4, 6, 8 GeV with and without ISR (alpha = 1/132.507), and
   with alpha(0) for comparison.

Run: ``python benchmarks/bench_signal.py [--quick]``. Other processes on the machine slow it
down: the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from zprime.generators import signal as S
from zprime.physics.constants import ALPHA_0


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def bench_events(n: int) -> None:
    print("== unweighted events, M = 1 GeV, ISR on, one core ==")
    t0 = time.perf_counter()
    gen = S.SignalGenerator(1.0, isr=True)
    t_setup = time.perf_counter() - t0
    gen.generate(10_000, np.random.default_rng(0))  # warm caches
    chunk = 100_000
    n_chunks = max(1, n // chunk)
    t0 = time.perf_counter()
    samples = [gen.generate(chunk, np.random.default_rng(1 + i)) for i in range(n_chunks)]
    dt = time.perf_counter() - t0
    n_done = n_chunks * chunk
    eff = np.mean([s.efficiency for s in samples])
    over = np.mean([s.overweight_fraction for s in samples])
    print(f"setup (vegas adaptation + integration + {gen.n_pilot} pilot points): {t_setup:.2f} s")
    print(
        f"generate: {n_chunks} chunks of {chunk}: {dt:.2f} s -> {n_done / dt:,.0f} events/s "
        "(lab-frame awkward arrays in memory)"
    )
    t0 = time.perf_counter()
    gen.generate(n_done, np.random.default_rng(99))
    dt1 = time.perf_counter() - t0
    print(f"generate: one chunk of {n_done}: {dt1:.2f} s -> {n_done / dt1:,.0f} events/s")
    print(f"efficiency {eff:.3f}, overweight fraction {over:.1e}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = S.write_signal(1.0, n, Path(tmp), seed=1, executor="serial", progress=False)
        dt = time.perf_counter() - t0
        size = path.stat().st_size / 1e6
    print(
        f"write_signal({n}) incl. setup and Parquet: {dt:.2f} s -> {n / dt:,.0f} events/s "
        f"({size:.1f} MB)"
    )
    print(_load())
    print()


def bench_efficiency() -> None:
    print("== unweighting (pilot 400k points, then 200k events) ==")
    print(f"{'M [GeV]':>8s} {'ISR':>4s} {'efficiency':>10s} {'overweight':>10s} {'events/s':>10s}")
    for mass in (0.01, 0.1, 1.0, 4.0, 8.0):
        for isr in (True, False):
            gen = S.SignalGenerator(mass, isr=isr)
            t0 = time.perf_counter()
            s = gen.generate(200_000, np.random.default_rng(2))
            dt = time.perf_counter() - t0
            print(
                f"{mass:8.2f} {'on' if isr else 'off':>4s} {s.efficiency:10.3f} "
                f"{s.overweight_fraction:10.1e} {2e5 / dt:10,.0f}"
            )
    gen = S.SignalGenerator(2.0, width=0.2)
    s = gen.generate(200_000, np.random.default_rng(3))
    print(
        f"M = 2 GeV, Gamma = 0.2 GeV, ISR on: efficiency {s.efficiency:.3f}, "
        f"overweight {s.overweight_fraction:.1e}"
    )
    print()


def bench_table(workers: int) -> None:
    print(f"== whole cross-section table, {workers} worker processes ==")
    t0 = time.perf_counter()
    table = S.xsec_table(workers=workers, progress=False)
    dt = time.perf_counter() - t0
    rel = np.concatenate([table.error_isr / table.sigma_isr, table.error_noisr / table.sigma_noisr])
    print(
        f"{len(table.mass_gev)} masses x (ISR, no ISR): {dt:.1f} s; "
        f"relative MC error max {rel.max():.2e}, median {np.median(rel):.2e} (target 5e-3)"
    )
    shipped = S.load_xsec_table()
    same = np.allclose(shipped.sigma_isr, table.sigma_isr, rtol=1e-6)
    print(f"identical to the shipped table (same seed): {same}")
    print(_load())
    print()


def bench_sigma() -> None:
    print("== sigma(e+e- -> mu+ mu- Z') at g' = 1, sqrt(s) = 10.583 GeV ==")
    print(
        f"{'M [GeV]':>8s} {'ISR, 1/132.507 [fb]':>24s} {'no ISR, 1/132.507 [fb]':>24s} "
        f"{'ISR, alpha(0) [fb]':>22s}"
    )
    for mass in (0.1, 1.0, 2.0, 4.0, 6.0, 8.0):
        on = S.cross_section(mass, isr=True)
        off = S.cross_section(mass, isr=False)
        a0 = S.cross_section(mass, isr=True, alpha=ALPHA_0)
        print(
            f"{mass:8.2f} {on.sigma_fb:14.6g} +- {on.error_fb:<7.2g} "
            f"{off.sigma_fb:14.6g} +- {off.error_fb:<7.2g} "
            f"{a0.sigma_fb:12.6g} +- {a0.error_fb:<7.2g}"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="skip the table and efficiencies")
    args = parser.parse_args()
    print(_load())
    print()
    bench_events(args.events)
    bench_sigma()
    if not args.quick:
        bench_efficiency()
        bench_table(2)


if __name__ == "__main__":
    main()
