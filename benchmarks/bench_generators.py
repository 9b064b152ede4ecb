#!/usr/bin/env python3
"""Equivalent luminosity per core-minute through generate + simulate + preselect, per sample.

For each background sample (zprime's own generators ``tautau``, ``mumu`` and ``eemumu`` of
``zprime.generators`` and their Pythia 8 references ``tautau_pythia``, ``mumu_pythia`` and
``eemumu_pythia``), one
chunk is generated in this process, simulated with the fast detector (``simulation``) and passed
through the preselection (the PRL selection without the Punzi-net), all timed by CPU time (the
per-core figure on a shared machine). The equivalent luminosity of the chunk is
``n_generated / sigma_equivalent_fb`` (the generator's cross section per generated event at unit
density, ``zprime.generators.backgrounds.sample_size``), so the figure is fb^-1 per core-minute.
Also printed:
the events written per generated one, the preselected yield at 79.7 fb^-1 and its statistical
error, and the mean expected events per simulated event after the preselection,
sum(w^2)/sum(w) at the data luminosity (goal: 0.1 with a luminosity factor of 10). The ratio to
the Pythia reference is measured in the same run. A generator's one-off set-up (the vegas
training of ``mumu`` and ``eemumu``, cached per process) is timed separately ("set-up"). For
``eemumu_pythia`` (normalised to its own cross section) the equivalent luminosity is
``n_generated / sigma``.

    python benchmarks/bench_generators.py                # default sizes (a few minutes)
    python benchmarks/bench_generators.py --scale 0.2    # quicker

Issues 12 and 13's goal: >= 100 fb^-1 per core-minute (Pythia: about 0.03 for tau tau, 2 for
mu mu).
"""

from __future__ import annotations

import argparse
import time

import awkward as ak
import numpy as np

from zprime.analyses.invisible_zprime.selection import apply_selection
from zprime.config import default_config
from zprime.detector.simulation import simulate
from zprime.generators import backgrounds as bg

SIZES = {  # generated events (phase-space points) per sample at --scale 1
    "tautau": 4_000_000,
    "tautau_pythia": 3_000,
    "mumu": 4_000_000,
    "mumu_pythia": 300_000,
    "eemumu": 2_000_000,
    "eemumu_pythia": 300_000,
}
PAIRS = (("tautau", "tautau_pythia"), ("mumu", "mumu_pythia"), ("eemumu", "eemumu_pythia"))


def measure(name: str, n: int, cfg) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Generate, simulate and preselect ``n`` events of sample ``name``; CPU times and yields."""
    settings = bg.sample_settings(name, cfg)
    c_setup = time.process_time()
    _, info = bg.sample_size(settings, cfg.luminosity_fb, n)
    setup_s = time.process_time() - c_setup
    if settings.get("luminosity_factor") is not None:  # the target weight of the default run
        settings["target_weight_fb"] = 1.0 / (settings["luminosity_factor"] * cfg.luminosity_fb)
    chunk = bg._resolve(settings)
    c0 = time.process_time()
    res = chunk(settings, n, 12345)
    c1 = time.process_time()
    events = res.events
    reco = simulate(events, "simulation", np.random.default_rng(7), config=cfg)
    c2 = time.process_time()
    mask, _ = apply_selection(
        reco, cfg.selection, luminosity_fb=cfg.luminosity_fb, sample=name, skip=["punzinet"]
    )
    c3 = time.process_time()
    w = ak.to_numpy(reco["weight"])[mask] * cfg.luminosity_fb  # expected events per event
    sigma_eq = info.get("sigma_equivalent_fb") or res.sigma_fb
    lumi = n / float(sigma_eq)
    cpu = c3 - c0
    return {
        "n": n,
        "kept": len(events),
        "lumi_fb": lumi,
        "setup_s": setup_s,
        "gen_s": c1 - c0,
        "sim_s": c2 - c1,
        "sel_s": c3 - c2,
        "fb_per_core_min": lumi / (cpu / 60.0),
        "selected": int(mask.sum()),
        "yield": float(w.sum()),
        "yield_err": float(np.sqrt(np.sum(w**2))),
        "w_mean": float(np.sum(w**2) / w.sum()) if w.size else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="scale the sample sizes")
    parser.add_argument("--samples", nargs="*", default=list(SIZES), help="samples to measure")
    args = parser.parse_args()
    cfg = default_config()
    rows = {}
    for name, n in SIZES.items():
        if name not in args.samples:
            continue
        rows[name] = measure(name, max(1000, int(n * args.scale)), cfg)
        r = rows[name]
        print(
            f"{name:14s} {r['n']:>10,d} generated, {r['kept']:>9,d} written "
            f"({r['lumi_fb']:.3g} fb^-1): set-up {r['setup_s']:.1f} s, generate "
            f"{r['gen_s']:.1f} s, simulate "
            f"{r['sim_s']:.1f} s, preselect {r['sel_s']:.1f} s CPU -> "
            f"{r['fb_per_core_min']:.3g} fb^-1 per core-minute; preselected "
            f"{r['selected']:,d} events = {r['yield']:.4g} +- {r['yield_err']:.2g} at "
            f"{cfg.luminosity_fb} fb^-1, sum(w^2)/sum(w) = {r['w_mean']:.3g}",
            flush=True,
        )
    for ours, ref in PAIRS:
        if ours not in rows or ref not in rows:
            continue
        a, b = rows[ours], rows[ref]
        ratio = a["yield"] / b["yield"]
        err = np.hypot(a["yield_err"] / a["yield"], b["yield_err"] / b["yield"]) * ratio
        print(
            f"{ours}: {a['fb_per_core_min'] / b['fb_per_core_min']:.3g} x the equivalent "
            f"luminosity per core-minute of {ref}; preselected yield ratio "
            f"{ratio:.3f} +- {err:.3f}"
        )


if __name__ == "__main__":
    main()
