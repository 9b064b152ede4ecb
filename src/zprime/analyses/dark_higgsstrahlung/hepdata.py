"""HEPData submission of the dark Higgsstrahlung search's results.

:func:`write_hepdata` turns ``dark_higgs_limits.csv`` (one row per (M_A', M_h') hypothesis) and
``dark_higgs_projections.csv`` into a HEPData submission built with ``hepdata_lib``, written and
validated by :func:`zprime.report.hepdata.write_submission`:

1. upper limits on sigma(e+e- -> A' h') x B(A' -> mu mu): observed, expected with its +-1 and
   +-2 s.d. bands (asymmetric uncertainties), in the (M_A', M_h') plane;
2. upper limits on epsilon^2 alpha_D (observed);
3. the signal efficiency in the window, the expected background and the observed count of each
   window, and its local significance;
4. the projected expected limits at each projection luminosity.

The numbers come from this toolkit's run (by default on simulated pseudo-data): the submission
says so, and must not be presented as a Belle II result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from zprime.errors import InputError
from zprime.physics.constants import SQRT_S
from zprime.report.hepdata import (
    dependent_variable,
    expected_variable,
    hepdata_lib,
    new_table,
    qualify,
    read_columns,
    submit_tables,
)

__all__ = ["write_hepdata"]

PAPER_DOI_URL = "https://doi.org/10.1103/PhysRevLett.130.071804"
REACTION = "E+ E- --> A' H', A' --> MU+ MU-, H' --> INVISIBLE"
_SOURCE = (
    "Results of the zprime toolkit (by default on simulated pseudo-data), not Belle II results."
)
_XS = "$\\sigma(e^+e^-\\to A'h')\\times\\mathcal{B}(A'\\to\\mu^+\\mu^-)$"
_EPS = "$\\epsilon^2\\alpha_D$"


def _level(level: float | None) -> tuple[str, str] | None:
    return None if level is None else ("Credibility", f"{100 * level:g}%")


def _mass_variables(ma: np.ndarray, mh: np.ndarray) -> list[Any]:
    Variable = hepdata_lib().Variable
    a = Variable("$M_{A'}$", is_independent=True, is_binned=False, units="GeV")
    a.values = ma.tolist()
    h = Variable("$M_{h'}$", is_independent=True, is_binned=False, units="GeV")
    h.values = mh.tolist()
    return [a, h]


def _dependent(name: str, values: np.ndarray, units: str, lumi: float, level: float | None) -> Any:
    return dependent_variable(name, values, units, lumi, _level(level))


def _table(name: str, description: str, observable: str) -> Any:
    return new_table(
        name,
        f"{description} {_SOURCE}",
        "dark_higgs_limits.csv of a zprime run; cf. PRL 130, 071804 (2023)",
        {
            "observables": [observable],
            "reactions": [REACTION],
            "cmenergies": [round(SQRT_S, 2)],
            "phrases": [
                "Dark photon",
                "Dark Higgs",
                "Invisible decay",
                "Dark sector",
                "Upper limit",
            ],
        },
    )


def write_hepdata(
    limits_csv: str | Path,
    projections_csv: str | Path | None,
    out_dir: str | Path,
    *,
    luminosity_fb: float,
    level: float,
    significance_json: str | Path | None = None,
    with_significance: bool = True,
) -> Path:
    """Write and validate the HEPData submission of a dark Higgsstrahlung run.

    Parameters
    ----------
    limits_csv
        ``dark_higgs_limits.csv`` of the ``limits`` stage.
    projections_csv
        ``dark_higgs_projections.csv`` (or None: no projection table).
    out_dir
        Output folder (``submission/`` and ``submission.tar.gz``; an earlier submission there
        is replaced).
    luminosity_fb
        The run's luminosity, fb^-1.
    level
        Credibility of the limits (0.9).
    significance_json
        ``dark_higgs_significance.json``: the global significance in the significance table's
        description.
    with_significance
        False: no local-significance column (a smoke test reports no significance).

    Returns
    -------
    Path
        ``out_dir / "submission.tar.gz"``.

    Raises
    ------
    InputError
        A missing or malformed table (one line naming the file and column), or a submission
        the HEPData validator rejects.
    """
    if not (math.isfinite(luminosity_fb) and luminosity_fb > 0):
        raise InputError(f"luminosity_fb = {luminosity_fb!r}: not a luminosity > 0")
    bands = ("m2", "m1", "median", "p1", "p2")
    xs_cols = [f"exp_xsec_br_fb_{b}" for b in bands]
    need = ["m_aprime_gev", "m_hdark_gev", "obs_xsec_br_fb", *xs_cols, "obs_eps2_alpha_d"]
    path = Path(limits_csv)
    t = read_columns(path, [*need, "efficiency", "background", "n_observed", "z_local"])
    keep = np.isfinite(t["obs_xsec_br_fb"])
    n_left = int(np.count_nonzero(~keep))
    t = {k: v[keep] for k, v in t.items()}
    ma, mh = t["m_aprime_gev"], t["m_hdark_gev"]
    left = f" {n_left} hypotheses without a limit (zero efficiency) are left out." if n_left else ""
    method = (
        f"Bayesian {100 * level:g}% credible upper limits with a flat prior on the signal, "
        "counting in one rotated elliptical window per hypothesis, systematic uncertainties as "
        "priors (Belle II talk 2022: PRL 130, 071804)."
    )
    tables = []

    xs = _table(
        "Upper limits on sigma times B",
        f"Observed and expected upper limits on {_XS} in the $(M_{{A'}}, M_{{h'}})$ plane, "
        f"{len(ma)} hypotheses. The expected limit's $\\pm1$ and $\\pm2$ s.d. bands are its "
        f"asymmetric uncertainties. {method}{left}",
        "SIG",
    )
    for v in _mass_variables(ma, mh):
        xs.add_variable(v)
    xs.add_variable(_dependent(f"Observed {_XS}", t["obs_xsec_br_fb"], "fb", luminosity_fb, level))
    exp = expected_variable(f"Expected {_XS}", [t[c] for c in xs_cols], "fb")
    qualify(exp, luminosity_fb, _level(level))
    xs.add_variable(exp)
    tables.append(xs)

    eps = _table(
        "Upper limits on epsilon2 alpha_D",
        f"Observed upper limits on {_EPS} (sigma x B with the Born cross section of Batell, "
        "Pospelov and Ritz, PRD 79, 115008 (2009), initial-state radiation, and "
        f"B(A' -> mu mu) from the PDG R ratio). {method}{left}",
        "SIG",
    )
    for v in _mass_variables(ma, mh):
        eps.add_variable(v)
    eps.add_variable(
        _dependent(f"Observed {_EPS}", t["obs_eps2_alpha_d"], "", luminosity_fb, level)
    )
    tables.append(eps)

    glob = ""
    if significance_json is not None and Path(significance_json).is_file():
        s = json.loads(Path(significance_json).read_text())
        glob = (
            f" Largest local significance {s['largest_local_z']:.2f} s.d. at M_A' = "
            f"{s['at_m_aprime_gev']:.3f} GeV, M_h' = {s['at_m_hdark_gev']:.3f} GeV; global "
            f"significance {s['global_z']:.2f} s.d. ({s['toys']} background-only toys)."
        )
    win = _table(
        "Windows efficiency background observed events significance",
        "Per hypothesis: the signal efficiency inside its window (selection x window, "
        "interpolated from the simulated points), the expected background (simulation "
        "corrected with the mu mu gamma and e mu control samples), the observed count and the "
        f"local significance.{glob}",
        "N",
    )
    for v in _mass_variables(ma, mh):
        win.add_variable(v)
    columns = [
        ("Signal efficiency", "efficiency", ""),
        ("Expected background", "background", "events"),
        ("Observed events", "n_observed", "events"),
    ]
    if with_significance:
        columns.append(("Local significance", "z_local", "s.d."))
    for name, col, units in columns:
        win.add_variable(_dependent(name, t[col], units, luminosity_fb, None))
    tables.append(win)

    if projections_csv is not None:
        pp = Path(projections_csv)
        p = read_columns(
            pp, ["m_aprime_gev", "m_hdark_gev", "luminosity_fb", "exp_xsec_br_fb_median"]
        )
        for lum in np.unique(p["luminosity_fb"]):
            sel = (p["luminosity_fb"] == lum) & np.isfinite(p["exp_xsec_br_fb_median"])
            if not np.any(sel):
                continue
            proj = _table(
                f"Projected expected limits at {lum:g} invfb",
                f"Median expected upper limits on {_XS} and on {_EPS} at {lum:g} fb$^{{-1}}$: "
                "the efficiencies and the corrected background of this run scaled with the "
                "luminosity, the relative systematic uncertainties kept, the simulation's "
                "statistical uncertainty left out.",
                "SIG",
            )
            proj.location = "dark_higgs_projections.csv of a zprime run"
            for v in _mass_variables(p["m_aprime_gev"][sel], p["m_hdark_gev"][sel]):
                proj.add_variable(v)
            proj.add_variable(
                _dependent(
                    f"Expected {_XS}", p["exp_xsec_br_fb_median"][sel], "fb", float(lum), level
                )
            )
            proj.add_variable(
                _dependent(
                    f"Expected {_EPS}", p["exp_eps2_alpha_d_median"][sel], "", float(lum), level
                )
            )
            tables.append(proj)

    return submit_tables(
        tables,
        Path(out_dir),
        comment=(
            f"Upper limits on e+e- -> A' h', A' -> mu+ mu-, h' invisible at sqrt(s) = "
            f"{SQRT_S:.2f} GeV with {luminosity_fb:g} fb^-1, produced by the zprime toolkit, an "
            f"open reproduction of the Belle II search of PRL 130, 071804 (2023). {_SOURCE}"
        ),
        link=("Belle II, Phys. Rev. Lett. 130, 071804 (2023)", PAPER_DOI_URL),
    )
