"""The engine's own stages, which know no search: ``xsec`` hands over to the analysis,
``generate`` and ``simulate`` make every sample a run needs.

``generate``  the analysis's signal samples and the background samples of
              ``backgrounds.default_run`` (``events/``); the pseudo-data's samples, generated again
              with their own seeds and thinned to 1/L (``events_data/``), with an injected signal
              of the analysis if asked
``simulate``  the fast detector simulation of every sample, the files side by side on the
              run's workers (``reco/<detector>/``); the
              pseudo-data's with the data detector, an event standing for k data events simulated
              as k copies made in memory, only the analysis's ``data_skim`` written
              (``reco/<data detector>/``); or a user's data converted to the reconstructed
              schema (``reco/observed/``)

Every file is cached on its own (:func:`zprime.pipeline.cache.cached_file`), by its parameters
and the source of the code that makes it, and checked against its recorded size and content
digest (a missing or damaged file is made again; so is every file of a forced stage). A
simulated file's parameters hold its generated file's hash, which covers that file's content.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from zprime.analyses.base import (
    Analysis,
    GenerateOutput,
    SignalSample,
    SimulateOutput,
    StageContext,
    XsecOutput,
)
from zprime.config import Config
from zprime.detector.realdata import convert_observed
from zprime.detector.simulation import simulate_file
from zprime.errors import ConfigError, InputError
from zprime.generators.backgrounds import generate_sample, sample_seed
from zprime.io.events import unweight_file
from zprime.parallel import map_tasks
from zprime.pipeline.cache import (
    GENERATION_CODE,
    SIMULATION_CODE,
    cached_file,
    record_file,
    reusable_file,
)

__all__ = [
    "data_seed",
    "generate_backgrounds",
    "injected_sample",
    "observed_paths",
    "stage_generate",
    "stage_simulate",
    "stage_xsec",
]


def data_seed(seed: int, seed_offset: int) -> int:
    """Master seed of the pseudo-data samples (generation and detector), independent of the
    simulation's: ``SeedSequence([seed, pseudo_data.seed_offset, 0])``."""
    return int(np.random.SeedSequence([seed, seed_offset, 0]).generate_state(1)[0])


def stage_xsec(ctx: StageContext, analysis: Analysis) -> XsecOutput:
    """The analysis's signal cross sections at the configured points."""
    return analysis.xsec(ctx)


def generate_backgrounds(
    ctx: StageContext,
    out_dir: Path,
    label: str,
    master_seed: int | None,
    digests: dict[str, str],
    *,
    group: str,
    unweight_fb: float | None = None,
) -> dict[str, Path]:
    """Generate (or reuse) every sample of ``backgrounds.default_run`` into ``out_dir``.

    ``master_seed`` ``None``: each sample's seed derives from the configuration's seed;
    otherwise from this master seed (independent samples for the pseudo-data).
    ``unweight_fb``: keep only a subset unweighted to this weight
    (:func:`zprime.io.events.unweight_file`; the pseudo-data at ``1 / L``): the full sample is
    written to ``out_dir/full/`` first and removed once the subset is written. ``digests``
    receives each file's cache digest under ``<group>/<sample>``.
    """
    cfg = ctx.config
    paths: dict[str, Path] = {}
    for name in cfg.backgrounds.default_run:
        seed = None if master_seed is None else sample_seed(master_seed, name)
        params = {
            "name": name,
            "seed": cfg.seed if seed is None else seed,
            "sample": cfg.backgrounds.samples[name].model_dump(mode="json"),
            # a sample's size (luminosity_factor x luminosity_fb) and its unweighting target
            # follow the luminosity: a run at another luminosity must not reuse it
            "luminosity_fb": cfg.luminosity_fb,
        }
        if unweight_fb is not None:
            params["unweight_fb"] = unweight_fb

        def make(name: str = name, seed: int | None = seed) -> Path:
            target = generate_sample(
                name,
                None,
                out_dir if unweight_fb is None else out_dir / "full",
                config=cfg,
                seed=seed,
                executor=ctx.executor,
                workers=ctx.workers,
                progress=ctx.progress,
            )
            if unweight_fb is None:
                return target
            stream = np.random.SeedSequence([cfg.seed if seed is None else seed, 5])
            rng = np.random.default_rng(stream)
            try:
                return unweight_file(target, out_dir / target.name, unweight_fb, rng)
            finally:
                target.unlink(missing_ok=True)

        path, digest = cached_file(ctx, f"{label}_{name}", params, make, code=GENERATION_CODE)
        paths[name] = path
        digests[f"{group}/{name}"] = digest
    return paths


def injected_sample(analysis: Analysis, cfg: Config) -> SignalSample | None:
    """The analysis's injected signal, checked against where it would go: refused (one line)
    for a user's data file, and for pseudo-data thinned from the simulation unless the
    analysis draws its injection from its own simulated samples."""
    inject = analysis.injected_signal(cfg)
    if inject is None:
        return None
    if cfg.observed_data.file is not None:
        raise ConfigError(
            "pseudo_data.inject_mass_gev (--inject-mass): a signal cannot be injected into real "
            f"data ({cfg.observed_data.file})"
        )
    if cfg.pseudo_data.source != "data_detector" and not analysis.injects_into_thinned_simulation:
        # the thinned simulation holds no injected sample: the injection would be lost
        raise ConfigError(
            f"pseudo_data.inject_mass_gev (--inject-mass): the {analysis.name} analysis injects a "
            "signal into the data detector's pseudo-data only (pseudo_data.source: "
            "data_detector)"
        )
    return inject


def stage_generate(ctx: StageContext, analysis: Analysis) -> GenerateOutput:
    """Every generated sample of the run (see the module docstring)."""
    cfg = ctx.config
    # checked before anything is generated
    inject = injected_sample(analysis, cfg)
    digests: dict[str, str] = {}
    signal: dict[str, Path] = {}
    for sample in analysis.signal_samples(cfg):

        def make(sample=sample) -> Path:
            return sample.write(ctx.run.events, sample.params["seed"], ctx)

        path, digest = cached_file(
            ctx, f"events_signal_{sample.label}", sample.params, make, code=GENERATION_CODE
        )
        signal[sample.label] = path
        digests[f"signal/{sample.label}"] = digest
    backgrounds = generate_backgrounds(ctx, ctx.run.events, "events", None, digests, group="bkg")
    pcfg = cfg.pseudo_data
    if cfg.observed_data.file is not None:
        # a user's data file is the observed data: no pseudo-data samples (simulate converts it)
        return GenerateOutput(signal, backgrounds, {}, digests)
    if pcfg.source != "data_detector":
        # pseudo_data.source: simulation: the analysis thins the selected simulation itself
        return GenerateOutput(signal, backgrounds, {}, digests)
    # the pseudo-data: every sample generated again with its own seeds, unweighted to 1 / L
    # (real data's statistical power; a sample at 10x the luminosity keeps a tenth), simulated
    # with the "data" detector in the simulate stage
    seed = data_seed(cfg.seed, pcfg.seed_offset)
    data = generate_backgrounds(
        ctx,
        ctx.run.events_data,
        "events_data",
        seed,
        digests,
        group="data",
        unweight_fb=1.0 / cfg.luminosity_fb,
    )
    if inject is not None:
        # an injected signal is an independent sample of its own (with pseudo_data.source:
        # simulation the simulation's sample of that point is thinned instead)
        params = {**inject.params, "seed": seed}

        def make_inject() -> Path:
            return inject.write(ctx.run.events_data, seed, ctx)

        path, digest = cached_file(
            ctx, f"events_data_signal_{inject.label}", params, make_inject, code=GENERATION_CODE
        )
        data["signal"] = path
        digests["data/signal"] = digest
    return GenerateOutput(signal, backgrounds, data, digests)


def observed_paths(cfg: Config) -> tuple[Path, Path]:
    """The user's data file and its column map (``observed_data``), both existing.

    Raises
    ------
    ConfigError
        No column map for the file.
    InputError
        Either file missing, named with its option.
    """
    obs = cfg.observed_data
    src = Path(obs.file or "")
    if obs.columns is None:
        raise ConfigError(f"observed_data.columns: {src} needs a column map (--columns MAP.yaml)")
    columns = Path(obs.columns)
    for path, what in (
        (src, "observed_data.file (--data)"),
        (columns, "observed_data.columns (--columns)"),
    ):
        if not path.is_file():
            raise InputError(f"{what}: {path}: file not found")
    return src, columns


def _convert_observed(ctx: StageContext) -> Path:
    """The user's ntuple (``observed_data.file``) converted to our reconstructed schema, cached
    by the file's size and modification time and by the column map's content."""
    obs = ctx.config.observed_data
    src, columns = observed_paths(ctx.config)
    stat = src.stat()
    params = {
        "file": str(src.resolve()),
        "size": stat.st_size,
        "mtime": stat.st_mtime_ns,
        "columns": columns.read_text(),
        "tree": obs.tree,
    }

    def make() -> Path:
        ctx.console.print(f"convert {src} with the column map {columns}")
        return convert_observed(src, columns, ctx.run.observed_reco, tree=obs.tree)

    path, _ = cached_file(ctx, "reco_observed", params, make, code=SIMULATION_CODE)
    return path


class _SimulationJob(NamedTuple):
    """One file for :func:`zprime.detector.simulation.simulate_file`."""

    label: str
    params: dict[str, Any]
    kwargs: dict[str, Any]


def _simulate_job(kwargs: dict[str, Any]) -> Path:
    """Module level, so that a process pool or a dask worker can run it."""
    return simulate_file(**kwargs)


#: below this many bytes of generated input the missing files are simulated in this process:
#: starting worker processes (each imports zprime and torch) costs more than it saves
PARALLEL_SIMULATION_BYTES = 64 << 20


def _simulate_jobs(ctx: StageContext, jobs: list[_SimulationJob]) -> list[Path]:
    """The files of ``jobs``, each reused or made; the missing ones are made in parallel when
    their inputs hold at least :data:`PARALLEL_SIMULATION_BYTES`.

    Every file's random numbers depend on the seed and its own name only
    (:func:`~zprime.detector.simulation.simulate_file`), so they are the same whether the
    files are made one after another or side by side. A file is stamped once every missing file
    is made: after a failure the finished ones are made again by the next run."""
    found = [reusable_file(ctx, j.label, j.params, code=SIMULATION_CODE) for j in jobs]
    todo = [k for k, f in enumerate(found) if f is None]
    size = sum(Path(jobs[k].kwargs["input_path"]).stat().st_size for k in todo)
    for k in todo:
        kw = jobs[k].kwargs
        kind = ", pseudo-data" if kw.get("unweight_fb") is not None else ""
        ctx.console.print(f"simulate {Path(kw['input_path']).name} ({kw['detector']}{kind})")
    made = (
        map_tasks(
            _simulate_job,
            [jobs[k].kwargs for k in todo],
            executor=ctx.executor if size >= PARALLEL_SIMULATION_BYTES else "serial",
            workers=ctx.workers,
            description="simulate",
            progress=ctx.progress,
        )
        if todo
        else []
    )
    for k, path in zip(todo, made, strict=True):
        found[k] = record_file(ctx, jobs[k].label, jobs[k].params, path, code=SIMULATION_CODE)
    return [f[0] for f in found if f is not None]


def stage_simulate(ctx: StageContext, analysis: Analysis) -> SimulateOutput:
    """Every sample through its detector (see the module docstring), the files side by side
    on the run's workers."""
    gen: GenerateOutput = ctx.output("generate", GenerateOutput)
    cfg = ctx.config
    detector = cfg.detector.use
    det_cfg = cfg.detector.get(detector).model_dump(mode="json")
    out_dir = ctx.run.reco(detector)
    keys: list[tuple[str, str]] = []
    jobs: list[_SimulationJob] = []
    for group, files in (("signal", gen.signal), ("bkg", gen.backgrounds)):
        for key, path in files.items():
            keys.append((group, key))
            jobs.append(
                _SimulationJob(
                    f"reco_{detector}_{path.stem}",
                    {"input": gen.digests[f"{group}/{key}"], "detector": det_cfg, "seed": cfg.seed},
                    {"input_path": path, "out_dir": out_dir, "detector": detector, "config": cfg},
                )
            )
    if cfg.observed_data.file is None and gen.data:
        # the pseudo-data samples: generated with their own seeds (generate stage), simulated
        # with the data detector and its own random numbers. An event that stands for k data
        # events is simulated k times, each copy with its own detector random numbers
        # (zprime.io.unweighting.unweight_batch): real data hold k independent events, not a
        # clump of k identical ones; the copies are made batch by batch in memory, and events
        # that none of the analysis's selections can take (its skim) are not written
        data_det = cfg.control.data_detector
        data_cfg = cfg.detector.get(data_det).model_dump(mode="json")
        seed = data_seed(cfg.seed, cfg.pseudo_data.seed_offset)
        skim = analysis.data_skim(cfg)
        for key, path in gen.data.items():
            stream = np.random.SeedSequence([seed, 6, zlib.crc32(path.name.encode())])
            keys.append(("data", key))
            jobs.append(
                _SimulationJob(
                    f"reco_{data_det}_{path.stem}",
                    {
                        "input": gen.digests[f"data/{key}"],
                        "detector": data_cfg,
                        "data_seed": seed,
                        "max_copies": cfg.pseudo_data.max_copies,
                        "skim": skim.params(),
                    },
                    {
                        "input_path": path,
                        "out_dir": ctx.run.reco(data_det),
                        "detector": data_det,
                        "config": cfg,
                        "seed": seed,
                        "skim": skim,
                        "unweight_fb": 1.0 / cfg.luminosity_fb,
                        "unweight_rng": np.random.default_rng(stream),
                        "max_copies": cfg.pseudo_data.max_copies,
                    },
                )
            )
    groups: dict[str, dict[str, Path]] = {"signal": {}, "bkg": {}, "data": {}}
    for (group, key), target in zip(keys, _simulate_jobs(ctx, jobs), strict=True):
        groups[group][key] = target
    signal, backgrounds = groups["signal"], groups["bkg"]
    if cfg.observed_data.file is not None:
        return SimulateOutput(signal, backgrounds, {"observed": _convert_observed(ctx)})
    if not gen.data:
        # pseudo_data.source: simulation: the control samples compare the simulation with
        # itself (no data-detector sample exists)
        return SimulateOutput(signal, backgrounds, dict(backgrounds))
    return SimulateOutput(signal, backgrounds, groups["data"])
