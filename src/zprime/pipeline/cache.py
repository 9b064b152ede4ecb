"""Caching of stages and of the files they make, checked against the files' content.

- A **stage** is cached by a key (:func:`stage_hash`): its name, zprime's version, a digest of
  zprime's whole source, the configuration fields it reads and the chained hashes of the stages
  before it. Its record ``stages/<name>.json`` lists every file of its output (every path of
  the manifest under the run directory; a folder's files one by one) with its size,
  modification time and content digest (:func:`output_files`); on reuse the files are checked
  (:func:`check_outputs`) and the stage runs again when one is missing or changed. The hash a
  stage hands to the stages after it chains its key to the digest of its outputs
  (:func:`outputs_digest`, :func:`chain`): an output rebuilt with other content invalidates
  every later stage, an identical rebuild none.
- A **file** made by the engine (a generated or simulated sample) is cached by a stamp
  ``stages/files/<label>.stamp`` holding a hash of its parameters and of the source of the
  code that made it (:func:`code_digest` of the packages named by the caller, e.g.
  ``generators`` and ``physics`` for an event file), the file's path relative to the run
  directory, its size, modification time and content digest. A re-run stage reuses every file
  whose inputs and code did not change and whose content is the recorded one; a missing or
  damaged file is made again, and so is every file of a stage named in ``--force``
  (``StageContext.force_files``). The stamp is written after the file, so a file whose making
  was interrupted is made again. The hash :func:`cached_file` returns (which a file made from
  this one chains to) covers the file's content.

The check of a file (:func:`check_file`): the size must be the recorded one (a truncated or
extended file fails here); when the modification time is the recorded one too the file is
taken as unchanged without reading it, otherwise its content digest (BLAKE2b, 128 bits, of
every byte, read in 4 MiB chunks) must be the recorded one. This is the fast path of make,
rsync and git: a re-run of the default run (about 18 GB in some 3500 files) costs a ``stat``
per file, not a read of 18 GB; a file written again has a new modification time and is
compared by content, and a copied run directory (new modification times, same content) is
read once and its records refreshed, so that the next run takes the fast path. What it cannot
see is an edit in place that keeps the size and the modification time (restored by hand, or
landing in the same timestamp tick as the stamp's making). The digest of the whole file,
rather than of its first and last MiB, costs one read of each file when it is made (about
1.5 s per GB on one core, next to the minutes it took to make) and is a true content hash:
an identical rebuild is recognised as such, which the chaining above needs.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape

from zprime import __version__
from zprime._util import write_json_atomic
from zprime.analyses.base import StageContext
from zprime.config import Config

__all__ = [
    "GENERATION_CODE",
    "SIMULATION_CODE",
    "cached_file",
    "chain",
    "check_file",
    "check_outputs",
    "code_digest",
    "file_digest",
    "file_entry",
    "is_partial",
    "output_files",
    "outputs_digest",
    "record_file",
    "reusable_file",
    "stage_hash",
]

_PACKAGE = Path(__file__).resolve().parent.parent

#: the source a generated event file depends on (the event writer of ``io/events.py`` and the
#: unweighting of ``io/unweighting.py``, not the run-directory layout or the tables of ``io/``)
GENERATION_CODE: tuple[str, ...] = (
    "generators",
    "physics",
    "io/events.py",
    "io/unweighting.py",
    "_util.py",
    "parallel.py",
)
#: the source a simulated (reconstructed) file depends on
SIMULATION_CODE: tuple[str, ...] = (
    "detector",
    "physics",
    "io/events.py",
    "io/unweighting.py",
    "_util.py",
)

#: bytes read at a time by :func:`file_digest`
_CHUNK = 4 << 20


@functools.cache
def code_digest(*parts: str) -> str:
    """A digest of zprime's source: of the named subpackages / modules (paths relative to the
    package, e.g. ``"generators"``, ``"_util.py"``), or of the whole package without names."""
    roots = [_PACKAGE / p for p in parts] if parts else [_PACKAGE]
    h = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            h.update(path.relative_to(_PACKAGE).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _config_subset(config: Config, keys: Sequence[str]) -> dict[str, Any]:
    data = config.to_dict()
    out: dict[str, Any] = {}
    for key in keys:
        node: Any = data
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def stage_hash(name: str, config: Config, keys: Sequence[str], upstream: Sequence[str]) -> str:
    """The cache key of a stage (see the module docstring); ``upstream``: the chained hashes
    (:func:`chain`) of the stages it reads."""
    return _sha([name, __version__, code_digest(), _config_subset(config, keys), list(upstream)])


def chain(key: str, content: str) -> str:
    """The hash a stage or file hands on: its cache ``key`` chained to the digest of its
    ``content`` (the stages and files made from it are keyed by this)."""
    return _sha([key, content])


# ----------------------------------------------------------------------------- file digests


@functools.lru_cache(maxsize=8192)
def _digest(path: str, size: int, mtime_ns: int, ino: int, ctime_ns: int) -> str:
    """BLAKE2b of the file's bytes; memoised by its ``stat`` (a file recorded by a stage and
    by a stamp in the same run is read once)."""
    h = hashlib.blake2b(digest_size=16)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            h.update(view[:n])
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """The content digest of a file: BLAKE2b (128 bits, hex) of all its bytes, read in 4 MiB
    chunks (about 1.5 s per GB on one core; see the module docstring)."""
    p = Path(path)
    st = p.stat()
    return _digest(str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def file_entry(path: str | Path) -> dict[str, Any]:
    """What a record keeps of a file: ``size`` (bytes), ``mtime_ns`` and ``blake2b``."""
    p = Path(path)
    st = p.stat()
    digest = _digest(str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": digest}


def check_file(path: str | Path, entry: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Check a file against its recorded ``entry`` (:func:`file_entry`).

    Returns
    -------
    problem
        ``None`` when the file is the recorded one, else ``"missing"``, ``"changed"`` or
        ``"not digested"`` (an entry without size and digest: a stamp of an older zprime).
    entry
        The entry, its ``mtime_ns`` updated when only the modification time changed (a copied
        file of the same content): the caller records it so that the next check is a ``stat``.
    """
    p = Path(path)
    recorded = dict(entry)
    try:
        st = p.stat()
    except OSError:
        return "missing", recorded
    if not p.is_file():
        return "missing", recorded
    if not isinstance(recorded.get("size"), int) or not isinstance(recorded.get("blake2b"), str):
        return "not digested", recorded
    if st.st_size != recorded["size"]:
        return "changed", recorded
    if st.st_mtime_ns == recorded.get("mtime_ns"):
        return None, recorded
    if file_digest(p) != recorded["blake2b"]:
        return "changed", recorded
    return None, {**recorded, "mtime_ns": st.st_mtime_ns}


def is_partial(path: Path) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`zprime._util.atomic_path`
    (``.<name>.<random>.part``)."""
    return path.name.startswith(".") and path.name.endswith(".part")


# ----------------------------------------------------------------------------- stage outputs


def _manifest_paths(value: Any) -> Iterator[str]:
    """Every ``{"$path": ...}`` of a manifest (:func:`zprime.io.rundir.to_manifest`)."""
    if isinstance(value, dict):
        if set(value) == {"$path"}:
            yield str(value["$path"])
            return
        for sub in value.values():
            yield from _manifest_paths(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _manifest_paths(sub)


def output_files(manifest: Mapping[str, Any], root: str | Path) -> dict[str, dict[str, Any]]:
    """The files of a stage's output: every path of its ``manifest`` under the run directory
    ``root`` that exists (a folder: every file in it, at any depth, but temporary ones), by path
    relative to ``root``, each with its :func:`file_entry`. Paths outside the run directory (a
    user's data file) are not recorded."""
    base = Path(root)
    files: dict[str, dict[str, Any]] = {}
    for rel in _manifest_paths(dict(manifest)):
        if Path(rel).is_absolute():
            continue
        target = base / rel
        if target.is_file():
            files[Path(rel).as_posix()] = file_entry(target)
        elif target.is_dir():
            for path in sorted(target.rglob("*")):
                if path.is_file() and not is_partial(path):
                    files[path.relative_to(base).as_posix()] = file_entry(path)
    return dict(sorted(files.items()))


def check_outputs(
    root: str | Path, files: Mapping[str, Mapping[str, Any]]
) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """Check every recorded file of a stage (:func:`output_files`) under ``root``.

    Returns
    -------
    problem
        ``None`` when all are as recorded, else the first problem (``"limits.csv missing"``,
        ``"templates_narrow/M1.json changed"``).
    files
        The entries, refreshed as by :func:`check_file` (empty when there is a problem).
    """
    base = Path(root)
    refreshed: dict[str, dict[str, Any]] = {}
    for rel, entry in files.items():
        problem, refreshed[rel] = check_file(
            base / rel, entry if isinstance(entry, Mapping) else {}
        )
        if problem is not None:
            return f"{rel} {problem}", {}
    return None, refreshed


def outputs_digest(manifest: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]]) -> str:
    """The digest of a stage's output: its manifest (values and paths) and the content digest
    of each of its files."""
    return _sha([dict(manifest), {rel: entry.get("blake2b") for rel, entry in files.items()}])


# ----------------------------------------------------------------------------- cached files


def _read_stamp(stamp: Path) -> dict[str, Any]:
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _file_key(params: dict[str, Any], code: Sequence[str]) -> str:
    return _sha([__version__, code_digest(*code), params])


def reusable_file(
    ctx: StageContext, label: str, params: dict[str, Any], *, code: Sequence[str]
) -> tuple[Path, str] | None:
    """The file ``label`` with its hash (as :func:`cached_file` returns them) when it can be
    reused: its stamp records the same parameters and the same source of the packages
    ``code``, the file is as the stamp records it (:func:`check_file`) and the stage is not
    forced (``ctx.force_files``); ``None`` when it must be made (again)."""
    key = _file_key(params, code)
    stamp = ctx.run.file_stamp(label)
    recorded = _read_stamp(stamp) if stamp.is_file() else {}
    if recorded.get("hash") != key or not recorded.get("path"):
        return None
    stored = str(recorded["path"])
    path = ctx.run.root / stored
    problem, entry = check_file(path, recorded)
    if problem is not None:
        ctx.console.print(f"{escape(label)}: {escape(stored)} {problem}, making it again")
        return None
    if ctx.force_files:
        ctx.console.print(f"{escape(label)}: forced, making it again")
        return None
    if entry != recorded:
        write_json_atomic(stamp, entry)
    ctx.console.print(f"[dim]{escape(label)}: up to date[/]")
    return path, chain(key, entry["blake2b"])


def record_file(
    ctx: StageContext, label: str, params: dict[str, Any], path: Path, *, code: Sequence[str]
) -> tuple[Path, str]:
    """Stamp a freshly made file ``label`` (its parameters, code digest, size and content
    digest) and return it with its hash, as :func:`cached_file` does."""
    key = _file_key(params, code)
    path = Path(path)
    try:
        stored = path.resolve().relative_to(ctx.run.root.resolve()).as_posix()
    except ValueError:
        stored = str(path)
    entry = file_entry(path)
    write_json_atomic(ctx.run.file_stamp(label), {"hash": key, "path": stored, **entry})
    return path, chain(key, entry["blake2b"])


def cached_file(
    ctx: StageContext,
    label: str,
    params: dict[str, Any],
    make: Callable[[], Path],
    *,
    code: Sequence[str],
) -> tuple[Path, str]:
    """Make one file with ``make()``, or reuse it (:func:`reusable_file`).

    Returns
    -------
    path
        The file.
    hash
        The stamp's key chained to the file's content digest (:func:`chain`): a file made from
        this one is keyed by it, so that a remade file of other content invalidates it.
    """
    reused = reusable_file(ctx, label, params, code=code)
    if reused is not None:
        return reused
    return record_file(ctx, label, params, Path(make()), code=code)
