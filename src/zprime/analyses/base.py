"""The seam between the engine and a search: what an analysis supplies and what it is handed.

An analysis (one package under ``zprime.analyses``) subclasses :class:`Analysis`. The pipeline
runs the engine's own stages (``generate``, ``simulate``), which know no search: they ask the
analysis for its signal samples (:meth:`Analysis.signal_samples`), its injected signal and the
fewest tracks an event needs to enter any of its selections; and then runs the analysis's
stages (:attr:`Analysis.stages`), each a function of a :class:`StageContext` returning a frozen
:class:`zprime.io.rundir.StageOutput`. Everything a stage needs from earlier stages comes
through ``ctx.outputs``; every path it writes comes from ``ctx.run`` (:class:`RunDir`).

``docs/architecture.md`` walks through adding a search.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from zprime.config import Config
from zprime.detector.simulation import RecoSkim
from zprime.io.rundir import RunDir, StageOutput

__all__ = [
    "Analysis",
    "AnalysisStage",
    "GenerateOutput",
    "SignalSample",
    "SimulateOutput",
    "StageContext",
    "XsecOutput",
]


# ----------------------------------------------------------------------------- engine outputs


@dataclass(frozen=True)
class XsecOutput(StageOutput):
    """``xsec``: the signal cross-section table of the run."""

    xsec: Path


@dataclass(frozen=True)
class GenerateOutput(StageOutput):
    """``generate``: generated samples by group (``signal`` by point label, ``backgrounds`` and
    the pseudo-data's ``data`` by sample name) and the cache digest of each (by ``group/key``),
    which the simulation's cache stamps chain to."""

    signal: dict[str, Path]
    backgrounds: dict[str, Path]
    data: dict[str, Path]
    digests: dict[str, str]


@dataclass(frozen=True)
class SimulateOutput(StageOutput):
    """``simulate``: reconstructed samples by group; ``data`` holds the pseudo-data samples
    (data detector), the user's converted data (``observed``) or, for closure runs, the
    simulated backgrounds themselves."""

    signal: dict[str, Path]
    backgrounds: dict[str, Path]
    data: dict[str, Path]


# ----------------------------------------------------------------------------- context


@dataclass
class StageContext:
    """What every stage sees: the configuration, the run directory, the console, where chunked
    work runs (``executor``, ``workers``; :func:`zprime.parallel.map_tasks`) and the outputs of
    the stages run before it (by stage name).

    ``force_files`` is true while a stage named in ``zprime run --force`` runs: its cached files
    (:func:`zprime.pipeline.cache.cached_file`) are made again even when their stamps hold.
    """

    config: Config
    run: RunDir
    console: Console
    executor: Any = None
    workers: int | None = None
    progress: bool = True
    outputs: dict[str, StageOutput] = field(default_factory=dict)
    force_files: bool = False

    def output(self, name: str, kind: type[Any]) -> Any:
        """The output of stage ``name``, checked to be a ``kind``."""
        out = self.outputs[name]
        if not isinstance(out, kind):
            raise TypeError(f"stage {name}: output is {type(out).__name__}, not {kind.__name__}")
        return out


@dataclass(frozen=True)
class AnalysisStage:
    """One stage an analysis supplies: its name, function, output type, the stages it reads and
    the configuration fields it depends on (dotted keys; its cache key)."""

    name: str
    run: Callable[[StageContext], StageOutput]
    output: type[StageOutput]
    upstream: tuple[str, ...]
    config_keys: tuple[str, ...]


@dataclass(frozen=True)
class SignalSample:
    """One signal sample the engine generates for an analysis (and caches by ``params``).

    ``write(out_dir, seed, ctx)`` writes it into ``out_dir`` and returns the file; ``seed`` is
    ``params["seed"]`` for the simulation's sample, the pseudo-data's seed for an injected one.
    """

    label: str
    params: dict[str, Any]
    write: Callable[[Path, int, StageContext], Path]


class Analysis(ABC):
    """What makes a search: subclassed once per package under ``zprime.analyses``."""

    #: registry name (``config.analysis``)
    name: str = ""
    #: events with fewer reconstructed tracks can enter none of the analysis's selections: the
    #: pseudo-data's simulation drops them (the default :meth:`data_skim`)
    min_tracks: int = 0
    #: with ``pseudo_data.source: simulation`` the analysis draws its injected signal from its
    #: own simulated samples; otherwise the engine refuses an injection there
    injects_into_thinned_simulation: bool = False

    def data_skim(self, config: Config) -> RecoSkim:
        """The reconstructed pseudo-data events that the analysis's selections (and control
        samples) can take; the others are dropped as they are simulated. It must not drop an
        event that any of them could select under ``config``. Default: at least
        :attr:`min_tracks` tracks."""
        return RecoSkim(min_tracks=self.min_tracks)

    @abstractmethod
    def xsec(self, ctx: StageContext) -> XsecOutput:
        """Write and print the signal cross sections at the configured points."""

    @abstractmethod
    def signal_samples(self, config: Config) -> list[SignalSample]:
        """The signal samples of the simulation (one per simulated point)."""

    @abstractmethod
    def injected_signal(self, config: Config) -> SignalSample | None:
        """The signal injected into the pseudo-data (an independent sample), if any."""

    @property
    @abstractmethod
    def stages(self) -> tuple[AnalysisStage, ...]:
        """The analysis's stages after ``simulate``, in order."""

    @abstractmethod
    def quick_config(self, data: dict[str, Any], factor: float) -> dict[str, Any]:
        """Reduce the analysis's own configuration sections of ``data`` (a configuration as a
        dict) for a smoke run (``zprime run --quick``); the engine reduces the samples."""
