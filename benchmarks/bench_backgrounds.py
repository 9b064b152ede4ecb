"""Benchmark of the background generators: rate per core and memory of a streamed sample.

Run: ``.venv/bin/python benchmarks/bench_backgrounds.py [--quick]``

Prints, per sample, the generation rate of one chunk on one core (Pythia initialisation,
generation, conversion to the event schema and the generator-level filter included), the filter
efficiency, the cross section after the filter, and the events and CPU time needed to match the
PRL's 79.7 fb^-1. Then it writes a streamed mumu sample of two sizes in fresh processes and
prints their peak resident memory (``resource.getrusage``), which should not grow with the size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import awkward as ak

LUMINOSITY_FB = 79.7  # PRL 130, 231801: 79.7 fb^-1

# events per timed chunk (full run / --quick)
SIZES = {  # the Pythia 8 samples (zprime's own generators: bench_generators.py)
    "mumu_pythia": (200_000, 50_000),
    "tautau_pythia": (3_000, 500),
    "eemumu_pythia": (500_000, 100_000),
    "eeee_pythia": (500_000, 100_000),
}


def bench_rates(quick: bool) -> None:
    from zprime.generators.backgrounds import chunk, describe, sample_settings

    print(
        f"{'sample':<14} {'events':>8} {'ev/s/core':>10} {'kept':>7} {'sigma_gen [nb]':>16} "
        f"{'sigma_norm [nb]':>15} {'sigma_filt [nb]':>15} {'N(79.7/fb)':>11} {'CPU h':>7}"
    )
    for name, (n_full, n_quick) in SIZES.items():
        n = n_quick if quick else n_full
        settings = sample_settings(name)
        br = describe(settings)["br_weight"]
        t0 = time.process_time()
        res = chunk(settings, n, 12345)
        cpu = time.process_time() - t0
        rate = n / cpu
        kept = len(res.events) / n
        sigma_filt = float(ak.sum(res.events.weight))
        if settings["normalisation"] == "reference":
            sigma_norm = settings["xsec_ref_fb"] * br
        else:
            sigma_norm = res.sigma_fb * br
        n_lumi = LUMINOSITY_FB * sigma_norm
        print(
            f"{name:<14} {n:>8} {rate:>10.0f} {kept:>7.3f} "
            f"{res.sigma_fb / 1e6:>9.4f}+-{res.sigma_err_fb / 1e6:<6.4f} {sigma_norm / 1e6:>15.4f} "
            f"{sigma_filt / 1e6:>15.4f} {n_lumi:>11.3g} {n_lumi / rate / 3600:>7.2f}"
        )


def stream(n_events: int, chunk_size: int) -> None:
    """Child mode: write a streamed mumu sample serially, print peak memory as JSON."""
    from zprime.generators.backgrounds import generate_sample

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_sample(
            "mumu", n_events, tmp, seed=1, chunk_size=chunk_size, executor="serial", progress=False
        )
        wall = time.perf_counter() - t0
    print(json.dumps({"n": n_events, "wall_s": wall, "peak_mib": _peak_mib()}))


def _peak_mib() -> float:
    """Peak resident memory of this process in MiB.

    ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, unless Linux's ``VmHWM`` is available: Linux
    keeps ru_maxrss across ``execve``, so a child started by a large parent would report the
    parent's peak; VmHWM starts afresh with the new program.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_memory(quick: bool) -> None:
    chunk_size = 50_000 if quick else 250_000
    sizes = (2 * chunk_size, 8 * chunk_size)
    print(f"\nstreamed mumu sample, serial, chunk size {chunk_size}:")
    for n in sizes:
        out = (
            subprocess.run(
                [sys.executable, __file__, "--stream", str(n), "--chunk", str(chunk_size)],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        rec = json.loads(out)
        print(
            f"  {rec['n']:>9} events: {rec['wall_s']:6.1f} s wall, "
            f"{rec['n'] / rec['wall_s']:8.0f} ev/s, peak RSS {rec['peak_mib']:7.1f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples")
    parser.add_argument("--stream", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=100_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream:
        stream(args.stream, args.chunk)
        return
    bench_rates(args.quick)
    bench_memory(args.quick)


if __name__ == "__main__":
    main()
