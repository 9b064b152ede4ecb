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
