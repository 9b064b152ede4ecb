"""Real data: a user's ntuple (ROOT or Parquet) mapped onto zprime's reconstructed-event schema.

A Belle II analyst's ntuple has its own branch names, units and layout (per-track branches such as
``mu1_px``/``mu2_px``, or variable-length ones). A *column map* (YAML) says which of the file's
branches, or which expression of them, gives each column of our reconstructed schema
(``docs/event-schema.md``); :func:`read_observed` applies it and returns events that the
selection, the Punzi-net and the templates read exactly like the simulation's, and
:func:`convert_observed` writes them to a Parquet file that enters the chain at ``select``::

    tree: ntuple                      # ROOT only: the TTree (or RNTuple)
    columns:                          # our column: the file's branch or an expression
      trg_two_track: L1_ffo_bhaveto   # values 0/1 (basf2 writes doubles)
      tracks.px: [mu1_px, mu2_px]     # per-slot branches of a two-track ntuple, or a
      ...                             # variable-length branch: tracks.px: trk_px
    units: {tracks.d0: mm}            # the file's unit where it is not ours (GeV, cm, rad)
    constants: {period: 2020}         # a column that is the same for every event

The columns (``COLUMNS``): what the selection + network + templates need is *required*;
everything else is *optional* with a documented default; ``weight`` (1 for data),
``tracks.true_pdg`` (0 for data) and the analysis variables are set by zprime (the variables
are computed from the tracks and photons with :func:`zprime.detector.simulation.analysis_variables`,
as
for the simulation). See the "Real data" section of ``docs/event-schema.md`` and the commented
example ``zprime/data/columns_example.yaml``.

Bad input gives one line: :class:`~zprime.errors.ConfigError` for the map (unknown column, bad
unit, inconsistent layout, an expression that is not allowed), :class:`~zprime.errors.InputError`
for the data file (missing or unreadable file, missing tree, a mapped branch not in the file,
NaN/infinite or out-of-range values with the column and the first row, a wrong type, a track or
photon with more momentum or energy than the whole collision: :data:`P_MAX_GEV`).
:func:`check_observed` runs these checks on the first rows only, for a run to refuse a bad file
before its first stage.

Length: one conversion: the column-map schema, the unit handling and the checks of the file all name
the same columns.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import hepunits
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zprime._util import provenance
from zprime.config import _format_validation_error
from zprime.detector.simulation import (
    OPTIONAL_RECO_COLUMNS,
    OPTIONAL_TRACK_FIELDS,
    PHOTON_FIELDS,
    RECO_SCHEMA_VERSION,
    TRACK_FIELDS,
    analysis_variables,
    validate_reco_events,
)
from zprime.errors import ConfigError, InputError
from zprime.io.events import EventWriter
from zprime.physics.constants import E_ELECTRON_BEAM, E_POSITRON_BEAM

__all__ = [
    "COLUMNS",
    "P_MAX_GEV",
    "ColumnMap",
    "TargetColumn",
    "check_observed",
    "convert_observed",
    "iter_observed",
    "load_column_map",
    "read_observed",
]


# ---------------------------------------------------------------------------------------------
# the columns a map can fill


@dataclass(frozen=True)
class TargetColumn:
    """One column of the reconstructed schema that a column map can fill.

    ``level`` is ``event`` (one value per event), ``tracks`` or ``photons`` (one per object);
    ``kind`` is ``float``, ``bool`` (0/1), ``int`` (integral), ``charge`` (+-1) or ``count``;
    ``dimension`` is ``energy`` (GeV), ``length`` (cm), ``angle`` (rad) or ``None``.
    """

    name: str
    level: str
    kind: str
    dtype: str
    dimension: str | None
    required: bool
    default: str

    @property
    def field(self) -> str:
        """Field name inside ``tracks`` / ``photons`` (the name itself for event columns)."""
        return self.name.split(".", 1)[1] if "." in self.name else self.name


def _t(
    name: str, level: str, kind: str, dtype: str, dim: str | None, req: bool, default: str
) -> TargetColumn:
    return TargetColumn(name, level, kind, dtype, dim, req, default)


_REQ = "required"
_NOT_AVAILABLE = "absent (not available)"
COLUMNS: dict[str, TargetColumn] = {
    c.name: c
    for c in (
        _t("event", "event", "int", "int64", None, False, "the row number in the file"),
        _t("period", "event", "int", "int32", None, False, "0 (unknown; treated as 2020)"),
        _t("trg_two_track", "event", "bool", "bool", None, True, _REQ),
        _t("trg_bhabha_veto", "event", "bool", "bool", None, False, "false"),
        _t("trg_ecl", "event", "bool", "bool", None, False, "false (no reference trigger)"),
        _t("trg_three_track", "event", "bool", "bool", None, False, _NOT_AVAILABLE),
        _t("trg_single_muon", "event", "bool", "bool", None, False, _NOT_AVAILABLE),
        _t("ecl_energy", "event", "float", "float64", "energy", False, "NaN (unknown)"),
        _t("n_tracks", "event", "count", "int64", None, False, "every slot is a track"),
        _t("n_photons", "event", "count", "int64", None, False, "every slot is a photon"),
        _t("e_photons", "event", "float", "float64", "energy", False, "from the photon list"),
        _t(
            "min_angle_photon_recoil",
            "event",
            "float",
            "float64",
            "angle",
            False,
            "from the photon list",
        ),
        _t("tracks.px", "tracks", "float", "float64", "energy", True, _REQ),
        _t("tracks.py", "tracks", "float", "float64", "energy", True, _REQ),
        _t("tracks.pz", "tracks", "float", "float64", "energy", True, _REQ),
        _t("tracks.charge", "tracks", "charge", "int32", None, True, _REQ),
        _t("tracks.muon_id", "tracks", "float", "float32", None, True, _REQ),
        _t("tracks.electron_id", "tracks", "float", "float32", None, False, "0 (no electron)"),
        _t("tracks.pion_id", "tracks", "float", "float32", None, False, _NOT_AVAILABLE),
        _t("tracks.d0", "tracks", "float", "float32", "length", True, _REQ),
        _t("tracks.z0", "tracks", "float", "float32", "length", True, _REQ),
        _t("photons.e", "photons", "float", "float64", "energy", False, "no photon list"),
        _t("photons.px", "photons", "float", "float64", "energy", False, "no photon list"),
        _t("photons.py", "photons", "float", "float64", "energy", False, "no photon list"),
        _t("photons.pz", "photons", "float", "float64", "energy", False, "no photon list"),
    )
}
"""The columns a map can fill, with their kind, unit and default (``required`` if none).
A column whose default is "absent (not available)" (the tau-tau search's trigger lines and
``tracks.pion_id``) is left out of the events when the map does not fill it, so that nothing
mistakes a missing trigger bit or score for a measured one."""

_SET_BY_ZPRIME = {
    "weight": "1 for every data event",
    "tracks.true_pdg": "0 for data",
    "tracks": "map its fields, e.g. tracks.px",
    "photons": "map its fields, e.g. photons.e",
    "m_recoil2_true": "simulation truth only",
    "punzinet": "the network output, computed by the chain",
    "m_recoil2": "computed from the two tracks",
    "p_recoil": "computed from the two tracks",
    "theta_recoil": "computed from the two tracks",
    "p_recoil_cm": "computed from the two tracks",
    "theta_recoil_cm": "computed from the two tracks",
    "pt_recoil_cm": "computed from the two tracks",
    "m_mumu": "computed from the two tracks",
    "opening_angle_cm": "computed from the two tracks",
    "pt_thrust_cm": "computed from the two tracks",
    "pt_hi_lo_cm": "computed from the two tracks",
    "pl_hi_lo_cm": "computed from the two tracks",
    "pt_mumu_cm": "computed from the two tracks",
}
_PHOTON_FIELDS = ("photons.e", "photons.px", "photons.py", "photons.pz")
_PHOTON_SUMMARY = ("e_photons", "min_angle_photon_recoil")

# units a map may name, per dimension, and zprime's own unit of each (values from hepunits)
_UNITS: dict[str, dict[str, float]] = {
    "energy": {
        "GeV": hepunits.GeV,
        "MeV": hepunits.MeV,
        "keV": hepunits.keV,
        "TeV": hepunits.TeV,
    },
    "length": {
        "cm": hepunits.cm,
        "mm": hepunits.mm,
        "um": hepunits.micrometer,
        "m": hepunits.m,
    },
    "angle": {"rad": hepunits.rad, "mrad": hepunits.mrad, "deg": hepunits.degree},
}
_OUR_UNIT = {"energy": "GeV", "length": "cm", "angle": "rad"}

P_MAX_GEV: float = E_ELECTRON_BEAM + E_POSITRON_BEAM
"""The most momentum (tracks) or energy (photons) a reconstructed object may have, GeV: the
energy of both beams together (11 GeV). No particle of a collision carries more; in the lab a
track's true momentum stays below the electron beam's 7 GeV, and the margin above it is left to
the measurement (a 7 GeV track measured 57% too high). A value above this is corrupt data or
a wrong unit."""


# ---------------------------------------------------------------------------------------------
# the map file


class _MapModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tree: str | None = None
    columns: dict[str, str | list[str]]
    units: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, bool | int | float] = Field(default_factory=dict)
    luminosity_fb: float | None = Field(None, gt=0)
    description: str | None = None


@dataclass
class ColumnMap:
    """A parsed and checked column map (see :func:`load_column_map`).

    ``columns`` maps our column to the file's branch or expression (a string) or, for
    ``tracks.*`` / ``photons.*`` in the per-slot layout, to one string per slot.
    """

    source: str
    columns: dict[str, str | list[str]]
    tree: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    constants: dict[str, bool | int | float] = field(default_factory=dict)
    luminosity_fb: float | None = None
    description: str | None = None

    def slots(self, level: str) -> int | None:
        """Number of per-slot branches of ``tracks``/``photons``; ``None`` for variable length."""
        for name, value in self.columns.items():
            if name.startswith(level + ".") and isinstance(value, list):
                return len(value)
        return None

    @property
    def has_photon_list(self) -> bool:
        """Whether the map gives the photon candidates (else the two photon-veto variables)."""
        return any(name in self.columns for name in _PHOTON_FIELDS)

    def factor(self, target: str) -> float:
        """Multiplicative factor from the file's unit to ours for ``target`` (1 if none)."""
        unit = self.units.get(target)
        if unit is None:
            return 1.0
        dim = COLUMNS[target].dimension
        assert dim is not None
        return _UNITS[dim][unit] / _UNITS[dim][_OUR_UNIT[dim]]

    def to_dict(self) -> dict[str, Any]:
        """The map as plain types (for the output file's metadata)."""
        return {
            "tree": self.tree,
            "columns": self.columns,
            "units": self.units,
            "constants": self.constants,
            "luminosity_fb": self.luminosity_fb,
        }


def _check_map(m: ColumnMap) -> None:
    src = m.source
    for name in [*m.columns, *m.constants]:
        if name in _SET_BY_ZPRIME:
            raise ConfigError(f"{src}: column '{name}' cannot be mapped ({_SET_BY_ZPRIME[name]})")
        if name not in COLUMNS:
            known = ", ".join(COLUMNS)
            raise ConfigError(f"{src}: unknown column '{name}' (columns: {known})")
    for name in m.columns:
        if name in m.constants:
            raise ConfigError(f"{src}: column '{name}' is both in columns and in constants")
    for name, value in m.columns.items():
        target = COLUMNS[name]
        if isinstance(value, list):
            if target.level == "event":
                raise ConfigError(
                    f"{src}: column '{name}' takes one branch, not a list of per-slot branches"
                )
            if not value:
                raise ConfigError(f"{src}: column '{name}' has an empty list of branches")
        elif not value.strip():
            raise ConfigError(f"{src}: column '{name}' maps to an empty branch name")
    for level in ("tracks", "photons"):
        layouts = {
            (len(v) if isinstance(v, list) else None)
            for k, v in m.columns.items()
            if k.startswith(level + ".")
        }
        if len(layouts) > 1:
            raise ConfigError(
                f"{src}: the {level} columns mix per-slot lists and variable-length branches, "
                "or lists of different lengths"
            )
        count = "n_" + level
        if count in m.columns and m.slots(level) is None:
            raise ConfigError(
                f"{src}: column '{count}' is only for per-slot {level} branches (with "
                "variable-length branches the count is the list length)"
            )
    for name in ("tracks.px", "tracks.py", "tracks.pz"):
        if name not in m.columns:
            raise ConfigError(f"{src}: required column '{name}' is not mapped to a branch")
    for name, target in COLUMNS.items():
        if target.required and name not in m.columns and name not in m.constants:
            raise ConfigError(f"{src}: required column '{name}' is not mapped")
    photon_cols = [c for c in _PHOTON_FIELDS if c in m.columns]
    summary = [c for c in _PHOTON_SUMMARY if c in m.columns or c in m.constants]
    if photon_cols:
        missing = [c for c in _PHOTON_FIELDS if c not in m.columns]
        if missing:
            raise ConfigError(
                f"{src}: the photon list needs all of photons.e/px/py/pz (missing '{missing[0]}')"
            )
        if summary:
            raise ConfigError(
                f"{src}: '{summary[0]}' is computed from the photon list; map either the "
                "photons or e_photons and min_angle_photon_recoil"
            )
    elif len(summary) < 2:
        raise ConfigError(
            f"{src}: no photon information: map photons.e/px/py/pz (the photon candidates), or "
            "e_photons and min_angle_photon_recoil if the ntuple has the photon-veto variables "
            "only"
        )
    elif "n_photons" in m.columns:
        raise ConfigError(f"{src}: 'n_photons' is mapped but there is no photon list")
    for name, unit in m.units.items():
        if name not in m.columns:
            raise ConfigError(f"{src}: units: '{name}' is not a mapped column")
        dim = COLUMNS[name].dimension
        if dim is None:
            raise ConfigError(f"{src}: units: column '{name}' has no unit")
        if unit not in _UNITS[dim]:
            raise ConfigError(
                f"{src}: units: '{unit}' is not a unit of {dim} for '{name}' "
                f"(units: {', '.join(_UNITS[dim])})"
            )
    for name, value in m.constants.items():
        target = COLUMNS[name]
        if target.kind == "count":
            raise ConfigError(f"{src}: constants: '{name}' must be a column")
        bad = _bad_values(np.asarray([float(value)]), target)
        if bad is not None:
            raise ConfigError(f"{src}: constants: '{name}' = {value!r}: {bad[1]}")


def load_column_map(path: str | Path) -> ColumnMap:
    """Read and check a column map (YAML).

    Raises
    ------
    ConfigError
        Missing or unreadable file, unknown or unmappable column, bad unit or constant,
        inconsistent per-slot layout, a required column not mapped, no photon information.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: column map not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a column map must be a mapping with a 'columns' section")
    try:
        model = _MapModel.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, str(p))) from None
    cmap = ColumnMap(
        source=str(p),
        columns=dict(model.columns),
        tree=model.tree,
        units=dict(model.units),
        constants=dict(model.constants),
        luminosity_fb=model.luminosity_fb,
        description=model.description,
    )
    _check_map(cmap)
    return cmap


# ---------------------------------------------------------------------------------------------
# expressions of branches


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": np.abs,
    "sqrt": np.sqrt,
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "arctan2": np.arctan2,
    "hypot": np.hypot,
    "minimum": np.minimum,
    "maximum": np.maximum,
    "isnan": np.isnan,
    "isfinite": np.isfinite,
    "where": ak.where,
    "nan_to_num": ak.nan_to_num,
}
_CONSTANTS = {"pi": math.pi}
_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Attribute,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


class _Expression:
    """A branch name or an arithmetic expression of branches (numpy-style functions).

    Names resolve to branches of the file (dotted names such as ``tracks.px`` included), then
    to the functions in ``_FUNCTIONS`` and ``pi``. No attribute access other than a branch
    name, no subscripts, no keywords: evaluated on awkward arrays with no builtins.
    """

    def __init__(self, text: str, target: str, names: set[str], where: str, map_src: str):
        self.text = text.strip()
        self.target = target
        if self.text in names:
            self.branches = [self.text]
            self._code = None
            return
        not_found = InputError(
            f"{where}: branch '{self.text}' (mapped to '{target}') not found, nor an "
            "arithmetic expression of its branches"
        )
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError:
            raise not_found from None
        branches: list[str] = []

        class Rewrite(ast.NodeTransformer):
            def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
                dotted = _dotted(node)
                if dotted is not None and dotted in names:
                    return _use(dotted, node)
                raise InputError(
                    f"{where}: branch '{dotted or ast.unparse(node)}' (mapped to '{target}') "
                    "not found"
                )

            def visit_Name(self, node: ast.Name) -> ast.AST:
                if node.id in names:
                    return _use(node.id, node)
                if node.id in _CONSTANTS:
                    return node
                raise InputError(f"{where}: branch '{node.id}' (mapped to '{target}') not found")

            def visit_Call(self, node: ast.Call) -> ast.AST:
                if (
                    not isinstance(node.func, ast.Name)
                    or node.func.id not in _FUNCTIONS
                    or node.keywords
                ):
                    raise ConfigError(
                        f"{map_src}: '{target}': '{ast.unparse(node)}' calls an unknown "
                        f"function (functions: {', '.join(_FUNCTIONS)})"
                    )
                node.args = [self.visit(a) for a in node.args]
                return node

        def _use(branch: str, node: ast.AST) -> ast.Name:
            if branch not in branches:
                branches.append(branch)
            return ast.copy_location(ast.Name(f"_b{branches.index(branch)}", ast.Load()), node)

        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED) or (
                isinstance(node, ast.Constant) and not isinstance(node.value, int | float)
            ):
                raise not_found
        rewritten = ast.fix_missing_locations(Rewrite().visit(tree))
        self.branches = branches
        self._code = compile(rewritten, f"<{target}>", "eval")

    def evaluate(self, data: Mapping[str, Any]) -> Any:
        if self._code is None:
            return data[self.text]
        env: dict[str, Any] = {"__builtins__": {}, **_FUNCTIONS, **_CONSTANTS}
        env.update({f"_b{i}": data[b] for i, b in enumerate(self.branches)})
        with np.errstate(all="ignore"):
            # the AST was checked: arithmetic, whitelisted functions and branches only
            return eval(self._code, env)


# ---------------------------------------------------------------------------------------------
# data files


def _root_objects(f: Any) -> dict[str, str]:
    """TTrees and RNTuples of an open ROOT file: name (no cycle) -> class name."""
    out: dict[str, str] = {}
    for key, cls in f.classnames(recursive=True).items():
        if cls == "TTree" or cls.endswith("RNTuple"):
            out.setdefault(key.rsplit(";", 1)[0], cls)
    return out


class _Source:
    """One ROOT tree or Parquet file: its branch names and batches of branches."""

    def __init__(self, path: Path, tree: str | None, map_src: str) -> None:
        self.path = path
        self.where = str(path)
        self.tree: str | None = None
        self._file: Any = None
        suffix = path.suffix.lower()
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        if suffix == ".root":
            self.format = "root"
            self._open_root(tree, map_src)
        elif suffix in (".parquet", ".pq"):
            self.format = "parquet"
            self._open_parquet()
        else:
            raise InputError(f"{path}: unsupported data format '{suffix}' (.root or .parquet)")

    def _open_root(self, tree: str | None, map_src: str) -> None:
        import uproot  # lazy: heavy (~0.3 s to import), needed only for ROOT input

        path = self.path
        try:
            self._file = uproot.open(path)
            objects = _root_objects(self._file)
        except Exception as err:  # uproot raises many types for a file that is not ROOT
            raise InputError(
                f"{path}: not a readable ROOT file ({err.__class__.__name__})"
            ) from None
        if tree is None:
            if len(objects) != 1:
                listed = ", ".join(objects) or "none"
                self.close()
                raise ConfigError(
                    f"{map_src}: name the tree of {path} with 'tree:' (trees: {listed})"
                )
            tree = next(iter(objects))
        if tree not in objects:
            listed = ", ".join(objects) or "none"
            self.close()
            raise InputError(f"{path}: no tree '{tree}' (trees: {listed})")
        self.tree = tree
        self._tree = self._file[tree]
        self.where = f"{path}:{tree}"
        self.names = set(self._tree.keys(recursive=True))
        self.n_entries = int(self._tree.num_entries)

    def _open_parquet(self) -> None:
        path = self.path
        try:
            self._file = pq.ParquetFile(path, pre_buffer=False)
            schema = self._file.schema_arrow
        except (pa.ArrowException, OSError) as err:
            raise InputError(
                f"{path}: not a readable Parquet file ({err.__class__.__name__})"
            ) from None
        self.names = set()
        for f in schema:
            self.names.add(f.name)
            self.names.update(_nested_names(f.name, f.type))
        self.n_entries = int(self._file.metadata.num_rows)

    def iterate(self, branches: list[str], step: int) -> Iterator[dict[str, ak.Array]]:
        """Batches of the named branches (dotted names: fields of Parquet struct columns)."""
        if self.format == "root":
            wanted = set(branches)
            try:
                for arrays in self._tree.iterate(
                    filter_name=lambda n: n in wanted, step_size=step, library="ak"
                ):
                    yield {b: arrays[b] for b in branches}
            except Exception as err:  # decompression or interpretation failures
                if isinstance(err, (InputError, ConfigError)):
                    raise
                raise InputError(
                    f"{self.where}: cannot read branches ({err.__class__.__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''})"
                ) from None
            return
        tops = sorted({b.split(".", 1)[0] for b in branches})
        try:
            batches = self._file.iter_batches(batch_size=step, columns=tops)
            for batch in batches:
                arrays = ak.from_arrow(batch)
                out = {}
                for b in branches:
                    value = arrays
                    for part in b.split("."):
                        value = value[part]
                    out[b] = value
                yield out
        except (pa.ArrowException, OSError) as err:
            raise InputError(
                f"{self.path}: corrupt Parquet data ({err.__class__.__name__})"
            ) from None

    def close(self) -> None:
        if self.format == "root" and self._file is not None:
            self._file.close()
        self._file = None


def _nested_names(prefix: str, typ: pa.DataType) -> set[str]:
    """Dotted paths of the struct fields in a Parquet column (through lists)."""
    while True:
        if isinstance(typ, pa.ExtensionType):  # awkward's own Arrow extension types
            typ = typ.storage_type
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
            typ = typ.value_type
        else:
            break
    out: set[str] = set()
    if pa.types.is_struct(typ):
        for i in range(typ.num_fields):
            f = typ.field(i)
            name = f"{prefix}.{f.name}"
            out.add(name)
            out.update(_nested_names(name, f.type))
    return out


# ---------------------------------------------------------------------------------------------
# values


def _describe(arr: Any) -> str:
    return str(ak.type(arr).content) if isinstance(arr, ak.Array) else type(arr).__name__


def _as_numeric(value: Any, depth: int, label: str, offset: int) -> ak.Array:
    """``value`` as an awkward array of numbers with list depth ``depth``.

    Raises
    ------
    InputError
        Wrong type (strings, records, other depth) or missing (null) values.
    """
    arr = ak.Array(value) if not isinstance(value, ak.Array) else value
    layout = arr.layout
    if ak.fields(arr) or layout.purelist_parameter("__array__") in ("string", "bytestring"):
        raise InputError(f"{label}: wrong type {_describe(arr)}, expected numbers")
    if layout.purelist_depth != depth:
        want = "one number per event" if depth == 1 else "a list of numbers per event"
        raise InputError(f"{label}: wrong type {_describe(arr)}, expected {want}")
    if "?" in str(ak.type(arr)):  # an option type (Parquet nulls)
        nulls = np.asarray(ak.to_numpy(ak.is_none(arr, axis=0)), dtype=bool)
        if depth == 2:
            inner = ak.fill_none(ak.any(ak.is_none(arr, axis=1), axis=1), True)
            nulls |= np.asarray(ak.to_numpy(inner), dtype=bool)
        bad = np.flatnonzero(nulls)
        if bad.size:
            raise InputError(f"{label}: missing (null) values (first at row {offset + bad[0]})")
        # no nulls: drop the option types (ak.drop_none fails on the 32-bit list offsets that
        # pyarrow writes)
        arr = ak.fill_none(arr, 0.0, axis=None)
    leaf = ak.to_numpy(ak.flatten(arr, axis=None)) if depth == 2 else ak.to_numpy(arr)
    if leaf.dtype.kind not in "biuf":
        raise InputError(f"{label}: wrong type {_describe(arr)}, expected numbers")
    return arr


def _bad_values(values: np.ndarray, target: TargetColumn) -> tuple[int, str] | None:
    """(index, what) of the first value that is NaN/infinite or not allowed for the column's
    kind (0/1 for a trigger bit, +-1 for a charge, integers, counts); ``None`` if all good."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        tests = [(~np.isfinite(v), "NaN or infinite values")]
        if target.kind == "bool":
            tests.append(((v != 0) & (v != 1), "values other than 0 and 1"))
        elif target.kind == "charge":
            tests.append(((v != 1) & (v != -1), "a charge other than +1 and -1"))
        elif target.kind == "int":
            tests.append((v != np.round(v), "values that are not integers"))
        elif target.kind == "count":
            tests.append(((v != np.round(v)) | (v < 0), "values that are not counts"))
    for bad, what in tests:
        idx = np.flatnonzero(bad)
        if idx.size:
            return int(idx[0]), what
    return None


def _check_values(values: np.ndarray, target: TargetColumn, label: str, offset: int) -> None:
    """Raise :class:`InputError` naming the column and the first bad row (flat values)."""
    bad = _bad_values(values, target)
    if bad is not None:
        raise InputError(f"{label} has {bad[1]} (first at row {offset + bad[0]})")


def _cast(values: np.ndarray, target: TargetColumn) -> np.ndarray:
    raw = np.asarray(values)
    if target.kind in ("int", "count") and raw.dtype.kind in "iu":
        return raw.astype(target.dtype)  # exact, whatever the size of the event numbers
    v = raw.astype(np.float64)
    if target.kind == "bool":
        return v != 0
    if target.kind in ("int", "charge", "count"):
        return np.round(v).astype(target.dtype)
    return v.astype(target.dtype)


@dataclass
class _Batch:
    """Values of the mapped columns of one batch, before assembly."""

    n: int
    offset: int
    event: dict[str, np.ndarray] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)  # jagged, or (n, slots) numpy


def _object_arrays(
    batch: _Batch, cmap: ColumnMap, level: str, where: str, labels: dict[str, str]
) -> tuple[Any, np.ndarray]:
    """(record array var * {fields}, keep-mask of events) for ``tracks`` or ``photons``."""
    names = [n for n, t in COLUMNS.items() if t.level == level]
    mapped = [n for n in names if n in batch.objects]
    slots = cmap.slots(level)
    keep = np.ones(batch.n, dtype=bool)
    if slots is None:
        ref = mapped[0]
        counts = np.asarray(ak.to_numpy(ak.num(batch.objects[ref], axis=1)), dtype=np.int64)
        for name in mapped[1:]:
            other = np.asarray(ak.to_numpy(ak.num(batch.objects[name], axis=1)))
            diff = np.flatnonzero(other != counts)
            if diff.size:
                raise InputError(
                    f"{where}: {labels[name]} and {labels[ref]} have different numbers of "
                    f"{level} (first at row {batch.offset + diff[0]})"
                )
        flat = {n: ak.to_numpy(ak.flatten(batch.objects[n], axis=1)) for n in mapped}
        slot_of: np.ndarray | None = None
    else:
        count_name = "n_" + level
        if count_name in batch.event:
            counts = batch.event[count_name].astype(np.int64)
            over = counts > slots
            if over.any() and level == "photons":
                row = batch.offset + int(np.flatnonzero(over)[0])
                raise InputError(
                    f"{where}: {labels[count_name]} exceeds the {slots} photon slots of the map "
                    f"(first at row {row}): photons would be lost from the photon veto"
                )
            # more tracks than slots: the event cannot pass the exactly-two-tracks step and is
            # left out (counted in the metadata)
            keep = ~over
            counts = np.minimum(counts, slots)
        else:
            counts = np.full(batch.n, slots, dtype=np.int64)
        valid = np.arange(slots)[None, :] < counts[:, None]
        valid &= keep[:, None]
        counts = np.where(keep, counts, 0)
        flat = {n: np.asarray(batch.objects[n])[valid] for n in mapped}
        slot_of = np.nonzero(valid)[1]
    # checks on the objects that exist (padding of unused slots is never read)
    event_of = np.repeat(np.arange(batch.n), counts)
    for name in mapped:
        bad_flat = _bad_values(flat[name], COLUMNS[name])
        if bad_flat is not None:
            idx, what = bad_flat
            row = batch.offset + int(event_of[idx])
            raise InputError(f"{where}: {labels[name]} has {what} (first at row {row})")
    total = int(counts.sum())
    fields: dict[str, np.ndarray] = {}
    scaled = {n: np.asarray(flat[n], dtype=np.float64) * cmap.factor(n) for n in mapped}
    _check_momenta(scaled, level, where, labels, batch.offset + event_of, cmap, slot_of)
    for name in names:
        target = COLUMNS[name]
        if name in scaled:
            values = scaled[name]
        elif name in cmap.constants:
            values = np.full(total, float(cmap.constants[name]))
        elif name == "tracks.electron_id":
            values = np.zeros(total)
        else:
            continue
        fields[target.field] = _cast(values, target)
    if level == "tracks":
        fields["true_pdg"] = np.zeros(total, dtype=np.int32)
        order_key = -(fields["px"] ** 2 + fields["py"] ** 2 + fields["pz"] ** 2)
    else:
        order_key = -fields["e"]
    # the schema's order: tracks by decreasing momentum, photons by decreasing energy
    order = np.lexsort((order_key, event_of))
    fields = {k: v[order] for k, v in fields.items()}
    if level == "tracks":
        optional = [k for k in OPTIONAL_TRACK_FIELDS if k in fields]
        fields = {k: fields[k] for k in (*TRACK_FIELDS, *optional)}
    return ak.unflatten(ak.zip(fields), counts), keep


def _check_momenta(
    scaled: dict[str, np.ndarray],
    level: str,
    where: str,
    labels: dict[str, str],
    rows: np.ndarray,
    cmap: ColumnMap,
    slot_of: np.ndarray | None,
) -> None:
    """Refuse objects whose momentum (or photon energy) exceeds :data:`P_MAX_GEV`.

    Parameters
    ----------
    scaled
        Flat values in GeV of the mapped ``tracks.*`` or ``photons.*`` columns.
    level
        ``tracks`` or ``photons``.
    where
        The file (and tree), for the message.
    labels
        Our column -> its description with the user's branch, for the message.
    rows
        The file's row of each flat value.
    cmap
        The column map (the branch of a per-slot column).
    slot_of
        The slot of each flat value in the per-slot layout; ``None`` for variable length.

    Raises
    ------
    InputError
        Naming the file, the column (ours and the user's branch) and the first bad row.
    """
    components = [n for n in (f"{level}.px", f"{level}.py", f"{level}.pz") if n in scaled]
    if not components:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        # |p| in GeV; a corrupt 1e308 overflows to inf here, which the test catches
        p2 = sum(scaled[n] * scaled[n] for n in components)
        too_large = ~(np.sqrt(p2) <= P_MAX_GEV)
        energy = f"{level}.e"
        if energy in scaled:
            too_large |= ~(np.abs(scaled[energy]) <= P_MAX_GEV)
    bad = np.flatnonzero(too_large)
    if not bad.size:
        return
    i = int(bad[0])
    candidates = [*components, *([energy] if energy in scaled else [])]
    name = max(candidates, key=lambda n: abs(float(scaled[n][i])))
    label = labels[name]
    if slot_of is not None and isinstance(cmap.columns.get(name), list):
        label = f"column '{name}' <- '{cmap.columns[name][int(slot_of[i])]}'"
    if name == energy:
        what = "a photon with more energy"
    else:
        p = f"{float(np.sqrt(p2[i])):.4g}"
        shown = (
            f" (|p| = {p} GeV)" if p not in ("inf", f"{abs(float(scaled[name][i])):.4g}") else ""
        )
        what = f"a {level[:-1]} with more momentum{shown}"
    raise InputError(
        f"{where}: {label} = {float(scaled[name][i]):.4g} GeV: {what} than the "
        f"{P_MAX_GEV:g} GeV of both beams together (first at row {int(rows[i])}; a wrong unit "
        "or corrupt values?)"
    )


def _empty_photons(n: int) -> ak.Array:
    flat = ak.zip({f: np.zeros(0) for f in PHOTON_FIELDS})
    return ak.unflatten(flat, np.zeros(n, dtype=np.int64))


def _assemble(batch: _Batch, cmap: ColumnMap, where: str, labels: dict[str, str]) -> ak.Array:
    n = batch.n
    tracks, keep = _object_arrays(batch, cmap, "tracks", where, labels)
    if cmap.has_photon_list:
        photons, _ = _object_arrays(batch, cmap, "photons", where, labels)
    else:
        photons = _empty_photons(n)

    def event_column(name: str) -> np.ndarray:
        target = COLUMNS[name]
        if name in batch.event:
            return np.asarray(batch.event[name])
        if name in cmap.constants:
            return _cast(np.full(n, float(cmap.constants[name])), target)
        defaults: dict[str, Any] = {
            "event": batch.offset + np.arange(n, dtype=np.int64),
            "period": np.zeros(n, dtype=np.int32),
            "trg_bhabha_veto": np.zeros(n, dtype=bool),
            "trg_ecl": np.zeros(n, dtype=bool),
            "ecl_energy": np.full(n, np.nan),
        }
        return defaults[name]

    variables = analysis_variables(tracks, photons)
    n_tracks = np.asarray(ak.to_numpy(ak.num(tracks, axis=1)), dtype=np.int32)
    for name in _PHOTON_SUMMARY:
        if name in batch.event or name in cmap.constants:
            values = event_column(name).astype(np.float64)
            bad = np.flatnonzero(np.isnan(values) & (n_tracks >= 2) & keep)
            if bad.size:
                raise InputError(
                    f"{where}: {labels.get(name, name)} has NaN values in events with two "
                    f"tracks (first at row {batch.offset + bad[0]})"
                )
            variables[name] = values
    n_photons = np.asarray(ak.to_numpy(ak.num(photons, axis=1)), dtype=np.int32)
    columns: dict[str, Any] = {
        "event": event_column("event").astype(np.int64),
        "weight": np.ones(n),
        "period": event_column("period").astype(np.int32),
        "trg_two_track": event_column("trg_two_track").astype(bool),
        "trg_bhabha_veto": event_column("trg_bhabha_veto").astype(bool),
        "trg_ecl": event_column("trg_ecl").astype(bool),
        "ecl_energy": event_column("ecl_energy").astype(np.float64),
        **{
            name: event_column(name).astype(bool)
            for name in OPTIONAL_RECO_COLUMNS
            if name in batch.event or name in cmap.constants
        },
        "n_tracks": n_tracks,
        "n_photons": n_photons,
        "tracks": tracks,
        "photons": photons,
        **variables,
    }
    out = ak.zip(columns, depth_limit=1)
    return out[keep] if not keep.all() else out


def _convert_batch(
    data: Mapping[str, ak.Array],
    n: int,
    offset: int,
    cmap: ColumnMap,
    exprs: dict[str, list[_Expression]],
    where: str,
    labels: dict[str, str],
) -> ak.Array:
    batch = _Batch(n, offset)
    for name, ex_list in exprs.items():
        target = COLUMNS[name]
        label = f"{where}: {labels[name]}"
        if target.level == "event" or cmap.slots(target.level) is not None:
            cols = []
            for ex in ex_list:
                value = ex.evaluate(data)
                if not isinstance(value, ak.Array):
                    value = ak.Array(np.broadcast_to(np.asarray(value, dtype=float), (n,)))
                cols.append(ak.to_numpy(_as_numeric(value, 1, label, offset)))
            if target.level == "event":
                values = np.asarray(cols[0], dtype=np.float64) * cmap.factor(name)
                if name in _PHOTON_SUMMARY:
                    # NaN is allowed where an event has fewer than two tracks (checked later)
                    values = np.where(np.isnan(values), 0.0, values)
                _check_values(values, target, label, offset)
                if name in _PHOTON_SUMMARY:
                    values = np.asarray(cols[0], dtype=np.float64) * cmap.factor(name)
                raw = np.asarray(cols[0])
                exact = target.kind in ("int", "count") and raw.dtype.kind in "iu"
                batch.event[name] = _cast(raw if exact else values, target)
            else:
                batch.objects[name] = np.stack(
                    [np.asarray(c, dtype=np.float64) for c in cols], axis=1
                )
        else:
            value = ex_list[0].evaluate(data)
            arr = _as_numeric(value, 2, label, offset)
            batch.objects[name] = arr
    return _assemble(batch, cmap, where, labels)


def iter_observed(
    file: str | Path,
    columns_yaml: str | Path | ColumnMap,
    *,
    tree: str | None = None,
    batch_size: int = 200_000,
) -> Iterator[tuple[ak.Array, int]]:
    """Batches of observed events in our reconstructed schema, streamed from ``file``.

    Yields ``(events, n_read)``: the converted batch and the number of rows read for it
    (larger than ``len(events)`` when per-slot track branches hold fewer slots than an
    event's ``n_tracks``: such events cannot pass the exactly-two-tracks step and are left
    out). Arguments and errors as :func:`read_observed`.
    """
    cmap = columns_yaml if isinstance(columns_yaml, ColumnMap) else load_column_map(columns_yaml)
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    source = _Source(Path(file), tree if tree is not None else cmap.tree, cmap.source)
    try:
        where = source.where
        exprs: dict[str, list[_Expression]] = {}
        labels: dict[str, str] = {}
        for name, value in cmap.columns.items():
            texts = value if isinstance(value, list) else [value]
            exprs[name] = [_Expression(t, name, source.names, where, cmap.source) for t in texts]
            shown = ", ".join(texts) if isinstance(value, list) else value
            labels[name] = f"column '{name}' <- '{shown}'"
        branches = sorted({b for ex_list in exprs.values() for ex in ex_list for b in ex.branches})
        if not branches:
            raise ConfigError(f"{cmap.source}: the map reads no branch of {where}")
        if source.n_entries == 0:
            raise InputError(f"{where}: no events")
        offset = 0
        for data in source.iterate(branches, batch_size):
            n = len(data[branches[0]])
            events = _convert_batch(data, n, offset, cmap, exprs, where, labels)
            validate_reco_events(events, where)
            yield events, n
            offset += n
    finally:
        source.close()


def check_observed(
    file: str | Path,
    columns_yaml: str | Path | ColumnMap,
    *,
    tree: str | None = None,
    rows: int = 1000,
) -> ColumnMap:
    """Check a user's ntuple and its column map cheaply, before any work that needs them.

    Reads and checks the map, opens the file (and its tree), resolves every mapped branch or
    expression, and converts and checks the first ``rows`` rows only (values, types, momenta);
    the rest of the file is checked when it is converted.

    Parameters
    ----------
    file, columns_yaml, tree
        As :func:`read_observed`.
    rows
        How many rows to convert as a sample (the first batch).

    Returns
    -------
    ColumnMap
        The checked map.

    Raises
    ------
    ConfigError, InputError
        As :func:`read_observed`, for the map, the file, its branches and its first rows.
    """
    cmap = columns_yaml if isinstance(columns_yaml, ColumnMap) else load_column_map(columns_yaml)
    batches = iter_observed(file, cmap, tree=tree, batch_size=rows)
    try:
        next(batches, None)
    finally:
        batches.close()  # closes the file
    return cmap


def read_observed(
    file: str | Path,
    columns_yaml: str | Path | ColumnMap,
    *,
    tree: str | None = None,
) -> ak.Array:
    """Read a user's ntuple as observed data in zprime's reconstructed-event schema.

    Parameters
    ----------
    file
        ``.root`` (a TTree or RNTuple, read with uproot) or ``.parquet``.
    columns_yaml
        The column map (YAML path, or a :class:`ColumnMap`): ``columns`` (our column ->
        the file's branch, expression, or list of per-slot branches), ``tree``, ``units``,
        ``constants``. See ``docs/event-schema.md``, "Real data".
    tree
        The tree in a ROOT file (overrides the map's ``tree``; default: the only one).

    Returns
    -------
    awkward.Array
        The reconstructed schema of ``docs/event-schema.md`` with ``weight`` = 1,
        ``tracks.true_pdg`` = 0 and the analysis variables computed from the tracks and
        photons; events with more tracks than per-slot branches are left out.

    Raises
    ------
    ConfigError
        Problems of the map (see :func:`load_column_map`), a ROOT file with several trees and
        none named, an expression that is not allowed.
    InputError
        Missing or unreadable file, missing tree, a mapped branch not in the file, a wrong
        type, NaN/infinite or out-of-range values (column and first row named).
    """
    parts = [events for events, _ in iter_observed(file, columns_yaml, tree=tree)]
    return parts[0] if len(parts) == 1 else ak.concatenate(parts)


def convert_observed(
    file: str | Path,
    columns_yaml: str | Path | ColumnMap,
    out_path: str | Path,
    *,
    tree: str | None = None,
    batch_size: int = 200_000,
) -> Path:
    """Convert a user's ntuple into a Parquet file of our reconstructed schema (streamed).

    The output (written atomically with :class:`zprime.io.events.EventWriter`) carries the
    metadata ``sample = "data"``, ``is_data = true``, ``stage = "reco"``, the source file and
    tree, the column map, ``n_input_events`` (rows read), ``n_events`` (rows written),
    ``n_left_out_tracks`` (events with more tracks than per-slot branches), the map's
    ``luminosity_fb`` and the provenance. Every batch passes
    :func:`zprime.detector.simulation.validate_reco_events`. Arguments and errors as
    :func:`read_observed`.

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    cmap = columns_yaml if isinstance(columns_yaml, ColumnMap) else load_column_map(columns_yaml)
    out = Path(out_path)
    if out.resolve() == Path(file).resolve():
        raise ConfigError(f"{out}: output would overwrite the input file")
    metadata: dict[str, Any] = {
        "sample": "data",
        "is_data": True,
        "stage": "reco",
        "reco_schema_version": RECO_SCHEMA_VERSION,
        "source": str(file),
        "tree": tree if tree is not None else cmap.tree,
        "column_map_file": cmap.source,
        "column_map": cmap.to_dict(),
        "luminosity_fb": cmap.luminosity_fb,
        "provenance": provenance(None),
    }
    n_read = 0
    with EventWriter(out, metadata) as writer:
        for events, n in iter_observed(file, cmap, tree=tree, batch_size=batch_size):
            writer.write(events)
            n_read += n
        writer.update_metadata(
            n_input_events=n_read,
            n_events=writer.n_events,
            n_left_out_tracks=n_read - writer.n_events,
        )
    return out
