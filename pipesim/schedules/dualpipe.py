"""DualPipe: DeepSeek-V3's bidirectional schedule, two copies of the model fed from both ends.

Source: DeepSeek-AI, "DeepSeek-V3 Technical Report" (arXiv 2412.19437), section 3.2.1, and the
reference implementation `DualPipe.step` in deepseek-ai/DualPipe's `dualpipe/dualpipe.py`.

Each of the p devices (p even) holds stage i of the model for microbatches flowing down
(devices 0 to p-1) and stage p-1-i for microbatches flowing up: two copies of the parameters,
so twice a 1F1B device's static memory. In pipesim's numbering these are two lines
(`Pipeline.lines`): stages 0..p-1 on devices 0..p-1 take microbatches 0..m/2-1, and stages
p..2p-1 (stage p+k, model stage k, on device p-1-k) take microbatches m/2..m-1. A stage costs
what one stage of a p-stage pipeline costs: give costs per device (or per model stage).

Device i runs the reference's eight steps (`v_shape.DualPipeSteps`) with rank i's half rank
min(i, p-1-i) among p/2, m/2 microbatches per direction, and its phase 0 the direction that
enters at its end of the pipeline: forwards first, then forward-and-backward pairs of the two
directions as fused steps (`--overlap-cost`), W passes deferred where the reference uses zero
bubble. The reference requires p even, m even and m >= 2p; so does pipesim. The order is
the reference's, step for step (`tests/test_dualpipe_reference.py` runs its `DualPipe.step`).

Closed form (the DualPipe README, PP = p stages, equal stages, free messages, F&B the overlap
cost times F+B, B the whole backward): each device idles (p/2-1)(F&B+B-3W); exact where the
README's DualPipeV figure is (F = B-W, W <= F), as the tests check. Peak activations: p+1 of a
stage's per-microbatch activations on every device (the README's PP+1), in pipesim's unit
(microbatches' worth of what one microbatch leaves on a device: one stage here).
"""

from __future__ import annotations

from pipesim.problem.ops import Step
from pipesim.problem.pipeline import Pipeline, Problem, v_shape_placement
from pipesim.schedules.base import (
    ClosedForm,
    StaticPolicy,
    require,
)
from pipesim.schedules.v_shape import DualPipeSteps, dualpipe_bubble


class DualPipe(StaticPolicy):
    name = "dualpipe"
    summary = "DualPipe (DeepSeek-V3): two model copies, half of m from each end, F&B pairs"
    aliases = ("DualPipe", "bidirectional-dualpipe")
    split_backward = True
    chunks = 2
    lines = 2

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        return v_shape_placement(devices)

    def check(self, devices: int, chunks: int, microbatches: int) -> None:
        super().check(devices, chunks, microbatches)
        require(devices % 2 == 0, f"dualpipe needs an even number of devices (p={devices})")
        require(
            microbatches % 2 == 0 and microbatches >= 2 * devices,
            f"dualpipe needs an even m >= 2p, half from each end (m={microbatches}, p={devices})",
        )

    def device_orders(self, pipeline: Pipeline) -> list[list[Step]]:
        p, m = pipeline.devices, pipeline.microbatches
        half_p, half_m = p // 2, m // 2
        orders = []
        for rank in range(p):
            down, up = (rank, 0), (2 * p - 1 - rank, half_m)
            first, second = (down, up) if rank < half_p else (up, down)
            half_rank = min(rank, p - 1 - rank)
            orders.append(DualPipeSteps(half_p, half_m, half_rank, first, second).build())
        return orders

    def closed_form(self, problem: Problem) -> ClosedForm:
        p, m = problem.pipeline.devices, problem.pipeline.microbatches
        return dualpipe_bubble(problem, p // 2 - 1, m, "(p/2-1)(F&B+B-3W) per device")
