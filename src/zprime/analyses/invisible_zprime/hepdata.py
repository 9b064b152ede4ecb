"""HEPData submission of the scan results (issue 8).

:func:`write_hepdata` turns the results table of ``zprime.analyses.invisible_zprime.results``
(``results/limits.csv`` or
``results/limits.parquet``, one row per mass hypothesis, narrow and wide Z' together; columns in
``docs/hepdata.md``) into a HEPData submission built with ``hepdata_lib``: cross-section limits,
coupling limits (vanilla and fully invisible L_mu - L_tau) and the local significance, one table
per curve, with the pyhf workspaces attached as ``HistFactory`` additional resources (the HEPData
convention for likelihoods, https://hepdata-submission.readthedocs.io/en/latest/analyses.html).
:func:`validate_hepdata` (shared: :mod:`zprime.report.hepdata`) checks the result with
``hepdata_validator.FullSubmissionValidator``.

Layout of ``out_dir`` (written in a temporary sibling directory, validated, then renamed)::

    out_dir/submission/          submission.yaml, one YAML per table, workspaces_<label>.tar.gz
    out_dir/submission.tar.gz    the same files in one archive: the file to upload

The numbers come from this toolkit's run (by default on simulated pseudo-data): the submission
says so in its comment, and must not be presented as a Belle II result.

Length: one HEPData submission: its tables, their YAML and the validation share the results table's
schema and are built in one pass.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from zprime._util import atomic_path
from zprime.errors import InputError
from zprime.physics.constants import SQRT_S
from zprime.report.hepdata import (
    SUBMISSION_ARCHIVE,
    SUBMISSION_DIR,
    hepdata_lib,
    validate_hepdata,
    write_submission,
)

__all__ = [
    "SUBMISSION_ARCHIVE",
    "SUBMISSION_DIR",
    "ResultsTable",
    "pack_workspaces",
    "read_results_table",
    "validate_hepdata",
    "write_hepdata",
]


CL_PERCENT = 90
"""Confidence level of all limits: 90% CL (PRL 130, 231801 (2023))."""

PRL_DOI_URL = "https://doi.org/10.1103/PhysRevLett.130.231801"
REACTION = "E+ E- --> MU+ MU- Z'"

_BANDS = ("m2", "m1", "", "p1", "p2")
XSEC_COLUMNS = tuple(["obs_xsec_fb"] + [f"exp_xsec_fb{'_' + b if b else ''}" for b in _BANDS])
GPRIME_VANILLA_COLUMNS = tuple(
    ["obs_gprime_vanilla"] + [f"exp_gprime_vanilla{'_' + b if b else ''}" for b in _BANDS]
)
GPRIME_INVISIBLE_COLUMNS = tuple(
    ["obs_gprime_invisible"] + [f"exp_gprime_invisible{'_' + b if b else ''}" for b in _BANDS]
)
SIGNIFICANCE_COLUMNS = ("z_local", "p0")
_OPTIONAL_COLUMNS = ("sigma_g1_fb", "br_inv_vanilla")
_REQUIRED_COLUMNS = (
    "width",
    "mass_gev",
    "status",
    *XSEC_COLUMNS,
    *GPRIME_VANILLA_COLUMNS,
    *GPRIME_INVISIBLE_COLUMNS,
    *SIGNIFICANCE_COLUMNS,
)
_WIDTHS = ("narrow", "wide")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_RESOURCE_MB = 100.0  # hepdata_lib refuses copied resources above 100 MB
_MISSING = {"", "nan", "NaN", "NAN", "None", "null"}


# ------------------------------------------------------------------------------------------------
# reading the results table
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultsTable:
    """The rows of a results table with ``status == "ok"``, as numpy arrays.

    Attributes
    ----------
    path
        File the rows were read from.
    width
        ``"narrow"`` or ``"wide"`` per row.
    mass_gev
        Z' mass per row, GeV.
    columns
        Float column name -> values (NaN where the file had none).
    n_failed
        Rows of the file whose status was not ``ok`` (left out), per width.
    """

    path: Path
    width: np.ndarray
    mass_gev: np.ndarray
    columns: dict[str, np.ndarray]
    n_failed: dict[str, int]

    def select(self, width: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Masses (increasing) and columns of the rows of one width."""
        mask = self.width == width
        order = np.argsort(self.mass_gev[mask], kind="stable")
        return self.mass_gev[mask][order], {k: v[mask][order] for k, v in self.columns.items()}


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows (dicts) of a CSV or Parquet results file."""
    if not path.is_file():
        raise InputError(f"{path}: results table not found")
    if path.suffix == ".parquet":
        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise InputError(f"{path}: cannot read Parquet: {exc}".splitlines()[0]) from exc
        names = list(table.column_names)
        data = table.to_pydict()
        return names, [{n: data[n][i] for n in names} for i in range(table.num_rows)]
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            rows = list(reader)
            names = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read CSV: {exc}".splitlines()[0]) from exc
    return names, rows


def _to_float(path: Path, line: int, column: str, value: Any) -> float:
    """One cell as a float (NaN when empty); a one-line InputError naming the cell otherwise."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise InputError(f"{path}: row {line}, column {column!r}: not a number: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text in _MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{path}: row {line}, column {column!r}: not a number: {text!r}") from None


def read_results_table(path: str | Path) -> ResultsTable:
    """Read the ``ok`` rows of a results table (CSV or Parquet) by column name.

    Parameters
    ----------
    path
        ``results/limits.csv`` or ``results/limits.parquet`` of
        ``zprime.analyses.invisible_zprime.results``.

    Returns
    -------
    ResultsTable
        Rows with ``status == "ok"``; the others are counted in ``n_failed``.

    Raises
    ------
    InputError
        One line naming the file and the missing column, or the row and column of a value that
        is not a number, an unknown ``width``, a non-positive mass, a non-finite cross-section
        limit in an ``ok`` row, or a mass listed twice for one width.
    """
    path = Path(path)
    names, rows = _read_rows(path)
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(
            f"{path}: missing column {missing[0]!r} (results table of "
            f"zprime.analyses.invisible_zprime.results)"
        )
    float_columns = [c for c in _REQUIRED_COLUMNS[3:] if c] + [
        c for c in _OPTIONAL_COLUMNS if c in names
    ]
    widths: list[str] = []
    masses: list[float] = []
    values: dict[str, list[float]] = {c: [] for c in float_columns}
    n_failed = dict.fromkeys(_WIDTHS, 0)
    for i, row in enumerate(rows):
        line = i + 2  # header is line 1 of the CSV
        width = str(row["width"]).strip()
        if width not in _WIDTHS:
            raise InputError(
                f"{path}: row {line}, column 'width': {width!r} is not one of {list(_WIDTHS)}"
            )
        mass = _to_float(path, line, "mass_gev", row["mass_gev"])
        if str(row["status"]).strip() != "ok":
            n_failed[width] += 1
            continue
        if not (math.isfinite(mass) and mass > 0.0):
            raise InputError(f"{path}: row {line}, column 'mass_gev': {mass!r} is not a mass > 0")
        for column in float_columns:
            value = _to_float(path, line, column, row[column])
            band = column in XSEC_COLUMNS and column.endswith(("_m2", "_m1", "_p1", "_p2"))
            if band and math.isnan(value):
                pass  # no expected band (Bayesian limits without toys): the band is left out
            elif column in XSEC_COLUMNS and not (math.isfinite(value) and value >= 0.0):
                raise InputError(
                    f"{path}: row {line}, column {column!r}: {value!r} is not a cross-section "
                    "limit >= 0 in a row with status 'ok'"
                )
            values[column].append(value)
        widths.append(width)
        masses.append(mass)
    width_arr = np.asarray(widths, dtype=object)
    mass_arr = np.asarray(masses, dtype=np.float64)
    for width in _WIDTHS:
        m = np.sort(mass_arr[width_arr == width])
        dup = m[1:][m[1:] == m[:-1]]
        if dup.size:
            raise InputError(f"{path}: mass {dup[0]!r} GeV listed twice for width {width!r}")
    return ResultsTable(
        path=path,
        width=width_arr,
        mass_gev=mass_arr,
        columns={c: np.asarray(v, dtype=np.float64) for c, v in values.items()},
        n_failed=n_failed,
    )


# ------------------------------------------------------------------------------------------------
# workspaces
# ------------------------------------------------------------------------------------------------


def _normalise_tarinfo(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owner and time stripped: the archive depends on the file contents only."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o644 if info.isfile() else 0o755
    return info


_WORKSPACE_README = """\
# pyhf workspaces: {label} Z'

One HistFactory JSON workspace (pyhf {pyhf_version}) per Z' mass hypothesis of the {label} scan
({n_workspaces} workspaces), written by the fit stage of the zprime toolkit; a `<name>.meta.json`
beside a workspace records its binning (M_recoil^2 and theta_recoil edges, flattening of the 2D
template), the signal efficiency and the source of the systematic uncertainties.

The parameter of interest `xsec_fb` is sigma(e+e- -> mu+ mu- Z') x B(Z' -> invisible) in fb
(the signal sample is normalised to 1 fb). Luminosity: {luminosity_fb:g} fb^-1. For example:

    pyhf inspect {example}
    pyhf cls --test-poi 1.0 {example}    # CLs of sigma x B = 1 fb

These workspaces come from a run of the zprime toolkit (by default on simulated pseudo-data):
they are not Belle II likelihoods.
"""


def pack_workspaces(
    src_dir: str | Path, archive: str | Path, *, label: str, luminosity_fb: float
) -> tuple[Path, int]:
    """Pack the pyhf workspace JSON files of one scan into a ``.tar.gz`` (atomically).

    Parameters
    ----------
    src_dir
        Folder with one ``<name>.json`` workspace (and ``<name>.meta.json``) per hypothesis.
    archive
        Archive to write; its members are ``<archive stem>/README.md`` and
        ``<archive stem>/<file>.json``, in name order, with zeroed owners and times, so the
        archive is the same for the same files.
    label
        Scan label for the README (``narrow``, ``wide``).
    luminosity_fb
        Integrated luminosity for the README, fb^-1.

    Returns
    -------
    (Path, int)
        The archive and the number of workspaces packed (``.meta.json`` files not counted).

    Raises
    ------
    InputError
        ``src_dir`` is not a folder or holds no ``.json`` file.
    """
    import pyhf  # lazy: heavy (jsonschema, scipy.stats), needed here only for its version

    src = Path(src_dir)
    if not src.is_dir():
        raise InputError(f"{src}: workspaces folder not found")
    files = sorted(p for p in src.glob("*.json") if p.is_file())
    if not files:
        raise InputError(f"{src}: no .json workspace in the workspaces folder")
    archive = Path(archive)
    stem = archive.name.removesuffix(".tar.gz")
    workspaces = [p.name for p in files if not p.name.endswith(".meta.json")]
    readme = _WORKSPACE_README.format(
        label=label,
        pyhf_version=pyhf.__version__,
        n_workspaces=len(workspaces),
        luminosity_fb=luminosity_fb,
        example=workspaces[0] if workspaces else files[0].name,
    ).encode()
    with (
        atomic_path(archive) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        info = _normalise_tarinfo(tarfile.TarInfo(f"{stem}/README.md"))
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
        for path in files:
            tar.add(path, arcname=f"{stem}/{path.name}", filter=_normalise_tarinfo)
    return archive, len(workspaces)


# ------------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------------


def _method_text(config_summary: Mapping[str, Any] | None) -> str:
    """Statistical method of the limits, from ``config_summary`` (``limits``, ``toys``)."""
    summary = dict(config_summary or {})
    fit = summary.get("fit") if isinstance(summary.get("fit"), Mapping) else {}
    limits = summary.get("limits", fit.get("limits", "cls"))
    toys = summary.get("toys", fit.get("toys"))
    if limits == "bayesian":
        return (
            f"Bayesian {CL_PERCENT}% credibility upper limits with a flat prior in the cross "
            "section (as in PRL 124, 141801 (2020)); expected limits and bands from "
            "background-only pseudo-experiments."
        )
    text = (
        f"{CL_PERCENT}% CL upper limits with the CLs method and the profile-likelihood-ratio test "
        "statistic $\\tilde{q}_\\mu$ (Cowan, Cranmer, Gross, Vitells, arXiv:1007.1727; pyhf), "
        "as in PRL 130, 231801 (2023)"
    )
    if toys is None:
        return text + "."
    if int(toys) > 0:
        return text + f"; expected limits and bands from {int(toys)} background-only toys."
    return text + "; expected limits and bands from the asymptotic formulae."


def _keywords(observable: str, extra_phrases: Sequence[str]) -> dict[str, list[Any]]:
    return {
        "observables": [observable],
        "reactions": [REACTION],
        "cmenergies": [round(SQRT_S, 2)],
        "phrases": [
            "Z'",
            "L_mu - L_tau",
            "Invisible decay",
            "Dark sector",
            "Upper limit",
            "Muon pair",
            *extra_phrases,
        ],
    }


def _qualify(variable: Any, luminosity_fb: float, width: str, model: str | None = None) -> None:
    """Qualifiers shared by all dependent variables: sqrt(s), luminosity, CL, width, model."""
    variable.add_qualifier("SQRT(S)", f"{SQRT_S:.2f}", "GeV")
    variable.add_qualifier("LUMINOSITY", f"{luminosity_fb:g}", "fb$^{-1}$")
    variable.add_qualifier("CL", f"{CL_PERCENT}%")
    variable.add_qualifier(
        "$\\Gamma_{Z'}$", "negligible" if width == "narrow" else "$0.1\\,M_{Z'}$"
    )
    if model is not None:
        variable.add_qualifier("Model", model)


def _limit_variables(
    values: dict[str, np.ndarray],
    columns: Sequence[str],
    quantity: str,
    units: str,
    luminosity_fb: float,
    width: str,
    model: str | None,
) -> list[Any]:
    """Observed limit, and expected limit with its +-1 and +-2 s.d. bands as asymmetric errors."""
    hd = hepdata_lib()
    Uncertainty, Variable = hd.Uncertainty, hd.Variable

    obs, m2, m1, med, p1, p2 = (values[c] for c in columns)
    observed = Variable(f"Observed {quantity}", is_independent=False, is_binned=False, units=units)
    observed.values = obs.tolist()
    expected = Variable(
        f"Expected {quantity}",
        is_independent=False,
        is_binned=False,
        units=units,
        zero_uncertainties_warning=False,
    )
    expected.values = med.tolist()
    for label, lo, hi in (("1 s.d.", m1, p1), ("2 s.d.", m2, p2)):
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            continue  # no band (e.g. Bayesian limits without toys: the Asimov median only)
        band = Uncertainty(label, is_symmetric=False)
        band.values = list(zip((lo - med).tolist(), (hi - med).tolist(), strict=True))
        expected.add_uncertainty(band)
    for variable in (observed, expected):
        _qualify(variable, luminosity_fb, width, model)
    return [observed, expected]


def _mass_variable(mass: np.ndarray) -> Any:
    Variable = hepdata_lib().Variable

    variable = Variable("$M_{Z'}$", is_independent=True, is_binned=False, units="GeV")
    variable.values = mass.tolist()
    return variable


def _finite_rows(values: dict[str, np.ndarray], columns: Sequence[str]) -> np.ndarray:
    return np.all([np.isfinite(values[c]) for c in columns], axis=0)


def _left_out_text(n_failed: int, n_nonfinite: int = 0) -> str:
    parts = []
    if n_failed:
        parts.append(f"{n_failed} failed mass hypotheses left out")
    if n_nonfinite:
        parts.append(f"{n_nonfinite} masses without a finite value left out")
    return (" " + "; ".join(parts) + ".") if parts else ""


_XSEC_QUANTITY = "$\\sigma(e^+e^-\\to\\mu^+\\mu^-Z')\\times\\mathcal{B}(Z'\\to\\mathrm{invisible})$"
_GPRIME_QUANTITY = "$g'$"
_WIDTH_TEXT = {
    "narrow": "a Z' of negligible width",
    "wide": "the benchmark Z' with $\\Gamma_{Z'} = 0.1\\,M_{Z'}$",
}
_BAND_TEXT = (
    "The expected limit's $\\pm1$ and $\\pm2$ s.d. bands are its asymmetric uncertainties "
    "'1 s.d.' and '2 s.d.' (band edge = expected + uncertainty)."
)
_SOURCE_TEXT = "Results of the zprime toolkit, not Belle II results."


def _xsec_table(results: ResultsTable, width: str, luminosity_fb: float, method: str) -> Any | None:
    Table = hepdata_lib().Table

    mass, values = results.select(width)
    if mass.size == 0:
        return None
    name = (
        "Cross-section upper limits (narrow Z')"
        if width == "narrow"
        else "Cross-section upper limits (Gamma = 0.1 M)"
    )
    table = Table(name)
    table.description = (
        f"Observed and expected {CL_PERCENT}% CL upper limits on {_XSEC_QUANTITY} as functions "
        f"of $M_{{Z'}}$ for {_WIDTH_TEXT[width]}, {mass.size} mass hypotheses. {_BAND_TEXT} "
        f"{method}{_left_out_text(results.n_failed[width])} {_SOURCE_TEXT}"
    )
    table.location = f"{results.path.name} (width = {width}); cf. Fig. 2 of PRL 130, 231801"
    table.keywords = _keywords("SIG", ["Cross Section"])
    table.add_variable(_mass_variable(mass))
    for variable in _limit_variables(
        values, XSEC_COLUMNS, _XSEC_QUANTITY, "fb", luminosity_fb, width, None
    ):
        table.add_variable(variable)
    return table


def _coupling_table(
    results: ResultsTable,
    width: str,
    model: str,
    luminosity_fb: float,
    method: str,
) -> Any | None:
    hd = hepdata_lib()
    Table, Variable = hd.Table, hd.Variable

    mass, values = results.select(width)
    columns = GPRIME_VANILLA_COLUMNS if model == "vanilla" else GPRIME_INVISIBLE_COLUMNS
    keep = _finite_rows(values, columns)
    if not np.any(keep):
        return None
    mass = mass[keep]
    values = {k: v[keep] for k, v in values.items()}
    if model == "vanilla":
        name = "Coupling upper limits, vanilla L_mu - L_tau"
        model_text = "vanilla $L_\\mu - L_\\tau$ (Z' -> neutrinos)"
        br_text = (
            "$\\mathcal{B}(Z'\\to\\mathrm{invisible})$ of the vanilla model "
            "($Z'\\to\\nu\\bar\\nu$ against $Z'\\to\\mu^+\\mu^-, \\tau^+\\tau^-$)"
        )
        location = "cf. Fig. 4 of PRL 130, 231801"
    else:
        name = (
            "Coupling upper limits, fully invisible L_mu - L_tau"
            if width == "narrow"
            else "Coupling upper limits, fully invisible (Gamma = 0.1 M)"
        )
        model_text = (
            "fully invisible $L_\\mu - L_\\tau$ ($\\mathcal{B}(Z'\\to\\chi\\bar\\chi) = 1$)"
        )
        br_text = "$\\mathcal{B}(Z'\\to\\mathrm{invisible}) = 1$"
        location = "cf. Fig. 3 of PRL 130, 231801"
    table = Table(name)
    n_nonfinite = int(np.count_nonzero(~keep))
    table.description = (
        f"Observed and expected {CL_PERCENT}% CL upper limits on the coupling $g'$ of the "
        f"{model_text} model as functions of $M_{{Z'}}$ for {_WIDTH_TEXT[width]}, "
        f"{mass.size} mass hypotheses: $g'_{{lim}} = \\sqrt{{\\sigma_{{lim}} / (\\sigma_{{g'=1}} "
        f"\\times \\mathcal{{B}})}}$ with $\\sigma_{{g'=1}}$ the cross section at $g' = 1$ and "
        f"{br_text}. {_BAND_TEXT} {method}"
        f"{_left_out_text(results.n_failed[width], n_nonfinite)} {_SOURCE_TEXT}"
    )
    table.location = f"{results.path.name} (width = {width}); {location}"
    table.keywords = _keywords("COUPLING", ["Coupling"])
    table.add_variable(_mass_variable(mass))
    model_qualifier = "vanilla" if model == "vanilla" else "fully invisible"
    for variable in _limit_variables(
        values, columns, _GPRIME_QUANTITY, "", luminosity_fb, width, model_qualifier
    ):
        table.add_variable(variable)
    extras = [("sigma_g1_fb", "$\\sigma(e^+e^-\\to\\mu^+\\mu^-Z')$ at $g' = 1$", "fb")]
    if model == "vanilla":
        extras.append(("br_inv_vanilla", "$\\mathcal{B}(Z'\\to\\mathrm{invisible})$", ""))
    for column, label, units in extras:
        if column in values and np.all(np.isfinite(values[column])):
            variable = Variable(label, is_independent=False, is_binned=False, units=units)
            variable.values = values[column].tolist()
            variable.add_qualifier("SQRT(S)", f"{SQRT_S:.2f}", "GeV")
            table.add_variable(variable)
    return table


def _significance_table(
    results: ResultsTable, width: str, luminosity_fb: float, global_text: str
) -> Any | None:
    hd = hepdata_lib()
    Table, Variable = hd.Table, hd.Variable

    mass, values = results.select(width)
    keep = _finite_rows(values, SIGNIFICANCE_COLUMNS)
    if not np.any(keep):
        return None
    mass = mass[keep]
    name = (
        "Local significance (narrow Z')"
        if width == "narrow"
        else "Local significance (Gamma = 0.1 M)"
    )
    table = Table(name)
    table.description = (
        f"Local significance $Z_{{local}} = \\sqrt{{q_0}}$ of the excess of events over the "
        f"background-only fit and its p-value $p_0$, as functions of $M_{{Z'}}$ for "
        f"{_WIDTH_TEXT[width]}, {mass.size} mass hypotheses ($Z_{{local}} = 0$, $p_0 = 0.5$ "
        f"when the fitted cross section is not positive; asymptotic formulae of "
        f"arXiv:1007.1727).{global_text}"
        f"{_left_out_text(results.n_failed[width], int(np.count_nonzero(~keep)))} {_SOURCE_TEXT}"
    )
    table.location = f"{results.path.name} (width = {width})"
    table.keywords = _keywords("SIGNIFICANCE", ["Significance"])
    table.add_variable(_mass_variable(mass))
    for column, label in (("z_local", "Local significance"), ("p0", "Local $p_0$")):
        variable = Variable(label, is_independent=False, is_binned=False, units="")
        variable.values = values[column][keep].tolist()
        _qualify(variable, luminosity_fb, width)
        table.add_variable(variable)
    return table


def _global_significance_text(results_path: Path) -> str:
    """One sentence on the largest local excess from ``significance.json`` beside the table."""
    path = results_path.parent / "significance.json"
    if not path.is_file():
        return ""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        z_max = float(info["largest_local_z"])
        m_max = float(info["at_mass_gev"])
        p_global = float(info["global_p"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if not (math.isfinite(z_max) and math.isfinite(m_max) and math.isfinite(p_global)):
        return ""
    return (
        f" Largest local significance {z_max:.2f} at $M_{{Z'}}$ = {m_max:.4g} GeV; global "
        f"p-value after the look-elsewhere effect {p_global:.3g} (significance.json)."
    )


# ------------------------------------------------------------------------------------------------
# submission
# ------------------------------------------------------------------------------------------------


def _comment(luminosity_fb: float, config_summary: Mapping[str, Any] | None) -> str:
    text = (
        f"Upper limits at {CL_PERCENT}% CL on e+e- -> mu+ mu- Z', Z' -> invisible, at "
        f"sqrt(s) = {SQRT_S:.2f} GeV with {luminosity_fb:g} fb^-1, produced by the zprime toolkit, "
        "an open reproduction of the Belle II search of PRL 130, 231801 (2023). These are results "
        "of the toolkit (by default on simulated pseudo-data), not Belle II results."
    )
    if config_summary:
        flat: list[str] = []

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, Mapping):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), sub)
            else:
                flat.append(f"{prefix} = {value}")

        walk("", config_summary)
        text += " Configuration: " + "; ".join(flat) + "."
    return text


def write_hepdata(
    results_csv: str | Path,
    out_dir: str | Path,
    *,
    workspaces: Mapping[str, str | Path] | None,
    luminosity_fb: float,
    config_summary: Mapping[str, Any] | None = None,
) -> Path:
    """Write and validate a HEPData submission of a results table.

    Tables (each only when it has rows): cross-section limits for the narrow Z' and for the
    Gamma = 0.1 M benchmark; g' limits of the vanilla and of the fully invisible L_mu - L_tau
    model (narrow), of the fully invisible model for Gamma = 0.1 M; the local significance per
    width. Independent variable M_Z' [GeV]; dependent variables the observed and the expected
    limit, the expected one with its +-1 and +-2 s.d. bands as asymmetric uncertainties. Rows
    whose status is not ``ok`` are left out (and counted in the table description).

    Parameters
    ----------
    results_csv
        ``results/limits.csv`` (or ``.parquet``) of ``zprime.analyses.invisible_zprime.results``. A
        ``significance.json``
        beside it, when present, adds the global significance to the significance tables.
    out_dir
        Output folder (replaced if it holds an earlier submission): ``submission/`` and
        ``submission.tar.gz`` (see the module docstring).
    workspaces
        Label (``narrow``, ``wide``) -> folder of pyhf workspaces (packed into
        ``workspaces_<label>.tar.gz``) or an existing ``.tar.gz``/``.tgz``/``.zip`` archive;
        each is attached to the submission as a ``HistFactory`` additional resource.
    luminosity_fb
        Integrated luminosity of the run, fb^-1 (qualifier of every limit).
    config_summary
        Settings worth recording (e.g. ``{"limits": "cls", "toys": 0, "seed": 1}``, or
        ``{"fit": {...}}``): ``limits`` and ``toys`` name the method in the descriptions; all
        entries are listed in the submission comment.

    Returns
    -------
    Path
        ``out_dir / "submission.tar.gz"``, the archive to upload.

    Raises
    ------
    InputError
        Bad results table or workspaces (one line naming the file, row and column), or a
        submission that the HEPData validator rejects (its first message).
    """
    Submission = hepdata_lib().Submission

    if not (math.isfinite(luminosity_fb) and luminosity_fb > 0.0):
        raise InputError(f"luminosity_fb = {luminosity_fb!r}: not a luminosity > 0")
    results_path = Path(results_csv)
    results = read_results_table(results_path)
    if results.mass_gev.size == 0:
        raise InputError(f"{results_path}: no row with status 'ok'")
    method = _method_text(config_summary)
    global_text = _global_significance_text(results_path)

    tables = [
        _xsec_table(results, "narrow", luminosity_fb, method),
        _xsec_table(results, "wide", luminosity_fb, method),
        _coupling_table(results, "narrow", "vanilla", luminosity_fb, method),
        _coupling_table(results, "narrow", "invisible", luminosity_fb, method),
        _coupling_table(results, "wide", "invisible", luminosity_fb, method),
        _significance_table(results, "narrow", luminosity_fb, global_text),
        _significance_table(results, "wide", luminosity_fb, ""),
    ]
    submission = Submission()
    submission.comment = _comment(luminosity_fb, config_summary)
    submission.add_link("Belle II, Phys. Rev. Lett. 130, 231801 (2023)", PRL_DOI_URL)
    for table in tables:
        if table is not None:
            submission.add_table(table)

    def attach(build: Path) -> None:
        for label, location in (workspaces or {}).items():
            _attach_workspaces(submission, label, Path(location), build, luminosity_fb)

    write_submission(submission, Path(out_dir), prepare=attach)
    return out_dir / SUBMISSION_ARCHIVE


def _attach_workspaces(
    submission: Any, label: str, location: Path, build: Path, luminosity_fb: float
) -> None:
    """Pack (if a folder) and attach one scan's workspaces as a HistFactory resource."""
    if not _LABEL_RE.match(label):
        raise InputError(f"workspaces label {label!r}: use letters, digits, '_' or '-' only")
    if location.is_dir():
        archive, n_workspaces = pack_workspaces(
            location, build / f"workspaces_{label}.tar.gz", label=label, luminosity_fb=luminosity_fb
        )
        count = f"{n_workspaces} workspaces, "
    elif location.is_file() and location.name.endswith((".tar.gz", ".tgz", ".zip")):
        archive, count = location, ""
    else:
        raise InputError(f"{location}: workspaces ({label}) must be a folder or a .tar.gz/.zip")
    size_mb = archive.stat().st_size / 1e6
    if size_mb > _MAX_RESOURCE_MB:
        raise InputError(
            f"{archive}: {size_mb:.0f} MB, above the {_MAX_RESOURCE_MB:.0f} MB that hepdata_lib "
            "attaches"
        )
    submission.add_additional_resource(
        f"Likelihoods: pyhf (HistFactory JSON) workspaces of the {label} Z' scan, one per mass "
        f"hypothesis ({count}README.md inside); parameter of interest xsec_fb = "
        "sigma(e+e- -> mu+ mu- Z') x B(Z' -> invisible) in fb",
        str(archive.resolve()),
        copy_file=True,
        file_type="HistFactory",
    )
