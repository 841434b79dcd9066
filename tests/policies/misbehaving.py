"""Custom policies that misbehave in every way a user's code can: the guard must turn each
into one line naming the policy (tests/test_bad_input.py)."""

from __future__ import annotations

from typing import Any

from pipesim import Kind, Op, Policy, StaticPolicy
from pipesim.problem.pipeline import Pipeline, Problem


class _Returns:
    def __init__(self, value: Any) -> None:
        self.value = value

    def next_op(self, view: Any) -> Any:
        return self.value


class _Dynamic(Policy):
    summary = "test"
    value: Any = None

    def programs(self, problem: Problem) -> Any:
        return [_Returns(self.value) for _ in range(problem.pipeline.devices)]


class ReturnsText(_Dynamic):
    value = "F0@s0"


class ReturnsShortTuple(_Dynamic):
    value = (Kind.F, 0)


class ReturnsFloatStage(_Dynamic):
    value = Op(Kind.F, 0.0, 0)  # type: ignore[arg-type]


class ProgramsNone(Policy):
    summary = "test"

    def programs(self, problem: Problem) -> Any:
        return None


class PlacementRaises(StaticPolicy):
    summary = "test"

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        raise RuntimeError("no placement today")

    def device_orders(self, pipeline: Pipeline) -> Any:
        return []


class PlacementWrong(PlacementRaises):
    def placement(self, devices: int, chunks: int) -> Any:
        return "0123"


class CheckRaises(PlacementRaises):
    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        return tuple(range(devices))

    def check(self, devices: int, chunks: int, microbatches: int) -> None:
        raise ZeroDivisionError("division by zero")


class ClosedFormRaises(StaticPolicy):
    summary = "test"

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        m = pipeline.microbatches
        return [
            [Op(Kind.F, d, j) for j in range(m)] + [Op(Kind.B, d, j) for j in range(m)]
            for d in range(pipeline.devices)
        ]

    def closed_form(self, problem: Problem) -> Any:
        raise ValueError("no closed form")


class NameNotText(ClosedFormRaises):
    name = 42  # type: ignore[assignment]

    def closed_form(self, problem: Problem) -> Any:
        return "(p-1)/m"


class StopsEarly(ClosedFormRaises):
    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return [order[:-1] for order in super().device_orders(pipeline)]


class OnlyForwards(ClosedFormRaises):
    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return [
            [op for op in order if op.kind is Kind.F] for order in super().device_orders(pipeline)
        ]


class SplitWithoutW(ClosedFormRaises):
    split_backward = True


class NameRaises(ClosedFormRaises):
    @property
    def name(self) -> str:  # type: ignore[override]
        raise LookupError("nameless")


class _Raises(_Dynamic):
    """A dynamic policy whose first decision raises `error`."""

    error: BaseException = RuntimeError()

    def programs(self, problem: Problem) -> Any:
        error = self.error

        class Program:
            def next_op(self, view: Any) -> Any:
                raise error

        return [Program() for _ in range(problem.pipeline.devices)]


class RaisesBaseException(_Raises):
    error = BaseException("base")


class RaisesGeneratorExit(_Raises):
    error = GeneratorExit("closed")


class ExitsFive(_Raises):
    error = SystemExit(5)


class ClosesStdout(ClosedFormRaises):
    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        import sys

        print("a policy's own words")
        sys.stdout.close()
        return super().device_orders(pipeline)

    def closed_form(self, problem: Problem) -> Any:
        return None


class MutatesPipeline(ClosedFormRaises):
    def programs(self, problem: Problem) -> Any:
        programs = super().programs(problem)
        object.__setattr__(problem.pipeline, "microbatches", 1)
        object.__setattr__(problem, "costs", None)
        return programs

    def closed_form(self, problem: Problem) -> Any:
        return None


class WInWholeBackward(ClosedFormRaises):
    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        orders = super().device_orders(pipeline)
        return [[*order, Op(Kind.W, d, 0)] for d, order in enumerate(orders)]

    def closed_form(self, problem: Problem) -> Any:
        return None


class NegativeBubble(ClosedFormRaises):
    def closed_form(self, problem: Problem) -> Any:
        from pipesim.schedules.base import ClosedForm

        return ClosedForm("-5", -5.0)


class MarkupName(ClosedFormRaises):
    name = "[/][bold red]x"

    def closed_form(self, problem: Problem) -> Any:
        return None
