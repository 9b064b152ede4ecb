"""Caching of stages and of the files they make.

- A **stage** is cached by a hash of its name, zprime's version, a digest of zprime's whole
  source, the configuration fields it reads and the hashes of the stages before it
  (:func:`stage_hash`): changing a cut re-runs the stage that reads it and what follows.
- A **file** made by the engine (a generated or simulated sample) is cached by a stamp
  ``stages/files/<label>.stamp`` holding a hash of its parameters and of the source of the
  code that made it (:func:`code_digest` of the packages named by the caller, e.g.
  ``generators`` and ``physics`` for an event file): a re-run stage reuses every file whose
  inputs and code did not change, and a change to a generator regenerates its events. The stamp
  is written after the file, so a file whose making was interrupted is made again; it records
  the file's path relative to the run directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zprime import __version__
from zprime._util import write_json_atomic
from zprime.analyses.base import StageContext
from zprime.config import Config

__all__ = ["GENERATION_CODE", "SIMULATION_CODE", "cached_file", "code_digest", "stage_hash"]

_PACKAGE = Path(__file__).resolve().parent.parent

#: the source a generated event file depends on (the event writer and unweighting of
#: ``io/events.py``, not the run-directory layout or the tables of ``io/``)
GENERATION_CODE: tuple[str, ...] = (
    "generators",
    "physics",
    "io/events.py",
    "_util.py",
    "parallel.py",
)
#: the source a simulated (reconstructed) file depends on
SIMULATION_CODE: tuple[str, ...] = ("detector", "physics", "io/events.py", "_util.py")


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


def stage_hash(name: str, config: Config, keys: Sequence[str], upstream: Sequence[str]) -> str:
    """The cache key of a stage (see the module docstring)."""
    payload = [name, __version__, code_digest(), _config_subset(config, keys), list(upstream)]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def cached_file(
    ctx: StageContext,
    label: str,
    params: dict[str, Any],
    make: Callable[[], Path],
    *,
    code: Sequence[str],
) -> tuple[Path, str]:
    """Make one file with ``make()``, or reuse it when its stamp records the same parameters
    and the same source of the packages ``code``. Returns the path and the stamp's hash (which a
    file made from this one chains to)."""
    digest = hashlib.sha256(
        json.dumps([__version__, code_digest(*code), params], sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    stamp = ctx.run.file_stamp(label)
    if stamp.is_file():
        try:
            recorded = json.loads(stamp.read_text())
        except (OSError, json.JSONDecodeError):
            recorded = {}
        path = ctx.run.root / str(recorded.get("path", ""))
        if recorded.get("hash") == digest and recorded.get("path") and path.is_file():
            ctx.console.print(f"[dim]{label}: up to date[/]")
            return path, digest
    path = Path(make())
    try:
        stored = path.resolve().relative_to(ctx.run.root.resolve()).as_posix()
    except ValueError:
        stored = str(path)
    write_json_atomic(stamp, {"hash": digest, "path": stored})
    return path, digest
