"""Pseudo-data: a Poisson sample of weighted simulated events at a given luminosity.

No Belle II data is public, so zprime makes its own "observed" data. From weighted samples
(``weight`` in fb per event) the expected number of events is ``mu = L * sum(weight)``; the
pseudo-data have ``N ~ Poisson(mu)`` events drawn with replacement with probability
proportional to ``weight``. Binned in any way, the counts are then independent Poisson variables
with the expected means (a Poisson number of multinomial draws), which is all a binned fit
needs; an event may appear more than once when the simulated sample stands for less luminosity
than the pseudo-data.

A signal can be injected with a given cross section (sigma x B in fb): the signal sample's
weights, which sum to its generated cross section, are rescaled to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from zprime.errors import ConfigError, InputError

__all__ = ["COLUMNS", "draw", "draw_from_files"]

COLUMNS: tuple[str, ...] = ("m_recoil2", "theta_recoil_cm", "theta_recoil")
"""The columns that the pseudo-data keep (the fit variables and the lab recoil angle)."""


def _columns(events: Any, where: str) -> dict[str, np.ndarray]:
    fields = ak.fields(events) if isinstance(events, ak.Array) else list(events)
    out = {}
    for col in (*COLUMNS, "weight"):
        if col not in fields:
            raise InputError(f"{where}: missing column '{col}'")
        out[col] = np.asarray(events[col], dtype=np.float64)
    return out


def draw(
    samples: Mapping[str, Any],
    luminosity_fb: float,
    rng: np.random.Generator,
    *,
    signal: tuple[Any, float] | None = None,
    signal_xsec_fb: float = 0.0,
) -> dict[str, np.ndarray]:
    """Draw pseudo-data from weighted samples.

    Parameters
    ----------
    samples
        Name -> events (awkward array or mapping of columns) with :data:`COLUMNS` and ``weight``.
    luminosity_fb
        Luminosity of the pseudo-data, fb^-1.
    rng
        Random numbers.
    signal
        Optional ``(events, total_weight)``: selected signal events and the summed weight of all
        generated events of that sample (its cross section in fb).
    signal_xsec_fb
        Injected sigma(e+e- -> mu mu Z') x B(Z' -> invisible), fb.

    Returns
    -------
    dict
        Columns :data:`COLUMNS`, ``weight`` (all 1) and ``source`` (index into the sorted sample
        names, with the signal last).
    """
    if luminosity_fb <= 0:
        raise ConfigError(f"pseudo-data: luminosity must be positive, got {luminosity_fb}")
    if signal_xsec_fb < 0:
        raise ConfigError(f"pseudo-data: injected cross section must be >= 0, got {signal_xsec_fb}")
    parts: list[tuple[str, dict[str, np.ndarray], float]] = []
    for name in sorted(samples):
        parts.append((name, _columns(samples[name], name), 1.0))
    if signal is not None and signal_xsec_fb > 0:
        events, total = signal
        if total <= 0:
            raise InputError("pseudo-data: the signal sample's total weight must be positive")
        parts.append(("signal", _columns(events, "signal"), signal_xsec_fb / total))
    chosen: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    source: list[np.ndarray] = []
    for index, (name, cols, scale) in enumerate(parts):
        w = cols["weight"] * scale
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise InputError(f"pseudo-data: sample '{name}' has negative or non-finite weights")
        mu = float(w.sum()) * luminosity_fb
        n = int(rng.poisson(mu)) if mu > 0 else 0
        if n == 0:
            continue
        pick = rng.choice(w.size, size=n, replace=True, p=w / w.sum())
        for c in COLUMNS:
            chosen[c].append(cols[c][pick])
        source.append(np.full(n, index, dtype=np.int32))
    out = {c: np.concatenate(v) if v else np.zeros(0) for c, v in chosen.items()}
    out["weight"] = np.ones(out["m_recoil2"].size)
    out["source"] = np.concatenate(source) if source else np.zeros(0, dtype=np.int32)
    return out


def draw_from_files(
    paths: Mapping[str, str | Path],
    luminosity_fb: float,
    rng: np.random.Generator,
    *,
    signal_path: str | Path | None = None,
    signal_xsec_fb: float = 0.0,
) -> dict[str, np.ndarray]:
    """:func:`draw` from selected Parquet files (the signal's total weight from its metadata)."""
    from zprime.events import read_events, read_metadata

    cols = [*COLUMNS, "weight"]
    samples = {name: read_events(p, cols) for name, p in paths.items()}
    signal = None
    if signal_path is not None:
        signal = (read_events(signal_path, cols), float(read_metadata(signal_path)["sigma_fb"]))
    return draw(samples, luminosity_fb, rng, signal=signal, signal_xsec_fb=signal_xsec_fb)
