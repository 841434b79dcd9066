"""What a configuration must at least take and hold, known before simulating it: how `plan`
skips what cannot win, with the same answer as simulating everything.

Step time. A device runs one op (or fused step) at a time, so the pipeline lasts at least
the work of each device, started no earlier than the first input any of its stages can
receive (the head): the forwards of the stages before it on its line, each at least its cost,
and the messages between them, each at least its link's latency plus size over bandwidth. Its
last forward or backward is a backward (a forward needs its own backward after it), and the
input-gradient backwards of the stages before it on its line follow that one (the tail); only
weight-gradient passes (W) may run after it on the device. It also lasts at least one
microbatch's round trip: its forwards down its line and its backwards back up. A fused
forward-and-backward pair (DualPipe) may hide its ops' all-to-alls and share the overlap
cost, so an op counts for the least it can take inside one. After the pipeline every device
runs its optimizer step and the distributed optimizer's all-gather (`analysis.whole_step`),
which the bound adds whole; the exposed gradient reduction is at least zero.

    step >= max(max over devices of (head + max(work, work - W + tail)), round trip)
            + optimizer + parameter all-gather

With equal stages and free messages the bound is 1F1B's (m + p - 1)(F + B) and GPipe's, and
interleaved 1F1B's (m v + p - 1)(F + B) / v: exact for them.

Memory. At the end of a forward its device holds its static memory and at least that
microbatch's activations, so its peak is at least static + the largest stage activation on it.
When the schedule fixes each device's order (`StaticPolicy`), the order alone fixes the peak,
exactly (`order_peak`).

Both hold for every schedule and for any order of ops; jitter and stragglers make ops longer
or shorter by draw, so `plan` does not prune by time when they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipesim.problem.ops import Fused, Kind, Step
from pipesim.problem.pipeline import Problem


@dataclass(frozen=True)
class Bounds:
    """Lower bounds of one configuration."""

    step_ms: float
    peak_bytes: float
    """The fullest device's peak, at least."""


def lower_bounds(problem: Problem, orders: Sequence[Sequence[Step]] | None = None) -> Bounds:
    """The bounds of `problem` (built from a model, so that it has memory and a workload);
    with the devices' `orders` (a schedule that fixes them), its exact peak memory."""
    pipeline, costs, network = problem.pipeline, problem.costs, problem.network
    placement = pipeline.placement
    stages, length = pipeline.num_stages, pipeline.line_length
    scale = min(1.0, costs.overlap)
    forward, backward, weight = costs.forward, costs.backward, costs.weight
    split = problem.split_backward
    exchange_f = costs.exchange_forward or (0.0,) * stages
    exchange_b = costs.exchange_backward or (0.0,) * stages

    def least(duration: float, exchange: float) -> float:
        """The least an op can hold its device: alone, or in a fused pair."""
        return min(duration, scale * (duration - exchange))

    hops: dict[tuple[int, int, Kind], float] = {}

    def hop(src: int, dst: int, kind: Kind) -> float:
        if src == dst:
            return 0.0
        time = hops.get((src, dst, kind))
        if time is None:
            time = hops[(src, dst, kind)] = network.transfer_time(src, dst, kind)
        return time

    # every microbatch of a line, once per stage
    runs = pipeline.microbatches // pipeline.lines
    work = [0.0] * pipeline.devices
    weights = [0.0] * pipeline.devices
    head = [0.0] * stages
    tail = [0.0] * stages
    f_least = [least(forward[s], exchange_f[s]) for s in range(stages)]
    if split:
        b_least = [least(backward[s] - weight[s], exchange_b[s]) for s in range(stages)]
        w_least = [least(weight[s], 0.0) for s in range(stages)]
    else:
        b_least = [least(backward[s], exchange_b[s]) for s in range(stages)]
        w_least = [0.0] * stages
    for stage in range(stages):
        device = placement[stage]
        work[device] += runs * (f_least[stage] + b_least[stage] + w_least[stage])
        weights[device] += runs * w_least[stage]
        if stage % length:
            src = placement[stage - 1]
            head[stage] = head[stage - 1] + f_least[stage - 1] + hop(src, device, Kind.F)
            tail[stage] = tail[stage - 1] + b_least[stage - 1] + hop(device, src, Kind.B)
    # A device's last forward or backward is a backward (the forward before it would need
    # it), which the backwards of the stages before it on its line follow; its weight
    # gradients may come after it.
    pipeline_ms = max(
        min(head[stage] for stage in held)
        + max(work[device], work[device] - weights[device] + min(tail[s] for s in held))
        for device, held in enumerate(pipeline.stages_by_device)
    )
    for first in range(0, stages, length):
        trip = 0.0
        for s in range(first, first + length):
            trip += f_least[s] + b_least[s]
            if s + 1 < first + length:
                trip += hop(placement[s], placement[s + 1], Kind.F)
                trip += hop(placement[s + 1], placement[s], Kind.B)
        pipeline_ms = max(pipeline_ms, trip)
    after = 0.0
    gather = 0.0
    peak = 0.0
    workload, memory = problem.workload, problem.memory
    for held in pipeline.stages_by_device:
        if workload is not None:
            works = [workload.stages[pipeline.model_stage(stage)] for stage in held]
            after = max(after, sum(w.optimizer for w in works))
            gather = max(gather, sum(w.parameter_gather for w in works))
        if memory is not None:
            static = sum(memory.static[stage] for stage in held)
            peak = max(peak, static + max(memory.activation[stage] for stage in held))
    if orders is not None and memory is not None:
        peak = order_peak(problem, orders)
    return Bounds(pipeline_ms + after + gather, peak)


def order_peak(problem: Problem, orders: Sequence[Sequence[Step]]) -> float:
    """The fullest device's peak bytes when each runs its ops in `orders`: what a device
    holds changes only at its own ops (a forward takes its stage's activation at its start, a
    backward frees it, or all but the weight-gradient share, at its end; W frees that share),
    so its order alone fixes its peak, as `analysis.memory` counts it from a timeline."""
    memory = problem.memory
    assert memory is not None
    pipeline = problem.pipeline
    split = problem.split_backward
    activation, kept = memory.activation, memory.weight_activation
    freed_by_b = [a - k for a, k in zip(activation, kept, strict=True)] if split else activation
    fullest = 0.0
    for held_stages, order in zip(pipeline.stages_by_device, orders, strict=True):
        held = peak = sum(memory.static[stage] for stage in held_stages)
        for step in order:
            for kind, stage, _ in step.ops if isinstance(step, Fused) else (step,):
                if kind is Kind.F:
                    held += activation[stage]
                    peak = max(peak, held)
                elif kind is Kind.B:
                    held -= freed_by_b[stage]
                else:
                    held -= kept[stage]
        fullest = max(fullest, peak)
    return fullest
