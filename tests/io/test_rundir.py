"""The run-directory layout and the stage-output manifests: paths stored relative to the run
directory, so a copied or moved run reads its own files."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from zprime.io.rundir import RunDir, StageOutput, from_manifest, to_manifest


@dataclass(frozen=True)
class _Out(StageOutput):
    table: Path
    model: Path | None
    files: dict[str, Path]
    summary: dict[str, float]


def test_manifest_round_trip_is_relative_and_relocatable(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    out = _Out(
        table=run.scan_limits("narrow"),
        model=None,
        files={"mumu": run.selected("final") / "mumu.parquet", "user": Path("/data/x.root")},
        summary={"z": 1.5},
    )
    data = json.loads(json.dumps(to_manifest(out, run.root)))
    assert data["table"] == {"$path": "limits_narrow.csv"}
    assert data["files"]["mumu"] == {"$path": "selected/final/mumu.parquet"}
    assert data["files"]["user"] == {"$path": "/data/x.root"}  # outside: kept absolute
    back = from_manifest(_Out, data, run.root)
    assert back == out
    moved = from_manifest(_Out, data, tmp_path / "elsewhere")
    assert moved.table == tmp_path / "elsewhere" / "limits_narrow.csv"
    assert moved.files["user"] == Path("/data/x.root")


def test_manifest_with_other_fields_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="_Out"):
        from_manifest(_Out, {"table": {"$path": "a"}}, tmp_path)


def test_every_path_is_under_the_run(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    paths = [
        getattr(run, name) for name in dir(RunDir) if isinstance(getattr(RunDir, name), property)
    ]
    paths += [run.stage_record("fit"), run.file_stamp("x"), run.reco("simulation")]
    paths += [run.templates("narrow"), run.workspaces("wide"), run.selected("presel")]
    for p in paths:
        assert p.is_relative_to(tmp_path), p
    # a copied run directory is a run directory of its own
    (tmp_path / "limits_narrow.csv").write_text("x")
    copy = tmp_path.parent / "copy"
    shutil.copytree(tmp_path, copy)
    assert RunDir(copy).scan_limits("narrow").read_text() == "x"
