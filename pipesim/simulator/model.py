"""The SimPy model: one process per device, the links between them, and the readiness board.

`Simulation` wires them together: the board (what has run and arrived, who waits for it), the
links (one FIFO channel per direction), the recording (the trace's lists) and a `Device`
process per device, then runs the environment until every policy is done or nothing can move.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from pipesim.errors import PipesimError, PolicyError, ScheduleIncomplete, ScheduleStalled
from pipesim.problem.ops import Op
from pipesim.problem.pipeline import Problem
from pipesim.schedules.base import OrderedProgram, Policy
from pipesim.simulator.board import Board
from pipesim.simulator.channel import Links
from pipesim.simulator.device import Device
from pipesim.simulator.gc_pause import cyclic_gc_paused
from pipesim.simulator.op_index import OpIndex
from pipesim.simulator.ordered_device import OrderedDevice, Timetable
from pipesim.simulator.readiness import Activity, Context
from pipesim.simulator.trace import Recording, Trace

_PROGRESS_EVERY = 10_000
"""Events between two progress reports: coarse, so that reporting costs nothing measurable.
(A device run ahead of the clock may compute many ops per event: about two for 1F1B.)"""


class Simulation:
    """One run of `policy` on `problem`. Build it, then call `run()` once."""

    def __init__(self, problem: Problem, policy: Policy, ahead: bool = True) -> None:
        """`ahead`: run fixed orders ahead of the clock (`ordered_device`); False runs every
        device on the event path, the reference the tests hold the other to."""
        pipeline = problem.pipeline
        if pipeline.microbatch_group is None:  # a group replaces the rounds the check asks for
            policy.check(pipeline.devices, pipeline.chunks, pipeline.microbatches)
        self.env = simpy.Environment(initial_time=0.0)
        self.problem = problem
        self.policy = policy
        self.index = OpIndex(problem)
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
        self.ahead = ahead and all(isinstance(program, OrderedProgram) for program in programs)
        if problem.exchanges and not all(isinstance(p, OrderedProgram) for p in programs):
            raise PolicyError(
                f"blocking exchanges (--runtime megatron) run a fixed order; policy "
                f"{policy.name!r} decides as it goes (give it a fixed order, or --runtime async)"
            )
        self.recording = Recording(pipeline.devices, self.index.size)
        self.activity = Activity()
        readiness: Board | Timetable
        if self.ahead:
            readiness = Timetable(self.env, self.index.size, problem.exchanges)
            deliver = _handed_over_ahead
        else:
            readiness = board = Board(self.env, self.index.size)
            deliver = board.deliver
        self.readiness = readiness
        self.links = Links(
            self.env, problem.network, deliver, self.recording, problem.message_scales
        )
        context = Context(
            self.env,
            problem,
            self.index,
            readiness,
            self.links,
            self.recording,
            self.activity,
            policy.name,
        )
        kind = OrderedDevice if self.ahead else Device
        self.devices: list[Device] = [
            kind(device, program, context) for device, program in enumerate(programs)
        ]

    def run(self, progress: Callable[[int, int], None] | None = None) -> Trace:
        """Simulate to the end; `progress(ops done, ops in all)` is called every
        `_PROGRESS_EVERY` events, never per op."""
        for device in self.devices:
            self.env.process(device.run())
        describe = getattr(progress, "describe", None)
        if callable(describe):
            describe(self.status)
        if progress is None:
            self.env.run()
        else:
            self._run_reporting(progress)
        stuck = [device for device in self.devices if not device.finished]
        if stuck:
            raise self._stall_report(stuck)
        if self.recording.op_count() < self.problem.ops_in_step:
            raise self._missing_report()
        return self.recording.trace(self.policy.name, self.problem, self.links.totals())

    def status(self) -> str | None:
        """What the simulation waits on now, when it is a policy's decision."""
        asking = self.activity.asking
        if asking is None:
            return None
        return f"waiting on policy {self.policy.name!r} for device {asking}'s next op"

    def _run_reporting(self, progress: Callable[[int, int], None]) -> None:
        total = self.problem.ops_in_step
        step = self.env.step
        try:
            while True:
                for _ in range(_PROGRESS_EVERY):
                    step()
                progress(self.recording.op_count(), total)
        except simpy.core.EmptySchedule:
            progress(self.recording.op_count(), total)

    def _missing_report(self) -> ScheduleIncomplete:
        """Name, per device, the ops its policy never ran (as `validate` does for files)."""
        index = self.index
        kinds = self.problem.kinds
        missing: dict[int, list[Op]] = {}
        for stage in range(index.num_stages):
            for mb in range(index.microbatches):
                if not self.problem.pipeline.runs(stage, mb):
                    continue
                for kind in kinds:
                    op = Op(kind, stage, mb)
                    if not self.readiness.completed[index.key(op)]:
                        owner = self.problem.pipeline.placement[stage]
                        missing.setdefault(owner, []).append(op)
        total = sum(len(ops) for ops in missing.values())
        parts = []
        for device, ops in sorted(missing.items()):
            shown = ", ".join(map(str, ops[:4])) + (
                f" and {len(ops) - 4} more" if len(ops) > 4 else ""
            )
            parts.append(f"device {device} never ran {shown}")
        return ScheduleIncomplete(
            f"policy {self.policy.name!r} ended the step with {total} op(s) never run: "
            + "; ".join(parts)
        )

    def _stall_report(self, stuck: list[Device]) -> ScheduleStalled:
        """Say, for each stuck device, which op it waits to run and what that op waits for."""
        placement = self.problem.pipeline.placement
        waits: list[str] = []
        waits_on: dict[int, int] = {}
        for device in stuck:
            wait = self.readiness.waits.get(device.device)
            assert wait is not None, "a stuck device is always waiting"
            if wait.receiver is not None:
                waits.append(
                    f"device {device.device} waits, after {wait.op}, for device "
                    f"{wait.receiver} to receive its {wait.op.kind.message} (a blocking "
                    "exchange)"
                )
                waits_on[device.device] = wait.receiver
                continue
            op, need = wait.op, self.index.need(wait.op, wait.which)
            producer_device = placement[need.op.stage]
            what = f"the {need.message} of {need.op}" if need.message else f"{need.op}"
            step = f" (fused in {wait.fused})" if wait.fused is not None else ""
            waits.append(
                f"device {device.device} waits to run {op}{step}, which needs {what} "
                f"(device {producer_device})"
            )
            waits_on[device.device] = producer_device
        cycle = _find_cycle(waits_on)
        summary = "; ".join(waits)
        if cycle:
            summary += "; cycle: " + " -> ".join(f"device {d}" for d in cycle)
        now = (
            max(device.clock() for device in self.devices if isinstance(device, OrderedDevice))
            if self.ahead
            else float(self.env.now)
        )
        return ScheduleStalled(
            f"schedule can never finish (stalled at {now:g} ms): {summary}", waits, cycle
        )


def _handed_over_ahead(key: int) -> None:
    """Devices run ahead of the clock hand messages over themselves (`Channel.hand_over`);
    nothing is delivered by events."""
    raise AssertionError(f"message {key} sent on the event path of an ordered run")


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
    """Run `policy` on `problem` and return the timeline.

    Raises:
        PolicyError: the policy fails, or asks for an op that is not its device's, or twice.
        ScheduleStalled: some device waits for an input that never comes.
        ScheduleIncomplete: every device's policy finished with ops never run.
    """
    with cyclic_gc_paused():
        return Simulation(problem, policy).run(progress)
