"""Other work on the machine while a benchmark runs: `--busy N` keeps N processes spinning, as
on a loaded shared machine, so that a study's speed-up from its workers can be measured where
they compete for the cores (issue 30: never below one process)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def busy(count: int) -> Iterator[None]:
    """`count` processes spinning for as long as the block runs. They are reaped only after
    it, so the CPU time that `cpu_time.cpu_seconds` counts inside it is not theirs."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
