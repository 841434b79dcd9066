"""A schedule read from a PyTorch CSV file, as a policy: its rows are the device orders."""

from __future__ import annotations

from pathlib import Path

from pipesim.errors import ConfigError, PolicyError
from pipesim.problem.ops import Step
from pipesim.problem.pipeline import Pipeline
from pipesim.schedules.base import StaticPolicy
from pipesim.schedules.schedule_file import ScheduleFile, read_schedule


class FileSchedule(StaticPolicy):
    """The per-rank op lists of a schedule file, followed in order."""

    summary = "a schedule read from a PyTorch compute-only CSV file"
    chunks: int | None = None

    def __init__(self, schedule: ScheduleFile) -> None:
        self.schedule = schedule
        self.name = Path(schedule.path).name
        self.split_backward = schedule.split_backward
        self.lines = schedule.lines
        self._placement = schedule.placement()

    @classmethod
    def load(cls, path: Path, microbatches: int | None = None) -> FileSchedule:
        """Read `path` and refuse a schedule with structural problems (bad input: one line,
        pointing at `pipesim validate` for the full list)."""
        schedule = read_schedule(path)
        problems = schedule.problems(microbatches)
        if problems:
            more = (
                f" (and {len(problems) - 1} more: pipesim validate {path})"
                if len(problems) > 1
                else ""
            )
            raise ConfigError(f"{path}: invalid schedule: {problems[0]}{more}")
        return cls(schedule)

    def default_shape(self) -> tuple[int, int]:
        return (self.schedule.devices, self.schedule.microbatches)

    def resolve_chunks(self, requested: int | None) -> int:
        held = max(self._placement.count(d) for d in range(self.schedule.devices))
        if requested is not None and requested != held:
            raise PolicyError(
                f"{self.name} holds {held} chunk(s) per device; got --chunks {requested}"
            )
        return held

    def check(self, devices: int, chunks: int, microbatches: int) -> None:
        if devices != self.schedule.devices:
            raise PolicyError(f"{self.name} has {self.schedule.devices} ranks; got -p {devices}")
        if microbatches != self.schedule.microbatches:
            raise PolicyError(
                f"{self.name} runs {self.schedule.microbatches} microbatches; got -m {microbatches}"
            )

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        return self._placement

    def device_orders(self, pipeline: Pipeline) -> list[list[Step]]:
        return self.schedule.orders()
