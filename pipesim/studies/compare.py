"""Run several policies on the same problem and set the results side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipesim.analysis.report import Report
from pipesim.errors import (
    ConfigError,
    CostShapeError,
    PipesimError,
    PolicyError,
    ScheduleIncomplete,
    ScheduleStalled,
)
from pipesim.problem.settings import Settings
from pipesim.schedules.base import Policy
from pipesim.schedules.registry import get_policy, registered_policies
from pipesim.studies.step import simulate_step


@dataclass(frozen=True)
class Comparison:
    """One policy's result, or why it could not run this configuration."""

    policy: str
    report: Report | None
    error: str | None = None


def compare_policies(
    settings: Settings,
    names: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Comparison]:
    """Every registered policy (or those named) on `settings`. A user's -v applies to the
    policies that take a chunk count; the others keep theirs. Settings that are wrong for every
    policy (a bad cost list, say) raise; a policy's own constraint becomes its row's error.
    `progress(done, total)` is called after each policy."""
    policies: list[Policy] = (
        [get_policy(name) for name in names] if names else registered_policies()
    )
    refuse_unused_chunks(settings, policies)
    rows = []
    for policy in policies:
        chunks = settings.chunks if policy.chunks is None else None
        try:
            report = simulate_step(settings.replace(policy=policy.name, chunks=chunks), policy)
        except (PolicyError, ScheduleStalled, ScheduleIncomplete, CostShapeError) as error:
            # A cost list of p*v values fits only the policies with v chunks per device.
            rows.append(Comparison(policy.name, None, str(error)))
        else:
            rows.append(Comparison(policy.name, report))
        if progress is not None:
            progress(len(rows), len(policies))
    if all(row.report is None for row in rows):
        raise PipesimError(f"no policy can run this configuration: {rows[0].error}")
    return rows


def refuse_unused_chunks(settings: Settings, policies: Sequence[Policy]) -> None:
    """A -v that none of `policies` takes would be silently dropped: refuse it instead."""
    if settings.chunks is not None and all(policy.chunks is not None for policy in policies):
        names = ", ".join(policy.name for policy in policies)
        raise ConfigError(
            f"--chunks {settings.chunks}: none of {names} lets you choose its chunks per device"
        )


def speedup_over(rows: Sequence[Comparison], baseline: str = "gpipe") -> dict[str, float]:
    """baseline makespan / each policy's makespan, for the policies that ran (empty if the
    baseline did not)."""
    base = next((row.report for row in rows if row.policy == baseline and row.report), None)
    if base is None:
        return {}
    return {
        row.policy: base.summary.makespan / row.report.summary.makespan
        for row in rows
        if row.report is not None and row.report.summary.makespan > 0
    }


@dataclass(frozen=True)
class Verdict:
    """The fastest policy, and the fastest one that fits in 1F1B's activation memory."""

    fastest: Comparison
    fastest_in_1f1b_memory: Comparison | None
    memory_budget: float | None
    memory_limit: float | None = None
    """Bytes per device, when the problem has a limit."""
    fastest_that_fits: Comparison | None = None
    """The fastest policy whose every device stays within `memory_limit`."""


def verdict(rows: Sequence[Comparison]) -> Verdict | None:
    ran = [row for row in rows if row.report is not None]
    if not ran:
        return None

    def key(row: Comparison) -> tuple[float, float]:
        assert row.report is not None
        return (row.report.summary.makespan, row.report.summary.peak_activations)

    fastest = min(ran, key=key)
    limits = [row.report.summary.memory_limit for row in ran if row.report is not None]
    limit = limits[0] if limits and limits[0] is not None else None
    fitting_limit = [row for row in ran if row.report is not None and not row.report.summary.oom]
    fits = min(fitting_limit, key=key) if limit is not None and fitting_limit else None
    budget_row = next((row for row in ran if row.policy == "1f1b"), None)
    if budget_row is None or budget_row.report is None:
        return Verdict(fastest, None, None, limit, fits)
    budget = budget_row.report.summary.peak_activations
    fitting = [
        row
        for row in ran
        if row.report is not None and row.report.summary.peak_activations <= budget + 1e-9
    ]
    return Verdict(fastest, min(fitting, key=key), budget, limit, fits)
