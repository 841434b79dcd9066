"""`pipesim plan`: which pipeline configuration of a model trains fastest and fits in memory.

The space is every pipeline degree p, policy, chunk count v, micro-batch size b, recompute mode
and layer layout asked for. Each point is built into a problem (from the model and GPU), pruned
when its static memory alone exceeds the limit, and otherwise simulated; a point's record is
its step time, throughput, bubble and peak memory. The layouts are the even split and the one
that balances the stages' times with the embedding and output layer counted (`balanced`).
Evaluations run through `executor`, so the records do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipesim.errors import ConfigError, PipesimError
from pipesim.problem.build import build_problem, build_workload
from pipesim.problem.layout import even_layers
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import Settings
from pipesim.studies.executor import run_all
from pipesim.studies.step import simulate_step

LAYOUTS = ("even", "balanced")


@dataclass(frozen=True)
class PlanSpace:
    """The values to combine."""

    pipeline: tuple[int, ...]
    policies: tuple[str, ...]
    chunks: tuple[int, ...]
    micro_batch_sizes: tuple[int, ...]
    recompute: tuple[str, ...]
    layouts: tuple[str, ...] = LAYOUTS


@dataclass(frozen=True)
class Candidate:
    """One configuration: the settings `pipesim run` would take, and its coordinates."""

    index: int
    settings: Settings
    layout: str


@dataclass(frozen=True)
class PlanRow:
    """What one configuration gives; `error` when it cannot run, `pruned` when its static
    memory alone is over the limit (then it was not simulated)."""

    index: int
    policy: str
    stages: int
    chunks: int
    micro_batch_size: int
    microbatches: int
    recompute: str
    layout: str
    layers: tuple[int, ...]
    step_ms: float | None = None
    tokens_per_second: float | None = None
    mfu: float | None = None
    bubble: float | None = None
    peak_bytes: float | None = None
    """The fullest device's peak."""
    bytes_over: float = 0.0
    """How much the fullest device lacks (0 when it fits)."""
    pruned: bool = False
    error: str | None = None

    @property
    def fits(self) -> bool:
        return self.error is None and not self.pruned and self.bytes_over <= 0

    @property
    def ran(self) -> bool:
        return self.error is None and not self.pruned


def candidates(base: Settings, space: PlanSpace) -> list[Candidate]:
    """Every combination the policies and the model allow, in a fixed order."""
    if base.model is None or base.gpu is None:
        raise ConfigError("plan needs a model and a GPU (--model, --gpu)")
    if base.global_batch_size is None:
        raise ConfigError("plan needs the global batch size (--global-batch-size)")
    d = base.resolved.data_parallel
    sizes = [b for b in space.micro_batch_sizes if base.global_batch_size % (b * d) == 0]
    if not sizes:
        raise ConfigError(
            f"global batch {base.global_batch_size} is a multiple of b x data parallel {d} "
            f"for none of the micro-batch sizes {', '.join(map(str, space.micro_batch_sizes))}"
        )
    found: list[Candidate] = []
    layers = base.model.layers
    for p in space.pipeline:
        for name in space.policies:
            policy = get_policy(name)
            chunk_options = space.chunks if policy.chunks is None else (policy.chunks,)
            for v in dict.fromkeys(chunk_options):
                if layers < p * v:
                    continue
                for b in sizes:
                    for recompute in space.recompute:
                        for layout in space.layouts:
                            settings = base.replace(
                                policy=policy.name,
                                stages=p,
                                chunks=v if policy.chunks is None else None,
                                micro_batch_size=b,
                                recompute=recompute,
                            )
                            found.append(Candidate(len(found), settings, layout))
    if not found:
        raise ConfigError(
            f"no configuration: the model's {layers} layers fill none of p*v for "
            f"p in {', '.join(map(str, space.pipeline))}"
        )
    return found


def evaluate(candidate: Candidate) -> PlanRow:
    """Build, prune or simulate one configuration (a module-level function: workers pickle
    it by name)."""
    settings = candidate.settings
    policy = get_policy(settings.policy or "1f1b")
    b = settings.resolved.micro_batch_size
    recompute = settings.resolved.recompute
    try:
        settings = settings.replace(layers_per_stage=_layers(settings, policy, candidate.layout))
        problem = build_problem(settings, policy)
    except PipesimError as error:
        return _row(candidate, settings, 0, 0, (), error=str(error))
    pipeline = problem.pipeline
    layers = settings.layers_per_stage or ()
    memory = problem.memory
    assert memory is not None
    if memory.limit is not None:
        static = max(
            sum(memory.static[s] for s in pipeline.stages_by_device[device])
            for device in range(pipeline.devices)
        )
        if static > memory.limit:
            return _row(
                candidate, settings, pipeline.chunks, pipeline.microbatches, layers,
                pruned=True, bytes_over=static - memory.limit, peak_bytes=static,
            )  # fmt: skip
    try:
        report = simulate_step(settings, policy, detail=False)  # a row keeps only figures
    except PipesimError as error:
        return _row(
            candidate, settings, pipeline.chunks, pipeline.microbatches, layers, error=str(error)
        )
    summary = report.summary
    assert summary.memory is not None and summary.throughput is not None
    peak = max(use.peak for use in summary.memory)
    over = max((oom.bytes_over for oom in summary.oom), default=0.0)
    return PlanRow(
        candidate.index,
        policy.name,
        pipeline.devices,
        pipeline.chunks,
        b,
        pipeline.microbatches,
        recompute,
        candidate.layout,
        layers,
        summary.throughput.step.step,  # the whole step: the pipeline and what follows it
        summary.throughput.tokens_per_second,
        summary.throughput.mfu,
        summary.bubble_fraction,
        peak,
        over,
    )


def _row(
    candidate: Candidate,
    settings: Settings,
    chunks: int,
    microbatches: int,
    layers: tuple[int, ...],
    **more: object,
) -> PlanRow:
    return PlanRow(
        candidate.index,
        settings.policy or "1f1b",
        settings.stages or 0,
        chunks,
        settings.resolved.micro_batch_size,
        microbatches,
        settings.resolved.recompute,
        candidate.layout,
        layers,
        **more,  # type: ignore[arg-type]
    )


def _layers(settings: Settings, policy: object, layout: str) -> tuple[int, ...]:
    """The layers per stage of a layout: even, or balanced by simulated stage times."""
    model = settings.model
    assert model is not None
    p = settings.stages or 4
    chunks = settings.chunks if settings.chunks is not None else getattr(policy, "chunks", 1) or 2
    stages = p * chunks
    even = even_layers(model.layers, stages)
    if layout == "even":
        return even
    return balanced_layers(settings, stages)


def balanced_layers(settings: Settings, stages: int) -> tuple[int, ...]:
    """The split whose slowest stage is fastest: start even, then move one layer at a time
    from the slowest stage to the fastest while the slowest gets faster. A stage's time is
    what the model gives it (F + B + W, the output layer included on the last stage)."""
    model = settings.model
    assert model is not None
    counts = list(even_layers(model.layers, stages))
    workload = build_workload(settings.replace(layers_per_stage=tuple(counts)), stages)
    assert workload is not None
    per_layer = workload.stages[1] if stages > 2 else workload.stages[0]
    layer_time = (per_layer.forward + per_layer.backward) / max(1, per_layer.layers)
    extra = [
        stage.forward + stage.backward - stage.layers * layer_time for stage in workload.stages
    ]

    def time(stage: int) -> float:
        return counts[stage] * layer_time + extra[stage]

    while True:
        slow = max(range(stages), key=time)
        fast = min(range(stages), key=time)
        if counts[slow] == 0 or slow == fast:
            break
        before = time(slow)
        counts[slow] -= 1
        counts[fast] += 1
        if max(time(slow), time(fast)) >= before:
            counts[slow] += 1
            counts[fast] -= 1
            break
    return tuple(counts)


def plan_configurations(
    base: Settings,
    space: PlanSpace,
    workers: int = 1,
    dask_scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PlanRow]:
    """Every configuration's record, in candidate order."""
    return run_all(evaluate, candidates(base, space), workers, dask_scheduler, progress)


def ranked(rows: Sequence[PlanRow]) -> list[PlanRow]:
    """The configurations that fit, fastest first (ties: the earlier candidate)."""
    return sorted((row for row in rows if row.fits), key=lambda row: (row.step_ms, row.index))


def pareto(rows: Sequence[PlanRow]) -> list[PlanRow]:
    """The configurations no other beats on both step time and peak memory, by step time."""
    ran = sorted(
        (row for row in rows if row.ran),
        key=lambda row: (row.step_ms, row.peak_bytes, row.index),
    )
    front: list[PlanRow] = []
    for row in ran:
        if not front or (row.peak_bytes or 0) < (front[-1].peak_bytes or 0):
            front.append(row)
    return front
