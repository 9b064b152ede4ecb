"""The run directory's lock and its hygiene: a second run on a directory in use fails at once
with one line naming the run that holds it; the lock goes with its holder (an error, an
interrupt, SIGKILL); temporary files a killed run left are removed by the next run, and only by
a run that holds the lock."""

from __future__ import annotations

import fcntl
import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

import zprime.pipeline.stages as pipeline_stages
from zprime.analyses.base import StageContext
from zprime.config import default_config
from zprime.errors import RunLockedError, ZprimeError
from zprime.io.rundir import RunDir, StageOutput
from zprime.pipeline import Stage, run
from zprime.pipeline.stages import lock_run_dir, remove_partial_files

#: a process that holds the lock of the run directory argv[1] until its stdin closes
HOLDER = """
import sys
from pathlib import Path
from zprime.io.rundir import RunDir
from zprime.pipeline.stages import lock_run_dir

with lock_run_dir(RunDir(Path(sys.argv[1]))):
    print("locked", flush=True)
    sys.stdin.read()
"""


@dataclass(frozen=True)
class _Out(StageOutput):
    table: Path


def _write_table(ctx: StageContext) -> _Out:
    ctx.run.xsec.write_text("mass_gev,xsec_fb\n1.0,2.0\n")
    return _Out(ctx.run.xsec)


def _interrupt(ctx: StageContext) -> _Out:
    raise KeyboardInterrupt


def _tiny_run(out: Path) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    run(default_config(), out, console=console, progress=False)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


@pytest.fixture
def tiny_table(monkeypatch: pytest.MonkeyPatch) -> list[Stage]:
    """``run`` with a one-stage table (the list: replace its stage to change it)."""
    table = [Stage("xsec", _write_table, _Out, (), ("signal",))]
    monkeypatch.setattr(pipeline_stages, "stage_table", lambda analysis: tuple(table))
    return table


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of ``tmp_path / "run"``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def test_a_second_run_fails_at_once_naming_the_run_that_holds_the_directory(
    tmp_path: Path, holder: subprocess.Popen[str], tiny_table: list[Stage]
) -> None:
    out = tmp_path / "run"
    with pytest.raises(RunLockedError) as info:
        _tiny_run(out)
    message = str(info.value)
    assert isinstance(info.value, ZprimeError)
    assert "\n" not in message
    assert message.startswith(
        f"{out} is in use by run pid {holder.pid} on {socket.gethostname()} since "
    )
    assert str(out) in message.split("(", 1)[1]  # the holder's command line
    assert not (out / "xsec.csv").exists()  # nothing ran
    recorded = json.loads(RunDir(out).lock.read_text())
    assert recorded["pid"] == holder.pid
    # the holder ends: the directory is free
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    assert "stage xsec: done" in _tiny_run(out)
    assert RunDir(out).lock.read_text() == ""  # released: nobody named


def test_a_killed_holder_leaves_no_stale_lock(
    tmp_path: Path, holder: subprocess.Popen[str], tiny_table: list[Stage]
) -> None:
    out = tmp_path / "run"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert RunDir(out).lock.read_text()  # the killed run's note stays ...
    assert "stage xsec: done" in _tiny_run(out)  # ... but not its lock


def test_flock_is_per_open_file_in_one_process_too(tmp_path: Path) -> None:
    """A second ``open`` of the lock file in the same process conflicts: so does a second
    ``run`` in one process (threads, a notebook)."""
    run_dir = RunDir(tmp_path)
    with lock_run_dir(run_dir) as locked:
        assert locked
        with (
            pytest.raises(RunLockedError, match=f"in use by run pid {os.getpid()} on "),
            lock_run_dir(run_dir),
        ):
            pass  # pragma: no cover
        with open(run_dir.lock, "rb") as fh, pytest.raises(BlockingIOError):
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(run_dir.lock, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released


def test_the_lock_is_released_on_errors_and_interrupts(
    tmp_path: Path, tiny_table: list[Stage]
) -> None:
    out = tmp_path / "run"
    tiny_table[0] = Stage("xsec", _interrupt, _Out, (), ("signal",))
    with pytest.raises(KeyboardInterrupt, match="in stage xsec"):
        _tiny_run(out)
    with lock_run_dir(RunDir(out)) as locked:
        assert locked
    with pytest.raises(ValueError, match="a failed stage"), lock_run_dir(RunDir(out)):
        raise ValueError("a failed stage")
    tiny_table[0] = Stage("xsec", _write_table, _Out, (), ("signal",))
    assert "stage xsec: done" in _tiny_run(out)


def test_stale_part_files_are_removed_on_the_next_run(
    tmp_path: Path, tiny_table: list[Stage]
) -> None:
    out = tmp_path / "run"
    _tiny_run(out)
    stale = [
        out / ".limits.csv.k2j4x8_1.part",
        out / "reco" / "simulation" / ".mumu.parquet.abcd1234.part",
        out / "templates_narrow" / ".M1.0.json.zz9.part",
    ]
    kept = [out / "limits.part", out / "notes.txt", out / ".hidden"]
    for path in [*stale, *kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    log = _tiny_run(out)
    assert "removed 3 temporary file(s) left by an interrupted run" in log
    assert "stage xsec: up to date" in log
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


def test_part_files_stay_while_another_run_holds_the_directory(
    tmp_path: Path, holder: subprocess.Popen[str], tiny_table: list[Stage]
) -> None:
    out = tmp_path / "run"
    writing = out / ".limits.csv.k2j4x8_1.part"
    writing.write_text("being written")
    with pytest.raises(RunLockedError):
        _tiny_run(out)
    assert writing.exists()


def test_remove_partial_files_takes_folders_too(tmp_path: Path) -> None:
    (tmp_path / ".templates.x1.part").mkdir()
    (tmp_path / ".templates.x1.part" / "a.json").write_text("{}")
    (tmp_path / "a.json").write_text("{}")
    assert remove_partial_files(tmp_path) == [tmp_path / ".templates.x1.part"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
