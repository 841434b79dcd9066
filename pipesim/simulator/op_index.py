"""Ops numbered densely, and the dependency rules compiled into per-slot tables, so that the
simulator's hot path and the metrics over millions of ops do arithmetic instead of building
tuples.

`pipesim.problem.ops.needs` stays the one statement of the rules. Since they relate ops of the same
microbatch, what an op needs depends only on its kind and stage (its slot): this module asks
`needs` and `message_target` once per slot and keeps the key offsets of the inputs, the op's
duration, the device that holds it, the device its output goes to and whether that message
takes any time. key = (stage * m + microbatch) * 3 + kind; slot = stage * 3 + kind.
"""

from __future__ import annotations

from array import array

from pipesim.errors import PolicyError
from pipesim.problem.ops import Kind, Need, Op, message_target, needs
from pipesim.problem.pipeline import Problem
from pipesim.simulator.trace import OpRecord, TransferRecord

KINDS = tuple(Kind)


class OpIndex:
    """Per-slot tables for one problem (slot = stage * 3 + kind code)."""

    def __init__(self, problem: Problem) -> None:
        pipeline = problem.pipeline
        self.num_stages = stages = pipeline.num_stages
        self.line_length = line = pipeline.line_length
        self.microbatches = m = pipeline.microbatches
        self.size = 3 * stages * m
        self.owner: list[int] = []
        self.duration: list[float] = []
        self.target: list[int] = []
        """The device that receives the op's output as a message, or -1."""
        self.inputs: list[tuple[tuple[bool, int], ...]] = []
        """(arrives as a message?, key offset) per input, in the order `needs` gives them."""
        self.input_slots: list[tuple[int, ...]] = []
        """The slot of each input's producer."""
        for stage in range(stages):
            for kind in KINDS:
                op = Op(kind, stage, 0)
                self.owner.append(pipeline.placement[stage])
                self.duration.append(problem.duration(op))
                target = message_target(op, line)
                self.target.append(-1 if target is None else pipeline.placement[target])
                inputs = needs(op, line)
                self.inputs.append(tuple(self._offset(op, need) for need in inputs))
                self.input_slots.append(tuple(need.op.stage * 3 + need.op.kind for need in inputs))

        self.runs_on = _runs_on(problem)
        """Per key: the device that runs that op, or -1 for an op no microbatch runs there (a
        line's stage for another line's microbatch): the one lookup that admits an op."""
        network = problem.network
        self.free_message = [
            dst < 0
            or dst == self.owner[slot]
            or network.transfer_time(self.owner[slot], dst, KINDS[slot % 3]) == 0
            for slot, dst in enumerate(self.target)
        ]
        """Per slot: the op's output reaches its consumer at once (same device, or a link
        that carries it in no time), so it takes no channel and no transfer record."""
        self.input_plan = [
            tuple(
                (message, offset, not message or self.free_message[producer])
                for (message, offset), producer in zip(inputs, producers, strict=True)
            )
            for inputs, producers in zip(self.inputs, self.input_slots, strict=True)
        ]
        """Per slot: (message?, key offset, available when its producer's compute ends?) per
        input. For the last kind, a device waiting on an op that is running can wait on that
        op's own timeout instead of an event of its own."""
        self.entry_offsets = [
            tuple(offset + (self.size if message else 0) for message, offset, _ in plan)
            for plan in self.input_plan
        ]
        """Per slot, the timetable offset of each input: its key offset, plus `size` when the
        input arrives as a message (the timetable keeps arrivals after completions). Built
        once for every device: per device it made a run quadratic in p."""
        self.slots_of: list[list[int]] = [[] for _ in range(pipeline.devices)]
        """Per device, the slots it runs."""
        for slot, device in enumerate(self.owner):
            self.slots_of[device].append(slot)

    def _offset(self, op: Op, need: Need) -> tuple[bool, int]:
        if need.op.microbatch != op.microbatch:
            raise PolicyError("the dependency rules must relate ops of one microbatch")
        return need.message is not None, self.key(need.op) - self.key(op)

    def key(self, op: Op | OpRecord | TransferRecord) -> int:
        """The key of an op, of the op a record ran, or of the op whose output a transfer
        carries."""
        if isinstance(op, Op):
            kind, stage, microbatch = op
        else:
            kind, stage, microbatch = op.kind, op.stage, op.microbatch
        return (stage * self.microbatches + microbatch) * 3 + kind

    def slot(self, key: int) -> int:
        """The slot (stage * 3 + kind code) of the op numbered `key`."""
        return (key // (3 * self.microbatches)) * 3 + key % 3

    def keys(self, records: list[OpRecord]) -> list[int]:
        """The key of each record's op, in order (one pass, no tuples built)."""
        m = self.microbatches
        return [(stage * m + mb) * 3 + kind for _, stage, kind, mb, _, _ in records]

    def need(self, op: Op, index: int) -> Need:
        """The `index`-th input of `op`, as `needs` states it."""
        return needs(op, self.line_length)[index]


def _runs_on(problem: Problem) -> array[int]:
    """`OpIndex.runs_on`, built a stage at a time (a run may have millions of keys)."""
    pipeline = problem.pipeline
    m, per_line, line = pipeline.microbatches, pipeline.microbatches // pipeline.lines, 0
    table = array("i")
    for stage in range(pipeline.num_stages):
        device = array("i", [pipeline.placement[stage]])
        if pipeline.lines == 1:
            table += device * (3 * m)
            continue
        line = stage // pipeline.line_length
        nowhere = array("i", [-1])
        table += nowhere * (3 * per_line * line)
        table += device * (3 * per_line)
        table += nowhere * (3 * (m - per_line * (line + 1)))
    return table
