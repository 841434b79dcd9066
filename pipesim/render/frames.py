"""A report as pandas data frames, for a notebook: ops, transfers, activation memory over
time, and the per-device summary, one row per record, times in ms and sizes in bytes.

pandas is an optional extra (`pip install 'pipesim[frames]'`); the frames hold the same
figures as the JSON report, unrounded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pipesim.analysis.idle_causes import IDLE_CAUSES
from pipesim.analysis.memory import activation_timeline
from pipesim.analysis.report import Report
from pipesim.errors import ConfigError


class Frames(NamedTuple):
    """The four tables of one simulated step (pandas DataFrames)."""

    ops: Any
    """device, stage, chunk, kind (F, B, W), microbatch, start, end, duration."""
    transfers: Any
    """src, dst, message (activation, gradient), stage, microbatch, queued, start, end."""
    memory: Any
    """device, time, activations: what the device holds from `time` on, in microbatches'
    worth of its activations (its share of the model), as the chart's memory panel."""
    devices: Any
    """device, busy, idle, bubble_fraction, peak_activations, peak_memory_bytes, and one
    column of idle ms per cause (warmup, wait_activation, ..., drain)."""


def frames(report: Report) -> Frames:
    """`report` as data frames.

    Raises:
        ConfigError: pandas is not installed.
    """
    try:
        import pandas
    except ImportError:
        raise ConfigError("frames need pandas: pip install 'pipesim[frames]'") from None
    trace = report.trace
    pipeline = trace.problem.pipeline
    chunk_of = pipeline.chunk_of_stage
    ops = pandas.DataFrame(
        [
            (r.device, r.stage, chunk_of[r.stage], r.kind.name, r.microbatch, r.start, r.end)
            for device_ops in trace.ops_by_device()
            for r in device_ops
        ],
        columns=["device", "stage", "chunk", "kind", "microbatch", "start", "end"],
    )
    ops["duration"] = ops["end"] - ops["start"]
    transfers = pandas.DataFrame(
        [
            (t.src, t.dst, t.kind.message, t.stage, t.microbatch, t.queued, t.start, t.end)
            for t in trace.transfers
        ],
        columns=["src", "dst", "message", "stage", "microbatch", "queued", "start", "end"],
    )
    split = trace.problem.split_backward
    memory = pandas.DataFrame(
        [
            (device, time, held / pipeline.stages_on(device))
            for device, device_ops in enumerate(trace.ops_by_device())
            for time, held in activation_timeline(device_ops, split, trace.problem.weight_share)
        ],
        columns=["device", "time", "activations"],
    )
    peaks = {use.device: use.peak for use in report.summary.memory or []}
    devices = pandas.DataFrame(
        [
            {
                "device": stats.device,
                "busy": stats.busy,
                "idle": stats.idle,
                "bubble_fraction": stats.bubble_fraction,
                "peak_activations": stats.peak_activations,
                "peak_memory_bytes": peaks.get(stats.device),
                **{cause.value: stats.idle_by_cause.get(cause, 0.0) for cause in IDLE_CAUSES},
            }
            for stats in report.summary.devices
        ]
    )
    return Frames(ops, transfers, memory, devices)
