"""Activation memory over time, from when each op starts and ends: a microbatch's activation on
a stage is held from the start of its forward to the end of its last backward op."""

from __future__ import annotations

from pipesim.problem.ops import Kind, releases_activation
from pipesim.simulator.trace import OpRecord, Trace


def activation_changes(ops: list[OpRecord], split: bool) -> list[tuple[float, int]]:
    """(time, +1 or -1) each time a device starts holding or frees one stage's activation,
    sorted by time with frees first at equal times (a buffer freed at t can be reused at t)."""
    releasing = Kind.W if releases_activation(Kind.W, split) else Kind.B
    forward = Kind.F
    changes = [
        (record.start, 1) if record.kind is forward else (record.end, -1)
        for record in ops
        if record.kind is forward or record.kind is releasing
    ]
    changes.sort()
    return changes


def activation_timeline(ops: list[OpRecord], split: bool) -> list[tuple[float, int]]:
    """The number of stage activations a device holds, as (time, held from then on) steps."""
    held = 0
    steps: list[tuple[float, int]] = []
    for time, delta in activation_changes(ops, split):
        held += delta
        if steps and steps[-1][0] == time:
            steps[-1] = (time, held)
        else:
            steps.append((time, held))
    return steps


def peak_held(ops: list[OpRecord], split: bool) -> int:
    """The most stage activations a device holds at once."""
    return max((held for _, held in activation_timeline(ops, split)), default=0)


def device_activations(trace: Trace) -> list[list[tuple[float, float]]]:
    """Per device, its activations over time as (time, held from then on) steps, in
    microbatches' worth of the device's whole share (a chunk's activation counts 1/v)."""
    split = trace.problem.split_backward
    pipeline = trace.problem.pipeline
    return [
        [
            (time, held / pipeline.stages_on(device))
            for time, held in activation_timeline(ops, split)
        ]
        for device, ops in enumerate(trace.ops_by_device())
    ]
