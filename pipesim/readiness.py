"""When each op could start, read back from a trace: the one place that answers "what released
this op?" for the idle-time causes and the critical path.

An op starts at the latest of two moments: its device is free (its previous op ended, or that
op's blocking send arrived) and its last input is ready (the producer ended, or the message it
sent arrived on this device).
"""

from __future__ import annotations

from typing import NamedTuple

from pipesim.op_index import OpIndex
from pipesim.trace import OpRecord, Trace, TransferRecord


class Release(NamedTuple):
    """What made something ready: at `time`, because `producer` ended, through `transfer` if
    its output crossed a link."""

    time: float
    producer: OpRecord
    transfer: TransferRecord | None


class Readiness:
    """Lookups over one trace, built once: records and transfers by op key."""

    def __init__(self, trace: Trace) -> None:
        self.index = index = OpIndex(trace.problem)
        self._blocking = trace.problem.network.blocking
        self._by_key: list[OpRecord | None] = [None] * index.size
        for key, record in zip(index.keys(trace.ops), trace.ops, strict=True):
            self._by_key[key] = record
        self._sent = {index.key(transfer): transfer for transfer in trace.transfers}

    def last_input(self, record: OpRecord) -> Release | None:
        """The input of `record`'s op that became ready last (the first of equals), or None
        for an op with no input that ran."""
        key = self.index.key(record)
        latest: Release | None = None
        for is_message, offset in self.index.inputs[self.index.slot(key)]:
            producer = self._by_key[key + offset]
            if producer is None:
                continue  # never ran: the checker reports it
            sent = self._sent.get(key + offset) if is_message else None
            if sent is not None and sent.dst == record.device:
                candidate = Release(sent.end, producer, sent)
            else:
                candidate = Release(producer.end, producer, None)
            if latest is None or candidate.time > latest.time:
                latest = candidate
        return latest

    def device_freed(self, record: OpRecord) -> Release:
        """When `record`'s device could start its next op: at the op's end, or, with blocking
        sends, when the op's output has arrived."""
        transfer = self._sent.get(self.index.key(record)) if self._blocking else None
        if transfer is None:
            return Release(record.end, record, None)
        return Release(max(transfer.end, record.end), record, transfer)
