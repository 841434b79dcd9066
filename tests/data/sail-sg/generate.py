"""Writes orders of the authors' reference as compute-only CSVs: V-Half and V-Min
(`zbv_greedy.py`), and ZB-V under a memory bound (`zbv.py`'s `try_v_schedule`, the best of its
four variants as `create_schedule` picks it; file names give p, m, K and the F, B, W and message
costs of every chunk).

The reference is `megatron/core/pipeline_parallel/zerobubble/scheduler/` of
sail-sg/zero-bubble-pipeline-parallelism (`graph.py` beside them); give the directory that
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

ZBV_CASES = [(4, 8, 5, (1, 1, 1, 0), 1.0), (6, 13, 6, (1, 2, 1, 0), 1.0),
             (6, 12, 9, (3, 2, 1, 1), 1.0), (8, 24, 12, (2, 2, 2, 1), 1.0),
             (4, 8, 6, (3, 2, 1, 1), 0.5), (6, 12, 7, (1, 2, 1, 0), 0.5),
             (6, 12, 8, (2, 2, 2, 1), 0.5), (6, 12, 8, (1, 2, 1, 0), 0.75)]  # fmt: skip
"""(p, m, K in microbatches' worth, (F, B input gradient, W, message) per chunk, and the share
of a chunk's activations W needs after B: the runtime's f_mem = 1, b_mem = share - 1,
w_mem = -share)."""

CASES = [("half", 4, 8), ("half", 6, 12), ("half", 8, 20), ("min", 4, 8), ("min", 6, 12),
         ("min", 9, 21)]  # fmt: skip


def main(reference: str) -> None:
    sys.path.insert(0, reference)
    from megatron.core.pipeline_parallel.zerobubble.scheduler import (
        zbv_greedy,
    )
    from megatron.core.pipeline_parallel.zerobubble.scheduler.graph import (
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
    from megatron.core.pipeline_parallel.zerobubble.scheduler import zbv

    for p, m, k, (f, b, w, c), share in ZBV_CASES:
        graph = zbv.PipelineGraph(p, m, f, b, w, c, 1.0, share - 1, -share, max_mem=2.0 * k)
        best = None
        for fill_b in (True, False):
            for fill_f in (True, False):
                try:
                    schedule, _, worst = graph.try_v_schedule(fill_b=fill_b, fill_f=fill_f)
                except AssertionError:
                    continue  # this variant runs out of memory; pipesim skips it too
                if best is None or worst < best[1]:
                    best = (schedule, worst)
        assert best is not None
        orders = [
            [
                Op((Kind.F, Kind.B, Kind.W)[cat], rank if (chunk if cat == 0 else 1 - chunk) == 0
                   else 2 * p - 1 - rank, mb)
                for cat, chunk, mb in best[0][rank]
            ]
            for rank in range(p)
        ]  # fmt: skip
        name = f"zbv_p{p}_m{m}_k{k}_f{f}_b{b}_w{w}_c{c}" + (f"_s{share}" if share < 1 else "")
        name += ".csv"
        with open(here / name, "w", encoding="utf-8") as out:
            write_schedule(orders, True, out)


if __name__ == "__main__":
    main(sys.argv[1])
