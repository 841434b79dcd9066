"""What a Monte Carlo study prints: the distribution of step times and bubbles, a histogram,
and, for several policies, which one wins at the median and which at the 95th percentile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.text import Text

from pipesim.render.numbers import num
from pipesim.render.style import figures_table, fill_table, fitted_columns, ms, percent
from pipesim.studies.monte_carlo import Damage, Distribution, MonteCarlo

_BINS = 12
_BAR = 30


class MonteCarloReport:
    """One policy's runs: statistics, per-device bubbles, a histogram of step times."""

    def __init__(self, study: MonteCarlo) -> None:
        self.study = study

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        study = self.study
        table = figures_table(
            f"{len(study.runs)} runs, seed {study.seed}; step time in ms; percentiles "
            "interpolate between runs"
        )
        for header in ("", "mean", "p50", "p95", "p99", "max"):
            table.add_column(header, justify="right")
        table.add_row("step ms", *_cells(study.makespan, ms))
        table.add_row("bubble", *_cells(study.bubble, percent))
        for device, bubbles in enumerate(study.device_bubbles):
            table.add_row(f"dev {device} bubble", *_cells(bubbles, percent), style="dim")
        yield Group(table, Text(), *histogram([run.makespan for run in study.runs]))
        yield Text.assemble(
            ("median run: ", "bold"),
            f"seed {study.median.seed}, {ms(study.median.makespan)} ms; `--seed "
            f"{study.median.seed}` without --runs reproduces it (drawn below)",
        )


def _cells(values: Distribution, show: Any) -> list[str]:
    return [
        show(values.mean),
        show(values.p50),
        show(values.p95),
        show(values.p99),
        show(values.max),
    ]


def histogram(values: Sequence[float]) -> list[Text]:
    """Step times in equal-width bins, one line each."""
    low, high = min(values), max(values)
    if high <= low:
        return [Text(f"every run takes {ms(low)} ms")]
    width = (high - low) / _BINS
    counts = [0] * _BINS
    for value in values:
        counts[min(_BINS - 1, int((value - low) / width))] += 1
    most = max(counts)
    lines = []
    for index, count in enumerate(counts):
        start = low + index * width
        bar = "█" * round(_BAR * count / most) if count else ""
        lines.append(Text.assemble(f"{ms(start):>9} ms ", (f"{bar:<{_BAR}}", "cyan"), f" {count}"))
    return lines


class MonteCarloComparison:
    """Several policies' runs side by side, ranked by mean step time."""

    def __init__(self, studies: Sequence[MonteCarlo]) -> None:
        self.studies = studies

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        ran = [study for study in self.studies if study.error is None]
        headers = ("policy", "mean", "p50", "p95", "p99", "max", "bubble p50")
        rows: list[list[str | Text]] = [
            [study.policy, *_cells(study.makespan, ms), percent(study.bubble.p50)]
            for study in sorted(ran, key=lambda s: (s.makespan.mean, s.policy))
        ]
        rows += [
            [study.policy, Text("not run", style="red"), "", "", "", "", ""]
            for study in self.studies
            if study.error is not None
        ]
        # Too narrow for every column: p99, then p50, go (a figure is never cut).
        keep, widths = fitted_columns(headers, rows, options.max_width, droppable=(4, 2))
        caption = "step time in ms over the runs; ranked by mean"
        left_out = [headers[c] for c in (4, 2) if c not in keep]
        if left_out:
            caption += f"; left out at this width: {', '.join(left_out)} (see -f json)"
        table = fill_table(figures_table(caption), headers, rows, keep, widths)
        not_run = [
            Text.assemble((f"{study.policy} not run: ", "red"), study.error)
            for study in self.studies
            if study.error is not None
        ]
        yield Group(table, *not_run, *verdict_lines(ran))


def verdict_lines(studies: Sequence[MonteCarlo]) -> list[Text]:
    if not studies:
        return []
    median = min(studies, key=lambda s: (s.makespan.p50, s.policy))
    tail = min(studies, key=lambda s: (s.makespan.p95, s.policy))
    if median is tail:
        return [
            Text.assemble(
                ("robust: ", "bold"),
                f"{median.policy} is fastest both at the median ({ms(median.makespan.p50)} ms) "
                f"and at p95 ({ms(median.makespan.p95)} ms)",
            )
        ]
    return [
        Text.assemble(
            ("at the median: ", "bold"), f"{median.policy} ({ms(median.makespan.p50)} ms)"
        ),
        Text.assemble(
            ("at p95: ", "bold"),
            f"{tail.policy} ({ms(tail.makespan.p95)} ms, against {median.policy}'s "
            f"{ms(median.makespan.p95)}): variability changes the winner",
        ),
    ]


def monte_carlo_record(study: MonteCarlo) -> dict[str, Any]:
    """One policy's runs as JSON."""
    if study.error is not None:
        return {"policy": study.policy, "error": study.error}
    return {
        "policy": study.policy,
        "seed": study.seed,
        "runs": len(study.runs),
        "makespan": _distribution(study.makespan),
        "bubble_fraction": _distribution(study.bubble),
        "device_bubble_fraction": [_distribution(d) for d in study.device_bubbles],
        "median_seed": study.median.seed,
        "run_seeds": [run.seed for run in study.runs],
        "makespans": [num(run.makespan) for run in study.runs],
        "error": None,
    }


def _distribution(values: Distribution) -> dict[str, float | int]:
    return {
        "mean": num(values.mean),
        "p50": num(values.p50),
        "p95": num(values.p95),
        "p99": num(values.p99),
        "max": num(values.max),
    }


_SOURCES = {
    "stragglers": "the stragglers",
    "jitter": "op jitter",
    "links": "link jitter and slow links",
}


def damage_lines(damage: Damage) -> list[str]:
    """Sentences for --explain with --runs: how much each source adds to the p95 step time."""
    extra = damage.p95 - damage.deterministic
    parts = [
        f"without {_SOURCES[source]} it would be {ms(p95)} ms ({ms(damage.p95 - p95)} ms less)"
        for source, p95 in damage.without.items()
    ]
    text = (
        f"Variability: the p95 step time, {ms(damage.p95)} ms, is {ms(extra)} ms over the "
        f"{ms(damage.deterministic)} ms of the run without any"
    )
    if parts:
        text += (
            "; " + "; ".join(parts) + " (same seeds; the parts overlap, so they need not add up)"
        )
    return [text + "."]


def damage_record(damage: Damage) -> dict[str, Any]:
    """`run --runs N --explain --format json`: the sentence, and the p95 step times it words."""
    return {
        "sentences": damage_lines(damage),
        "deterministic_makespan": num(damage.deterministic),
        "p95_makespan": num(damage.p95),
        "p95_makespan_without": {source: num(p95) for source, p95 in damage.without.items()},
    }
