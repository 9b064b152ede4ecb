"""Seed stability of the Punzi-net: two trainings with different ``punzinet.seed``.

Trains the network twice on the preselected samples of an existing run (the default
configuration's ``selected/presel/``), with ``punzinet.seed`` = SEED_A and SEED_B (the seed sets
the training/validation/test split of the background, the training/validation split of the
signal, the initialisation and the mini-batch order), and prints per simulated mass the signal
efficiency after the network cut (``selection.punzinet_min``) of both, relative to the
preselected sample, and their relative difference |a - b| / ((a + b) / 2); the maximum over the
masses; and the training times. The goal (issue 14) is a relative difference below 10% at every
simulated mass.

The windows use the resolution measured as the train stage does
(``zprime.analyses.invisible_zprime.selecting.stage_train``: ``binning.resolution`` on the signal
selected without the theta_recoil cut, ``selected/presel_notheta/``).

Usage::

    python validation/punzinet_seeds.py RUN_DIR [--seeds 1 2] [--config FILE] [--csv OUT.csv]
        [--set punzinet.KEY=VALUE ...]

``--set`` overrides a ``punzinet`` field (YAML value), e.g. ``--set punzinet.ensemble=3``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from zprime.analyses.invisible_zprime import punzinet
from zprime.analyses.invisible_zprime.binning import resolution_model_from_config
from zprime.analyses.invisible_zprime.templates import SimulatedSignal
from zprime.config import Config, load_config
from zprime.io.rundir import RunDir


def _config(path: str | None, overrides: list[str]) -> Config:
    cfg = load_config(path)
    update = {}
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, field = key.partition(".")
        if section != "punzinet" or not field or not value:
            raise SystemExit(f"--set {item}: expected punzinet.KEY=VALUE")
        update[field] = yaml.safe_load(value)
    net = cfg.punzinet.model_validate({**cfg.punzinet.model_dump(), **update})
    return cfg.model_copy(update={"punzinet": net})


def main(argv: list[str] | None = None) -> int:
    """Train twice, print the per-mass efficiencies and their relative difference."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="run directory with selected/presel/")
    parser.add_argument("--seeds", type=int, nargs=2, default=[1, 2])
    parser.add_argument("--config", default=None, help="configuration file (default: shipped)")
    parser.add_argument("--csv", type=Path, default=None, help="write the table as CSV")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)

    cfg = _config(args.config, args.overrides)
    run = RunDir(args.run)
    presel = run.selected("presel")
    sig_paths = sorted(presel.glob("signal_*.parquet"))
    bkg_paths = [presel / f"{k}.parquet" for k in cfg.backgrounds.default_run]
    bkg_paths = [p for p in bkg_paths if p.is_file()]
    notheta = sorted(run.selected("presel_notheta").glob("signal_*.parquet"))
    if not sig_paths or not bkg_paths or not notheta:
        raise SystemExit(f"{args.run}: no preselected samples under selected/presel*/")
    t0 = time.perf_counter()
    measured = [SimulatedSignal.read(p) for p in notheta]
    resolution = resolution_model_from_config(cfg.binning, {s.mass: s.residuals for s in measured})
    signals, background = punzinet.read_training_files(sig_paths, bkg_paths)
    print(
        f"read {len(signals)} signal samples and {len(background['weight'])} background events "
        f"in {time.perf_counter() - t0:.1f} s; network {cfg.punzinet.hidden_layers}, "
        f"ensemble {cfg.punzinet.ensemble}, cut > {cfg.selection.punzinet_min:g}"
    )
    cut = cfg.selection.punzinet_min
    eff: list[np.ndarray] = []
    for seed in args.seeds:
        net_cfg = cfg.punzinet.model_copy(update={"seed": seed})
        t1 = time.perf_counter()
        model = punzinet.train(
            signals,
            background,
            config=net_cfg,
            luminosity_fb=cfg.luminosity_fb,
            resolution=resolution,
            progress=False,
            cut=cut,
        )
        seconds = time.perf_counter() - t1
        rec = model.record
        # efficiency of the network cut on the whole preselected sample of each mass, with the
        # original weights (what the final selection applies)
        e = []
        for s in signals:
            w = np.asarray(s.events["weight"])
            e.append(float(w[punzinet.predict(model, s.events) > cut].sum() / w.sum()))
        eff.append(np.array(e))
        table = model.fom_table()
        test = [r for r in table.rows if r.sample == "test mass"]
        print(
            f"seed {seed}: {seconds:.1f} s (BCE {rec['seconds_bce']:.1f} s, "
            f"{len(rec['bce_train'])} epochs; Punzi {rec['seconds_punzi']:.1f} s, "
            f"{len(rec['punzi_train'])} epochs, best {rec['punzi_best_epoch']}, "
            f"final lr {rec['punzi_lr'][-1] if rec['punzi_lr'] else float('nan'):.3g}); "
            f"validation loss {min(rec['punzi_val'] or [float('nan')]):.4g} fb; "
            f"test masses: median gain {np.median([r.gain for r in test]):.2f}"
        )
        sys.stdout.flush()
    a, b = eff
    rel = np.abs(a - b) / (0.5 * (a + b))
    masses = [s.mass_gev for s in signals]
    train_masses = set(model.record["train_masses_gev"])
    print()
    sa, sb = args.seeds
    print(f"| M (GeV) | mass | eff. seed {sa} | eff. seed {sb} | rel. diff. |")
    print("| --- | --- | --- | --- | --- |")
    rows = []
    for m, x, y, r in zip(masses, a, b, rel, strict=True):
        kind = "train" if m in train_masses else "test"
        print(f"| {m:g} | {kind} | {x:.4f} | {y:.4f} | {r:.3f} |")
        rows.append({"mass_gev": m, "mass_set": kind, "eff_a": x, "eff_b": y, "rel_diff": r})
    worst = int(np.argmax(rel))
    print(f"\nmax relative difference {rel[worst]:.3f} at M = {masses[worst]:g} GeV (goal < 0.10)")
    if args.csv is not None:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
