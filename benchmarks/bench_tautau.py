"""Benchmarks of the tau-tau resonance search (zprime.analyses.tautau_resonance).

Prints:
1. signal generation e+e- -> mu mu X, X -> tau tau (``write_mumu_x_tautau``, ISR on, one
   process) for the three spins at M_X = 6 GeV: events per second, the vegas set-up included;
2. the fast detector simulation and the four-track pre-selection (every candidate) of those
   events: events per second;
3. 90% CL CLs limits of one M_recoil window (24 bins, degree-2 Bernstein background, the
   talk's systematics: 14 parameters): the fast engine (issue 18) against pyhf 0.7.6 (scipy
   optimiser), both on the same workspaces, with the ratio; and the agreement of their limits;
4. a mass-continuum training sample (``mass_hi``, 5-7 GeV) against a single-mass one: events
   per second;
5. toy-based limits of windows with 0, 3 and 9 events (the pipeline's 500 toys at 12 POI values):
   seconds per window, and the limit in signal events next to the asymptotic one.

Run: ``python benchmarks/bench_tautau.py [--quick]``. Other processes on the machine slow it
down: the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

from zprime.analyses.tautau_resonance.fit import window_edges, window_workspace
from zprime.analyses.tautau_resonance.selection import select_file
from zprime.config import load_config
from zprime.detector.simulation import simulate_file
from zprime.generators.x_decays import write_mumu_x_tautau
from zprime.io.events import read_metadata
from zprime.stats import compile_workspace, scan_limits, toy_limits, upper_limit


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min), {os.cpu_count()} CPUs"


def _windows(n: int, seed: int = 7) -> list[dict]:
    """``n`` windows at 4-9 GeV: a Gaussian signal template on an exponential background with
    Poisson data (about 200 events per window)."""
    rng = np.random.default_rng(seed)
    specs = []
    for mass in np.linspace(4.0, 9.0, n):
        sigma = 0.01 + 0.004 * mass
        e = window_edges(float(mass), sigma)
        c = 0.5 * (e[1:] + e[:-1])
        sig = 0.05 * 62.8 * np.diff(norm.cdf(e, mass, sigma))
        bkg = np.exp(-(c - mass) / 0.5)
        bkg *= 200.0 / bkg.sum()
        specs.append(window_workspace(f"m{mass:.3f}", e, rng.poisson(bkg).astype(float), sig))
    return specs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer events and windows")
    args = ap.parse_args()
    n_events = 5_000 if args.quick else 20_000
    n_win, n_pyhf = (20, 2) if args.quick else (100, 4)
    print(_load())
    cfg = load_config(None, preset="tautau_resonance")

    print(f"\n1-2. signal at M_X = 6 GeV, {n_events} events per spin, one process")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        # warm-up (imports, first-call compilation), not timed
        write_mumu_x_tautau(6.0, "vector", 200, out / "warm", seed=1, isr=True)
        for spin in ("vector", "scalar", "pseudoscalar"):
            t0 = time.perf_counter()
            gen = write_mumu_x_tautau(6.0, spin, n_events, out / "gen", seed=3, isr=True)
            t_gen = time.perf_counter() - t0
            t0 = time.perf_counter()
            reco = simulate_file(gen, out / "reco", config=cfg, seed=5, min_tracks=4)
            t_sim = time.perf_counter() - t0
            t0 = time.perf_counter()
            _, flow = select_file(reco, out / "sel" / f"{spin}.parquet", luminosity_fb=1.0)
            t_sel = time.perf_counter() - t0
            kept = int(read_metadata(reco).get("n_input_events", n_events))
            print(
                f"  {spin:<13} generate {n_events / t_gen:8.0f} ev/s ({t_gen:.1f} s with the "
                f"vegas set-up), simulate {kept / t_sim:8.0f} ev/s, select "
                f"{flow.counts[0] / t_sel:8.0f} ev/s; pre-selected {flow.counts[-1]} of "
                f"{n_events}"
            )

    print(f"\n3. window limits (observed + 5 expected, 90% CL CLs): {n_win} windows")
    specs = _windows(n_win)
    t0 = time.perf_counter()
    fast = scan_limits(specs, level=0.10)
    t_fast = (time.perf_counter() - t0) / n_win
    t0 = time.perf_counter()
    ref = [upper_limit(s, level=0.10, engine="pyhf") for s in specs[:n_pyhf]]
    t_pyhf = (time.perf_counter() - t0) / n_pyhf
    diff = max(abs(f.observed / r.observed - 1.0) for f, r in zip(fast[:n_pyhf], ref, strict=True))
    print(
        f"  fast engine {1e3 * t_fast:.1f} ms per window, pyhf {1e3 * t_pyhf:.0f} ms per window "
        f"({n_pyhf} windows): fast / pyhf time = {t_fast / t_pyhf:.4f} "
        f"({t_pyhf / t_fast:.0f}x faster); largest relative difference of the observed limits "
        f"{diff:.1e}; {sum(f.status == 'ok' for f in fast)} of {n_win} ok"
    )

    print(f"\n4. a mass-continuum sample (5-7 GeV) against one mass (6 GeV), {n_events} events")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        write_mumu_x_tautau(6.0, "vector", n_events, out / "one", seed=3, isr=True)
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_mumu_x_tautau(5.0, "vector", n_events, out / "cont", seed=3, isr=True, mass_hi=7.0)
        t_cont = time.perf_counter() - t0
        print(
            f"  one mass {n_events / t_one:8.0f} ev/s, continuum {n_events / t_cont:8.0f} ev/s "
            f"(continuum / one mass time = {t_cont / t_one:.2f})"
        )

    print("\n5. toy-based limits of sparse windows (500 toys x 12 POI values)")
    mass, sigma = 9.5, 0.006
    e = window_edges(mass, sigma)
    s_t = 3.0 * np.diff(norm.cdf(e, mass, sigma))  # 3 signal events per fb in the window
    rng = np.random.default_rng(1)
    for n_obs in (0, 3, 9):
        obs = np.bincount(rng.integers(0, e.size - 1, n_obs), minlength=e.size - 1)
        spec = window_workspace(f"n{n_obs}", e, obs.astype(float), s_t)
        asym = scan_limits([spec], level=0.10)[0]
        t0 = time.perf_counter()
        toys = toy_limits(
            compile_workspace(spec), 500, np.random.default_rng(2), level=0.10, npoints=12
        )
        t_toys = time.perf_counter() - t0
        k = float(s_t.sum())
        print(
            f"  {n_obs} events: toys {t_toys:.1f} s per window; limit {k * toys.observed:.2f} "
            f"signal events (asymptotic {k * asym.observed:.2f}; an empty window's exact "
            "Poisson limit: 2.30)"
        )


if __name__ == "__main__":
    main()
