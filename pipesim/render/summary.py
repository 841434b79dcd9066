"""The summary under the chart: per-device figures, the closed form, and why the bubble is there."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from pipesim.analysis.diagnosis import Diagnosis, diagnose
from pipesim.analysis.idle_causes import FILL_AND_DRAIN, IDLE_CAUSES, LINK_CAUSES, IdleCause
from pipesim.analysis.report import Report
from pipesim.analysis.summary import DeviceStats
from pipesim.render.explanation import critical_path_words, pace_words
from pipesim.render.recording import ShownInNotebooks
from pipesim.render.style import activations, figures_table, ms, percent

# The table groups the idle causes into columns; the line under it lists every cause.
_CAUSE_COLUMNS: tuple[tuple[str, tuple[IdleCause, ...]], ...] = (
    ("warm up", (IdleCause.WARMUP,)),
    ("wait act.", (IdleCause.WAIT_ACTIVATION,)),
    ("wait grad.", (IdleCause.WAIT_GRADIENT,)),
    ("on links", LINK_CAUSES),
    ("drain", (IdleCause.DRAIN,)),
)


def _idle(stats: DeviceStats, causes: tuple[IdleCause, ...]) -> float:
    return sum(stats.idle_by_cause[cause] for cause in causes)


class SummaryTable(ShownInNotebooks):
    """Makespan, bubble per device and overall, idle time by cause, peak activations."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        report = self.report
        summary = report.summary
        rows = [
            [
                str(stats.device),
                ms(stats.busy),
                ms(stats.idle),
                percent(stats.bubble_fraction),
                *(ms(_idle(stats, causes)) for _, causes in _CAUSE_COLUMNS),
                activations(stats.peak_activations),
            ]
            for stats in summary.devices
        ]
        total = [
            "all",
            ms(sum(s.busy for s in summary.devices)),
            ms(sum(s.idle for s in summary.devices)),
            percent(summary.bubble_fraction),
            *(ms(sum(_idle(s, causes) for s in summary.devices)) for _, causes in _CAUSE_COLUMNS),
            activations(summary.peak_activations),
        ]
        headers = ["device", "busy", "idle", "bubble", *(h for h, _ in _CAUSE_COLUMNS), "peak act."]
        every = list(range(len(headers)))
        causes = set(range(4, 4 + len(_CAUSE_COLUMNS)))
        # All columns if they fit, else without the idle causes (the line under the table
        # lists them), else without the peak: a figure is never cut.
        narrowest = [
            max(*(len(word) for word in header.split()), *(len(row[c]) for row in [*rows, total]))
            for c, header in enumerate(headers)
        ]
        room = options.max_width - 2
        for keep in (every, [c for c in every if c not in causes], [0, 1, 2, 3]):
            if sum(narrowest[c] for c in keep) + 3 * (len(keep) - 1) <= room:
                break
        # Headers on one line when they fit; else every column exactly as wide as its
        # longest figure or header word (rich, left to share the room, may cut a column).
        widest = [max(len(headers[c]), narrowest[c]) for c in keep]
        fixed = sum(widest) + 3 * (len(keep) - 1) > room
        table = _table(headers, keep, rows, total, narrowest, fixed)
        yield Group(table, *headline(report))


def _table(
    headers: list[str],
    keep: list[int],
    rows: list[list[str]],
    total: list[str],
    narrowest: list[int],
    fixed: bool = False,
) -> Table:
    """The per-device table with the columns `keep`, none narrower than its longest figure
    or header word (`narrowest`; exactly that wide with `fixed`): headers wrap, nothing is
    cut."""
    caption = "times in ms; peak act. in microbatches' worth of a device's activations"
    if len(keep) < len(headers):
        caption += "; idle by cause: see the line below, or a wider terminal"
    table = figures_table(caption)
    for index in keep:
        style = "dim" if 4 <= index < 4 + len(_CAUSE_COLUMNS) else None
        width = narrowest[index]
        table.add_column(
            headers[index],
            justify="right",
            style=style,
            min_width=width,
            max_width=width if fixed else None,
        )
    for row in rows:
        table.add_row(*(row[index] for index in keep))
    table.add_section()
    table.add_row(*(total[index] for index in keep), style="bold")
    return table


def headline(report: Report) -> list[Text]:
    """Makespan, measured bubble beside its closed form, and where the idle time comes from."""
    summary = report.summary
    lines = [
        Text.assemble(
            ("makespan ", "bold"),
            f"{ms(summary.makespan)} ms   ",
            ("bubble ", "bold"),
            f"{percent(summary.bubble_fraction)} measured",
        )
    ]
    if summary.span < summary.makespan * (1 - 1e-9):
        lines.append(
            Text.assemble(
                ("span ", "bold"),
                f"{ms(summary.span)} ms   ",
                ("span bubble ", "bold"),
                f"{percent(summary.span_bubble_fraction)}",
                (
                    "   (a device's first op to its last: what limits throughput when each "
                    "device starts the next step as soon as it is free)",
                    "dim",
                ),
            )
        )
    fused = report.trace.fused
    if fused:
        pairs = sum(1 for step in fused if step.overlapped)
        overlap = report.trace.problem.costs.overlap
        parts = []
        if pairs:
            parts.append(f"{pairs} forward-and-backward pairs at {overlap:g} x (F+B)")
        if len(fused) > pairs:
            parts.append(f"{len(fused) - pairs} full backwards")
        lines.append(
            Text.assemble(
                ("fused steps ", "bold"),
                ", ".join(parts),
                ("   (each waits for all its inputs; its outputs leave when it ends)", "dim"),
            )
        )
    closed = _closed_form_text(report)
    if closed:
        lines.append(Text.assemble(("closed form ", "bold"), closed))
    diagnosis = diagnose(summary, report.trace.problem)
    if diagnosis.total_idle > 0:
        lines.append(_where(diagnosis))
        lines.append(_why(report, diagnosis))
    return lines


def _where(diagnosis: Diagnosis) -> Text:
    """Idle time summed over devices, by cause."""
    parts = [
        f"{cause.label} {ms(total)} ms"
        for cause in IDLE_CAUSES
        if (total := diagnosis.by_cause[cause]) > 0
    ]
    return Text.assemble(
        ("idle ", "bold"), f"{ms(diagnosis.total_idle)} ms in all: ", " · ".join(parts)
    )


def _why(report: Report, diagnosis: Diagnosis) -> Text:
    """The reason for the bubble that this run's figures support."""
    summary = report.summary
    pipeline = report.trace.problem.pipeline
    closed = report.closed_form
    if closed is not None and closed.bubble_fraction is not None:
        if pipeline.lines > 1:
            text = (
                "with equal stages the bubble is the fill and drain of both directions: "
                "microbatches enter at both ends, so the middle devices wait longest for "
                f"their first ones (crossing {pipeline.devices // 2 - 1} devices) and the end "
                "devices for the last gradients, and a device with nothing it may run waits."
            )
        else:
            text = (
                "with equal stages the bubble is the pipeline's fill and drain: the last "
                f"device starts only once the first microbatch has crossed the "
                f"{pipeline.devices - 1} before it, the first device ends only once the last "
                "gradient has crossed back, and a device with nothing it may run waits."
            )
        waiting = diagnosis.share(IdleCause.WAIT_ACTIVATION, IdleCause.WAIT_GRADIENT)
        if waiting > 0:
            text += (
                f" Of the idle time, {percent(diagnosis.share(*FILL_AND_DRAIN))} comes before "
                f"a device's first op or after its last, and {percent(waiting)} in between, "
                "waiting for inputs still being computed: the same fill and drain, spread "
                "through the steady state."
            )
        if report.trace.problem.split_backward:
            text += " W passes, which no other stage waits for, fill part of it."
        doubled = report.closed_form_doubled
        if closed.view == "span":
            text += (
                " Each device is busy from its first op to its last; what is left is the "
                "devices starting and ending at different times."
            )
        elif doubled is not None:
            text += (
                f" It shrinks as m grows: {closed.formula} gives {percent(doubled)} "
                f"at m={2 * pipeline.microbatches}."
            )
        return Text.assemble(("why: ", "bold"), text)
    sentences = []
    critical = summary.path
    if critical.links > 0:
        label = "communication-bound: " if diagnosis.communication_bound else ""
        sentences.append(label + critical_path_words(summary))
    if diagnosis.on_links > 0:
        detail = (
            f"{ms(diagnosis.queued)} ms queued behind other messages, "
            f"{ms(diagnosis.in_flight)} ms in flight"
        )
        if diagnosis.held > 0:
            detail += f", {ms(diagnosis.held)} ms held by blocking sends"
        sentences.append(
            f"devices spend {percent(diagnosis.share(*LINK_CAUSES))} of their idle time waiting "
            f"on links directly ({detail})"
        )
    link = diagnosis.busiest_link
    if link is not None:
        between = " (between nodes)" if link.crosses_nodes else ""
        sentences.append(
            f"the busiest link, {link.src}->{link.dst}{between}, carries a message "
            f"{percent(link.utilization)} of the time, {ms(link.busy / link.messages)} ms each"
        )
    pace = pace_words(summary, diagnosis)
    if pace:
        sentences.append(pace)
    sentences.append(
        f"{percent(diagnosis.share(*FILL_AND_DRAIN))} of the idle time is the pipeline's fill "
        "and drain"
    )
    return Text.assemble(("why: ", "bold"), "; ".join(sentences) + ".")


def _closed_form_text(report: Report) -> str:
    closed = report.closed_form
    if closed is None:
        return ""
    if closed.bubble_fraction is None:
        return f"{closed.formula} does not apply ({closed.reason})"
    if closed.view == "span":
        return f"{closed.formula}: {percent(closed.bubble_fraction)} span bubble"
    return f"{closed.formula} = {percent(closed.bubble_fraction)}"
