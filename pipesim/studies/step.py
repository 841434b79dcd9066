"""Simulate one training step from settings: the facade every command and study calls.

Settings and a policy make the problem; the SimPy model makes the trace; the analysis makes the
`Report`. Studies that run many steps call this once per point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipesim.analysis.report import Figures, Report, analyze
from pipesim.errors import (
    CostShapeError,
    PipesimError,
    PolicyError,
    ScheduleIncomplete,
    ScheduleStalled,
)
from pipesim.problem.build import build_problem
from pipesim.schedules.base import Policy
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import Settings


def simulate_step(
    settings: Settings,
    policy: Policy | None = None,
    progress: Callable[[int, int], None] | None = None,
    detail: bool = True,
) -> Report:
    """Simulate `settings` (with `policy`, or the one `settings.policy` names) and analyze the
    trace; `progress(done, total)` is called now and then for long runs. Without `detail` the
    report has the figures studies use, not the idle causes or the critical path.

    Raises:
        ConfigError: a setting out of range or inconsistent with another (or with the model).
        PolicyError: an unknown policy, or one whose constraints these settings break, or a
            user's policy that fails.
        ScheduleStalled: the schedule can never finish (who waits for what, and the cycle).
        ScheduleIncomplete: every policy finished but some ops never ran.
    """
    from pipesim.simulator.model import simulate  # SimPy loads here, not at start-up

    chosen = policy or get_policy(settings.resolved.policy)
    trace = simulate(build_problem(settings, chosen), chosen, progress)
    return analyze(trace, chosen, detail)


@dataclass(frozen=True)
class StepJob:
    """One step a study runs, as a worker process receives it: settings and a policy name
    (a registered one or a user's module:Class reference), both picklable, or a policy that
    has no name to load it by (a schedule file's, a measured run's), sent whole."""

    settings: Settings
    policy: str | Policy


@dataclass(frozen=True)
class StepOutcome:
    """What a worker sends back: the figures, or why this policy cannot run the step (`error`,
    the study goes on), or why no policy can (`fatal`, which the study raises as it is)."""

    figures: Figures | None = None
    error: str | None = None
    fatal: PipesimError | None = None


def step_figures(job: StepJob) -> StepOutcome:
    """Simulate one job and keep its figures (module-level: workers pickle it by name)."""
    try:
        policy = get_policy(job.policy) if isinstance(job.policy, str) else job.policy
        report = simulate_step(job.settings, policy, detail=False)
        return StepOutcome(report.figures())
    except (PolicyError, ScheduleStalled, ScheduleIncomplete, CostShapeError) as error:
        # A policy's own constraint, or a cost list of p*v values that fits only the policies
        # with v chunks per device: that policy's row says so.
        return StepOutcome(error=str(error))
    except PipesimError as error:
        return StepOutcome(fatal=error)


def raise_fatal(outcomes: Sequence[StepOutcome]) -> None:
    """Stop the study with the first error that no policy could survive, as it was raised."""
    for outcome in outcomes:
        if outcome.fatal is not None:
            raise outcome.fatal
