"""The SimPy model: devices, the channels between them, and what has arrived where.

Readiness is bookkept in two flat arrays indexed by an integer op key (an op has completed; its
message has reached the consumer's device). A device that must wait for an op that is computing
right now waits on that op's own timeout; otherwise it gets one SimPy event for the one input it
waits for. Nothing scans a store, so each op costs O(1).
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from pipesim.errors import PipesimError, PolicyError, ScheduleStalled
from pipesim.problem.ops import Kind, Op
from pipesim.problem.pipeline import Problem
from pipesim.schedules.base import Policy
from pipesim.simulator.channel import Channel
from pipesim.simulator.device import Device
from pipesim.simulator.gc_pause import cyclic_gc_paused
from pipesim.simulator.op_index import KINDS, OpIndex
from pipesim.simulator.trace import FusedRecord, OpRecord, Trace, TransferRecord

_PROGRESS_EVERY = 50_000
"""Events between two progress reports: coarse, so that reporting costs nothing measurable."""


class Simulation:
    """One run of `policy` on `problem`. Build it, then call `run()` once."""

    def __init__(self, problem: Problem, policy: Policy) -> None:
        pipeline = problem.pipeline
        policy.check(pipeline.devices, pipeline.chunks, pipeline.microbatches)
        self.env = simpy.Environment(initial_time=0.0)
        self.problem = problem
        self.policy = policy
        self.blocking_sends = problem.network.blocking
        self.index = OpIndex(problem)
        self.completed = bytearray(self.index.size)
        """completed[key]: the op has run."""
        self.delivered = bytearray(self.index.size)
        """delivered[key]: the op's output message has reached the consumer's device."""
        self.waiting_completed: dict[int, simpy.Event] = {}
        self.waiting_delivered: dict[int, simpy.Event] = {}
        network = problem.network
        self.free_message = [
            dst < 0
            or dst == self.index.owner[slot]
            or network.transfer_time(self.index.owner[slot], dst, KINDS[slot % 3]) == 0
            for slot, dst in enumerate(self.index.target)
        ]
        """Per slot: the op's output reaches its consumer at once (same device, or a link
        that carries it in no time), so it takes no channel and no transfer record."""
        self.input_plan = [
            tuple(
                (message, offset, not message or self.free_message[producer])
                for (message, offset), producer in zip(inputs, producers, strict=True)
            )
            for inputs, producers in zip(self.index.inputs, self.index.input_slots, strict=True)
        ]
        """Per slot: (message?, key offset, available when its producer's compute ends?) per
        input. For the last kind, a device waiting on an op that is running can wait on that
        op's own timeout instead of an event of its own."""
        self.running: list[simpy.Event | None] = [None] * self.index.size
        """running[key]: the timeout of op `key` while it computes."""
        self.ops: list[OpRecord] = []
        self.transfers: list[TransferRecord] = []
        self.fused: list[FusedRecord] = []
        self._channels: dict[tuple[int, int], Channel] = {}
        try:
            programs = policy.programs(problem)
        except PipesimError:
            raise
        except Exception as error:
            raise PolicyError(
                f"policy {policy.name!r} failed to plan: {type(error).__name__}: {error}"
            ) from error
        if len(programs) != pipeline.devices:
            raise PolicyError(
                f"policy {policy.name!r} gave {len(programs)} device programs for "
                f"{pipeline.devices} devices"
            )
        self.devices = [Device(self, device, program) for device, program in enumerate(programs)]

    def wait_for(self, message: bool, key: int) -> simpy.Event:
        """The event that fires when op `key` completes (or, for a message, when its output
        reaches the consumer): one per awaited input, shared."""
        waiting = self.waiting_delivered if message else self.waiting_completed
        event = waiting.get(key)
        if event is None:
            event = waiting[key] = self.env.event()
        return event

    def complete(self, key: int) -> None:
        """Op `key` has run: wake whoever waits for it (the device loop inlines this)."""
        self.completed[key] = 1
        event = self.waiting_completed.pop(key, None)
        if event is not None:
            event.succeed()

    def deliver(self, key: int) -> None:
        """Op `key`'s output has reached its consumer's device."""
        self.delivered[key] = 1
        event = self.waiting_delivered.pop(key, None)
        if event is not None:
            event.succeed()

    def send(self, producer: Op, key: int, src: int, dst: int) -> simpy.Event:
        """Hand `producer`'s output to the link towards `dst`; return its arrival. (Messages
        that take no time never get here: the device delivers them itself.)"""
        channel = self._channels.get((src, dst))
        if channel is None:
            network = self.problem.network
            occupancy = {kind: network.occupancy(src, dst, kind) for kind in (Kind.F, Kind.B)}
            latency = network.link(src, dst).latency
            channel = self._channels[(src, dst)] = Channel(
                self.env, src, dst, latency, occupancy, self.deliver, self.transfers
            )
        return channel.send(producer, key)

    def run(self, progress: Callable[[int, int], None] | None = None) -> Trace:
        """Simulate to the end; `progress(ops done, ops in all)` is called every
        `_PROGRESS_EVERY` events, never per op."""
        for device in self.devices:
            self.env.process(device.run())
        if progress is None:
            self.env.run()
        else:
            self._run_reporting(progress)
        stuck = [device for device in self.devices if not device.finished]
        if stuck:
            raise self._stall_report(stuck)
        return Trace(self.policy.name, self.problem, self.ops, self.transfers, self.fused)

    def _run_reporting(self, progress: Callable[[int, int], None]) -> None:
        pipeline = self.problem.pipeline
        total = (
            pipeline.num_stages * pipeline.microbatches * (3 if self.problem.split_backward else 2)
        )
        step = self.env.step
        try:
            while True:
                for _ in range(_PROGRESS_EVERY):
                    step()
                progress(len(self.ops), total)
        except simpy.core.EmptySchedule:
            progress(len(self.ops), total)

    def _stall_report(self, stuck: list[Device]) -> ScheduleStalled:
        """Say, for each stuck device, which op it waits to run and what that op waits for."""
        placement = self.problem.pipeline.placement
        waits: list[str] = []
        waits_on: dict[int, int] = {}
        for device in stuck:
            waiting = device.waiting_need()
            assert waiting is not None, "a stuck device is always waiting"
            op, need = waiting
            producer_device = placement[need.op.stage]
            what = f"the {need.message} of {need.op}" if need.message else f"{need.op}"
            step = f" (fused in {device.waiting_in})" if device.waiting_in is not None else ""
            waits.append(
                f"device {device.device} waits to run {op}{step}, which needs {what} "
                f"(device {producer_device})"
            )
            waits_on[device.device] = producer_device
        cycle = _find_cycle(waits_on)
        summary = "; ".join(waits)
        if cycle:
            summary += "; cycle: " + " -> ".join(f"device {d}" for d in cycle)
        now = float(self.env.now)
        return ScheduleStalled(
            f"schedule can never finish (stalled at {now:g} ms): {summary}", waits, cycle
        )


def _find_cycle(waits_on: dict[int, int]) -> list[int]:
    """A cycle in the wait-for graph (device -> device it waits on), closed, or []."""
    for start in sorted(waits_on):
        path = [start]
        seen = {start}
        node = waits_on.get(start)
        while node is not None and node not in seen:
            path.append(node)
            seen.add(node)
            node = waits_on.get(node)
        if node is not None:
            cycle = path[path.index(node) :]
            return [*cycle, node]
    return []


def simulate(
    problem: Problem, policy: Policy, progress: Callable[[int, int], None] | None = None
) -> Trace:
    """Run `policy` on `problem` and return the timeline."""
    with cyclic_gc_paused():
        return Simulation(problem, policy).run(progress)
