"""GPipe: fill, then drain.

Source: Huang et al., "GPipe: Efficient Training of Giant Neural Networks using Pipeline
Parallelism", NeurIPS 2019, section 2.2. Every device runs all m forwards, then all m backwards.

Closed form (equal stages, free messages): bubble fraction (p-1)/(m+p-1), makespan
(m+p-1)(F+B). Memory: every device holds all m activations at its peak.
"""

from __future__ import annotations

from pipesim.problem.ops import Kind, Op
from pipesim.problem.pipeline import Pipeline, Problem
from pipesim.schedules.base import ClosedForm, StaticPolicy


class GPipe(StaticPolicy):
    name = "gpipe"
    summary = "fill-drain: all forwards, then all backwards; peak activations m on every device"
    aliases = ("fill-drain", "ScheduleGPipe")

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        m = pipeline.microbatches
        orders = []
        for stages in pipeline.stages_by_device:
            forwards = [Op(Kind.F, stage, mb) for stage in stages for mb in range(m)]
            backwards = [Op(Kind.B, stage, mb) for stage in reversed(stages) for mb in range(m)]
            orders.append(forwards + backwards)
        return orders

    def closed_form(self, problem: Problem) -> ClosedForm:
        p, m = problem.pipeline.devices, problem.pipeline.microbatches
        return ClosedForm.evaluate(problem, "(p-1)/(m+p-1)", (p - 1) / (m + p - 1))
