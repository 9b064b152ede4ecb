from __future__ import annotations

import signal
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import awkward as ak
import cloudpickle
import numpy as np
import pytest

from zprime._util import chunk_rng
from zprime.detector.simulation import simulate
from zprime.errors import ConfigError
from zprime.generators.backgrounds import generate_sample
from zprime.generators.signal import write_signal
from zprime.io.events import read_events
from zprime.parallel import executor_from_address, map_tasks, scheduler_executor


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


# ---------------------------------------------------------------------------------------------
# dask.distributed (issue 8: --scheduler)


def _simulate_chunk(task: tuple[int, ak.Array]) -> ak.Array:
    """Detector simulation of one chunk with its own seed (as simulate_file does per batch)."""
    index, events = task
    return simulate(events, "simulation", chunk_rng(11, 4, index))


def _buffers(array: ak.Array) -> tuple[object, dict[str, bytes]]:
    form, length, buffers = ak.to_buffers(ak.to_packed(array))
    return (form.to_dict(), length), {k: bytes(memoryview(v)) for k, v in buffers.items()}


def _run_chain(executor: object, workers: int | None, out: Path) -> dict[str, ak.Array]:
    """Seeded chunked generation (signal, a QED background) and detector simulation."""
    sig = write_signal(
        2.0, 1200, out, seed=5, chunk_size=300, executor=executor, workers=workers, progress=False
    )
    ee = generate_sample(
        "ee", 1200, out, seed=3, chunk_size=300, executor=executor, workers=workers, progress=False
    )
    events = read_events(sig)
    chunks = [(i, events[i : i + 300]) for i in range(0, len(events), 300)]
    reco = map_tasks(_simulate_chunk, chunks, executor=executor, workers=workers, progress=False)
    return {"signal": events, "ee": read_events(ee), "reco": ak.concatenate(reco)}


def test_dask_local_cluster_gives_identical_results(tmp_path: Path) -> None:
    # the test module's functions travel by value to the dask workers (not importable there)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with scheduler_executor("local:2") as ex:
            assert isinstance(ex, Executor)
            dask = _run_chain(ex, None, tmp_path / "dask")
            ordered = map_tasks(partial(_draw, 42), range(8), executor=ex, progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    serial = _run_chain("serial", None, tmp_path / "serial")
    pooled = _run_chain(None, 2, tmp_path / "pool")
    assert ordered == [_draw(42, i) for i in range(8)]  # task order kept
    for key, ref in serial.items():
        assert len(ref) > 0
        assert _buffers(dask[key]) == _buffers(ref), key
        assert _buffers(pooled[key]) == _buffers(ref), key
    assert len(serial["reco"]) == 1200
    assert len(serial["ee"]) > 0


def test_unreachable_scheduler_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match=r"tcp://127\.0\.0\.1:9: cannot reach") as err:
        executor_from_address("tcp://127.0.0.1:9", timeout_s=1.0)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="scheduler file not found"):
        executor_from_address("/nonexistent/scheduler.json")
    with pytest.raises(ConfigError, match="number of workers"):
        executor_from_address("local:0")


def test_address_shorthands() -> None:
    assert executor_from_address(None) is None
    assert executor_from_address("  ") is None
    assert executor_from_address("serial") == "serial"
    with scheduler_executor(None) as ex:
        assert ex is None


def _slow_or_fail(args: tuple[int, str]) -> int:
    """Task 0 fails at once; the others take a second each and leave a mark."""
    i, folder = args
    if i == 0:
        raise ValueError("task 0 failed")
    time.sleep(1.0)
    Path(folder, f"ran_{i}").touch()
    return i


def test_a_failed_task_cancels_the_queued_ones(tmp_path: Path) -> None:
    """A failed (or interrupted) map stops within about two tasks' time: only the tasks already
    handed to a worker run, not the other 39 (20 s); no worker is killed mid-task (a killed
    worker can leave the pool's result reader hung: see local_pool)."""
    t0 = time.monotonic()
    tasks = [(i, str(tmp_path)) for i in range(40)]
    with pytest.raises(ValueError, match="task 0 failed"):
        map_tasks(_slow_or_fail, tasks, workers=2, progress=False)
    assert time.monotonic() - t0 < 10.0
    assert len(list(tmp_path.glob("ran_*"))) <= 6


def _interrupt_disposition(_: int) -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_workers_leave_ctrl_c_to_the_parent() -> None:
    """A terminal's Ctrl-C reaches every process of the group: workers ignore it (no traceback
    of their own), the parent stops them."""
    assert all(map_tasks(_interrupt_disposition, range(2), workers=2, progress=False))
