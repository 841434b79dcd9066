"""The critical path of a timeline: the chain of ops and messages that set the makespan.

Idle time by cause says what each device waited for directly; the critical path says what the
step as a whole waited for. Walking back from the last op to end, each op was started by the
latest of its device's previous op (or that op's blocking send) and its inputs; following those
links back to time 0 splits the makespan into computing, messages queued behind others on a
link, and messages in flight. A schedule is communication-bound when links take most of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.op_index import OpIndex
from pipesim.trace import OpRecord, Trace, TransferRecord


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


def critical_path(trace: Trace) -> CriticalPath:
    if not trace.ops:
        return CriticalPath(0.0, 0.0, 0.0, 0.0, 0)
    index = OpIndex(trace.problem)
    blocking = trace.problem.network.blocking
    by_key: list[OpRecord | None] = [None] * index.size
    previous: dict[int, OpRecord] = {}
    for ops in trace.ops_by_device():
        earlier = None
        for key, record in zip(index.keys(ops), ops, strict=True):
            by_key[key] = record
            if earlier is not None:
                previous[key] = earlier
            earlier = record
    sent: dict[int, TransferRecord] = {index.key(t): t for t in trace.transfers}
    compute = queued = in_flight = waiting = 0.0
    count = 0
    record = max(trace.ops, key=lambda r: (r.end, r.device))
    while True:
        compute += record.end - record.start
        count += 1
        key = index.key(record)
        # Each candidate: (time it freed this op, the op before it on the path, transfer crossed).
        candidates: list[tuple[float, OpRecord, TransferRecord | None]] = []
        earlier = previous.get(key)
        if earlier is not None:
            send = sent.get(index.key(earlier)) if blocking else None
            freed = max(earlier.end, send.end) if send is not None else earlier.end
            candidates.append((freed, earlier, send))
        for is_message, offset in index.inputs[index.slot(key)]:
            producer = by_key[key + offset]
            if producer is None:
                continue
            transfer = sent.get(key + offset) if is_message else None
            if transfer is not None and transfer.dst == record.device:
                candidates.append((transfer.end, producer, transfer))
            else:
                candidates.append((producer.end, producer, None))
        if not candidates:
            waiting += record.start
            break
        freed, cause, transfer = max(candidates, key=lambda c: c[0])
        gap = record.start - freed
        if transfer is not None:
            in_flight += transfer.end - transfer.start
            queued += transfer.start - transfer.queued
            gap += transfer.queued - cause.end
        waiting += max(0.0, gap)
        record = cause
    return CriticalPath(compute, queued, in_flight, waiting, count)
