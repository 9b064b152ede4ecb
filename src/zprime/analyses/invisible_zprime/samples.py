"""Selected events of one sample and the 2D histograms of a search window.

This module owns what both the histogram templates
(:mod:`~zprime.analyses.invisible_zprime.templates`) and the smoothed ones
(:mod:`~zprime.analyses.invisible_zprime.smoothing`) build on: :class:`EventSample` (the fit
variables M_recoil^2 and theta_recoil^CM and the weights of one selected sample, read from a
selected Parquet file or from arrays) and the helpers that make a window's ``Weight``-storage
:class:`hist.Hist` from events or from arrays of contents and variances. It imports neither of
the two; :mod:`~zprime.analyses.invisible_zprime.templates` re-exports :class:`EventSample`.

Units: GeV^2 for M^2, rad for theta, fb per event for weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime.analyses.invisible_zprime.binning import Window
from zprime.errors import InputError
from zprime.io.events import read_events, read_metadata

__all__ = ["EventSample"]


def _column(events: Any, name: str, sample: str) -> NDArray[np.float64]:
    try:
        col = events[name]
    except (KeyError, ValueError, ak.errors.FieldNotFoundError):
        raise InputError(f"sample {sample!r}: missing column {name!r}") from None
    return np.asarray(ak.to_numpy(col) if isinstance(col, ak.Array) else col, dtype=np.float64)


def _check_finite(sample: str, **cols: NDArray[np.float64]) -> None:
    for key, arr in cols.items():
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(
                f"sample {sample!r}: column {key!r} is NaN/inf at event {int(np.argmax(bad))}"
            )


@dataclass
class EventSample:
    """Selected events of one sample: the two fit variables and the weights.

    ``weight`` is fb per event (expected events = weight x luminosity); for a data sample
    (``is_data``) every event counts once and the weights are ignored. The arrays are sorted
    by ``m2`` on construction.
    """

    name: str
    m2: NDArray[np.float64]
    """M_recoil^2, GeV^2."""
    theta: NDArray[np.float64]
    """theta_recoil^CM, rad."""
    weight: NDArray[np.float64]
    """fb per event."""
    is_data: bool = False

    def __post_init__(self) -> None:
        self.m2 = np.asarray(self.m2, dtype=np.float64).ravel()
        self.theta = np.asarray(self.theta, dtype=np.float64).ravel()
        self.weight = (
            np.ones_like(self.m2)
            if self.weight is None
            else np.asarray(self.weight, dtype=np.float64).ravel()
        )
        if not (self.m2.size == self.theta.size == self.weight.size):
            raise InputError(f"sample {self.name!r}: m2, theta and weight lengths differ")
        _check_finite(self.name, m_recoil2=self.m2, theta_recoil_cm=self.theta, weight=self.weight)
        order = np.argsort(self.m2, kind="stable")
        self.m2, self.theta, self.weight = self.m2[order], self.theta[order], self.weight[order]

    @classmethod
    def from_events(cls, name: str, events: Any, *, is_data: bool = False) -> EventSample:
        """From selected events (reconstructed schema: ``m_recoil2``, ``theta_recoil_cm``,
        ``weight``; any mapping of arrays with these keys)."""
        m2 = _column(events, "m_recoil2", name)
        th = _column(events, "theta_recoil_cm", name)
        w = np.ones_like(m2) if is_data else _column(events, "weight", name)
        return cls(name, m2, th, w, is_data=is_data)

    @classmethod
    def read(
        cls, path: str | Path, name: str | None = None, *, is_data: bool = False
    ) -> EventSample:
        """From a selected Parquet file (``selected/<sample>.parquet``)."""
        meta = read_metadata(path)
        label = name or str(meta.get("sample", Path(path).stem))
        cols = ["m_recoil2", "theta_recoil_cm"] + ([] if is_data else ["weight"])
        return cls.from_events(label, read_events(path, cols), is_data=is_data)

    def __len__(self) -> int:
        return int(self.m2.size)

    def window(self, lo: float, hi: float) -> slice:
        """Slice of the (sorted) events with ``lo <= m2 < hi``."""
        return slice(
            int(np.searchsorted(self.m2, lo, "left")), int(np.searchsorted(self.m2, hi, "left"))
        )


# --------------------------------------------------------------------------- histograms
def _hist2d(m2_edges: ArrayLike, th_edges: ArrayLike) -> hist.Hist:
    return hist.Hist(
        hist.axis.Variable(
            np.asarray(m2_edges), name="m_recoil2", label="M_recoil^2 [GeV^2]", flow=False
        ),
        hist.axis.Variable(
            np.asarray(th_edges), name="theta_recoil_cm", label="theta_recoil^CM [rad]", flow=False
        ),
        storage=hist.storage.Weight(),
    )


def _filled(
    window: Window, m2: NDArray[np.float64], theta: NDArray[np.float64], w: NDArray[np.float64]
) -> hist.Hist:
    h = _hist2d(window.m2_edges, window.theta_edges)
    lo, hi = window.m2_edges[0], window.m2_edges[-1]
    keep = (m2 >= lo) & (m2 < hi)
    if keep.any():
        h.fill(m2[keep], np.clip(theta[keep], 0.0, np.nextafter(math.pi, 0.0)), weight=w[keep])
    return h


def _from_arrays(window: Window, values: ArrayLike, variances: ArrayLike) -> hist.Hist:
    h = _hist2d(window.m2_edges, window.theta_edges)
    v = np.asarray(values, dtype=float).reshape(window.shape)
    var = np.asarray(variances, dtype=float).reshape(window.shape)
    h.view().value = v
    h.view().variance = var
    return h
