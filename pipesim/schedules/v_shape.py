"""Schedules on the V placement: ZB-V and DualPipeV.

Both give each of p devices two chunks in a V (device d holds stages d and 2p-1-d), so the
first and last stages share device 0 and a microbatch's forward turns around on device p-1
without a message. Both split the backward (B = input gradient, W = weight gradient).

ZB-V. Source: Qi et al., "Zero Bubble Pipeline Parallelism", ICLR 2024, section 6; PyTorch's
`ScheduleZBVZeroBubble`. Device d runs 2(p-d)-1 forwards of its first chunk, then d pairs of
forwards (second chunk, first chunk), then p-d rounds of F-B-W on its second chunk, then a
steady state of F-B-W on each chunk in turn, then the remaining B and W passes. Peak activations
about those of 1F1B. Closed form (F = B = W, free messages, m >= 2p-1): no bubble in the span
view.

DualPipeV. Source: DeepSeek's DualPipe repository (the V-shape "cut-in-half" DualPipe, after
the DeepSeek-V3 technical report, section 3.2.1); PyTorch's `ScheduleDualPipeV`. Its steady
state pairs one chunk's forward with the other chunk's backward (run back to back here; in
DualPipe their communication overlaps), and only parts of the warm-up and drain split the
backward. A full backward here is its B immediately followed by its W. Needs m >= 2p.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from pipesim.ops import Kind, Op
from pipesim.problem import Pipeline, Problem, v_shape_placement
from pipesim.schedules.base import ClosedForm, StaticPolicy, require
from pipesim.schedules.zero_bubble import zero_span_bubble


class _VShape(StaticPolicy):
    chunks: ClassVar[int | None] = 2
    split_backward = True

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        return v_shape_placement(devices)


class ZBV(_VShape):
    name = "zb-v"
    summary = "ZB-V: two chunks per device in a V, 1F-1B-1W; no span bubble when F=B=W"
    aliases = ("ZBVZeroBubble", "ScheduleZBVZeroBubble", "zbv")

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return [_zbv_order(pipeline, device) for device in range(pipeline.devices)]

    def closed_form(self, problem: Problem) -> ClosedForm:
        return zero_span_bubble(problem)


def _zbv_order(pipeline: Pipeline, device: int) -> list[Op]:
    p, m = pipeline.devices, pipeline.microbatches
    first, second = device, 2 * p - 1 - device
    # Generated for at least 2p-1 microbatches, so that the pipeline fills, then trimmed to m.
    n = max(2 * p - 1, m)
    count = {(kind, stage): 0 for kind in Kind for stage in (first, second)}
    order: list[Op] = []

    def add(kind: Kind, stage: int, microbatch: int | None = None) -> None:
        key = (kind, stage)
        index = count[key] if microbatch is None else microbatch
        count[key] = index + 1
        order.append(Op(kind, stage, index))

    for _ in range(2 * (p - device) - 1):
        add(Kind.F, first)
    for _ in range(device):
        add(Kind.F, second)
        add(Kind.F, first)
    for _ in range(p - device):
        add(Kind.F, second)
        add(Kind.B, second)
        add(Kind.W, second)
    while count[(Kind.F, second)] < count[(Kind.F, first)] or count[(Kind.F, first)] < n:
        if count[(Kind.F, first)] < n:
            add(Kind.F, first)
        add(Kind.B, first)
        add(Kind.W, first)
        add(Kind.F, second)
        add(Kind.B, second)
        add(Kind.W, second)
    for _ in range(device):
        add(Kind.B, first)
        add(Kind.B, second)
    for _ in range(p - device):
        add(Kind.B, first)
        add(Kind.W, first)
    for stage in (second, first):
        while count[(Kind.W, stage)] < count[(Kind.B, stage)]:
            add(Kind.W, stage)
    return [op for op in order if op.microbatch < m]


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

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return [_DualPipeVOrder(pipeline, device).build() for device in range(pipeline.devices)]


class _DualPipeVOrder:
    """One device's DualPipeV order, in the eight steps of the reference implementation."""

    def __init__(self, pipeline: Pipeline, device: int) -> None:
        self.p, self.m, self.device = pipeline.devices, pipeline.microbatches, device
        self.first, self.second = device, 2 * pipeline.devices - 1 - device
        self.next_f = {self.first: 0, self.second: 0}
        self.next_b = {self.first: 0, self.second: 0}
        self.pending_w: deque[Op] = deque()
        self.order: list[Op] = []

    def forward(self, stage: int) -> None:
        self.order.append(Op(Kind.F, stage, self.next_f[stage]))
        self.next_f[stage] += 1

    def backward(self, stage: int, split: bool) -> None:
        """B alone (its W queued for later) or, for a full backward, B then W at once."""
        mb = self.next_b[stage]
        self.next_b[stage] += 1
        self.order.append(Op(Kind.B, stage, mb))
        if split:
            self.pending_w.append(Op(Kind.W, stage, mb))
        else:
            self.order.append(Op(Kind.W, stage, mb))

    def weight(self) -> None:
        if self.pending_w:
            self.order.append(self.pending_w.popleft())

    def build(self) -> list[Op]:
        p, m, d = self.p, self.m, self.device
        first, second = self.first, self.second
        for _ in range((p - d - 1) * 2):
            self.forward(first)
        for _ in range(d + 1):
            self.forward(first)
            self.forward(second)
        for _ in range(p - d - 1):
            self.backward(second, split=True)
            self.weight()
            self.forward(second)
        for _ in range(m - 2 * p + d + 1):
            # F on one chunk paired with the other chunk's full backward, both ways round.
            self.forward(first)
            self.backward(second, split=False)
            self.forward(second)
            self.backward(first, split=False)
        for _ in range(p - d - 1):
            self.backward(second, split=False)
            self.forward(second)
            self.backward(first, split=False)
        split = False
        steps = d + 1
        for i in range(steps):
            if i == steps // 2 and d % 2 == 1:
                split = True
            self.backward(second, split)
            if i == steps // 2 and d % 2 == 0:
                split = True
            self.backward(first, split)
        for _ in range(p - d - 1):
            self.weight()
            self.backward(first, split)
        while self.pending_w:
            self.weight()
        return self.order
