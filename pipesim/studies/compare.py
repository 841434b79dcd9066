"""Run several policies on the same problem and set the results side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipesim.analysis.report import Figures, Report
from pipesim.errors import ConfigError, PipesimError
from pipesim.schedules.base import Policy
from pipesim.schedules.registry import get_policy, registered_policies
from pipesim.settings.declarations import Settings
from pipesim.studies.executor import Progress, Where, quiet, run_all
from pipesim.studies.step import StepJob, raise_fatal, step_figures

if TYPE_CHECKING:
    from pipesim.problem.pipeline import Pipeline
    from pipesim.studies.monte_carlo import MonteCarlo


@dataclass(frozen=True)
class Comparison:
    """One policy's figures, or why it could not run this configuration."""

    policy: str
    figures: Figures | None
    error: str | None = None


def compare_policies(
    settings: Settings,
    names: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> list[Comparison]:
    """Every registered policy (or those named) on `settings`. A user's -v applies to the
    policies that take a chunk count; the others keep theirs. Settings that are wrong for every
    policy (a bad cost list, say) raise; a policy's own constraint becomes its row's error.
    `progress(done, total)` is called as policies finish; `workers` > 1 runs them on that many
    processes, with the same result."""
    references = list(names) if names else [policy.name for policy in registered_policies()]
    policies: list[Policy] = [get_policy(name) for name in references]
    refuse_unused_chunks(settings, policies)
    jobs = [
        StepJob(
            settings.replace(
                policy=policy.name, chunks=settings.chunks if policy.chunks is None else None
            ),
            reference,
        )
        for policy, reference in zip(policies, references, strict=True)
    ]
    outcomes = run_all(step_figures, jobs, min(workers, len(jobs)), progress=progress)
    raise_fatal(outcomes)
    rows = [
        Comparison(policy.name, outcome.figures, outcome.error)
        for policy, outcome in zip(policies, outcomes, strict=True)
    ]
    if all(row.figures is None for row in rows):
        raise PipesimError(f"no policy can run this configuration: {rows[0].error}")
    return rows


def refuse_unused_chunks(settings: Settings, policies: Sequence[Policy]) -> None:
    """A -v that none of `policies` takes would be silently dropped: refuse it instead."""
    if settings.chunks is not None and all(policy.chunks is not None for policy in policies):
        names = ", ".join(policy.name for policy in policies)
        raise ConfigError(
            f"--chunks {settings.chunks}: none of {names} lets you choose its chunks per device"
        )


def speedup_baseline(rows: Sequence[Comparison]) -> str | None:
    """What the speed-ups are over: GPipe when it ran, else the slowest policy that ran."""
    ran = [row for row in rows if row.figures is not None]
    if any(row.policy == "gpipe" for row in ran):
        return "gpipe"
    slowest = max(ran, key=lambda row: row.figures.summary.makespan if row.figures else 0.0,
                  default=None)  # fmt: skip
    return None if slowest is None else slowest.policy


def speedup_over(rows: Sequence[Comparison], baseline: str | None = None) -> dict[str, float]:
    """baseline makespan / each policy's makespan, for the policies that ran (empty if the
    baseline did not); the baseline is `speedup_baseline`'s unless given."""
    baseline = baseline or speedup_baseline(rows)
    base = next((row.figures for row in rows if row.policy == baseline and row.figures), None)
    if base is None:
        return {}
    return {
        row.policy: base.summary.makespan / row.figures.summary.makespan
        for row in rows
        if row.figures is not None and row.figures.summary.makespan > 0
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
    tied: tuple[Comparison, ...] = ()
    """The other policies as fast as `fastest`, with as few activations (as every output
    rounds them): `fastest` is only the first listed."""


def verdict(rows: Sequence[Comparison]) -> Verdict | None:
    ran = [row for row in rows if row.figures is not None]
    if not ran:
        return None

    def key(row: Comparison) -> tuple[float, float]:
        assert row.figures is not None
        return (row.figures.summary.makespan, row.figures.summary.peak_activations)

    fastest = min(ran, key=key)
    best = tuple(round(figure, 9) for figure in key(fastest))
    tied = tuple(
        row
        for row in ran
        if row is not fastest and tuple(round(figure, 9) for figure in key(row)) == best
    )
    limits = [row.figures.summary.memory_limit for row in ran if row.figures is not None]
    limit = limits[0] if limits and limits[0] is not None else None
    fitting_limit = [row for row in ran if row.figures is not None and not row.figures.summary.oom]
    fits = min(fitting_limit, key=key) if limit is not None and fitting_limit else None
    budget_row = next((row for row in ran if row.policy == "1f1b"), None)
    if budget_row is None or budget_row.figures is None:
        return Verdict(fastest, None, None, limit, fits, tied)
    budget = budget_row.figures.summary.peak_activations
    fitting = [
        row
        for row in ran
        if row.figures is not None and row.figures.summary.peak_activations <= budget + 1e-9
    ]
    return Verdict(fastest, min(fitting, key=key), budget, limit, fits, tied)


@dataclass(frozen=True)
class CompareResult:
    """What `pipesim compare` computed: one row per policy, or with --runs one distribution
    per policy; the makespan no schedule can beat, per placement; and, when a plot was asked
    for, each policy's step again with its trace (workers send figures, not traces)."""

    rows: list[Comparison]
    studies: list[MonteCarlo]
    lower_bounds: dict[Pipeline, float]
    reports: list[Report]


def compare_workflow(
    settings: Settings,
    names: Sequence[str] | None = None,
    runs: int | None = None,
    workers: int = 1,
    dask_scheduler: Where = None,
    traces: bool = False,
    progress: Progress = quiet,
) -> CompareResult:
    """Compare the policies named (every registered one by default) on `settings`.

    Raises:
        ConfigError, PipesimError: settings no policy can run (a policy's own constraint is
            its row's error instead).
    """
    from pipesim.studies.optimize import lower_bound
    from pipesim.studies.step import simulate_step

    references = list(names) if names else [policy.name for policy in registered_policies()]
    if runs is not None:
        from pipesim.studies.monte_carlo import monte_carlo, monte_carlo_estimate

        expected = monte_carlo_estimate(settings, references, runs, workers)
        with progress(f"runs ({expected})") as report_progress:
            studies = monte_carlo(
                settings, references, runs, workers, dask_scheduler, report_progress
            )
        if all(study.error is not None for study in studies):
            raise ConfigError(f"no policy can run this configuration: {studies[0].error}")
        return CompareResult([], studies, {}, [])
    with progress("comparing") as report_progress:
        rows = compare_policies(settings, references, report_progress, workers)
    bounds: dict[Pipeline, float] = {}
    for row in rows:
        if row.figures is not None and row.figures.problem.pipeline not in bounds:
            bounds[row.figures.problem.pipeline] = lower_bound(row.figures.problem)
    reports = []
    if traces:
        for row in rows:
            if row.figures is not None:
                chunks = settings.chunks if get_policy(row.policy).chunks is None else None
                reports.append(simulate_step(settings.replace(policy=row.policy, chunks=chunks)))
    return CompareResult(rows, [], bounds, reports)
