"""HEPData submission of the tau-tau resonance search's results.

:func:`write_hepdata` turns ``tautau_limits.csv`` (one row per model and hypothesis mass),
``tautau_bias.csv`` and ``tautau_projections.csv`` into a HEPData submission built with
``hepdata_lib``, written and validated by :func:`zprime.report.hepdata.write_submission`.
Per model (the L_mu - L_tau Z', the leptophilic scalar, the ALP):

1. upper limits on sigma(e+e- -> mu mu X) x B(X -> tau tau): observed, expected with its +-1 and
   +-2 s.d. bands (asymmetric uncertainties);
2. upper limits on the coupling (g', xi or |C_ll|/Lambda): observed and expected median;
3. the signal efficiency (pre-selection x network x window), the observed count and the
   simulated background in the window, and the fit-bias uncertainty used;

then the fit-bias study at the simulated masses, and the projected expected limits at each
projection luminosity. The numbers come from this toolkit's run (by default on simulated
pseudo-data): the submission says so, and must not be presented as a Belle II result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zprime.errors import InputError
from zprime.physics.constants import SQRT_S
from zprime.physics.leptophilic import COUPLING_NAMES, COUPLING_UNITS
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

PAPER_DOI_URL = "https://doi.org/10.1103/PhysRevLett.131.121802"
REACTION = "E+ E- --> MU+ MU- X, X --> TAU+ TAU-"
_SOURCE = (
    "Results of the zprime toolkit (by default on simulated pseudo-data), not Belle II results."
)
_XS = "$\\sigma(e^+e^-\\to\\mu^+\\mu^-X)\\times\\mathcal{B}(X\\to\\tau^+\\tau^-)$"
_MODEL_TEXT = {
    "zprime": "the $L_\\mu - L_\\tau$ Z'",
    "scalar": "the leptophilic scalar S",
    "alp": "the axion-like particle a",
}
_COUPLING_TEX = {"zprime": "$g'$", "scalar": "$\\xi$", "alp": "$|C_{\\ell\\ell}|/\\Lambda$"}
_METHOD = (
    "CLs upper limits (the q~_mu statistic; asymptotic formulae, toys in the windows with few "
    "observed events: column 'method' of tautau_limits.csv) from a binned fit of "
    "M_recoil(mu mu) in a window of +-{hw:g} resolution widths: the signal template on a "
    "floating Bernstein "
    "background, with the systematic uncertainties of the Belle II talk (PRL 131, 121802)."
)


def _level(level: float | None) -> tuple[str, str] | None:
    return None if level is None else ("CL", f"{100 * (1 - level):g}%")


def _mass(values: np.ndarray) -> Any:
    var = hepdata_lib().Variable("$M_X$", is_independent=True, is_binned=False, units="GeV")
    var.values = np.asarray(values, dtype=float).tolist()
    return var


def _dependent(name: str, values: np.ndarray, units: str, lumi: float, level: float | None) -> Any:
    return dependent_variable(name, values, units, lumi, _level(level))


def _table(name: str, description: str, observable: str, location: str) -> Any:
    return new_table(
        name,
        f"{description} {_SOURCE}",
        f"{location} of a zprime run; cf. PRL 131, 121802 (2023)",
        {
            "observables": [observable],
            "reactions": [REACTION],
            "cmenergies": [round(SQRT_S, 2)],
            "phrases": ["Z'", "Leptophilic scalar", "Axion-like particle", "Tau", "Upper limit"],
        },
    )


def _units(model: str) -> str:
    return "GeV$^{-1}$" if COUPLING_UNITS[model] else ""


def write_hepdata(
    limits_csv: str | Path,
    bias_csv: str | Path | None,
    projections_csv: str | Path | None,
    out_dir: str | Path,
    *,
    luminosity_fb: float,
    level: float,
    half_width: float,
) -> Path:
    """Write and validate the HEPData submission of a tau-tau resonance run.

    Parameters
    ----------
    limits_csv
        ``tautau_limits.csv`` of the ``limits`` stage.
    bias_csv
        ``tautau_bias.csv`` (or None: no fit-bias table).
    projections_csv
        ``tautau_projections.csv`` (or None: no projection tables).
    out_dir
        Output folder (``submission/`` and ``submission.tar.gz``; an earlier submission there
        is replaced).
    luminosity_fb
        The run's luminosity, fb^-1.
    level
        CLs level of the limits (0.10 for 90% CL).
    half_width
        The window half-width in resolution widths (for the tables' descriptions).

    Returns
    -------
    Path
        ``out_dir / "submission.tar.gz"``.

    Raises
    ------
    InputError
        A missing or malformed table (one line naming the file and column), a luminosity that
        is not > 0, or a submission the HEPData validator rejects.
    """
    if not (np.isfinite(luminosity_fb) and luminosity_fb > 0):
        raise InputError(f"luminosity_fb = {luminosity_fb!r}: not a luminosity > 0")
    bands = [f"exp_xsec_br_fb_{b}" for b in ("m2", "m1", "median", "p1", "p2")]
    need = [
        "model",
        "mass_gev",
        "efficiency",
        "n_observed",
        "background_simulated",
        "fit_bias",
        "obs_xsec_br_fb",
        *bands,
        "obs_coupling",
        "exp_coupling_median",
    ]
    path = Path(limits_csv)
    t = read_columns(path, need, text=("model", "status"))
    method = _METHOD.format(hw=half_width)
    tables = []
    for model in dict.fromkeys(t["model"].tolist()):
        if model not in COUPLING_NAMES:
            raise InputError(f"{path}: unknown model '{model}' in column 'model'")
        sel = (t["model"] == model) & np.isfinite(t["obs_xsec_br_fb"])
        n_left = int(np.count_nonzero((t["model"] == model) & ~sel))
        left = f" {n_left} masses without a limit (no fit) are left out." if n_left else ""
        if not np.any(sel):
            continue
        c = {k: v[sel] for k, v in t.items()}
        what = _MODEL_TEXT[model]
        xs = _table(
            f"Upper limits on sigma times B for {model}",
            f"Observed and expected {100 * (1 - level):g}% CL upper limits on {_XS} for "
            f"{what}, {int(sel.sum())} masses. The expected limit's $\\pm1$ and $\\pm2$ s.d. "
            f"bands are its asymmetric uncertainties. {method}{left}",
            "SIG",
            "tautau_limits.csv",
        )
        xs.add_variable(_mass(c["mass_gev"]))
        xs.add_variable(
            _dependent(f"Observed {_XS}", c["obs_xsec_br_fb"], "fb", luminosity_fb, level)
        )
        exp = expected_variable(f"Expected {_XS}", [c[b] for b in bands], "fb")
        qualify(exp, luminosity_fb, _level(level))
        xs.add_variable(exp)
        tables.append(xs)

        g = _COUPLING_TEX[model]
        cp = _table(
            f"Upper limits on the coupling for {model}",
            f"Observed and median expected {100 * (1 - level):g}% CL upper limits on the "
            f"coupling {g} ({COUPLING_NAMES[model]}) of {what}: the sigma x B limit through the "
            "model's cross section (initial-state radiation included) and B(X -> tau tau) "
            f"(docs/tautau_models.md of zprime).{left}",
            "SIG",
            "tautau_limits.csv",
        )
        cp.add_variable(_mass(c["mass_gev"]))
        cp.add_variable(
            _dependent(f"Observed {g}", c["obs_coupling"], _units(model), luminosity_fb, level)
        )
        cp.add_variable(
            _dependent(
                f"Expected {g}", c["exp_coupling_median"], _units(model), luminosity_fb, level
            )
        )
        tables.append(cp)

        win = _table(
            f"Signal efficiency and observed events for {model}",
            f"Per mass of {what}: the signal efficiency (pre-selection x the range's network x "
            "the fit window; interpolated between the simulated masses), the observed events "
            "in the window, the simulated background there (not used by the fit, whose "
            "background floats) and the relative fit-bias uncertainty used in the limit.",
            "EFF",
            "tautau_limits.csv",
        )
        win.add_variable(_mass(c["mass_gev"]))
        for name, col, units in (
            ("Signal efficiency", "efficiency", ""),
            ("Observed events", "n_observed", "events"),
            ("Simulated background", "background_simulated", "events"),
            ("Fit-bias uncertainty", "fit_bias", ""),
        ):
            win.add_variable(_dependent(name, c[col], units, luminosity_fb, None))
        tables.append(win)

    if not tables:
        raise InputError(f"{path}: no mass with a limit")

    if bias_csv is not None:
        bp = Path(bias_csv)
        b = read_columns(bp, ["mass_gev", "injected_fb", "relative_bias", "relative_bias_error"])
        bias = _table(
            "Fit bias",
            "The fit bias at the simulated masses: signals of three times the background's "
            "fluctuation in the window injected into pseudo-experiments of the expected "
            "background, fitted with the signal strength free below zero; the relative bias of "
            "the fitted signal and its statistical uncertainty.",
            "BIAS",
            "tautau_bias.csv",
        )
        bias.add_variable(_mass(b["mass_gev"]))
        bias.add_variable(
            _dependent(f"Injected {_XS}", b["injected_fb"], "fb", luminosity_fb, None)
        )
        rel = hepdata_lib().Variable(
            "Relative fit bias", is_independent=False, is_binned=False, units=""
        )
        rel.values = b["relative_bias"].tolist()
        unc = hepdata_lib().Uncertainty("stat.", is_symmetric=True)
        unc.values = b["relative_bias_error"].tolist()
        rel.add_uncertainty(unc)
        qualify(rel, luminosity_fb)
        bias.add_variable(rel)
        tables.append(bias)

    if projections_csv is not None:
        pp = Path(projections_csv)
        p = read_columns(
            pp,
            ["model", "mass_gev", "luminosity_fb", "exp_xsec_br_fb_median", "exp_coupling_median"],
            text=("model", "status"),
        )
        for lum in np.unique(p["luminosity_fb"]):
            for model in dict.fromkeys(p["model"].tolist()):
                sel = (
                    (p["luminosity_fb"] == lum)
                    & (p["model"] == model)
                    & np.isfinite(p["exp_xsec_br_fb_median"])
                )
                if not np.any(sel) or model not in COUPLING_NAMES:
                    continue
                proj = _table(
                    f"Projected expected limits at {lum:g} invfb for {model}",
                    f"Median expected {100 * (1 - level):g}% CL upper limits on {_XS} and on "
                    f"{_COUPLING_TEX[model]} for {_MODEL_TEXT[model]} at {lum:g} fb$^{{-1}}$: "
                    "the simulated background of this run scaled to the luminosity as Asimov "
                    "data, the signal efficiencies unchanged, the relative systematic "
                    "uncertainties kept.",
                    "SIG",
                    "tautau_projections.csv",
                )
                proj.add_variable(_mass(p["mass_gev"][sel]))
                proj.add_variable(
                    _dependent(
                        f"Expected {_XS}", p["exp_xsec_br_fb_median"][sel], "fb", float(lum), level
                    )
                )
                proj.add_variable(
                    _dependent(
                        f"Expected {_COUPLING_TEX[model]}",
                        p["exp_coupling_median"][sel],
                        _units(model),
                        float(lum),
                        level,
                    )
                )
                tables.append(proj)

    return submit_tables(
        tables,
        Path(out_dir),
        comment=(
            f"Upper limits on e+e- -> mu+ mu- X, X -> tau+ tau- at sqrt(s) = {SQRT_S:.2f} GeV "
            f"with {luminosity_fb:g} fb^-1, produced by the zprime toolkit, an open reproduction "
            f"of the Belle II search of PRL 131, 121802 (2023). {_SOURCE}"
        ),
        link=("Belle II, Phys. Rev. Lett. 131, 121802 (2023)", PAPER_DOI_URL),
    )
