"""The `run` workflow: one step of a policy or a schedule file, and what its options add (a
Monte Carlo study of --runs steps, whose median run is the one shown; --explain's what-ifs;
with both, what each source of variability costs). The command only parses and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipesim.analysis.report import Report
from pipesim.errors import ConfigError
from pipesim.schedules.base import Policy
from pipesim.settings.declarations import Settings
from pipesim.studies.executor import Progress, Where, quiet
from pipesim.studies.monte_carlo import Damage, MonteCarlo

if TYPE_CHECKING:
    from pipesim.studies.explain import Explanation  # --explain's, imported when asked


@dataclass(frozen=True)
class RunResult:
    """What `pipesim run` computed."""

    settings: Settings
    """The settings simulated: the user's, with the median run's seed after --runs."""
    report: Report
    study: MonteCarlo | None
    """--runs: the distribution of step times (its median run is `report`)."""
    explanation: Explanation | None
    """--explain: faster links, twice the microbatches, every other policy."""
    damage: Damage | None
    """--explain with --runs: what each source of variability costs."""
    notes: tuple[str, ...]
    """What the user should know about their input, said once the run succeeded."""


def run_step(
    settings: Settings,
    schedule: Path | None = None,
    runs: int | None = None,
    explain: bool = False,
    workers: int | None = None,
    dask_scheduler: Where = None,
    progress: Progress = quiet,
) -> RunResult:
    """Simulate what `pipesim run` is given.

    Raises:
        ConfigError: a schedule file with a policy, and as `simulate_step`.
        PolicyError, ScheduleStalled, ScheduleIncomplete: as `simulate_step`.
    """
    from pipesim.schedules.registry import get_policy
    from pipesim.studies.executor import default_workers
    from pipesim.studies.step import simulate_step

    chosen: Policy
    if schedule is not None:
        if settings.policy is not None:
            raise ConfigError("give a policy (flag or config) or --schedule, not both")
        from pipesim.schedules.from_file import FileSchedule

        chosen = FileSchedule.load(schedule, settings.microbatches)
    else:
        chosen = get_policy(settings.resolved.policy)
    # A schedule file's policy has no name to load it by in a worker: it is sent whole.
    name: str | Policy = settings.resolved.policy if schedule is None else chosen
    pool = workers or default_workers()
    study = None
    if runs is not None:
        from pipesim.studies.monte_carlo import monte_carlo, monte_carlo_estimate

        expected = monte_carlo_estimate(settings, [name], runs, pool)
        with progress(f"runs ({expected})") as report_progress:
            (study,) = monte_carlo(settings, [name], runs, pool, dask_scheduler, report_progress)
        settings = settings.replace(seed=study.median.seed)
    with progress("simulating") as report_progress:
        report = simulate_step(settings, chosen, report_progress)
    explanation = found = None
    if explain:
        from pipesim.studies.explain import explain_report

        explanation = explain_report(report, settings)
        if study is not None:
            from pipesim.studies.monte_carlo import damage

            found = damage(settings, name, study, pool)
    notes = []
    if settings.weight is not None and not report.trace.problem.split_backward:
        notes.append(
            f"--weight changes nothing: {report.trace.policy} runs each backward whole (B and "
            "W together, for --backward ms)"
        )
    if settings.overlap_cost != 1 and not any(step.overlapped for step in report.trace.fused):
        notes.append(
            f"--overlap-cost {settings.overlap_cost:g} changes nothing: "
            f"{report.trace.policy} runs no fused forward-and-backward pairs"
        )
    return RunResult(settings, report, study, explanation, found, tuple(notes))
