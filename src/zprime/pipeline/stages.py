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
of the hashes of the stages before it, which cover their outputs' content
(:mod:`zprime.pipeline.cache`): changing a cut re-runs ``select`` and what follows, not the
generation. Generated and simulated files are cached one by one, by their own parameters and
the code that makes them. A stage's record lists its output files with their sizes and content
digests, checked on reuse: a missing or damaged output runs the stage again (and a damaged
cached file is made again). ``force`` re-runs the stages named, makes their cached files again
and re-runs every stage after the first of them. A stage records itself only after all its
outputs are written (each of them atomically), so an interrupted run resumes at the first
stage that did not finish and never reads a half-written file; the temporary files a killed
run leaves (``.<name>.<random>.part``) are removed when the next run starts.

A run holds an exclusive lock on its directory (:func:`lock_run_dir`, ``.zprime.lock``) from
start to end: a second run on the same directory stops at once with a
:class:`zprime.errors.RunLockedError` naming the run that holds it. ``provenance.json`` records
the configuration, seeds, package versions and git commit of the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

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
from zprime.detector.realdata import check_observed
from zprime.errors import ConfigError, InputError, RunLockedError
from zprime.io.rundir import RunDir, StageOutput, from_manifest, to_manifest
from zprime.pipeline.cache import (
    chain,
    check_outputs,
    is_partial,
    output_files,
    outputs_digest,
    stage_hash,
)
from zprime.pipeline.samples import (
    injected_sample,
    observed_paths,
    stage_generate,
    stage_simulate,
    stage_xsec,
)

__all__ = [
    "Stage",
    "check_inputs",
    "lock_run_dir",
    "quick_config",
    "remove_partial_files",
    "run",
    "run_stage",
    "stage_table",
]


#: the luminosity of a quick run (fb^-1); see :func:`quick_config`
QUICK_LUMINOSITY_FB = 1.0

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


def _reuse(ctx: StageContext, stage: Stage, key: str) -> tuple[StageOutput, str] | None:
    """The recorded output of ``stage`` and its digest, if its record has the key ``key`` and
    every file it lists is as recorded; else ``None`` (the stage runs again)."""
    record = ctx.run.stage_record(stage.name)
    if not record.is_file():
        return None
    try:
        state = json.loads(record.read_text())
        if not isinstance(state, dict) or state.get("hash") != key:
            return None
        manifest = state["outputs"]
        output = from_manifest(stage.output, manifest, ctx.run.root)
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None  # an unreadable or outdated record: the stage runs again
    files = state.get("files")
    if not isinstance(files, dict):
        ctx.console.print(
            f"stage {stage.name}: its record lists no output files (an older zprime), running again"
        )
        return None
    problem, refreshed = check_outputs(ctx.run.root, files)
    if problem is not None:
        ctx.console.print(f"stage {stage.name}: output {escape(problem)}, running again")
        return None
    if refreshed != files:  # same content, new modification times (a copied run directory)
        write_json_atomic(record, {**state, "files": refreshed})
    return output, outputs_digest(manifest, refreshed)


def run_stage(
    ctx: StageContext,
    stage: Stage,
    hashes: dict[str, str],
    *,
    force: bool = False,
    remake_files: bool = False,
) -> StageOutput:
    """Run one stage (or reuse its recorded output) and return its output.

    The stages it reads must have run in this context (``hashes`` holds theirs; :func:`run`
    takes care of the order). The recorded output is reused when the stage's key is the
    recorded one and its files are as recorded (:func:`zprime.pipeline.cache.check_outputs`).

    Parameters
    ----------
    ctx
        The run's context; receives the stage's output.
    stage
        The stage.
    hashes
        Stage name -> chained hash (its key and its outputs' digest) of the stages run so far;
        receives this stage's.
    force
        Run it even if its record holds.
    remake_files
        Make its cached files again too (``ctx.force_files`` while it runs).

    Returns
    -------
    StageOutput
        The stage's output.
    """
    missing = [u for u in stage.upstream if u not in hashes]
    if missing:
        raise ConfigError(f"stage '{stage.name}' needs stage '{missing[0]}' first")
    key = stage_hash(stage.name, ctx.config, stage.config_keys, [hashes[u] for u in stage.upstream])
    reused = None if force or remake_files else _reuse(ctx, stage, key)
    if reused is not None:
        output, digest = reused
        hashes[stage.name] = chain(key, digest)
        ctx.outputs[stage.name] = output
        ctx.console.print(f"[dim]stage {stage.name}: up to date ({key})[/]")
        return output
    ctx.console.rule(f"stage {stage.name}")
    started = time.time()
    ctx.force_files = remake_files
    try:
        output = stage.run(ctx)
    except KeyboardInterrupt as err:
        raise KeyboardInterrupt(
            f"in stage {stage.name}: its outputs are not recorded; the next run resumes at "
            "this stage"
        ) from err
    finally:
        ctx.force_files = False
    seconds = round(time.time() - started, 2)
    manifest = to_manifest(output, ctx.run.root)
    files = output_files(manifest, ctx.run.root)
    write_json_atomic(
        ctx.run.stage_record(stage.name),
        {
            "stage": stage.name,
            "hash": key,
            "seconds": seconds,
            "outputs": manifest,
            "files": files,
        },
    )
    hashes[stage.name] = chain(key, outputs_digest(manifest, files))
    ctx.outputs[stage.name] = output
    ctx.console.print(f"stage {stage.name}: done in {seconds:.1f} s")
    return output


# ----------------------------------------------------------------------------- the run directory


def _holder_text(path: Path) -> str:
    """Who holds the lock at ``path``, from what it wrote there (one line)."""
    try:
        info = json.loads(path.read_text())
        command = shlex.join(str(a) for a in info.get("command") or [])
        text = f"run pid {info['pid']} on {info['host']} since {info['started']} ({command})"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        text = "another run (it has not said which yet)"
    return " ".join(text.split())


@contextlib.contextmanager
def lock_run_dir(run_dir: RunDir, console: Console | None = None) -> Iterator[bool]:
    """Hold the exclusive lock of a run directory (``RunDir.lock``) while the block runs.

    ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``.zprime.lock``, into which the holder writes its
    pid, host, start time and command line. The lock belongs to this open file: it is released
    when the block ends (also on errors and interrupts) and by the kernel when the process dies,
    so a killed run leaves no stale lock. The file itself stays (removing it would let two runs
    lock two different files). On a file system without ``flock`` the block runs unlocked, with
    a warning on ``console``.

    Yields
    ------
    bool
        Whether the lock is held.

    Raises
    ------
    RunLockedError
        If another run holds the lock (one line naming it).
    InputError
        If the lock file cannot be opened.
    """
    path = run_dir.lock
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"{path}: cannot open the run's lock file ({exc.strerror})") from None
    try:
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLockedError(
                    f"{run_dir.root} is in use by {_holder_text(path)}; wait for it to end or "
                    "choose another output directory"
                ) from None
            # a file system without flock: run unlocked rather than not at all
            locked = False
            if console is not None:
                console.print(
                    f"{escape(str(path))}: cannot lock ({escape(exc.strerror or '')}); "
                    "concurrent runs on this directory are not prevented",
                    style="yellow",
                )
        if locked:
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": list(sys.argv),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield locked
        finally:
            if locked:
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def remove_partial_files(root: str | Path) -> list[Path]:
    """Remove the temporary files a killed run left under ``root`` (named
    ``.<name>.<random>.part`` by :func:`zprime._util.atomic_path`); only while holding the run
    directory's lock (:func:`lock_run_dir`), so that no running writer's file is removed.
    Returns the paths removed."""
    removed = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*filenames, *dirnames]:
            path = Path(dirpath) / name
            if not is_partial(path):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                dirnames.remove(name)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def quick_config(config: Config, factor: float = 0.1) -> Config:
    """A reduced copy of ``config`` for smoke runs (``zprime run --quick``).

    The luminosity becomes :data:`QUICK_LUMINOSITY_FB` (at most the configured one): samples
    sized by a luminosity factor shrink with it (to about 1/80 of the default run's events) and
    still stand for the same multiple of the data, so the quick run's fits compare like with
    like. (Keeping 79.7 fb^-1 with 10^5 simulated events per sample made every simulated event
    weigh hundreds of data events: the fits then reported 40-sigma "excesses" with no signal.)
    Samples sized by their number of events keep ``factor`` of it (5 000 to 100 000), and the
    analysis reduces its own sections (:meth:`zprime.analyses.base.Analysis.quick_config`).
    Its numbers are a smoke test, not physics results: ``report.smoke_test`` is set, and the
    summary says so and reports no significance. (The simulation of a quick run stands for the
    same multiple of the data on average, but where a generator's events are heavy, as the
    four-fermion generator's are at the highest recoil masses, about 15 data events each at any
    luminosity, a quick run has a handful of events per bin on both sides: its local
    significances there are fluctuations of the simulation, tens of sigma.)
    """
    data = config.to_dict()
    data["luminosity_fb"] = min(float(data["luminosity_fb"]), QUICK_LUMINOSITY_FB)
    data["report"]["smoke_test"] = True
    for sample in data["backgrounds"]["samples"].values():
        if sample.get("luminosity_factor") is None:
            sample["events"] = max(5000, min(100_000, int(sample["events"] * factor)))
            sample["chunk_size"] = min(sample["chunk_size"], sample["events"])
    data = analysis_for(config).quick_config(data, factor)
    return Config.model_validate(data)


def check_inputs(config: Config) -> None:
    """Refuse, before any stage runs, an input that a run would otherwise find only late.

    The configuration's numbers were checked when it was read (:mod:`zprime.config`); here the
    user's data file and its column map are opened and their first rows converted and checked
    (:func:`zprime.detector.realdata.check_observed`), so that a wrong branch or a corrupt value
    stops the run at once rather than after the generate stage.

    Raises
    ------
    ConfigError, InputError
        One line naming the option, file or column.
    """
    # an injection where it cannot go (real data; a thinned simulation without one)
    injected_sample(analysis_for(config), config)
    obs = config.observed_data
    if obs.file is None:
        return
    data, columns = observed_paths(config)
    check_observed(data, columns, tree=obs.tree)


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
        Stages to re-run even if cached, with their cached files made again; every stage after
        the first of them runs again too.
    executor, workers
        Where chunked work runs (:func:`zprime.parallel.map_tasks`).
    console
        Where progress and the summary go (default: stderr).

    Returns
    -------
    dict
        Stage name -> its typed output.

    Raises
    ------
    ConfigError, InputError
        For a bad data file or column map (:func:`check_inputs`), before anything is written.
    RunLockedError
        If another run is using ``out_dir`` (:func:`lock_run_dir`).
    """
    cfg = config or default_config()
    check_inputs(cfg)
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
    run_dir = RunDir(out)
    with lock_run_dir(run_dir, con) as locked:
        stale = remove_partial_files(out) if locked else []
        if stale:
            con.print(f"removed {len(stale)} temporary file(s) left by an interrupted run")
        ctx = StageContext(cfg, run_dir, con, executor=executor, workers=workers, progress=progress)
        hashes: dict[str, str] = {}
        first_forced = min((names.index(f) for f in force), default=len(table))
        started = time.time()
        for i, stage in enumerate(table[: None if last is None else last + 1]):
            run_stage(
                ctx,
                stage,
                hashes,
                force=i >= first_forced,
                remake_files=stage.name in force,
            )
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
    con.print(f"results under [bold]{escape(str(out))}[/] (provenance.json, stages/)")
    return ctx.outputs
