"""The handcrafted zero-bubble schedules ZB-H1 and ZB-H2.

Source: Qi et al., "Zero Bubble Pipeline Parallelism", ICLR 2024, section 2.2. Both split the
backward into B (input gradient: what the previous stage waits for) and W (weight gradient:
needed by nobody downstream), and use W passes to fill what would be bubbles in 1F1B.

ZB-H1 keeps 1F1B's warm-up (p-1-i forwards on device i) and lets device i's W passes lag i steps
behind their B, so that the last microbatches' B passes race back up the pipeline and the
lagging W passes fill the drain. Peak activations: p on every device (1F1B's maximum). Closed
form (equal stages, free messages, m >= p, W no longer than F or B): bubble time per device
(p-1)(F+B-W), B the input gradient.

ZB-H2 adds warm-up forwards so that no device waits for its first gradient, and defers W passes
so that the last gradients return at the pace of B alone. Its order comes from a unit-time list
schedule of the handcrafted rules (a ready B first, then a forward while fewer than 2p-1
activations are held, then the oldest pending W), which reproduces the paper's schedule when
F = B = W; with other costs that order is kept and simulated as is. Peak activations 2p-1 (about
twice 1F1B). Closed form (F = B = W, free messages, m >= 2p-1): no bubble in the span view,
each device busy from its first op to its last; its makespan is still m(F+B+W) + (p-1)F, since
the devices start p-1 forwards apart.
"""

from __future__ import annotations

from pipesim.ops import Kind, Op, needs
from pipesim.problem import Pipeline, Problem
from pipesim.schedules.base import (
    ClosedForm,
    StaticPolicy,
    split_stage_costs,
    textbook_conditions,
)
from pipesim.schedules.looped_1f1b import looped_1f1b_orders


class ZBH1(StaticPolicy):
    name = "zb-h1"
    summary = "zero bubble H1: 1F1B memory, W passes fill the drain; bubble (p-1)(F+B-W)"
    aliases = ("zbh1",)
    split_backward = True

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return looped_1f1b_orders(pipeline, warmup_factor=1, zero_bubble=True)

    def closed_form(self, problem: Problem) -> ClosedForm:
        p, m = problem.pipeline.devices, problem.pipeline.microbatches
        f, b, w = split_stage_costs(problem)
        busy = m * (f + b + w)
        bubble = (p - 1) * (f + b - w)
        fraction = bubble / (busy + bubble) if busy + bubble > 0 else 0.0
        closed = ClosedForm.evaluate(problem, "(p-1)(F+B-W) per device", fraction)
        return closed.withheld_if("m < p" if m < p else None).withheld_if(
            "W exceeds F or B" if w > min(f, b) else None
        )


class ZBH2(StaticPolicy):
    name = "zb-h2"
    summary = "zero bubble H2: more warm-up, deferred W; no span bubble when F=B=W, 2p-1 memory"
    aliases = ("zbh2",)
    split_backward = True

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return unit_time_list_schedule(pipeline, activation_cap=2 * pipeline.devices - 1)

    def closed_form(self, problem: Problem) -> ClosedForm:
        return zero_span_bubble(problem)


def zero_span_bubble(problem: Problem) -> ClosedForm:
    """The closed form of ZB-H2 and ZB-V: no bubble in the span view when F = B = W (B the
    input gradient), messages are free and m >= 2p-1 (so that the pipeline fills)."""
    p, m = problem.pipeline.devices, problem.pipeline.microbatches
    f, b, w = split_stage_costs(problem)
    return (
        ClosedForm("0 when F=B=W", 0.0, None, "span")
        .withheld_if(textbook_conditions(problem))
        .withheld_if("F, B and W differ" if not f == b == w else None)
        .withheld_if("m < 2p-1" if m < 2 * p - 1 else None)
    )


def unit_time_list_schedule(pipeline: Pipeline, activation_cap: int) -> list[list[Op]]:
    """Each device's order when every op takes one unit and messages are free, each device
    picking at every step: a B whose inputs are there, else the next forward if it holds fewer
    than `activation_cap` activations, else its oldest pending W."""
    p, m = pipeline.devices, pipeline.microbatches
    stages = pipeline.num_stages
    done_at: dict[Op, int] = {}
    orders: list[list[Op]] = [[] for _ in range(p)]
    next_f, next_b, held = [0] * p, [0] * p, [0] * p
    pending_w: list[list[int]] = [[] for _ in range(p)]
    remaining, time = 3 * stages * m, 0

    def ready(op: Op) -> bool:
        return all(done_at.get(need.op, time + 1) <= time for need in needs(op, stages))

    while remaining:
        chosen: list[Op] = []
        for device in range(p):
            (stage,) = pipeline.stages_by_device[device]
            backward = Op(Kind.B, stage, next_b[device])
            forward = Op(Kind.F, stage, next_f[device])
            if next_b[device] < m and ready(backward):
                chosen.append(backward)
            elif next_f[device] < m and held[device] < activation_cap and ready(forward):
                chosen.append(forward)
            elif pending_w[device]:
                chosen.append(Op(Kind.W, stage, pending_w[device][0]))
        assert chosen, "the unit-time schedule always makes progress"
        for op in chosen:
            device = pipeline.placement[op.stage]
            orders[device].append(op)
            done_at[op] = time + 1
            if op.kind is Kind.F:
                next_f[device] += 1
                held[device] += 1
            elif op.kind is Kind.B:
                next_b[device] += 1
                pending_w[device].append(op.microbatch)
            else:
                pending_w[device].pop(0)
                held[device] -= 1
        remaining -= len(chosen)
        time += 1
    return orders
