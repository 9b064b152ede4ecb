"""``zprime run --quick`` end to end through the command line: every output of the report stage
exists and the numbers agree with each other (issue 8)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

BANDS = ("exp_xsec_fb_m2", "exp_xsec_fb_m1", "exp_xsec_fb", "exp_xsec_fb_p1", "exp_xsec_fb_p2")


ZPRIME = (sys.executable, "-m", "zprime.cli")
QUICK_OPTIONS = ("--workers", "2", "--lumi", "79.7", "--lumi", "5000")


def _quick(out: Path) -> subprocess.CompletedProcess[str]:
    """``zprime run --quick --out OUT`` with two workers and a projection, as a user types it."""
    return subprocess.run(
        [*ZPRIME, "run", "--quick", "--out", str(out), *QUICK_OPTIONS],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
        check=False,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("quick") / "results"
    proc = _quick(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stderr


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _f(value: str) -> float:
    return float(value) if value not in ("", "nan", "NaN") else math.nan


def test_every_output_exists(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    for name in (
        "limits.csv",
        "limits.parquet",
        "summary.md",
        "significance.json",
        "provenance.json",
        "control/corrections.json",
        "hepdata/submission.tar.gz",
        "hepdata/submission/submission.yaml",
        "projections/projections.csv",
    ):
        assert (out / name).is_file(), name
    pngs = {p.stem for p in (out / "figures").glob("*.png")}
    for stem in (
        "xsec_limit",
        "significance",
        "gprime_vanilla_log",
        "gprime_fully_invisible_linear",
    ):
        assert stem in pngs, stem
    assert any(s.startswith("m2_") for s in pngs), pngs
    assert {p.stem for p in (out / "figures").glob("*.pdf")} >= pngs
    assert not list(out.rglob("*.tmp*")), "temporary files left behind"


def test_limits_are_consistent(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    rows = [r for r in _rows(out / "limits.csv") if r["status"] == "ok"]
    assert len(rows) > 10
    for r in rows:
        bands = [_f(r[c]) for c in BANDS]
        assert all(b > 0 for b in bands), r
        assert bands == sorted(bands), r
        assert _f(r["obs_xsec_fb"]) > 0
        if r["width"] != "narrow":
            continue
        sigma1, br = _f(r["sigma_g1_fb"]), _f(r["br_inv_vanilla"])
        for col, b in (("vanilla", br), ("invisible", 1.0)):
            g = _f(r[f"obs_gprime_{col}"])
            assert g**2 * sigma1 * b == pytest.approx(_f(r["obs_xsec_fb"]), rel=1e-8)
            g_exp = _f(r[f"exp_gprime_{col}"])
            assert g_exp**2 * sigma1 * b == pytest.approx(_f(r["exp_xsec_fb"]), rel=1e-8)
        assert _f(r["obs_gprime_invisible"]) <= _f(r["obs_gprime_vanilla"]) * (1 + 1e-12)
    table = pq.read_table(out / "limits.parquet")
    assert table.num_rows == len(_rows(out / "limits.csv"))
    assert np.allclose(
        np.asarray(table["mass_gev"]), [float(r["mass_gev"]) for r in _rows(out / "limits.csv")]
    )


def test_the_summary_is_a_smoke_test_without_significance(quick_run: tuple[Path, str]) -> None:
    """Issue 16: a quick run reported a 12.9 sigma local excess and GoF p = 1e-187 with no
    signal injected (its simulation is too small for a significance)."""
    out, stderr = quick_run
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# zprime results: smoke test")
    assert "Z_local" not in summary
    assert "global" not in summary
    assert "largest_local_z" not in stderr


def test_provenance_records_the_run(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["quick"] is True
    assert prov["config"]["seed"] == 20230607
    assert "report" in prov["stages"]
    assert "numpy" in json.dumps(prov)


def test_rerun_is_cached(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    proc = _quick(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("up to date") >= 9


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    for args in (
        ["run", "--out", str(tmp_path), "--preset", "nope"],
        ["run", "--out", str(tmp_path), "--inject-mass", "2.0"],
        ["run", "--out", str(tmp_path), "--until", "selct"],
        ["run", "--out", str(tmp_path), "--limits", "frequentist"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "zprime.cli", *args], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
