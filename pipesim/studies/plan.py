"""`pipesim plan`: which pipeline configuration of a model trains fastest and fits in memory.

The space is every pipeline degree p, policy, chunk count v, micro-batch size b, recompute mode
and layer layout asked for. Each point is built into a problem (from the model and GPU), pruned
when its static memory alone exceeds the limit, and otherwise simulated; a point's record is
its step time, throughput, bubble and peak memory. The layouts are the even split and the one
that balances the stages' times with the embedding and output layer counted (`balanced`).
Evaluations run through `executor`, so the records do not depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
from bisect import insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipesim.errors import ConfigError, PipesimError
from pipesim.problem.build import build_problem, build_workload
from pipesim.problem.layout import even_layers
from pipesim.schedules.base import Policy, StaticPolicy
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import Settings
from pipesim.studies.cluster import Split, splits
from pipesim.studies.executor import Where, run_all
from pipesim.studies.plan_bound import lower_bounds, order_peak
from pipesim.studies.step import simulate_step
from pipesim.studies.work import estimate, ops_of

LAYOUTS = ("even", "balanced")
_TOLERANCE = 1e-9
"""A bound is compared after taking off this share: sums in another order may round up."""


@dataclass(frozen=True)
class PlanSpace:
    """The values to combine. With `gpus`, every split of that many GPUs (`cluster.splits`)
    restricted to the degrees given; without, the settings' own degrees (or the lists given)
    and the pipeline degrees listed."""

    pipeline: tuple[int, ...] | None
    policies: tuple[str, ...]
    chunks: tuple[int, ...]
    micro_batch_sizes: tuple[int, ...]
    recompute: tuple[str, ...]
    layouts: tuple[str, ...] = LAYOUTS
    gpus: int | None = None
    tensor_parallel: tuple[int, ...] | None = None
    context_parallel: tuple[int, ...] | None = None
    expert_parallel: tuple[int, ...] | None = None
    distributed_optimizer: tuple[bool, ...] | None = None
    """None: both when a split has data parallelism and the settings do not say, else the
    settings' value."""
    chunks_on_one_device: bool = True
    """Whether to try several chunks on a pipeline of one device (Megatron-LM refuses
    virtual stages there, and torchtitan runs no schedule without a pipeline)."""


@dataclass(frozen=True)
class Candidate:
    """One configuration: the settings `pipesim run` would take, and its coordinates."""

    index: int
    settings: Settings
    layout: str


@dataclass(frozen=True)
class PlanRow:
    """What one configuration gives; `error` when it cannot run, `pruned` when its memory
    is over the limit before simulating (`plan_bound`: its static memory and one microbatch's
    activations, or, before simulating it, the exact peak of its fixed order),
    `bounded` when its step time cannot beat the rows shown (then it was not simulated)."""

    index: int
    policy: str
    stages: int
    chunks: int
    micro_batch_size: int
    microbatches: int
    recompute: str
    layout: str
    layers: tuple[int, ...]
    tensor_parallel: int = 1
    data_parallel: int = 1
    context_parallel: int = 1
    expert_parallel: int = 1
    distributed_optimizer: bool = False
    step_ms: float | None = None
    tokens_per_second: float | None = None
    mfu: float | None = None
    bubble: float | None = None
    peak_bytes: float | None = None
    """The fullest device's peak (a lower bound for a pruned row)."""
    bytes_over: float = 0.0
    """How much the fullest device lacks (0 when it fits)."""
    step_bound_ms: float | None = None
    """The least its step can take (`plan_bound`)."""
    breakdown: tuple[tuple[str, float], ...] = ()
    """The whole step's parts (`analysis.whole_step`), in ms."""
    pruned: bool = False
    peak_exact: bool = False
    """The peak is its fixed order's own (so `pruned` came after the screen, for a row whose
    bound could beat the rows shown)."""
    bounded: bool = False
    error: str | None = None

    @property
    def fits(self) -> bool:
        return self.ran and self.bytes_over <= 0

    @property
    def ran(self) -> bool:
        return self.error is None and not self.pruned and not self.bounded

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.stages * self.data_parallel * self.context_parallel


COUNTS = ("considered", "pruned_memory", "pruned_bound", "simulated", "fit", "not_possible")


@dataclass(frozen=True)
class PlanResult:
    """A search's rows (every configuration considered, in candidate order) and its counts."""

    rows: tuple[PlanRow, ...]
    duplicates: int
    """Configurations identical to an earlier one (a balanced split equal to the even one),
    left out of `rows`."""

    def count(self, what: str) -> int:
        """One of `COUNTS`."""
        rows = self.rows
        return {
            "considered": len(rows),
            "pruned_memory": sum(row.pruned for row in rows),
            "pruned_bound": sum(row.bounded for row in rows),
            "simulated": sum(row.ran for row in rows),
            "fit": sum(row.fits for row in rows),
            "not_possible": sum(row.error is not None for row in rows),
        }[what]


def candidates(base: Settings, space: PlanSpace) -> list[Candidate]:
    """Every combination the policies and the model allow, in a fixed order.

    Raises:
        ConfigError: no model, GPU or global batch; a cluster that no split fits; no
            micro-batch size that divides the global batch.
    """
    model = base.model
    if model is None or base.gpu is None:
        raise ConfigError("plan needs a model and a GPU (--model, --gpu)")
    if space.gpus is None and space.pipeline is None:
        raise ConfigError("plan needs -p (the pipeline degrees to try) or --gpus")
    if base.global_batch_size is None:
        raise ConfigError("plan needs the global batch size (--global-batch-size)")
    found: list[Candidate] = []
    sized = False
    for split in _splits(base, space):
        d = split.data
        sizes = [b for b in space.micro_batch_sizes if base.global_batch_size % (b * d) == 0]
        sized = sized or bool(sizes)
        if space.distributed_optimizer is not None:
            sharding: tuple[bool | None, ...] = space.distributed_optimizer
        elif (
            space.gpus is not None and d * split.context > 1 and base.distributed_optimizer is None
        ):
            sharding = (None, True)  # off and on, unless the settings say
        else:
            sharding = (base.distributed_optimizer,)
        p = split.pipeline
        for name in space.policies:
            policy = get_policy(name)
            chunk_options = space.chunks if policy.chunks is None else (policy.chunks,)
            for v in dict.fromkeys(chunk_options):
                if model.layers < p * v // policy.lines:
                    continue
                if p == 1 and v > 1 and policy.chunks is None and not space.chunks_on_one_device:
                    continue
                for b in sizes:
                    for recompute in space.recompute:
                        for layout in space.layouts:
                            for sharded in sharding:
                                settings = base.replace(
                                    policy=policy.name,
                                    stages=p,
                                    chunks=v if policy.chunks is None else None,
                                    micro_batch_size=b,
                                    recompute=recompute,
                                    tensor_parallel=_given(base.tensor_parallel, split.tensor),
                                    data_parallel=_given(base.data_parallel, d),
                                    context_parallel=_given(base.context_parallel, split.context),
                                    expert_parallel=_given(base.expert_parallel, split.expert),
                                    distributed_optimizer=sharded,
                                )
                                found.append(Candidate(len(found), settings, layout))
    if not sized:
        d = base.resolved.data_parallel
        raise ConfigError(
            f"global batch {base.global_batch_size} is a multiple of b x data parallel "
            f"{'d' if space.gpus is not None else d} for none of the micro-batch sizes "
            f"{', '.join(map(str, space.micro_batch_sizes))}"
        )
    if not found:
        degrees = ", ".join(map(str, space.pipeline or ()))
        raise ConfigError(
            f"no configuration: the model's {model.layers} layers fill none of p*v"
            + (f" for p in {degrees}" if degrees else "")
        )
    return found


def _given(setting: int | None, value: int) -> int | None:
    """A degree as the settings write it: unset when it is the default 1 and was not given."""
    return None if setting is None and value == 1 else value


def _splits(base: Settings, space: PlanSpace) -> list[Split]:
    model = base.model
    assert model is not None and base.gpu is not None
    resolved = base.resolved
    if space.gpus is None:
        assert space.pipeline is not None
        return [
            Split(t, p, resolved.data_parallel, c, e)
            for t in space.tensor_parallel or (resolved.tensor_parallel,)
            for c in space.context_parallel or (resolved.context_parallel,)
            for p in space.pipeline
            for e in space.expert_parallel or (resolved.expert_parallel,)
        ]
    if base.data_parallel is not None:
        raise ConfigError(
            "with --gpus, data parallelism is what each split leaves (N / (t p c)); "
            "drop --data-parallel"
        )
    for name, given, listed in (
        ("tensor_parallel", base.tensor_parallel, space.tensor_parallel),
        ("context_parallel", base.context_parallel, space.context_parallel),
        ("expert_parallel", base.expert_parallel, space.expert_parallel),
    ):
        assert given is None or listed is None, f"{name} is a list in plan"
    return splits(
        model,
        space.gpus,
        base.gpus_per_node or base.gpu.gpus_per_node,
        base.seq_length or model.seq_length,
        base.global_batch_size or 1,
        pipeline=space.pipeline,
        tensor=space.tensor_parallel,
        context=space.context_parallel or (resolved.context_parallel,),
        expert=space.expert_parallel,
        cross_node_tp=bool(base.cross_node_tp),
    )


@dataclass(frozen=True)
class Screened:
    """A candidate before simulation: its final row when it cannot run or cannot fit, else
    its layer split and step bound; `duplicate` when it is the same as another candidate."""

    candidate: Candidate
    row: PlanRow | None
    layers: tuple[int, ...] = ()
    step_bound: float = 0.0
    duplicate: bool = False
    chunks: int = 0
    microbatches: int = 0


def screen(candidate: Candidate) -> Screened:
    """Build one configuration and bound it, without simulating (a module-level function:
    workers pickle it by name)."""
    settings = candidate.settings
    policy = get_policy(settings.policy or "1f1b")
    try:
        layers = _layers(settings, policy, candidate.layout)
        if candidate.layout != "even" and layers == _layers(settings, policy, "even"):
            return Screened(candidate, None, duplicate=True)
        settings = settings.replace(layers_per_stage=layers)
        problem = build_problem(settings, policy)
    except PipesimError as error:
        return Screened(candidate, _row(candidate, settings, 0, 0, (), error=str(error)))
    pipeline = problem.pipeline
    memory = problem.memory
    assert memory is not None
    bounds = lower_bounds(problem)
    if memory.limit is not None and bounds.peak_bytes > memory.limit:
        row = _row(
            candidate, settings, pipeline.chunks, pipeline.microbatches, layers, pruned=True,
            bytes_over=bounds.peak_bytes - memory.limit, peak_bytes=bounds.peak_bytes,
            step_bound_ms=bounds.step_ms,
        )  # fmt: skip
        return Screened(candidate, row)
    return Screened(
        candidate, None, layers, bounds.step_ms, False, pipeline.chunks, pipeline.microbatches
    )


def simulate_screened(screened: Screened) -> PlanRow:
    """Simulate a configuration that passed its screen (a module-level function)."""
    candidate = screened.candidate
    settings = candidate.settings.replace(layers_per_stage=screened.layers)
    policy = get_policy(settings.policy or "1f1b")
    try:
        if isinstance(policy, StaticPolicy):
            # A fixed order fixes the peak: refuse what cannot fit before simulating it
            # (here, not in the screen: an order costs as much to make as a few bounds).
            problem = build_problem(settings, policy)
            memory = problem.memory
            assert memory is not None
            peak = order_peak(problem, policy.device_orders(problem.pipeline))
            if memory.limit is not None and peak > memory.limit:
                return _row(
                    candidate, settings, screened.chunks, screened.microbatches,
                    screened.layers, pruned=True, peak_exact=True,
                    bytes_over=peak - memory.limit, peak_bytes=peak,
                    step_bound_ms=screened.step_bound,
                )  # fmt: skip
        report = simulate_step(settings, policy, detail=False)  # a row keeps only figures
    except PipesimError as error:
        return _row(
            candidate, settings, screened.chunks, screened.microbatches, screened.layers,
            error=str(error), step_bound_ms=screened.step_bound,
        )  # fmt: skip
    summary = report.summary
    pipeline = report.trace.problem.pipeline
    assert summary.memory is not None and summary.throughput is not None
    peak = max(use.peak for use in summary.memory)
    over = max((oom.bytes_over for oom in summary.oom), default=0.0)
    step = summary.throughput.step
    return _row(
        candidate, settings, pipeline.chunks, pipeline.microbatches, screened.layers,
        step_ms=step.step,  # the whole step: the pipeline and what follows it
        tokens_per_second=summary.throughput.tokens_per_second, mfu=summary.throughput.mfu,
        bubble=summary.bubble_fraction, peak_bytes=peak, bytes_over=over,
        step_bound_ms=screened.step_bound, breakdown=tuple(step.breakdown().items()),
    )  # fmt: skip


def evaluate(candidate: Candidate) -> PlanRow | None:
    """Screen and, when it can run and fit, simulate one configuration; None for a duplicate
    (a module-level function: workers pickle it by name)."""
    screened = screen(candidate)
    if screened.duplicate:
        return None
    return screened.row or simulate_screened(screened)


def _row(
    candidate: Candidate,
    settings: Settings,
    chunks: int,
    microbatches: int,
    layers: tuple[int, ...],
    **more: object,
) -> PlanRow:
    resolved = settings.resolved
    return PlanRow(
        candidate.index,
        settings.policy or "1f1b",
        settings.stages or 0,
        chunks,
        resolved.micro_batch_size,
        microbatches,
        resolved.recompute,
        candidate.layout,
        layers,
        resolved.tensor_parallel,
        resolved.data_parallel,
        resolved.context_parallel,
        resolved.expert_parallel,
        bool(settings.distributed_optimizer),
        **more,  # type: ignore[arg-type]
    )


def _layers(settings: Settings, policy: object, layout: str) -> tuple[int, ...]:
    """The layers per stage of a layout: even, or balanced by simulated stage times."""
    model = settings.model
    assert model is not None
    p = settings.stages or 4
    chunks = settings.chunks if settings.chunks is not None else getattr(policy, "chunks", 1) or 2
    stages = p * chunks // getattr(policy, "lines", 1)
    if layout == "even":
        return even_layers(model.layers, stages)
    # the split depends on the model's times, not on the schedule or the optimizer's sharding
    key = settings.replace(policy=None, chunks=None, stages=None, distributed_optimizer=None)
    found = _BALANCED.get((key, stages))
    if found is None:
        found = _BALANCED[(key, stages)] = balanced_layers(settings, stages)
    return found


_BALANCED: dict[tuple[Settings, int], tuple[int, ...]] = {}
"""Balanced splits already computed in this process (a plan asks for each many times)."""


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
    dask_scheduler: Where = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PlanRow]:
    """Every configuration's record, in candidate order, each simulated unless it cannot run
    or fit (the exhaustive answer `plan_search` must equal)."""
    rows = run_all(evaluate, candidates(base, space), workers, dask_scheduler, progress)
    return [row for row in rows if row is not None]


def plan_search(
    base: Settings,
    space: PlanSpace,
    top: int,
    workers: int = 1,
    dask_scheduler: Where = None,
    progress: Callable[[int, int], None] | None = None,
    exhaustive: bool = False,
    shard: tuple[int, int] | None = None,
) -> PlanResult:
    """Screen every configuration, then simulate in order of step bound until no bound left
    can beat (or tie) the `top`-th fastest that fits: the `top` rows of `ranked` are then
    those of `plan_configurations`. With `exhaustive`, or when ops vary by draw (jitter,
    stragglers), everything that can fit is simulated. `shard` (i, n): only the candidates
    whose index is i - 1 modulo n; `merged` ranks the union of the n shards' rows as one
    search would.

    Raises:
        ConfigError: as `candidates`.
    """
    found = candidates(base, space)
    if shard is not None:
        part, parts = shard
        found = [candidate for candidate in found if candidate.index % parts == part - 1]
    prune = not exhaustive and not _varies(base)
    policies: dict[str | None, Policy] = {}
    ops = 0
    for candidate in found:
        name = candidate.settings.policy
        if name not in policies:
            policies[name] = get_policy(candidate.settings.resolved.policy)
        ops += ops_of(candidate.settings, policies[name])
    estimate(f"a plan of {len(found):,} configurations", len(found), ops, workers, not prune)
    screened = run_all(screen, found, workers, dask_scheduler, progress)
    rows: dict[int, PlanRow] = {}
    pending: list[Screened] = []
    duplicates = 0
    for item in screened:
        if item.duplicate:
            duplicates += 1
        elif item.row is not None:
            rows[item.candidate.index] = item.row
        else:
            pending.append(item)
    pending.sort(key=lambda item: (item.step_bound, item.candidate.index))
    fastest: list[float] = []  # the step times of the rows that fit, ascending
    done = 0
    while done < len(pending):
        if prune and len(fastest) >= top and _beyond(pending[done].step_bound, fastest[top - 1]):
            break
        chunk = pending[done : done + _BATCH]
        for row in run_all(simulate_screened, chunk, workers, dask_scheduler):
            rows[row.index] = row
            if row.fits and row.step_ms is not None:
                insort(fastest, row.step_ms)
        done += len(chunk)
    for item in pending[done:]:
        candidate = item.candidate
        rows[candidate.index] = _row(
            candidate, candidate.settings.replace(layers_per_stage=item.layers), item.chunks,
            item.microbatches, item.layers, bounded=True, step_bound_ms=item.step_bound,
        )  # fmt: skip
    result = PlanResult(tuple(rows[index] for index in sorted(rows)), duplicates)
    return result if not prune or shard is not None else settled(result, top)


def merged(parts: Sequence[PlanResult], top: int, exhaustive: bool) -> PlanResult:
    """The shards of one search as that search gives them (`settled`)."""
    rows = sorted((row for part in parts for row in part.rows), key=lambda row: row.index)
    result = PlanResult(tuple(rows), sum(part.duplicates for part in parts))
    return result if exhaustive else settled(result, top)


def settled(result: PlanResult, top: int) -> PlanResult:
    """The rows as the bound decides them, whoever simulated what: a row is kept simulated
    when its bound could beat (or tie) the `top`-th fastest that fits, and reported as
    bounded otherwise (it was simulated only because the rows around it were, in a batch or
    in another shard). The output then depends on neither the batch size nor the shards."""
    fitting = ranked(result.rows)
    if len(fitting) < top:
        return result
    kth = fitting[top - 1].step_ms
    assert kth is not None
    rows = tuple(
        _as_bounded(row)
        if row.step_bound_ms is not None
        and (row.peak_exact or not row.pruned)
        and _beyond(row.step_bound_ms, kth)
        else row
        for row in result.rows
    )
    return PlanResult(rows, result.duplicates)


def _as_bounded(row: PlanRow) -> PlanRow:
    """A row as it is when its bound kept it from being simulated."""
    return dataclasses.replace(
        row, step_ms=None, tokens_per_second=None, mfu=None, bubble=None, peak_bytes=None,
        bytes_over=0.0, breakdown=(), error=None, pruned=False, peak_exact=False, bounded=True,
    )  # fmt: skip


def _beyond(bound: float, kth: float) -> bool:
    """Whether a configuration bounded by `bound` can neither beat nor tie `kth`."""
    return bound * (1 - _TOLERANCE) > kth


def _varies(base: Settings) -> bool:
    """Whether ops vary by draw (then a bound holds for no draw in particular)."""
    return bool(base.jitter or base.link_jitter or base.stragglers)


_BATCH = 16
"""Configurations simulated between two checks of the bound (fixed: what is simulated must
not depend on the number of workers)."""


def ranked(rows: Sequence[PlanRow]) -> list[PlanRow]:
    """The configurations that fit, fastest first; ties go to less memory, then the earlier
    candidate. Times and sizes compare as the JSON writes them (to 1e-9), so rows read back
    from shards rank as they did."""
    return sorted((row for row in rows if row.fits), key=_order)


def _order(row: PlanRow) -> tuple[float, float, int]:
    return (round(row.step_ms or 0.0, 9), round(row.peak_bytes or 0.0, 9), row.index)


def pareto(rows: Sequence[PlanRow]) -> list[PlanRow]:
    """The configurations simulated that no other beats on both step time and peak memory,
    by step time."""
    ran = sorted((row for row in rows if row.ran), key=_order)
    front: list[PlanRow] = []
    for row in ran:
        if not front or (row.peak_bytes or 0) < (front[-1].peak_bytes or 0):
            front.append(row)
    return front
