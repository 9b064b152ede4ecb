"""Orchestration of the analysis stages behind ``zprime run``.

Stages, in order (``../shared/DESIGN.md``):

``xsec``      sigma(e+e- -> mu+ mu- Z') at g' = 1, B(invisible) and the (g-2)_mu band at the
              configured masses (``xsec.csv``)
``generate``  signal samples at ``signal.masses_gev`` and the background samples of
              ``backgrounds.default_run`` (``events/``); the pseudo-data's samples, generated
              again with their own seeds and thinned to 1/L (``events_data/``)
``simulate``  the fast detector simulation of every sample (``reco/<detector>/``); the
              pseudo-data's with the data detector, an event standing for k data events as k
              copies (``reco/data/``)
``select``    the selection without the Punzi-net (``selected/presel/``, cut flows)
``train``     the measured M_recoil^2 resolution (``resolution.json``), the Punzi-net trained
              in windows of it (``punzinet.pt``), applied to every sample, the final selection
              (``selected/final/``) and its diagnostics (``selection/``)
``control``   the control samples: data/simulation corrections and derived systematics
              (``control/corrections.json``)
``template``  pseudo-data (or the user's data) and the fit templates (``templates_narrow/``,
              ``templates_wide/``)
``fit``       limits, significances and pyhf workspaces per hypothesis (``limits_*.csv``)
``report``    results tables (``limits.csv``, ``limits.parquet``, ``summary.md``), figures
              (``figures/``), projections (``projections/``) and HEPData (``hepdata/``)

Each stage is cached by a hash of the configuration fields it depends on, of zprime's code and
of the hashes of the stages before it: changing a cut re-runs ``select`` and what follows, not
the generation. Generated and simulated files are cached one by one, by their own parameters
(and zprime's version), so that a re-run stage reuses every file whose inputs did not change. A
stage records itself in ``stages/<name>.json`` only after all its outputs are written (each of
them atomically), so an interrupted run resumes at the first stage that did not finish and never
reads a half-written file. ``provenance.json`` records the configuration, seeds, package
versions and git commit of the run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from zprime import __version__
from zprime._util import atomic_path, provenance, write_json_atomic
from zprime.config import Config, default_config
from zprime.errors import ConfigError, InputError

__all__ = ["STAGES", "RunContext", "quick_config", "run", "run_stage", "xsec_summary"]


# ----------------------------------------------------------------------------- context


@dataclass
class RunContext:
    """What every stage sees: the configuration, the output directory and the executor."""

    config: Config
    out: Path
    console: Console
    executor: Any = None
    workers: int | None = None
    progress: bool = True
    hashes: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        """A path under the output directory (parents created)."""
        p = self.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def _config_subset(config: Config, keys: Sequence[str]) -> dict[str, Any]:
    data = config.to_dict()
    out: dict[str, Any] = {}
    for key in keys:
        node: Any = data
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def _code_digest() -> str:
    """A digest of zprime's own source files: a stage is re-run when the code changes."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _stage_hash(name: str, config: Config, keys: Sequence[str], upstream: Sequence[str]) -> str:
    h = hashlib.sha256()
    payload = [name, __version__, _code_digest(), _config_subset(config, keys), list(upstream)]
    h.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- stages


def _cached_file(
    ctx: RunContext, label: str, params: dict[str, Any], make: Callable[[], Path]
) -> tuple[Path, str]:
    """Make one file, or reuse it when its stamp records the same parameters.

    The stamp ``<file>.stamp`` is written after the file, so a file whose making was
    interrupted is made again. Returns the path and the parameters' hash (to chain stamps).
    """
    digest = hashlib.sha256(
        json.dumps([__version__, params], sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    stamps = ctx.out / "stages" / "files"
    stamp = stamps / f"{label}.stamp"
    if stamp.is_file():
        try:
            recorded = json.loads(stamp.read_text())
        except (OSError, json.JSONDecodeError):
            recorded = {}
        if recorded.get("hash") == digest and Path(recorded.get("path", "")).is_file():
            ctx.console.print(f"[dim]{label}: up to date[/]")
            return Path(recorded["path"]), digest
    path = make()
    write_json_atomic(stamp, {"hash": digest, "path": str(path)})
    return path, digest


def xsec_summary(config: Config) -> list[dict[str, float]]:
    """Cross section, B(invisible) and the (g-2)_mu band at the configured signal masses.

    Returns one row per mass with ``mass_gev``, ``sigma_g1_fb`` (sigma(e+e- -> mu mu Z') at
    g' = 1 with ISR, from the cached table), ``br_inv_vanilla``, ``br_inv_fully_invisible`` and
    the band ``g2_low``/``g2_high`` of g' that explains Delta a_mu within 2 sigma.
    """
    from zprime.generators.signal import load_xsec_table
    from zprime.physics.model import branching_invisible, g2_band

    masses = np.asarray(config.signal.masses_gev, dtype=float)
    sigma = np.broadcast_to(load_xsec_table().sigma_fb(masses, g=1.0), masses.shape)
    br_van = np.broadcast_to(branching_invisible(masses, "vanilla"), masses.shape)
    br_inv = np.broadcast_to(branching_invisible(masses, "fully_invisible"), masses.shape)
    g_lo, _, g_hi = g2_band(masses)
    return [
        {
            "mass_gev": float(masses[i]),
            "sigma_g1_fb": float(sigma[i]),
            "br_inv_vanilla": float(br_van[i]),
            "br_inv_fully_invisible": float(br_inv[i]),
            "g2_low": float(np.asarray(g_lo)[i]),
            "g2_high": float(np.asarray(g_hi)[i]),
        }
        for i in range(masses.size)
    ]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _stage_xsec(ctx: RunContext) -> dict[str, Any]:
    rows = xsec_summary(ctx.config)
    path = ctx.path("xsec.csv")
    _write_csv(path, rows)
    table = Table(title="e+e- -> mu+ mu- Z' at sqrt(s) = 10.58 GeV (g' = 1, ISR)")
    for col in ("M_Z' [GeV]", "sigma [fb]", "B(inv) vanilla", "B(inv) fully inv.", "(g-2) band g'"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['mass_gev']:.3f}",
            f"{r['sigma_g1_fb']:.4g}",
            f"{r['br_inv_vanilla']:.3f}",
            f"{r['br_inv_fully_invisible']:.3f}",
            f"{r['g2_low']:.2e}-{r['g2_high']:.2e}",
        )
    ctx.console.print(table)
    return {"xsec": str(path)}


def _signal_masses(config: Config) -> list[float]:
    """The simulated signal masses: the configured ones and an injected one."""
    masses = list(config.signal.masses_gev)
    inject = config.pseudo_data.inject_mass_gev
    if inject is not None and config.pseudo_data.inject_xsec_fb > 0 and inject not in masses:
        masses.append(inject)
    return masses


def _data_seed(config: Config) -> int:
    """Master seed of the pseudo-data samples (generation and detector), independent of the
    simulation's: ``SeedSequence([seed, pseudo_data.seed_offset, 0])``."""
    return int(
        np.random.SeedSequence([config.seed, config.pseudo_data.seed_offset, 0]).generate_state(1)[
            0
        ]
    )


def _signal_seed(config: Config, index: int) -> int:
    return int(np.random.SeedSequence([config.seed, 3, index]).generate_state(1)[0])


def _generate_backgrounds(
    ctx: RunContext,
    out_dir: Path,
    label: str,
    master_seed: int | None,
    hashes: dict[str, str],
    *,
    unweight_fb: float | None = None,
) -> dict[str, str]:
    """Generate (or reuse) every sample of ``backgrounds.default_run`` into ``out_dir``.

    ``master_seed`` ``None``: each sample's seed derives from the configuration's seed;
    otherwise from this master seed (independent samples for the pseudo-data).
    ``unweight_fb``: keep only a subset unweighted to this weight
    (:func:`zprime.io.events.unweight_file`; the pseudo-data at ``1 / L``): the full sample is
    written to ``out_dir/full/`` first and removed once the subset is written.
    """
    from zprime.generators.backgrounds import generate_sample, sample_seed
    from zprime.io.events import unweight_file

    cfg = ctx.config
    paths: dict[str, str] = {}
    for name in cfg.backgrounds.default_run:
        seed = None if master_seed is None else sample_seed(master_seed, name)
        params = {
            "name": name,
            "seed": cfg.seed if seed is None else seed,
            "sample": cfg.backgrounds.samples[name].model_dump(mode="json"),
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

        path, digest = _cached_file(ctx, f"{label}_{name}", params, make)
        paths[name] = str(path)
        hashes[str(path)] = digest
    return paths


def _stage_generate(ctx: RunContext) -> dict[str, Any]:
    from zprime.generators.signal import write_signal

    cfg = ctx.config
    out_dir = ctx.out / "events"
    result: dict[str, dict[str, Any]] = {"signal": {}, "backgrounds": {}, "hashes": {}}
    for i, mass in enumerate(_signal_masses(cfg)):
        params = {
            "mass": mass,
            "n": cfg.signal.events_per_mass,
            "seed": _signal_seed(cfg, i),
            "isr": cfg.signal.isr,
            "alpha_inverse": cfg.signal.alpha_inverse,
        }

        def make(mass: float = mass, params: dict[str, Any] = params) -> Path:
            return write_signal(
                mass,
                params["n"],
                out_dir,
                seed=params["seed"],
                isr=params["isr"],
                alpha=1.0 / params["alpha_inverse"],
                executor=ctx.executor,
                workers=ctx.workers,
                progress=ctx.progress,
            )

        path, digest = _cached_file(ctx, f"events_signal_{mass:g}", params, make)
        result["signal"][f"{mass:g}"] = str(path)
        result["hashes"][str(path)] = digest
    result["backgrounds"] = _generate_backgrounds(ctx, out_dir, "events", None, result["hashes"])
    # the pseudo-data (pseudo_data.source: data_detector): the same processes generated again
    # with their own seeds, simulated with the "data" detector in the simulate stage
    data_dir = ctx.out / "events_data"
    data_seed = _data_seed(cfg)
    if cfg.observed_data.file is not None:
        # a user's data file is the observed data: no pseudo-data samples (simulate converts it)
        if cfg.pseudo_data.inject_mass_gev is not None and cfg.pseudo_data.inject_xsec_fb > 0:
            raise ConfigError(
                "pseudo_data.inject_mass_gev: a signal cannot be injected into real data "
                f"({cfg.observed_data.file})"
            )
        result["data"] = {}
        return result
    if cfg.pseudo_data.source == "data_detector":
        # the pseudo-data: every sample generated again with its own seeds, unweighted to
        # 1 / L (real data's statistical power; a sample at 10x the luminosity keeps a tenth)
        result["data"] = _generate_backgrounds(
            ctx,
            data_dir,
            "events_data",
            data_seed,
            result["hashes"],
            unweight_fb=1.0 / cfg.luminosity_fb,
        )
    else:  # pseudo_data.source: simulation (the selected simulation is thinned in _pseudo_data)
        result["data"] = {}
    inject = cfg.pseudo_data.inject_mass_gev
    # an injected signal is an independent sample of its own (with pseudo_data.source:
    # simulation the simulation's sample of that mass is thinned instead)
    if inject is not None and cfg.pseudo_data.inject_xsec_fb > 0 and result["data"]:
        params = {
            "mass": inject,
            "n": cfg.signal.events_per_mass,
            "seed": data_seed,
            "isr": cfg.signal.isr,
            "alpha_inverse": cfg.signal.alpha_inverse,
        }

        def make_inject() -> Path:
            return write_signal(
                inject,
                cfg.signal.events_per_mass,
                data_dir,
                seed=data_seed,
                isr=cfg.signal.isr,
                alpha=1.0 / cfg.signal.alpha_inverse,
                executor=ctx.executor,
                workers=ctx.workers,
                progress=ctx.progress,
            )

        path, digest = _cached_file(ctx, f"events_data_signal_{inject:g}", params, make_inject)
        result["data"]["signal"] = str(path)
        result["hashes"][str(path)] = digest
    return result


def _stage_simulate(ctx: RunContext) -> dict[str, Any]:
    from zprime.detector.simulation import simulate_file
    from zprime.io.events import unweight_file

    gen = ctx.outputs["generate"]
    detector = ctx.config.detector.use
    det_cfg = ctx.config.detector.get(detector).model_dump(mode="json")
    out_dir = ctx.out / "reco" / detector
    result: dict[str, dict[str, str]] = {"signal": {}, "backgrounds": {}}
    for group in ("signal", "backgrounds"):
        for key, path in gen[group].items():
            params = {"input": gen["hashes"][path], "detector": det_cfg, "seed": ctx.config.seed}

            def make(path: str = path) -> Path:
                ctx.console.print(f"simulate {Path(path).name} ({detector})")
                return simulate_file(path, out_dir, detector=detector, config=ctx.config)

            target, _ = _cached_file(ctx, f"reco_{detector}_{Path(path).stem}", params, make)
            result[group][key] = str(target)
    data_det = ctx.config.control.data_detector
    data_cfg = ctx.config.detector.get(data_det).model_dump(mode="json")
    result["data"] = {}
    obs = ctx.config.observed_data
    if obs.file is not None:
        result["data"]["observed"] = str(_convert_observed(ctx))
        return result
    if not gen.get("data"):
        # pseudo_data.source: simulation: the control samples compare the simulation with
        # itself (no data-detector sample exists)
        result["data"] = dict(result["backgrounds"])
        return result
    # the pseudo-data samples: generated with their own seeds (generate stage), simulated with
    # the data detector and its own random numbers
    data_seed = _data_seed(ctx.config)
    lumi = ctx.config.luminosity_fb
    max_copies = ctx.config.pseudo_data.max_copies
    for key, path in gen["data"].items():
        params = {
            "input": gen["hashes"][path],
            "detector": data_cfg,
            "data_seed": data_seed,
            "max_copies": max_copies,
            "min_tracks": 2,
        }

        def make_data(path: str = path) -> Path:
            # an event that stands for k data events is simulated k times, each copy with its
            # own detector random numbers (zprime.io.events.unweight_file): real data hold k
            # independent events, not a clump of k identical ones
            ctx.console.print(f"simulate {Path(path).name} ({data_det}, pseudo-data)")
            copies = ctx.out / "reco" / data_det / "copies" / Path(path).name
            stream = np.random.SeedSequence([data_seed, 6, zlib.crc32(Path(path).name.encode())])
            rng = np.random.default_rng(stream)
            unweight_file(path, copies, 1.0 / lumi, rng, max_copies=max_copies)
            try:
                # events with fewer than two tracks can enter no selection (the signal region
                # and every control sample have two tracks): the pseudo-data keep none of them
                return simulate_file(
                    copies,
                    ctx.out / "reco" / data_det,
                    detector=data_det,
                    config=ctx.config,
                    seed=data_seed,
                    min_tracks=2,
                )
            finally:
                copies.unlink(missing_ok=True)

        target, _ = _cached_file(ctx, f"reco_{data_det}_{Path(path).stem}", params, make_data)
        result["data"][key] = str(target)
    return result


def _convert_observed(ctx: RunContext) -> Path:
    """The user's ntuple (``observed_data.file``) converted to our reconstructed schema, cached
    by the file's size and modification time and by the column map's content."""
    from zprime.detector.realdata import convert_observed

    obs = ctx.config.observed_data
    src = Path(obs.file or "")
    columns = Path(obs.columns or "")
    if obs.columns is None:
        raise ConfigError(f"observed_data.columns: {src} needs a column map (--columns MAP.yaml)")
    for path, what in ((src, "observed_data.file"), (columns, "observed_data.columns")):
        if not path.is_file():
            raise InputError(f"{what}: {path}: file not found")
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
        return convert_observed(
            src, columns, ctx.out / "reco" / "observed" / "observed.parquet", tree=obs.tree
        )

    path, _ = _cached_file(ctx, "reco_observed", params, make)
    return path


def _stage_select(ctx: RunContext) -> dict[str, Any]:
    from zprime.analyses.invisible_zprime.selection import select_file

    cfg = ctx.config
    reco = ctx.outputs["simulate"]
    out_dir = ctx.out / "selected" / "presel"
    result: dict[str, dict[str, str]] = {"signal": {}, "backgrounds": {}}
    flows = []
    for group in ("signal", "backgrounds"):
        for key, path in reco[group].items():
            target, flow = select_file(
                path, out_dir, cfg.selection, luminosity_fb=cfg.luminosity_fb, skip=["punzinet"]
            )
            result[group][key] = str(target)
            flows.append(flow)
    result["data"] = {}
    for key, path in reco.get("data", {}).items():
        target, _ = select_file(
            path,
            ctx.out / "selected" / "data_presel",
            cfg.selection,
            luminosity_fb=cfg.luminosity_fb,
            skip=["punzinet"],
        )
        result["data"][key] = str(target)
    # the templates move signal events to every hypothesis and re-apply the M^2-dependent
    # theta_recoil cut there, so they need the signal selected without that step
    result["signal_notheta"] = {}
    for key, path in reco["signal"].items():
        target, _ = select_file(
            path,
            ctx.out / "selected" / "presel_notheta",
            cfg.selection,
            luminosity_fb=cfg.luminosity_fb,
            skip=["punzinet", "theta_recoil"],
        )
        result["signal_notheta"][key] = str(target)
    summary = "\n".join(f.to_markdown() for f in flows)
    with atomic_path(ctx.path("selected", "presel", "cutflows.md")) as tmp:
        tmp.write_text(summary)
    return result


def _stage_train(ctx: RunContext) -> dict[str, Any]:
    from zprime.analyses.invisible_zprime import punzinet
    from zprime.analyses.invisible_zprime.binning import resolution_model_from_config
    from zprime.analyses.invisible_zprime.selection import select_file
    from zprime.analyses.invisible_zprime.templates import SimulatedSignal
    from zprime.io.events import transform_file

    cfg = ctx.config
    presel = ctx.outputs["select"]
    # the M_recoil^2 resolution is a property of the detector: measured on the signal before
    # the network cut (and before the M^2-dependent theta_recoil cut), where the samples are
    # largest. The network's windows and the fit's use this one model (resolution.json).
    notheta = [SimulatedSignal.read(p) for p in presel["signal_notheta"].values()]
    resolution = resolution_model_from_config(cfg.binning, {s.mass: s.residuals for s in notheta})
    resolution_path = resolution.save(ctx.path("resolution.json"))
    # no network (``punzinet`` in selection.disabled, e.g. the pilot2018 preset): nothing is
    # trained; the final selection is the preselection (every enabled step but the network)
    # and the outputs carry ``model: None``. Otherwise the network is applied below to every
    # event of every sample with its original weight: the training/test split only serves the
    # training and its figure of merit.
    model: Any = None
    model_path: Path | None = None
    if "punzinet" not in cfg.selection.disabled:
        sig_paths = list(presel["signal"].values())
        bkg_paths = list(presel["backgrounds"].values())
        signals, background = punzinet.read_training_files(sig_paths, bkg_paths)
        model = punzinet.train(
            signals,
            background,
            config=cfg.punzinet,
            luminosity_fb=cfg.luminosity_fb,
            resolution=resolution,
            progress=ctx.progress,
            cut=cfg.selection.punzinet_min,
        )
        del signals, background  # the training copies (GBs at 10x the luminosity)
        model_path = punzinet.save(model, ctx.path("punzinet.pt"))
    else:
        ctx.console.print("train: 'punzinet' is disabled; final selection = preselection")

    def scored(src: Path, folder: str) -> Path:
        """``src`` with the network output (or ``src`` itself without a network)."""
        if model is None:
            return src
        target = ctx.out / "selected" / folder / src.name
        transform_file(src, target, partial(punzinet.apply, model))
        return target

    def select_scored(src: Path, folder: str, out_dir: Path, **kwargs: Any) -> tuple[Path, Any]:
        """The final selection of ``src`` scored by the network; the scored copy is an
        intermediate (a full copy of the preselection: 1-2 GB for samples at 10x the
        luminosity) and is removed once the selection is written."""
        path = scored(src, folder)
        try:
            return select_file(
                path, out_dir, cfg.selection, luminosity_fb=cfg.luminosity_fb, **kwargs
            )
        finally:
            if path != src:
                path.unlink(missing_ok=True)

    final_dir = ctx.out / "selected" / "final"
    result: dict[str, Any] = {
        "model": None if model_path is None else str(model_path),
        "resolution": str(resolution_path),
        "signal": {},
        "backgrounds": {},
    }
    flows = []
    for group in ("signal", "backgrounds"):
        for key, path in presel[group].items():
            target, flow = select_scored(Path(path), "scored", final_dir)
            result[group][key] = str(target)
            flows.append(flow)
    result["data"] = {}
    for key, path in presel.get("data", {}).items():
        target, _ = select_scored(Path(path), "data_scored", ctx.out / "selected" / "data_final")
        result["data"][key] = str(target)
    result["signal_notheta"] = {}
    for key, path in presel["signal_notheta"].items():
        target, _ = select_scored(
            Path(path),
            "scored_notheta",
            ctx.out / "selected" / "final_notheta",
            skip=["theta_recoil"],
        )
        result["signal_notheta"][key] = str(target)
    with atomic_path(ctx.path("selected", "final", "cutflows.md")) as tmp:
        tmp.write_text("\n".join(f.to_markdown() for f in flows))
    result["diagnostics"] = _selection_diagnostics(ctx, presel, result, model)
    return result


def _selection_diagnostics(
    ctx: RunContext, presel: dict[str, Any], final: dict[str, Any], model: Any
) -> dict[str, str]:
    """The checks of the selection and the network (PRL: efficiency ~5 % and nearly flat, the
    network removes nearly all tau tau below 50 GeV^2, mu mu (gamma) bands in the
    theta_recoil^CM - M_recoil^2 plane, sensitivity gain 5-15), written to ``selection/``.

    Without a network (``model`` None: ``punzinet`` disabled) the final selection is the
    preselection: the figures are labelled so and the network's figure of merit is skipped."""
    from zprime.io.events import read_events, read_metadata
    from zprime.report import plots

    cfg = ctx.config
    lumi = cfg.luminosity_fb
    out_dir = ctx.out / "selection"
    written: dict[str, str] = {}
    cols = ["m_recoil2", "theta_recoil_cm", "weight"]

    rows = []
    for key, path in final["signal"].items():
        meta = read_metadata(path)
        total = float(meta["sigma_fb"])
        n_gen = int(meta.get("n_events", cfg.signal.events_per_mass))
        w_pre = float(np.sum(read_events(presel["signal"][key], ["weight"])["weight"]))
        w_fin = float(np.sum(read_events(path, ["weight"])["weight"]))
        e_pre, e_fin = w_pre / total, w_fin / total
        rows.append(
            {
                "mass_gev": float(key),
                "efficiency_presel": e_pre,
                "error_presel": float(np.sqrt(e_pre * (1 - e_pre) / n_gen)),
                "efficiency_final": e_fin,
                "error_final": float(np.sqrt(e_fin * (1 - e_fin) / n_gen)),
            }
        )
    rows.sort(key=lambda r: r["mass_gev"])
    _write_csv(out_dir / "signal_efficiency.csv", rows)
    m2 = np.array([r["mass_gev"] ** 2 for r in rows])
    curves = {
        "without Punzi-net": (
            np.array([r["efficiency_presel"] for r in rows]),
            np.array([r["error_presel"] for r in rows]),
        ),
        "full selection": (
            np.array([r["efficiency_final"] for r in rows]),
            np.array([r["error_final"] for r in rows]),
        ),
    }
    if model is None:  # the two curves are the same selection
        curves = {"full selection (no network)": curves["full selection"]}
    fig = plots.signal_efficiency(m2, curves)
    plots.save(fig, out_dir / "signal_efficiency")
    written["signal_efficiency"] = str(out_dir / "signal_efficiency.csv")

    edges = np.linspace(-0.5, 81.0, 164)
    for label, manifest in (("presel", presel), ("final", final)):
        samples = {}
        pooled = []
        for name, path in manifest["backgrounds"].items():
            ev = read_events(path, cols)
            samples[name] = (np.asarray(ev["m_recoil2"]), np.asarray(ev["weight"]))
            pooled.append(ev)
        if model is None:
            title = "preselection" if label == "presel" else "final selection (no network)"
        else:
            title = "before Punzi-net" if label == "presel" else "after Punzi-net"
        plots.save(
            plots.background_composition(samples, edges, luminosity_fb=lumi, title=title),
            out_dir / f"background_{label}",
        )
        comp = []
        for lo, hi in ((-0.5, 1.0), (1.0, 9.0), (9.0, 36.0), (36.0, 50.0), (50.0, 81.0)):
            row: dict[str, Any] = {"m2_low": lo, "m2_high": hi}
            for name, (x, w) in samples.items():
                row[name] = float(np.sum(w[(x >= lo) & (x < hi)]) * lumi)
            comp.append(row)
        _write_csv(out_dir / f"background_composition_{label}.csv", comp)
        everything = {k: np.concatenate([np.asarray(e[k]) for e in pooled]) for k in cols}
        plots.save(
            plots.theta_m2_plane(
                everything["m_recoil2"],
                everything["theta_recoil_cm"],
                everything["weight"],
                luminosity_fb=cfg.luminosity_fb,
                title=f"all backgrounds, {title}",
            ),
            out_dir / f"theta_m2_{label}",
        )
        if "mumu" in manifest["backgrounds"]:
            ev = read_events(manifest["backgrounds"]["mumu"], cols)
            plots.save(
                plots.theta_m2_plane(
                    np.asarray(ev["m_recoil2"]),
                    np.asarray(ev["theta_recoil_cm"]),
                    np.asarray(ev["weight"]),
                    luminosity_fb=cfg.luminosity_fb,
                    title=rf"$\mu^+\mu^-(\gamma)$, {title}",
                ),
                out_dir / f"theta_m2_mumu_{label}",
            )
    if model is None:
        return written
    # the network's figure of merit on the test part of the training (test masses never
    # trained on; test background events): an unbiased measure of what the network does
    table = model.fom_table()
    with atomic_path(out_dir / "punzi_fom.md") as tmp:
        tmp.write_text(table.to_markdown())
    with atomic_path(out_dir / "punzi_fom.csv") as tmp:
        tmp.write_text(table.to_csv())
    plots.save(
        plots.fom_gain(
            [r.mass_gev for r in table.rows], [r.gain for r in table.rows], luminosity_fb=lumi
        ),
        out_dir / "punzi_gain",
    )
    written["punzi_fom"] = str(out_dir / "punzi_fom.md")
    written.update(_punzi_cut_scan(model.cut_scan(), out_dir, lumi, cfg.selection.punzinet_min))
    return written


def _punzi_cut_scan(
    scan: dict[str, Any], out_dir: Path, luminosity_fb: float, cut: float
) -> dict[str, str]:
    """Per test mass, Punzi's sigma_min versus the network output cut (measured on the test
    part at training time): ``punzi_cut_scan.csv`` (one line per mass and cut) and a figure
    with the applied cut marked. A flat minimum around the applied cut means the efficiency
    after the network does not hinge on the exact cut value."""
    import matplotlib.pyplot as plt

    from zprime.report import plots

    rows = [
        {
            "mass_gev": r["mass_gev"],
            "cut": c,
            "efficiency": e,
            "background": b,
            "sigma_min_fb": s,
        }
        for r in scan.get("rows", [])
        for c, e, b, s in zip(
            scan["cuts"], r["efficiency"], r["background"], r["sigma_min_fb"], strict=True
        )
    ]
    if not rows:  # no test mass (a single simulated mass)
        return {}
    _write_csv(out_dir / "punzi_cut_scan.csv", rows)
    plots._style()  # the package's one plot style (zprime.report.plots)
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    cmap = plt.get_cmap("viridis")
    n = len(scan["rows"])
    for k, r in enumerate(scan["rows"]):
        y = np.asarray(r["sigma_min_fb"], dtype=float)
        ax.plot(
            scan["cuts"],
            np.where(np.isfinite(y), y, np.nan),
            "o-",
            markersize=3,
            color=cmap(k / max(1, n - 1)),
            label=f"{r['mass_gev']:g} GeV",
        )
    ax.axvline(cut, color="0.4", linestyle="--", label=f"applied cut {cut:g}")
    ax.set_xlabel("Punzi-net output cut")
    ax.set_ylabel(r"$\sigma_{\min}$ [fb] (test events)")
    ax.set_yscale("log")
    ax.legend(fontsize="x-small", ncol=2, title="test masses", title_fontsize="x-small")
    plots.label(ax, luminosity_fb)
    plots.save(fig, out_dir / "punzi_cut_scan")
    return {"punzi_cut_scan": str(out_dir / "punzi_cut_scan.csv")}


def _stage_control(ctx: RunContext) -> dict[str, Any]:
    """The control samples (e mu, ee, mu mu gamma): data versus simulation, the corrections and
    the systematic uncertainties they give (``control/corrections.json``, ``comparison.md``,
    cut flows and figures)."""
    from zprime.analyses.invisible_zprime.control import run_control

    sim = ctx.outputs["simulate"]
    config = ctx.config
    if config.observed_data.file is not None:  # real data: every event counts once
        config = config.model_copy(
            update={"control": config.control.model_copy(update={"data_mode": "weighted"})}
        )
    result = run_control(
        sim["backgrounds"],
        sim["data"],
        ctx.out / "control",
        config,
        model=ctx.outputs["train"]["model"],
    )
    for line in getattr(result, "fallbacks", []) or []:
        ctx.console.print(f"[yellow]control:[/] {line}")
    return {k: str(v) for k, v in result.files.items()}


def _pseudo_data(ctx: RunContext, final: dict[str, Any]) -> dict[str, np.ndarray]:
    """The observed data of the templates: the user's data (``observed_data.file``), or the
    pseudo-data (:func:`zprime.stats.pseudodata.draw`): the independently generated data-detector
    samples after the full selection, thinned to unit-weight events at the luminosity (or, with
    ``pseudo_data.source: simulation``, the selected simulation thinned the same way), with an
    injected signal if asked. What each sample contributed is written to
    ``data/pseudo_data_samples.json``."""
    from zprime.io.events import read_events, read_metadata
    from zprime.stats import pseudodata

    cfg = ctx.config
    pcfg = cfg.pseudo_data
    if cfg.observed_data.file is not None:  # the user's data, selected like the simulation
        events = read_events(final["data"]["observed"], list(pseudodata.COLUMNS))
        cols = {c: np.asarray(events[c], dtype=float) for c in pseudodata.COLUMNS}
        cols["weight"] = np.ones(len(events))
        return cols
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, pcfg.seed_offset, 2]))
    use_data = pcfg.source == "data_detector"
    files = dict(final["data"] if use_data else final["backgrounds"])
    signal_path = files.pop("signal", None)
    if signal_path is None and pcfg.inject_mass_gev is not None and pcfg.inject_xsec_fb > 0:
        signal_path = final["signal"][f"{pcfg.inject_mass_gev:g}"]
    cols = [*pseudodata.COLUMNS, "weight"]
    samples = {name: read_events(path, cols) for name, path in files.items()}
    signal = None
    if signal_path is not None:
        signal = (read_events(signal_path, cols), float(read_metadata(signal_path)["sigma_fb"]))
    stats: dict[str, dict[str, float]] = {}
    drawn = pseudodata.draw(
        samples,
        cfg.luminosity_fb,
        rng,
        signal=signal,
        signal_xsec_fb=pcfg.inject_xsec_fb,
        stats=stats,
    )
    for name, row in stats.items():
        if row["heavy_events"]:
            ctx.console.print(
                f"[yellow]pseudo-data:[/] {name}: {row['heavy_events']} selected events weigh "
                f"more than one data event ({row['heavy_expected']:.1f} of "
                f"{row['expected']:.1f} expected) and enter more than once"
            )
    write_json_atomic(
        ctx.path("data", "pseudo_data_samples.json"),
        {"source": pcfg.source, "luminosity_fb": cfg.luminosity_fb, "samples": stats},
    )
    return drawn


def _photon_veto_reweighted(
    ctx: RunContext, name: str, corrections: Any, model: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M^2, theta^CM, weight) of a background selected without the photon veto and re-weighted
    with the measured photon-veto correction
    (``zprime.analyses.invisible_zprime.control.Corrections``): passing events
    keep their weight, events that fail only because of photons in the backward barrel enter
    with the measured extra probability that data miss them."""
    import awkward as ak

    from zprime.analyses.invisible_zprime.control import photon_veto_recoverable
    from zprime.analyses.invisible_zprime.punzinet import predict
    from zprime.analyses.invisible_zprime.selection import step_masks
    from zprime.io.events import iter_events

    cfg = ctx.config
    sel = cfg.selection.model_copy(
        update={"disabled": sorted(set(cfg.selection.disabled) | {"punzinet"})}
    )
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for batch in iter_events(ctx.outputs["simulate"]["backgrounds"][name]):
        masks = step_masks(batch, sel, "mumu")
        base = np.ones(len(batch), dtype=bool)
        for step, m in masks.items():
            if step != "photon_veto":
                base &= m
        kept = batch[base]
        if "punzinet" not in cfg.selection.disabled and len(kept):
            net = predict(model, kept) > cfg.selection.punzinet_min
            kept = kept[net]
            passed = masks["photon_veto"][base][net]
        else:
            passed = masks["photon_veto"][base]
        if not len(kept):
            continue
        recoverable = photon_veto_recoverable(
            kept, cfg.selection, cfg.control.photon_veto.theta_recoil_deg
        )
        m2 = np.asarray(ak.to_numpy(kept["m_recoil2"]), dtype=float)
        w = corrections.photon_veto_weight(
            passed, recoverable, np.asarray(ak.to_numpy(kept["theta_recoil"])), m2
        )
        parts.append(
            (
                m2,
                np.asarray(ak.to_numpy(kept["theta_recoil_cm"]), dtype=float),
                np.asarray(ak.to_numpy(kept["weight"]), dtype=float) * w,
            )
        )
    if not parts:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    m2, th, w = (np.concatenate(x) for x in zip(*parts, strict=True))
    keep = w > 0
    return m2[keep], th[keep], w[keep]


def _apply_corrections(
    ctx: RunContext, signals: list[Any], backgrounds: dict[str, Any]
) -> tuple[list[Any], dict[str, Any], list[str]]:
    """The control-stage corrections applied to the simulated signal and backgrounds."""
    import dataclasses

    from zprime.analyses.invisible_zprime.control import read_corrections
    from zprime.analyses.invisible_zprime.punzinet import load
    from zprime.analyses.invisible_zprime.templates import EventSample

    path = ctx.outputs["control"].get("corrections")
    if not ctx.config.templates.apply_corrections or path is None:
        return signals, backgrounds, []
    if ctx.config.pseudo_data.source != "data_detector" and ctx.config.observed_data.file is None:
        # the observed data are then the simulation itself: correcting the simulation towards
        # the data detector would create data-simulation differences that are not there
        return (
            signals,
            backgrounds,
            [
                "measured but not applied: the pseudo-data are a sample of the simulation "
                "(pseudo_data.source: simulation)"
            ],
        )
    corr = read_corrections(path)
    terms = " + ".join(f"{c:.4g} M^{2 * i}" for i, c in enumerate(corr.trigger_coefficients))
    notes = [f"trigger correction c(M^2) = {terms}"]
    for name in corr.photon_veto_samples:
        if name in backgrounds and corr.extra_miss != 0.0:
            model_path = ctx.outputs["train"]["model"]
            model = load(model_path) if model_path else None
            m2, th, w = _photon_veto_reweighted(ctx, name, corr, model)
            before = float(np.sum(backgrounds[name].weight))
            backgrounds[name] = EventSample(name, m2, th, w)
            notes.append(
                f"photon-veto correction on {name}: extra miss probability "
                f"{corr.extra_miss:.4f}, yield x {float(np.sum(w)) / before:.3f}"
                if before > 0
                else f"photon-veto correction on {name}"
            )
    signals = [dataclasses.replace(s, weight=s.weight * corr.trigger_weight(s.m2)) for s in signals]
    backgrounds = {
        k: dataclasses.replace(b, weight=b.weight * corr.trigger_weight(b.m2))
        for k, b in backgrounds.items()
    }
    return signals, backgrounds, notes


def _stage_template(ctx: RunContext) -> dict[str, Any]:
    import awkward as ak

    from zprime.analyses.invisible_zprime.binning import ResolutionModel
    from zprime.analyses.invisible_zprime.templates import (
        EventSample,
        SimulatedSignal,
        templates_from_config,
        write_templates,
    )
    from zprime.io.events import write_events

    cfg = ctx.config
    final = ctx.outputs["train"]
    # the M_recoil^2 resolution is a property of the detector: the train stage measures it on
    # the signal before the network cut, where the samples are largest, and trains the network
    # in windows of it; the fit uses the same one
    resolution = ResolutionModel.load(final["resolution"])
    data = _pseudo_data(ctx, final)
    data_path = ctx.path("data", "pseudo_data.parquet")
    write_events(
        data_path,
        ak.zip(data),
        {
            "sample": "pseudo_data" if cfg.observed_data.file is None else "observed_data",
            "source": cfg.observed_data.file,
            "luminosity_fb": cfg.luminosity_fb,
            "inject_mass_gev": cfg.pseudo_data.inject_mass_gev,
            "inject_xsec_fb": cfg.pseudo_data.inject_xsec_fb,
        },
    )
    observed = EventSample(
        "data", data["m_recoil2"], data["theta_recoil_cm"], data["weight"], is_data=True
    )
    signals = [SimulatedSignal.read(p) for p in final["signal_notheta"].values()]
    backgrounds = {k: EventSample.read(p, k) for k, p in final["backgrounds"].items()}
    signals, backgrounds, notes = _apply_corrections(ctx, signals, backgrounds)
    for note in notes:
        ctx.console.print(f"corrections: {note}")
    # the simulated backgrounds as the templates see them (with the corrections), for the report
    for name, smp in backgrounds.items():
        write_events(
            ctx.path("data", "corrected", f"{name}.parquet"),
            ak.zip(
                {
                    "m_recoil2": np.asarray(smp.m2),
                    "theta_recoil_cm": np.asarray(smp.theta),
                    "weight": np.asarray(smp.weight),
                }
            ),
            {"sample": name, "corrections": notes},
        )
    result: dict[str, Any] = {
        "data": str(data_path),
        "resolution": str(final["resolution"]),
    }
    for label, wide in (("narrow", False), ("wide", True)):
        if wide and not cfg.fit.wide:
            continue
        tset = templates_from_config(
            cfg,
            signals,
            backgrounds,
            observed,
            wide=wide,
            resolution=resolution,
            corrections=ctx.outputs["control"].get("corrections"),
        )
        index = write_templates(ctx.out / f"templates_{label}", tset)
        ctx.console.print(
            f"{label} templates: {len(tset)} windows, {len(tset.failed)} failed -> {index.parent}"
        )
        result[label] = str(index.parent)
    return result


def _toy_band_task(task: tuple[dict[str, Any], str, int, int, int]) -> tuple[list[float], int]:
    """Expected band of one hypothesis from background-only toys (a picklable task)."""
    from zprime._util import chunk_rng
    from zprime.stats import compile_workspace, expected_limits_toys

    spec, name, ntoys, seed, index = task
    model = compile_workspace(spec, name=name)
    out = expected_limits_toys(model, ntoys, chunk_rng(seed, 9, index))
    return [float(x) for x in out["expected"]], int(out["failed"])


def _toy_bands(ctx: RunContext, specs: list[Any], limits: list[Any]) -> list[Any]:
    """Replace the asymptotic expected bands by those of ``fit.toys`` background-only toys per
    hypothesis (the PRL's bands: "the median limits from background-only simulated samples"),
    mapped over the hypotheses with the run's executor; seeds derive from the hypothesis index,
    so the bands do not depend on the executor or the number of workers."""
    import dataclasses

    from zprime.parallel import map_tasks

    cfg = ctx.config
    todo = [i for i, lim in enumerate(limits) if lim.ok]
    tasks = [(specs[i], limits[i].name, cfg.fit.toys, cfg.seed, i) for i in todo]
    results = map_tasks(
        _toy_band_task,
        tasks,
        executor=ctx.executor,
        workers=ctx.workers,
        description=f"expected bands ({cfg.fit.toys} toys per hypothesis)",
        progress=ctx.progress,
    )
    out = list(limits)
    for i, (band, failed) in zip(todo, results, strict=True):
        message = out[i].message
        if failed:
            message = (message + "; " if message else "") + f"{failed} toys failed"
        out[i] = dataclasses.replace(
            out[i], expected=tuple(band), message=message, ntoys=cfg.fit.toys
        )
    return out


def _fit_scan(ctx: RunContext, directory: str, label: str) -> dict[str, Any]:
    from zprime.analyses.invisible_zprime.templates import read_templates
    from zprime.stats import (
        build_workspace,
        compile_workspace,
        discovery,
        global_significance,
        goodness_of_fit,
        scan_limits,
        write_workspace,
    )

    cfg = ctx.config
    tset = read_templates(directory)
    ws_dir = ctx.out / f"workspaces_{label}"
    specs, names, metas = [], [], []
    rows: list[dict[str, Any]] = []
    for w in tset.windows:
        meta = w.metadata()
        try:
            spec = build_workspace(
                **w.workspace_inputs(cfg.templates.merge_backgrounds),
                background_floor=cfg.fit.background_floor,
            )
        except InputError as err:
            rows.append(
                {
                    "name": w.name,
                    "mass_gev": meta["mass_gev"],
                    "status": "failed",
                    "message": str(err),
                }
            )
            continue
        write_workspace(ws_dir / f"{w.name}.json", spec, meta)
        specs.append(spec)
        names.append(w.name)
        metas.append(meta)
    cfg = ctx.config
    if cfg.fit.limits == "bayesian":
        from zprime.stats import scan_bayesian

        limits = scan_bayesian(
            specs,
            names=names,
            level=cfg.fit.bayesian_level,
            n_samples=cfg.fit.bayesian_samples,
            n_local=cfg.fit.bayesian_local_samples,
            ntoys=cfg.fit.bayesian_toys,
            seed=cfg.seed,
            executor=ctx.executor,
            workers=ctx.workers,
            progress=ctx.progress,
        )
    else:
        limits = scan_limits(specs, names=names)
        if cfg.fit.toys > 0:
            limits = _toy_bands(ctx, specs, limits)
    for spec, meta, lim in zip(specs, metas, limits, strict=True):
        row: dict[str, Any] = {
            "name": lim.name,
            "mass_gev": meta["mass_gev"],
            "status": lim.status,
            "message": lim.message,
            "observed_fb": lim.observed,
            **{
                f"expected_{k}_fb": v
                for k, v in zip(("m2", "m1", "median", "p1", "p2"), lim.expected, strict=True)
            },
            "mu_hat_fb": lim.mu_hat,
            "signal_efficiency": float(w_eff)
            if (w_eff := meta.get("signal_efficiency")) is not None
            else float("nan"),
            "extrapolated": bool(meta.get("extrapolated", False)),
        }
        if lim.ok:
            model = compile_workspace(spec, name=lim.name)
            disc = discovery(model)
            gof = goodness_of_fit(model)
            row.update(
                q0=float(disc.q0[0]),
                p0=float(disc.p0[0]),
                z_local=float(disc.z[0]),
                gof_p=gof.p_value,
                gof_ndof=gof.ndof,
            )
        rows.append(row)
    for name, reason in tset.failed.items():
        rows.append(
            {
                "name": name,
                "mass_gev": tset.failed_mass.get(name, float("nan")),
                "status": "failed",
                "message": reason,
            }
        )
    rows.sort(key=lambda r: r["mass_gev"])
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    full = [
        {k: r.get(k, float("nan") if k not in ("status", "message", "name") else "") for k in keys}
        for r in rows
    ]
    _write_csv(ctx.path(f"limits_{label}.csv"), full)
    ok = [r for r in full if r["status"] == "ok" and np.isfinite(r.get("q0", np.nan))]
    summary: dict[str, Any] = {"hypotheses": len(full), "failed": len(full) - len(ok)}
    if ok:
        gs = global_significance([r["mass_gev"] for r in ok], [r["q0"] for r in ok])
        best = max(ok, key=lambda r: r["q0"])
        summary.update(
            largest_local_z=best["z_local"],
            at_mass_gev=best["mass_gev"],
            global_p=gs.p_global,
            global_z=gs.z_global,
            worst_gof_p=min(r["gof_p"] for r in ok),
        )
    write_json_atomic(ctx.path(f"significance_{label}.json"), summary)
    ctx.console.print(f"{label}: {summary}")
    return {
        "limits": str(ctx.out / f"limits_{label}.csv"),
        "workspaces": str(ws_dir),
        "summary": summary,
    }


_IMPACT_VARIANTS: dict[str, dict[str, Any]] = {
    "signal efficiency": {"signal_efficiency": None},
    "signal shape": {"signal_shape": 0.0},
    "background shape": {"background_shape": None},
    "photon-veto shape": {"photon_veto_shape": (0.0, 0.0)},
    "luminosity": {"luminosity": 0.0},
    "MC statistics": {"mc_stat": False},
}


def _systematics_impact(ctx: RunContext, directory: str) -> dict[str, str]:
    """Median expected limit at a few masses with all systematics, with none (statistics only)
    and with each one left out: how much each uncertainty costs (PRL: below 6 GeV the
    systematics degrade the limits by less than 5%, above by about 40%)."""
    import dataclasses

    from zprime.analyses.invisible_zprime.templates import read_templates
    from zprime.stats import build_workspace, scan_limits

    cfg = ctx.config
    windows = read_templates(directory).windows
    if not windows or not cfg.fit.impact_masses_gev:
        return {}
    masses = np.array([w.window.mass_gev for w in windows])
    chosen = sorted({int(np.argmin(np.abs(masses - m))) for m in cfg.fit.impact_masses_gev})

    def zeroed(table: Any, changes: dict[str, Any]) -> Any:
        upd = {
            k: (tuple(0.0 for _ in getattr(table, k)) if v is None else v)
            for k, v in changes.items()
        }
        return dataclasses.replace(table, **upd)

    everything = {k: v for d in _IMPACT_VARIANTS.values() for k, v in d.items()}
    variants = {
        "all": {},
        "statistics only": everything,
        **{f"without {k}": v for k, v in _IMPACT_VARIANTS.items()},
    }
    specs, names = [], []
    for i in chosen:
        w = windows[i]
        for label, changes in variants.items():
            wv = dataclasses.replace(w, systematics=zeroed(w.systematics, changes))
            specs.append(
                build_workspace(
                    **wv.workspace_inputs(cfg.templates.merge_backgrounds),
                    background_floor=cfg.fit.background_floor,
                )
            )
            names.append(f"{w.name}|{label}")
    limits = {lim.name: lim.expected[2] for lim in scan_limits(specs, names=names)}
    rows = []
    for i in chosen:
        w = windows[i]
        full = limits[f"{w.name}|all"]
        stat = limits[f"{w.name}|statistics only"]
        row: dict[str, Any] = {
            "mass_gev": w.window.mass_gev,
            "expected_all_fb": full,
            "expected_stat_only_fb": stat,
            "degradation_all": full / stat - 1.0,
        }
        for k in _IMPACT_VARIANTS:
            row[f"cost_{k.replace(' ', '_').replace('-', '_')}"] = (
                full / limits[f"{w.name}|without {k}"] - 1.0
            )
        rows.append(row)
    _write_csv(ctx.path("systematics_impact.csv"), rows)
    lines = [
        "Effect of the systematic uncertainties on the median expected 90% CL limit",
        "",
        "degradation = limit with all systematics / statistics-only limit - 1; cost of one = "
        "limit with all / limit without that one - 1 (PRL: < 5% below 6 GeV, ~40% above).",
        "",
        "| M (GeV) | stat. only (fb) | all (fb) | degradation | "
        + " | ".join(_IMPACT_VARIANTS)
        + " |",
        "| --- " * (4 + len(_IMPACT_VARIANTS)) + "|",
    ]
    for r in rows:
        costs = [v for k, v in r.items() if k.startswith("cost_")]
        lines.append(
            f"| {r['mass_gev']:.3f} | {r['expected_stat_only_fb']:.4g} | "
            f"{r['expected_all_fb']:.4g} | {100 * r['degradation_all']:.1f}% | "
            + " | ".join(f"{100 * c:.1f}%" for c in costs)
            + " |"
        )
    with atomic_path(ctx.path("systematics_impact.md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    ctx.console.print("\n".join(lines[4:]))
    return {
        "csv": str(ctx.out / "systematics_impact.csv"),
        "md": str(ctx.out / "systematics_impact.md"),
    }


def _stage_fit(ctx: RunContext) -> dict[str, Any]:
    tpl = ctx.outputs["template"]
    out = {"narrow": _fit_scan(ctx, tpl["narrow"], "narrow")}
    out["impact"] = _systematics_impact(ctx, tpl["narrow"])
    if "wide" in tpl:
        out["wide"] = _fit_scan(ctx, tpl["wide"], "wide")
    return out


def _stage_report(ctx: RunContext) -> dict[str, Any]:
    """Results tables (CSV, Parquet, Markdown), figures, projections and the HEPData submission."""
    from zprime.analyses.invisible_zprime.results import build_results, write_results
    from zprime.analyses.invisible_zprime.spectra import spectra_figures
    from zprime.report import plots

    cfg = ctx.config
    table = build_results(ctx.out, cfg)
    files: dict[str, Any] = {k: str(v) for k, v in write_results(table, ctx.out).items()}
    fig_dir = ctx.out / "figures"
    figures: dict[str, str] = {
        p.stem: str(p)
        for p in plots.result_figures(table, fig_dir, prefix="")
        if p.suffix == ".png"
    }
    for key, path in spectra_figures(ctx.out, fig_dir, cfg).items():
        figures[key] = str(path)
    files["figures"] = figures
    if cfg.projections.luminosities_fb:
        from zprime.analyses.invisible_zprime.projections import projections_from_config

        written = projections_from_config(
            Path(ctx.outputs["template"]["narrow"]), cfg, ctx.out / "projections"
        )
        files["projections"] = {k: str(v) for k, v in written.items()}
    if cfg.report.hepdata:
        from zprime.analyses.invisible_zprime.hepdata import write_hepdata

        workspaces = {
            label: ctx.out / f"workspaces_{label}"
            for label in ("narrow", "wide")
            if (ctx.out / f"workspaces_{label}").is_dir()
        }
        files["hepdata"] = str(
            write_hepdata(
                ctx.out / "limits.csv",
                ctx.out / "hepdata",
                workspaces=workspaces,
                luminosity_fb=cfg.luminosity_fb,
                config_summary={
                    "seed": cfg.seed,
                    "luminosity_fb": cfg.luminosity_fb,
                    "limits": cfg.fit.limits,
                    "toys": cfg.fit.toys,
                },
            )
        )
    summary = ctx.out / "summary.md"
    if summary.is_file():
        ctx.console.print(summary.read_text())
    return files


@dataclass(frozen=True)
class Stage:
    """One stage: its function, the stages it reads and the configuration it depends on."""

    name: str
    run: Callable[[RunContext], dict[str, Any]]
    upstream: tuple[str, ...]
    config_keys: tuple[str, ...]


STAGES: tuple[Stage, ...] = (
    Stage("xsec", _stage_xsec, (), ("signal",)),
    Stage(
        "generate",
        _stage_generate,
        (),
        ("seed", "signal", "backgrounds", "pseudo_data", "luminosity_fb", "observed_data"),
    ),
    Stage(
        "simulate",
        _stage_simulate,
        ("generate",),
        (
            "seed",
            "detector",
            "control.data_detector",
            "observed_data",
            "pseudo_data.seed_offset",
            "pseudo_data.max_copies",
            "luminosity_fb",
        ),
    ),
    Stage("select", _stage_select, ("simulate",), ("selection", "luminosity_fb")),
    Stage(
        "train", _stage_train, ("select",), ("punzinet", "selection", "luminosity_fb", "binning")
    ),
    Stage("control", _stage_control, ("train",), ("control", "selection", "luminosity_fb")),
    Stage(
        "template",
        _stage_template,
        ("control",),
        ("binning", "templates", "pseudo_data", "luminosity_fb", "fit.wide", "seed"),
    ),
    Stage("fit", _stage_fit, ("template",), ("fit",)),
    Stage("report", _stage_report, ("fit",), ("report", "projections", "luminosity_fb")),
)
"""The stages of ``zprime run``, in order."""

_BY_NAME = {s.name: s for s in STAGES}


def _state_path(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.json"


def run_stage(ctx: RunContext, name: str, *, force: bool = False) -> dict[str, Any]:
    """Run one stage (or reuse its cached outputs) and return its output manifest.

    The stages it reads must have run in this context (:func:`run` takes care of the order).
    """
    if name not in _BY_NAME:
        raise ConfigError(f"unknown stage '{name}' (stages: {', '.join(_BY_NAME)})")
    stage = _BY_NAME[name]
    missing = [u for u in stage.upstream if u not in ctx.hashes]
    if missing:
        raise ConfigError(f"stage '{name}' needs stage '{missing[0]}' first")
    digest = _stage_hash(
        name, ctx.config, stage.config_keys, [ctx.hashes[u] for u in stage.upstream]
    )
    state_file = _state_path(ctx.out, name)
    if not force and state_file.is_file():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            state = {}
        if state.get("hash") == digest:
            ctx.hashes[name] = digest
            ctx.outputs[name] = state["outputs"]
            ctx.console.print(f"[dim]stage {name}: up to date ({digest})[/]")
            return state["outputs"]
    ctx.console.rule(f"stage {name}")
    started = time.time()
    try:
        outputs = stage.run(ctx)
    except KeyboardInterrupt as err:
        raise KeyboardInterrupt(
            f"in stage {name}: its outputs are not recorded; the next run resumes at this stage"
        ) from err
    seconds = round(time.time() - started, 2)
    write_json_atomic(
        state_file, {"stage": name, "hash": digest, "seconds": seconds, "outputs": outputs}
    )
    ctx.hashes[name] = digest
    ctx.outputs[name] = outputs
    ctx.console.print(f"stage {name}: done in {seconds:.1f} s")
    return outputs


def quick_config(config: Config, factor: float = 0.1) -> Config:
    """A reduced copy of ``config`` for smoke runs (``zprime run --quick``): a tenth of the
    events (at most 100 000 per background sample; samples sized by a luminosity factor get
    100 000 generated events), five signal masses, a hypothesis every four
    resolution units, short training and few toys. Its numbers are not physics results."""
    data = config.to_dict()
    data["signal"]["events_per_mass"] = max(2000, int(data["signal"]["events_per_mass"] * factor))
    masses = data["signal"]["masses_gev"]
    picks = sorted({round(i * (len(masses) - 1) / 4) for i in range(5)})
    data["signal"]["masses_gev"] = [masses[i] for i in picks]
    for sample in data["backgrounds"]["samples"].values():
        if sample.get("luminosity_factor") is not None:  # sized by events in a smoke run
            sample["luminosity_factor"] = None
            sample["events"] = 1_000_000
        sample["events"] = max(5000, min(100_000, int(sample["events"] * factor)))
        sample["chunk_size"] = min(sample["chunk_size"], sample["events"])
    data["punzinet"]["punzi_epochs"] = min(data["punzinet"]["punzi_epochs"], 30)
    data["punzinet"]["bce_epochs"] = min(data["punzinet"]["bce_epochs"], 3)
    data["binning"]["step_resolution_units"] = max(data["binning"]["step_resolution_units"], 4.0)
    data["binning"]["resolution"]["min_events"] = min(
        data["binning"]["resolution"]["min_events"], 100
    )
    data["control"]["background_shape"]["toys"] = min(
        data["control"]["background_shape"]["toys"], 20
    )
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
) -> dict[str, dict[str, Any]]:
    """Run the analysis stages on ``config`` and write the results under ``out_dir``.

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
        Stage name -> output manifest.
    """
    cfg = config or default_config()
    if quick:
        cfg = quick_config(cfg)
    con = console or Console(stderr=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in [*(stages or ()), *force]:
        if name not in _BY_NAME:
            raise ConfigError(f"unknown stage '{name}' (stages: {', '.join(_BY_NAME)})")
    last = (
        max((list(_BY_NAME).index(s) for s in stages), default=len(STAGES) - 1)
        if stages
        else len(STAGES) - 1
    )
    ctx = RunContext(cfg, out, con, executor=executor, workers=workers, progress=progress)
    started = time.time()
    for stage in STAGES[: last + 1]:
        run_stage(ctx, stage.name, force=stage.name in force)
    write_json_atomic(
        out / "provenance.json",
        provenance(
            cfg.to_dict(),
            quick=quick,
            seconds=round(time.time() - started, 2),
            stages=ctx.hashes,
            outputs=ctx.outputs,
        ),
    )
    con.print(f"results under [bold]{out}[/] (provenance.json, stages/)")
    return ctx.outputs
