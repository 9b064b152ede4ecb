#!/usr/bin/env python3
"""Background-only pseudo-data sets of a finished run: scan significances, GoF uniformity, pulls.

Issue 14, item 3. For ``--sets`` pseudo-data sets made like the run's own pseudo-data
(``zprime.stats.pseudodata``: generated with the data seeds, seen by the "data" detector, selected
like the simulation), this script measures

(a) the largest local significance of each set's narrow mass scan and its global significance
    (Gross-Vitells, as ``significance_narrow.json`` of a run);
(b) the uniformity of the goodness-of-fit p-values over the scan: a Kolmogorov-Smirnov test
    against the uniform distribution per set and pooled over the sets, once over all windows
    and once over a subset of windows whose M_recoil^2 ranges do not overlap (neighbouring
    windows share events, so the p-values of all windows are correlated and the KS p-value of
    all windows is too small a sample size's answer: only the disjoint subset gives a valid
    KS p-value);
(c) the recovery of an injected signal: at a few simulated masses a signal with
    ``--inject-factor`` times the run's median expected limit is added to each set (a signal
    sample generated and simulated as the run's own injected signal would be), the window
    nearest the mass is fitted, and the pull ``(mu_hat - mu_inj) / sigma_mu`` is reported with
    sigma_mu from the profiled Hessian and from the profile likelihood (``-2 Delta log L = 1``,
    the side towards mu_inj).

Making 20 independent pseudo-data samples is too costly (one generation of the mu mu, tau tau
and e e mu mu samples at 10x the luminosity takes ~10 CPU-minutes each), so the sets are made
from one **pool**:

1. the samples that survive the final selection (those with events in the run's final
   selection, ``selection/background_composition_final.csv``, or in its pseudo-data,
   ``data/pseudo_data_samples.json``) are generated once, full size (not unweighted), with the
   run's data seeds (``zprime.pipeline.samples.data_seed`` and ``backgrounds.sample_seed``: the
   very events from which the run unweighted its own pseudo-data), into ``--cache``;
2. set k takes each pool event ``event_counts(L w)`` times (floor + Bernoulli, seeded by k),
   simulates the kept events with the data detector and a detector seed of its own, selects
   them with the run's selection and Punzi-net, builds the narrow templates with the set as the
   observed data (``invisible_zprime.observed.stage_template`` on a ``StageContext`` whose
   outputs are the run's stage outputs, read from ``stages/<stage>.json``, so the control-stage
   corrections are the run's) and runs the narrow fit scan
   (``invisible_zprime.fitting._fit_scan``);
3. the limitation is measured: events that are drawn in several sets are shared, hence
   correlated. Most pool events carry ``L w = 0.1`` (samples at 10x the luminosity) and are in
   a given set with probability 0.1, but the pool also holds events with ``L w >= 1`` (mu mu
   events with a detected photon kept at 1/10 and weighted up, tau tau decay modes sampled
   rarely, e e mu mu in steep corners of phase space) that are in *every* set: such an event
   passes in several sets whenever the detector lets it pass more than rarely. Per M_recoil^2
   range the script reports the fraction of each set's events that come from ``L w >= 1`` pool
   events passing in two or more sets, the fraction of all shared events, and the mean pairwise
   overlap of two sets (the correlation coefficient of their counts).

Outputs under ``--out``: ``sets.csv`` (one row per set), ``pulls.csv``, ``sharing.csv``,
``gof_pvalues.csv`` (every window of every set), ``summary.md`` and ``figures/study.png|pdf``.
Every set is cached under ``--work`` (``set_NN/result.json``): an interrupted study resumes.

    python validation/pseudo_data_study.py /tmp/run14 --sets 20 \\
        --out validation/out/pseudo_data_study

``--pool-fraction f < 1`` (development) generates f of the pool's events with the same weight
structure; every set then stands for ``f L`` (its events are thinned with ``f L w``, so the
sharing pattern is that of the full study) while the templates stay at ``L``: the fit's numbers
are not physics results.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from scipy import optimize
from scipy import stats as sps

from zprime._util import atomic_path, write_json_atomic
from zprime.analyses.base import GenerateOutput, SimulateOutput, StageContext
from zprime.analyses.invisible_zprime import punzinet
from zprime.analyses.invisible_zprime.fitting import _fit_scan
from zprime.analyses.invisible_zprime.observables import PSEUDO_DATA_COLUMNS
from zprime.analyses.invisible_zprime.observed import stage_template
from zprime.analyses.invisible_zprime.outputs import (
    ControlOutput,
    FitOutput,
    SelectOutput,
    TemplateOutput,
    TrainOutput,
)
from zprime.analyses.invisible_zprime.selection import select_file
from zprime.config import Config, default_config, load_config
from zprime.detector.simulation import simulate_file
from zprime.io.events import read_events, read_metadata, transform_file
from zprime.io.rundir import RunDir, StageOutput, from_manifest
from zprime.pipeline import samples as engine
from zprime.pipeline.cache import GENERATION_CODE, SIMULATION_CODE, cached_file, code_digest
from zprime.stats import pseudodata

STUDY_KEY = 14
"""Key of this study's random streams: ``SeedSequence([data seed, 14, set, purpose, ...])``."""
THIN, DETECTOR, INJECT = 0, 1, 2
"""Purposes of the per-set random streams."""
M2_RANGES: tuple[tuple[float, float], ...] = ((-0.5, 1.0), (1.0, 9.0), (9.0, 36.0), (36.0, 81.0))
"""M_recoil^2 ranges (GeV^2) of the sharing measurement."""
HEAVY = 1.0 - 1e-6
"""``L w`` from which a pool event is in every set (1 within rounding: ``0.1 * 10`` etc.)."""
DEFAULT_MASSES = (0.5, 2.0, 4.0, 6.0, 8.0)
STAGES: dict[str, type[StageOutput]] = {
    "generate": GenerateOutput,
    "simulate": SimulateOutput,
    "select": SelectOutput,
    "train": TrainOutput,
    "control": ControlOutput,
    "template": TemplateOutput,
    "fit": FitOutput,
}
"""The stages whose records the study reads, with their output types."""


# ----------------------------------------------------------------------------- the run


def run_data_seed(cfg: Config) -> int:
    """The master seed of the run's pseudo-data (``zprime.pipeline.samples.data_seed``)."""
    return engine.data_seed(cfg.seed, cfg.pseudo_data.seed_offset)


@dataclass
class RunInputs:
    """What the study takes from a finished run."""

    run_dir: Path
    config: Config
    """The run's configuration."""
    config_source: str
    outputs: dict[str, StageOutput]
    """Stage name -> its output, read from ``stages/<name>.json``."""
    pool_samples: list[str]
    composition: dict[str, dict[str, float]]
    """Sample -> {"simulation": expected events after the final selection, "pseudo_data":
    events in the run's pseudo-data (NaN where unknown)}."""
    expected_limits: list[tuple[float, float]]
    """(mass, median expected limit in fb) of the run's narrow scan."""
    notes: list[str] = field(default_factory=list)


def _read_stage(path: Path, cls: type[StageOutput], run_dir: Path) -> StageOutput:
    """The output recorded in a stage record (``zprime.io.rundir.to_manifest`` form)."""
    raw = json.loads(path.read_text())["outputs"]
    # records of older runs store plain path strings ({"$path": ...} since the typed outputs)
    if "$path" not in json.dumps(raw):
        raise SystemExit(f"{path}: a record of an older zprime (no typed outputs): run it again")
    try:
        return from_manifest(cls, raw, run_dir)
    except (KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a {cls.__name__} record ({err}): run it again") from err


def _stage_outputs(
    run_dir: Path, notes: list[str], *, allow_foreign: bool = False
) -> dict[str, StageOutput]:
    outputs: dict[str, StageOutput] = {}
    stamps: list[tuple[str, float]] = []
    rundir = RunDir(run_dir)
    for name, cls in STAGES.items():
        path = rundir.stage_record(name)
        if path.is_file():
            outputs[name] = _read_stage(path, cls, run_dir)
            stamps.append((name, path.stat().st_mtime))
    missing = [s for s in ("simulate", "train", "control", "fit") if s not in outputs]
    if missing:
        raise SystemExit(f"{run_dir}: stage '{missing[0]}' has not run (stages/*.json)")
    # the records store paths relative to the run directory; one outside it stays absolute (a
    # user's data file, or a record written for another directory)
    foreign = sorted(
        {
            name
            for name, out in outputs.items()
            for path in _paths(out)
            if path.is_absolute() and not path.is_relative_to(run_dir)
        }
    )
    if foreign:
        msg = f"stages {', '.join(foreign)} record files outside {run_dir}"
        if not allow_foreign:
            raise SystemExit(
                f"{msg} (a user's data file, or records written for another directory); pass "
                "--allow-foreign-paths to use them"
            )
        notes.append(msg)
    late = [a for (a, ta), (_, tb) in itertools.pairwise(stamps) if ta > tb]
    if late:
        notes.append(
            f"stages {', '.join(late)} were recorded after the stage that follows them: check "
            "that the run is complete"
        )
    return outputs


def _paths(node: Any) -> list[Path]:
    """Every path in a stage's output (its fields, nested dicts and lists)."""
    if isinstance(node, StageOutput):
        return [p for f in dataclasses.fields(node) for p in _paths(getattr(node, f.name))]
    if isinstance(node, dict):
        return [p for v in node.values() for p in _paths(v)]
    if isinstance(node, list | tuple):
        return [p for v in node for p in _paths(v)]
    return [node] if isinstance(node, Path) else []


def _run_config(
    run_dir: Path, config_path: Path | None, notes: list[str]
) -> tuple[Config, str, dict[str, Any]]:
    """The run's configuration: ``--config`` if given, else the one recorded in
    ``provenance.json``, else (an older run whose configuration the current code no longer
    reads) the built-in default; the fields the pseudo-data depend on are compared with the
    recorded ones."""
    prov = run_dir / "provenance.json"
    recorded: dict[str, Any] = json.loads(prov.read_text())["config"] if prov.is_file() else {}
    if config_path is not None:
        return load_config(config_path), str(config_path), recorded
    if recorded:
        try:
            return Config.model_validate(recorded), f"{prov}", recorded
        except ValidationError as err:
            notes.append(
                f"{prov}: the recorded configuration does not validate with the current code "
                f"({err.error_count()} errors): the built-in default is used"
            )
    return default_config(), "built-in default", recorded


def _check_config(
    cfg: Config, recorded: dict[str, Any], pool: Sequence[str], notes: list[str]
) -> None:
    """Stop if the seeds or the luminosity differ from the run's; note other differences."""
    if not recorded:
        notes.append("the run has no provenance.json: the configuration could not be compared")
        return
    mine = cfg.to_dict()

    def get(d: dict[str, Any], key: str) -> Any:
        for part in key.split("."):
            d = d.get(part, {}) if isinstance(d, dict) else {}
        return d

    for key in ("seed", "luminosity_fb", "pseudo_data.seed_offset"):
        if get(mine, key) != get(recorded, key):
            raise SystemExit(
                f"configuration: {key} = {get(mine, key)!r}, the run had {get(recorded, key)!r}"
            )
    keys = ["control.data_detector", "selection", "signal.events_per_mass"]
    keys += [f"backgrounds.samples.{n}" for n in pool]
    for key in keys:
        if get(mine, key) != get(recorded, key):
            notes.append(f"configuration: {key} differs from the run's (provenance.json)")


def _composition(run_dir: Path, outputs: dict[str, StageOutput]) -> dict[str, dict[str, float]]:
    train = outputs["train"]
    assert isinstance(train, TrainOutput)
    names = list(train.backgrounds)
    comp = {n: {"simulation": math.nan, "pseudo_data": math.nan} for n in names}
    path = run_dir / "selection" / "background_composition_final.csv"
    if path.is_file():
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        for n in names:
            comp[n]["simulation"] = sum(float(r.get(n, 0.0) or 0.0) for r in rows)
    path = run_dir / "data" / "pseudo_data_samples.json"
    if path.is_file():
        samples = json.loads(path.read_text()).get("samples", {})
        for n in names:
            if n in samples:
                comp[n]["pseudo_data"] = float(samples[n].get("events", 0.0))
    return comp


def _expected_limits(run_dir: Path, outputs: dict[str, StageOutput]) -> list[tuple[float, float]]:
    fit = outputs["fit"]
    assert isinstance(fit, FitOutput)
    path = fit.limits.get("narrow")
    if path is None or not path.is_file():
        path = RunDir(run_dir).scan_limits("narrow")
    with path.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "ok"]
    return [(float(r["mass_gev"]), float(r["expected_median_fb"])) for r in rows]


def load_run(
    run_dir: Path,
    config_path: Path | None,
    samples: Sequence[str] | None,
    *,
    allow_foreign: bool = False,
) -> RunInputs:
    """Read a finished run's configuration, stage outputs, composition and expected limits.

    Parameters
    ----------
    run_dir
        The run directory (read only).
    config_path
        Its configuration file, if it was not the one recorded in ``provenance.json``.
    samples
        The pool's samples; ``None``: those with events after the run's final selection.
    allow_foreign
        Accept stage records that name files outside ``run_dir`` (recorded as absolute paths;
        else an error).

    Returns
    -------
    RunInputs
        The inputs of the study.
    """
    notes: list[str] = []
    outputs = _stage_outputs(run_dir, notes, allow_foreign=allow_foreign)
    comp = _composition(run_dir, outputs)
    if samples:
        pool = list(samples)
    else:
        pool = [
            n
            for n, c in comp.items()
            if (np.isfinite(c["simulation"]) and c["simulation"] > 0)
            or (np.isfinite(c["pseudo_data"]) and c["pseudo_data"] > 0)
        ]
    if not pool:
        raise SystemExit(f"{run_dir}: no background sample survives the final selection")
    cfg, source, recorded = _run_config(run_dir, config_path, notes)
    _check_config(cfg, recorded, pool, notes)
    return RunInputs(
        run_dir, cfg, source, outputs, pool, comp, _expected_limits(run_dir, outputs), notes
    )


def study_config(cfg: Config) -> Config:
    """The run's configuration for the sets' fits: narrow windows only, asymptotic CLs limits
    and no toys (the expected bands do not depend on the data and are not studied here), no
    injected signal in the template stage (the study injects its own)."""
    d = cfg.to_dict()
    d["fit"].update(wide=False, toys=0, limits="cls")
    d["pseudo_data"].update(source="data_detector", inject_mass_gev=None, inject_xsec_fb=0.0)
    return Config.model_validate(d)


# ----------------------------------------------------------------------------- the pool


def pool_config(cfg: Config, samples: Sequence[str], fraction: float) -> Config:
    """``cfg`` generating only ``samples``, each at ``fraction`` of its size with the same
    weight structure (the luminosity factor scaled, or the number of events)."""
    d = cfg.to_dict()
    d["backgrounds"]["default_run"] = list(samples)
    if fraction != 1.0:
        for name in samples:
            s = d["backgrounds"]["samples"][name]
            if s.get("luminosity_factor") is not None:
                s["luminosity_factor"] = float(s["luminosity_factor"]) * fraction
            else:
                s["events"] = max(1, round(int(s["events"]) * fraction))
    return Config.model_validate(d)


def make_pool(
    run: RunInputs, cache: Path, fraction: float, console: Console, workers: int
) -> dict[str, Path]:
    """Generate (or reuse) the pool: the run's pseudo-data samples before unweighting.

    ``zprime.pipeline.samples.generate_backgrounds`` with the run's data seed and no
    unweighting: the same call as the run's generate stage makes before it unweights (the files
    are cached by their parameters in ``cache/pool_L<L>_f<fraction>/stages/files``).
    """
    cfg = pool_config(run.config, run.pool_samples, fraction)
    # the files' stamps record the seeds and the samples' settings, not the luminosity that
    # sizes a sample with a luminosity factor: it names the folder
    out = cache / f"pool_L{cfg.luminosity_fb:g}_f{fraction:g}"
    ctx = StageContext(cfg, RunDir(out), console, workers=workers, progress=console.is_terminal)
    paths = engine.generate_backgrounds(
        ctx, out, "pool", run_data_seed(run.config), {}, group="pool"
    )
    return {name: Path(p) for name, p in paths.items()}


def check_pool(run: RunInputs, pool: dict[str, Path], fraction: float) -> list[str]:
    """With the full pool: every event of the run's unweighted pseudo-data sample must be a
    pool event with the same weight or 1/L (the run generated the same events)."""
    if fraction != 1.0:
        return ["pool check skipped (--pool-fraction < 1 generates other events)"]
    lines = []
    gen = run.outputs.get("generate")
    data = gen.data if isinstance(gen, GenerateOutput) else {}
    for name, path in pool.items():
        src = data.get(name)
        if src is None or not src.is_file():
            lines.append(f"{name}: the run's unweighted pseudo-data sample is not on disk")
            continue
        a = read_events(src, ["event", "weight"])
        b = read_events(path, ["event", "weight"])
        order = np.argsort(np.asarray(b["event"]), kind="stable")
        ev_pool, w_all = np.asarray(b["event"])[order], np.asarray(b["weight"])[order]
        ev_run = np.asarray(a["event"])
        idx = np.minimum(np.searchsorted(ev_pool, ev_run), ev_pool.size - 1)
        ok = ev_pool[idx] == ev_run
        w_pool = w_all[idx]
        w_run = np.asarray(a["weight"])
        same = ok & ((w_run == w_pool) | np.isclose(w_run, 1.0 / run.config.luminosity_fb))
        lines.append(
            f"{name}: {int(same.sum())} of {ev_run.size} events of the run's pseudo-data sample "
            f"are pool events ({ev_pool.size} in the pool)"
        )
    return lines


def make_injection_samples(
    run: RunInputs,
    masses: Sequence[float],
    cache: Path,
    work: Path,
    model: Any,
    console: Console,
    workers: int,
) -> dict[float, Path]:
    """The injected signals: per mass a sample generated with the data seed, simulated with the
    data detector and selected like the data (what the run's ``pseudo_data.inject_mass_gev``
    makes), selected files under ``work/inject``."""
    from zprime.generators.signal import write_signal

    cfg = run.config
    seed = run_data_seed(cfg)
    det = cfg.control.data_detector
    det_cfg = cfg.detector.get(det).model_dump(mode="json")
    ctx = StageContext(cfg, RunDir(cache / "inject"), console, workers=workers, progress=False)
    out: dict[float, Path] = {}
    for mass in masses:
        params = {
            "mass": mass,
            "n": cfg.signal.events_per_mass,
            "seed": seed,
            "isr": cfg.signal.isr,
            "alpha_inverse": cfg.signal.alpha_inverse,
        }

        def gen(mass: float = mass) -> Path:
            return write_signal(
                mass,
                cfg.signal.events_per_mass,
                cache / "inject" / "events",
                seed=seed,
                isr=cfg.signal.isr,
                alpha=1.0 / cfg.signal.alpha_inverse,
                workers=workers,
                progress=False,
            )

        path, digest = cached_file(
            ctx, f"events_signal_{mass:g}", params, gen, code=GENERATION_CODE
        )

        def sim(path: Path = path) -> Path:
            return simulate_file(
                path, cache / "inject" / "reco", detector=det, config=cfg, seed=seed
            )

        reco, _ = cached_file(
            ctx,
            f"reco_signal_{mass:g}",
            {"input": digest, "detector": det_cfg, "data_seed": seed},
            sim,
            code=SIMULATION_CODE,
        )
        out[mass] = select_final(reco, work / "inject", cfg, model)
    return out


# ----------------------------------------------------------------------------- one set


def unit_weight(luminosity_fb: float) -> float:
    """The weight (fb) of one data event: ``L w`` exactly 1 where the floating point allows, so
    that ``pseudodata.event_counts`` takes every selected event exactly once."""
    w = 1.0 / luminosity_fb
    for cand in (w, float(np.nextafter(w, np.inf)), float(np.nextafter(w, -np.inf))):
        if cand * luminosity_fb == 1.0:
            return cand
    return float(np.nextafter(w, np.inf))


def thin_file(
    src: Path,
    dst: Path,
    luminosity_fb: float,
    weight_fb: float,
    rng: np.random.Generator,
    max_copies: int = 100,
) -> tuple[Path, int]:
    """Take every event of ``src`` ``event_counts(luminosity_fb * w)`` times into ``dst``.

    Each copy gets the weight ``weight_fb`` (one data event) and the column ``pool_row`` (its
    row in ``src``), which the detector simulation and the selection carry through. The counts
    are drawn for the whole file at once, so they do not depend on the batch size. A pool event
    with ``L w > 1`` gives several copies that the detector sees independently, as the run's
    pseudo-data do (``zprime.pipeline.samples.stage_simulate``, ``events.unweight_file``), up to
    ``max_copies``; a heavier event is one copy of weight ``k * weight_fb``.

    Parameters
    ----------
    src
        A pool file (generator level, weights in fb).
    dst
        The thinned file (written atomically).
    luminosity_fb
        The luminosity of the set (the expected copies of an event are ``luminosity_fb * w``).
    weight_fb
        The weight of every copy (:func:`unit_weight`).
    rng
        The set's random numbers for this sample.

    Returns
    -------
    tuple
        The written path and the number of events in it.
    """
    w = np.asarray(read_events(src, ["weight"])["weight"], dtype=np.float64)
    counts = pseudodata.event_counts(luminosity_fb * w, rng)
    offset = [0]

    def keep(batch: ak.Array) -> ak.Array:
        start = offset[0]
        offset[0] += len(batch)
        k = counts[start : start + len(batch)].copy()
        # as the run's pseudo-data (pipeline.samples.stage_simulate, events.unweight_file): up to
        # max_copies copies simulated independently, a heavier event once with its multiplicity
        heavy = k > max_copies
        mult = np.where(heavy, k, 1)
        k[heavy] = 1
        local = np.repeat(np.arange(len(batch)), k)
        out = batch[local]
        out = ak.with_field(out, mult[local] * weight_fb, "weight")
        return ak.with_field(out, (start + local).astype(np.int64), "pool_row")

    dst.parent.mkdir(parents=True, exist_ok=True)
    path = transform_file(
        src, dst, keep, metadata={"pool": str(src), "pool_luminosity_fb": luminosity_fb}
    )
    return path, int(counts.sum())


def select_final(reco: Path, out_dir: Path, cfg: Config, model: Any) -> Path:
    """The run's final selection of a reconstructed file (the train stage,
    ``invisible_zprime.selecting.stage_train``): preselection without the network, the
    network's output added, the full selection."""
    lumi = cfg.luminosity_fb
    presel, _ = select_file(
        reco, out_dir / "presel", cfg.selection, luminosity_fb=lumi, skip=["punzinet"]
    )
    scored = presel
    if model is not None:
        scored = out_dir / "scored" / presel.name
        scored.parent.mkdir(parents=True, exist_ok=True)
        transform_file(presel, scored, partial(punzinet.apply, model))
    try:
        final, _ = select_file(scored, out_dir / "final", cfg.selection, luminosity_fb=lumi)
    finally:
        if scored != presel:
            scored.unlink(missing_ok=True)
    presel.unlink(missing_ok=True)
    return final


def set_seed(data_seed: int, k: int, purpose: int, *keys: int) -> np.random.SeedSequence:
    """The random stream of ``purpose`` in set ``k``."""
    return np.random.SeedSequence([data_seed, STUDY_KEY, k, purpose, *keys])


def nearest(pairs: Sequence[tuple[float, float]], mass: float) -> tuple[float, float]:
    """The (mass, value) pair nearest ``mass``."""
    return min(pairs, key=lambda p: abs(p[0] - mass))


def profile_interval(model: Any, main: np.ndarray, best: Any) -> tuple[float, float, bool]:
    """The ``-2 Delta log L = 1`` interval of the POI (nuisances profiled).

    Parameters
    ----------
    model
        A compiled one-workspace model (:func:`zprime.stats.compile_workspace`).
    main
        Its observed counts, shape (1, bins).
    best
        The free fit (:func:`zprime.stats.fit` with ``poi_sigma=True``).

    Returns
    -------
    tuple
        ``(low, high, truncated)``: the interval's ends (``high`` NaN if the profile stays below
        1 up to the POI's upper bound); ``truncated``: ``low`` is the POI's lower bound.
    """
    from zprime.stats import fit

    poi = model.poi_index
    mu_hat = float(best.params.g[0, poi])
    nll0 = float(best.twice_nll[0])
    lo_b, hi_b = float(model.g_lo[0, poi]), float(model.g_hi[0, poi])

    def q(mu: float) -> float:
        r = fit(model, main, fixed_poi=mu, init=best.params)
        return float(r.twice_nll[0]) - nll0 - 1.0

    sig = float(best.poi_sigma[0]) if best.poi_sigma is not None else math.nan
    step = sig if np.isfinite(sig) and sig > 0 else max(abs(mu_hat), 1.0)
    # bracket each crossing by doubling the distance from mu_hat (q(mu_hat) = -1)
    b = min(mu_hat + step, hi_b)
    qb = q(b)
    while qb < 0 and b < hi_b:
        b = min(mu_hat + 2.0 * (b - mu_hat), hi_b)
        qb = q(b)
    high = optimize.brentq(q, mu_hat, b, xtol=1e-6 * step) if qb >= 0 else math.nan
    a = max(mu_hat - step, lo_b)
    qa = q(a) if a < mu_hat else -1.0
    while qa < 0 and a > lo_b:
        a = max(mu_hat - 2.0 * (mu_hat - a), lo_b)
        qa = q(a)
    if qa < 0:
        return lo_b, high, True
    return optimize.brentq(q, a, mu_hat, xtol=1e-6 * step), high, False


def injection_fits(
    templates_dir: Path,
    run: RunInputs,
    cfg: Config,
    signals: dict[float, Path],
    factor: float,
    data_seed: int,
    k: int,
) -> list[dict[str, Any]]:
    """Per injected mass: the set's window nearest the mass with the injected signal added to
    its observed counts, fitted; the pull with the Hessian and the profile-likelihood
    uncertainty.

    Parameters
    ----------
    templates_dir
        The set's narrow templates (its data as the observed counts).
    run
        The run (its median expected limits set the injected cross sections).
    cfg
        The study's configuration.
    signals
        Mass -> selected injection sample (:func:`make_injection_samples`).
    factor
        Injected cross section over the expected limit.
    data_seed, k
        The run's data seed and the set's index (the random numbers of the injection).

    Returns
    -------
    list of dict
        One row per mass (the columns of ``pulls.csv``).
    """
    from zprime.analyses.invisible_zprime.samples import _filled, _from_arrays
    from zprime.analyses.invisible_zprime.templates import read_templates
    from zprime.stats import build_workspace, compile_workspace, fit

    tset = read_templates(templates_dir)
    rows = []
    for i, (mass, path) in enumerate(sorted(signals.items())):
        w = min(tset.windows, key=lambda t: abs(t.mass_gev - mass))
        _, limit = nearest(run.expected_limits, w.mass_gev)
        mu_inj = factor * limit
        cols = [*PSEUDO_DATA_COLUMNS, "weight"]
        events = read_events(path, cols)
        total = float(read_metadata(path)["sigma_fb"])
        rng = np.random.default_rng(set_seed(data_seed, k, INJECT, i))
        drawn = pseudodata.draw(
            {},
            cfg.luminosity_fb,
            rng,
            columns=PSEUDO_DATA_COLUMNS,
            signal=(events, total),
            signal_xsec_fb=mu_inj,
        )
        added = _filled(
            w.window, drawn["m_recoil2"], drawn["theta_recoil_cm"], np.ones(drawn["weight"].size)
        )
        if w.observed is None:  # the template stage is always given the set as the data
            raise SystemExit(f"{templates_dir}: window {w.name} has no observed data")

        def fitted(observed: Any, w: Any = w) -> tuple[Any, np.ndarray, Any]:
            spec = build_workspace(
                **dataclasses.replace(w, observed=observed).workspace_inputs(
                    cfg.templates.merge_backgrounds
                ),
                background_floor=cfg.fit.background_floor,
            )
            model = compile_workspace(spec, name=w.name)
            main = model.observed[:1]
            return model, main, fit(model, main, poi_sigma=True)

        model, main, best = fitted(w.observed + added)
        mu_hat = float(best.params.g[0, model.poi_index])
        sig_h = float(best.poi_sigma[0]) if best.poi_sigma is not None else math.nan
        low, high, truncated = profile_interval(model, main, best)
        # the Asimov data of the same injection (expected background of the templates plus the
        # injected sample's expectation): the pull's bias that no statistics cause (the
        # injected mass off the window's hypothesis, data-detector signal against the
        # corrected simulation)
        scale = np.asarray(events["weight"], dtype=float) * cfg.luminosity_fb * mu_inj / total
        expected = _filled(
            w.window,
            np.asarray(events["m_recoil2"], dtype=float),
            np.asarray(events["theta_recoil_cm"], dtype=float),
            scale,
        ).values()
        asimov = w.total_background().reshape(w.shape) + expected
        a_model, _, a_best = fitted(_from_arrays(w.window, asimov, asimov))
        mu_a = float(a_best.params.g[0, a_model.poi_index])
        sig_a = float(a_best.poi_sigma[0]) if a_best.poi_sigma is not None else math.nan
        sig_p = (high - mu_hat) if mu_hat < mu_inj else (mu_hat - low)
        heavy = float(np.max(events["weight"], initial=0.0)) * mu_inj / total * cfg.luminosity_fb
        rows.append(
            {
                "set": k,
                "mass_gev": mass,
                "window": w.name,
                "window_mass_gev": w.mass_gev,
                "expected_limit_fb": limit,
                "mu_injected_fb": mu_inj,
                "n_injected": int(drawn["weight"].size),
                "n_injected_in_window": float(added.values().sum()),
                "expected_injected_in_window": float(expected.sum()),
                "max_l_w_injected": heavy,
                "mu_hat_fb": mu_hat,
                "sigma_hesse_fb": sig_h,
                "low_fb": low,
                "high_fb": high,
                "low_truncated": truncated,
                "converged": bool(best.converged[0]),
                "pull_hesse": (mu_hat - mu_inj) / sig_h,
                "pull_profile": (mu_hat - mu_inj) / sig_p,
                "asimov_mu_hat_fb": mu_a,
                "asimov_pull": (mu_a - mu_inj) / sig_a,
            }
        )
    return rows


@dataclass
class StudyParams:
    """What a set's result depends on (a cached set is reused only when they match)."""

    run_dir: str
    pool: dict[str, str]
    pool_fraction: float
    set_luminosity_fb: float
    masses: list[float]
    inject_factor: float
    version: int = 2
    """Of this script's per-set results (a result of another version is made again)."""

    def digest(self) -> str:
        """Hash of the parameters."""
        return hashlib.sha256(
            json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        ).hexdigest()[:16]


def run_set(
    k: int,
    run: RunInputs,
    cfg: Config,
    pool: dict[str, Path],
    signals: dict[float, Path],
    params: StudyParams,
    model: Any,
    work: Path,
    console: Console,
    *,
    verbose: bool = False,
    keep: bool = False,
) -> dict[str, Any]:
    """Make, select and fit pseudo-data set ``k`` (or reuse its cached result).

    Parameters
    ----------
    k
        The set's index (its random streams derive from it).
    run, cfg
        The run and the study's configuration (:func:`study_config`).
    pool, signals
        The pool files and the injection samples.
    params
        The study's parameters (a cached result is reused only with the same digest).
    model
        The run's Punzi-net (``None`` without a network).
    work
        Scratch directory; the set lives in ``work/set_<k>``.
    console
        Progress messages.
    verbose
        Show the pipeline stages' own messages.
    keep
        Keep the templates, workspaces and intermediate files.

    Returns
    -------
    dict
        The set's result (also written to ``set_<k>/result.json``): seeds, events, the scan's
        ``limits_narrow.csv`` and summary, the pulls, the disjoint windows and the timings.
    """
    set_dir = work / f"set_{k:02d}"
    result_path = set_dir / "result.json"
    if result_path.is_file():
        cached = json.loads(result_path.read_text())
        if cached.get("params") == params.digest():
            console.print(f"set {k}: cached ({cached['seconds']['total']:.0f} s when made)")
            return cached
    started = time.time()
    data_seed = run_data_seed(cfg)
    det = cfg.control.data_detector
    det_seed = int(set_seed(data_seed, k, DETECTOR).generate_state(1)[0])
    w_unit = unit_weight(cfg.luminosity_fb)
    seconds = {"thin": 0.0, "simulate": 0.0, "select": 0.0}
    finals: dict[str, str] = {}
    kept: dict[str, int] = {}
    for name, src in pool.items():
        rng = np.random.default_rng(set_seed(data_seed, k, THIN, zlib.crc32(name.encode())))
        t = time.time()
        thin, kept[name] = thin_file(
            src,
            set_dir / "events" / src.name,
            params.set_luminosity_fb,
            w_unit,
            rng,
            max_copies=cfg.pseudo_data.max_copies,
        )
        seconds["thin"] += time.time() - t
        t = time.time()
        reco = simulate_file(
            thin, set_dir / "reco", detector=det, seed=det_seed, config=cfg, min_tracks=2
        )
        thin.unlink()
        seconds["simulate"] += time.time() - t
        t = time.time()
        finals[name] = str(select_final(reco, set_dir / "selected", cfg, model))
        reco.unlink()
        seconds["select"] += time.time() - t
        console.print(
            f"  set {k}: {name}: {kept[name]} events simulated, "
            f"{len(read_events(finals[name], ['weight']))} selected"
        )
    quiet = Console(stderr=True, quiet=not verbose)
    ctx = StageContext(cfg, RunDir(set_dir), quiet, executor="serial", progress=False)
    ctx.outputs = dict(run.outputs)  # frozen outputs: only the train stage's data change
    train = ctx.output("train", TrainOutput)
    ctx.outputs["train"] = dataclasses.replace(
        train, data={name: Path(p) for name, p in finals.items()}
    )
    t = time.time()
    tpl = stage_template(ctx).templates["narrow"]
    seconds["templates"] = time.time() - t
    t = time.time()
    scan = _fit_scan(ctx, tpl, "narrow")
    seconds["fit"] = time.time() - t
    t = time.time()
    pulls = injection_fits(tpl, run, cfg, signals, params.inject_factor, data_seed, k)
    seconds["inject"] = time.time() - t
    disjoint = sorted(disjoint_windows(tpl))
    if not keep:
        for sub in ("workspaces_narrow", "templates_narrow", "data/corrected", "reco", "events"):
            shutil.rmtree(set_dir / sub, ignore_errors=True)
    seconds["total"] = time.time() - started
    observed = json.loads((set_dir / "data" / "pseudo_data_samples.json").read_text())["samples"]
    result = {
        "params": params.digest(),
        "set": k,
        "detector_seed": det_seed,
        "simulated_events": kept,
        "observed": {n: int(v["events"]) for n, v in observed.items()},
        "selected": finals,
        "limits": str(scan["limits"]),
        "summary": scan["summary"],
        "pulls": pulls,
        "disjoint_windows": disjoint,
        "seconds": seconds,
    }
    write_json_atomic(result_path, result)
    return result


# ----------------------------------------------------------------------------- analysis


def read_scan(path: str | Path) -> list[dict[str, Any]]:
    """The ok windows of a ``limits_narrow.csv`` (mass order) with numeric fields."""
    with Path(path).open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "ok"]
    out = []
    for r in rows:
        out.append(
            {
                "name": r["name"],
                "mass_gev": float(r["mass_gev"]),
                "q0": float(r["q0"]),
                "z_local": float(r["z_local"]),
                "gof_p": float(r["gof_p"]),
                "mu_hat_fb": float(r["mu_hat_fb"]),
            }
        )
    out.sort(key=lambda r: r["mass_gev"])
    return out


def disjoint_windows(templates_dir: Path) -> set[str]:
    """Names of windows whose M^2 ranges do not overlap (greedy in mass order)."""
    from zprime.analyses.invisible_zprime.templates import read_templates

    windows = sorted(read_templates(templates_dir).windows, key=lambda w: w.mass_gev)
    chosen, edge = set(), -math.inf
    for w in windows:
        lo, hi = float(w.window.m2_edges[0]), float(w.window.m2_edges[-1])
        if lo >= edge:
            chosen.add(w.name)
            edge = hi
    return chosen


def ks_uniform(p: np.ndarray) -> float:
    """KS p-value of ``p`` against the uniform distribution (NaN for fewer than 2 values)."""
    p = p[np.isfinite(p)]
    return float(sps.kstest(p, "uniform").pvalue) if p.size >= 2 else math.nan


def gv_exceedance(z: np.ndarray, n_ref: float, ref_level: float = 1.0) -> np.ndarray:
    """Gross-Vitells P(largest local Z > z) for a scan with ``n_ref`` mean up-crossings of
    ``q0 = ref_level`` (``zprime.stats.global_significance``)."""
    z = np.asarray(z, dtype=float)
    p = sps.norm.sf(z) + n_ref * np.exp(-(z**2 - ref_level) / 2.0)
    return np.where(z**2 > ref_level, np.minimum(p, 1.0), 1.0)


def sharing(
    results: list[dict[str, Any]], pool: dict[str, Path], set_lumi: float
) -> list[dict[str, Any]]:
    """Per set and M^2 range: events, and those from pool events that pass in >= 2 sets.

    Parameters
    ----------
    results
        The sets' results (:func:`run_set`): their selected files carry ``pool_row``.
    pool
        The pool files (their weights tell which events have ``L w >= 1``).
    set_lumi
        The luminosity at which the sets were thinned.

    Returns
    -------
    list of dict
        One row per set and range: events, those from ``L w >= 1`` pool events, those of them
        passing in >= 2 sets, all events passing in >= 2 sets, the fractions, and the mean
        overlap with the other sets (``sum_j min(c_ja, c_jb) / sqrt(N_a N_b)``).
    """
    per_sample: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {n: [] for n in pool}
    for res in results:
        for name, path in res["selected"].items():
            ev = read_events(path, ["pool_row", "m_recoil2"])
            per_sample[name].append(
                (res["set"], np.asarray(ev["pool_row"]), np.asarray(ev["m_recoil2"]))
            )
    sets = [r["set"] for r in results]
    # (set, range) -> counters
    counts = {(s, r): np.zeros(4) for s in sets for r in range(len(M2_RANGES))}
    overlap = np.zeros((len(M2_RANGES), len(sets), len(sets)))
    for name, parts in per_sample.items():
        if not parts:
            continue
        w = np.asarray(read_events(pool[name], ["weight"])["weight"], dtype=np.float64)
        heavy = set_lumi * w >= HEAVY
        rows = np.concatenate([p[1] for p in parts])
        sid = np.concatenate([np.full(p[1].size, i) for i, p in enumerate(parts)])
        m2 = np.concatenate([p[2] for p in parts])
        # in how many sets each pool event passes (copies within a set count once)
        uniq = np.unique(np.stack([rows, sid]), axis=1)
        n_sets = np.zeros(int(rows.max(initial=-1)) + 1, dtype=np.int64)
        np.add.at(n_sets, uniq[0], 1)
        shared = n_sets[rows] >= 2
        for r, (lo, hi) in enumerate(M2_RANGES):
            in_r = (m2 >= lo) & (m2 < hi)
            for i, (s, _, _) in enumerate(parts):
                sel = in_r & (sid == i)
                counts[(s, r)] += [
                    sel.sum(),
                    (sel & heavy[rows]).sum(),
                    (sel & heavy[rows] & shared).sum(),
                    (sel & shared).sum(),
                ]
            # multiplicity of every pool event in every set: the overlap of two sets is
            # sum_j min(c_j,a, c_j,b), their count correlation about overlap / sqrt(N_a N_b)
            if in_r.any():
                u, inv = np.unique(rows[in_r], return_inverse=True)
                mult = np.zeros((u.size, len(parts)))
                np.add.at(mult, (inv, sid[in_r]), 1.0)
                idx = [sets.index(p[0]) for p in parts]
                for a in range(len(parts)):
                    for b in range(len(parts)):
                        overlap[r, idx[a], idx[b]] += np.minimum(mult[:, a], mult[:, b]).sum()
    out = []
    for s in sets:
        for r, (lo, hi) in enumerate(M2_RANGES):
            n, nh, nhs, ns = counts[(s, r)]
            i = sets.index(s)
            others = [
                overlap[r, i, j] / math.sqrt(overlap[r, i, i] * overlap[r, j, j])
                for j in range(len(sets))
                if j != i and overlap[r, i, i] > 0 and overlap[r, j, j] > 0
            ]
            out.append(
                {
                    "set": s,
                    "m2_low": lo,
                    "m2_high": hi,
                    "events": int(n),
                    "events_heavy": int(nh),
                    "events_heavy_shared": int(nhs),
                    "events_shared": int(ns),
                    "frac_heavy_shared": nhs / n if n else math.nan,
                    "frac_shared": ns / n if n else math.nan,
                    "mean_pair_overlap": float(np.mean(others)) if others else math.nan,
                }
            )
    return out


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows as CSV, atomically."""
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _f(x: float | None, fmt: str = ".3g") -> str:
    if x is None or np.isnan(x):
        return "n/a"
    # a global p-value of 1 (no excess above the reference level) has Z = -inf
    return format(x, fmt) if np.isfinite(x) else ("-inf" if x < 0 else "inf")


def figure(
    path: Path,
    gof_all: np.ndarray,
    gof_disjoint: np.ndarray,
    zmax: np.ndarray,
    n_ref: float,
    pulls: list[dict[str, Any]],
) -> list[Path]:
    """Pooled GoF p-values, largest local Z of every set against Gross-Vitells, pulls."""
    from zprime.report.plots import plt, save  # zprime.report.plots selects the Agg backend

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    bins = np.linspace(0.0, 1.0, 21)
    for p, label in ((gof_all, "all windows"), (gof_disjoint, "disjoint windows")):
        p = p[np.isfinite(p)]
        if p.size:
            ax[0].hist(p, bins, density=True, histtype="step", lw=1.5, label=f"{label} ({p.size})")
    ax[0].axhline(1.0, color="k", ls="--", lw=1, label="uniform")
    ax[0].set(xlabel="goodness-of-fit p-value", ylabel="density", title="GoF p-values, all sets")
    ax[0].legend(fontsize=8)
    edges = np.linspace(0.0, max(5.0, float(np.nanmax(zmax, initial=0.0)) + 0.5), 21)
    ax[1].hist(zmax, edges, histtype="step", lw=1.5, label=f"{zmax.size} sets")
    cdf = 1.0 - gv_exceedance(edges, n_ref)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax[1].step(
        centres,
        zmax.size * np.diff(cdf),
        where="mid",
        color="k",
        ls="--",
        label=rf"Gross-Vitells, $\langle N_{{1}}\rangle$ = {n_ref:.1f}",
    )
    ax[1].set(xlabel="largest local Z of the scan", ylabel="sets", title="background-only scans")
    ax[1].legend(fontsize=8)
    masses = sorted({r["mass_gev"] for r in pulls})
    for j, key in enumerate(("pull_hesse", "pull_profile")):
        values = [np.array([r[key] for r in pulls if r["mass_gev"] == m]) for m in masses]
        values = [v[np.isfinite(v)] for v in values]
        mean = [float(v.mean()) if v.size else math.nan for v in values]
        width = [float(v.std(ddof=1)) if v.size > 1 else 0.0 for v in values]
        ax[2].errorbar(
            np.asarray(masses) + 0.08 * (j - 0.5), mean, yerr=width, fmt="o", capsize=3, label=key
        )
    ax[2].axhline(0.0, color="k", lw=0.8)
    ax[2].axhspan(-1.0, 1.0, color="grey", alpha=0.15)
    ax[2].set(
        xlabel="injected M_Z' [GeV]", ylabel="pull mean (bar: width)", title="injected signal"
    )
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def _git() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def summarise(
    run: RunInputs,
    results: list[dict[str, Any]],
    pool: dict[str, Path],
    params: StudyParams,
    out: Path,
    timing: dict[str, float],
    pool_lines: list[str],
    disjoint: set[str],
    console: Console,
) -> None:
    """Write the CSV files, the figure and ``summary.md``."""
    scans = {r["set"]: read_scan(r["limits"]) for r in results}
    from zprime.stats import global_significance, upcrossings

    n_ups = [upcrossings([s["q0"] for s in sc], 1.0) for sc in scans.values()]
    n_ref = float(np.mean(n_ups)) if n_ups else math.nan

    set_rows, gof_rows = [], []
    for res in results:
        sc = scans[res["set"]]
        p = np.array([s["gof_p"] for s in sc])
        dis = np.array([s["name"] in disjoint for s in sc])
        gs = global_significance([s["mass_gev"] for s in sc], [s["q0"] for s in sc], n_ref=n_ref)
        summ = res["summary"]
        set_rows.append(
            {
                "set": res["set"],
                "events": sum(res["observed"].values()),
                **{f"events_{n}": v for n, v in res["observed"].items()},
                "windows": len(sc),
                "largest_local_z": summ.get("largest_local_z", math.nan),
                "at_mass_gev": summ.get("at_mass_gev", math.nan),
                "global_z": summ.get("global_z", math.nan),
                "global_p": summ.get("global_p", math.nan),
                "global_z_mean_upcrossings": gs.z_global,
                "worst_gof_p": summ.get("worst_gof_p", math.nan),
                "ks_p_gof_all": ks_uniform(p),
                "ks_p_gof_disjoint": ks_uniform(p[dis]),
                "disjoint_windows": int(dis.sum()),
                "frac_gof_below_0.01": float(np.mean(p < 0.01)) if p.size else math.nan,
                "seconds": res["seconds"]["total"],
            }
        )
        for s, d in zip(sc, dis, strict=True):
            gof_rows.append(
                {"set": res["set"], **{k: s[k] for k in ("name", "mass_gev", "q0", "gof_p")}}
                | {"disjoint": bool(d)}
            )
    pulls = [row for res in results for row in res["pulls"]]
    share = sharing(results, pool, params.set_luminosity_fb)
    write_csv(out / "sets.csv", set_rows)
    write_csv(out / "pulls.csv", pulls)
    write_csv(out / "sharing.csv", share)
    write_csv(out / "gof_pvalues.csv", gof_rows)
    gof_all = np.array([g["gof_p"] for g in gof_rows])
    gof_dis = np.array([g["gof_p"] for g in gof_rows if g["disjoint"]])
    zmax = np.array([r["largest_local_z"] for r in set_rows], dtype=float)
    figure(out / "figures" / "study", gof_all, gof_dis, zmax, n_ref, pulls)

    n = len(results)
    lines = [
        "# Background-only pseudo-data study (issue 14, item 3)",
        "",
        f"Run `{run.run_dir}`, configuration: {run.config_source}; {n} sets; "
        f"code {_git()} (zprime digest {code_digest()}).",
        f"Pool samples: {', '.join(f'{k} ({_pool_size(p)} events)' for k, p in pool.items())}; "
        f"pool fraction {params.pool_fraction:g}; each set thinned at "
        f"L = {params.set_luminosity_fb:g} fb^-1 (templates at {run.config.luminosity_fb:g}).",
    ]
    if params.pool_fraction != 1.0:
        lines += [
            "",
            f"**Development run (--pool-fraction {params.pool_fraction:g}): every set stands "
            f"for {params.pool_fraction:g} of the luminosity of the templates; the numbers below "
            "test the machinery and are not physics results.**",
        ]
    lines += ["", "Not in the pool (no event after the run's final selection):"]
    for name, c in run.composition.items():
        if name not in pool:
            lines.append(
                f"- {name}: simulation {_f(c['simulation'])} expected, "
                f"run's pseudo-data {_f(c['pseudo_data'])} events"
            )
    lines += ["", *[f"- pool check: {x}" for x in pool_lines], *[f"- note: {x}" for x in run.notes]]
    lines += [
        "",
        "Events per set against the run: the run's pseudo-data (one draw), the simulation's "
        "expectation after the final selection (both at the templates' luminosity) and the sets "
        "(mean and standard deviation).",
        "",
        "| sample | run's pseudo-data | simulation | sets: mean | sets: std |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in pool:
        x = np.array([r["observed"].get(name, 0) for r in results], dtype=float)
        c = run.composition.get(name, {})
        lines.append(
            f"| {name} | {_f(c.get('pseudo_data', math.nan), '.0f')} | "
            f"{_f(c.get('simulation', math.nan), '.1f')} | {_f(x.mean(), '.1f')} | "
            f"{_f(x.std(ddof=1) if x.size > 1 else math.nan, '.1f')} |"
        )
    lines += [
        "",
        f"Time: pool {timing['pool']:.0f} s (this invocation; 0 when cached), injected signals "
        f"{timing['inject']:.0f} s, per set {_f(np.mean([r['seconds'] for r in set_rows]), '.0f')}"
        " s on average ("
        + ", ".join(
            f"{k} {np.mean([r['seconds'][k] for r in results]):.0f} s"
            for k in ("thin", "simulate", "select", "templates", "fit", "inject")
        )
        + ").",
        "",
        "## (a, b) Mass scans",
        "",
        "Global Z: Gross-Vitells with the up-crossings of q0 = 1 counted on the set's own scan "
        f"(as the run) and with their mean over the sets ({_f(n_ref)}, the sets serving as the "
        "background-only scans that Gross-Vitells average). KS: p-value of the GoF p-values "
        "against uniform, over all windows (neighbouring windows overlap, so these p-values are "
        "correlated and the KS p-value is not a valid p-value) and over windows with disjoint "
        f"M^2 ranges ({len(disjoint)} per scan, independent data).",
        "",
        "| set | events | largest local Z | at M (GeV) | global Z | global Z (mean N) | "
        "worst GoF p | KS p (all) | KS p (disjoint) | GoF p < 0.01 | time (s) |",
        "|" + " ---: |" * 11,
    ]
    for r in set_rows:
        lines.append(
            f"| {r['set']} | {r['events']} | {_f(r['largest_local_z'])} | "
            f"{_f(r['at_mass_gev'])} | {_f(r['global_z'])} | "
            f"{_f(r['global_z_mean_upcrossings'])} | {_f(r['worst_gof_p'])} | "
            f"{_f(r['ks_p_gof_all'])} | {_f(r['ks_p_gof_disjoint'])} | "
            f"{_f(100 * r['frac_gof_below_0.01'], '.1f')}% | {_f(r['seconds'], '.0f')} |"
        )
    z_sd = float(np.nanstd(zmax, ddof=1)) if n > 1 else math.nan
    below = 100 * float(np.mean(gof_all < 0.01)) if gof_all.size else math.nan
    ks_all, ks_dis = ks_uniform(gof_all), ks_uniform(gof_dis)
    lines += [
        "",
        f"Largest local Z over the sets: mean {_f(np.nanmean(zmax))}, standard deviation "
        f"{_f(z_sd)}; Gross-Vitells median expectation {_f(_gv_median(n_ref))}. Pooled GoF "
        f"p-values: KS p = {_f(ks_all)} over {gof_all.size} windows (correlated), "
        f"{_f(ks_dis)} over {gof_dis.size} disjoint windows; fraction below 0.01: "
        f"{_f(below, '.2f')}% "
        "(1% expected). The sets are not fully independent (see the sharing table), so the "
        "pooled KS p-value over the sets is too small if anything.",
        "",
        "## (c) Injected signal",
        "",
        "mu_inj = factor x the run's median expected limit at the window; pull = (mu_hat - "
        "mu_inj) / sigma with sigma from the profiled Hessian or from the profile likelihood "
        "(the side towards mu_inj). Mean +- its error, width (standard deviation) +- its error. "
        "Asimov pull: the same fit of the expected background plus the injected sample's "
        "expectation (the bias without statistical fluctuations: the injected mass is that of "
        "the simulated sample, the window's hypothesis the nearest of the grid; the injected "
        "signal is seen by the data detector, the template is the corrected simulation).",
        "",
        "| M (GeV) | window | mu_inj (fb) | injected events | sets | pull mean (Hesse) | "
        "width (Hesse) | pull mean (profile) | width (profile) | Asimov pull | not converged |",
        "| ---: | --- |" + " ---: |" * 9,
    ]
    for m in sorted({r["mass_gev"] for r in pulls}):
        rows = [r for r in pulls if r["mass_gev"] == m]
        cells = []
        for key in ("pull_hesse", "pull_profile"):
            x = np.array([r[key] for r in rows], dtype=float)
            x = x[np.isfinite(x)]
            k = x.size
            mean, sd = (float(x.mean()), float(x.std(ddof=1))) if k > 1 else (math.nan, math.nan)
            err_mean = sd / math.sqrt(k) if k else math.nan
            err_sd = sd / math.sqrt(2 * (k - 1)) if k > 1 else math.nan
            cells += [
                f"{_f(mean, '.2f')} +- {_f(err_mean, '.2f')}",
                f"{_f(sd, '.2f')} +- {_f(err_sd, '.2f')}",
            ]
        lines.append(
            f"| {m:g} | {rows[0]['window']} | {_f(rows[0]['mu_injected_fb'])} | "
            f"{_f(np.mean([r['n_injected'] for r in rows]), '.1f')} | {len(rows)} | "
            + " | ".join(cells)
            + f" | {_f(rows[0]['asimov_pull'], '.2f')} | {sum(not r['converged'] for r in rows)} |"
        )
    lines += [
        "",
        "## Limitation: events shared between sets",
        "",
        "Per M_recoil^2 range, averaged over the sets: events per set; the fraction from pool "
        "events with L w >= 1 (in every set before the detector) that pass in two or more sets; "
        "the fraction from any pool event passing in two or more sets (an L w = 0.1 event is in "
        "a given set with probability 0.1); the mean overlap of two sets (shared events / "
        "sqrt(N_a N_b), about the correlation coefficient of their counts).",
        "",
        "| M^2 range (GeV^2) | events per set | L w >= 1 and shared | shared | pair overlap |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for lo, hi in M2_RANGES:
        rows = [r for r in share if r["m2_low"] == lo]
        ev = np.array([r["events"] for r in rows], dtype=float)
        tot = ev.sum()
        fh = sum(r["events_heavy_shared"] for r in rows) / tot if tot else math.nan
        fs = sum(r["events_shared"] for r in rows) / tot if tot else math.nan
        ovs = [r["mean_pair_overlap"] for r in rows if np.isfinite(r["mean_pair_overlap"])]
        ov = float(np.mean(ovs)) if ovs else math.nan
        lines.append(
            f"| {lo:g} to {hi:g} | {_f(ev.mean() if ev.size else math.nan, '.1f')} | "
            f"{_f(100 * fh, '.1f')}% | {_f(100 * fs, '.1f')}% | {_f(ov, '.3f')} |"
        )
    lines += [
        "",
        "Caveats: the GoF p-values are asymptotic (chi^2 of the saturated-model statistic); "
        "windows with few events per bin make them discrete and not exactly uniform even for "
        "perfect templates. The injected signal is one sample generated with the data seed and "
        "thinned per set: at a few tens of injected events out of its selected events the sets "
        "share few of them. The templates, corrections and expected limits are the run's; only "
        "the observed data change from set to set.",
        "",
        "Files: `sets.csv`, `pulls.csv`, `sharing.csv`, `gof_pvalues.csv`, `figures/study.png`.",
    ]
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    table = Table(title=f"{n} pseudo-data sets")
    for col in ("set", "largest Z", "at M", "global Z", "worst GoF p", "KS p (disj.)", "time"):
        table.add_column(col, justify="right")
    for r in set_rows:
        table.add_row(
            str(r["set"]),
            _f(r["largest_local_z"]),
            _f(r["at_mass_gev"]),
            _f(r["global_z"]),
            _f(r["worst_gof_p"]),
            _f(r["ks_p_gof_disjoint"]),
            f"{r['seconds']:.0f} s",
        )
    console.print(table)
    console.print(f"summary: {out / 'summary.md'}")


def _pool_size(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _gv_median(n_ref: float) -> float:
    """The z at which the Gross-Vitells exceedance probability is 1/2."""
    if not np.isfinite(n_ref):
        return math.nan

    def f(z: float) -> float:
        return float(gv_exceedance(np.array([z]), n_ref)[0]) - 0.5

    return float(optimize.brentq(f, 1.0 + 1e-9, 10.0)) if f(1.0 + 1e-9) > 0 else math.nan


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory (read only)")
    parser.add_argument("--sets", type=int, default=20, help="pseudo-data sets (default 20)")
    parser.add_argument(
        "--out", type=Path, default=Path("validation/out/pseudo_data_study"), help="results"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/pdstudy/work"), help="per-set scratch and cache"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("/tmp/pdstudy/cache"), help="the pool (reused)"
    )
    parser.add_argument("--config", type=Path, default=None, help="the run's configuration")
    parser.add_argument(
        "--pool-fraction",
        type=float,
        default=1.0,
        help="development: generate this fraction of the pool (each set then stands for f L)",
    )
    parser.add_argument("--samples", nargs="+", default=None, help="pool samples (default: auto)")
    parser.add_argument(
        "--masses", type=float, nargs="*", default=list(DEFAULT_MASSES), help="injected masses"
    )
    parser.add_argument("--inject-factor", type=float, default=3.0, help="x expected limit")
    parser.add_argument("--workers", type=int, default=2, help="processes for the generation")
    parser.add_argument("--first-set", type=int, default=0, help="index of the first set")
    parser.add_argument("--keep", action="store_true", help="keep templates and workspaces")
    parser.add_argument("--verbose", action="store_true", help="the stages' own messages")
    parser.add_argument(
        "--allow-foreign-paths",
        action="store_true",
        help="accept stage records naming files outside the run directory",
    )
    args = parser.parse_args(argv)
    if not 0.0 < args.pool_fraction <= 1.0:
        parser.error("--pool-fraction must lie in (0, 1]")
    console = Console(stderr=True)
    run_dir = args.run.resolve()
    run = load_run(run_dir, args.config, args.samples, allow_foreign=args.allow_foreign_paths)
    cfg = study_config(run.config)
    for note in run.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(
        f"run {run_dir}: pool samples {run.pool_samples}; luminosity {cfg.luminosity_fb} fb^-1"
    )
    train = run.outputs["train"]
    assert isinstance(train, TrainOutput)
    known = {float(k) for k in train.signal}
    masses = [m for m in args.masses if m in known]
    for m in sorted(set(args.masses) - set(masses)):
        console.print(f"[yellow]no simulated signal at {m:g} GeV in the run: not injected[/]")
    model_path = train.model
    model = punzinet.load(model_path) if model_path else None
    work = args.work.resolve()

    t = time.time()
    console.rule("pool")
    pool = make_pool(run, args.cache.resolve(), args.pool_fraction, console, args.workers)
    timing = {"pool": time.time() - t}
    pool_lines = check_pool(run, pool, args.pool_fraction)
    for line in pool_lines:
        console.print(f"pool check: {line}")
    t = time.time()
    signals = make_injection_samples(
        run, masses, args.cache.resolve(), work, model, console, args.workers
    )
    timing["inject"] = time.time() - t
    params = StudyParams(
        run_dir=str(run_dir),
        pool={k: str(v) for k, v in pool.items()},
        pool_fraction=args.pool_fraction,
        set_luminosity_fb=args.pool_fraction * cfg.luminosity_fb,
        masses=masses,
        inject_factor=args.inject_factor,
    )
    console.print(
        f"pool ready in {timing['pool']:.0f} s; injected signals in {timing['inject']:.0f} s"
    )
    results = []
    sets = range(args.first_set, args.first_set + args.sets)
    with Progress(
        TextColumn("[bold]pseudo-data sets"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("sets", total=len(sets))
        for k in sets:
            console.rule(f"set {k}")
            res = run_set(
                k,
                run,
                cfg,
                pool,
                signals,
                params,
                model,
                work,
                console,
                verbose=args.verbose,
                keep=args.keep,
            )
            s = res["summary"]
            sec = res["seconds"]
            console.print(
                f"set {k}: largest local Z {_f(s.get('largest_local_z'))} at "
                f"{_f(s.get('at_mass_gev'))} GeV, global Z {_f(s.get('global_z'))}, worst GoF p "
                f"{_f(s.get('worst_gof_p'))}; {sec['total']:.0f} s ("
                + ", ".join(f"{k2} {v:.0f} s" for k2, v in sec.items() if k2 != "total")
                + ")"
            )
            results.append(res)
            bar.advance(task)
    # the windows are the same in every set (the templates do not depend on the data)
    disjoint = set(results[0]["disjoint_windows"]) if results else set()
    summarise(run, results, pool, params, args.out, timing, pool_lines, disjoint, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
