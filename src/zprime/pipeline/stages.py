"""The stage table behind ``zprime run``, and running it.

The engine's stages come first and know no search (:mod:`zprime.pipeline.samples`):

``xsec``      the analysis's signal cross sections (``xsec.csv``)
``generate``  signal, background and pseudo-data samples (``events/``, ``events_data/``)
``simulate``  the fast detector simulation of every sample (``reco/<detector>/``)

then the stages of the configured analysis (``config.analysis``; for the invisible Z'
``select``, ``train``, ``control``, ``template``, ``fit``, ``report``: see
:mod:`zprime.analyses.invisible_zprime.analysis`). Every stage returns a frozen, typed output
(:class:`zprime.io.rundir.StageOutput`) recorded in ``stages/<name>.json`` with paths relative
to the run directory (:class:`zprime.io.rundir.RunDir` owns every path).

Each stage is cached by a hash of the configuration fields it depends on, of zprime's code and
of the hashes of the stages before it (:mod:`zprime.pipeline.cache`): changing a cut re-runs
``select`` and what follows, not the generation. Generated and simulated files are cached one
by one, by their own parameters and the code that makes them. A stage records itself only
after all its outputs are written (each of them atomically), so an interrupted run resumes at
the first stage that did not finish and never reads a half-written file. ``provenance.json``
records the configuration, seeds, package versions and git commit of the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from zprime._util import provenance, write_json_atomic
from zprime.analyses.base import (
    Analysis,
    AnalysisStage,
    GenerateOutput,
    SimulateOutput,
    StageContext,
    XsecOutput,
)
from zprime.analyses.registry import analysis_for
from zprime.config import Config, default_config
from zprime.errors import ConfigError
from zprime.io.rundir import RunDir, StageOutput, from_manifest, to_manifest
from zprime.pipeline.cache import stage_hash
from zprime.pipeline.samples import stage_generate, stage_simulate, stage_xsec

__all__ = ["Stage", "quick_config", "run", "run_stage", "stage_table"]


Stage = AnalysisStage
"""One stage of the table: name, function, output type, upstream stages, configuration keys
(the engine's stages have the same form as an analysis's)."""


def stage_table(analysis: Analysis) -> tuple[Stage, ...]:
    """The stages of a run of ``analysis``, in order: the engine's, then the analysis's."""
    engine = (
        Stage(
            "xsec", partial(stage_xsec, analysis=analysis), XsecOutput, (), ("analysis", "signal")
        ),
        Stage(
            "generate",
            partial(stage_generate, analysis=analysis),
            GenerateOutput,
            (),
            (
                "analysis",
                "seed",
                "signal",
                "backgrounds",
                "pseudo_data",
                "luminosity_fb",
                "observed_data",
            ),
        ),
        Stage(
            "simulate",
            partial(stage_simulate, analysis=analysis),
            SimulateOutput,
            ("generate",),
            (
                "analysis",
                "seed",
                "detector",
                "control.data_detector",
                "observed_data",
                "pseudo_data.seed_offset",
                "pseudo_data.max_copies",
                "luminosity_fb",
            ),
        ),
    )
    own = tuple(Stage(s.name, s.run, s.output, s.upstream, s.config_keys) for s in analysis.stages)
    return engine + own


def run_stage(
    ctx: StageContext,
    stage: Stage,
    hashes: dict[str, str],
    *,
    force: bool = False,
) -> StageOutput:
    """Run one stage (or reuse its recorded output) and return its output.

    The stages it reads must have run in this context (``hashes`` holds theirs; :func:`run`
    takes care of the order).
    """
    missing = [u for u in stage.upstream if u not in hashes]
    if missing:
        raise ConfigError(f"stage '{stage.name}' needs stage '{missing[0]}' first")
    digest = stage_hash(
        stage.name, ctx.config, stage.config_keys, [hashes[u] for u in stage.upstream]
    )
    record = ctx.run.stage_record(stage.name)
    if not force and record.is_file():
        try:
            state = json.loads(record.read_text())
            if state.get("hash") == digest:
                output = from_manifest(stage.output, state["outputs"], ctx.run.root)
                hashes[stage.name] = digest
                ctx.outputs[stage.name] = output
                ctx.console.print(f"[dim]stage {stage.name}: up to date ({digest})[/]")
                return output
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass  # an unreadable or outdated record: the stage runs again
    ctx.console.rule(f"stage {stage.name}")
    started = time.time()
    try:
        output = stage.run(ctx)
    except KeyboardInterrupt as err:
        raise KeyboardInterrupt(
            f"in stage {stage.name}: its outputs are not recorded; the next run resumes at "
            "this stage"
        ) from err
    seconds = round(time.time() - started, 2)
    write_json_atomic(
        record,
        {
            "stage": stage.name,
            "hash": digest,
            "seconds": seconds,
            "outputs": to_manifest(output, ctx.run.root),
        },
    )
    hashes[stage.name] = digest
    ctx.outputs[stage.name] = output
    ctx.console.print(f"stage {stage.name}: done in {seconds:.1f} s")
    return output


def quick_config(config: Config, factor: float = 0.1) -> Config:
    """A reduced copy of ``config`` for smoke runs (``zprime run --quick``): a tenth of the
    events (at most 100 000 per background sample; samples sized by a luminosity factor get
    100 000 generated events) and the analysis's own reductions
    (:meth:`zprime.analyses.base.Analysis.quick_config`). Its numbers are not physics results."""
    data = config.to_dict()
    for sample in data["backgrounds"]["samples"].values():
        if sample.get("luminosity_factor") is not None:  # sized by events in a smoke run
            sample["luminosity_factor"] = None
            sample["events"] = 1_000_000
        sample["events"] = max(5000, min(100_000, int(sample["events"] * factor)))
        sample["chunk_size"] = min(sample["chunk_size"], sample["events"])
    data = analysis_for(config).quick_config(data, factor)
    return Config.model_validate(data)


def run(
    config: Config | None = None,
    out_dir: str | Path = "results",
    *,
    quick: bool = False,
    stages: Sequence[str] | None = None,
    force: Sequence[str] = (),
    executor: Any = None,
    workers: int | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> dict[str, StageOutput]:
    """Run the stages of the configured analysis and write the results under ``out_dir``.

    Parameters
    ----------
    config
        The configuration (default: the built-in PRL analysis).
    out_dir
        Output directory; created if needed. Re-running on the same directory reuses every
        stage whose inputs did not change.
    quick
        A reduced run (:func:`quick_config`) for smoke tests.
    stages
        Run only up to the last of these stages (default: all).
    force
        Stages to re-run even if cached.
    executor, workers
        Where chunked work runs (:func:`zprime.parallel.map_tasks`).
    console
        Where progress and the summary go (default: stderr).

    Returns
    -------
    dict
        Stage name -> its typed output.
    """
    cfg = config or default_config()
    if quick:
        cfg = quick_config(cfg)
    analysis = analysis_for(cfg)
    table = stage_table(analysis)
    names = [s.name for s in table]
    for name in [*(stages or ()), *force]:
        if name not in names:
            raise ConfigError(f"unknown stage '{name}' (stages: {', '.join(names)})")
    last = max((names.index(s) for s in stages), default=len(table) - 1) if stages else None
    con = console or Console(stderr=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(cfg, RunDir(out), con, executor=executor, workers=workers, progress=progress)
    hashes: dict[str, str] = {}
    started = time.time()
    for stage in table[: None if last is None else last + 1]:
        run_stage(ctx, stage, hashes, force=stage.name in force)
    write_json_atomic(
        ctx.run.provenance,
        provenance(
            cfg.to_dict(),
            quick=quick,
            seconds=round(time.time() - started, 2),
            stages=hashes,
            outputs={k: to_manifest(v, out) for k, v in ctx.outputs.items()},
        ),
    )
    con.print(f"results under [bold]{out}[/] (provenance.json, stages/)")
    return ctx.outputs
