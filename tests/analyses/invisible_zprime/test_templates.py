"""Tests of zprime.analyses.invisible_zprime.templates: 2D templates, signal interpolation,
systematics, wide Z', I/O."""

from __future__ import annotations

import json
import logging
import math

import awkward as ak
import numpy as np
import pytest

from zprime._util import chunk_rng
from zprime.analyses.invisible_zprime.binning import (
    ResolutionModel,
    ResolutionScale,
    Window,
    hypothesis_grid,
    make_windows,
    wide_window,
)
from zprime.analyses.invisible_zprime.selection import apply_selection
from zprime.analyses.invisible_zprime.templates import (
    FLATTEN_ORDER,
    EmptyWindowError,
    EventSample,
    SignalModel,
    SimulatedSignal,
    SystematicsTable,
    build_templates,
    build_window,
    interpolation_closure,
    load_systematics,
    read_templates,
    read_window,
    templates_from_config,
    theta_recoil_acceptance,
    write_templates,
)
from zprime.config import SystematicsConfig, config_from_dict, default_config
from zprime.detector.simulation import simulate
from zprime.errors import ConfigError, InputError
from zprime.generators.signal import generate
from zprime.io.events import write_events
from zprime.physics.constants import M_MUON, SQRT_S
from zprime.stats.workspace import build_workspace

RES = ResolutionModel.prl()
LUMI = 79.7
PRL_SYST = SystematicsTable.from_values(default_config().templates.systematics.prl)


def theta_mean(mass: float) -> float:
    """Mean theta^CM of the synthetic signal: moves linearly with M."""
    return 1.2 + 0.08 * mass


def eff_true(mass: float) -> float:
    return 0.25 + 0.01 * mass


def synthetic_signal(mass: float, n_gen: int, rng: np.random.Generator) -> SimulatedSignal:
    """Selected events of a toy signal: Gaussian peak of width sigma(M^2) in M^2, theta^CM
    Gaussian around theta_mean(M), efficiency eff_true(M); 1 fb generated."""
    n = rng.binomial(n_gen, eff_true(mass))
    m2 = mass**2 + RES.sigma(mass**2) * rng.standard_normal(n)
    theta = np.clip(rng.normal(theta_mean(mass), 0.35, n), 0.01, 3.1)
    return SimulatedSignal(
        mass, m2, theta, np.full(n, 1.0 / n_gen), 1.0, m2_true=np.full(n, mass**2)
    )


def background(name: str, n: int, rng: np.random.Generator, scale: float = 1.0) -> EventSample:
    m2 = rng.exponential(15.0, n) - 1.0
    theta = np.where(rng.random(n) < 0.5, rng.normal(0.9, 0.15, n), rng.normal(2.2, 0.2, n))
    return EventSample(name, m2, np.clip(theta, 0.0, 3.14), rng.uniform(0.5, 1.5, n) * scale)


@pytest.fixture
def samples(rng: np.random.Generator):
    signals = [synthetic_signal(m, 20_000, rng) for m in (1.0, 2.0, 3.0, 4.0, 5.0)]
    bkgs = {
        "mumu": background("mumu", 60_000, rng),
        "eemumu": background("eemumu", 20_000, rng, 0.3),
    }
    data_m2 = rng.exponential(15.0, 5000) - 1.0
    data = EventSample("data", data_m2, rng.uniform(0.3, 2.8, 5000), None, is_data=True)
    return signals, bkgs, data


def narrow_window(mass: float, n_bins: int = 20, theta=(0.0, 1.0, 2.0, math.pi)) -> Window:
    scale = ResolutionScale(RES)
    u = scale.u(mass**2)
    return Window(
        0,
        mass,
        np.asarray(scale.m2(u + np.arange(n_bins + 1) - n_bins / 2)),
        np.asarray(theta, dtype=float),
    )


def test_templates_conserve_weight_and_variance(samples) -> None:
    signals, bkgs, data = samples
    win = narrow_window(2.5)
    wt = build_window(
        win, SignalModel(signals, RES), bkgs, data, luminosity_fb=LUMI, systematics=PRL_SYST
    )
    lo, hi = win.m2_edges[0], win.m2_edges[-1]
    for name, s in bkgs.items():
        inside = (s.m2 >= lo) & (s.m2 < hi)
        h = wt.backgrounds[name]
        assert h.values().sum() == pytest.approx(np.sum(s.weight[inside]) * LUMI, rel=1e-12)
        assert h.variances().sum() == pytest.approx(
            np.sum((s.weight[inside] * LUMI) ** 2), rel=1e-12
        )
        assert h.values().shape == (20, 3)
    inside = (data.m2 >= lo) & (data.m2 < hi)
    assert wt.observed.values().sum() == inside.sum()  # data: counts
    # signal: expected events per fb, efficiency x luminosity, variance of the same weights
    _m2, _, w = SignalModel(signals, RES).events(2.5, lo, hi)
    assert wt.signal.values().sum() == pytest.approx(w.sum() * LUMI)
    assert wt.signal.variances().sum() == pytest.approx(np.sum((w * LUMI) ** 2))
    assert wt.signal_efficiency == pytest.approx(
        0.5 * (signals[1].efficiency + signals[2].efficiency)
    )


def test_signal_normalisation_is_efficiency_times_luminosity(samples) -> None:
    signals, _bkgs, _ = samples
    model = SignalModel(signals, RES)
    # at a simulated mass, in a window wide enough for the whole peak
    win = narrow_window(3.0, n_bins=40)
    h = model.template(win, LUMI)
    assert h.values().sum() == pytest.approx(signals[2].efficiency * LUMI, rel=1e-12)
    # between masses the efficiency is linear in M
    for mass in (1.3, 2.5, 4.75):
        assert model.efficiency(mass) == pytest.approx(eff_true(mass), abs=0.004)
        total = model.events(mass)[2].sum()
        assert total == pytest.approx(model.efficiency(mass), rel=1e-12)
    # outside the simulated range: the nearest sample, flagged
    assert model.components(0.5) == ([(0, 1.0)], True)
    assert model.components(3.0)[1] is False
    assert model.efficiency(8.0) == pytest.approx(signals[-1].efficiency)


def test_flatten_order_and_bin_map(samples) -> None:
    signals, bkgs, data = samples
    wt = build_window(
        narrow_window(2.0),
        SignalModel(signals, RES),
        bkgs,
        data,
        luminosity_fb=LUMI,
        systematics=PRL_SYST,
    )
    inputs = wt.workspace_inputs(merge_backgrounds=False)
    bmap = wt.bin_map()
    values = wt.signal.values()
    assert bmap.shape == (60, 2)
    assert tuple(bmap[4]) == (1, 1)
    for k, (i, j) in enumerate(bmap):
        assert inputs["signal"][k] == values[i, j]
        assert inputs["backgrounds"]["mumu"][k] == wt.backgrounds["mumu"].values()[i, j]
    meta = wt.metadata()
    assert meta["flatten"] == FLATTEN_ORDER
    assert meta["shape"] == [20, 3]
    assert meta["m2_edges_gev2"][10] == pytest.approx(4.0)


def test_interpolation_closure_synthetic(rng: np.random.Generator) -> None:
    signals = [synthetic_signal(m, 60_000, rng) for m in (2.0, 2.5, 3.0)]
    theta = np.array([0.0, 1.0, 1.2, 1.4, 1.6, math.pi])
    c = interpolation_closure(signals, RES, 1, theta_edges_rad=theta)
    assert c["p_value"] > 0.01
    assert c["ks_p_value"] > 0.01
    assert c["eff_ratio"] == pytest.approx(1.0, abs=0.01)
    assert abs(c["eff_pull"]) < 3
    # and it can fail: a held-out sample whose peak is shifted by half a sigma does not close
    bad = synthetic_signal(2.5, 60_000, rng)
    bad.m2 = bad.m2 + 0.5 * RES.sigma(6.25)
    c_bad = interpolation_closure([signals[0], bad, signals[2]], RES, 1)
    assert c_bad["p_value"] < 1e-6
    assert c_bad["ks_p_value"] < 1e-6


def test_interpolation_closure_real_chain() -> None:
    """Signal generator + fast detector + selection (no Punzi-net) at 3.0, 3.5, 4.0 GeV."""
    cfg = default_config()
    signals = []
    for i, mass in enumerate((3.0, 3.5, 4.0)):
        sample = generate(mass, 15_000, chunk_rng(11, i))
        reco = simulate(sample.events, rng=chunk_rng(12, i))
        mask, _ = apply_selection(reco, cfg.selection, skip=["punzinet", "theta_recoil"])
        signals.append(SimulatedSignal.from_events(mass, reco[mask], sample.sigma_fb))
    assert signals[0].theta_lab is not None
    assert signals[0].m2_true is not None
    theta = np.radians([0, 45, 75, 105, 135, 180])
    c = interpolation_closure(signals, RES, 1, theta_edges_rad=theta, acceptance=cfg.selection)
    assert c["p_value"] > 0.001
    assert c["ks_p_value"] > 0.001
    assert c["eff_ratio"] == pytest.approx(1.0, abs=0.04)


def test_theta_recoil_cut_is_reapplied_after_the_move(rng: np.random.Generator) -> None:
    sel = default_config().selection
    n = 40_000
    lab = rng.uniform(0.2, 2.8, n)  # lab recoil angle, rad, before the theta_recoil step
    sig = SimulatedSignal(
        2.2,
        4.84 + 0.8 * rng.standard_normal(n),
        rng.uniform(0.5, 2.5, n),
        np.full(n, 1e-5),
        1.0,
        theta_lab=lab,
    )
    model = SignalModel([sig], RES, sel)
    m2, _, w = model.events(2.2)  # at its own mass the move is the identity
    frac_low = np.count_nonzero(m2 < 4.0) / np.count_nonzero(sig.m2 < 4.0)
    frac_high = np.count_nonzero(m2 >= 4.0) / np.count_nonzero(sig.m2 >= 4.0)
    deg = math.pi / 180
    expect_low = ((123 - 34) - 2) * deg / 2.6  # barrel minus the 90 deg gap, of U(0.2, 2.8)
    expect_high = (123 * deg - 0.2) / 2.6
    assert frac_low == pytest.approx(expect_low, rel=0.03)
    assert frac_high == pytest.approx(expect_high, rel=0.03)
    assert model.efficiency(2.2) == pytest.approx(w.sum())
    # the function itself: the split at 4 GeV^2 (PRL)
    deg = math.pi / 180
    np.testing.assert_array_equal(
        theta_recoil_acceptance(
            np.array([3.9, 3.9, 3.9, 4.1, 4.1]), np.array([30, 60, 90, 30, 125]) * deg, sel
        ),
        [False, True, False, True, False],
    )
    with pytest.raises(InputError, match="theta_recoil"):
        SignalModel([synthetic_signal(2.0, 1000, rng)], RES, sel)


def test_systematics_ranges_map_to_windows(samples) -> None:
    signals, bkgs, _ = samples
    syst = PRL_SYST
    assert [syst.signal_efficiency_at(m2) for m2 in (-0.3, 5.0, 9.5, 20.0, 50.0, 72.25, 90.0)] == [
        0.027,
        0.027,
        0.065,
        0.065,
        0.083,
        0.083,
        0.083,
    ]
    np.testing.assert_allclose(
        syst.background_shape_at([-0.6, 0.0, 8.9, 9.1, 35.0, 37.0, 81.0]),
        [0.032, 0.032, 0.032, 0.086, 0.086, 0.25, 0.25],
    )
    np.testing.assert_allclose(
        syst.photon_veto_at([-0.2, 0.99, 1.01, 50.0]), [0.34, 0.34, 0.05, 0.05]
    )
    model = SignalModel(signals, RES)
    # a window across M^2 = 9: per-bin background shape by bin centre, efficiency by hypothesis
    wt = build_window(narrow_window(3.0), model, bkgs, luminosity_fb=LUMI, systematics=syst)
    centres = wt.m2_centres()
    np.testing.assert_allclose(wt.background_shape_unc(), np.where(centres < 9.0, 0.032, 0.086))
    assert wt.signal_efficiency_unc == 0.065  # M^2 = 9 belongs to [9, 36]
    # merged background: photon veto only on mu mu, combined in quadrature
    inp = wt.workspace_inputs()
    b_mm = wt.backgrounds["mumu"].values().ravel()
    b_tot = b_mm + wt.backgrounds["eemumu"].values().ravel()
    rb, rpv = wt.background_shape_unc(), wt.photon_veto_unc()
    np.testing.assert_allclose(
        inp["background_shape_unc"]["background"],
        np.sqrt((rb * b_tot) ** 2 + (rpv * b_mm) ** 2) / b_tot,
    )
    assert inp["lumi_unc"] == 0.01
    np.testing.assert_allclose(inp["signal_shape_unc"], 0.10)
    np.testing.assert_allclose(
        inp["background_mc_unc"]["background"] ** 2,
        wt.backgrounds["mumu"].variances().ravel() + wt.backgrounds["eemumu"].variances().ravel(),
    )
    assert np.array_equal(inp["observed"], b_tot)  # no data: the expected background
    per = wt.workspace_inputs(merge_backgrounds=False)
    np.testing.assert_allclose(per["background_shape_unc"]["mumu"], np.hypot(rb, rpv))
    np.testing.assert_allclose(per["background_shape_unc"]["eemumu"], rb)
    # a low window gets the 34% photon-veto uncertainty below 1 GeV^2
    low = build_window(narrow_window(0.9), model, bkgs, luminosity_fb=LUMI, systematics=syst)
    assert set(np.round(low.photon_veto_unc(), 2)) == {0.34, 0.05}


def test_systematics_sources(tmp_path) -> None:
    assert SystematicsConfig().source == "derived"  # the default: the control stage's values
    cfg = SystematicsConfig(source="prl")
    assert load_systematics(cfg).source == "prl"
    values = default_config().templates.systematics.prl.model_dump()
    values["luminosity"] = 0.02
    (tmp_path / "syst.json").write_text(json.dumps(values))
    table = load_systematics(SystematicsConfig(source="file", file=str(tmp_path / "syst.json")))
    assert table.luminosity == 0.02
    assert table.signal_shape == 0.10
    (tmp_path / "corrections.json").write_text(json.dumps({"systematics": values}))
    derived = load_systematics(SystematicsConfig(source="derived"), tmp_path / "corrections.json")
    assert derived.luminosity == 0.02
    assert derived.source.startswith("derived")
    with pytest.raises(ConfigError, match=r"systematics\.file"):
        load_systematics(SystematicsConfig(source="derived"))
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(InputError, match="'systematics'"):
        load_systematics(SystematicsConfig(source="derived"), tmp_path / "empty.json")
    values["signal_efficiency"] = [0.1]
    (tmp_path / "bad.json").write_text(json.dumps(values))
    with pytest.raises(InputError, match="signal_efficiency"):
        load_systematics(SystematicsConfig(source="file", file=str(tmp_path / "bad.json")))
    with pytest.raises(ConfigError, match="signal_efficiency"):
        config_from_dict({"templates": {"systematics": {"prl": {"signal_efficiency": [0.1]}}}})


def test_wide_templates_are_normalised_and_wider(samples) -> None:
    signals, bkgs, _ = samples
    model = SignalModel(signals, RES)
    scale = ResolutionScale(RES)
    cfg = default_config().binning.wide
    for mass in (1.5, 3.0):
        wide = wide_window(0, mass, scale, cfg)
        wt = build_window(wide, model, bkgs, luminosity_fb=LUMI, systematics=PRL_SYST)
        assert wt.shape[1] == 1
        assert wt.name.endswith(f"_W{0.1 * mass:.4f}")
        # the window holds the Breit-Wigner's fraction between its edges (truncated like the
        # generator: 1 MeV < mu < sqrt(s) - 2 m_mu), times efficiency and luminosity; the
        # resolution and the slope of the efficiency change this by little
        mg = mass * 0.1 * mass
        lo, hi = wide.m2_edges[0] - mass**2, wide.m2_edges[-1] - mass**2
        full = math.atan((SQRT_S - 2 * M_MUON) ** 2 / mg) - math.atan((1e-6 - mass**2) / mg)
        frac = (math.atan(hi / mg) - math.atan(lo / mg)) / full
        assert 0.75 < frac < 0.95  # at least +-3 M Gamma: 2 atan(3) / pi = 79.5%
        total = wt.signal.values().sum() / (LUMI * model.efficiency(mass))
        assert total == pytest.approx(frac, abs=0.015)
        # a huge window holds everything the truncated Breit-Wigner has (efficiency ~flat)
        big = Window(0, mass, np.linspace(-2.0, 100.0, 400), width_gev=0.1 * mass)
        h = model.wide_template(big, 1.0)
        assert h.values().sum() == pytest.approx(model.efficiency(mass), rel=0.05)
        # wider than the narrow template
        centres = 0.5 * (wide.m2_edges[1:] + wide.m2_edges[:-1])
        narrow_h = model.template(wide.with_theta([0.0, math.pi]), LUMI).values()[:, 0]
        wide_h = wt.signal.values()[:, 0]

        def rms(v: np.ndarray, x: np.ndarray = centres) -> float:
            mean = np.average(x, weights=v)
            return math.sqrt(np.average((x - mean) ** 2, weights=v))

        assert rms(wide_h) > 2 * rms(narrow_h)
        assert np.argmax(wide_h) in range(wide_h.size // 2 - 3, wide_h.size // 2 + 3)


def test_bad_inputs_are_named(samples, caplog) -> None:
    signals, bkgs, _ = samples
    with pytest.raises(InputError, match=r"sample 'mumu': column 'weight' is NaN"):
        EventSample("mumu", [1.0, 2.0], [1.0, 1.0], [1.0, np.nan])
    with pytest.raises(InputError, match="missing column 'theta_recoil_cm'"):
        EventSample.from_events("tautau", {"m_recoil2": np.zeros(3), "weight": np.ones(3)})
    neg = dict(bkgs)
    neg["pipi"] = EventSample("pipi", [6.25, 6.3], [1.5, 1.5], [-1.0, 0.1])
    win = narrow_window(2.5)
    with pytest.raises(InputError, match=r"templates M2.5000: sample 'pipi' has negative content"):
        build_window(win, SignalModel(signals, RES), neg, luminosity_fb=LUMI, systematics=PRL_SYST)
    far = {"mumu": EventSample("mumu", [60.0, 70.0], [1.0, 1.0], [1.0, 1.0])}
    with pytest.raises(EmptyWindowError, match=r"templates M2\.5000: zero expected background"):
        build_window(win, SignalModel(signals, RES), far, luminosity_fb=LUMI, systematics=PRL_SYST)
    # in a scan the empty window is recorded as failed (with a warning), not dropped
    windows = [narrow_window(2.5), Window(1, 8.3, np.linspace(68, 70, 21))]
    sparse = {"mumu": EventSample("mumu", [6.25, 6.3, 6.5], [1.0, 1.5, 2.0], [1.0, 1.0, 1.0])}
    with caplog.at_level(logging.WARNING, logger="zprime.analyses.invisible_zprime.templates"):
        tset = build_templates(
            windows, SignalModel(signals, RES), sparse, luminosity_fb=LUMI, systematics=PRL_SYST
        )
    assert [w.name for w in tset.windows] == ["M2.5000"]
    assert "M8.3000" in tset.failed
    assert "zero expected background" in tset.failed["M8.3000"]
    assert "M8.3000" in caplog.text


def test_workspace_export_is_valid_pyhf(samples) -> None:
    pyhf = pytest.importorskip("pyhf")

    signals, bkgs, data = samples
    wt = build_window(
        narrow_window(2.5, theta=(0.0, 1.5, math.pi)),
        SignalModel(signals, RES),
        bkgs,
        data,
        luminosity_fb=LUMI,
        systematics=PRL_SYST,
    )
    spec = build_workspace(**wt.workspace_inputs())
    ws = pyhf.Workspace(spec)
    model = ws.model()
    assert model.config.channel_nbins[wt.name] == wt.n_bins == 40
    assert model.config.poi_name == "xsec_fb"
    np.testing.assert_allclose(spec["observations"][0]["data"], wt.observed.values().ravel())


def test_write_read_roundtrip(samples, tmp_path) -> None:
    signals, bkgs, data = samples
    scale = ResolutionScale(RES)
    grid = hypothesis_grid(scale, 2.0, 2.6)
    windows = [*make_windows(grid, scale, 20), Window(99, 8.3, np.linspace(68, 70, 21))]
    sparse = dict(bkgs)
    sparse["mumu"] = EventSample(
        "mumu",
        bkgs["mumu"].m2[bkgs["mumu"].m2 < 60],
        bkgs["mumu"].theta[bkgs["mumu"].m2 < 60],
        bkgs["mumu"].weight[bkgs["mumu"].m2 < 60],
    )
    sparse["eemumu"] = EventSample("eemumu", [1.0], [1.0], [1.0])
    tset = build_templates(
        windows,
        SignalModel(signals, RES),
        sparse,
        data,
        luminosity_fb=LUMI,
        systematics=PRL_SYST,
        theta_cfg=default_config().binning.theta,
    )
    index = write_templates(tmp_path / "templates", tset)
    entries = json.loads(index.read_text())["windows"]
    assert [e["status"] for e in entries][-1] == "failed"
    back = read_templates(tmp_path / "templates")
    assert len(back) == len(grid)
    assert back.failed.keys() == tset.failed.keys()
    assert back.resolution == RES
    for a, b in zip(tset.windows, back.windows, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.signal.values(), b.signal.values())
        np.testing.assert_array_equal(
            a.backgrounds["mumu"].variances(), b.backgrounds["mumu"].variances()
        )
        np.testing.assert_array_equal(a.window.theta_edges, b.window.theta_edges)
        assert a.workspace_inputs().keys() == b.workspace_inputs().keys()
    assert tset.windows[0].shape[1] == 4  # M^2 ~ 4-7 GeV^2: four theta bins, quantile edges
    with pytest.raises(InputError, match="no such template file"):
        read_window(tmp_path / "templates" / "M9.9999.json")


def test_templates_from_config(samples) -> None:
    signals, bkgs, data = samples
    cfg = config_from_dict(
        {
            "binning": {"mass_min_gev": 2.0, "mass_max_gev": 3.0},
            "templates": {
                "backgrounds": ["mumu", "eemumu"],
                "reapply_theta_recoil": False,
                "systematics": {"source": "prl"},
            },
        }
    )
    tset = templates_from_config(cfg, signals, bkgs, data)
    assert tset.resolution is not None
    assert tset.resolution.source.startswith("measured")
    assert len(tset) == tset.info["grid"]["count"]
    assert not tset.failed
    # measured from the residuals: the toy's widths (the PRL model) at the simulated masses
    for mass in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert tset.resolution.sigma(mass**2) == pytest.approx(RES.sigma(mass**2), rel=0.04)
    wide = templates_from_config(cfg, signals, bkgs, data, wide=True)
    assert all(w.shape[1] == 1 and w.window.width_gev for w in wide.windows)
    with pytest.raises(InputError, match="'tautau'"):
        templates_from_config(
            config_from_dict(
                {"templates": {"backgrounds": ["tautau"], "systematics": {"source": "prl"}}}
            ),
            signals,
            bkgs,
        )


def test_sparse_background_widens_the_theta_quantile_range(rng: np.random.Generator) -> None:
    cfg = default_config().binning.theta  # M^2 < 1: five bins of at least 25 MC events
    n = 1000
    mumu = EventSample("mumu", rng.uniform(-1.0, 10.0, n), rng.uniform(0.2, 3.0, n), np.ones(n))
    win = narrow_window(0.8, theta=(0.0, math.pi))
    inside = mumu.window(win.m2_edges[0], win.m2_edges[-1])
    assert inside.stop - inside.start < 125  # too few in the window itself
    signals = [synthetic_signal(m, 5000, rng) for m in (0.5, 1.0)]
    wt = build_window(
        win,
        SignalModel(signals, RES),
        {"mumu": mumu},
        luminosity_fb=LUMI,
        systematics=PRL_SYST,
        theta_cfg=cfg,
    )
    edges = wt.window.theta_edges
    assert edges.size == 6
    np.testing.assert_allclose(edges[1:-1], 0.2 + 2.8 * np.arange(1, 5) / 5, atol=0.2)
    # the templates themselves are filled in the window only
    assert wt.backgrounds["mumu"].values().sum() == pytest.approx(
        (inside.stop - inside.start) * LUMI
    )


def test_read_selected_parquet(tmp_path, rng: np.random.Generator) -> None:
    n = 500
    cols = {
        "m_recoil2": 4.0 + 0.2 * rng.standard_normal(n),
        "theta_recoil_cm": rng.uniform(0.5, 2.5, n),
        "theta_recoil": rng.uniform(0.6, 2.0, n),
        "m_recoil2_true": np.full(n, 4.0),
        "weight": np.full(n, 2e-3),
    }
    path = write_events(
        tmp_path / "signal_M2.0000.parquet",
        ak.zip(cols),
        {"sample": "signal", "mass_gev": 2.0, "sigma_fb": 4.0},
    )
    sig = SimulatedSignal.read(path)
    assert sig.mass == 2.0
    assert sig.efficiency == pytest.approx(n * 2e-3 / 4.0)
    np.testing.assert_allclose(sig.residuals, cols["m_recoil2"] - 4.0)
    assert sig.theta_lab is not None
    bkg = EventSample.read(path, "mumu")
    assert len(bkg) == n
    assert np.all(np.diff(bkg.m2) >= 0)
    data = EventSample.read(path, "data", is_data=True)
    assert np.all(data.weight == 1.0)
    plain = write_events(tmp_path / "plain.parquet", ak.zip(cols), {"sample": "x"})
    with pytest.raises(InputError, match="mass_gev"):
        SimulatedSignal.read(plain)


def test_empty_window_gets_a_flat_template_at_the_local_density(samples) -> None:
    signals, _, _ = samples
    win = narrow_window(2.5)
    lo, hi = win.m2_edges[0], win.m2_edges[-1]
    span = hi - lo
    # two events beside the window (inside the five times wider range), none in it
    near = {
        "mumu": EventSample("mumu", [lo - 1.5 * span, hi + 1.5 * span], [1.0, 1.0], [0.5, 0.25])
    }
    wt = build_window(
        win,
        SignalModel(signals, RES),
        near,
        luminosity_fb=LUMI,
        systematics=PRL_SYST,
        empty_background="flat",
    )
    total = wt.backgrounds["mumu"].values()
    # density of the wide range times the window's share: 0.75 fb x L / 5
    assert total.sum() == pytest.approx(0.75 * LUMI / 5.0, rel=1e-9)
    per_m2 = total.sum(axis=1) / np.diff(win.m2_edges)
    np.testing.assert_allclose(per_m2, per_m2[0], rtol=1e-9)  # flat in M^2
    assert any("no simulated background" in n for n in wt.notes)
    # nothing anywhere near: one event's yield spread over the window
    far = {"mumu": EventSample("mumu", [70.0], [1.0], [0.2])}
    wt = build_window(
        win,
        SignalModel(signals, RES),
        far,
        luminosity_fb=LUMI,
        systematics=PRL_SYST,
        empty_background="flat",
    )
    assert wt.backgrounds["mumu"].values().sum() == pytest.approx(0.2 * LUMI, rel=1e-9)
