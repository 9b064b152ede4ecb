"""The signal cross-section table: sigma(e+e- -> mu+ mu- Z') at g' = 1 against the Z' mass.

This module owns the table and its file format, not its computation: :class:`XsecTable` (with
and without ISR, PCHIP interpolation in log sigma against log M), reading and writing the CSV
(:func:`load_xsec_table`, :func:`write_xsec_table`) and the table shipped in ``zprime/data``
(:func:`package_table_path`). It lives in the physics layer so that
:mod:`zprime.physics.model` can turn limits on sigma into limits on g' without the generators;
the table is computed by :func:`zprime.generators.signal.xsec_table`, which also re-exports
these names.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import PchipInterpolator

from zprime._util import atomic_path
from zprime.errors import ConfigError, InputError

__all__ = [
    "XsecTable",
    "load_xsec_table",
    "package_table_path",
    "spin_table_path",
    "write_xsec_table",
]

_TABLE_COLUMNS = ("mass_gev", "sigma_fb", "error_fb", "sigma_noisr_fb", "error_noisr_fb")
_TABLE_RESOURCE = "data/xsec_table.csv"


@dataclass(frozen=True)
class XsecTable:
    """sigma(e+e- -> mu+ mu- Z') at g' = 1 on a mass grid, with and without ISR (fb).

    Interpolation (:meth:`sigma_fb`) is a PCHIP (monotone piecewise cubic Hermite) interpolation
    of log sigma against log M, which passes through the tabulated points and does not
    overshoot between them.
    """

    mass_gev: NDArray[np.float64]
    """Z' masses (GeV), strictly increasing."""
    sigma_isr: NDArray[np.float64] = field(repr=False)
    """sigma with ISR, fb."""
    error_isr: NDArray[np.float64] = field(repr=False)
    """Its Monte Carlo uncertainty, fb."""
    sigma_noisr: NDArray[np.float64] = field(repr=False)
    """sigma without ISR (Born at sqrt(s)), fb."""
    error_noisr: NDArray[np.float64] = field(repr=False)
    """Its Monte Carlo uncertainty, fb."""
    metadata: dict[str, str] = field(default_factory=dict)
    """``# key = value`` header of the CSV file (alpha, sqrt(s), version, commit, ...)."""

    def _interpolator(self, isr: bool) -> Any:
        key = "_pchip_isr" if isr else "_pchip_noisr"
        cached = self.__dict__.get(key)
        if cached is None:
            y = self.sigma_isr if isr else self.sigma_noisr
            cached = PchipInterpolator(np.log(self.mass_gev), np.log(y), extrapolate=False)
            object.__setattr__(self, key, cached)
        return cached

    def sigma_fb(self, mass: ArrayLike, g: ArrayLike = 1.0, *, isr: bool = True) -> Any:
        """Interpolated sigma(e+e- -> mu+ mu- Z') in fb at ``mass`` (GeV) and coupling ``g``.

        Returns a float for scalar input, an array otherwise (``g`` broadcasts).

        Raises
        ------
        ConfigError
            For a mass outside the table range or a non-positive coupling.
        """
        m = np.asarray(mass, dtype=np.float64)
        gg = np.asarray(g, dtype=np.float64)
        bad_g = ~np.isfinite(gg) | (gg <= 0.0)
        if np.any(bad_g):
            raise ConfigError(f"coupling g must be positive and finite, got {gg[bad_g].flat[0]!r}")
        lo, hi = float(self.mass_gev[0]), float(self.mass_gev[-1])
        bad = ~np.isfinite(m) | (m < lo * (1.0 - 1e-12)) | (m > hi * (1.0 + 1e-12))
        if np.any(bad):
            raise ConfigError(
                f"Z' mass {float(m[bad].flat[0])!r} GeV outside the cross-section table range "
                f"[{lo:g}, {hi:g}] GeV"
            )
        mc = np.clip(m, lo, hi)
        val = np.exp(self._interpolator(isr)(np.log(mc))) * gg * gg
        return float(val) if np.ndim(val) == 0 else val

    def to_csv(self) -> str:
        """The table as CSV text with ``# key = value`` header lines."""
        lines = ["# zprime signal cross-section table: sigma(e+e- -> mu+ mu- Z') at g' = 1, fb"]
        lines += [f"# {k} = {v}" for k, v in self.metadata.items()]
        lines.append(",".join(_TABLE_COLUMNS))
        cols = (self.mass_gev, self.sigma_isr, self.error_isr, self.sigma_noisr, self.error_noisr)
        lines += [",".join(f"{v:.8g}" for v in row) for row in zip(*cols, strict=True)]
        return "\n".join(lines) + "\n"


def _parse_table(text: str, source: str) -> XsecTable:
    """The table in CSV ``text`` (``# key = value`` header lines, then the columns);
    ``source`` names it in errors."""
    meta: dict[str, str] = {}
    rows: list[list[float]] = []
    header: list[str] | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*([\w.]+)\s*=\s*(.*)$", line)
            if m:
                meta[m.group(1)] = m.group(2).strip()
            continue
        if header is None:
            header = [c.strip() for c in line.split(",")]
            for col in _TABLE_COLUMNS:
                if col not in header:
                    raise InputError(f"{source}: missing column '{col}'")
            continue
        parts = line.split(",")
        try:
            rows.append([float(parts[header.index(c)]) for c in _TABLE_COLUMNS])
        except (ValueError, IndexError):
            raise InputError(f"{source}: line {lineno} is not a row of numbers") from None
    if header is None or len(rows) < 2:
        raise InputError(f"{source}: needs a header line and at least two rows")
    arr = np.asarray(rows)
    arr = arr[np.argsort(arr[:, 0])]
    if np.any(arr[:, 0] <= 0.0) or np.any(np.diff(arr[:, 0]) <= 0.0):
        raise InputError(f"{source}: column 'mass_gev' must be positive and without duplicates")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, [1, 3]] <= 0.0):
        raise InputError(f"{source}: columns 'sigma_fb', 'sigma_noisr_fb' must be finite and > 0")
    return XsecTable(
        mass_gev=arr[:, 0],
        sigma_isr=arr[:, 1],
        error_isr=arr[:, 2],
        sigma_noisr=arr[:, 3],
        error_noisr=arr[:, 4],
        metadata=meta,
    )


@functools.lru_cache(maxsize=1)
def _load_package_table() -> XsecTable:
    """The table shipped in ``zprime/data`` (read once per process)."""
    res = resources.files("zprime").joinpath(_TABLE_RESOURCE)
    if not res.is_file():
        raise InputError(
            "package cross-section table zprime/data/xsec_table.csv is missing "
            "(recompute it with `zprime xsec --grid --update-package`)"
        )
    return _parse_table(res.read_text(), "zprime/data/xsec_table.csv")


def load_xsec_table(path: str | Path | None = None) -> XsecTable:
    """Load a cross-section table (default: the one shipped in ``zprime/data``, cached).

    Raises
    ------
    InputError
        If the file is missing, lacks a column or holds a bad row.
    """
    if path is None:
        return _load_package_table()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: cross-section table not found")
    return _parse_table(p.read_text(), str(p))


def write_xsec_table(table: XsecTable, path: str | Path) -> Path:
    """Write ``table`` as CSV to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(table.to_csv())
    return Path(path)


def package_table_path() -> Path:
    """Path of the cross-section table shipped with the package (in the source tree)."""
    return Path(str(resources.files("zprime").joinpath(_TABLE_RESOURCE)))


def spin_table_path(spin: str) -> Path:
    """Path of the shipped table sigma(e+e- -> mu+ mu- X) at coupling 1 from 3.6 to 10 GeV for
    the tau-tau resonance search, ``spin`` one of ``"vector"`` (g' = 1), ``"scalar"``,
    ``"pseudoscalar"`` (Yukawa y = 1): ``zprime/data/xsec_table_mumu_x_{spin}.csv``, computed by
    ``tools/make_spin_xsec_tables.py``; read it with :func:`load_xsec_table`."""
    if spin not in ("vector", "scalar", "pseudoscalar"):
        raise ConfigError(f"spin must be vector, scalar or pseudoscalar, got {spin!r}")
    return Path(str(resources.files("zprime").joinpath(f"data/xsec_table_mumu_x_{spin}.csv")))
