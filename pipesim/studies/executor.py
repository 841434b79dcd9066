"""Where a study's simulations run: in this process, in a pool of local worker processes, or
on a Dask cluster. One function, one contract: results come back in the order of the inputs,
so a study's output does not depend on where or on how many workers it ran.

Workers get picklable inputs (settings, names) and send back small records, never traces.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pipesim.errors import ConfigError
from pipesim.simulator.gc_pause import cyclic_gc_paused

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

In = TypeVar("In")
Out = TypeVar("Out")

DASK_TIMEOUT = 20.0
"""Seconds to reach a Dask scheduler, and then to wait for its first worker, before giving
up with one line (`--dask-timeout`)."""


class DaskCluster(NamedTuple):
    """A Dask scheduler to run on, and how long to wait for it."""

    address: str
    """tcp://host:port (or host:port)."""
    timeout: float = DASK_TIMEOUT
    """Seconds to connect, and then to wait for a first worker."""


def dask_cluster(
    address: str, timeout: float = DASK_TIMEOUT, in_process: bool = False
) -> DaskCluster:
    """The cluster at `address`, its form checked now (before any simulation): Dask only
    reports a bad address after its own timeout, or with a MemoryError for some. With
    `in_process` (from Python), a LocalCluster's inproc:// address is taken too.

    Raises:
        ConfigError: not tcp://host:port, or a timeout that is not a positive number of seconds.
    """
    if not (isinstance(timeout, int | float) and 0 < timeout <= 3600):
        raise ConfigError(f"--dask-timeout must be 0 < seconds <= 3600, got {timeout!r}")
    scheme, separator, target = address.partition("://")
    if not separator:
        scheme, target = "tcp", address
    if scheme == "inproc" and in_process:
        return DaskCluster(address, timeout)
    if scheme != "tcp":
        raise ConfigError(
            f"--dask-scheduler {address}: pipesim connects over tcp://host:port only"
            + (" (tls:// needs certificates it cannot pass)" if scheme == "tls" else "")
        )
    host, _, port = target.rpartition(":")
    if not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--dask-scheduler {address}: expected tcp://host:port")
    return DaskCluster(f"tcp://{target}", timeout)


Where = DaskCluster | str | None
"""Where a study runs beyond this machine's pool: a Dask cluster (or its address), or None."""


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
    dask_scheduler: Where = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Out]:
    """`work(item)` for every item, in item order. `work` must be a module-level function
    (it is pickled by name) when `workers` > 1 or a Dask scheduler is given."""
    total = len(items)
    if dask_scheduler is not None:
        cluster = (
            dask_scheduler
            if isinstance(dask_scheduler, DaskCluster)
            else dask_cluster(dask_scheduler, in_process=True)
        )
        return _on_dask(work, items, cluster, progress)
    if workers <= 1 or total <= 1:
        results = []
        for item in items:
            results.append(_one(work, item))
            if progress is not None:
                progress(len(results), total)
        return results
    batches = _batches(total, workers * BATCHES_PER_WORKER)
    # Imported here: multiprocessing is a tenth of a run's start-up, and most runs use no pool.
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_start_worker)
    try:
        found = pool.map(_run_batch, repeat(work), _batch_items(items, batches))
        results = _in_place(batches, found, progress)
    except BaseException:
        # Ctrl-C (or a failure): stop now, not when every queued item is done; the workers
        # are mid-task, so they are ended rather than waited for.
        _stop(pool)
        raise
    pool.shutdown()
    return results


def _start_worker() -> None:
    """A worker leaves Ctrl-C to the parent, which ends it, and dies quietly of the SIGTERM
    that ending it sends (forked, it inherits the CLI's handler, which raises `Terminated`:
    each worker printed a traceback). It collects cycles after each item (`_one`) even when
    it was forked while its parent had paused the collector (a program that runs a study
    inside its own `cyclic_gc_paused`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.enable()


def _stop(pool: ProcessPoolExecutor) -> None:
    """End a pool at once: cancel what is queued, terminate the workers."""
    # The pool keeps its processes private; without them a worker mid-task runs to its end.
    workers = list((getattr(pool, "_processes", None) or {}).values())
    # The pool's manager thread closes its wake-up pipe as it ends; the interpreter's exit
    # hook writes to that pipe without the pool's lock, so if the two cross, Python 3.11
    # prints a traceback ("Bad file descriptor") after the one line Ctrl-C gives. It is
    # waited for below; shutdown forgets it, so it is taken first.
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(timeout=5)
    if manager is not None:
        manager.join(timeout=5)


def _on_dask(
    work: Callable[[In], Out],
    items: Sequence[In],
    cluster: DaskCluster,
    progress: Callable[[int, int], None] | None,
) -> list[Out]:
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigError(
            "--dask-scheduler needs dask.distributed: pip install 'pipesim[dask]'"
        ) from None
    client = _client(cluster, Client)
    try:
        batches = _batches(len(items), _threads(client) * BATCHES_PER_WORKER)
        futures = client.map(
            _run_batch_on_dask, [work] * len(batches), _batch_items(items, batches), pure=False
        )
        # each batch waited for in turn
        return _in_place(batches, (future.result() for future in futures), progress)
    except BaseException:
        _close_clients()  # a failure or Ctrl-C leaves no task running for us
        raise


def _run_batch_on_dask(work: Callable[[In], Out], batch: list[In]) -> list[Out]:
    """One Dask task: `_run_batch` with the worker's statistical profiler stopped. Every
    10 ms it walks the running task's stack and looks up each frame's source line, on the
    worker's own thread: during a Monte Carlo of 400 runs that thread took 8.4-8.5% of the
    task's CPU time, 5.8-5.9% without the profiler, time the tasks lose on a machine they
    fill. The worker itself starts it again when its last pipesim task ends, whatever
    becomes of the client that sent it."""
    with _profiler_stopped():
        return _run_batch(work, batch)


_PROFILER = ("profile", "profile-cycle")
"""A Dask worker's periodic callbacks that sample the stacks of its tasks and roll them up."""

_profiling: dict[int, tuple[int, list[Any]]] = {}
"""Per Dask worker of this process (by id), while pipesim tasks run on it: how many, and the
profiler callbacks the first of them stopped."""
_profiling_lock = threading.Lock()


@contextlib.contextmanager
def _profiler_stopped() -> Iterator[None]:
    """In a Dask task: the first of pipesim's tasks running on the worker stops the profiler
    callbacks that run, and the last to end starts them again. Callbacks run on the worker's
    event loop, so each change is made there, in order: which ones run is read after any
    start still pending, and the task's work waits until they are stopped."""
    from distributed import get_worker

    worker = get_worker()
    with _profiling_lock:
        running, stopped = _profiling.get(id(worker), (0, []))
        _profiling[id(worker)] = (running + 1, stopped)
    if not running:
        done = threading.Event()

        def stop() -> None:
            callbacks = getattr(worker, "periodic_callbacks", {})
            for name in _PROFILER:
                callback = callbacks.get(name)
                if callback is not None and callback.is_running():
                    callback.stop()
                    stopped.append(callback)
            done.set()

        worker.loop.add_callback(stop)
        done.wait(timeout=5)
    try:
        yield
    finally:
        with _profiling_lock:
            running, stopped = _profiling.pop(id(worker))
            if running > 1:
                _profiling[id(worker)] = (running - 1, stopped)
            else:
                worker.loop.add_callback(lambda: [callback.start() for callback in stopped])


_clients: dict[DaskCluster, Any] = {}
"""The connection to each cluster, kept for the process: a plan runs several rounds of tasks
(screening, then simulating in batches), and connecting each time cost about a second."""


def _client(cluster: DaskCluster, client_class: Any) -> Any:
    """A connected client with a worker, made once per cluster and closed at exit."""
    client = _clients.get(cluster)
    if client is not None:
        return client
    address, timeout = cluster
    if address.startswith("tcp://"):
        _reachable(cluster)
    try:
        client = client_class(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s: {error}"
        ) from None
    except Exception as error:
        raise ConfigError(
            f"{address} did not answer as a Dask scheduler: {type(error).__name__}"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise ConfigError(
            f"the Dask scheduler at {address} has no worker after {timeout:g} s "
            "(start one: dask worker ADDRESS; or wait longer: --dask-timeout)"
        ) from None
    if not _clients:
        atexit.register(_close_clients)
    _clients[cluster] = client
    return client


def _close_clients() -> None:
    while _clients:
        _, client = _clients.popitem()
        with contextlib.suppress(Exception):
            client.close()


def _threads(client: Any) -> int:
    """The worker threads of the cluster (at least one)."""
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(worker.get("nthreads", 1)) for worker in workers.values()))


BATCHES_PER_WORKER = 8
"""Tasks per local worker or Dask worker thread. Enough that the last task to end leaves the
others idle for little: with 4 per Dask thread, one of two workers ended 0.9 s (a task's
work) after the other in a 4.9 s plan. Few enough that scheduling costs little: a Dask task
costs about 8 ms, and one task per item made a plan twice as slow as the local pool."""


def _batches(total: int, count: int) -> list[range]:
    """The indices of `total` items in `count` batches (fewer if there are fewer items), each
    taking every so many items (batch j: j, j + count, ...): neighbouring items of a study
    cost alike (a plan lists its configurations by pipeline depth), and contiguous batches
    left one of two workers with three times the other's work."""
    count = max(1, min(total, count))
    return [range(start, total, count) for start in range(count) if start < total]


def _batch_items(items: Sequence[In], batches: list[range]) -> list[list[In]]:
    return [[items[index] for index in batch] for batch in batches]


def _run_batch(work: Callable[[In], Out], batch: list[In]) -> list[Out]:
    """One task, on a local worker or on Dask: `work` over a batch of items, in order."""
    return [_one(work, item) for item in batch]


def _one(work: Callable[[In], Out], item: In) -> Out:
    """`work(item)` with the cycle collector paused until it returns: a study's item builds
    a trace, keeps a few figures and drops the rest, so a collection when the item is done
    finds almost nothing alive, where one in its middle (as each pause inside a simulation
    and its analysis ends) scans the whole trace. A plan's simulated configurations took a
    quarter less time. Cyclic garbage is collected as usual after the item."""
    with cyclic_gc_paused():
        return work(item)


def _in_place(
    batches: list[range],
    found: Iterable[list[Out]],
    progress: Callable[[int, int], None] | None,
) -> list[Out]:
    """Each batch's results (`found`, batch by batch) put back in their items' places, so the
    output keeps the order of the inputs; `progress` counts the items done."""
    total = sum(map(len, batches))
    results: list[Any] = [None] * total
    done = 0
    for batch, batch_results in zip(batches, found, strict=True):
        for index, result in zip(batch, batch_results, strict=True):
            results[index] = result
            done += 1
            if progress is not None:
                progress(done, total)
    return results


def _reachable(cluster: DaskCluster) -> None:
    """Refuse at once, and within the timeout, an address where no Dask scheduler answers:
    Dask itself retries a closed port until its timeout, waits forever on a server that says
    nothing, and takes an HTTP server's reply for a frame length (a MemoryError). A scheduler
    speaks first: a length-prefixed handshake naming its pickle protocol."""
    address, timeout = cluster
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    deadline = time.monotonic() + timeout
    try:
        connection = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError as error:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address}: {error.strerror or error}"
        ) from None
    heard = b""
    with connection:
        try:
            while len(heard) < 8 or len(heard) < 8 + min(_HANDSHAKE_MAX, _length(heard)):
                connection.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = connection.recv(4096)
                if not chunk:
                    break
                heard += chunk
        except TimeoutError:
            raise ConfigError(
                f"{address} did not answer as a Dask scheduler within {timeout:g} s "
                "(it took the connection and said nothing)"
            ) from None
        except OSError as error:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {address}: {error.strerror or error}"
            ) from None
    if not heard:
        raise ConfigError(f"{address} closed the connection without answering as a Dask scheduler")
    if b"pickle-protocol" not in heard:
        raise ConfigError(f"{address} is not a Dask scheduler: it answered {heard[:24]!r}")


_HANDSHAKE_MAX = 1 << 16
"""More than a scheduler's handshake (about 60 bytes): read no further."""


def _length(heard: bytes) -> int:
    return int.from_bytes(heard[:8], "little")
