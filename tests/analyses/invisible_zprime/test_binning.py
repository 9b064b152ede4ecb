"""Tests of zprime.analyses.invisible_zprime.binning: resolution model, hypothesis grid, windows,
theta binning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from zprime.analyses.invisible_zprime.binning import (
    PRL_RESOLUTION_POINTS,
    ResolutionModel,
    ResolutionScale,
    hypothesis_grid,
    hypothesis_name,
    make_windows,
    measure_width,
    resolution_model_from_config,
    theta_bin_count,
    theta_edges,
    wide_window,
    windows_from_config,
)
from zprime.config import ThetaBinningConfig, config_from_dict, default_config
from zprime.errors import ConfigError, InputError


def true_sigma(mass: np.ndarray) -> np.ndarray:
    """A resolution shaped like the measured one (GeV^2): rising steeply from 0.01 at M = 0,
    flat near 0.23 around 3-4 GeV, falling to ~0.09 at 8.5 GeV; not a polynomial in any of
    the fit variables."""
    m = np.asarray(mass, dtype=float)
    return 0.26 * np.sqrt(m / (m + 0.6)) * (1.0 - (m / 10.0) ** 2.5) + 0.01


def test_measure_width_core_ignores_tails(rng: np.random.Generator) -> None:
    core = rng.normal(0.0, 0.2, 40_000)
    tails = rng.normal(0.0, 1.0, 4_000)  # 10% wide component, like the radiative smearing
    width, err = measure_width(np.concatenate([core, tails]), estimator="core")
    assert width == pytest.approx(0.2, rel=0.03)
    assert 0 < err < 0.01
    s68, _ = measure_width(np.concatenate([core, tails]), estimator="sigma68")
    assert s68 > 1.05 * width  # the 68% half-width feels the tails
    pure, perr = measure_width(core, estimator="sigma68")
    assert pure == pytest.approx(0.2, abs=3 * perr)


def test_measure_width_core_with_one_sided_tail(rng: np.random.Generator) -> None:
    """A Gaussian core (sigma = 0.2) plus a one-sided exponential tail, like a radiative tail
    on the high-M^2 side: the core estimator recovers 0.2 to 1-2.5%, the 68% half-width is
    pulled 4.5-7.5% wider."""
    core = rng.normal(0.0, 0.2, 40_000)
    hard = 0.2 * rng.normal(0.0, 1.0, 2_000) + rng.exponential(0.6, 2_000)  # 5%, scale 3 sigma
    soft = 0.2 * rng.normal(0.0, 1.0, 4_000) + rng.exponential(0.4, 4_000)  # 10%, scale 2 sigma
    for tail, core_width, s68_width in ((hard, 0.2015, 0.2090), (soft, 0.2046, 0.2150)):
        x = np.concatenate([core, tail])
        width, err = measure_width(x)
        assert width == pytest.approx(core_width, abs=2e-4)  # seeded: the numbers above
        assert width == pytest.approx(0.2, rel=0.025)
        assert err == pytest.approx(0.0011, rel=0.1)
        s68, _ = measure_width(x, estimator="sigma68")
        assert s68 == pytest.approx(s68_width, abs=2e-4)
        assert s68 - 0.2 > 2.5 * (width - 0.2)


def test_measure_width_core_unbiased_for_small_samples(rng: np.random.Generator) -> None:
    """The unbinned likelihood fit has no small-sample bias (the former least-squares fit to a
    50-bin histogram returned 0.93 sigma for 200-500 events) and a calibrated error."""
    fits = np.array([measure_width(rng.normal(0.0, 0.2, 300)) for _ in range(100)])
    widths, errors = fits[:, 0], fits[:, 1]
    assert widths.mean() / 0.2 == pytest.approx(0.9933, abs=1e-3)  # seeded
    assert abs(widths.mean() / 0.2 - 1.0) < 3 * widths.std() / 0.2 / math.sqrt(100)
    assert widths.std() / errors.mean() == pytest.approx(1.0, abs=0.15)


def test_measure_width_errors() -> None:
    with pytest.raises(InputError, match="need 200"):
        measure_width(np.zeros(50), label="x")
    with pytest.raises(ConfigError, match="estimator"):
        measure_width(np.linspace(0, 1, 500), estimator="fwhm")


def test_resolution_fit_recovers_known_width_function(rng: np.random.Generator) -> None:
    masses = np.linspace(0.25, 8.5, 17)
    widths, errors = [], []
    for m in masses:
        w, e = measure_width(rng.normal(0.0, true_sigma(m), 8000))
        widths.append(w)
        errors.append(e)
    model = ResolutionModel.fit(masses, widths, errors, degree=4, variable="sqrt_m")
    grid = np.linspace(0.25, 8.5, 200)
    ratio = model.sigma(grid**2) / true_sigma(grid)
    assert np.max(np.abs(ratio - 1.0)) < 0.04
    assert model.chi2 is not None
    assert model.chi2 / model.ndf < 3.0
    # constant above the largest fitted mass, positive everywhere, negative M^2 allowed
    assert model.sigma(90.0) == pytest.approx(model.sigma(8.5**2))
    assert model.sigma(-0.5) == pytest.approx(model.sigma(0.0))
    assert np.all(model.sigma(np.linspace(-2, 100, 500)) > 0)


def test_prl_fallback_values() -> None:
    model = ResolutionModel.prl()
    assert model.sigma(9.0) == pytest.approx(0.23)
    assert model.sigma(80.0) == pytest.approx(0.06)
    assert model.sigma(100.0) == pytest.approx(0.06)
    # inferred from the PRL's largest step (202 MeV from 0.01 GeV)
    assert model.sigma(0.0) == pytest.approx((0.01 + 0.202) ** 2 - 0.01**2, rel=1e-3)
    assert model.sigma(44.5) == pytest.approx(0.5 * (0.23 + 0.06))
    assert PRL_RESOLUTION_POINTS[1] == (9.0, 0.23)


def test_resolution_model_json_roundtrip(tmp_path) -> None:
    model = ResolutionModel.fit([1, 2, 3, 4, 5], [0.1, 0.2, 0.25, 0.2, 0.15], degree=3)
    path = model.save(tmp_path / "res.json")
    back = ResolutionModel.load(path)
    x = np.linspace(-1, 90, 50)
    np.testing.assert_allclose(back.sigma(x), model.sigma(x))
    assert back == model
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"bad\.json"):
        ResolutionModel.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="no such"):
        ResolutionModel.load(tmp_path / "missing.json")
    with pytest.raises(InputError, match="positive"):
        ResolutionModel.fit([1, 2], [0.1, -0.1])


@pytest.mark.parametrize(
    "model",
    [
        ResolutionModel.prl(),
        ResolutionModel.fit(np.linspace(0.25, 8.5, 17), true_sigma(np.linspace(0.25, 8.5, 17))),
    ],
    ids=["prl", "poly"],
)
def test_grid_spacing_is_one_resolution_unit(model: ResolutionModel) -> None:
    scale = ResolutionScale(model, -2.0, 100.0)
    grid = hypothesis_grid(scale, 0.01, 8.5, 1.0)
    m2 = grid.m2
    assert grid.masses[0] == pytest.approx(0.01)
    assert grid.masses[-1] == pytest.approx(8.5)
    # count = 1 + round(integral of dM^2 / sigma), the integral computed independently
    integral = quad(lambda x: 1.0 / model.sigma(x), 1e-4, 72.25, limit=500, points=[9.0])[0]
    assert len(grid) == 1 + round(integral)
    assert grid.integral == pytest.approx(integral, rel=1e-4)
    assert abs(grid.step - 1.0) <= 0.5 / (len(grid) - 1) + 1e-9
    # every step is one sigma at the step's midpoint (to 3e-3 at the kink of the PRL model),
    # where sigma changes by less than 10% across the step (not the first steps near M = 0)
    steps = np.diff(m2)
    mid = 0.5 * (m2[1:] + m2[:-1])
    smooth = np.abs(model.sigma(m2[1:]) / model.sigma(m2[:-1]) - 1) < 0.1
    assert smooth.sum() >= len(steps) - 3
    np.testing.assert_allclose(steps[smooth] / model.sigma(mid[smooth]), grid.step, rtol=3e-3)
    assert np.median(np.abs(steps / model.sigma(mid) / grid.step - 1)) < 1e-4
    # and, exactly, one unit of integral each
    for i in (0, 1, len(grid) // 2, len(grid) - 2):
        unit = quad(lambda x: 1.0 / model.sigma(x), m2[i], m2[i + 1])[0]
        assert unit == pytest.approx(grid.step, rel=1e-4)


def test_grid_counts_and_names() -> None:
    prl = hypothesis_grid(ResolutionScale(ResolutionModel.prl()), 0.01, 8.5)
    assert len(prl) == 529  # vs the PRL's 582 (docs/templates.md)
    step_mev = np.diff(prl.masses) * 1e3
    assert step_mev.max() == pytest.approx(202.0, abs=2.0)  # by construction of the fallback
    assert 4.0 < step_mev.min() < 5.0  # PRL: 3 MeV
    assert prl.names[0] == "M0.0100"
    assert prl.names[-1] == "M8.5000"
    assert hypothesis_name(2.352, 0.2352) == "M2.3520_W0.2352"
    coarse = hypothesis_grid(ResolutionScale(ResolutionModel.prl()), 0.01, 8.5, step=2.0)
    assert len(coarse) == 1 + round(prl.integral / 2.0)


MEASURED = (
    (0.01, 0.1528, 0.0037),
    (0.1, 0.1569, 0.0027),
    (0.2, 0.1557, 0.0024),
    (0.35, 0.1639, 0.0024),
    (0.5, 0.1801, 0.0025),
    (0.75, 0.1965, 0.0027),
    (1, 0.2075, 0.0028),
    (1.5, 0.2179, 0.0030),
    (2, 0.2316, 0.0032),
    (2.5, 0.2436, 0.0033),
    (3, 0.2325, 0.0032),
    (3.5, 0.2354, 0.0032),
    (4, 0.2270, 0.0031),
    (4.5, 0.2150, 0.0030),
    (5, 0.1989, 0.0028),
    (5.5, 0.1896, 0.0026),
    (6, 0.1724, 0.0024),
    (6.5, 0.1522, 0.0022),
    (7, 0.1331, 0.0019),
    (7.5, 0.1204, 0.0018),
    (8, 0.0976, 0.0015),
    (8.5, 0.0778, 0.0013),
)
"""(M in GeV, core width and error in GeV^2) of the default run's selected signal without the
Punzi-net (``python validation/resolution.py <run>``, docs/templates.md)."""


def test_grid_of_the_measured_resolution() -> None:
    """The default run's resolution gives 482 hypotheses, 394 MeV first and 4.6 MeV last step
    (PRL: 582, 3-202 MeV; docs/templates.md), every step one resolution unit."""
    m, w, e = (np.array(c) for c in zip(*MEASURED, strict=True))
    model = ResolutionModel.fit(m, w, e, degree=4, variable="sqrt_m")
    assert model.sigma(9.0) == pytest.approx(0.23, rel=0.04)  # the PRL's maximum, 0.23 GeV^2
    grid = hypothesis_grid(ResolutionScale(model, -2.0, 100.0), 0.01, 8.5, 1.0)
    assert len(grid) == 482
    steps = np.diff(grid.masses) * 1e3
    assert steps[0] == pytest.approx(393.8, abs=0.5)
    assert steps[-1] == pytest.approx(4.61, abs=0.02)
    for i in (0, 1, 2, len(grid) // 2, len(grid) - 2):
        unit = quad(lambda x: 1.0 / model.sigma(x), grid.m2[i], grid.m2[i + 1])[0]
        assert unit == pytest.approx(grid.step, rel=1e-4)
    assert grid.step == pytest.approx(1.0, abs=0.5 / (len(grid) - 1))


def test_windows_have_20_bins_centred() -> None:
    model = ResolutionModel.prl()
    scale = ResolutionScale(model, -2.0, 100.0)
    grid = hypothesis_grid(scale, 0.01, 8.5)
    windows = make_windows(grid, scale, 20)
    assert len(windows) == len(grid)
    for w in windows[:: len(windows) // 7]:
        assert w.m2_edges.size == 21
        assert w.shape == (20, 1)
        assert w.shift == 0.0
        assert w.m2_edges[10] == pytest.approx(w.m2_gev2, abs=1e-9)  # centred on the hypothesis
        widths = [
            quad(lambda x: 1 / model.sigma(x), a, b)[0]
            for a, b in zip(w.m2_edges[:-1], w.m2_edges[1:], strict=True)
        ]
        np.testing.assert_allclose(widths, 1.0, rtol=1e-4)  # bins one resolution wide
    # the lowest window reaches below M^2 = 0 (resolution-smeared signal lives there)
    assert windows[0].m2_edges[0] == pytest.approx(1e-4 - 10 * 0.0448, rel=1e-3)
    # odd counts: the hypothesis is the centre of the middle bin
    w5 = make_windows(grid, scale, 5)[100]
    assert 0.5 * (w5.m2_edges[2] + w5.m2_edges[3]) == pytest.approx(w5.m2_gev2, rel=1e-3)


def test_windows_shift_at_range_ends() -> None:
    model = ResolutionModel.prl()
    scale = ResolutionScale(model, -2.0, 100.0)
    grid = hypothesis_grid(scale, 0.01, 8.5)
    windows = make_windows(grid, scale, 20, m2_range=(0.0, 72.5))
    first, last = windows[0], windows[-1]
    assert first.m2_edges[0] == pytest.approx(0.0, abs=1e-9)
    assert first.shift > 0
    assert last.m2_edges[-1] == pytest.approx(72.5, abs=1e-9)
    assert last.shift < 0
    for w in (first, last):
        assert w.m2_edges.size == 21
        assert w.m2_edges[0] <= w.m2_gev2 <= w.m2_edges[-1]
    tiny = make_windows(grid, scale, 20, m2_range=(1.0, 2.0))[0]
    assert tiny.m2_edges[0] == pytest.approx(1.0)
    assert tiny.m2_edges[-1] == pytest.approx(2.0)


def test_theta_bin_counts_follow_config() -> None:
    cfg = default_config().binning.theta
    counts = [theta_bin_count(m2, cfg) for m2 in (-0.3, 0.5, 4.0, 16.0, 36.0, 60.0, 200.0)]
    assert counts == [5, 5, 4, 3, 2, 1, 1]
    assert counts[0] == 5
    assert counts[-1] == 1


def test_theta_edges_quantile_and_fixed(rng: np.random.Generator) -> None:
    cfg = default_config().binning.theta
    theta = rng.uniform(0.6, 2.1, 5000) ** 1.3
    weight = rng.uniform(0.5, 1.5, theta.size)
    edges = theta_edges(0.5, cfg, theta, weight)
    assert edges.size == 6
    assert edges[0] == 0.0
    assert edges[-1] == pytest.approx(math.pi)
    per_bin = np.histogram(theta, edges, weights=weight)[0]
    np.testing.assert_allclose(per_bin / weight.sum(), 0.2, atol=0.005)  # equal background
    # too few MC events: fewer bins (25 per bin by default), never fewer than one
    assert theta_edges(0.5, cfg, theta[:60], weight[:60]).size == 3
    assert theta_edges(0.5, cfg, theta[:10]).size == 2
    assert theta_edges(0.5, cfg).size == 2  # no background sample: one bin
    assert theta_edges(60.0, cfg, theta).size == 2
    fixed = ThetaBinningConfig(
        method="fixed",
        ranges=[
            {"m2_max_gev2": 4.0, "n_bins": 3, "edges_deg": [0, 60, 120, 180]},
            {"m2_max_gev2": 100.0, "n_bins": 2},
        ],
    )
    np.testing.assert_allclose(theta_edges(1.0, fixed), np.radians([0, 60, 120, 180]))
    np.testing.assert_allclose(theta_edges(10.0, fixed), [0, math.pi / 2, math.pi])


def test_theta_config_validation() -> None:
    with pytest.raises(ConfigError, match="edges_deg"):
        config_from_dict(
            {
                "binning": {
                    "theta": {"ranges": [{"m2_max_gev2": 1.0, "n_bins": 2, "edges_deg": [0, 90]}]}
                }
            }
        )
    with pytest.raises(ConfigError, match="must increase"):
        config_from_dict(
            {
                "binning": {
                    "theta": {
                        "ranges": [
                            {"m2_max_gev2": 5.0, "n_bins": 2},
                            {"m2_max_gev2": 1.0, "n_bins": 1},
                        ]
                    }
                }
            }
        )
    with pytest.raises(ConfigError, match="mass_max_gev"):
        config_from_dict({"binning": {"mass_min_gev": 3.0, "mass_max_gev": 2.0}})


def test_wide_windows_are_wider() -> None:
    model = ResolutionModel.prl()
    scale = ResolutionScale(model, -2.0, 100.0)
    cfg = default_config().binning.wide
    for i, mass in enumerate((0.3, 1.0, 3.0, 6.0, 8.5)):
        w = wide_window(i, mass, scale, cfg)
        width = 0.1 * mass
        assert w.width_gev == pytest.approx(width)
        assert w.name == hypothesis_name(mass, width)
        assert 20 <= w.shape[0] <= cfg.max_bins
        assert w.shape[1] == 1
        half = max(10 * model.sigma(mass**2), 3.0 * mass * width)
        assert w.m2_edges[0] == pytest.approx(max(mass**2 - half, -2.0))
        assert w.m2_edges[-1] == pytest.approx(mass**2 + half)
        narrow = 20 * model.sigma(mass**2)
        assert w.m2_edges[-1] - w.m2_edges[0] >= narrow - 1e-9
    # at high mass the Breit-Wigner dominates: many more than 20 sigma
    big = wide_window(0, 6.0, scale, cfg)
    assert big.m2_edges[-1] - big.m2_edges[0] > 5 * 20 * model.sigma(36.0)


def test_resolution_from_config(rng: np.random.Generator) -> None:
    cfg = default_config().binning
    assert (
        resolution_model_from_config(
            cfg.model_copy(
                update={"resolution": cfg.resolution.model_copy(update={"source": "prl"})}
            )
        ).source
        == "prl"
    )
    with pytest.raises(ConfigError, match="measured"):
        resolution_model_from_config(cfg)
    measured = {m: rng.normal(0, true_sigma(m), 3000) for m in (1.0, 2.0, 4.0, 6.0, 8.0)}
    model = resolution_model_from_config(cfg, measured)
    assert model.kind == "poly"
    assert len(model.points) == 5
    # a mass with too few selected events is left out (and named), as long as enough remain
    sparse = {**measured, 0.5: rng.normal(0, true_sigma(0.5), 50), 3.0: measured[2.0][:3000]}
    thin = resolution_model_from_config(cfg, sparse)
    assert len(thin.points) == 6
    assert "skipped M = 0.5 GeV" in thin.source
    few = {m: (v if m in (1.0, 4.0, 8.0) else v[:100]) for m, v in sparse.items()}
    assert "degree 2 instead of 4" in resolution_model_from_config(cfg, few).source
    with pytest.raises(InputError, match="need 2"):
        resolution_model_from_config(cfg, {m: v[:100] for m, v in sparse.items()})
    assert model.sigma(16.0) == pytest.approx(true_sigma(4.0), rel=0.05)
    _scale, grid, windows = windows_from_config(cfg, model)
    assert len(windows) == len(grid)
    assert grid.masses[0] == pytest.approx(0.01)
