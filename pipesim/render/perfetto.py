"""The timeline as a Chrome Trace Event Format file, for Perfetto and chrome://tracing.

One process per device (named and ordered), with a compute thread and a communication thread;
a complete event per op and per transfer that takes time; a flow arrow from each op to the op
that consumes its output message; a counter of the activations each device holds. Times are
converted from the simulation's milliseconds to the format's microseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from pipesim.analysis.report import Report
from pipesim.problem.ops import Kind, message_target
from pipesim.render.numbers import num
from pipesim.render.style import KIND_NAMES
from pipesim.simulator.trace import OpRecord

COMPUTE_THREAD = 0
COMM_THREAD = 1


def _us(ms: float) -> float:
    return num(ms * 1000.0)


def trace_events(report: Report) -> Iterator[dict[str, Any]]:
    """Every event of the trace file, metadata first."""
    trace = report.trace
    pipeline = trace.problem.pipeline
    for device in range(pipeline.devices):
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
        for tid, name in ((COMPUTE_THREAD, "compute"), (COMM_THREAD, "communication")):
            yield {
                "ph": "M",
                "name": "thread_name",
                "pid": device,
                "tid": tid,
                "args": {"name": name},
            }
    by_op: dict[tuple[Kind, int, int], OpRecord] = {}
    for ops in trace.ops_by_device():
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
    for transfer in trace.transfers:
        if transfer.end <= transfer.queued:
            continue  # a free message: nothing to show on the communication thread
        message = "activation" if transfer.kind is Kind.F else "gradient"
        link = f"{transfer.src}->{transfer.dst}"
        yield {
            "ph": "X",
            "name": f"{message} {transfer.microbatch} s{transfer.stage} {link}",
            "cat": message,
            "pid": transfer.src,
            "tid": COMM_THREAD,
            "ts": _us(transfer.start),
            "dur": _us(transfer.end - transfer.start),
            "args": {
                "queued_ms": num(transfer.start - transfer.queued),
                "dst": transfer.dst,
                "microbatch": transfer.microbatch,
            },
        }
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


def _flows(
    report: Report, by_op: dict[tuple[Kind, int, int], OpRecord]
) -> Iterator[dict[str, Any]]:
    """An arrow per message: from the producing op's slice to the consuming op's slice."""
    num_stages = report.trace.problem.pipeline.num_stages
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
    """Write the trace file, one event per line."""
    out.write('{"displayTimeUnit": "ms", "traceEvents": [')
    for index, event in enumerate(trace_events(report)):
        out.write(",\n" if index else "\n")
        out.write(json.dumps(event, separators=(",", ":"), allow_nan=False))
    out.write("\n]}\n")
