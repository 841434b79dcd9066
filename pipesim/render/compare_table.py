"""The table `pipesim compare` prints, and its JSON rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from pipesim.analysis.summary import Summary
from pipesim.render.json_report import network_record
from pipesim.render.numbers import num, peak
from pipesim.render.style import (
    activations,
    fill_table,
    fitted_columns,
    gigabytes,
    ms,
    percent,
)
from pipesim.studies.compare import Comparison, speedup_baseline, speedup_over, verdict


class ComparisonTable:
    """One row per policy: makespan, bubble (measured and closed form), span bubble, peak
    activations, speed-up over GPipe; then which one to pick."""

    def __init__(self, rows: Sequence[Comparison]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        speedups = speedup_over(self.rows)
        in_bytes = _peak_bytes(self.rows)
        peak_header = "peak GB" if in_bytes else "peak"
        headers = ["policy", "v", "makespan", "bubble", "formula", "span", peak_header, "speed-up"]
        cells: list[list[Text | str]] = []
        for row in self.rows:
            figures = row.figures
            if figures is None:
                # why, under the table: a sentence in a column would squeeze every other one
                cells.append([row.policy, "", Text("not run", style="red"), *[""] * 5])
                continue
            summary = figures.summary
            closed = figures.closed_form
            closed_text = (
                "—"
                if closed is None or closed.bubble_fraction is None
                else percent(closed.bubble_fraction) + ("*" if closed.view == "span" else "")
            )
            speedup = speedups.get(row.policy)
            cells.append([
                row.policy,
                str(figures.problem.pipeline.chunks),
                ms(summary.makespan),
                percent(summary.bubble_fraction),
                closed_text,
                percent(summary.span_bubble_fraction),
                _peak_cell(figures.summary) if in_bytes else activations(summary.peak_activations),
                f"{speedup:.2f}x" if speedup is not None else "—",
            ])  # fmt: skip
        # Every column if they fit; else without the span, then the closed form, then v: a
        # figure is never cut, and the line under the table says what was left out.
        keep, widths = fitted_columns(headers, cells, options.max_width, droppable=(5, 4, 1))
        left_out = [headers[c] for c in (5, 4, 1) if c not in keep]
        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        fill_table(table, headers, cells, keep, widths)
        by_reason: dict[str, list[str]] = {}
        for row in self.rows:
            if row.figures is None:
                by_reason.setdefault(row.error or "", []).append(row.policy)
        not_run = [
            Text.assemble((f"{', '.join(policies)} not run: ", "red"), reason)
            for reason, policies in by_reason.items()
        ]
        shown = ", ".join(left_out)
        narrow = [Text(f"left out at this width: {shown} (see -f json)", style="dim")]
        yield Group(table, *(narrow if left_out else []), *not_run, *_verdict_lines(self.rows))


def _peak_bytes(rows: Sequence[Comparison]) -> bool:
    return any(row.figures is not None and row.figures.summary.memory for row in rows)


def _peak_cell(summary: Summary) -> Text:
    """The largest device's peak GB, red and marked when some device is out of memory."""
    largest = max((use.peak for use in summary.memory or []), default=0.0)
    if summary.oom:
        return Text(f"{gigabytes(largest)} OOM", style="bold red")
    return Text(gigabytes(largest))


def _listed(names: Sequence[str]) -> str:
    """a; a and b; a, b and c."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _verdict_lines(rows: Sequence[Comparison]) -> list[Text]:
    result = verdict(rows)
    if result is None:
        return []
    fastest = result.fastest.figures
    assert fastest is not None
    copies = fastest.problem.pipeline.lines
    names = [row.policy for row in (result.fastest, *result.tied)]
    lines = [
        Text.assemble(
            ("fastest: ", "bold"),
            f"{_listed(names)}{' tie' if result.tied else ''} "
            f"({ms(fastest.summary.makespan)} ms, peak "
            f"{activations(fastest.summary.peak_activations)} activations"
            + (
                f"; it holds {copies} copies of the model: {copies}x the weights and "
                "optimizer state of the others"
                if copies > 1
                else ""
            )
            + ")",
        )
    ]
    fits = result.fastest_in_1f1b_memory
    if fits is not None and fits is not result.fastest and fits.figures is not None:
        lines.append(
            Text.assemble(
                ("within 1F1B's memory: ", "bold"),
                f"{fits.policy} ({ms(fits.figures.summary.makespan)} ms, peak "
                f"{activations(fits.figures.summary.peak_activations)} <= "
                f"{activations(result.memory_budget or 0)} activations)",
            )
        )
    if result.memory_limit is not None:
        limit = gigabytes(result.memory_limit)
        fitting = result.fastest_that_fits
        lines.append(
            Text.assemble(("fits in memory: ", "bold"), f"none within {limit} GB")
            if fitting is None or fitting.figures is None
            else Text.assemble(
                ("fits in memory: ", "bold"),
                f"{fitting.policy} is the fastest whose every device stays within {limit} GB "
                f"({ms(fitting.figures.summary.makespan)} ms)",
            )
        )
    lines.append(
        Text(
            "makespan in ms; formula: the closed-form bubble where its assumptions hold (* of "
            "the span); span: the bubble within each device's first-to-last op, what counts "
            "without a synchronized optimizer step; "
            + (
                "peak GB: the most any device holds, static included (OOM: over the limit); "
                if _peak_bytes(rows)
                else "peak: activations held, in microbatches through a device's whole share "
                "of the model; "
            )
            + f"speed-up over {speedup_baseline(rows) or 'gpipe'}",
            style="dim",
        )
    )
    return lines


def comparison_rows(rows: Sequence[Comparison]) -> list[dict[str, Any]]:
    """The comparison as JSON-ready rows, in policy order."""
    speedups = speedup_over(rows)
    result: list[dict[str, Any]] = []
    for row in rows:
        if row.figures is None:
            result.append({"policy": row.policy, "error": row.error})
            continue
        summary = row.figures.summary
        closed = row.figures.closed_form
        pipeline = row.figures.problem.pipeline
        result.append(
            {
                "policy": row.policy,
                "stages": pipeline.devices,
                "chunks": pipeline.chunks,
                "microbatches": pipeline.microbatches,
                "makespan": num(summary.makespan),
                "bubble_fraction": num(summary.bubble_fraction),
                "closed_form_bubble_fraction": None
                if closed is None or closed.bubble_fraction is None
                else num(closed.bubble_fraction),
                "span": num(summary.span),
                "span_bubble_fraction": num(summary.span_bubble_fraction),
                "peak_activations": peak(summary.peak_activations),
                "peak_memory_bytes": None
                if summary.memory is None
                else num(max(use.peak for use in summary.memory)),
                "oom_devices": [oom.device for oom in summary.oom],
                "speedup": None if row.policy not in speedups else num(speedups[row.policy]),
                "error": None,
            }
        )
    return result


def comparison_record(rows: Sequence[Comparison]) -> dict[str, Any]:
    """`compare --format json`'s result: the network simulated, one row per policy, and the
    verdict (the settings are the envelope's)."""
    result = verdict(rows)

    def name(row: Comparison | None) -> str | None:
        return None if row is None else row.policy

    simulated = next((row.figures.problem for row in rows if row.figures is not None), None)
    return {
        "network": None
        if simulated is None
        else network_record(simulated.network, simulated.exchanges),
        "rows": comparison_rows(rows),
        "speedup_baseline": speedup_baseline(rows),
        "verdict": None
        if result is None
        else {
            "fastest": name(result.fastest),
            "fastest_tied_with": [row.policy for row in result.tied],
            "fastest_in_1f1b_memory": name(result.fastest_in_1f1b_memory),
            "memory_limit_bytes": None if result.memory_limit is None else num(result.memory_limit),
            "fastest_that_fits": name(result.fastest_that_fits),
        },
    }
