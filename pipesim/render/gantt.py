"""The Gantt chart: one row per device, time scaled to the width rich gives it.

Each character cell covers a slice of time and shows the op that covers most of it; a cell
busy for less than half its slice (many short ops squeezed together) is drawn faint, and an
idle cell stays empty. Rows never wrap: the scale follows the width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from pipesim.problem.ops import Kind
from pipesim.render.recording import ShownInNotebooks
from pipesim.render.style import (
    ASCII_FILL,
    KIND_NAMES,
    LATER_FILL,
    MONO_FILL,
    OP_STYLES,
    PARTIAL,
    ms,
    op_style,
    percent,
)
from pipesim.simulator.trace import OpRecord, Trace, TransferRecord

_MIN_COLUMNS = 10


class GanttChart(ShownInNotebooks):
    """A rich renderable of `trace`'s timeline, with a time axis and a legend; `window`
    (start, end in ms) and `devices` draw part of a long run at full resolution."""

    def __init__(
        self,
        trace: Trace,
        window: tuple[float, float] | None = None,
        devices: Sequence[int] | None = None,
    ) -> None:
        self.trace = trace
        self.window = window
        self.devices = list(devices) if devices else list(range(trace.problem.pipeline.devices))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from _in_ascii(self._lines(console, options), options.ascii_only)

    def _lines(self, console: Console, options: ConsoleOptions) -> RenderResult:
        trace = self.trace
        after = _after_pipeline(trace)
        step_end = max([trace.makespan, *(end for lane in after or () for _, end, _ in lane)])
        offset, until = self.window or (0.0, step_end)
        makespan = until - offset
        every = trace.ops_by_device()
        by_device = (
            [every[device] for device in self.devices]
            if self.window is None  # the whole step: nothing to cut
            else [_clip(every[device], offset, until) for device in self.devices]
        )
        label_width = len(f"dev {max(self.devices)}") + 1
        suffix_width = 7  # " 100.0%"
        available = max(_MIN_COLUMNS, options.max_width - label_width - 1 - suffix_width)
        scale = chart_scale(makespan, available)
        columns = min(available, math.ceil(makespan * scale - 1e-9)) if scale > 0 else available
        mono = console.no_color or console.color_system is None
        fill = ASCII_FILL if options.ascii_only else MONO_FILL
        chunk_of = _chunk_index(trace)
        lanes = _transfers_by_sender(trace)
        labelled = False
        for device, ops in zip(self.devices, by_device, strict=True):
            row = Text(f"dev {device}".ljust(label_width), style="bold")
            row.append("│", style="dim")
            cells = _device_row(ops, columns, scale, fill if mono else None, chunk_of)
            labelled = labelled or _has_labels(cells)
            row.append_text(cells)
            busy = sum(record.end - record.start for record in ops)
            span = min(until, trace.makespan) - offset  # idle within the pipeline's time
            idle = 1 - busy / span if span > 0 else 0.0
            row.append(f" {percent(idle):>6}", style="dim")
            row.no_wrap = True
            yield row
            if lanes is not None:
                sends = _clip_transfers(lanes[device], offset, until)
                yield _transfer_lane(sends, label_width, columns, scale, mono)
            if after is not None:
                yield _collective_lane(after[device], offset, label_width, columns, scale)
        yield from _time_axis(label_width, columns, scale, makespan, offset)
        dense = any(_crowded(ops, columns, scale) for ops in by_device)
        yield from _legend(trace, scale, fill if mono else None, options.max_width, dense, labelled)


_ASCII = str.maketrans(
    "│└┬─╵╎━═┄░▓▒╱█╲·▏",
    "|++-':-=.-=~/#\\.|",
)
"""The chart's box-drawing and shading glyphs, for an output that can only take ASCII."""


def _in_ascii(lines: RenderResult, ascii_only: bool) -> RenderResult:
    """`lines`, their glyphs spelled in ASCII when the output cannot encode more (a pipe or
    terminal with PYTHONIOENCODING=ascii, LANG=C): the styles stay, each glyph one character."""
    for line in lines:
        if ascii_only and isinstance(line, Text):
            line.plain = line.plain.translate(_ASCII)
        yield line


def _transfers_by_sender(trace: Trace) -> list[list[TransferRecord]] | None:
    """Each device's outgoing transfers, or None when messages take no time (no lanes)."""
    if not any(t.end > t.queued for t in trace.transfers):
        return None
    lanes: list[list[TransferRecord]] = [[] for _ in range(trace.problem.pipeline.devices)]
    for transfer in trace.transfers:
        lanes[transfer.src].append(transfer)
    return lanes


def _transfer_lane(
    transfers: list[TransferRecord], label_width: int, columns: int, scale: float, mono: bool
) -> Text:
    """A thin lane under a device: its messages queued (┄) and on the link (━ activation,
    ═ gradient), so that a reader sees when the links, not the devices, are busy."""
    cells: list[tuple[str, str] | None] = [None] * columns
    for transfer in transfers:
        glyph = "━" if transfer.kind is Kind.F else "═"
        style = "dim" if mono else OP_STYLES[transfer.kind][0].split(" on ")[-1]
        for start, end, mark in (
            (transfer.queued, transfer.start, ("┄", "dim")),
            (transfer.start, transfer.end, (glyph, style)),
        ):
            if end <= start:
                continue
            first = min(int(start * scale), columns - 1)
            last = min(max(first, math.ceil(end * scale) - 1), columns - 1)
            for index in range(first, last + 1):
                if cells[index] is None or mark[0] != "┄":
                    cells[index] = mark
    lane = Text(" " * label_width + "╵", style="dim", no_wrap=True)
    for cell in cells:
        if cell is None:
            lane.append(" ")
        else:
            lane.append(cell[0], style=cell[1])
    return lane


_AFTER = {"reduction": "r", "optimizer": "o", "gather": "g"}
"""The letter of each collective in the lane under a device."""
_NAMES = {"r": "gradient reduction", "o": "optimizer", "g": "parameter all-gather"}


def _after_pipeline(trace: Trace) -> list[list[tuple[float, float, str]]] | None:
    """Per device, its collectives as (start, end, letter), or None."""
    if trace.problem.workload is None:
        return None  # hand-entered costs: no collectives (and no import of the whole step)
    from pipesim.analysis.whole_step import device_collectives

    spans = device_collectives(trace)
    if spans is None:
        return None
    return [[(span.start, span.end, _AFTER[span.what]) for span in lane] for lane in spans]


def _collective_lane(
    spans: list[tuple[float, float, str]],
    offset: float,
    label_width: int,
    columns: int,
    scale: float,
) -> Text:
    """A lane under a device for its collectives after its backwards: each cell shows the
    letter (`_NAMES`) of the span that covers most of it, and a span that covers most of no
    cell still takes its first one from a span that has others, so that every collective the
    device runs can be seen."""
    width = 1 / scale
    owner: list[int | None] = [None] * columns
    cover = [0.0] * columns
    placed = [(start - offset, end - offset, letter) for start, end, letter in spans]
    for number, (start, end, _) in enumerate(placed):
        if end <= 0 or start >= columns * width:
            continue
        first = min(max(0, int(start * scale)), columns - 1)
        last = min(max(first, math.ceil(end * scale) - 1), columns - 1)
        for index in range(first, last + 1):
            share = min(end, (index + 1) * width) - max(start, index * width)
            if share > cover[index]:
                owner[index], cover[index] = number, share
    for number, (start, end, _) in enumerate(placed):
        if number in owner or end <= 0 or start >= columns * width:
            continue
        first = min(max(0, int(start * scale)), columns - 1)
        held = owner[first]
        if held is None or owner.count(held) > 1:
            owner[first] = number
    cells = "".join(" " if number is None else placed[number][2] for number in owner)
    return Text(" " * label_width + "╎" + cells, style="dim", no_wrap=True)


def _chunk_index(trace: Trace) -> list[int] | None:
    """For devices holding several chunks, each stage's position on its device (it picks the
    op's shade, so that chunks stand apart); None for one chunk per device (shade by
    microbatch, so that neighbouring ops stand apart)."""
    pipeline = trace.problem.pipeline
    return None if pipeline.chunks == 1 else list(pipeline.chunk_of_stage)


def _device_row(
    ops: list[OpRecord],
    columns: int,
    scale: float,
    fill: dict[Kind, str] | None,
    chunk_of: list[int] | None,
) -> Text:
    """The cells of one device: each op owns the cells between its start and end rounded to
    the nearest cell edges; when some op is narrower than a cell (it could lose every cell to
    its neighbours), the kinds share the cells in proportion to their time instead
    (`_dense_row`)."""
    if _crowded(ops, columns, scale):
        return _dense_row(ops, columns, scale, fill)
    owner: list[int] = [-1] * columns
    covered = [0.0] * columns
    for index, record in enumerate(ops):
        start, end = record.start * scale, record.end * scale
        # Every boundary, the op's and the idle time's alike, goes to its nearest cell edge
        # (halves up): an op or a gap of n cells' time gets n cells, give or take one, so
        # rounding never swallows idle time nor stretches an op.
        first = min(math.floor(start + 0.5), columns)
        last = min(max(math.floor(end + 0.5), first + 1), columns)
        for cell in range(first, last):
            if owner[cell] < 0:
                owner[cell] = index
                covered[cell] = max(0.0, min(end, cell + 1) - max(start, cell))
    text = Text()
    cell = 0
    while cell < columns:
        index = owner[cell]
        run_end = cell + 1
        while run_end < columns and owner[run_end] == index:
            run_end += 1
        if index < 0:
            text.append(" " * (run_end - cell))
        else:
            record = ops[index]
            shade = record.microbatch if chunk_of is None else chunk_of[record.stage]
            glyphs = fill
            if fill is not None and chunk_of is not None and shade > 0:
                glyphs = LATER_FILL[id(fill)]  # without color, a later chunk's own glyphs
            _append_op_run(text, record, covered[cell:run_end], glyphs, shade)
        cell = run_end
    return text


_KINDS = (Kind.F, Kind.B, Kind.W)


def _mostly_idle(fill: dict[Kind, str]) -> str:
    """Without color, the glyph of a cell busy under half its time: not a kind's fill, which
    would hide the idle time, nor a blank, which would hide the work."""
    return "." if all(glyph.isascii() for glyph in fill.values()) else "·"


def _crowded(ops: list[OpRecord], columns: int, scale: float) -> bool:
    """Whether a row has more ops than cells, or an op narrower than one cell."""
    if len(ops) > columns:
        return True
    return any((record.end - record.start) * scale < 1 - 1e-9 for record in ops)


def _dense_row(
    ops: list[OpRecord], columns: int, scale: float, fill: dict[Kind, str] | None
) -> Text:
    """A row with more ops than columns: no op can be seen alone, so each cell shows one kind
    of work or idle time, chosen by error diffusion so that along the row every kind, and the
    idle time, gets cells in proportion to its time (a column of F, B and W in equal parts
    shows each in a third of the cells, where the majority would show only one; a device idle
    90% of the time is blank in 90% of its cells). One pass of arithmetic per op, so that a
    million-op chart draws in well under a second."""
    coverage = [[0.0] * columns, [0.0] * columns, [0.0] * columns]
    last_cell = columns - 1
    for record in ops:
        kind = record.kind
        cells = coverage[kind]
        start, end = record.start * scale, record.end * scale
        cell = int(start)
        if cell >= last_cell:
            cells[last_cell] += end - start
        elif end <= cell + 1:
            cells[cell] += end - start  # NOTE: the common case, kept branch-light
        else:
            while start < end and cell <= last_cell:
                edge = end if cell == last_cell else min(end, cell + 1.0)
                cells[cell] += edge - start
                start, cell = edge, cell + 1
    text = Text()
    run_style, run_length, run_glyph = "", 0, " "
    owed = [0.0, 0.0, 0.0, 0.0]
    """Per kind, and idle last, the cells' worth of time it has had minus the cells it was
    shown in."""
    for cell in range(columns):
        amounts = (coverage[0][cell], coverage[1][cell], coverage[2][cell])
        total = amounts[0] + amounts[1] + amounts[2]
        if total <= 0:
            style, glyph = "", " "  # an idle cell shown idle: nothing owed either way
        else:
            for code in (0, 1, 2):
                owed[code] += amounts[code]
            owed[3] += max(0.0, 1.0 - total)
            present = [code for code in (0, 1, 2) if amounts[code] > 0]
            if total < 1.0:
                present.append(3)  # idle time competes for the cell like any kind of work
            code = max(present, key=lambda c: owed[c])
            owed[code] -= 1.0
            if code == 3:
                style, glyph = "", " "
            else:
                kind = _KINDS[code]
                style = op_style(kind, 0)
                glyph = fill[kind] if fill else " "
        if (style, glyph) != (run_style, run_glyph) and run_length:
            text.append(run_glyph * run_length, style=run_style or None)
            run_length = 0
        run_style, run_glyph = style, glyph
        run_length += 1
    if run_length:
        text.append(run_glyph * run_length, style=run_style or None)
    return text


def _append_op_run(
    text: Text, record: OpRecord, covered: list[float], fill: dict[Kind, str] | None, shade: int
) -> None:
    """Cells owned by one op: its microbatch as a label if it fits, faint if mostly idle.

    A label needs one cell besides (a glyph, or in color the background), and is never last
    in its op, so that two labels never touch ("0▓4░", not "▓04"; in color, ops of one chunk
    share a shade, and "12" would read as twelve)."""
    width = len(covered)
    if sum(covered) < width / 2:
        glyph = _mostly_idle(fill) if fill else "▏"
        text.append(glyph * width, style=PARTIAL)
        return
    label = str(record.microbatch)
    pad = fill[record.kind] if fill else " "
    room = width - len(label)
    if room == 1:
        body = label + pad
    elif room >= 2:
        left = room // 2
        body = pad * left + label + pad * (room - left)
    else:
        body = pad * width
    text.append(body, style=op_style(record.kind, shade))


def chart_scale(makespan: float, available: int) -> float:
    """Columns per ms: a whole number of columns per ms when time is short, else a round number
    of ms per column, so that op boundaries fall on columns and the axis reads easily."""
    if makespan <= 0:
        return 0.0
    ms_per_column = makespan / available
    if ms_per_column <= 1:
        return float(math.floor(1 / ms_per_column))
    return 1 / _nice_step(ms_per_column, (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10))


def _nice_step(raw: float, factors: tuple[float, ...] = (1, 2, 5, 10)) -> float:
    """The smallest of `factors` x 10^k at least `raw`."""
    if raw <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in factors:
        if factor * magnitude >= raw:
            return float(factor * magnitude)
    return 10.0 * magnitude


def _clip(ops: list[OpRecord], start: float, end: float) -> list[OpRecord]:
    """The ops that overlap [start, end), cut to it and shifted to start at 0."""
    return [
        record._replace(start=max(record.start, start) - start, end=min(record.end, end) - start)
        for record in ops
        if record.end > start and record.start < end
    ]


def _clip_transfers(
    transfers: list[TransferRecord], start: float, end: float
) -> list[TransferRecord]:
    return [
        t._replace(
            queued=max(t.queued, start) - start,
            start=min(max(t.start, start), end) - start,
            end=min(t.end, end) - start,
        )
        for t in transfers
        if t.end > start and t.queued < end
    ]


def _time_axis(
    label_width: int, columns: int, scale: float, makespan: float, offset: float = 0.0
) -> list[Text]:
    if scale <= 0:
        return []
    step = _nice_step(10 / scale)
    first = math.ceil(offset / step - 1e-9)
    ticks = [step * k for k in range(first, int((offset + makespan) / step + 1e-9) + 1)]
    rule = ["─"] * columns
    numbers = [" "] * (columns + 8)
    for tick in ticks:
        cell = min(round((tick - offset) * scale), columns - 1)
        rule[cell] = "┬"
        label = ms(tick)
        if all(c == " " for c in numbers[max(0, cell - 1) : cell + len(label) + 1]):
            numbers[cell : cell + len(label)] = label
    axis = Text(" " * label_width + "└" + "".join(rule), style="dim", no_wrap=True)
    labels = Text(" " * (label_width + 1) + "".join(numbers).rstrip() + " ms", style="dim")
    labels.no_wrap = True
    return [axis, labels]


def _has_labels(cells: Text) -> bool:
    """Whether a row's cells name some op's microbatch (digits appear there only as labels)."""
    return any(char.isdigit() for char in cells.plain)


def _legend(
    trace: Trace,
    scale: float,
    fill: dict[Kind, str] | None,
    width: int,
    dense: bool,
    labelled: bool,
) -> list[Text]:
    """The legend's entries, packed into as many lines of `width` as they need (an entry is
    never cut); it explains only what this chart can show: `labelled`, whether some op is
    wide enough to show its microbatch."""
    kinds = [Kind.F, Kind.B, Kind.W] if trace.problem.split_backward else [Kind.F, Kind.B]
    entries = []
    for kind in kinds:
        swatch = f" {kind.name} " if fill is None else f"{fill[kind]}{kind.name}{fill[kind]}"
        entries.append(Text.assemble((swatch, op_style(kind, 0)), f" {KIND_NAMES[kind]}"))
    notes = ["blank idle"]
    if dense:
        notes.append("more ops than columns: kinds and idle share cells by time")
    else:
        notes.append("digits microbatch" if labelled else "ops too narrow for microbatch digits")
        if trace.problem.pipeline.chunks > 1 and fill is None:
            notes.append("light = later chunk")  # shades exist only in color, op by op
        elif trace.problem.pipeline.chunks > 1 and fill is not None:
            later = LATER_FILL[id(fill)]
            notes.append(" ".join(later[kind] * 2 for kind in kinds) + " later chunk")
    if _transfers_by_sender(trace) is not None:
        notes.append("╵ sends: ━ activation ═ gradient ┄ queued")
    after = _after_pipeline(trace)
    if after is not None:
        shown = {letter for lane in after for _, _, letter in lane}
        notes.append(
            "╎ after the backwards: "
            + " ".join(f"{letter} {name}" for letter, name in _NAMES.items() if letter in shown)
        )
    if scale > 0:
        notes.append(f"1 col = {ms(1 / scale)} ms")
    entries += [Text(note, style="dim") for note in notes]
    lines = [Text(no_wrap=True, overflow="ellipsis")]
    for entry in entries:
        line = lines[-1]
        if line.cell_len and line.cell_len + 3 + entry.cell_len > width:
            lines.append(line := Text(no_wrap=True, overflow="ellipsis"))
        if line.cell_len:
            line.append("   ")
        line.append_text(entry)
    return lines


class OverlayChart:
    """A simulated step and a measured one, device by device (simulated above, measured
    below), on one time scale: where the simulation runs ahead of the run or falls behind."""

    def __init__(self, simulated: Trace, measured: Trace) -> None:
        self.simulated, self.measured = simulated, measured

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from _in_ascii(self._lines(console, options), options.ascii_only)

    def _lines(self, console: Console, options: ConsoleOptions) -> RenderResult:
        simulated, measured = self.simulated, self.measured
        until = max(simulated.makespan, measured.makespan)
        devices = simulated.problem.pipeline.devices
        label_width = len(f"dev {devices - 1} meas") + 1
        available = max(_MIN_COLUMNS, options.max_width - label_width - 1 - 7)
        scale = chart_scale(until, available)
        columns = min(available, math.ceil(until * scale - 1e-9)) if scale > 0 else available
        mono = console.no_color or console.color_system is None
        fill = ASCII_FILL if options.ascii_only else MONO_FILL
        chunk_of = _chunk_index(simulated)
        labelled = False
        for device in range(devices):
            for name, trace in (("sim", simulated), ("meas", measured)):
                ops = trace.ops_by_device()[device]
                label = f"dev {device} {name}" if name == "sim" else f"{name:>{label_width - 1}}"
                row = Text(label.ljust(label_width), style="bold" if name == "sim" else "dim")
                row.append("│", style="dim")
                cells = _device_row(ops, columns, scale, fill if mono else None, chunk_of)
                labelled = labelled or _has_labels(cells)
                row.append_text(cells)
                end = max((record.end for record in ops), default=0.0)
                row.append(f" {ms(end):>6}", style="dim")
                row.no_wrap = True
                yield row
        yield from _time_axis(label_width, columns, scale, until)
        dense = any(
            _crowded(ops, columns, scale)
            for trace in (simulated, measured)
            for ops in trace.ops_by_device()
        )
        yield from _legend(
            simulated, scale, fill if mono else None, options.max_width, dense, labelled
        )
        yield Text(
            "sim: this run, simulated; meas: the measured run's typical step, each op drawn "
            "for the time it held its rank (computing, then the runtime's work after it); "
            "right: when the device's last op ends (ms)",
            style="dim",
        )
