"""Benchmark of the Punzi-net training (zprime.analyses.invisible_zprime.punzinet) on a default-size
synthetic problem.

Prints, for the default configuration (``punzinet`` of the shipped config, 1 torch thread):
the numbers of events in the mass windows (only those enter the training), the time of the data
preparation, of the BCE pre-training (per epoch and total), of the Punzi-loss phase (per epoch
and total), the epochs run before early stopping, and the test-part figure of merit with and
without the network cut (mean sensitivity gain).

The problem is the synthetic toy of :func:`zprime.analyses.invisible_zprime.punzinet.toy_samples`
(Gaussian features, signal
peaked in M_recoil^2, background flat over [-1, 81] GeV^2) at the configured signal masses.
``--in-windows`` draws the background M_recoil^2 inside the windows instead: every background
event then enters the training (the worst case for the time per epoch).

Usage: python benchmarks/bench_punzinet.py [--signal-per-mass 10000] [--background 1e6]
       [--in-windows] [--punzi-epochs N] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zprime.analyses.invisible_zprime.punzinet import default_resolution, toy_samples, train
from zprime.config import default_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signal-per-mass", type=float, default=1e4)
    parser.add_argument("--background", type=float, default=1e6)
    parser.add_argument("--in-windows", action="store_true")
    parser.add_argument("--punzi-epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    cfg = default_config()
    net_cfg = cfg.punzinet.model_copy(update={"threads": args.threads})
    if args.punzi_epochs is not None:
        net_cfg = net_cfg.model_copy(update={"punzi_epochs": args.punzi_epochs})
    masses = cfg.signal.masses_gev
    rng = np.random.default_rng(2023)
    t0 = time.perf_counter()
    signals, background = toy_samples(rng, masses, int(args.signal_per_mass), int(args.background))
    if args.in_windows:
        m2 = np.array(masses) ** 2
        half = net_cfg.window_sigmas * default_resolution(m2)
        pick = rng.integers(0, len(masses), len(background["weight"]))
        background["m_recoil2"] = m2[pick] + half[pick] * rng.uniform(-0.999, 0.999, len(pick))
    print(f"toy made in {time.perf_counter() - t0:.1f} s")
    print(
        f"masses {masses} GeV, {int(args.signal_per_mass)} signal events per mass, "
        f"{int(args.background)} background events"
        + (" (all inside the windows)" if args.in_windows else " (flat in M_recoil^2)")
    )
    print(
        f"network {net_cfg.hidden_layers} {net_cfg.activation}, torch threads {net_cfg.threads}, "
        f"BCE <= {net_cfg.bce_epochs} epochs (batch {net_cfg.bce_batch_size}), "
        f"Punzi <= {net_cfg.punzi_epochs} full-batch epochs"
    )
    t1 = time.perf_counter()
    model = train(
        signals, background, config=net_cfg, luminosity_fb=cfg.luminosity_fb, progress=False
    )
    total = time.perf_counter() - t1
    rec = model.record
    n_sig_tr, n_sig_va = sum(rec["n_train_signal"]), sum(rec["n_val_signal"])
    n_bkg_tr, n_bkg_va = rec["n_train_background"], rec["n_val_background"]
    print(
        f"in the training windows: signal {n_sig_tr} train + {n_sig_va} validation, "
        f"background {n_bkg_tr} train + {n_bkg_va} validation; "
        f"{rec['n_test_background']} test background events in all windows"
    )
    n_bce = len(rec["bce_train"])
    n_punzi = len(rec["punzi_train"])
    print(f"preparation           {rec['seconds_prepare']:8.2f} s")
    print(
        f"BCE pre-training      {rec['seconds_bce']:8.2f} s  ({n_bce} epochs, "
        f"{rec['seconds_bce'] / max(n_bce, 1):.3f} s/epoch, best {rec['bce_best_epoch']})"
    )
    print(
        f"Punzi-loss training   {rec['seconds_punzi']:8.2f} s  ({n_punzi} epochs, "
        f"{rec['seconds_per_punzi_epoch']:.3f} s/epoch, best {rec['punzi_best_epoch']})"
    )
    print(f"train() total         {total:8.2f} s")
    table = model.fom_table()
    gains = np.array([r.gain for r in table.rows])
    eff = np.array([r.network_efficiency for r in table.rows])
    print(
        f"test part: mean sensitivity gain {gains.mean():.2f} (range {gains.min():.2f}-"
        f"{gains.max():.2f}), network signal efficiency {eff.mean():.3f}"
    )
    print(table.to_markdown())


if __name__ == "__main__":
    main()
