"""The timeline as a Chrome Trace Event Format file, for Perfetto and chrome://tracing.

One process per device (named and ordered), with a compute thread and a communication thread;
a complete event per op and per transfer that takes time; a flow arrow from each op to the op
that consumes its output message; a counter of the activations each device holds. Times are
converted from the simulation's milliseconds to the format's microseconds.

The arrows are the format's flow events v2, carried by the op slices themselves: a
microbatch's forwards form one flow from the first stage to the last, and its backwards another
from the last stage to the first ("bind_id", with "flow_out" on a slice whose output is sent
and "flow_in" on one that receives). Perfetto's JSON importer draws an arrow between each two
consecutive slices of a flow, so every message between two ops gets its arrow, with no event of
its own: flow events v1 took two more lines per message, which made the trace three to four
times as costly to write as the JSON timeline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TextIO

from pipesim.analysis.all_to_all import all_to_alls
from pipesim.analysis.memory import activation_timeline
from pipesim.analysis.report import Report
from pipesim.problem.ops import Kind, Op, message_target, needs
from pipesim.render.json_report import write_items
from pipesim.render.numbers import num
from pipesim.render.style import KIND_NAMES
from pipesim.simulator.gc_pause import cyclic_gc_paused
from pipesim.simulator.op_index import OpIndex
from pipesim.simulator.trace import TransferRecord

COMPUTE_THREAD = 0
"""Each device's ops; its links' tracks follow from 1."""
ALL_TO_ALL_THREAD = 1_000_000
"""Each device's all-to-alls (expert parallelism), sorted right under its compute track."""
REDUCTION_THREAD = 1_000_001
"""Each device's data-parallel gradient reductions, under its all-to-alls."""


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
    trace = report.trace
    ran = {record.op for record in trace.ops}
    line = trace.problem.pipeline.line_length
    for ops in trace.ops_by_device():
        for record in ops:
            op = record.op
            target = message_target(op, line)
            sends = target is not None and Op(op.kind, target, op.microbatch) in ran
            receives = any(need.message is not None and need.op in ran for need in needs(op, line))
            flow: dict[str, Any] = {}
            if sends or receives:
                flow["bind_id"] = flow_id(op)
                if receives:
                    flow["flow_in"] = True
                if sends:
                    flow["flow_out"] = True
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
                **flow,
            }
    yield from _transfer_events(report)
    yield from _all_to_all_events(report)
    yield from _reduction_events(report)
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
    devices = range(trace.problem.pipeline.devices)
    if trace.problem.workload is not None and trace.problem.workload.experts is not None:
        yield from _track(devices, ALL_TO_ALL_THREAD, "all-to-all (expert parallel)", 1)
    if report.summary.throughput is not None and report.summary.throughput.step.reductions:
        yield from _track(devices, REDUCTION_THREAD, "gradient reduction (data parallel)", 2)
    lanes = link_lanes(trace.transfers)
    for (src, dst, lane), tid in lanes.threads.items():
        yield {
            "ph": "M",
            "name": "thread_name",
            "pid": src,
            "tid": tid,
            "args": {"name": f"link {src}->{dst}" + (f" ({lane + 1})" if lane else "")},
        }


def _track(devices: range, tid: int, name: str, below_compute: int) -> Iterator[dict[str, Any]]:
    """A named track on every device, sorted that many places under its compute track."""
    for device in devices:
        yield {"ph": "M", "name": "thread_name", "pid": device, "tid": tid,
               "args": {"name": name}}  # fmt: skip
        yield {"ph": "M", "name": "thread_sort_index", "pid": device, "tid": tid,
               "args": {"sort_index": COMPUTE_THREAD + below_compute}}  # fmt: skip


def _all_to_all_events(report: Report) -> Iterator[dict[str, Any]]:
    """A slice per all-to-all of a MoE layer, under the op it runs in."""
    workload = report.trace.problem.workload
    for exchange in all_to_alls(report.trace):
        assert workload is not None and workload.experts is not None
        yield {
            "ph": "X",
            "name": f"{exchange.name} L{exchange.layer} {exchange.kind.name}{exchange.microbatch}",
            "cat": "all-to-all",
            "pid": exchange.device,
            "tid": ALL_TO_ALL_THREAD,
            "ts": _us(exchange.start),
            "dur": _us(exchange.end - exchange.start),
            "args": {
                "layer": exchange.layer,
                "microbatch": exchange.microbatch,
                "stage": exchange.stage,
                "bytes_sent": num(workload.experts.bytes_sent),
            },
        }


def _reduction_events(report: Report) -> Iterator[dict[str, Any]]:
    """A slice per stage's gradient reduction, on its device's reduction track."""
    rate = report.summary.throughput
    for reduction in rate.step.reductions if rate is not None else ():
        yield {
            "ph": "X",
            "name": f"reduce gradients s{reduction.stage}",
            "cat": "data-parallel",
            "pid": reduction.device,
            "tid": REDUCTION_THREAD,
            "ts": _us(reduction.start),
            "dur": _us(reduction.end - reduction.start),
            "args": {"stage": reduction.stage},
        }


def _transfer_events(report: Report) -> Iterator[dict[str, Any]]:
    """A slice per message that takes time on its link's lane, and one for its queueing."""
    trace = report.trace
    lanes = link_lanes(trace.transfers)
    for transfer, tid in zip(trace.transfers, lanes.tids, strict=True):
        if transfer.end <= transfer.queued:
            continue  # a free message: nothing to show on a link's track
        message = transfer.kind.message
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


def flow_id(op: Op) -> int:
    """The flow an op's arrows belong to: its microbatch's forwards, or its backwards."""
    return 2 * op.microbatch + (op.kind is not Kind.F) + 1


def write_chrome_trace(report: Report, out: TextIO) -> None:
    """Write the trace file, one event per line: `trace_events` as json.dumps writes them,
    with the per-op events (slices, flow arrows, counters) formatted directly, since a run
    may have millions of ops. The cycle collector is paused meanwhile: the activation steps
    it builds would otherwise set off full collections over the whole trace (a third of the
    time at a million ops)."""
    with cyclic_gc_paused():
        out.write('{"displayTimeUnit": "ms", "traceEvents": [')
        write_items(out, _event_lines(report), "")
        out.write("\n]}\n")


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), allow_nan=False)


def _event_lines(report: Report) -> Iterator[str]:
    """The lines of `trace_events`, in its order."""
    yield from map(_dumps, _metadata_events(report))
    trace = report.trace
    pipeline = trace.problem.pipeline
    line, m = pipeline.line_length, pipeline.microbatches
    index = OpIndex(trace.problem)
    ran = bytearray(index.size)
    for keys in trace.keys_by_device():
        for key in keys:
            ran[key] = 1
    # Per slot (stage * 3 + kind): the text around an op slice's microbatch and times, and the
    # key offsets of the op its message feeds and of the op whose message it receives (from
    # the dependency rules, asked once per slot; None: no such message).
    texts: list[tuple[str, str, str, str]] = []
    feeds: list[int | None] = [None] * (3 * pipeline.num_stages)
    fed_by: list[int | None] = [None] * (3 * pipeline.num_stages)
    for stage in range(pipeline.num_stages):
        device = pipeline.placement[stage]
        for kind in Kind:
            name, category = kind.name, KIND_NAMES[kind]
            texts.append(
                (
                    f'{{"ph":"X","name":"{name}',
                    f' s{stage}","cat":"{category}","pid":{device},"tid":{COMPUTE_THREAD},"ts":',
                    f',"args":{{"stage":{stage},"microbatch":',
                    f',"kind":"{name}"}}',
                )
            )
            target = message_target(Op(kind, stage, 0), line)
            if target is not None:
                offset = (target - stage) * 3 * m
                feeds[stage * 3 + kind] = offset
                fed_by[target * 3 + kind] = -offset
    ways = ("", ',"flow_out":true', ',"flow_in":true', ',"flow_in":true,"flow_out":true')
    """By 2 * receives + sends, an op slice's flow flags."""
    # In a whole step (what a simulation gives) every message's both ends ran, so a slot
    # says it all; a trace made by hand is looked up op by op.
    whole = ran.count(1) == trace.problem.ops_in_step
    slot_ways = [
        (into is not None) * 2 + (out is not None) for out, into in zip(feeds, fed_by, strict=True)
    ]
    durations: dict[float, str] = {}
    """Each op length's text, once: most ops of a run share a few lengths (with jitter none
    does, so the cache stops growing at 4,096)."""
    for ops in trace.ops_by_device():
        for device, stage, kind, mb, start, end in ops:
            slot = stage * 3 + kind
            head, middle, args, tail = texts[slot]
            if device != pipeline.placement[stage]:  # only a trace made by hand
                middle = middle.replace(f'"pid":{pipeline.placement[stage]}', f'"pid":{device}')
            length = end - start
            duration = durations.get(length)
            if duration is None:
                duration = f',"dur":{round(length * 1000.0, 9) or 0.0!r}'
                if len(durations) < 4096:
                    durations[length] = duration
            if whole:
                way = slot_ways[slot]
            else:
                key = (stage * m + mb) * 3 + kind
                out, into = feeds[slot], fed_by[slot]
                way = (into is not None and ran[key + into]) * 2 + (
                    out is not None and ran[key + out]
                )
            if way:
                yield (
                    f"{head}{mb}{middle}{round(start * 1000.0, 9) or 0.0!r}{duration}{args}{mb}"
                    f'{tail},"bind_id":{2 * mb + (kind != Kind.F) + 1}{ways[way]}}}'
                )
            else:
                yield (
                    f"{head}{mb}{middle}{round(start * 1000.0, 9) or 0.0!r}{duration}{args}{mb}"
                    f"{tail}}}"
                )
    yield from map(_dumps, _transfer_events(report))
    yield from map(_dumps, _all_to_all_events(report))
    yield from map(_dumps, _reduction_events(report))
    split = trace.problem.split_backward
    for device, ops in enumerate(trace.ops_by_device()):
        # `device_activations`, with each count's text made once.
        share = pipeline.stages_on(device)
        head = f'{{"ph":"C","name":"activations","pid":{device},"ts":'
        counts: dict[float, str] = {}
        for time, held in activation_timeline(ops, split, trace.problem.weight_share):
            count = counts.get(held)
            if count is None:
                count = counts[held] = f',"args":{{"held":{num(held / share)!r}}}}}'
            yield f"{head}{round(time * 1000.0, 9) or 0.0!r}{count}"
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
