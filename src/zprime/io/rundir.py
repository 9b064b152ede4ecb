"""The run directory: every path a run writes or reads, and the stage-output manifests.

One object, :class:`RunDir`, names every file and folder of a run directory; no other module
joins path components of a run by hand. Stage outputs are frozen dataclasses
(:class:`StageOutput`); :func:`to_manifest` and :func:`from_manifest` turn them into the JSON
recorded in ``stages/<stage>.json`` and back, with every path stored **relative to the run
directory** (paths outside it, such as a user's data file, stay absolute), so that a run
directory can be copied or moved and still be read.

This lives in the base layer, not in ``zprime.pipeline``, because the analyses (which sit
below the pipeline) are handed a :class:`RunDir` to write their stage outputs into.

Layout::

    provenance.json  xsec.csv                    the run; the signal cross sections
    .zprime.lock                                 the lock of a run in progress (who holds it)
    stages/<stage>.json  stages/files/<f>.stamp  stage records; per-file cache stamps
    events/  events_data/                        generated samples (simulation, pseudo-data)
    reco/<detector>/  reco/observed/             reconstructed samples; a user's converted data
    selected/<step>/                             selected samples (presel, final, ...)
    resolution.json  punzinet.pt  selection/     resolution model, network, selection checks
    control/                                     control samples, corrections.json
    data/                                        observed (pseudo-)data, corrected backgrounds
    templates_<label>/  workspaces_<label>/      fit templates and pyhf workspaces per scan
    limits_<label>.csv  significance_<label>.json  systematics_impact.{csv,md}
    limits.csv  limits.parquet  summary.md       the results table (significance.json)
    figures/  projections/  hepdata/             figures, projections, HEPData submission
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["RunDir", "StageOutput", "from_manifest", "to_manifest"]

_PATH_KEY = "$path"


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (nothing is created until a writer asks for it)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def _p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    # ------------------------------------------------------------------ the run and its cache
    @property
    def provenance(self) -> Path:
        """``provenance.json``: configuration, seeds, package versions, git commit."""
        return self._p("provenance.json")

    @property
    def lock(self) -> Path:
        """``.zprime.lock``: locked by the run in progress (``flock``); it names its holder."""
        return self._p(".zprime.lock")

    @property
    def stages(self) -> Path:
        """``stages/``: one record per finished stage."""
        return self._p("stages")

    def stage_record(self, name: str) -> Path:
        """``stages/<name>.json``: the record of a finished stage."""
        return self._p("stages", f"{name}.json")

    def file_stamp(self, label: str) -> Path:
        """``stages/files/<label>.stamp``: the cache stamp of one generated or simulated file."""
        return self._p("stages", "files", f"{label}.stamp")

    # ------------------------------------------------------------------ generic stages
    @property
    def xsec(self) -> Path:
        """``xsec.csv``: the signal cross sections at the configured points."""
        return self._p("xsec.csv")

    @property
    def events(self) -> Path:
        """``events/``: generated samples of the simulation."""
        return self._p("events")

    @property
    def events_data(self) -> Path:
        """``events_data/``: the pseudo-data's samples, generated with their own seeds."""
        return self._p("events_data")

    def reco(self, detector: str) -> Path:
        """``reco/<detector>/``: reconstructed samples of one detector configuration."""
        return self._p("reco", detector)

    @property
    def observed_reco(self) -> Path:
        """``reco/observed/observed.parquet``: a user's data in the reconstructed schema."""
        return self._p("reco", "observed", "observed.parquet")

    # ------------------------------------------------------------------ selection and training
    def selected(self, step: str) -> Path:
        """``selected/<step>/``: selected samples (``presel``, ``final``, ``data_final``, ...)."""
        return self._p("selected", step)

    @property
    def resolution(self) -> Path:
        """``resolution.json``: the measured observable resolution."""
        return self._p("resolution.json")

    @property
    def network(self) -> Path:
        """``punzinet.pt``: the trained selection network."""
        return self._p("punzinet.pt")

    @property
    def selection(self) -> Path:
        """``selection/``: efficiencies, background composition, network checks."""
        return self._p("selection")

    @property
    def control(self) -> Path:
        """``control/``: the control samples and the corrections they give."""
        return self._p("control")

    def photon_veto_reweighted(self, sample: str) -> Path:
        """``control/photon_veto/<sample>.parquet``: a background re-selected without the
        photon veto and re-weighted with the measured photon-veto correction."""
        return self._p("control", "photon_veto", f"{sample}.parquet")

    # ------------------------------------------------------------------ data and templates
    @property
    def data(self) -> Path:
        """``data/``: the observed (pseudo-)data and the backgrounds as the fit sees them."""
        return self._p("data")

    @property
    def observed(self) -> Path:
        """``data/pseudo_data.parquet``: the observed events of the fit."""
        return self._p("data", "pseudo_data.parquet")

    @property
    def pseudo_data_samples(self) -> Path:
        """``data/pseudo_data_samples.json``: what each sample contributed to the pseudo-data."""
        return self._p("data", "pseudo_data_samples.json")

    @property
    def corrected(self) -> Path:
        """``data/corrected/``: the simulated backgrounds with the corrections applied."""
        return self._p("data", "corrected")

    def templates(self, label: str) -> Path:
        """``templates_<label>/``: the fit templates of one scan (``narrow``, ``wide``)."""
        return self._p(f"templates_{label}")

    def workspaces(self, label: str) -> Path:
        """``workspaces_<label>/``: the pyhf workspaces of one scan."""
        return self._p(f"workspaces_{label}")

    def scan_limits(self, label: str) -> Path:
        """``limits_<label>.csv``: limits and significances of one scan."""
        return self._p(f"limits_{label}.csv")

    def significance(self, label: str) -> Path:
        """``significance_<label>.json``: the largest local and the global significance."""
        return self._p(f"significance_{label}.json")

    @property
    def systematics_impact_csv(self) -> Path:
        """``systematics_impact.csv``: what each systematic uncertainty costs."""
        return self._p("systematics_impact.csv")

    @property
    def systematics_impact_md(self) -> Path:
        """``systematics_impact.md``: the same as a table."""
        return self._p("systematics_impact.md")

    # ------------------------------------------------------------------ results
    @property
    def limits(self) -> Path:
        """``limits.csv``: the results table."""
        return self._p("limits.csv")

    @property
    def limits_parquet(self) -> Path:
        """``limits.parquet``: the results table with its metadata."""
        return self._p("limits.parquet")

    @property
    def significance_summary(self) -> Path:
        """``significance.json``: the narrow scan's significance summary, with the results."""
        return self._p("significance.json")

    @property
    def summary(self) -> Path:
        """``summary.md``: the results at a few masses, in words."""
        return self._p("summary.md")

    @property
    def figures(self) -> Path:
        """``figures/``: result and spectrum figures."""
        return self._p("figures")

    @property
    def projections(self) -> Path:
        """``projections/``: expected limits at other luminosities."""
        return self._p("projections")

    @property
    def hepdata(self) -> Path:
        """``hepdata/``: the HEPData submission."""
        return self._p("hepdata")


# ----------------------------------------------------------------------------- manifests


@dataclass(frozen=True)
class StageOutput:
    """Base of the typed, frozen outputs of a stage (one subclass per stage)."""


T = TypeVar("T", bound=StageOutput)


def _encode(value: Any, root: Path) -> Any:
    if isinstance(value, Path):
        try:
            rel = value.resolve().relative_to(root.resolve())
            return {_PATH_KEY: rel.as_posix()}
        except ValueError:  # outside the run directory (a user's file): kept as it is
            return {_PATH_KEY: str(value)}
    if isinstance(value, dict):
        return {str(k): _encode(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v, root) for v in value]
    return value


def _decode(value: Any, root: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {_PATH_KEY}:
            return root / value[_PATH_KEY]
        return {k: _decode(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, root) for v in value]
    return value


def to_manifest(output: StageOutput, root: str | Path) -> dict[str, Any]:
    """The JSON form of a stage output: its fields, paths relative to ``root``."""
    fields = dataclasses.fields(output)
    return {f.name: _encode(getattr(output, f.name), Path(root)) for f in fields}


def from_manifest(cls: type[T], data: dict[str, Any], root: str | Path) -> T:
    """A stage output of type ``cls`` from its JSON form, paths under ``root``.

    Raises ``KeyError`` or ``TypeError`` when ``data`` does not hold the fields of ``cls`` (the
    caller treats the record as stale and runs the stage again).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    if set(data) != names:
        raise KeyError(f"{cls.__name__}: fields {sorted(names)}, record has {sorted(data)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name in names:
        value = _decode(data[name], Path(root))
        if hints.get(name) is tuple or typing.get_origin(hints.get(name)) is tuple:
            value = tuple(value)
        values[name] = value
    return cls(**values)
