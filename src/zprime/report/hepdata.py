"""Writing and validating HEPData submissions: what every analysis's submission shares.

An analysis builds its ``hepdata_lib.Submission`` (its tables and resources);
:func:`write_submission` writes it into a temporary sibling of the output folder, validates the
archive with ``hepdata_validator`` and only then renames it into place (an earlier submission
there is replaced; anything else is refused), so a failed or interrupted write leaves no
half-written submission. :func:`validate_hepdata` checks a submission on disk.

Layout of ``out_dir``::

    out_dir/submission/          submission.yaml, one YAML per table, the resources
    out_dir/submission.tar.gz    the same files in one archive: the file to upload
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zprime.errors import InputError
from zprime.physics.constants import SQRT_S

__all__ = [
    "SUBMISSION_ARCHIVE",
    "SUBMISSION_DIR",
    "dependent_variable",
    "expected_variable",
    "hepdata_lib",
    "new_table",
    "qualify",
    "quiet_hepdata_warnings",
    "read_columns",
    "submit_tables",
    "validate_hepdata",
    "write_submission",
]

SUBMISSION_DIR = "submission"
"""Folder of ``out_dir`` holding ``submission.yaml``, the table YAMLs and the resources."""
SUBMISSION_ARCHIVE = "submission.tar.gz"
"""Archive of ``out_dir`` to upload to HEPData."""

_SUMMARY_RE = re.compile(r"is invalid (HEPData YAML|against schema)|is invalid HEPData")


@contextlib.contextmanager
def quiet_hepdata_warnings() -> Iterator[None]:
    """Silence the warnings that hepdata_lib / hepdata_validator raise on their own.

    hepdata_validator 0.3.6 uses ``jsonschema.RefResolver`` (DeprecationWarning since jsonschema
    4.18) on import and on every validation, and leaves each data file open
    (``yaml.load(open(path))`` in ``FullSubmissionValidator._check_doc``: ResourceWarning);
    hepdata_lib's import adds an "always" filter for its own deprecations. None is ours to
    fix, and none may leak into the caller's filters (pytest runs with ``-W error``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", ResourceWarning)
        yield


def hepdata_lib() -> Any:
    """The hepdata_lib module, imported on first use (it pulls in hist and scipy)."""
    with quiet_hepdata_warnings():
        # lazy: optional heavy dependency, needed only to write a submission (its import warns)
        import hepdata_lib
    return hepdata_lib


def read_columns(
    path: Path, required: Sequence[str], text: Sequence[str] = ("name",)
) -> dict[str, np.ndarray]:
    """The columns of a result CSV as float arrays (those named in ``text`` kept as text).

    Raises
    ------
    InputError
        One line naming the file and, where it applies, the column: a missing file, no rows, a
        missing required column or a required column that is not numeric.
    """
    if not path.is_file():
        raise InputError(f"{path}: not found")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InputError(f"{path}: no rows")
    missing = [c for c in required if c not in rows[0]]
    if missing:
        raise InputError(f"{path}: missing column '{missing[0]}'")
    out: dict[str, np.ndarray] = {}
    for col in rows[0]:
        if col in text:
            out[col] = np.asarray([r[col] for r in rows])
            continue
        try:
            out[col] = np.asarray(
                [math.nan if r[col] in ("", "nan", "None") else float(r[col]) for r in rows]
            )
        except ValueError:
            if col in required:
                raise InputError(f"{path}: column '{col}' is not numeric") from None
    return out


def qualify(var: Any, luminosity_fb: float, level: tuple[str, str] | None = None) -> None:
    """Add the SQRT(S) and LUMINOSITY qualifiers to a ``hepdata_lib.Variable``, and ``level``
    (name, value), e.g. ``("CL", "90%")``, where given."""
    var.add_qualifier("SQRT(S)", f"{SQRT_S:.2f}", "GeV")
    var.add_qualifier("LUMINOSITY", f"{luminosity_fb:g}", "fb$^{-1}$")
    if level is not None:
        var.add_qualifier(*level)


def dependent_variable(
    name: str,
    values: np.ndarray,
    units: str,
    luminosity_fb: float,
    level: tuple[str, str] | None = None,
) -> Any:
    """A dependent, unbinned ``hepdata_lib.Variable`` with its qualifiers (:func:`qualify`)."""
    var = hepdata_lib().Variable(name, is_independent=False, is_binned=False, units=units)
    var.values = np.asarray(values, dtype=float).tolist()
    qualify(var, luminosity_fb, level)
    return var


def new_table(name: str, description: str, location: str, keywords: dict[str, Any]) -> Any:
    """A ``hepdata_lib.Table`` with its description, location and keywords."""
    table = hepdata_lib().Table(name)
    table.description = description
    table.location = location
    table.keywords = keywords
    return table


def submit_tables(
    tables: Sequence[Any], out_dir: Path, *, comment: str, link: tuple[str, str]
) -> Path:
    """A submission of ``tables`` with its comment and one link (text, URL), written and
    validated by :func:`write_submission`; returns ``out_dir / "submission.tar.gz"``."""
    submission = hepdata_lib().Submission()
    submission.comment = comment
    submission.add_link(*link)
    for table in tables:
        submission.add_table(table)
    out = write_submission(submission, out_dir)
    assert out.name == SUBMISSION_ARCHIVE
    return out


def expected_variable(name: str, bands: Sequence[np.ndarray], units: str) -> Any:
    """A dependent ``hepdata_lib.Variable`` of expected limits: the median, with the +-1 and
    +-2 s.d. bands as asymmetric uncertainties. ``bands`` are the -2, -1, median, +1, +2 s.d.
    quantiles."""
    hd = hepdata_lib()
    m2, m1, med, p1, p2 = (np.asarray(b, dtype=float) for b in bands)
    var = hd.Variable(
        name, is_independent=False, is_binned=False, units=units, zero_uncertainties_warning=False
    )
    var.values = med.tolist()
    for label, lo, hi in (("1 s.d.", m1, p1), ("2 s.d.", m2, p2)):
        band = hd.Uncertainty(label, is_symmetric=False)
        band.values = list(zip((lo - med).tolist(), (hi - med).tolist(), strict=True))
        var.add_uncertainty(band)
    return var


def _replace_directory(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` onto ``out_dir``, replacing an earlier submission there."""
    if out_dir.exists():
        is_ours = out_dir.is_dir() and (
            (out_dir / SUBMISSION_DIR / "submission.yaml").is_file()
            or (out_dir / SUBMISSION_ARCHIVE).is_file()
        )
        if not is_ours and not (out_dir.is_dir() and not any(out_dir.iterdir())):
            raise InputError(
                f"{out_dir}: exists and is not a HEPData output folder of zprime; not replaced"
            )
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)


def write_submission(
    submission: Any, out_dir: Path, *, prepare: Callable[[Path], None] | None = None
) -> Path:
    """Write, validate and move a ``hepdata_lib.Submission`` into ``out_dir`` (module docstring).

    Parameters
    ----------
    submission
        The submission with its tables.
    out_dir
        Output folder (replaced if it holds an earlier submission of zprime).
    prepare
        Called with a scratch folder before the files are written (to build resources there
        and attach them); the folder is removed afterwards.

    Returns
    -------
    Path
        ``out_dir / "submission.tar.gz"``.

    Raises
    ------
    InputError
        The validator's first message, or an ``out_dir`` that is not ours.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp.", dir=out_dir.parent)).resolve()
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; out_dir is an ordinary folder
        build = staging / "resources"
        build.mkdir()
        if prepare is not None:
            prepare(build)
        # create_files writes submission.tar.gz into the working directory: run it in staging.
        with contextlib.chdir(staging), quiet_hepdata_warnings():
            submission.create_files(SUBMISSION_DIR, validate=False, remove_old=True)
        shutil.rmtree(build)
        # The archive holds the same files as submission/; validating it once halves the time.
        validate_hepdata(staging / SUBMISSION_ARCHIVE)
        _replace_directory(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / SUBMISSION_ARCHIVE


def _first_message(validator: Any) -> str:
    """First error of a hepdata_validator validator, as one line.

    The validator reports a file as "... is invalid HEPData YAML." before the reason: the
    first message that is not such a summary is returned, the summary only when it is alone.
    """
    messages = [
        (file_name, " ".join(str(item.message).split()))
        for file_name, items in validator.get_messages().items()
        for item in items
        if getattr(item, "level", "error") == "error"
    ]
    if not messages:
        return "rejected without a message"
    specific = [m for m in messages if not _SUMMARY_RE.search(m[1])]
    file_name, text = (specific or messages)[0]
    return f"{Path(file_name).name}: {text}"


def validate_hepdata(out_dir: str | Path) -> None:
    """Validate a HEPData submission with ``hepdata_validator.FullSubmissionValidator``.

    Parameters
    ----------
    out_dir
        An output folder of :func:`write_hepdata` (its ``submission/`` folder and
        ``submission.tar.gz`` are both checked), a folder with a ``submission.yaml``, or an
        archive (``.tar.gz``, ``.tgz``, ``.zip``).

    Raises
    ------
    InputError
        Nothing to validate, or the validator's first message (one line).
    """
    with quiet_hepdata_warnings():
        # lazy: optional heavy validator, only for validation; its import warns (filtered here)
        from hepdata_validator.full_submission_validator import FullSubmissionValidator

    path = Path(out_dir)
    checks: list[tuple[str, Path]] = []
    if path.is_file():
        checks.append(("archive", path))
    elif path.is_dir():
        if (path / "submission.yaml").is_file():
            checks.append(("directory", path))
        if (path / SUBMISSION_DIR / "submission.yaml").is_file():
            checks.append(("directory", path / SUBMISSION_DIR))
        if (path / SUBMISSION_ARCHIVE).is_file():
            checks.append(("archive", path / SUBMISSION_ARCHIVE))
    if not checks:
        raise InputError(f"{path}: no HEPData submission (submission.yaml or {SUBMISSION_ARCHIVE})")
    for kind, target in checks:
        validator = FullSubmissionValidator()
        with quiet_hepdata_warnings():
            valid = validator.validate(**{kind: str(target)})
        if not valid:
            raise InputError(f"{target}: HEPData validation failed: {_first_message(validator)}")
