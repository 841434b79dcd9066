"""Flags that change nothing, or less than a user would expect, in the command they were given
to, named on stderr.

A user who gives a flag expects it to matter; when it cannot (a seed with nothing random to
draw, workers for a single run), or matters only in part (one random draw where a distribution
might be expected), they are told why instead of trusting a figure it never touched.
"""

from __future__ import annotations

from pipesim.cli.app import warn
from pipesim.problem.network import Network
from pipesim.problem.settings import Settings


def draws(settings: Settings) -> bool:
    """Whether a run makes random draws: jitter, or a straggler that is slow only sometimes."""
    return bool(
        settings.jitter
        or settings.link_jitter
        or any(straggler.probability < 1 for straggler in settings.stragglers or ())
    )


def note_unused_randomness(settings: Settings, runs: int | None = None) -> None:
    """--seed, and --runs, with nothing random to draw."""
    if draws(settings):
        return
    if settings.seed is not None:
        warn(
            "--seed picks the draws of --jitter, --link-jitter and --straggler D:F:P (P < 1); "
            "with none of them it changes nothing"
        )
    if runs is not None:
        warn(
            f"--runs {runs}: with no --jitter, --link-jitter or --straggler D:F:P (P < 1), "
            "every run gives the same step"
        )


def note_unused_pool(command: str, runs: int | None, flags: dict[str, object | None]) -> None:
    """Pool flags (--workers, --dask-scheduler) that spread --runs, given without it."""
    given = [flag for flag, value in flags.items() if value is not None]
    if runs is None and given:
        verb = "spreads" if len(given) == 1 else "spread"
        warn(
            f"{'/'.join(given)} {verb} the runs of --runs; without --runs, pipesim {command} "
            + (
                "simulates one step, in this process"
                if command == "run"
                else "works in this process"
            )
        )


def note_free_messages(settings: Settings, network: Network) -> None:
    """Link jitter and slow links when no message takes any time."""
    given = [
        flag
        for flag, value in (
            ("--link-jitter", settings.link_jitter),
            ("--slow-link", settings.slow_links),
        )
        if value
    ]
    if given and network.free:
        verb = "scales" if len(given) == 1 else "scale"
        warn(
            f"{'/'.join(given)} {verb} message times, but every message here takes no time "
            "(give --comm-latency, or sizes and a bandwidth)"
        )


def note_variability_in_a_fixed_order(settings: Settings, fixed: bool) -> None:
    """export with variability flags, for a policy whose orders are fixed: they vary a run's
    times, never the order written."""
    given = [
        flag
        for flag, value in (
            ("--jitter", settings.jitter),
            ("--link-jitter", settings.link_jitter),
            ("--straggler", settings.stragglers),
            ("--slow-link", settings.slow_links),
            ("--seed", settings.seed),
        )
        if value is not None
    ]
    if fixed and given:
        verb = "varies" if len(given) == 1 else "vary"
        warn(
            f"{'/'.join(given)} {verb} a run's times, not this policy's fixed order: the file "
            "is the same without"
        )


def note_one_draw(command: str, settings: Settings) -> None:
    """plan and optimize with random draws: each configuration is one run, not a
    distribution (optimize solves for the mean costs and only its replay draws)."""
    if not draws(settings):
        return
    seed = settings.seed or 0
    if command == "optimize":
        warn(
            f"optimize solves for the mean costs; --jitter and intermittent stragglers change "
            f"only the replay of its schedule (one draw, seed {seed})"
        )
    else:
        warn(
            f"plan ranks each configuration on one draw (seed {seed}); for step-time "
            "distributions, run `pipesim compare --runs N` on the finalists"
        )
