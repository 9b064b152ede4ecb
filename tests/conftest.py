"""Shared fixtures of the zprime test suite."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: every test is deterministic."""
    return np.random.default_rng(12345)


#: the test files that take minutes (measured with ``--durations``), longest first. ``make test``
#: runs pytest-xdist's ``--dist loadfile`` with ``--no-loadscope-reorder``, which hands out the
#: files in collection order: these go first, so that no long file starts last and runs alone
#: while the other worker idles (it did: 732 s instead of about 560 s on two cores).
HEAVY_FIRST = (
    "tests/pipeline/test_quick_run.py",
    "tests/pipeline/test_pipeline.py",
    "tests/generators/test_gen_fourfermion.py",
    "tests/analyses/dark_higgsstrahlung/test_pipeline.py",
    "tests/detector/test_realdata.py",
    "tests/analyses/tautau_resonance/test_pipeline.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collect the :data:`HEAVY_FIRST` files first (stable: the rest keep their order)."""
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
