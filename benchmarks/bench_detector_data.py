"""How the "data" detector configuration differs from "simulation" (zprime.detector.simulation).

The pseudo-data are simulated with the ``data`` configuration; the analysis must find the
differences in its control samples, as the PRL does. This script measures them, with the same
generator-level events and the same random numbers for both configurations (so each difference
is the parameters' effect, without the sampling noise of two independent simulations):

1. the signal M_recoil^2 detector resolution (68% half-width of M_recoil^2 - M_recoil^2(true)),
   data / simulation, at several Z' masses [PRL: 8% wider in data];
2. the two-track trigger efficiency of signal events against M_recoil^2, both configurations
   [PRL: 89% -> 93% in data];
3. the signal selection efficiency (all steps but the Punzi-net), data / simulation;
4. with ``--run DIR`` (a pipeline run with ``DIR/events/{mumu,eegamma,tautau}.parquet``):
   the mu mu background in the signal region, the ee control sample below 1 GeV^2 (photon
   veto), the width of the M_recoil^2 peak of the mu mu gamma control sample, and the trigger
   efficiency measured as the PRL does (e mu sample, ECL trigger as reference).

Usage: python benchmarks/bench_detector_data.py [--events 40000] [--run DIR] [--batches 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import awkward as ak
import numpy as np

from zprime.analyses.invisible_zprime.selection import apply_selection
from zprime.config import default_config
from zprime.detector.simulation import (
    configuration_differences,
    get_detector,
    m_recoil2_resolution,
    resolution_preselection,
    simulate,
)
from zprime.generators.signal import generate
from zprime.io.events import iter_events, read_metadata
from zprime.io.rundir import RunDir

CONFIGS = ("simulation", "data")
LUMINOSITY_FB = 79.7  # [PRL]
M2_RANGES = ((-0.5, 9.0), (9.0, 36.0), (36.0, 81.0))  # the PRL's three M_recoil^2 ranges


def _sigma68(x: np.ndarray) -> float:
    lo, hi = np.percentile(x, [15.865, 84.135])
    return float(0.5 * (hi - lo))


def signal_part(n: int) -> None:
    cfg = default_config()
    masses = (0.5, 1.0, 3.0, 5.0, 7.0, 8.0, float(np.sqrt(80.0)))
    print(
        "\n1-3. signal (zprime.generators.signal + zprime.detector.simulation), same events and "
        "random numbers"
    )
    print(
        f"{'M [GeV]':>8} {'M^2':>6} {'sigma68 sim':>11} {'data/sim':>8} {'trg sim':>8} "
        f"{'trg data':>8} {'sel. eff sim':>12} {'data/sim':>8}"
    )
    for i, mass in enumerate(masses):
        events = generate(mass, n, np.random.default_rng(100 + i)).events
        row = {}
        for name in CONFIGS:
            reco = simulate(events, name, np.random.default_rng(200 + i))
            pre = resolution_preselection(reco)
            row[f"res_{name}"] = m_recoil2_resolution(reco, pre)
            # trigger efficiency where its conditions hold in both periods (opening > 90 deg)
            r = reco[pre]
            phi = np.arctan2(ak.to_numpy(r.tracks.py), ak.to_numpy(r.tracks.px))
            dphi = np.abs(np.mod(phi[:, 0] - phi[:, 1] + np.pi, 2 * np.pi) - np.pi)
            row[f"trg_{name}"] = float(np.mean(ak.to_numpy(r.trg_two_track)[dphi > np.pi / 2]))
            mask, _ = apply_selection(reco, cfg.selection, skip=["punzinet"])
            row[f"eff_{name}"] = float(mask.mean())
        print(
            f"{mass:8.3f} {mass**2:6.2f} {row['res_simulation']:11.4f} "
            f"{row['res_data'] / row['res_simulation']:8.4f} {row['trg_simulation']:8.4f} "
            f"{row['trg_data']:8.4f} {row['eff_simulation']:12.4f} "
            f"{row['eff_data'] / row['eff_simulation']:8.4f}"
        )


def _trigger_geometry(reco: ak.Array) -> np.ndarray:
    """Two-track events whose tracks satisfy the two-track trigger's conditions [PRL]: both in
    [37, 120] deg, azimuthal opening above 90 deg (2019) or 30 deg (2020)."""
    out = np.zeros(len(reco), dtype=bool)
    two = ak.to_numpy(ak.num(reco.tracks, axis=1)) == 2
    if not two.any():
        return out
    tr = reco.tracks[two]
    px, py, pz = (ak.to_numpy(tr[f]) for f in ("px", "py", "pz"))
    theta = np.degrees(np.arctan2(np.hypot(px, py), pz))
    phi = np.arctan2(py, px)
    dphi = np.degrees(np.abs(np.mod(phi[:, 0] - phi[:, 1] + np.pi, 2 * np.pi) - np.pi))
    dmin = np.where(ak.to_numpy(reco.period)[two] == 2019, 90.0, 30.0)
    out[two] = np.all((theta >= 37.0) & (theta <= 120.0), axis=1) & (dphi > dmin)
    return out


def _select(path: Path, batches: int, channel: str, skip: list[str]) -> dict[str, dict]:
    cfg = default_config()
    meta = read_metadata(path)
    out: dict[str, dict] = {
        name: {"m2": [], "w": [], "trg": [], "ecl": [], "geo": []} for name in CONFIGS
    }
    n_read = 0
    for i, batch in enumerate(iter_events(path, batch_size=200_000)):
        if i >= batches:
            break
        n_read += len(batch)
        for name in CONFIGS:
            reco = simulate(batch, name, np.random.default_rng(300 + i))
            mask, _ = apply_selection(reco, cfg.selection, channel=channel, skip=skip)
            o = out[name]
            o["m2"].append(ak.to_numpy(reco.m_recoil2)[mask])
            o["w"].append(ak.to_numpy(reco.weight)[mask])
            o["trg"].append(ak.to_numpy(reco.trg_two_track)[mask])
            o["ecl"].append(ak.to_numpy(reco.trg_ecl)[mask])
            o["geo"].append(_trigger_geometry(reco[mask]))
    scale = LUMINOSITY_FB * meta["n_events"] / n_read  # the weights are per full file
    for o in out.values():
        for k in ("m2", "w", "trg", "ecl", "geo"):
            o[k] = np.concatenate(o[k])
        o["w"] = o["w"] * scale
    return out


def background_part(run: Path, batches: int) -> None:
    edges = np.array([-0.5, 1.0, 4.0, 9.0, 36.0, 81.0])
    events = RunDir(run).events  # the run's generated samples (generate stage)
    print(f"\n4. backgrounds from {events} ({batches} x 200k events per sample at most)")
    mumu = _select(events / "mumu.parquet", batches, "mumu", ["punzinet"])
    print(f"mu mu in the signal region (no Punzi-net), events at {LUMINOSITY_FB} fb^-1")
    print(f"  M^2 bins {edges.tolist()}")
    for name in CONFIGS:
        o = mumu[name]
        h = np.histogram(o["m2"], edges, weights=o["w"])[0]
        print(
            f"  {name:10s} {np.array2string(h, precision=0)}  raw {np.histogram(o['m2'], edges)[0]}"
        )
    ee = _select(events / "eegamma.parquet", batches, "ee", ["punzinet"])
    print("ee control sample (radiative Bhabha), M^2 < 1 GeV^2, events at 79.7 fb^-1")
    for name in CONFIGS:
        o = ee[name]
        low = o["m2"] < 1.0
        print(f"  {name:10s} {o['w'][low].sum():10.0f}  raw {int(low.sum())}")
    mmg = _select(events / "mumu.parquet", batches, "mumugamma", ["punzinet"])
    print("mu mu gamma control sample: width of the M_recoil^2 peak, data / simulation")
    for lo, hi in ((-0.5, 0.5), (-1.0, 1.0), (-2.0, 2.0)):
        w = []
        for name in CONFIGS:
            m2 = mmg[name]["m2"]
            w.append(_sigma68(m2[(m2 > lo) & (m2 < hi)]))
        print(
            f"  68% half-width in [{lo}, {hi}] GeV^2: {w[0]:.4f} -> {w[1]:.4f}, {w[1] / w[0]:.4f}"
        )
    emu = _select(events / "tautau.parquet", 10**6, "emu", ["trigger", "punzinet"])
    print(
        "two-track trigger efficiency in the e mu sample, ECL trigger as reference, tracks "
        "inside the trigger's polar-angle and opening-angle conditions"
    )
    for lo, hi in M2_RANGES:
        cells = []
        for name in CONFIGS:
            o = emu[name]
            ref = o["ecl"] & o["geo"] & (o["m2"] >= lo) & (o["m2"] < hi)
            k, n = int(o["trg"][ref].sum()), int(ref.sum())
            cells.append(f"{name} {k / max(n, 1):.4f} ({n} events)")
        print(f"  M^2 in [{lo}, {hi}]: " + ", ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000, help="signal events per mass")
    parser.add_argument("--run", type=Path, default=None, help="pipeline run directory")
    parser.add_argument("--batches", type=int, default=4, help="200k-event batches per sample")
    args = parser.parse_args()
    t0 = time.perf_counter()
    sim, data = get_detector("simulation")[1], get_detector("data")[1]
    print("data - simulation differences (default configuration):")
    for key, (a, b) in configuration_differences(sim, data).items():
        print(f"  {key}: {a} -> {b}")
    signal_part(args.events)
    if args.run is not None:
        background_part(args.run, args.batches)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
