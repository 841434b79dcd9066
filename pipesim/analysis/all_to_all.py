"""Where expert parallelism's all-to-alls fall on the timeline: inside the F and B ops of the
stages that hold MoE layers.

The simulation times each op whole, its compute plus its all-to-alls (`problem.workload`);
this lays every all-to-all within its op, layer by layer. An op's compute is split evenly over
the layers its stage holds; a MoE layer's forward is [attention and router] dispatch
[experts] combine, each bracket half of the layer's compute; its backward runs the layers in
reverse, the combine's gradient first ([recomputed forward, with its own two all-to-alls,
under full recomputation]). An op that ran longer or shorter than its mean (jitter, a
straggler, an overlapped pair) stretches all of its parts alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from pipesim.problem.ops import Kind
from pipesim.problem.workload import StageWork
from pipesim.simulator.trace import OpRecord, Trace


class AllToAllRecord(NamedTuple):
    """One all-to-all of one MoE layer, on `device`, within op `kind` of `stage` for
    `microbatch`, from `start` to `end` (ms)."""

    device: int
    stage: int
    kind: Kind
    microbatch: int
    layer: int
    """The model's layer (multi-token prediction modules count on after the last layer)."""
    name: str
    """"dispatch", "combine", their gradients, or either "(recomputed)"."""
    start: float
    end: float


_FORWARD = ("dispatch", "combine")
_RECOMPUTED = ("dispatch (recomputed)", "combine (recomputed)")
_BACKWARD = ("combine gradient", "dispatch gradient")


def all_to_alls(trace: Trace) -> list[AllToAllRecord]:
    """Every all-to-all of the step, device by device in the order its ops ran; [] without
    expert parallelism."""
    records: list[AllToAllRecord] = []
    for record, exchange, layout in _placed(trace):
        for layer, name, offset in layout:
            at = record.start + offset
            records.append(
                AllToAllRecord(
                    record.device,
                    record.stage,
                    record.kind,
                    record.microbatch,
                    layer,
                    name,
                    at,
                    at + exchange,
                )
            )
    return records


Layout = tuple[tuple[int, str, float], ...]
"""(layer, name, start from the op's start) of each all-to-all within an op."""


def _placed(trace: Trace) -> Iterator[tuple[OpRecord, float, Layout]]:
    """Each op that runs all-to-alls, with the milliseconds of one and where they fall. Ops of
    one stage and kind that ran as long lay them out alike: the layout is made once for them
    (a step of a MoE model has thousands of ops with a dozen all-to-alls each)."""
    problem = trace.problem
    workload = problem.workload
    if workload is None or workload.experts is None:
        return
    pipeline = problem.pipeline
    layouts: dict[tuple[int, Kind, float, float], Layout] = {}
    for ops in trace.ops_by_device():
        for record in ops:
            if record.kind is Kind.W:
                continue
            work = workload.stages[pipeline.model_stage(record.stage)]
            in_forward, in_backward = work.all_to_alls
            count = in_forward if record.kind is Kind.F else in_backward
            mean = problem.duration(record.op)
            derived = work.forward if record.kind is Kind.F else work.backward
            whole = problem.costs.backward[record.stage] if record.kind is Kind.B else mean
            if count == 0 or mean <= 0 or whole != derived:
                continue  # no all-to-all, or a cost the user gave instead of the model's
            scale = (record.end - record.start) / mean
            exchange = work.all_to_all * scale
            compute = max(0.0, record.end - record.start - count * exchange)
            key = (record.stage, record.kind, compute, exchange)
            layout = layouts.get(key)
            if layout is None:
                layout = layouts[key] = tuple(_layout(work, record.kind, compute, exchange))
            yield record, exchange, layout


def _layout(
    work: StageWork, kind: Kind, compute: float, exchange: float
) -> list[tuple[int, str, float]]:
    """(layer, name, start from the op's start) of each all-to-all in an op of `kind` whose
    compute takes `compute` ms and each all-to-all `exchange` ms."""
    layers = range(work.first_layer, work.first_layer + len(work.moe_layers))
    order = list(zip(layers, work.moe_layers, strict=True))
    if kind is not Kind.F:
        order.reverse()
    per_layer = compute / len(order)
    if kind is Kind.F:
        pattern: tuple[str | float, ...] = (0.5, _FORWARD[0], 0.5, _FORWARD[1])
    elif work.recomputed_all_to_all:
        pattern = (0.25, _RECOMPUTED[0], 0.25, _RECOMPUTED[1], _BACKWARD[0], 0.25)
        pattern += (_BACKWARD[1], 0.25)
    else:
        pattern = (_BACKWARD[0], 0.5, _BACKWARD[1], 0.5)
    placed = []
    at = 0.0
    for layer, moe in order:
        if not moe:
            at += per_layer
            continue
        for part in pattern:
            if isinstance(part, str):
                placed.append((layer, part, at))
                at += exchange
            else:
                at += part * per_layer
    return placed


def all_to_all_time(trace: Trace) -> list[float]:
    """Milliseconds each device spends in all-to-alls over the step: what `all_to_alls`'
    records add up to, float for float, without making them (every study's step asks)."""
    time = [0.0] * trace.problem.pipeline.devices
    for record, exchange, layout in _placed(trace):
        total = time[record.device]
        for _, _, offset in layout:
            at = record.start + offset
            total += (at + exchange) - at
        time[record.device] = total
    return time
