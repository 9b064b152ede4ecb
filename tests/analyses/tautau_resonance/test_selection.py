"""Tests of the tau-tau resonance pre-selection (zprime.analyses.tautau_resonance.selection) on
hand-built four-track events: the recoil mass in closed form, every muon pair as a candidate,
the control sample's pion pair, every step, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest

from zprime.analyses.tautau_resonance.selection import (
    OUTPUT_COLUMNS,
    PAIRS,
    STEPS,
    TautauSelection,
    candidates,
    select,
    select_file,
    step_masks,
)
from zprime.errors import ConfigError, InputError
from zprime.physics.constants import M_ELECTRON, M_MUON, M_PION, SQRT_S
from zprime.physics.kinematics import cm_to_lab

IDS = {"mu": (0.9, 0.0, 0.0), "e": (0.0, 0.9, 0.0), "pi": (0.0, 0.0, 0.9), "none": (0.1, 0.1, 0.1)}
MASS = {"mu": M_MUON, "e": M_ELECTRON, "pi": M_PION, "none": M_PION}


def _p4_cm(p3: tuple[float, float, float], m: float) -> np.ndarray:
    p = np.asarray(p3, dtype=float)
    return np.concatenate([[math.sqrt(p @ p + m * m)], p])


def _track(p3_cm: tuple[float, float, float], q: int, kind: str, **kw: float) -> dict:
    lab = cm_to_lab(_p4_cm(p3_cm, MASS[kind]))
    mu, el, pi = IDS[kind]
    t = {
        "charge": q,
        "px": float(lab[1]),
        "py": float(lab[2]),
        "pz": float(lab[3]),
        "muon_id": mu,
        "electron_id": el,
        "pion_id": pi,
        "d0": 0.01,
        "z0": 0.02,
    }
    t.update(kw)
    return t


def _events(rows: list[dict]) -> ak.Array:
    n = len(rows)
    return ak.zip(
        {
            "event": np.arange(n, dtype=np.int64),
            "weight": np.full(n, 0.5),
            "trg_three_track": np.array([r.get("trg3", True) for r in rows]),
            "trg_single_muon": np.array([r.get("trg1", False) for r in rows]),
            "tracks": ak.Array([r["tracks"] for r in rows]),
        },
        depth_limit=1,
    )


# a prompt mu mu pair (c.m.) and two soft tracks: the signal topology
MU_M = (0.3, 0.2, 3.5)
MU_P = (-0.1, 0.4, -3.0)
SOFT_1 = (0.5, -0.4, -0.3)
SOFT_2 = (-0.4, -0.3, 0.2)


def _signal_like(kinds: tuple[str, str, str, str] = ("mu", "mu", "pi", "e"), **kw) -> dict:
    q = (-1, +1, -1, +1)
    p = (MU_M, MU_P, SOFT_1, SOFT_2)
    row = {"tracks": [_track(p[i], q[i], kinds[i]) for i in range(4)]}
    row.update(kw)
    return row


def test_recoil_and_four_track_mass_in_closed_form() -> None:
    ev = _events([_signal_like()])
    c = candidates(ev)
    a, b = _p4_cm(MU_M, M_MUON), _p4_cm(MU_P, M_MUON)
    pair = a + b
    m2 = (SQRT_S - pair[0]) ** 2 - pair[1:] @ pair[1:]
    assert c["m_recoil2"][0] == pytest.approx(m2, rel=1e-9)
    assert c["m_recoil"][0] == pytest.approx(math.sqrt(m2), rel=1e-9)
    four = pair + _p4_cm(SOFT_1, M_PION) + _p4_cm(SOFT_2, M_ELECTRON)
    assert c["m_four"][0] == pytest.approx(math.sqrt(four[0] ** 2 - four[1:] @ four[1:]), rel=1e-9)
    assert c["other_species"][0] == 100 * 11 + 211
    other = _p4_cm(SOFT_1, M_PION) + _p4_cm(SOFT_2, M_ELECTRON)
    assert c["e_other_cm"][0] == pytest.approx(other[0], rel=1e-9)
    assert c["p_mu_hi_cm"][0] == pytest.approx(math.sqrt(np.dot(MU_M, MU_M)), rel=1e-9)


def test_every_muon_pair_is_a_candidate_among_four_muons() -> None:
    """Four muons (- + - +): the four opposite-charge pairs are candidates, each with the recoil
    of its own pair; the event counts once in the cut flow and enters the output once per
    selected candidate, with its weight on each."""
    ev = _events([_signal_like(("mu", "mu", "mu", "mu"))])
    c = candidates(ev)
    assert list(c["event_index"]) == [0, 0, 0, 0]
    assert [PAIRS[k] for k in c["candidate"]] == [(0, 1), (0, 3), (1, 2), (2, 3)]
    p = {0: MU_M, 1: MU_P, 2: SOFT_1, 3: SOFT_2}
    for row, k in enumerate(c["candidate"]):
        i, j = PAIRS[k]
        pair = _p4_cm(p[i], M_MUON) + _p4_cm(p[j], M_MUON)
        m2 = (SQRT_S - pair[0]) ** 2 - pair[1:] @ pair[1:]
        assert c["m_recoil2"][row] == pytest.approx(m2, rel=1e-9)
        assert c["other_species"][row] == 100 * 13 + 13
    out, flow = select(ev, luminosity_fb=1.0)
    lo, hi = TautauSelection().m_recoil_range_gev
    in_range = (c["m_recoil"] >= lo) & (c["m_recoil"] <= hi)
    assert in_range.sum() >= 2
    assert list(out["candidate"]) == list(c["candidate"][in_range])
    assert list(out["n_candidates"]) == [int(in_range.sum())] * int(in_range.sum())
    assert list(out["weight"]) == [0.5] * int(in_range.sum())
    assert flow.counts[-1] == 1
    assert flow.yields[-1] == pytest.approx(0.5)
    # the cut flow: one candidate passing every step is enough, whichever it is
    narrow = TautauSelection(m_recoil_range_gev=(float(c["m_recoil"][0]) - 1e-6, 10.3))
    out, flow = select(ev, narrow)
    assert flow.counts[-1] == 1
    assert set(out["candidate"]) <= set(c["candidate"])


def test_control_sample_takes_a_pion_pair() -> None:
    ev = _events([_signal_like(("pi", "pi", "mu", "e")), _signal_like()])
    ctl = TautauSelection(control=True)
    m_ctl = step_masks(ev, ctl)
    m_sig = step_masks(ev)
    assert list(m_ctl["muon_pair"]) == [True, False]
    assert list(m_sig["muon_pair"]) == [False, True]
    c = candidates(ev, ctl)
    assert c["other_species"][0] == 100 * 11 + 13


def test_every_step() -> None:
    base = _signal_like()
    five = _signal_like()
    five["tracks"] = [*five["tracks"], _track((0.1, 0.1, 0.1), -1, "pi")]
    charged = _signal_like()
    charged["tracks"][3]["charge"] = -1
    far = _signal_like()
    far["tracks"][2]["d0"] = 0.7
    unid = _signal_like(("mu", "mu", "pi", "none"))
    rows = [
        base,
        _signal_like(trg3=False, trg1=True),
        _signal_like(trg3=False, trg1=False),
        five,
        charged,
        far,
        unid,
    ]
    ev = _events(rows)
    masks = step_masks(ev)
    assert list(masks) == list(STEPS)
    assert all(m[0] for m in masks.values())
    assert masks["trigger"][1]
    assert not masks["trigger"][2]
    assert list(masks["four_tracks"]) == [True, True, True, False, False, False, True]
    assert not masks["other_ids"][6]
    assert masks["muon_pair"][6]
    # M(4 tracks) and the recoil range at the event's own values
    c = candidates(ev[:1])
    m4, mr = float(c["m_four"][0]), float(c["m_recoil"][0])
    assert not step_masks(ev[:1], TautauSelection(m_four_max_gev=m4 - 1e-6))["m_four"][0]
    assert step_masks(ev[:1], TautauSelection(m_four_max_gev=m4 + 1e-6))["m_four"][0]
    out = step_masks(ev[:1], TautauSelection(m_recoil_range_gev=(mr + 1e-6, 10.3)))
    assert not out["recoil_range"][0]
    sel, flow = select(ev, luminosity_fb=2.0, sample="s")
    assert list(sel["event"]) == [0, 1]
    assert flow.yields[0] == pytest.approx(7 * 0.5 * 2.0)
    assert flow.yields[-1] == pytest.approx(2 * 0.5 * 2.0)


def test_bad_input_and_settings() -> None:
    ev = _events([_signal_like()])
    no_pi = ak.with_field(
        ev,
        ev["tracks"][["charge", "px", "py", "pz", "muon_id", "electron_id", "d0", "z0"]],
        "tracks",
    )
    with pytest.raises(InputError, match=r"tracks\.pion_id") as exc:
        step_masks(no_pi)
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="trg_single_muon"):
        step_masks(ak.without_field(ev, "trg_single_muon"))
    with pytest.raises(ConfigError, match="unknown step"):
        TautauSelection(disabled=frozenset({"nonsense"}))
    with pytest.raises(ConfigError, match="increase"):
        TautauSelection(m_recoil_range_gev=(10.0, 3.0))


def test_select_file(tmp_path: Path) -> None:
    ev = _events([_signal_like(), _signal_like(trg3=False), _signal_like(("pi", "pi", "mu", "e"))])
    reco = tmp_path / "reco.parquet"
    ak.to_parquet(ak.Array(ev.to_list()), reco)
    out, flow = select_file(
        reco, tmp_path / "sel.parquet", luminosity_fb=1.0, control_path=tmp_path / "ctl.parquet"
    )
    t = pq.read_table(out).to_pydict()
    assert list(t) == list(OUTPUT_COLUMNS)
    assert t["event"] == [0]
    assert (tmp_path / "sel.cutflow.csv").is_file()
    assert flow.counts[-1] == 1
    # the control sample of the same pass: the pion-pair event only, as its own selection says
    ctl = pq.read_table(tmp_path / "ctl.parquet").to_pydict()
    assert ctl["event"] == [2]
    own, _ = select(ev, TautauSelection(control=True))
    assert ctl["m_recoil"] == pytest.approx(list(own["m_recoil"]))
    assert (tmp_path / "ctl.cutflow.csv").is_file()
