"""Speed of `pipesim plan --gpus`: the Llama 3 paper's setting, llama3-405b on 16,384 H100s at
s = 8192 with a global batch of 16M tokens (2,048 sequences), over plan's default space.
Not a test.

    python benchmarks/cluster_plan_bench.py [--workers N] [--sample K]

Prints the CPU time of the search (this process and its workers), what became of the
configurations, the best rows, and where the paper's own split (TP8, PP16, DP128, CP1) ranks.
The reference, measured in the same run: K configurations that could fit, drawn at random
(seeded) and simulated one after another; their mean times the number that could fit is what
simulating all of them would cost, which the bounds avoid.
"""

from __future__ import annotations

import argparse
import random
import time

from cpu_time import cpu_seconds  # benchmarks/cpu_time.py

from pipesim import Settings, registered_policies
from pipesim.render.frameworks import SCHEDULES
from pipesim.settings.hardware import load_gpu, load_model
from pipesim.studies.plan import (
    COUNTS,
    PlanRow,
    PlanSpace,
    candidates,
    plan_search,
    ranked,
    screen,
    simulate_screened,
)

BASE = Settings(
    model=load_model("llama3-405b", "bench"),
    gpu=load_gpu("h100", "bench"),
    global_batch_size=2048,
    seq_length=8192,
)
GPUS = 16_384
PAPER = (8, 16, 128, 1)  # t, p, d, c: Llama 3 paper, Table 4 (the 8K pre-training stage)


def space(policies: tuple[str, ...]) -> PlanSpace:
    return PlanSpace(
        pipeline=None,
        policies=policies,
        chunks=(1, 2, 3, 4),
        micro_batch_sizes=(1, 2, 4),
        recompute=("none", "selective", "full"),
        gpus=GPUS,
    )


def label(row: PlanRow) -> str:
    return (
        f"{row.policy} t{row.tensor_parallel} p{row.stages} d{row.data_parallel} "
        f"v{row.chunks} b{row.micro_batch_size} {row.recompute} {row.layout}"
        + (" dist-opt" if row.distributed_optimizer else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sample", type=int, default=20)
    arguments = parser.parse_args()
    everything = tuple(policy.name for policy in registered_policies())
    for name, policies in (("any", everything), ("megatron", tuple(SCHEDULES["megatron"]))):
        chosen = space(policies)
        cpu = cpu_seconds()
        started = time.perf_counter()
        result = plan_search(BASE, chosen, 10, workers=arguments.workers)
        wall = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
        counts = ", ".join(f"{what} {result.count(what):,}" for what in COUNTS)
        print(f"framework {name}: {counts}")
        print(f"  search CPU {cpu:.1f} s, wall {wall:.1f} s with {arguments.workers} worker(s)")
        fitting = ranked(result.rows)
        for rank, row in enumerate(fitting[:3], start=1):
            print(f"  #{rank} {label(row)}: {row.step_ms:,.0f} ms, {row.mfu:.1%} MFU, "
                  f"{(row.peak_bytes or 0) / 1e9:.1f} GB")  # fmt: skip
        paper = [
            (rank, row)
            for rank, row in enumerate(fitting[:10], start=1)
            if (row.tensor_parallel, row.stages, row.data_parallel, row.context_parallel) == PAPER
        ]
        if paper:
            rank, row = paper[0]
            print(f"  the paper's split first ranks #{rank}: {label(row)}, {row.step_ms:,.0f} ms")
        else:
            print("  the paper's split is not among the 10 fastest")
        # The reference: what simulating everything that could fit would cost.
        could = [
            item
            for item in map(screen, candidates(BASE, chosen))
            if item.row is None and not item.duplicate
        ]
        sample = random.Random(0).sample(could, min(arguments.sample, len(could)))
        cpu = cpu_seconds()
        for item in sample:
            simulate_screened(item)
        each = (cpu_seconds() - cpu) / max(1, len(sample))
        print(f"  reference: {len(could):,} could fit, {each * 1e3:.0f} ms each to simulate: "
              f"about {each * len(could):.0f} CPU s to simulate them all")  # fmt: skip


if __name__ == "__main__":
    main()
