"""Figures computed from a trace: makespan, busy and idle time, bubbles and their causes,
activation memory. Pure functions: a trace in, numbers out, one pass over the ops per figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from pipesim.ops import ACTIVATION, GRADIENT, Kind, releases_activation
from pipesim.trace import OpRecord, Trace

IDLE_CAUSES = ("warmup", "wait_activation", "wait_gradient", "drain")
"""Why a device sat idle: before its first op, waiting for a forward's activation or a
backward's gradient, after its last op."""


@dataclass(frozen=True)
class DeviceStats:
    """One device's figures over a training step."""

    device: int
    busy: float
    idle: float
    bubble_fraction: float
    """idle / makespan."""
    start: float
    """When its first op starts."""
    end: float
    """When its last op ends."""
    peak_activations: float
    """Most activations held at once, in units of one microbatch through the device's whole
    share of the model (a chunk's activation counts 1/v)."""
    idle_by_cause: dict[str, float]


@dataclass(frozen=True)
class Summary:
    """The figures of a whole step."""

    makespan: float
    bubble_fraction: float
    """Total idle / (devices x makespan)."""
    devices: list[DeviceStats]

    @property
    def peak_activations(self) -> float:
        return max((stats.peak_activations for stats in self.devices), default=0.0)

    @property
    def span(self) -> float:
        """The longest device span, first op to last: what limits throughput when the next
        step may start on a device as soon as it is free (no synchronized optimizer step)."""
        return max((stats.end - stats.start for stats in self.devices), default=0.0)

    @property
    def span_bubble_fraction(self) -> float:
        """(span - the busiest device's busy time) / span."""
        span = self.span
        busiest = max((stats.busy for stats in self.devices), default=0.0)
        return (span - busiest) / span if span > 0 else 0.0


def summarize(trace: Trace) -> Summary:
    makespan = trace.makespan
    split = trace.problem.split_backward
    chunks = trace.problem.pipeline.chunks
    devices = [
        device_stats(device, ops, makespan, split, chunks)
        for device, ops in enumerate(trace.ops_by_device())
    ]
    total_idle = sum(stats.idle for stats in devices)
    overall = total_idle / (len(devices) * makespan) if makespan > 0 else 0.0
    return Summary(makespan, overall, devices)


def device_stats(
    device: int, ops: list[OpRecord], makespan: float, split: bool, chunks: int
) -> DeviceStats:
    busy = sum(record.end - record.start for record in ops)
    idle = makespan - busy
    start = ops[0].start if ops else 0.0
    end = ops[-1].end if ops else 0.0
    return DeviceStats(
        device=device,
        busy=busy,
        idle=idle,
        bubble_fraction=idle / makespan if makespan > 0 else 0.0,
        start=start,
        end=end,
        peak_activations=peak_held(ops, split) / chunks,
        idle_by_cause=idle_by_cause(ops, makespan),
    )


def idle_by_cause(ops: list[OpRecord], makespan: float) -> dict[str, float]:
    """Split a device's idle time by cause; the values add up to its idle time. A gap before
    an op is the wait for that op's message: an activation for F, a gradient for B."""
    causes = dict.fromkeys(IDLE_CAUSES, 0.0)
    if not ops:
        causes["warmup"] = makespan
        return causes
    causes["warmup"] = ops[0].start
    for before, after in pairwise(ops):
        gap = after.start - before.end
        if gap > 0:
            message = ACTIVATION if after.kind is Kind.F else GRADIENT
            causes[f"wait_{message}"] += gap
    causes["drain"] = makespan - ops[-1].end
    return causes


def activation_changes(ops: list[OpRecord], split: bool) -> list[tuple[float, int]]:
    """(time, +1 or -1) each time a device starts holding or frees one stage's activation,
    sorted by time with frees first at equal times (a buffer freed at t can be reused at t)."""
    changes = [
        (record.start, 1) if record.kind is Kind.F else (record.end, -1)
        for record in ops
        if record.kind is Kind.F or releases_activation(record.kind, split)
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
