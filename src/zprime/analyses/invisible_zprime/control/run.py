"""The control-sample stage of the pipeline: :func:`run_control` reads the simulated and the
data-detector files into channel samples, derives every correction and systematic and writes
``corrections.json``, the comparison table, the cut flows, the background-shape windows and the
figures.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zprime._util import atomic_path, chunk_rng
from zprime.analyses.invisible_zprime.control.corrections import (
    ControlResult,
    _check_config,
    derive,
)
from zprime.analyses.invisible_zprime.control.figures import write_figures
from zprime.analyses.invisible_zprime.control.samples import (
    _SIGNAL_REGION,
    CONTROL_CHANNELS,
    ControlSample,
    read_channels,
)
from zprime.config import Config

__all__ = ["run_control"]

log = logging.getLogger(__name__)


def _write_text(path: Path, text: str) -> str:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return str(path)


def run_control(
    simulation: Mapping[str, str | Path],
    data: Mapping[str, str | Path],
    out_dir: str | Path,
    config: Config,
    *,
    model: Any = None,
    resolution: Any = None,
    make_plots: bool = True,
) -> ControlResult:
    """The control-sample stage: read, measure, derive, write.

    Parameters
    ----------
    simulation
        Background sample name -> reconstructed file made with the ``simulation`` detector.
    data
        Sample name -> reconstructed file made with the data detector
        (``control.data_detector``) from independently generated events; the pseudo-data are
        drawn from them (``control.data_mode``).
    out_dir
        Where everything goes: ``corrections.json``, ``comparison.md``,
        ``background_shape_windows.csv``, ``cutflows/<channel>.md|csv`` and ``plots/``.
    config
        The configuration.
    model
        The trained Punzi-net (object or path of
        :func:`zprime.analyses.invisible_zprime.punzinet.save`); ``None``: no
        network-efficiency term (recorded).
    resolution
        :class:`zprime.analyses.invisible_zprime.binning.ResolutionModel` of the search windows
        (default: the PRL's).
    make_plots
        Draw the data/simulation figures.

    Returns
    -------
    ControlResult
        With ``files`` naming what was written; ``corrections.json`` is ``files['corrections']``.
    """
    _check_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, str | Path):
        # lazy: punzinet imports torch at its top, needed only when a network is given
        from zprime.analyses.invisible_zprime.punzinet import load

        model = load(model)
    pv_samples = [
        s for s in config.templates.systematics.prl.photon_veto_samples if s in simulation
    ]
    sim, sim_flows = read_channels(
        simulation, config, model=model, signal_region_samples=pv_samples
    )
    dat, dat_flows = read_channels(data, config, model=model, is_data=True, seed_key=1)
    samples: dict[str, ControlSample] = {}
    for ch in CONTROL_CHANNELS:
        if ch in sim and ch in dat:
            samples[ch] = ControlSample(ch, dat[ch], sim[ch])
    result = derive(
        samples,
        config,
        mumu_simulation=sim.get(_SIGNAL_REGION),
        resolution=resolution,
        rng=chunk_rng(config.seed, config.control.seed_offset, 2),
    )
    if model is None:
        log.warning(
            "control: no Punzi-net given; the signal-efficiency systematic has no "
            "network-efficiency term"
        )
    result.inputs.update(
        {
            "simulation": {k: str(v) for k, v in simulation.items()},
            "data": {k: str(v) for k, v in data.items()},
            "data_detector": config.control.data_detector,
            "data_mode": config.control.data_mode,
            "punzinet": None if model is None else "applied",
        }
    )
    files: dict[str, str] = {}
    for ch in [*CONTROL_CHANNELS, _SIGNAL_REGION]:
        flows = sim_flows.get(ch, []) + dat_flows.get(ch, [])
        if not flows:
            continue
        md = f"# Cut flows of the `{ch}` channel\n\n" + "\n".join(f.to_markdown() for f in flows)
        files[f"cutflow_{ch}"] = _write_text(out / "cutflows" / f"{ch}.md", md)
        csv_text = "".join(
            f.to_csv() if i == 0 else f.to_csv().split("\n", 1)[1] for i, f in enumerate(flows)
        )
        _write_text(out / "cutflows" / f"{ch}.csv", csv_text)
    if result.windows:
        keys = list(result.windows[0])
        lines = [",".join(keys)] + [
            ",".join("" if r[k] is None else str(r[k]) for k in keys) for r in result.windows
        ]
        files["windows"] = _write_text(
            out / "background_shape_windows.csv", "\n".join(lines) + "\n"
        )
    files["comparison"] = _write_text(out / "comparison.md", result.comparison_markdown())
    if make_plots:
        written = write_figures(samples, result, out / "plots", config)
        files["plots"] = str(out / "plots") if written else ""
    result.files = files
    files["corrections"] = str(result.write(out / "corrections.json"))
    return result
