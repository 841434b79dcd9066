"""Figures computed from a trace: makespan, busy and idle time, bubbles and their causes,
activation memory. Pure functions: a trace in, numbers out, one pass over the ops per figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from pipesim.critical_path import CriticalPath, critical_path
from pipesim.ops import ACTIVATION, GRADIENT, Kind, releases_activation
from pipesim.readiness import Readiness
from pipesim.trace import OpRecord, Trace

IDLE_CAUSES = (
    "warmup",
    "wait_activation",
    "wait_activation_queued",
    "wait_activation_in_flight",
    "wait_gradient",
    "wait_gradient_queued",
    "wait_gradient_in_flight",
    "blocking_send",
    "drain",
)
"""Why a device sat idle; the causes partition its idle time. Before its first op (warmup) and
after its last (drain); waiting for the input of its next op (an activation for F, a gradient
for B), split by where that input was: still being computed upstream (wait_activation,
wait_gradient), queued behind other messages on its link (..._queued) or in flight
(..._in_flight); held by its own blocking send (blocking_send)."""

LINK_CAUSES = (
    "wait_activation_queued",
    "wait_activation_in_flight",
    "wait_gradient_queued",
    "wait_gradient_in_flight",
    "blocking_send",
)
"""The causes that are communication."""


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
class LinkStats:
    """One direction of one link over a training step."""

    src: int
    dst: int
    messages: int
    busy: float
    """Milliseconds the link carried a message (size / bandwidth each; latency delays a
    message without occupying the link)."""
    queued: float
    """Milliseconds messages waited for the link, summed over messages."""
    utilization: float
    """busy / makespan."""
    crosses_nodes: bool


@dataclass(frozen=True)
class Summary:
    """The figures of a whole step."""

    makespan: float
    bubble_fraction: float
    """Total idle / (devices x makespan)."""
    devices: list[DeviceStats]
    links: list[LinkStats]
    """Every link direction that carried a message, by (src, dst)."""
    critical: CriticalPath
    """What the makespan is made of along its critical path."""

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
    pipeline = trace.problem.pipeline
    readiness = Readiness(trace)
    attribution = _IdleAttribution(readiness)
    devices = [
        device_stats(device, ops, makespan, split, pipeline.stages_on(device), attribution)
        for device, ops in enumerate(trace.ops_by_device())
    ]
    total_idle = sum(stats.idle for stats in devices)
    overall = total_idle / (len(devices) * makespan) if makespan > 0 else 0.0
    return Summary(makespan, overall, devices, link_stats(trace), critical_path(trace, readiness))


def link_stats(trace: Trace) -> list[LinkStats]:
    """Per link direction: messages carried, time busy and queued, utilization."""
    totals: dict[tuple[int, int], list[float]] = {}
    network = trace.problem.network
    for transfer in trace.transfers:
        entry = totals.setdefault((transfer.src, transfer.dst), [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += network.occupancy(transfer.src, transfer.dst, transfer.kind)
        entry[2] += transfer.start - transfer.queued
    makespan = trace.makespan
    return [
        LinkStats(
            src,
            dst,
            int(count),
            busy,
            queued,
            busy / makespan if makespan > 0 else 0.0,
            network.crosses_nodes(src, dst),
        )
        for (src, dst), (count, busy, queued) in sorted(totals.items())
    ]


def device_stats(
    device: int,
    ops: list[OpRecord],
    makespan: float,
    split: bool,
    stages_held: int,
    attribution: _IdleAttribution,
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
        peak_activations=peak_held(ops, split) / stages_held,
        idle_by_cause=attribution.device(device, ops, makespan),
    )


class _IdleAttribution:
    """Splits each device's idle time by cause, from what released each op."""

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness

    def device(self, device: int, ops: list[OpRecord], makespan: float) -> dict[str, float]:
        causes = dict.fromkeys(IDLE_CAUSES, 0.0)
        if not ops:
            causes["warmup"] = makespan
            return causes
        causes["warmup"] = ops[0].start
        for before, after in pairwise(ops):
            cursor = self._held_by_send(before, after.start, causes)
            if after.start > cursor:
                self._wait(after, cursor, causes)
        last = ops[-1]
        causes["drain"] = makespan - self._held_by_send(last, makespan, causes)
        return causes

    def _held_by_send(self, record: OpRecord, until: float, causes: dict[str, float]) -> float:
        """With blocking sends, the device stays held after `record` until its output has
        arrived: count that as blocking_send and return when the device is free."""
        free = min(self._readiness.device_freed(record).time, until)
        causes["blocking_send"] += free - record.end
        return free

    def _wait(self, record: OpRecord, cursor: float, causes: dict[str, float]) -> None:
        """Attribute [cursor, record.start) to the input `record` waited for last."""
        release = self._readiness.last_input(record)
        if release is not None and release.message is not None:
            message = release.message
        else:
            message = ACTIVATION if record.kind is Kind.F else GRADIENT
        start = record.start
        if release is None or release.transfer is None or release.time <= cursor:
            causes[f"wait_{message}"] += start - cursor
            return
        transfer = release.transfer
        computing = max(0.0, min(transfer.queued, start) - cursor)
        queued = max(0.0, min(transfer.start, start) - max(transfer.queued, cursor))
        causes[f"wait_{message}"] += computing
        causes[f"wait_{message}_queued"] += queued
        causes[f"wait_{message}_in_flight"] += start - cursor - computing - queued


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
