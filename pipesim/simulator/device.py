"""A pipeline device as a SimPy process: ask the policy, wait for inputs, compute, send."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from pipesim.errors import PolicyError
from pipesim.ops import Need, Op, message_target, needs
from pipesim.schedules.base import DeviceProgram
from pipesim.trace import OpRecord

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
        self.waiting_for: tuple[Op, Need] | None = None

    @property
    def now(self) -> float:
        return float(self.sim.env.now)

    def inputs_ready(self, op: Op) -> bool:
        """Part of the `DeviceView` a policy sees."""
        return all(self.sim.is_available(need) for need in needs(op, self.sim.num_stages))

    def run(self) -> Generator[simpy.Event, Any, None]:
        sim = self.sim
        env = sim.env
        num_stages = sim.num_stages
        placement = sim.problem.pipeline.placement
        duration = sim.problem.duration
        records = sim.ops
        while (op := self._next_op()) is not None:
            self._check_owned(op)
            for need in needs(op, num_stages):
                if not sim.is_available(need):
                    self.waiting_for = (op, need)
                    yield sim.wait_for(need)
            self.waiting_for = None
            start = env.now
            yield env.timeout(duration(op))
            records.append(OpRecord(self.device, op.stage, op.kind, op.microbatch, start, env.now))
            sim.complete(op)
            target = message_target(op, num_stages)
            if target is not None:
                arrival = sim.send(op, self.device, placement[target])
                if arrival is not None and sim.blocking_sends:
                    yield arrival
        self.finished = True

    def _next_op(self) -> Op | None:
        """The policy's decision; a policy that fails is reported, not propagated as a crash."""
        try:
            return self.program.next_op(self)
        except Exception as error:
            raise PolicyError(
                f"policy {self.sim.policy.name!r} failed on device {self.device}: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _check_owned(self, op: Op) -> None:
        pipeline = self.sim.problem.pipeline
        if not (0 <= op.stage < pipeline.num_stages and 0 <= op.microbatch < pipeline.microbatches):
            raise PolicyError(f"policy asked device {self.device} to run {op}, out of range")
        if pipeline.placement[op.stage] != self.device:
            raise PolicyError(
                f"policy asked device {self.device} to run {op}, but stage {op.stage} lives on "
                f"device {pipeline.placement[op.stage]}"
            )
        if self.sim.has_run(op):
            raise PolicyError(f"policy asked device {self.device} to run {op} a second time")
