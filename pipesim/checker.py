"""The timeline checker: invariants every simulated step must satisfy, whatever the policy.

Tests run it over every policy on random problems; it is independent of the simulator (it
reads only the trace and the problem) and asks `pipesim.ops` for the dependency rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise

from pipesim.ops import Op, all_ops, needs
from pipesim.trace import OpRecord, Trace, TransferRecord


def check_trace(trace: Trace) -> list[str]:
    """Every violated invariant of `trace`, one line each; [] for a valid timeline."""
    problems: list[str] = []
    problems += _check_op_set(trace)
    problems += _check_placement_and_durations(trace)
    problems += _check_no_overlap(
        "device", ((r.device, r.start, r.end, str(r.op)) for r in trace.ops), trace
    )
    problems += _check_no_overlap(
        "link",
        ((f"{t.src}->{t.dst}", t.start, t.end, str(t.producer)) for t in trace.transfers),
        trace,
    )
    problems += _check_inputs(trace)
    return problems


def _tolerance(trace: Trace) -> float:
    return 1e-9 * max(1.0, trace.makespan)


def _check_op_set(trace: Trace) -> list[str]:
    pipeline = trace.problem.pipeline
    expected = set(
        all_ops(pipeline.num_stages, pipeline.microbatches, trace.problem.split_backward)
    )
    seen = Counter(record.op for record in trace.ops)
    problems = [f"{op} runs {count} times" for op, count in sorted(seen.items()) if count > 1]
    problems += [f"{op} is not an op of this step" for op in sorted(set(seen) - expected)]
    problems += [f"{op} never runs" for op in sorted(expected - set(seen))]
    return problems


def _check_placement_and_durations(trace: Trace) -> list[str]:
    problems = []
    placement = trace.problem.pipeline.placement
    eps = _tolerance(trace)
    for record in trace.ops:
        op = record.op
        if 0 <= op.stage < len(placement) and placement[op.stage] != record.device:
            problems.append(f"{op} runs on device {record.device}, not on its stage's device")
        elif abs((record.end - record.start) - trace.problem.duration(op)) > eps:
            problems.append(
                f"{op} lasts {record.end - record.start:g} ms, costs {trace.problem.duration(op):g}"
            )
    return problems


def _check_no_overlap(
    what: str, intervals: Iterable[tuple[object, float, float, str]], trace: Trace
) -> list[str]:
    by_owner: dict[object, list[tuple[float, float, str]]] = defaultdict(list)
    for owner, start, end, label in intervals:
        by_owner[owner].append((start, end, label))
    eps = _tolerance(trace)
    problems = []
    for owner in sorted(by_owner, key=str):
        spans = sorted(by_owner[owner])
        for (_, end, label), (start, _, next_label) in pairwise(spans):
            if start < end - eps:
                problems.append(
                    f"{what} {owner}: {next_label} starts at {start:g} before "
                    f"{label} ends at {end:g}"
                )
    return problems


def _check_inputs(trace: Trace) -> list[str]:
    problems = []
    pipeline = trace.problem.pipeline
    eps = _tolerance(trace)
    done: dict[Op, OpRecord] = {record.op: record for record in trace.ops}
    sent: dict[tuple[Op, int], TransferRecord] = {
        (transfer.producer, transfer.dst): transfer for transfer in trace.transfers
    }
    for record in trace.ops:
        op = record.op
        for need in needs(op, pipeline.num_stages):
            producer = done.get(need.op)
            if producer is None:
                continue  # reported as an op that never runs
            ready = producer.end
            if need.message and producer.device != record.device:
                transfer = sent.get((need.op, record.device))
                network = trace.problem.network
                if transfer is not None:
                    problems += _check_transfer(trace, transfer, producer, eps)
                    ready = transfer.end
                elif network.transfer_time(producer.device, record.device, need.op.kind) > 0:
                    # Only a message that crosses its link in no time goes unrecorded.
                    problems.append(f"{op} needs the {need.message} of {need.op}, never sent")
                    continue
            if record.start < ready - eps:
                problems.append(
                    f"{op} starts at {record.start:g} before its input from {need.op} is ready "
                    f"at {ready:g}"
                )
    return problems


def _check_transfer(
    trace: Trace, transfer: TransferRecord, producer: OpRecord, eps: float
) -> list[str]:
    problems = []
    label = f"message of {transfer.producer} {transfer.src}->{transfer.dst}"
    if transfer.queued < producer.end - eps:
        problems.append(f"{label} is sent at {transfer.queued:g} before it is produced")
    if transfer.start < transfer.queued - eps:
        problems.append(f"{label} starts before it is sent")
    expected = trace.problem.network.transfer_time(transfer.src, transfer.dst, transfer.kind)
    if abs((transfer.end - transfer.start) - expected) > eps:
        problems.append(
            f"{label} takes {transfer.end - transfer.start:g} ms, expected {expected:g}"
        )
    return problems


def assert_valid(trace: Trace) -> None:
    """Raise AssertionError listing every violation (for tests and debugging)."""
    problems = check_trace(trace)
    if problems:
        raise AssertionError("invalid timeline:\n" + "\n".join(problems))
