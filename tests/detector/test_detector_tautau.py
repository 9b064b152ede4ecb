"""Tests of the tau-tau search's additions to the fast detector simulation (issue 19): the
three-track and single-muon (CDC-KLM) trigger lines, the pion identification and the kaon
options of the electron and muon identification, the optional schema columns, and that every
output that existed before them is unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from zprime.config import DetectorConfig, config_from_dict
from zprime.detector.realdata import COLUMNS, read_observed
from zprime.detector.simulation import (
    OPTIONAL_RECO_COLUMNS,
    OPTIONAL_TRACK_FIELDS,
    TRACK_FIELDS,
    _aux_rng,
    configuration_differences,
    get_detector,
    simulate,
    validate_reco_events,
)
from zprime.errors import InputError
from zprime.io.events import make_particles
from zprime.physics.constants import M_ELECTRON, M_MUON, M_PION
from zprime.physics.kinematics import four_momentum

DEG = np.pi / 180.0
_MASS = {11: M_ELECTRON, 13: M_MUON, 211: M_PION, 321: 0.493677, 2212: 0.938272, 22: 0.0}


def _p4(p: Any, theta_deg: Any, phi: Any, mass: float) -> np.ndarray:
    p, theta, phi = np.broadcast_arrays(
        np.asarray(p, float), np.asarray(theta_deg, float) * DEG, np.asarray(phi, float)
    )
    p3 = np.stack(
        [p * np.sin(theta) * np.cos(phi), p * np.sin(theta) * np.sin(phi), p * np.cos(theta)], -1
    )
    return four_momentum(p3, mass)


def _events(
    particles: list[tuple[int, float, float]], n: int, rng: np.random.Generator
) -> ak.Array:
    """``n`` events, each with the particles ``(pdg, p in GeV, theta in deg)`` at random phi
    (spaced by 360 / count degrees, so tracks never overlap)."""
    phi0 = rng.uniform(-np.pi, np.pi, n)
    k = len(particles)
    p4 = np.stack(
        [
            _p4(p, theta, phi0 + 2 * np.pi * i / k, _MASS[abs(pdg)])
            for i, (pdg, p, theta) in enumerate(particles)
        ],
        axis=1,
    )
    pdgs = np.tile([pdg for pdg, _, _ in particles], (n, 1))
    return ak.zip(
        {
            "event": np.arange(n, dtype=np.int64),
            "weight": np.ones(n),
            "particles": make_particles(pdgs, p4),
        },
        depth_limit=1,
    )


def _detector(**blocks: dict[str, Any]) -> DetectorConfig:
    """The nominal simulation with every track found and the given block changes."""
    changes: dict[str, Any] = {"based_on": "simulation", "tracking": {"efficiency": 1.0}}
    for block, values in blocks.items():
        changes.setdefault(block, {}).update(values)
    cfg = config_from_dict({"detector": {"configurations": {"t": changes}}})
    return cfg.detector.get("t")


def _assert_rate(passed: Any, expected: float, n_sigma: float = 4.0) -> None:
    """The fraction of true values agrees with ``expected`` within ``n_sigma`` binomial
    standard errors (exactly, for an expected 0 or 1)."""
    passed = np.asarray(passed, dtype=bool)
    f = float(passed.mean())
    sigma = float(np.sqrt(expected * (1.0 - expected) / passed.size))
    if sigma == 0.0:
        assert f == expected
    else:
        assert abs(f - expected) < n_sigma * sigma, f"{f:.4f} vs {expected:.4f} +- {sigma:.4f}"


# ---------------------------------------------------------------------------------------------
# three-track line


def test_three_track_trigger_conditions(rng: np.random.Generator) -> None:
    """Three tracks in 37-120 deg with pT > 0.3 GeV fire the line; two tracks, a track outside
    the polar-angle range or below the pT threshold do not."""
    det = _detector(trigger={"three_track_efficiency": 1.0})
    cases = [
        ([(211, 1.0, 70.0), (-211, 1.0, 80.0), (13, 2.0, 100.0)], True),
        ([(211, 1.0, 70.0), (-211, 1.0, 80.0)], False),
        ([(211, 1.0, 70.0), (-211, 1.0, 80.0), (13, 2.0, 25.0)], False),  # in CDC, not trigger
        ([(211, 1.0, 70.0), (-211, 1.0, 80.0), (13, 0.25, 90.0)], False),  # pT 0.25 < 0.3
        ([(211, 1.0, 70.0), (-211, 1.0, 80.0), (13, 0.25, 90.0), (11, 0.5, 60.0)], True),
    ]
    for particles, fires in cases:
        reco = simulate(_events(particles, 200, rng), det, np.random.default_rng(1))
        trg = ak.to_numpy(reco["trg_three_track"])
        assert trg.dtype == np.bool_
        assert trg.all() if fires else not trg.any(), particles
    # four tracks but the line asks for five
    det5 = _detector(trigger={"three_track_efficiency": 1.0, "three_track_min_tracks": 5})
    four = [(211, 1.0, 70.0), (-211, 1.0, 80.0), (13, 2.0, 100.0), (-13, 2.0, 60.0)]
    assert not ak.any(simulate(_events(four, 50, rng), det5, rng)["trg_three_track"])


def test_three_track_efficiency(rng: np.random.Generator) -> None:
    """The line fires with the configured per-event efficiency (nominal 0.93)."""
    det = _detector()
    assert det.trigger.three_track_efficiency == 0.93
    ev = _events([(211, 1.0, 70.0), (-211, 1.0, 80.0), (13, 2.0, 100.0)], 20000, rng)
    _assert_rate(ak.to_numpy(simulate(ev, det, rng)["trg_three_track"]), 0.93)


# ---------------------------------------------------------------------------------------------
# single-muon (CDC-KLM) line


@pytest.mark.parametrize(
    ("pdg", "p", "theta_deg", "rate"),
    [
        (13, 2.0, 70.0, 0.90),  # barrel KLM, p > 1 GeV: the line's muon efficiency
        (-13, 1.2, 125.0, 0.90),  # backward barrel, pT = 0.98 > 0.6
        (13, 0.8, 70.0, 0.0),  # below the 1 GeV momentum threshold
        (13, 2.0, 25.0, 0.0),  # forward endcap: not the barrel KLM
        (13, 2.0, 140.0, 0.0),  # backward endcap
        (-11, 2.0, 70.0, 0.0),  # electrons never reach the KLM
        (211, 2.0, 70.0, 0.03),  # pion punch-through
        (321, 2.0, 70.0, 0.03),  # kaons like pions
    ],
)
def test_single_muon_trigger(
    rng: np.random.Generator, pdg: int, p: float, theta_deg: float, rate: float
) -> None:
    ev = _events([(pdg, p, theta_deg)], 20000, rng)
    trg = ak.to_numpy(simulate(ev, _detector(), rng)["trg_single_muon"])
    assert trg.dtype == np.bool_
    _assert_rate(trg, rate)


def test_single_muon_trigger_switches(rng: np.random.Generator) -> None:
    """Efficiency 1 and hadron probability 0 make the line exact; pT below the barrel KLM's
    0.6 GeV (at p > 1 GeV, a forward-barrel track) never fires it."""
    det = _detector(trigger={"single_muon_efficiency": 1.0, "single_muon_hadron_probability": 0.0})
    ev = _events([(13, 2.0, 70.0), (211, 3.0, 100.0)], 500, rng)
    reco = simulate(ev, det, rng)
    assert ak.all(reco["trg_single_muon"])
    pions = simulate(_events([(211, 3.0, 100.0), (-211, 3.0, 80.0)], 500, rng), det, rng)
    assert not ak.any(pions["trg_single_muon"])
    # the pT threshold alone (polar-angle range widened): pT = 1.45 sin(24 deg) = 0.59 < 0.6
    det_pt = _detector(
        trigger={"single_muon_efficiency": 1.0, "single_muon_theta_deg": [20.0, 130.0]}
    )
    low_pt = simulate(_events([(13, 1.45, 24.0)], 300, rng), det_pt, rng)
    assert not ak.any(low_pt["trg_single_muon"])
    high_pt = simulate(_events([(13, 1.45, 40.0)], 300, rng), det_pt, rng)
    assert ak.all(high_pt["trg_single_muon"])


# ---------------------------------------------------------------------------------------------
# particle identification


def _pass(reco: ak.Array, score: str) -> np.ndarray:
    return ak.to_numpy(ak.flatten(reco["tracks"][score])) > 0.5


@pytest.mark.parametrize(
    ("pdg", "p", "theta_deg", "rate"),
    [
        (211, 2.0, 70.0, 0.93),  # KLM plateau (p > 1.5 GeV in the barrel)
        (-211, 0.5, 70.0, 0.75),  # below the KLM (p < 0.7 GeV)
        (211, 2.0, 17.5, 0.75),  # in the CDC (17-150 deg), not the KLM (18-155 deg)
        (211, 1.1, 70.0, 0.75 + (0.93 - 0.75) * 0.5),  # half-way up the linear turn-on
        (13, 2.0, 70.0, 0.005),  # mu -> pi on the plateau
        (-13, 0.5, 70.0, 0.05),  # mu -> pi below the KLM
        (11, 2.0, 70.0, 0.02),  # e -> pi
        (321, 2.0, 70.0, 0.10),  # K -> pi
        (2212, 2.0, 70.0, 0.10),  # p -> pi, as kaons
    ],
)
def test_pion_id_rates(
    rng: np.random.Generator, pdg: int, p: float, theta_deg: float, rate: float
) -> None:
    """P(pion_id > 0.5) matches the configured efficiency or mis-identification rate within
    binomial errors; scores lie in [0, 1]."""
    reco = simulate(_events([(pdg, p, theta_deg)], 20000, rng), _detector(), rng)
    scores = ak.to_numpy(ak.flatten(reco["tracks"]["pion_id"]))
    assert scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()
    _assert_rate(scores > 0.5, rate)


def test_pion_id_follows_the_data_klm_turn_on(rng: np.random.Generator) -> None:
    """The data configuration's slower KLM turn-on (plateau at 1.8 GeV) also delays the pion
    efficiency: at p = 1.5 GeV it is 0.75 + 0.18 * 0.8 / 1.1 instead of the plateau."""
    ev = _events([(211, 1.5, 70.0)], 20000, rng)
    sim = simulate(ev, "simulation", np.random.default_rng(3))
    data = simulate(ev, "data", np.random.default_rng(3))
    _assert_rate(_pass(sim, "pion_id"), 0.93)
    _assert_rate(_pass(data, "pion_id"), 0.75 + 0.18 * 0.8 / 1.1)


def test_kaon_options_of_electron_and_muon_id(rng: np.random.Generator) -> None:
    """By default kaons are mis-identified as pions are; muon_id.kaon_fake_scale and
    electron_id.kaon_fake change kaons only (pions keep their scores, bit for bit)."""
    ev = _events([(321, 2.0, 70.0), (211, 2.0, 110.0)], 20000, rng)
    nominal = simulate(ev, _detector(), np.random.default_rng(5))
    changed = simulate(
        ev,
        _detector(muon_id={"kaon_fake_scale": 0.0}, electron_id={"kaon_fake": 0.2}),
        np.random.default_rng(5),
    )
    for reco, mu_rate, e_rate in ((nominal, 0.03, 0.01), (changed, 0.0, 0.2)):
        is_k = ak.to_numpy(ak.flatten(reco["tracks"]["true_pdg"])) == 321
        _assert_rate(_pass(reco, "muon_id")[is_k], mu_rate)
        _assert_rate(_pass(reco, "electron_id")[is_k], e_rate)
    pions_a = nominal["tracks"][nominal["tracks"]["true_pdg"] == 211]
    pions_b = changed["tracks"][changed["tracks"]["true_pdg"] == 211]
    assert ak.array_equal(pions_a, pions_b)


# ---------------------------------------------------------------------------------------------
# existing outputs unchanged

_OLD_EVENT_COLUMNS = (
    "event",
    "weight",
    "period",
    "trg_two_track",
    "trg_bhabha_veto",
    "trg_ecl",
    "ecl_energy",
    "n_tracks",
    "n_photons",
    "m_recoil2",
    "m_recoil2_true",
    "e_photons",
    "min_angle_photon_recoil",
)
_OLD_TRACK_FIELDS = ("charge", "px", "py", "pz", "muon_id", "electron_id", "d0", "z0", "true_pdg")
# sha256 of the columns above for _mixed_sample() through simulate(..., rng(11)), computed with
# the simulation as it was before issue 19 (same numpy/scipy as the project's environment)
_REFERENCE_DIGESTS = {
    "simulation": "1c1f32ac16a4f9eb33473f7808e32c0b1c3d77380b4c8331666c37edb8c070ba",
    "data": "14649cef8ff5d65d7f31f253cc8f87b06d37da5301f6e0b215a0a49a274ad47f",
}


def _mixed_sample(n: int, seed: int) -> ak.Array:
    """mu+ mu- pi+ e- K+ p-bar gamma gamma with random momenta and directions."""
    rng = np.random.default_rng(seed)
    pdgs = np.array([13, -13, 211, -11, 321, -2212, 22, 22])
    mass = {13: 0.1056583755, 211: 0.13957039, 11: 0.00051099895, 321: 0.493677}
    mass |= {2212: 0.93827208816, 22: 0.0}
    p = rng.uniform(0.05, 5.0, (n, pdgs.size))
    th = np.arccos(rng.uniform(-0.98, 0.98, (n, pdgs.size)))
    ph = rng.uniform(-np.pi, np.pi, (n, pdgs.size))
    p3 = np.stack([p * np.sin(th) * np.cos(ph), p * np.sin(th) * np.sin(ph), p * np.cos(th)], -1)
    m = np.array([mass[abs(x)] for x in pdgs])
    return ak.zip(
        {
            "event": np.arange(n, dtype=np.int64),
            "weight": np.ones(n),
            "particles": make_particles(np.tile(pdgs, (n, 1)), four_momentum(p3, m[None, :])),
        },
        depth_limit=1,
    )


def _old_digest(reco: ak.Array) -> str:
    h = hashlib.sha256()
    for f in _OLD_EVENT_COLUMNS:
        h.update(np.ascontiguousarray(ak.to_numpy(reco[f])).tobytes())
    for f in _OLD_TRACK_FIELDS:
        h.update(np.ascontiguousarray(ak.to_numpy(ak.flatten(reco["tracks"][f]))).tobytes())
    for f in ("e", "px", "py", "pz"):
        h.update(np.ascontiguousarray(ak.to_numpy(ak.flatten(reco["photons"][f]))).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("detector", ["simulation", "data"])
def test_existing_outputs_match_the_reference(detector: str) -> None:
    """Bit for bit the columns of the simulation before issue 19 (stored digests)."""
    reco = simulate(_mixed_sample(500, 5), detector, np.random.default_rng(11))
    assert _old_digest(reco) == _REFERENCE_DIGESTS[detector]
    # the new columns come after the old ones: positions of existing fields are unchanged
    assert tuple(ak.fields(reco["tracks"])) == (*TRACK_FIELDS, *OPTIONAL_TRACK_FIELDS)


def test_existing_outputs_do_not_depend_on_the_new_parameters() -> None:
    """Changing every new parameter (pion ID, three-track and single-muon lines) leaves every
    earlier column identical and the caller's generator where it was."""
    ev = _mixed_sample(2000, 8)
    changed = _detector(
        pion_id={
            "efficiency_low": 0.3,
            "efficiency_high": 0.5,
            "muon_fake_low": 0.4,
            "muon_fake_high": 0.2,
            "electron_fake": 0.3,
            "kaon_fake": 0.6,
            "score_spread": 0.5,
        },
        trigger={
            "three_track_theta_deg": [20.0, 140.0],
            "three_track_pt_min_gev": 0.1,
            "three_track_min_tracks": 2,
            "three_track_efficiency": 0.5,
            "single_muon_theta_deg": [18.0, 155.0],
            "single_muon_pt_min_gev": 0.1,
            "single_muon_p_min_gev": 0.5,
            "single_muon_efficiency": 0.5,
            "single_muon_hadron_probability": 0.5,
        },
    )
    nominal = _detector()
    assert len(configuration_differences(nominal, changed)) == 16
    ga, gb = np.random.default_rng(4), np.random.default_rng(4)
    a, b = simulate(ev, nominal, ga), simulate(ev, changed, gb)
    assert _old_digest(a) == _old_digest(b)
    assert not ak.array_equal(a["tracks"]["pion_id"], b["tracks"]["pion_id"])
    for col in OPTIONAL_RECO_COLUMNS:
        assert not np.array_equal(ak.to_numpy(a[col]), ak.to_numpy(b[col]))
    assert ga.bit_generator.state == gb.bit_generator.state


def test_aux_rng_leaves_the_generator_alone() -> None:
    gen = np.random.default_rng(9)
    before = gen.bit_generator.state
    x = _aux_rng(gen).random(4)
    assert gen.bit_generator.state == before
    assert np.array_equal(x, _aux_rng(np.random.default_rng(9)).random(4))  # reproducible
    assert not np.array_equal(x, np.random.default_rng(9).random(4))  # another stream


def test_equal_configurations_and_data_share_the_new_random_numbers(
    rng: np.random.Generator,
) -> None:
    """The data configuration has no tau-tau differences (none published): its new columns
    equal the simulation's wherever the inputs to them are equal."""
    sim, data = get_detector("simulation")[1], get_detector("data")[1]
    diffs = configuration_differences(sim, data)
    assert not any(k.startswith("pion_id") or "three_track" in k or "single" in k for k in diffs)
    ev = _events([(211, 0.6, 70.0), (-211, 0.6, 80.0), (13, 0.6, 100.0)], 2000, rng)
    a = simulate(ev, "simulation", np.random.default_rng(2))
    b = simulate(ev, "data", np.random.default_rng(2))
    # p = 0.6 GeV: below the KLM, so the data's slower turn-on does not matter
    assert ak.array_equal(a["tracks"]["pion_id"], b["tracks"]["pion_id"])
    assert np.array_equal(ak.to_numpy(a["trg_three_track"]), ak.to_numpy(b["trg_three_track"]))


# ---------------------------------------------------------------------------------------------
# schema and real data


def test_schema_with_and_without_the_optional_columns(rng: np.random.Generator) -> None:
    reco = simulate(_mixed_sample(300, 3), "simulation", rng)
    validate_reco_events(reco)
    # a file written before issue 19 (no optional columns) still validates
    old_tracks = reco["tracks"][list(TRACK_FIELDS)]
    old = ak.with_field(
        reco[[f for f in ak.fields(reco) if f not in OPTIONAL_RECO_COLUMNS]], old_tracks, "tracks"
    )
    validate_reco_events(old)
    bad = ak.with_field(
        reco, ak.values_astype(reco["trg_three_track"], np.int32), "trg_three_track"
    )
    with pytest.raises(InputError, match="'trg_three_track' is not boolean"):
        validate_reco_events(bad)
    nan_pi = ak.with_field(reco["tracks"], reco["tracks"]["pion_id"] * np.nan, "pion_id")
    with pytest.raises(InputError, match=r"'tracks.pion_id' has NaN"):
        validate_reco_events(ak.with_field(reco, nan_pi, "tracks"))


def test_real_data_optional_columns(tmp_path: Path, rng: np.random.Generator) -> None:
    """A column map without the new columns gives events without them (not available), as
    before; one that maps them gives them, with the values of the file."""
    for name in (*OPTIONAL_RECO_COLUMNS, *(f"tracks.{f}" for f in OPTIONAL_TRACK_FIELDS)):
        assert not COLUMNS[name].required
    reco = simulate(
        _events([(13, 3.0, 60.0), (-13, 3.0, 100.0), (211, 1.0, 80.0)], 50, rng), "simulation", rng
    )
    t = reco["tracks"]
    cols = {
        "px": t.px,
        "py": t.py,
        "pz": t.pz,
        "q": t.charge,
        "muid": t.muon_id,
        "pid": t.pion_id,
        "dr": t.d0,
        "dz": t.z0,
        "trg": ak.values_astype(reco["trg_two_track"], np.float64),
        "trg3": ak.values_astype(reco["trg_three_track"], np.float64),
        "trgmu": ak.values_astype(reco["trg_single_muon"], np.float64),
        "egam": reco["e_photons"],
        "angle": reco["min_angle_photon_recoil"],
    }
    path = tmp_path / "data.parquet"
    pq.write_table(ak.to_arrow_table(ak.zip(cols, depth_limit=1)), path)
    base = {
        "tracks.px": "px",
        "tracks.py": "py",
        "tracks.pz": "pz",
        "tracks.charge": "q",
        "tracks.muon_id": "muid",
        "tracks.d0": "dr",
        "tracks.z0": "dz",
        "trg_two_track": "trg",
        "e_photons": "egam",
        "min_angle_photon_recoil": "angle",
    }
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"columns": base}))
    data = read_observed(path, plain)
    assert not set(OPTIONAL_RECO_COLUMNS) & set(ak.fields(data))
    assert tuple(ak.fields(data["tracks"])) == TRACK_FIELDS
    full = tmp_path / "full.yaml"
    extra = {"trg_three_track": "trg3", "trg_single_muon": "trgmu", "tracks.pion_id": "pid"}
    full.write_text(yaml.safe_dump({"columns": {**base, **extra}}))
    data = read_observed(path, full)
    validate_reco_events(data)
    assert tuple(ak.fields(data["tracks"])) == (*TRACK_FIELDS, *OPTIONAL_TRACK_FIELDS)
    for col in OPTIONAL_RECO_COLUMNS:
        assert np.array_equal(ak.to_numpy(data[col]), ak.to_numpy(reco[col]))
    # tracks are stored by decreasing momentum in both
    assert ak.array_equal(data["tracks"]["pion_id"], reco["tracks"]["pion_id"])
