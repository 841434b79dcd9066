"""Speed of Monte Carlo runs: p=8, m=32 under 1F1B and ZB-V with 10% jitter. Not a test.

    python benchmarks/monte_carlo_bench.py [--runs N] [--workers N] [--busy N]

Prints runs per second on all cores (default: the CPU count), the CPU time, and, measured in
the same process as the reference, the runs one after another in one process. With `--busy
N`, N processes spin on the cores meanwhile, as on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import time

from busy import busy  # benchmarks/busy.py
from cpu_time import cpu_seconds  # benchmarks/cpu_time.py

from pipesim import Settings
from pipesim.studies.executor import default_workers
from pipesim.studies.monte_carlo import monte_carlo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--busy", type=int, default=0, help="processes spinning meanwhile")
    args = parser.parse_args()
    print(
        f"CPU cores {os.cpu_count()}, workers {args.workers}, {args.runs} runs per policy, "
        f"{args.busy} processes spinning"
    )
    with busy(args.busy):
        measure(args.runs, args.workers)


SETTINGS = Settings(stages=8, microbatches=32, jitter=0.1, seed=1)


def pooled_and_alone(policy: str, runs: int, workers: int) -> tuple[float, float, float, float]:
    """Wall seconds of `runs` runs of `policy` on `workers` workers, the CPU seconds of that
    (this process and its workers), wall seconds of the same runs in this process, and the
    p95 makespan."""
    cpu = cpu_seconds()
    started = time.perf_counter()
    (pooled,) = monte_carlo(SETTINGS, [policy], runs, workers)
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    started = time.perf_counter()
    (serial,) = monte_carlo(SETTINGS, [policy], runs, 1)
    reference = time.perf_counter() - started
    assert pooled == serial, "the pool's runs differ from the serial ones"
    return wall, cpu, reference, pooled.makespan.p95


def measure(runs: int, workers: int) -> None:
    for policy in ("1f1b", "zb-v"):
        wall, cpu, reference, p95 = pooled_and_alone(policy, runs, workers)
        print(
            f"{policy:5} p=8 m=32: {runs / wall:6.0f} runs/s on {workers} workers "
            f"({wall:.2f} s wall, {cpu:.2f} s CPU); one process {runs / reference:6.0f} "
            f"runs/s; speed-up {reference / wall:.2f}x; p95 {p95:.2f} ms"
        )


if __name__ == "__main__":
    main()
