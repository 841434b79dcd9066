"""Flags that change nothing, or less than a user would expect, in the command they were given
to, named on stderr.

A user who gives a flag expects it to matter; when it cannot (a seed with nothing random to
draw, workers for a single run), or matters only in part (one random draw where a distribution
might be expected), they are told why instead of trusting a figure it never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from pipesim.cli.app import warn
from pipesim.problem.network import Network
from pipesim.problem.variability import makes_draws
from pipesim.settings.declarations import Settings


def draws(settings: Settings) -> bool:
    """Whether a run with `settings` makes random draws (`variability.makes_draws`)."""
    resolved = settings.resolved
    return makes_draws(resolved.jitter, resolved.link_jitter, resolved.stragglers)


def _given(flags: Iterable[tuple[str, object]]) -> list[str]:
    """The flags of `(flag, value)` pairs that were given (a value other than None)."""
    return [flag for flag, value in flags if value is not None]


def _subject(given: list[str], singular: str, plural: str) -> str:
    """ "--a/--b verb": the flags given, and the verb agreeing with them."""
    return f"{'/'.join(given)} {singular if len(given) == 1 else plural}"


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
    given = _given(flags.items())
    if runs is None and given:
        alone = (
            "simulates one step, in this process" if command == "run" else "works in this process"
        )
        warn(
            f"{_subject(given, 'spreads', 'spread')} the runs of --runs; without --runs, "
            f"pipesim {command} {alone}"
        )


def note_unused_chart_flags(
    output_format: str, window: dict[str, object | None], width: int | None, saved: bool
) -> None:
    """Chart flags when no chart is drawn: the window (--from, --to, --devices) with an output
    format other than text and no saved picture, and --width with no saved picture."""
    given = _given(window.items())
    if given and output_format != "text" and not saved:
        warn(
            f"{_subject(given, 'draws', 'draw')} the terminal chart, which --format "
            f"{output_format} does not show (add --save-terminal FILE to keep it)"
        )
    if width is not None and not saved:
        warn(
            "--width sets the columns of --save-terminal / --svg; without either it changes nothing"
        )


def note_free_messages(settings: Settings, network: Network) -> None:
    """Link jitter and slow links when no message takes any time."""
    given = _given(
        (
            ("--link-jitter", settings.link_jitter or None),
            ("--slow-link", settings.slow_links or None),
        )
    )
    if given and network.free:
        warn(
            f"{_subject(given, 'scales', 'scale')} message times, but every message here takes "
            "no time (give --comm-latency, or sizes and a bandwidth)"
        )


def note_variability_in_a_fixed_order(settings: Settings, fixed: Callable[[], bool]) -> None:
    """export with variability flags, for a policy whose orders are fixed (`fixed()`, asked
    only when such a flag was given): they vary a run's times, never the order written."""
    given = _given(
        (
            ("--jitter", settings.jitter),
            ("--link-jitter", settings.link_jitter),
            ("--straggler", settings.stragglers),
            ("--slow-link", settings.slow_links),
            ("--seed", settings.seed),
        )
    )
    if given and fixed():
        warn(
            f"{_subject(given, 'varies', 'vary')} a run's times, not this policy's fixed order: "
            "the file is the same without"
        )


def note_one_draw(command: str, settings: Settings) -> None:
    """compare (without --runs), plan and optimize with random draws: each policy or
    configuration is one run, not a distribution (optimize solves for the mean costs and only
    its replay draws)."""
    if not draws(settings):
        return
    seed = settings.resolved.seed
    if command == "compare":
        warn(
            f"compare ranks each policy on one draw (seed {seed}); --runs N gives each its "
            "distribution of step times"
        )
    elif command == "optimize":
        warn(
            f"optimize solves for the mean costs; --jitter and intermittent stragglers change "
            f"only the replay of its schedule (one draw, seed {seed})"
        )
    else:
        warn(
            f"plan ranks each configuration on one draw (seed {seed}); for step-time "
            "distributions, run `pipesim compare --runs N` on the finalists"
        )


def unfixed_for_plan(settings: Settings) -> Settings:
    """`plan` without what fixes one configuration: costs given in ms (--forward, --backward,
    --weight, total_*) and, with a global batch, the microbatch count. Each configuration
    plan tries splits the model and the batch its own way (a calibrated config holds the
    measured run's costs and m), so it derives them from the model at the settings' MFU and
    from G / (b x d), and says so."""
    fixed = {
        name: None
        for name in ("forward", "backward", "weight", "total_forward", "total_backward")
        if getattr(settings, name) is not None
    }
    if fixed:
        flags = ["--" + name.replace("_", "-") for name in fixed]
        warn(
            f"{_subject(flags, 'fixes', 'fix')} one configuration's costs; plan derives each "
            f"configuration's from the model at MFU {settings.resolved.mfu:g} instead"
        )
    if settings.microbatches is not None and settings.global_batch_size is not None:
        fixed["microbatches"] = None
        warn(
            f"--microbatches {settings.microbatches} is one configuration's m; plan gives each "
            f"the global batch {settings.global_batch_size} / (micro-batch size x data "
            "parallel) instead"
        )
    return settings.replace(**fixed) if fixed else settings


def note_mfu_unused(settings: Settings) -> None:
    """--mfu with a model whose forwards and backwards are given in ms (a calibrated config:
    measured costs, and the MFU fitted for plan): the model's op costs are not used, so the
    MFU changes nothing in this command."""
    fixed = (settings.forward is not None and settings.backward is not None) or (
        settings.total_forward is not None and settings.total_backward is not None
    )
    if settings.mfu is not None and settings.model is not None and fixed:
        warn(
            "--mfu sets the costs pipesim derives from the model, but the forwards and "
            "backwards are given in ms here: it changes nothing (plan, which derives every "
            "configuration's costs, uses it)"
        )


def note_weight_guessed(settings: Settings, split: Sequence[str]) -> None:
    """A backward given in ms without its weight-gradient part, and schedules (`split`) that
    split it: they take W as half the backward (`problem.build`), a guess. A measured 1F1B
    or GPipe run (a calibrated config) never times W apart, and zero-bubble rankings rest on
    that split."""
    if settings.backward is None or settings.weight is not None or not split:
        return
    shown = ", ".join(split[:3]) + (", ..." if len(split) > 3 else "")
    warn(
        f"--backward is given without --weight: {shown} split the backward and take its "
        "weight-gradient part as half of it, a guess (give --weight, or calibrate a run that "
        "split the backward)"
    )
