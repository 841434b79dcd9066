"""What a candidate order would take, without simulating it: how schedules that choose among
orders (zb-auto, the V-shape family) compare their candidates.

Each op starts when its device is free and its inputs have arrived; a message arrives its
link's transfer time after its producer ends (no queueing), and ops take their mean cost. On
links without bandwidth (latency only) this is exactly the timeline the simulator produces;
with bandwidth, the simulator may queue messages that this estimate lets overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pipesim.problem.ops import Kind, Op, needs, op_key
from pipesim.problem.pipeline import Problem


class Estimate(NamedTuple):
    """A candidate's figures; both are infinite for an order that cannot finish."""

    span: float
    """The longest device span, first op's start to last op's end."""
    makespan: float


def estimate(orders: Sequence[Sequence[Op]], problem: Problem) -> Estimate:
    """The span and makespan of `orders` (one list per device, no fused steps)."""
    pipeline = problem.pipeline
    m = pipeline.microbatches
    # When each op ends, by op key, once placed; and per kind and stage, the inputs (what
    # `needs` and the links say, asked once per kind and stage rather than once per op).
    ends: list[float | None] = [None] * (3 * m * pipeline.num_stages)
    inputs: dict[tuple[Kind, int], tuple[tuple[int, float], ...]] = {}
    clock = [0.0] * len(orders)
    first = [-1.0] * len(orders)
    position = [0] * len(orders)
    remaining = sum(map(len, orders))
    progress = True
    while remaining and progress:
        progress = False
        for device, order in enumerate(orders):
            while position[device] < len(order):
                op = order[position[device]]
                kind, stage, microbatch = op
                rules = inputs.get((kind, stage))
                if rules is None:
                    rules = inputs[kind, stage] = _inputs(op, problem)
                start = clock[device]
                for base, delay in rules:
                    done = ends[base + 3 * microbatch]
                    if done is None:
                        break
                    done += delay
                    if done > start:
                        start = done
                else:
                    if first[device] < 0:
                        first[device] = start
                    clock[device] = end = start + problem.duration(op)
                    ends[op_key(kind, stage, microbatch, m)] = end
                    position[device] += 1
                    remaining -= 1
                    progress = True
                    continue
                break
    if remaining:
        return Estimate(float("inf"), float("inf"))
    spans = [end - start for end, start in zip(clock, first, strict=True) if start >= 0]
    return Estimate(max(spans, default=0.0), max(clock, default=0.0))


def _inputs(op: Op, problem: Problem) -> tuple[tuple[int, float], ...]:
    """`op`'s inputs: each one's key for microbatch 0, and what its message adds to its end
    (nothing for an input on the same device)."""
    pipeline = problem.pipeline
    placement, m = pipeline.placement, pipeline.microbatches
    device = placement[op.stage]
    found = []
    for need in needs(op, pipeline.line_length):
        source = placement[need.op.stage]
        delay = 0.0
        if need.message is not None and source != device:
            delay = problem.network.transfer_time(source, device, need.op.kind)
        found.append((op_key(need.op.kind, need.op.stage, 0, m), delay))
    return tuple(found)
