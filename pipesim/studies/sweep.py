"""Vary one setting over a list of values, for one or several policies, and collect figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipesim.analysis.report import Report
from pipesim.errors import (
    ConfigError,
    CostShapeError,
    PolicyError,
    ScheduleIncomplete,
    ScheduleStalled,
)
from pipesim.problem.settings import SETTINGS, Settings
from pipesim.schedules.registry import get_policy
from pipesim.studies.compare import refuse_unused_chunks
from pipesim.studies.step import simulate_step

SWEEPABLE = tuple(setting.name for setting in SETTINGS if setting.sweepable)
"""Settings that take one value, so that a list of them is unambiguous."""


@dataclass(frozen=True)
class SweepRow:
    """One (value, policy) point: its report, or why the policy cannot run it."""

    setting: str
    value: float
    policy: str
    report: Report | None
    error: str | None = None


def sweep_setting(
    settings: Settings,
    setting: str,
    values: Sequence[float],
    policies: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
) -> list[SweepRow]:
    """Run every policy at every value of `setting`; `progress(done, total)` after each run."""
    if setting not in SWEEPABLE:
        raise ConfigError(f"cannot sweep {setting}; sweepable: {', '.join(SWEEPABLE)}")
    if not values:
        raise ConfigError(f"no values to sweep {setting} over")
    chosen = [get_policy(name) for name in policies]
    if setting != "chunks":
        refuse_unused_chunks(settings, chosen)
    rows = []
    total = len(values) * len(chosen)
    for value in values:
        for policy in chosen:
            point = settings.replace(policy=policy.name, **{setting: value})
            if setting != "chunks" and policy.chunks is not None:
                point = point.replace(chunks=None)
            try:
                rows.append(SweepRow(setting, value, policy.name, simulate_step(point, policy)))
            except (PolicyError, ScheduleStalled, ScheduleIncomplete, CostShapeError) as error:
                rows.append(SweepRow(setting, value, policy.name, None, str(error)))
            if progress is not None:
                progress(len(rows), total)
    return rows
