"""The weighted cut flow that every analysis's selection reports (events and yields per step).

Shared by the analyses (the invisible Z', the dark Higgsstrahlung search): one sample's counts
after each named step, summable over streamed batches, written as CSV, Markdown or a rich table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from rich.table import Table

__all__ = ["CutFlow"]


@dataclass
class CutFlow:
    """Weighted cut flow of one sample: events and yields after each step.

    ``counts[i]`` and ``yields[i]`` are after step ``steps[i]``; index 0 is the input
    (``steps[0] == "all"``). Yields are ``sum(weight) * luminosity_fb``.
    """

    sample: str
    luminosity_fb: float
    steps: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    yields: list[float] = field(default_factory=list)

    @classmethod
    def from_masks(
        cls,
        sample: str,
        luminosity_fb: float,
        weights: np.ndarray,
        masks: Mapping[str, np.ndarray],
    ) -> tuple[np.ndarray, CutFlow]:
        """The steps' masks applied in order: (the events passing all, the cut flow).

        ``weights`` are the events' weights in fb; ``masks`` the steps' own masks in the order
        of the selection (each evaluated on its own).
        """
        flow = cls(
            sample, luminosity_fb, ["all"], [len(weights)], [float(weights.sum()) * luminosity_fb]
        )
        mask = np.ones(len(weights), dtype=bool)
        for step, m in masks.items():
            mask &= m
            flow.steps.append(step)
            flow.counts.append(int(mask.sum()))
            flow.yields.append(float(weights[mask].sum()) * luminosity_fb)
        return mask, flow

    def add(self, other: CutFlow) -> CutFlow:
        """Sum of two cut flows of the same sample and steps (for streamed batches)."""
        if not self.steps:
            return other
        if other.steps != self.steps:
            raise ValueError("cut flows with different steps cannot be added")
        return CutFlow(
            self.sample,
            self.luminosity_fb,
            list(self.steps),
            [a + b for a, b in zip(self.counts, other.counts, strict=True)],
            [a + b for a, b in zip(self.yields, other.yields, strict=True)],
        )

    def rows(self) -> list[dict[str, float | int | str]]:
        """One row per step with the efficiency of the step and the cumulative one."""
        out: list[dict[str, float | int | str]] = []
        for i, step in enumerate(self.steps):
            prev = self.yields[i - 1] if i else self.yields[0]
            first = self.yields[0]
            out.append(
                {
                    "sample": self.sample,
                    "step": step,
                    "events": self.counts[i],
                    "yield": self.yields[i],
                    "efficiency_step": self.yields[i] / prev if prev > 0 else float("nan"),
                    "efficiency_cumulative": self.yields[i] / first if first > 0 else float("nan"),
                }
            )
        return out

    def to_csv(self) -> str:
        """The cut flow as CSV text."""
        buf = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def to_markdown(self) -> str:
        """The cut flow as a Markdown table."""
        lines = [
            f"Cut flow of `{self.sample}` at {self.luminosity_fb:g} fb^-1",
            "",
            "| step | events | yield | eff. (step) | eff. (cumulative) |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in self.rows():
            lines.append(
                f"| {r['step']} | {r['events']} | {r['yield']:.4g} | "
                f"{r['efficiency_step']:.4f} | {r['efficiency_cumulative']:.4g} |"
            )
        return "\n".join(lines) + "\n"

    def rich_table(self) -> Table:
        """The cut flow as a rich table for the terminal."""
        t = Table(title=f"cut flow: {self.sample} ({self.luminosity_fb:g} fb^-1)")
        for col in ("step", "events", "yield", "eff. step", "eff. cum."):
            t.add_column(col, justify="left" if col == "step" else "right")
        for r in self.rows():
            t.add_row(
                str(r["step"]),
                str(r["events"]),
                f"{r['yield']:.4g}",
                f"{r['efficiency_step']:.4f}",
                f"{r['efficiency_cumulative']:.3g}",
            )
        return t
