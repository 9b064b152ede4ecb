from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from zprime._util import chunk_rng
from zprime.parallel import map_tasks


def _draw(seed: int, index: int) -> float:
    return float(chunk_rng(seed, index).random())


def test_results_do_not_depend_on_the_executor() -> None:
    fn = partial(_draw, 42)
    serial = map_tasks(fn, range(6), executor="serial", progress=False)
    pooled = map_tasks(fn, range(6), workers=2, progress=False)
    with ThreadPoolExecutor(3) as ex:
        threaded = map_tasks(fn, range(6), executor=ex, progress=False)
    assert serial == pooled == threaded
    assert len(set(serial)) == 6  # distinct streams per chunk


def test_chunk_rng_is_keyed() -> None:
    a = chunk_rng(1, 2, 3).random(3)
    b = chunk_rng(1, 2, 3).random(3)
    c = chunk_rng(1, 3, 2).random(3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
