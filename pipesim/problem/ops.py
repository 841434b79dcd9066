"""Ops and the dependency rules of a training step: the one place that says which op needs which.

An op is one stage's forward (F), backward (B) or weight-gradient (W) pass over one microbatch.
When a policy splits the backward, B computes only the input gradient (what the previous stage
waits for) and W the weight gradient; otherwise B is the whole backward and there is no W.

Ops a device runs as one step are `Fused`: a full backward inside a split schedule (B and W of
one microbatch, PyTorch's FULL_BACKWARD) or an overlapped forward-and-backward pair (PyTorch's
OVERLAP_F_B, DualPipe's steady state). A fused step starts once every input of its ops that is
produced outside it has arrived, holds its device for all of its ops, and its outputs leave when
the whole step ends: that is what both PyTorch's runtime and DeepSeek's reference do.

The simulator, the timeline checker and every policy ask `needs`, `fused_problem` and `all_ops`;
nothing else encodes these rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple


class Kind(IntEnum):
    """What an op computes. The value numbers the kinds densely (F=0, B=1, W=2), for the
    integer op keys of the simulator's hot path; the name is what people read."""

    F = 0
    """Forward pass: consumes the previous stage's activation, produces this stage's."""
    B = 1
    """Backward pass (input gradient only when the backward is split): produces the gradient
    the previous stage needs."""
    W = 2
    """Weight-gradient pass of a split backward: needs only this stage's B."""

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)

    @property
    def message(self) -> str | None:
        """What its output is when sent to another stage: an activation (F), a gradient (B);
        a W sends nothing."""
        return _MESSAGES[self]

    @staticmethod
    def from_key(key: int) -> Kind:
        """The kind of the op numbered `key` (`op_key`)."""
        return _KINDS[key % 3]

    @staticmethod
    def of_step(split_backward: bool) -> tuple[Kind, ...]:
        """The kinds every (stage, microbatch) of a step runs: F and B, and W when the
        backward is split."""
        return _SPLIT if split_backward else _WHOLE


class Op(NamedTuple):
    """One unit of work: `kind` on `stage` for `microbatch`."""

    kind: Kind
    stage: int
    microbatch: int

    def __str__(self) -> str:
        return f"{self.kind}{self.microbatch}@s{self.stage}"


class Need(NamedTuple):
    """One input of an op: the producing op, and whether it arrives as a message from the
    neighbouring stage (`message` names it) or is already local to the stage (`message` None)."""

    op: Op
    message: str | None


ACTIVATION = "activation"
GRADIENT = "gradient"
_MESSAGES = {Kind.F: ACTIVATION, Kind.B: GRADIENT, Kind.W: None}
_KINDS = (Kind.F, Kind.B, Kind.W)
_SPLIT, _WHOLE = _KINDS, (Kind.F, Kind.B)


def op_key(kind: int, stage: int, microbatch: int, microbatches: int) -> int:
    """Ops numbered densely: (stage * m + microbatch) * 3 + kind. The simulator's tables and
    per-op draws (`variability`) are indexed by it."""
    return (stage * microbatches + microbatch) * 3 + kind


def needs(op: Op, line_length: int) -> tuple[Need, ...]:
    """The inputs `op` waits for, on lines of `line_length` stages (the whole pipeline's
    `num_stages` when there is one line: see `Pipeline.lines`).

    F(s, j) needs the activation of F(s-1, j); B(s, j) needs F(s, j) and the gradient of
    B(s+1, j) (the last stage of a line needs only its own forward); W(s, j) needs B(s, j).
    The first stage of a line needs nothing for its forward.
    """
    kind, stage, mb = op
    if kind is Kind.F:
        return (Need(Op(Kind.F, stage - 1, mb), ACTIVATION),) if stage % line_length else ()
    if kind is Kind.B:
        own_forward = Need(Op(Kind.F, stage, mb), None)
        if stage % line_length == line_length - 1:
            return (own_forward,)
        return (own_forward, Need(Op(Kind.B, stage + 1, mb), GRADIENT))
    return (Need(Op(Kind.B, stage, mb), None),)


def message_target(op: Op, line_length: int) -> int | None:
    """The stage that receives `op`'s output as a message, or None if no other stage does.

    The inverse of the message edges in `needs`: F(s) feeds F(s+1), B(s) feeds B(s-1), within
    a line.
    """
    if op.kind is Kind.F:
        return op.stage + 1 if (op.stage + 1) % line_length else None
    if op.kind is Kind.B:
        return op.stage - 1 if op.stage % line_length else None
    return None


def on_line(stage: int, microbatch: int, num_stages: int, microbatches: int, lines: int) -> bool:
    """Whether `microbatch` passes `stage` when stages and microbatches are split into `lines`
    equal groups, group k of the microbatches flowing through group k of the stages (see
    `Pipeline.lines`; always, with one line)."""
    if lines == 1:
        return True
    return stage // (num_stages // lines) == microbatch // max(1, microbatches // lines)


def all_ops(num_stages: int, microbatches: int, split_backward: bool, lines: int = 1) -> list[Op]:
    """Every op of one training step, each exactly once, in a fixed order: with several
    lines, microbatch group k's ops on line k's stages only."""
    kinds = Kind.of_step(split_backward)
    return [
        Op(kind, stage, mb)
        for stage in range(num_stages)
        for mb in range(microbatches)
        if on_line(stage, mb, num_stages, microbatches, lines)
        for kind in kinds
    ]


def releases_activation(kind: Kind, split_backward: bool) -> bool:
    """Whether an op of `kind` is the last backward op of its (stage, microbatch), so that the
    activation stashed by the forward can be freed when it ends."""
    return kind is (Kind.W if split_backward else Kind.B)


@dataclass(frozen=True, slots=True)
class Fused:
    """Ops one device runs as one step, in this order (see the module docstring)."""

    ops: tuple[Op, ...]

    @property
    def overlapped(self) -> bool:
        """Whether this is a forward paired with a backward: its time is `--overlap-cost` times
        the sum of its parts (a full backward alone is not overlapped)."""
        kinds = {op.kind for op in self.ops}
        return Kind.F in kinds and Kind.B in kinds

    def __str__(self) -> str:
        return "(" + ";".join(map(str, self.ops)) + ")"


Step = Op | Fused
"""What a device order lists: one op, or ops fused into one step."""


def step_ops(step: Step) -> tuple[Op, ...]:
    """The ops of a step, in the order they run."""
    return step.ops if isinstance(step, Fused) else (step,)


def fused_problem(fused: Fused, line_length: int) -> str | None:
    """Why `fused` cannot run as one step (an op twice, or an op before one it needs inside the
    step), or None."""
    if len(fused.ops) < 2:
        return f"fused step {fused} has fewer than two ops"
    if len(set(fused.ops)) != len(fused.ops):
        return f"fused step {fused} lists an op twice"
    for index, op in enumerate(fused.ops):
        later = set(fused.ops[index + 1 :])
        for need in needs(op, line_length):
            if need.op in later:
                return f"fused step {fused}: {op} needs {need.op}, which comes after it"
    return None
