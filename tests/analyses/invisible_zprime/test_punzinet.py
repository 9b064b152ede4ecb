"""Tests of zprime.analyses.invisible_zprime.punzinet: the Punzi loss, training, saving and loading,
determinism."""

from __future__ import annotations

import copy
import logging
import math

import awkward as ak
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from zprime.analyses.invisible_zprime.binning import ResolutionModel
from zprime.analyses.invisible_zprime.punzinet import (
    FEATURES,
    SCAN_CUTS,
    PunziEnsemble,
    PunziNetwork,
    SignalSample,
    _mass_split,
    apply,
    default_resolution,
    load,
    make_windows,
    predict,
    punzi_fom,
    punzi_loss,
    save,
    sigma_min,
    toy_samples,
    train,
)
from zprime.cli import app
from zprime.config import PunziNetConfig, default_config
from zprime.errors import ConfigError, InputError
from zprime.io.events import write_events

LUMI = 79.7
MASSES = [1.0, 3.0, 5.0, 7.0, 8.5]
# small, fast settings for the toy (the defaults are sized for the real samples)
FAST = {
    "bce_epochs": 10,
    "bce_batch_size": 1024,
    "punzi_epochs": 150,
    "patience": 40,
}


@pytest.fixture(scope="module")
def toy() -> tuple[list[SignalSample], dict[str, np.ndarray]]:
    return toy_samples(np.random.default_rng(11), MASSES, 1500, 30000)


@pytest.fixture(scope="module")
def independent() -> tuple[list[SignalSample], dict[str, np.ndarray]]:
    return toy_samples(np.random.default_rng(12), MASSES, 1500, 30000)


@pytest.fixture(scope="module")
def trained(toy):
    sig, bkg = toy
    return train(sig, bkg, config=PunziNetConfig(**FAST), luminosity_fb=LUMI, progress=False)


@pytest.fixture(scope="module")
def bce_only(toy):
    sig, bkg = toy
    cfg = PunziNetConfig(**{**FAST, "punzi_epochs": 0})
    return train(sig, bkg, config=cfg, luminosity_fb=LUMI, progress=False)


# ---------------------------------------------------------------------------------------------
# the figure of merit and the loss


def test_sigma_min_formula_values():
    # B = 0: sigma_min = (b^2/2 + b^2/2) / (eps L) = b^2 / (eps L)
    b = 1.28155
    assert sigma_min(0.5, 0.0, luminosity_fb=2.0, a=3.0, b=b) == pytest.approx(b * b / 1.0)
    # large B: sigma_min -> (a/2 + b) sqrt(B) / (eps L) (Punzi's asymptotic form)
    big = 1e10
    s = sigma_min(1.0, big, luminosity_fb=1.0, a=3.0, b=b)
    assert s / math.sqrt(big) == pytest.approx(3.0 + b, rel=1e-4)
    # refined constant: a^2/8 + 9 b^2/13 replaces b^2/2
    d = sigma_min(1.0, 4.0, luminosity_fb=1.0, refined_constant=True) - sigma_min(
        1.0, 4.0, luminosity_fb=1.0
    )
    assert d == pytest.approx(9 / 8 + 9 * b * b / 13 - b * b / 2)


def _hand_loss(out_sig, m2_sig, w_sig, out_bkg, m2_bkg, w_bkg, masses, n_sig, a, b, floor=0.0):
    """The Punzi loss written out with explicit loops (independent of the implementation)."""
    values = []
    for i, m in enumerate(masses):
        sigma = float(default_resolution(m * m))
        lo, hi = m * m - n_sig * sigma, m * m + n_sig * sigma
        eps = sum(
            y * w for y, x, w in zip(out_sig[i], m2_sig[i], w_sig[i], strict=True) if lo < x < hi
        )
        inside = [w for x, w in zip(m2_bkg, w_bkg, strict=True) if lo < x < hi]
        bkg = LUMI * sum(
            y * w for y, x, w in zip(out_bkg, m2_bkg, w_bkg, strict=True) if lo < x < hi
        )
        bkg += floor * LUMI * sum(inside) / len(inside)
        num = (
            b * b / 2
            + a * math.sqrt(bkg)
            + b / 2 * math.sqrt(b * b + 4 * a * math.sqrt(bkg) + 4 * bkg)
        )
        values.append(num / (eps * LUMI))
    return sum(values) / len(values), values


@pytest.mark.parametrize("floor", [0.0, 1.0])
def test_loss_equals_hand_formula(floor):
    rng = np.random.default_rng(3)
    masses = [1.0, 4.0, 8.0]
    m2_sig = [m * m + 0.2 * rng.standard_normal(40) for m in masses]
    w_sig = [rng.uniform(0.01, 0.03, 40) for _ in masses]
    out_sig = [rng.uniform(0, 1, 40) for _ in masses]
    m2_bkg = rng.uniform(-1, 81, 3000)
    w_bkg = rng.uniform(0.5, 2.0, 3000)
    out_bkg = rng.uniform(0, 1, 3000)
    windows = make_windows(
        masses, m2_sig, w_sig, m2_bkg, w_bkg, luminosity_fb=LUMI, window_sigmas=2.5
    )
    output = torch.from_numpy(np.concatenate([*out_sig, out_bkg]))
    loss, per = punzi_loss(
        output, windows, luminosity_fb=LUMI, a=3.0, b=1.28155, background_floor=floor
    )
    want, want_per = _hand_loss(
        out_sig, m2_sig, w_sig, out_bkg, m2_bkg, w_bkg, masses, 2.5, 3.0, 1.28155, floor
    )
    assert float(loss) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(per.numpy(), want_per, rtol=1e-12)
    # each window saw some background and some (not all) signal: a non-trivial check
    assert all(np.any(windows.background_window.numpy() == i) for i in range(3))


def test_background_floor_removes_the_zero_background_singularity():
    """With the background outputs near 0 the bare loss sits near B = 0 where d sqrt(B)/dB
    diverges: it pays without bound for removing the last simulated events. The floor of one
    mean event weight keeps that gradient finite and gives sigma_min of B = that weight."""
    masses = [2.0]
    m2_sig = [np.full(10, 4.0)]
    w_sig = [np.full(10, 0.05)]
    m2_bkg = np.full(4, 4.0)
    w_bkg = np.array([0.01, 0.02, 0.03, 0.06])  # fb; mean x L = 0.03 x 79.7 events
    windows = make_windows(masses, m2_sig, w_sig, m2_bkg, w_bkg, luminosity_fb=LUMI)
    out = torch.cat([torch.ones(10), torch.full((4,), 1e-6)]).to(torch.float64)
    out.requires_grad_()
    loss, _ = punzi_loss(out, windows, luminosity_fb=LUMI, background_floor=1.0)
    loss.backward()
    b_floor = 0.03 * LUMI + 1e-6 * 0.12 * LUMI
    assert float(loss.detach()) == pytest.approx(
        float(sigma_min(0.5, b_floor, luminosity_fb=LUMI)), rel=1e-12
    )
    assert torch.all(torch.isfinite(out.grad))
    # the gradient on a background output is d sigma/dB x w L: finite and positive
    assert float(out.grad[10:].min()) > 0.0
    bare = out.detach().clone().requires_grad_()
    punzi_loss(bare, windows, luminosity_fb=LUMI)[0].backward()
    # B = 1e-5 events: d sqrt(B)/dB = 160 / event against 0.32 / event with the floor
    assert float(bare.grad[10:].min()) > 100 * float(out.grad[10:].max())


def test_output_one_is_no_network_figure_of_merit(toy):
    # with every output 1 the loss is the mean sigma_min of the plain window counts
    sig, bkg = toy
    windows = make_windows(
        MASSES,
        [s.events["m_recoil2"] for s in sig],
        [s.events["weight"] / s.total_weight for s in sig],
        bkg["m_recoil2"],
        bkg["weight"],
        luminosity_fb=LUMI,
    )
    n = sum(len(s.events["weight"]) for s in sig) + len(bkg["weight"])
    _, per = punzi_loss(torch.ones(n, dtype=torch.float64), windows, luminosity_fb=LUMI)
    ones = "punzinet"
    table = punzi_fom(
        [
            SignalSample(
                s.mass_gev, {**s.events, ones: np.ones(len(s.events["weight"]))}, s.total_weight
            )
            for s in sig
        ],
        {**bkg, ones: np.ones(len(bkg["weight"]))},
        luminosity_fb=LUMI,
    )
    np.testing.assert_allclose(per.numpy(), [r.sigma_min_fb for r in table.rows], rtol=1e-10)
    np.testing.assert_allclose(per.numpy(), [r.sigma_min_cut_fb for r in table.rows], rtol=1e-10)
    assert all(r.gain == pytest.approx(1.0) for r in table.rows)


def test_gradients_flow(toy):
    sig, bkg = toy
    torch.manual_seed(0)
    net = PunziNetwork(4, [8, 4])
    x = torch.from_numpy(
        np.column_stack([np.concatenate([s.events[f] for s in sig] + [bkg[f]]) for f in FEATURES])
    ).float()
    windows = make_windows(
        MASSES,
        [s.events["m_recoil2"] for s in sig],
        [s.events["weight"] / s.total_weight for s in sig],
        bkg["m_recoil2"],
        bkg["weight"],
        luminosity_fb=LUMI,
    )
    loss, _ = punzi_loss(net(x), windows, luminosity_fb=LUMI, background_floor=1.0)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.all(torch.isfinite(p.grad)), name
        assert float(p.grad.abs().sum()) > 0, name


def test_network_shape_and_reference_initialisation():
    """4-8-4-1 with tanh and a sigmoid output by default; Kaiming-normal weights and
    standard-normal biases ([PL] train.weights_init)."""
    cfg = default_config().punzinet
    assert cfg.hidden_layers == [8, 4]
    assert cfg.activation == "tanh"
    torch.manual_seed(5)
    net = PunziNetwork(4, cfg.hidden_layers, cfg.activation)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(8, 4), (8,), (4, 8), (4,), (1, 4), (1,)]
    assert sum(p.numel() for p in net.parameters()) == 81
    assert [type(m).__name__ for m in net.body] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    # Kaiming normal (fan_in, gain sqrt 2): std of the 8x4 weights sqrt(2/4); pooled over many
    # draws the sample std is within 5% of it; biases N(0, 1)
    ws, bs = [], []
    for seed in range(200):
        torch.manual_seed(seed)
        n = PunziNetwork(4, [8, 4])
        ws.append(n.body[0].weight.detach().numpy().ravel())
        bs.append(n.body[0].bias.detach().numpy().ravel())
    assert np.std(np.concatenate(ws)) == pytest.approx(math.sqrt(0.5), rel=0.05)
    assert np.std(np.concatenate(bs)) == pytest.approx(1.0, rel=0.05)
    y = net(torch.randn(50, 4))
    assert torch.all((y > 0) & (y < 1))


# ---------------------------------------------------------------------------------------------
# training


def test_punzi_training_beats_bce_and_no_network(trained, bce_only, independent):
    """On independent events the Punzi-trained cut gives a better sensitivity than the BCE-only
    network and than no network, in the mean and in most windows."""
    sig, bkg = independent
    t_punzi = punzi_fom(sig, bkg, luminosity_fb=LUMI, model=trained)
    t_bce = punzi_fom(sig, bkg, luminosity_fb=LUMI, model=bce_only)
    none = np.array([r.sigma_min_fb for r in t_punzi.rows])
    punzi = np.array([r.sigma_min_cut_fb for r in t_punzi.rows])
    bce = np.array([r.sigma_min_cut_fb for r in t_bce.rows])
    np.testing.assert_allclose(none, [r.sigma_min_fb for r in t_bce.rows])
    assert bce.mean() < 0.9 * none.mean()
    assert punzi.mean() < 0.95 * bce.mean()
    assert np.sum(punzi < bce) >= 4
    # the validation loss went down during the Punzi phase
    rec = trained.record
    assert rec["punzi_best_epoch"] >= 0
    assert min(rec["punzi_val"]) < 0.95 * rec["punzi_val"][0]
    assert len(rec["fom"]) == len(MASSES)


def test_every_other_mass_trains_and_test_masses_are_unseen(toy, trained):
    """Sorted masses: even indices (and the last) train, the others are test masses; the test
    masses' events do not enter the training at all (replacing them leaves the network bitwise
    the same)."""
    rec = trained.record
    assert rec["train_masses_gev"] == [1.0, 5.0, 8.5]
    assert rec["test_masses_gev"] == [3.0, 7.0]
    assert [r["sample"] for r in rec["fom"]] == [
        "train mass",
        "test mass",
        "train mass",
        "test mass",
        "train mass",
    ]
    sig, bkg = toy
    scrambled = [
        s
        if s.mass_gev in rec["train_masses_gev"]
        else SignalSample(s.mass_gev, {k: v[::-1] * 1.5 for k, v in s.events.items()}, 3.0)
        for s in sig
    ]
    again = train(
        scrambled[::-1], bkg, config=PunziNetConfig(**FAST), luminosity_fb=LUMI, progress=False
    )
    a, b = trained.network.state_dict(), again.network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # four masses: 0 and 2 by parity, 3 as the last; one mass: it trains
    assert _mass_split(4).tolist() == [True, False, True, True]
    assert _mass_split(5).tolist() == [True, False, True, False, True]
    assert _mass_split(1).tolist() == [True]


def test_background_split_and_test_weights(toy, trained):
    """The in-window background splits into training (of which 30% validate) and test halves;
    the test events' weights are divided by the test fraction, so the test figure of merit
    without the network estimates the full sample's background."""
    _, bkg = toy
    rec = trained.record
    n_test = rec["n_test_background"]
    low, high = np.array(rec["window_low_gev2"]), np.array(rec["window_high_gev2"])
    m2 = bkg["m_recoil2"]
    inside = np.zeros(len(m2), dtype=bool)
    for lo, hi in zip(low, high, strict=True):
        inside |= (m2 > lo) & (m2 < hi)
    assert n_test == round(0.5 * inside.sum())
    for row in rec["fom"]:
        sel = (m2 > row["window_low_gev2"]) & (m2 < row["window_high_gev2"])
        full = float(bkg["weight"][sel].sum()) * LUMI
        # binomial spread of a half sample of ~1000 events: ~3%
        assert row["background"] == pytest.approx(full, rel=0.1)
        assert row["background_train"] == pytest.approx(full, rel=0.15)
        # the over-training diagnostic is the ratio of the kept fractions (on this toy a window
        # keeps only ~10-30 simulated events, so the ratio itself scatters by a factor 2)
        kept_train = row["background_train_cut"] / row["background_train"]
        kept_test = row["background_cut"] / row["background"]
        assert row["overtraining_ratio"] == pytest.approx(kept_train / kept_test)


def test_sgd_and_the_plateau_schedule_reduce_the_learning_rate(toy):
    """Both phases use plain SGD with ReduceLROnPlateau: the recorded rate starts at the
    configured value and only ever halves."""
    sig, bkg = toy
    cfg = PunziNetConfig(
        **{**FAST, "punzi_epochs": 120, "punzi_lr_patience": 3, "bce_lr_patience": 1}
    )
    model = train(sig, bkg, config=cfg, luminosity_fb=LUMI, progress=False)
    for key, lr0 in (("punzi_lr", cfg.punzi_learning_rate), ("bce_lr", cfg.bce_learning_rate)):
        lrs = np.array(model.record[key])
        assert lrs[0] == lr0
        assert lrs.min() < lr0  # the plateau was reached and the rate halved
        steps = np.log2(lr0 / lrs)
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
        assert np.all(np.diff(lrs) <= 0)


def _threshold_problem(rng, n_sig, n_bkg, b_xsec):
    """Signal and background differing only in feature 0, N(+1, 1) vs N(-1, 1); the other three
    features are N(0, 1) noise; background flat in M^2 over [0, 40] GeV^2; a constant
    resolution of 0.5 GeV^2. The best selection is a threshold t on feature 0."""
    masses = [2.0, 3.0, 4.0, 5.0, 6.0]
    sigs = []
    for m in masses:
        ev = {f: rng.standard_normal(n_sig) for f in FEATURES}
        ev[FEATURES[0]] = ev[FEATURES[0]] + 1.0
        ev["m_recoil2"] = m * m + 0.5 * rng.standard_normal(n_sig)
        ev["weight"] = np.full(n_sig, 1.0 / (2 * n_sig))  # half of the generated events selected
        sigs.append(SignalSample(m, ev, 1.0))
    bkg = {f: rng.standard_normal(n_bkg) for f in FEATURES}
    bkg[FEATURES[0]] = bkg[FEATURES[0]] - 1.0
    bkg["m_recoil2"] = rng.uniform(0.0, 40.0, n_bkg)
    bkg["weight"] = np.full(n_bkg, b_xsec / n_bkg)
    return sigs, bkg


def _threshold_optimum(b_xsec, lumi):
    """sigma_min versus the threshold t, from the Gaussian tails (no simulation)."""

    def q(z: np.ndarray) -> np.ndarray:
        return 0.5 * np.vectorize(math.erfc)(z / math.sqrt(2.0))

    eps_window = 0.5 * (1.0 - 2.0 * float(q(np.array(2.0))))  # +-2 sigma of the signal
    b_window = b_xsec * lumi * (4 * 0.5 / 40.0)  # a 2 GeV^2 window of a flat background
    t = np.linspace(-2.0, 4.0, 6001)
    eps = eps_window * q(t - 1.0)
    return eps, sigma_min(eps, b_window * q(t + 1.0), luminosity_fb=lumi)


def test_known_optimal_cut_is_found():
    """On a problem whose best selection is a threshold on one feature, the trained network's
    cut at 0.5 gives, on independent events, a sigma_min within 10% of that of the optimal
    threshold (on the same events) in every window and within 5% on average, and a signal
    efficiency inside the range of thresholds whose expected sigma_min is within 5% of the
    optimum (the figure of merit is flat around its minimum: efficiency 0.12-0.26 against
    0.182 at the optimum)."""
    lumi, b_xsec = 10.0, 400.0
    eps_t, sig_t = _threshold_optimum(b_xsec, lumi)
    k_best = int(np.argmin(sig_t))
    best = float(sig_t[k_best])
    t_best = -2.0 + 0.001 * k_best
    assert best == pytest.approx(4.7148, rel=1e-3)
    assert t_best == pytest.approx(1.30, abs=0.01)
    assert float(eps_t[k_best]) == pytest.approx(0.1823, rel=1e-2)
    ok = eps_t[sig_t < 1.05 * best]
    assert (ok.min(), ok.max()) == pytest.approx((0.119, 0.261), abs=0.001)
    sig, bkg = _threshold_problem(np.random.default_rng(1), 5000, 200_000, b_xsec)
    hs, hb = _threshold_problem(np.random.default_rng(2), 20_000, 400_000, b_xsec)

    def resolution(m2: np.ndarray) -> np.ndarray:
        return np.full_like(np.asarray(m2, dtype=float), 0.5)

    cfg = PunziNetConfig(bce_epochs=10, bce_batch_size=512, punzi_epochs=300)
    model = train(sig, bkg, config=cfg, luminosity_fb=lumi, resolution=resolution, progress=False)
    table = punzi_fom(hs, hb, luminosity_fb=lumi, model=model, resolution=resolution)

    def threshold(ev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**ev, "punzinet": (ev[FEATURES[0]] > t_best).astype(float)}

    optimal = punzi_fom(
        [SignalSample(s.mass_gev, threshold(s.events), s.total_weight) for s in hs],
        threshold(hb),
        luminosity_fb=lumi,
        resolution=resolution,
    )
    ratio = np.array(
        [
            r.sigma_min_cut_fb / o.sigma_min_cut_fb
            for r, o in zip(table.rows, optimal.rows, strict=True)
        ]
    )
    assert np.all(ratio < 1.10), ratio
    assert ratio.mean() < 1.05, ratio
    for row in table.rows:
        assert ok.min() < row.efficiency_cut < ok.max(), row
    # along feature 0 (the noise inputs at their mean) the output rises monotonically
    x = np.linspace(-2.0, 4.0, 601)
    probe = {f: np.zeros_like(x) for f in FEATURES}
    probe[FEATURES[0]] = x
    assert np.all(np.diff(predict(model, probe)) > 0)


def test_cut_scan_recorded_per_test_mass(trained):
    scan = trained.cut_scan()
    assert scan["cuts"] == list(SCAN_CUTS)
    assert (scan["cuts"][0], scan["cuts"][-1], len(scan["cuts"])) == (0.05, 0.95, 19)
    assert [r["mass_gev"] for r in scan["rows"]] == trained.record["test_masses_gev"]
    fom = {r["mass_gev"]: r for r in trained.record["fom"]}
    for r in scan["rows"]:
        eff = np.array(r["efficiency"])
        assert np.all(np.diff(eff) <= 0)  # a tighter cut keeps less
        # the scan at 0.5 is the figure-of-merit table's row
        k = scan["cuts"].index(0.5)
        assert r["sigma_min_fb"][k] == pytest.approx(fom[r["mass_gev"]]["sigma_min_cut_fb"])


def test_record_contents(trained):
    rec = trained.record
    assert rec["masses_gev"] == MASSES
    assert len(rec["bce_train"]) >= 1
    assert len(rec["bce_val"]) == len(rec["bce_train"]) == len(rec["bce_lr"])
    assert len(rec["punzi_val"]) == len(rec["punzi_train"]) <= FAST["punzi_epochs"]
    low, high = np.array(rec["window_low_gev2"]), np.array(rec["window_high_gev2"])
    m2 = np.array(MASSES) ** 2
    np.testing.assert_allclose((high - low) / 4.0, default_resolution(m2))
    np.testing.assert_allclose((high + low) / 2.0, m2)
    assert all(n > 0 for n in rec["n_val_signal"])
    assert rec["fom_split"] == "test"
    assert rec["windows_without_training_background"] == []


def test_resolution_object_with_sigma_method(toy):
    """``train`` takes the fit's resolution model (an object with ``sigma``) as it is."""
    sig, bkg = toy
    model = ResolutionModel.from_points([0.0, 80.0], [0.3, 0.1])
    cfg = PunziNetConfig(**{**FAST, "bce_epochs": 1, "punzi_epochs": 1})
    net = train(sig, bkg, config=cfg, luminosity_fb=LUMI, resolution=model, progress=False)
    m2 = np.array(MASSES) ** 2
    np.testing.assert_allclose(net.record["resolution_gev2"], model.sigma(m2))
    np.testing.assert_allclose(np.array(net.record["window_high_gev2"]) - m2, 2.0 * model.sigma(m2))


def test_window_without_training_background_warns(toy, caplog):
    sig, bkg = toy
    # no background events near M^2 = 25 (the 5 GeV training window)
    far = {k: v[np.abs(bkg["m_recoil2"] - 25.0) > 1.0] for k, v in bkg.items()}
    cfg = PunziNetConfig(**{**FAST, "bce_epochs": 1, "punzi_epochs": 2})
    with caplog.at_level(logging.WARNING, logger="zprime.analyses.invisible_zprime.punzinet"):
        model = train(sig, far, config=cfg, luminosity_fb=LUMI, progress=False)
    msgs = [
        r.getMessage()
        for r in caplog.records
        if r.name == "zprime.analyses.invisible_zprime.punzinet"
    ]
    assert msgs == ["punzinet: no training background in the window(s) of M = 5 GeV"]
    assert model.record["windows_without_training_background"] == ["5"]


def test_determinism_same_seed_same_weights(toy):
    sig, bkg = toy
    cfg = PunziNetConfig(**{**FAST, "bce_epochs": 2, "punzi_epochs": 5})
    a = train(sig, bkg, config=cfg, luminosity_fb=LUMI, progress=False)
    b = train(sig, bkg, config=cfg, luminosity_fb=LUMI, progress=False)
    c = train(
        sig, bkg, config=cfg.model_copy(update={"seed": 2}), luminosity_fb=LUMI, progress=False
    )
    sa, sb, sc = (m.network.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.record["punzi_train"] == b.record["punzi_train"]
    assert a.record["fom"] == b.record["fom"]


def test_default_resolution_fallback():
    # PRL: 0.23 GeV^2 at 9 GeV^2, 0.06 GeV^2 at 80 GeV^2; linear between, clamped outside
    np.testing.assert_allclose(
        default_resolution([0.0, 9.0, 44.5, 80.0, 100.0]), [0.23, 0.23, 0.145, 0.06, 0.06]
    )


def test_config_defaults_and_validation():
    cfg = default_config().punzinet
    assert cfg.a == 3.0
    assert cfg.b == pytest.approx(1.28155)
    assert cfg.window_sigmas == 2.0
    # [PL] notebook and train.py: SGD, BCE lr 1 / 150 epochs / batches of 2^12 / plateau
    # patience 10; Punzi lr 0.05 / 500 epochs / plateau patience 20; factor 0.5
    assert (cfg.bce_learning_rate, cfg.bce_epochs, cfg.bce_batch_size) == (1.0, 150, 4096)
    assert (cfg.punzi_learning_rate, cfg.punzi_epochs) == (0.05, 500)
    assert (cfg.bce_lr_patience, cfg.punzi_lr_patience, cfg.lr_factor) == (10, 20, 0.5)
    assert cfg.training_fraction == 0.5
    assert cfg.ensemble == 1
    assert default_config().selection.punzinet_min == 0.5  # the PRL cut, applied by selection
    with pytest.raises(ValueError, match="validation_fraction"):
        PunziNetConfig(validation_fraction=1.5)
    with pytest.raises(ValueError, match="training_fraction"):
        PunziNetConfig(training_fraction=1.0)


# ---------------------------------------------------------------------------------------------
# input errors


def test_missing_column_and_nan_are_input_errors(toy):
    sig, bkg = toy
    bad = {k: v for k, v in bkg.items() if k != "pt_mumu_cm"}
    with pytest.raises(InputError, match="punzinet background: missing column 'pt_mumu_cm'"):
        train(sig, bad, config=PunziNetConfig(**FAST), luminosity_fb=LUMI, progress=False)
    nan = {**bkg, "pt_thrust_cm": np.where(np.arange(len(bkg["weight"])) == 3, np.nan, 0.1)}
    with pytest.raises(InputError, match="'pt_thrust_cm' has NaN"):
        train(sig, nan, config=PunziNetConfig(**FAST), luminosity_fb=LUMI, progress=False)


def test_empty_window_is_an_input_error(toy):
    sig, bkg = toy
    far = SignalSample(2.0, {**sig[0].events}, sig[0].total_weight)  # events at M^2 ~ 1
    with pytest.raises(InputError, match=r"M = 2 GeV: only 0 events"):
        train([far], bkg, config=PunziNetConfig(**FAST), luminosity_fb=LUMI, progress=False)
    with pytest.raises(ConfigError, match="luminosity"):
        train(sig, bkg, luminosity_fb=0.0, progress=False)


# ---------------------------------------------------------------------------------------------
# saving, loading, applying


def test_save_load_round_trip(trained, independent, tmp_path):
    _, bkg = independent
    path = save(trained, tmp_path / "net" / "punzinet.pt")
    again = load(path, features=FEATURES)
    np.testing.assert_array_equal(predict(trained, bkg), predict(again, bkg))
    assert again.features == FEATURES
    assert again.config == trained.config
    assert again.record["punzi_val"] == trained.record["punzi_val"]
    assert again.fom_table().to_csv() == trained.fom_table().to_csv()
    assert again.cut_scan() == trained.cut_scan()
    assert "torch" in again.versions
    # no temporary files left behind
    assert [p.name for p in path.parent.iterdir()] == ["punzinet.pt"]


def test_load_refuses_feature_mismatch_and_corrupt_files(trained, tmp_path):
    path = save(trained, tmp_path / "punzinet.pt")
    with pytest.raises(InputError, match=r"punzinet.pt: network trained on features"):
        load(path, features=["pt_thrust_cm", "pt_hi_lo_cm", "pl_hi_lo_cm", "p_recoil_cm"])
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:500])
    with pytest.raises(InputError, match=r"broken.pt: not a readable Punzi-net file"):
        load(broken)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(InputError, match=r"foreign.pt: not a zprime Punzi-net file"):
        load(foreign)
    with pytest.raises(InputError, match="file not found"):
        load(tmp_path / "absent.pt")
    for err_path in (broken, foreign):
        with pytest.raises(InputError) as info:
            load(err_path)
        assert "\n" not in str(info.value)


def test_apply_adds_column_to_awkward_and_dict(trained, independent):
    _, bkg = independent
    arr = ak.Array({k: v[:100] for k, v in bkg.items()})
    out = apply(trained, arr)
    assert "punzinet" in ak.fields(out)
    y = ak.to_numpy(out["punzinet"])
    assert np.all((y >= 0) & (y <= 1))
    d = apply(trained, {k: v[:100] for k, v in bkg.items()})
    np.testing.assert_array_equal(d["punzinet"], y)
    # the column can feed punzi_fom without the model
    sig, _ = independent
    with_col = [SignalSample(s.mass_gev, apply(trained, s.events), s.total_weight) for s in sig]
    t1 = punzi_fom(with_col, apply(trained, bkg), luminosity_fb=LUMI)
    t2 = punzi_fom(sig, bkg, luminosity_fb=LUMI, model=trained)
    assert [r.to_dict() for r in t1.rows] == [r.to_dict() for r in t2.rows]
    assert "| M (GeV) |" in t1.to_markdown()
    assert t1.to_csv().startswith("mass_gev,")


def test_fom_table_of_the_record_is_labelled(trained):
    table = trained.fom_table()
    md = table.to_markdown()
    assert "B kept train/test" in md
    assert "test mass" in md
    assert "train mass" in md
    assert "weights divided by the test fraction" in md
    header = table.to_csv().splitlines()[0].split(",")
    for col in ("sample", "background_train", "overtraining_ratio", "gain"):
        assert col in header


# ---------------------------------------------------------------------------------------------
# command line


def test_cli_train(tmp_path):
    sig, bkg = toy_samples(np.random.default_rng(5), [2.0, 4.0, 6.0], 600, 8000)
    args = ["train"]
    for s in sig:
        path = write_events(
            tmp_path / f"signal_{s.mass_gev}.parquet",
            ak.Array(s.events),
            {"mass_gev": s.mass_gev, "sigma_fb": s.total_weight},
        )
        args += ["--signal", str(path)]
    bpath = write_events(tmp_path / "bkg.parquet", ak.Array(bkg), {"sample": "toy"})
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("punzinet:\n  hidden_layers: [8]\n  bce_epochs: 2\n  punzi_epochs: 5\n")
    out = tmp_path / "net.pt"
    args += ["--background", str(bpath), "--out", str(out), "--config", str(cfg), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| M (GeV) |" in result.output
    model = load(out, features=FEATURES)
    assert model.record["masses_gev"] == [2.0, 4.0, 6.0]
    assert model.record["test_masses_gev"] == [4.0]
    assert model.config.hidden_layers == [8]
    # a background file where a signal file is expected: a one-line InputError (which
    # zprime.cli.main prints, exiting with status 2)
    bad = CliRunner().invoke(
        app, ["train", "--signal", str(bpath), "--background", str(bpath), "--out", str(out)]
    )
    assert isinstance(bad.exception, InputError)
    assert "bkg.parquet: metadata lack 'mass_gev'" in str(bad.exception)


@pytest.mark.slow
def test_realistic_size_default_config():
    """Default configuration on a realistic-size toy (the 22 default masses x 1e4 signal,
    3e5 background): the Punzi-net improves every window on independent events and beats the
    BCE-only network."""
    masses = default_config().signal.masses_gev
    sig, bkg = toy_samples(np.random.default_rng(21), masses, 10_000, 300_000)
    hs, hb = toy_samples(np.random.default_rng(22), masses, 10_000, 300_000)
    cfg = default_config().punzinet
    full = train(sig, bkg, config=cfg, luminosity_fb=LUMI, progress=False)
    bce = train(
        sig,
        bkg,
        config=cfg.model_copy(update={"punzi_epochs": 0}),
        luminosity_fb=LUMI,
        progress=False,
    )
    t_full = punzi_fom(hs, hb, luminosity_fb=LUMI, model=full)
    t_bce = punzi_fom(hs, hb, luminosity_fb=LUMI, model=bce)
    assert all(r.gain > 1.5 for r in t_full.rows)
    full_s = np.array([r.sigma_min_cut_fb for r in t_full.rows])
    bce_s = np.array([r.sigma_min_cut_fb for r in t_bce.rows])
    assert full_s.mean() < 0.95 * bce_s.mean()


def test_ensemble_is_the_mean_of_its_members_and_round_trips(trained, toy, independent, tmp_path):
    """punzinet.ensemble = 3: three networks on the same split (the first is the single network
    of the same seed), the output is their mean, and the file keeps all three."""
    sig, bkg = toy
    _, other = independent
    cfg = PunziNetConfig(**{**FAST, "ensemble": 3})
    ens = train(sig, bkg, config=cfg, luminosity_fb=LUMI, progress=False)
    assert isinstance(ens.network, PunziEnsemble)
    assert [r["init_seed"] for r in ens.record["ensemble"]] == [1, 1001, 2001]
    outs = []
    for member in ens.network.members:
        single = copy.copy(ens)
        single.network = member
        outs.append(predict(single, other))
    np.testing.assert_allclose(predict(ens, other), np.mean(outs, axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(outs[0], predict(trained, other))  # member 0 = single network
    assert not np.allclose(outs[0], outs[1])
    again = load(save(ens, tmp_path / "ens.pt"))
    assert isinstance(again.network, PunziEnsemble)
    np.testing.assert_array_equal(predict(again, other), predict(ens, other))
