"""Monte Carlo: many steps of the same configuration, each with its own draws, and the
distribution of their step times.

Run i is seeded with `variability.run_seed(seed, i)`, so the runs do not depend on how they
are spread over workers, and any one of them is reproduced alone with `--seed` its seed.
Percentiles interpolate linearly between order statistics (numpy's default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipesim.errors import ConfigError, PipesimError
from pipesim.problem.variability import run_seed
from pipesim.schedules.base import Policy
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import VARIABILITY, Settings
from pipesim.studies.executor import Where, run_all
from pipesim.studies.step import StepJob, raise_fatal, step_figures
from pipesim.studies.work import estimate, ops_at_most

QUANTILES = (0.5, 0.95, 0.99)
MAX_RUNS = 1_000_000


@dataclass(frozen=True)
class Run:
    """One step of a Monte Carlo study."""

    seed: int
    makespan: float
    bubble: float
    device_bubbles: tuple[float, ...]


@dataclass(frozen=True)
class Distribution:
    """Mean, percentiles and maximum of one figure over the runs."""

    mean: float
    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True)
class MonteCarlo:
    """The runs of one policy and what they add up to."""

    policy: str
    seed: int
    runs: tuple[Run, ...]
    makespan: Distribution
    bubble: Distribution
    device_bubbles: tuple[Distribution, ...]
    median: Run
    """The run at the median step time (the lower one for an even count): the one to draw."""
    error: str | None = None


def distribution(values: Sequence[float]) -> Distribution:
    ordered = sorted(values)
    mean = math.fsum(ordered) / len(ordered)
    p50, p95, p99 = (_quantile(ordered, q) for q in QUANTILES)
    return Distribution(mean, p50, p95, p99, ordered[-1])


def _quantile(ordered: Sequence[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def monte_carlo_estimate(
    settings: Settings, policies: Sequence[str | Policy], runs: int, workers: int
) -> str:
    """How long `monte_carlo` will take, in words ("about 3 min").

    Raises:
        ConfigError: longer than the patience set (see `work`), or runs out of range.
    """
    from pipesim.problem.build import build_problem

    if not 1 <= runs <= MAX_RUNS:
        raise ConfigError(f"runs must be between 1 and {MAX_RUNS:,}, got {runs}")
    ops = 0
    for reference in policies:
        policy = _loaded(reference)
        try:
            chunks = settings.chunks if policy.chunks is None else None
            pipeline = build_problem(settings.replace(chunks=chunks), policy).pipeline
        except PipesimError:
            continue  # the runs report it, in the policy's row
        ops += runs * ops_at_most(pipeline.devices, pipeline.chunks, pipeline.microbatches)
    jobs = runs * len(policies)
    each = "1 policy" if len(policies) == 1 else f"{len(policies)} policies"
    return estimate(f"{runs:,} runs of {each}", jobs, ops, workers)


def monte_carlo(
    settings: Settings,
    policies: Sequence[str | Policy],
    runs: int,
    workers: int = 1,
    dask_scheduler: Where = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[MonteCarlo]:
    """`runs` steps of each policy (a name, or a policy such as a schedule file's), seeded
    from `settings.seed` (0 if not given)."""
    if not 1 <= runs <= MAX_RUNS:
        raise ConfigError(f"runs must be between 1 and {MAX_RUNS:,}, got {runs}")
    seed = settings.resolved.seed
    seeds = [run_seed(seed, run) for run in range(runs)]
    jobs = []
    for reference in policies:
        takes_chunks = _loaded(reference).chunks is None
        chunks = settings.chunks if takes_chunks else None
        jobs += [
            StepJob(settings.replace(policy=None, seed=run, chunks=chunks), reference)
            for run in seeds
        ]
    outcomes = run_all(step_figures, jobs, min(workers, len(jobs)), dask_scheduler, progress)
    raise_fatal(outcomes)
    studies = []
    for index, policy in enumerate(policies):
        chunk = outcomes[index * runs : (index + 1) * runs]
        failed = next((outcome.error for outcome in chunk if outcome.error is not None), None)
        named = policy if isinstance(policy, str) else policy.name
        if failed is not None:
            studies.append(_failed(named, seed, failed))
            continue
        done = []
        for run_seed_, outcome in zip(seeds, chunk, strict=True):
            figures = outcome.figures
            assert figures is not None
            summary = figures.summary
            done.append(
                Run(
                    run_seed_,
                    summary.makespan,
                    summary.bubble_fraction,
                    tuple(stats.bubble_fraction for stats in summary.devices),
                )
            )
        name = chunk[0].figures.policy if chunk[0].figures is not None else named
        studies.append(_study(name, seed, done))
    return studies


def _loaded(policy: str | Policy) -> Policy:
    return get_policy(policy) if isinstance(policy, str) else policy


def _study(policy: str, seed: int, runs: list[Run]) -> MonteCarlo:
    by_time = sorted(runs, key=lambda run: (run.makespan, run.seed))
    devices = len(runs[0].device_bubbles)
    return MonteCarlo(
        policy,
        seed,
        tuple(runs),
        distribution([run.makespan for run in runs]),
        distribution([run.bubble for run in runs]),
        tuple(distribution([run.device_bubbles[d] for run in runs]) for d in range(devices)),
        by_time[(len(by_time) - 1) // 2],
    )


def _failed(policy: str, seed: int, error: str) -> MonteCarlo:
    empty = Distribution(0.0, 0.0, 0.0, 0.0, 0.0)
    return MonteCarlo(policy, seed, (), empty, empty, (), Run(seed, 0.0, 0.0, ()), error)


@dataclass(frozen=True)
class Damage:
    """Where a varied run's p95 step time comes from: the same runs (same seeds) with each
    source of variability removed, and the run without any."""

    deterministic: float
    p95: float
    without: dict[str, float]
    """p95 with one source removed, by source: "stragglers", "jitter", "links"."""


def damage(
    settings: Settings,
    policy: str | Policy,
    study: MonteCarlo,
    workers: int = 1,
    dask_scheduler: Where = None,
) -> Damage:
    """Rerun `study`'s seeds without each source of variability present in `settings`."""
    runs = len(study.runs)
    removals = {
        "stragglers": {"stragglers": None} if settings.stragglers else None,
        "jitter": {"jitter": None} if settings.jitter else None,
        "links": {"link_jitter": None, "slow_links": None}
        if settings.link_jitter or settings.slow_links
        else None,
    }
    without = {}
    for source, change in removals.items():
        if change is not None:
            (rerun,) = monte_carlo(
                settings.replace(**change), [policy], runs, workers, dask_scheduler
            )
            without[source] = rerun.makespan.p95
    (plain,) = monte_carlo(
        settings.replace(**{name: None for name in VARIABILITY if name != "seed"}),
        [policy],
        1,
    )
    return Damage(plain.makespan.max, study.makespan.p95, without)
