"""The systematic uncertainties attached to the fit templates, and their loading.

This module owns :class:`SystematicsTable` (the PRL's "Systematic uncertainties" paragraphs:
signal efficiency per M^2 range (normsys), per-bin signal shape, per-bin background shape per
range, per-bin photon-veto background shape on the mu mu component, luminosity, and whether the
templates' MC statistical uncertainty is attached) and :func:`load_systematics`, which reads
the table the configuration asks for (``templates.systematics``: the configuration's PRL values,
a JSON file, or the ``systematics`` entry of the control stage's ``corrections.json``).
:mod:`zprime.analyses.invisible_zprime.templates` re-exports both.

Values are relative uncertainties; M^2 ranges in GeV^2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import ValidationError

from zprime.config import SystematicsConfig, SystematicsValues
from zprime.errors import ConfigError, InputError

__all__ = ["SystematicsTable", "load_systematics"]


@dataclass(frozen=True)
class SystematicsTable:
    """Relative systematic uncertainties by M_recoil^2 range (PRL values by default).

    ``signal_efficiency`` is chosen by the hypothesis M^2 (one normsys per window); the per-bin
    ``background_shape`` and ``photon_veto_shape`` by the M^2 at the centre of each bin. M^2
    outside all ranges takes the nearest range (e.g. window bins below -0.5 GeV^2 the first).
    """

    m2_ranges: tuple[tuple[float, float], ...]
    signal_efficiency: tuple[float, ...]
    signal_shape: float
    background_shape: tuple[float, ...]
    photon_veto_split: float
    photon_veto_shape: tuple[float, float]
    photon_veto_samples: tuple[str, ...]
    luminosity: float
    mc_stat: bool = True
    source: str = "prl"

    @classmethod
    def from_values(
        cls, values: SystematicsValues, *, mc_stat: bool = True, source: str = "prl"
    ) -> SystematicsTable:
        """From a validated ``SystematicsValues`` block."""
        return cls(
            m2_ranges=tuple((float(a), float(b)) for a, b in values.m2_ranges_gev2),
            signal_efficiency=tuple(values.signal_efficiency),
            signal_shape=values.signal_shape,
            background_shape=tuple(values.background_shape),
            photon_veto_split=values.photon_veto_split_m2_gev2,
            photon_veto_shape=(values.photon_veto_shape[0], values.photon_veto_shape[1]),
            photon_veto_samples=tuple(values.photon_veto_samples),
            luminosity=values.luminosity,
            mc_stat=mc_stat,
            source=source,
        )

    def range_index(self, m2: ArrayLike) -> Any:
        """Index of the M^2 range of each ``m2`` (nearest range outside them all)."""
        uppers = np.array([hi for _, hi in self.m2_ranges[:-1]])
        out = np.searchsorted(uppers, np.asarray(m2, dtype=float), side="right")
        return int(out) if np.ndim(out) == 0 else out

    def signal_efficiency_at(self, m2: float) -> float:
        """Relative signal-efficiency uncertainty of a hypothesis at ``m2``."""
        return float(self.signal_efficiency[self.range_index(m2)])

    def background_shape_at(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Relative per-bin background-shape uncertainty at bin-centre ``m2``."""
        return np.asarray(self.background_shape, dtype=float)[self.range_index(np.atleast_1d(m2))]

    def photon_veto_at(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Relative per-bin photon-veto shape uncertainty at bin-centre ``m2``."""
        a = np.atleast_1d(np.asarray(m2, dtype=float))
        return np.where(a < self.photon_veto_split, *self.photon_veto_shape)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the ``SystematicsValues`` fields plus ``mc_stat`` and ``source``)."""
        return {
            "source": self.source,
            "mc_stat": self.mc_stat,
            "m2_ranges_gev2": [list(r) for r in self.m2_ranges],
            "signal_efficiency": list(self.signal_efficiency),
            "signal_shape": self.signal_shape,
            "background_shape": list(self.background_shape),
            "photon_veto_split_m2_gev2": self.photon_veto_split,
            "photon_veto_shape": list(self.photon_veto_shape),
            "photon_veto_samples": list(self.photon_veto_samples),
            "luminosity": self.luminosity,
        }


def _values_from_json(path: Path, key: str | None) -> SystematicsValues:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such systematics file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise InputError(f"{path}: no '{key}' entry (written by the control stage)")
        data = data[key]
    if not isinstance(data, dict):
        raise InputError(f"{path}: systematics must be a JSON object")
    data = {k: v for k, v in data.items() if k not in ("source", "mc_stat")}
    try:
        return SystematicsValues.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: systematics field '{where}': {first['msg']}") from None


def load_systematics(
    cfg: SystematicsConfig, corrections: str | Path | None = None
) -> SystematicsTable:
    """The systematic uncertainties the configuration asks for.

    ``source: prl``: the table in the configuration (the PRL's values by default);
    ``file``: a JSON object with the same fields at ``cfg.file``; ``derived``: the
    ``systematics`` entry of ``corrections.json`` (``corrections``, else ``cfg.file``), written
    by the control-sample stage.

    Raises
    ------
    ConfigError
        ``file``/``derived`` without a file.
    InputError
        Missing file, missing entry, or an invalid value (naming the file and field).
    """
    if cfg.source == "prl":
        return SystematicsTable.from_values(cfg.prl, mc_stat=cfg.mc_stat, source="prl")
    path = corrections if cfg.source == "derived" and corrections is not None else cfg.file
    if path is None:
        raise ConfigError(
            f"config field 'templates.systematics.file': needed for source '{cfg.source}'"
        )
    key = "systematics" if cfg.source == "derived" else None
    values = _values_from_json(Path(path), key)
    return SystematicsTable.from_values(values, mc_stat=cfg.mc_stat, source=f"{cfg.source}:{path}")
