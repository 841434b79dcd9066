"""A pipeline device as a SimPy process: ask the policy, wait for inputs, compute, send."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import simpy

from pipesim.errors import PolicyError
from pipesim.problem.ops import Fused, Need, Op, Step, fused_problem
from pipesim.schedules.base import DeviceProgram, OrderedProgram
from pipesim.simulator.trace import FusedRecord, OpRecord

if TYPE_CHECKING:
    from pipesim.simulator.model import Simulation


class Device:
    """One device. Its `run` generator is the SimPy process; `waiting_for` says what it is
    blocked on, so that a stalled schedule can be diagnosed."""

    def __init__(self, sim: Simulation, device: int, program: DeviceProgram) -> None:
        self.sim = sim
        self.device = device
        self.program = program
        self.finished = False
        self.waiting_for: tuple[Op, int] | None = None
        """The op this device waits to run and the index of the input it waits for."""
        self.waiting_in: Fused | None = None
        """The fused step that op belongs to, if any."""

    @property
    def now(self) -> float:
        return float(self.sim.env.now)

    def inputs_ready(self, op: Op) -> bool:
        """Part of the `DeviceView` a policy sees."""
        index = self.sim.index
        key = index.key(op)
        slot = op.stage * 3 + key % 3
        return all(
            (self.sim.delivered if message else self.sim.completed)[key + offset]
            for message, offset in index.inputs[slot]
        )

    def _decisions(self) -> Iterator[Step]:
        """A dynamic policy's decisions, one at a time (a fixed order is iterated directly); a
        policy that fails is reported, not propagated as a crash."""
        while True:
            try:
                op = self.program.next_op(self)
            except Exception as error:
                raise PolicyError(
                    f"policy {self.sim.policy.name!r} failed on device {self.device}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            if op is None:
                return
            yield op

    def run(self) -> Generator[simpy.Event, Any, None]:
        # NOTE: this loop runs once per op; everything it needs is bound to locals and the
        # dependency rules come precompiled as per-slot tables (see pipesim/op_index.py).
        sim = self.sim
        env = sim.env
        timeout = env.timeout
        table = sim.index
        owner, duration, target = table.owner, table.duration, table.target
        plan, running = sim.input_plan, sim.running
        stages, m = table.num_stages, table.microbatches
        completed, delivered = sim.completed, sim.delivered
        records = sim.ops
        device = self.device
        blocking = sim.blocking_sends
        free_message = sim.free_message
        waiting_completed, waiting_delivered = sim.waiting_completed, sim.waiting_delivered
        ops = self.program.ops if isinstance(self.program, OrderedProgram) else self._decisions()
        for op in ops:
            if isinstance(op, Fused):
                yield from self._run_fused(op)
                continue
            kind, stage, mb = op
            slot = stage * 3 + kind
            if not (0 <= stage < stages and 0 <= mb < m) or owner[slot] != device:
                self._misplaced(op)
            key = (stage * m + mb) * 3 + kind
            if completed[key]:
                raise PolicyError(f"policy asked device {device} to run {op} a second time")
            for index, (message, offset, at_compute_end) in enumerate(plan[slot]):
                needed = key + offset
                if not (delivered if message else completed)[needed]:
                    self.waiting_for = (op, index)
                    # An input whose producer is computing right now, and that is available
                    # as soon as it ends, is awaited on the producer's own timeout: its process
                    # is called back first, marks the input, then this one resumes.
                    computing = running[needed] if at_compute_end else None
                    yield computing if computing is not None else sim.wait_for(message, needed)
            self.waiting_for = None
            start = env.now
            running[key] = compute = timeout(duration[slot])
            yield compute
            running[key] = None
            records.append(OpRecord(device, stage, kind, mb, start, env.now))
            completed[key] = 1
            event = waiting_completed.pop(key, None)
            if event is not None:
                event.succeed()
            dst = target[slot]
            if dst < 0:
                continue
            if free_message[slot]:
                # NOTE: Simulation.deliver, inlined: this runs once per op.
                delivered[key] = 1
                event = waiting_delivered.pop(key, None)
                if event is not None:
                    event.succeed()
            else:
                arrival = sim.send(op, key, device, dst)
                if blocking:
                    yield arrival
        self.finished = True

    def _run_fused(self, fused: Fused) -> Generator[simpy.Event, Any, None]:
        """Run ops as one step: wait for every input produced outside it, hold the device for
        all of them, then let every output leave (rare enough not to need the inlined path)."""
        sim = self.sim
        table = sim.index
        m = table.microbatches
        problem = sim.problem
        wrong = fused_problem(fused, table.num_stages)
        if wrong is not None:
            raise PolicyError(f"policy asked device {self.device} to run {wrong}")
        keys = []
        for op in fused.ops:
            if not (0 <= op.stage < table.num_stages and 0 <= op.microbatch < m):
                self._misplaced(op)
            key = table.key(op)
            if table.owner[table.slot(key)] != self.device:
                self._misplaced(op)
            if sim.completed[key] or key in keys:
                raise PolicyError(f"policy asked device {self.device} to run {op} a second time")
            keys.append(key)
        for op, key in zip(fused.ops, keys, strict=True):
            for index, (message, offset, at_compute_end) in enumerate(
                sim.input_plan[table.slot(key)]
            ):
                needed = key + offset
                if needed in keys:
                    continue
                if not (sim.delivered if message else sim.completed)[needed]:
                    self.waiting_for, self.waiting_in = (op, index), fused
                    computing = sim.running[needed] if at_compute_end else None
                    yield computing if computing is not None else sim.wait_for(message, needed)
        self.waiting_for = self.waiting_in = None
        env = sim.env
        scale = problem.step_scale(fused.overlapped)
        parts = [scale * table.duration[table.slot(key)] for key in keys]
        start = env.now
        compute = env.timeout(sum(parts))
        for key in keys:
            sim.running[key] = compute
        yield compute
        end = env.now
        at = start
        for index, (op, key, part) in enumerate(zip(fused.ops, keys, parts, strict=True)):
            sim.running[key] = None
            # The last op ends with the step (float sums may drift by an ulp either way).
            until = end if index == len(keys) - 1 else min(at + part, end)
            sim.ops.append(OpRecord(self.device, op.stage, op.kind, op.microbatch, at, until))
            at = until
        sim.fused.append(FusedRecord(self.device, start, end, fused.ops, fused.overlapped))
        for key in keys:
            sim.complete(key)
        arrivals = []
        for op, key in zip(fused.ops, keys, strict=True):
            dst = table.target[table.slot(key)]
            if dst < 0:
                continue
            if sim.free_message[table.slot(key)]:
                sim.deliver(key)
            else:
                arrivals.append(sim.send(op, key, self.device, dst))
        if sim.blocking_sends and arrivals:
            # The step's sends leave together and hold the device until all have arrived.
            yield env.all_of(arrivals)

    def waiting_need(self) -> tuple[Op, Need] | None:
        """What a stalled device waits for, in the terms of the dependency rules."""
        if self.waiting_for is None:
            return None
        op, index = self.waiting_for
        return op, self.sim.index.need(op, index)

    def _misplaced(self, op: Op) -> None:
        pipeline = self.sim.problem.pipeline
        if not (0 <= op.stage < pipeline.num_stages and 0 <= op.microbatch < pipeline.microbatches):
            raise PolicyError(f"policy asked device {self.device} to run {op}, out of range")
        raise PolicyError(
            f"policy asked device {self.device} to run {op}, but stage {op.stage} lives on "
            f"device {pipeline.placement[op.stage]}"
        )
