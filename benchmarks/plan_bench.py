"""Speed of `pipesim plan`: about 1,000 configurations of about 4,000 ops each, every one
simulated, then the search pruned by bounds (`pipesim plan`'s own) for the same answer. Not a
test.

    python benchmarks/plan_bench.py [--workers N] [--busy N]

Prints the configurations evaluated, the wall time with N workers (default: the CPU count),
the CPU time of this process and its workers, and, as the reference measured in the same run,
the time of the same evaluations one after another in this process: the speed-up is what the
pool buys, and the per-configuration cost is what a single `pipesim run` of it costs.
"""

from __future__ import annotations

import argparse
import os
import time

from busy import busy  # benchmarks/busy.py
from cpu_time import cpu_seconds  # benchmarks/cpu_time.py

from pipesim import Settings, registered_policies
from pipesim.settings.hardware import load_gpu, load_model
from pipesim.studies.executor import default_workers
from pipesim.studies.plan import (
    PlanSpace,
    candidates,
    evaluate,
    plan_configurations,
    plan_search,
    ranked,
)

MODEL = {
    "name": "bench", "layers": 48, "hidden": 2048, "ffn": 8192, "heads": 16, "kv_heads": 16,
    "vocab": 50000, "tied": False, "gated": False, "norm": "layernorm", "seq_length": 2048,
}  # fmt: skip
# p=8 with m=256 microbatches (global batch 256 at b=1) is 2 x 8 x 256 = 4,096 ops per step.
BASE = Settings(
    model=load_model(MODEL, "bench"), gpu=load_gpu("h100", "bench"), global_batch_size=256
)
SPACE = PlanSpace(
    pipeline=(4, 8, 16),
    policies=tuple(policy.name for policy in registered_policies()),
    chunks=(1, 2, 3, 4),
    micro_batch_sizes=(1, 2, 4),
    recompute=("none", "selective", "full"),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--busy", type=int, default=0, help="processes spinning meanwhile")
    args = parser.parse_args()
    with busy(args.busy):
        measure(args.workers, args.busy)


def measure(workers: int, spinning: int) -> None:
    configurations = candidates(BASE, SPACE)
    cpu = cpu_seconds()
    started = time.perf_counter()
    rows = plan_configurations(BASE, SPACE, workers=workers)  # every one simulated
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    started = time.perf_counter()
    serial = [row for row in map(evaluate, configurations) if row is not None]
    reference = time.perf_counter() - started
    assert serial == rows, "the pool's records differ from the serial ones"
    cpu_search = cpu_seconds()
    started = time.perf_counter()
    searched = plan_search(BASE, SPACE, 10, workers=workers)
    search_wall = time.perf_counter() - started
    cpu_search = cpu_seconds() - cpu_search
    assert ranked(searched.rows)[:10] == ranked(rows)[:10], "the bounds changed the answer"
    simulated = sum(row.ran for row in rows)
    pruned = sum(row.pruned for row in rows)
    impossible = sum(1 for row in rows if row.error)
    print(f"configurations     {len(rows):,} ({simulated:,} simulated, {pruned} pruned, "
          f"{impossible} impossible)")  # fmt: skip
    print(f"CPU cores          {os.cpu_count()}, workers {workers}, {spinning} processes spinning")
    print(f"plan wall time     {wall:.1f} s ({len(rows) / wall:.0f} configurations/s)")
    print(f"plan CPU time      {cpu:.1f} s")
    print(f"serial reference   {reference:.1f} s ({1e3 * reference / len(rows):.1f} ms each)")
    print(f"speed-up           {reference / wall:.2f}x over one process")
    print(f"pruned search      {search_wall:.1f} s, {cpu_search:.1f} CPU s for the same 10 best "
          f"({searched.count('simulated'):,} simulated)")  # fmt: skip


if __name__ == "__main__":
    main()
