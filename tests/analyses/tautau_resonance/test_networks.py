"""Tests of the range classifiers (zprime.analyses.tautau_resonance.networks) on toy samples:
they separate what is separable, are deterministic, find the Punzi working point of a known
case, and save and load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from zprime.analyses.tautau_resonance.networks import (
    DEFAULT_EDGES,
    load,
    punzi_working_point,
    save,
    train_range,
)
from zprime.errors import ConfigError, InputError

FEATS = ("f0", "f1", "f2")


def _toy(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = rng.normal([1.0, 0.5, 0.0], 0.6, (3000, 3))
    xb = rng.normal([-1.0, -0.5, 0.0], 0.6, (6000, 3))
    return xs, np.full(3000, 1.0 / 3000), xb, np.full(6000, 0.05)


def test_ranges_cover_the_scan() -> None:
    assert len(DEFAULT_EDGES) == 9
    assert DEFAULT_EDGES[0] == 3.6
    assert DEFAULT_EDGES[-1] == 10.0


def test_separates_and_is_deterministic(tmp_path: Path) -> None:
    xs, ws, xb, wb = _toy()
    a = train_range((4.0, 5.0), FEATS, xs, ws, xb, wb, epochs=15, seed=3)
    b = train_range((4.0, 5.0), FEATS, xs, ws, xb, wb, epochs=15, seed=3)
    ps, pb = a.predict(xs), a.predict(xb)
    np.testing.assert_array_equal(ps, b.predict(xs))
    # the two Gaussians overlap little along (1, 0.5): the classifier ranks them
    auc = np.mean(ps[:, None] > pb[None, :2000])
    assert auc > 0.95
    assert 0.0 <= a.cut < 1.0
    assert a.passes(xs).mean() > a.passes(xb).mean()
    path = save(a, tmp_path / "r.pt")
    back = load(path)
    np.testing.assert_allclose(back.predict(xs), ps, rtol=1e-6)
    assert back.cut == a.cut
    assert back.features == FEATS


def test_punzi_working_point_of_a_known_case() -> None:
    # signal at score 0.9, background half at 0.2 (100 events) and half at 0.95 (100 events):
    # cutting between 0.2 and 0.9 keeps eps = 1 with B = 100 -> fom 1 / 11.5; cutting above
    # 0.9 keeps eps = 0 -> 0; no cut: eps = 1, B = 200 -> 1 / 15.6
    s = np.full(10, 0.9)
    b = np.concatenate([np.full(10, 0.2), np.full(10, 0.95)])
    cut, fom = punzi_working_point(s, np.ones(10), b, np.full(20, 10.0))
    assert 0.2 <= cut < 0.9
    assert fom == pytest.approx(1.0 / (1.5 + math.sqrt(100.0)))


def test_bad_input() -> None:
    xs, ws, xb, wb = _toy()
    with pytest.raises(InputError, match="features"):
        train_range((4.0, 5.0), FEATS, xs[:, :2], ws, xb, wb)
    bad = xb.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        train_range((4.0, 5.0), FEATS, xs, ws, bad, wb)
    with pytest.raises(ConfigError, match="increase"):
        train_range((5.0, 4.0), FEATS, xs, ws, xb, wb)
    with pytest.raises(InputError, match="no such"):
        load(Path("/nonexistent/x.pt"))
