"""The generator-level event schema and its Parquet files.

Every generator in zprime (the signal generator, the Pythia 8 backgrounds, our own Bhabha and
pi pi generators) writes the same schema, documented in ``docs/event-schema.md``:

===============  ===============================  ==========================================
column           type                             meaning
===============  ===============================  ==========================================
``event``        int64                            event number, unique within a sample
``weight``       float64                          cross section carried by the event in fb;
                                                  the yield at luminosity L is ``weight * L``
``particles``    var * {pdg: int32, e, px, py,    final-state particles in the lab frame (GeV),
                 pz: float64}                     z along the electron beam; invisible ones
                                                  (neutrinos, Z') included
===============  ===============================  ==========================================

A sample may add scalar truth columns (for the signal ``mass``, the Z' mass in GeV, and
``sqrt_s_hat``, the c.m. energy after initial-state radiation). File-level metadata (sample
name, generator, cross section, seed, schema version) are stored as Parquet key-value metadata
under ``zprime.*`` keys.

Files are written in row groups (one per chunk) through :class:`EventWriter`, which writes to a
temporary file and renames it on success, so that a reader never sees a half-written file and
memory stays flat however large the sample is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zprime._util import atomic_path
from zprime.errors import InputError
from zprime.io.unweighting import unweight_batch

__all__ = [
    "GENERATOR_COLUMNS",
    "PARTICLE_FIELDS",
    "SCHEMA_VERSION",
    "EventWriter",
    "iter_events",
    "make_particles",
    "read_events",
    "read_metadata",
    "transform_file",
    "validate_generator_events",
    "write_events",
]

SCHEMA_VERSION = 1
PARTICLE_FIELDS: tuple[str, ...] = ("pdg", "e", "px", "py", "pz")
GENERATOR_COLUMNS: tuple[str, ...] = ("event", "weight", "particles")
_META_PREFIX = "zprime."


def make_particles(pdg: np.ndarray, p4: np.ndarray, counts: np.ndarray | None = None) -> ak.Array:
    """Build the ragged ``particles`` column.

    Parameters
    ----------
    pdg
        PDG codes, shape ``(n_events, k)`` for a fixed number ``k`` of particles per event, or
        flat ``(n_particles,)`` together with ``counts``.
    p4
        Four-momenta ``(E, px, py, pz)`` in GeV, shape ``pdg.shape + (4,)``.
    counts
        Particles per event when ``pdg`` is flat.

    Returns
    -------
    awkward.Array
        ``var * {pdg, e, px, py, pz}``.
    """
    pdg = np.asarray(pdg)
    p4 = np.asarray(p4, dtype=np.float64)
    if counts is None:
        if pdg.ndim != 2:
            raise ValueError("pdg must be 2D (events, particles) when counts is not given")
        counts = np.full(pdg.shape[0], pdg.shape[1], dtype=np.int64)
        pdg = pdg.reshape(-1)
        p4 = p4.reshape(-1, 4)
    flat = ak.zip(
        {
            "pdg": pdg.astype(np.int32),
            "e": np.ascontiguousarray(p4[:, 0]),
            "px": np.ascontiguousarray(p4[:, 1]),
            "py": np.ascontiguousarray(p4[:, 2]),
            "pz": np.ascontiguousarray(p4[:, 3]),
        }
    )
    return ak.unflatten(flat, np.asarray(counts, dtype=np.int64))


def _check_columns(events: ak.Array, required: Sequence[str], where: str) -> None:
    fields = set(ak.fields(events))
    for col in required:
        if col not in fields:
            raise InputError(f"{where}: missing column '{col}'")


def validate_generator_events(events: ak.Array, where: str = "events") -> None:
    """Check the generator-level schema: required columns present, no NaN, finite weights.

    Raises
    ------
    InputError
        Naming the first missing column or the first column with NaN/inf values.
    """
    _check_columns(events, GENERATOR_COLUMNS, where)
    particle_fields = set(ak.fields(events["particles"]))
    for f in PARTICLE_FIELDS:
        if f not in particle_fields:
            raise InputError(f"{where}: missing column 'particles.{f}'")
    if not np.all(np.isfinite(ak.to_numpy(events["weight"]))):
        raise InputError(f"{where}: column 'weight' has NaN or infinite values")
    for f in ("e", "px", "py", "pz"):
        flat = ak.to_numpy(ak.flatten(events["particles"][f]))
        if not np.all(np.isfinite(flat)):
            raise InputError(f"{where}: column 'particles.{f}' has NaN or infinite values")


def _encode_meta(metadata: Mapping[str, Any]) -> dict[bytes, bytes]:
    out = {b"zprime.schema_version": str(SCHEMA_VERSION).encode()}
    for key, value in metadata.items():
        out[(_META_PREFIX + key).encode()] = json.dumps(value).encode()
    return out


def _leaf_columns(schema: pa.Schema) -> tuple[list[str], list[str]]:
    """Parquet leaf-column paths of ``schema``: the floating-point ones and the others."""
    floats: list[str] = []
    others: list[str] = []

    def walk(name: str, typ: pa.DataType) -> None:
        if pa.types.is_struct(typ):
            for sub in typ:
                walk(f"{name}.{sub.name}", sub.type)
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
            walk(f"{name}.list.element", typ.value_type)
        elif pa.types.is_floating(typ):
            floats.append(name)
        else:
            others.append(name)

    for field in schema:
        walk(field.name, field.type)
    return floats, others


class EventWriter:
    """Stream chunks of events into one Parquet file, atomically.

    Use as a context manager; the file appears at ``path`` only when the block exits without an
    exception::

        with EventWriter(path, metadata={"sample": "signal"}) as w:
            for chunk in chunks:
                w.write(chunk)
    """

    def __init__(self, path: str | Path, metadata: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.metadata = dict(metadata or {})
        self._ctx = atomic_path(self.path)
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self.n_events = 0

    def __enter__(self) -> EventWriter:
        self._tmp = self._ctx.__enter__()
        return self

    def write(self, events: ak.Array) -> None:
        """Append one chunk (an awkward record array) as a row group."""
        if self._tmp is None:
            raise RuntimeError("EventWriter must be used as a context manager")
        table = ak.to_arrow_table(events, extensionarray=False)
        if self._writer is None:
            floats, others = _leaf_columns(table.schema)
            # floating-point columns: byte-stream-split encoding instead of a dictionary (a
            # dictionary of random floats only costs space): lossless, 19% smaller
            # reconstructed files and faster to write and read
            self._writer = pq.ParquetWriter(
                self._tmp,
                table.schema,
                compression="zstd",
                use_dictionary=others or False,
                use_byte_stream_split=floats or False,
            )
        else:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)
        self.n_events += len(events)

    def update_metadata(self, **metadata: Any) -> None:
        """Set metadata known only at the end (e.g. the final cross section)."""
        self.metadata.update(metadata)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._writer is not None:
                if exc_type is None:
                    self._writer.add_key_value_metadata(_encode_meta(self.metadata))
                self._writer.close()
            if exc_type is None and self._writer is None:
                raise InputError(f"{self.path}: no events were written")
        except BaseException as err:
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        self._ctx.__exit__(exc_type, exc, tb)


def write_events(
    path: str | Path,
    events: ak.Array | Iterable[ak.Array],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write events (one array or an iterable of chunks) to ``path`` atomically."""
    chunks = [events] if isinstance(events, ak.Array) else events
    with EventWriter(path, metadata) as w:
        for chunk in chunks:
            w.write(chunk)
    return Path(path)


def _open(path: str | Path) -> pq.ParquetFile:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    try:
        # without pre_buffer=False pyarrow keeps the decoded input and memory grows with the file
        return pq.ParquetFile(p, pre_buffer=False)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{p}: not a readable Parquet file ({err.__class__.__name__})") from None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``zprime.*`` key-value metadata of an event file, decoded."""
    meta = _open(path).metadata.metadata or {}
    out: dict[str, Any] = {}
    for key, value in meta.items():
        k = key.decode()
        if k.startswith(_META_PREFIX):
            out[k[len(_META_PREFIX) :]] = json.loads(value.decode())
    return out


def iter_events(
    path: str | Path, columns: Sequence[str] | None = None, batch_size: int = 200_000
) -> Iterator[ak.Array]:
    """Iterate over an event file in batches (memory stays flat).

    Raises
    ------
    InputError
        If the file is missing or corrupt, or a requested column is absent.
    """
    pf = _open(path)
    names = set(pf.schema_arrow.names)
    if columns is not None:
        for col in columns:
            if col.split(".")[0] not in names:
                raise InputError(f"{path}: missing column '{col}'")
    cols = list(columns) if columns else None
    if pf.metadata.num_rows == 0:
        # a selection may keep nothing: one empty batch with the file's columns, so that every
        # consumer sees the schema and writes an (empty) output of its own
        table = pf.schema_arrow.empty_table()
        yield ak.from_arrow(table.select([c.split(".")[0] for c in cols]) if cols else table)
        return
    try:
        for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
            yield ak.from_arrow(batch)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: corrupt Parquet data ({err.__class__.__name__})") from None


def read_events(path: str | Path, columns: Sequence[str] | None = None) -> ak.Array:
    """Read a whole event file into memory (for small files; use :func:`iter_events` otherwise)."""
    batches = list(iter_events(path, columns))
    return batches[0] if len(batches) == 1 else ak.concatenate(batches)


def transform_file(
    src: str | Path,
    dst: str | Path,
    fn: Callable[[ak.Array], ak.Array],
    *,
    metadata: Mapping[str, Any] | None = None,
    batch_size: int = 200_000,
) -> Path:
    """Stream ``src`` through ``fn`` batch by batch into ``dst`` (atomically).

    The metadata of ``src`` are kept, updated with ``metadata``. An input without events gives
    an output without events (see :func:`iter_events`).
    """
    meta = {**read_metadata(src), **(metadata or {})}
    with EventWriter(dst, meta) as writer:
        for batch in iter_events(src, batch_size=batch_size):
            writer.write(fn(batch))
    return Path(dst)


def unweight_file(
    src: str | Path,
    dst: str | Path,
    weight_fb: float,
    rng: np.random.Generator,
    *,
    max_copies: int = 1,
    batch_size: int = 200_000,
) -> Path:
    """Unweight an event file to the weight ``weight_fb`` (streamed, atomic).

    An event of weight ``w < weight_fb`` is kept with probability ``w / weight_fb`` and given
    ``weight_fb``. A heavier event becomes ``k = floor(w / weight_fb) + Bernoulli(frac)`` copies
    of weight ``weight_fb`` when ``k`` can reach at most ``max_copies`` (``w <= max_copies *
    weight_fb``), and is kept once with its weight otherwise (``max_copies = 1``: every heavier
    event as it is). Every weighted yield stays the same in expectation. With ``weight_fb = 1 /
    L`` a sample generated at several times the luminosity ``L`` becomes one with the statistical
    power of real data at ``L`` (the pseudo-data, ``zprime.stats.pseudodata``); the copies of a
    heavy
    event, passed through the detector each with its own random numbers, behave as the ``k``
    independent events that real data would hold (an event that passes the selection only
    through a rare detector failure then passes with that failure's probability per copy,
    instead of as a clump of ``k`` identical events).

    Parameters
    ----------
    src, dst
        Input and output event files (any stage; a ``weight`` column is required).
    weight_fb
        The target weight, fb (> 0).
    rng
        Random numbers (consumed batch by batch, so the result depends on ``batch_size``).
    max_copies
        Most copies of one event (>= 1).
    batch_size
        Events per batch.

    Returns
    -------
    pathlib.Path
        ``dst``; its metadata are those of ``src`` with ``unweighted_to_fb`` and
        ``unweighted_max_copies`` added.
    """
    # the target and max_copies are checked by unweight_batch, on the first batch (the
    # output is written atomically: nothing is left behind)

    def keep(batch: ak.Array) -> ak.Array:
        return unweight_batch(batch, weight_fb, rng, max_copies)

    return transform_file(
        src,
        dst,
        keep,
        metadata={"unweighted_to_fb": weight_fb, "unweighted_max_copies": max_copies},
        batch_size=batch_size,
    )
