"""Tests of the dark Higgsstrahlung selection (zprime.analyses.dark_higgsstrahlung.selection)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from zprime.analyses.dark_higgsstrahlung.selection import (
    CONTROL_COLUMNS,
    CONTROL_REGIONS,
    OBSERVABLES,
    OUTPUT_COLUMNS,
    STEPS,
    DarkHiggsSelection,
    control_masks,
    observables,
    photon_near_recoil,
    photons_near_recoil,
    select,
    select_file,
    step_masks,
)
from zprime.analyses.invisible_zprime.selection import _photon_near_recoil
from zprime.config import DarkHiggsSelectionConfig, load_config
from zprime.detector.simulation import simulate_file
from zprime.errors import ConfigError, InputError
from zprime.generators.aprime_hdark import AprimeHdarkGenerator, write_aprime_hdark
from zprime.physics.constants import M_MUON, P_BEAMS_LAB, SQRT_S
from zprime.physics.kinematics import cm_to_lab, polar_angle

DEG = math.pi / 180.0
S = SQRT_S**2


# --------------------------------------------------------------------------- hand-built events
def _track(p4: np.ndarray, q: int, mu: float = 0.9) -> dict:
    return {
        "charge": q,
        "px": float(p4[1]),
        "py": float(p4[2]),
        "pz": float(p4[3]),
        "muon_id": mu,
        "electron_id": 0.0,
        "d0": 0.01,
        "z0": 0.02,
        "true_pdg": -13 * q,
    }


def _events(rows: list[dict]) -> ak.Array:
    """Reconstructed events from rows {tracks: [...], photons: [(e, px, py, pz)], trigger}."""
    tracks = ak.Array([r["tracks"] for r in rows])
    lists = [r.get("photons", []) for r in rows]
    flat = np.array([g for lst in lists for g in lst], dtype=np.float64).reshape(-1, 4)
    photons = ak.unflatten(
        ak.zip({f: flat[:, i] for i, f in enumerate(("e", "px", "py", "pz"))}),
        np.array([len(lst) for lst in lists], dtype=np.int64),
    )
    n = len(rows)
    return ak.zip(
        {
            "event": np.arange(n, dtype=np.int64),
            "weight": np.array([r.get("weight", 1.0) for r in rows]),
            "period": np.full(n, 2019, dtype=np.int32),
            "trg_two_track": np.array([r.get("trigger", True) for r in rows]),
            "tracks": tracks,
            "photons": photons,
        },
        depth_limit=1,
    )


def _basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to the unit vector n and to each other."""
    a = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(n, a)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(n, e1)


def _pair_cm(
    m: float, p_pair: np.ndarray, cos_star: float, phi_star: float
) -> tuple[np.ndarray, np.ndarray]:
    """c.m. four-momenta of mu-, mu+ from a pair of mass m and momentum p_pair, with the mu-
    at cos_star to the pair direction in the pair rest frame (exact boost)."""
    p_mag = float(np.linalg.norm(p_pair))
    n = p_pair / p_mag
    e1, e2 = _basis(n)
    k = math.sqrt(0.25 * m * m - M_MUON**2)
    sin_star = math.sqrt(1.0 - cos_star**2)
    k_star = k * (cos_star * n + sin_star * (math.cos(phi_star) * e1 + math.sin(phi_star) * e2))
    gam, gb = math.hypot(m, p_mag) / m, p_mag / m
    out = []
    for kv in (k_star, -k_star):
        par = float(kv @ n)
        e_star = 0.5 * m
        p3 = kv + ((gam - 1.0) * par + gb * e_star) * n
        out.append(np.concatenate([[gam * e_star + gb * par], p3]))
    return out[0], out[1]


def test_pair_at_rest_in_cm() -> None:
    """Back-to-back muons of equal momentum in the c.m. frame: M = 2E, M_recoil = sqrt(s) - M."""
    p = 2.5
    e = math.hypot(p, M_MUON)
    mu_minus = cm_to_lab(np.array([e, p * 0.6, p * 0.8, 0.0]))
    mu_plus = cm_to_lab(np.array([e, -p * 0.6, -p * 0.8, 0.0]))
    ev = _events([{"tracks": [_track(mu_minus, -1), _track(mu_plus, +1)]}])
    o = observables(ev)
    assert set(o) == set(OBSERVABLES)
    assert o["m_mumu"][0] == pytest.approx(2.0 * e, rel=1e-12)
    assert o["m_recoil2"][0] == pytest.approx((SQRT_S - 2.0 * e) ** 2, rel=1e-10)
    assert o["m_recoil"][0] == pytest.approx(SQRT_S - 2.0 * e, rel=1e-10)
    assert o["pt_mumu_cm"][0] == pytest.approx(0.0, abs=1e-12)
    # the muons are back to back in the transverse plane of the c.m. frame: eta = 0 each
    assert o["eta_sum_cm"][0] == pytest.approx(0.0, abs=1e-12)
    assert o["eta_diff_cm"][0] == pytest.approx(0.0, abs=1e-12)
    # the recoil (sqrt(s) - M at rest in the c.m. frame) moves along +z in the lab
    assert o["theta_recoil"][0] == pytest.approx(0.0, abs=1e-9)
    # the pair at rest has no flight direction: cos theta* is undefined (NaN, or what the
    # rounding of the boosts leaves as a direction)
    assert not abs(o["cos_helicity"][0]) > 1.0
    masks = step_masks(ev)
    assert not masks["pt_mumu"][0]


@pytest.mark.parametrize(
    ("m", "p_pair", "cos_star", "phi_star"),
    [
        (3.0, np.array([1.2, -0.7, 2.0]), 0.6, 0.4),
        (8.0, np.array([0.3, 0.9, -1.5]), -0.95, 2.0),
        (0.5, np.array([-2.0, 1.0, 3.5]), 0.05, 5.0),
    ],
)
def test_boosted_pair_closed_form(
    m: float, p_pair: np.ndarray, cos_star: float, phi_star: float
) -> None:
    """A pair of mass m and c.m. momentum P: every observable in closed form."""
    a_cm, b_cm = _pair_cm(m, p_pair, cos_star, phi_star)
    mu_minus, mu_plus = cm_to_lab(a_cm), cm_to_lab(b_cm)
    e_pair = math.sqrt(m * m + float(p_pair @ p_pair))
    # listed mu+ first (the order of the tracks must not matter), then the charges swapped
    ev = _events(
        [
            {"tracks": [_track(mu_plus, +1), _track(mu_minus, -1)]},
            {"tracks": [_track(mu_minus, +1), _track(mu_plus, -1)]},
        ]
    )
    o = observables(ev)
    m2_rec = S + m * m - 2.0 * SQRT_S * e_pair
    np.testing.assert_allclose(o["m_mumu"], m, rtol=1e-10)
    np.testing.assert_allclose(o["m_recoil2"], m2_rec, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(o["m_recoil"], math.sqrt(max(m2_rec, 0.0)), rtol=1e-9)
    np.testing.assert_allclose(o["pt_mumu_cm"], math.hypot(p_pair[0], p_pair[1]), rtol=1e-10)
    np.testing.assert_allclose(o["cos_helicity"], [cos_star, -cos_star], rtol=1e-9, atol=1e-9)
    eta_pair = math.atanh(p_pair[2] / np.linalg.norm(p_pair))
    np.testing.assert_allclose(o["eta_mumu_cm"], eta_pair, rtol=1e-9)
    np.testing.assert_allclose(o["c_eta"], abs(eta_pair), rtol=1e-9)
    rec_lab = cm_to_lab(np.concatenate([[SQRT_S - e_pair], -p_pair]))
    np.testing.assert_allclose(o["theta_recoil"], polar_angle(rec_lab), rtol=1e-10)
    np.testing.assert_allclose(
        rec_lab, np.asarray(P_BEAMS_LAB) - mu_minus - mu_plus, rtol=1e-10, atol=1e-12
    )
    eta = [math.atanh(v[3] / np.linalg.norm(v[1:])) for v in (a_cm, b_cm)]
    np.testing.assert_allclose(o["eta_sum_cm"], eta[0] + eta[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(o["eta_diff_cm"], [eta[0] - eta[1], eta[1] - eta[0]], rtol=1e-9)


def test_fewer_than_two_tracks_nan() -> None:
    mu = cm_to_lab(np.array([3.0, 1.0, 0.5, 2.0]))
    ev = _events([{"tracks": []}, {"tracks": [_track(mu, -1)]}])
    o = observables(ev)
    for name in OBSERVABLES:
        assert np.all(np.isnan(o[name])), name
    masks = step_masks(ev)
    for name, mask in masks.items():
        if name != "trigger":
            assert not mask.any(), name


# --------------------------------------------------------------------------- steps
def _signal_like_event(**kw: object) -> dict:
    """A pair of mass 4 GeV, its recoil in the ECL barrel, that passes every step."""
    a, b = _pair_cm(4.0, np.array([2.0, 0.5, -0.3]), 0.3, 1.0)
    row: dict = {"tracks": [_track(cm_to_lab(a), -1), _track(cm_to_lab(b), +1)]}
    row.update(kw)
    return row


def test_steps_on_hand_built_events() -> None:
    base = _signal_like_event()
    ev0 = _events([base])
    o = observables(ev0)
    rec_theta = float(o["theta_recoil"][0])
    assert 34 * DEG < rec_theta < 123 * DEG
    phi = math.pi + math.atan2(0.5, 2.0)  # the recoil's azimuth (opposite the pair)

    def photon(e: float, dtheta_deg: float) -> tuple[float, float, float, float]:
        th = rec_theta + dtheta_deg * DEG
        return (
            e,
            e * math.sin(th) * math.cos(phi),
            e * math.sin(th) * math.sin(phi),
            e * math.cos(th),
        )

    lo_mu = _signal_like_event()
    lo_mu["tracks"][1]["muon_id"] = 0.4
    same = _signal_like_event()
    same["tracks"][1]["charge"] = -1
    far = _signal_like_event()
    far["tracks"][0]["d0"] = 0.6
    rows = [
        base,
        _signal_like_event(trigger=False),
        lo_mu,
        same,
        far,
        _signal_like_event(photons=[photon(0.5, 5.0)]),
        _signal_like_event(photons=[photon(0.5, 25.0)]),
        _signal_like_event(photons=[photon(0.05, 5.0)]),
    ]
    ev = _events(rows)
    masks = step_masks(ev, DarkHiggsSelection(photon_cone_deg=15.0, photon_energy_min_gev=0.1))
    assert list(masks) == list(STEPS)
    assert all(m[0] for m in masks.values())
    assert not masks["trigger"][1]
    assert masks["two_tracks"][1]
    assert not masks["muon_id"][2]
    assert masks["two_tracks"][2]
    assert not masks["two_tracks"][3]
    assert not masks["two_tracks"][4]
    assert list(masks["photon_veto"][5:]) == [False, True, True]
    # a photon vetoes exactly where the invisible-Z' helper says one is near the recoil
    np.testing.assert_array_equal(masks["photon_veto"], ~_photon_near_recoil(ev, 0.1, 15.0 * DEG))
    # the step's thresholds move
    sel = DarkHiggsSelection(photon_cone_deg=30.0, photon_energy_min_gev=0.01)
    assert list(step_masks(ev, sel)["photon_veto"][5:]) == [False, False, False]
    # helicity and C_eta cuts at the event's own values
    cos = abs(float(o["cos_helicity"][0]))
    assert not step_masks(ev0, DarkHiggsSelection(cos_helicity_max=cos - 1e-6))["helicity"][0]
    assert step_masks(ev0, DarkHiggsSelection(cos_helicity_max=cos + 1e-6))["helicity"][0]
    c_eta = float(o["c_eta"][0])
    assert not step_masks(ev0, DarkHiggsSelection(c_eta_max=c_eta - 1e-6))["c_eta"][0]


def test_photon_veto_agrees_with_invisible_zprime_helper(rng: np.random.Generator) -> None:
    """The same logic as invisible_zprime.selection._photon_near_recoil on random events."""
    rows = []
    for _ in range(400):
        p = rng.normal(0.0, 2.0, size=(2, 3))
        tracks = [
            _track(np.concatenate([[np.linalg.norm(v)], v]), q)
            for v, q in zip(p, (-1, 1), strict=True)
        ]
        photons = []
        for _ in range(rng.integers(0, 4)):
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            e = float(rng.uniform(0.1, 2.0))
            photons.append((e, *(e * d)))
        rows.append({"tracks": tracks, "photons": photons})
    ev = _events(rows)
    for e_min, cone in ((0.1, 15.0), (0.5, 40.0), (1.0, 90.0)):
        np.testing.assert_array_equal(
            photon_near_recoil(ev, e_min, cone * DEG),
            _photon_near_recoil(ev, e_min, cone * DEG),
        )


def test_from_config_section() -> None:
    """The configuration section maps field by field onto the dataclass."""
    section = DarkHiggsSelectionConfig(disabled=["c_eta"], photon_cone_deg=20.0)
    sel = DarkHiggsSelection.from_config(section)
    assert sel.disabled == frozenset({"c_eta"})
    assert sel.photon_cone_deg == 20.0
    assert sel.track_theta_deg == tuple(section.track_theta_deg)
    assert set(section.model_dump()) == {f.name for f in dataclasses.fields(sel)}


def test_disabled_steps_and_bad_settings() -> None:
    ev = _events([_signal_like_event()])
    masks = step_masks(ev, DarkHiggsSelection(disabled=frozenset({"helicity", "c_eta"})))
    assert list(masks) == [s for s in STEPS if s not in ("helicity", "c_eta")]
    with pytest.raises(ConfigError, match="unknown step 'punzinet'"):
        DarkHiggsSelection(disabled=frozenset({"punzinet"}))
    with pytest.raises(ConfigError, match="theta_recoil_barrel_deg"):
        DarkHiggsSelection(theta_recoil_barrel_deg=(123.0, 34.0))


@pytest.mark.parametrize(
    ("drop", "column"),
    [
        (("tracks", "muon_id"), "tracks.muon_id"),
        (("tracks", "charge"), "tracks.charge"),
        (("photons", "e"), "photons.e"),
        ("trg_two_track", "trg_two_track"),
        ("weight", "weight"),
    ],
)
def test_missing_column_is_one_line_input_error(drop: object, column: str) -> None:
    ev = _events([_signal_like_event()])
    if isinstance(drop, tuple):
        rec, name = drop
        inner = ev[rec]
        ev = ak.with_field(ev, inner[[f for f in ak.fields(inner) if f != name]], rec)
    else:
        ev = ev[[f for f in ak.fields(ev) if f != drop]]
    with pytest.raises(InputError) as err:
        select(ev)
    msg = str(err.value)
    assert f"'{column}'" in msg
    assert "\n" not in msg


# --------------------------------------------------------------------------- generated signal
def _true_muon_events(events: ak.Array) -> ak.Array:
    """Generator-level events as 'reconstructed' ones made of the two true muons."""
    parts = events["particles"]
    mu = parts[np.abs(parts.pdg) == 13]
    charge = ak.values_astype(-np.sign(mu.pdg), np.int32)
    n = len(events)
    ones = ak.ones_like(mu.px)
    tracks = ak.zip(
        {
            "charge": charge,
            "px": mu.px,
            "py": mu.py,
            "pz": mu.pz,
            "muon_id": ones,
            "d0": 0.0 * ones,
            "z0": 0.0 * ones,
        }
    )
    return ak.zip(
        {
            "event": events["event"],
            "weight": events["weight"],
            "trg_two_track": np.ones(n, dtype=bool),
            "tracks": tracks,
        },
        depth_limit=1,
    )


def _helicity_bin_probabilities(edges: np.ndarray, f_l: float, b2: float) -> np.ndarray:
    """Bin contents of f_L (1 - b^2 c^2) + (1 - f_L)(1 - b^2 (1 - c^2)/2) over [-1, 1]."""

    def cdf(c: np.ndarray) -> np.ndarray:
        lon = c - b2 * c**3 / 3.0
        tra = (1.0 - b2 / 2.0) * c + b2 * c**3 / 6.0
        return f_l * lon + (1.0 - f_l) * tra

    norm = 2.0 - 2.0 * b2 / 3.0  # both parts integrate to this
    return np.diff(cdf(edges)) / norm


@pytest.mark.parametrize(("ma", "mh"), [(2.0, 0.5), (4.0, 1.0), (8.0, 1.0)])
def test_helicity_distribution_of_generated_signal(ma: float, mh: float) -> None:
    """cos theta* of the true muons follows f_L (1 - b^2 cos^2) + (1 - f_L)(1 - b^2 sin^2/2)."""
    gen = AprimeHdarkGenerator(ma, mh, isr=False, n_pilot=1000)
    events = gen.generate(40_000, np.random.default_rng(2024)).events
    cos = observables(_true_muon_events(events))["cos_helicity"]
    e = (S + ma * ma - mh * mh) / (2.0 * SQRT_S)  # the A' c.m. energy without ISR
    f_l = e * e / (e * e + 2.0 * ma * ma)
    b2 = 1.0 - 4.0 * M_MUON**2 / (ma * ma)
    edges = np.linspace(-1.0, 1.0, 21)
    counts = np.histogram(cos, bins=edges)[0]
    assert counts.sum() == len(cos)
    expected = len(cos) * _helicity_bin_probabilities(edges, f_l, b2)
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert stats.chi2.sf(chi2, len(counts) - 1) > 1e-3, chi2
    # the test has power: a purely longitudinal or purely transverse A' is refused
    if f_l > 0.5:
        for wrong in (0.0, 1.0):
            alt = len(cos) * _helicity_bin_probabilities(edges, wrong, b2)
            assert float(np.sum((counts - alt) ** 2 / alt)) > 200.0


# --------------------------------------------------------------------------- cut flow, files
@pytest.fixture(scope="module")
def signal_reco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated signal sample (2019 trigger for every event)."""
    d = tmp_path_factory.mktemp("dh_signal")
    gen = write_aprime_hdark(4.0, 1.0, 4000, d / "gen", seed=7, workers=1, progress=False)
    cfg = load_config(None, **{"detector.configurations.simulation.trigger.fraction_2019": 1.0})
    return simulate_file(gen, d / "reco", config=cfg, seed=11)


def test_cut_flow_monotonic_and_file_output(signal_reco: Path, tmp_path: Path) -> None:
    from zprime.io.events import read_events

    events = read_events(signal_reco)
    sel = DarkHiggsSelection()
    selected, flow = select(events, sel, luminosity_fb=8.34, sample="sig")
    assert flow.steps == ["all", *STEPS]
    assert flow.counts[0] == len(events)
    assert all(a >= b for a, b in zip(flow.counts, flow.counts[1:], strict=False))
    assert all(a >= b for a, b in zip(flow.yields, flow.yields[1:], strict=False))
    assert 0 < flow.counts[-1] < flow.counts[1]
    w = np.asarray(ak.to_numpy(events["weight"]))
    assert flow.yields[0] == pytest.approx(w.sum() * 8.34)
    assert flow.yields[-1] == pytest.approx(selected["weight"].sum() * 8.34)
    assert len(selected["m_mumu"]) == flow.counts[-1]
    # the signal's own masses
    assert np.median(selected["m_mumu"]) == pytest.approx(4.0, abs=0.02)
    assert np.median(selected["m_recoil"]) == pytest.approx(1.0, abs=0.3)
    # the file-level selection, streamed in small batches, gives the same
    out, flow_file = select_file(
        signal_reco, tmp_path / "sel.parquet", sel, luminosity_fb=8.34, batch_size=700
    )
    assert flow_file.counts == flow.counts
    np.testing.assert_allclose(flow_file.yields, flow.yields, rtol=1e-12)
    table = pq.read_table(out)
    assert table.column_names == list(OUTPUT_COLUMNS)
    for name in OUTPUT_COLUMNS:
        np.testing.assert_allclose(table.column(name).to_numpy(), selected[name], rtol=1e-12)
    csv = (tmp_path / "sel.cutflow.csv").read_text().splitlines()
    assert csv[0].startswith("sample,step,events,yield")
    assert len(csv) == 1 + len(flow.steps)
    assert not list(tmp_path.glob(".*.part"))


def test_control_samples_are_disjoint_and_defined_by_their_steps(tmp_path: Path) -> None:
    base = _signal_like_event()
    ev0 = _events([base])
    o = observables(ev0)
    rec_theta = float(o["theta_recoil"][0])
    phi = math.pi + math.atan2(0.5, 2.0)
    near = (
        1.0,
        math.sin(rec_theta + 3 * DEG) * math.cos(phi),
        math.sin(rec_theta + 3 * DEG) * math.sin(phi),
        math.cos(rec_theta + 3 * DEG),
    )
    emu = _signal_like_event()
    emu["tracks"][1]["muon_id"] = 0.1
    emu["tracks"][1]["electron_id"] = 0.9
    emu_photon = _signal_like_event(photons=[near])
    emu_photon["tracks"][1]["muon_id"] = 0.1
    emu_photon["tracks"][1]["electron_id"] = 0.9
    rows = [
        base,  # selected
        _signal_like_event(photons=[near]),  # mu mu gamma: the veto fails
        _signal_like_event(photons=[near, near]),  # mu mu gamma with two photons
        _signal_like_event(photons=[near], trigger=False),  # no trigger: nothing
        emu,  # e mu
        emu_photon,  # e mu with a photon near the recoil: nothing
    ]
    ev = _events(rows)
    sel = DarkHiggsSelection()
    masks = step_masks(ev, sel)
    ctl = control_masks(ev, masks, sel)
    selected = np.logical_and.reduce(list(masks.values()))
    assert list(selected) == [True, False, False, False, False, False]
    assert list(ctl["mumugamma"]) == [False, True, True, False, False, False]
    assert list(ctl["emu"]) == [False, False, False, False, True, False]
    assert list(photons_near_recoil(ev, 0.1, 30 * DEG)) == [0, 1, 2, 1, 0, 1]
    # without electron identification there is no e mu sample
    no_e = ak.with_field(
        ev, ev["tracks"][["charge", "px", "py", "pz", "muon_id", "d0", "z0"]], "tracks"
    )
    assert not control_masks(no_e, step_masks(no_e, sel), sel)["emu"].any()
    # the control file of select_file holds exactly these events, with their codes
    reco = tmp_path / "reco.parquet"
    ak.to_parquet(ak.Array(ev.to_list()), reco)
    select_file(reco, tmp_path / "sel.parquet", sel, control_path=tmp_path / "ctl.parquet")
    t = pq.read_table(tmp_path / "ctl.parquet").to_pydict()
    assert list(t) == list(CONTROL_COLUMNS)
    assert t["event"] == [1, 2, 4]
    assert t["region"] == [CONTROL_REGIONS["mumugamma"]] * 2 + [CONTROL_REGIONS["emu"]]
    assert t["n_near_photons"] == [1, 2, 0]
    assert pq.read_table(tmp_path / "sel.parquet").to_pydict()["event"] == [0]
