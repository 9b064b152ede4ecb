"""Benchmark of real-data input and of the dask scale-out (issue 8).

Prints the rate of ``zprime.detector.realdata.read_observed`` / ``convert_observed`` on a basf2-like
ROOT
tree (variable-length branches, MeV, mm), and the start-up time of a 2-worker dask LocalCluster
with the time of a seeded chunked signal generation on it, on a 2-process pool and serially.

Run: ``.venv/bin/python benchmarks/bench_realdata.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
import yaml

from zprime.detector.realdata import convert_observed, read_observed
from zprime.detector.simulation import simulate
from zprime.generators.signal import write_signal
from zprime.io.events import read_events
from zprime.parallel import scheduler_executor

N_SIGNAL = 20_000
REPEAT = 10

MAP = {
    "tree": "ntuple",
    "columns": {
        "event": "__event__",
        "trg_two_track": "L1_2trk",
        "tracks.px": "trk_px",
        "tracks.py": "trk_py",
        "tracks.pz": "trk_pz",
        "tracks.charge": "trk_q",
        "tracks.muon_id": "trk_muid",
        "tracks.electron_id": "trk_eid",
        "tracks.d0": "trk_dr",
        "tracks.z0": "trk_dz",
        "photons.e": "gam_E",
        "photons.px": "gam_px",
        "photons.py": "gam_py",
        "photons.pz": "gam_pz",
    },
    "units": {"tracks.px": "MeV", "tracks.py": "MeV", "tracks.pz": "MeV", "tracks.d0": "mm"},
}


def _ntuple(reco: ak.Array) -> dict[str, object]:
    t, g = reco["tracks"], reco["photons"]

    def f64(x: ak.Array) -> ak.Array:
        return ak.values_astype(x, np.float64)

    return {
        "__event__": ak.to_numpy(reco["event"]),
        "L1_2trk": ak.to_numpy(reco["trg_two_track"]).astype(np.float64),
        "trk_px": t.px * 1000.0,
        "trk_py": t.py * 1000.0,
        "trk_pz": t.pz * 1000.0,
        "trk_q": f64(t.charge),
        "trk_muid": f64(t.muon_id),
        "trk_eid": f64(t.electron_id),
        "trk_dr": f64(t.d0) * 10.0,
        "trk_dz": f64(t.z0),
        "gam_E": g.e,
        "gam_px": g.px,
        "gam_py": g.py,
        "gam_pz": g.pz,
    }


def bench_realdata(d: Path) -> None:
    sig = write_signal(2.0, N_SIGNAL, d, seed=1, executor="serial", progress=False)
    reco = simulate(
        read_events(sig, ["event", "weight", "particles"]), "simulation", np.random.default_rng(2)
    )
    big = ak.concatenate([reco] * REPEAT)
    big = ak.with_field(big, np.arange(len(big)), "event")
    branches = _ntuple(big)
    root = d / "data.root"
    with uproot.recreate(root) as f:
        f.mktree("ntuple", {k: ak.Array(v).type.content for k, v in branches.items()})
        f["ntuple"].extend(branches)
    cmap = d / "map.yaml"
    cmap.write_text(yaml.safe_dump(MAP))
    t0 = time.perf_counter()
    events = read_observed(root, cmap)
    t1 = time.perf_counter()
    convert_observed(root, cmap, d / "data.parquet")
    t2 = time.perf_counter()
    n = len(events)
    print(f"read_observed (ROOT, jagged, {n} events): {t1 - t0:.2f} s, {n / (t1 - t0):,.0f} ev/s")
    print(f"convert_observed (ROOT -> Parquet):        {t2 - t1:.2f} s, {n / (t2 - t1):,.0f} ev/s")


def bench_dask(d: Path) -> None:
    t0 = time.perf_counter()
    with scheduler_executor("local:2") as ex:
        t1 = time.perf_counter()
        write_signal(2.0, 40_000, d / "dask", seed=3, chunk_size=5000, executor=ex, progress=False)
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    write_signal(2.0, 40_000, d / "pool", seed=3, chunk_size=5000, workers=2, progress=False)
    t4 = time.perf_counter()
    write_signal(
        2.0, 40_000, d / "serial", seed=3, chunk_size=5000, executor="serial", progress=False
    )
    t5 = time.perf_counter()
    print(f"dask LocalCluster(2 processes) start-up: {t1 - t0:.2f} s, close: {t3 - t2:.2f} s")
    print(
        f"signal 40k events, 8 chunks: dask {t2 - t1:.2f} s, 2-process pool {t4 - t3:.2f} s, "
        f"serial {t5 - t4:.2f} s"
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        bench_realdata(Path(tmp))
        bench_dask(Path(tmp))
