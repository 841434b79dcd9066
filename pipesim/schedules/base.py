"""The policy interface: what every schedule implements, static or dynamic.

A policy answers, for one device at one moment, "what next?". It never sees SimPy or channels:
it gets a `DeviceView` that says which ops' inputs have arrived, and hands back an op (the
device then waits for that op's inputs, and the wait is bubble) or None when the device is done.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar, NamedTuple, Protocol

from pipesim.errors import PolicyError
from pipesim.problem.ops import Fused, Op, Step
from pipesim.problem.pipeline import Pipeline, Problem, round_robin_placement
from pipesim.problem.runtime import interleaved_pair


class DeviceView(Protocol):
    """What a policy may look at when it decides a device's next op."""

    device: int

    @property
    def now(self) -> float: ...

    def inputs_ready(self, op: Op) -> bool:
        """Whether every input `op` needs has reached this device."""
        ...


class DeviceProgram(Protocol):
    """One device's decisions. Called once per op; returns None when the device has finished."""

    def next_op(self, view: DeviceView) -> Step | None:
        """The next op, or several ops fused into one step (`pipesim.problem.ops.Fused`)."""
        ...


class ClosedForm(NamedTuple):
    """A schedule's textbook bubble fraction, and whether its assumptions hold here."""

    formula: str
    bubble_fraction: float | None
    """The formula's value, or None where its assumptions do not hold (see `reason`)."""
    reason: str | None = None
    view: str = "makespan"
    """Which measured figure it predicts: "makespan" (synchronized step) or "span"."""

    def withheld_if(self, reason: str | None) -> ClosedForm:
        """This closed form, or, when `reason` is given and it still applied, the same formula
        marked as not applying for that reason."""
        if reason is None or self.bubble_fraction is None:
            return self
        return self._replace(bubble_fraction=None, reason=reason)

    @classmethod
    def evaluate(
        cls, problem: Problem, formula: str, value: float, view: str = "makespan"
    ) -> ClosedForm:
        """`value` if the textbook conditions hold for `problem`, else the reason they do not."""
        reason = textbook_conditions(problem)
        return cls(formula, None if reason else value, reason, view)


class Policy(ABC):
    """A pipeline schedule. Subclasses set the class attributes and implement `programs`."""

    name: str
    """What `pipesim policies`, charts and reports call it (a file's or a class's name for
    schedules read from a file or a user's module)."""
    summary: ClassVar[str]
    """One line for `pipesim policies`."""
    aliases: ClassVar[tuple[str, ...]] = ()
    """Other names accepted on the command line (PyTorch's class names, for instance)."""
    split_backward: bool = False
    """Whether the backward runs as separate B (input gradient) and W (weight gradient) ops."""
    chunks: int | None = 1
    """Model chunks per device this schedule places (None: the user chooses with -v)."""
    default_chunks: int = 2
    """Chunks per device when the user chooses and did not say."""
    takes_microbatch_group: bool = False
    """Whether the schedule takes --microbatch-group-size (interleaved ones)."""
    takes_activation_limit: bool = False
    """Whether the schedule plans under --activation-limit (zb-auto)."""
    lines: int = 1
    """Chains of stages, each fed its own microbatches (2 for bidirectional DualPipe)."""
    combines_pairs: bool = False
    """Whether the schedule runs its steady-state forward-backward pairs as one combined step
    when asked (--ep-comm-overlap: Megatron-LM's combined 1F1B, interleaved only)."""

    def default_shape(self) -> tuple[int, int]:
        """(p, m) when the user gives neither."""
        return (4, 8)

    def resolve_chunks(self, requested: int | None) -> int:
        """The chunks per device to run with; a request this schedule cannot honour is an error
        (a user's -v is never silently changed)."""
        if self.chunks is None:
            return self.default_chunks if requested is None else requested
        if requested is not None and requested != self.chunks:
            raise PolicyError(
                f"policy {self.name!r} places {self.chunks} chunk(s) per device; "
                f"got --chunks {requested}"
            )
        return self.chunks

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        """Which device holds each stage."""
        return round_robin_placement(devices, chunks)

    def check(self, devices: int, chunks: int, microbatches: int) -> None:
        """Raise `PolicyError` if this schedule cannot run the configuration."""
        self.resolve_chunks(chunks)

    @abstractmethod
    def programs(self, problem: Problem) -> list[DeviceProgram]:
        """One program per device, in device order."""

    def closed_form(self, problem: Problem) -> ClosedForm | None:
        """The textbook bubble fraction for `problem`, or None if the schedule has none."""
        return None


class OrderedProgram:
    """A device program that follows a fixed list of ops, whatever has arrived."""

    __slots__ = ("_next", "ops")

    def __init__(self, ops: Sequence[Step]) -> None:
        self.ops = ops
        """The whole order (the simulator iterates it directly)."""
        self._next: Iterator[Step] = iter(ops)

    def next_op(self, view: DeviceView) -> Step | None:
        return next(self._next, None)


class StaticPolicy(Policy):
    """A schedule given as a fixed op order per device (GPipe, 1F1B, a CSV file...)."""

    @abstractmethod
    def device_orders(self, pipeline: Pipeline) -> Sequence[Sequence[Step]]:
        """Each device's ops (or fused steps), in the order it runs them."""

    def programs(self, problem: Problem) -> list[DeviceProgram]:
        orders = self.device_orders(problem.pipeline)
        if problem.combined_pairs:
            orders = [combined_pairs(order, problem.pipeline.chunks) for order in orders]
        return [OrderedProgram(order) for order in orders]


def combined_pairs(order: Sequence[Step], chunks: int) -> list[Step]:
    """`order` with each forward run right before a backward (the steady state of interleaved
    1F1B) fused with it into one step, as Megatron-LM's combined 1F1B runs them
    (megatron/core/pipeline_parallel/combined_1f1b.py): one microbatch's all-to-alls run under
    the other's compute (`Problem.fused_parts`)."""
    combined: list[Step] = []
    for step in order:
        last = combined[-1] if combined else None
        if isinstance(last, Op) and isinstance(step, Op) and interleaved_pair(last, step, chunks):
            combined[-1] = Fused((last, step))
        else:
            combined.append(step)
    return combined


def textbook_conditions(problem: Problem) -> str | None:
    """Why the usual closed forms do not apply to `problem`, or None if they do: they assume
    every stage costs the same and messages are free."""
    if not problem.costs.uniform:
        return "stages are uneven"
    if not problem.network.free:
        return "communication takes time"
    if problem.variability is not None:
        return "op times vary (jitter or stragglers)"
    return None


def split_stage_costs(problem: Problem) -> tuple[float, float, float]:
    """(F, B, W) of the first stage, B the input gradient: what closed forms on equal stages
    are written in."""
    costs = problem.costs
    weight = costs.weight[0]
    return costs.forward[0], costs.backward[0] - weight, weight


def require(condition: bool, message: str) -> None:
    """Raise the one-line `PolicyError` a violated constraint deserves."""
    if not condition:
        raise PolicyError(message)
