"""Why each device sat idle: every idle interval attributed to one cause, from what released
the op that ended it (its device freed, or its last input, and where that input was)."""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise

from pipesim.analysis.readiness import Readiness
from pipesim.problem.ops import ACTIVATION, GRADIENT, Kind
from pipesim.simulator.trace import OP_END, SENT_DST, SENT_END, SENT_QUEUED, SENT_START, OpRecord


class IdleCause(StrEnum):
    """Why a device sat idle; the causes partition its idle time. Before its first op (warmup)
    and after its last (drain); waiting for the input of its next op (an activation for F, a
    gradient for B), split by where that input was: still being computed upstream
    (wait_activation, wait_gradient), queued behind other messages on its link (..._queued) or
    in flight (..._in_flight); held by its own blocking send (blocking_send). The value is the
    JSON key."""

    WARMUP = "warmup"
    WAIT_ACTIVATION = "wait_activation"
    WAIT_ACTIVATION_QUEUED = "wait_activation_queued"
    WAIT_ACTIVATION_IN_FLIGHT = "wait_activation_in_flight"
    WAIT_GRADIENT = "wait_gradient"
    WAIT_GRADIENT_QUEUED = "wait_gradient_queued"
    WAIT_GRADIENT_IN_FLIGHT = "wait_gradient_in_flight"
    BLOCKING_SEND = "blocking_send"
    DRAIN = "drain"

    @property
    def label(self) -> str:
        """How people read it."""
        return _LABELS[self]

    @property
    def on_link(self) -> bool:
        """Whether it is communication: a message queued, in flight, or a blocking send."""
        return self in LINK_CAUSES

    @staticmethod
    def waiting(message: str, where: str = "") -> IdleCause:
        """Waiting for an `message` ("activation" or "gradient") that is being computed
        (`where` ""), "queued" or "in_flight"."""
        return _WAITS[(message, where)]


_LABELS = {
    IdleCause.WARMUP: "warm-up",
    IdleCause.WAIT_ACTIVATION: "waiting for activations being computed",
    IdleCause.WAIT_ACTIVATION_QUEUED: "activations queued on links",
    IdleCause.WAIT_ACTIVATION_IN_FLIGHT: "activations in flight",
    IdleCause.WAIT_GRADIENT: "waiting for gradients being computed",
    IdleCause.WAIT_GRADIENT_QUEUED: "gradients queued on links",
    IdleCause.WAIT_GRADIENT_IN_FLIGHT: "gradients in flight",
    IdleCause.BLOCKING_SEND: "held by blocking sends",
    IdleCause.DRAIN: "drain",
}
_WAITS = {
    (ACTIVATION, ""): IdleCause.WAIT_ACTIVATION,
    (ACTIVATION, "queued"): IdleCause.WAIT_ACTIVATION_QUEUED,
    (ACTIVATION, "in_flight"): IdleCause.WAIT_ACTIVATION_IN_FLIGHT,
    (GRADIENT, ""): IdleCause.WAIT_GRADIENT,
    (GRADIENT, "queued"): IdleCause.WAIT_GRADIENT_QUEUED,
    (GRADIENT, "in_flight"): IdleCause.WAIT_GRADIENT_IN_FLIGHT,
}
IDLE_CAUSES = tuple(IdleCause)
"""Every cause, in the order the summary lists them."""
LINK_CAUSES = (
    IdleCause.WAIT_ACTIVATION_QUEUED,
    IdleCause.WAIT_ACTIVATION_IN_FLIGHT,
    IdleCause.WAIT_GRADIENT_QUEUED,
    IdleCause.WAIT_GRADIENT_IN_FLIGHT,
    IdleCause.BLOCKING_SEND,
)
"""The causes that are communication."""
QUEUED = (IdleCause.WAIT_ACTIVATION_QUEUED, IdleCause.WAIT_GRADIENT_QUEUED)
FILL_AND_DRAIN = (IdleCause.WARMUP, IdleCause.DRAIN)


_AT = {cause: position for position, cause in enumerate(IDLE_CAUSES)}
"""Each cause's position: the attribution adds into a list, since an enum key is hashed in
Python and a run with timed messages has a gap before nearly every op."""
_WAIT_AT = {
    message: tuple(_AT[IdleCause.waiting(message, where)] for where in ("", "queued", "in_flight"))
    for message in (ACTIVATION, GRADIENT)
}
_SENDS = tuple(kind.message for kind in Kind)
"""What an op of each kind code waits for when no input names it (`Kind.message`)."""
_WAIT_BY_KIND = tuple(_WAIT_AT[message or ACTIVATION] for message in _SENDS)
"""By kind code: the positions of the causes of waiting for that kind's output (an input
that is a message), or, for an op released by its own device's op, for what it sends."""


class IdleAttribution:
    """Splits each device's idle time by cause, from what released each op."""

    def __init__(self, readiness: Readiness, gaps_only: bool | None = None) -> None:
        self._readiness = readiness
        self._gaps_only = not readiness.blocking if gaps_only is None else gaps_only
        """Whether only the gaps between ops need a cause: without blocking sends a device is
        free when its op ends (False walks every op, as blocking sends need)."""

    def device(self, device: int, ops: list[OpRecord], makespan: float) -> dict[IdleCause, float]:
        totals = [0.0] * len(IDLE_CAUSES)
        if not ops:
            totals[_AT[IdleCause.WARMUP]] = makespan
            return dict(zip(IDLE_CAUSES, totals, strict=True))
        totals[_AT[IdleCause.WARMUP]] = ops[0].start
        if not self._gaps_only:
            for before, after in pairwise(ops):
                cursor = self._held_by_send(before, after.start, totals)
                if after.start > cursor:
                    self._wait(after, cursor, totals)
            totals[_AT[IdleCause.DRAIN]] = makespan - self._held_by_send(ops[-1], makespan, totals)
            return dict(zip(IDLE_CAUSES, totals, strict=True))
        # Without blocking sends a device is free when its op ends: only gaps need a cause.
        if self._readiness.plain:
            self._plain_gaps(ops, totals)
            totals[_AT[IdleCause.DRAIN]] = makespan - ops[-1].end
            return dict(zip(IDLE_CAUSES, totals, strict=True))
        wait = self._wait
        ends = [record.end for record in ops]
        for index, record in enumerate(ops[1:]):
            if record.start > ends[index]:
                wait(record, ends[index], totals)
        totals[_AT[IdleCause.DRAIN]] = makespan - ops[-1].end
        return dict(zip(IDLE_CAUSES, totals, strict=True))

    def _plain_gaps(self, ops: list[OpRecord], totals: list[float]) -> None:
        """`_wait` for every gap of a device whose ops have only their own inputs (no fused
        steps, no exchanges), inlined: with timed messages nearly every op follows a gap, and
        this is the analysis's largest share. It must say what `_wait` says."""
        inputs, by_key, sent_of = self._readiness.inputs_tables()
        m = self._readiness.index.microbatches
        # Records are read by position and max/min written out as the builtins decide them
        # (max(a, b) is b only if b > a): the same floats, at half the cost per gap.
        for before, record in pairwise(ops):
            cursor = before[OP_END]
            device, stage, kind, microbatch, start, _ = record
            if start <= cursor:
                continue
            key = (stage * m + microbatch) * 3 + kind
            best = -1.0
            transfer = None
            waits = _WAIT_BY_KIND[kind]  # until a message says what the op waited for
            found = False
            for is_message, offset in inputs[stage * 3 + kind]:
                needed = key + offset
                producer = by_key[needed]
                if producer is None:
                    continue
                if is_message:
                    sent = sent_of[needed]
                    if sent is not None and sent[SENT_DST] == device:
                        time, via = sent[SENT_END], sent
                    else:
                        time, via = producer[OP_END], None
                    if not found or time > best:
                        best, transfer, found = time, via, True
                        waits = _WAIT_BY_KIND[needed % 3]
                elif not found or producer[OP_END] > best:
                    best, transfer, found = producer[OP_END], None, True
                    waits = _WAIT_BY_KIND[kind]
            plain, queued_at, in_flight_at = waits
            if transfer is None or best <= cursor:
                totals[plain] += start - cursor
                continue
            posted, left = transfer[SENT_QUEUED], transfer[SENT_START]
            computing = (posted if posted < start else start) - cursor  # min(posted, start)
            if not computing > 0.0:
                computing = 0.0
            queued = (left if left < start else start) - (cursor if cursor > posted else posted)
            if not queued > 0.0:
                queued = 0.0
            totals[plain] += computing
            totals[queued_at] += queued
            totals[in_flight_at] += start - cursor - computing - queued

    def _held_by_send(self, record: OpRecord, until: float, totals: list[float]) -> float:
        """With blocking sends, the device stays held after `record` until its output has
        arrived: count that as blocking_send and return when the device is free."""
        free = min(self._readiness.device_freed(record).time, until)
        totals[_AT[IdleCause.BLOCKING_SEND]] += free - record.end
        return free

    def _wait(self, record: OpRecord, cursor: float, totals: list[float]) -> None:
        """Attribute [cursor, record.start) to the input `record` waited for last."""
        release = self._readiness.last_input(record)
        message = release.message if release is not None else None
        message = message or _SENDS[record.kind] or ACTIVATION
        plain, queued_at, in_flight_at = _WAIT_AT[message]
        start = record.start
        if release is None or release.transfer is None or release.time <= cursor:
            totals[plain] += start - cursor
            return
        transfer = release.transfer
        computing = max(0.0, min(transfer.queued, start) - cursor)
        queued = max(0.0, min(transfer.start, start) - max(transfer.queued, cursor))
        totals[plain] += computing
        totals[queued_at] += queued
        totals[in_flight_at] += start - cursor - computing - queued
