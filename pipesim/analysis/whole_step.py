"""The whole training step: the pipeline, then what the collectives around it and the optimizer
add, each placed on the timeline (`problem.step_collectives` says what each costs).

A stage's gradient reduction starts once that stage's last backward of the step has run (its
last W with a split backward, else its last B) and runs on its device's network while the
device goes on computing, one reduction after another; what ends before the pipeline's last op
is hidden, the rest is exposed. The optimizer step then runs on every device at once (the
gradient norm and the update are synchronized), then the distributed optimizer's all-gather.

    step = makespan + exposed data-parallel reduction + optimizer + parameter all-gather

The breakdown splits the makespan further by what the busiest device spent in
tensor-parallel collectives, the context-parallel ring and expert all-to-alls inside its ops
(they lengthen the ops, and so the pipeline): pipeline = makespan - those, and the parts add
up to the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import sub
from typing import NamedTuple

from pipesim.analysis.all_to_all import all_to_all_time
from pipesim.problem.ops import Kind
from pipesim.simulator.trace import RECORD_END, RECORD_START, Trace


class ReductionRecord(NamedTuple):
    """One stage's gradient reduction on `device`, from `start` to `end` (ms)."""

    device: int
    stage: int
    start: float
    end: float


@dataclass(frozen=True)
class WholeStep:
    """The step's time and where it went (ms)."""

    step: float
    pipeline: float
    """The makespan less the busiest device's collectives inside its ops."""
    tensor_parallel: float
    context_parallel: float
    expert_parallel: float
    data_parallel: float
    """The gradient reductions that end after the pipeline's last op."""
    optimizer: float
    parameter_gather: float
    reductions: tuple[ReductionRecord, ...]

    def breakdown(self) -> dict[str, float]:
        return {
            "pipeline": self.pipeline,
            "tensor_parallel": self.tensor_parallel,
            "context_parallel": self.context_parallel,
            "expert_parallel": self.expert_parallel,
            "data_parallel": self.data_parallel,
            "optimizer": self.optimizer,
            "parameter_gather": self.parameter_gather,
        }


def whole_step(trace: Trace) -> WholeStep | None:
    """The whole step of a simulated pipeline, or None without a model (hand-entered costs
    have no collectives or optimizer to add)."""
    problem = trace.problem
    workload = problem.workload
    if workload is None:
        return None
    pipeline = problem.pipeline
    makespan = trace.makespan
    last_grad = Kind.W if problem.split_backward else Kind.B
    reductions: list[ReductionRecord] = []
    done = 0.0
    for device, ops in enumerate(trace.ops_by_device()):
        ready: dict[int, float] = {}
        for record in ops:
            if record.kind is last_grad:
                ready[record.stage] = max(ready.get(record.stage, 0.0), record.end)
        free = 0.0
        for stage, end in sorted(ready.items(), key=lambda item: (item[1], item[0])):
            duration = workload.stages[pipeline.model_stage(stage)].gradient_reduction
            if duration <= 0:
                continue
            start = max(end, free)
            free = start + duration
            reductions.append(ReductionRecord(device, stage, start, free))
        done = max(done, free)
    works = [
        [workload.stages[pipeline.model_stage(stage)] for stage in held]
        for held in pipeline.stages_by_device
    ]
    optimizer = max((sum(work.optimizer for work in held) for held in works), default=0.0)
    gather = max((sum(work.parameter_gather for work in held) for held in works), default=0.0)
    exposed = max(0.0, done - makespan)
    busy = [
        sum(map(sub, map(RECORD_END, ops), map(RECORD_START, ops))) for ops in trace.ops_by_device()
    ]
    busiest = max(range(pipeline.devices), key=busy.__getitem__)
    expert = all_to_all_time(trace)[busiest] if workload.experts is not None else 0.0
    # Every microbatch of a stage's line runs its F and its B once on the stage's device.
    runs = pipeline.microbatches // pipeline.lines
    tp = runs * sum(w.tensor_parallel_forward + w.tensor_parallel_backward for w in works[busiest])
    cp = runs * sum(
        w.context_parallel_forward + w.context_parallel_backward for w in works[busiest]
    )
    return WholeStep(
        step=makespan + exposed + optimizer + gather,
        pipeline=makespan - tp - cp - expert,
        tensor_parallel=tp,
        context_parallel=cp,
        expert_parallel=expert,
        data_parallel=exposed,
        optimizer=optimizer,
        parameter_gather=gather,
        reductions=tuple(reductions),
    )


class CollectiveSpan(NamedTuple):
    """A collective one device runs after its backwards, from `start` to `end` (ms): its
    gradient `reduction`, the `optimizer` step or the distributed optimizer's `gather`."""

    start: float
    end: float
    what: str


def device_collectives(trace: Trace) -> list[list[CollectiveSpan]] | None:
    """Per device, where the whole step places its collectives after its backwards: each
    stage's gradient reduction, then the optimizer step and the all-gather, which start when
    every device is done; None when the step has none (hand-entered costs, one replica)."""
    step = whole_step(trace)
    if step is None or (step.step <= trace.makespan and not step.reductions):
        return None
    pipeline, workload = trace.problem.pipeline, trace.problem.workload
    assert workload is not None
    lanes: list[list[CollectiveSpan]] = [[] for _ in range(pipeline.devices)]
    for reduction in step.reductions:
        lanes[reduction.device].append(CollectiveSpan(reduction.start, reduction.end, "reduction"))
    begin = trace.makespan + step.data_parallel
    for device, held in enumerate(pipeline.stages_by_device):
        works = [workload.stages[pipeline.model_stage(stage)] for stage in held]
        optimizer = sum(work.optimizer for work in works)
        gather = sum(work.parameter_gather for work in works)
        if optimizer > 0:
            lanes[device].append(CollectiveSpan(begin, begin + optimizer, "optimizer"))
        if gather > 0:
            start = begin + step.optimizer
            lanes[device].append(CollectiveSpan(start, start + gather, "gather"))
    return lanes
