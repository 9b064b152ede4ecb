"""Background samples of the tau-tau resonance search (issue 19): q qbar through Pythia 8, the
1x3-prong tau pairs, and the four-fermion e e mu mu, e e tau tau and mu mu tau tau samples, all
with the four-track filter."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from particle.pdgid import three_charge

from zprime.config import config_from_dict, default_config
from zprime.errors import ConfigError
from zprime.generators import backgrounds as bg
from zprime.generators import fourfermion as ff
from zprime.generators import tau_decays as td
from zprime.generators import tautau as tt
from zprime.generators.filters import filter_particles
from zprime.io.events import read_events, read_metadata
from zprime.physics.constants import E_ELECTRON_BEAM, E_POSITRON_BEAM

NEW = ("qqbar", "tautau_4trk", "eemumu_4trk", "eetautau", "mumutautau")
# Belle II Physics Book (arXiv:1808.10567), e+e- -> q qbar at 10.58 GeV, fb
PB_FB = {1: 0.40e6, 2: 1.61e6, 3: 0.38e6, 4: 1.30e6}
THREE_PRONG = {td.MODE_CODES[m] for m in td.CHANNEL_GROUPS["a1_3prong"]} | {
    td.MODE_CODES[m] for m in td.CHANNEL_GROUPS["3prong_other"]
}


def _settings(name: str, **filt: Any) -> dict[str, Any]:
    settings = bg.sample_settings(name, default_config())
    settings["filter"] = {**settings["filter"], **filt}
    return settings


def _good_tracks(particles: ak.Array) -> np.ndarray:
    """Independent count: e, mu, pi, K, p with p_T > 0.1 GeV in 17-150 deg."""
    flat = ak.flatten(particles)
    charged = np.isin(np.abs(ak.to_numpy(flat.pdg)), [11, 13, 211, 321, 2212])
    pt = np.hypot(ak.to_numpy(flat.px), ak.to_numpy(flat.py))
    theta = np.degrees(np.arctan2(pt, ak.to_numpy(flat.pz)))
    good = charged & (pt > 0.1) & (theta > 17.0) & (theta < 150.0)
    return ak.to_numpy(ak.sum(ak.unflatten(good, ak.num(particles)), axis=1))


def _charge(particles: ak.Array) -> np.ndarray:
    flat = ak.to_numpy(ak.flatten(particles.pdg))
    codes, inverse = np.unique(flat, return_inverse=True)
    q3 = np.array([three_charge(int(c)) or 0 for c in codes])[inverse]
    return ak.to_numpy(ak.sum(ak.unflatten(q3, ak.num(particles)), axis=1))


# ------------------------------------------------------------------------------ configuration


def test_samples_are_configured_outside_the_default_runs() -> None:
    cfg = default_config()
    assert set(NEW) <= set(bg.sample_names(cfg))
    assert not set(NEW) & set(cfg.backgrounds.default_run)
    for name in NEW:
        sample = cfg.backgrounds.samples[name]
        filt = sample.filter
        assert filt.serves == "four_track"
        assert (filt.min_tracks, filt.max_tracks, filt.min_tracks_per_charge) == (4, 6, 1)
        assert filt.track_pt_min_gev <= cfg.detector.get().tracking.pt_min_gev
        assert sample.luminosity_factor is not None
        bg.check_filter(name, cfg)  # looser than the four-track selection
    opts = {n: cfg.backgrounds.samples[n].options for n in ("eetautau", "mumutautau")}
    assert opts["eetautau"]["final_state"] == "eetautau"
    assert opts["mumutautau"]["final_state"] == "mumutautau"
    # the invisible-Z' regions of the four-fermion sampler do not apply to four tracks
    for name in ("eemumu_4trk", "eetautau", "mumutautau"):
        o = cfg.backgrounds.samples[name].options
        assert o["detected_suppression"] == o["far_suppression"] == 1.0


def test_qqbar_normalisation_is_the_physics_book_per_flavour() -> None:
    settings = bg.sample_settings("qqbar")
    assert bg.flavour_xsec(settings) == PB_FB
    assert settings["xsec_ref_fb"] == pytest.approx(3.69e6)
    assert "23:onIfAny = 1 2 3 4" in settings["pythia"]
    n, info = bg.sample_size(dict(settings), 62.8)
    assert n == math.ceil(settings["luminosity_factor"] * 62.8 * 3.69e6)
    assert info["xsec_ref_by_flavour_fb"] == {str(k): v for k, v in PB_FB.items()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"options": {"xsec_ref_by_flavour_fb": {"u": 1.0e6}}}, "sums to"),
        ({"options": {"xsec_ref_by_flavour_fb": {"t": 3.69e6}}}, "unknown quark 't'"),
        ({"options": {"xsec_ref_by_flavour_fb": {"u": -1.0}}}, "positive"),
        ({"options": {"flavours": 4}}, r"options\.flavours: unknown option"),
    ],
)
def test_flavour_normalisation_errors(change: dict[str, Any], message: str) -> None:
    settings = {**bg.sample_settings("qqbar"), **change}
    with pytest.raises(ConfigError, match=message):
        bg.flavour_xsec(settings)


def test_the_two_prong_tautau_sample_has_no_three_prong_taus() -> None:
    """Why tautau_4trk exists: the invisible-Z' tau pairs are forced to one-prong modes."""
    two = tt.resolve_options(bg.sample_settings("tautau")["options"])
    assert not set(two["_codes"].tolist()) & THREE_PRONG
    four = tt.resolve_options(bg.sample_settings("tautau_4trk")["options"], "tautau_4trk")
    assert set(four["_modes"]) == set(td.MODE_CODES)
    # every mode, and the weight is the fraction of pairs with at least one 3-prong tau
    b3 = sum(td.branching_fractions()[m] for m in td.MODE_CODES if td.MODE_CODES[m] in THREE_PRONG)
    assert tt.br_weight(four) == pytest.approx(1.0 - (1.0 - b3) ** 2, rel=1e-9)


# ------------------------------------------------------------------------------ q qbar, Pythia


def test_qqbar_flavour_mix_charge_and_momentum_conservation() -> None:
    """400 events without the filter: the weights of each flavour sum to its Physics Book cross
    section, the generated mix is Pythia's (e_q^2: u and c about 4x d and s), every event is
    neutral and conserves the beams' four-momentum."""
    res = bg.chunk(_settings("qqbar", enabled=False), 400, 2024)
    ev = res.events
    assert len(ev) == 400
    flavour = ak.to_numpy(ev.quark_flavour)
    w = ak.to_numpy(ev.weight)
    assert set(np.unique(flavour)) <= {1, 2, 3, 4}
    for code, sigma in PB_FB.items():
        assert w[flavour == code].sum() == pytest.approx(sigma, rel=1e-9)
    frac = {code: np.mean(flavour == code) for code in PB_FB}
    assert 0.30 < frac[2] < 0.52  # Pythia: 0.41 (u)
    assert 0.28 < frac[4] < 0.50  # 0.39 (c)
    assert 0.04 < frac[1] < 0.17  # 0.10 (d)
    assert 0.04 < frac[3] < 0.17  # 0.10 (s)
    assert res.sigma_fb == pytest.approx(3.4e6, rel=0.1)  # sigmaGen, m_hat > 2 GeV
    parts = ev.particles
    np.testing.assert_array_equal(_charge(parts), 0)
    e = ak.to_numpy(ak.sum(parts.e, axis=1))
    pz = ak.to_numpy(ak.sum(parts.pz, axis=1))
    np.testing.assert_allclose(e, E_ELECTRON_BEAM + E_POSITRON_BEAM, atol=1e-6)
    np.testing.assert_allclose(pz, E_ELECTRON_BEAM - E_POSITRON_BEAM, atol=1e-6)
    # the charged final state is e, mu, pi, K, p
    codes = np.unique(np.abs(ak.to_numpy(ak.flatten(parts.pdg))))
    charged = {int(c) for c in codes if three_charge(int(c))}
    assert charged <= {11, 13, 211, 321, 2212}
    # the filter against an independent count of the good tracks
    n_good = _good_tracks(parts)
    passed = filter_particles(parts, bg.sample_settings("qqbar")["filter"])
    assert np.all(passed <= ((n_good >= 4) & (n_good <= 6)))
    assert 0.30 < passed.mean() < 0.60  # 0.454 measured on 20,000 events


def test_qqbar_sample_through_the_driver(tmp_path: Path) -> None:
    cfg = config_from_dict({"backgrounds": {"samples": {"qqbar": {"chunk_size": 300}}}})
    path = bg.generate_sample("qqbar", 600, tmp_path, config=cfg, executor="serial", progress=False)
    meta = read_metadata(path)
    ev = read_events(path)
    n_good = _good_tracks(ev.particles)
    assert np.all((n_good >= 4) & (n_good <= 6))
    assert meta["sigma_norm_fb"] == pytest.approx(3.69e6)
    assert 0.30 < meta["filter_efficiency"] < 0.60
    w = ak.to_numpy(ev.weight)
    assert w.sum() == pytest.approx(meta["sigma_filtered_fb"])
    assert meta["filter"]["serves"] == "four_track"
    assert meta["xsec_ref_by_flavour_fb"]["4"] == pytest.approx(1.30e6)


# ------------------------------------------------------------------------------ tau pairs


def test_tautau_4trk_makes_the_one_by_three_prong_topology() -> None:
    settings = bg.sample_settings("tautau_4trk")
    res = tt.chunk(settings, 4000, 11)
    ev = res.events
    modes = np.stack([ak.to_numpy(ev.tau_minus_mode), ak.to_numpy(ev.tau_plus_mode)], axis=1)
    three = np.isin(modes, list(THREE_PRONG))
    assert np.all(three.any(axis=1))  # every pair has a 3-prong tau
    one_by_three = three.sum(axis=1) == 1
    assert 0.7 < one_by_three.mean() < 0.98  # 1x3 dominates 3x3
    n_good = _good_tracks(ev.particles)
    assert np.all((n_good >= 4) & (n_good <= 6))
    assert 0.55 < len(ev) / 4000 < 0.8  # 0.69 measured on 200,000 pairs
    # partners in every mode: leptons and one-prong hadrons
    partners = np.where(three[:, 0], modes[:, 1], modes[:, 0])[one_by_three]
    assert {td.MODE_CODES["e"], td.MODE_CODES["mu"], td.MODE_CODES["rho"]} <= set(partners)
    # the weights sum to sigma x B(>= one 3-prong) x filter efficiency
    w = ak.to_numpy(ev.weight)
    opts = tt.resolve_options(settings["options"], "tautau_4trk")
    assert w.sum() == pytest.approx(0.919e6 * tt.br_weight(opts) * len(ev) / 4000, rel=1e-9)


# ------------------------------------------------------------------------------ four fermions


@pytest.fixture
def quick_training(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Train the four-fermion maps on few points (weights stay exact, only less efficient)."""
    monkeypatch.setattr(ff, "_TRAIN_ITERATIONS", 4)
    monkeypatch.setattr(ff, "_TRAIN_POINTS", 8000)
    monkeypatch.setattr(ff, "_INTEGRATION_POINTS", 20000)
    ff._trained.cache_clear()
    yield
    ff._trained.cache_clear()


@pytest.mark.parametrize(
    ("name", "leptons", "sigma_fb"),
    [("eetautau", 11, 3.2e3), ("mumutautau", 13, 84.3), ("eemumu_4trk", 11, 2.9e3)],
)
@pytest.mark.usefixtures("quick_training")
def test_four_fermion_samples_generate_four_tracks(
    name: str, leptons: int, sigma_fb: float
) -> None:
    """Each sample runs through its chunk function with the four-track filter: every kept event
    has 4-6 good tracks and the pair of leptons, and the weights sum to the filtered cross
    section measured with the full training (docs/backgrounds.md) within the statistics."""
    settings = bg.sample_settings(name)
    info = ff.describe(settings)
    res = ff.chunk(settings, 20000, 5)
    ev = res.events
    assert len(ev) > 100
    n_good = _good_tracks(ev.particles)
    assert np.all((n_good >= 4) & (n_good <= 6))
    pdg = ak.to_numpy(ak.flatten(ev.particles.pdg))
    assert not np.any(np.isin(np.abs(pdg), (12, 14, 15, 16)))  # taus decayed, no neutrinos
    assert np.any(pdg == leptons)
    assert np.any(pdg == -leptons)
    np.testing.assert_array_equal(_charge(ev.particles), 0)
    w = ak.to_numpy(ev.weight)
    assert np.all(w > 0.0)
    err = math.sqrt(float(np.sum(w * w))) + info["sigma_filtered_err_fb"]
    assert abs(w.sum() - sigma_fb) < 4.0 * err + 0.05 * sigma_fb


# ------------------------------------------------------------------------------ closure


def _four_found(events: ak.Array, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Events with exactly four tracks found by the fast detector, and whether their tracks
    include both charges (what the selection's opposite-charge muon pair needs)."""
    from zprime.detector.simulation import simulate

    reco = simulate(events, rng=np.random.default_rng(seed), config=default_config())
    charge = reco["tracks"]["charge"]
    four = ak.to_numpy(ak.num(charge, axis=1)) == 4
    both = ak.to_numpy(ak.any(charge > 0, axis=1) & ak.any(charge < 0, axis=1))
    return four, both


def test_the_four_track_filter_drops_no_event_the_selection_can_keep() -> None:
    """Unfiltered q qbar events and tau pairs in every mode through the detector: every event
    with exactly four found tracks of both charges passes the four-track filter (the filter
    drops only four same-sign tracks), and every four-track tau pair has a 3-prong tau (so
    tautau_4trk's require_one_of loses nothing)."""
    filt = bg.sample_settings("qqbar")["filter"]
    qq = bg.chunk(_settings("qqbar", enabled=False), 12000, 31).events
    four, both = _four_found(qq, 1)
    passed = filter_particles(qq.particles, filt)
    assert (four & both).sum() > 1000
    assert not np.any(four & both & ~passed)
    assert (four & ~passed).sum() <= 10  # four tracks of one sign (8 in 40,000 events)
    settings = bg.sample_settings("tautau_4trk")
    every_mode = {**settings, "options": {"channels": None}, "filter": {"enabled": False}}
    taus = tt.chunk(every_mode, 20000, 32).events
    four, both = _four_found(taus, 2)
    assert (four & both).sum() > 2000
    assert not np.any(four & both & ~filter_particles(taus.particles, filt))
    modes = np.stack([ak.to_numpy(taus.tau_minus_mode), ak.to_numpy(taus.tau_plus_mode)], 1)
    assert np.all(np.isin(modes, list(THREE_PRONG)).any(axis=1)[four])
