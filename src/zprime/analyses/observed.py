"""The observed events of an analysis: a user's data file, or the pseudo-data drawn from the
data detector's selected samples (with an injected signal), as unit-weight events.

Shared by the searches that count or fit selected events (the dark Higgsstrahlung and the
tau-tau resonance searches); the invisible Z' has its own (``invisible_zprime/observed.py``),
which also records the pseudo-data's per-sample statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from zprime.config import Config
from zprime.errors import InputError
from zprime.io.events import read_events, read_metadata
from zprime.stats import pseudodata

__all__ = ["injected_total", "observed_events"]

F64 = NDArray[np.float64]


def injected_total(data_files: Mapping[str, Path]) -> float | None:
    """The generated cross section (fb) of the injected signal among the pseudo-data's
    reconstructed files (the file named ``signal``; None without one): the
    ``signal_total_fb`` of :func:`observed_events`."""
    if "signal" not in data_files:
        return None
    return float(read_metadata(data_files["signal"]).get("sigma_fb", math.nan))


def observed_events(
    config: Config,
    files: Mapping[str, Path],
    columns: tuple[str, ...],
    *,
    stream: int,
    signal_total_fb: float | None = None,
    group_by: str | None = None,
) -> dict[str, F64]:
    """The observed events of a group of selected files, each with unit weight.

    A user's ntuple (``observed_data.file``) counts every event once; the pseudo-data's
    weighted samples are thinned to unit weight at the luminosity (:func:`pseudodata.draw`)
    with the random stream ``[seed, pseudo_data.seed_offset, stream]``: the same stream on the
    same files gives the same events, so the limits and the control stage see one data set.
    A file named ``signal`` is the injected signal: its weights, which sum to
    ``signal_total_fb`` (its generated cross section), are rescaled to
    ``pseudo_data.inject_xsec_fb`` (sigma x B) before the thinning. ``group_by`` names a column
    (among ``columns``) whose consecutive equal values are the candidates of one event: they are
    drawn together (:func:`pseudodata.draw`).
    """
    cols = tuple(dict.fromkeys(columns))
    if config.observed_data.file is not None:
        parts = [read_events(p, [*cols, "weight"]) for p in files.values()]
        if not parts:
            return {c: np.zeros(0) for c in (*cols, "weight")}
        out = {c: np.concatenate([np.asarray(p[c], dtype=float) for p in parts]) for c in cols}
        out["weight"] = np.ones(len(out[cols[0]]))
        return out
    rng = np.random.default_rng(
        np.random.SeedSequence([config.seed, config.pseudo_data.seed_offset, stream])
    )
    samples = {n: read_events(p, [*cols, "weight"]) for n, p in files.items() if n != "signal"}
    signal = None
    if "signal" in files:
        if not (signal_total_fb is not None and signal_total_fb > 0):
            raise InputError(
                "pseudo-data: the injected signal's generated cross section is unknown"
            )
        signal = (read_events(files["signal"], [*cols, "weight"]), float(signal_total_fb))
    if not samples and signal is None:
        return {c: np.zeros(0) for c in (*cols, "weight")}
    drawn = pseudodata.draw(
        samples,
        float(config.luminosity_fb),
        rng,
        columns=cols,
        signal=signal,
        signal_xsec_fb=float(config.pseudo_data.inject_xsec_fb) if signal else 0.0,
        group_by=group_by,
    )
    return {c: np.asarray(drawn[c], dtype=float) for c in (*cols, "weight")}
