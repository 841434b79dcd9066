"""What the two engines share: which ops have run, who waits for what, and the collaborators
every device process is given.

Both readiness keepers, the event board (`board.Board`: a device waits on SimPy events until
an input is there) and the timetable (`ordered_device.Timetable`: a fixed order computes each
time as soon as its inputs' are known), answer `Readiness`: they own completion and the record
of which device waits to run which op for which input, so the stall report asks them, not the
devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import simpy

from pipesim.problem.ops import Fused, Op
from pipesim.problem.pipeline import Problem
from pipesim.simulator.channel import Links
from pipesim.simulator.op_index import OpIndex
from pipesim.simulator.trace import Recording


class Wait(NamedTuple):
    """A device blocked: it waits to run `op` (inside the fused step `fused`, if any) until
    input number `which` of `op` is there (`OpIndex.need` says which that is); or, with
    `receiver`, in a blocking exchange after running `op`, until device `receiver` posts the
    receive of `op`'s output."""

    op: Op
    which: int
    fused: Fused | None = None
    receiver: int | None = None


class Readiness(Protocol):
    """Completion and waits of one simulated step, by op key and device."""

    completed: bytearray
    """completed[key]: op `key` has run (read directly on the hot paths)."""
    waits: dict[int, Wait]
    """Per device, the last input it waited for: for a device that has not finished, what it
    is blocked on now (written directly on the hot paths, never cleared)."""


class Waits:
    """The part of `Readiness` both keepers implement alike."""

    __slots__ = ("completed", "waits")

    def __init__(self, size: int) -> None:
        self.completed = bytearray(size)
        self.waits: dict[int, Wait] = {}


class Activity:
    """What the simulation is doing right now, for a progress display on another thread."""

    __slots__ = ("asking", "interrupted", "stop")

    def __init__(self) -> None:
        self.asking: int | None = None
        """The device whose (dynamic) policy is deciding its next op, if any."""
        self.interrupted: str | None = None
        """Set when Ctrl-C reached a policy: SimPy turns the exception into the failure of
        one process, which the environment raises only after the events queued before it, so
        every other policy must stop before it is asked again."""
        self.stop: type[KeyboardInterrupt] = KeyboardInterrupt
        """What stopped it: Ctrl-C, or SIGTERM (`errors.Terminated`), raised again as such."""


@dataclass(frozen=True)
class Context:
    """Everything a device process works with beside its own program: one object, shared."""

    env: simpy.Environment
    problem: Problem
    index: OpIndex
    readiness: Readiness
    links: Links
    records: Recording
    activity: Activity
    policy_name: str
