"""Tests of the dark Higgsstrahlung control samples (zprime.analyses.dark_higgsstrahlung.control):
the mu mu gamma tag and probe recovers a known extra photon loss, the normalisations recover known
data / simulation ratios, the corrected weights follow their definition, the file round-trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zprime.analyses.dark_higgsstrahlung.analysis import DarkHiggsstrahlung
from zprime.analyses.dark_higgsstrahlung.control import (
    Corrections,
    measure,
    observed_events,
    read_corrections,
)
from zprime.analyses.dark_higgsstrahlung.selection import CONTROL_REGIONS
from zprime.config import load_config
from zprime.errors import ConfigError, InputError

DEG = math.pi / 180.0
LUMI = 10.0
P_MISS_SIM = 0.03  # probability that the simulation misses the photon of a probe event
EXTRA = 0.05  # extra loss of data above 91 deg
SCALE_MUMU = 0.95  # data / simulation of radiative mu mu
SCALE_EMU = 1.10  # data / simulation of e mu


def _probe(rng: np.random.Generator, n: int, p_miss: np.ndarray | float) -> dict[str, np.ndarray]:
    theta = rng.uniform(34.0, 123.0, n) * DEG
    theta = theta[(theta < 89 * DEG) | (theta > 91 * DEG)]
    m = len(theta)
    p = np.broadcast_to(p_miss(theta) if callable(p_miss) else p_miss, (m,))
    missed = rng.random(m) < p
    return {
        "theta_recoil": theta,
        "m_recoil2": rng.normal(0.0, 0.2, m),
        "m_recoil": np.zeros(m),
        "m_mumu": rng.uniform(7.0, 10.0, m),
        "missed": missed,
    }


def _split(ev: dict[str, np.ndarray], weight: float) -> tuple[dict, dict]:
    """(selected = photon missed, control = photon seen) with one photon in the cone."""
    miss = ev.pop("missed")
    sel = {k: v[miss] for k, v in ev.items()}
    ctl = {k: v[~miss] for k, v in ev.items()}
    sel["weight"] = np.full(len(sel["m_mumu"]), weight)
    ctl["weight"] = np.full(len(ctl["m_mumu"]), weight)
    ctl["region"] = np.full(len(ctl["m_mumu"]), CONTROL_REGIONS["mumugamma"], dtype=float)
    ctl["n_near_photons"] = np.ones(len(ctl["m_mumu"]))
    return sel, ctl


def _emu(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "theta_recoil": rng.uniform(40.0, 120.0, n) * DEG,
        "m_recoil2": rng.uniform(5.0, 40.0, n),
        "m_recoil": np.zeros(n),
        "m_mumu": rng.uniform(1.0, 5.0, n),
        "region": np.full(n, CONTROL_REGIONS["emu"], dtype=float),
        "n_near_photons": np.zeros(n),
    }


def _join(a: dict, b: dict) -> dict:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


@pytest.fixture(scope="module")
def measured() -> Corrections:
    """Simulation: 400k probe events at weight 1/(4 L) (4x the data), 40k e mu; data drawn
    with the known extra loss above 91 deg and the known normalisations."""
    rng = np.random.default_rng(11)
    cfg = load_config(None, preset="dark_higgsstrahlung", luminosity_fb=LUMI)
    n_data = 100_000
    sim_sel, sim_ctl = _split(_probe(rng, 4 * n_data, P_MISS_SIM), 1.0 / (4 * LUMI))

    def p_data(theta: np.ndarray) -> np.ndarray:
        return np.where(theta > 91 * DEG, P_MISS_SIM + (1 - P_MISS_SIM) * EXTRA, P_MISS_SIM)

    data_sel, data_ctl = _split(_probe(rng, rng.poisson(SCALE_MUMU * n_data), p_data), 1.0)
    e_sim = _emu(rng, 40_000)
    e_sim["weight"] = np.full(40_000, 1.0 / (4 * LUMI))
    e_dat = _emu(rng, rng.poisson(SCALE_EMU * 10_000))
    e_dat["weight"] = np.ones(len(e_dat["m_mumu"]))
    return measure(
        cfg,
        {"mumu": sim_sel},
        {"mumu": _join(sim_ctl, e_sim)},
        data_sel,
        _join(data_ctl, e_dat),
    )


def test_tag_and_probe_recovers_the_extra_photon_loss(measured: Corrections) -> None:
    ph = measured.photon
    centres = 0.5 * (ph.edges_rad[1:] + ph.edges_rad[:-1])
    for i, c in enumerate(centres):
        if ph.fallback[i]:
            assert 89 * DEG < c < 91 * DEG  # only the empty gap bin
            continue
        truth = EXTRA if c > 91 * DEG else 0.0
        assert abs(ph.extra[i] - truth) < 4 * ph.extra_err[i], (i, ph.extra[i], ph.extra_err[i])
        assert 0.0005 < ph.extra_err[i] < 0.01
        assert abs(ph.eff_sim[i] - P_MISS_SIM) < 4 * ph.err_sim[i]


def test_normalisations_recover_the_data_over_simulation_ratios(measured: Corrections) -> None:
    for norm, truth in ((measured.mumu, SCALE_MUMU), (measured.tautau, SCALE_EMU)):
        assert not norm.fallback
        assert abs(norm.ratio - truth) < 4 * norm.ratio_err, (norm.sample, norm.ratio)
        # flat in M_mumu by construction: the spread is statistics only
        assert norm.shape < 0.05
    assert measured.mumu.applies_to == "mumu"
    assert measured.tautau.applies_to == "tautau"


def test_corrected_weights_follow_their_definition(measured: Corrections) -> None:
    ph = measured.photon
    theta = np.array([50.0, 100.0, 100.0, 100.0, 130.0]) * DEG
    sel = {"theta_recoil": theta, "m_recoil2": np.zeros(5), "weight": np.full(5, 2.0)}
    ctl = {
        "theta_recoil": theta,
        "weight": np.full(5, 2.0),
        "region": np.array([1, 1, 1, 2, 1], dtype=float),
        "n_near_photons": np.array([1, 1, 2, 1, 1], dtype=float),
    }
    k = int(ph.bin_of(np.array([100 * DEG]))[0])

    def pass_scale(i: int, shift: float = 0.0) -> float:
        e = ph.extra[i] + shift * ph.extra_err[i]
        return 1.0 if e >= 0 else 1.0 + e * (1.0 - ph.eff_sim[i]) / ph.eff_sim[i]

    def sel_factors(shift: float = 0.0) -> np.ndarray:
        return np.array([pass_scale(0, shift)] + [pass_scale(k, shift)] * 3 + [1.0])

    w_sel, w_ctl = measured.weights("mumu", sel, ctl)
    # selected mu mu events: the normalisation, and eps_data / eps_sim where extra < 0
    np.testing.assert_allclose(w_sel, 2.0 * measured.mumu.ratio * sel_factors())
    # recovered: one photon, mu mu gamma region, inside the bins; two photons, e mu, or
    # outside the bins: nothing
    expected = np.array([max(ph.extra[0], 0.0), ph.extra[k], 0.0, 0.0, 0.0])
    np.testing.assert_allclose(w_ctl, 2.0 * measured.mumu.ratio * expected, atol=1e-15)
    # tau tau: its own normalisation; eemumu: none
    np.testing.assert_allclose(
        measured.weights("tautau", sel, ctl)[0], 2.0 * measured.tautau.ratio * sel_factors()
    )
    np.testing.assert_allclose(measured.weights("eemumu", sel, ctl)[0], 2.0 * sel_factors())
    # the +1 sigma variations move the weights by the uncertainties
    up_sel, up_ctl = measured.weights("mumu", sel, ctl, extra_shift=1.0, scale_shift=1.0)
    scale_up = measured.mumu.ratio + measured.mumu.ratio_err
    np.testing.assert_allclose(up_sel, 2.0 * scale_up * sel_factors(1.0))
    assert up_ctl[1] == pytest.approx(2.0 * scale_up * (ph.extra[k] + ph.extra_err[k]))
    # not applied: the simulation as it is
    off = Corrections(measured.photon, measured.mumu, measured.tautau, applied=False)
    np.testing.assert_allclose(off.weights("mumu", sel, ctl)[0], 2.0)
    np.testing.assert_allclose(off.weights("mumu", sel, ctl)[1], 0.0)


def test_fewer_photons_missed_in_data_scale_the_passing_events() -> None:
    rng = np.random.default_rng(5)
    cfg = load_config(None, preset="dark_higgsstrahlung", luminosity_fb=LUMI)
    sim_sel, sim_ctl = _split(_probe(rng, 400_000, 0.06), 1.0 / (4 * LUMI))
    data_sel, data_ctl = _split(_probe(rng, 100_000, 0.03), 1.0)
    corr = measure(cfg, {"mumu": sim_sel}, {"mumu": sim_ctl}, data_sel, data_ctl)
    ph = corr.photon
    ok = ~ph.fallback
    assert np.all(ph.extra[ok] < 0)
    sel = {"theta_recoil": np.array([50 * DEG]), "m_recoil2": np.zeros(1), "weight": np.ones(1)}
    w, _ = corr.weights("eemumu", sel, None)
    # eps_data / eps_sim of the probe: about 0.03 / 0.06
    assert w[0] == pytest.approx(ph.eff_data[0] / ph.eff_sim[0], rel=1e-9)
    assert 0.4 < w[0] < 0.6


def test_too_few_events_fall_back_to_no_correction() -> None:
    rng = np.random.default_rng(3)
    cfg = load_config(None, preset="dark_higgsstrahlung", luminosity_fb=LUMI)
    sim_sel, sim_ctl = _split(_probe(rng, 40, 0.3), 0.1)
    data_sel, data_ctl = _split(_probe(rng, 10, 0.3), 1.0)
    corr = measure(cfg, {"mumu": sim_sel}, {"mumu": sim_ctl}, data_sel, data_ctl)
    assert corr.photon.fallback.all()
    assert np.all(corr.photon.extra == 0.0)
    assert corr.mumu.fallback
    assert corr.scale_of("mumu") == (1.0, 0.0)
    assert corr.tautau.fallback  # no e mu events at all
    assert "need" in corr.mumu.reason


def test_file_round_trip_and_bad_files(measured: Corrections, tmp_path: Path) -> None:
    path = measured.write(tmp_path / "dark_higgs_control.json")
    back = read_corrections(path)
    assert back.to_dict() == json.loads(path.read_text())
    np.testing.assert_allclose(back.photon.extra, measured.photon.extra)
    assert back.mumu.ratio == measured.mumu.ratio
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match=r"bad\.json") as exc:
        read_corrections(bad)
    assert "\n" not in str(exc.value)
    d = json.loads(path.read_text())
    del d["photon_detection"]["extra"]
    bad.write_text(json.dumps(d))
    with pytest.raises(InputError, match="malformed"):
        read_corrections(bad)


def test_injection_settings_are_checked() -> None:
    ana = DarkHiggsstrahlung()
    base = {"pseudo_data.inject_mass_gev": 6.0, "pseudo_data.inject_xsec_fb": 8.0}
    cfg = load_config(None, preset="dark_higgsstrahlung", **base)
    with pytest.raises(ConfigError, match="inject_hdark_gev"):
        ana.injected_signal(cfg)
    bad = load_config(
        None, preset="dark_higgsstrahlung", **base, **{"dark_higgs.inject_hdark_gev": 6.5}
    )
    with pytest.raises(ConfigError, match="M_h'"):
        ana.injected_signal(bad)
    good = load_config(
        None, preset="dark_higgsstrahlung", **base, **{"dark_higgs.inject_hdark_gev": 2.0}
    )
    sample = ana.injected_signal(good)
    assert sample is not None
    assert sample.params["m_aprime"] == 6.0
    assert sample.params["m_hdark"] == 2.0
    none = load_config(None, preset="dark_higgsstrahlung")
    assert ana.injected_signal(none) is None


def test_observed_events_rescale_the_injected_signal(tmp_path: Path) -> None:
    """The pseudo-data draw keeps the backgrounds' expected counts and adds the injected signal
    at sigma x B: N_signal ~ Poisson(xsec x L x selected fraction)."""
    rng = np.random.default_rng(2)
    lumi, xsec, total = 10.0, 50.0, 1.0e6  # signal file: weights sum to 4e5 of a 1e6 fb total
    n_sig, n_bkg = 40_000, 200_000
    files = {}
    for name, n, w in (("signal", n_sig, 10.0), ("mumu", n_bkg, 0.02)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"m_mumu": rng.uniform(1, 9, n), "weight": np.full(n, w)}), path)
        files[name] = path
    cfg = load_config(
        None,
        preset="dark_higgsstrahlung",
        luminosity_fb=lumi,
        **{"pseudo_data.inject_mass_gev": 6.0, "pseudo_data.inject_xsec_fb": xsec},
    )
    out = observed_events(cfg, files, ("m_mumu",), stream=2, signal_total_fb=total)
    expected = n_bkg * 0.02 * lumi + xsec * lumi * (n_sig * 10.0 / total)
    assert np.all(out["weight"] == 1.0)
    assert abs(len(out["m_mumu"]) - expected) < 4 * math.sqrt(expected)
    # the same stream gives the same events; without a total the signal is refused
    again = observed_events(cfg, files, ("m_mumu",), stream=2, signal_total_fb=total)
    np.testing.assert_array_equal(out["m_mumu"], again["m_mumu"])
    with pytest.raises(InputError, match="cross section"):
        observed_events(cfg, files, ("m_mumu",), stream=2)
