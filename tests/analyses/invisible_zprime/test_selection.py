from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from zprime.analyses.invisible_zprime.selection import (
    STEPS,
    apply_selection,
    select_file,
    step_masks,
)
from zprime.config import SelectionConfig, load_config
from zprime.detector.simulation import analysis_variables
from zprime.errors import ConfigError, InputError
from zprime.io.events import read_events, write_events
from zprime.physics.kinematics import cm_to_lab

DEG = math.pi / 180


def _track(p: tuple[float, float, float], q: int, mu: float = 0.9, el: float = 0.01) -> dict:
    return {
        "charge": q,
        "px": p[0],
        "py": p[1],
        "pz": p[2],
        "muon_id": mu,
        "electron_id": el,
        "d0": 0.01,
        "z0": 0.02,
        "true_pdg": -13 * q,
    }


def _photons(rows: list[dict]) -> ak.Array:
    lists = [r.get("photons", []) for r in rows]
    flat = [g for lst in lists for g in lst]
    fields = {f: np.array([g[f] for g in flat], dtype=np.float64) for f in ("e", "px", "py", "pz")}
    return ak.unflatten(ak.zip(fields), np.array([len(lst) for lst in lists], dtype=np.int64))


def _events(rows: list[dict]) -> ak.Array:
    tracks = ak.Array([r["tracks"] for r in rows])
    photons = _photons(rows)
    variables = analysis_variables(tracks, photons)
    n = len(rows)
    cols = {
        "event": np.arange(n, dtype=np.int64),
        "weight": np.array([r.get("weight", 1.0) for r in rows]),
        "period": np.full(n, 2020, dtype=np.int32),
        "trg_two_track": np.array([r.get("trigger", True) for r in rows]),
        "tracks": tracks,
        "photons": photons,
        **variables,
    }
    return ak.zip(cols, depth_limit=1)


# A signal-like event: in the lab, mu- forward-up, mu+ forward-side, recoil in the barrel.
GOOD = {"tracks": [_track((1.2, 0.3, 1.5), -1), _track((-0.2, 1.1, 0.8), +1)]}


def test_a_signal_like_event_passes_everything() -> None:
    ev = _events([GOOD])
    cfg = SelectionConfig(disabled=["punzinet"])
    masks = step_masks(ev, cfg)
    # tau_suppression (the 2018 pilot-run step) is off unless selection.tau_suppression
    assert list(masks) == [s for s in STEPS if s not in ("punzinet", "tau_suppression")]
    assert all(bool(m[0]) for m in masks.values()), {k: bool(v[0]) for k, v in masks.items()}
    # the analysis variables behave as the hand calculation: recoil = beams - p1 - p2
    rec = np.array([0.0, 0.0, 3.0]) - np.array([1.2, 0.3, 1.5]) - np.array([-0.2, 1.1, 0.8])
    assert float(ev["theta_recoil"][0]) == pytest.approx(math.acos(rec[2] / np.linalg.norm(rec)))


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"tracks": [*GOOD["tracks"], _track((0.3, 0.3, 0.3), 1)]}, "two_tracks"),
        (
            {"tracks": [_track((1.2, 0.3, 1.5), -1), _track((-0.2, 1.1, 0.8), -1)]},
            "opposite_charge",
        ),
        (
            {"tracks": [_track((1.2, 0.3, 1.5), -1, mu=0.4), _track((-0.2, 1.1, 0.8), 1)]},
            "particle_id",
        ),
        ({"tracks": [_track((1.2, 0.3, 1.5), -1), _track((-0.2, 0.3, 0.8), 1)]}, "track_pt"),
        ({**GOOD, "trigger": False}, "trigger"),
        ({**GOOD, "photons": [{"e": 0.6, "px": 0.0, "py": 0.0, "pz": -0.6}]}, "photon_veto"),
    ],
)
def test_each_step_rejects_what_it_should(change: dict, failing: str) -> None:
    ev = _events([GOOD, change])
    masks = step_masks(ev, SelectionConfig(disabled=["punzinet"]))
    assert masks[failing].tolist() == [True, False]


def test_back_to_back_muons_fail_the_opening_angle() -> None:
    # back to back in the c.m. frame: equal and opposite c.m. momenta, boosted to the lab
    e = 5.0
    p = math.sqrt(e**2 - 0.10566**2)
    d = np.array([math.sin(1.2), 0.0, math.cos(1.2)])
    lab = cm_to_lab(np.array([[e, *(p * d)], [e, *(-p * d)]]))
    ev = _events([{"tracks": [_track(tuple(lab[0, 1:]), -1), _track(tuple(lab[1, 1:]), 1)]}])
    assert float(ev["opening_angle_cm"][0]) == pytest.approx(math.pi, abs=1e-7)
    assert not step_masks(ev, SelectionConfig(disabled=["punzinet"]))["opening_angle"][0]
    # a cut at 179.99 deg still rejects it; switching the step off keeps it
    tight = SelectionConfig(disabled=["punzinet"], opening_angle_max_deg=179.99)
    assert not step_masks(ev, tight)["opening_angle"][0]
    off = SelectionConfig(disabled=["punzinet", "opening_angle"])
    assert "opening_angle" not in step_masks(ev, off)


def test_theta_recoil_depends_on_the_recoil_mass() -> None:
    ev = _events([GOOD])
    th = float(ev["theta_recoil"][0]) / DEG
    m2 = float(ev["m_recoil2"][0])
    base = {"disabled": ["punzinet"]}
    # move the barrel window so that the recoil falls outside it: only matters below the split
    outside = SelectionConfig(**base, theta_recoil_barrel_deg=(th + 1.0, 170.0))
    below = SelectionConfig(
        **base, theta_recoil_barrel_deg=(th + 1.0, 170.0), theta_recoil_split_m2_gev2=m2 + 1.0
    )
    above = SelectionConfig(
        **base, theta_recoil_barrel_deg=(th + 1.0, 170.0), theta_recoil_split_m2_gev2=m2 - 1.0
    )
    assert step_masks(ev, below)["theta_recoil"][0] == np.False_
    assert step_masks(ev, above)["theta_recoil"][0] == np.True_
    gap = SelectionConfig(
        **base, theta_recoil_gap_deg=(th - 0.5, th + 0.5), theta_recoil_split_m2_gev2=m2 + 1.0
    )
    assert step_masks(ev, gap)["theta_recoil"][0] == np.False_
    assert outside.theta_recoil_barrel_deg[0] > th


def test_control_channels() -> None:
    e_mu = {"tracks": [_track((1.2, 0.3, 1.5), -1, mu=0.01, el=0.95), _track((-0.2, 1.1, 0.8), 1)]}
    ee = {
        "tracks": [
            _track((1.2, 0.3, 1.5), -1, mu=0.01, el=0.95),
            _track((-0.2, 1.1, 0.8), 1, mu=0.01, el=0.9),
        ]
    }
    ev = _events([GOOD, e_mu, ee])
    cfg = SelectionConfig(disabled=["punzinet"])
    assert step_masks(ev, cfg, "mumu")["particle_id"].tolist() == [True, False, False]
    assert step_masks(ev, cfg, "emu")["particle_id"].tolist() == [False, True, False]
    assert step_masks(ev, cfg, "ee")["particle_id"].tolist() == [False, False, True]
    # mu mu gamma: a hard photon along the recoil is required instead of vetoed
    rec = np.array([0.0, 0.0, 3.0]) - np.array([1.2, 0.3, 1.5]) - np.array([-0.2, 1.1, 0.8])
    u = rec / np.linalg.norm(rec)
    hard = {**GOOD, "photons": [{"e": 1.5, "px": 1.5 * u[0], "py": 1.5 * u[1], "pz": 1.5 * u[2]}]}
    soft = {**GOOD, "photons": [{"e": 0.8, "px": 0.8 * u[0], "py": 0.8 * u[1], "pz": 0.8 * u[2]}]}
    ev = _events([GOOD, hard, soft])
    assert step_masks(ev, cfg, "mumugamma")["photon_veto"].tolist() == [False, True, False]
    assert step_masks(ev, cfg, "mumu")["photon_veto"].tolist() == [True, False, False]


def test_cut_flow_is_weighted_and_ordered() -> None:
    bad_pid = {
        "tracks": [_track((1.2, 0.3, 1.5), -1, mu=0.1), _track((-0.2, 1.1, 0.8), 1)],
        "weight": 2.0,
    }
    ev = _events([{**GOOD, "weight": 0.5}, bad_pid, {**GOOD, "weight": 0.25, "trigger": False}])
    mask, flow = apply_selection(
        ev, SelectionConfig(), luminosity_fb=10.0, sample="t", skip=["punzinet"]
    )
    assert mask.tolist() == [True, False, False]
    rows = {r["step"]: r for r in flow.rows()}
    assert rows["all"]["yield"] == pytest.approx(27.5)
    assert rows["particle_id"]["yield"] == pytest.approx(7.5)
    assert rows["trigger"]["yield"] == pytest.approx(5.0)
    assert rows["trigger"]["efficiency_step"] == pytest.approx(5.0 / 7.5)
    assert flow.steps[-1] == "recoil_pt"
    assert "| particle_id | 2 |" in flow.to_markdown()
    assert flow.to_csv().splitlines()[0].startswith("sample,step,events,yield")


def test_punzinet_step_needs_its_column_and_bad_names_are_errors() -> None:
    ev = _events([GOOD])
    with pytest.raises(InputError, match="missing column 'punzinet'"):
        step_masks(ev, SelectionConfig())
    ev2 = ak.with_field(ev, np.array([0.7]), "punzinet")
    assert step_masks(ev2, SelectionConfig())["punzinet"][0]
    with pytest.raises(ConfigError, match="unknown selection step 'photonveto'"):
        apply_selection(ev, SelectionConfig(), skip=["photonveto"])
    with pytest.raises(ConfigError, match=r"selection\.disabled"):
        load_config(None, **{"selection.disabled": ["nope"]})
    with pytest.raises(ConfigError, match="unknown selection channel 'mumu2'"):
        step_masks(ev, SelectionConfig(), "mumu2")


def test_select_file_writes_events_and_cut_flow(tmp_path: Path) -> None:
    ev = _events([GOOD, {**GOOD, "trigger": False}, GOOD])
    src = write_events(tmp_path / "reco" / "mumu.parquet", ev, {"sample": "mumu"})
    out, flow = select_file(
        src, tmp_path / "sel", SelectionConfig(), luminosity_fb=2.0, skip=["punzinet"], batch_size=2
    )
    back = read_events(out)
    assert back["event"].tolist() == [0, 2]
    assert flow.counts[0] == 3
    assert flow.counts[-1] == 2
    assert (tmp_path / "sel" / "mumu.cutflow.csv").is_file()
    assert "Cut flow of `mumu`" in (tmp_path / "sel" / "mumu.cutflow.md").read_text()
