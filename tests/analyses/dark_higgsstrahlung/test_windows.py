"""Elliptical windows of the dark Higgsstrahlung search: the robust fit, membership, exact and
sparse counting, interpolation across the (M_A', M_h') plane, the hypothesis grid and the
default window size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import poisson

from zprime.analyses.dark_higgsstrahlung.windows import (
    DEFAULT_K,
    EllipseWindow,
    EllipseWindows,
    WindowInterpolator,
    cell_size,
    count_in_windows,
    fit_window,
    histogram_cells,
    hypothesis_grid,
    membership_matrix,
    robust_core,
)
from zprime.errors import ConfigError, InputError
from zprime.physics.constants import SQRT_S
from zprime.stats.counting import credible_upper_limits


def rotated_cov(sig_major: float, sig_minor: float, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([sig_major**2, sig_minor**2]) @ rot.T


def random_windows(rng: np.random.Generator, n: int) -> EllipseWindows:
    a = rng.uniform(0.02, 0.3, n)
    return EllipseWindows(
        centre_x=rng.uniform(2.0, 9.0, n),
        centre_y=rng.uniform(0.0, 4.0, n),
        a=a,
        b=a * rng.uniform(0.05, 1.0, n),
        angle=rng.uniform(-0.5 * math.pi, 0.5 * math.pi, n),
    )


# ----------------------------------------------------------------------------- fit
def test_fit_recovers_correlated_gaussian(rng: np.random.Generator) -> None:
    """A tilted core (major 50 MeV, minor 8 MeV, major axis at 0.6 rad): axes within 2%,
    angle within 0.01 rad, the window is the k-sigma ellipse."""
    n = 40_000
    pts = rng.multivariate_normal([5.0, 2.0], rotated_cov(0.05, 0.008, 0.6), size=n)
    w1 = fit_window(pts[:, 0], pts[:, 1], k=1.0)
    assert w1.a == pytest.approx(0.05, rel=0.02)
    assert w1.b == pytest.approx(0.008, rel=0.02)
    assert w1.angle == pytest.approx(0.6, abs=0.01)
    assert abs(w1.centre_x - 5.0) < 4 * 0.05 / math.sqrt(n)
    assert abs(w1.centre_y - 2.0) < 4 * 0.05 / math.sqrt(n)
    w2 = fit_window(pts[:, 0], pts[:, 1])  # default size
    assert (w2.a / w1.a, w2.b / w1.b) == pytest.approx((DEFAULT_K, DEFAULT_K), rel=1e-9)
    # weights: doubling half of the events of the same distribution changes little
    wts = np.where(np.arange(n) % 2 == 0, 2.0, 1.0)
    w3 = fit_window(pts[:, 0], pts[:, 1], wts, k=1.0)
    assert w3.a == pytest.approx(0.05, rel=0.03)
    # the angle is that of the major axis, folded into (-pi/2, pi/2]
    w4 = fit_window(pts[:, 0], -pts[:, 1], k=1.0)
    assert w4.angle == pytest.approx(-0.6, abs=0.01)


def test_fit_leaves_out_the_isr_tail(rng: np.random.Generator) -> None:
    """20% of the events get an exponential tail to high M_recoil (scale 3 sigma): the trimmed
    core keeps the major axis within 2% and the minor within 7% (its tail events inside the
    trimming radius widen it by about 5%); the plain covariance does not (minor axis x 4)."""
    n = 40_000
    cov = rotated_cov(0.05, 0.008, 0.6)
    pts = rng.multivariate_normal([5.0, 2.0], cov, size=n)
    tail = rng.random(n) < 0.2
    pts[tail, 1] += rng.exponential(3 * math.sqrt(cov[1, 1]), tail.sum())
    centre, core = robust_core(pts[:, 0], pts[:, 1])
    w = EllipseWindow.from_covariance(centre[0], centre[1], core, 1.0)
    assert w.a == pytest.approx(0.05, rel=0.02)
    assert w.b == pytest.approx(0.008, rel=0.07)
    assert w.angle == pytest.approx(0.6, abs=0.03)
    naive = EllipseWindow.from_covariance(0.0, 0.0, np.cov(pts.T), 1.0)
    assert naive.b > 3 * 0.008


# ----------------------------------------------------------------------------- membership
def test_contains_against_direct_formula(rng: np.random.Generator) -> None:
    wins = random_windows(rng, 40)
    x = rng.uniform(1.5, 9.5, 3000)
    y = rng.uniform(-0.5, 4.5, 3000)
    many = wins.contains(x, y)
    for i in range(len(wins)):
        w = wins[i]
        c, s = math.cos(w.angle), math.sin(w.angle)
        rot = np.array([[c, -s], [s, c]])
        inv = np.linalg.inv(rot @ np.diag([w.a**2, w.b**2]) @ rot.T)
        d = np.stack([x - w.centre_x, y - w.centre_y])
        direct = np.einsum("in,ij,jn->n", d, inv, d) <= 1.0
        np.testing.assert_array_equal(w.contains(x, y), direct)
        np.testing.assert_array_equal(many[i], direct)
    assert many.any()
    # the shape matrix round trip and the bounding boxes
    again = EllipseWindows.from_shape(wins.centre_x, wins.centre_y, *wins.shape_entries())
    np.testing.assert_allclose(again.a, wins.a, rtol=1e-12)
    np.testing.assert_allclose(again.b, wins.b, rtol=1e-12)
    folded = np.mod(again.angle - wins.angle + 0.5 * math.pi, math.pi) - 0.5 * math.pi
    np.testing.assert_allclose(folded, 0.0, atol=1e-9)
    hx, hy = wins.half_widths()
    t = np.linspace(0, 2 * math.pi, 20001)
    for i in range(5):
        w = wins[i]
        ex = w.a * np.cos(t) * math.cos(w.angle) - w.b * np.sin(t) * math.sin(w.angle)
        ey = w.a * np.cos(t) * math.sin(w.angle) + w.b * np.sin(t) * math.cos(w.angle)
        assert (hx[i], hy[i]) == pytest.approx((ex.max(), ey.max()), rel=1e-6)


# ----------------------------------------------------------------------------- counting
def test_exact_counting_equals_brute_force(rng: np.random.Generator) -> None:
    wins = random_windows(rng, 300)
    n = 30_000
    x = rng.uniform(1.5, 9.5, n)
    y = rng.uniform(-0.5, 4.5, n)
    w = rng.uniform(0.1, 2.0, n)
    brute = wins.contains(x, y)
    for max_pairs in (1 << 19, 1000):  # one chunk and many
        got = count_in_windows(wins, x, y, w, max_pairs=max_pairs)
        np.testing.assert_array_equal(got.count, brute.sum(axis=1))
        np.testing.assert_allclose(got.sumw, brute @ w, rtol=1e-12)
        np.testing.assert_allclose(got.sumw2, brute @ (w * w), rtol=1e-12)
    data = count_in_windows(wins, x, y)  # data: unit weights
    np.testing.assert_array_equal(data.sumw, data.count)
    member = membership_matrix(wins, x, y)
    np.testing.assert_array_equal(member.toarray() > 0, brute)


def test_sparse_path_exact_on_cell_centres(rng: np.random.Generator) -> None:
    """Events sitting on cell centres: histogram + membership matrix = exact counts."""
    wins = random_windows(rng, 100)
    h = cell_size(wins, 10)
    ix = rng.integers(int(1.5 / h), int(9.5 / h), 50_000)
    iy = rng.integers(int(-0.5 / h), int(4.5 / h), 50_000)
    x, y = (ix + 0.5) * h, (iy + 0.5) * h
    w = rng.uniform(0.5, 1.5, x.size)
    cells = histogram_cells(x, y, w, size=h)
    assert cells.count.sum() == x.size
    assert cells.sumw.sum() == pytest.approx(w.sum())
    approx = membership_matrix(wins, cells.x, cells.y) @ cells.sumw
    np.testing.assert_allclose(approx, count_in_windows(wins, x, y, w).sumw, rtol=1e-12)


def test_sparse_path_within_stated_tolerance() -> None:
    """A flat density (a fine lattice of events, spacing h / 5) in windows of a hypothesis
    grid: with cells of a tenth of the smallest minor semi-axis, the sparse path's counts
    differ from the exact ones by the stated 0.7% at most (0.2% rms)."""
    model = lambda ma, mh: (0.004 + 0.003 * ma + 0 * mh, 0.04 + 0.12 * np.exp(-mh / 0.7))  # noqa: E731
    grid = hypothesis_grid(model, m_a_range=(4.0, 4.3))
    sx, sy = model(grid.m_a, grid.m_h)
    k = DEFAULT_K
    wins = EllipseWindows.from_shape(grid.m_a, grid.m_h, (k * sx) ** 2, -0.5 * k * k * sx * sy,
                                     (k * sy) ** 2).take(grid.m_h < 1.0)  # fmt: skip
    h = cell_size(wins, 10)
    hx, hy = wins.half_widths()
    fine = h / 5
    gx = np.arange((wins.centre_x - hx).min(), (wins.centre_x + hx).max(), fine) + 0.37 * fine
    gy = np.arange((wins.centre_y - hy).min(), (wins.centre_y + hy).max(), fine) + 0.61 * fine
    x, y = (v.ravel() for v in np.meshgrid(gx, gy, indexing="ij"))
    exact = count_in_windows(wins, x, y).sumw
    cells = histogram_cells(x, y, size=h)
    approx = membership_matrix(wins, cells.x, cells.y) @ cells.sumw
    rel = approx / exact - 1
    assert np.max(np.abs(rel)) < 0.008
    assert np.sqrt(np.mean(rel**2)) < 0.004


# ----------------------------------------------------------------------------- interpolation
def simulated_points(step: float) -> tuple[np.ndarray, np.ndarray]:
    ma, mh = np.meshgrid(np.arange(1.5, 10.5 + 1e-9, step), np.arange(0.0, 5.5, step))
    ma, mh = ma.ravel(), mh.ravel()
    keep = (mh < ma) & (ma + mh < SQRT_S - 0.05)
    return ma[keep], mh[keep]


def analytic_windows(ma: np.ndarray, mh: np.ndarray) -> tuple[EllipseWindows, np.ndarray]:
    """Windows whose centre offsets and shape entries are linear in the masses, and a smooth
    non-linear efficiency."""
    sxx = 1e-4 * (1.0 + 0.5 * ma)
    syy = 1e-3 * (2.0 + mh)
    sxy = -2e-5 * (1.0 + 0.1 * ma)
    win = EllipseWindows.from_shape(ma + 0.001 * ma, mh - 0.01 + 0.002 * mh, sxx, sxy, syy)
    eff = 0.3 + 0.1 * np.sin(ma) * np.cos(mh)
    return win, eff


def test_interpolation_of_analytic_functions(rng: np.random.Generator) -> None:
    # inside the convex hull of the coarser set of simulated points
    q_ma = rng.uniform(2.1, 9.5, 4000)
    q_mh = rng.uniform(0.0, 1.0, 4000) * np.minimum(q_ma - 0.55, SQRT_S - q_ma - 0.6)
    truth_w, truth_eff = analytic_windows(q_ma, q_mh)
    errors = []
    for step in (0.5, 0.25):
        ma, mh = simulated_points(step)
        win, eff = analytic_windows(ma, mh)
        interp = WindowInterpolator(ma, mh, win, eff)
        got = interp(q_ma, q_mh)
        assert not got.extrapolated.any()
        # linear fields are reproduced exactly
        np.testing.assert_allclose(got.windows.centre_x, truth_w.centre_x, rtol=1e-12)
        np.testing.assert_allclose(got.windows.centre_y, truth_w.centre_y, atol=1e-12)
        for g, t in zip(got.windows.shape_entries(), truth_w.shape_entries(), strict=True):
            np.testing.assert_allclose(g, t, rtol=1e-10)
        # the efficiency: second order, under the bound h^2 / 8 (|f_aa| + |f_hh| + 2 |f_ah|)
        err = np.max(np.abs(got.efficiency - truth_eff))
        assert err < step**2 / 8 * 0.4
        errors.append(err)
    assert 3.0 < errors[0] / errors[1] < 5.0  # halving the spacing quarters the error
    sx, sy = interp.widths(q_ma[:3], q_mh[:3])
    sxx, _, syy = truth_w.take(slice(0, 3)).shape_entries()
    np.testing.assert_allclose(sx, np.sqrt(sxx) / DEFAULT_K, rtol=1e-10)
    np.testing.assert_allclose(sy, np.sqrt(syy) / DEFAULT_K, rtol=1e-10)


def test_interpolation_edges_and_bad_masses() -> None:
    ma, mh = simulated_points(0.5)
    win, eff = analytic_windows(ma, mh)
    interp = WindowInterpolator(ma, mh, win, eff)
    edge = interp([10.5], [0.07])  # beyond the last simulated row: nearest point
    assert edge.extrapolated[0]
    assert edge.efficiency[0] == pytest.approx(eff[np.argmin((ma - 10.5) ** 2 + (mh - 0.07) ** 2)])
    for bad in ((5.0, 5.0), (8.0, 2.6), (5.0, -0.1), (math.nan, 1.0)):
        with pytest.raises(InputError, match="outside 0 <= M_h' < M_A'"):
            interp([bad[0]], [bad[1]])
    with pytest.raises(InputError, match="do not span the plane"):
        WindowInterpolator([2.0, 3.0, 4.0], [0.0, 0.0, 0.0], win.take([0, 1, 2]), eff[:3])


# ----------------------------------------------------------------------------- grid
VETOES = [(3.047, 3.147), (3.636, 3.736), (9.408, 9.508), (9.965, 10.065), (10.302, 10.402)]


def test_grid_constant_widths_exact_size() -> None:
    """Constant widths (10 MeV, 100 MeV), step 1: rows every 10 MeV from 1.65 to 10.51 GeV,
    M_h' every 100 MeV below min(M_A', sqrt(s) - M_A'); vetoed rows removed."""
    grid = hypothesis_grid(lambda ma, mh: (0.01, 0.1), vetoes=VETOES)
    rows = np.linspace(1.65, 10.51, 887)
    rows = rows[~np.any([(rows >= lo) & (rows <= hi) for lo, hi in VETOES], axis=0)]
    span = np.minimum(rows, SQRT_S - rows)
    assert len(grid) == int(np.sum(np.ceil(span / 0.1 - 1e-9)))
    np.testing.assert_allclose(np.unique(grid.m_a), rows, atol=1e-9)
    assert np.all(grid.m_h >= 0)
    assert np.all(grid.m_h < grid.m_a)
    assert np.all(grid.m_a + grid.m_h < SQRT_S)
    for lo, hi in VETOES:
        assert not np.any((grid.m_a >= lo) & (grid.m_a <= hi))
    steps = np.diff(grid.m_h)[np.diff(grid.m_a) == 0]
    np.testing.assert_allclose(steps, 0.1, atol=1e-9)
    assert len(set(grid.names())) == len(grid)


def test_grid_variable_widths_size_and_spacing() -> None:
    """sigma_mumu = 0.3% of M_A', sigma_recoil = 0.2 GeV (1 + exp(-M_h' / 0.5 GeV)) (an
    illustration): the size is the resolution-area integral int dM_A' dM_h' / (sigma_mumu
    sigma_recoil) over the triangle plus half a point per row (each row rounds up), within 1%:
    about 9000 hypotheses; the spacings are one width."""

    def model(ma, mh):
        return 0.003 * ma, 0.2 * (1.0 + np.exp(-mh / 0.5))

    grid = hypothesis_grid(model)
    ma = np.linspace(1.65, 10.51, 4001)
    span = np.minimum(ma, SQRT_S - ma)
    u_h = 0.5 / 0.2 * np.log((np.exp(span / 0.5) + 1.0) / 2.0)  # int_0^span dm / sigma_recoil
    expected = np.trapezoid((u_h + 0.5) / (0.003 * ma), ma)
    assert len(grid) == pytest.approx(expected, rel=0.01)
    assert 8000 < len(grid) < 10000
    rows = np.unique(grid.m_a)
    np.testing.assert_allclose(np.diff(rows) / (0.003 * rows[:-1]), 1.0, rtol=0.01)
    same = np.diff(grid.m_a) == 0
    mid = 0.5 * (grid.m_h[1:] + grid.m_h[:-1])[same]
    np.testing.assert_allclose(np.diff(grid.m_h)[same] / model(0, mid)[1], 1.0, rtol=0.01)


def test_grid_bad_configuration() -> None:
    flat = lambda ma, mh: (0.01, 0.1)  # noqa: E731
    with pytest.raises(ConfigError, match="M_A' range"):
        hypothesis_grid(flat, m_a_range=(2.0, 11.0))
    with pytest.raises(ConfigError, match="not an interval"):
        hypothesis_grid(flat, vetoes=[(3.2, 3.0)])
    with pytest.raises(ConfigError, match=r"width model gives 0\.0 along M_recoil"):
        hypothesis_grid(lambda ma, mh: (0.01, 0.0))
    with pytest.raises(ConfigError, match="step"):
        hypothesis_grid(flat, step=0.0)


# ----------------------------------------------------------------------------- window size
def test_default_k_minimises_the_worst_expected_limit() -> None:
    """The toy of the module docstring on a coarse grid: a 2-d Gaussian core (85%) with an ISR
    tail (15%, exponential of scale 3 sigma to high M_recoil), a flat background of B1 events
    in the 1-sigma ellipse; figure of merit the Poisson mean of the 90% credible limit under
    background only. k = 2 loses at most 4% against the best k for B1 from 0.1 to 100, and
    less, in the worst case, than k = 1.8 or 2.2."""
    rng = np.random.default_rng(7)
    n = 400_000
    x, y = rng.normal(size=n), rng.normal(size=n)
    y[: int(0.15 * n)] += rng.exponential(3.0, int(0.15 * n))
    r2 = x * x + y * y
    ks = np.array([1.6, 1.8, 2.0, 2.2, 2.4, 2.6])
    eff = np.array([np.mean(r2 <= k * k) for k in ks])
    loss = []
    for b1 in (0.1, 1.0, 10.0, 100.0):
        b = b1 * ks**2
        counts = np.arange(int(b.max() + 12 * math.sqrt(b.max()) + 20))
        lims = credible_upper_limits(
            np.tile(counts, ks.size), np.repeat(eff, counts.size), np.repeat(b, counts.size)
        ).reshape(ks.size, counts.size)
        mean = np.sum(poisson.pmf(counts[None, :], b[:, None]) * np.nan_to_num(lims), axis=1)
        loss.append(mean / mean.min())
    worst = np.max(loss, axis=0)
    assert worst[ks == DEFAULT_K][0] < 1.04
    assert worst[ks == DEFAULT_K][0] < worst[ks == 1.8][0]
    assert worst[ks == DEFAULT_K][0] < worst[ks == 2.2][0]


# ----------------------------------------------------------------------------- errors
def test_bad_input_is_one_line(rng: np.random.Generator) -> None:
    wins = random_windows(rng, 3)
    with pytest.raises(InputError, match=r"M_recoil of event 1 is nan"):
        count_in_windows(wins, [5.0, 5.0], [1.0, math.nan])
    with pytest.raises(InputError, match="2 weights for 3 events"):
        count_in_windows(wins, [5.0, 5.0, 5.0], [1.0, 1.0, 1.0], [1.0, 1.0])
    with pytest.raises(InputError, match="weight of event 0 is negative"):
        robust_core(rng.normal(size=20), rng.normal(size=20), -np.ones(20))
    with pytest.raises(InputError, match="need 10"):
        robust_core([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="semi-axes must be > 0"):
        EllipseWindow(5.0, 1.0, 0.0, 0.1, 0.0)
    with pytest.raises(InputError, match="ellipse window 1: b is"):
        EllipseWindows([1.0, 2.0], [1.0, 1.0], [0.1, 0.1], [0.1, -0.1], [0.0, 0.0])
    with pytest.raises(ConfigError, match="cell size"):
        histogram_cells([1.0], [1.0], size=0.0)
