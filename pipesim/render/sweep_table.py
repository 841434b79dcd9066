"""`pipesim sweep` output: a table with a bar chart of the bubble, or JSON / CSV rows."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from pipesim.render.numbers import num, peak
from pipesim.render.style import activations, fill_table, fitted_columns, ms, percent
from pipesim.settings.declarations import BY_NAME
from pipesim.settings.values import MEMORY, RATE, SIZE
from pipesim.settings.written import setting_text
from pipesim.studies.sweep import SweepRow

_BAR = 20


class SweepTable:
    """One row per (value, policy): bubble measured and closed form, efficiency, makespan,
    peak activations, and a bar of the bubble."""

    def __init__(self, rows: Sequence[SweepRow]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # The figures first, each column as wide as its longest figure; the bar takes what
        # width is left (up to 20 columns) and goes first; then formula and efficiency go,
        # and the line under the table says so: a figure is never cut.
        setting = self.rows[0].setting if self.rows else "value"
        headers = [setting.replace("_", " "), "policy", "bubble", "formula", "efficiency",
                   "makespan", "peak"]  # fmt: skip
        rows = self._cells()
        keep, widths = fitted_columns(headers, rows, options.max_width, droppable=(3, 4))
        spare = options.max_width - sum(widths[c] for c in keep) - 3 * len(keep)
        bar = min(_BAR, spare) if len(keep) == len(headers) and spare >= 6 else 0
        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        fill_table(table, headers, [], keep, widths, left=1)
        if bar:
            table.add_column("bubble", no_wrap=True, min_width=bar)
        for row, cells in zip(self.rows, rows, strict=True):
            shown = [cells[index] for index in keep]
            if bar and row.figures is not None:
                filled = round(row.figures.summary.bubble_fraction * bar)
                shown.append(
                    Text("█" * filled, style="red") + Text("░" * (bar - filled), style="dim")
                )
            table.add_row(*shown)
        yield table
        left_out = [headers[c] for c in (3, 4) if c not in keep]
        if left_out:
            yield Text(f"left out at this width: {', '.join(left_out)} (see -f json)", style="dim")
        # Why a row did not run, under the table: a sentence in a column squeezes the others.
        reasons = dict.fromkeys(
            (row.policy, row.error or "") for row in self.rows if row.figures is None
        )
        for policy, error in reasons:
            yield Text.assemble((f"{policy} not run: ", "red"), error)

    def _cells(self) -> list[list[str | Text]]:
        """Each row's figures, the swept value only on the first row of its group."""
        rows: list[list[str | Text]] = []
        previous = None
        for row in self.rows:
            label = value_text(row.setting, row.value) if row.value != previous else ""
            previous = row.value
            if row.figures is None:
                rows.append([label, row.policy, Text("not run", style="red"), "", "", "", ""])
                continue
            summary = row.figures.summary
            closed = row.figures.closed_form
            formula = (
                "—"
                if closed is None or closed.bubble_fraction is None
                else percent(closed.bubble_fraction) + ("*" if closed.view == "span" else "")
            )
            rows.append([
                label,
                row.policy,
                percent(summary.bubble_fraction),
                formula,
                percent(1 - summary.bubble_fraction),
                ms(summary.makespan),
                activations(summary.peak_activations),
            ])  # fmt: skip
        return rows


def value_text(setting: str, value: object) -> str:
    """A swept value for people: sizes and rates with their units (16 MB, 25 GB/s), other
    values as the flag that sets them would write them."""
    kind = BY_NAME[setting].kind
    if isinstance(value, int | float) and kind in (SIZE, MEMORY, RATE):
        return _with_unit(float(value), "B/s" if kind is RATE else "B")
    if isinstance(value, int | float):
        return ms(value)
    return setting_text(BY_NAME[setting], value)


def _with_unit(value: float, unit: str) -> str:
    for prefix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.4g} {prefix}{unit}"
    return f"{value:g} {unit}"


def sweep_records(rows: Sequence[SweepRow]) -> list[dict[str, Any]]:
    """Plain rows for JSON and CSV: the swept value, the shape, and the figures."""
    records = []
    for row in rows:
        record: dict[str, Any] = {
            "setting": row.setting,
            "value": num(row.value)
            if isinstance(row.value, int | float)
            else value_text(row.setting, row.value),
            "policy": row.policy,
        }
        if row.figures is None:
            record.update(dict.fromkeys(_FIGURES))
            record["error"] = row.error
        else:
            pipeline = row.figures.problem.pipeline
            summary = row.figures.summary
            closed = row.figures.closed_form
            record.update(
                stages=pipeline.devices,
                microbatches=pipeline.microbatches,
                chunks=pipeline.chunks,
                makespan=num(summary.makespan),
                bubble_fraction=num(summary.bubble_fraction),
                closed_form_bubble_fraction=None
                if closed is None or closed.bubble_fraction is None
                else num(closed.bubble_fraction),
                efficiency=num(1 - summary.bubble_fraction),
                span_bubble_fraction=num(summary.span_bubble_fraction),
                peak_activations=peak(summary.peak_activations),
                error=None,
            )
        records.append(record)
    return records


_FIGURES = (
    "stages",
    "microbatches",
    "chunks",
    "makespan",
    "bubble_fraction",
    "closed_form_bubble_fraction",
    "efficiency",
    "span_bubble_fraction",
    "peak_activations",
)


def write_sweep_csv(rows: Sequence[SweepRow], out: TextIO) -> None:
    columns = ["setting", "value", "policy", *_FIGURES, "error"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in sweep_records(rows):
        writer.writerow({key: "" if value is None else value for key, value in record.items()})
