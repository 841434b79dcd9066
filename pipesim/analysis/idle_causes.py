"""Why each device sat idle: every idle interval attributed to one cause, from what released
the op that ended it (its device freed, or its last input, and where that input was)."""

from __future__ import annotations

from itertools import pairwise

from pipesim.analysis.readiness import Readiness
from pipesim.problem.ops import ACTIVATION, GRADIENT, Kind
from pipesim.simulator.trace import OpRecord

IDLE_CAUSES = (
    "warmup",
    "wait_activation",
    "wait_activation_queued",
    "wait_activation_in_flight",
    "wait_gradient",
    "wait_gradient_queued",
    "wait_gradient_in_flight",
    "blocking_send",
    "drain",
)
"""Why a device sat idle; the causes partition its idle time. Before its first op (warmup) and
after its last (drain); waiting for the input of its next op (an activation for F, a gradient
for B), split by where that input was: still being computed upstream (wait_activation,
wait_gradient), queued behind other messages on its link (..._queued) or in flight
(..._in_flight); held by its own blocking send (blocking_send)."""

LINK_CAUSES = (
    "wait_activation_queued",
    "wait_activation_in_flight",
    "wait_gradient_queued",
    "wait_gradient_in_flight",
    "blocking_send",
)
"""The causes that are communication."""


class IdleAttribution:
    """Splits each device's idle time by cause, from what released each op."""

    def __init__(self, readiness: Readiness, gaps_only: bool | None = None) -> None:
        self._readiness = readiness
        self._gaps_only = not readiness.blocking if gaps_only is None else gaps_only
        """Whether only the gaps between ops need a cause: without blocking sends a device is
        free when its op ends (False walks every op, as blocking sends need)."""

    def device(self, device: int, ops: list[OpRecord], makespan: float) -> dict[str, float]:
        causes = dict.fromkeys(IDLE_CAUSES, 0.0)
        if not ops:
            causes["warmup"] = makespan
            return causes
        causes["warmup"] = ops[0].start
        if not self._gaps_only:
            for before, after in pairwise(ops):
                cursor = self._held_by_send(before, after.start, causes)
                if after.start > cursor:
                    self._wait(after, cursor, causes)
            causes["drain"] = makespan - self._held_by_send(ops[-1], makespan, causes)
            return causes
        # Without blocking sends a device is free when its op ends: only gaps need a cause.
        wait = self._wait
        ends = [record.end for record in ops]
        for index, record in enumerate(ops[1:]):
            if record.start > ends[index]:
                wait(record, ends[index], causes)
        causes["drain"] = makespan - ops[-1].end
        return causes

    def _held_by_send(self, record: OpRecord, until: float, causes: dict[str, float]) -> float:
        """With blocking sends, the device stays held after `record` until its output has
        arrived: count that as blocking_send and return when the device is free."""
        free = min(self._readiness.device_freed(record).time, until)
        causes["blocking_send"] += free - record.end
        return free

    def _wait(self, record: OpRecord, cursor: float, causes: dict[str, float]) -> None:
        """Attribute [cursor, record.start) to the input `record` waited for last."""
        release = self._readiness.last_input(record)
        if release is not None and release.message is not None:
            message = release.message
        else:
            message = ACTIVATION if record.kind is Kind.F else GRADIENT
        start = record.start
        if release is None or release.transfer is None or release.time <= cursor:
            causes[f"wait_{message}"] += start - cursor
            return
        transfer = release.transfer
        computing = max(0.0, min(transfer.queued, start) - cursor)
        queued = max(0.0, min(transfer.start, start) - max(transfer.queued, cursor))
        causes[f"wait_{message}"] += computing
        causes[f"wait_{message}_queued"] += queued
        causes[f"wait_{message}_in_flight"] += start - cursor - computing - queued
