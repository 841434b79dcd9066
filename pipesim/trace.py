"""What a simulation leaves behind: one flat record per op and per transfer.

Records are NamedTuples (cheap to create on the hot path, easy to test and export). Metrics,
the checker and every renderer read a `Trace`; none of them knows how it was produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from pipesim.ops import Kind, Op
from pipesim.problem import Problem


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
    `microbatch`. It was handed to the link at `queued`, occupied it from `start`, arrived at
    `end`."""

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


@dataclass(frozen=True)
class Trace:
    """The timeline of one simulated training step, with the problem and policy it came from.

    `ops` is ordered by start time within each device (devices interleaved in simulation order);
    `transfers` in the order messages were handed to links.
    """

    policy: str
    problem: Problem
    ops: list[OpRecord]
    transfers: list[TransferRecord]

    @cached_property
    def makespan(self) -> float:
        """When the last op ends: a synchronized step is over (the step starts at 0)."""
        return max((record.end for record in self.ops), default=0.0)

    def ops_by_device(self) -> list[list[OpRecord]]:
        """Each device's ops in the order it ran them (computed once; do not modify)."""
        return self._by_device

    @cached_property
    def _by_device(self) -> list[list[OpRecord]]:
        by_device: list[list[OpRecord]] = [[] for _ in range(self.problem.pipeline.devices)]
        for record in self.ops:
            by_device[record.device].append(record)
        return by_device
