"""Breadth-first looped pipeline.

Source: Lamy-Poirier, "Breadth-First Pipeline Parallelism", MLSys 2023; PyTorch's
`ScheduleLoopedBFS`. The interleaved placement (device d holds stages d, d+p, ...), run breadth
first: a device runs every microbatch through its earliest chunk before it moves to the next,
then the backwards chunk by chunk in reverse, the last microbatch first.

Closed form (equal stages, free messages, m >= p): the same bubble as interleaved 1F1B,
(p-1)/(v*m+p-1), since a device never waits once the first microbatch has reached it; but like
GPipe every device holds all v*m chunk activations (m units) at its peak.
"""

from __future__ import annotations

from pipesim.problem.ops import Kind, Op
from pipesim.problem.pipeline import Pipeline, Problem
from pipesim.schedules.base import ClosedForm, StaticPolicy


class LoopedBFS(StaticPolicy):
    name = "looped-bfs"
    summary = "breadth-first looped: all microbatches through each chunk in turn; memory m"
    aliases = ("LoopedBFS", "ScheduleLoopedBFS", "bfs")
    chunks: int | None = None

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        m = pipeline.microbatches
        orders = []
        for stages in pipeline.stages_by_device:
            forwards = [Op(Kind.F, stage, mb) for stage in stages for mb in range(m)]
            backwards = [
                Op(Kind.B, stage, mb) for stage in reversed(stages) for mb in reversed(range(m))
            ]
            orders.append(forwards + backwards)
        return orders

    def closed_form(self, problem: Problem) -> ClosedForm:
        p, v, m = (problem.pipeline.devices, problem.pipeline.chunks, problem.pipeline.microbatches)
        closed = ClosedForm.evaluate(problem, "(p-1)/(v*m+p-1)", (p - 1) / (v * m + p - 1))
        return closed.withheld_if("m < p" if m < p else None)
