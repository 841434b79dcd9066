"""The readiness board: what has run, what has arrived, and who waits for either.

Like a SimPy resource owning its queue, the board owns the readiness state and hands out
events: a device that must wait for an input asks for `input_event` and holds only that event;
`complete` and `deliver` record progress and wake whoever waits. Ops are integer keys (see
`op_index`), so every operation is O(1) and nothing scans a store.
"""

from __future__ import annotations

import simpy

from pipesim.simulator.readiness import Waits


class Board(Waits):
    """Readiness of every op of one simulated step, by op key, for devices that wait on
    events (`readiness.Readiness`)."""

    __slots__ = (
        "_awaiting_arrival",
        "_awaiting_completion",
        "_env",
        "delivered",
        "running",
    )

    def __init__(self, env: simpy.Environment, size: int) -> None:
        super().__init__(size)
        self._env = env
        self.delivered = bytearray(size)
        """delivered[key]: the op's output message has reached its consumer's device."""
        self.running: list[simpy.Event | None] = [None] * size
        """running[key]: the timeout of op `key` while it computes. A device waiting for an
        input that is available as soon as that op ends waits on this timeout itself."""
        self._awaiting_completion: dict[int, simpy.Event] = {}
        self._awaiting_arrival: dict[int, simpy.Event] = {}

    def ready(self, message: bool, key: int) -> bool:
        """Whether the input produced by op `key` is there: its message delivered, or, for an
        input local to the device, the op completed."""
        return bool((self.delivered if message else self.completed)[key])

    def input_event(self, message: bool, key: int) -> simpy.Event:
        """The event that fires when the input produced by op `key` is there; one per awaited
        input, shared by whoever asks."""
        waiting = self._awaiting_arrival if message else self._awaiting_completion
        event = waiting.get(key)
        if event is None:
            event = waiting[key] = self._env.event()
        return event

    def complete(self, key: int) -> None:
        """Op `key` has run: wake whoever waits for it."""
        self.completed[key] = 1
        event = self._awaiting_completion.pop(key, None)
        if event is not None:
            event.succeed()

    def deliver(self, key: int) -> None:
        """Op `key`'s output has reached its consumer's device: wake whoever waits for it."""
        self.delivered[key] = 1
        event = self._awaiting_arrival.pop(key, None)
        if event is not None:
            event.succeed()
