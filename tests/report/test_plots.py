"""Tests of the report layer's generic figures (zprime.report.plots): they know no search."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
from hist.intervals import poisson_interval

from zprime.report import plots

LUMI = 79.7


def test_background_composition_data_errors() -> None:
    """The generic stacked histogram draws the data with 68% Garwood intervals."""
    rng = np.random.default_rng(11)
    m2, weight = rng.uniform(0.0, 80.0, 200), np.full(200, 0.5)
    data = rng.uniform(0.0, 80.0, 300)
    edges = np.linspace(0.0, 80.0, 9)
    fig = plots.background_composition({"mumu": (m2, weight)}, edges, luminosity_fb=LUMI, data=data)
    ax = fig.axes[0]
    n_obs, _ = np.histogram(data, bins=edges)
    lo, hi = plots.poisson_errors(n_obs.astype(float))
    ref_lo, ref_hi = poisson_interval(n_obs.astype(float))
    np.testing.assert_allclose(lo, n_obs - np.nan_to_num(ref_lo))
    np.testing.assert_allclose(hi, ref_hi - n_obs)
    assert ax.get_xlabel() == r"$M_{\mathrm{recoil}}^2$ [GeV$^2$]"
    assert "pseudo-data" in ax.get_legend_handles_labels()[1]
    plt.close(fig)


def test_report_plots_knows_no_search() -> None:
    """zprime.report.plots imports no analysis, no physics model and no pipeline."""
    code = (
        "import sys, zprime.report.plots\n"
        "bad = [m for m in sys.modules if m.startswith(('zprime.analyses', 'zprime.pipeline',"
        " 'zprime.physics', 'zprime.config', 'zprime.cli'))]\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
