"""PyTorch's schedule CSV ("compute_only" format), read and written.

`torch.distributed.pipelining` describes a schedule as one row per rank and one cell per step:
`0F0` is stage 0's forward of microbatch 0, `1B3` a full backward, `2I0` an input-gradient
backward (pipesim's split B), `2W0` a weight gradient, `(0F7;7B3)OVERLAP_F_B` two ops run as one
step (see `pipesim.problem.ops.Fused`). Empty cells are idle steps and communication or sharding
actions (`SEND_F`, `RECV_B`, `UNSHARD`, `REDUCE_GRAD`, ...) are skipped: timing comes from the
simulation. The stages, their placement on ranks and m are inferred from the file.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pipesim.errors import ConfigError
from pipesim.problem.capacity import check_ops
from pipesim.problem.ops import Fused, Kind, Op, Step, on_line, step_ops
from pipesim.settings.text_input import SCHEDULE_LIMIT, read_text

# ASCII digits, at most nine: stage 10^9 is no schedule, and `int` must not see 5,000 digits.
_COMPUTE = re.compile(r"([0-9]{1,9})(F|I|B|W)([0-9]{1,9})", re.ASCII)
_OTHER = re.compile(
    r"([0-9]{1,9})(UNSHARD|RESHARD|REDUCE_GRAD|SEND_F|RECV_F|SEND_B|RECV_B|SEND_F_RECV_B|SEND_B_RECV_F)"
    r"([0-9]{0,9})",
    re.ASCII,
)
_OVERLAP = re.compile(r"\((.*)\)OVERLAP_F_B")


@dataclass(frozen=True)
class Action:
    """One compute cell of the file, where it stands (row = rank, column = step, from 0)."""

    stage: int
    kind: str
    """F, I (input gradient), B (full backward) or W (weight gradient)."""
    microbatch: int
    rank: int
    column: int

    def __str__(self) -> str:
        return f"{self.stage}{self.kind}{self.microbatch}"


@dataclass(frozen=True)
class ScheduleFile:
    """A schedule read from a CSV file: each rank's compute actions in order."""

    path: str
    ranks: list[list[Action]]
    split_backward: bool = field(init=False)

    def __post_init__(self) -> None:
        split = any(a.kind in ("I", "W") for row in self.ranks for a in row)
        object.__setattr__(self, "split_backward", split)
        self.check_size(self.microbatches)

    def check_size(self, microbatches: int) -> None:
        """Refuse, before anything is enumerated, a step with more ops than this machine holds
        (a cell naming stage 999999999 makes a billion stages)."""
        kinds = len(Kind.of_step(self.split_backward))
        check_ops(
            self.num_stages * microbatches * kinds,
            f"{self.path}'s {self.num_stages} stages with m={microbatches}",
            devices=self.devices,
        )

    @property
    def devices(self) -> int:
        return len(self.ranks)

    @property
    def num_stages(self) -> int:
        return 1 + max((a.stage for row in self.ranks for a in row), default=-1)

    @property
    def microbatches(self) -> int:
        return 1 + max((a.microbatch for row in self.ranks for a in row), default=-1)

    @property
    def lines(self) -> int:
        """2 when the file is bidirectional (DualPipe: the first half of the microbatches
        only on the first half of the stages, the rest only on the rest), else 1."""
        stages, m = self.num_stages, self.microbatches
        if stages < 2 or stages % 2 or m % 2:
            return 1
        actions = [a for row in self.ranks for a in row]
        if all(on_line(a.stage, a.microbatch, stages, m, 2) for a in actions):
            return 2
        return 1

    def placement(self) -> tuple[int, ...]:
        """The rank of each stage (the first rank it appears on; `problems` reports others)."""
        owner: dict[int, int] = {}
        for rank, row in enumerate(self.ranks):
            for action in row:
                owner.setdefault(action.stage, rank)
        return tuple(owner.get(stage, 0) for stage in range(self.num_stages))

    def orders(self) -> list[list[Step]]:
        """Each rank's steps in pipesim's terms: I is B; a full backward in a schedule that
        splits the backward elsewhere is its B and W fused into one step (PyTorch runs it as
        one call and sends the gradient after it); the ops of an OVERLAP_F_B cell are one
        fused step."""
        orders: list[list[Step]] = []
        for row in self.ranks:
            order: list[Step] = []
            cells: dict[int, list[Op]] = {}
            for a in row:
                ops = self._ops(a)
                if a.column in cells:
                    cells[a.column].extend(ops)
                else:
                    cells[a.column] = ops
            for ops in cells.values():
                order.append(ops[0] if len(ops) == 1 else Fused(tuple(ops)))
            orders.append(order)
        return orders

    def _ops(self, action: Action) -> list[Op]:
        kind = {"F": Kind.F, "I": Kind.B, "B": Kind.B, "W": Kind.W}[action.kind]
        op = Op(kind, action.stage, action.microbatch)
        if action.kind == "B" and self.split_backward:
            return [op, Op(Kind.W, action.stage, action.microbatch)]
        return [op]

    def problems(self, microbatches: int | None = None) -> list[str]:
        """Every structural problem, one line each; [] for a well-formed schedule."""
        m = self.microbatches if microbatches is None else microbatches
        self.check_size(m)
        found: list[str] = []
        ranks_of: dict[int, list[int]] = defaultdict(list)
        for rank, row in enumerate(self.ranks):
            for stage in sorted({a.stage for a in row}):
                ranks_of[stage].append(rank)
        for stage in range(self.num_stages):
            ranks = ranks_of.get(stage, [])
            if not ranks:
                found.append(f"stage {stage} has no ops on any rank")
            elif len(ranks) > 1:
                found.append(
                    f"stage {stage} is on ranks {', '.join(map(str, ranks))}; "
                    "a stage must live on one rank"
                )
        seen: dict[tuple[int, str, int], list[Action]] = defaultdict(list)
        for row in self.ranks:
            for a in row:
                if a.microbatch >= m:
                    found.append(
                        f"{self._where(a)}: microbatch {a.microbatch} out of range (m={m})"
                    )
                seen[(a.stage, a.kind, a.microbatch)].append(a)
        lines = self.lines
        for stage in range(self.num_stages):
            for mb in range(m):
                if on_line(stage, mb, self.num_stages, m, lines):
                    found += self._check_stage_microbatch(stage, mb, seen)
        return found

    def _check_stage_microbatch(
        self, stage: int, mb: int, seen: dict[tuple[int, str, int], list[Action]]
    ) -> list[str]:
        found = []
        forwards, full = seen.get((stage, "F", mb), []), seen.get((stage, "B", mb), [])
        inputs, weights = seen.get((stage, "I", mb), []), seen.get((stage, "W", mb), [])
        label = f"stage {stage}, microbatch {mb}"
        if not forwards:
            found.append(f"{label}: no forward ({stage}F{mb})")
        backwards = full + inputs
        if not backwards:
            found.append(f"{label}: no backward ({stage}B{mb}, or {stage}I{mb} and {stage}W{mb})")
        if self.split_backward and not full and inputs and not weights:
            found.append(f"{label}: {stage}I{mb} has no {stage}W{mb}")
        if weights and not inputs and not full:
            found.append(f"{label}: {stage}W{mb} has no {stage}I{mb}")
        for name, group in (("forward", forwards), ("backward", backwards), ("W", weights)):
            if len(group) > 1:
                places = ", ".join(self._where(a) for a in group)
                found.append(f"{label}: {len(group)} {name}s ({places})")
        if forwards and backwards and _before(backwards[0], forwards[0]):
            found.append(
                f"{self._where(backwards[0])}: {backwards[0]} runs before its forward "
                f"{forwards[0]} ({self._where(forwards[0])})"
            )
        if weights and inputs and _before(weights[0], inputs[0]):
            found.append(
                f"{self._where(weights[0])}: {weights[0]} runs before {inputs[0]} "
                f"({self._where(inputs[0])})"
            )
        return found

    def _where(self, action: Action) -> str:
        return f"rank {action.rank} step {action.column}"


def _before(a: Action, b: Action) -> bool:
    """Whether `a` comes before `b` on the same rank."""
    return a.rank == b.rank and a.column < b.column


def read_schedule(path: Path) -> ScheduleFile:
    """Parse a schedule CSV; a cell that is not an action is an error naming file, row and
    column (both from 1, as an editor shows them)."""
    text = read_text(path, "schedule", SCHEDULE_LIMIT)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise ConfigError(f"{path} is not a CSV file: {error}") from None
    if len(rows) > 1_000_000:
        raise ConfigError(f"{path} has {len(rows):,} rows; a schedule has one per rank")
    ranks = [
        [
            action
            for column, cell in enumerate(row)
            for action in _parse_cell(path, rank, column, cell)
        ]
        for rank, row in enumerate(rows)
    ]
    while ranks and not rows[len(ranks) - 1]:
        ranks.pop()  # trailing blank lines
    if not any(ranks):
        raise ConfigError(f"{path}: no compute actions (expected cells such as 0F0, 1B3, 2I0)")
    return ScheduleFile(str(path), ranks)


def _parse_cell(path: Path, rank: int, column: int, cell: str) -> list[Action]:
    text = cell.strip()
    if not text:
        return []
    overlap = _OVERLAP.fullmatch(text)
    parts = [part.strip() for part in overlap.group(1).split(";")] if overlap else [text]
    actions = []
    for part in parts:
        match = _COMPUTE.fullmatch(part)
        if match:
            stage, kind, mb = match.groups()
            actions.append(Action(int(stage), kind, int(mb), rank, column))
        elif overlap or not _OTHER.fullmatch(part):
            # An overlapped cell holds compute actions only, and at least two of them.
            actions = []
            break
    if (overlap and len(actions) < 2) or (not actions and not _OTHER.fullmatch(text)):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ConfigError(
            f"{path}:{rank + 1}:{column + 1}: {shown!r} is not a schedule action "
            "(expected e.g. 0F0, 1B3, 2I0, 2W0 or (0F7;7B3)OVERLAP_F_B)"
        )
    return actions


def write_schedule(orders: Sequence[Sequence[Step]], split_backward: bool, out: TextIO) -> None:
    """Write per-device steps as PyTorch's compute-only CSV: split backwards as I and W, whole
    ones as B (a fused B and W of one microbatch is a whole backward), other fused steps as
    OVERLAP_F_B cells."""
    writer = csv.writer(out, lineterminator="\n")
    for order in orders:
        writer.writerow(step_cell(step, split_backward) for step in order)


def step_cell(step: Step, split_backward: bool) -> str:
    """One step as a CSV cell: `0F1`, `2I0`, `3B1` or `(0F3;3B1)OVERLAP_F_B`."""
    backward = "I" if split_backward else "B"
    names = {Kind.F: "F", Kind.B: backward, Kind.W: "W"}
    ops = list(step_ops(step))
    cells = []
    while ops:
        op = ops.pop(0)
        if op.kind is Kind.B and ops and ops[0] == Op(Kind.W, op.stage, op.microbatch):
            ops.pop(0)
            cells.append(f"{op.stage}B{op.microbatch}")
        else:
            cells.append(f"{op.stage}{names[op.kind]}{op.microbatch}")
    return cells[0] if len(cells) == 1 else "(" + ";".join(cells) + ")OVERLAP_F_B"
