"""`--html`: one self-contained page with the timeline on a true time axis, zoomable and
pannable, a tooltip per op and per transfer, and the summary beside it.

It draws on a <canvas> with a hundred lines of its own JavaScript (`html_view.html`), no
library and no network: a canvas redraws 100,000 rectangles in a few milliseconds, where one
DOM or SVG node per op would make the page crawl, and nothing has to be fetched to open it. The data
is embedded as JSON; each op carries what it waited for last (from the analysis's readiness),
as numbers the page turns into words when a tooltip needs them.
With a measured run (`run --against`), each device gets a second row under its simulated one:
the measured step, on the same time axis, each op drawn for the time it computed.
"""

from __future__ import annotations

import html
import io
import json
from importlib import resources
from typing import TextIO

from rich.console import Console, RenderableType

from pipesim.analysis.readiness import Readiness
from pipesim.problem.ops import ACTIVATION, GRADIENT
from pipesim.analysis.report import Report
from pipesim.render.numbers import num
from pipesim.simulator.trace import Trace


def _at(time: float) -> float:
    """A time on the page: to the nanosecond, which no zoom can tell apart, and not the float
    noise below it that `num` keeps (8033.400000001 is 8033.4 here): a fifth of a page."""
    rounded = round(time, 6)
    return 0.0 if rounded == 0 else rounded


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
    trace = report.trace
    pipeline = trace.problem.pipeline
    chunk_of = pipeline.chunk_of_stage
    readiness = Readiness(trace)
    index_of = {record.op: index for index, record in enumerate(trace.ops)}
    ops = []
    for record in trace.ops:
        # What the op waited for last, as the page rebuilds it for a tooltip: the producer by
        # its index among the ops, what it sent, when it was ready, whether over a link. As
        # words it was 40% of a page with messages.
        release = readiness.last_input(record)
        waited = (
            [-1, 0, 0, 0]
            if release is None
            else [
                index_of[release.producer.op], _MESSAGES[release.message],
                _at(release.time), int(release.transfer is not None),
            ]
        )  # fmt: skip
        ops.append(
            [
                record.device, record.stage, int(record.kind), record.microbatch,
                _at(record.start), _at(record.end), chunk_of[record.stage], *waited,
            ]
        )  # fmt: skip
    transfers = [
        [t.src, t.dst, int(t.kind), t.microbatch, t.stage, _at(t.queued), _at(t.start), _at(t.end)]
        for t in trace.transfers
        if t.end > t.queued
    ]
    data = {
        "title": title,
        "devices": pipeline.devices,
        "chunks": pipeline.chunks,
        "makespan": num(trace.makespan),
        "ops": ops,
        "transfers": transfers,
        "measured": None
        if measured is None
        else {
            "makespan": num(measured.makespan),
            "ops": [
                [r.device, r.stage, int(r.kind), r.microbatch, _at(r.start), _at(r.end),
                 chunk_of[r.stage]]
                for r in measured.ops
            ],
        },
    }  # fmt: skip
    console = Console(width=110, file=io.StringIO(), color_system=None, record=True, markup=False)
    for renderable in summary:
        console.print(renderable)
    text = console.export_text()
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
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
