"""What a simulation leaves behind: one flat record per op and per transfer.

Records are NamedTuples (cheap to create on the hot path, easy to test and export). Metrics,
the checker and every renderer read a `Trace`; none of them knows how it was produced.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from operator import itemgetter
from typing import NamedTuple

from pipesim.problem.ops import Fused, Kind, Op, Step
from pipesim.problem.pipeline import Problem

RECORD_KIND, RECORD_START, RECORD_END = itemgetter(2), itemgetter(4), itemgetter(5)
"""An OpRecord's kind, start and end, read in C (for passes over millions of records)."""


class OpRecord(NamedTuple):
    """One op as it ran: on `device`, from `start` to `end` (ms)."""

    device: int
    stage: int
    kind: Kind
    microbatch: int
    start: float
    end: float

    @property
    def op(self) -> Op:
        return Op(self.kind, self.stage, self.microbatch)


class TransferRecord(NamedTuple):
    """One message on the link `src` -> `dst`: the output of op `kind` on `stage` for
    `microbatch`. It was handed to the link at `queued`, started on it at `start` (occupying it
    for size / bandwidth from then) and arrived at `end` (start + latency + size / bandwidth)."""

    src: int
    dst: int
    stage: int
    kind: Kind
    microbatch: int
    queued: float
    start: float
    end: float

    @property
    def producer(self) -> Op:
        return Op(self.kind, self.stage, self.microbatch)


OP_END = OpRecord._fields.index("end")
SENT_DST, SENT_QUEUED, SENT_START, SENT_END = (
    TransferRecord._fields.index(name) for name in ("dst", "queued", "start", "end")
)
"""Field positions, for the loops that read every record (by position: a named field's
lookup made them two to four times as slow)."""


class LinkTotals(NamedTuple):
    """What one link direction carried: `messages`, the time they held it (`busy`, ms) and the
    time they waited for it (`queued`, ms), each summed in the order they were handed over."""

    messages: int
    busy: float
    queued: float


class FusedRecord(NamedTuple):
    """Ops that `device` ran as one step from `start` to `end` (ms): a full backward or an
    overlapped forward-and-backward pair. Their op records share the step's interval, one after
    another in the order listed; every output of the step left at `end`."""

    device: int
    start: float
    end: float
    ops: tuple[Op, ...]
    overlapped: bool
    """A forward paired with a backward (timed at the overlap cost), not a full backward."""


@dataclass(frozen=True)
class Trace:
    """The timeline of one simulated training step, with the problem and policy it came from.

    Records are listed device by device: `ops` each device's ops in the order it ran them,
    `transfers` each device's messages in the order it handed them over, `fused` each device's
    fused steps in order. No order therefore depends on how the event queue breaks a tie
    between two devices, nor on whether a device's times were computed ahead of the clock.
    """

    policy: str
    problem: Problem
    ops: list[OpRecord]
    transfers: list[TransferRecord]
    fused: list[FusedRecord] = field(default_factory=list)
    """The steps that ran several ops as one, device by device in the order they ran."""
    by_device: tuple[list[list[OpRecord]], list[array[int]]] | None = field(
        default=None, repr=False, compare=False
    )
    """The ops already grouped by device, with their keys, when the maker has them (a
    simulation does); None: computed from `ops` when first asked."""
    sent: list[TransferRecord | None] | None = field(default=None, repr=False, compare=False)
    """By the key (`ops.op_key`) of the op whose output it carries, each transfer (None for
    an op that sent nothing), when the maker has them (a simulation does)."""
    link_totals: dict[tuple[int, int], LinkTotals] | None = field(
        default=None, repr=False, compare=False
    )
    """Per link direction that carried a message, what it carried, when the maker tallied it
    (a simulation's links do); None: `summary.link_stats` sums the transfers."""

    @cached_property
    def makespan(self) -> float:
        """When the last op ends: a synchronized step is over (the step starts at 0)."""
        return max(map(RECORD_END, self.ops), default=0.0)

    def ops_by_device(self) -> list[list[OpRecord]]:
        """Each device's ops in the order it ran them (computed once; do not modify)."""
        return self._by_device

    def keys_by_device(self) -> list[array[int]]:
        """The key (`ops.op_key`) of each op of `ops_by_device`, in the same order (recorded
        by the simulation, or computed once for a trace made otherwise; do not modify)."""
        return self._keys_by_device

    @cached_property
    def _keys_by_device(self) -> list[array[int]]:
        if self.by_device is not None:
            return self.by_device[1]
        m = self.problem.pipeline.microbatches
        return [
            array("q", [(stage * m + mb) * 3 + kind for _, stage, kind, mb, _, _ in ops])
            for ops in self.ops_by_device()
        ]  # ops.op_key

    @cached_property
    def _by_device(self) -> list[list[OpRecord]]:
        if self.by_device is not None:
            return self.by_device[0]
        by_device: list[list[OpRecord]] = [[] for _ in range(self.problem.pipeline.devices)]
        for record in self.ops:
            by_device[record.device].append(record)
        return by_device

    @cached_property
    def fused_step(self) -> dict[Op, FusedRecord]:
        """The fused step each fused op ran in (ops run alone are absent)."""
        return {op: step for step in self.fused for op in step.ops}

    def steps_by_device(self) -> list[list[Step]]:
        """Each device's steps in the order it ran them: ops, and fused steps as one `Fused`
        (what a schedule file lists)."""
        steps: list[list[Step]] = []
        for records in self.ops_by_device():
            order: list[Step] = []
            for record in records:
                step = self.fused_step.get(record.op) if self.fused else None
                if step is None:
                    order.append(record.op)
                elif record.op == step.ops[0]:
                    order.append(Fused(step.ops))
            steps.append(order)
        return steps

    def output_ready(self, record: OpRecord) -> float:
        """When the op's output could leave its device: when the op ended or, for an op of a
        fused step, when the whole step did."""
        step = self.fused_step.get(record.op) if self.fused else None
        return record.end if step is None else step.end


class Recording:
    """What each device's process appends to: its ops, the messages it sent and its fused
    steps, a list of each per device, until they make a `Trace`."""

    __slots__ = ("fused", "keys", "ops", "sent", "transfers")

    def __init__(self, devices: int, size: int) -> None:
        self.ops: list[list[OpRecord]] = [[] for _ in range(devices)]
        self.keys: list[array[int]] = [array("q") for _ in range(devices)]
        """The key of each op record, in the same order: the simulation computed it anyway,
        and the analysis would otherwise recompute it from the records (8 bytes each, not an
        int object and a pointer)."""
        self.transfers: list[list[TransferRecord]] = [[] for _ in range(devices)]
        """Per sending device."""
        self.sent: list[TransferRecord | None] = [None] * size
        """By the key of the op whose output it carries (`size` keys), each transfer: what
        the analysis looks up for each op that waited for a message."""
        self.fused: list[list[FusedRecord]] = [[] for _ in range(devices)]

    def op_count(self) -> int:
        return sum(map(len, self.ops))

    def trace(
        self,
        policy: str,
        problem: Problem,
        link_totals: dict[tuple[int, int], LinkTotals] | None = None,
    ) -> Trace:
        return Trace(
            policy,
            problem,
            # device by device, joined in C: a run can hold millions of records
            list(chain.from_iterable(self.ops)),
            list(chain.from_iterable(self.transfers)),
            list(chain.from_iterable(self.fused)),
            # The per-device lists are the trace's grouping by device already, with its keys.
            (self.ops, self.keys),
            self.sent,
            link_totals,
        )
