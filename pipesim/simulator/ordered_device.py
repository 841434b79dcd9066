"""A device that follows a fixed order, computing each op's times as soon as its inputs' are known.

A device process of `device.Device` holds every op on a SimPy timeout and waits on an event for
every input that has not arrived yet: one event per op, and the clock advances op by op. When a
device's order is fixed (every built-in schedule, a schedule file), nothing it does depends on the
clock: an op starts when the device is free and its inputs are there, so its start is the latest
of those times, and a message's arrival follows from its link's FIFO queue, which only its
sending device feeds, in that device's order. This process therefore runs ahead of the clock:
it computes each op's start and end, and each message's arrival, as soon as the times they
depend on are known, and yields to SimPy only when an input's producer has not been computed
yet. The timeline is the same, float for float (tests/test_ordered_device.py runs both on random
problems with queueing links, blocking sends, jitter and fused steps); what changes is the
number of SimPy events, from one per op to one per wait, about one op in two for 1F1B.

Every time is computed by the same float expressions as the event path: an op ends at
start + duration, and a message arrives at queued + (end - queued), which is when SimPy fires a
timeout of end - queued set at queued.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from pipesim.errors import PolicyError
from pipesim.problem.ops import Fused, Op, op_key
from pipesim.problem.runtime import interleaved_pair, one_batch
from pipesim.schedules.base import OrderedProgram
from pipesim.simulator.device import Device
from pipesim.simulator.readiness import Wait, Waits
from pipesim.simulator.trace import OpRecord


class Timetable(Waits):
    """When each op's output is available, as soon as that is known, and who waits to know it
    (`readiness.Readiness` for devices run ahead of the clock).

    Entry `key` is when op `key`'s output is there on its own device (the op's end, or its
    fused step's); entry `size + key` is when it has reached the device it is sent to; with
    blocking exchanges, entry `2 size + key` is when its receiver posted the receive. -1 means
    not known yet."""

    __slots__ = ("_env", "at", "size", "waiting")

    def __init__(self, env: simpy.Environment, size: int, exchanges: bool = False) -> None:
        super().__init__(size)
        self._env = env
        self.size = size
        self.at: list[float] = [-1.0] * ((3 if exchanges else 2) * size)
        self.waiting: dict[int, simpy.Event] = {}
        """Per entry, the event of the device waiting to know it (read on the hot path)."""

    def known(self, entry: int) -> simpy.Event:
        """The event that fires once entry `entry` is known."""
        event = self.waiting.get(entry)
        if event is None:
            event = self.waiting[entry] = self._env.event()
        return event

    def publish(self, entry: int, time: float) -> None:
        self.at[entry] = time
        event = self.waiting.pop(entry, None)
        if event is not None:
            event.succeed()


class OrderedDevice(Device):
    """A device whose program is an `OrderedProgram`, run ahead of the clock."""

    @property
    def timetable(self) -> Timetable:
        timetable = self.context.readiness
        assert isinstance(timetable, Timetable)
        return timetable

    def run(self) -> Generator[simpy.Event, Any, None]:
        if self.problem.exchanges:
            yield from self._run_exchanging()
            return
        # NOTE: this loop runs once per op; everything it needs is bound to locals.
        program = self.program
        assert isinstance(program, OrderedProgram)
        index = self.index
        duration, target = index.duration, index.target
        stages, m = index.num_stages, index.microbatches
        runs_on = index.runs_on
        timetable = self.timetable
        completed, waits = timetable.completed, timetable.waits
        at, waiting, known = timetable.at, timetable.waiting, timetable.known
        size = timetable.size
        entries = index.entry_offsets
        device = self.device
        # the links out of this device's own slots (an op of another slot is refused first)
        free_message = index.free_message
        channels = {
            slot: None
            if target[slot] < 0 or free_message[slot]
            else self.links.channel(device, target[slot])
            for slot in index.slots_of[device]
        }
        record = self.records.ops[device].append
        record_key = self.records.keys[device].append
        new = tuple.__new__  # an OpRecord without NamedTuple's Python-level __new__
        blocking = self.problem.network.blocking
        scales = self.problem.op_scales
        free = 0.0
        for op in program.ops:
            if isinstance(op, Fused):
                free = yield from self._run_fused_ahead(op, free)
                continue
            # The same checks as Device.run's, inlined in both hot loops: change them together.
            kind, stage, mb = op
            slot = stage * 3 + kind
            key = (stage * m + mb) * 3 + kind  # ops.op_key, inlined in both hot loops
            if not (0 <= stage < stages and 0 <= mb < m) or runs_on[key] != device:
                self._misplaced(op)
            if completed[key]:
                raise PolicyError(f"policy asked device {device} to run {op} a second time")
            start = free
            for offset in entries[slot]:
                entry = key + offset
                ready = at[entry]
                if ready < 0:
                    waits[device] = new(Wait, (op, entries[slot].index(offset), None, None))
                    yield known(entry)
                    ready = at[entry]
                if ready > start:
                    start = ready
            end = start + (duration[slot] if scales is None else duration[slot] * scales[key])
            record(new(OpRecord, (device, stage, kind, mb, start, end)))
            record_key(key)
            completed[key] = 1
            at[key] = end
            if waiting and key in waiting:
                waiting.pop(key).succeed()
            channel = channels[slot]
            if channel is not None:
                arrival = channel.hand_over(kind, stage, mb, key, end)
                if blocking:
                    end = arrival
            elif target[slot] >= 0:
                arrival = end
            else:
                free = end
                continue
            entry = size + key
            at[entry] = arrival
            if waiting and entry in waiting:
                waiting.pop(entry).succeed()
            free = end
        self.finished = True

    def _run_exchanging(self) -> Generator[simpy.Event, Any, None]:
        """Run the order as a runtime with blocking exchanges does (`problem.runtime`): after
        each group of ops (one op, or an interleaved forward and backward), an exchange of
        the group's outputs and the next group's inputs, in one batch or in two (`one_batch`).
        A message leaves when its sender has posted it and its receiver has posted the
        receive (and its link is free); the device waits for all of the exchange's messages.
        In one batch, receives are posted before sends are waited on, as the batch posts
        both."""
        program = self.program
        assert isinstance(program, OrderedProgram)
        index, timetable = self.index, self.timetable
        size, at = timetable.size, timetable.at
        device, m = self.device, index.microbatches
        scales = self.problem.op_scales
        groups: list[list[Op]] = []
        for step in program.ops:
            if isinstance(step, Fused):
                raise PolicyError(
                    f"blocking exchanges (--runtime megatron) run one op between two; policy "
                    f"{self.policy_name!r} fuses {step} (use --runtime async)"
                )
            if (
                groups
                and len(groups[-1]) == 1
                and interleaved_pair(groups[-1][0], step, self.problem.pipeline.chunks)
            ):
                groups[-1].append(step)
            else:
                groups.append([step])

        def receives(group: list[Op]) -> list[tuple[Op, int, int]]:
            """(op, input number, producer key) of each input the group gets from another
            device."""
            found = []
            for op in group:
                key = op_key(op.kind, op.stage, op.microbatch, m)
                for which, (message, offset) in enumerate(index.inputs[index.slot(key)]):
                    producer = key + offset
                    if message and index.owner[index.slot(producer)] != device:
                        found.append((op, which, producer))
            return found

        def arrived(wanted: list[tuple[Op, int, int]]) -> Generator[simpy.Event, Any, float]:
            latest = 0.0
            for op, which, producer in wanted:
                if at[size + producer] < 0:
                    timetable.waits[device] = Wait(op, which)
                    yield timetable.known(size + producer)
                latest = max(latest, at[size + producer])
            return latest

        wanted = receives(groups[0]) if groups else []
        for _, _, producer in wanted:
            timetable.publish(2 * size + producer, 0.0)
        free = yield from arrived(wanted)
        chunks = self.problem.pipeline.chunks
        for number, group in enumerate(groups):
            for op in group:
                free = yield from self._compute_exchanging(op, free, scales)
            posted = free
            following = groups[number + 1] if number + 1 < len(groups) else None
            wanted = receives(following) if following is not None else []
            together = following is not None and one_batch(group[-1], following[0], chunks)
            if together:
                for _, _, producer in wanted:
                    timetable.publish(2 * size + producer, posted)
            done = posted
            for op in group:
                key = op_key(op.kind, op.stage, op.microbatch, m)
                dst = index.target[index.slot(key)]
                if dst < 0:
                    continue
                if dst == device:
                    timetable.publish(size + key, at[key])
                    continue
                if at[2 * size + key] < 0:
                    timetable.waits[device] = Wait(op, 0, None, dst)
                    yield timetable.known(2 * size + key)
                start = max(posted, at[2 * size + key])
                arrival = self.links.channel(device, dst).hand_over(
                    op.kind, op.stage, op.microbatch, key, start, queued=posted
                )
                timetable.publish(size + key, arrival)
                done = max(done, arrival)
            if not together:  # the sends complete, then the receives are posted
                for _, _, producer in wanted:
                    timetable.publish(2 * size + producer, done)
            free = max(done, (yield from arrived(wanted)))
        self.finished = True

    def _compute_exchanging(
        self, op: Op, free: float, scales: list[float] | None
    ) -> Generator[simpy.Event, Any, float]:
        """Run `op` once the device is free and its inputs on this device are there (those
        from other devices came in the exchange before it); return its end."""
        index, timetable = self.index, self.timetable
        device = self.device
        kind, stage, mb = op
        key = op_key(kind, stage, mb, index.microbatches)
        if not (0 <= stage < index.num_stages and 0 <= mb < index.microbatches) or (
            index.runs_on[key] != device
        ):
            self._misplaced(op)
        if timetable.completed[key]:
            raise PolicyError(f"policy asked device {device} to run {op} a second time")
        start = free
        slot = index.slot(key)
        for which, (message, offset) in enumerate(index.inputs[slot]):
            producer = key + offset
            entry = producer + timetable.size if message else producer
            if timetable.at[entry] < 0:
                timetable.waits[device] = Wait(op, which)
                yield timetable.known(entry)
            start = max(start, timetable.at[entry])
        duration = index.duration[slot] * (1.0 if scales is None else scales[key])
        end = start + duration
        self.records.ops[device].append(OpRecord(device, stage, kind, mb, start, end))
        self.records.keys[device].append(key)
        timetable.completed[key] = 1
        timetable.publish(key, end)
        return end

    def _run_fused_ahead(self, fused: Fused, free: float) -> Generator[simpy.Event, Any, float]:
        """Run ops as one step: they start when the device is free and every input produced
        outside the step is there, hold the device for all of them, and every output leaves at
        the step's end. Returns when the device is free again."""
        index, timetable = self.index, self.timetable
        size = timetable.size
        keys = self._fused_keys(fused)
        start = free
        for op, key in zip(fused.ops, keys, strict=True):
            for which, (message, offset, _) in enumerate(index.input_plan[index.slot(key)]):
                needed = key + offset
                if needed in keys:
                    continue
                entry = needed + size if message else needed
                if timetable.at[entry] < 0:
                    timetable.waits[self.device] = Wait(op, which, fused)
                    yield timetable.known(entry)
                start = max(start, timetable.at[entry])
        parts = self._fused_parts(fused, keys)
        end = start + sum(parts)
        self._record_fused(fused, keys, parts, start, end)
        for key in keys:
            timetable.completed[key] = 1
            timetable.publish(key, end)
        free = end
        for op, key in zip(fused.ops, keys, strict=True):
            slot = index.slot(key)
            dst = index.target[slot]
            if dst < 0:
                continue
            if index.free_message[slot]:
                arrival = end
            else:
                arrival = self.links.channel(self.device, dst).hand_over(
                    op.kind, op.stage, op.microbatch, key, end
                )
                if self.problem.network.blocking:
                    # The step's sends leave together and hold the device until all arrive.
                    free = max(free, arrival)
            timetable.publish(size + key, arrival)
        return free

    def clock(self) -> float:
        """The latest time this device has computed: its last op's end or message's arrival,
        which is where the clock of the event path would stand once this device stalls."""
        latest = max((record.end for record in self.records.ops[self.device]), default=0.0)
        for transfer in self.records.transfers[self.device]:
            latest = max(latest, transfer.queued + (transfer.end - transfer.queued))
        return latest
