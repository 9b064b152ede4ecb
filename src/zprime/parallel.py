"""Mapping work over chunks, mass points or toys with an executor.

Every stage that maps over independent tasks calls :func:`map_tasks`. The executor is local
processes by default; any :class:`concurrent.futures.Executor` works, including the one a
``dask.distributed`` client hands out (``client.get_executor()``). Tasks carry their own seeds
(derived from the master seed and the task index), so results never depend on the executor or on
the number of workers.

:func:`scheduler_executor` turns the ``--scheduler ADDRESS`` of the command line into such an
executor: ``None`` keeps the local process pool, ``"serial"`` runs in this process, ``local:N``
starts a ``dask.distributed.LocalCluster`` of N single-threaded worker processes on this machine,
a ``*.json`` path names a dask scheduler file, and anything else is the address of a running
``dask.distributed`` scheduler (``tcp://host:8786``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from zprime.errors import ConfigError

__all__ = [
    "default_workers",
    "executor_from_address",
    "local_pool",
    "map_tasks",
    "scheduler_executor",
]

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


def _ignore_interrupt() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group, but only the parent acts on
    it (:func:`local_pool` cancels the queued tasks and lets the running ones end), so no
    worker dies half-way or prints a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def local_pool(n_workers: int) -> Iterator[ProcessPoolExecutor]:
    """A local process pool whose workers leave Ctrl-C to the parent and which stops early.

    On success the pool is shut down normally. On any exception (Ctrl-C included) the tasks
    not yet handed to a worker are cancelled and the pool is shut down once the running ones
    (and the one queued behind each) end: an interrupted or failed map stops within about two
    chunks' time instead of running every chunk. The workers are not killed: a worker killed
    while it writes its result into the pool's pipe leaves the pool's result reader waiting
    for the rest of the message for ever (a hang at the shutdown, and again at exit).

    Parameters
    ----------
    n_workers
        Number of worker processes.
    """
    pool = ProcessPoolExecutor(max_workers=n_workers, initializer=_ignore_interrupt)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


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
        with contextlib.ExitStack() as stack:
            pool: Executor = (
                stack.enter_context(local_pool(n_workers)) if executor is None else executor  # type: ignore[assignment]
            )
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.advance(task_id)
    return results


# ---------------------------------------------------------------------------------------------
# dask.distributed


_LOCAL = re.compile(r"^local(?::(\d+))?$")
CONNECT_TIMEOUT_S = 10.0
"""Default time allowed to reach a dask scheduler before giving up."""


def _open_client(address: str, timeout_s: float) -> tuple[Any, Any]:
    """(client, cluster or None) for a ``--scheduler`` address (see :func:`scheduler_executor`)."""
    try:  # lazy: dask.distributed is heavy and only needed with --scheduler
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency of zprime
        raise ConfigError(f"--scheduler {address}: dask.distributed is not installed") from None
    local = _LOCAL.match(address)
    if local:
        n = int(local.group(1) or default_workers())
        if n < 1:
            raise ConfigError(f"--scheduler {address}: the number of workers must be >= 1")
        # single-threaded worker processes: the same isolation as the local process pool; no
        # dashboard (it needs bokeh and a free port)
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        )
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    try:
        if address.endswith(".json"):
            if not Path(address).is_file():
                raise ConfigError(f"--scheduler {address}: scheduler file not found")
            client = Client(scheduler_file=address, timeout=timeout_s)
        else:
            client = Client(address, timeout=timeout_s)
    except ConfigError:
        raise
    except (OSError, TimeoutError, ValueError) as err:
        raise ConfigError(
            f"--scheduler {address}: cannot reach a dask scheduler within {timeout_s:g} s "
            f"({err.__class__.__name__})"
        ) from None
    return client, None


class _DaskExecutor(Executor):
    """A ``dask.distributed`` client's executor that owns the client (and its local cluster)."""

    def __init__(self, client: Any, cluster: Any) -> None:
        self.client = client
        self.cluster = cluster
        # pure=False: every submission is a new task, as in a process pool (no deduplication
        # of equal arguments, no hashing of large ones)
        self._executor: Executor = client.get_executor(pure=False)

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Any:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __repr__(self) -> str:
        return f"<zprime dask executor {self.client.scheduler.address}>"


def executor_from_address(
    address: str | None, *, timeout_s: float = CONNECT_TIMEOUT_S
) -> Executor | str | None:
    """The executor for a ``--scheduler`` address, for :func:`map_tasks`.

    Parameters
    ----------
    address
        ``None`` or ``""``: local processes (returns ``None``); ``"serial"``: this process
        (returns ``"serial"``); ``"local"`` or ``"local:N"``: a new ``LocalCluster`` of N
        (default :func:`default_workers`) single-threaded worker processes; a path ending in
        ``.json``: a dask scheduler file; otherwise the address of a running
        ``dask.distributed`` scheduler, e.g. ``tcp://10.1.2.3:8786``.
    timeout_s
        Time allowed to connect to a remote scheduler.

    Returns
    -------
    concurrent.futures.Executor or str or None
        For dask, an executor whose ``shutdown()`` also closes the client (and the local
        cluster it started). Prefer :func:`scheduler_executor`, which shuts it down for you.

    Raises
    ------
    ConfigError
        One line naming the address when no scheduler answers within ``timeout_s``.
    """
    if address is None or not address.strip():
        return None
    address = address.strip()
    if address == "serial":
        return "serial"
    client, cluster = _open_client(address, timeout_s)
    return _DaskExecutor(client, cluster)


@contextlib.contextmanager
def scheduler_executor(
    address: str | None, *, timeout_s: float = CONNECT_TIMEOUT_S
) -> Iterator[Executor | str | None]:
    """Context manager around :func:`executor_from_address` that closes the dask client (and
    the local cluster) on exit::

        with scheduler_executor("local:2") as ex:
            results = map_tasks(fn, tasks, executor=ex)
    """
    executor = executor_from_address(address, timeout_s=timeout_s)
    try:
        yield executor
    finally:
        if isinstance(executor, Executor):
            executor.shutdown(wait=True)
