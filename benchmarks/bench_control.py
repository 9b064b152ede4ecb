"""Benchmark of the control-sample measurements on pseudo-data from the ``data`` detector.

Run: ``.venv/bin/python benchmarks/bench_control.py [--quick]``

Generates radiative Bhabha (eegamma), mu mu and tau tau (tau -> e, mu only) events, simulates
them with the ``simulation`` and the ``data`` detector (the same events and random numbers; the
pipeline's default pseudo-data are independent samples with random numbers of their own, like
the ``independent`` mu mu sample below) and runs
``zprime.analyses.invisible_zprime.control.run_control`` with ``data_mode: weighted``. Prints,
next to the truth the data detector was built with:

- the photon-veto inefficiency of the backward barrel (per photon) with the estimator variants:
  no trigger at all (impossible with real data; the reference), the two-track trigger keeping
  every event (the estimator before the fix), the two-track trigger leaving out the events whose
  photon could fire the Bhabha veto (the default) and the reference ECL trigger;
- the resolution scale with common and with independent detector random numbers;
- the trigger efficiency per M_recoil^2 bin in data and simulation and the fitted correction;
- the time of each step (generation, simulation, run_control).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZES = {  # events (full, --quick)
    "eegamma": (4_000_000, 1_000_000),
    "mumu": (2_000_000, 500_000),
    "tautau": (20_000, 5_000),
}
TAU_EMU = [[16, 13, -14], [16, 11, -12]]  # tau -> mu nu nu, e nu nu


def _fmt(v: float, e: float, scale: float = 1.0, digits: int = 3) -> str:
    return f"{scale * v:.{digits}f} +- {scale * e:.{digits}f}"


def main() -> None:
    from zprime.config import config_from_dict

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples")
    args = parser.parse_args()
    idx = 1 if args.quick else 0
    cfg = config_from_dict(
        {
            "control": {"data_mode": "weighted"},
            "backgrounds": {"samples": {"tautau": {"tau_channels": TAU_EMU}}},
        }
    )
    with tempfile.TemporaryDirectory(prefix="bench_control_") as tmp_dir:
        _run(cfg, Path(tmp_dir), idx)


def _run(cfg: Any, tmp: Path, idx: int) -> None:
    from zprime.analyses.invisible_zprime.control import (
        ControlSample,
        measure_photon_veto,
        measure_resolution,
        read_channels,
        run_control,
    )
    from zprime.detector.simulation import simulate_file
    from zprime.generators.backgrounds import generate_sample

    sim_det = cfg.detector.get("simulation")
    data_det = cfg.detector.get("data")
    paths: dict[str, dict[str, Path]] = {"simulation": {}, "data": {}, "independent": {}}
    print(f"{'sample':<9} {'events':>9} {'generate [s]':>13} {'simulate x2 [s]':>16}")
    for i, (name, sizes) in enumerate(SIZES.items()):
        n = sizes[idx]
        t0 = time.perf_counter()
        gen = generate_sample(
            name,
            n,
            tmp / "events",
            config=cfg,
            seed=100 + i,
            executor="serial",
            chunk_size=min(n, 500_000),
            progress=False,
        )
        t1 = time.perf_counter()
        for kind, det in (("simulation", "simulation"), ("data", "data")):
            paths[kind][name] = simulate_file(gen, tmp / kind, detector=det, config=cfg)
        t2 = time.perf_counter()
        if name == "mumu":  # the data detector with its own random numbers
            paths["independent"][name] = simulate_file(
                gen, tmp / "independent", detector="data", seed=cfg.seed + 1, config=cfg
            )
        print(f"{name:<9} {n:>9} {t1 - t0:>13.1f} {t2 - t1:>16.1f}")

    t0 = time.perf_counter()
    result = run_control(paths["simulation"], paths["data"], tmp / "control", cfg, make_plots=False)
    print(f"\nrun_control (no figures): {time.perf_counter() - t0:.1f} s")

    # ---- photon veto
    truth = (
        data_det.ecl.backward_barrel_extra_inefficiency
        - sim_det.ecl.backward_barrel_extra_inefficiency
    )
    sim, _ = read_channels(paths["simulation"], cfg, channels=("ee",))
    dat, _ = read_channels(paths["data"], cfg, channels=("ee",), is_data=True)
    ee = ControlSample("ee", dat["ee"], sim["ee"])
    print(f"\nphoton-veto extra loss per photon, backward barrel (truth {100 * truth:.2f}%):")
    d = ee.data
    th = [t * math.pi / 180 for t in cfg.control.photon_veto.theta_recoil_deg]
    reg = (d.m_recoil2 < 1.0) & (d.theta_recoil >= th[0]) & (d.theta_recoil <= th[1])
    pw, aw = d.w[reg & d.veto].sum(), d.w[reg].sum()
    n_eff = aw**2 / (d.w2[reg]).sum()
    e = pw / aw
    print(
        f"  {'no trigger (reference only)':<46} {_fmt(e, math.sqrt(e * (1 - e) / n_eff), 100)}%"
        f"  (n_eff {n_eff:.0f})"
    )
    for label, changes in (
        ("two-track trigger, every event (before the fix)", {"exclude_recoil_bhabha": False}),
        ("two-track trigger, Bhabha-veto events out (default)", {}),
        ("reference ECL trigger", {"trigger": "reference"}),
    ):
        c = cfg.model_copy(deep=True)
        for k, v in changes.items():
            setattr(c.control.photon_veto, k, v)
        pv = measure_photon_veto(ee, c, [])
        print(
            f"  {label:<46} {_fmt(pv.extra_miss, pv.extra_miss_err, 100)}%  (n_eff {pv.n_data:.0f},"
            f" simulation {100 * pv.eff_sim:.3f}%, left out {100 * pv.excluded[0]:.1f}%)"
        )

    # ---- resolution
    res = result.resolution
    scale_truth = data_det.tracking.resolution_scale / sim_det.tracking.resolution_scale
    mg = ("mumugamma",)
    sim_mg, _ = read_channels({"mumu": paths["simulation"]["mumu"]}, cfg, channels=mg)
    ind_mg, _ = read_channels(
        {"mumu": paths["independent"]["mumu"]}, cfg, channels=mg, is_data=True
    )
    ind = measure_resolution(
        ControlSample("mumugamma", ind_mg["mumugamma"], sim_mg["mumugamma"]), cfg, []
    )
    print(f"\nresolution scale (truth {scale_truth:.3f}):")
    print(
        f"  common random numbers       {_fmt(res.scale, res.scale_err)} (n_eff {res.n_data:.0f})"
    )
    print(
        f"  independent random numbers  {_fmt(ind.scale, ind.scale_err)} (n_eff {ind.n_data:.0f})"
    )
    print(f"  signal shape                {_fmt(res.signal_shape, res.signal_shape_err, 100, 1)}%")

    # ---- trigger
    trig = result.trigger
    print("\ntwo-track trigger efficiency (e mu, ECL-triggered, in the line's acceptance):")
    print(f"  {'M2 bin [GeV2]':<14} {'n data':>7} {'data':>16} {'simulation':>16} {'ratio':>16}")
    for i in np.flatnonzero(trig.used):
        print(
            f"  {trig.edges[i]:>5.1f} - {trig.edges[i + 1]:<5.1f} {trig.n_data[i]:>7.0f} "
            f"{_fmt(trig.eff_data[i], trig.err_data[i]):>16} "
            f"{_fmt(trig.eff_sim[i], trig.err_sim[i]):>16} "
            f"{_fmt(trig.ratio[i], trig.ratio_err[i]):>16}"
        )
    c0, c1 = trig.coefficients[:2]
    err = np.sqrt(np.diag(trig.covariance))
    print(
        f"  correction c(M2) = ({c0:.4f} +- {err[0]:.4f}) + ({c1:.5f} +- {err[1]:.5f}) M2, "
        f"chi2 {trig.chi2:.1f} / {trig.ndof}; configured: data "
        f"{data_det.trigger.two_track_efficiency} linear in q <= M2, simulation "
        f"{sim_det.trigger.two_track_efficiency}"
    )


if __name__ == "__main__":
    main()
