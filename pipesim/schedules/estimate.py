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

from pipesim.problem.ops import Op, needs
from pipesim.problem.pipeline import Problem


class Estimate(NamedTuple):
    """A candidate's figures; both are infinite for an order that cannot finish."""

    span: float
    """The longest device span, first op's start to last op's end."""
    makespan: float


def estimate(orders: Sequence[Sequence[Op]], problem: Problem) -> Estimate:
    """The span and makespan of `orders` (one list per device, no fused steps)."""
    pipeline, network = problem.pipeline, problem.network
    placement, stages = pipeline.placement, pipeline.line_length
    ends: dict[Op, float] = {}
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
                start = clock[device]
                for need in needs(op, stages):
                    done = ends.get(need.op)
                    if done is None:
                        break
                    source = placement[need.op.stage]
                    if need.message is not None and source != device:
                        done += network.transfer_time(source, device, need.op.kind)
                    start = max(start, done)
                else:
                    if first[device] < 0:
                        first[device] = start
                    clock[device] = ends[op] = start + problem.duration(op)
                    position[device] += 1
                    remaining -= 1
                    progress = True
                    continue
                break
    if remaining:
        return Estimate(float("inf"), float("inf"))
    spans = [end - start for end, start in zip(clock, first, strict=True) if start >= 0]
    return Estimate(max(spans, default=0.0), max(clock, default=0.0))
