"""The photon-veto measurement's statistics: the estimator and its quoted error on weighted,
clumped pseudo-data, and the stratified radiative-Bhabha sample that gives it enough events
(docs/control.md, "Sample size of the photon-veto measurement")."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from zprime.analyses.invisible_zprime.control import (
    ChannelSample,
    ControlSample,
    _draw,
    measure_photon_veto,
    read_channels,
)
from zprime.config import default_config
from zprime.errors import ConfigError, InputError
from zprime.generators import qed
from zprime.generators.backgrounds import sample_settings
from zprime.io.events import write_events
from zprime.physics.constants import BETA_BOOST
from zprime.physics.kinematics import lab_to_cm

DEG = math.pi / 180
EXTRA = 0.02  # the data detector's assumed extra loss (default.yaml, detector.configurations.data)


def _ee_region(rng: np.random.Generator, n: int, eps: float, mean_lw: float) -> ChannelSample:
    """``n`` ee events inside the photon-veto region (M^2 < 1 GeV^2, recoil at 95-120 deg,
    triggered, no Bhabha-veto recoil) with weights L w spread like the generator's (log-normal,
    width 0.8: effective events ~53% of the events), the photon missed with probability
    ``eps``."""
    lw = mean_lw * rng.lognormal(-0.32, 0.8, n)  # exp(-0.32 + 0.8^2 / 2) = 1: mean mean_lw
    return ChannelSample.from_columns(
        "ee",
        {
            "m_recoil2": rng.uniform(-0.5, 1.0, n),
            "theta_recoil": rng.uniform(95 * DEG, 120 * DEG, n),
            "weight": lw,
            "trg_two_track": np.ones(n, dtype=bool),
            "trg_ecl": np.ones(n, dtype=bool),
            "photon_veto": rng.random(n) < eps,
        },
    )


_CFG = default_config()


def _toy(rng: np.random.Generator, n: int, mean_lw: float, eps_sim: float = 0.002):
    """Independent simulation and data samples (the data: the data detector's own events,
    thinned to unit-weight events at the luminosity as the control stage does, so that an event
    with L w > 1 enters ~L w times) with the extra loss ``EXTRA``."""
    eps_data = eps_sim + EXTRA * (1 - eps_sim)
    sim = _ee_region(rng, n, eps_sim, mean_lw)
    data = _draw(_ee_region(rng, n, eps_data, mean_lw), "poisson", rng)
    return measure_photon_veto(ControlSample("ee", data, sim), _CFG, [])


def test_estimator_recovers_the_injected_extra_loss() -> None:
    """One seeded toy: 20k distinct events each (mean L w = 30; the stratified default has 19), the
    extra loss measured back within its error; the error is the binomial one of the effective
    number of distinct data events (clumps of ~L w copies count once)."""
    pv = _toy(np.random.default_rng(7), 20_000, 30.0)
    assert pv.raw == (pytest.approx(20_000, abs=5), 20_000)
    assert pv.n_sim == pytest.approx(10_550, rel=0.05)  # 20k exp(-0.8^2)
    assert pv.extra_miss == pytest.approx(0.0192, abs=0.0001)
    assert pv.extra_miss_err == pytest.approx(0.00141, rel=0.02)
    assert abs(pv.extra_miss - EXTRA) < 2 * pv.extra_miss_err
    assert pv.yields[0] / pv.raw[0] == pytest.approx(30.0, rel=0.05)  # the clump size
    # the binomial error of the data's effective events dominates; the simulation's is small
    assert pv.err_data == pytest.approx(math.sqrt(0.022 * 0.978 / pv.n_data), rel=0.1)
    assert pv.err_sim < 0.5 * pv.err_data


@pytest.mark.parametrize(
    ("mean_lw", "n", "bias"), [(1000.0, 1_500, 0.3), (30.0, 5_000, 0.2), (0.5, 8_000, 0.2)]
)
def test_quoted_error_is_the_spread_of_the_estimate(mean_lw: float, n: int, bias: float) -> None:
    """300 seeded toys: the pulls (p - 2%) / sigma have mean ~0 and width ~1, for pseudo-data
    made of clumps of 1000 copies (the unstratified default: L w ~ 940, ~17 effective missed
    photons, where the Gaussian error makes the pulls a little skewed: mean +0.2), of 30
    copies (stratified) and of single events (L w < 1: Poisson data at the luminosity)."""
    rng = np.random.default_rng(11)
    pulls, errs = [], []
    for _ in range(300):
        pv = _toy(rng, n, mean_lw)
        pulls.append((pv.extra_miss - EXTRA) / pv.extra_miss_err)
        errs.append(pv.extra_miss_err)
    pulls_a = np.asarray(pulls)
    assert abs(pulls_a.mean()) < bias
    assert 0.85 < pulls_a.std() < 1.15
    assert np.mean(np.abs(pulls_a) < 1) == pytest.approx(0.68, abs=0.07)


# ----------------------------------------------------------------------------- the generator
def _cm_angles(events: ak.Array) -> tuple[np.ndarray, ...]:
    """c.m. polar angles (deg) of e-, e+, gamma and the c.m. photon energy."""
    p = events.particles
    p4 = np.stack([ak.to_numpy(p[c]) for c in ("e", "px", "py", "pz")], axis=-1)
    cm = lab_to_cm(p4)
    th = np.degrees(np.arctan2(np.hypot(cm[..., 1], cm[..., 2]), cm[..., 3]))
    return th[:, 0], th[:, 1], th[:, 2], cm[:, 2, 0]


def _in_stratum(events: ak.Array, o: dict) -> np.ndarray:
    te, tp, tg, eg = _cm_angles(events)
    lo, hi = o["enhance_theta_min_deg"], o["enhance_theta_max_deg"]
    return (
        (eg >= o["enhance_e_gamma_min_gev"])
        & (tg >= o["enhance_theta_gamma_min_deg"])
        & (tg <= o["enhance_theta_gamma_max_deg"])
        & (te >= lo)
        & (te <= hi)
        & (tp >= lo)
        & (tp <= hi)
    )


def test_stratified_eegamma_keeps_the_cross_section() -> None:
    """The stratified sample (3/4 of the points in the stratum) against the plain one: the same
    total cross section and the same cross section in a measurement-like region inside the
    stratum, with ten times the effective events there; the stratum's events come only from
    the stratum's points, whose event indices follow the rest's."""
    n = 200_000
    o = qed.resolve_options("eegamma", {"options": {"enhance_fraction": 0.75}})
    plain = qed.eegamma_chunk({}, n, 3)
    strat = qed.eegamma_chunk({"options": {"enhance_fraction": 0.75}}, n, 4)
    assert strat.n_generated == n
    assert plain.sigma_fb == pytest.approx(3.25e6, rel=0.01)  # docs/qed.md: 3.252 nb
    pull = (strat.sigma_fb - plain.sigma_fb) / math.hypot(plain.sigma_err_fb, strat.sigma_err_fb)
    assert abs(pull) < 3
    w_s = ak.to_numpy(strat.events.weight)
    assert w_s.sum() == pytest.approx(strat.sigma_fb, rel=1e-12)
    ev = ak.to_numpy(strat.events.event)
    assert np.unique(ev).size == ev.size
    assert ev.min() >= 0
    assert ev.max() < n
    inside = _in_stratum(strat.events, o)
    n_rest = n - round(0.75 * n)
    np.testing.assert_array_equal(inside, ev >= n_rest)  # the rest leaves the stratum out

    def region(events: ak.Array) -> np.ndarray:
        te, tp, tg, eg = _cm_angles(events)
        lep = (te > 48) & (te < 132) & (tp > 48) & (tp < 132)
        return lep & (tg > 106) & (tg < 135) & (eg > 1.5)

    got = {}
    for name, res in (("plain", plain), ("strat", strat)):
        w = ak.to_numpy(res.events.weight)[region(res.events)]
        got[name] = (w.sum(), math.sqrt(np.sum(w * w)), w.sum() ** 2 / np.sum(w * w))
    assert got["plain"][0] == pytest.approx(63_900, rel=0.02)  # 64 pb: 2% of the sample
    diff = got["strat"][0] - got["plain"][0]
    assert abs(diff) < 3 * math.hypot(got["plain"][1], got["strat"][1])
    assert got["strat"][2] > 10 * got["plain"][2]
    assert got["strat"][1] < 0.35 * got["plain"][1]


def test_stratum_options_are_checked() -> None:
    def chunk(**opts: float) -> None:
        qed.eegamma_chunk({"options": {"enhance_fraction": 0.5, **opts}}, 10, 1)

    with pytest.raises(ConfigError, match="enhance_fraction"):
        qed.eegamma_chunk({"options": {"enhance_fraction": 1.0}}, 10, 1)
    with pytest.raises(ConfigError, match="enhance_theta_gamma_min_deg"):
        chunk(enhance_theta_gamma_min_deg=5.0)  # outside the cuts' 10-170 deg
    with pytest.raises(ConfigError, match="enhance_theta_min_deg"):
        chunk(enhance_theta_min_deg=50.0, enhance_theta_max_deg=40.0)
    with pytest.raises(ConfigError, match="enhance_e_gamma_min_gev"):
        chunk(enhance_e_gamma_min_gev=0.2)
    with pytest.raises(InputError, match="at least 2"):
        qed.eegamma_chunk({"options": {"enhance_fraction": 0.5}}, 1, 1)
    # without a fraction the ranges are not used, and the sample is the plain one
    same = qed.eegamma_chunk({"options": {"enhance_theta_gamma_min_deg": 5.0}}, 1000, 2)
    assert same.sigma_fb == qed.eegamma_chunk({}, 1000, 2).sigma_fb


def _cm_deg(theta_lab_deg: float) -> float:
    """c.m. polar angle of a massless particle at lab angle theta (the boost along +z)."""
    c = math.cos(math.radians(theta_lab_deg))
    return math.degrees(math.acos((c - BETA_BOOST) / (1 - BETA_BOOST * c)))


def test_default_stratum_holds_the_measurement_region() -> None:
    """The default eegamma stratum contains the photon-veto region: the recoil (the photon) at
    lab 90 deg to the selection's 123 deg, both electrons in the two-track line's lab
    37-120 deg; two thirds of the points go there."""
    cfg = default_config()
    o = sample_settings("eegamma", cfg)["options"]
    assert o["enhance_fraction"] == pytest.approx(2 / 3, abs=1e-3)
    assert _cm_deg(90.0) == pytest.approx(105.83, abs=0.01)  # beta gamma = 0.2835
    lo = _cm_deg(cfg.control.photon_veto.theta_recoil_deg[0])
    hi = _cm_deg(min(cfg.control.photon_veto.theta_recoil_deg[1], 123.0))
    assert o["enhance_theta_gamma_min_deg"] < lo - 5
    assert hi + 5 < o["enhance_theta_gamma_max_deg"]
    t_lo, t_hi = (_cm_deg(t) for t in cfg.detector.get("data").trigger.track_theta_deg)
    assert o["enhance_theta_min_deg"] < t_lo - 3
    assert t_hi + 3 < o["enhance_theta_max_deg"]


def test_stratified_sample_through_the_detectors_measures_the_configured_loss(
    tmp_path: Path,
) -> None:
    """The chain of the control stage on a small stratified sample: simulation and data
    generated independently (other seeds), the data with the data detector and thinned at
    79.7 fb^-1; the measured extra loss is the data detector's 2% within its error, and that
    error is 0.15% from 300k points (the default's 1.5M give ~0.07%)."""
    cfg = default_config()
    from zprime.detector.simulation import simulate_file

    settings = sample_settings("eegamma", cfg)
    paths = {}
    for kind, seed, det in (("simulation", 31, "simulation"), ("data", 32, "data")):
        res = qed.eegamma_chunk(settings, 300_000, seed)
        gen = write_events(tmp_path / kind / "eegamma.parquet", res.events, {"sigma_fb": 1.0})
        paths[kind] = simulate_file(gen, tmp_path / f"reco_{kind}", detector=det, config=cfg)
    sim, _ = read_channels({"eegamma": paths["simulation"]}, cfg, channels=("ee",))
    dat, _ = read_channels({"eegamma": paths["data"]}, cfg, channels=("ee",), is_data=True)
    pv = measure_photon_veto(ControlSample("ee", dat["ee"], sim["ee"]), cfg, [])
    assert not pv.fallback
    # 200k stratum points: 14.5k distinct, 8.5k effective events in the region (7% / 4%)
    assert pv.raw[1] == pytest.approx(14_540, rel=0.01)
    assert pv.n_sim == pytest.approx(8_470, rel=0.01)
    assert pv.yields[1] == pytest.approx(1.36e6, rel=0.02)  # expected events at 79.7 fb^-1
    assert pv.eff_sim < 0.001
    assert pv.extra_miss_err == pytest.approx(0.00154, rel=0.02)
    assert abs(pv.extra_miss - EXTRA) < 3 * pv.extra_miss_err
    assert pv.extra_miss == pytest.approx(0.0205, abs=0.0001)
