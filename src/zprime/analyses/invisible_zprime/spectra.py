"""The report stage: figures of a finished run.

:func:`spectra_figures` draws the data-versus-simulation figures of the signal region (issue 8):
the M_recoil^2 spectrum of the pseudo-data against the stacked simulated backgrounds before and
after the Punzi-net cut (the PRL's Fig. 1 and its supplemental "before Punzi-net" spectrum), and
the theta_recoil - M_recoil^2 plane of data and simulation (PRL supplemental material).

It reads a run directory written by :mod:`zprime.pipeline`::

    selected/presel/<sample>.parquet       simulation, all cuts but the network
    selected/final/<sample>.parquet        simulation after the network
    selected/data_presel/<sample>.parquet  the "data" detector's samples (pseudo_data.source:
                                           data_detector), all cuts but the network
    data/pseudo_data.parquet               the observed pseudo-data (full selection)

``signal_*`` files are Z' hypotheses, not backgrounds, and are not stacked. This module reads the
run and saves the figures (:func:`zprime.report.plots.save`); the drawing is in
:mod:`zprime.analyses.invisible_zprime.figures` (``m2_spectrum_figure``, ``theta_plane_figure``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from zprime.analyses.invisible_zprime.figures import m2_spectrum_figure, theta_plane_figure
from zprime.analyses.invisible_zprime.observables import PSEUDO_DATA_COLUMNS
from zprime.analyses.invisible_zprime.observed import draw_pseudo_data, user_data
from zprime.config import Config
from zprime.errors import InputError
from zprime.io.events import read_events
from zprime.io.rundir import RunDir
from zprime.report.plots import save

__all__ = [
    "M2_EDGES",
    "SPECTRUM_COLUMNS",
    "before_network_pseudo_data",
    "read_backgrounds",
    "spectra_figures",
]

M2_EDGES: np.ndarray = np.arange(-1.0, 81.5, 1.0)
"""M_recoil^2 bins of the spectra, GeV^2: 1 GeV^2 wide over [-1, 81] GeV^2, which covers the
PRL's three M^2 ranges [-0.5, 9], [9, 36], [36, 81] GeV^2 (PRL 130, 231801). Wider than the fit's
bins (the signal resolution, 0.06-0.23 GeV^2) so that the weighted simulation, whose events each
stand for tens to hundreds of expected events, reads as a spectrum."""

SPECTRUM_COLUMNS: tuple[str, ...] = ("m_recoil2", "theta_recoil_cm", "theta_recoil", "weight")
"""Columns the figures read from the selected samples."""

BEFORE_NETWORK_STREAM = 1
"""Third key of the SeedSequence of the before-network pseudo-data sample,
``SeedSequence([seed, pseudo_data.seed_offset, 1])``; the run's pseudo-data use the first two."""


def _sample_files(directory: Path) -> dict[str, Path]:
    """Background sample name -> file in ``directory`` (signal hypotheses left out)."""
    return {
        p.stem: p for p in sorted(directory.glob("*.parquet")) if not p.stem.startswith("signal")
    }


def read_backgrounds(directory: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read the selected background samples of one directory of a run.

    Returns
    -------
    dict
        Sample name -> columns :data:`SPECTRUM_COLUMNS` as numpy arrays (rad, GeV^2, fb).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory of selected samples")
    out = {}
    for name, path in _sample_files(directory).items():
        ev = read_events(path, list(SPECTRUM_COLUMNS))
        out[name] = {c: np.asarray(ev[c], dtype=np.float64) for c in SPECTRUM_COLUMNS}
    return out


def _inject_signal_path(directories: list[Path], config: Config) -> Path | None:
    """The selected signal sample that the run injected into its pseudo-data, if any (the first
    of ``directories`` that holds it)."""
    pcfg = config.pseudo_data
    if pcfg.inject_mass_gev is None or pcfg.inject_xsec_fb <= 0:
        return None
    name = f"signal_M{pcfg.inject_mass_gev:.4f}.parquet"
    for directory in directories:
        if (directory / name).is_file():
            return directory / name
    raise InputError(f"{directories[-1] / name}: injected signal sample missing")


def before_network_pseudo_data(
    run_dir: str | Path | RunDir, config: Config
) -> tuple[dict[str, np.ndarray], str]:
    """A pseudo-data sample before the Punzi-net cut, comparable with the run's pseudo-data.

    The run's pseudo-data (``data/pseudo_data.parquet``) exist after the full selection. For the
    before-network spectrum this thins, with :func:`zprime.stats.pseudodata.draw`, the same samples
    before the network to unit-weight events at ``config.luminosity_fb``: the independently
    generated data-detector samples ``selected/data_presel`` (``pseudo_data.source:
    data_detector``), or the simulation ``selected/presel`` (``simulation``). An injected signal
    is added as in the run. The random stream is
    ``SeedSequence([seed, pseudo_data.seed_offset, 1])``, so the sample is reproducible; the
    events of one sample are the run's events before the network cut, thinned independently.

    Returns
    -------
    (dict, str)
        The pseudo-data columns (see :func:`zprime.stats.pseudodata.draw`) and a short
        description of their source for the figure.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    pcfg = config.pseudo_data
    sim_dir = run.selected("presel")
    data_dir = run.selected("data_presel")
    if not sim_dir.is_dir():
        raise InputError(f"{sim_dir}: no such directory of selected samples")
    observed = data_dir / "observed.parquet"
    if config.observed_data.file is not None and observed.is_file():
        # the user's data, selected without the network: every event counts once
        return user_data(observed), "data"
    use_data = pcfg.source == "data_detector" and bool(_sample_files(data_dir))
    rng = np.random.default_rng(
        np.random.SeedSequence([config.seed, pcfg.seed_offset, BEFORE_NETWORK_STREAM])
    )
    signal_path = _inject_signal_path([data_dir, sim_dir] if use_data else [sim_dir], config)
    samples, what = read_backgrounds(sim_dir), "simulation"
    if use_data:
        samples, what = read_backgrounds(data_dir), "data detector"
    drawn = draw_pseudo_data(config, samples, signal_path, rng)
    return drawn, what


def _observed(run: RunDir) -> dict[str, np.ndarray] | None:
    path = run.observed
    if not path.is_file():
        return None
    ev = read_events(path, list(PSEUDO_DATA_COLUMNS))
    return {c: np.asarray(ev[c], dtype=np.float64) for c in PSEUDO_DATA_COLUMNS}


def _stack_order(samples: Mapping[str, Mapping[str, np.ndarray]]) -> list[str]:
    """Samples by total weight, smallest first (at the bottom of the stack)."""
    return sorted(samples, key=lambda n: (float(np.sum(samples[n]["weight"])), n))


def _pooled(samples: Mapping[str, Mapping[str, np.ndarray]], col: str) -> np.ndarray:
    parts = [np.asarray(s[col]) for s in samples.values()]
    return np.concatenate(parts) if parts else np.zeros(0)


def spectra_figures(
    run_dir: str | Path | RunDir, out_dir: str | Path, config: Config
) -> dict[str, Path]:
    """Draw the data-versus-simulation figures of a run (PNG and PDF).

    Figures (``<out_dir>/<name>.png`` and ``.pdf``):

    - ``m2_presel``: M_recoil^2 of a before-network pseudo-data sample (see
      :func:`before_network_pseudo_data`) against the stacked backgrounds of
      ``selected/presel``, with the data/simulation ratio;
    - ``m2_final``: the run's pseudo-data against ``selected/final`` (the PRL's Fig. 1);
    - ``m2_final_linear``: the same on a linear y axis;
    - ``theta_plane_data_sim``: theta_recoil^CM versus M_recoil^2 after the full selection,
      pseudo-data and simulation side by side, with M^2 = 4 GeV^2, where the theta_recoil cut
      changes, marked;
    - ``theta_lab_plane_data_sim``: the same with the lab angle theta_recoil, on which the
      selection's cut is defined and whose rejected regions are hatched.

    Parameters
    ----------
    run_dir
        A run directory of ``zprime run`` (read only).
    out_dir
        Where the figures go (created).
    config
        The run's configuration (luminosity, seeds, pseudo-data source, selection).

    Returns
    -------
    dict
        Figure name -> path of its PNG (the PDF is next to it).
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lumi = config.luminosity_fb
    presel = read_backgrounds(run.selected("presel"))
    final = read_backgrounds(run.selected("final"))
    # the backgrounds as the templates see them: with the control-stage corrections (trigger,
    # photon veto) when the template stage applied them
    corrected_dir = run.corrected
    final_cm = final
    if corrected_dir.is_dir() and _sample_files(corrected_dir):
        final_cm = {}
        for name, path in _sample_files(corrected_dir).items():
            ev = read_events(path, ["m_recoil2", "theta_recoil_cm", "weight"])
            cols = {c: np.asarray(ev[c], dtype=np.float64) for c in ev.fields}
            cols["theta_recoil"] = np.full(cols["weight"].size, np.nan)
            final_cm[name] = cols
    observed = _observed(run)
    before, source = before_network_pseudo_data(run, config)
    written: dict[str, Path] = {}

    def stack(samples: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
        return {n: (samples[n]["m_recoil2"], samples[n]["weight"]) for n in _stack_order(samples)}

    origin = (
        "independent samples, data detector"
        if source == "data detector"
        else f"thinned {source} (closure)"
    )
    observed_m2 = None if observed is None else observed["m_recoil2"]
    after = "after Punzi-net\n" + (
        f"pseudo-data: {origin}" if observed is not None else "no data/pseudo_data.parquet"
    )
    if final_cm is not final:
        after += "\nsimulation with the measured corrections"
    jobs = [
        (
            "m2_presel",
            before["m_recoil2"],
            presel,
            f"before Punzi-net\npseudo-data: {origin}, drawn for this figure",
            True,
        ),
        ("m2_final", observed_m2, final_cm, after, True),
        ("m2_final_linear", observed_m2, final_cm, after, False),
    ]
    for name, data_m2, samples, title, log in jobs:
        fig = m2_spectrum_figure(
            data_m2, stack(samples), M2_EDGES, luminosity_fb=lumi, title=title, log=log
        )
        written[name] = save(fig, out_dir / name)[0]
    planes = (
        ("theta_plane_data_sim", "cm", observed, final_cm, "after Punzi-net"),
        ("theta_lab_plane_data_sim", "lab", observed, final, "after Punzi-net"),
        ("theta_plane_data_sim_presel", "cm", before, presel, "before Punzi-net"),
    )
    for name, frame, data_cols, samples, title in planes:
        angle = "theta_recoil_cm" if frame == "cm" else "theta_recoil"
        data = None if data_cols is None else (data_cols["m_recoil2"], data_cols[angle])
        sim = (_pooled(samples, "m_recoil2"), _pooled(samples, angle), _pooled(samples, "weight"))
        fig = theta_plane_figure(
            data, sim, luminosity_fb=lumi, frame=frame, selection=config.selection, title=title
        )
        written[name] = save(fig, out_dir / name)[0]
    return written
