"""A --dask-scheduler that is not a working scheduler: one line, exit 2, within the timeout.

Each case is a fake server on 127.0.0.1 (a closed port, an HTTP-like server, one that takes
the connection and says nothing, a real scheduler with no worker), tried from `plan`,
`compare --runs` and `run --runs` alike.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

# Each test waits on a connection, a server or a timeout: slow (pytest --slow, or CI, runs them).
pytestmark = pytest.mark.slow

PIPESIM = [sys.executable, "-m", "pipesim"]
COMMANDS = {
    "plan": ["plan", "--model", "llama3-8b", "--gpu", "h100", "-p", "2",
             "--global-batch-size", "64"],
    "compare": ["compare", "-p", "4", "-m", "8", "--runs", "4", "--jitter", "0.1"],
    "run": ["run", "-p", "4", "-m", "8", "--runs", "4", "--jitter", "0.1"],
}  # fmt: skip


@contextlib.contextmanager
def _server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback server that hands each connection to `answer`; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            answer(connection)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes accept(): close alone leaves it listening
        listener.close()
        for connection in held:
            connection.close()


def _pipesim(command: str, address: str, timeout: float = 2.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PIPESIM, *COMMANDS[command], "--dask-scheduler", address, "--dask-timeout", str(timeout)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _one_line(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("pipesim: error: ")
    assert words in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("garbage", "expected tcp://host:port"),
        ("inproc:", "expected tcp://host:port"),
        ("tcp://1", "expected tcp://host:port"),
        ("tcp://127.0.0.1:99999", "expected tcp://host:port"),
        ("tls://1", "tcp://host:port only (tls:// needs certificates"),
        ("ucx://1", "tcp://host:port only"),
        ("garbage://x", "tcp://host:port only"),
    ],
)
def test_an_address_of_the_wrong_form_is_refused_before_anything_runs(
    address: str, words: str
) -> None:
    started = time.monotonic()
    _one_line(_pipesim("compare", address, timeout=30), words)
    assert time.monotonic() - started < 20  # no connection was tried (Dask's took 20 s)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_closed_port_is_one_line(command: str) -> None:
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))  # a port of ours that nobody listens on
    port = unused.getsockname()[1]
    _one_line(_pipesim(command, f"tcp://127.0.0.1:{port}"), "cannot reach the Dask scheduler")
    unused.close()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_server_that_says_nothing_is_one_line_within_the_timeout(command: str) -> None:
    with _server(lambda connection: None) as port:
        done = _pipesim(command, f"127.0.0.1:{port}", timeout=1.5)
    _one_line(done, "did not answer as a Dask scheduler within 1.5 s")


def test_a_server_that_closes_at_once_is_one_line() -> None:
    with _server(lambda connection: connection.close()) as port:
        done = _pipesim("run", f"tcp://127.0.0.1:{port}")
    _one_line(done, "closed the connection without answering as a Dask scheduler")


def test_a_server_that_speaks_another_protocol_is_one_line() -> None:
    def http(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        connection.close()

    with _server(http) as port:
        done = _pipesim("plan", f"tcp://127.0.0.1:{port}")
    _one_line(done, "is not a Dask scheduler: it answered b'HTTP/1.0 400 Bad Request")


def test_a_scheduler_without_workers_is_one_line_after_the_timeout() -> None:
    pytest.importorskip("dask.distributed")
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(600):  # its start-up, bounded
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        done = _pipesim("compare", f"tcp://127.0.0.1:{port}", timeout=2)
    finally:
        scheduler.terminate()
        scheduler.wait(30)
    _one_line(done, "has no worker after 2 s (start one: dask worker ADDRESS")
