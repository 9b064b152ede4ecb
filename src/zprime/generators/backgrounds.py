"""Standard Model background samples: chunked, seeded, streamed generation.

Every sample is a named entry of the configuration (``backgrounds.samples.<name>``): the chunk
function that generates it, the process settings, the normalisation (a reference cross section
and its source, or the generator's own), the generator-level filter, the events of the default
run and the chunk size. The Pythia 8 samples (``mumu``, ``tautau``, ``eemumu``,
``eemumu_q2max1``, ``eeee``) are generated here by :func:`chunk`; samples that Pythia lacks
(Bhabha ``ee``, ``eegamma``, ``pipi``) come from :mod:`zprime.generators.qed` through the same
interface.

The chunk interface
-------------------
A chunk function is a module-level function ``chunk(settings, n_generate, seed) -> ChunkResult``
named by the sample's ``generator`` field (``"module:function"``), imported lazily;
:class:`~zprime.generators.chunk.ChunkResult` and :func:`~zprime.generators.chunk.track_filter`
live in :mod:`zprime.generators.chunk` (re-exported here):

- ``settings`` is :func:`sample_settings` (the sample's configuration as a plain dict plus its
  ``name``): ``filter`` (a dict, see :func:`track_filter`), ``normalisation`` (``"reference"``:
  normalise to ``xsec_ref_fb``; ``"generator"``: to the generator's own cross section),
  ``xsec_ref_fb``, ``options`` (generator-specific), and for Pythia ``pythia``,
  ``pythia_forced``, ``tau_channels`` (and ``options.xsec_ref_by_flavour_fb``, per-flavour
  reference cross sections of a q qbar sample).
- ``n_generate`` events are generated with the generator seeded by ``seed`` (an int in
  [1, 900000000], Pythia's range).
- The result's ``events`` are in the generator schema of :mod:`zprime.io.events` (``event`` =
  index of the event among the ``n_generate`` generated ones, ``weight``, ``particles``); only
  events that pass the generator-level filter are returned, and ``events.weight`` sums (in
  expectation) to the cross section in fb of everything generated that passed the filter: each
  kept event carries ``sigma_norm * w_i / sum(w)``, ``w`` the generator's own event weights
  (1 for unweighted events, so ``sigma_norm / n_generate``). ``sigma_fb`` and ``sigma_err_fb`` are
  the generator's own estimate of the cross section of the process as generated (Pythia's
  ``sigmaGen``) and its statistical error.

A module may also define ``describe(settings) -> dict``, called once in the main process before
the chunks run: it validates the settings (raising :class:`~zprime.errors.ConfigError`) and returns
metadata such as ``generator`` (name and version) and ``br_weight``.

The driver :func:`generate_sample` splits a sample into K chunks whose sizes depend only on the
number of events and the chunk size, seeds chunk k from the sample seed and k through
:class:`numpy.random.SeedSequence`, runs the chunks through :func:`zprime.parallel.map_tasks` in
batches of one chunk per worker, rescales the weights by n_k / N (1/K for equal chunks) and streams
each batch, in chunk order, into one Parquet file with :class:`zprime.io.events.EventWriter`. The
file's weights therefore sum to the filtered cross section in fb, the yield at luminosity L is
``weight * L``, memory stays flat with the sample size, and the file does not depend on the number
of workers.

Pythia 8 settings and their pitfalls are those of ``shared/notes/generators-and-detector.md``
section 1 (asymmetric 7 GeV e- on 4 GeV e+ beams with ``Beams:frameType = 2``, so the event
record is in the lab frame with z along the electron beam).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import math
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from zprime._util import chunk_rng, provenance
from zprime.config import Config, default_config
from zprime.errors import ConfigError, InputError, ZprimeError
from zprime.generators.chunk import ChunkResult, track_filter
from zprime.generators.filters import check_against_selection
from zprime.io.events import EventWriter, read_metadata, validate_generator_events
from zprime.parallel import default_workers, local_pool, map_tasks
from zprime.physics.constants import E_ELECTRON_BEAM, E_POSITRON_BEAM

__all__ = [
    "GENERATORS",
    "PYTHIA_BEAM_SETTINGS",
    "ChunkResult",
    "check_filter",
    "chunk",
    "chunk_seed",
    "describe",
    "flavour_xsec",
    "generate_sample",
    "generator_target",
    "luminosity_equivalent",
    "sample_names",
    "sample_seed",
    "sample_settings",
    "sample_size",
    "tau_br_weight",
    "track_filter",
]

PYTHIA_SEED_MAX = 900_000_000
"""Largest seed Pythia accepts (``Random:seed``); 0 would mean a time-based seed."""

PYTHIA_BEAM_SETTINGS: tuple[str, ...] = (
    "Beams:idA = 11",
    "Beams:idB = -11",
    "Beams:frameType = 2",
    f"Beams:eA = {E_ELECTRON_BEAM}",
    f"Beams:eB = {E_POSITRON_BEAM}",
    "Random:setSeed = on",
    "Next:numberCount = 0",
    "Print:quiet = on",
)
"""Beam block shared by the Pythia samples: beam A (e-, 7 GeV) moves along +z, beam B (e+,
4 GeV) along -z, so the event record is in the Belle II lab frame (PRL 130, 231801: 7 GeV e-,
4 GeV e+). The 41.5 mrad half crossing angle of SuperKEKB is not modelled."""

_SEED_STAGE = 4
"""Key of the background stage in the seed derivation (issue 4)."""

_BATCH = 20_000
"""Events per ``Pythia.nextBatch`` call inside a chunk (bounds the memory of the raw record)."""


# --------------------------------------------------------------------------------------------
# configuration


def sample_names(config: Config | None = None) -> list[str]:
    """Names of the configured background samples.

    Parameters
    ----------
    config
        Configuration (default: :func:`zprime.config.default_config`).
    """
    cfg = config if config is not None else default_config()
    return list(cfg.backgrounds.samples)


def sample_settings(name: str, config: Config | None = None) -> dict[str, Any]:
    """The settings a chunk function receives for sample ``name``: its configuration as a dict.

    Raises
    ------
    ConfigError
        If ``name`` is not a configured sample.
    """
    cfg = config if config is not None else default_config()
    samples = cfg.backgrounds.samples
    if name not in samples:
        known = ", ".join(samples) or "none"
        raise ConfigError(f"unknown background sample '{name}' (known: {known})")
    return {"name": name, **samples[name].model_dump(mode="json")}


GENERATORS: dict[str, str] = {
    "pythia": "zprime.generators.backgrounds:chunk",
    "tautau": "zprime.generators.tautau:chunk",
    "mumu": "zprime.generators.mumu:chunk",
    "fourfermion": "zprime.generators.fourfermion:chunk",
}
"""Short generator names a sample may give instead of 'module:function'."""


def generator_target(settings: Mapping[str, Any]) -> str:
    """The 'module:function' of a sample's ``generator`` (short names resolved).

    Raises
    ------
    ConfigError
        For a short name that is not in :data:`GENERATORS`.
    """
    target = str(settings["generator"])
    if ":" in target:
        return target
    if target not in GENERATORS:
        known = ", ".join(GENERATORS)
        raise ConfigError(
            f"backgrounds.samples.{settings['name']}.generator: unknown generator '{target}' "
            f"(known: {known}, or 'module:function')"
        )
    return GENERATORS[target]


def _resolve(settings: Mapping[str, Any]) -> Callable[..., ChunkResult]:
    """Import the chunk function named by ``settings['generator']`` ('module:function')."""
    target = generator_target(settings)
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"background sample '{settings['name']}': generator '{target}' is not available ({err})"
        ) from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ConfigError(
            f"background sample '{settings['name']}': generator '{target}' has no function "
            f"'{func_name}'"
        )
    return fn  # type: ignore[no-any-return]


def _describe(settings: Mapping[str, Any]) -> dict[str, Any]:
    module_name = generator_target(settings).partition(":")[0]
    module = importlib.import_module(module_name)
    hook = getattr(module, "describe", None)
    if hook is None:
        return {"generator": module_name, "br_weight": 1.0}
    info = dict(hook(settings))
    info.setdefault("generator", module_name)
    info.setdefault("br_weight", 1.0)
    return info


# --------------------------------------------------------------------------------------------
# seeds


def sample_seed(master_seed: int, name: str) -> int:
    """Seed of sample ``name`` derived from the master seed of the configuration.

    Depends only on ``(master_seed, name)`` through :func:`zprime._util.chunk_rng`; the name is
    keyed by its CRC-32.
    """
    rng = chunk_rng(master_seed, _SEED_STAGE, zlib.crc32(name.encode()))
    return int(rng.integers(0, 2**62))


def chunk_seed(seed: int, index: int) -> int:
    """Pythia seed in [1, 900000000] of chunk ``index`` of a sample seeded with ``seed``."""
    return int(chunk_rng(seed, index).integers(1, PYTHIA_SEED_MAX + 1))


def _chunk_sizes(n_events: int, chunk_size: int) -> list[int]:
    """Split ``n_events`` into the fewest chunks of at most ``chunk_size``, sizes differing by 1."""
    k = max(1, math.ceil(n_events / chunk_size))
    base, extra = divmod(n_events, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


# --------------------------------------------------------------------------------------------
# Pythia 8


def _pythia_version() -> str:
    return importlib.metadata.version("pythia8mc")


def _make_pythia(settings: Mapping[str, Any], seed: int | None) -> Any:
    """A configured (not initialised) Pythia instance; ConfigError naming a refused setting."""
    import pythia8mc  # lazy: Pythia 8 is heavy and only the Pythia samples need it

    name = settings["name"]
    pythia = pythia8mc.Pythia("", False)
    lines = list(PYTHIA_BEAM_SETTINGS) + list(settings.get("pythia", []))
    channels = settings.get("tau_channels") or []
    if channels:
        lines.append("15:onMode = off")
        lines += ["15:onIfMatch = " + " ".join(str(int(i)) for i in ch) for ch in channels]
    if seed is not None:
        lines.append(f"Random:seed = {int(seed)}")
    for line in lines:
        if not pythia.readString(line):
            raise ConfigError(
                f"background sample '{name}': Pythia refused the setting '{line}' (unknown, or "
                "out of range: values below a database minimum go into pythia_forced)"
            )
    for key, value in (settings.get("pythia_forced") or {}).items():
        if not pythia.settings.isParm(key):
            raise ConfigError(
                f"background sample '{name}': pythia_forced '{key}' is not a Pythia parameter"
            )
        pythia.settings.parm(key, float(value), True)
    return pythia


QUARK_FLAVOURS: dict[str, int] = {"d": 1, "u": 2, "s": 3, "c": 4, "b": 5}
"""PDG codes of the quark flavours a Pythia sample may normalise separately
(``options.xsec_ref_by_flavour_fb``)."""


def flavour_xsec(settings: Mapping[str, Any]) -> dict[int, float] | None:
    """The per-flavour reference cross sections of a Pythia sample, by quark PDG code.

    ``options.xsec_ref_by_flavour_fb`` (``{d: ..., u: ..., s: ..., c: ...}`` in fb) normalises
    the events of each hard-process quark flavour separately to its own reference cross section,
    so that the flavour mix is the reference's, not Pythia's (its gamma* couplings give
    e_q^2 ratios). The values must sum to ``xsec_ref_fb`` (the sample's total, which sizes it).

    Returns
    -------
    dict or None
        ``{pdg: sigma_fb}``; ``None`` when the option is not set.

    Raises
    ------
    ConfigError
        For an unknown option, flavour or value, a normalisation other than ``reference``, or a
        sum that differs from ``xsec_ref_fb``.
    """
    name = settings["name"]
    options = dict(settings.get("options") or {})
    where = f"backgrounds.samples.{name}.options"
    unknown = set(options) - {"xsec_ref_by_flavour_fb"}
    if unknown:
        raise ConfigError(
            f"{where}.{sorted(unknown)[0]}: unknown option of a Pythia sample "
            "(known: xsec_ref_by_flavour_fb)"
        )
    given = options.get("xsec_ref_by_flavour_fb")
    if given is None:
        return None
    if not isinstance(given, Mapping) or not given:
        raise ConfigError(f"{where}.xsec_ref_by_flavour_fb must be a mapping {{quark: fb}}")
    if settings.get("normalisation") != "reference":
        raise ConfigError(f"{where}.xsec_ref_by_flavour_fb needs normalisation 'reference'")
    out: dict[int, float] = {}
    for key, value in given.items():
        if key not in QUARK_FLAVOURS:
            raise ConfigError(
                f"{where}.xsec_ref_by_flavour_fb: unknown quark '{key}' "
                f"(known: {', '.join(QUARK_FLAVOURS)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0.0:
            raise ConfigError(f"{where}.xsec_ref_by_flavour_fb.{key} must be a positive number")
        out[QUARK_FLAVOURS[key]] = float(value)
    total = float(settings["xsec_ref_fb"])
    if not math.isclose(sum(out.values()), total, rel_tol=1e-9):
        raise ConfigError(
            f"{where}.xsec_ref_by_flavour_fb sums to {sum(out.values()):.6g} fb, not "
            f"xsec_ref_fb = {total:.6g} fb"
        )
    return out


def _hard_flavour(batch: ak.Array) -> np.ndarray:
    """|PDG code| of the first outgoing parton of the hardest process (status -23), 0 if none."""
    prt = batch.prt
    hard = prt[prt.status == -23]
    first = ak.fill_none(ak.firsts(abs(hard.id)), 0)
    return ak.to_numpy(first).astype(np.int64)


def tau_br_weight(particle_data: Any) -> float:
    """Fraction of tau pairs that decay through the open channels, read from Pythia.

    The product of the summed branching fractions of the open tau- channels (``onMode`` 1 or 2)
    and of the open tau+ channels (``onMode`` 1 or 3), i.e. (sum of open BR)^2 when both charges
    have the same channels open. Pythia picks among the open channels in proportion to their
    branching fractions, so events of a forced sample carry this weight.

    Parameters
    ----------
    particle_data
        ``pythia.particleData`` of a configured Pythia instance.
    """
    entry = particle_data.particleDataEntryPtr(15)
    minus = plus = 0.0
    for i in range(entry.sizeChannels()):
        channel = entry.channel(i)
        mode = channel.onMode()
        if mode in (1, 2):
            minus += channel.bRatio()
        if mode in (1, 3):
            plus += channel.bRatio()
    return float(minus * plus)


def describe(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the Pythia settings of a sample and describe its generator.

    Returns ``generator`` (Pythia version), ``br_weight`` (the tau branching-fraction weight,
    1 unless ``tau_channels`` forces decays) and ``tau_open_br`` (the open tau- channels as
    ``[[products...], BR]``).

    Raises
    ------
    ConfigError
        If Pythia refuses a setting.
    """
    by_flavour = flavour_xsec(settings)
    pythia = _make_pythia(settings, None)
    weight = tau_br_weight(pythia.particleData) if settings.get("tau_channels") else 1.0
    version = pythia.settings.parm("Pythia:versionNumber")
    info: dict[str, Any] = {
        "generator": f"Pythia {version:.3f} (pythia8mc {_pythia_version()})",
        "br_weight": weight,
    }
    if settings.get("normalisation") == "reference":  # unweighted events of a known sigma
        info["sigma_equivalent_fb"] = float(settings["xsec_ref_fb"]) * weight
    if by_flavour is not None:
        info["xsec_ref_by_flavour_fb"] = {str(k): v for k, v in by_flavour.items()}
    if settings.get("tau_channels"):
        entry = pythia.particleData.particleDataEntryPtr(15)
        open_channels = []
        for i in range(entry.sizeChannels()):
            ch = entry.channel(i)
            if ch.onMode() in (1, 2):
                products = [ch.product(j) for j in range(ch.multiplicity())]
                open_channels.append([products, ch.bRatio()])
        info["tau_open_br"] = open_channels
    return info


def _convert(batch: ak.Array) -> tuple[ak.Array, np.ndarray, np.ndarray]:
    """Final-state particles (status > 0) in the schema, Pythia's event weights and mHat."""
    prt = batch.prt
    final = prt[prt.status > 0]
    mom = final.p
    particles = ak.zip(
        {
            "pdg": ak.values_astype(final.id, np.int32),
            "e": ak.values_astype(mom.e, np.float64),
            "px": ak.values_astype(mom.px, np.float64),
            "py": ak.values_astype(mom.py, np.float64),
            "pz": ak.values_astype(mom.pz, np.float64),
        }
    )
    weights = ak.to_numpy(batch.info.weights[:, 0]).astype(np.float64)
    m_hat = ak.to_numpy(batch.info.mHat).astype(np.float64)
    return particles, weights, m_hat


def chunk(settings: Mapping[str, Any], n_generate: int, seed: int) -> ChunkResult:
    """Generate one chunk of a Pythia 8 sample (the chunk interface).

    Parameters
    ----------
    settings
        :func:`sample_settings` of the sample: ``pythia`` lines, ``pythia_forced`` parameters,
        ``tau_channels``, ``normalisation``, ``xsec_ref_fb``, ``filter``, and the optional
        ``options.xsec_ref_by_flavour_fb`` (:func:`flavour_xsec`: the events of each
        hard-process quark flavour normalised to their own reference cross section, with the
        truth column ``quark_flavour``).
    n_generate
        Events to generate (before the filter).
    seed
        Pythia seed in [1, 900000000].

    Returns
    -------
    ChunkResult
        The kept events (with the optional truth column ``sqrt_s_hat``, Pythia's mHat in GeV:
        the gamma* mass, i.e. the c.m. energy after ISR, for ``mumu``/``tautau``; W(gamma gamma)
        for the two-photon samples),
        ``n_generate``, and Pythia's ``sigmaGen`` and ``sigmaErr`` in fb, read after generation.
        The weights are ``sigma_norm * w_i / sum(w)`` over the generated events, with
        ``sigma_norm`` = (``xsec_ref_fb`` or ``sigmaGen``) x the tau branching-fraction weight and
        ``w`` Pythia's event weight (above 1 where the cross-section maximum was violated, which
        happens for 14% of the two-photon events: ignoring it biases the accepted cross section
        by up to 7%; docs/backgrounds.md).
    """
    if n_generate <= 0:
        raise InputError(f"background sample '{settings['name']}': n_generate must be positive")
    if not 1 <= seed <= PYTHIA_SEED_MAX:
        raise InputError(
            f"background sample '{settings['name']}': seed {seed} outside Pythia's range"
        )
    pythia = _make_pythia(settings, seed)
    if not pythia.init():
        raise ZprimeError(f"background sample '{settings['name']}': Pythia initialisation failed")
    br_weight = tau_br_weight(pythia.particleData) if settings.get("tau_channels") else 1.0
    filt = settings["filter"]
    by_flavour = flavour_xsec(settings)

    kept: list[ak.Array] = []
    weight_sum = 0.0
    flavour_sums: dict[int, float] = dict.fromkeys(by_flavour or {}, 0.0)
    done = 0
    while done < n_generate:
        m = min(_BATCH, n_generate - done)
        batch = pythia.nextBatch(m, 10.0)  # skip failed events, give up after 10 m attempts
        particles, w, m_hat = _convert(batch)
        weight_sum += float(w.sum())
        columns: dict[str, Any] = {}
        if by_flavour is not None:
            flavour = _hard_flavour(batch)
            other = ~np.isin(flavour, list(by_flavour))
            if np.any(other):
                raise ZprimeError(
                    f"background sample '{settings['name']}': hard-process flavour "
                    f"{int(flavour[other][0])} has no entry in options.xsec_ref_by_flavour_fb"
                )
            for code in by_flavour:
                flavour_sums[code] += float(w[flavour == code].sum())
            columns["quark_flavour"] = flavour
        mask = track_filter(particles, filt)
        index = np.flatnonzero(mask)
        kept.append(  # packed: a copy that holds no reference to the full batch
            ak.to_packed(
                ak.zip(
                    {
                        "event": (done + index).astype(np.int64),
                        "weight": w[index],
                        "particles": particles[index],
                        "sqrt_s_hat": m_hat[index],
                        **{key: col[index] for key, col in columns.items()},
                    },
                    depth_limit=1,
                )
            )
        )
        del batch, particles
        done += m
    info = pythia.infoPython()
    sigma_fb = float(info.sigmaGen()) * 1e12  # mb -> fb
    sigma_err_fb = float(info.sigmaErr()) * 1e12
    if settings["normalisation"] == "reference":
        sigma_norm = float(settings["xsec_ref_fb"]) * br_weight
    else:
        sigma_norm = sigma_fb * br_weight
    events = ak.concatenate(kept) if len(kept) > 1 else kept[0]
    if by_flavour is None:
        scale: Any = sigma_norm / weight_sum
    else:  # each flavour to its own reference (the ratio estimator of the chunk)
        flavour = ak.to_numpy(events["quark_flavour"])
        scale = np.zeros(len(flavour))
        for code, sigma_q in by_flavour.items():
            if flavour_sums[code] > 0.0:
                scale[flavour == code] = sigma_q * br_weight / flavour_sums[code]
    events = ak.with_field(events, events["weight"] * scale, "weight")
    return ChunkResult(ak.to_packed(events), int(n_generate), sigma_fb, sigma_err_fb)


# --------------------------------------------------------------------------------------------
# the sample driver


def _provenance() -> dict[str, Any]:
    """Package versions and git commit, without the time stamp (files are reproducible)."""
    record = provenance()
    return {key: record[key] for key in ("python", "packages", "git")}


def check_filter(name: str, config: Config) -> None:
    """Refuse a generator-level filter of sample ``name`` tighter than the selection.

    Raises
    ------
    ConfigError
        Naming the filter field (:func:`zprime.generators.filters.check_against_selection`).
    """
    filt = config.backgrounds.samples[name].filter.model_dump(mode="json")
    detector = config.detector.get()
    check_against_selection(
        filt,
        config.selection,
        tuple(detector.trigger.track_theta_deg),
        f"backgrounds.samples.{name}.filter",
        tracking=detector.tracking,
    )


def sample_size(
    settings: dict[str, Any], luminosity_fb: float, n_events: int | None = None
) -> tuple[int, dict[str, Any]]:
    """Events to generate for a sample, and its generator's description.

    With ``n_events`` given, that; else with ``luminosity_factor`` set,
    ``ceil(luminosity_factor * luminosity_fb * sigma_equivalent_fb)``, the cross section the
    generator's ``describe`` reports (events in the phase space the sample is built for then
    carry ``1 / (luminosity_factor * luminosity_fb)`` expected events each), and the target
    weight ``1 / (luminosity_factor * luminosity_fb)`` is put into ``settings`` for generators
    that unweight toward it; else the sample's ``events``.

    Raises
    ------
    ConfigError
        If ``luminosity_factor`` is set for a generator that cannot size a sample by luminosity.
    InputError
        If the number of events is not positive.
    """
    name = settings["name"]
    info = _describe(settings)
    factor = settings.get("luminosity_factor")
    if n_events is not None:
        n_total = int(n_events)
    elif factor is not None:
        sigma_eq = info.get("sigma_equivalent_fb")
        if sigma_eq is None:
            raise ConfigError(
                f"backgrounds.samples.{name}.luminosity_factor: generator "
                f"'{settings['generator']}' does not know its cross section before generating "
                "(normalisation 'generator'); give 'events' instead"
            )
        settings["target_weight_fb"] = 1.0 / (float(factor) * float(luminosity_fb))
        n_total = math.ceil(float(factor) * float(luminosity_fb) * float(sigma_eq))
    else:
        n_total = int(settings["events"])
    if n_total <= 0:
        raise InputError(f"background sample '{name}': number of events must be positive")
    # a chunk's weights are scaled by n_chunk / n_total in the driver: generators that unweight
    # toward target_weight_fb need the total to set their threshold in chunk units
    settings["n_total"] = n_total
    return n_total, info


def _run_chunk(task: tuple[Mapping[str, Any], int, int]) -> ChunkResult:
    settings, n_generate, seed = task
    return _resolve(settings)(dict(settings), n_generate, seed)


def generate_sample(
    name: str,
    n_events: int | None,
    out_dir: str | Path,
    *,
    config: Config | None = None,
    seed: int | None = None,
    executor: Any = None,
    workers: int | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate background sample ``name`` into ``out_dir/<name>.parquet``.

    Parameters
    ----------
    name
        A configured sample (:func:`sample_names`).
    n_events
        Events to generate before the filter (``None``: the sample's ``events``).
    out_dir
        Output directory.
    config
        Configuration (default: the built-in one).
    seed
        Sample seed; ``None`` derives it from ``config.seed`` and the name (:func:`sample_seed`).
    executor
        ``None`` (a local process pool), ``"serial"`` or any ``concurrent.futures.Executor``.
    workers
        Pool size, and the number of chunks run (and held in memory) at a time.
    chunk_size
        Events per chunk (``None``: the sample's ``chunk_size``). Part of the sample's
        definition: the same seed with another chunk size gives other events.
    progress
        Show a rich progress bar on stderr.

    Returns
    -------
    pathlib.Path
        The written file. Its weights sum to the filtered cross section in fb; its metadata
        hold the sample name, generator, settings, reference and generator cross sections,
        filter efficiency, tau branching-fraction weight, events generated and seeds.

    Raises
    ------
    ConfigError
        Unknown sample, unavailable generator, or settings the generator refuses.
    InputError
        Non-positive ``n_events`` or ``chunk_size``.
    """
    cfg = config if config is not None else default_config()
    settings = sample_settings(name, cfg)
    size = int(settings["chunk_size"] if chunk_size is None else chunk_size)
    if size <= 0:
        raise InputError(f"background sample '{name}': chunk size must be positive")
    check_filter(name, cfg)
    _resolve(settings)
    n_total, info = sample_size(settings, cfg.luminosity_fb, n_events)

    seed_sample = sample_seed(cfg.seed, name) if seed is None else int(seed)
    sizes = _chunk_sizes(n_total, size)
    seeds = [chunk_seed(seed_sample, k) for k in range(len(sizes))]
    tasks = [(settings, n, s) for n, s in zip(sizes, seeds, strict=True)]
    n_workers = 1 if executor == "serial" else max(1, workers or default_workers())

    path = Path(out_dir) / f"{name}.parquet"
    metadata: dict[str, Any] = {
        "sample": name,
        "description": settings["description"],
        "generator": info["generator"],
        "settings": settings,
        "normalisation": settings["normalisation"],
        "xsec_ref_fb": settings["xsec_ref_fb"],
        "xsec_source": settings["xsec_source"],
        "br_weight": info["br_weight"],
        "seed": seed_sample,
        "master_seed": cfg.seed if seed is None else None,
        "chunk_sizes": sizes,
        "chunk_seeds": seeds,
        "provenance": _provenance(),
        **{k: v for k, v in info.items() if k not in ("generator", "br_weight")},
    }

    pool: Any = executor
    own_pool = executor is None and n_workers > 1 and len(sizes) > 1
    if executor is None and not own_pool:
        pool = "serial"

    n_kept = 0
    sum_w = 0.0
    sum_w2 = 0.0
    sigma_chunks: list[float] = []
    sigma_err_chunks: list[float] = []
    offset = 0
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    )
    with contextlib.ExitStack() as stack, EventWriter(path, metadata) as writer, bar:
        if own_pool:
            # one pool for the whole sample (map_tasks would start a new one per batch)
            pool = stack.enter_context(local_pool(n_workers))
        task_id = bar.add_task(f"generate {name}", total=n_total)
        for start in range(0, len(tasks), n_workers):
            batch = tasks[start : start + n_workers]
            results = map_tasks(_run_chunk, batch, executor=pool, progress=False)
            for k, (res, n_k) in enumerate(zip(results, sizes[start:], strict=False)):
                if int(res.n_generated) != n_k:
                    raise ZprimeError(
                        f"background sample '{name}': chunk {start + k} generated "
                        f"{res.n_generated} events, {n_k} were asked for"
                    )
                events = res.events
                sigma_chunks.append(float(res.sigma_fb))
                sigma_err_chunks.append(float(res.sigma_err_fb))
                if len(events):
                    validate_generator_events(events, f"background sample '{name}'")
                    weight = ak.to_numpy(events["weight"]) * (n_k / n_total)
                    events = ak.with_field(events, weight, "weight")
                    events = ak.with_field(events, ak.to_numpy(events["event"]) + offset, "event")
                    writer.write(events)
                    n_kept += len(events)
                    sum_w += float(weight.sum())
                    sum_w2 += float(np.sum(weight**2))
                offset += n_k
                bar.advance(task_id, n_k)
        frac = np.asarray(sizes, dtype=float) / n_total
        sigma_gen = float(np.dot(frac, sigma_chunks))
        sigma_gen_err = float(np.sqrt(np.sum((frac * np.asarray(sigma_err_chunks)) ** 2)))
        if settings["normalisation"] == "reference":
            sigma_norm = float(settings["xsec_ref_fb"]) * float(info["br_weight"])
        else:
            sigma_norm = sigma_gen * float(info["br_weight"])
        writer.update_metadata(
            n_generated=n_total,
            n_events=n_kept,
            filter=settings["filter"],
            filter_efficiency=n_kept / n_total,
            filter_efficiency_weighted=sum_w / sigma_norm,
            sigma_generator_fb=sigma_gen,
            sigma_generator_err_fb=sigma_gen_err,
            sigma_norm_fb=sigma_norm,
            sigma_filtered_fb=sum_w,
            sigma_filtered_err_fb=math.sqrt(sum_w2),
            luminosity_equivalent_fb=n_total / float(info.get("sigma_equivalent_fb", sigma_norm)),
            luminosity_factor=settings.get("luminosity_factor"),
            target_weight_fb=settings.get("target_weight_fb"),
        )
    return path


def luminosity_equivalent(path: str | Path) -> float:
    """The integrated luminosity in fb^-1 a sample file stands for: events generated / sigma.

    ``sigma`` is the normalisation cross section of what was generated (the reference or the
    generator's, times the tau branching-fraction weight of a forced sample).

    Raises
    ------
    InputError
        If the file is not a background sample written by :func:`generate_sample`.
    """
    meta = read_metadata(path)
    try:
        return float(meta["n_generated"]) / float(meta["sigma_norm_fb"])
    except KeyError:
        raise InputError(f"{path}: not a background sample (no 'n_generated' metadata)") from None
