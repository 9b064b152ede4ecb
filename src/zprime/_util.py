"""Small shared helpers: atomic file writing, seeds, provenance."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from zprime.errors import InputError

__all__ = [
    "atomic_path",
    "chunk_rng",
    "package_versions",
    "provenance",
    "read_json_object",
    "write_json_atomic",
]

_PACKAGES = (
    "zprime",
    "numpy",
    "scipy",
    "vegas",
    "awkward",
    "pyarrow",
    "uproot",
    "pythia8mc",
    "vector",
    "particle",
    "hepunits",
    "pydantic",
    "hist",
    "mplhep",
    "matplotlib",
    "pyhf",
    "torch",
    "hepdata_lib",
    "dask",
    "distributed",
    "typer",
    "rich",
)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A reader never sees a half-written ``path``: on any exception the temporary file is removed
    and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the result the permissions of an ordinary new file
        umask = os.umask(0)
        os.umask(umask)
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    return Path(path)


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """Read a JSON file that must hold an object; ``what`` names it in the one-line errors.

    Raises
    ------
    InputError
        If the file is missing, unreadable, not JSON, or not a JSON object.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{p}: no such {what} file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: not a readable JSON {what} ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: a {what} must be a JSON object")
    return data


def chunk_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator seeded from a master seed and integer keys (stage, sample, chunk index).

    Results depend only on ``(seed, *keys)``, never on which worker runs the chunk.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), *[int(k) for k in keys]]))


def package_versions() -> dict[str, str]:
    """Installed versions of the packages zprime uses (absent ones are omitted)."""
    out: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _git_commit() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def provenance(config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A provenance record: time, command line, platform, package versions, git commit, config."""
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": _git_commit(),
        "config": config,
        **extra,
    }
