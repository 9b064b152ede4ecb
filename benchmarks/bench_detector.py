"""Benchmark of the fast detector simulation (zprime.detector.simulation).

Prints
1. the in-memory rate of ``simulate`` (simulation + reconstruction + analysis variables) on one
   core, events/s;
2. for 1e6 and 1e7 events streamed from a Parquet file through ``simulate_file`` (read, simulate,
   write), the wall time, rate and peak resident memory (``ru_maxrss`` of a fresh subprocess per
   size), to show that memory stays flat with the sample size;
3. the signal M_recoil^2 resolution table (full chain) against the PRL's 0.06-0.23 GeV^2.

The synthetic generator-level input is two muons (a random dimuon mass, random directions in the
c.m. frame, boosted to the lab) plus Poisson(1.5) photons, written in chunks.

Usage: python benchmarks/bench_detector.py [--sizes 1e6 1e7] [--batch-size 200000]
       [--no-resolution] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np

from zprime.io.events import make_particles, write_events
from zprime.physics.constants import M_MUON, SQRT_S
from zprime.physics.kinematics import cm_to_lab, four_momentum


def synthetic_chunk(rng: np.random.Generator, n: int, first: int = 0) -> ak.Array:
    """n events: mu+ mu- recoiling against an invisible system, plus Poisson(1.5) photons."""
    m_rec = rng.uniform(0.0, 9.0, n)
    m_mumu = rng.uniform(0.5, SQRT_S - m_rec - 0.2)
    p_star = np.sqrt((SQRT_S**2 - (m_mumu + m_rec) ** 2) * (SQRT_S**2 - (m_mumu - m_rec) ** 2))
    p_star /= 2 * SQRT_S
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pair_e = np.sqrt(m_mumu**2 + p_star**2)
    q = np.sqrt(m_mumu**2 / 4 - M_MUON**2)
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    beta = p_star[:, None] * u / pair_e[:, None]
    g = pair_e / m_mumu
    bv = np.sum(beta * v, 1) * q
    b2 = np.sum(beta**2, 1)
    coef = (g - 1) * bv / np.where(b2 > 0, b2, 1.0)
    mu1 = np.concatenate(
        [
            (g * (m_mumu / 2 + bv))[:, None],
            q[:, None] * v + (coef + g * m_mumu / 2)[:, None] * beta,
        ],
        1,
    )
    mu2 = np.concatenate(
        [
            (g * (m_mumu / 2 - bv))[:, None],
            -q[:, None] * v + (-coef + g * m_mumu / 2)[:, None] * beta,
        ],
        1,
    )
    n_gamma = rng.poisson(1.5, n)
    n_g = int(n_gamma.sum())
    gamma = four_momentum(rng.normal(size=(n_g, 3)) * rng.exponential(0.3, (n_g, 1)), 0.0)
    counts = 2 + n_gamma
    # muons first, then the photons of each event
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    p4 = np.empty((total, 4))
    pdg = np.empty(total, dtype=np.int32)
    p4[offsets[:-1]] = cm_to_lab(mu1)
    p4[offsets[:-1] + 1] = cm_to_lab(mu2)
    pdg[offsets[:-1]] = 13
    pdg[offsets[:-1] + 1] = -13
    is_gamma = np.ones(total, dtype=bool)
    is_gamma[offsets[:-1]] = False
    is_gamma[offsets[:-1] + 1] = False
    p4[is_gamma] = cm_to_lab(gamma)
    pdg[is_gamma] = 22
    return ak.zip(
        {
            "event": np.arange(first, first + n, dtype=np.int64),
            "weight": np.full(n, 1.0e-3),
            "particles": make_particles(pdg, p4, counts),
        },
        depth_limit=1,
    )


def write_input(path: Path, n: int, chunk: int = 500_000, seed: int = 1) -> Path:
    """Write n synthetic events in chunks (memory stays flat)."""
    rng = np.random.default_rng(seed)

    def chunks() -> Iterator[ak.Array]:
        done = 0
        while done < n:
            k = min(chunk, n - done)
            yield synthetic_chunk(rng, k, done)
            done += k

    return write_events(path, chunks(), {"sample": "bench", "n_events": n})


def in_memory_rate(n: int = 1_000_000, batch: int = 200_000) -> tuple[float, float]:
    """Events/s of simulate() on in-memory batches, by wall-clock and by CPU time (one core).

    The CPU-time rate is the per-core figure on a shared machine, where other processes take
    part of the core (both are equal on an idle one).
    """
    from zprime.detector.simulation import simulate

    rng = np.random.default_rng(3)
    batches = [synthetic_chunk(rng, batch, i * batch) for i in range(max(n // batch, 1))]
    simulate(batches[0][:1000], "simulation", np.random.default_rng(0))  # warm up
    t = time.perf_counter()
    c = time.process_time()
    for i, b in enumerate(batches):
        simulate(b, "simulation", np.random.default_rng(i))
    wall = time.perf_counter() - t
    cpu = time.process_time() - c
    total = batch * len(batches)
    return total / wall, total / cpu


def _child(path: str, out_dir: str, batch: int) -> None:
    """Run in a fresh process: stream one file and report time and peak memory as JSON."""
    from zprime.detector.simulation import simulate_file

    t = time.perf_counter()
    c = time.process_time()
    simulate_file(path, out_dir, seed=1, batch_size=batch)
    wall = time.perf_counter() - t
    cpu = time.process_time() - c
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e6, 1e7])
    parser.add_argument("--batch-size", type=int, default=200_000)
    parser.add_argument("--no-resolution", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="keep the files in this folder")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.batch_size)
        return

    wall_rate, cpu_rate = in_memory_rate(batch=args.batch_size)
    print(
        f"simulate (in memory, batch {args.batch_size}): {cpu_rate:,.0f} events/s per core "
        f"(CPU time), {wall_rate:,.0f} events/s wall-clock"
    )

    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        for size in args.sizes:
            n = int(size)
            src = base / f"bench_{n}.parquet"
            t = time.perf_counter()
            write_input(src, n)
            t_in = time.perf_counter() - t
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(src),
                    str(base / "reco"),
                    "--batch-size",
                    str(args.batch_size),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            rep = json.loads(res.stdout.strip().splitlines()[-1])
            out = base / "reco" / src.name
            print(
                f"simulate_file {n:.0e} events: {rep['wall_s']:.1f} s wall, {rep['cpu_s']:.1f} s "
                f"CPU ({n / rep['cpu_s']:,.0f} events/s per CPU-second incl. Parquet read+write), "
                f"peak RSS {rep['peak_rss_mib']:.0f} MiB; input {src.stat().st_size / 2**20:.0f} "
                f"MiB (written in {t_in:.1f} s), output {out.stat().st_size / 2**20:.0f} MiB"
            )
            if args.keep is None:
                src.unlink()
                out.unlink()

    if not args.no_resolution:
        from zprime.detector.simulation import signal_resolution

        prl = {9.0: 0.23, 80.0: 0.06}
        masses = [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, np.sqrt(80.0)]
        print("\nsignal M_recoil^2 resolution (zprime.generators.signal + ISR, then simulation):")
        print("| M_Z' [GeV] | M^2 [GeV^2] | sigma68 [GeV^2] | FWHM/2.355 [GeV^2] | PRL [GeV^2] |")
        print("|---|---|---|---|---|")
        for r in signal_resolution(masses, 60_000):
            ref = prl.get(round(r["m2_gev2"], 3))
            print(
                f"| {r['mass_gev']:.3f} | {r['m2_gev2']:.2f} | {r['sigma68_gev2']:.3f} | "
                f"{r['fwhm_gev2']:.3f} | {'' if ref is None else ref} |"
            )


if __name__ == "__main__":
    main()
