"""The staged pipeline end to end on a tiny configuration: outputs, caching, consistency."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from zprime.config import config_from_dict
from zprime.errors import ConfigError
from zprime.pipeline import run

TINY = {
    "signal": {"masses_gev": [1.0, 2.5, 4.0], "events_per_mass": 3000},
    "backgrounds": {
        "default_run": ["mumu", "tautau", "eemumu"],
        "samples": {
            "mumu": {"events": 20000, "chunk_size": 20000, "luminosity_factor": None},
            "tautau": {"events": 1500, "chunk_size": 1500, "luminosity_factor": None},
            "eemumu": {"events": 40000, "chunk_size": 40000, "luminosity_factor": None},
        },
    },
    "punzinet": {"bce_epochs": 2, "punzi_epochs": 8},
    "binning": {"mass_min_gev": 1.0, "mass_max_gev": 4.0},
    "fit": {"wide": False},
    "report": {"hepdata": False},
    # samples this small stand for far less than the luminosity (one mu mu event ~ 10^3 data
    # events): independent pseudo-data would disagree with the templates by the samples' own
    # noise, so the plumbing test fits pseudo-data thinned from the simulation itself; the
    # independent data-detector path runs in tests/pipeline/test_quick_run.py
    "pseudo_data": {"source": "simulation"},
}


def _run(out: Path, **changes: object) -> tuple[dict, str]:
    data = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        node = data
        *head, last = dotted.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    with open(out.parent / f"{out.name}.log", "a") as log:
        console = Console(file=log, width=120)
        outputs = run(config_from_dict(data), out, console=console, progress=False, workers=1)
    return outputs, (out.parent / f"{out.name}.log").read_text()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    outputs, log = _run(out)
    return out, outputs, log


def test_every_stage_writes_its_outputs(tiny_run: tuple[Path, dict, str]) -> None:
    out, outputs, _ = tiny_run
    assert list(outputs) == [
        "xsec",
        "generate",
        "simulate",
        "select",
        "train",
        "control",
        "template",
        "fit",
        "report",
    ]
    for name in outputs:
        assert (out / "stages" / f"{name}.json").is_file()
    assert (out / "provenance.json").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["config"]["signal"]["masses_gev"] == [1.0, 2.5, 4.0]
    assert "numpy" in prov["packages"]
    assert (out / "punzinet.pt").is_file()
    assert (out / "selection" / "signal_efficiency.csv").is_file()
    assert (out / "data" / "pseudo_data.parquet").is_file()


def test_limits_are_consistent(tiny_run: tuple[Path, dict, str]) -> None:
    out, _, _ = tiny_run
    with open(out / "limits_narrow.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows, "no hypotheses"
    masses = [float(r["mass_gev"]) for r in rows]
    assert masses == sorted(masses)
    assert min(masses) >= 1.0 - 1e-9
    assert max(masses) <= 4.0 + 1e-9
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= len(rows) // 2
    for r in ok:
        band = [float(r[f"expected_{k}_fb"]) for k in ("m2", "m1", "median", "p1", "p2")]
        assert all(b > 0 for b in band)
        assert band == sorted(band)
        assert float(r["observed_fb"]) > 0
        assert 0.0 <= float(r["p0"]) <= 0.5 + 1e-9
    for r in rows:
        if r["status"] != "ok":
            assert r["message"]  # a failed hypothesis says why and keeps its place
    # every hypothesis has a pyhf workspace with its sidecar
    ws = out / "workspaces_narrow"
    for r in ok:
        assert (ws / f"{r['name']}.json").is_file()
        assert (ws / f"{r['name']}.meta.json").is_file()
    summary = json.loads((out / "significance_narrow.json").read_text())
    assert summary["hypotheses"] == len(rows)
    assert math.isfinite(summary["largest_local_z"])


def test_rerun_reuses_and_a_cut_reruns_only_what_follows(
    tiny_run: tuple[Path, dict, str],
) -> None:
    out, _, _ = tiny_run
    _, log = _run(out)
    for stage in (
        "generate",
        "simulate",
        "select",
        "train",
        "control",
        "template",
        "fit",
        "report",
    ):
        assert f"stage {stage}: up to date" in log
    _, log = _run(out, **{"selection.recoil_pt_cm_min_gev": 0.6})
    tail = log.split("stage report: up to date")[-1]
    assert "stage generate: up to date" in tail
    assert "stage simulate: up to date" in tail
    assert "stage select: done" in tail
    assert "stage train: done" in tail
    _run(out)  # the run directory is shared by the module's tests: leave it as it was


def test_damaged_outputs_are_made_again_and_temporary_files_removed(
    tiny_run: tuple[Path, dict, str],
) -> None:
    """The run as a user may leave it: ``limits.csv`` deleted, ``resolution.json`` truncated, a
    temporary file of a killed run. The next run removes the temporary file and runs again the
    stages whose outputs are damaged (train, report), which restore them byte for byte; the
    stages before them stay up to date."""
    out, _, _ = tiny_run
    limits, resolution = out / "limits.csv", out / "resolution.json"
    before = {p: p.read_bytes() for p in (limits, resolution)}
    limits.unlink()
    resolution.write_bytes(before[resolution][:20])
    part = out / "templates_narrow" / ".M1.json.x1y2z3.part"
    part.write_text("half")
    mark = len((out.parent / f"{out.name}.log").read_text())
    _, log = _run(out)
    tail = log[mark:]
    assert "removed 1 temporary file(s) left by an interrupted run" in tail
    assert "stage train: output resolution.json changed, running again" in tail
    for stage in ("generate", "simulate", "select"):
        assert f"stage {stage}: up to date" in tail
    assert "stage train: done" in tail
    assert "stage report: done" in tail
    assert {p: p.read_bytes() for p in (limits, resolution)} == before
    assert not part.exists()


def test_unknown_stage_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown stage 'selct'"):
        run(config_from_dict(TINY), tmp_path, stages=["selct"], progress=False)


def test_photon_veto_reweighting_reduces_to_the_selection(
    tiny_run: tuple[Path, dict, str],
) -> None:
    """The mu mu background re-selected without the photon veto and re-weighted: with no extra
    photon loss it is exactly the selected sample; with a loss it gains the recoverable events."""
    import math as m

    import numpy as np

    from zprime.analyses.invisible_zprime.control import Corrections
    from zprime.analyses.invisible_zprime.observed import _photon_veto_reweighted
    from zprime.analyses.invisible_zprime.punzinet import load
    from zprime.io.events import read_events

    _, outputs, _ = tiny_run
    cfg = config_from_dict(TINY)
    reco = outputs["simulate"].backgrounds["mumu"]
    model = load(outputs["train"].model)
    final = read_events(outputs["train"].backgrounds["mumu"], ["weight", "m_recoil2"])

    def corr(extra: float) -> Corrections:
        return Corrections(
            (1.0,),
            ((0.0,),),
            (-1.0, 81.0),
            extra,
            0.0,
            0.0,
            (90 * m.pi / 180, 128.7 * m.pi / 180),
            1.0,
            ("mumu",),
        )

    m2, _, w = _photon_veto_reweighted(cfg, reco, corr(0.0), model)
    np.testing.assert_allclose(np.sort(m2), np.sort(np.asarray(final["m_recoil2"])))
    assert w.sum() == pytest.approx(float(np.sum(final["weight"])), rel=1e-12)
    m2x, _, wx = _photon_veto_reweighted(cfg, reco, corr(0.5), model)
    assert m2x.size >= m2.size
    assert wx.sum() >= w.sum()


def test_user_data_file_is_the_observed_data(
    tiny_run: tuple[Path, dict, str], tmp_path: Path
) -> None:
    """A user's ROOT ntuple with its own branch names and units (here: the data detector's
    events of the tiny run, renamed) enters the chain through a column map and is the observed
    data of the templates, counted once per event; injecting a signal into it is refused."""
    import awkward as ak
    import numpy as np
    import uproot
    import yaml

    from zprime.io.events import read_events, read_metadata

    out, outputs, _ = tiny_run
    reco = ak.concatenate([read_events(outputs["simulate"].data[k]) for k in ("mumu", "eemumu")])
    t, g = reco["tracks"], reco["photons"]
    branches = {
        "L1_2trk": ak.to_numpy(reco["trg_two_track"]).astype(np.float64),
        "L1_ecl": ak.to_numpy(reco["trg_ecl"]).astype(np.float64),
        "trk_px": t.px * 1000.0,
        "trk_py": t.py * 1000.0,
        "trk_pz": t.pz * 1000.0,
        "trk_q": ak.values_astype(t.charge, np.float64),
        "trk_muid": t.muon_id,
        "trk_eid": t.electron_id,
        "trk_dr": ak.values_astype(t.d0, np.float64),
        "trk_dz": ak.values_astype(t.z0, np.float64),
        "gam_E": g.e,
        "gam_px": g.px,
        "gam_py": g.py,
        "gam_pz": g.pz,
    }
    ntuple = tmp_path / "mydata.root"
    with uproot.recreate(ntuple) as f:
        f["ntuple"] = branches
    columns = tmp_path / "map.yaml"
    columns.write_text(
        yaml.safe_dump(
            {
                "tree": "ntuple",
                "columns": {
                    "trg_two_track": "L1_2trk",
                    "trg_ecl": "L1_ecl",
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
                "units": {"tracks.px": "MeV", "tracks.py": "MeV", "tracks.pz": "MeV"},
            }
        )
    )
    run_dir = tmp_path / "run"
    # reuse the tiny run's generated and simulated samples: their stamps and files (linked),
    # whose paths the stamps record relative to the run directory
    import os
    import shutil

    shutil.copytree(out / "stages" / "files", run_dir / "stages" / "files")
    for folder in ("events", "events_data", "reco"):
        if (out / folder).is_dir():
            shutil.copytree(out / folder, run_dir / folder, copy_function=os.link)
    outs, _ = _run(
        run_dir,
        **{"observed_data.file": str(ntuple), "observed_data.columns": str(columns)},
    )
    final = outs["train"].data["observed"]
    n_final = len(read_events(final, ["m_recoil2"]))
    data = read_events(out / "data" / "pseudo_data.parquet", ["weight"])
    observed = read_events(run_dir / "data" / "pseudo_data.parquet", ["weight"])
    assert read_metadata(run_dir / "data" / "pseudo_data.parquet")["sample"] == "observed_data"
    assert len(observed) == n_final > 0
    assert np.all(np.asarray(observed["weight"]) == 1.0)
    assert len(data) != len(observed) or n_final == 0
    assert (run_dir / "limits.csv").is_file()
    with pytest.raises(ConfigError, match="cannot be injected into real data"):
        _run(
            run_dir,
            **{
                "observed_data.file": str(ntuple),
                "observed_data.columns": str(columns),
                "pseudo_data.inject_mass_gev": 2.0,
                "pseudo_data.inject_xsec_fb": 1.0,
            },
        )


def test_toy_bands_do_not_depend_on_the_executor(tiny_run: tuple[Path, dict, str]) -> None:
    """fit.toys > 0: expected bands from background-only toys, mapped over the hypotheses; the
    same numbers in this process, in a process pool and on a dask LocalCluster."""
    import numpy as np

    from zprime.parallel import scheduler_executor
    from zprime.stats import read_workspace, scan_limits
    from zprime.stats.scan import toy_bands

    out, _, _ = tiny_run
    paths = sorted((out / "workspaces_narrow").glob("M*.json"))
    paths = [p for p in paths if not p.name.endswith(".meta.json")][:3]
    specs = [read_workspace(p)[0] for p in paths]
    limits = scan_limits(specs, names=[p.stem for p in paths])
    cfg = config_from_dict({**TINY, "fit": {"wide": False, "toys": 200}})
    bands = []
    for executor, workers in (("serial", None), (None, 2), ("local:2", None)):
        with scheduler_executor(executor if executor != "serial" else None) as ex:
            res = toy_bands(
                specs,
                limits,
                ntoys=cfg.fit.toys,
                seed=cfg.seed,
                executor="serial" if executor == "serial" else ex,
                workers=workers,
                progress=False,
            )
        bands.append(np.array([r.expected for r in res]))
        assert all(r.ntoys == 200 for r in res if r.ok)
    np.testing.assert_array_equal(bands[0], bands[1])
    np.testing.assert_array_equal(bands[0], bands[2])
    for b, lim in zip(bands[0], limits, strict=True):
        assert np.all(np.diff(b) >= 0)
        # 200 toys: the toy median is close to the asymptotic one
        assert b[2] == pytest.approx(lim.expected[2], rel=0.3)


def test_ctrl_c_in_a_stage_leaves_it_unrecorded_and_the_next_run_resumes(
    tiny_run: tuple[Path, dict, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import zprime.pipeline.stages as pl

    out, _, _ = tiny_run
    state = out / "stages" / "report.json"
    before = state.read_text()
    state.unlink()

    def interrupted(ctx: object) -> dict:
        raise KeyboardInterrupt

    table = pl.stage_table

    def patched(analysis: object) -> tuple:
        return tuple(
            dataclasses.replace(s, run=interrupted) if s.name == "report" else s
            for s in table(analysis)
        )

    monkeypatch.setattr(pl, "stage_table", patched)
    with pytest.raises(KeyboardInterrupt, match="in stage report"):
        _run(out)
    assert not state.exists()
    monkeypatch.undo()
    _, log = _run(out)
    assert "stage fit: up to date" in log
    assert "stage report: done" in log
    assert state.is_file()
    assert json.loads(state.read_text())["stage"] == json.loads(before)["stage"] == "report"
