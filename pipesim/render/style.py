"""Colors and glyphs shared by every renderer, so a forward looks the same everywhere."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from pipesim.problem.ops import Kind

# Two shades per kind, alternating by microbatch, so that neighbouring ops of one kind stay
# distinguishable in the chart.
OP_STYLES: dict[Kind, tuple[str, str]] = {
    Kind.F: ("bold white on #2f6db5", "bold white on #4a8bd6"),
    Kind.B: ("bold black on #3fa34d", "bold black on #6cc46f"),
    Kind.W: ("bold black on #d98a1e", "bold black on #f0aa4a"),
}

KIND_NAMES = {Kind.F: "forward", Kind.B: "backward", Kind.W: "weight grad"}

# Fill glyphs for terminals without color (NO_COLOR, dumb terminals, plain-text tests).
MONO_FILL = {Kind.F: "░", Kind.B: "▓", Kind.W: "▒"}
ASCII_FILL = {Kind.F: "-", Kind.B: "=", Kind.W: "~"}
LATER_FILL = {
    id(MONO_FILL): {Kind.F: "╱", Kind.B: "█", Kind.W: "╲"},
    id(ASCII_FILL): {Kind.F: "/", Kind.B: "#", Kind.W: "\\"},
}
"""Without color, the glyphs of a device's later chunks (interleaved, V schedules), by the
fill of its first: color shades chunks apart, a pipe or NO_COLOR cannot."""

PARTIAL = "dim"
"""Style of a cell that is busy for less than half its time (many short ops squeezed)."""


def op_style(kind: Kind, shade: int) -> str:
    """The style of an op of `kind`; `shade` alternates between the kind's two shades."""
    return OP_STYLES[kind][shade % 2]


def percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def ms(value: float) -> str:
    """A duration for people: no trailing zeros, at most 3 decimals, and fewer as the value
    grows, so that a column reads alike (4 significant digits from 1 on: 66.859 is 66.86,
    133.74 is 133.7, 3935.412 is 3935)."""
    size = abs(value)
    decimals = 3 if size < 10 else 2 if size < 100 else 1 if size < 1000 else 0
    text = f"{value:.{decimals}f}"
    if decimals:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def gigabytes(size: float) -> str:
    """Bytes as GB (10^9), one decimal."""
    return f"{size / 1e9:.1f}"


def activations(value: float) -> str:
    return ms(value)


def figures_table(caption: str) -> Table:
    """The borderless table of figures the summaries use, with a dim caption below."""
    return Table(
        show_edge=False,
        header_style="bold",
        pad_edge=False,
        caption=caption,
        caption_justify="left",
        caption_style="dim",
    )


def fitted_columns(
    headers: Sequence[str],
    rows: Sequence[Sequence[str | Text]],
    width: int,
    droppable: Sequence[int] = (),
) -> tuple[list[int], list[int]]:
    """Which columns a table of `rows` shows in `width` terminal columns, and how wide each
    one is: a column is as wide as its header or its longest cell (a figure is never cut),
    and when they do not all fit the columns in `droppable` go, in that order (the caller
    says which went). Returns (the columns kept, every column's width)."""
    widths = [
        max(
            [len(header)]
            + [cell.cell_len if isinstance(cell, Text) else len(cell) for cell in column]
        )
        for header, column in zip(
            headers, zip(*rows, strict=True) if rows else [()] * len(headers), strict=True
        )
    ]
    keep = list(range(len(headers)))
    for drop in droppable:
        if sum(widths[c] for c in keep) + 3 * (len(keep) - 1) <= width:
            break
        keep.remove(drop)
    return keep, widths


def fill_table(
    table: Table,
    headers: Sequence[str],
    rows: Sequence[Sequence[str | Text]],
    keep: Sequence[int],
    widths: Sequence[int],
    left: int = 0,
) -> Table:
    """Add the columns `keep` of `fitted_columns` to `table`, each at least its width and
    never wrapped (column `left` justified left, the figures right), then the rows."""
    for index in keep:
        table.add_column(
            headers[index],
            justify="left" if index == left else "right",
            no_wrap=True,
            min_width=widths[index],
        )
    for row in rows:
        table.add_row(*(row[index] for index in keep))
    return table


def verbatim(text: Text) -> Text:
    """`text` as lines to copy (a command, a framework's arguments, code): never broken at the
    terminal's width, where a pasted line would become two commands or a syntax error. The
    terminal folds what is longer, when the renderable is printed with `crop=False`."""
    text.no_wrap = True
    text.overflow = "ignore"
    return text
