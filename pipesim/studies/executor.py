"""Where a study's simulations run: in this process, in a pool of local worker processes, or
on a Dask cluster. One function, one contract: results come back in the order of the inputs,
so a study's output does not depend on where or on how many workers it ran.

Workers get picklable inputs (settings, names) and send back small records, never traces.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from pipesim.errors import ConfigError

In = TypeVar("In")
Out = TypeVar("Out")

DASK_TIMEOUT = 10
"""Seconds to reach a Dask scheduler before giving up with one line."""


Progress = Callable[[str], AbstractContextManager[Any]]
"""(what is being done) -> a context whose value is called (done, total) now and then, or
None: how a workflow reports progress without knowing who shows it."""


def quiet(_: str) -> AbstractContextManager[None]:
    """No progress shown."""
    return nullcontext()


def default_workers() -> int:
    return os.cpu_count() or 1


def run_all(
    work: Callable[[In], Out],
    items: Sequence[In],
    workers: int = 1,
    dask_scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Out]:
    """`work(item)` for every item, in item order. `work` must be a module-level function
    (it is pickled by name) when `workers` > 1 or a Dask scheduler is given."""
    total = len(items)
    if dask_scheduler is not None:
        return _on_dask(work, items, dask_scheduler, progress)
    if workers <= 1 or total <= 1:
        results = []
        for item in items:
            results.append(work(item))
            if progress is not None:
                progress(len(results), total)
        return results
    results_by_index: list[Any] = [None] * total
    chunk = max(1, total // (workers * 8))
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_ignores_ctrl_c)
    try:
        for index, result in enumerate(pool.map(work, items, chunksize=chunk)):
            results_by_index[index] = result
            if progress is not None:
                progress(index + 1, total)
    except BaseException:
        # Ctrl-C (or a failure): stop now, not when every queued item is done; the workers
        # are mid-task, so they are ended rather than waited for.
        _stop(pool)
        raise
    pool.shutdown()
    return results_by_index


def _worker_ignores_ctrl_c() -> None:
    """A worker leaves Ctrl-C to the parent, which ends it (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End a pool at once: cancel what is queued, terminate the workers."""
    # The pool keeps its processes private; without them a worker mid-task runs to its end.
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(timeout=5)


def _on_dask(
    work: Callable[[In], Out],
    items: Sequence[In],
    address: str,
    progress: Callable[[int, int], None] | None,
) -> list[Out]:
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigError(
            "--dask-scheduler needs dask.distributed: pip install 'pipesim[dask]'"
        ) from None
    _reachable(address)
    try:
        client = Client(address, timeout=DASK_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ConfigError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    try:
        futures = client.map(work, list(items), pure=False)
        results: list[Any] = []
        # In submission order: each result is waited for in turn, so the progress counts
        # the finished prefix and the output keeps the order of the inputs.
        for future in futures:
            results.append(future.result())
            if progress is not None:
                progress(len(results), len(futures))
        return results
    finally:
        client.close()


def _reachable(address: str) -> None:
    """Refuse at once a TCP scheduler nobody listens on (Dask itself retries until its
    timeout); other transports (inproc://, tls://) are left to Dask."""
    if "://" in address and not address.startswith("tcp://"):
        return
    target = address.removeprefix("tcp://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--dask-scheduler {address}: expected tcp://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=DASK_TIMEOUT).close()
    except OSError as error:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address}: {error.strerror or error}"
        ) from None
