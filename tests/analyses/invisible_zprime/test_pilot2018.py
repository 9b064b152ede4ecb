"""The 2018 pilot-run preset (``--preset pilot2018``, PRL 124, 141801): loading, the cut-based
tau suppression on hand-built events, and a tiny pipeline run without a network."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from rich.console import Console

from zprime.analyses.invisible_zprime.selection import (
    STEPS,
    step_masks,
    tau_suppression_mask,
    tau_suppression_variables,
)
from zprime.config import (
    Config,
    available_presets,
    config_from_dict,
    default_config,
    load_config,
)
from zprime.detector.simulation import analysis_variables
from zprime.errors import ConfigError
from zprime.physics.constants import M_MUON
from zprime.physics.kinematics import cm_to_lab, four_momentum

DEG = math.pi / 180


def _cm_muon(p: float, theta_deg: float, phi_deg: float) -> np.ndarray:
    """Lab three-momentum of a muon given by its c.m. momentum and direction."""
    th, ph = theta_deg * DEG, phi_deg * DEG
    p3 = p * np.array([math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)])
    return cm_to_lab(four_momentum(p3, M_MUON))[1:]


def _events(pairs: list[tuple[tuple[float, float, float], tuple[float, float, float]]]) -> ak.Array:
    """Reconstructed events of two good muon tracks (mu-, mu+) given in the c.m. frame."""
    rows = []
    for a, b in pairs:
        tracks = []
        for q, spec in ((-1, a), (+1, b)):
            p = _cm_muon(*spec)
            tracks.append(
                {
                    "charge": q,
                    "px": float(p[0]),
                    "py": float(p[1]),
                    "pz": float(p[2]),
                    "muon_id": 0.9,
                    "electron_id": 0.01,
                    "d0": 0.01,
                    "z0": 0.02,
                    "true_pdg": -13 * q,
                }
            )
        rows.append(tracks)
    tracks = ak.Array(rows)
    empty = np.zeros(0)
    photons = ak.unflatten(
        ak.zip({"e": empty, "px": empty, "py": empty, "pz": empty}),
        np.zeros(len(rows), dtype=np.int64),
    )
    n = len(rows)
    cols = {
        "event": np.arange(n, dtype=np.int64),
        "weight": np.ones(n),
        "period": np.full(n, 2019, dtype=np.int32),
        "trg_two_track": np.ones(n, dtype=bool),
        "tracks": tracks,
        "photons": photons,
        **analysis_variables(tracks, photons),
    }
    return ak.zip(cols, depth_limit=1)


# (c.m. momentum GeV, theta deg, phi deg) of mu- and mu+. All three fall in the region
# 9 < M_recoil^2 < 36 GeV^2 (cuts: pt_recoil_cm > 1.25 GeV, max muon p < 3.5 GeV).
SIGNAL_LIKE = ((3.0, 70.0, 0.0), (2.3, 120.0, 150.0))  # M^2 = 25.7, pt_rec = 1.48
TAU_HARD_MUON = ((4.2, 70.0, 0.0), (1.3, 100.0, 150.0))  # M^2 = 15.9, pt_rec = 2.91
TAU_SOFT_RECOIL = ((3.2, 70.0, 0.0), (2.9, 110.0, 175.0))  # M^2 = 19.9, pt_rec = 0.38


@pytest.fixture(scope="module")
def pilot() -> Config:
    return load_config(preset="pilot2018")


def test_preset_loads_and_sets_the_2018_analysis(pilot: Config) -> None:
    assert "pilot2018" in available_presets()
    assert pilot.luminosity_fb == pytest.approx(0.276)
    assert "punzinet" in pilot.selection.disabled
    assert pilot.selection.tau_suppression is True
    assert pilot.fit.limits == "bayesian"
    # no KLM muon ID: the non-KLM end points at every momentum, in simulation and in data
    for name in (pilot.detector.use, pilot.control.data_detector):
        mu = pilot.detector.get(name).muon_id
        assert mu.muon_efficiency_high == mu.muon_efficiency_low == pytest.approx(0.93)
        assert mu.pion_fake_high == mu.pion_fake_low == pytest.approx(0.20)
    assert pilot.detector.use == "pilot2018"
    assert pilot.detector.get().trigger.fraction_2019 == 1.0
    # the data detector keeps its differences from the simulation (PRL 130: 8% resolution)
    assert pilot.detector.get("data").tracking.resolution_scale == pytest.approx(1.08)
    # the PRL default is untouched: step off, network on, 79.7 fb^-1
    d = default_config()
    assert (d.selection.tau_suppression, d.selection.disabled, d.luminosity_fb) == (
        False,
        [],
        79.7,
    )
    # the preset round-trips through its own YAML dump
    assert config_from_dict(pilot.to_dict()) == pilot


def test_file_and_overrides_go_over_the_preset(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("luminosity_fb: 0.5\nselection: {track_pt_min_gev: 0.3}\n")
    cfg = load_config(user, preset="pilot2018", **{"fit.limits": "cls"})
    assert cfg.luminosity_fb == 0.5
    assert cfg.selection.track_pt_min_gev == 0.3
    assert cfg.selection.tau_suppression is True  # merged, not replaced
    assert cfg.fit.limits == "cls"


def test_unknown_preset_is_a_config_error() -> None:
    known = "dark_higgsstrahlung, pilot2018, tautau_resonance"
    with pytest.raises(ConfigError, match=rf"^unknown preset 'x' \(presets: {known}\)$"):
        load_config(preset="x")


def test_tau_suppression_lists_must_match_the_regions() -> None:
    with pytest.raises(ConfigError, match="tau_recoil_pt_min_gev needs 5 values"):
        config_from_dict({"selection": {"tau_recoil_pt_min_gev": [1.0, 1.0]}})
    with pytest.raises(ConfigError, match="must be increasing"):
        config_from_dict({"selection": {"tau_m2_edges_gev2": [9.0, 1.0, 36.0, 50.0]}})


def test_tau_suppression_variables_are_the_cm_muon_momenta() -> None:
    ev = _events([SIGNAL_LIKE, TAU_HARD_MUON])
    v = tau_suppression_variables(ev)
    assert v["p_mu_max_cm"] == pytest.approx([3.0, 4.2], rel=1e-9)
    assert v["m_recoil2"] == pytest.approx([25.661, 15.850], abs=2e-3)
    assert v["pt_recoil_cm"] == pytest.approx([1.479, 2.909], abs=2e-3)


def test_tau_suppression_cuts_tau_like_events_and_keeps_a_signal_like_one(
    pilot: Config,
) -> None:
    ev = _events([SIGNAL_LIKE, TAU_HARD_MUON, TAU_SOFT_RECOIL])
    assert tau_suppression_mask(ev, pilot.selection).tolist() == [True, False, False]
    masks = step_masks(ev, pilot.selection)
    assert list(masks) == [s for s in STEPS if s != "punzinet"]
    # the signal-like event passes every step of the preset; the hard-muon tau-like event
    # fails only the tau suppression
    assert all(bool(m[0]) for m in masks.values()), {k: bool(m[0]) for k, m in masks.items()}
    assert [s for s, m in masks.items() if not m[1]] == ["tau_suppression"]
    # with the PRL configuration the step is not applied at all
    prl = default_config().selection.model_copy(update={"disabled": ["punzinet"]})
    assert "tau_suppression" not in step_masks(ev, prl)


def test_tau_suppression_uses_the_cut_of_the_events_region(pilot: Config) -> None:
    ev = _events([TAU_HARD_MUON])
    sel = pilot.selection
    # moving the region edge above M^2 = 15.9 puts the event in the 1-9 GeV^2 region's cuts
    # (p < 5.25 GeV): it then passes
    moved = sel.model_copy(update={"tau_m2_edges_gev2": [1.0, 20.0, 36.0, 50.0]})
    assert tau_suppression_mask(ev, sel).tolist() == [False]
    assert tau_suppression_mask(ev, moved).tolist() == [True]


def test_pipeline_without_network_gives_a_final_selection(pilot: Config, tmp_path: Path) -> None:
    from zprime.io.events import read_events
    from zprime.pipeline import quick_config, run

    data = quick_config(pilot).to_dict()
    data["signal"]["masses_gev"] = [2.0, 5.0]
    data["signal"]["events_per_mass"] = 2000
    data["backgrounds"]["default_run"] = ["mumu", "tautau"]
    for name, n in (("mumu", 5000), ("tautau", 400)):
        data["backgrounds"]["samples"][name].update(
            {"events": n, "chunk_size": n, "luminosity_factor": None}
        )
    cfg = Config.model_validate(data)
    out = tmp_path / "run"
    with open(tmp_path / "log.txt", "w") as log:
        outputs = run(
            cfg,
            out,
            stages=["train"],
            console=Console(file=log, width=120),
            progress=False,
            workers=1,
        )
    train = outputs["train"]
    assert train.model is None
    assert not (out / "punzinet.pt").exists()
    assert not (out / "selection" / "punzi_fom.md").exists()
    assert (out / "selection" / "signal_efficiency.csv").is_file()
    assert set(train.signal) == set(outputs["select"].signal)
    for group in ("signal", "backgrounds"):
        for key, path in getattr(train, group).items():
            final = read_events(path, ["event"])
            presel = read_events(getattr(outputs["select"], group)[key], ["event"])
            # no network: the final selection is the preselection
            assert np.array_equal(np.asarray(final["event"]), np.asarray(presel["event"]))
    flows = (out / "selected" / "final" / "cutflows.md").read_text()
    assert "| tau_suppression |" in flows
    assert "punzinet" not in flows
    # the tau suppression removed some tau pairs and kept most of the signal
    lines = (out / "selected" / "presel" / "tautau.cutflow.csv").read_text().splitlines()
    steps = {row.split(",")[1]: int(row.split(",")[2]) for row in lines[1:]}
    assert steps["tau_suppression"] < steps["recoil_pt"]


@pytest.mark.slow
def test_pilot2018_quick_run_end_to_end(tmp_path: Path) -> None:
    """The preset through every stage (quick): Bayesian limits without toy bands, a report with
    the expected median only, HEPData without bands."""
    import csv

    from zprime.config import load_config
    from zprime.pipeline import run

    out = tmp_path / "pilot"
    with open(tmp_path / "log.txt", "w") as log:
        run(load_config(None, preset="pilot2018"), out, quick=True, console=Console(file=log))
    with open(out / "limits.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "ok"]
    assert len(rows) > 50
    for r in rows:
        assert float(r["obs_xsec_fb"]) > 0
        assert float(r["exp_xsec_fb"]) > 0
    assert "Bayesian" in (out / "summary.md").read_text()
    assert (out / "hepdata" / "submission.tar.gz").is_file()
