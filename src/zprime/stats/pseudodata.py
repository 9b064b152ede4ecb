"""Pseudo-data: the default run's "observed" data, made as real data are made.

No Belle II data is public, so zprime makes its own "observed" data. With
``pseudo_data.source: data_detector`` (the default) every background sample is **generated again
with its own seeds** (``pseudo_data.seed_offset``), passed through the "data" detector
(``control.data_detector``, which differs from the simulation as the PRL says real data do) with
its own random numbers, and selected like the simulation: an independent sample, as real data
are. This module turns such weighted, selected events (``weight`` in fb per event) into a sample
of unit-weight events at the luminosity ``L``:

    k_j = floor(L w_j) + Bernoulli(L w_j - floor(L w_j))        copies of event j.

For an event that stands for less than one data event (``L w < 1``: the samples are generated at
several times the luminosity) this keeps it with probability ``L w`` (thinning); since the
generated events form a Poisson process over phase space, the kept events do too, and binned in
any way the counts are independent Poisson variables with the expected means: the statistical
behaviour of real data, with no event used twice. An event heavier than ``L w = 1`` appears
``k >= 1`` times (a "clump": the expected count is right, the fluctuation is not Poisson). The
pipeline avoids clumps before the detector: a data-detector event that stands for ``k`` data
events is simulated as ``k`` copies with their own random numbers
(:func:`zprime.io.events.unweight_file`, up to ``pseudo_data.max_copies``), so only heavier events
reach :func:`draw` with ``L w > 1``; it counts them and the pipeline records the count per
sample (``data/pseudo_data_samples.json``), so that a reader sees where the generated sample
was too small for the luminosity.

``pseudo_data.source: simulation`` applies the same thinning to the selected simulation itself
(pseudo-data that share events with the templates: a closure test, not an independent sample).

A signal can be injected with a given cross section (sigma x B in fb): the signal sample's
weights, which sum to its generated cross section, are rescaled to it before the thinning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from zprime.errors import ConfigError, InputError
from zprime.io.events import read_events, read_metadata

__all__ = ["draw", "draw_from_files", "event_counts"]


def _columns(events: Any, where: str, columns: Sequence[str]) -> dict[str, np.ndarray]:
    fields = ak.fields(events) if isinstance(events, ak.Array) else list(events)
    out = {}
    for col in (*columns, "weight"):
        if col not in fields:
            raise InputError(f"{where}: missing column '{col}'")
        out[col] = np.asarray(events[col], dtype=np.float64)
    return out


def event_counts(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """How many times each weighted event enters a unit-weight sample.

    Parameters
    ----------
    expected
        Expected number of data events per simulated event, ``L * w`` (>= 0, finite).
    rng
        Random numbers.

    Returns
    -------
    numpy.ndarray
        Integer counts ``floor(x) + Bernoulli(x - floor(x))``: mean ``x``, and for ``x <= 1`` a
        thinning of the sample (each event at most once).
    """
    x = np.asarray(expected, dtype=np.float64)
    if np.any(x < 0) or not np.all(np.isfinite(x)):
        raise InputError("pseudo-data: expected counts must be finite and >= 0")
    base = np.floor(x)
    return (base + (rng.random(x.size) < (x - base))).astype(np.int64)


def draw(
    samples: Mapping[str, Any],
    luminosity_fb: float,
    rng: np.random.Generator,
    *,
    columns: Sequence[str],
    signal: tuple[Any, float] | None = None,
    signal_xsec_fb: float = 0.0,
    stats: dict[str, dict[str, float]] | None = None,
    group_by: str | None = None,
) -> dict[str, np.ndarray]:
    """Unit-weight pseudo-data from weighted, selected samples (see the module docstring).

    Parameters
    ----------
    samples
        Name -> events (awkward array or mapping of columns) with ``columns`` and ``weight``.
    luminosity_fb
        Luminosity of the pseudo-data, fb^-1.
    rng
        Random numbers.
    columns
        The columns the pseudo-data keep (the analysis's observables; at least one).
    signal
        Optional ``(events, total_weight)``: selected signal events and the summed weight of all
        generated events of that sample (its cross section in fb).
    signal_xsec_fb
        Injected sigma(e+e- -> mu mu Z') x B(Z' -> invisible), fb.
    stats
        If given, filled with one entry per sample: ``expected`` (L sum w), ``events`` (drawn),
        ``heavy_events`` (simulated events with L w > 1, which enter more than once) and
        ``heavy_expected`` (their expected events).
    group_by
        A column (one of ``columns``) whose consecutive equal values make one event with several
        rows (candidates, sharing the event's weight): the event's count is drawn once, from its
        first row's weight, and all its rows enter together. None: every row is an event.

    Returns
    -------
    dict
        The ``columns``, ``weight`` (all 1) and ``source`` (index into the sorted sample
        names, with the signal last).
    """
    if not columns:
        raise ConfigError("pseudo-data: no columns to keep")
    if group_by is not None and group_by not in columns:
        raise ConfigError(f"pseudo-data: group_by column '{group_by}' is not among the columns")
    if luminosity_fb <= 0:
        raise ConfigError(f"pseudo-data: luminosity must be positive, got {luminosity_fb}")
    if signal_xsec_fb < 0:
        raise ConfigError(f"pseudo-data: injected cross section must be >= 0, got {signal_xsec_fb}")
    parts: list[tuple[str, dict[str, np.ndarray], float]] = []
    for name in sorted(samples):
        parts.append((name, _columns(samples[name], name, columns), 1.0))
    if signal is not None and signal_xsec_fb > 0:
        events, total = signal
        if total <= 0:
            raise InputError("pseudo-data: the signal sample's total weight must be positive")
        parts.append(("signal", _columns(events, "signal", columns), signal_xsec_fb / total))
    chosen: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    source: list[np.ndarray] = []
    for index, (name, cols, scale) in enumerate(parts):
        w = cols["weight"] * scale
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise InputError(f"pseudo-data: sample '{name}' has negative or non-finite weights")
        expected = w * luminosity_fb
        if group_by is None:
            k = event_counts(expected, rng)
        else:
            g = cols[group_by]
            first = np.ones(g.size, dtype=bool)
            first[1:] = g[1:] != g[:-1]
            k = event_counts(expected[first], rng)[np.cumsum(first) - 1]
        if stats is not None:
            heavy = expected > 1.0
            stats[name] = {
                "expected": float(expected.sum()),
                "events": int(k.sum()),
                "heavy_events": int(heavy.sum()),
                "heavy_expected": float(expected[heavy].sum()),
            }
        if not k.any():
            continue
        pick = np.repeat(np.arange(w.size), k)
        for c in columns:
            chosen[c].append(cols[c][pick])
        source.append(np.full(pick.size, index, dtype=np.int32))
    out = {c: np.concatenate(v) if v else np.zeros(0) for c, v in chosen.items()}
    out["weight"] = np.ones(out[columns[0]].size)
    out["source"] = np.concatenate(source) if source else np.zeros(0, dtype=np.int32)
    return out


def draw_from_files(
    paths: Mapping[str, str | Path],
    luminosity_fb: float,
    rng: np.random.Generator,
    *,
    columns: Sequence[str],
    signal_path: str | Path | None = None,
    signal_xsec_fb: float = 0.0,
) -> dict[str, np.ndarray]:
    """:func:`draw` from selected Parquet files (the signal's total weight from its metadata)."""
    cols = [*columns, "weight"]
    samples = {name: read_events(p, cols) for name, p in paths.items()}
    signal = None
    if signal_path is not None:
        signal = (read_events(signal_path, cols), float(read_metadata(signal_path)["sigma_fb"]))
    return draw(
        samples, luminosity_fb, rng, columns=columns, signal=signal, signal_xsec_fb=signal_xsec_fb
    )
