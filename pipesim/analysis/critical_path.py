"""The critical path of a timeline: the chain of ops and messages that set the makespan.

Idle time by cause says what each device waited for directly; the critical path says what the
step as a whole waited for. Walking back from the last op to end, each op was started by the
latest of its device's previous op (or that op's blocking send) and its inputs; following those
links back to time 0 splits the makespan into computing, messages queued behind others on a
link, and messages in flight. A schedule is communication-bound when links take most of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.analysis.readiness import Readiness
from pipesim.simulator.trace import OpRecord, Trace


@dataclass(frozen=True)
class CriticalPath:
    """How the makespan divides along the critical path (the parts add up to the makespan)."""

    compute: float
    queued: float
    """Messages on the path waiting for their link (busy with earlier messages)."""
    in_flight: float
    waiting: float
    """Gaps the path could not explain (0 for timelines the simulator produces)."""
    ops: int
    """Ops on the path."""

    @property
    def links(self) -> float:
        return self.queued + self.in_flight


def critical_path(trace: Trace, readiness: Readiness | None = None) -> CriticalPath:
    """Walk back from the last op to end; `readiness` may be passed in to reuse its lookups."""
    if not trace.ops:
        return CriticalPath(0.0, 0.0, 0.0, 0.0, 0)
    readiness = readiness or Readiness(trace)
    index = readiness.index
    previous: list[OpRecord | None] = [None] * index.size
    """By op key, the op its device ran before it."""
    for keys, ops in zip(readiness.keys_by_device, trace.ops_by_device(), strict=True):
        for key, before in zip(keys[1:], ops, strict=False):
            previous[key] = before
    compute = queued = in_flight = waiting = 0.0
    count = 0
    # A device's ops do not overlap, so its last op ends last: the step ends with one of them.
    lasts = [ops[-1] for ops in trace.ops_by_device() if ops]
    record = max(lasts, key=lambda r: (r.end, r.device))
    while True:
        compute += record.end - record.start
        count += 1
        earlier = previous[index.key(record)]
        device = readiness.device_freed(earlier) if earlier is not None else None
        data = readiness.last_input(record)
        # Whichever freed the op last is on the path (its device, on a tie).
        cause = (
            device if data is None or (device is not None and device.time >= data.time) else data
        )
        if cause is None:
            waiting += record.start
            break
        gap = record.start - cause.time
        transfer = cause.transfer
        if transfer is not None:
            in_flight += transfer.end - transfer.start
            queued += transfer.start - transfer.queued
            gap += transfer.queued - cause.producer.end
        waiting += max(0.0, gap)
        record = cause.producer
    return CriticalPath(compute, queued, in_flight, waiting, count)
