from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from zprime.errors import ConfigError, InputError
from zprime.stats.pseudodata import draw, event_counts

COLS = ("m_recoil2", "theta_recoil_cm", "theta_recoil")


def _sample(rng: np.random.Generator, n: int, weight: float, centre: float) -> dict:
    return {
        "m_recoil2": rng.normal(centre, 1.0, n),
        "theta_recoil_cm": rng.uniform(0, np.pi, n),
        "theta_recoil": rng.uniform(0, np.pi, n),
        "weight": np.full(n, weight),
    }


def test_bin_counts_are_poisson_with_the_expected_means(rng: np.random.Generator) -> None:
    # a fresh generated sample each time (a Poisson process of weighted events standing for 4x
    # the luminosity), thinned to unit weight: the data's bin counts must be Poisson with the
    # expected means, as real data's are
    lumi = 100.0
    edges = np.linspace(5, 20, 7)
    counts = []
    for _ in range(3000):
        a = _sample(rng, rng.poisson(2000), 0.0025, 10.0)  # L w = 0.25
        b = _sample(rng, rng.poisson(800), 0.001, 14.0)  # L w = 0.1
        counts.append(
            np.histogram(draw({"a": a, "b": b}, lumi, rng, columns=COLS)["m_recoil2"], edges)[0]
        )
    counts_arr = np.array(counts)
    expected = 2000 * 0.25 * (
        norm.cdf(edges[1:], 10, 1) - norm.cdf(edges[:-1], 10, 1)
    ) + 800 * 0.1 * (norm.cdf(edges[1:], 14, 1) - norm.cdf(edges[:-1], 14, 1))
    mean, var = counts_arr.mean(axis=0), counts_arr.var(axis=0)
    sel = expected > 5
    np.testing.assert_allclose(mean[sel], expected[sel], rtol=0.03)
    np.testing.assert_allclose(var[sel], expected[sel], rtol=0.12)  # Poisson: variance = mean


def test_light_events_enter_at_most_once_and_heavy_ones_by_their_weight() -> None:
    rng = np.random.default_rng(3)
    x = np.array([0.0, 0.3, 1.0, 2.5, 7.0])
    k = np.array([event_counts(x, rng) for _ in range(20000)])
    np.testing.assert_allclose(k.mean(axis=0), x, atol=0.02)
    assert set(np.unique(k[:, 1])) == {0, 1}
    assert np.all(k[:, 2] == 1)
    assert np.all(k[:, 4] == 7)
    assert set(np.unique(k[:, 3])) == {2, 3}
    sample = _sample(rng, 1000, 0.004, 10.0)  # L w = 0.4
    stats: dict = {}
    out = draw({"a": sample}, 100.0, rng, columns=COLS, stats=stats)
    _, repeats = np.unique(out["m_recoil2"], return_counts=True)
    assert repeats.max() == 1  # no event used twice
    assert stats["a"]["expected"] == pytest.approx(400.0)
    assert stats["a"]["heavy_events"] == 0
    heavy = dict(sample, weight=np.where(np.arange(1000) < 3, 0.05, 0.004))  # 3 events: L w = 5
    draw({"a": heavy}, 100.0, rng, columns=COLS, stats=stats)
    assert stats["a"]["heavy_events"] == 3
    assert stats["a"]["heavy_expected"] == pytest.approx(15.0)
    with pytest.raises(InputError, match="finite"):
        event_counts(np.array([np.nan]), rng)


def test_injected_signal_scales_to_the_cross_section(rng: np.random.Generator) -> None:
    bkg = {"a": _sample(rng, 1000, 1e-3, 30.0)}
    sig = _sample(rng, 500, 0.04, 4.0)  # selected events; generated cross section 100 fb
    total = 100.0
    n_sig = []
    for _ in range(400):
        d = draw(bkg, 50.0, rng, columns=COLS, signal=(sig, total), signal_xsec_fb=2.0)
        n_sig.append(np.sum(d["source"] == 1))
    # expected: sigma x efficiency x L = 2 fb x (500 x 0.04 / 100) x 50 fb^-1 = 20 events
    assert np.mean(n_sig) == pytest.approx(20.0, rel=0.05)
    d0 = draw(bkg, 50.0, rng, columns=COLS, signal=(sig, total), signal_xsec_fb=0.0)
    assert not np.any(d0["source"] == 1)
    assert np.all(d0["weight"] == 1.0)


def test_bad_inputs_are_named(rng: np.random.Generator) -> None:
    good = _sample(rng, 10, 1.0, 1.0)
    with pytest.raises(ConfigError, match="luminosity"):
        draw({"a": good}, 0.0, rng, columns=COLS)
    bad = dict(good)
    del bad["theta_recoil_cm"]
    with pytest.raises(InputError, match="a: missing column 'theta_recoil_cm'"):
        draw({"a": bad}, 1.0, rng, columns=COLS)
    neg = dict(good, weight=-good["weight"])
    with pytest.raises(InputError, match="sample 'a' has negative"):
        draw({"a": neg}, 1.0, rng, columns=COLS)


def test_the_candidates_of_one_event_enter_together(rng: np.random.Generator) -> None:
    """``group_by``: the rows of one event (consecutive, equal ids) are drawn once, all or
    none, heavy events by their weight; the count per event keeps its mean."""
    n_ev = 4000
    mult = rng.integers(1, 4, n_ev)  # 1-3 candidates per event
    event = np.repeat(np.arange(n_ev), mult).astype(float)
    w = np.repeat(np.where(np.arange(n_ev) % 2 == 0, 0.003, 0.025), mult)  # L w = 0.3, 2.5
    sample = {"event": event, "m_recoil2": rng.normal(5.0, 1.0, event.size), "weight": w}
    out = draw({"a": sample}, 100.0, rng, columns=("event", "m_recoil2"), group_by="event")
    ids, rows = np.unique(out["event"], return_counts=True)
    # every drawn event brings k times all of its candidates, k = 1 or (heavy) 2-3
    k = rows / mult[ids.astype(int)]
    assert np.all(k == np.round(k))
    light = ids.astype(int) % 2 == 0
    assert set(np.unique(k[light])) == {1}
    assert set(np.unique(k[~light])) == {2, 3}
    assert rows.sum() == out["m_recoil2"].size
    # the mean number of events: 0.3 x 2000 + 2.5 x 2000
    assert k.sum() == pytest.approx(0.3 * n_ev / 2 + 2.5 * n_ev / 2, rel=0.03)
    with pytest.raises(ConfigError, match="group_by column 'run'"):
        draw({"a": sample}, 1.0, rng, columns=("event",), group_by="run")
