"""Writes the V-Half and V-Min orders of the authors' reference as compute-only CSVs.

The reference is `megatron/core/pipeline_parallel/zerobubble/scheduler/zbv_greedy.py` of
sail-sg/zero-bubble-pipeline-parallelism (with `graph.py` beside it); give the directory that
holds its `megatron` package:

    python tests/data/sail-sg/generate.py /path/to/zero-bubble-pipeline-parallelism

Its `create_schedule` returns each rank's ScheduledNodes; their `layer_group_idx` is the stage
(d for the first chunk of rank d, 2p-1-d for the second), as pipesim numbers V stages.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

from pipesim.problem.ops import Kind, Op
from pipesim.schedules.schedule_file import write_schedule

CASES = [("half", 4, 8), ("half", 6, 12), ("half", 8, 20), ("min", 4, 8), ("min", 6, 12),
         ("min", 9, 21)]  # fmt: skip


def main(reference: str) -> None:
    sys.path.insert(0, reference)
    from megatron.core.pipeline_parallel.zerobubble.scheduler import (  # type: ignore[import-not-found]
        zbv_greedy,
    )
    from megatron.core.pipeline_parallel.zerobubble.scheduler.graph import (  # type: ignore[import-not-found]
        GraphConfig,
    )

    here = Path(__file__).resolve().parent
    for kind, p, m in CASES:
        ones = [1.0] * p
        config = GraphConfig(cost_f=ones, cost_b=ones, cost_w=ones, cost_comm=0.0, mem_f=ones,
                             mem_b=[0.0] * p, mem_w=[-1.0] * p, max_chunks=2, n_stages=p,
                             n_micro=m)  # fmt: skip
        graph = zbv_greedy.PipelineGraph(p, m, kind, 1, 1, 1, 0)
        with contextlib.redirect_stdout(io.StringIO()):
            ranks = graph.create_schedule(config)
        orders = [
            [Op(Kind[node.type.value], node.layer_group_idx, node.microbatch) for node in rank]
            for rank in ranks
        ]
        with open(here / f"v{kind}_p{p}_m{m}.csv", "w", encoding="utf-8") as out:
            write_schedule(orders, True, out)


if __name__ == "__main__":
    main(sys.argv[1])
