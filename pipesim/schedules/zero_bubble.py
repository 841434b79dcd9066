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
so that the last gradients return at the pace of B alone. Its order is the paper's Figure 3
(bottom), as its authors' `get_hand_schedule(warmup_c=2)` builds it: 2(p-1-r) warm-up forwards
on device r, then F, B and (from the 2r-th microbatch on) W per microbatch, then the deferred W
passes; with other costs that order is kept and simulated as is. Peak activations 2p-1 (about
twice 1F1B). Closed form (F = B = W, free messages, m >= 2p-1): no bubble in the span view,
each device busy from its first op to its last; its makespan is still m(F+B+W) + (p-1)F, since
the devices start p-1 forwards apart.
"""

from __future__ import annotations

from collections import deque

from pipesim.problem.ops import Kind, Op
from pipesim.problem.pipeline import Pipeline, Problem
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
        return zb_h2_orders(pipeline)

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


def zb_h2_orders(pipeline: Pipeline) -> list[list[Op]]:
    """ZB-H2 as the paper's Figure 3 draws it and its authors' `get_hand_schedule` (warmup_c=2)
    builds it: device r runs 2(p-1-r) warm-up forwards, then per microbatch F, B and, from its
    2r-th B on, the oldest deferred W; the 2r deferred W passes close the step.

    The authors require m >= 2p. Below m = 2(p-1) pipesim shortens the warm-up to m and the
    W lag by the microbatches missing, which keeps ZB-H2 at least as fast as ZB-H1 within 2p-1
    activations (checked for p <= 8, every m >= p)."""
    p, m = pipeline.devices, pipeline.microbatches
    orders = []
    for device in range(p):
        (stage,) = pipeline.stages_by_device[device]
        warmup = min(2 * (p - 1 - device), m)
        lag = max(0, 2 * device - max(0, 2 * (p - 1) - m))
        order = [Op(Kind.F, stage, mb) for mb in range(warmup)]
        pending: deque[int] = deque()
        for mb in range(m):
            if warmup + mb < m:
                order.append(Op(Kind.F, stage, warmup + mb))
            order.append(Op(Kind.B, stage, mb))
            pending.append(mb)
            if mb >= lag:
                order.append(Op(Kind.W, stage, pending.popleft()))
        order += [Op(Kind.W, stage, mb) for mb in pending]
        orders.append(order)
    return orders
