"""`--html`: one self-contained page with the timeline on a true time axis, zoomable and
pannable, a tooltip per op and per transfer, and the summary beside it.

It draws on a <canvas> with a hundred lines of its own JavaScript (`html_view.html`), no
library and no network: a canvas redraws 100,000 rectangles in a few milliseconds, where one
DOM or SVG node per op would make the page crawl, and nothing has to be fetched to open it. The
data is embedded as JSON. What an op waited for last, a tooltip says: the page finds it from
each stage's dependency rules as the analysis's readiness does, or, where fused steps or
exchanges make that the analysis's work, each op carries it as numbers.
With a measured run (`run --against`), each device gets a second row under its simulated one:
the measured step, on the same time axis, each op drawn for the time it held its rank
(computing, then the runtime's work after it).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from importlib import resources
from itertools import chain
from typing import TextIO

from rich.console import Console, RenderableType

from pipesim.analysis.readiness import Readiness
from pipesim.analysis.report import Report
from pipesim.problem.ops import ACTIVATION, GRADIENT, Kind
from pipesim.render.numbers import TimeTexts, num
from pipesim.simulator.gc_pause import cyclic_gc_paused
from pipesim.simulator.op_index import OpIndex
from pipesim.simulator.trace import OpRecord, Trace


def _op_texts(ops: Sequence[OpRecord], chunk_of: Sequence[int], at: TimeTexts) -> list[str]:
    """Each op as the page reads it, as JSON text: device, stage, kind, microbatch, start, end,
    chunk. What it waited for, the page finds itself when a tooltip asks (`_dependencies`):
    written here, it was 70% of the page's cost at a million ops."""
    return [
        f"[{device},{stage},{int(kind)},{microbatch},{at[start]},{at[end]},{chunk_of[stage]}]"
        for device, stage, kind, microbatch, start, end in ops
    ]


def _dependencies(trace: Trace) -> str:
    """What the page needs to find what an op waited for last: the microbatches and stages
    (an op's key), each slot's inputs as [message?, key offset] (`OpIndex.inputs`), and the
    page's code of what an op of each kind sends."""
    index = OpIndex(trace.problem)
    inputs = [[[int(message), offset] for message, offset in slot] for slot in index.inputs]
    sends = [_MESSAGES[kind.message] for kind in Kind]
    return (
        f'"m":{index.microbatches},"stages":{index.num_stages},'
        f'"inputs":{_dumped(inputs)},"sends":{_dumped(sends)},'
    )


def _waited_rows(trace: Trace, rows: list[str], at: TimeTexts) -> list[str]:
    """`rows` (`_op_texts` of `trace.ops`), each followed by what its op waited for last
    (`Readiness.last_inputs`), for a trace whose page cannot find it: the producer by its
    index among the ops (-1: nothing), what it sent (`_MESSAGES`), when that was ready, 1 if
    it crossed a link."""
    readiness = Readiness(trace)
    # each op's index by its key: `trace.ops` lists the ops device by device, as
    # `keys_by_device` keys them (set in C: a loop over a million ops took a second)
    index_at = [-1] * readiness.index.size
    keys = chain.from_iterable(trace.keys_by_device())
    any(map(index_at.__setitem__, keys, range(len(trace.ops))))
    return [
        f"{row[:-1]},-1,0,0,0]"
        if producer < 0
        else f"{row[:-1]},{index_at[producer]},{_MESSAGES[message]},{at[ready]},{int(crossed)}]"
        for row, (producer, ready, message, crossed) in zip(
            rows, readiness.last_inputs(trace.ops), strict=True
        )
    ]


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
    ops = _op_texts(trace.ops, chunk_of, at)
    transfers = [
        f"[{t.src},{t.dst},{int(t.kind)},{t.microbatch},{t.stage},{at[t.queued]},{at[t.start]},"
        f"{at[t.end]}]"
        for t in trace.transfers
        if t.end > t.queued  # a message that took no time is not drawn
    ]
    # The page finds what each op waited for, as `Readiness.last_inputs` does for a plain
    # trace, when the trace is plain (no fused steps, no exchanges) and every message is on it.
    in_page = not trace.fused and not trace.problem.exchanges
    in_page = in_page and len(transfers) == len(trace.transfers)
    if not in_page:
        ops = _waited_rows(trace, ops, at)
    measured_ops = None if measured is None else _op_texts(measured.ops, chunk_of, at)
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
        f'"makespan":{_dumped(num(trace.makespan))},{_dependencies(trace) if in_page else ""}'
        f'"ops":[{",".join(ops)}],'
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
