"""Schedules on the V placement: ZB-V and DualPipeV.

Both give each of p devices two chunks in a V (device d holds stages d and 2p-1-d), so the
first and last stages share device 0 and a microbatch's forward turns around on device p-1
without a message. Both split the backward (B = input gradient, W = weight gradient).

ZB-V. Source: Qi et al., "Zero Bubble Pipeline Parallelism", ICLR 2024, section 6; PyTorch's
`ScheduleZBVZeroBubble`. Device d runs 2(p-d)-1 forwards of its first chunk, then d pairs of
forwards (second chunk, first chunk), then p-d rounds of F-B-W on its second chunk, then a
steady state of F-B-W on each chunk in turn, then the remaining B and W passes. Peak activations
p microbatches' worth on every device (1F1B's first device). Closed form (F = B = W, free
messages, m >= 2p-1): no bubble in the span view. With `--activation-limit K` (K >= p), the
authors' own V scheduler plans it within K microbatches' worth for the problem's costs
(`zero_bubble_v_limited.py`, op for op the reference's `zbv.py`): more memory, less bubble.

DualPipeV. Source: DeepSeek's DualPipe repository (`dualpipev.py`, the V-shape "cut-in-half"
DualPipe, after the DeepSeek-V3 technical report, section 3.2.1); PyTorch's `ScheduleDualPipeV`.
Its steady state pairs one chunk's forward with the other chunk's full backward as one fused
step (it starts when both inputs are there and takes `--overlap-cost` times F+B), and only
parts of the warm-up and drain split the backward; a full backward is one fused step whose
gradient leaves when its W is done. Needs m >= 2p. Closed form (the DualPipe README's table,
PP = 2p): idle (p-1)(F&B+B-3W) per device, B the whole backward; peak activations PP+1 stage
activations, (2p+1)/2 of a device's share.
"""

from __future__ import annotations

import math
from collections import deque

from pipesim.problem.ops import Fused, Kind, Op, Step
from pipesim.problem.pipeline import Pipeline, Problem, v_shape_placement
from pipesim.schedules.base import (
    ClosedForm,
    DeviceProgram,
    OrderedProgram,
    StaticPolicy,
    require,
    split_stage_costs,
)
from pipesim.schedules.planned import planned, search_inputs
from pipesim.schedules.zero_bubble import zero_span_bubble
from pipesim.schedules.zero_bubble_v_limited import zbv_limited_orders


class _VShape(StaticPolicy):
    chunks: int | None = 2
    split_backward = True

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        return v_shape_placement(devices)


class ZBV(_VShape):
    name = "zb-v"
    summary = (
        "ZB-V: two chunks per device in a V, 1F-1B-1W; no span bubble when F=B=W; takes "
        "--activation-limit"
    )
    aliases = ("ZBVZeroBubble", "ScheduleZBVZeroBubble", "zbv", "v-zb")
    takes_activation_limit = True

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return [_zbv_order(pipeline, device) for device in range(pipeline.devices)]

    def programs(self, problem: Problem) -> list[DeviceProgram]:
        """PyTorch's order; under --activation-limit, the authors' V scheduler with that bound
        and this problem's costs (`zero_bubble_v_limited`)."""
        if problem.activation_limit is None:
            return super().programs(problem)
        limit = problem.activation_limit
        orders = planned(
            (type(self), search_inputs(problem)), lambda: zbv_limited_orders(problem, limit)
        )
        return [OrderedProgram(order) for order in orders]

    def closed_form(self, problem: Problem) -> ClosedForm | None:
        if problem.activation_limit is not None:
            return None  # planned for these costs and this bound: no textbook figure
        return zero_span_bubble(problem)


def _zbv_order(pipeline: Pipeline, device: int) -> list[Op]:
    p, m = pipeline.devices, pipeline.microbatches
    first, second = device, 2 * p - 1 - device
    # Generated for at least 2p-1 microbatches, so that the pipeline fills, then trimmed to m.
    n = max(2 * p - 1, m)
    order: list[Op] = []
    append = order.append
    new = tuple.__new__  # an Op without NamedTuple's Python-level __new__ (a hot loop)
    F, B, W = Kind.F, Kind.B, Kind.W
    # How many of each (kind, chunk) have been added: the next one's microbatch.
    f1 = f2 = b1 = b2 = w1 = w2 = 0
    for _ in range(2 * (p - device) - 1):
        append(new(Op, (F, first, f1)))
        f1 += 1
    for _ in range(device):
        append(new(Op, (F, second, f2)))
        append(new(Op, (F, first, f1)))
        f2 += 1
        f1 += 1
    for _ in range(p - device):
        append(new(Op, (F, second, f2)))
        append(new(Op, (B, second, b2)))
        append(new(Op, (W, second, w2)))
        f2 += 1
        b2 += 1
        w2 += 1
    while f2 < f1 or f1 < n:
        if f1 < n:
            append(new(Op, (F, first, f1)))
            f1 += 1
        append(new(Op, (B, first, b1)))
        append(new(Op, (W, first, w1)))
        append(new(Op, (F, second, f2)))
        append(new(Op, (B, second, b2)))
        append(new(Op, (W, second, w2)))
        b1 += 1
        w1 += 1
        f2 += 1
        b2 += 1
        w2 += 1
    for _ in range(device):
        append(new(Op, (B, first, b1)))
        append(new(Op, (B, second, b2)))
        b1 += 1
        b2 += 1
    for _ in range(p - device):
        append(new(Op, (B, first, b1)))
        append(new(Op, (W, first, w1)))
        b1 += 1
        w1 += 1
    order += [new(Op, (W, second, mb)) for mb in range(w2, b2)]
    order += [new(Op, (W, first, mb)) for mb in range(w1, b1)]
    return [op for op in order if op[2] < m]


class DualPipeV(_VShape):
    name = "dualpipe-v"
    summary = "DualPipeV (DeepSeek): V placement, one chunk's F paired with the other's B"
    aliases = ("DualPipeV", "ScheduleDualPipeV")

    def check(self, devices: int, chunks: int, microbatches: int) -> None:
        super().check(devices, chunks, microbatches)
        require(
            microbatches >= 2 * devices,
            f"dualpipe-v needs m >= 2p microbatches (m={microbatches}, p={devices})",
        )

    def device_orders(self, pipeline: Pipeline) -> list[list[Step]]:
        p, m = pipeline.devices, pipeline.microbatches
        return [
            DualPipeSteps(p, m, device, (device, 0), (2 * p - 1 - device, 0)).build()
            for device in range(p)
        ]

    def closed_form(self, problem: Problem) -> ClosedForm:
        """The DualPipe README's (PP/2-1)(F&B+B-3W) with PP = 2p stages, B the whole backward
        and F&B the overlap cost times F+B: every device's idle time. Simulation shows it exact
        when F equals the input gradient B-W, W <= F and B <= F&B <= F+B (the README's figure:
        F 1, B 2, W 1, F&B 3); it is a fraction of the step only when F&B = F+B, since devices
        run different numbers of pairs."""
        p, m = problem.pipeline.devices, problem.pipeline.microbatches
        return dualpipe_bubble(problem, p - 1, 2 * m, "(p-1)(F&B+B-3W) per device")


def dualpipe_bubble(problem: Problem, turns: int, passes: int, formula: str) -> ClosedForm:
    """The DualPipe README's bubble (PP/2-1)(F&B+B-3W), PP/2-1 being `turns`, as a fraction of
    a device's step: `passes` forward-and-backward passes of a stage per device, each F+B (B
    the whole backward, F&B the overlap cost times F+B). Exact where F = B-W and W <= F."""
    f, b_input, w = split_stage_costs(problem)
    b, overlap = b_input + w, problem.costs.overlap
    bubble = turns * (overlap * (f + b) + b - 3 * w)
    busy = passes * (f + b)
    fraction = bubble / (busy + bubble) if busy + bubble > 0 else 0.0
    exact = math.isclose(f, b_input) and w <= f
    return (
        ClosedForm.evaluate(problem, formula, fraction)
        .withheld_if(None if exact else "F differs from B-W, or W exceeds F")
        .withheld_if(None if overlap == 1 else "the overlap cost is not 1")
    )


class DualPipeSteps:
    """One device's order in the eight steps of DeepSeek's reference (`DualPipeV.step` in
    deepseek-ai/DualPipe's dualpipev.py, and `DualPipe.step` in dualpipe.py, which is the same
    with half the ranks and half the microbatches): full backwards and overlapped
    forward-and-backward pairs are fused steps, as there.

    `p`, `m` and `device` are the reference's ranks, microbatches and rank as its step counts
    use them; `first` and `second` are the (stage, first microbatch) of its phase 0 and 1."""

    def __init__(
        self, p: int, m: int, device: int, first: tuple[int, int], second: tuple[int, int]
    ) -> None:
        self.p, self.m, self.device = p, m, device
        (self.first, first_mb), (self.second, second_mb) = first, second
        self.next_f = {self.first: first_mb, self.second: second_mb}
        self.next_b = {self.first: first_mb, self.second: second_mb}
        self.pending_w: deque[Op] = deque()
        self.order: list[Step] = []

    def _forward_op(self, stage: int) -> Op:
        op = Op(Kind.F, stage, self.next_f[stage])
        self.next_f[stage] += 1
        return op

    def _backward_ops(self, stage: int, split: bool) -> tuple[Op, ...]:
        """B alone (its W queued for a later weight step), or a full backward: B and W."""
        mb = self.next_b[stage]
        self.next_b[stage] += 1
        if split:
            self.pending_w.append(Op(Kind.W, stage, mb))
            return (Op(Kind.B, stage, mb),)
        return (Op(Kind.B, stage, mb), Op(Kind.W, stage, mb))

    def forward(self, stage: int) -> None:
        self.order.append(self._forward_op(stage))

    def backward(self, stage: int, split: bool = False) -> None:
        ops = self._backward_ops(stage, split)
        self.order.append(ops[0] if len(ops) == 1 else Fused(ops))

    def forward_backward(self, forward_stage: int, backward_stage: int) -> None:
        """One chunk's forward overlapped with the other chunk's full backward: one step."""
        forward = self._forward_op(forward_stage)
        self.order.append(Fused((forward, *self._backward_ops(backward_stage, split=False))))

    def weight(self) -> None:
        if self.pending_w:
            self.order.append(self.pending_w.popleft())

    def build(self) -> list[Step]:
        p, m, d = self.p, self.m, self.device
        first, second = self.first, self.second
        for _ in range((p - d - 1) * 2):  # step 1: nF0
            self.forward(first)
        for _ in range(d + 1):  # step 2: nF0F1
            self.forward(first)
            self.forward(second)
        for _ in range(p - d - 1):  # step 3: nB1W1F1, zero bubble
            self.backward(second, split=True)
            self.weight()
            self.forward(second)
        for i in range(m - 2 * p + d + 1):  # step 4, the main step: nF0B1F1B0
            if i == 0 and d == p - 1:
                # The reference does not overlap these two on the last rank (DualPipe: the
                # middle ranks), to shorten the bubble: the turn needs this output at once.
                self.forward(first)
                self.backward(second)
            else:
                self.forward_backward(first, second)
            self.forward_backward(second, first)
        for _ in range(p - d - 1):  # step 5: nB1F1B0
            self.backward(second)
            self.forward_backward(second, first)
        split = False
        steps = d + 1
        for i in range(steps):  # step 6: nB1B0, the second half zero bubble
            if i == steps // 2 and d % 2 == 1:
                split = True
            self.backward(second, split)
            if i == steps // 2 and d % 2 == 0:
                split = True
            self.backward(first, split)
        for _ in range(p - d - 1):  # step 7: nWB0
            self.weight()
            self.backward(first, split=True)
        while self.pending_w:  # step 8: nW
            self.weight()
        return self.order
