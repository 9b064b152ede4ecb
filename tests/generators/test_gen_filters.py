"""Generator-level filters, luminosity-factor sizing and the generator names of the driver."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zprime.config import config_from_dict, default_config
from zprime.errors import ConfigError
from zprime.generators import backgrounds as bg
from zprime.generators.filters import (
    charge_sign,
    check_against_selection,
    filter_mask,
    filter_particles,
)
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


# ------------------------------------------------------------------ the four-track filter

FOUR = {
    **BASE,
    "serves": "four_track",
    "min_tracks": 4,
    "max_tracks": 6,
    "min_tracks_per_charge": 1,
    "track_pt_min_gev": 0.1,
}
M_PI = 0.1396


def _tracks(*charges_theta_p: tuple[int, float, float], extra: int = 0) -> list:
    """Pions (sign +1/-1) at lab polar angle theta (deg) with momentum p (GeV)."""
    return [(211 * q, _p4(M_PI, p, th, 0.7 * i)) for i, (q, th, p) in enumerate(charges_theta_p)]


def test_four_track_filter_counts_tracks_charges_pt_and_acceptance() -> None:
    four = _tracks((1, 40.0, 1.0), (-1, 60.0, 1.0), (1, 90.0, 1.0), (-1, 120.0, 1.0))
    assert filter_mask(*_event(*four, k=8), FOUR)[0]
    # leptons count too, with the charge of their PDG code (mu- is 13)
    leptons = [(13, _p4(0.106, 2.0, 50.0, 0.0)), (-13, _p4(0.106, 2.0, 100.0, 2.0))]
    assert filter_mask(*_event(*leptons, *four[:2], k=8), FOUR)[0]
    # neutrals never count
    neutral = [
        (22, _p4(0.0, 1.0, 90.0, 1.0)),
        (130, _p4(0.5, 1.0, 90.0, 2.0)),
        (2112, _p4(0.94, 1.0, 90.0, 3.0)),
        (14, _p4(0.0, 1.0, 90.0, 4.0)),
    ]
    assert not filter_mask(*_event(*four[:3], *neutral, k=8), FOUR)[0]
    # p_T: 0.12 GeV counts, 0.08 GeV does not (the detector finds tracks above 0.1 GeV)
    at_90 = (-211, _p4(M_PI, 0.12, 90.0, 1.0))
    soft = (-211, _p4(M_PI, 0.08, 90.0, 1.0))
    assert filter_mask(*_event(*four[:3], at_90, k=8), FOUR)[0]
    assert not filter_mask(*_event(*four[:3], soft, k=8), FOUR)[0]
    # acceptance 17-150 deg: a fifth track outside does not matter, a fourth outside does
    forward = (-211, _p4(M_PI, 2.0, 12.0, 1.0))
    backward = (-211, _p4(M_PI, 2.0, 155.0, 1.0))
    assert filter_mask(*_event(*four, forward, k=8), FOUR)[0]
    assert not filter_mask(*_event(*four[:3], backward, k=8), FOUR)[0]
    # at most six good tracks
    six = _tracks(*[((-1) ** i, 30.0 + 15.0 * i, 1.0) for i in range(6)])
    seven = _tracks(*[((-1) ** i, 30.0 + 15.0 * i, 1.0) for i in range(7)])
    assert filter_mask(*_event(*six, k=8), FOUR)[0]
    assert not filter_mask(*_event(*seven, k=8), FOUR)[0]
    assert filter_mask(*_event(*seven, k=8), {**FOUR, "max_tracks": None})[0]
    # charges: all of one sign fails; 3 + 1 passes with one per sign, fails with two
    same = _tracks(*[(1, 40.0 + 20.0 * i, 1.0) for i in range(4)])
    assert not filter_mask(*_event(*same, k=8), FOUR)[0]
    three_one = _tracks((1, 40.0, 1.0), (1, 60.0, 1.0), (1, 90.0, 1.0), (-1, 120.0, 1.0))
    assert filter_mask(*_event(*three_one, k=8), FOUR)[0]
    assert not filter_mask(*_event(*three_one, k=8), {**FOUR, "min_tracks_per_charge": 2})[0]
    assert filter_mask(*_event(*four, k=8), {**FOUR, "min_tracks_per_charge": 2})[0]
    # a charge counts only for a good track: the fourth track's sign is outside the acceptance
    outside_neg = (-211, _p4(M_PI, 2.0, 160.0, 1.0))
    assert not filter_mask(*_event(*same[:3], outside_neg, k=8), {**FOUR, "min_tracks": 3})[0]


def test_charge_sign_of_pdg_codes() -> None:
    codes = np.array([[11, -11, 13, -13, 211, -211], [321, -2212, 22, 0, 3222, 3334]])
    expected = np.array([[-1, 1, -1, 1, 1, -1], [1, -1, 0, 0, 1, -1]])
    np.testing.assert_array_equal(charge_sign(codes), expected)


def test_four_track_filter_ragged_and_padded_forms_agree() -> None:
    rng = np.random.default_rng(9)
    n, k = 3000, 8
    pdg = rng.choice([13, -13, 211, -211, 321, 22, 130, 0], size=(n, k))
    p = rng.uniform(0.05, 3.0, (n, k))
    th = np.arccos(rng.uniform(-1, 1, (n, k)))
    ph = rng.uniform(0, 2 * np.pi, (n, k))
    p4 = np.stack([p, p * np.sin(th) * np.cos(ph), p * np.sin(th) * np.sin(ph), p * np.cos(th)], -1)
    padded = filter_mask(pdg, p4, FOUR)
    counts = (pdg != 0).sum(axis=1)
    order = np.argsort(pdg == 0, axis=1, kind="stable")
    rows = np.arange(n)[:, None]
    inside = np.arange(k)[None, :] < counts[:, None]
    ragged = filter_particles(
        make_particles(pdg[rows, order][inside], p4[rows, order][inside], counts), FOUR
    )
    np.testing.assert_array_equal(padded, ragged)
    # an independent count
    charged = np.isin(np.abs(pdg), (13, 211, 321))
    pt = np.hypot(p4[..., 1], p4[..., 2])
    theta = np.degrees(np.arctan2(pt, p4[..., 3]))
    good = charged & (pt > 0.1) & (theta > 17.0) & (theta < 150.0)
    sign = np.where(np.isin(pdg, (-13, 211, 321)), 1, -1)
    n_good = good.sum(axis=1)
    own = (n_good >= 4) & (n_good <= 6)
    own &= ((good & (sign > 0)).sum(axis=1) >= 1) & ((good & (sign < 0)).sum(axis=1) >= 1)
    np.testing.assert_array_equal(padded, own)
    assert 0.05 < padded.mean() < 0.95


def test_four_track_filter_is_checked_against_the_track_finding() -> None:
    cfg = default_config()
    sel = cfg.selection
    tracking = cfg.detector.get().tracking
    where = "backgrounds.samples.x.filter"
    trig = (37.0, 120.0)
    check_against_selection(FOUR, sel, trig, where, tracking=tracking)
    check_against_selection({**FOUR, "max_tracks": None, "min_tracks": 3}, sel, trig, where)
    for change, field in [
        ({"min_tracks": 5, "max_tracks": 6}, r"filter\.min_tracks = 5"),
        ({"max_tracks": 4}, r"filter\.max_tracks = 4"),
        ({"min_tracks_per_charge": 2}, r"filter\.min_tracks_per_charge = 2"),
        ({"prong_theta_deg": (35.0, 122.0)}, r"filter\.prong_theta_deg is a two-prong cut"),
        ({"recoil_pt_cm_min_gev": 0.4}, r"filter\.recoil_pt_cm_min_gev is a two-prong cut"),
        ({"track_pt_min_gev": 0.2}, r"track_pt_min_gev = 0\.2 .*tracking\.pt_min_gev"),
        ({"theta_min_deg": 20.0}, r"narrower than the detector's tracking acceptance"),
        ({"theta_max_deg": 140.0}, r"narrower than the detector's tracking acceptance"),
    ]:
        with pytest.raises(ConfigError, match=field):
            check_against_selection({**FOUR, **change}, sel, trig, where, tracking=tracking)
    # a filter at the tracking threshold with a looser angular range passes
    loose = {**FOUR, "track_pt_min_gev": 0.05, "theta_min_deg": 10.0, "theta_max_deg": 170.0}
    check_against_selection(loose, sel, trig, where, tracking=tracking)
    # the same cuts without serves: four_track are refused by the two-track check
    with pytest.raises(ConfigError, match="serves: four_track"):
        check_against_selection({**FOUR, "serves": "two_track"}, sel, trig, where)
    with pytest.raises(ConfigError, match=r"filter\.max_tracks = 2"):
        check_against_selection({**BASE, "max_tracks": 2}, sel, trig, where)
    with pytest.raises(ConfigError, match=r"filter\.min_tracks_per_charge = 2"):
        check_against_selection({**BASE, "min_tracks_per_charge": 2}, sel, trig, where)


def test_four_track_filter_config_fields() -> None:
    cfg = config_from_dict({"backgrounds": {"samples": {"qqbar": {"filter": {"max_tracks": 8}}}}})
    filt = cfg.backgrounds.samples["qqbar"].filter
    assert (filt.serves, filt.min_tracks, filt.max_tracks) == ("four_track", 4, 8)
    with pytest.raises(ConfigError, match="max_tracks"):
        config_from_dict({"backgrounds": {"samples": {"qqbar": {"filter": {"max_tracks": 3}}}}})
    with pytest.raises(ConfigError, match="serves"):
        config_from_dict({"backgrounds": {"samples": {"qqbar": {"filter": {"serves": "six"}}}}})
    # the existing samples keep the two-track filter, whose new cuts are off
    two = default_config().backgrounds.samples["tautau"].filter
    assert (two.serves, two.max_tracks, two.min_tracks_per_charge) == ("two_track", None, None)
    # a four-track sample of the driver is checked against the detector's track finding
    bad = config_from_dict(
        {"detector": {"configurations": {"simulation": {"tracking": {"pt_min_gev": 0.05}}}}}
    )
    with pytest.raises(ConfigError, match=r"qqbar\.filter\.track_pt_min_gev"):
        bg.check_filter("qqbar", bad)
