"""When each op could start, read back from a trace: the one place that answers "what released
this op?" for the idle-time causes and the critical path.

An op starts at the latest of two moments: its device is free (its previous op ended, or that
op's blocking send arrived) and its last input is ready (the producer ended, or the message it
sent arrived on this device).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import NamedTuple

from pipesim.problem.ops import Kind
from pipesim.problem.runtime import interleaved_pair
from pipesim.simulator.op_index import OpIndex
from pipesim.simulator.trace import OP_END, SENT_DST, SENT_END, OpRecord, Trace, TransferRecord

_MESSAGE_OF = tuple(kind.message for kind in Kind)
"""What an op of each kind code sends (`Kind.message`), by code."""


InputsTables = tuple[
    list[tuple[tuple[bool, int], ...]], list[OpRecord | None], dict[int, TransferRecord]
]
"""Each slot's inputs, the records by key, the transfers by their sender's key."""


LastInput = tuple[int, float, str | None, bool]
"""What an op waited for last, as numbers: the key of the op whose output it was (-1: none),
when it was ready, the message it came as (None: local to the stage), whether it crossed a
link."""
_NOTHING: LastInput = (-1, 0.0, None, False)


class Release(NamedTuple):
    """What made something ready: at `time`, because `producer` ended, through `transfer` if
    its output crossed a link."""

    time: float
    producer: OpRecord
    transfer: TransferRecord | None
    message: str | None = None
    """ACTIVATION or GRADIENT for an input that travels between stages, None for one local to
    the stage (or for a device freed)."""


class Readiness:
    """Lookups over one trace, built once: records and transfers by op key, and the fused steps.

    A fused step starts once every input of its ops produced outside it is ready, and its
    outputs leave when it ends, so what released its first op is the last of those inputs, and
    what produced each of its outputs is, for this purpose, its last op.
    """

    def __init__(self, trace: Trace) -> None:
        problem = trace.problem
        self.index = index = OpIndex(problem)
        self.exchanges = problem.exchanges
        self.blocking = problem.network.blocking or problem.exchanges
        """Whether a device can be held after an op ends (by its blocking send, or in a
        blocking exchange)."""
        self.keys_by_device = trace.keys_by_device()
        """Each device's op keys, in its order (the critical path reuses them)."""
        self._by_key: list[OpRecord | None] = [None] * index.size
        place = self._by_key.__setitem__
        for device_keys, ops in zip(self.keys_by_device, trace.ops_by_device(), strict=True):
            assert len(device_keys) == len(ops)
            any(map(place, device_keys, ops))  # by_key[key] = record, in C (None: goes on)
        sent = trace.sent
        if sent is None:  # a trace not simulated here: from the records
            m = index.microbatches
            sent = [None] * index.size
            for transfer in trace.transfers:
                sent[(transfer[2] * m + transfer[4]) * 3 + transfer[3]] = transfer  # index.key
        self._sent: list[TransferRecord | None] = sent
        """By the key of the op whose output it carries, each transfer (None: none)."""
        self._paired: dict[int, int] = {}
        """With blocking exchanges: for the first op of a group that shares one exchange,
        the key of the op after it (whose inputs came in the exchange before both)."""
        self._exchange: dict[tuple[int, float], TransferRecord] = {}
        """With blocking exchanges: per (device, time posted), the message of that exchange
        that arrived last."""
        if problem.exchanges:
            chunks = problem.pipeline.chunks
            for order, ops in zip(self.keys_by_device, trace.ops_by_device(), strict=True):
                for at, (a, b) in enumerate(pairwise(ops)):
                    if interleaved_pair(a.op, b.op, chunks):
                        self._paired[order[at]] = order[at + 1]
            for transfer in trace.transfers:
                slot = (transfer.src, transfer.queued)
                held = self._exchange.get(slot)
                if held is None or transfer.end > held.end:
                    self._exchange[slot] = transfer
        self._step_of: dict[int, tuple[int, ...]] = {}
        """For each op of a fused step, the keys of the step's ops, in order."""
        for step in trace.fused:
            keys = tuple(index.key(op) for op in step.ops)
            for key in keys:
                self._step_of[key] = keys

    def _producer(self, key: int) -> OpRecord | None:
        """The record whose end is when op `key`'s output could leave: its own, or that of the
        last op of its fused step."""
        step = self._step_of.get(key)
        return self._by_key[key if step is None else step[-1]]

    def last_input(self, record: OpRecord) -> Release | None:
        """The input that became ready last (the first of equals) among those `record`'s op
        waited for (for the first op of a fused step, those of every op in the step), or None
        for an op that waited for no input."""
        index = self.index
        key = (record.stage * index.microbatches + record.microbatch) * 3 + record.kind
        if self.plain:
            return self._last_input_plain(record, key)
        step = self._step_of.get(key)
        if step is None:
            keys: tuple[int, ...] = (key,)
        elif step[0] == key:
            keys = step
        else:
            return None  # started when the op before it in the step ended
        paired = self._paired.get(key)
        latest: Release | None = None
        for consumer in (*keys, paired) if paired is not None else keys:
            for is_message, offset in self.index.inputs[self.index.slot(consumer)]:
                needed = consumer + offset
                if needed in keys or (consumer == paired and not is_message):
                    continue  # produced inside the step (or, for the op paired after it,
                    # on this device: only its messages came in the exchange before both)
                producer = self._producer(needed)
                if producer is None:
                    continue  # never ran: the checker reports it
                message = Kind.from_key(needed).message if is_message else None
                sent = self._sent[needed] if is_message else None
                if sent is not None and sent.dst == record.device:
                    candidate = Release(sent.end, producer, sent, message)
                else:
                    candidate = Release(producer.end, producer, None, message)
                if latest is None or candidate.time > latest.time:
                    latest = candidate
        return latest

    @property
    def plain(self) -> bool:
        """No fused steps and no exchanges: an op's inputs are its own (`inputs_tables`)."""
        return not self._step_of and not self._paired

    def inputs_tables(
        self,
    ) -> tuple[
        list[tuple[tuple[bool, int], ...]], list[OpRecord | None], list[TransferRecord | None]
    ]:
        """For a `plain` trace, what `last_input` reads, for a caller that walks every op:
        each slot's inputs (message?, key offset), the records by key, the transfers by the
        key of the op that sent them."""
        return self.index.inputs, self._by_key, self._sent

    def _last_input_plain(self, record: OpRecord, key: int) -> Release | None:
        """`last_input` without fused steps or exchanges, the common case."""
        ((needed, time, message, crossed),) = self.last_inputs((record,))
        if needed < 0:
            return None
        producer = self._by_key[needed]
        assert producer is not None  # found among the records
        return Release(time, producer, self._sent[needed] if crossed else None, message)

    def last_inputs(self, records: Iterable[OpRecord]) -> list[LastInput]:
        """What `last_input` says of each record, as numbers, for a caller that walks every op
        (the HTML page): in a plain trace, one op's inputs compared without building a Release
        or an Op for each (a run with timed messages asks this for nearly every op)."""
        m = self.index.microbatches
        found: list[LastInput] = []
        if not self.plain:
            for record in records:
                release = self.last_input(record)
                if release is None:
                    found.append(_NOTHING)
                    continue
                producer = release.producer
                key = (producer.stage * m + producer.microbatch) * 3 + producer.kind
                found.append((key, release.time, release.message, release.transfer is not None))
            return found
        # NOTE: once per op of a page; records read by position (`trace.OP_END`, ...): with
        # named fields this loop took 4x as long.
        inputs, by_key, sent = self.index.inputs, self._by_key, self._sent
        append, nothing = found.append, _NOTHING
        for device, stage, kind, microbatch, _, _ in records:
            key = (stage * m + microbatch) * 3 + kind
            best = nothing
            for is_message, offset in inputs[stage * 3 + kind]:  # the op's slot
                needed = key + offset
                made = by_key[needed]
                if made is None:
                    continue  # never ran: the checker reports it
                if is_message:
                    transfer = sent[needed]
                    if transfer is not None and transfer[SENT_DST] == device:
                        time = transfer[SENT_END]
                        if best is nothing or time > best[1]:
                            best = (needed, time, _MESSAGE_OF[needed % 3], True)
                        continue
                    time = made[OP_END]
                    if best is nothing or time > best[1]:
                        best = (needed, time, _MESSAGE_OF[needed % 3], False)
                    continue
                time = made[OP_END]
                if best is nothing or time > best[1]:
                    best = (needed, time, None, False)
            append(best)
        return found

    def device_freed(self, record: OpRecord) -> Release:
        """When `record`'s device could start its next op: at the op's end, or, with blocking
        sends, when the op's output (every output of its fused step, for a step's last op) has
        arrived."""
        if not self.blocking:
            return Release(record.end, record, None)
        key = self.index.key(record)
        if self.exchanges:
            last = self._exchange.get((record.device, record.end))
            if key in self._paired or last is None or last.end <= record.end:
                return Release(record.end, record, None)
            return Release(last.end, record, last)
        step = self._step_of.get(key)
        if step is not None and step[-1] != key:
            return Release(record.end, record, None)  # the step goes on
        sent = [t for k in step or (key,) if (t := self._sent[k]) is not None]
        if not sent:
            return Release(record.end, record, None)
        transfer = max(sent, key=lambda t: t.end)
        return Release(max(transfer.end, record.end), record, transfer)
