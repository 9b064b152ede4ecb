"""Benchmark of zprime's tree-level QED generators (zprime.generators.qed): speed, efficiency, cross
sections.

Run: ``.venv/bin/python benchmarks/bench_qed.py [--events N] [--quick]``

Prints, per sample (``ee``, ``eegamma``, ``pipi``, default options):

- the one-off vegas adaptation time (cached per process and per option set);
- the generation rate on one core, events/s (phase-space points through the matrix element,
  the cuts, the boost to the lab and the awkward event record; no filter);
- the cross section inside the generation cuts with its Monte Carlo error;
- the weighting efficiency ``(sum w)^2 / (n sum w^2)`` (the fraction of the sample that counts:
  a weighted sample of n events is worth that many unweighted ones);
- the fraction of the cross section that passes the default generator-level track filter
  (2 tracks, pT > 0.3 GeV, 17-150 deg in the lab) and the events needed for 79.7 fb^-1.

Then two variants: ``ee`` with the Belle II Physics Book's 10-170 deg lepton range (four times
the cross section, a quarter of it inside the CDC) and ``pipi`` with photons at all angles.
"""

from __future__ import annotations

import argparse
import time

import awkward as ak
import numpy as np

from zprime.generators import qed

LUMINOSITY_FB = 79.7  # PRL 130, 231801: 79.7 fb^-1
FILTER = {  # the default generator-level filter of zprime.config (CDC acceptance)
    "enabled": True,
    "min_tracks": 2,
    "track_pt_min_gev": 0.3,
    "theta_min_deg": 17.0,
    "theta_max_deg": 150.0,
}


def bench(name: str, chunk, options: dict, n: int) -> None:
    settings = {"options": options}
    t0 = time.perf_counter()
    chunk(settings, 1_000, 1)  # vegas adaptation (cached) + a warm-up
    t_train = time.perf_counter() - t0
    t0 = time.process_time()
    res = chunk(settings, n, 2)
    t_gen = time.process_time() - t0
    w = ak.to_numpy(res.events.weight)
    eff = w.sum() ** 2 / (n * np.sum(w * w))
    filt = chunk({**settings, "filter": FILTER}, n, 2)
    w_f = ak.to_numpy(filt.events.weight)
    frac = w_f.sum() / res.sigma_fb
    n_lumi = res.sigma_fb * LUMINOSITY_FB
    print(
        f"{name:<14} train {t_train:5.2f} s | {n / t_gen:9.0f} ev/s/core | "
        f"sigma {res.sigma_fb / 1e6:10.5f} +- {res.sigma_err_fb / 1e6:.5f} nb | "
        f"weight eff {eff:5.3f} | filter {frac:5.3f} | "
        f"79.7/fb = {n_lumi:.3g} ev (filtered {n_lumi * frac:.3g})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="events per timed chunk")
    parser.add_argument("--quick", action="store_true", help="20k events per chunk")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.events
    print(
        f"zprime.generators.qed generators, {n} phase-space points per chunk, one core (CPU time)"
    )
    bench("ee", qed.ee_chunk, {}, n)
    bench("ee (no ISR)", qed.ee_chunk, {"isr": False}, n)
    bench("eegamma", qed.eegamma_chunk, {}, n)
    bench("pipi", qed.pipi_chunk, {}, n)
    bench("ee 10-170", qed.ee_chunk, {"theta_min_deg": 10.0, "theta_max_deg": 170.0}, n)
    bench(
        "pipi 0-180 g",
        qed.pipi_chunk,
        {"theta_gamma_min_deg": 0.0, "theta_gamma_max_deg": 180.0},
        n,
    )


if __name__ == "__main__":
    main()
