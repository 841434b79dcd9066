"""A pipeline device as a SimPy process: ask the policy, wait for inputs, compute, send."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import simpy

from pipesim.errors import PipesimError, PolicyError
from pipesim.problem.ops import Fused, Op, Step, fused_problem
from pipesim.schedules.base import DeviceProgram, OrderedProgram
from pipesim.simulator.board import Board
from pipesim.simulator.readiness import Context, Wait
from pipesim.simulator.trace import FusedRecord, OpRecord


class Device:
    """One device. Its `run` generator is the SimPy process; while it is blocked, the
    readiness keeper holds what it waits for (`readiness.Wait`), so that a stalled schedule can
    be diagnosed."""

    def __init__(self, device: int, program: DeviceProgram, context: Context) -> None:
        self.device = device
        self.program = program
        self.context = context
        self.env = context.env
        self.problem = context.problem
        self.index = context.index
        self.links = context.links
        self.records = context.records
        self.policy_name = context.policy_name
        self.finished = False

    @property
    def board(self) -> Board:
        """The event board this device waits on (the event path's readiness keeper)."""
        board = self.context.readiness
        assert isinstance(board, Board)
        return board

    @property
    def now(self) -> float:
        return float(self.env.now)

    def inputs_ready(self, op: Op) -> bool:
        """Part of the `DeviceView` a policy sees."""
        index = self.index
        key = index.key(op)
        return all(
            self.board.ready(message, key + offset)
            for message, offset in index.inputs[index.slot(key)]
        )

    def _decisions(self) -> Iterator[Step]:
        """A dynamic policy's decisions, one at a time (a fixed order is iterated directly); a
        policy that fails is reported, not propagated as a crash."""
        while True:
            activity = self.context.activity
            if activity.interrupted is not None:
                raise activity.stop(activity.interrupted)
            activity.asking = self.device
            try:
                op = self.program.next_op(self)
            except KeyboardInterrupt as stop:
                activity.interrupted = (
                    f"while policy {self.policy_name!r} decided device {self.device}'s next op"
                )
                activity.stop = type(stop)
                raise activity.stop(activity.interrupted) from None
            except PipesimError:
                raise
            except BaseException as error:  # sys.exit() or GeneratorExit: the policy failed
                raise PolicyError(
                    f"policy {self.policy_name!r} failed on device {self.device}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            activity.asking = None
            if op is None:
                return
            yield op

    def run(self) -> Generator[simpy.Event, Any, None]:
        """Ask the policy, wait for the op's inputs, compute, send; until the policy is done."""
        # NOTE: this loop runs once per op; everything it needs is bound to locals, and the
        # dependency rules come precompiled as per-slot tables (see op_index.py).
        env = self.env
        timeout = env.timeout
        index = self.index
        duration, target = index.duration, index.target
        plan, free_message = index.input_plan, index.free_message
        stages, m = index.num_stages, index.microbatches
        runs_on = index.runs_on
        board = self.board
        completed, delivered = board.completed, board.delivered
        complete, deliver, input_event = board.complete, board.deliver, board.input_event
        running, waits = board.running, board.waits
        new = tuple.__new__  # a Wait without NamedTuple's Python-level __new__
        record = self.records.ops[self.device].append
        record_key = self.records.keys[self.device].append
        send = self.links.send
        device = self.device
        blocking = self.problem.network.blocking
        scales = self.problem.op_scales
        ops = self.program.ops if isinstance(self.program, OrderedProgram) else self._decisions()
        for op in ops:
            if isinstance(op, Fused):
                yield from self._run_fused(op)
                continue
            # The same checks as OrderedDevice.run's, inlined in both hot loops: change them
            # together.
            kind, stage, mb = op
            slot = stage * 3 + kind
            key = (stage * m + mb) * 3 + kind  # ops.op_key, inlined in both hot loops
            if not (0 <= stage < stages and 0 <= mb < m) or runs_on[key] != device:
                self._misplaced(op)
            if completed[key]:
                raise PolicyError(f"policy asked device {device} to run {op} a second time")
            for which, (message, offset, at_compute_end) in enumerate(plan[slot]):
                needed = key + offset
                if not (delivered if message else completed)[needed]:
                    waits[device] = new(Wait, (op, which, None, None))
                    # An input whose producer is computing right now, and that is available
                    # as soon as it ends, is awaited on the producer's own timeout: its process
                    # is called back first, marks the input, then this one resumes.
                    computing = running[needed] if at_compute_end else None
                    yield computing if computing is not None else input_event(message, needed)
            start = env.now
            cost = duration[slot] if scales is None else duration[slot] * scales[key]
            running[key] = compute = timeout(cost)
            yield compute
            running[key] = None
            record(OpRecord(device, stage, kind, mb, start, env.now))
            record_key(key)
            complete(key)
            dst = target[slot]
            if dst < 0:
                continue
            if free_message[slot]:
                deliver(key)
            else:
                arrival = send(op, key, device, dst)
                if blocking:
                    yield arrival
        self.finished = True

    def _run_fused(self, fused: Fused) -> Generator[simpy.Event, Any, None]:
        """Run ops as one step: wait for every input produced outside it, hold the device for
        all of them, then let every output leave (rare enough not to need the inlined path)."""
        index, board = self.index, self.board
        running = board.running
        keys = self._fused_keys(fused)
        for op, key in zip(fused.ops, keys, strict=True):
            for which, (message, offset, at_compute_end) in enumerate(
                index.input_plan[index.slot(key)]
            ):
                needed = key + offset
                if needed not in keys and not board.ready(message, needed):
                    board.waits[self.device] = Wait(op, which, fused)
                    computing = running[needed] if at_compute_end else None
                    yield computing if computing is not None else board.input_event(message, needed)
        env = self.env
        parts = self._fused_parts(fused, keys)
        start = env.now
        compute = env.timeout(sum(parts))
        for key in keys:
            running[key] = compute
        yield compute
        end = env.now
        for key in keys:
            running[key] = None
        self._record_fused(fused, keys, parts, start, end)
        for key in keys:
            board.complete(key)
        arrivals = []
        for op, key in zip(fused.ops, keys, strict=True):
            slot = index.slot(key)
            dst = index.target[slot]
            if dst < 0:
                continue
            if index.free_message[slot]:
                board.deliver(key)
            else:
                arrivals.append(self.links.send(op, key, self.device, dst))
        if self.problem.network.blocking and arrivals:
            # The step's sends leave together and hold the device until all have arrived.
            yield env.all_of(arrivals)

    def _fused_parts(self, fused: Fused, keys: list[int]) -> list[float]:
        """How long each op of a fused step takes within it (`Problem.fused_parts`)."""
        return self.problem.fused_parts(fused.ops, fused.overlapped)

    def _record_fused(
        self, fused: Fused, keys: list[int], parts: list[float], start: float, end: float
    ) -> None:
        """Record a fused step that ran from `start` to `end`: its ops one after another
        within it, then the step."""
        at = start
        for position, (op, key, part) in enumerate(zip(fused.ops, keys, parts, strict=True)):
            # The last op ends with the step (float sums may drift by an ulp either way).
            until = end if position == len(keys) - 1 else min(at + part, end)
            self.records.ops[self.device].append(
                OpRecord(self.device, op.stage, op.kind, op.microbatch, at, until)
            )
            self.records.keys[self.device].append(key)
            at = until
        self.records.fused[self.device].append(
            FusedRecord(self.device, start, end, fused.ops, fused.overlapped)
        )

    def _fused_keys(self, fused: Fused) -> list[int]:
        """The keys of a fused step's ops, once each is known to be this device's to run."""
        index = self.index
        wrong = fused_problem(fused, index.line_length)
        if wrong is not None:
            raise PolicyError(f"policy asked device {self.device} to run {wrong}")
        keys: list[int] = []
        for op in fused.ops:
            if not (
                0 <= op.stage < index.num_stages and 0 <= op.microbatch < index.microbatches
            ) or not self.problem.pipeline.runs(op.stage, op.microbatch):
                self._misplaced(op)
            key = index.key(op)
            if index.owner[index.slot(key)] != self.device:
                self._misplaced(op)
            if self.context.readiness.completed[key] or key in keys:
                raise PolicyError(f"policy asked device {self.device} to run {op} a second time")
            keys.append(key)
        return keys

    def _misplaced(self, op: Op) -> None:
        pipeline = self.problem.pipeline
        if not (0 <= op.stage < pipeline.num_stages and 0 <= op.microbatch < pipeline.microbatches):
            raise PolicyError(f"policy asked device {self.device} to run {op}, out of range")
        if not pipeline.runs(op.stage, op.microbatch):
            raise PolicyError(
                f"policy asked device {self.device} to run {op}, but microbatch {op.microbatch} "
                f"does not pass stage {op.stage} (its line runs other stages)"
            )
        raise PolicyError(
            f"policy asked device {self.device} to run {op}, but stage {op.stage} lives on "
            f"device {pipeline.placement[op.stage]}"
        )
