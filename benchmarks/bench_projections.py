"""Benchmark of the luminosity projections (zprime.analyses.invisible_zprime.projections). Prints,
never asserts.

The table of docs/projections.md: L = 79.7, 500, 5000, 50000 fb^-1 at M = 0.5, 2, 4, 6, 8 GeV
(20 workspaces per option), for each systematics option (kept, scaled, none), with the
templates as they are and smoothed, then the files (CSV, Markdown, figure) of one of them.
Times are wall and CPU (``time.process_time``; the machine is shared).

Templates: ``--templates DIR`` (default ``/tmp/zfresh/templates_narrow`` if present); without
them, 485 synthetic windows of 20 M^2 x 5 theta bins (as the PRL's largest) are built in memory.

Run: ``python benchmarks/bench_projections.py [--templates DIR] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import hist
import numpy as np

from zprime.analyses.invisible_zprime.binning import Window
from zprime.analyses.invisible_zprime.projections import project_templates, write_projection
from zprime.analyses.invisible_zprime.templates import (
    SystematicsTable,
    TemplateSet,
    WindowTemplates,
    read_templates,
)
from zprime.config import default_config

LUMS = [79.7, 500.0, 5000.0, 50000.0]
MASSES = [0.5, 2.0, 4.0, 6.0, 8.0]


def synthetic(n: int = 485, n_m2: int = 20, n_theta: int = 5, seed: int = 1) -> TemplateSet:
    """Windows with a Gaussian signal on a smooth background, PRL systematics."""
    rng = np.random.default_rng(seed)
    syst = SystematicsTable.from_values(default_config().templates.systematics.prl)
    th = np.linspace(0.0, math.pi, n_theta + 1)
    windows = []
    for i, m in enumerate(np.linspace(0.01, 8.5, n)):
        edges = m * m + np.linspace(-1.0, 1.0, n_m2 + 1) * max(0.05, 0.02 * m * m)
        c = 0.5 * (edges[1:] + edges[:-1])
        s = np.exp(-0.5 * ((c - m * m) / (0.2 * (edges[-1] - edges[0]))) ** 2)
        s = np.outer(s / s.sum(), np.full(n_theta, 1.0 / n_theta)) * 5.0
        b = rng.uniform(20.0, 60.0, (n_m2, n_theta))
        win = Window(index=i, mass_gev=float(m), m2_edges=edges, theta_edges=th)

        def h(v: np.ndarray, edges: np.ndarray = edges) -> hist.Hist:
            out = hist.Hist(
                hist.axis.Variable(edges, flow=False),
                hist.axis.Variable(th, flow=False),
                storage=hist.storage.Weight(),
            )
            view = out.view()
            view.value = v
            view.variance = (0.05 * v) ** 2
            return out

        windows.append(
            WindowTemplates(
                window=win,
                luminosity_fb=79.7,
                signal=h(s),
                backgrounds={"mumu": h(b)},
                observed=None,
                signal_efficiency=0.05,
                systematics=syst,
            )
        )
    return TemplateSet(windows=windows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--templates", type=Path, default=Path("/tmp/zfresh/templates_narrow"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = default_config()
    t0, c0 = time.perf_counter(), time.process_time()
    if (args.templates / "index.json").exists():
        tset = read_templates(args.templates)
        source = str(args.templates)
    else:
        tset = synthetic()
        source = "synthetic (no template directory)"
    print(
        f"templates: {source}: {len(tset)} windows, read/built in "
        f"{time.perf_counter() - t0:.2f} s wall, {time.process_time() - c0:.2f} s CPU"
    )
    print(
        f"table: {len(LUMS)} luminosities x {len(MASSES)} masses = "
        f"{len(LUMS) * len(MASSES)} workspaces per option"
    )
    tables = {}
    for smooth in (False, True):
        for syst in ("kept", "scaled", "none"):
            t0, c0 = time.perf_counter(), time.process_time()
            tab = project_templates(
                tset, cfg, luminosities_fb=LUMS, masses_gev=MASSES, systematics=syst, smooth=smooth
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            failed = sum(r.status != "ok" for r in tab.rows)
            tables[(syst, smooth)] = tab
            print(
                f"  systematics={syst:6s} smooth={smooth!s:5s}: {wall:6.2f} s wall, "
                f"{cpu:6.2f} s CPU, {1e3 * wall / len(tab.rows):6.1f} ms/workspace, "
                f"{failed} failed"
            )
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_projections_"))
    t0 = time.perf_counter()
    paths = write_projection(
        tables[("kept", True)], out, others=[tables[("scaled", True)], tables[("none", True)]]
    )
    print(
        f"write_projection (CSV, Markdown, PNG+PDF): {time.perf_counter() - t0:.2f} s -> "
        f"{paths['png'].parent}"
    )
    print("median expected limit [fb] at 79.7 -> 50000 fb^-1 (smoothed backgrounds):")
    for m in MASSES:
        cells = []
        for syst in ("kept", "scaled", "none"):
            rows = tables[(syst, True)].for_mass(m)
            cells.append(f"{syst} {rows[0].median_fb:.3g} -> {rows[-1].median_fb:.3g}")
        print(f"  M = {m:g} GeV: " + "; ".join(cells))


if __name__ == "__main__":
    main()
