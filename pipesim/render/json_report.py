"""The JSON form of a report, written as a stream: one line per op, never one giant string.

Keys and their order are fixed and floats are rounded to 1e-9 ms, so the same inputs give
byte-identical output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TextIO

from pipesim.analysis.all_to_all import all_to_all_time
from pipesim.analysis.report import Report
from pipesim.problem.network import Link, Network
from pipesim.problem.ops import Kind
from pipesim.problem.transformer import model_parameters
from pipesim.render.numbers import TimeTexts, num, peak


def header(report: Report) -> dict[str, Any]:
    """Everything but the timeline."""
    trace, summary, closed = report.trace, report.summary, report.closed_form
    problem = trace.problem
    pipeline = problem.pipeline
    memory = summary.memory
    return {
        "policy": trace.policy,
        "stages": pipeline.devices,
        "chunks": pipeline.chunks,
        "microbatches": pipeline.microbatches,
        "makespan": num(summary.makespan),
        "bubble_fraction": num(summary.bubble_fraction),
        "span": num(summary.span),
        "span_bubble_fraction": num(summary.span_bubble_fraction),
        "closed_form": None
        if closed is None
        else {
            "formula": closed.formula,
            "bubble_fraction": None
            if closed.bubble_fraction is None
            else num(closed.bubble_fraction),
            "reason": closed.reason,
            "view": closed.view,
        },
        "peak_activations": peak(summary.peak_activations),
        "split_backward": problem.split_backward,
        "costs": {
            "forward": [num(v) for v in problem.costs.forward],
            "backward": [num(v) for v in problem.costs.backward],
            "weight": [num(v) for v in problem.costs.weight] if problem.split_backward else None,
            "overlap": num(problem.costs.overlap),
        },
        "network": network_record(problem.network, problem.exchanges),
        "critical_path": {
            "compute": num(summary.path.compute),
            "queued": num(summary.path.queued),
            "in_flight": num(summary.path.in_flight),
            "ops": summary.path.ops,
        },
        "links": [
            {
                "src": link.src,
                "dst": link.dst,
                "messages": link.messages,
                "busy": num(link.busy),
                "queued": num(link.queued),
                "utilization": num(link.utilization),
                "crosses_nodes": link.crosses_nodes,
            }
            for link in summary.links
        ],
        "placement": list(pipeline.placement),
        "devices": [
            {
                "device": stats.device,
                "busy": num(stats.busy),
                "idle": num(stats.idle),
                "bubble_fraction": num(stats.bubble_fraction),
                "start": num(stats.start),
                "end": num(stats.end),
                "peak_activations": peak(stats.peak_activations),
                "idle_by_cause": {cause: num(v) for cause, v in stats.idle_by_cause.items()},
                "static_memory_bytes": None if memory is None else num(memory[i].static),
                "peak_memory_bytes": None if memory is None else num(memory[i].peak),
                "peak_memory_time": None if memory is None else num(memory[i].peak_time),
            }
            for i, stats in enumerate(summary.devices)
        ],
        "memory_limit_bytes": None if summary.memory_limit is None else num(summary.memory_limit),
        "memory_reserve_bytes": _reserve(report),
        "oom": [
            {
                "device": oom.device,
                "time": num(oom.time),
                "bytes_over": num(oom.bytes_over),
                "op": str(oom.op),
            }
            for oom in summary.oom
        ],
        **_workload(report),
    }


def _workload(report: Report) -> dict[str, Any]:
    """What the costs were derived from, and what the step achieves (None without a model)."""
    workload = report.trace.problem.workload
    rate = report.summary.throughput
    if workload is None or rate is None:
        return {
            "model": None, "gpu": None, "step_ms": None, "step_breakdown": None, "mfu": None,
            "all_to_all": None,
        }  # fmt: skip
    shape = workload.shape
    return {
        "model": {
            "name": workload.model.name,
            "parameters": model_parameters(workload.model),
            "active_parameters": model_parameters(workload.model, active=True),
            "seq_length": shape.seq_length,
            "micro_batch_size": shape.micro_batch,
            "tensor_parallel": shape.tensor_parallel,
            "sequence_parallel": shape.sequence_parallel,
            "recompute": shape.recompute,
            "attention": shape.attention,
            "data_parallel": workload.data_parallel,
            "expert_parallel": workload.experts.degree if workload.experts else 1,
            "context_parallel": shape.context_parallel,
            "distributed_optimizer": workload.bytes_per_parameter < 18,
            "bytes_per_parameter": num(workload.bytes_per_parameter),
            "message_bytes": num(workload.message_bytes),
        },
        "gpu": {"name": workload.gpu.name, "tflops": num(workload.gpu.tflops)},
        "step_ms": num(rate.step.step),
        "step_breakdown": {name: num(ms) for name, ms in rate.step.breakdown().items()},
        "mfu": num(workload.mfu),
        "achieved_mfu": num(rate.mfu),
        "tokens_per_second": num(rate.tokens_per_second),
        "stage_work": [
            {
                "stage": index,
                "layers": stage.layers,
                "parameters": stage.parameters,
                "forward": num(stage.forward),
                "backward": num(stage.backward),
                "weight": num(stage.weight),
                "activation_bytes": num(stage.activation),
                "weight_activation_bytes": num(stage.weight_activation),
                "static_bytes": num(stage.static),
                "routed_expert_parameters": stage.routed_parameters,
                "all_to_alls": {"forward": stage.all_to_alls[0], "backward": stage.all_to_alls[1]},
                "tensor_parallel_ms": {
                    "forward": num(stage.tensor_parallel_forward),
                    "backward": num(stage.tensor_parallel_backward),
                },
                "context_parallel_ms": {
                    "forward": num(stage.context_parallel_forward),
                    "backward": num(stage.context_parallel_backward),
                },
                "gradient_reduction_ms": num(stage.gradient_reduction),
                "parameter_gather_ms": num(stage.parameter_gather),
                "optimizer_ms": num(stage.optimizer),
            }
            for index, stage in enumerate(workload.stages)
        ],
        "all_to_all": _all_to_all(report),
    }


def _all_to_all(report: Report) -> dict[str, Any] | None:
    """Expert parallelism's exchanges: what one costs, and each device's time in them."""
    experts = report.trace.problem.workload and report.trace.problem.workload.experts
    if not experts:
        return None
    return {
        "bytes_sent": num(experts.bytes_sent),
        "each_ms": num(experts.duration),
        "crosses_nodes": experts.crosses_nodes,
        "per_device_ms": [num(time) for time in all_to_all_time(report.trace)],
    }


def network_record(network: Network, exchanges: bool = False) -> dict[str, Any]:
    """The links and messages; `exchanges`: they move in blocking exchanges (`--runtime
    megatron`)."""

    def link(item: Link) -> dict[str, Any]:
        return {
            "latency": num(item.latency),
            "bandwidth": None if item.bandwidth is None else num(item.bandwidth),
        }

    return {
        "intra_node": link(network.intra_node),
        "inter_node": link(network.inter_node) if network.devices_per_node else None,
        "devices_per_node": network.devices_per_node,
        "activation_size": num(network.activation_size),
        "gradient_size": num(network.gradient_size),
        "blocking": network.blocking,
        "exchanges": exchanges,
    }


def transfer_rows(report: Report) -> Iterable[dict[str, Any]]:
    """Transfers by sending device, each device's in the order it handed them over."""
    for transfer in report.trace.transfers:
        yield {
            "src": transfer.src,
            "dst": transfer.dst,
            "message": transfer.kind.message,
            "stage": transfer.stage,
            "microbatch": transfer.microbatch,
            "queued": num(transfer.queued),
            "start": num(transfer.start),
            "end": num(transfer.end),
        }


def fused_rows(report: Report) -> Iterable[dict[str, Any]]:
    """Steps that ran several ops as one (a full backward, a forward-and-backward pair), by
    device, each device's in the order it ran them; their ops are also in the timeline, one
    after another."""
    for step in report.trace.fused:
        yield {
            "device": step.device,
            "start": num(step.start),
            "end": num(step.end),
            "overlapped": step.overlapped,
            "ops": [
                {"stage": op.stage, "kind": op.kind.name, "microbatch": op.microbatch}
                for op in step.ops
            ],
        }


def timeline_rows(report: Report) -> Iterable[dict[str, Any]]:
    """Ops by device, each device's in the order it ran them."""
    records = (record for ops in report.trace.ops_by_device() for record in ops)
    for record in records:
        yield {
            "device": record.device,
            "stage": record.stage,
            "kind": record.kind.name,
            "microbatch": record.microbatch,
            "start": num(record.start),
            "end": num(record.end),
        }


def write_json(
    report: Report, out: TextIO, extra: dict[str, Any] | None = None, end: str = "\n"
) -> None:
    """Write the report as one JSON object, streamed: each op and transfer on its own line;
    `extra` keys (what a flag added, such as --explain's) come before the timeline; `end`
    after the object."""
    head = json.dumps({**header(report), **(extra or {})}, separators=(", ", ": "), allow_nan=False)
    out.write(head[:-1] + ",")
    times = TimeTexts()  # what `num` rounds to, as json.dumps writes it
    _write_lines(out, "timeline", _timeline_lines(report, times))
    out.write(",")
    _write_lines(out, "transfers", _transfer_lines(report, times))
    out.write(",")
    _write_lines(out, "fused_steps", (_dumps(row) for row in fused_rows(report)))
    out.write("}" + end)


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, separators=(", ", ": "), allow_nan=False)


def _timeline_lines(report: Report, times: TimeTexts) -> Iterator[str]:
    """`timeline_rows`, formatted directly: the same text json.dumps gives (keys in order,
    floats as repr, rounded as `num` rounds), at a fraction of its cost, since a run may have
    millions of ops. An op that starts when the one before it ended reuses that text."""
    names = tuple(kind.name for kind in Kind)
    for ops in report.trace.ops_by_device():
        last, last_text = None, ""
        for device, stage, kind, microbatch, start, end in ops:
            start_text = last_text if start == last else times[start]
            last, last_text = end, times[end]
            yield (
                f'{{"device": {device}, "stage": {stage}, "kind": "{names[kind]}", '
                f'"microbatch": {microbatch}, "start": {start_text}, "end": {last_text}}}'
            )


def _transfer_lines(report: Report, times: TimeTexts) -> Iterator[str]:
    """`transfer_rows`, formatted directly as `_timeline_lines` formats ops: a run with timed
    messages has a transfer for almost every op, and json.dumps per row tripled its cost."""
    messages = tuple(json.dumps(kind.message) for kind in Kind)
    heads: dict[tuple[int, int, int], str] = {}
    """Per link and kind, the line up to its stage: a link carries thousands of messages."""
    for src, dst, stage, kind, microbatch, queued, start, end in report.trace.transfers:
        head = heads.get((src, dst, kind))
        if head is None:
            head = heads[(src, dst, kind)] = (
                f'{{"src": {src}, "dst": {dst}, "message": {messages[kind]}, "stage": '
            )
        posted = times[queued]
        yield (
            f'{head}{stage}, "microbatch": {microbatch}, "queued": {posted}, '
            f'"start": {posted if start == queued else times[start]}, "end": {times[end]}}}'
        )


def _write_lines(out: TextIO, key: str, lines: Iterable[str]) -> None:
    out.write(f' "{key}": [')
    write_items(out, lines, "  ")
    out.write("\n]")


def write_items(out: TextIO, lines: Iterable[str], indent: str) -> None:
    """The items of a JSON array already opened, one per line after `indent`, comma-separated:
    a few writes of thousands of lines each, never the whole text at once."""
    rows = iter(lines)
    separator = "\n" + indent
    joiner = ",\n" + indent
    while batch := list(islice(rows, 4096)):
        out.write(separator)
        out.write(joiner.join(batch))
        separator = joiner


def _reserve(report: Report) -> float | int | None:
    """Bytes set aside on each device, already taken from `memory_limit_bytes`."""
    memory = report.trace.problem.memory
    return None if memory is None or memory.limit is None else num(memory.reserve)
