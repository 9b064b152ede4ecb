"""zprime.analyses.invisible_zprime.control: closure of every measurement on synthetic samples with
a known truth, equal
inputs, fallbacks, the corrections file, and the file layer on hand-made reconstructed events."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from zprime.analyses.invisible_zprime.binning import Window
from zprime.analyses.invisible_zprime.control import (
    ChannelSample,
    ControlSample,
    Corrections,
    core_width,
    derive,
    measure_background_shape,
    measure_photon_veto,
    measure_resolution,
    measure_signal_efficiency,
    measure_trigger,
    photon_veto_recoverable,
    read_channels,
    read_corrections,
    recoil_bhabha_veto,
    run_control,
    signal_shape_from_scale,
    trigger_acceptance,
    weighted_efficiency,
)
from zprime.analyses.invisible_zprime.selection import step_masks
from zprime.analyses.invisible_zprime.templates import load_systematics
from zprime.config import SystematicsConfig, SystematicsValues, config_from_dict, default_config
from zprime.detector.simulation import analysis_variables
from zprime.errors import InputError
from zprime.io.events import write_events

DEG = math.pi / 180
PRL = SystematicsValues()  # the PRL's values (the model's defaults)


# ----------------------------------------------------------------------------- synthetic samples
def _sample(
    channel: str,
    rng: np.random.Generator,
    n: int,
    *,
    weight: float = 1.0,
    m2: np.ndarray | None = None,
    theta: np.ndarray | None = None,
    trigger: np.ndarray | float = 1.0,
    veto: np.ndarray | float = 1.0,
    punzinet_pass: float | None = None,
    recoverable: np.ndarray | None = None,
    source: str = "sample",
) -> ChannelSample:
    """``n`` events with the given columns; probabilities for the flags are drawn per event."""
    m2 = rng.uniform(-0.5, 81.0, n) if m2 is None else m2
    theta = rng.uniform(34 * DEG, 123 * DEG, n) if theta is None else theta

    def flag(p: np.ndarray | float) -> np.ndarray:
        return rng.random(n) < np.broadcast_to(p, (n,))

    cols = {
        "m_recoil2": m2,
        "theta_recoil": theta,
        "theta_recoil_cm": theta,
        "weight": np.full(n, weight),
        "trg_two_track": flag(trigger),
        "trg_ecl": np.ones(n, dtype=bool),
        "photon_veto": flag(veto),
    }
    if punzinet_pass is not None:
        cols["punzinet"] = np.where(flag(punzinet_pass), 0.9, 0.1)
    if recoverable is not None:
        cols["recoverable"] = recoverable
    return ChannelSample.from_columns(channel, cols, sources=[source])


def _pair(channel: str, data: ChannelSample, sim: ChannelSample) -> ControlSample:
    return ControlSample(channel, data, sim)


def _cfg(**changes: object):
    data: dict = {}
    for dotted, value in changes.items():
        node = data
        *head, last = dotted.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    return config_from_dict(data)


# ----------------------------------------------------------------------------- helpers
def test_weighted_efficiency_is_binomial_for_unit_and_equal_weights() -> None:
    eps, err = weighted_efficiency((30.0, 30.0), (100.0, 100.0))
    assert eps == pytest.approx(0.3)
    assert err == pytest.approx(math.sqrt(0.3 * 0.7 / 100))
    # the same events with weight 2: same efficiency, same relative uncertainty
    eps2, err2 = weighted_efficiency((60.0, 120.0), (200.0, 400.0))
    assert eps2 == pytest.approx(0.3)
    assert err2 == pytest.approx(err)
    # at zero efficiency the error is floored at the value for half an event, never 0
    e0, s0 = weighted_efficiency((0.0, 0.0), (100.0, 100.0))
    assert e0 == 0.0
    assert 0.0 < s0 < 0.01


def test_signal_shape_mapping() -> None:
    assert signal_shape_from_scale(1.0) == pytest.approx(0.0, abs=1e-12)
    # PRL: "8% larger in data ... 10% on the signal template shape"
    assert signal_shape_from_scale(1.08) == pytest.approx(0.110, abs=0.002)
    values = [signal_shape_from_scale(k) for k in (1.02, 1.04, 1.08, 1.12)]
    assert values == sorted(values)
    # the hypothesis position inside a bin hardly matters
    assert signal_shape_from_scale(1.08, offset=0.5) == pytest.approx(
        signal_shape_from_scale(1.08), rel=1e-3
    )


def test_core_width_of_a_gaussian_with_and_without_a_tail(rng: np.random.Generator) -> None:
    core = rng.normal(0.0, 0.3, 40000)
    _, sigma, err = core_width(core, n_sigma=2.0)
    assert abs(sigma - 0.3) < 3 * err
    # a fit to the +-2 sigma core knows less than the full-sample bound sigma / sqrt(2 N)
    assert 1.0 < err / (0.3 / math.sqrt(2 * 40000)) < 2.5
    # a one-sided radiative tail (15% of the events) moves the core width by a few % only
    x = np.concatenate([core, rng.exponential(1.5, 6000)])
    _, with_tail, _ = core_width(x, n_sigma=2.0)
    assert with_tail == pytest.approx(0.3, rel=0.05)
    # the same events with weight 3 (variance 9 per event): same width and error
    _, s3, e3 = core_width(core, np.full(core.size, 3.0), np.full(core.size, 9.0))
    assert s3 == pytest.approx(sigma, rel=1e-4)
    assert e3 == pytest.approx(err, rel=1e-3)
    with pytest.raises(InputError, match="too few"):
        core_width([1.0, 2.0])


# ----------------------------------------------------------------------------- closure
def test_trigger_correction_closure(rng: np.random.Generator) -> None:
    """Data made with a known efficiency ratio a + b M^2 give a and b back."""
    cfg = default_config()
    a, b = 0.97, 0.0008
    sim = _sample("emu", rng, 150_000, weight=0.5, trigger=0.9)
    m2 = rng.uniform(-0.5, 81.0, 120_000)
    data = _sample("emu", rng, m2.size, m2=m2, trigger=0.9 * (a + b * m2))
    fb: list = []
    trig = measure_trigger(_pair("emu", data, sim), cfg.control, fb)
    assert not fb
    assert not trig.fallback
    (c0, c1), cov = trig.coefficients, trig.covariance
    assert abs(c0 - a) < 3 * math.sqrt(cov[0, 0])
    assert abs(c1 - b) < 3 * math.sqrt(cov[1, 1])
    assert trig.ndof == trig.used.sum() - 2
    # the efficiencies themselves: simulation 0.9, data 0.9 (a + b <M^2>) per bin
    assert np.all(np.abs(trig.eff_sim[trig.used] - 0.9) < 4 * trig.err_sim[trig.used])
    expect = 0.9 * (a + b * trig.x[trig.used])
    assert np.all(np.abs(trig.eff_data[trig.used] - expect) < 4 * trig.err_data[trig.used])
    # the correction is clipped to the fitted span, its uncertainty from the covariance
    lo, hi = trig.fit_range
    assert trig.correction([-10.0])[0] == pytest.approx(trig.correction([lo])[0])
    assert trig.correction([200.0])[0] == pytest.approx(trig.correction([hi])[0])
    assert 0 < trig.correction_uncertainty([40.0])[0] < 0.01


def test_trigger_acceptance_requirement_selects_the_line_efficiency(
    rng: np.random.Generator,
) -> None:
    """Events outside the line's acceptance never fire; the measured efficiency is the line's."""
    cfg = default_config()
    n = 40_000
    acc = rng.random(n) < 0.6
    cols = {
        "m_recoil2": rng.uniform(0, 80, n),
        "theta_recoil": np.full(n, 1.0),
        "weight": np.ones(n),
        "trg_two_track": acc & (rng.random(n) < 0.9),
        "trigger_acceptance": acc,
    }
    smp = ChannelSample.from_columns("emu", cols)
    trig = measure_trigger(_pair("emu", smp, smp), cfg.control, [])
    used = trig.used
    assert np.all(np.abs(trig.eff_data[used] - 0.9) < 4 * trig.err_data[used])
    off = cfg.control.model_copy(deep=True)
    off.trigger.require_acceptance = False
    trig_all = measure_trigger(_pair("emu", smp, smp), off, [])
    used = trig_all.used
    assert np.all(np.abs(trig_all.eff_data[used] - 0.54) < 4 * trig_all.err_data[used])


def test_photon_veto_closure_and_shape(rng: np.random.Generator) -> None:
    """ee data with a known extra photon loss give it back; the mu mu shape uncertainty is the
    relative change of the corrected yield when the loss moves by its error."""
    cfg = default_config()
    eps_sim, extra = 0.01, 0.04
    eps_data = eps_sim + extra * (1 - eps_sim)
    n = 60_000
    th = rng.uniform(34 * DEG, 123 * DEG, n)
    m2 = rng.uniform(-0.5, 4.0, n)
    sim = _sample("ee", rng, n, weight=0.5, m2=m2, theta=th, veto=eps_sim)
    th_d = rng.uniform(34 * DEG, 123 * DEG, n)
    in_bwd = th_d >= 90 * DEG
    veto_d = np.where(in_bwd, eps_data, eps_sim)  # data lose photons only in the backward barrel
    data = _sample("ee", rng, n, m2=rng.uniform(-0.5, 4.0, n), theta=th_d, veto=veto_d)
    mumu = _sample(
        "mumu",
        rng,
        50_000,
        weight=2.0,
        m2=rng.uniform(-0.5, 3.0, 50_000),
        veto=0.3,
        recoverable=rng.random(50_000) < 0.5,
    )
    fb: list = []
    pv = measure_photon_veto(_pair("ee", data, sim), cfg, fb, mumu)
    assert not fb
    assert abs(pv.eff_sim - eps_sim) < 4 * pv.err_sim
    assert abs(pv.eff_data - eps_data) < 4 * pv.err_data
    assert abs(pv.extra_miss - extra) < 3 * pv.extra_miss_err
    assert abs(pv.ratio - eps_data / eps_sim) < 3 * pv.ratio_err
    assert pv.pass_scale == 1.0
    # shape below the split: sigma_p * R / C with R the recoverable, C the corrected yield
    split = cfg.templates.systematics.prl.photon_veto_split_m2_gev2
    below = mumu.trigger & (mumu.m_recoil2 < split)
    r = mumu.w[below & mumu.recoverable & ~mumu.veto].sum()
    c = mumu.w[below & mumu.veto].sum() + pv.extra_miss * r
    assert pv.shape[0] == pytest.approx(pv.extra_miss_err * r / c, rel=1e-9)
    assert pv.shape_fallback == (False, False)


def test_photon_veto_is_unbiased_by_the_bhabha_veto_of_the_trigger(
    rng: np.random.Generator,
) -> None:
    """ee events whose photon could fire the two-track line's Bhabha veto fail the trigger when
    the photon is seen and pass it when it is missed: among triggered events missed photons are
    over-represented. Leaving those events out (default), or the reference trigger, gives the
    per-photon loss back; keeping them does not (the effect seen with the real generator and
    detector, docs/control.md)."""
    eps_sim, extra = 0.004, 0.03
    eps_data = eps_sim + extra * (1 - eps_sim)

    def ee(n: int, eps: float, weight: float) -> ChannelSample:
        missed = rng.random(n) < eps
        could_veto = rng.random(n) < 0.4  # the photon and an electron back to back, energetic
        fires = rng.random(n) < 0.9
        return ChannelSample.from_columns(
            "ee",
            {
                "m_recoil2": rng.uniform(-0.5, 1.0, n),
                "theta_recoil": rng.uniform(95 * DEG, 120 * DEG, n),
                "weight": np.full(n, weight),
                "trg_two_track": fires & (missed | ~could_veto),
                "trg_ecl": np.ones(n, dtype=bool),
                "photon_veto": missed,
                "recoil_bhabha": could_veto,
            },
        )

    sample = _pair("ee", ee(150_000, eps_data, 1.0), ee(300_000, eps_sim, 0.5))
    cfg = default_config()
    pv = measure_photon_veto(sample, cfg, [])
    assert pv.trigger == "two_track"
    assert pv.excluded[0] == pytest.approx(
        0.4 * 0.9 * eps_data / (0.9 * (1 - 0.4 + 0.4 * eps_data)), abs=0.02
    )
    assert abs(pv.extra_miss - extra) < 3 * pv.extra_miss_err
    biased = cfg.model_copy(deep=True)
    biased.control.photon_veto.exclude_recoil_bhabha = False
    pv_b = measure_photon_veto(sample, biased, [])
    assert pv_b.excluded == (0.0, 0.0)
    # P(missed | triggered) = eps / (eps + (1 - eps)(1 - 0.4)): 1.6 times the truth
    assert pv_b.eff_data == pytest.approx(eps_data / (eps_data + 0.6 * (1 - eps_data)), rel=0.1)
    assert pv_b.extra_miss - extra > 5 * pv_b.extra_miss_err
    reference = cfg.model_copy(deep=True)
    reference.control.photon_veto.trigger = "reference"
    pv_r = measure_photon_veto(sample, reference, [])
    assert pv_r.trigger == "reference"
    assert abs(pv_r.extra_miss - extra) < 3 * pv_r.extra_miss_err
    assert pv_r.extra_miss_err < pv.extra_miss_err  # every event, not 90% of 60%


def test_recoil_bhabha_flag_covers_the_detector_bhabha_veto() -> None:
    """Radiative Bhabha events through the detector, with the backward-barrel photons seen and
    all lost (the same random numbers): where the flag is off, the trigger's Bhabha veto does
    not depend on the photon; where the photon matters, the flag is on."""
    from zprime.detector.simulation import simulate
    from zprime.generators.backgrounds import sample_settings
    from zprime.generators.qed import eegamma_chunk

    cfg = default_config()
    events = eegamma_chunk(sample_settings("eegamma", cfg), 150_000, 5).events
    seen = cfg.detector.get("simulation")
    blind = seen.model_copy(deep=True)
    blind.ecl.backward_barrel_extra_inefficiency = 1.0
    a = simulate(events, seen, np.random.default_rng(1))
    b = simulate(events, blind, np.random.default_rng(1))
    sel = cfg.selection.model_copy(update={"disabled": ["trigger", "photon_veto", "punzinet"]})
    region = np.logical_and.reduce(list(step_masks(a, sel, "ee").values()))
    theta = np.degrees(np.asarray(a["theta_recoil"]))
    region &= (np.asarray(a["m_recoil2"]) < 1.0) & (theta >= 90.0) & (theta <= 128.7)
    flag = recoil_bhabha_veto(a, seen.trigger)
    depends = np.asarray(a["trg_bhabha_veto"]) != np.asarray(b["trg_bhabha_veto"])
    assert region.sum() > 3000
    assert 100 < (region & depends).sum() < 0.3 * region.sum()  # the effect exists
    assert (region & depends & flag).sum() >= 0.99 * (region & depends).sum()
    assert (region & ~flag & depends).sum() <= 0.001 * (region & ~flag).sum()
    assert (region & flag).sum() < 0.25 * region.sum()  # the flag costs few events
    # removing a cluster never makes the veto fire
    assert not np.any(np.asarray(b["trg_bhabha_veto"]) & ~np.asarray(a["trg_bhabha_veto"]))


def test_photon_veto_weights() -> None:
    corr = Corrections(
        trigger_coefficients=(1.0,),
        trigger_covariance=((0.0,),),
        trigger_range=(-0.5, 81.0),
        extra_miss=0.05,
        extra_miss_err=0.01,
        eff_sim=0.0,
        theta_range=(90 * DEG, 128.7 * DEG),
        m2_max=1.0,
        photon_veto_samples=("mumu",),
    )
    w = corr.photon_veto_weight(
        passed=[True, False, False],
        recoverable=[False, True, False],
        theta_recoil=[100 * DEG] * 3,
        m2=[0.5] * 3,
    )
    assert w.tolist() == [1.0, 0.05, 0.0]
    # data missing fewer photons than the simulation: passing events in the region scale down
    fewer = Corrections(**{**corr.__dict__, "extra_miss": -0.01, "eff_sim": 0.02})
    w = fewer.photon_veto_weight(
        passed=[True, True, False],
        recoverable=[False, False, True],
        theta_recoil=[100 * DEG, 60 * DEG, 100 * DEG],
        m2=[0.5, 0.5, 0.5],
    )
    assert w[0] == pytest.approx(1 - 0.01 * 0.98 / 0.02)
    assert w[1:].tolist() == [1.0, 0.0]


def test_resolution_scale_closure(rng: np.random.Generator) -> None:
    cfg = default_config()
    truth = 1.08  # PRL: 8% wider in data

    def mumugamma(sigma: float, n: int, weight: float) -> ChannelSample:
        tail = rng.random(n) < 0.15
        m2 = np.where(tail, rng.exponential(1.0, n), rng.normal(0.05, sigma, n))
        return _sample("mumugamma", rng, n, weight=weight, m2=m2)

    res = measure_resolution(
        _pair("mumugamma", mumugamma(0.25 * truth, 60_000, 1.0), mumugamma(0.25, 60_000, 2.0)),
        cfg,
        [],
    )
    assert not res.fallback
    assert abs(res.scale - truth) < 3 * res.scale_err
    assert res.scale_err < 0.02
    assert res.signal_shape == pytest.approx(signal_shape_from_scale(res.scale))
    assert 0.05 < res.signal_shape < 0.18


def test_signal_efficiency_closure(rng: np.random.Generator) -> None:
    """Data with 5% more events before the network and a 20% higher network efficiency in the
    first range: sqrt(0.05^2 + 0.2^2) back; the other ranges agree."""
    cfg = _cfg(**{"control.efficiency.require_sensitivity": False})
    n = 200_000
    m2_s = rng.uniform(-0.5, 81.0, n)
    sim = _sample("mumugamma", rng, n, weight=0.5, m2=m2_s, punzinet_pass=0.5)
    # data: the simulation's density times 1.05 in the first range
    m2_d = rng.uniform(-0.5, 81.0, int(0.5 * n * 1.05))
    keep = (m2_d < 9.0) | (rng.random(m2_d.size) < 1 / 1.05)
    m2_d = m2_d[keep]
    pn = np.where(m2_d < 9.0, 0.6, 0.5)
    data = _sample("mumugamma", rng, m2_d.size, m2=m2_d, punzinet_pass=pn)
    emu = _pair("emu", data, sim)  # the third range uses e mu: the same synthetic events
    fb: list = []
    eff = measure_signal_efficiency(
        {"mumugamma": _pair("mumugamma", data, sim), "emu": emu}, cfg, fb
    )
    assert not fb
    first = eff[0]
    assert abs(first.ratio_pre - 1.05) < 3 * first.ratio_pre_err
    assert abs(first.ratio_pn - 1.2) < 3 * first.ratio_pn_err
    assert abs(first.systematic - math.hypot(0.05, 0.2)) < 3 * first.systematic_err
    for e in eff[1:]:
        assert e.systematic < 3.5 * e.systematic_err


def _simple_windows(lo: float, hi: float, n_windows: int, n_bins: int = 20) -> list[Window]:
    out = []
    width = (hi - lo) / n_windows
    for i in range(n_windows):
        edges = np.linspace(lo + i * width, lo + (i + 1) * width, n_bins + 1)
        mid = 0.5 * (edges[0] + edges[-1])
        out.append(Window(index=i, mass_gev=math.sqrt(mid), m2_edges=edges))
    return out


def test_background_shape_closure(rng: np.random.Generator) -> None:
    """Data with a bin-by-bin modulation of +-delta in every window: the largest standard
    deviation is delta sqrt(n / (n - 1)) and the statistics-only expectation is small."""
    cfg = _cfg(**{"control.background_shape.toys": 50})
    delta = 0.1
    windows = _simple_windows(1.0, 9.0, 4)  # 4 windows, 20 bins of 0.1 GeV^2
    n = 400_000
    m2_s = rng.uniform(1.0, 9.0, n)
    sim = _sample("mumugamma", rng, n, weight=0.25, m2=m2_s)
    m2_d = rng.uniform(1.0, 9.0, n // 2)
    sign = np.where(np.floor((m2_d - 1.0) / 0.1).astype(int) % 2 == 0, 1.0, -1.0)
    keep = rng.random(m2_d.size) < (1 + delta * sign) / (1 + delta)
    data = _sample("mumugamma", rng, int(keep.sum()), m2=m2_d[keep])
    fb: list = []
    ranges, rows = measure_background_shape(
        {"mumugamma": _pair("mumugamma", data, sim)}, cfg, fb, windows, rng
    )
    first = ranges[0]
    assert not first.fallback
    assert first.n_windows == 4
    assert first.largest_std == pytest.approx(delta * math.sqrt(20 / 19), rel=0.15)
    assert first.statistic == pytest.approx(2 * first.largest_std)
    # statistics alone: twice the spread of a ratio of ~N_d and ~N_s events per bin
    spread = math.sqrt(80 / len(data) + 80 / sim.n_eff())
    assert first.null_median == pytest.approx(2 * spread, rel=0.25)
    assert first.systematic == pytest.approx(math.sqrt(first.statistic**2 - first.null_median**2))
    assert len(rows) == 4
    # the two other ranges have no window: the PRL values, recorded
    assert [r.fallback for r in ranges[1:]] == [True, True]
    assert [r.systematic for r in ranges[1:]] == PRL.background_shape[1:]
    assert len(fb) == 2


# ----------------------------------------------------------------------------- equal inputs
def _world(rng: np.random.Generator, *, data: bool) -> dict[str, ChannelSample]:
    """One synthetic world: every channel; ``data`` events carry weight 1, simulation 0.5."""
    scale = 1 if data else 2
    w = 1.0 if data else 0.5
    out = {}
    n = 60_000 * scale
    tail = rng.random(n) < 0.2
    m2 = np.where(tail, rng.exponential(15.0, n), rng.normal(0.0, 0.25, n))
    out["mumugamma"] = _sample("mumugamma", rng, n, weight=w, m2=m2, punzinet_pass=0.3)
    out["emu"] = _sample(
        "emu", rng, 40_000 * scale, weight=w, trigger=0.9, punzinet_pass=0.1,
        m2=rng.uniform(-0.5, 81.0, 40_000 * scale),
    )  # fmt: skip
    n_ee = 30_000 * scale
    out["ee"] = _sample("ee", rng, n_ee, weight=w, m2=rng.uniform(-0.5, 2.0, n_ee), veto=0.02)
    return out


def test_equal_inputs_give_no_correction_and_no_systematic(rng: np.random.Generator) -> None:
    cfg = _cfg(
        **{
            "control.efficiency.require_sensitivity": False,
            "control.background_shape.require_sensitivity": False,
            "control.background_shape.toys": 60,
        }
    )
    data, sim = _world(rng, data=True), _world(rng, data=False)
    samples = {k: ControlSample(k, data[k], sim[k]) for k in data}
    mumu = _sample(
        "mumu", rng, 20_000, m2=rng.uniform(-0.5, 3.0, 20_000), veto=0.5,
        recoverable=rng.random(20_000) < 0.5,
    )  # fmt: skip
    result = derive(samples, cfg, mumu_simulation=mumu, rng=np.random.default_rng(3))
    assert not result.fallbacks
    trig = result.trigger
    grid = np.linspace(*trig.fit_range, 5)
    assert np.all(np.abs(trig.correction(grid) - 1) < 3 * trig.correction_uncertainty(grid))
    pv = result.photon_veto
    assert abs(pv.extra_miss) < 3 * pv.extra_miss_err
    assert abs(pv.ratio - 1) < 3 * pv.ratio_err
    res = result.resolution
    assert abs(res.scale - 1) < 3 * res.scale_err
    assert res.signal_shape < 3 * res.signal_shape_err + 1e-9
    for e in result.efficiency:
        assert e.systematic < 3.5 * e.systematic_err
    for s in result.background_shape:
        if s.fallback:
            continue
        assert abs(s.statistic - s.null_median) < 4 * s.null_std
    assert np.isfinite(
        [*result.systematics.signal_efficiency, *result.systematics.background_shape]
    ).all()


# ----------------------------------------------------------------------------- fallbacks
def test_too_few_events_warn_name_the_sample_and_record_the_fallback(
    rng: np.random.Generator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    cfg = _cfg(
        **{
            "control.trigger.fallback_coefficients": [0.98],
            "control.photon_veto.fallback_extra_miss_probability": 0.01,
            "control.resolution.fallback_scale": 1.05,
        }
    )
    ee_m2 = np.full(6, 0.5)
    tiny = {
        "emu": ControlSample(
            "emu", _sample("emu", rng, 5, trigger=0.9), _sample("emu", rng, 5, trigger=0.9)
        ),
        "ee": ControlSample(
            "ee",
            _sample("ee", rng, 6, m2=ee_m2, theta=np.full(6, 100 * DEG), veto=0.1),
            _sample("ee", rng, 6, m2=ee_m2, theta=np.full(6, 100 * DEG), veto=0.1),
        ),
        "mumugamma": ControlSample(
            "mumugamma", _sample("mumugamma", rng, 8), _sample("mumugamma", rng, 8)
        ),
    }
    with caplog.at_level(logging.WARNING, logger="zprime.analyses.invisible_zprime.control"):
        result = derive(tiny, cfg, rng=np.random.default_rng(1))
    text = caplog.text
    for name in ("'emu'", "'ee'", "'mumugamma'"):
        assert f"control sample {name}" in text
    assert all("\n" not in r.getMessage() for r in caplog.records)
    assert "need 30; photon-veto correction uses the fallback 0.01" in text
    assert "need 200; resolution scale uses the fallback 1.05" in text
    measured = {f["measurement"]: f for f in result.fallbacks}
    assert measured["trigger correction"]["value"] == [0.98]
    assert measured["photon-veto correction"]["value"] == 0.01
    assert measured["resolution scale"]["value"] == 1.05
    assert result.photon_veto.extra_miss == 0.01
    assert result.resolution.scale == 1.05
    assert result.trigger.correction([5.0, 50.0]).tolist() == [0.98, 0.98]
    # every systematic is the configured fallback (the PRL's values), never NaN
    syst = result.systematics
    assert syst.signal_efficiency == PRL.signal_efficiency
    assert syst.background_shape == PRL.background_shape
    assert syst.signal_shape == PRL.signal_shape
    assert tuple(syst.photon_veto_shape) == tuple(PRL.photon_veto_shape)
    path = result.write(tmp_path / "corrections.json")
    data = json.loads(path.read_text())
    assert data["fallbacks"] == result.fallbacks
    assert "NaN" not in path.read_text()
    assert "fallback" in result.comparison_markdown()


# ----------------------------------------------------------------------------- corrections file
def test_corrections_json_round_trip(rng: np.random.Generator, tmp_path: Path) -> None:
    cfg = _cfg(**{"control.background_shape.toys": 20})
    data, sim = _world(rng, data=True), _world(rng, data=False)
    result = derive({k: ControlSample(k, data[k], sim[k]) for k in data}, cfg)
    path = result.write(tmp_path / "corrections.json")
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    table = load_systematics(SystematicsConfig(source="derived"), path)
    assert table.source == f"derived:{path}"
    assert list(table.signal_efficiency) == result.systematics.signal_efficiency
    assert list(table.background_shape) == result.systematics.background_shape
    assert table.signal_shape == result.systematics.signal_shape
    assert tuple(table.photon_veto_shape) == tuple(result.systematics.photon_veto_shape)
    corr = read_corrections(path)
    grid = np.linspace(-1, 90, 7)
    assert np.allclose(corr.trigger_weight(grid), result.trigger.correction(grid))
    assert np.allclose(
        corr.trigger_weight_uncertainty(grid), result.trigger.correction_uncertainty(grid)
    )
    assert corr.extra_miss == pytest.approx(result.photon_veto.extra_miss)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a zprime corrections file"):
        read_corrections(bad)


# ----------------------------------------------------------------------------- files
def _track(p: tuple[float, float, float], q: int, *, electron: bool = False) -> dict:
    return {
        "charge": q,
        "px": p[0],
        "py": p[1],
        "pz": p[2],
        "muon_id": 0.01 if electron else 0.9,
        "electron_id": 0.9 if electron else 0.01,
        "d0": 0.01,
        "z0": 0.02,
        "true_pdg": (11 if electron else 13) * -q,
    }


_P1, _P2 = (1.2, 0.3, 1.5), (-0.2, 1.1, 0.8)
_RECOIL = np.array([0.0, 0.0, 3.0]) - np.array(_P1) - np.array(_P2)


def _photon(e: float, direction: np.ndarray) -> dict:
    u = direction / np.linalg.norm(direction)
    return {"e": e, "px": e * u[0], "py": e * u[1], "pz": e * u[2]}


def _at_theta(theta_deg: float, phi_deg: float = 200.0) -> np.ndarray:
    t, f = theta_deg * DEG, phi_deg * DEG
    return np.array([math.sin(t) * math.cos(f), math.sin(t) * math.sin(f), math.cos(t)])


def _reco(rows: list[dict]) -> ak.Array:
    tracks = ak.Array([r["tracks"] for r in rows])
    lists = [r.get("photons", []) for r in rows]
    flat = [g for lst in lists for g in lst]
    fields = {f: np.array([g[f] for g in flat], dtype=np.float64) for f in ("e", "px", "py", "pz")}
    photons = ak.unflatten(ak.zip(fields), np.array([len(x) for x in lists], dtype=np.int64))
    n = len(rows)
    cols = {
        "event": np.arange(n, dtype=np.int64),
        "weight": np.full(n, 0.5),
        "period": np.full(n, 2020, dtype=np.int32),
        "trg_two_track": np.array([r.get("trigger", True) for r in rows]),
        "trg_ecl": np.ones(n, dtype=bool),
        "tracks": tracks,
        "photons": photons,
        **analysis_variables(tracks, photons),
    }
    return ak.zip(cols, depth_limit=1)


_ROWS = [
    # e mu
    {"tracks": [_track(_P1, -1, electron=True), _track(_P2, +1)]},
    # e mu that the two-track trigger missed
    {"tracks": [_track(_P1, -1), _track(_P2, +1, electron=True)], "trigger": False},
    # ee with the photon along the recoil: fails the veto, kept in the ee sample
    {
        "tracks": [_track(_P1, -1, electron=True), _track(_P2, +1, electron=True)],
        "photons": [_photon(1.5, _RECOIL)],
    },
    # mu mu gamma: a photon above 1 GeV within 15 deg of the recoil
    {"tracks": [_track(_P1, -1), _track(_P2, +1)], "photons": [_photon(2.0, _RECOIL)]},
    # mu mu with a 1 GeV photon in the backward barrel away from the recoil: recoverable
    {"tracks": [_track(_P1, -1), _track(_P2, +1)], "photons": [_photon(1.0, _at_theta(100))]},
    # mu mu with a 1 GeV photon at 60 deg: not recoverable
    {"tracks": [_track(_P1, -1), _track(_P2, +1)], "photons": [_photon(1.0, _at_theta(60))]},
]


def test_recoverable_and_acceptance_on_reconstructed_events() -> None:
    ev = _reco(_ROWS)
    cfg = default_config()
    rec = photon_veto_recoverable(ev, cfg.selection, (90.0, 128.7))
    assert rec.tolist() == [True, True, False, False, True, False]
    acc = trigger_acceptance(ev, cfg.detector.get().trigger)
    assert acc.all()  # both tracks in 37-120 deg, azimuthal opening 86 deg > 30 deg (2020)
    ev2019 = ak.with_field(ev, np.full(len(ev), 2019, dtype=np.int32), "period")
    assert not trigger_acceptance(ev2019, cfg.detector.get().trigger).any()  # 86 < 90 deg


def test_read_channels_and_run_control_on_files(tmp_path: Path) -> None:
    cfg = default_config()
    path = tmp_path / "reco" / "mumu.parquet"
    write_events(path, _reco(_ROWS), {"sample": "mumu"})
    sim, flows = read_channels({"mumu": path}, cfg, signal_region_samples=["mumu"])
    assert len(sim["emu"]) == 2
    assert sim["emu"].trigger.tolist() == [True, False]
    assert sim["emu"].w[0] == pytest.approx(0.5 * cfg.luminosity_fb)
    assert len(sim["ee"]) == 1
    assert not sim["ee"].veto[0]
    assert len(sim["mumugamma"]) == 3  # the reversed veto is a flag, not yet applied
    assert sim["mumugamma"].veto.tolist() == [True, False, False]
    assert sim["mumu"].recoverable.tolist() == [False, True, False]
    assert sim["mumu"].veto.tolist() == [False, False, False]
    assert {f.sample for f in flows["emu"]} == {"mumu"}
    assert flows["emu"][0].counts[-1] == 1  # the full e mu selection keeps the triggered one
    # pseudo-data: Poisson multiplicities, reproducible
    d1, _ = read_channels({"mumu": path}, cfg, is_data=True)
    d2, _ = read_channels({"mumu": path}, cfg, is_data=True)
    assert np.array_equal(d1["emu"].w, d2["emu"].w)
    assert np.all(d1["emu"].w == np.round(d1["emu"].w))
    assert np.allclose(d1["emu"].w2, d1["emu"].w ** 2)
    # the whole stage on these files: everything falls back, and says so
    # (figures: see test_figures; drawing all of them takes half a minute)
    result = run_control(
        {"mumu": path}, {"mumu": path}, tmp_path / "control", cfg, make_plots=False
    )
    out = tmp_path / "control"
    for name in ("corrections.json", "comparison.md", "cutflows/emu.md", "cutflows/mumu.csv"):
        assert (out / name).is_file(), name
    assert not (out / "plots").exists()
    data = json.loads((out / "corrections.json").read_text())
    assert data["inputs"]["simulation"] == {"mumu": str(path)}
    assert data["systematics"] == result.systematics.model_dump(mode="json")
    assert result.fallbacks
    assert load_systematics(SystematicsConfig(source="derived"), out / "corrections.json")


def test_figures(rng: np.random.Generator, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from zprime.analyses.invisible_zprime.control import comparison_figure, trigger_figure

    cfg = default_config()
    sim = _sample("emu", rng, 4000, weight=0.5, trigger=0.9)
    data = _sample("emu", rng, 2000, trigger=0.88)
    sample = _pair("emu", data, sim)
    fig = comparison_figure(
        sample, "m_recoil2", np.linspace(-1, 81, 42), xlabel="M2", luminosity_fb=79.7
    )
    ax, rax = fig.axes[:2]
    assert len(ax.containers) >= 1  # the data points
    assert rax.get_ylabel() == "data / sim."
    fig.savefig(tmp_path / "emu.png")
    plt.close(fig)
    trig = measure_trigger(sample, cfg.control, [])
    fig = trigger_figure(trig, 79.7)
    fig.savefig(tmp_path / "trigger.png")
    plt.close(fig)
    assert (tmp_path / "emu.png").stat().st_size > 1000
    assert (tmp_path / "trigger.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- the real chain
_TAU_EMU = {"channels": ["mu", "e"]}  # tau -> mu nu nu, e nu nu only: more e mu events


def _chain(
    tmp_path: Path,
    cfg,
    sizes: dict[str, int],
    *,
    shared: tuple[str, ...],
    detector_seeds: tuple[int, int],
) -> dict[str, dict[str, Path]]:
    """Generate each sample (once when in ``shared``, else again for the data) and simulate it
    with the ``simulation`` detector and with ``control.data_detector``."""
    from zprime.detector.simulation import simulate_file
    from zprime.generators.backgrounds import generate_sample

    paths: dict[str, dict[str, Path]] = {"simulation": {}, "data": {}}
    detectors = ("simulation", cfg.control.data_detector)
    for i, (name, n) in enumerate(sizes.items()):
        gen = {}
        for k, kind in enumerate(("simulation", "data")):
            if k == 1 and name in shared:
                gen[kind] = gen["simulation"]
                continue
            gen[kind] = generate_sample(
                name,
                n,
                tmp_path / f"events_{kind}",
                config=cfg,
                seed=1000 * (k + 1) + i,
                executor="serial",
                chunk_size=min(n, 500_000),
                progress=False,
            )
        for k, kind in enumerate(("simulation", "data")):
            paths[kind][name] = simulate_file(
                gen[kind],
                tmp_path / f"reco_{kind}",
                detector=detectors[k],
                seed=detector_seeds[k],
                config=cfg,
            )
    return paths


def test_equal_detectors_give_corrections_compatible_with_one(tmp_path: Path) -> None:
    """Data made with the simulation's own detector configuration (independent detector random
    numbers; radiative Bhabha events generated again, mu mu and tau pairs shared): the trigger
    correction is [1, 0], the extra photon loss 0 and the resolution scale 1 within errors."""
    cfg = config_from_dict(
        {
            "control": {"data_detector": "simulation", "data_mode": "weighted"},
            "backgrounds": {"samples": {"tautau": {"options": _TAU_EMU}}},
        }
    )
    sizes = {"tautau": 100_000, "mumu": 150_000, "eegamma": 250_000}
    paths = _chain(tmp_path, cfg, sizes, shared=("tautau", "mumu"), detector_seeds=(1, 2))
    result = run_control(
        paths["simulation"], paths["data"], tmp_path / "control", cfg, make_plots=False
    )
    trig, pv, res = result.trigger, result.photon_veto, result.resolution
    assert not trig.fallback
    assert not pv.fallback
    assert not res.fallback
    (c0, c1), cov = trig.coefficients, trig.covariance
    assert trig.used.sum() >= 4
    assert abs(c0 - 1.0) < 3 * math.sqrt(cov[0, 0])
    assert abs(c1) < 3 * math.sqrt(cov[1, 1])
    assert abs(pv.extra_miss) < 3 * pv.extra_miss_err
    assert pv.extra_miss_err < 0.01
    assert abs(res.scale - 1.0) < 3 * res.scale_err
    assert res.scale_err < 0.06
    assert res.signal_shape < 3 * res.signal_shape_err + 1e-9


def _trigger_truth(paths: dict[str, Path], cfg, detector: str) -> tuple[np.ndarray, np.ndarray]:
    """Per M^2 bin of the trigger study: the two-track efficiency the detector configuration
    was built with, averaged over the study's events (e mu before the trigger, photon veto,
    ECL-triggered, tracks in the line's acceptance, no recoil that could fire the Bhabha veto),
    and their weights."""
    from zprime.detector.simulation import trigger_variable, two_track_efficiency
    from zprime.io.events import iter_events

    trig = cfg.detector.get(detector).trigger
    edges = np.asarray(cfg.control.trigger.m2_edges_gev2)
    sel = cfg.selection.model_copy(update={"disabled": ["trigger", "punzinet"]})
    num = np.zeros(edges.size - 1)
    den = np.zeros(edges.size - 1)
    for path in paths.values():
        for ev in iter_events(path, batch_size=300_000):
            keep = np.logical_and.reduce(list(step_masks(ev, sel, "emu").values()))
            keep &= np.asarray(ev["trg_ecl"]) & trigger_acceptance(ev, trig)
            keep &= ~recoil_bhabha_veto(ev, trig, track_pair=True)  # exclude_recoil_bhabha
            ev = ev[keep]
            eff = two_track_efficiency(trigger_variable(ev["tracks"], trig), trig)
            eff = eff * ~np.asarray(ev["trg_bhabha_veto"])
            m2, w = np.asarray(ev["m_recoil2"]), np.asarray(ev["weight"])
            num += np.histogram(m2, edges, weights=w * eff)[0]
            den += np.histogram(m2, edges, weights=w)[0]
    with np.errstate(invalid="ignore"):
        return num / den, den


@pytest.mark.slow
def test_closure_on_pseudo_data_from_the_data_detector(tmp_path: Path) -> None:
    """Closure of the real chain: generator -> the simulation and the data detector (the same
    events and random numbers, as the pipeline's default pseudo-data) -> run_control. The
    trigger efficiency per M^2 bin, the per-photon backward-barrel loss and the resolution
    scale are the ones the data detector was built with (about 2 minutes)."""
    cfg = config_from_dict(
        {
            "control": {"data_mode": "weighted"},
            "backgrounds": {"samples": {"tautau": {"options": _TAU_EMU}}},
        }
    )
    sizes = {"tautau": 2_000_000, "mumu": 1_000_000, "eegamma": 2_000_000}
    paths = _chain(tmp_path, cfg, sizes, shared=tuple(sizes), detector_seeds=(cfg.seed, cfg.seed))
    result = run_control(
        paths["simulation"], paths["data"], tmp_path / "control", cfg, make_plots=False
    )
    sim_det = cfg.detector.get("simulation")
    data_det = cfg.detector.get(cfg.control.data_detector)
    # trigger: per bin, the measured efficiencies are the configured ones
    trig = result.trigger
    assert not trig.fallback
    used = trig.used
    assert used.sum() >= 6
    truth_s, _ = _trigger_truth(paths["simulation"], cfg, "simulation")
    truth_d, _ = _trigger_truth(paths["data"], cfg, cfg.control.data_detector)
    assert np.all(np.abs(trig.eff_sim[used] - truth_s[used]) < 3.5 * trig.err_sim[used])
    assert np.all(np.abs(trig.eff_data[used] - truth_d[used]) < 3.5 * trig.err_data[used])
    # ... rising from the PRL's 89% (data detector: linear in q <= M^2) towards 93%
    assert np.all((truth_d[used] > 0.88) & (truth_d[used] < 0.93))
    # the fitted correction follows the true ratio
    x = trig.x[used]
    pull = (trig.correction(x) - truth_d[used] / truth_s[used]) / trig.correction_uncertainty(x)
    assert np.all(np.abs(pull) < 3.0)
    # photon veto: the data detector's per-photon loss in the backward barrel
    pv = result.photon_veto
    truth = data_det.ecl.backward_barrel_extra_inefficiency - (
        sim_det.ecl.backward_barrel_extra_inefficiency
    )
    assert not pv.fallback
    assert pv.eff_sim < 2 * pv.err_sim
    assert abs(pv.extra_miss - truth) < 3 * pv.extra_miss_err
    assert pv.extra_miss_err < 0.003
    # without leaving out the events whose photon can fire the Bhabha veto it is ~1.7 times more
    sim_ee, _ = read_channels(paths["simulation"], cfg, channels=("ee",))
    data_ee, _ = read_channels(paths["data"], cfg, channels=("ee",), is_data=True)
    biased = cfg.model_copy(deep=True)
    biased.control.photon_veto.exclude_recoil_bhabha = False
    pv_b = measure_photon_veto(_pair("ee", data_ee["ee"], sim_ee["ee"]), biased, [])
    assert pv_b.extra_miss - truth > 4 * pv_b.extra_miss_err
    # resolution: the tracking resolution scale carries over 1:1 to the M_recoil^2 core
    res = result.resolution
    truth = data_det.tracking.resolution_scale / sim_det.tracking.resolution_scale
    assert not res.fallback
    assert abs(res.scale - truth) < 3 * res.scale_err
    assert abs(res.scale - truth) < 0.02
    table = load_systematics(SystematicsConfig(source="derived"), result.files["corrections"])
    assert table.signal_shape == pytest.approx(result.systematics.signal_shape)
