"""The ``zprime`` command line: a thin layer over the Python API.

Every command parses its options, calls one API function and prints or writes its result. Errors
that a user can fix are printed as one line (``error: ...``, never read as rich markup) and give
exit status 2: a :class:`~zprime.errors.ZprimeError`, a usage error (a bad or unknown option, an
unknown command, a missing option) and a full disk or quota. An interrupt (Ctrl-C) gives one line,
naming the pipeline stage it stopped if any, and exit status 130.

Length: the whole command line in one module: the commands share their option declarations
(``Annotated`` types) and the error handling of :func:`main`; each command is a few lines over
the API.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NoReturn

import numpy as np
import typer
import typer.main
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from zprime import __version__
from zprime._util import atomic_path, provenance
from zprime.analyses.dark_higgsstrahlung.xsec import point_xsec
from zprime.analyses.invisible_zprime.results import SUMMARY_MASSES_GEV, recast
from zprime.analyses.invisible_zprime.selection import check_steps, select_file
from zprime.analyses.tautau_resonance.xsec import point_xsec as tautau_point_xsec
from zprime.config import available_presets, load_config
from zprime.detector.simulation import simulate_file
from zprime.errors import ConfigError, InputError, ZprimeError
from zprime.generators.backgrounds import generate_sample
from zprime.generators.signal import (
    DEFAULT_SEED,
    cross_section,
    package_table_path,
    write_signal,
    write_xsec_table,
    xsec_grid_masses,
    xsec_table,
)
from zprime.io.events import read_metadata
from zprime.parallel import map_tasks, scheduler_executor
from zprime.physics.model import branching_invisible, delta_a_mu
from zprime.pipeline import check_inputs, run
from zprime.stats import read_workspace, upper_limit
from zprime.stats.compiled import compile_workspace, validate_workspace
from zprime.stats.limits import hypotest
from zprime.stats.pyhf_engine import pyhf_hypotest

app = typer.Typer(
    name="zprime",
    help="Belle II search for an invisible L_mu - L_tau Z' in e+e- -> mu+ mu- Z', end to end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show or write the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
generate_app = typer.Typer(help="Generate event samples.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")

console = Console(stderr=True)
out = Console()


def _note(text: str) -> None:
    """Print ``text`` to stderr as it is: no markup (a path may hold ``[bold]``), one line."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML configuration (merged over defaults)")
]


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"zprime {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print version."),
    ] = False,
) -> None:
    """Belle II search for an invisible Z' (PRL 130, 231801), end to end."""


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the resolved configuration (defaults merged with CONFIG)."""

    out.print(load_config(config).to_yaml(), end="", markup=False, highlight=False)


@config_app.command("init")
def config_init(
    path: Annotated[Path, typer.Argument(help="file to write")] = Path("zprime.yaml"),
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write the default configuration, with its comments, to PATH."""

    if path.exists() and not force:
        raise ZprimeError(f"{path}: exists already (use --force to overwrite)")
    text = resources.files("zprime").joinpath("data/default.yaml").read_text()
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    _note(f"wrote {path}")


@app.command("train")
def train_cmd(
    signal: Annotated[
        list[Path],
        typer.Option(
            "--signal",
            help="selected signal Parquet file, one per mass (repeatable); its metadata give "
            "mass_gev and sigma_fb (the generated total)",
        ),
    ],
    background: Annotated[
        list[Path],
        typer.Option("--background", help="selected background Parquet file (repeatable)"),
    ],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="network file to write")] = Path(
        "punzinet.pt"
    ),
    config: ConfigOpt = None,
    progress: Annotated[bool, typer.Option(help="show the progress bar")] = True,
) -> None:
    """Train the Punzi-net on selected SIGNAL and BACKGROUND events and write it to OUT."""
    # lazy: the network's package imports torch (heavy); every other command starts without it
    from zprime.analyses.invisible_zprime.punzinet import read_training_files, save, train

    cfg = load_config(config)
    signals, bkg = read_training_files(signal, background)
    model = train(
        signals, bkg, config=cfg.punzinet, luminosity_fb=cfg.luminosity_fb, progress=progress
    )
    save(model, out_file)
    rec = model.record
    out.print(
        f"BCE epochs {len(rec['bce_train'])} (best {rec['bce_best_epoch']}), Punzi epochs "
        f"{len(rec['punzi_train'])} (best {rec['punzi_best_epoch']}), "
        f"{rec['seconds_bce'] + rec['seconds_punzi']:.1f} s"
    )
    out.print(model.fom_table().to_markdown(), markup=False, highlight=False)
    _note(f"wrote {out_file}")


@app.command("select")
def select_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="reconstructed Parquet files")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="output directory")],
    channel: Annotated[
        str, typer.Option(help="mumu (signal region), emu, ee or mumugamma (control samples)")
    ] = "mumu",
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="leave out a step (repeatable)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Apply the PRL selection to INPUTS; write selected events and cut flows to OUT."""

    cfg = load_config(config)
    check_steps(skip or [])
    for path in inputs:
        target, flow = select_file(
            path,
            out_dir,
            cfg.selection,
            channel=channel,
            luminosity_fb=cfg.luminosity_fb,
            skip=skip or [],
        )
        out.print(flow.rich_table())
        _note(f"wrote {target} and its cut flow (.cutflow.csv, .cutflow.md)")


def _run_config(
    config: Path | None,
    preset: str | None,
    inject_mass: float | None,
    inject_xsec: float | None,
    lumi: list[float] | None,
    lumi_systematics: str | None,
    limits: str | None,
    data: Path | None,
    columns: Path | None,
    inject_hdark: float | None = None,
    inject_model: str | None = None,
) -> Any:
    """The run's configuration: preset, then the file, then the command-line options."""

    overrides: dict[str, Any] = {}
    if (inject_mass is None) != (inject_xsec is None):
        raise ConfigError("--inject-mass and --inject-xsec go together")
    if inject_hdark is not None and inject_mass is None:
        raise ConfigError("--inject-hdark goes with --inject-mass (M_A') and --inject-xsec")
    if inject_mass is not None:
        overrides["pseudo_data.inject_mass_gev"] = inject_mass
        overrides["pseudo_data.inject_xsec_fb"] = inject_xsec
    if inject_hdark is not None:
        overrides["dark_higgs.inject_hdark_gev"] = inject_hdark
    if inject_model is not None:
        if inject_mass is None:
            raise ConfigError("--inject-model goes with --inject-mass (M_X) and --inject-xsec")
        overrides["tautau.inject_model"] = inject_model
    if lumi:
        overrides["projections.luminosities_fb"] = list(lumi)
    if lumi_systematics is not None:
        overrides["projections.systematics"] = lumi_systematics
    if limits is not None:
        overrides["fit.limits"] = limits
    if (data is None) != (columns is None):
        raise ConfigError("--data and --columns go together (the column map of the data file)")
    if data is not None:
        overrides["observed_data.file"] = str(data)
        overrides["observed_data.columns"] = str(columns)
    return load_config(config, preset=preset, **overrides)


OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output directory")]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="a shipped analysis preset, e.g. pilot2018")
]
AnalysisOpt = Annotated[
    str | None,
    typer.Option(
        "--analysis",
        help="the search: invisible-zprime (default), dark-higgsstrahlung or tautau-resonance",
    ),
]


def _preset_for(analysis: str | None, preset: str | None) -> str | None:
    """The preset of ``--analysis`` (a search other than the default runs with its preset:
    its luminosity, trigger and background samples)."""
    if analysis is None:
        return preset
    name = analysis.replace("-", "_")
    if name == "invisible_zprime":
        return preset
    if name not in available_presets():
        raise ConfigError(
            f"--analysis {analysis}: invisible-zprime, dark-higgsstrahlung or tautau-resonance"
        )
    if preset is not None and preset != name:
        raise ConfigError(f"--analysis {analysis} and --preset {preset} do not go together")
    return name


InjectMassOpt = Annotated[
    float | None,
    typer.Option(
        "--inject-mass",
        help="inject a signal of this Z' (dark Higgsstrahlung: A'; tau-tau resonance: X) mass, GeV",
    ),
]
InjectXsecOpt = Annotated[
    float | None,
    typer.Option(
        "--inject-xsec",
        help="injected sigma(ee -> mu mu Z') x B(inv) (or sigma(ee -> A' h') x B(mu mu), or "
        "sigma(ee -> mu mu X) x B(tau tau)), fb",
    ),
]
InjectHdarkOpt = Annotated[
    float | None,
    typer.Option("--inject-hdark", help="dark Higgsstrahlung: M_h' of the injected signal, GeV"),
]
InjectModelOpt = Annotated[
    str | None,
    typer.Option(
        "--inject-model", help="tau-tau resonance: model of the injected X (zprime|scalar|alp)"
    ),
]
LumiOpt = Annotated[
    list[float] | None,
    typer.Option(
        "--lumi", help="project the expected limits to this luminosity, fb^-1 (repeatable)"
    ),
]
LumiSystOpt = Annotated[
    str | None,
    typer.Option("--lumi-systematics", help="systematics in projections: kept|scaled|none"),
]
LimitsOpt = Annotated[str | None, typer.Option("--limits", help="cls (CLs, the PRL's) or bayesian")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="dask.distributed scheduler address (or local:N)"),
]
DataOpt = Annotated[
    Path | None, typer.Option("--data", help="observed data: a ROOT or Parquet ntuple")
]
ColumnsOpt = Annotated[
    Path | None, typer.Option("--columns", help="YAML map of the data file's columns")
]
WorkersOpt = Annotated[int | None, typer.Option(min=1, help="local worker processes")]


def _run(
    cfg: Any,
    out_dir: Path,
    *,
    quick: bool,
    stages: list[str] | None,
    force: list[str],
    workers: int | None,
    scheduler: str | None,
) -> None:

    check_inputs(cfg)  # before a scheduler is reached; run() checks again for API callers
    with scheduler_executor(scheduler) as executor:
        run(
            cfg,
            out_dir,
            quick=quick,
            stages=stages,
            force=force,
            executor=executor,
            workers=workers,
            console=console,
        )


@app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    out_dir: OutOpt = Path("results"),
    quick: Annotated[bool, typer.Option(help="reduced run for smoke tests")] = False,
    until: Annotated[str | None, typer.Option("--until", help="stop after this stage")] = None,
    force: Annotated[
        list[str] | None, typer.Option("--force", help="re-run this stage (repeatable)")
    ] = None,
    workers: WorkersOpt = None,
    preset: PresetOpt = None,
    analysis: AnalysisOpt = None,
    inject_mass: InjectMassOpt = None,
    inject_xsec: InjectXsecOpt = None,
    inject_hdark: InjectHdarkOpt = None,
    inject_model: InjectModelOpt = None,
    lumi: LumiOpt = None,
    lumi_systematics: LumiSystOpt = None,
    limits: LimitsOpt = None,
    scheduler: SchedulerOpt = None,
    data: DataOpt = None,
    columns: ColumnsOpt = None,
) -> None:
    """Run the whole analysis on CONFIG (default: the PRL's) and write results to OUT.

    Stages already done with the same inputs are reused, so an interrupted run resumes.
    """
    preset = _preset_for(analysis, preset)
    cfg = _run_config(
        config,
        preset,
        inject_mass,
        inject_xsec,
        lumi,
        lumi_systematics,
        limits,
        data,
        columns,
        inject_hdark,
        inject_model,
    )
    _run(
        cfg,
        out_dir,
        quick=quick,
        stages=[until] if until else None,
        force=force or [],
        workers=workers,
        scheduler=scheduler,
    )


@app.command("stage")
def stage_cmd(
    name: Annotated[str, typer.Argument(help="stage to run (zprime.pipeline.stage_table)")],
    config: ConfigOpt = None,
    out_dir: OutOpt = Path("results"),
    quick: Annotated[bool, typer.Option(help="reduced run for smoke tests")] = False,
    workers: WorkersOpt = None,
    preset: PresetOpt = None,
    analysis: AnalysisOpt = None,
    inject_mass: InjectMassOpt = None,
    inject_xsec: InjectXsecOpt = None,
    inject_hdark: InjectHdarkOpt = None,
    inject_model: InjectModelOpt = None,
    lumi: LumiOpt = None,
    lumi_systematics: LumiSystOpt = None,
    limits: LimitsOpt = None,
    scheduler: SchedulerOpt = None,
    data: DataOpt = None,
    columns: ColumnsOpt = None,
) -> None:
    """Run one stage (xsec, generate, simulate, select, train, control, template, fit, report).

    The stages before it are reused from OUT when their inputs did not change, else run first.
    The stage itself runs again even if it is up to date, its cached files made again (as
    ``zprime run --force NAME --until NAME``); the stages after it are left as they are.
    """
    preset = _preset_for(analysis, preset)
    cfg = _run_config(
        config,
        preset,
        inject_mass,
        inject_xsec,
        lumi,
        lumi_systematics,
        limits,
        data,
        columns,
        inject_hdark,
        inject_model,
    )
    _run(
        cfg,
        out_dir,
        quick=quick,
        stages=[name],
        force=[name],
        workers=workers,
        scheduler=scheduler,
    )


# --- signal commands (issue 3: xsec, generate signal, run) ---


@app.command("xsec")
def xsec_cmd(
    mass: Annotated[
        float | None, typer.Option("--mass", "-m", help="Z' (tau-tau: X) mass in GeV")
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="vanilla or fully_invisible (for B(inv)); tautau-resonance: zprime, scalar, alp",
        ),
    ] = "vanilla",
    g: Annotated[
        float,
        typer.Option("--g", help="coupling g' (tautau-resonance: g', xi or |C_ll|/Lambda [1/GeV])"),
    ] = 1.0,
    no_isr: Annotated[bool, typer.Option("--no-isr", help="no initial-state radiation")] = False,
    grid: Annotated[
        bool, typer.Option("--grid", help="recompute the whole table (config signal.xsec_grid)")
    ] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="with --grid: CSV file to write")
    ] = None,
    update_package: Annotated[
        bool,
        typer.Option("--update-package", help="with --grid: overwrite the package's own table"),
    ] = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="with --grid: worker processes")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="vegas seed (default: fixed)")] = None,
    config: ConfigOpt = None,
    analysis: Annotated[
        str,
        typer.Option(
            "--analysis", help="invisible-zprime, dark-higgsstrahlung or tautau-resonance"
        ),
    ] = "invisible-zprime",
    m_aprime: Annotated[
        float | None, typer.Option("--m-aprime", help="dark-higgsstrahlung: M_A', GeV")
    ] = None,
    m_hdark: Annotated[
        float | None, typer.Option("--m-hdark", help="dark-higgsstrahlung: M_h', GeV")
    ] = None,
    born: Annotated[bool, typer.Option("--born", help="dark-higgsstrahlung: no ISR")] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="dark-higgsstrahlung, tautau-resonance: one JSON object"),
    ] = False,
) -> None:
    """sigma(e+e- -> mu+ mu- Z') at one mass (computed now), or the whole table with --grid;
    with --analysis dark-higgsstrahlung, sigma(e+e- -> A' h') for epsilon^2 alpha_D = 1,
    B(A' -> mu mu) and sigma x B."""

    if analysis.replace("-", "_") == "dark_higgsstrahlung":
        if m_aprime is None or m_hdark is None:
            raise ConfigError("--analysis dark-higgsstrahlung needs --m-aprime and --m-hdark")
        rec = point_xsec(m_aprime, m_hdark, isr=not born)
        if as_json:
            typer.echo(json.dumps(rec))
            return
        for line in (
            f"sigma(e+e- -> A' h') = {rec['sigma_fb']:.6g} fb for epsilon^2 alpha_D = 1 "
            f"(M_A' = {m_aprime:g} GeV, M_h' = {m_hdark:g} GeV, ISR {'off' if born else 'on'})",
            f"B(A' -> mu mu) = {rec['br_mumu']:.4g} +- {rec['br_mumu_uncertainty']:.2g}",
            f"sigma x B = {rec['sigma_br_fb']:.6g} fb",
        ):
            out.print(line, highlight=False, markup=False, soft_wrap=True)
        return
    if analysis.replace("-", "_") == "tautau_resonance":
        if mass is None:
            raise ConfigError("--analysis tautau-resonance needs --mass and --model")
        rec = tautau_point_xsec(model, mass, g, isr=not no_isr)
        if as_json:
            typer.echo(json.dumps(rec))
            return
        for line in (
            f"sigma(e+e- -> mu+ mu- X) = {rec['sigma_fb']:.6g} fb for {rec['coupling_name']} = "
            f"{g:g} ({model}, M_X = {mass:g} GeV, ISR {'off' if no_isr else 'on'})",
            f"B(X -> tau tau) = {rec['br_tautau']:.4g}",
            f"sigma x B = {rec['sigma_br_fb']:.6g} fb",
        ):
            out.print(line, highlight=False, markup=False, soft_wrap=True)
        return
    if analysis.replace("-", "_") != "invisible_zprime":
        raise ConfigError(
            f"--analysis {analysis}: invisible-zprime, dark-higgsstrahlung or tautau-resonance"
        )
    cfg = load_config(config)
    alpha = 1.0 / cfg.signal.alpha_inverse
    grid_cfg = cfg.signal.xsec_grid
    vegas_seed = DEFAULT_SEED if seed is None else seed
    if grid == (mass is not None):
        raise ZprimeError("give either --mass M or --grid")
    if grid:
        if (out_file is None) == (not update_package):
            raise ZprimeError("--grid needs exactly one of --out FILE or --update-package")
        target = package_table_path() if update_package else out_file
        masses = xsec_grid_masses(
            grid_cfg.min_gev,
            grid_cfg.max_gev,
            grid_cfg.points_per_decade_below_1gev,
            grid_cfg.step_above_1gev,
        )
        table = xsec_table(
            masses,
            alpha=alpha,
            rel_precision=grid_cfg.rel_precision,
            seed=vegas_seed,
            workers=workers,
        )
        path = write_xsec_table(table, target)  # type: ignore[arg-type]
        worst = float((table.error_isr / table.sigma_isr).max())
        _note(
            f"wrote {path}: {len(masses)} masses from {masses[0]:g} to {masses[-1]:g} GeV, "
            f"largest relative MC error {worst:.2e}"
        )
        return

    isr = cfg.signal.isr and not no_isr
    res = cross_section(
        mass,  # type: ignore[arg-type]
        g=g,
        isr=isr,
        alpha=alpha,
        rel_precision=grid_cfg.rel_precision,
        seed=vegas_seed,
    )
    br = float(branching_invisible(res.mass, model, g=g))
    out.print(
        f"sigma(e+e- -> mu+ mu- Z') = {res.sigma_fb:.6g} +- {res.error_fb:.2g} fb  "
        f"(M = {res.mass:g} GeV, g' = {g:g}, ISR {'on' if isr else 'off'}, "
        f"alpha = 1/{1.0 / alpha:.3f}, sqrt(s) = {res.sqrt_s:.3f} GeV)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    out.print(
        f"B(Z' -> invisible) [{model}] = {br:.6g}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    out.print(
        f"sigma x B = {res.sigma_fb * br:.6g} +- {res.error_fb * br:.2g} fb",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    out.print(
        f"Delta a_mu = {float(delta_a_mu(g, res.mass)):.6g}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@generate_app.command("signal")
def generate_signal_cmd(
    mass: Annotated[float, typer.Option("--mass", "-m", help="Z' mass in GeV")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="output directory")],
    n_events: Annotated[
        int | None, typer.Option("-n", "--events", help="events (default: config)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed (default: the configuration's)")] = None,
    width_frac: Annotated[
        float | None, typer.Option("--width-frac", help="Z' width as a fraction of its mass")
    ] = None,
    no_isr: Annotated[bool, typer.Option("--no-isr", help="no initial-state radiation")] = False,
    chunk_size: Annotated[int, typer.Option(min=1, help="events per chunk (row group)")] = 100_000,
    workers: Annotated[int | None, typer.Option(min=1, help="worker processes")] = None,
    config: ConfigOpt = None,
) -> None:
    """Generate unweighted e+e- -> mu+ mu- Z' events into OUT/signal_M<mass>.parquet."""

    cfg = load_config(config)
    if width_frac is not None and not 0.0 < width_frac <= 1.0:
        raise ConfigError(f"--width-frac must be in (0, 1], got {width_frac!r}")
    path = write_signal(
        mass,
        cfg.signal.events_per_mass if n_events is None else n_events,
        out_dir,
        seed=cfg.seed if seed is None else seed,
        chunk_size=chunk_size,
        width=None if width_frac is None else width_frac * mass,
        isr=cfg.signal.isr and not no_isr,
        alpha=1.0 / cfg.signal.alpha_inverse,
        rel_precision=cfg.signal.xsec_grid.rel_precision,
        workers=workers,
    )
    meta = read_metadata(path)
    _note(
        f"wrote {path}: {meta['n_events']} events, sigma = {meta['sigma_fb']:.6g} "
        f"+- {meta['sigma_error_fb']:.2g} fb, unweighting efficiency "
        f"{meta['unweighting_efficiency']:.3f}, "
        f"overweight fraction {meta['overweight_fraction']:.1e}"
    )


# --- background commands (issue 4: generate background) ---


@generate_app.command("background")
def generate_background(
    sample: Annotated[str, typer.Option("--sample", "-s", help="sample name (see config)")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="output directory")],
    n_events: Annotated[
        int | None,
        typer.Option("-n", "--events", help="events to generate before the filter"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="sample seed (default: from config)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="worker processes")] = None,
    config: ConfigOpt = None,
) -> None:
    """Generate a Standard Model background sample into OUT/SAMPLE.parquet."""

    path = generate_sample(
        sample, n_events, out_dir, config=load_config(config), seed=seed, workers=workers
    )
    meta = read_metadata(path)
    _note(
        f"wrote {path}: {meta['n_events']} of {meta['n_generated']} events kept "
        f"(filter efficiency {meta['filter_efficiency']:.4f}), "
        f"sigma after filter {meta['sigma_filtered_fb']:.6g} fb, "
        f"luminosity equivalent {meta['luminosity_equivalent_fb']:.4g} fb^-1"
    )


# --- detector commands (issue 4: simulate) ---


@app.command("simulate")
def simulate_cmd(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="generator-level event files (Parquet)", metavar="INPUT"),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")],
    detector: Annotated[
        str | None,
        typer.Option("--detector", "-d", help="detector configuration (default: detector.use)"),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="master seed (default: the configuration's)")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="events per batch")
    ] = 200_000,
    min_tracks: Annotated[
        int, typer.Option("--min-tracks", help="drop events with fewer reconstructed tracks")
    ] = 0,
    config: ConfigOpt = None,
) -> None:
    """Run the fast Belle II simulation on INPUT files; write OUT/<same name>.parquet each."""

    cfg = load_config(config)
    cfg.detector.get(detector)  # unknown name: ConfigError before any work
    names = [p.name for p in inputs]
    if len(set(names)) != len(names):
        raise ZprimeError("two INPUT files have the same name: their outputs would collide")
    run_one = functools.partial(
        simulate_file,
        out_dir=out,
        detector=detector,
        seed=seed,
        config=cfg,
        batch_size=batch_size,
        min_tracks=min_tracks,
    )
    for path in map_tasks(run_one, inputs, description="simulate"):
        _note(f"wrote {path}")


@app.command("limit")
def limit_cmd(
    workspace: Annotated[Path, typer.Argument(help="pyhf JSON workspace")],
    engine: Annotated[str, typer.Option("--engine", help="fast (zprime.stats) or pyhf")] = "fast",
    toys: Annotated[
        int, typer.Option("--toys", help="toys per POI value (0: asymptotic formulae)")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="seed of the toys")] = 0,
    level: Annotated[float, typer.Option("--level", help="CLs level (0.10: 90% CL)")] = 0.10,
    test_stat: Annotated[
        str,
        typer.Option(
            "--test-stat", help="qtilde (q~_mu), q (q_mu) or q0 (discovery; needs --mu 0)"
        ),
    ] = "qtilde",
    mu: Annotated[
        float | None,
        typer.Option("--mu", help="CLs (p0 for q0) at this POI value instead of a limit"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON object as the last line")
    ] = False,
) -> None:
    """CLs upper limits (q~_mu or q_mu) on the POI of WORKSPACE: observed and expected band;
    with --mu, CLs (or p0) at that POI value and its expected band."""
    if engine not in ("fast", "pyhf"):
        raise ConfigError(f"--engine must be fast or pyhf, got {engine!r}")
    if toys < 0 or not 0.0 < level < 1.0:
        raise ConfigError("--toys must be >= 0 and --level in (0, 1)")
    if test_stat not in ("qtilde", "q", "q0"):
        raise ConfigError(f"--test-stat must be qtilde, q or q0, got {test_stat!r}")
    if test_stat == "q0" and mu is None:
        raise ConfigError("--test-stat q0 gives a discovery p-value: pass --mu 0")
    if mu is not None and toys:
        raise ConfigError("--mu uses the asymptotic formulae; drop --toys")
    spec, _ = read_workspace(workspace)
    validate_workspace(spec, workspace.stem)
    for obs in spec.get("observations", []):
        if any(v < 0 for v in obs["data"]):
            raise InputError(
                f"workspace {workspace.stem}: channel {obs['name']!r}: negative observed count"
            )
    if mu is not None:
        t0 = time.perf_counter()
        if engine == "fast":
            cls_a, band_a = hypotest(compile_workspace(spec), mu, test_stat=test_stat)
            obs_v, band = float(cls_a[0]), [float(v) for v in band_a[0]]
        else:
            obs_v, band = pyhf_hypotest(spec, mu, test_stat=test_stat)
        what = "p0" if test_stat == "q0" else "CLs"
        if as_json:
            rec = {what: obs_v, "expected": band, "engine": engine, "test_stat": test_stat}
            rec["seconds"] = time.perf_counter() - t0
            typer.echo(json.dumps(rec))
            return
        exp_s = ", ".join(f"{v:.6g}" for v in band)
        out.print(
            f"{workspace.stem}: {what} at mu = {mu:g} ({test_stat}, engine {engine}): "
            f"observed {obs_v:.6g}; expected [-2s, -1s, median, +1s, +2s] = [{exp_s}]",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    if test_stat == "q0":
        raise ConfigError("upper limits need --test-stat qtilde or q")
    n_pars = sum(len(s["modifiers"]) for c in spec["channels"] for s in c["samples"])
    # pyhf fits with numerical gradients: minutes for a search window's ~100 modifiers, which
    # looked like a hang without a sign of life
    status: Any = contextlib.nullcontext()
    if engine == "pyhf":
        status = Progress(
            SpinnerColumn(),
            TextColumn(f"pyhf: root finding on CLs, {n_pars} modifiers (minutes; fast agrees)"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        status.add_task("pyhf", total=None)
    with status:
        res = upper_limit(
            spec, engine=engine, ntoys=toys, seed=seed, level=level, test_stat=test_stat
        )
    if not res.ok:
        raise ZprimeError(f"{workspace}: {res.message}")
    if as_json:
        record = {
            "observed": res.observed,
            "expected": list(res.expected),
            "engine": res.engine,
            "seconds": res.seconds,
        }
        typer.echo(json.dumps(record))
        return
    cl = 100.0 * (1.0 - level)
    exp = ", ".join(f"{v:.6g}" for v in res.expected)
    ts = "q~_mu" if test_stat == "qtilde" else "q_mu"
    out.print(
        f"{res.name}: {cl:g}% CL upper limit on {res.method} CLs ({ts}, engine {res.engine}): "
        f"observed {res.observed:.6g}; expected [-2s, -1s, median, +1s, +2s] = [{exp}] "
        f"({res.seconds:.3g} s)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


# --- results commands (issue 8: recast) ---


@app.command("recast")
def recast_cmd(
    limits: Annotated[
        Path,
        typer.Argument(
            metavar="LIMITS.csv",
            help="CSV with mass_gev and limit columns in fb (results or fit-stage names)",
        ),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="vanilla or fully_invisible")],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="CSV to write (default: LIMITS_gprime_MODEL.csv)"),
    ] = None,
) -> None:
    """Turn limits on sigma(e+e- -> mu mu Z') x B(Z' -> invisible) into limits on g'."""

    target = out_file or limits.with_name(f"{limits.stem}_gprime_{model}.csv")
    res = recast(limits, model, target)
    cols = res.columns
    n = len(res)
    if n <= 30:
        shown = list(range(n))
    else:  # the hypotheses nearest to a few masses; every row is in the CSV
        mass = cols["mass_gev"]
        groups = cols.get("width", np.zeros(n, dtype=str))
        shown = []
        for w in dict.fromkeys(groups.tolist()):  # per width, in file order
            for m in SUMMARY_MASSES_GEV:
                d = np.where(groups == w, np.abs(mass - m), np.nan)
                if np.any(np.isfinite(d)) and (i := int(np.nanargmin(d))) not in shown:
                    shown.append(i)
    xsec = [c for c in ("obs_xsec_fb", "exp_xsec_fb") if c in cols]
    gcols = [c for c in res.gprime_columns() if c.count("_") == 2]  # observed and median
    table = Table(
        title=escape(
            f"90% CL limits: sigma x B(inv) [fb] and g', {model.replace('_', ' ')} L_mu - L_tau"
        ),
        caption=escape(f"{len(shown)} of {n} rows shown; all in {target}")
        if len(shown) < n
        else None,
    )
    table.add_column(escape("M_Z' [GeV]"), justify="right")

    def num(v: float, fmt: str = ".4g") -> str:
        return "-" if not np.isfinite(v) else format(v, fmt)

    if "width" in cols:
        table.add_column("width")
    for c in xsec:
        table.add_column(
            ("obs." if c.startswith("obs") else "exp.") + escape(" [fb]"), justify="right"
        )
    table.add_column("B(inv)", justify="right")
    for c in gcols:
        table.add_column(("obs." if c.startswith("obs") else "exp.") + " g'", justify="right")
    for i in shown:
        row = [f"{cols['mass_gev'][i]:.4g}"]
        if "width" in cols:
            row.append(str(cols["width"][i]))
        row += [num(cols[c][i]) for c in xsec]
        row.append(num(cols["br_inv"][i], ".3f"))
        row += [num(cols[c][i]) for c in gcols]
        table.add_row(*map(escape, row))
    out.print(table)
    _note(f"wrote {target}")


# --- run options (issue 8) ---


@app.command("env")
def env() -> None:
    """Print versions of Python, the platform and the packages zprime uses (for bug reports)."""

    record = provenance()
    record.pop("config")
    out.print_json(json.dumps(record))


_DISK_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def _disk_full(err: BaseException) -> OSError | None:
    """The full-disk (or quota) :class:`OSError` behind ``err``, if any (its causes included)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno in _DISK_FULL:
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _fail(label: str, message: str, status: int) -> NoReturn:
    """Print ``label message`` as one line on stderr (the message verbatim) and exit."""
    text = Text.assemble((label, "bold red"), *((" ", message) if message else ()))
    console.print(text, highlight=False, soft_wrap=True)
    sys.exit(status)


def main() -> None:
    """Entry point of the ``zprime`` script.

    Parses and runs the command (click's context, without typer's standalone handling, which
    turns an interrupt into a return value and prints usage errors as a block) and turns what a
    user can act on into one line on stderr: ``error: ...`` with exit status 2 for a
    :class:`~zprime.errors.ZprimeError`, a usage error or a full disk; ``interrupted ...`` with
    exit status 130 for Ctrl-C. Anything else is a bug and keeps its traceback.
    """
    command = typer.main.get_command(app)
    try:
        with command.make_context("zprime", sys.argv[1:]) as ctx:
            command.invoke(ctx)
    except ZprimeError as err:
        _fail("error:", str(err), 2)
    except KeyboardInterrupt as err:
        if str(err):  # the pipeline's "in stage NAME: its outputs are not recorded; ..."
            _fail("interrupted", str(err), 130)
        _fail("interrupted:", "no partial output was kept; run it again to resume", 130)
    except typer.Exit as ex:  # --help, --version, ctx.exit()
        sys.exit(ex.exit_code)
    except (typer.Abort, EOFError):  # a prompt answered with Ctrl-D
        _fail("aborted", "", 1)
    except typer.TyperException as err:  # click's usage errors (typer bundles click)
        if type(err).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # the help was printed while the error was made
        ctx = getattr(err, "ctx", None)
        hint = f"; see {ctx.command_path} --help" if ctx is not None else ""
        _fail("error:", err.format_message().rstrip(".") + hint, getattr(err, "exit_code", 2))
    except BrokenPipeError:  # output piped into a reader that stopped (`zprime ... | head`)
        # the flush at exit would fail again: send what is left to /dev/null
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as err:
        disk = _disk_full(err)
        if disk is None:
            raise
        where = f": {disk.filename}" if disk.filename else ""
        _fail("error:", f"{_DISK_FULL[disk.errno]}{where}", 2)


if __name__ == "__main__":  # pragma: no cover
    main()
