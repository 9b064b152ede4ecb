"""Unweighting of one batch of events in memory: the rule behind
:func:`zprime.io.events.unweight_file` (a file, batch by batch) and the streamed pseudo-data
simulation (:func:`zprime.detector.simulation.simulate_file` with ``unweight_fb``), which must
not write the copies of heavy events to disk first (a sample at a tenth of the luminosity
becomes ten times its size)."""

from __future__ import annotations

import awkward as ak
import numpy as np

from zprime.errors import ConfigError

__all__ = ["unweight_batch"]


def unweight_batch(
    batch: ak.Array, weight_fb: float, rng: np.random.Generator, max_copies: int = 1
) -> ak.Array:
    """Events of weight ``w`` unweighted to ``weight_fb``: kept ``k = floor(w / weight_fb) +
    Bernoulli(frac)`` times with weight ``weight_fb`` (at most once for ``w < weight_fb``);
    an event whose ``k`` could exceed ``max_copies`` is kept once with its own weight. Every
    weighted yield is unchanged in expectation; the copies of one event are adjacent."""
    if not weight_fb > 0:
        raise ConfigError(f"unweighting: target weight must be positive, got {weight_fb}")
    if max_copies < 1:
        raise ConfigError(f"unweighting: max_copies must be >= 1, got {max_copies}")
    w = np.asarray(ak.to_numpy(batch["weight"]), dtype=np.float64)
    x = w / weight_fb
    base = np.floor(x)
    k = (base + (rng.random(w.size) < (x - base))).astype(np.int64)
    heavy = x > max_copies
    k[heavy] = 1
    out = batch[np.repeat(np.arange(w.size), k)]
    return ak.with_field(out, np.repeat(np.where(heavy, w, weight_fb), k), "weight")
