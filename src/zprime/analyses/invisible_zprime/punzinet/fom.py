"""The hard-cut Punzi figure of merit for reporting: the per-window table and the cut scan.

Owns :class:`FomRow` and :class:`FomTable` (per mass window: efficiency, expected background
and sigma_min without and with a cut on the network output, the sensitivity gain and the
over-training ratio; CSV and Markdown), the note printed with a table measured on the test
part, the computation of the rows from per-event outputs, and the scan of the figure of merit
over the output cuts :data:`SCAN_CUTS`. It works on numpy arrays of outputs; evaluating a
network for it is done by :mod:`.model` (:func:`~.model.punzi_fom`) and :mod:`.training`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zprime.analyses.invisible_zprime.punzinet.loss import sigma_min

SCAN_CUTS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""Network output cuts of the per-mass scan of the figure of merit (0.05 ... 0.95)."""


@dataclass(frozen=True)
class FomRow:
    """Punzi figure of merit in one mass window, without and with the network cut.

    Efficiencies are relative to all generated signal events of the mass; backgrounds are
    expected events at the luminosity; sigma_min in fb. ``background_train`` and
    ``background_train_cut`` are the same window's background estimated from the training
    split (``nan`` where not measured), for the over-training ratio; ``sample`` says whether
    the mass was a training or a test hypothesis ("" where not applicable).
    """

    mass_gev: float
    window_low_gev2: float
    window_high_gev2: float
    efficiency: float
    background: float
    sigma_min_fb: float
    efficiency_cut: float
    background_cut: float
    sigma_min_cut_fb: float
    background_train: float = math.nan
    background_train_cut: float = math.nan
    sample: str = ""

    @property
    def network_efficiency(self) -> float:
        """Signal efficiency of the network cut alone (within the window)."""
        return self.efficiency_cut / self.efficiency if self.efficiency > 0 else math.nan

    @property
    def gain(self) -> float:
        """Sensitivity gain of the cut: sigma_min without / with it."""
        return self.sigma_min_fb / self.sigma_min_cut_fb if self.sigma_min_cut_fb > 0 else 0.0

    @property
    def overtraining_ratio(self) -> float:
        """Fraction of the window's background kept by the cut, training split / test split.

        A network that generalises gives 1 within the statistical error; well below 1 it
        rejects the events it was trained on better than independent ones (over-training).
        """
        if not (self.background_train > 0 and self.background > 0 and self.background_cut > 0):
            return math.nan
        kept_train = self.background_train_cut / self.background_train
        return kept_train / (self.background_cut / self.background)

    def to_dict(self) -> dict[str, float | str]:
        """The row as plain values (with network efficiency, gain and over-training ratio)."""
        d: dict[str, float | str] = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            d[k] = v if isinstance(v, str) else float(v)
        d["network_efficiency"] = float(self.network_efficiency)
        d["gain"] = float(self.gain)
        d["overtraining_ratio"] = float(self.overtraining_ratio)
        return d


@dataclass
class FomTable:
    """Per-window Punzi figure of merit with and without the network cut."""

    rows: list[FomRow]
    cut: float
    luminosity_fb: float
    note: str = ""

    def to_csv(self) -> str:
        """CSV text, one line per mass window."""
        buf = io.StringIO()
        dicts = [r.to_dict() for r in self.rows]
        writer = csv.DictWriter(buf, fieldnames=list(dicts[0]) if dicts else ["mass_gev"])
        writer.writeheader()
        writer.writerows(dicts)
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A Markdown table for reports."""
        lines = [
            f"Punzi figure of merit at L = {self.luminosity_fb:g} fb^-1, "
            f"network cut > {self.cut:g}",
            "",
        ]
        if self.note:
            lines += [self.note, ""]
        lines += [
            "| M (GeV) | mass | window M^2 (GeV^2) | eps | B | sigma_min (fb) | eps cut | B cut "
            "| sigma_min cut (fb) | net eff. | gain | B kept train/test |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.mass_gev:.4g} | {r.sample or '-'} "
                f"| [{r.window_low_gev2:.3f}, {r.window_high_gev2:.3f}] "
                f"| {r.efficiency:.4g} | {r.background:.4g} | {r.sigma_min_fb:.4g} "
                f"| {r.efficiency_cut:.4g} | {r.background_cut:.4g} | {r.sigma_min_cut_fb:.4g} "
                f"| {r.network_efficiency:.3f} | {r.gain:.3g} "
                f"| {_fmt_ratio(r.overtraining_ratio)} |"
            )
        return "\n".join(lines) + "\n"


def _fmt_ratio(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "-"


TEST_NOTE = (
    "Measured on the test part: test masses (every other simulated mass) with their whole "
    "signal samples, never used in training; training masses (labelled) with theirs, partly "
    "trained on. Background: the test events, weights divided by the test fraction (an honest "
    "estimate of an independent sample of that size). Last column: fraction of background "
    "kept, training split / test split (over-training if well below 1)."
)


def _fom_rows(
    masses: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    signal: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    background: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    cut: float,
    luminosity_fb: float,
    a: float,
    b: float,
    refined_constant: bool,
    training_background: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    samples: Sequence[str] | None = None,
) -> list[FomRow]:
    """signal[i] = (m2, eff_weight = w/W_i, output); background = (m2, weight fb, output)."""
    kw = {"luminosity_fb": luminosity_fb, "a": a, "b": b, "refined_constant": refined_constant}

    def window_sum(part: tuple[np.ndarray, ...], i: int) -> tuple[float, float]:
        m2, w, y = part
        inside = (m2 > low[i]) & (m2 < high[i])
        return float(w[inside].sum()), float(w[inside & (y > cut)].sum())

    rows = []
    for i, sig in enumerate(signal):
        eps0, eps1 = window_sum(sig, i)
        b0, b1 = (v * luminosity_fb for v in window_sum(background, i))
        t0, t1 = math.nan, math.nan
        if training_background is not None:
            t0, t1 = (v * luminosity_fb for v in window_sum(training_background, i))
        with np.errstate(divide="ignore"):
            s0 = float(sigma_min(np.float64(eps0), np.float64(b0), **kw))
            s1 = float(sigma_min(np.float64(eps1), np.float64(b1), **kw))
        rows.append(
            FomRow(
                float(masses[i]),
                float(low[i]),
                float(high[i]),
                eps0,
                b0,
                s0,
                eps1,
                b1,
                s1,
                t0,
                t1,
                "" if samples is None else samples[i],
            )
        )
    return rows


def _cut_scan(
    masses: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    signal: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    background: tuple[np.ndarray, np.ndarray, np.ndarray],
    cuts: Sequence[float],
    *,
    luminosity_fb: float,
    a: float,
    b: float,
    refined_constant: bool,
) -> dict[str, Any]:
    """Per window: efficiency, background and sigma_min for each hard output cut."""
    bm2, bw, bout = background
    rows = []
    for i, (m2, w, y) in enumerate(signal):
        sin = (m2 > low[i]) & (m2 < high[i])
        bin_ = (bm2 > low[i]) & (bm2 < high[i])
        eps = np.array([float(w[sin & (y > c)].sum()) for c in cuts])
        bkg = np.array([float(bw[bin_ & (bout > c)].sum()) * luminosity_fb for c in cuts])
        with np.errstate(divide="ignore"):
            smin = sigma_min(
                eps, bkg, luminosity_fb=luminosity_fb, a=a, b=b, refined_constant=refined_constant
            )
        rows.append(
            {
                "mass_gev": float(masses[i]),
                "efficiency": eps.tolist(),
                "background": bkg.tolist(),
                "sigma_min_fb": np.asarray(smin, dtype=np.float64).tolist(),
            }
        )
    return {"cuts": [float(c) for c in cuts], "rows": rows}
