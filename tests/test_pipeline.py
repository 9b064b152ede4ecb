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
            "mumu": {"events": 20000, "chunk_size": 20000},
            "tautau": {"events": 1500, "chunk_size": 1500},
            "eemumu": {"events": 40000, "chunk_size": 40000},
        },
    },
    "punzinet": {"bce_epochs": 2, "punzi_epochs": 8},
    "binning": {"mass_min_gev": 1.0, "mass_max_gev": 4.0},
    "fit": {"wide": False},
}


def _run(out: Path, **changes: object) -> tuple[dict, str]:
    data = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        node = data
        *head, last = dotted.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    console = Console(file=open(out.parent / f"{out.name}.log", "a"), width=120)  # noqa: SIM115
    outputs = run(config_from_dict(data), out, console=console, progress=False, workers=1)
    console.file.close()
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
    for stage in ("generate", "simulate", "select", "train", "control", "template", "fit"):
        assert f"stage {stage}: up to date" in log
    _, log = _run(out, **{"selection.recoil_pt_cm_min_gev": 0.6})
    tail = log.split("stage fit: up to date")[-1]
    assert "stage generate: up to date" in tail
    assert "stage simulate: up to date" in tail
    assert "stage select: done" in tail
    assert "stage train: done" in tail


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

    from zprime.control import Corrections
    from zprime.events import read_events
    from zprime.pipeline import RunContext, _photon_veto_reweighted
    from zprime.punzinet import load

    out, outputs, _ = tiny_run
    ctx = RunContext(config_from_dict(TINY), out, Console(quiet=True))
    ctx.outputs = outputs
    model = load(outputs["train"]["model"])
    final = read_events(outputs["train"]["backgrounds"]["mumu"], ["weight", "m_recoil2"])

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

    m2, _, w = _photon_veto_reweighted(ctx, "mumu", corr(0.0), model)
    np.testing.assert_allclose(np.sort(m2), np.sort(np.asarray(final["m_recoil2"])))
    assert w.sum() == pytest.approx(float(np.sum(final["weight"])), rel=1e-12)
    m2x, _, wx = _photon_veto_reweighted(ctx, "mumu", corr(0.5), model)
    assert m2x.size >= m2.size
    assert wx.sum() >= w.sum()
