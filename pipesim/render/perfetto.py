"""The timeline as a Chrome Trace Event Format file, for Perfetto and chrome://tracing.

One process per device (named and ordered), with a compute thread and a communication thread;
a complete event per op and per transfer that takes time; a flow arrow from each op to the op
that consumes its output message; a counter of the activations each device holds. Times are
converted from the simulation's milliseconds to the format's microseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TextIO

from pipesim.analysis.report import Report
from pipesim.problem.ops import Kind, Op, message_target
from pipesim.render.json_report import write_items
from pipesim.render.numbers import num
from pipesim.render.style import KIND_NAMES
from pipesim.simulator.op_index import OpIndex
from pipesim.simulator.trace import OpRecord, TransferRecord

COMPUTE_THREAD = 0
"""Each device's ops; its links' tracks follow from 1."""


class Lanes(NamedTuple):
    """Which track each transfer is drawn on: per link direction, as many lanes as it takes
    for no two messages to overlap on one (with latency, a link carries the next message
    while the last is still in flight)."""

    tids: list[int]
    """Per transfer, in trace order, its track."""
    threads: dict[tuple[int, int, int], int]
    """(src, dst, lane) -> track, in the order tracks were opened."""


def link_lanes(transfers: Sequence[TransferRecord]) -> Lanes:
    """Greedy interval partitioning, in hand-over order: a message goes on the first lane of
    its link that is free when it is queued."""
    ends: dict[tuple[int, int], list[float]] = {}
    threads: dict[tuple[int, int, int], int] = {}
    next_tid: dict[int, int] = {}
    tids = []
    for transfer in transfers:
        lanes = ends.setdefault((transfer.src, transfer.dst), [])
        lane = next((i for i, end in enumerate(lanes) if end <= transfer.queued), len(lanes))
        if lane == len(lanes):
            lanes.append(0.0)
        lanes[lane] = transfer.end
        key = (transfer.src, transfer.dst, lane)
        if key not in threads:
            threads[key] = next_tid.get(transfer.src, COMPUTE_THREAD + 1)
            next_tid[transfer.src] = threads[key] + 1
        tids.append(threads[key])
    return Lanes(tids, threads)


def _us(ms: float) -> float:
    return num(ms * 1000.0)


def trace_events(report: Report) -> Iterator[dict[str, Any]]:
    """Every event of the trace file, metadata first: the reference `write_chrome_trace`
    writes faster, line for line the same."""
    yield from _metadata_events(report)
    by_op: dict[tuple[Kind, int, int], OpRecord] = {}
    for ops in report.trace.ops_by_device():
        for record in ops:
            by_op[(record.kind, record.stage, record.microbatch)] = record
            yield {
                "ph": "X",
                "name": f"{record.kind.name}{record.microbatch} s{record.stage}",
                "cat": KIND_NAMES[record.kind],
                "pid": record.device,
                "tid": COMPUTE_THREAD,
                "ts": _us(record.start),
                "dur": _us(record.end - record.start),
                "args": {
                    "stage": record.stage,
                    "microbatch": record.microbatch,
                    "kind": record.kind.name,
                },
            }
    yield from _transfer_events(report)
    yield from _flows(report, by_op)
    for device, steps in enumerate(report.activations_over_time()):
        for time, held in steps:
            yield {
                "ph": "C",
                "name": "activations",
                "pid": device,
                "ts": _us(time),
                "args": {"held": num(held)},
            }
    for use in report.summary.memory or []:
        for time, held in use.timeline:
            yield {
                "ph": "C",
                "name": "memory bytes",
                "pid": use.device,
                "ts": _us(time),
                "args": {"bytes": num(held)},
            }


def _metadata_events(report: Report) -> Iterator[dict[str, Any]]:
    """Names and order of the processes (devices) and their threads (compute, link lanes)."""
    trace = report.trace
    for device in range(trace.problem.pipeline.devices):
        yield {
            "ph": "M",
            "name": "process_name",
            "pid": device,
            "args": {"name": f"device {device}"},
        }
        yield {
            "ph": "M",
            "name": "process_sort_index",
            "pid": device,
            "args": {"sort_index": device},
        }
        yield {
            "ph": "M",
            "name": "thread_name",
            "pid": device,
            "tid": COMPUTE_THREAD,
            "args": {"name": "compute"},
        }
    lanes = link_lanes(trace.transfers)
    for (src, dst, lane), tid in lanes.threads.items():
        yield {
            "ph": "M",
            "name": "thread_name",
            "pid": src,
            "tid": tid,
            "args": {"name": f"link {src}->{dst}" + (f" ({lane + 1})" if lane else "")},
        }


def _transfer_events(report: Report) -> Iterator[dict[str, Any]]:
    """A slice per message that takes time on its link's lane, and one for its queueing."""
    trace = report.trace
    lanes = link_lanes(trace.transfers)
    for transfer, tid in zip(trace.transfers, lanes.tids, strict=True):
        if transfer.end <= transfer.queued:
            continue  # a free message: nothing to show on a link's track
        message = "activation" if transfer.kind is Kind.F else "gradient"
        link = f"{transfer.src}->{transfer.dst}"
        if transfer.start > transfer.queued:
            yield {
                "ph": "X",
                "name": f"queued {message} {transfer.microbatch} s{transfer.stage}",
                "cat": "queued",
                "pid": transfer.src,
                "tid": tid,
                "ts": _us(transfer.queued),
                "dur": _us(transfer.start - transfer.queued),
                "args": {"dst": transfer.dst, "microbatch": transfer.microbatch},
            }
        yield {
            "ph": "X",
            "name": f"{message} {transfer.microbatch} s{transfer.stage} {link}",
            "cat": message,
            "pid": transfer.src,
            "tid": tid,
            "ts": _us(transfer.start),
            "dur": _us(transfer.end - transfer.start),
            "args": {
                "queued_ms": num(transfer.start - transfer.queued),
                "dst": transfer.dst,
                "microbatch": transfer.microbatch,
            },
        }


def _flows(
    report: Report, by_op: dict[tuple[Kind, int, int], OpRecord]
) -> Iterator[dict[str, Any]]:
    """An arrow per message: from the producing op's slice to the consuming op's slice."""
    num_stages = report.trace.problem.pipeline.line_length
    flow_id = 0
    for record in report.trace.ops:
        target = message_target(record.op, num_stages)
        if target is None:
            continue
        consumer = by_op.get((record.kind, target, record.microbatch))
        if consumer is None:
            continue
        flow_id += 1
        name = "activation" if record.kind is Kind.F else "gradient"
        yield {
            "ph": "s",
            "id": flow_id,
            "name": name,
            "cat": "message",
            "pid": record.device,
            "tid": COMPUTE_THREAD,
            "ts": _us(record.start),
        }
        yield {
            "ph": "f",
            "bp": "e",
            "id": flow_id,
            "name": name,
            "cat": "message",
            "pid": consumer.device,
            "tid": COMPUTE_THREAD,
            "ts": _us(consumer.start),
        }


def write_chrome_trace(report: Report, out: TextIO) -> None:
    """Write the trace file, one event per line: `trace_events` as json.dumps writes them,
    with the per-op events (slices, flow arrows, counters) formatted directly, since a run
    may have millions of ops."""
    out.write('{"displayTimeUnit": "ms", "traceEvents": [')
    write_items(out, _event_lines(report), "")
    out.write("\n]}\n")


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), allow_nan=False)


def _event_lines(report: Report) -> Iterator[str]:
    """The lines of `trace_events`, in its order."""
    yield from map(_dumps, _metadata_events(report))
    trace = report.trace
    index = OpIndex(trace.problem)
    starts: list[str | None] = [None] * index.size
    """By op key, the op's start as written (the flow arrows reuse it)."""
    devices = [0] * index.size
    kinds = tuple((kind.name, KIND_NAMES[kind]) for kind in Kind)
    for ops in trace.ops_by_device():
        for key, (device, stage, kind, mb, start, end) in zip(index.keys(ops), ops, strict=True):
            name, category = kinds[kind]
            starts[key] = ts = repr(round(start * 1000.0, 9) or 0.0)
            devices[key] = device
            yield (
                f'{{"ph":"X","name":"{name}{mb} s{stage}","cat":"{category}","pid":{device},'
                f'"tid":{COMPUTE_THREAD},"ts":{ts},'
                f'"dur":{round((end - start) * 1000.0, 9) or 0.0!r},"args":{{"stage":{stage},'
                f'"microbatch":{mb},"kind":"{name}"}}}}'
            )
    yield from map(_dumps, _transfer_events(report))
    yield from _flow_lines(report, index, starts, devices)
    for device, steps in enumerate(report.activations_over_time()):
        for time, held in steps:
            yield (
                f'{{"ph":"C","name":"activations","pid":{device},'
                f'"ts":{round(time * 1000.0, 9) or 0.0!r},"args":{{"held":{num(held)!r}}}}}'
            )
    for use in report.summary.memory or []:
        yield from map(
            _dumps,
            (
                {
                    "ph": "C",
                    "name": "memory bytes",
                    "pid": use.device,
                    "ts": _us(time),
                    "args": {"bytes": num(held)},
                }
                for time, held in use.timeline
            ),
        )


def _flow_lines(
    report: Report, index: OpIndex, starts: list[str | None], devices: list[int]
) -> Iterator[str]:
    """The lines of `_flows`: an arrow's start and finish per message between two ops, from
    each op's start as its slice wrote it (`starts`, by op key) and its device."""
    trace = report.trace
    pipeline = trace.problem.pipeline
    line, m = pipeline.line_length, pipeline.microbatches
    # Per slot (stage * 3 + kind), the key offset of the op its message feeds, from the
    # dependency rules (message_target), asked once per slot; None: no message.
    feeds: list[int | None] = []
    for stage in range(pipeline.num_stages):
        for kind in Kind:
            target = message_target(Op(kind, stage, 0), line)
            feeds.append(None if target is None else (target - stage) * 3 * m)
    names = ("activation", "gradient", "")
    flow_id = 0
    for key, (device, stage, kind, _, _, _) in zip(index.keys(trace.ops), trace.ops, strict=True):
        offset = feeds[stage * 3 + kind]
        if offset is None:
            continue
        consumer, name = key + offset, names[kind]
        finish = starts[consumer]
        if finish is None:
            continue
        flow_id += 1
        yield (
            f'{{"ph":"s","id":{flow_id},"name":"{name}","cat":"message","pid":{device},'
            f'"tid":{COMPUTE_THREAD},"ts":{starts[key]}}}'
        )
        yield (
            f'{{"ph":"f","bp":"e","id":{flow_id},"name":"{name}","cat":"message",'
            f'"pid":{devices[consumer]},"tid":{COMPUTE_THREAD},"ts":{finish}}}'
        )
