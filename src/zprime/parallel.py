"""Mapping work over chunks, mass points or toys with an executor.

Every stage that maps over independent tasks calls :func:`map_tasks`. The executor is local
processes by default; any :class:`concurrent.futures.Executor` works, including the one a
``dask.distributed`` client hands out (``client.get_executor()``). Tasks carry their own seeds
(derived from the master seed and the task index), so results never depend on the executor or on
the number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["default_workers", "map_tasks"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Number of local worker processes: ``ZPRIME_WORKERS`` or the number of usable cores."""
    env = os.environ.get("ZPRIME_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _progress(description: str | None, total: int, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled or description is None,
        transient=False,
    )


def map_tasks(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    *,
    executor: Executor | str | None = None,
    workers: int | None = None,
    description: str | None = None,
    progress: bool = True,
) -> list[R]:
    """Apply ``fn`` to every task and return the results in task order.

    Parameters
    ----------
    fn
        A picklable function of one argument (a module-level function or ``functools.partial``).
    tasks
        The arguments, one per task.
    executor
        ``None`` for a local process pool, ``"serial"`` to run in this process, or any
        ``concurrent.futures.Executor`` (e.g. ``dask.distributed.Client(...).get_executor()``).
    workers
        Pool size when zprime makes the pool (default :func:`default_workers`).
    description
        Label of the rich progress bar; ``None`` hides the bar.
    progress
        Show the progress bar (on stderr).
    """
    items: Sequence[T] = list(tasks)
    n = len(items)
    results: list[Any] = [None] * n
    with _progress(description, n, progress) as bar:
        task_id = bar.add_task(description or "", total=n)
        n_workers = workers or default_workers()
        if executor == "serial" or (executor is None and (n_workers == 1 or n <= 1)):
            for i, item in enumerate(items):
                results[i] = fn(item)
                bar.advance(task_id)
            return results
        own = executor is None
        pool: Executor = ProcessPoolExecutor(max_workers=n_workers) if own else executor  # type: ignore[assignment]
        try:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.advance(task_id)
        finally:
            if own:
                pool.shutdown(wait=True, cancel_futures=True)
    return results
