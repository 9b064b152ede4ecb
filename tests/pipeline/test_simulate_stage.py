"""The simulate stage makes its files side by side on the run's workers: the files are those of a
serial run, event for event (each file's random numbers depend on the seed and its name), and a
second pass reuses them."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from rich.console import Console

import zprime.pipeline.samples as samples
from zprime.analyses.base import StageContext
from zprime.config import default_config
from zprime.io.events import make_particles, read_events, write_events
from zprime.io.rundir import RunDir
from zprime.physics.constants import M_MUON, M_PION
from zprime.pipeline.cache import SIMULATION_CODE, reusable_file


def _dimuon_file(path: Path, n: int, seed: int, weight: float) -> Path:
    """Back-to-back muons of 4.5 GeV in the barrel, plus a 0.3 GeV pi+ (lab frame)."""
    rng = np.random.default_rng(seed)
    ct, phi = rng.uniform(-0.6, 0.6, n), rng.uniform(-np.pi, np.pi, n)
    st = np.sqrt(1.0 - ct * ct)
    d = np.stack([st * np.cos(phi), st * np.sin(phi), ct], axis=1)

    def p4(p: float, direction: np.ndarray, mass: float) -> np.ndarray:
        return np.concatenate([np.full((n, 1), np.hypot(p, mass)), p * direction], axis=1)

    mom = np.stack([p4(4.5, d, M_MUON), p4(4.5, -d, M_MUON), p4(0.3, d[:, [1, 2, 0]], M_PION)], 1)
    ev = ak.zip(
        {
            "event": np.arange(n, dtype=np.int64),
            "weight": np.full(n, weight),
            "particles": make_particles(np.tile([13, -13, 211], (n, 1)), mom),
        },
        depth_limit=1,
    )
    return write_events(path, [ev], {"sample": path.stem, "cross_section_fb": weight * n})


def _jobs(root: Path, inputs: list[Path]) -> list[samples._SimulationJob]:
    cfg = default_config()
    return [
        samples._SimulationJob(
            f"reco_simulation_{p.stem}",
            {"input": p.stem, "seed": cfg.seed},
            {"input_path": p, "out_dir": root / "reco", "detector": "simulation", "config": cfg},
        )
        for p in inputs
    ]


def test_parallel_simulation_equals_serial_and_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # these inputs are small: the pool is forced (a run simulates small inputs in process)
    monkeypatch.setattr(samples, "PARALLEL_SIMULATION_BYTES", 0)
    inputs = [
        _dimuon_file(tmp_path / "events" / f"s{i}.parquet", 400 + 100 * i, i, 0.5) for i in range(3)
    ]
    out = {}
    for workers in (1, 2):
        root = tmp_path / f"run{workers}"
        ctx = StageContext(default_config(), RunDir(root), Console(quiet=True), workers=workers)
        paths = samples._simulate_jobs(ctx, _jobs(root, inputs))
        assert [p.name for p in paths] == [p.name for p in inputs]
        out[workers] = [read_events(p) for p in paths]
        for job in _jobs(root, inputs):
            assert reusable_file(ctx, job.label, job.params, code=SIMULATION_CODE) is not None
        stamps = [p.stat().st_mtime_ns for p in paths]
        assert samples._simulate_jobs(ctx, _jobs(root, inputs)) == paths
        assert [p.stat().st_mtime_ns for p in paths] == stamps
    for serial, parallel in zip(out[1], out[2], strict=True):
        assert len(serial) > 300
        assert ak.array_equal(serial, parallel, equal_nan=True)
    # the files differ from each other: each draws its own random numbers
    assert not np.array_equal(
        ak.to_numpy(out[1][0].tracks.px[:400, 0]), ak.to_numpy(out[1][1].tracks.px[:400, 0])
    )
