"""The results of the mass scan: cross-section limits, g' limits, significances.

This module turns the fit stage's per-hypothesis tables (``limits_narrow.csv``,
``limits_wide.csv``, ``significance_narrow.json``) into the results table of the analysis, one
row per mass hypothesis (narrow Z' and the Gamma = 0.1 M benchmark in the same table), and
writes it as CSV, Parquet and a Markdown summary. Its columns are the contract in
``docs/results.md`` (read by :mod:`zprime.analyses.invisible_zprime.hepdata` and the report stage).

The limits on the coupling follow from the limits on sigma(e+e- -> mu+ mu- Z') x
B(Z' -> invisible): sigma is proportional to g'^2 (the Z' is radiated off a muon) and B does not
depend on g' when all partial widths scale as g'^2, so

    g'_UL = sqrt(sigma_UL / (sigma_{g'=1}(M) B(M)))

(PRL 130, 231801 (2023), "the PRL"; :func:`zprime.physics.model.coupling_limit`). sigma_{g'=1} comes
from
the package's cross-section table (:func:`zprime.generators.signal.load_xsec_table`, interpolated)
through
:func:`zprime.physics.model.sigma_times_br`; nothing here recomputes a cross section. B is the
vanilla
model's (:func:`zprime.physics.model.branching_invisible`) or 1 for the fully invisible model (the
PRL's
g_D >> g' limit). For the Gamma = 0.1 M benchmark the PRL takes alpha_D large, so B = 1 and only
the fully invisible translation is given; the narrow-width sigma_{g'=1} at the pole mass is used
there as well.

:func:`recast` applies the same translation to any cross-section limit table (``zprime recast``).

Length: the results table of the search, its one schema read, written, summarised and translated
(sigma x B -> g', recast) in one place; a split would put the schema in two modules.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from zprime._util import atomic_path, read_json_object, write_json_atomic
from zprime.errors import ConfigError, InputError
from zprime.io.rundir import RunDir
from zprime.physics.model import branching_invisible, coupling_limit, sigma_times_br
from zprime.physics.xsec_table import load_xsec_table

if TYPE_CHECKING:
    from zprime.config import Config

__all__ = [
    "BANDS",
    "COLUMNS",
    "RECAST_MODELS",
    "SUMMARY_MASSES_GEV",
    "RecastResult",
    "ResultsTable",
    "build_results",
    "read_results",
    "recast",
    "write_results",
]

BANDS: tuple[str, ...] = ("m2", "m1", "", "p1", "p2")
"""Suffixes of the expected-limit columns: -2, -1 sigma, median (no suffix), +1, +2 sigma."""


def _band_names(prefix: str) -> list[str]:
    return [f"{prefix}_{b}" if b else prefix for b in BANDS]


COLUMNS: tuple[str, ...] = (
    "width",
    "mass_gev",
    "status",
    "message",
    "obs_xsec_fb",
    *_band_names("exp_xsec_fb"),
    "sigma_g1_fb",
    "br_inv_vanilla",
    "obs_gprime_vanilla",
    *_band_names("exp_gprime_vanilla"),
    "obs_gprime_invisible",
    *_band_names("exp_gprime_invisible"),
    "signal_efficiency",
    "z_local",
    "p0",
    "gof_p",
)
"""The results table's columns, in file order (``docs/results.md``)."""

_TEXT_COLUMNS = ("width", "status", "message")
_FLOAT_COLUMNS = tuple(c for c in COLUMNS if c not in _TEXT_COLUMNS)

SUMMARY_MASSES_GEV: tuple[float, ...] = (0.01, 0.1, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0)
"""Masses whose nearest hypotheses are listed in ``summary.md``."""

RECAST_MODELS: dict[str, str] = {"vanilla": "vanilla", "fully_invisible": "invisible"}
"""Models of :func:`recast` and the tag of their g' columns (as in the results table)."""

# The fit stage's limit columns (zprime.pipeline, limits_<width>.csv) and the results table's,
# in the order observed, -2, -1 sigma, median, +1, +2 sigma.
_FIT_LIMITS = (
    "observed_fb",
    "expected_m2_fb",
    "expected_m1_fb",
    "expected_median_fb",
    "expected_p1_fb",
    "expected_p2_fb",
)
_RESULT_LIMITS = ("obs_xsec_fb", *_band_names("exp_xsec_fb"))

_META_PREFIX = "zprime."


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class ResultsTable:
    """The results of the scan, one entry per mass hypothesis (columns as numpy arrays).

    The array fields are the columns of ``limits.csv`` (:data:`COLUMNS`, described in
    ``docs/results.md``); the remaining fields are run-level metadata. Failed rows have NaN
    limits, g' limits and significances, ``status == "failed"`` and a ``message``.
    """

    width: NDArray[np.str_]
    """``"narrow"`` or ``"wide"`` (the Gamma = 0.1 M benchmark)."""
    mass_gev: NDArray[np.float64]
    """Z' mass hypothesis, GeV."""
    status: NDArray[np.str_]
    """``"ok"`` or ``"failed"``."""
    message: NDArray[np.str_]
    """Why a row failed, else empty."""
    obs_xsec_fb: NDArray[np.float64]
    """Observed upper limit on sigma(e+e- -> mu mu Z') x B(Z' -> invisible), fb."""
    exp_xsec_fb_m2: NDArray[np.float64]
    exp_xsec_fb_m1: NDArray[np.float64]
    exp_xsec_fb: NDArray[np.float64]
    """Median expected upper limit, fb (``_m2`` ... ``_p2``: -2 ... +2 sigma)."""
    exp_xsec_fb_p1: NDArray[np.float64]
    exp_xsec_fb_p2: NDArray[np.float64]
    sigma_g1_fb: NDArray[np.float64]
    """sigma(e+e- -> mu mu Z') at g' = 1 (with ISR), fb."""
    br_inv_vanilla: NDArray[np.float64]
    """B(Z' -> invisible) of the vanilla model (1 for ``wide`` rows)."""
    obs_gprime_vanilla: NDArray[np.float64]
    """Observed g' limit, vanilla model (NaN for ``wide`` rows)."""
    exp_gprime_vanilla_m2: NDArray[np.float64]
    exp_gprime_vanilla_m1: NDArray[np.float64]
    exp_gprime_vanilla: NDArray[np.float64]
    exp_gprime_vanilla_p1: NDArray[np.float64]
    exp_gprime_vanilla_p2: NDArray[np.float64]
    obs_gprime_invisible: NDArray[np.float64]
    """Observed g' limit, fully invisible model (B = 1); Gamma = 0.1 M benchmark for ``wide``."""
    exp_gprime_invisible_m2: NDArray[np.float64]
    exp_gprime_invisible_m1: NDArray[np.float64]
    exp_gprime_invisible: NDArray[np.float64]
    exp_gprime_invisible_p1: NDArray[np.float64]
    exp_gprime_invisible_p2: NDArray[np.float64]
    signal_efficiency: NDArray[np.float64]
    """Signal efficiency of the selection."""
    z_local: NDArray[np.float64]
    """Local significance of the excess (0 when the fitted signal is <= 0)."""
    p0: NDArray[np.float64]
    """Local background-only p-value."""
    gof_p: NDArray[np.float64]
    """Goodness-of-fit p-value (saturated model) of the background-only fit."""
    luminosity_fb: float | None = None
    """Integrated luminosity of the run, fb^-1 (for figure labels)."""
    width_over_mass: float = 0.1
    """Gamma / M of the ``wide`` benchmark (PRL: 0.1)."""
    confidence_level: float = 0.9
    """Confidence level of the limits (PRL: 90%)."""
    method: str = "cls"
    """How the limits were set: ``"cls"`` (PRL) or ``"bayesian"``."""
    significance: dict[str, Any] = field(default_factory=dict)
    """Global significance of the largest narrow-Z' excess (the fit stage's
    ``significance_narrow.json``: hypotheses, failed, largest_local_z, at_mass_gev, global_p,
    global_z, worst_gof_p)."""
    significance_wide: dict[str, Any] = field(default_factory=dict)
    """The same for the wide benchmark (``significance_wide.json``), if available."""
    smoke_test: bool = False
    """A quick run's table (``report.smoke_test``): its summary reports no significance."""

    def __post_init__(self) -> None:
        n = len(self.mass_gev)
        for name in COLUMNS:
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.shape != (n,):
                raise ConfigError(
                    f"results column '{name}' must be a 1D array of length {n}, "
                    f"got shape {np.shape(value)}"
                )

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any], **metadata: Any) -> ResultsTable:
        """Build a table from a mapping column name -> sequence (all :data:`COLUMNS` needed).

        Raises
        ------
        InputError
            If a column is missing.
        """
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise InputError(f"results table lacks column '{missing[0]}'")
        arrays: dict[str, Any] = {}
        for c in _TEXT_COLUMNS:
            arrays[c] = np.asarray(["" if v is None else str(v) for v in columns[c]], dtype=str)
        for c in _FLOAT_COLUMNS:
            arrays[c] = np.asarray(columns[c], dtype=np.float64)
        return cls(**arrays, **metadata)

    def __len__(self) -> int:
        return len(self.mass_gev)

    def columns(self) -> dict[str, NDArray[Any]]:
        """Column name -> array, in file order."""
        return {c: getattr(self, c) for c in COLUMNS}

    def metadata(self) -> dict[str, Any]:
        """The run-level fields (everything but the columns)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in COLUMNS}

    def rows(self) -> list[dict[str, Any]]:
        """One dict per row with Python scalars (str / float)."""
        cols = self.columns()
        out = []
        for i in range(len(self)):
            out.append(
                {c: str(a[i]) if c in _TEXT_COLUMNS else float(a[i]) for c, a in cols.items()}
            )
        return out

    @property
    def ok(self) -> NDArray[np.bool_]:
        """Mask of the rows with ``status == "ok"``."""
        return self.status == "ok"

    def select(self, rows: NDArray[np.bool_] | NDArray[np.integer] | str) -> ResultsTable:
        """A table of some rows, same metadata.

        ``rows`` is a boolean mask, an index array (any order), or a width (``"narrow"`` /
        ``"wide"``).
        """
        if isinstance(rows, str):
            rows = self.width == rows
        sel = np.asarray(rows)
        if sel.dtype != bool:
            sel = sel.astype(np.intp)
        return type(self)(**{c: a[sel] for c, a in self.columns().items()}, **self.metadata())

    @property
    def narrow(self) -> ResultsTable:
        """The narrow-Z' rows."""
        return self.select("narrow")

    @property
    def wide(self) -> ResultsTable:
        """The Gamma = 0.1 M benchmark rows."""
        return self.select("wide")

    def nearest(self, mass_gev: float) -> int:
        """Index of the row whose mass is nearest to ``mass_gev`` (NaN masses never)."""
        d = np.abs(self.mass_gev - float(mass_gev))
        if not np.any(np.isfinite(d)):
            raise InputError("results table has no row with a finite mass")
        return int(np.nanargmin(d))


# --------------------------------------------------------------------------- CSV helpers
def _read_csv(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise InputError(f"{path}: empty {what} (no header line)")
    reader.fieldnames = header
    rows = [r for r in reader if any((v or "").strip() for v in r.values() if isinstance(v, str))]
    return header, rows


def _float_column(path: Path, rows: list[dict[str, str]], name: str) -> NDArray[np.float64]:
    out = np.empty(len(rows))
    for i, row in enumerate(rows):
        raw = (row.get(name) or "").strip()
        try:
            out[i] = float(raw) if raw else math.nan
        except ValueError:
            raise InputError(
                f"{path}: column '{name}', row {i + 1}: {raw!r} is not a number"
            ) from None
    return out


def _text_column(rows: list[dict[str, str]], name: str, default: str = "") -> NDArray[np.str_]:
    return np.asarray([(r.get(name) or default).strip() for r in rows], dtype=str)


def _csv_text(columns: Mapping[str, Sequence[Any] | NDArray[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = list(columns)
    writer.writerow(names)
    n = len(next(iter(columns.values()))) if columns else 0
    for i in range(n):
        row = []
        for c in names:
            v = columns[c][i]
            if isinstance(v, str | np.str_):
                row.append(str(v))
            else:
                row.append(repr(float(v)))
        writer.writerow(row)
    return buf.getvalue()


# --------------------------------------------------------------------------- g' translation
def _table_range() -> tuple[float, float]:
    m = load_xsec_table().mass_gev
    return float(m[0]), float(m[-1])


def _in_range(mass: NDArray[np.float64]) -> NDArray[np.bool_]:
    lo, hi = _table_range()
    with np.errstate(invalid="ignore"):
        return np.isfinite(mass) & (mass >= lo * (1 - 1e-12)) & (mass <= hi * (1 + 1e-12))


def _sigma_g1(mass: NDArray[np.float64]) -> NDArray[np.float64]:
    """sigma(e+e- -> mu mu Z') at g' = 1 in fb (NaN outside the table): sigma x B with B = 1."""
    out = np.full(mass.shape, np.nan)
    good = _in_range(mass)
    if np.any(good):
        out[good] = sigma_times_br(1.0, mass[good], "fully_invisible")
    return out


def _br_vanilla(mass: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.full(mass.shape, np.nan)
    good = np.isfinite(mass) & (mass > 0)
    if np.any(good):
        out[good] = branching_invisible(mass[good], "vanilla")
    return out


def _gprime(
    limit_fb: NDArray[np.float64], mass: NDArray[np.float64], model: str
) -> NDArray[np.float64]:
    """g' limits from sigma x B limits (:func:`zprime.physics.model.coupling_limit`); NaN where the
    limit or the mass is unusable (failed rows)."""
    out = np.full(limit_fb.shape, np.nan)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(limit_fb) & (limit_fb > 0) & _in_range(mass)
    if np.any(good):
        out[good] = coupling_limit(limit_fb[good], mass[good], model)
    return out


# --------------------------------------------------------------------------- build
def _from_fit_csv(path: Path, width: str) -> dict[str, NDArray[Any]]:
    """Translate one fit-stage table (``limits_<width>.csv``) into results columns."""
    header, rows = _read_csv(path, "fit-stage limit table")
    for col in ("mass_gev", "status", *_FIT_LIMITS):
        if col not in header:
            raise InputError(f"{path}: missing column '{col}'")
    n = len(rows)
    mass = _float_column(path, rows, "mass_gev")
    status_in = _text_column(rows, "status")
    message = _text_column(rows, "message")
    limits = {
        new: _float_column(path, rows, old)
        for new, old in zip(_RESULT_LIMITS, _FIT_LIMITS, strict=True)
    }

    def optional(name: str) -> NDArray[np.float64]:
        return _float_column(path, rows, name) if name in header else np.full(n, np.nan)

    # the observed limit and the expected median must be there; the +-1, 2 sigma bands may be
    # NaN (Bayesian limits without toys: fit.bayesian_toys = 0 gives the Asimov median only)
    stack = np.vstack([limits["obs_xsec_fb"], limits["exp_xsec_fb"]]) if n else np.zeros((2, 0))
    with np.errstate(invalid="ignore"):
        finite = np.all(np.isfinite(stack) & (stack > 0), axis=0)
    in_range = _in_range(mass)
    ok = (status_in == "ok") & finite & in_range
    # explain rows that the fit called ok but that cannot be translated, and keep odd statuses
    msgs = []
    for i in range(n):
        m = str(message[i])
        if status_in[i] == "ok" and not ok[i]:
            m = (
                f"mass {float(mass[i])!r} GeV outside the cross-section table"
                if not in_range[i]
                else "no finite positive limit"
            )
        elif status_in[i] not in ("ok", "failed"):
            m = f"{status_in[i]}: {m}" if m else str(status_in[i])
        msgs.append(m)
    cols: dict[str, NDArray[Any]] = {
        "width": np.full(n, width, dtype="<U6"),
        "mass_gev": mass,
        "status": np.where(ok, "ok", "failed").astype("<U6"),
        "message": np.asarray(msgs, dtype=str) if n else np.zeros(0, dtype=str),
    }
    for name, arr in limits.items():
        cols[name] = np.where(ok, arr, np.nan)
    cols["sigma_g1_fb"] = _sigma_g1(mass)
    narrow = width == "narrow"
    # wide benchmark: alpha_D large, B(Z' -> chi chi) = 1 (PRL); the vanilla model has no wide Z'
    cols["br_inv_vanilla"] = _br_vanilla(mass) if narrow else np.ones(n)
    for model, tag in RECAST_MODELS.items():
        names = [f"obs_gprime_{tag}", *_band_names(f"exp_gprime_{tag}")]
        for out_name, lim_name in zip(names, _RESULT_LIMITS, strict=True):
            if model == "vanilla" and not narrow:
                cols[out_name] = np.full(n, np.nan)
            else:
                cols[out_name] = _gprime(cols[lim_name], mass, model)
    cols["signal_efficiency"] = optional("signal_efficiency")
    z = optional("z_local")
    mu_hat = optional("mu_hat_fb")
    with np.errstate(invalid="ignore"):
        z = np.where(mu_hat <= 0.0, 0.0, z)  # the contract: 0 when mu_hat <= 0
    cols["z_local"] = np.where(ok, z, np.nan)
    cols["p0"] = np.where(ok, optional("p0"), np.nan)
    cols["gof_p"] = np.where(ok, optional("gof_p"), np.nan)
    return cols


def _read_significance(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return read_json_object(path, "significance summary")


def build_results(run_dir: str | Path | RunDir, config: Config) -> ResultsTable:
    """Build the results table of a run from its fit-stage outputs.

    Parameters
    ----------
    run_dir
        Run directory holding ``limits_narrow.csv`` (required), ``limits_wide.csv`` (used if
        present) and ``significance_narrow.json`` / ``significance_wide.json`` (if present).
    config
        The run's configuration (luminosity, the wide benchmark's Gamma/M, the limit method).

    Returns
    -------
    ResultsTable
        Narrow rows sorted by mass, then wide rows sorted by mass.

    Raises
    ------
    InputError
        If ``limits_narrow.csv`` is missing or lacks a column, or a value is not a number.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    parts = [_from_fit_csv(run.scan_limits("narrow"), "narrow")]
    wide_csv = run.scan_limits("wide")
    if wide_csv.is_file():
        parts.append(_from_fit_csv(wide_csv, "wide"))
    columns: dict[str, NDArray[Any]] = {}
    for c in COLUMNS:
        columns[c] = np.concatenate([p[c] for p in parts])
    # order: narrow before wide, by mass (NaN masses last within their width)
    order = np.lexsort((columns["mass_gev"], columns["width"] != "narrow"))
    columns = {c: a[order] for c, a in columns.items()}
    return ResultsTable.from_columns(
        columns,
        luminosity_fb=float(config.luminosity_fb),
        width_over_mass=float(config.binning.wide.width_over_mass),
        confidence_level=0.9,
        method=str(config.fit.limits),
        significance=_read_significance(run.significance("narrow")),
        significance_wide=_read_significance(run.significance("wide")),
        smoke_test=bool(config.report.smoke_test),
    )


# --------------------------------------------------------------------------- write / read
def _arrow_table(table: ResultsTable) -> Any:
    arrays = {
        c: pa.array(a.tolist(), type=pa.string())
        for c, a in table.columns().items()
        if c in _TEXT_COLUMNS
    }
    arrays.update({c: pa.array(getattr(table, c), type=pa.float64()) for c in _FLOAT_COLUMNS})
    meta = {f"{_META_PREFIX}{k}": json.dumps(v) for k, v in table.metadata().items()}
    return pa.table({c: arrays[c] for c in COLUMNS}).replace_schema_metadata(meta)


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if not np.isfinite(value) else f"{value:.{digits}g}"


def _band(centre: float, lo: float, hi: float) -> str:
    if not np.isfinite(centre):
        return "-"
    return f"{_fmt(centre)} [{_fmt(lo)}, {_fmt(hi)}]"


def _global_text(sig: Mapping[str, Any]) -> str:
    if not sig or "global_p" not in sig:
        return "not available (no converged hypothesis or no significance file)"
    z = float(sig.get("global_z", math.nan))
    p = float(sig["global_p"])
    z_text = f"{max(z, 0.0):.2f}" if not math.isnan(z) else "-"
    return (
        f"largest local excess {float(sig.get('largest_local_z', math.nan)):.2f} sigma at "
        f"M = {float(sig.get('at_mass_gev', math.nan)):.4g} GeV; global significance "
        f"{z_text} sigma (p = {p:.3g}); worst goodness-of-fit p-value "
        f"{float(sig.get('worst_gof_p', math.nan)):.3g}"
    )


def summary_markdown(table: ResultsTable, masses_gev: Iterable[float] = SUMMARY_MASSES_GEV) -> str:
    """The Markdown summary: limits at a few masses, the global significance, failed rows."""
    cl = f"{100 * table.confidence_level:g}%"
    method = {"cls": "CLs", "bayesian": "Bayesian, flat prior in sigma"}.get(
        table.method, table.method
    )
    lumi = f", L = {table.luminosity_fb:g} fb^-1" if table.luminosity_fb is not None else ""
    narrow, wide = table.narrow, table.wide
    smoke = table.smoke_test
    lines = [
        "# zprime results" + (": smoke test" if smoke else ""),
        "",
    ]
    if smoke:
        lines += [
            "**A smoke test** (`zprime run --quick`): these numbers show that the chain runs; "
            "they are not physics results. Its simulation is too small for a significance "
            "(where a generator's events are heavy, a bin holds a handful of simulated events), "
            "so none is reported. Run `zprime run` for results.",
            "",
        ]
    lines += [
        f"sqrt(s) = 10.58 GeV{lumi}; {cl} CL upper limits ({method}) on "
        "sigma(e+e- -> mu+ mu- Z') x B(Z' -> invisible) in fb, and on g' (vanilla and fully "
        "invisible L_mu - L_tau models). Expected limits: median [-1 sigma, +1 sigma].",
        "",
        f"- Narrow Z': {len(narrow)} hypotheses, {int(np.sum(~narrow.ok))} failed.",
    ]
    if len(wide):
        lines.append(
            f"- Wide Z' (Gamma = {table.width_over_mass:g} M): {len(wide)} hypotheses, "
            f"{int(np.sum(~wide.ok))} failed."
        )
    if not smoke:
        lines.append(f"- Narrow Z': {_global_text(table.significance)}.")
        if len(wide) and table.significance_wide:
            lines.append(f"- Wide Z': {_global_text(table.significance_wide)}.")
    lines.append("")
    # a smoke test shows no significance columns (Z_local, GoF p)
    sig_head = "" if smoke else " Z_local | GoF p |"
    sig_rule = "" if smoke else " ---: | ---: |"

    def sig_cells(t: ResultsTable, i: int) -> str:
        return "" if smoke else f" {t.z_local[i]:.2f} | {_fmt(t.gof_p[i], 2)} |"

    def picks(t: ResultsTable) -> list[int]:
        if not np.any(np.isfinite(t.mass_gev)):
            return []
        idx: list[int] = []
        for m in masses_gev:
            i = t.nearest(m)
            if i not in idx:
                idx.append(i)
        return idx

    if len(narrow):
        lines += [
            "## Narrow Z'",
            "",
            "| M_Z' [GeV] | obs. sigma x B [fb] | exp. sigma x B [fb] | obs. g' vanilla "
            "| exp. g' vanilla | obs. g' fully inv. | exp. g' fully inv. |" + sig_head,
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + sig_rule,
        ]
        for i in picks(narrow):
            t = narrow
            if not t.ok[i]:
                lines.append(f"| {t.mass_gev[i]:.4g} | failed: {t.message[i]} ||||||||")
                continue
            lines.append(
                f"| {t.mass_gev[i]:.4g} | {_fmt(t.obs_xsec_fb[i])} "
                f"| {_band(t.exp_xsec_fb[i], t.exp_xsec_fb_m1[i], t.exp_xsec_fb_p1[i])} "
                f"| {_fmt(t.obs_gprime_vanilla[i])} "
                f"| {_band(t.exp_gprime_vanilla[i], t.exp_gprime_vanilla_m1[i], t.exp_gprime_vanilla_p1[i])} "  # noqa: E501
                f"| {_fmt(t.obs_gprime_invisible[i])} "
                f"| {_band(t.exp_gprime_invisible[i], t.exp_gprime_invisible_m1[i], t.exp_gprime_invisible_p1[i])} |"  # noqa: E501
                + sig_cells(t, i)
            )
        lines.append("")
    if len(wide):
        lines += [
            f"## Wide Z' (Gamma = {table.width_over_mass:g} M, B(Z' -> invisible) = 1)",
            "",
            "| M_Z' [GeV] | obs. sigma x B [fb] | exp. sigma x B [fb] | obs. g' | exp. g' |"
            + sig_head,
            "| ---: | ---: | ---: | ---: | ---: |" + sig_rule,
        ]
        for i in picks(wide):
            t = wide
            if not t.ok[i]:
                lines.append(f"| {t.mass_gev[i]:.4g} | failed: {t.message[i]} ||||||")
                continue
            lines.append(
                f"| {t.mass_gev[i]:.4g} | {_fmt(t.obs_xsec_fb[i])} "
                f"| {_band(t.exp_xsec_fb[i], t.exp_xsec_fb_m1[i], t.exp_xsec_fb_p1[i])} "
                f"| {_fmt(t.obs_gprime_invisible[i])} "
                f"| {_band(t.exp_gprime_invisible[i], t.exp_gprime_invisible_m1[i], t.exp_gprime_invisible_p1[i])} |"  # noqa: E501
                + sig_cells(t, i)
            )
        lines.append("")
    failed = [i for i in range(len(table)) if not table.ok[i]]
    if failed:
        lines += ["## Failed hypotheses", ""]
        for i in failed[:50]:
            lines.append(f"- {table.width[i]} M = {table.mass_gev[i]:.4g} GeV: {table.message[i]}")
        if len(failed) > 50:
            lines.append(f"- ... and {len(failed) - 50} more (see limits.csv)")
        lines.append("")
    return "\n".join(lines)


def write_results(table: ResultsTable, out_dir: str | Path | RunDir) -> dict[str, Path]:
    """Write ``limits.csv``, ``limits.parquet``, ``summary.md`` and ``significance.json``.

    Every file is written atomically (temporary file + rename). ``significance.json`` is the
    narrow-Z' significance summary of the fit stage (``significance_narrow.json``), unchanged.

    Returns
    -------
    dict
        ``csv``, ``parquet``, ``summary``, ``significance`` -> path.
    """
    run = out_dir if isinstance(out_dir, RunDir) else RunDir(Path(out_dir))
    run.root.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": run.limits,
        "parquet": run.limits_parquet,
        "summary": run.summary,
        "significance": run.significance_summary,
    }
    with atomic_path(paths["csv"]) as tmp:
        tmp.write_text(_csv_text(table.columns()))
    with atomic_path(paths["parquet"]) as tmp:
        pq.write_table(_arrow_table(table), tmp)
    with atomic_path(paths["summary"]) as tmp:
        tmp.write_text(summary_markdown(table))
    write_json_atomic(paths["significance"], table.significance)
    return paths


def read_results(path: str | Path) -> ResultsTable:
    """Read a results table written by :func:`write_results`.

    Parameters
    ----------
    path
        ``limits.parquet`` (with its metadata), ``limits.csv`` (metadata: defaults, and the
        ``significance.json`` next to it if present), or the directory holding them (Parquet
        preferred).

    Raises
    ------
    InputError
        If the file is missing, unreadable or lacks a column.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "limits.parquet" if (p / "limits.parquet").is_file() else p / "limits.csv"
    if not p.is_file():
        raise InputError(f"{p}: no such results file")
    if p.suffix == ".parquet":
        try:
            tab = pq.read_table(p)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputError(f"{p}: not a readable Parquet results table ({exc})") from None
        meta_raw = tab.schema.metadata or {}
        meta = {
            k.decode()[len(_META_PREFIX) :]: json.loads(v.decode())
            for k, v in meta_raw.items()
            if k.decode().startswith(_META_PREFIX)
        }
        missing = [c for c in COLUMNS if c not in tab.column_names]
        if missing:
            raise InputError(f"{p}: missing column '{missing[0]}'")
        cols = {c: tab.column(c).to_pylist() for c in COLUMNS}
        for c in _FLOAT_COLUMNS:
            cols[c] = [math.nan if v is None else v for v in cols[c]]
        known = {f.name for f in fields(ResultsTable)} - set(COLUMNS)
        return ResultsTable.from_columns(cols, **{k: v for k, v in meta.items() if k in known})
    header, rows = _read_csv(p, "results table")
    for col in COLUMNS:
        if col not in header:
            raise InputError(f"{p}: missing column '{col}'")
    cols = {c: _text_column(rows, c) for c in _TEXT_COLUMNS}
    cols.update({c: _float_column(p, rows, c) for c in _FLOAT_COLUMNS})
    return ResultsTable.from_columns(
        cols, significance=_read_significance(p.parent / "significance.json")
    )


# --------------------------------------------------------------------------- recast
@dataclass(frozen=True)
class RecastResult:
    """g' limits recast from a cross-section limit table.

    ``columns`` holds, in order: ``mass_gev``, ``width`` (if the input had one), ``status`` (if
    the input had one), the input's limit columns under the results table's names
    (``obs_xsec_fb``, ``exp_xsec_fb_m2`` ...), ``sigma_g1_fb``, ``br_inv`` (B(Z' -> invisible)
    of ``model``) and the g' limits ``obs_gprime_<tag>``, ``exp_gprime_<tag>_m2`` ... with
    ``<tag>`` ``vanilla`` or ``invisible`` (as in the results table).
    """

    model: str
    source: Path
    columns: dict[str, NDArray[Any]]

    def __len__(self) -> int:
        return len(self.columns["mass_gev"])

    def rows(self) -> list[dict[str, Any]]:
        """One dict per row."""
        return [
            {
                c: (str(a[i]) if a.dtype.kind in "US" else float(a[i]))
                for c, a in self.columns.items()
            }
            for i in range(len(self))
        ]

    def gprime_columns(self) -> list[str]:
        """Names of the g' limit columns present."""
        return [c for c in self.columns if "_gprime_" in c]


def _limit_columns(path: Path, header: Sequence[str]) -> dict[str, str]:
    """Results name -> input column name for every limit column found."""
    found: dict[str, str] = {}
    for res, fit in zip(_RESULT_LIMITS, _FIT_LIMITS, strict=True):
        if res in header:
            found[res] = res
        elif fit in header:
            found[res] = fit
    if not found:
        names = ", ".join((*_RESULT_LIMITS, *_FIT_LIMITS))
        raise InputError(f"{path}: no cross-section limit column in fb (expected one of {names})")
    return found


def recast(limits_csv: str | Path, model: str, out: str | Path | None = None) -> RecastResult:
    """Turn a table of limits on sigma(e+e- -> mu mu Z') x B(Z' -> invisible) into g' limits.

    Parameters
    ----------
    limits_csv
        CSV with a ``mass_gev`` column (GeV) and at least one limit column in fb, named as in the
        results table (``obs_xsec_fb``, ``exp_xsec_fb_m2``, ``exp_xsec_fb_m1``, ``exp_xsec_fb``,
        ``exp_xsec_fb_p1``, ``exp_xsec_fb_p2``) or as in the fit stage's tables
        (``observed_fb``, ``expected_m2_fb`` ... ``expected_median_fb`` ... ``expected_p2_fb``).
        An optional ``status`` column: rows other than ``ok`` are kept with NaN g'. An optional
        ``width`` column: ``wide`` rows get NaN ``br_inv`` and g' for the vanilla model (the
        Gamma = 0.1 M benchmark is a fully invisible Z').
    model
        ``"vanilla"`` (B from :func:`zprime.physics.model.branching_invisible`) or
        ``"fully_invisible"`` (B = 1).
    out
        CSV to write the result to (atomically), or ``None``.

    Raises
    ------
    ConfigError
        For an unknown model.
    InputError
        For a missing file, no ``mass_gev`` or limit column, a limit that is NaN or <= 0 in a
        usable row, or a mass outside the cross-section table (0.01-9 GeV).
    """
    if model not in RECAST_MODELS:
        raise ConfigError(f"unknown model {model!r}; expected one of {', '.join(RECAST_MODELS)}")
    path = Path(limits_csv)
    header, rows = _read_csv(path, "limit table")
    if "mass_gev" not in header:
        raise InputError(f"{path}: missing column 'mass_gev' (the Z' mass in GeV)")
    if not rows:
        raise InputError(f"{path}: no rows")
    found = _limit_columns(path, header)
    mass = _float_column(path, rows, "mass_gev")
    use = np.ones(len(rows), dtype=bool)
    status = None
    if "status" in header:
        status = _text_column(rows, "status")
        use = status == "ok"
    width = _text_column(rows, "width") if "width" in header else None
    lo, hi = _table_range()
    for i in np.flatnonzero(use):
        if not (np.isfinite(mass[i]) and lo * (1 - 1e-12) <= mass[i] <= hi * (1 + 1e-12)):
            raise InputError(
                f"{path}: column 'mass_gev', row {i + 1}: {float(mass[i])!r} GeV is outside the "
                f"cross-section table range [{lo:g}, {hi:g}] GeV"
            )
    limits = {}
    for res, col in found.items():
        arr = _float_column(path, rows, col)
        bad = use & ~(np.isfinite(arr) & (arr > 0))
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{path}: column '{col}', row {i + 1} (mass_gev = {mass[i]:g}): limit must be "
                f"finite and > 0 fb, got {float(arr[i])!r}"
            )
        limits[res] = np.where(use, arr, np.nan)
    tag = RECAST_MODELS[model]
    m_use = np.where(use, mass, np.nan)
    br = np.full(len(rows), np.nan)
    if np.any(use):
        br[use] = branching_invisible(mass[use], model)
    vanilla_blocked = (
        (width == "wide")
        if (width is not None and model == "vanilla")
        else np.zeros(len(rows), bool)
    )
    columns: dict[str, NDArray[Any]] = {"mass_gev": mass}
    if width is not None:
        columns["width"] = width
    if status is not None:
        columns["status"] = status
    columns.update(limits)
    columns["sigma_g1_fb"] = _sigma_g1(m_use)
    columns["br_inv"] = np.where(vanilla_blocked, np.nan, br)
    out_names = dict(
        zip(_RESULT_LIMITS, [f"obs_gprime_{tag}", *_band_names(f"exp_gprime_{tag}")], strict=True)
    )
    for res, arr in limits.items():
        g = _gprime(arr, m_use, model)
        columns[out_names[res]] = np.where(vanilla_blocked, np.nan, g)
    result = RecastResult(model=model, source=path, columns=columns)
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(_csv_text(columns))
    return result
