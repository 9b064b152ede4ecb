from __future__ import annotations

import numpy as np
import pytest

from zprime.errors import ConfigError, InputError
from zprime.pseudodata import draw


def _sample(rng: np.random.Generator, n: int, weight: float, centre: float) -> dict:
    return {
        "m_recoil2": rng.normal(centre, 1.0, n),
        "theta_recoil_cm": rng.uniform(0, np.pi, n),
        "theta_recoil": rng.uniform(0, np.pi, n),
        "weight": np.full(n, weight),
    }


def test_bin_counts_are_poisson_with_the_expected_means(rng: np.random.Generator) -> None:
    # two samples standing for less luminosity than the pseudo-data (events are reused)
    samples = {"a": _sample(rng, 300, 0.02, 10.0), "b": _sample(rng, 200, 0.05, 14.0)}
    lumi = 100.0
    edges = np.linspace(5, 20, 7)
    expected = sum(
        np.histogram(s["m_recoil2"], edges, weights=s["weight"] * lumi)[0] for s in samples.values()
    )
    counts = np.array(
        [np.histogram(draw(samples, lumi, rng)["m_recoil2"], edges)[0] for _ in range(3000)]
    )
    mean, var = counts.mean(axis=0), counts.var(axis=0)
    sel = expected > 5
    np.testing.assert_allclose(mean[sel], expected[sel], rtol=0.03)
    np.testing.assert_allclose(var[sel], expected[sel], rtol=0.12)  # Poisson: variance = mean


def test_injected_signal_scales_to_the_cross_section(rng: np.random.Generator) -> None:
    bkg = {"a": _sample(rng, 1000, 1e-3, 30.0)}
    sig = _sample(rng, 500, 0.04, 4.0)  # selected events; generated cross section 100 fb
    total = 100.0
    n_sig = []
    for _ in range(400):
        d = draw(bkg, 50.0, rng, signal=(sig, total), signal_xsec_fb=2.0)
        n_sig.append(np.sum(d["source"] == 1))
    # expected: sigma x efficiency x L = 2 fb x (500 x 0.04 / 100) x 50 fb^-1 = 20 events
    assert np.mean(n_sig) == pytest.approx(20.0, rel=0.05)
    d0 = draw(bkg, 50.0, rng, signal=(sig, total), signal_xsec_fb=0.0)
    assert not np.any(d0["source"] == 1)
    assert np.all(d0["weight"] == 1.0)


def test_bad_inputs_are_named(rng: np.random.Generator) -> None:
    good = _sample(rng, 10, 1.0, 1.0)
    with pytest.raises(ConfigError, match="luminosity"):
        draw({"a": good}, 0.0, rng)
    bad = dict(good)
    del bad["theta_recoil_cm"]
    with pytest.raises(InputError, match="a: missing column 'theta_recoil_cm'"):
        draw({"a": bad}, 1.0, rng)
    neg = dict(good, weight=-good["weight"])
    with pytest.raises(InputError, match="sample 'a' has negative"):
        draw({"a": neg}, 1.0, rng)


def test_data_detector_ratio_per_interval() -> None:
    from zprime.pseudodata import data_detector_ratio

    rng = np.random.default_rng(5)
    m2 = rng.uniform(0.0, 10.0, 4000)
    w = np.full(m2.size, 0.5)
    # the "data detector" keeps 90% below 5 GeV^2 and every event above (same events)
    keep = (m2 >= 5.0) | (rng.uniform(size=m2.size) < 0.9)
    ratio, per_event = data_detector_ratio(m2, w, m2[keep], w[keep], np.array([0.0, 5.0, 10.0]))
    assert ratio[1] == pytest.approx(1.0)
    assert ratio[0] == pytest.approx(keep[m2 < 5].mean(), rel=1e-12)
    assert np.all(per_event[m2 >= 5] == 1.0)
    # sparse intervals fall back to the sample's overall ratio
    ratio, _ = data_detector_ratio(
        m2[:40], w[:40], m2[:20], w[:20], np.array([0.0, 5.0, 10.0]), min_events=20
    )
    assert np.allclose(ratio, 0.5)
    ratio, _ = data_detector_ratio(
        m2[:40], w[:40], m2[:20], w[:20], np.array([0.0, 5.0, 10.0]), min_events=100
    )
    assert np.allclose(ratio, 1.0)  # too few events for any ratio
    with pytest.raises(ConfigError, match="increasing"):
        data_detector_ratio(m2, w, m2, w, np.array([1.0, 0.0]))


def test_data_detector_samples_choose_events_or_reweighting() -> None:
    from zprime.pseudodata import data_detector_samples

    rng = np.random.default_rng(6)

    def sample(n: int, weight: float) -> dict[str, np.ndarray]:
        return {
            "m_recoil2": rng.uniform(0.0, 10.0, n),
            "theta_recoil_cm": rng.uniform(0.5, 2.5, n),
            "theta_recoil": rng.uniform(0.5, 2.5, n),
            "weight": np.full(n, weight),
        }

    light, heavy = sample(200, 0.1), sample(200, 10.0)  # L*w = 1 and 100 at L = 10
    data = {"light": sample(150, 0.1), "heavy": {**heavy, "weight": heavy["weight"] * 1.2}}
    samples, notes = data_detector_samples(
        {"light": light, "heavy": heavy}, data, 10.0, ratio_edges_gev2=[0.0, 5.0, 10.0]
    )
    assert samples["light"] is not light
    assert len(samples["light"]["weight"]) == 150
    assert np.allclose(samples["heavy"]["weight"], 12.0)  # simulation events, data yield
    assert np.array_equal(samples["heavy"]["m_recoil2"], heavy["m_recoil2"])
    assert "events" in notes[0]
    assert "ratio" in notes[1]
    events, _ = data_detector_samples({"heavy": heavy}, data, 10.0, mode="events")
    assert np.allclose(events["heavy"]["weight"], 12.0)
    with pytest.raises(ConfigError, match="unknown mode"):
        data_detector_samples({"heavy": heavy}, data, 10.0, mode="smooth")


def test_smoothed_bootstrap_spreads_copies_and_respects_boundaries() -> None:
    """With kernel widths, copies of one heavy simulated event follow a Gaussian of that width
    and never cross an inner boundary; the event count is unchanged in distribution."""
    rng = np.random.default_rng(8)
    one = {
        "m_recoil2": np.array([3.9]),
        "theta_recoil_cm": np.array([1.0]),
        "theta_recoil": np.array([1.0]),
        "weight": np.array([20.0]),
    }
    out = draw({"b": one}, 100.0, rng, m2_bandwidth={"b": np.array([0.3])}, m2_edges=[-2, 4, 100])
    m2 = out["m_recoil2"]
    assert m2.size == pytest.approx(2000, abs=5 * np.sqrt(2000))
    assert np.all(m2 <= 4.0)
    assert np.all(m2 >= -2.0)
    free = draw({"b": one}, 100.0, rng, m2_bandwidth={"b": np.array([0.3])}, m2_edges=[-2, 100])
    assert np.mean(free["m_recoil2"]) == pytest.approx(3.9, abs=0.03)
    assert np.std(free["m_recoil2"]) == pytest.approx(0.3, rel=0.08)
    plain = draw({"b": one}, 100.0, np.random.default_rng(8))
    assert np.all(plain["m_recoil2"] == 3.9)
    with pytest.raises(InputError, match="bandwidths"):
        draw({"b": one}, 100.0, rng, m2_bandwidth={"b": np.array([-1.0])})
