"""The timeline checker: invariants every simulated step must satisfy, whatever the policy.

Tests run it over every policy on random problems; it is independent of the simulator (it
reads only the trace and the problem) and asks `pipesim.problem.ops` for the dependency rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise

from pipesim.problem.ops import Fused, Op, all_ops, fused_problem, needs
from pipesim.simulator.trace import OpRecord, Trace, TransferRecord


def check_trace(trace: Trace) -> list[str]:
    """Every violated invariant of `trace`, one line each; [] for a valid timeline."""
    problems: list[str] = []
    problems += _check_op_set(trace)
    problems += _check_placement_and_durations(trace)
    problems += _check_no_overlap(
        "device", ((r.device, r.start, r.end, str(r.op)) for r in trace.ops), trace
    )
    network = trace.problem.network
    problems += _check_no_overlap(
        "link",
        (
            (
                f"{t.src}->{t.dst}",
                t.start,
                t.start + network.occupancy(t.src, t.dst, t.kind),
                str(t.producer),
            )
            for t in trace.transfers
        ),
        trace,
    )
    problems += _check_inputs(trace)
    problems += _check_fused_steps(trace)
    return problems


def _tolerance(trace: Trace) -> float:
    return 1e-9 * max(1.0, trace.makespan)


def _check_op_set(trace: Trace) -> list[str]:
    pipeline = trace.problem.pipeline
    expected = set(
        all_ops(
            pipeline.num_stages,
            pipeline.microbatches,
            trace.problem.split_backward,
            pipeline.lines,
        )
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
        else:
            step = trace.fused_step.get(op)
            if step is None:
                cost = trace.problem.op_time(op)
            else:
                parts = trace.problem.fused_parts(step.ops, step.overlapped)
                cost = parts[step.ops.index(op)]
            if abs((record.end - record.start) - cost) > eps:
                problems.append(f"{op} lasts {record.end - record.start:g} ms, costs {cost:g}")
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
        for need in needs(op, pipeline.line_length):
            producer = done.get(need.op)
            if producer is None:
                continue  # reported as an op that never runs
            ready = trace.output_ready(producer)
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
            step = trace.fused_step.get(op)
            if step is not None and need.op in step.ops:
                continue  # produced inside the step: checked by the step's order
            started = record.start if step is None else step.start
            if started < ready - eps:
                what = f"{op}" if step is None else f"the fused step of {op}"
                problems.append(
                    f"{what} starts at {started:g} before its input from {need.op} is ready "
                    f"at {ready:g}"
                )
    return problems


def _check_transfer(
    trace: Trace, transfer: TransferRecord, producer: OpRecord, eps: float
) -> list[str]:
    problems = []
    label = f"message of {transfer.producer} {transfer.src}->{transfer.dst}"
    if transfer.queued < trace.output_ready(producer) - eps:
        problems.append(f"{label} is sent at {transfer.queued:g} before it is produced")
    if transfer.start < transfer.queued - eps:
        problems.append(f"{label} starts before it is sent")
    expected = trace.problem.message_time(transfer.producer, transfer.src, transfer.dst)
    if abs((transfer.end - transfer.start) - expected) > eps:
        problems.append(
            f"{label} takes {transfer.end - transfer.start:g} ms, expected {expected:g}"
        )
    return problems


def _check_fused_steps(trace: Trace) -> list[str]:
    """Each fused step runs its ops back to back on one device, in its order, over its own
    interval, an op's input produced inside the step coming before it."""
    problems = []
    eps = _tolerance(trace)
    done: dict[Op, OpRecord] = {record.op: record for record in trace.ops}
    for step in trace.fused:
        label = str(Fused(step.ops))
        records = [done.get(op) for op in step.ops]
        ran = [record for record in records if record is not None]
        if len(ran) != len(step.ops):
            problems.append(f"fused step {label} lists an op that never runs")
            continue
        if any(record.device != step.device for record in ran):
            problems.append(f"fused step {label} spans several devices")
        if abs(ran[0].start - step.start) > eps or abs(ran[-1].end - step.end) > eps:
            problems.append(f"fused step {label} does not cover its ops' interval")
        for before, after in pairwise(ran):
            if abs(after.start - before.end) > eps:
                problems.append(f"fused step {label}: {after.op} does not follow {before.op}")
        wrong = fused_problem(Fused(step.ops), trace.problem.pipeline.line_length)
        if wrong is not None:
            problems.append(wrong)
    return problems


def assert_valid(trace: Trace) -> None:
    """Raise AssertionError listing every violation (for tests and debugging)."""
    problems = check_trace(trace)
    if problems:
        raise AssertionError("invalid timeline:\n" + "\n".join(problems))
