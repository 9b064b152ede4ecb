"""zprime.control: closure of every measurement on synthetic samples with a known truth, equal
inputs, fallbacks, the corrections file, and the file layer on hand-made reconstructed events."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from zprime.binning import Window
from zprime.config import SystematicsConfig, SystematicsValues, config_from_dict, default_config
from zprime.control import (
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
    run_control,
    signal_shape_from_scale,
    trigger_acceptance,
    weighted_efficiency,
)
from zprime.detector import analysis_variables
from zprime.errors import InputError
from zprime.events import write_events
from zprime.templates import load_systematics

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
    cfg = default_config()
    tiny = {
        "emu": ControlSample(
            "emu", _sample("emu", rng, 5, trigger=0.9), _sample("emu", rng, 5, trigger=0.9)
        ),
        "mumugamma": ControlSample(
            "mumugamma", _sample("mumugamma", rng, 8), _sample("mumugamma", rng, 8)
        ),
    }
    with caplog.at_level(logging.WARNING, logger="zprime.control"):
        result = derive(tiny, cfg, rng=np.random.default_rng(1))
    text = caplog.text
    for name in ("'emu'", "'ee'", "'mumugamma'"):
        assert f"control sample {name}" in text
    assert all("\n" not in r.getMessage() for r in caplog.records)
    measured = {f["measurement"] for f in result.fallbacks}
    assert {"trigger correction", "photon-veto correction", "resolution scale"} <= measured
    # every systematic is the configured fallback (the PRL's values), never NaN
    syst = result.systematics
    assert syst.signal_efficiency == PRL.signal_efficiency
    assert syst.background_shape == PRL.background_shape
    assert syst.signal_shape == PRL.signal_shape
    assert tuple(syst.photon_veto_shape) == tuple(PRL.photon_veto_shape)
    assert result.trigger.coefficients == (1.0,)
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
    result = run_control({"mumu": path}, {"mumu": path}, tmp_path / "control", cfg)
    out = tmp_path / "control"
    for name in ("corrections.json", "comparison.md", "cutflows/emu.md", "cutflows/mumu.csv"):
        assert (out / name).is_file(), name
    assert (out / "plots" / "emu_m_recoil2.png").is_file()
    data = json.loads((out / "corrections.json").read_text())
    assert data["inputs"]["simulation"] == {"mumu": str(path)}
    assert data["systematics"] == result.systematics.model_dump(mode="json")
    assert result.fallbacks
    assert load_systematics(SystematicsConfig(source="derived"), out / "corrections.json")


# ----------------------------------------------------------------------------- the real chain
@pytest.mark.slow
def test_real_chain_measures_the_data_detector(tmp_path: Path) -> None:
    """Generator -> both detector configurations -> run_control: the measured corrections are
    those the ``data`` detector was built with (about 2 minutes)."""
    from zprime.backgrounds import generate_sample
    from zprime.detector import simulate_file

    cfg = config_from_dict(
        {
            "backgrounds": {
                "samples": {
                    "mumu": {"events": 300_000, "chunk_size": 150_000},
                    "tautau": {"events": 15_000, "chunk_size": 5_000},
                }
            }
        }
    )
    paths: dict[str, dict[str, Path]] = {"simulation": {}, "data": {}}
    for k, detector in enumerate(("simulation", cfg.control.data_detector)):
        for i, name in enumerate(("mumu", "tautau", "eegamma")):
            gen = generate_sample(
                name,
                None,
                tmp_path / f"events_{detector}",
                config=cfg,
                seed=1000 * (k + 1) + i,  # independent events for the data
                workers=1,
                progress=False,
            )
            reco = simulate_file(gen, tmp_path / f"reco_{detector}", detector=detector, config=cfg)
            paths["simulation" if k == 0 else "data"][name] = reco
    result = run_control(paths["simulation"], paths["data"], tmp_path / "control", cfg)
    sim_det, data_det = cfg.detector.get("simulation"), cfg.detector.get(cfg.control.data_detector)
    # trigger: the simulated line's efficiency is flat at its configured value
    trig = result.trigger
    assert not trig.fallback
    flat = float(np.mean(sim_det.trigger.two_track_efficiency))
    used = trig.used
    assert np.all(np.abs(trig.eff_sim[used] - flat) < 3.5 * trig.err_sim[used])
    lo, hi = data_det.trigger.two_track_efficiency
    assert np.all(trig.eff_data[used] > lo - 3.5 * trig.err_data[used])
    assert np.all(trig.eff_data[used] < hi + 3.5 * trig.err_data[used])
    # resolution: the data detector's tracking resolution scale, 1:1 in M_recoil^2
    truth = data_det.tracking.resolution_scale / sim_det.tracking.resolution_scale
    res = result.resolution
    assert not res.fallback
    assert abs(res.scale - truth) < 3 * res.scale_err
    # photon veto: the simulation misses no backward-barrel photon, the data do
    pv = result.photon_veto
    assert not pv.fallback
    assert pv.eff_sim < 2 * pv.err_sim
    assert pv.extra_miss > 3 * pv.extra_miss_err
    table = load_systematics(SystematicsConfig(source="derived"), result.files["corrections"])
    assert table.signal_shape == pytest.approx(result.systematics.signal_shape)
