"""A user's policy behind a guard: whatever it returns or raises becomes one `PolicyError`.

Built-in policies are trusted; a policy loaded from a user's module is wrapped in
`GuardedPolicy`, which checks every answer (types, ranges, lengths) and turns every exception
into a one-line error that names the policy, the method and, for a decision, the device. The
simulator's own checks (an op on the wrong device, run twice, out of range) then see only
well-typed steps.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from typing import Any, TypeVar

from pipesim.errors import PipesimError, PolicyError
from pipesim.problem.ops import Fused, Kind, Op, Step
from pipesim.problem.pipeline import Problem
from pipesim.schedules.base import ClosedForm, DeviceProgram, DeviceView, OrderedProgram, Policy

Result = TypeVar("Result")


class GuardedPolicy(Policy):
    """`inner`, with every call checked."""

    summary = "a user's policy"

    def __init__(self, inner: Policy, reference: str) -> None:
        self.inner = inner
        self.name = reference
        name = self._call("name", lambda: getattr(inner, "name", None))
        if isinstance(name, str) and name.strip():
            self.name = name
        self.split_backward = self._attribute("split_backward", bool)
        chunks = self._call("chunks", lambda: getattr(inner, "chunks", 1))
        if chunks is not None and not _whole(chunks):
            raise self._wrong("chunks", chunks, "a whole number >= 1 or None")
        self.chunks = chunks
        self.default_chunks = self._attribute("default_chunks", int)

    def _attribute(self, name: str, kind: type) -> Any:
        value = self._call(name, lambda: getattr(self.inner, name))
        if type(value) is not kind or (kind is int and not _whole(value)):
            raise self._wrong(
                name, value, "True or False" if kind is bool else "a whole number >= 1"
            )
        return value

    def _wrong(self, what: str, value: object, expected: str) -> PolicyError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return PolicyError(f"policy {self.name!r}: {what} is {shown}, not {expected}")

    def _call(self, method: str, call: Callable[[], Result]) -> Result:
        try:
            with user_code():
                return call()
        except (PipesimError, KeyboardInterrupt):
            raise
        except BaseException as error:  # sys.exit(5) or GeneratorExit is the policy failing
            raise PolicyError(
                f"policy {self.name!r}: {method} failed: {type(error).__name__}: {error}"
            ) from None

    def default_shape(self) -> tuple[int, int]:
        shape = self._call("default_shape()", self.inner.default_shape)
        if not (isinstance(shape, tuple) and len(shape) == 2 and all(map(_whole, shape))):
            raise self._wrong("default_shape()", shape, "a pair of whole numbers >= 1")
        return shape

    def resolve_chunks(self, requested: int | None) -> int:
        chunks = self._call("resolve_chunks()", lambda: self.inner.resolve_chunks(requested))
        if not _whole(chunks):
            raise self._wrong("resolve_chunks()", chunks, "a whole number >= 1")
        return chunks

    def check(self, devices: int, chunks: int, microbatches: int) -> None:
        self._call("check()", lambda: self.inner.check(devices, chunks, microbatches))

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        placement = self._call("placement()", lambda: self.inner.placement(devices, chunks))
        if not (
            isinstance(placement, Sequence)
            and len(placement) == devices * chunks
            and all(type(d) is int and 0 <= d < devices for d in placement)
        ):
            raise self._wrong(
                "placement()", placement, f"{devices * chunks} device numbers in 0..{devices - 1}"
            )
        return tuple(placement)

    def programs(self, problem: Problem) -> list[DeviceProgram]:
        # The policy gets its own copy: whatever it changes (object.__setattr__ defeats the
        # frozen dataclasses) cannot change the problem the simulator runs.
        mine = copy.deepcopy(problem)
        programs = self._call("programs()", lambda: self.inner.programs(mine))
        if not isinstance(programs, list | tuple):
            raise self._wrong("programs()", programs, "a list of device programs")
        checked: list[DeviceProgram] = []
        for device, program in enumerate(programs):
            if isinstance(program, OrderedProgram):
                for step in program.ops:
                    self._check_step(step, device)
                checked.append(program)
            elif callable(getattr(program, "next_op", None)):
                checked.append(_CheckedProgram(program, self, device))
            else:
                raise self._wrong(f"programs()[{device}]", program, "an object with next_op()")
        return checked

    def closed_form(self, problem: Problem) -> ClosedForm | None:
        mine = copy.deepcopy(problem)
        closed = self._call("closed_form()", lambda: self.inner.closed_form(mine))
        if closed is None:
            return None
        fraction = getattr(closed, "bubble_fraction", 0.0)
        if not (
            isinstance(closed, ClosedForm)
            and isinstance(closed.formula, str)
            and (
                fraction is None or (isinstance(fraction, float | int) and math.isfinite(fraction))
            )
        ):
            raise self._wrong("closed_form()", closed, "a ClosedForm or None")
        if fraction is not None and not 0 <= fraction < 1:
            raise self._wrong(
                "closed_form()'s bubble fraction", fraction, "a fraction from 0 to below 1"
            )
        return closed

    def _check_step(self, step: object, device: int) -> Step:
        if _is_op(step) or (isinstance(step, Fused) and all(map(_is_op, step.ops))):
            ops = step.ops if isinstance(step, Fused) else (step,)
            if not self.split_backward and any(op.kind is Kind.W for op in ops):  # type: ignore[attr-defined]
                raise self._wrong(
                    f"the step it gave device {device}",
                    step,
                    "an F or B op (its backward is whole: split_backward is False, so no W)",
                )
            return step  # type: ignore[return-value]
        raise self._wrong(
            f"the step it gave device {device}",
            step,
            "an Op(Kind, stage, microbatch) or a Fused step",
        )


class _CheckedProgram:
    """A user's dynamic device program whose every decision is checked."""

    __slots__ = ("_device", "_guard", "_program")

    def __init__(self, program: Any, guard: GuardedPolicy, device: int) -> None:
        self._program, self._guard, self._device = program, guard, device

    def next_op(self, view: DeviceView) -> Step | None:
        with user_code():
            step = self._program.next_op(view)
        return None if step is None else self._guard._check_step(step, self._device)


@contextmanager
def user_code() -> Iterator[None]:
    """While a user's code runs, what it prints goes to stderr: standard output carries the
    command's answer (JSON, CSV) and nothing else; closing it closes nothing."""
    with redirect_stdout(_StandardError()):
        yield


class _StandardError:
    """Standard output as a user's code sees it: writes go to stderr, `close` is ignored."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.stderr, name)


def _whole(value: object) -> bool:
    return isinstance(value, int) and type(value) is int and value >= 1


def _is_op(value: object) -> bool:
    return (
        type(value) is Op
        and type(value.kind) is Kind
        and type(value.stage) is int
        and type(value.microbatch) is int
    )
