"""Generator-level filters, luminosity-factor sizing and the generator names of the driver."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zprime.config import config_from_dict, default_config
from zprime.errors import ConfigError
from zprime.generators import backgrounds as bg
from zprime.generators.filters import check_against_selection, filter_mask, filter_particles
from zprime.io.events import make_particles
from zprime.physics.constants import P_BEAMS_LAB

BASE = {
    "enabled": True,
    "min_tracks": 2,
    "track_pt_min_gev": 0.3,
    "theta_min_deg": 17.0,
    "theta_max_deg": 150.0,
    "prong_theta_deg": None,
    "recoil_pt_cm_min_gev": None,
    "recoil_theta_max_deg": None,
}


def _p4(mass: float, p: float, theta_deg: float, phi: float) -> np.ndarray:
    th = math.radians(theta_deg)
    px, py, pz = (
        p * math.sin(th) * math.cos(phi),
        p * math.sin(th) * math.sin(phi),
        p * math.cos(th),
    )
    return np.array([math.hypot(p, mass), px, py, pz])


def _event(*particles: tuple[int, np.ndarray], k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    pdg = np.zeros((1, k), dtype=np.int64)
    p4 = np.zeros((1, k, 4))
    for i, (code, mom) in enumerate(particles):
        pdg[0, i] = code
        p4[0, i] = mom
    return pdg, p4


def test_track_counting_uses_charge_acceptance_and_pt() -> None:
    mu1 = (13, _p4(0.106, 3.0, 60.0, 0.0))
    mu2 = (-13, _p4(0.106, 3.0, 100.0, 2.5))
    nu = (14, _p4(0.0, 3.0, 90.0, 1.0))
    gamma = (22, _p4(0.0, 3.0, 90.0, 1.0))
    assert filter_mask(*_event(mu1, mu2), BASE)[0]
    assert not filter_mask(*_event(mu1, nu, gamma), BASE)[0]  # one track only
    forward = (-13, _p4(0.106, 3.0, 15.0, 2.5))  # outside the CDC (17-150 deg)
    assert not filter_mask(*_event(mu1, forward), BASE)[0]
    soft = (-13, _p4(0.106, 0.25, 90.0, 2.5))  # p_T 0.25 < 0.3 GeV
    assert not filter_mask(*_event(mu1, soft), BASE)[0]
    assert filter_mask(*_event(mu1, soft), {**BASE, "enabled": False})[0]


def test_two_prong_cuts() -> None:
    mu1 = (13, _p4(0.106, 3.0, 60.0, 0.0))
    mu2 = (-13, _p4(0.106, 3.0, 100.0, 2.5))
    window = {**BASE, "prong_theta_deg": (35.0, 122.0)}
    assert filter_mask(*_event(mu1, mu2), window)[0]
    mu_out = (-13, _p4(0.106, 3.0, 125.0, 2.5))
    assert not filter_mask(*_event(mu1, mu_out), window)[0]
    # a third good prong: the two-prong cuts do not apply (the selection needs a lost track)
    pi = (211, _p4(0.14, 1.0, 90.0, 4.0))
    assert filter_mask(*_event(mu1, mu_out, pi), window)[0]
    # the recoil against the two prongs
    pdg, p4 = _event(mu1, mu2)
    rec = np.asarray(P_BEAMS_LAB) - p4[0, 0] - p4[0, 1]
    pt = math.hypot(rec[1], rec[2])
    theta = math.degrees(math.atan2(pt, rec[3]))
    assert filter_mask(pdg, p4, {**BASE, "recoil_pt_cm_min_gev": pt - 1e-6})[0]
    assert not filter_mask(pdg, p4, {**BASE, "recoil_pt_cm_min_gev": pt + 1e-6})[0]
    assert filter_mask(pdg, p4, {**BASE, "recoil_theta_max_deg": theta + 1e-6})[0]
    assert not filter_mask(pdg, p4, {**BASE, "recoil_theta_max_deg": theta - 1e-6})[0]


def test_ragged_and_padded_forms_agree() -> None:
    rng = np.random.default_rng(5)
    n, k = 2000, 4
    pdg = rng.choice([13, -13, 211, 22, 14, 0], size=(n, k))
    p = rng.uniform(0.1, 5.0, (n, k))
    th = np.arccos(rng.uniform(-1, 1, (n, k)))
    ph = rng.uniform(0, 2 * np.pi, (n, k))
    p4 = np.stack([p, p * np.sin(th) * np.cos(ph), p * np.sin(th) * np.sin(ph), p * np.cos(th)], -1)
    filt = {
        **BASE,
        "prong_theta_deg": (35.0, 122.0),
        "recoil_pt_cm_min_gev": 0.4,
        "recoil_theta_max_deg": 128.0,
    }
    padded = filter_mask(pdg, p4, filt)
    counts = (pdg != 0).sum(axis=1)
    order = np.argsort(pdg == 0, axis=1, kind="stable")
    rows = np.arange(n)[:, None]
    flat_pdg = pdg[rows, order][np.arange(k)[None, :] < counts[:, None]]
    flat_p4 = p4[rows, order][np.arange(k)[None, :] < counts[:, None]]
    ragged = filter_particles(make_particles(flat_pdg, flat_p4, counts), filt)
    np.testing.assert_array_equal(padded, ragged)
    assert 0 < padded.sum() < n


def test_filter_tighter_than_the_selection_is_refused() -> None:
    cfg = default_config()
    sel = cfg.selection
    where = "backgrounds.samples.x.filter"
    check_against_selection(
        {
            **BASE,
            "prong_theta_deg": (35.0, 122.0),
            "recoil_pt_cm_min_gev": 0.4,
            "recoil_theta_max_deg": 128.0,
        },
        sel,
        (37.0, 120.0),
        where,
    )
    with pytest.raises(ConfigError, match=r"filter\.track_pt_min_gev = 0\.5"):
        check_against_selection({**BASE, "track_pt_min_gev": 0.5}, sel, (37.0, 120.0), where)
    with pytest.raises(ConfigError, match=r"filter\.prong_theta_deg"):
        check_against_selection(
            {**BASE, "prong_theta_deg": (40.0, 122.0)}, sel, (37.0, 120.0), where
        )
    with pytest.raises(ConfigError, match=r"filter\.recoil_pt_cm_min_gev"):
        check_against_selection({**BASE, "recoil_pt_cm_min_gev": 0.6}, sel, (37.0, 120.0), where)
    with pytest.raises(ConfigError, match=r"filter\.recoil_theta_max_deg"):
        check_against_selection({**BASE, "recoil_theta_max_deg": 120.0}, sel, (37.0, 120.0), where)
    with pytest.raises(ConfigError, match=r"filter\.min_tracks"):
        check_against_selection({**BASE, "min_tracks": 3}, sel, (37.0, 120.0), where)
    # a step switched off makes the matching cut too tight
    loose = config_from_dict({"selection": {"disabled": ["recoil_pt"]}}).selection
    with pytest.raises(ConfigError, match="recoil_pt step is disabled"):
        check_against_selection({**BASE, "recoil_pt_cm_min_gev": 0.4}, loose, (37.0, 120.0), where)


def test_driver_refuses_a_tight_filter_before_writing(tmp_path) -> None:
    cfg = config_from_dict(
        {"backgrounds": {"samples": {"mumu_pythia": {"filter": {"recoil_pt_cm_min_gev": 0.7}}}}}
    )
    with pytest.raises(ConfigError, match=r"backgrounds\.samples\.mumu_pythia\.filter"):
        bg.generate_sample("mumu_pythia", 100, tmp_path, config=cfg, progress=False)
    assert not list(tmp_path.iterdir())


def test_luminosity_factor_sizes_the_sample() -> None:
    cfg = config_from_dict(
        {"backgrounds": {"samples": {"mumu_pythia": {"luminosity_factor": 0.001}}}}
    )
    settings = bg.sample_settings("mumu_pythia", cfg)
    n, info = bg.sample_size(settings, cfg.luminosity_fb)
    assert info["sigma_equivalent_fb"] == pytest.approx(1.148e6)
    assert n == math.ceil(0.001 * 79.7 * 1.148e6)
    assert settings["target_weight_fb"] == pytest.approx(1.0 / (0.001 * 79.7))
    # explicit numbers of events win
    assert bg.sample_size(bg.sample_settings("mumu_pythia", cfg), 79.7, 123)[0] == 123


@pytest.mark.parametrize("value", [0.0, -5.0])
def test_non_positive_luminosity_factor_is_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="luminosity_factor"):
        config_from_dict({"backgrounds": {"samples": {"tautau": {"luminosity_factor": value}}}})


def test_luminosity_factor_needs_a_known_cross_section() -> None:
    cfg = config_from_dict(
        {"backgrounds": {"samples": {"eemumu_pythia": {"luminosity_factor": 2.0}}}}
    )
    with pytest.raises(ConfigError, match=r"eemumu_pythia\.luminosity_factor"):
        bg.sample_size(bg.sample_settings("eemumu_pythia", cfg), cfg.luminosity_fb)


def test_generator_short_names() -> None:
    assert (
        bg.generator_target({"name": "x", "generator": "pythia"})
        == "zprime.generators.backgrounds:chunk"
    )
    assert bg.generator_target({"name": "x", "generator": "a.b:c"}) == "a.b:c"
    with pytest.raises(ConfigError, match=r"backgrounds\.samples\.x\.generator: unknown"):
        bg.generator_target({"name": "x", "generator": "herwig"})


def _select(events, cfg, seed):
    """Simulate and preselect generator-level events; the passing events' variables."""
    from zprime.analyses.invisible_zprime.selection import apply_selection
    from zprime.detector.simulation import simulate

    reco = simulate(events, "simulation", np.random.default_rng(seed), config=cfg)
    mask, _ = apply_selection(
        reco, cfg.selection, luminosity_fb=cfg.luminosity_fb, skip=["punzinet"]
    )
    sel = reco[mask]
    return (
        np.asarray(sel["event"]),
        np.asarray(sel["m_recoil2"]),
        np.asarray(sel["theta_recoil"]),
        np.asarray(sel["weight"]),
    )


def _chi2(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray, edges) -> float:
    ha, _ = np.histogram(a, edges, weights=wa)
    va, _ = np.histogram(a, edges, weights=wa**2)
    hb, _ = np.histogram(b, edges, weights=wb)
    vb, _ = np.histogram(b, edges, weights=wb**2)
    ok = (va + vb) > 0
    return float(np.sum((ha - hb)[ok] ** 2 / (va + vb)[ok])) / max(int(ok.sum()), 1)


def test_filtered_and_unfiltered_tau_samples_select_alike() -> None:
    """The filter drops no event the preselection would keep: same seed, same generated pairs,
    so every selected event of the unfiltered sample is in the filtered one; the selected
    M_recoil^2 and theta_recoil agree within statistics (different detector random numbers)."""
    from zprime.generators import tautau

    cfg = default_config()
    base = bg.sample_settings("tautau", cfg)
    base["options"] = {"channels": ["mu", "pi"]}
    n = 300_000
    off = {**base, "filter": {**base["filter"], "enabled": False}}
    full = tautau.chunk(off, n, 77).events
    kept = tautau.chunk(base, n, 77).events
    assert 0.2 < len(kept) / len(full) < 0.6  # the filter does its job
    ev_full, m2_full, th_full, w_full = _select(full, cfg, 1)
    _, m2_kept, th_kept, w_kept = _select(kept, cfg, 2)
    assert ev_full.size > 20_000
    lost = np.setdiff1d(ev_full, np.asarray(kept["event"]))
    assert lost.size <= 2, f"{lost.size} selected events dropped by the filter"
    assert abs(w_kept.sum() / w_full.sum() - 1.0) < 3.0 * np.sqrt(1.0 / ev_full.size)
    assert _chi2(m2_full, w_full, m2_kept, w_kept, np.linspace(-2, 82, 43)) < 2.0
    assert _chi2(th_full, w_full, th_kept, w_kept, np.linspace(0.4, 2.3, 39)) < 2.0


@pytest.mark.slow
def test_filtered_and_unfiltered_mumu_samples_select_alike() -> None:
    """As for tau pairs, for the weighted mu mu (gamma) generator: its importance sampling is
    trained with the filter, so the two samples are different points of the same cross
    section; selected yields and shapes agree within statistics. The generator needs the
    recoil cut (it does not generate events whose photons all have p_T < 0.1 GeV), so the
    loose sample keeps only that one and the CDC acceptance."""
    from zprime.generators import mumu

    cfg = default_config()
    base = bg.sample_settings("mumu", cfg)
    loose = {**base["filter"], "prong_theta_deg": None, "recoil_theta_max_deg": None}
    off = {**base, "filter": loose}
    full = mumu.chunk(off, 3_000_000, 5).events
    kept = mumu.chunk(base, 1_000_000, 6).events
    _, m2_full, th_full, w_full = _select(full, cfg, 1)
    _, m2_kept, th_kept, w_kept = _select(kept, cfg, 2)
    err = np.hypot(
        np.sqrt(np.sum(w_full**2)) / w_full.sum(), np.sqrt(np.sum(w_kept**2)) / w_kept.sum()
    )
    assert abs(w_kept.sum() / w_full.sum() - 1.0) < 3.0 * err
    assert _chi2(m2_full, w_full, m2_kept, w_kept, np.linspace(-2, 82, 22)) < 2.5
    assert _chi2(th_full, w_full, th_kept, w_kept, np.linspace(0.4, 2.3, 20)) < 2.5
