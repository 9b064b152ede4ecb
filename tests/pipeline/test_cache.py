"""File caching: a stamp records the parameters and a digest of the code that made the file;
either changing makes the file again, and a stamp survives a moved run directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console

import zprime.pipeline.cache as cache
from zprime.analyses.base import StageContext
from zprime.config import default_config
from zprime.io.rundir import RunDir


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
