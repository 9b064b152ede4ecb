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

:func:`data_detector_ratio` carries the "data" detector's differences over to the simulated
events (``pseudo_data.data_detector_mode: reweighted``, the default): the ratio of the data
detector's selected yield to the simulation's, per sample in coarse M_recoil^2 intervals, weights
the simulation's events. With weighted samples that stand for a fraction of the luminosity, the
event-level alternative (``events``: draw from the data detector's own selected events) puts
clumps of ~L*w identical events wherever the two detectors disagree for one simulated event, and
the fit reads each clump as a signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from zprime.errors import ConfigError, InputError

__all__ = ["COLUMNS", "data_detector_ratio", "data_detector_samples", "draw", "draw_from_files"]

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
    m2_bandwidth: Mapping[str, np.ndarray] | None = None,
    m2_edges: Any = None,
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
    m2_bandwidth
        Optional sample name -> per-event kernel width in M_recoil^2 (GeV^2): a drawn event's
        M_recoil^2 is moved by a Gaussian of that width (a smoothed bootstrap: the pseudo-data
        follow the kernel density of the simulated sample, as the smoothed background
        templates do, instead of repeating one simulated event ~L*w times at one point).
    m2_edges
        With ``m2_bandwidth``: increasing M_recoil^2 values (range ends and inner boundaries,
        e.g. where the theta_recoil cut changes) that a moved event does not cross: it is
        reflected at them.

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
        if m2_bandwidth is not None and name in m2_bandwidth:
            h = np.asarray(m2_bandwidth[name], dtype=np.float64)
            if h.shape != w.shape or np.any(~np.isfinite(h)) or np.any(h < 0):
                raise InputError(f"pseudo-data: bad M^2 bandwidths for sample '{name}'")
            x0 = chosen["m_recoil2"][-1]
            chosen["m_recoil2"][-1] = _reflect(
                x0 + h[pick] * rng.standard_normal(n), x0, m2_edges
            )
        source.append(np.full(n, index, dtype=np.int32))
    out = {c: np.concatenate(v) if v else np.zeros(0) for c, v in chosen.items()}
    out["weight"] = np.ones(out["m_recoil2"].size)
    out["source"] = np.concatenate(source) if source else np.zeros(0, dtype=np.int32)
    return out


def _reflect(x: np.ndarray, origin: np.ndarray, edges: Any) -> np.ndarray:
    """Moved values ``x`` reflected back into the interval of ``edges`` that holds ``origin``."""
    if edges is None:
        return x
    e = np.asarray(edges, dtype=np.float64)
    seg = np.clip(np.searchsorted(e, origin, side="right") - 1, 0, e.size - 2)
    lo, hi = e[seg], e[seg + 1]
    out = x.copy()
    for _ in range(4):  # a kernel far wider than its segment: a few reflections, then clip
        out = np.where(out < lo, 2 * lo - out, out)
        out = np.where(out > hi, 2 * hi - out, out)
    out = np.clip(out, lo, hi)
    outside = (origin < e[0]) | (origin > e[-1])  # not in the fitted range: left where it was
    return np.where(outside, origin, out)


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


def data_detector_ratio(
    sim_m2: np.ndarray,
    sim_weight: np.ndarray,
    data_m2: np.ndarray,
    data_weight: np.ndarray,
    edges: np.ndarray,
    *,
    min_events: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Yield ratio data detector / simulation of one sample in coarse M_recoil^2 intervals.

    Parameters
    ----------
    sim_m2, sim_weight
        M_recoil^2 (GeV^2) and weights of the sample selected with the simulation.
    data_m2, data_weight
        The same for the sample selected with the data detector (correlated sampling: the same
        generated events, so that the ratio is precise even for small samples).
    edges
        Interval edges in M_recoil^2 (GeV^2), increasing; events outside take the nearest interval.
    min_events
        Intervals where either sample has fewer simulated events take the ratio of the whole
        sample (or 1 when that too is below ``min_events``).

    Returns
    -------
    ratio, per_event
        The ratio per interval, and the ratio for each simulation event (its new weight is
        ``sim_weight * per_event``).
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigError(
            "pseudo_data.ratio_edges_gev2: interval edges must be increasing (>= 2 values)"
        )
    n = edges.size - 1

    def index(m2: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, m2, side="right") - 1, 0, n - 1)

    i_sim, i_data = index(np.asarray(sim_m2)), index(np.asarray(data_m2))
    y_sim = np.bincount(i_sim, weights=sim_weight, minlength=n)
    y_data = np.bincount(i_data, weights=data_weight, minlength=n)
    c_sim = np.bincount(i_sim, minlength=n)
    c_data = np.bincount(i_data, minlength=n)
    total_ok = len(sim_m2) >= min_events and len(data_m2) >= min_events and y_sim.sum() > 0
    overall = float(y_data.sum() / y_sim.sum()) if total_ok else 1.0
    ok = (c_sim >= min_events) & (c_data >= min_events) & (y_sim > 0)
    ratio = np.full(n, overall)
    ratio[ok] = y_data[ok] / y_sim[ok]
    return ratio, ratio[i_sim]


def data_detector_samples(
    simulation: Mapping[str, Mapping[str, np.ndarray]],
    data: Mapping[str, Mapping[str, np.ndarray]],
    luminosity_fb: float,
    *,
    mode: str = "auto",
    max_events_per_simulated_event: float = 20.0,
    ratio_edges_gev2: Any = (-2.0, 100.0),
    ratio_min_events: int = 10,
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """The samples the pseudo-data are drawn from when they come from the data detector.

    Parameters
    ----------
    simulation, data
        Sample name -> columns (:data:`COLUMNS` and ``weight``) of the same selection applied to
        the simulation and to the data detector's events.
    luminosity_fb
        Luminosity of the pseudo-data, fb^-1.
    mode
        ``events``: the data detector's events; ``reweighted``: the simulation's events weighted
        by :func:`data_detector_ratio`; ``auto``: ``events`` for a sample whose mean
        ``L * weight`` is at most ``max_events_per_simulated_event`` (each simulated event then
        appears a few times in the pseudo-data), ``reweighted`` for the others.
    ratio_edges_gev2, ratio_min_events
        Passed to :func:`data_detector_ratio`.

    Returns
    -------
    samples, notes
        Name -> columns to pass to :func:`draw`, and one line per sample saying what was used.
    """
    if mode not in ("auto", "events", "reweighted"):
        raise ConfigError(f"pseudo_data.data_detector_mode: unknown mode '{mode}'")
    samples: dict[str, dict[str, np.ndarray]] = {}
    notes: list[str] = []
    edges = np.asarray(ratio_edges_gev2, dtype=np.float64)
    for name, sim in simulation.items():
        dat = data.get(name)
        if dat is None:
            samples[name] = dict(sim)
            notes.append(f"{name}: simulation (no data-detector sample)")
            continue
        w = np.asarray(dat["weight"], dtype=np.float64)
        mean_lw = luminosity_fb * float(w.mean()) if w.size else 0.0
        if mode == "events" or (mode == "auto" and mean_lw <= max_events_per_simulated_event):
            samples[name] = dict(dat)
            notes.append(f"{name}: data-detector events (mean L*w = {mean_lw:.3g})")
            continue
        ratio, per_event = data_detector_ratio(
            np.asarray(sim["m_recoil2"]),
            np.asarray(sim["weight"]),
            np.asarray(dat["m_recoil2"]),
            w,
            edges,
            min_events=ratio_min_events,
        )
        samples[name] = {**sim, "weight": np.asarray(sim["weight"]) * per_event}
        notes.append(
            f"{name}: simulation x data/simulation ratio (mean L*w = {mean_lw:.3g}): "
            + " ".join(f"{r:.3f}" for r in ratio)
        )
    return samples, notes
