"""Activation memory over time, from when each op starts and ends: a microbatch's activation on
a stage is held from the start of its forward to the end of its last backward op. Counted in
microbatches' worth always, and in bytes when the problem says how many each stage keeps
(`StageMemory`): then a device's static bytes, its peak, and whether it runs out of memory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from pipesim.problem.memory import StageMemory
from pipesim.problem.ops import Kind, Op, releases_activation
from pipesim.simulator.trace import OpRecord, Trace

_Change = tuple[float, float, Op]


def activation_changes(ops: list[OpRecord], split: bool) -> list[tuple[float, int]]:
    """(time, +1 or -1) each time a device starts holding or frees one stage's activation,
    sorted by time with frees first at equal times (a buffer freed at t can be reused at t)."""
    releasing = Kind.W if releases_activation(Kind.W, split) else Kind.B
    forward = Kind.F
    changes = [
        (start, 1) if kind is forward else (end, -1)
        for _, _, kind, _, start, end in ops
        if kind is forward or kind is releasing
    ]
    changes.sort()
    return changes


def activation_timeline(
    ops: list[OpRecord], split: bool, kept: Sequence[float] | None = None
) -> list[tuple[float, float]]:
    """The number of stage activations a device holds, as (time, held from then on) steps.

    With `kept` (per stage, a split backward's share of a microbatch kept from B until W: the
    Zero Bubble paper's M_W / M_B), B frees the rest of it and W that share; without it a
    microbatch counts whole until its W.

    A device's ops in the order it ran them already give their changes in time order (each
    op starts after the one before it ends), and changes at one instant merge into one step,
    so no sort is needed; ops out of time order fall back to sorting."""
    if kept is not None and split:
        return _partial_timeline(ops, kept)
    releasing = Kind.W if releases_activation(Kind.W, split) else Kind.B
    forward = Kind.F
    held = 0
    last = -math.inf
    steps: list[tuple[float, float]] = []
    for _, _, kind, _, start, end in ops:
        if kind is forward:
            time, held = start, held + 1
        elif kind is releasing:
            time, held = end, held - 1
        else:
            continue
        if time == last:
            steps[-1] = (time, held)
        elif time > last:
            steps.append((time, held))
            last = time
        else:
            return _sorted_timeline(ops, split)
    return steps


def _partial_timeline(ops: list[OpRecord], kept: Sequence[float]) -> list[tuple[float, float]]:
    """`activation_timeline` when B frees part of a microbatch and W the share it kept."""
    changes: list[tuple[float, float]] = []
    for _, stage, kind, _, start, end in ops:
        if kind is Kind.F:
            changes.append((start, 1.0))
        elif kind is Kind.B:
            changes.append((end, kept[stage] - 1.0))
        else:
            changes.append((end, -kept[stage]))
    changes.sort()
    held = 0.0
    steps: list[tuple[float, float]] = []
    for time, delta in changes:
        held = round(held + delta, 12)  # shares such as 0.37 leave no 1e-17 residue behind
        if steps and steps[-1][0] == time:
            steps[-1] = (time, held)
        else:
            steps.append((time, held))
    return steps


def _sorted_timeline(ops: list[OpRecord], split: bool) -> list[tuple[float, float]]:
    """`activation_timeline` for ops in any order."""
    held = 0
    steps: list[tuple[float, float]] = []
    for time, delta in activation_changes(ops, split):
        held += delta
        if steps and steps[-1][0] == time:
            steps[-1] = (time, held)
        else:
            steps.append((time, held))
    return steps


def peak_held(ops: list[OpRecord], split: bool, kept: Sequence[float] | None = None) -> float:
    """The most stage activations a device holds at once: the timeline's highest step (within
    one instant frees come first, so no partial count there is higher)."""
    return max((held for _, held in activation_timeline(ops, split, kept)), default=0)


def device_activations(trace: Trace) -> list[list[tuple[float, float]]]:
    """Per device, its activations over time as (time, held from then on) steps, in
    microbatches' worth of the device's whole share (a chunk's activation counts 1/v)."""
    split = trace.problem.split_backward
    pipeline = trace.problem.pipeline
    result = []
    for device, ops in enumerate(trace.ops_by_device()):
        share = pipeline.stages_on(device)
        timeline = activation_timeline(ops, split, trace.problem.weight_share)
        result.append([(time, held / share) for time, held in timeline])
    return result


class DeviceMemory(NamedTuple):
    """A device's bytes over a step: static plus the activations it holds."""

    device: int
    static: float
    peak: float
    """Static plus the most activation bytes held at once."""
    peak_time: float
    """When the peak is first reached."""
    timeline: list[tuple[float, float]]
    """(time, bytes held from then on), static included."""


class OutOfMemory(NamedTuple):
    """A device that needs more than its limit."""

    device: int
    time: float
    """When it first exceeds the limit."""
    bytes_over: float
    """Its peak minus the limit."""
    op: Op
    """The op whose start pushed it over (a forward taking on a microbatch's activations)."""


def byte_changes(ops: list[OpRecord], memory: StageMemory, split: bool) -> list[_Change]:
    """(time, bytes, op) each time a device's activation bytes change, frees first at equal
    times: a forward takes a stage's activation at its start; a whole backward frees it at
    its end; a split B frees all but the weight-gradient part, which its W frees."""
    activation, kept = memory.activation, memory.weight_activation
    changes: list[_Change] = []
    for record in ops:
        stage = record.stage
        if record.kind is Kind.F:
            changes.append((record.start, activation[stage], record.op))
        elif record.kind is Kind.B:
            freed = activation[stage] - kept[stage] if split else activation[stage]
            changes.append((record.end, -freed, record.op))
        else:
            changes.append((record.end, -kept[stage], record.op))
    changes.sort(key=lambda change: (change[0], change[1]))
    return changes


def device_memory(trace: Trace, memory: StageMemory) -> list[DeviceMemory]:
    """Every device's bytes over the step."""
    pipeline = trace.problem.pipeline
    split = trace.problem.split_backward
    result = []
    for device, ops in enumerate(trace.ops_by_device()):
        static = sum(memory.static[stage] for stage in pipeline.stages_by_device[device])
        held, peak, peak_time = static, static, 0.0
        timeline = [(0.0, static)]
        for time, delta, _ in byte_changes(ops, memory, split):
            held += delta
            if timeline[-1][0] == time:
                timeline[-1] = (time, held)
            else:
                timeline.append((time, held))
            if held > peak * (1 + 1e-12):
                peak, peak_time = held, time
        result.append(DeviceMemory(device, static, peak, peak_time, timeline))
    return result


def out_of_memory(
    trace: Trace, memory: StageMemory, usage: list[DeviceMemory]
) -> list[OutOfMemory]:
    """The devices whose peak exceeds the limit: when, by how much, and which op did it."""
    limit = memory.limit
    if limit is None:
        return []
    split = trace.problem.split_backward
    found = []
    for use, ops in zip(usage, trace.ops_by_device(), strict=True):
        if use.peak <= limit:
            continue
        over = (0.0, ops[0].op if ops else Op(Kind.F, 0, 0))  # static alone is over
        held = use.static
        if held <= limit:
            for time, delta, op in byte_changes(ops, memory, split):
                held += delta
                if held > limit:
                    over = (time, op)
                    break
        found.append(OutOfMemory(use.device, over[0], use.peak - limit, over[1]))
    return found
