"""`--html`: one self-contained page with the timeline on a true time axis, zoomable and
pannable, a tooltip per op and per transfer, and the summary beside it.

It draws on a <canvas> with a hundred lines of its own JavaScript (`html_view.html`), no
library and no network: a canvas redraws 100,000 rectangles in a few milliseconds, where one
DOM or SVG node per op would make the page crawl, and nothing has to be fetched to open it. The data
is embedded as JSON; each op carries what it waited for last (from the analysis's readiness),
as numbers the page turns into words when a tooltip needs them.
With a measured run (`run --against`), each device gets a second row under its simulated one:
the measured step, on the same time axis, each op drawn for the time it held its rank
(computing, then the runtime's work after it).
"""

from __future__ import annotations

import html
import io
import json
from importlib import resources
from itertools import chain
from typing import TextIO

from rich.console import Console, RenderableType

from pipesim.analysis.readiness import Readiness
from pipesim.analysis.report import Report
from pipesim.problem.ops import ACTIVATION, GRADIENT
from pipesim.render.numbers import TimeTexts, num
from pipesim.simulator.gc_pause import cyclic_gc_paused
from pipesim.simulator.trace import Trace


def _op_rows(trace: Trace, at: TimeTexts) -> list[str]:
    """Each op (in `trace.ops` order) as the page reads it, as JSON text: device, stage, kind,
    microbatch, start, end, chunk, and what it waited for last (`Readiness.last_inputs`) as
    the page rebuilds it for a tooltip: the producer by its index among the ops (-1:
    nothing), what it sent (`_MESSAGES`), when that was ready, 1 if it crossed a link. As
    words it was 40% of a page with messages; as lists of numbers for json.dumps, half of
    the page's cost at a million ops."""
    readiness = Readiness(trace)
    microbatches = readiness.index.microbatches
    chunk_of = trace.problem.pipeline.chunk_of_stage
    # each op's index by its key: `trace.ops` lists the ops device by device, as
    # `keys_by_device` keys them (set in C: a loop over a million ops took a second)
    index_at = [-1] * (3 * trace.problem.pipeline.num_stages * microbatches)
    keys = chain.from_iterable(trace.keys_by_device())
    any(map(index_at.__setitem__, keys, range(len(trace.ops))))
    rows: list[str] = []
    append = rows.append
    waits = readiness.last_inputs(trace.ops)
    for (device, stage, kind, microbatch, start, end), (producer, ready, message, crossed) in zip(
        trace.ops, waits, strict=True
    ):
        head = f"[{device},{stage},{int(kind)},{microbatch},{at[start]},{at[end]},{chunk_of[stage]}"
        if producer < 0:
            append(head + ",-1,0,0,0]")
        else:
            append(f"{head},{index_at[producer]},{_MESSAGES[message]},{at[ready]},{int(crossed)}]")
    return rows


def _dumped(value: object) -> str:
    """`value` as compact JSON that cannot close the page's <script> early."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


_MESSAGES = {None: 0, ACTIVATION: 1, GRADIENT: 2}
"""What an op waited for, by the page's code: its own stage's output, or a message."""


def write_html_view(
    report: Report,
    title: str,
    summary: list[RenderableType],
    out: TextIO,
    measured: Trace | None = None,
) -> None:
    """The page, written to `out`; with `measured`, that step drawn under the simulated one."""
    with cyclic_gc_paused():  # a tuple and a text per op and message: no cycles to find
        _write_page(report, title, summary, out, measured)


def _write_page(
    report: Report,
    title: str,
    summary: list[RenderableType],
    out: TextIO,
    measured: Trace | None,
) -> None:
    trace = report.trace
    pipeline = trace.problem.pipeline
    chunk_of = pipeline.chunk_of_stage
    # to the nanosecond, which no zoom can tell apart, and not the float noise below it that
    # `num` keeps (8033.400000001 is 8033.4 here: a fifth of a page)
    at = TimeTexts(digits=6)
    ops = _op_rows(trace, at)
    transfers = [
        f"[{t.src},{t.dst},{int(t.kind)},{t.microbatch},{t.stage},{at[t.queued]},{at[t.start]},"
        f"{at[t.end]}]"
        for t in trace.transfers
        if t.end > t.queued
    ]
    measured_ops = (
        None
        if measured is None
        else [
            f"[{r.device},{r.stage},{int(r.kind)},{r.microbatch},{at[r.start]},{at[r.end]},"
            f"{chunk_of[r.stage]}]"
            for r in measured.ops
        ]
    )
    console = Console(width=110, file=io.StringIO(), color_system=None, record=True, markup=False)
    for renderable in summary:
        console.print(renderable)
    text = console.export_text()
    # What json.dumps would write of the data, its rows formatted already: they hold numbers
    # only, so nothing in them needs escaping.
    measured_text = (
        "null"
        if measured is None or measured_ops is None
        else f'{{"makespan":{_dumped(num(measured.makespan))},"ops":[{",".join(measured_ops)}]}}'
    )
    payload = (
        f'{{"title":{_dumped(title)},"devices":{pipeline.devices},"chunks":{pipeline.chunks},'
        f'"makespan":{_dumped(num(trace.makespan))},"ops":[{",".join(ops)}],'
        f'"transfers":[{",".join(transfers)}],"measured":{measured_text}}}'
    )
    page = resources.files("pipesim.render").joinpath("html_view.html").read_text()
    out.write(
        page.replace("{title}", html.escape(title))
        .replace(
            "{w_key}",
            ' <span style="background:#55A868"></span>W' if trace.problem.split_backward else "",
        )
        .replace("{summary}", html.escape(text))
        .replace("{data}", payload)
    )
