"""Tests of zprime.punzinet: the Punzi loss, training, saving and loading, determinism."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
import torch

from zprime.config import PunziNetConfig, default_config
from zprime.errors import ConfigError, InputError
from zprime.punzinet import (
    FEATURES,
    SignalSample,
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

LUMI = 79.7
MASSES = [1.0, 3.0, 5.0, 7.0, 8.5]
# small, fast settings for the toy (the defaults are sized for the real samples)
FAST = {
    "hidden_layers": [16, 16],
    "bce_epochs": 8,
    "bce_batch_size": 2048,
    "punzi_epochs": 150,
    "patience": 20,
}


@pytest.fixture(scope="module")
def toy() -> tuple[list[SignalSample], dict[str, np.ndarray]]:
    return toy_samples(np.random.default_rng(11), MASSES, 1500, 30000)


@pytest.fixture(scope="module")
def held_out() -> tuple[list[SignalSample], dict[str, np.ndarray]]:
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


def _hand_loss(out_sig, m2_sig, w_sig, out_bkg, m2_bkg, w_bkg, masses, n_sig, a, b):
    """The Punzi loss written out with explicit loops (independent of the implementation)."""
    values = []
    for i, m in enumerate(masses):
        sigma = float(default_resolution(m * m))
        lo, hi = m * m - n_sig * sigma, m * m + n_sig * sigma
        eps = sum(
            y * w for y, x, w in zip(out_sig[i], m2_sig[i], w_sig[i], strict=True) if lo < x < hi
        )
        bkg = LUMI * sum(
            y * w for y, x, w in zip(out_bkg, m2_bkg, w_bkg, strict=True) if lo < x < hi
        )
        num = (
            b * b / 2
            + a * math.sqrt(bkg)
            + b / 2 * math.sqrt(b * b + 4 * a * math.sqrt(bkg) + 4 * bkg)
        )
        values.append(num / (eps * LUMI))
    return sum(values) / len(values), values


def test_loss_equals_hand_formula():
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
    loss, per = punzi_loss(output, windows, luminosity_fb=LUMI, a=3.0, b=1.28155)
    want, want_per = _hand_loss(
        out_sig, m2_sig, w_sig, out_bkg, m2_bkg, w_bkg, masses, 2.5, 3.0, 1.28155
    )
    assert float(loss) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(per.numpy(), want_per, rtol=1e-12)
    # each window saw some background and some (not all) signal: a non-trivial check
    assert all(np.any(windows.background_window.numpy() == i) for i in range(3))


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
    from zprime.punzinet import PunziNetwork

    torch.manual_seed(0)
    net = PunziNetwork(4, [8, 8])
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
    loss, _ = punzi_loss(net(x), windows, luminosity_fb=LUMI)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.all(torch.isfinite(p.grad)), name
        assert float(p.grad.abs().sum()) > 0, name


# ---------------------------------------------------------------------------------------------
# training


def test_punzi_training_beats_bce_and_no_network(trained, bce_only, held_out):
    """On held-out events the Punzi-trained cut gives a better sensitivity than the BCE-only
    network and than no network, in the mean and in most windows."""
    sig, bkg = held_out
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


def test_record_contents(trained):
    rec = trained.record
    assert rec["masses_gev"] == MASSES
    assert len(rec["bce_train"]) >= 1
    assert len(rec["bce_val"]) == len(rec["bce_train"])
    assert len(rec["punzi_val"]) == len(rec["punzi_train"]) <= FAST["punzi_epochs"]
    low, high = np.array(rec["window_low_gev2"]), np.array(rec["window_high_gev2"])
    m2 = np.array(MASSES) ** 2
    np.testing.assert_allclose((high - low) / 4.0, default_resolution(m2))
    np.testing.assert_allclose((high + low) / 2.0, m2)
    assert all(n > 0 for n in rec["n_val_signal"])


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
    assert default_config().selection.punzinet_min == 0.5  # the PRL cut, applied by selection
    with pytest.raises(ValueError, match="validation_fraction"):
        PunziNetConfig(validation_fraction=1.5)


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


def test_save_load_round_trip(trained, held_out, tmp_path):
    _, bkg = held_out
    path = save(trained, tmp_path / "net" / "punzinet.pt")
    again = load(path, features=FEATURES)
    np.testing.assert_array_equal(predict(trained, bkg), predict(again, bkg))
    assert again.features == FEATURES
    assert again.config == trained.config
    assert again.record["punzi_val"] == trained.record["punzi_val"]
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


def test_apply_adds_column_to_awkward_and_dict(trained, held_out):
    _, bkg = held_out
    arr = ak.Array({k: v[:100] for k, v in bkg.items()})
    out = apply(trained, arr)
    assert "punzinet" in ak.fields(out)
    y = ak.to_numpy(out["punzinet"])
    assert np.all((y >= 0) & (y <= 1))
    d = apply(trained, {k: v[:100] for k, v in bkg.items()})
    np.testing.assert_array_equal(d["punzinet"], y)
    # the column can feed punzi_fom without the model
    sig, _ = held_out
    with_col = [SignalSample(s.mass_gev, apply(trained, s.events), s.total_weight) for s in sig]
    t1 = punzi_fom(with_col, apply(trained, bkg), luminosity_fb=LUMI)
    t2 = punzi_fom(sig, bkg, luminosity_fb=LUMI, model=trained)
    assert [r.to_dict() for r in t1.rows] == [r.to_dict() for r in t2.rows]
    assert "| M (GeV) |" in t1.to_markdown()
    assert t1.to_csv().startswith("mass_gev,")


# ---------------------------------------------------------------------------------------------
# command line


def test_cli_train(tmp_path):
    from typer.testing import CliRunner

    from zprime.cli import app
    from zprime.events import write_events

    sig, bkg = toy_samples(np.random.default_rng(5), [2.0, 6.0], 600, 8000)
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
    assert model.record["masses_gev"] == [2.0, 6.0]
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
    """Default configuration on a realistic-size toy (9 masses x 1e4 signal, 3e5 background):
    the Punzi-net improves every window on held-out events and beats the BCE-only network."""
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


def test_ensemble_is_the_mean_of_its_members_and_round_trips(trained, toy, held_out, tmp_path):
    """punzinet.ensemble = 3: three networks on the same split (the first is the single network
    of the same seed), the output is their mean, and the file keeps all three."""
    import copy

    from zprime.punzinet import PunziEnsemble

    sig, bkg = toy
    _, other = held_out
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
