"""Vary one setting over a list of values, for one or several policies, and collect figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipesim.analysis.report import Figures
from pipesim.errors import ConfigError
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import SETTINGS, Settings
from pipesim.studies.compare import refuse_unused_chunks
from pipesim.studies.executor import run_all
from pipesim.studies.step import StepJob, raise_fatal, step_figures
from pipesim.studies.work import estimate, ops_of

SWEEPABLE = tuple(setting.name for setting in SETTINGS if setting.sweepable)
"""Settings that take one value, so that a list of them is unambiguous."""


@dataclass(frozen=True)
class SweepRow:
    """One (value, policy) point: its figures, or why the policy cannot run it."""

    setting: str
    value: float
    policy: str
    figures: Figures | None
    error: str | None = None


def sweep_setting(
    settings: Settings,
    setting: str,
    values: Sequence[float],
    policies: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> list[SweepRow]:
    """Run every policy at every value of `setting`; `progress(done, total)` as points finish;
    `workers` > 1 runs the points on that many processes, with the same result."""
    if setting not in SWEEPABLE:
        raise ConfigError(f"cannot sweep {setting}; sweepable: {', '.join(SWEEPABLE)}")
    if not values:
        raise ConfigError(f"no values to sweep {setting} over")
    chosen = [get_policy(name) for name in policies]
    if setting != "chunks":
        refuse_unused_chunks(settings, chosen)
    points = []
    jobs = []
    for value in values:
        for policy, reference in zip(chosen, policies, strict=True):
            point = settings.replace(policy=policy.name, **{setting: value})
            if setting != "chunks" and policy.chunks is not None:
                point = point.replace(chunks=None)
            points.append((value, policy.name))
            jobs.append(StepJob(point, reference))
    ops = sum(
        ops_of(job.settings, policy) for job, policy in zip(jobs, chosen * len(values), strict=True)
    )
    estimate(f"sweeping {setting} over {len(values)} values", len(jobs), ops, workers)
    outcomes = run_all(step_figures, jobs, min(workers, len(jobs)), progress=progress)
    raise_fatal(outcomes)
    return [
        SweepRow(setting, value, name, outcome.figures, outcome.error)
        for (value, name), outcome in zip(points, outcomes, strict=True)
    ]
