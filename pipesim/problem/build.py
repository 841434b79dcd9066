"""From settings to the problem one policy runs: validated, resolved, nothing dropped.

The policy decides the shape (its default p and m, its chunks, its placement, whether it splits
the backward); `build_problem` asks it through `ShapesPipeline`, which every `Policy` answers,
so the problem stage never imports the schedules. With a model and a GPU, costs, messages,
links and memory come from `workload`; a figure the user gives explicitly always wins.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from operator import add
from typing import Protocol

from pipesim.errors import ConfigError, CostShapeError, PolicyError
from pipesim.problem.capacity import check_ops
from pipesim.problem.costs import StageCosts
from pipesim.problem.expert_parallel import (
    check_expert_parallel,
    expert_parallel,
    routed_bytes_per_parameter,
)
from pipesim.problem.layout import even_layers, layers_from_counts, layers_from_layout
from pipesim.problem.memory import StageMemory
from pipesim.problem.network import Link, Network
from pipesim.problem.ops import Kind
from pipesim.problem.pipeline import Pipeline, Problem
from pipesim.problem.runtime import blocking_exchanges
from pipesim.problem.transformer import Shape
from pipesim.problem.variability import Variability
from pipesim.problem.workload import Workload, derive
from pipesim.settings.declarations import MODEL_ONLY, Settings, check_settings
from pipesim.settings.hardware import Gpu
from pipesim.settings.values import MAX_BYTES, MAX_MS, Reserve


class ShapesPipeline(Protocol):
    """What building a problem asks of a policy."""

    @property
    def split_backward(self) -> bool: ...

    @property
    def takes_microbatch_group(self) -> bool: ...

    @property
    def takes_activation_limit(self) -> bool: ...

    @property
    def combines_pairs(self) -> bool: ...

    def default_shape(self) -> tuple[int, int]: ...

    def resolve_chunks(self, requested: int | None) -> int: ...

    def check(self, devices: int, chunks: int, microbatches: int) -> None: ...

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]: ...

    @property
    def lines(self) -> int: ...


def build_problem(settings: Settings, policy: ShapesPipeline) -> Problem:
    """Validate `settings` and resolve them into the problem `policy` will run.

    Raises:
        ConfigError: a value out of range, settings that contradict each other or the model
            (a degree that does not divide what it splits), a step too large to hold.
        CostShapeError: a cost list whose length fits neither the devices nor the stages.
        PolicyError: settings that break the policy's own constraints.
    """
    check_settings(settings)
    _check_model_settings(settings)
    default_stages, default_microbatches = policy.default_shape()
    stages = default_stages if settings.stages is None else settings.stages
    microbatches = _microbatches(settings, default_microbatches)
    chunks = policy.resolve_chunks(settings.chunks)
    kinds = len(Kind.of_step(policy.split_backward))
    check_ops(
        kinds * stages * chunks * microbatches,
        f"p={stages}, v={chunks}, m={microbatches}",
        devices=stages,
    )
    group = settings.microbatch_group_size
    if group is not None:
        if not policy.takes_microbatch_group:
            raise ConfigError("microbatch_group_size applies to interleaved schedules only")
        if group > microbatches:
            raise ConfigError(f"microbatch_group_size {group} is more than m={microbatches}")
    else:
        policy.check(stages, chunks, microbatches)
    if settings.activation_limit is not None and not policy.takes_activation_limit:
        # the policy's constraint, not a wrong setting: compare shows it on that policy's row
        raise PolicyError(
            "activation_limit applies to schedules that plan under a memory limit (zb-auto, zb-v); "
            "other schedules' peaks are fixed by their order (see `pipesim policies --details`)"
        )
    pipeline = Pipeline(
        devices=stages,
        chunks=chunks,
        microbatches=microbatches,
        placement=policy.placement(stages, chunks),
        microbatch_group=group,
        lines=policy.lines,
    )
    # the same workload serves every schedule (plan asks for it once per schedule)
    workload = _shared_workload(settings.replace(policy=None), pipeline.line_length)
    costs = _costs(settings, pipeline, workload, policy.split_backward)
    network = build_network(settings, workload)
    for src, dst, _ in network.slow_links:
        for device in (src, dst):
            if device >= stages:
                raise ConfigError(
                    f"slow link {src}-{dst}: there is no device {device} (p={stages})"
                )
        if src == dst:
            raise ConfigError(f"slow link {src}-{dst}: a link joins two different devices")
    memory = _memory(settings, pipeline, workload, policy.split_backward)
    return Problem(
        pipeline=pipeline,
        costs=costs,
        network=network,
        split_backward=policy.split_backward,
        memory=memory,
        workload=workload,
        variability=_variability(settings, stages),
        activation_limit=settings.activation_limit,
        weight_share=_weight_share(settings, memory, policy.split_backward, pipeline.num_stages),
        exchanges=blocking_exchanges(settings.resolved.runtime, pipeline.chunks),
        combined_pairs=_combined_pairs(settings, policy, pipeline),
    )


def _combined_pairs(settings: Settings, policy: ShapesPipeline, pipeline: Pipeline) -> bool:
    """--ep-comm-overlap, checked as Megatron-LM's TransformerConfig checks it: expert
    parallelism, no full recomputation, interleaved chunks when there is a pipeline."""
    if not settings.ep_comm_overlap:
        return False
    resolved = settings.resolved
    if resolved.expert_parallel < 2:
        raise ConfigError("ep_comm_overlap hides expert all-to-alls: give --expert-parallel > 1")
    if resolved.recompute == "full":
        raise ConfigError("ep_comm_overlap runs without full recomputation (as Megatron-LM)")
    if pipeline.devices > 1 and not (policy.combines_pairs and pipeline.chunks > 1):
        raise ConfigError(
            "ep_comm_overlap combines the steady-state pairs of interleaved 1F1B: with a pipeline "
            "it needs --policy interleaved and -v > 1 (as Megatron-LM's virtual pipeline)"
        )
    return True


def _variability(settings: Settings, devices: int) -> Variability | None:
    """Jitter, stragglers and the seed; None when every op takes its mean."""
    stragglers = settings.resolved.stragglers
    for straggler in stragglers:
        if straggler.device >= devices:
            raise ConfigError(
                f"straggler {straggler.device}: there is no device {straggler.device} "
                f"(p={devices}, devices 0-{devices - 1})"
            )
    if not (settings.jitter or settings.link_jitter or stragglers):
        return None
    return Variability(
        jitter=settings.resolved.jitter,
        link_jitter=settings.resolved.link_jitter,
        seed=settings.resolved.seed,
        stragglers=stragglers,
    )


def _check_model_settings(settings: Settings) -> None:
    if settings.model is None:
        for name in MODEL_ONLY:
            if getattr(settings, name) is not None:
                raise ConfigError(f"{name} needs a model (--model)")
        if settings.global_batch_size is None:
            for name in ("micro_batch_size", "data_parallel"):
                if getattr(settings, name) is not None:
                    raise ConfigError(
                        f"{name} needs a model (--model) or a global batch "
                        "(--global-batch-size, which it divides into m microbatches)"
                    )
    elif settings.gpu is None:
        raise ConfigError("a model needs a GPU (--gpu): its TFLOPS turn FLOPs into milliseconds")
    if settings.model is not None and (
        settings.activation_memory is not None or settings.static_memory is not None
    ):
        raise ConfigError(
            "activation_memory and static_memory are for runs without a model; "
            "with --model pipesim derives them"
        )
    if settings.layers_per_stage is not None and settings.layout is not None:
        raise ConfigError("give layers_per_stage or layout, not both")


def _microbatches(settings: Settings, default: int) -> int:
    """m, given directly or as G / (b * d)."""
    if settings.global_batch_size is None:
        return default if settings.microbatches is None else settings.microbatches
    g, b, d = (
        settings.global_batch_size,
        settings.resolved.micro_batch_size,
        settings.resolved.data_parallel,
    )
    if g % (b * d):
        raise ConfigError(
            f"global batch {g} is not a multiple of micro-batch size {b} x data parallel {d}"
        )
    m = g // (b * d)
    if settings.microbatches is not None and settings.microbatches != m:
        raise ConfigError(
            f"microbatches {settings.microbatches} disagrees with global batch {g} / "
            f"(micro-batch {b} x data parallel {d}) = {m}"
        )
    return m


def node_gpu(settings: Settings) -> Gpu | None:
    """The GPU, with `--gpus-per-node` (when given) as its node size."""
    gpu = settings.gpu
    if gpu is None or settings.gpus_per_node is None:
        return gpu
    return dataclasses.replace(gpu, gpus_per_node=settings.gpus_per_node)


@functools.lru_cache(maxsize=1024)
def _shared_workload(settings: Settings, num_stages: int) -> Workload | None:
    """`build_workload`, kept for the settings asked for again (a `Workload` is frozen)."""
    return build_workload(settings, num_stages)


def build_workload(settings: Settings, num_stages: int) -> Workload | None:
    """The model's figures per stage, or None without a model."""
    model, gpu = settings.model, node_gpu(settings)
    if model is None or gpu is None:
        return None
    t = settings.resolved.tensor_parallel
    if t > gpu.gpus_per_node and not settings.cross_node_tp:
        raise ConfigError(
            f"tensor_parallel {t} spans more than a node ({gpu.name}: {gpu.gpus_per_node} GPUs "
            "per node): its collectives would cross the network; give --cross-node-tp to "
            "simulate it anyway"
        )
    if model.heads % t or (model.kv_heads % t and t % model.kv_heads):
        raise ConfigError(
            f"tensor_parallel {t} must divide the model's {model.heads} attention heads "
            f"(and its {model.kv_heads} key/value heads, or be a multiple of them)"
        )
    shape = Shape(
        micro_batch=settings.resolved.micro_batch_size,
        seq_length=settings.seq_length or model.seq_length,
        tensor_parallel=t,
        sequence_parallel=t > 1
        if settings.sequence_parallel is None
        else settings.sequence_parallel,
        recompute=settings.resolved.recompute,
        attention=settings.resolved.attention,
        context_parallel=settings.resolved.context_parallel,
    )
    c = shape.context_parallel
    if shape.seq_length % (2 * c) and c > 1:
        raise ConfigError(
            f"context_parallel {c} splits each sequence into 2c = {2 * c} chunks (two per rank, "
            f"to balance causal attention), which must divide its {shape.seq_length} tokens"
        )
    if shape.sequence_parallel and shape.seq_length % t:
        raise ConfigError(
            f"sequence parallelism splits the sequence of {shape.seq_length} tokens over "
            f"tensor_parallel {t}, which does not divide it"
        )
    if settings.layout is not None:
        layers = layers_from_layout(settings.layout, model.layers, num_stages)
    elif settings.layers_per_stage is not None:
        layers = layers_from_counts(settings.layers_per_stage, model.layers, num_stages)
    else:
        if model.layers < num_stages:
            raise ConfigError(
                f"the model's {model.layers} layers cannot fill {num_stages} stages (p*v)"
            )
        layers = even_layers(model.layers, num_stages)
    d = settings.resolved.data_parallel
    # the optimizer state is sharded over every rank that holds the same weights: d*c
    per_parameter = 6 + 12 / (d * c) if settings.distributed_optimizer else 18.0
    experts = None
    degree = settings.resolved.expert_parallel
    if settings.expert_parallel is not None:
        check_expert_parallel(model, degree, d * c)
    if degree > 1:
        per_parameter_routed = routed_bytes_per_parameter(
            degree, d * c, bool(settings.distributed_optimizer)
        )
        experts = (expert_parallel(model, gpu, shape, degree), per_parameter_routed)
    workload = derive(
        model, gpu, shape, settings.resolved.mfu, layers, per_parameter, d, experts,
        distributed=bool(settings.distributed_optimizer),
        tp_overlap=settings.resolved.tp_comm_overlap,
    )  # fmt: skip
    _check_derived(workload)
    return workload


_DERIVED_MS = (
    "forward", "backward", "weight", "all_to_all", "gradient_reduction", "parameter_gather",
    "optimizer",
)  # fmt: skip
_DERIVED_BYTES = ("activation", "weight_activation", "static")


def _check_derived(workload: Workload) -> None:
    """Hold what the model derives to the bounds a value given directly obeys (1e9 ms, 1e18
    bytes), naming the inputs it came from: a tiny --mfu or TFLOPS, or a huge micro-batch or
    sequence, would otherwise run with costs of 1e302 ms."""
    shape, gpu = workload.shape, workload.gpu
    scale = (
        f"micro-batch size {shape.micro_batch} x sequence {shape.seq_length} tokens of "
        f"{workload.model.name}"
    )
    sources = {
        "ms": f"from mfu {workload.mfu:g}, {gpu.name}'s {gpu.tflops:g} TFLOPS and {scale}",
        "bytes": f"from {scale}",
    }
    checks = [
        (f"stage {index}'s {field.replace('_', ' ')}", getattr(stage, field), "ms", MAX_MS)
        for index, stage in enumerate(workload.stages)
        for field in _DERIVED_MS
    ] + [
        (f"stage {index}'s {field.replace('_', ' ')} memory", getattr(stage, field), "bytes",
         MAX_BYTES)
        for index, stage in enumerate(workload.stages)
        for field in _DERIVED_BYTES
    ] + [("a message between stages", workload.message_bytes, "bytes", MAX_BYTES)]  # fmt: skip
    for what, value, unit, limit in checks:
        if not (math.isfinite(value) and 0 <= value <= limit):
            raise ConfigError(
                f"{what}, derived from the model, comes to {value:.3g} {unit}, beyond the "
                f"{limit:g} {unit} a setting may be ({sources[unit]})"
            )


def _costs(
    settings: Settings, pipeline: Pipeline, workload: Workload | None, split: bool
) -> StageCosts:
    """Per-stage costs: the user's lists, else the model's, else 1 and 2 ms; each op's
    `op_overhead` added (`split`: the backward is two ops)."""
    derived = workload.stages if workload is not None else None
    stage_ids = range(pipeline.num_stages)

    def given(name: str, values: tuple[float, ...] | None, fallback: float) -> tuple[float, ...]:
        if values is not None:
            return stage_costs(name, values, pipeline)
        if derived is not None:
            return tuple(getattr(derived[pipeline.model_stage(s)], name) for s in stage_ids)
        return stage_costs(name, (fallback,), pipeline)

    for name in ("forward", "backward"):
        total = getattr(settings, f"total_{name}")
        if total is not None and (getattr(settings, name) is not None or derived is not None):
            raise ConfigError(f"total_{name} replaces --{name} and --model: give one of them")
    stages, length = pipeline.num_stages, pipeline.line_length
    forward = (
        (settings.total_forward / length,) * stages
        if settings.total_forward is not None
        else given("forward", settings.forward, 1.0)
    )
    backward = (
        (settings.total_backward / length,) * stages
        if settings.total_backward is not None
        else given("backward", settings.backward, 2.0)
    )
    if settings.weight is not None:
        weight = stage_costs("weight", settings.weight, pipeline)
    elif derived is not None and settings.backward is None:
        weight = tuple(derived[pipeline.model_stage(s)].weight for s in stage_ids)
    else:
        weight = tuple(value / 2 for value in backward)
    for stage, (w, b) in enumerate(zip(weight, backward, strict=True)):
        if w > b:
            raise ConfigError(
                f"weight ({w:g} ms) exceeds backward ({b:g} ms) on stage {stage}: "
                "the weight gradient is part of the backward"
            )
    if settings.op_overhead is not None:
        extra = stage_costs("op_overhead", settings.op_overhead, pipeline, shared=False)
        forward = tuple(map(add, forward, extra))
        weight = tuple(map(add, weight, extra))
        # a split backward is two ops (I, W), each paying it; I is backward less weight
        backward = tuple(b + o * (2 if split else 1) for b, o in zip(backward, extra, strict=True))
    exchanges: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    if derived is not None and settings.forward is None and settings.backward is None:
        works = [derived[pipeline.model_stage(s)] for s in stage_ids]
        if any(work.all_to_all for work in works):
            exchanges = (
                tuple(work.all_to_all_ms[0] for work in works),
                tuple(work.all_to_all_ms[1] for work in works),
            )
    return StageCosts(forward, backward, weight, settings.overlap_cost, *exchanges)


def _check_cost(name: str, value: float) -> float:
    """Reject what cannot be a duration: negative, NaN or infinite values."""
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def stage_costs(
    name: str, values: Sequence[float], pipeline: Pipeline, shared: bool = True
) -> tuple[float, ...]:
    """Per-stage costs from what a user gave: one value for every device, one per device (split
    evenly over the chunks a device holds, or, not `shared`, paid whole by each of them, as an
    overhead per op is), or one per stage when devices hold several chunks. With several lines
    (DualPipe), one per stage of a line: the model's stages."""
    for value in values:
        _check_cost(name, value)
    p, stages = pipeline.devices, pipeline.num_stages
    if pipeline.lines > 1 and len(values) == pipeline.line_length:
        # one per stage of a line (the model's stages), every line running the same model
        return tuple(values[pipeline.model_stage(stage)] for stage in range(stages))

    def held(device: int) -> int:
        return pipeline.stages_on(device) if shared else 1

    if len(values) == 1:
        return tuple(values[0] / held(device) for device in pipeline.placement)
    if len(values) == p:
        return tuple(values[device] / held(device) for device in pipeline.placement)
    if len(values) == stages:
        return tuple(values)
    expected = f"1 or {p} (one per device)"
    if stages != p:
        expected += f" or {stages} (one per stage)"
    raise CostShapeError(f"{name} has {len(values)} values; expected {expected}")


DEFAULT_RESERVE = Reserve(0.05, share=True)
"""Of a GPU's datasheet memory, what the model never has: the CUDA context and cuBLAS
workspaces (0.5-1 GB), NCCL's buffers (about 1-2 GB with several peers) and the caching
allocator's fragmentation (a few percent): about 4 GB of an 80 GB device."""


def _limit(settings: Settings) -> tuple[float | None, float]:
    """(the bytes a device has for the model, the bytes reserved), or (None, 0) without a
    limit. A GPU's datasheet memory loses `DEFAULT_RESERVE` unless a reserve is given; a
    --memory-limit loses only a reserve given explicitly."""
    limit, reserve = settings.memory_limit, settings.memory_reserve
    if limit is None and settings.gpu is not None:
        limit = settings.gpu.memory
        reserve = reserve or DEFAULT_RESERVE
    if limit is None:
        if reserve is not None:
            raise ConfigError(
                "memory_reserve needs a limit to subtract from: give --gpu or --memory-limit"
            )
        return None, 0.0
    held_back = reserve.of(limit) if reserve is not None else 0.0
    if held_back >= limit:
        raise ConfigError(
            f"memory_reserve {held_back / 1e9:.1f} GB leaves nothing of the "
            f"{limit / 1e9:.1f} GB limit"
        )
    return limit - held_back, held_back


def _memory(
    settings: Settings, pipeline: Pipeline, workload: Workload | None, split: bool
) -> StageMemory | None:
    """Bytes per stage: from the model, or a device's figures split over its stages."""
    limit, reserve = _limit(settings)
    share = settings.weight_memory
    if workload is not None:
        stages = [workload.stages[pipeline.model_stage(s)] for s in range(pipeline.num_stages)]
        return StageMemory(
            tuple(stage.static for stage in stages),
            tuple(stage.activation for stage in stages),
            tuple(
                (stage.weight_activation if share is None else share * stage.activation)
                if split
                else 0.0
                for stage in stages
            ),
            limit,
            reserve,
        )
    if settings.activation_memory is None and settings.static_memory is None:
        if settings.memory_limit is not None:
            raise ConfigError(
                "memory_limit needs bytes to compare with: give --model and --gpu, or "
                "--activation-memory and --static-memory"
            )
        return None
    held = [pipeline.stages_on(device) for device in pipeline.placement]
    activation = settings.activation_memory or 0.0
    static = settings.static_memory or 0.0
    kept = 1.0 if share is None else share  # without a model, the whole until W
    return StageMemory(
        tuple(static / n for n in held),
        tuple(activation / n for n in held),
        tuple(kept * activation / n if split else 0.0 for n in held),
        limit,
        reserve,
    )


def _weight_share(
    settings: Settings, memory: StageMemory | None, split: bool, stages: int
) -> tuple[float, ...] | None:
    """Per stage, the share of a microbatch kept from B until W, in the microbatch counts:
    the flag's, or the model's bytes; None (the whole) otherwise."""
    if not split:
        if settings.weight_memory is not None:
            raise ConfigError(
                "weight_memory applies to split-backward schedules (B, then W), and this "
                "schedule runs the whole backward at once"
            )
        return None
    if memory is not None and settings.model is not None:
        return tuple(
            kept / whole if whole > 0 else 1.0
            for kept, whole in zip(memory.weight_activation, memory.activation, strict=True)
        )
    if settings.weight_memory is None:
        return None
    return (settings.weight_memory,) * stages


def build_network(settings: Settings, workload: Workload | None = None) -> Network:
    """The links and message sizes; a GPU gives defaults, every inconsistency is an error."""
    gpu = node_gpu(settings)
    t = settings.resolved.tensor_parallel
    per_node = settings.devices_per_node
    if per_node is None and gpu is not None:
        # The pipeline is the outermost dimension in Megatron-LM (rank order tp-cp-ep-dp-pp)
        # and torchtitan (mesh pp, dp, cp, tp): a stage's t*d GPUs fill a node before the
        # next stage's start.
        resolved = settings.resolved
        per_node = max(
            1, gpu.gpus_per_node // (t * resolved.context_parallel * resolved.data_parallel)
        )
    if per_node is None:
        for name in ("inter_node_latency", "inter_node_bandwidth"):
            if getattr(settings, name) is not None:
                raise ConfigError(
                    f"{name} given without devices_per_node: all devices are in one node"
                )
    derived_size = workload.message_bytes if workload is not None else 0.0
    activation = derived_size if settings.activation_size is None else settings.activation_size
    gradient = activation if settings.gradient_size is None else settings.gradient_size
    intra = Link(
        _first(settings.comm_latency, gpu.nvlink_latency if gpu else None) or 0.0,
        _first(settings.bandwidth, gpu.nvlink_bandwidth if gpu else None),
    )
    inter = Link(
        _first(settings.inter_node_latency, gpu.network_latency if gpu else None) or intra.latency,
        _first(
            settings.inter_node_bandwidth, gpu.network_bandwidth if gpu else None, intra.bandwidth
        ),
    )
    if max(activation, gradient) == 0:
        for name in ("bandwidth", "inter_node_bandwidth"):
            if getattr(settings, name) is not None:
                raise ConfigError(
                    f"{name} is given but messages have no size, so it changes nothing: "
                    "set --activation-size (or --model)"
                )
    if max(activation, gradient) > 0:
        for name, link in (("bandwidth", intra), ("inter_node_bandwidth", inter)):
            if link.bandwidth is None:
                raise ConfigError(f"message sizes are given but no {name}: set the link bandwidth")
            if link.bandwidth == 0:
                raise ConfigError(f"{name} is 0 with messages of non-zero size: they never arrive")
    return Network(
        intra_node=intra,
        inter_node=inter,
        devices_per_node=per_node,
        activation_size=activation,
        gradient_size=gradient,
        blocking=settings.blocking_comm,
        slow_links=settings.resolved.slow_links,
    )


def _first(*values: float | None) -> float | None:
    """The first value that is given."""
    return next((value for value in values if value is not None), None)
