"""Caching: a file's stamp records the parameters, a digest of the code that made the file and
the file's size and content digest; a stage's record lists its output files the same way. A
change to either makes the file (runs the stage) again, a missing or damaged file is made again,
a stage whose rebuilt output differs runs the stages after it again, and a stamp survives a
moved run directory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

import zprime.pipeline.cache as cache
import zprime.pipeline.stages as pipeline_stages
from zprime.analyses.base import StageContext
from zprime.config import default_config
from zprime.io.rundir import RunDir, StageOutput
from zprime.pipeline import Stage, run, run_stage


def _ctx(root: Path) -> StageContext:
    return StageContext(default_config(), RunDir(root), Console(quiet=True))


def test_code_digest_covers_the_named_source() -> None:
    whole = cache.code_digest()
    gen = cache.code_digest(*cache.GENERATION_CODE)
    det = cache.code_digest(*cache.SIMULATION_CODE)
    assert len({whole, gen, det}) == 3
    assert cache.code_digest("generators") != cache.code_digest("detector")
    assert cache.code_digest("_util.py") == cache.code_digest("_util.py")


def test_a_file_is_made_again_when_its_code_or_parameters_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _ctx(tmp_path / "run")
    made: list[int] = []

    def make() -> Path:
        made.append(1)
        target = ctx.run.events / "sample.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(len(made)))
        return target

    code = ("generators",)
    path, first = cache.cached_file(ctx, "events_x", {"n": 1}, make, code=code)
    again, second = cache.cached_file(ctx, "events_x", {"n": 1}, make, code=code)
    assert (again, second, len(made)) == (path, first, 1)
    _, other = cache.cached_file(ctx, "events_x", {"n": 2}, make, code=code)
    assert other != first
    assert len(made) == 2
    # the generator's source changed: the digest of its code differs, the file is made again
    real = cache.code_digest

    def changed(*parts: str) -> str:
        return "changed" if parts == code else real(*parts)

    monkeypatch.setattr(cache, "code_digest", changed)
    _, third = cache.cached_file(ctx, "events_x", {"n": 2}, make, code=code)
    assert third != other
    assert len(made) == 3


def test_a_moved_run_reuses_its_files(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path / "run")

    def make() -> Path:
        target = ctx.run.events / "a.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("a")
        return target

    cache.cached_file(ctx, "events_a", {}, make, code=("io/events.py",))
    shutil.move(tmp_path / "run", tmp_path / "moved")
    moved = _ctx(tmp_path / "moved")

    def fail() -> Path:
        raise AssertionError("the moved run's file should be reused")

    path, _ = cache.cached_file(moved, "events_a", {}, fail, code=("io/events.py",))
    assert path == tmp_path / "moved" / "events" / "a.parquet"


# ----------------------------------------------------------------------------- content checks


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, color_system=None), buf


def _log_ctx(root: Path) -> tuple[StageContext, io.StringIO]:
    console, buf = _console()
    return StageContext(default_config(), RunDir(root), console), buf


def _writer(ctx: StageContext, content: bytes, made: list[int]) -> Callable[[], Path]:
    def make() -> Path:
        made.append(1)
        target = ctx.run.events / "sample.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return target

    return make


def _later(path: Path) -> None:
    """Give ``path`` a later modification time (as a later write would)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_the_file_digest_covers_every_byte(tmp_path: Path) -> None:
    data = os.urandom(9 << 20)  # over two chunks
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert cache.file_digest(path) == hashlib.blake2b(data, digest_size=16).hexdigest()
    entry = cache.file_entry(path)
    assert entry["size"] == len(data)
    assert entry["mtime_ns"] == path.stat().st_mtime_ns
    # a change deep in the middle changes the digest
    path.write_bytes(data[: 5 << 20] + bytes([data[5 << 20] ^ 1]) + data[(5 << 20) + 1 :])
    _later(path)
    assert cache.check_file(path, entry)[0] == "changed"


def test_a_truncated_cached_file_is_made_again(tmp_path: Path) -> None:
    ctx, log = _log_ctx(tmp_path / "run")
    made: list[int] = []
    make = _writer(ctx, b"event data " * 1000, made)
    path, first = cache.cached_file(ctx, "events_x", {"n": 1}, make, code=("generators",))
    stamp = json.loads(ctx.run.file_stamp("events_x").read_text())
    assert stamp["path"] == "events/sample.parquet"
    assert stamp["size"] == 11000
    assert stamp["blake2b"] == cache.file_digest(path)
    with open(path, "r+b") as fh:
        fh.truncate(5000)
    again, second = cache.cached_file(ctx, "events_x", {"n": 1}, make, code=("generators",))
    assert len(made) == 2
    assert "events_x: events/sample.parquet changed, making it again" in log.getvalue()
    assert again.stat().st_size == 11000
    assert second == first  # the same content again: the same hash for what is made from it
    path.unlink()
    cache.cached_file(ctx, "events_x", {"n": 1}, make, code=("generators",))
    assert len(made) == 3
    assert "events/sample.parquet missing, making it again" in log.getvalue()


def test_an_altered_file_of_the_same_size_is_made_again(tmp_path: Path) -> None:
    ctx, log = _log_ctx(tmp_path / "run")
    made: list[int] = []
    make = _writer(ctx, b"a" * 3000, made)
    path, first = cache.cached_file(ctx, "reco_x", {}, make, code=("detector",))
    path.write_bytes(b"b" * 3000)  # a valid file of other content, written later
    _later(path)
    again, second = cache.cached_file(ctx, "reco_x", {}, make, code=("detector",))
    assert len(made) == 2
    assert again.read_bytes() == b"a" * 3000
    assert second == first
    assert "reco_x: events/sample.parquet changed, making it again" in log.getvalue()


def test_a_copied_file_is_reused_after_a_content_check(tmp_path: Path) -> None:
    """Only the modification time changed (``cp`` without ``-p``): the content is compared,
    the file reused, and the stamp refreshed so that the next check is a ``stat``."""
    ctx, _ = _log_ctx(tmp_path / "run")
    made: list[int] = []
    make = _writer(ctx, b"a" * 3000, made)
    path, first = cache.cached_file(ctx, "events_x", {}, make, code=("generators",))
    _later(path)
    again, second = cache.cached_file(ctx, "events_x", {}, make, code=("generators",))
    assert (again, second, len(made)) == (path, first, 1)
    stamp = json.loads(ctx.run.file_stamp("events_x").read_text())
    assert stamp["mtime_ns"] == path.stat().st_mtime_ns


def test_a_stamp_without_a_digest_is_made_again(tmp_path: Path) -> None:
    """A stamp of an older zprime (parameters and path only) does not vouch for the file."""
    ctx, log = _log_ctx(tmp_path / "run")
    made: list[int] = []
    make = _writer(ctx, b"a" * 30, made)
    cache.cached_file(ctx, "events_x", {}, make, code=("generators",))
    stamp = ctx.run.file_stamp("events_x")
    old = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({"hash": old["hash"], "path": old["path"]}))
    cache.cached_file(ctx, "events_x", {}, make, code=("generators",))
    assert len(made) == 2
    assert "not digested, making it again" in log.getvalue()


def test_forced_files_are_made_again(tmp_path: Path) -> None:
    ctx, log = _log_ctx(tmp_path / "run")
    made: list[int] = []
    make = _writer(ctx, b"a" * 30, made)
    cache.cached_file(ctx, "events_x", {}, make, code=("generators",))
    ctx.force_files = True
    cache.cached_file(ctx, "events_x", {}, make, code=("generators",))
    assert len(made) == 2
    assert "events_x: forced, making it again" in log.getvalue()


# ----------------------------------------------------------------------------- stage records


@dataclass(frozen=True)
class _Gen(StageOutput):
    events: Path
    digest: str


@dataclass(frozen=True)
class _Reco(StageOutput):
    reco: Path


@dataclass(frozen=True)
class _Train(StageOutput):
    resolution: Path


@dataclass(frozen=True)
class _Report(StageOutput):
    tables: dict[str, Path]
    templates: Path


class _Chain:
    """A tiny generate -> simulate -> train -> report chain, counting what runs and is made.

    ``vary``: a rebuilt reco file differs from the first (a rebuild that does not reproduce)."""

    def __init__(self, vary: bool = False) -> None:
        self.vary = vary
        self.runs: Counter[str] = Counter()
        self.made: Counter[str] = Counter()

    def generate(self, ctx: StageContext) -> _Gen:
        self.runs["generate"] += 1

        def make() -> Path:
            self.made["events"] += 1
            target = ctx.run.events / "a.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"events " * 500)
            return target

        path, digest = cache.cached_file(ctx, "events_a", {"n": 1}, make, code=("generators",))
        return _Gen(path, digest)

    def simulate(self, ctx: StageContext) -> _Reco:
        self.runs["simulate"] += 1
        gen = ctx.output("generate", _Gen)

        def make() -> Path:
            self.made["reco"] += 1
            target = ctx.run.reco("sim") / "a.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            extra = str(self.made["reco"]).encode() if self.vary else b""
            target.write_bytes(gen.events.read_bytes().upper() + extra)
            return target

        path, _ = cache.cached_file(ctx, "reco_a", {"input": gen.digest}, make, code=("detector",))
        return _Reco(path)

    def train(self, ctx: StageContext) -> _Train:
        self.runs["train"] += 1
        reco = ctx.output("simulate", _Reco).reco
        ctx.run.resolution.write_text(json.dumps({"sigma": len(reco.read_bytes())}))
        return _Train(ctx.run.resolution)

    def report(self, ctx: StageContext) -> _Report:
        self.runs["report"] += 1
        sigma = json.loads(ctx.output("train", _Train).resolution.read_text())["sigma"]
        ctx.run.limits.write_text(f"mass_gev,limit_fb\n1.0,{sigma}\n")
        folder = ctx.run.templates("narrow")
        folder.mkdir(exist_ok=True)
        for mass in (1, 2):
            (folder / f"M{mass}.json").write_text(json.dumps({"mass": mass, "sigma": sigma}))
        return _Report({"csv": ctx.run.limits}, folder)

    def stages(self) -> tuple[Stage, ...]:
        return (
            Stage("generate", self.generate, _Gen, (), ("seed",)),
            Stage("simulate", self.simulate, _Reco, ("generate",), ("detector",)),
            Stage("train", self.train, _Train, ("simulate",), ("punzinet",)),
            Stage("report", self.report, _Report, ("train",), ("report",)),
        )

    def run(self, ctx: StageContext) -> dict[str, str]:
        hashes: dict[str, str] = {}
        for stage in self.stages():
            run_stage(ctx, stage, hashes)
        return hashes


def _ran(log: io.StringIO, mark: int) -> dict[str, str]:
    """Stage name -> "done" / "up to date" in the log written after ``mark``."""
    text = log.getvalue()[mark:]
    found = re.findall(r"stage (\w+): (done|up to date)", text)
    return dict(found)


def test_a_stage_records_its_files_and_an_unchanged_rerun_reuses_everything(
    tmp_path: Path,
) -> None:
    ctx, log = _log_ctx(tmp_path / "run")
    chain = _Chain()
    hashes = chain.run(ctx)
    record = json.loads(ctx.run.stage_record("report").read_text())
    assert sorted(record["files"]) == [
        "limits.csv",
        "templates_narrow/M1.json",
        "templates_narrow/M2.json",
    ]
    entry = record["files"]["limits.csv"]
    assert entry["size"] == ctx.run.limits.stat().st_size
    assert entry["blake2b"] == cache.file_digest(ctx.run.limits)
    assert list(json.loads(ctx.run.stage_record("generate").read_text())["files"]) == [
        "events/a.parquet"
    ]
    assert set(_ran(log, 0).values()) == {"done"}
    records = {p: p.stat().st_mtime_ns for p in ctx.run.stages.rglob("*.json")}
    # a new process, the same run directory: every stage and file reused, no record rewritten
    ctx2, log2 = _log_ctx(tmp_path / "run")
    again = _Chain()
    assert again.run(ctx2) == hashes
    assert _ran(log2, 0) == dict.fromkeys(("generate", "simulate", "train", "report"), "up to date")
    assert not again.made
    assert {p: p.stat().st_mtime_ns for p in ctx.run.stages.rglob("*.json")} == records


def test_an_altered_reco_file_is_made_again_and_the_stages_after_it_run(tmp_path: Path) -> None:
    """A valid reco file of other content: the simulate stage notices, its stamp makes the file
    again; the rebuild differs from the first (``vary``), so every later stage runs again."""
    ctx, log = _log_ctx(tmp_path / "run")
    chain = _Chain(vary=True)
    first = chain.run(ctx)
    reco = ctx.run.reco("sim") / "a.parquet"
    reco.write_bytes(reco.read_bytes().lower())  # same size, other content
    _later(reco)
    mark = len(log.getvalue())
    second = chain.run(ctx)
    text = log.getvalue()[mark:]
    assert "stage simulate: output reco/sim/a.parquet changed, running again" in text
    assert "reco_a: reco/sim/a.parquet changed, making it again" in text
    assert chain.made == Counter(events=1, reco=2)
    assert _ran(log, mark) == {
        "generate": "up to date",
        "simulate": "done",
        "train": "done",
        "report": "done",
    }
    assert second["generate"] == first["generate"]
    assert all(second[s] != first[s] for s in ("simulate", "train", "report"))


def test_an_identical_rebuild_leaves_the_stages_after_it_up_to_date(tmp_path: Path) -> None:
    ctx, log = _log_ctx(tmp_path / "run")
    chain = _Chain()
    first = chain.run(ctx)
    reco = ctx.run.reco("sim") / "a.parquet"
    reco.write_bytes(reco.read_bytes()[:-10])  # truncated
    mark = len(log.getvalue())
    second = chain.run(ctx)
    assert chain.made == Counter(events=1, reco=2)
    assert _ran(log, mark) == {
        "generate": "up to date",
        "simulate": "done",
        "train": "up to date",
        "report": "up to date",
    }
    assert second == first


def test_a_deleted_limits_csv_runs_the_report_again_and_restores_it(tmp_path: Path) -> None:
    ctx, log = _log_ctx(tmp_path / "run")
    chain = _Chain()
    chain.run(ctx)
    before = ctx.run.limits.read_bytes()
    ctx.run.limits.unlink()
    mark = len(log.getvalue())
    chain.run(ctx)
    assert "stage report: output limits.csv missing, running again" in log.getvalue()[mark:]
    assert _ran(log, mark)["report"] == "done"
    assert _ran(log, mark)["train"] == "up to date"
    assert ctx.run.limits.read_bytes() == before


def test_a_truncated_resolution_json_runs_train_again(tmp_path: Path) -> None:
    ctx, log = _log_ctx(tmp_path / "run")
    chain = _Chain()
    first = chain.run(ctx)
    before = ctx.run.resolution.read_bytes()
    ctx.run.resolution.write_bytes(before[:5])
    mark = len(log.getvalue())
    second = chain.run(ctx)
    assert "stage train: output resolution.json changed, running again" in log.getvalue()[mark:]
    assert _ran(log, mark) == {
        "generate": "up to date",
        "simulate": "up to date",
        "train": "done",
        "report": "up to date",  # the same resolution again: the report stands
    }
    assert ctx.run.resolution.read_bytes() == before
    assert second == first


def test_a_changed_file_in_an_output_folder_runs_the_stage_again(tmp_path: Path) -> None:
    ctx, log = _log_ctx(tmp_path / "run")
    chain = _Chain()
    chain.run(ctx)
    template = ctx.run.templates("narrow") / "M2.json"
    template.write_text(template.read_text().replace("2", "3"))
    _later(template)
    mark = len(log.getvalue())
    chain.run(ctx)
    text = log.getvalue()[mark:]
    assert "stage report: output templates_narrow/M2.json changed, running again" in text
    assert json.loads(template.read_text())["mass"] == 2


def test_force_generate_makes_its_files_again_and_runs_every_later_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = _Chain()
    monkeypatch.setattr(pipeline_stages, "stage_table", lambda analysis: chain.stages())
    console, log = _console()
    out = tmp_path / "run"
    run(default_config(), out, console=console, progress=False)
    assert chain.made == Counter(events=1, reco=1)
    mark = len(log.getvalue())
    run(default_config(), out, console=console, progress=False, force=["generate"])
    text = log.getvalue()[mark:]
    assert "events_a: forced, making it again" in text
    assert chain.made == Counter(events=2, reco=1)  # the same events: their reco file stands
    assert chain.runs == Counter(generate=2, simulate=2, train=2, report=2)
    mark = len(log.getvalue())
    run(default_config(), out, console=console, progress=False, force=["train"])
    assert _ran(log, mark) == {
        "generate": "up to date",
        "simulate": "up to date",
        "train": "done",
        "report": "done",
    }
    assert chain.made == Counter(events=2, reco=1)
