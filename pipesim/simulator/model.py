"""The SimPy model: devices, the channels between them, and what has arrived where.

Readiness is bookkept in two flat arrays indexed by an integer op key (an op has completed; its
message has reached the consumer's device), and a device that must wait gets one SimPy event for
the one input it waits for. Nothing scans a store, so each op costs O(1).
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from pipesim.errors import PipesimError, PolicyError, ScheduleStalled
from pipesim.ops import Kind, Need, Op
from pipesim.problem import Problem
from pipesim.schedules.base import Policy
from pipesim.simulator.channel import Channel
from pipesim.simulator.device import Device
from pipesim.trace import OpRecord, Trace, TransferRecord

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
        self.num_stages = pipeline.num_stages
        self._microbatches = pipeline.microbatches
        size = 3 * pipeline.num_stages * pipeline.microbatches
        self._completed = bytearray(size)
        self._delivered = bytearray(size)
        self._waiting_completed: dict[int, simpy.Event] = {}
        self._waiting_delivered: dict[int, simpy.Event] = {}
        self.ops: list[OpRecord] = []
        self.transfers: list[TransferRecord] = []
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

    def _key(self, op: Op) -> int:
        kind = op.kind
        code = 0 if kind is Kind.F else 1 if kind is Kind.B else 2
        return (op.stage * self._microbatches + op.microbatch) * 3 + code

    def has_run(self, op: Op) -> bool:
        return bool(self._completed[self._key(op)])

    def is_available(self, need: Need) -> bool:
        flags = self._delivered if need.message else self._completed
        return bool(flags[self._key(need.op)])

    def wait_for(self, need: Need) -> simpy.Event:
        """The event that fires when `need` becomes available (one per input, shared)."""
        waiting = self._waiting_delivered if need.message else self._waiting_completed
        key = self._key(need.op)
        event = waiting.get(key)
        if event is None:
            event = waiting[key] = self.env.event()
        return event

    def complete(self, op: Op) -> None:
        key = self._key(op)
        self._completed[key] = 1
        event = self._waiting_completed.pop(key, None)
        if event is not None:
            event.succeed()

    def _deliver(self, key: int) -> None:
        self._delivered[key] = 1
        event = self._waiting_delivered.pop(key, None)
        if event is not None:
            event.succeed()

    def send(self, producer: Op, src: int, dst: int) -> simpy.Event | None:
        """Move `producer`'s output to device `dst`; messages within a device are free."""
        key = self._key(producer)
        if src == dst:
            self._deliver(key)
            return None
        channel = self._channels.get((src, dst))
        if channel is None:
            network = self.problem.network
            times = {kind: network.transfer_time(src, dst, kind) for kind in (Kind.F, Kind.B)}
            channel = self._channels[(src, dst)] = Channel(
                self.env, src, dst, times, self._deliver, self.transfers
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
        return Trace(self.policy.name, self.problem, self.ops, self.transfers)

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
            assert device.waiting_for is not None, "a stuck device is always waiting"
            op, need = device.waiting_for
            producer_device = placement[need.op.stage]
            what = f"the {need.message} of {need.op}" if need.message else f"{need.op}"
            waits.append(
                f"device {device.device} waits to run {op}, which needs {what} "
                f"(device {producer_device})"
            )
            waits_on[device.device] = producer_device
        cycle = _find_cycle(waits_on)
        summary = "; ".join(waits)
        if cycle:
            summary += "; cycle: " + " -> ".join(f"device {d}" for d in cycle)
        now = float(self.env.now)
        return ScheduleStalled(
            f"schedule can never finish (stalled at {now:g} ms): {summary}", waits
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
    return Simulation(problem, policy).run(progress)
