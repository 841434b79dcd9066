"""The summary records of a step: makespan, busy and idle time, bubbles, links, peak memory.

Pure functions of a trace, one pass over the ops per figure; the idle causes come from
`idle_causes`, the memory from `memory`, the critical path from `critical_path`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import sub

from pipesim.analysis.critical_path import CriticalPath, critical_path
from pipesim.analysis.idle_causes import IdleAttribution, IdleCause
from pipesim.analysis.memory import (
    DeviceMemory,
    OutOfMemory,
    device_memory,
    out_of_memory,
    peak_held,
)
from pipesim.analysis.readiness import Readiness
from pipesim.analysis.whole_step import WholeStep, whole_step
from pipesim.problem.ops import Kind, op_key
from pipesim.simulator.trace import RECORD_END, RECORD_START, LinkTotals, OpRecord, Trace


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
    idle_by_cause: dict[IdleCause, float]
    """Idle time by cause (`IDLE_CAUSES`); empty when the step was summarized for a study,
    which needs only the figures (`summarize(detail=False)`)."""


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
    critical: CriticalPath | None
    """What the makespan is made of along its critical path; None when the step was
    summarized for a study (`summarize(detail=False)`)."""
    memory: list[DeviceMemory] | None = None
    """Each device's bytes over the step, when the problem gives bytes per stage."""
    memory_limit: float | None = None
    oom: list[OutOfMemory] = field(default_factory=list)
    """The devices that need more than `memory_limit`."""
    throughput: Throughput | None = None
    """Tokens per second and achieved MFU, when the costs come from a model."""

    @property
    def path(self) -> CriticalPath:
        """The critical path, which every summary made with detail has (a run's, not a
        study's)."""
        if self.critical is None:
            raise ValueError("this summary was made for a study: it has no critical path")
        return self.critical

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


def summarize(trace: Trace, detail: bool = True) -> Summary:
    """Every figure of the step; without `detail`, those studies use (no idle causes, no
    critical path: what a step that is one of thousands need not pay for)."""
    makespan = trace.makespan
    split = trace.problem.split_backward
    pipeline = trace.problem.pipeline
    readiness = Readiness(trace) if detail else None
    attribution = IdleAttribution(readiness) if readiness is not None else None
    devices = [
        device_stats(
            device,
            ops,
            makespan,
            split,
            pipeline.stages_on(device),
            attribution,
            trace.problem.weight_share,
        )
        for device, ops in enumerate(trace.ops_by_device())
    ]
    total_idle = sum(stats.idle for stats in devices)
    overall = total_idle / (len(devices) * makespan) if makespan > 0 else 0.0
    memory = trace.problem.memory
    usage = device_memory(trace, memory) if memory is not None else None
    return Summary(
        makespan,
        overall,
        devices,
        link_stats(trace),
        None if readiness is None else critical_path(trace, readiness),
        usage,
        None if memory is None else memory.limit,
        [] if memory is None or usage is None else out_of_memory(trace, memory, usage),
        throughput(trace),
    )


@dataclass(frozen=True)
class Throughput:
    """What a step of a model achieves."""

    tokens_per_second: float
    """Tokens of all data-parallel replicas per second of the whole step."""
    mfu: float
    """Model FLOPs (recomputation excluded) over the peak of every GPU for the whole step."""
    step: WholeStep
    """The whole step: the pipeline, the exposed collectives and the optimizer."""


def throughput(trace: Trace) -> Throughput | None:
    step = whole_step(trace)
    workload = trace.problem.workload
    if step is None or workload is None or step.step <= 0:
        return None
    pipeline = trace.problem.pipeline
    seconds = step.step / 1e3
    shape = workload.shape
    tokens = pipeline.microbatches * shape.micro_batch * shape.seq_length * workload.data_parallel
    gpus = pipeline.devices * shape.tensor_parallel
    flops = workload.flops_per_microbatch * pipeline.microbatches
    mfu = flops / (seconds * gpus * workload.gpu.tflops * 1e12)
    return Throughput(tokens / seconds, mfu, step)


def link_stats(trace: Trace) -> list[LinkStats]:
    """Per link direction: messages carried, time busy and queued, utilization."""
    problem = trace.problem
    network = problem.network
    totals = trace.link_totals or _link_totals(trace)
    makespan = trace.makespan
    return [
        LinkStats(
            src,
            dst,
            count,
            busy,
            queued,
            busy / makespan if makespan > 0 else 0.0,
            network.crosses_nodes(src, dst),
        )
        for (src, dst), (count, busy, queued) in sorted(totals.items())
    ]


def _link_totals(trace: Trace) -> dict[tuple[int, int], LinkTotals]:
    """What each link carried, summed from the transfers, for a trace whose links did not
    tally it (the same sums in the same order as `channel.Channel`'s)."""
    totals: dict[tuple[int, int], list[float]] = {}
    problem = trace.problem
    network = problem.network
    scales = problem.message_scales
    m = problem.pipeline.microbatches
    occupancies: dict[tuple[int, int], list[float]] = {}
    """Per link direction, the occupancy of each kind of message (by kind code), asked of the
    network once: a run with timed messages has a transfer for almost every op."""
    kinds = tuple(Kind)
    for src, dst, stage, kind, microbatch, queued, start, _ in trace.transfers:
        link = (src, dst)
        entry = totals.get(link)
        if entry is None:
            entry = totals[link] = [0, 0.0, 0.0]
            occupancies[link] = [network.occupancy(src, dst, each) for each in kinds]
        entry[0] += 1
        occupancy = occupancies[link][kind]
        if scales is not None:
            occupancy *= scales[op_key(kind, stage, microbatch, m)]
        entry[1] += occupancy
        entry[2] += start - queued
    return {
        link: LinkTotals(int(count), busy, queued) for link, (count, busy, queued) in totals.items()
    }


def device_stats(
    device: int,
    ops: list[OpRecord],
    makespan: float,
    split: bool,
    stages_held: int,
    attribution: IdleAttribution | None,
    weight_share: tuple[float, ...] | None = None,
) -> DeviceStats:
    busy = sum(map(sub, map(RECORD_END, ops), map(RECORD_START, ops)))  # in order, in C
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
        peak_activations=peak_held(ops, split, weight_share) / stages_held,
        idle_by_cause={} if attribution is None else attribution.device(device, ops, makespan),
    )
