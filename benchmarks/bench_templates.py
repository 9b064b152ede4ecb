"""Benchmark of the template stage (zprime.analyses.invisible_zprime.binning,
zprime.analyses.invisible_zprime.templates).

Prints
1. (``--chain``, default on) the signal M_recoil^2 resolution measured with the full chain
   (zprime.generators.signal with ISR -> zprime.detector.simulation ->
   zprime.analyses.invisible_zprime.selection without the Punzi-net and
   without theta_recoil, re-applied after the move): Gaussian-core width and 68% half-width per
   mass, the fitted model, the hypothesis count for it and for the PRL fallback (PRL: 582), and
   the interpolation closure (held-out masses);
2. the time to build the templates of every window of the full grid (narrow and wide Z') from
   realistic-size synthetic selected samples, and to write them, with the peak memory.

Usage: python benchmarks/bench_templates.py [--no-chain] [--events 20000] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time

import numpy as np

from zprime._util import chunk_rng
from zprime.analyses.invisible_zprime.binning import (
    ResolutionModel,
    ResolutionScale,
    grid_summary,
    hypothesis_grid,
)
from zprime.analyses.invisible_zprime.templates import (
    EventSample,
    SignalModel,
    SimulatedSignal,
    interpolation_closure,
    measured_widths,
    templates_from_config,
    write_templates,
)
from zprime.config import config_from_dict, default_config

CHAIN_MASSES = (
    0.05,
    0.1,
    0.2,
    0.35,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    3.5,
    4.0,
    4.5,
    5.0,
    5.5,
    6.0,
    6.5,
    7.0,
    7.5,
    8.0,
    8.5,
)


def chain_signals(masses, n_events: int, seed: int = 2023) -> list[SimulatedSignal]:
    """Selected signal samples from the full chain (no Punzi-net, no theta_recoil step)."""
    from zprime.analyses.invisible_zprime.selection import apply_selection
    from zprime.detector.simulation import simulate
    from zprime.generators.signal import generate

    cfg = default_config()
    out = []
    for i, mass in enumerate(masses):
        sample = generate(mass, n_events, chunk_rng(seed, 1, i))
        reco = simulate(sample.events, rng=chunk_rng(seed, 2, i))
        mask, _ = apply_selection(reco, cfg.selection, skip=["punzinet", "theta_recoil"])
        out.append(SimulatedSignal.from_events(mass, reco[mask], sample.sigma_fb))
    return out


def report_chain(n_events: int) -> ResolutionModel:
    t0 = time.perf_counter()
    signals = chain_signals(CHAIN_MASSES, n_events)
    print(
        f"\n[1] full-chain signal, {len(signals)} masses x {n_events} events: "
        f"{time.perf_counter() - t0:.1f} s"
    )
    core = measured_widths(signals, "core")
    s68 = measured_widths(signals, "sigma68")
    model = ResolutionModel.fit(
        [r["mass_gev"] for r in core],
        [r["width_gev2"] for r in core],
        [r["error_gev2"] for r in core],
    )
    print(
        f"{'M [GeV]':>8} {'M^2':>7} {'core':>7} {'+-':>6} {'sigma68':>8} {'model':>7} "
        f"{'eff':>6}  (widths in GeV^2; eff without Punzi-net)"
    )
    for s, a, b in zip(signals, core, s68, strict=True):
        print(
            f"{s.mass:8.3f} {s.mass**2:7.3f} {a['width_gev2']:7.4f} {a['error_gev2']:6.4f} "
            f"{b['width_gev2']:8.4f} {model.sigma(s.mass**2):7.4f} {s.efficiency:6.3f}"
        )
    print(
        f"model: degree-4 polynomial in M^(1/2), chi2/ndf = {model.chi2:.1f}/{model.ndf}; "
        f"sigma at 9 and 80 GeV^2: {model.sigma(9.0):.3f}, {model.sigma(80.0):.3f} "
        "(PRL: 0.23 maximum at 9, 0.06 minimum at 80)"
    )
    for name, m in (("measured", model), ("PRL fallback", ResolutionModel.prl())):
        g = grid_summary(hypothesis_grid(ResolutionScale(m), 0.01, 8.5))
        print(
            f"grid 0.01-8.5 GeV, {name:12s}: {g['count']} hypotheses, steps "
            f"{g['min_step_mev']:.1f}-{g['max_step_mev']:.0f} MeV (PRL: 582, 3-202 MeV)"
        )
    sel = default_config().selection
    theta = np.radians([0, 45, 75, 105, 135, 180])
    print("interpolation closure (held out; neighbours interpolate; 20 bins x 5 theta bins):")
    for k in range(2, len(signals) - 1, 3):
        c = interpolation_closure(
            signals[k - 1 : k + 2], model, 1, theta_edges_rad=theta, acceptance=sel
        )
        c1 = interpolation_closure(signals[k - 1 : k + 2], model, 1, acceptance=sel)
        print(
            f"  M = {c['mass']:5.2f} from {signals[k - 1].mass:g}/{signals[k + 1].mass:g}: "
            f"eff ratio {c['eff_ratio']:.3f} (pull {c['eff_pull']:+.1f}), "
            f"1D chi2 {c1['chi2']:.1f}/{c1['ndf']} (p {c1['p_value']:.2f}), "
            f"2D chi2 {c['chi2']:.1f}/{c['ndf']} (p {c['p_value']:.2f}), "
            f"KS p {c['ks_p_value']:.2f}"
        )
    return model


def synthetic_background(
    name: str, n: int, rng: np.random.Generator, xsec_fb: float, slope: float
) -> EventSample:
    m2 = np.concatenate([rng.exponential(slope, n - n // 4) - 0.5, rng.uniform(-0.5, 80, n // 4)])
    bands = rng.random(n) < 0.6
    theta = np.where(
        bands,
        np.where(rng.random(n) < 0.5, rng.normal(0.75, 0.1, n), rng.normal(2.35, 0.1, n)),
        rng.uniform(0.3, 2.8, n),
    )
    return EventSample(name, m2, np.clip(theta, 0.0, math.pi), np.full(n, xsec_fb / n))


def synthetic_signal(mass: float, n: int, rng: np.random.Generator, res: ResolutionModel):
    n_sel = int(0.3 * n)
    m2 = (
        mass**2
        + res.sigma(mass**2) * rng.standard_normal(n_sel)
        + rng.exponential(0.3, n_sel) * (rng.random(n_sel) < 0.2)
    )
    theta = np.clip(rng.normal(1.5, 0.5, n_sel), 0.01, 3.13)
    return SimulatedSignal(mass, m2, theta, np.full(n_sel, 1.0 / n), 1.0, m2_true=m2 - 0.0)


def bench_build(scale: float, model: ResolutionModel) -> None:
    rng = np.random.default_rng(7)
    sizes = {"mumu": 2_000_000, "eemumu": 500_000, "tautau": 200_000, "eeee": 100_000}
    sizes = {k: int(v * scale) for k, v in sizes.items()}
    t0 = time.perf_counter()
    bkgs = {
        "mumu": synthetic_background("mumu", sizes["mumu"], rng, 3000.0, 3.0),
        "eemumu": synthetic_background("eemumu", sizes["eemumu"], rng, 300.0, 20.0),
        "tautau": synthetic_background("tautau", sizes["tautau"], rng, 50.0, 30.0),
        "eeee": synthetic_background("eeee", sizes["eeee"], rng, 20.0, 10.0),
    }
    data = EventSample(
        "data",
        np.concatenate([b.m2[: len(b) // 20] for b in bkgs.values()]),
        np.concatenate([b.theta[: len(b) // 20] for b in bkgs.values()]),
        None,
        is_data=True,
    )
    masses = default_config().signal.masses_gev
    masses = sorted({0.01, 0.2, *masses, 8.5})
    signals = [synthetic_signal(m, 50_000, rng, model) for m in masses]
    print(
        f"\n[2] synthetic selected samples: {sum(len(b) for b in bkgs.values()):,} background "
        f"events in {len(bkgs)} samples, {len(data):,} data events, {len(signals)} signal "
        f"masses x {len(signals[0].m2):,} events; made in {time.perf_counter() - t0:.1f} s"
    )
    cfg = config_from_dict(
        {"templates": {"backgrounds": list(bkgs), "reapply_theta_recoil": False}}
    )
    model_resolution = model
    for wide in (False, True):
        t0 = time.perf_counter()
        tset = templates_from_config(
            cfg, signals, bkgs, data, wide=wide, resolution=model_resolution
        )
        dt = time.perf_counter() - t0
        nb = [w.n_bins for w in tset.windows]
        print(
            f"{'wide' if wide else 'narrow'} Z': {len(tset)} windows ({len(tset.failed)} failed)"
            f", {min(nb)}-{max(nb)} bins each: built in {dt:.2f} s "
            f"({1e3 * dt / max(len(tset), 1):.1f} ms/window)"
        )
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            write_templates(tmp, tset)
            print(f"  written (one JSON per window + index) in {time.perf_counter() - t0:.2f} s")
    # the signal model alone
    sm = SignalModel(signals, model_resolution)
    t0 = time.perf_counter()
    for m in np.linspace(0.02, 8.4, 500):
        sm.events(float(m), float(m * m - 2), float(m * m + 2))
    print(f"signal interpolation: {1e3 * (time.perf_counter() - t0) / 500:.2f} ms/hypothesis")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {rss:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-chain", action="store_true", help="skip the full-chain resolution part")
    ap.add_argument("--events", type=int, default=20_000, help="signal events per mass (chain)")
    ap.add_argument("--scale", type=float, default=1.0, help="scale of the background sizes")
    args = ap.parse_args()
    model = ResolutionModel.prl() if args.no_chain else report_chain(args.events)
    bench_build(args.scale, model)


if __name__ == "__main__":
    main()
