"""A model run on a GPU, stage by stage: milliseconds per op, bytes held, messages.

    time of an op = its FLOPs / (the GPU's peak * MFU * tensor-parallel degree)
    static bytes of a stage = its parameters * bytes per parameter / tensor-parallel degree
        bytes per parameter: 18 (16-bit weights, 32-bit gradients, 32-bit master weights and
        two Adam moments), or 6 + 12/d with a distributed optimizer over d data-parallel
        ranks (Megatron-LM, theoretical_memory_usage.py)
    a message between stages = s*b*h values of 2 bytes (divided by t with sequence
        parallelism)
    with expert parallelism E, the routed experts' bytes are divided by E too (their
        optimizer state sharded over d/E replicas), and F and B grow by their all-to-alls
        (`expert_parallel`)
The per-layer figures are in `transformer`; which layers a stage holds is `layout`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipesim.problem.activations import (
    embedding_activation_bytes,
    layer_activation_bytes,
    layer_weight_gradient_bytes,
    output_activation_bytes,
)
from pipesim.problem.collectives import all_reduce, ring_link
from pipesim.problem.expert_parallel import ExpertParallel
from pipesim.problem.step_collectives import (
    GRADIENT_BYTES,
    context_parallel_ms,
    gradient_reduction_ms,
    optimizer_ms,
    parameter_gather_ms,
    tensor_parallel_ms,
)
from pipesim.problem.transformer import (
    Shape,
    embedding_parameters,
    layer_flops,
    layer_parameters,
    mtp_flops,
    mtp_parameters,
    norm_parameters,
    output_flops,
    routed_expert_parameters,
)
from pipesim.settings.hardware import Gpu, Model


@dataclass(frozen=True)
class StageWork:
    """What one stage (model chunk) costs, derived from the model."""

    layers: int
    parameters: int
    """Its parameters, before tensor parallelism splits them."""
    forward: float
    """Milliseconds per microbatch."""
    backward: float
    """Milliseconds per microbatch, the whole backward (input and weight gradients)."""
    weight: float
    """Milliseconds per microbatch of the weight-gradient part."""
    activation: float
    """Bytes one microbatch keeps on the device from its forward to its backward."""
    weight_activation: float
    """Of those, the bytes a split backward keeps after B, until W."""
    static: float
    """Bytes of parameters, gradients and optimizer state on the device."""
    flops: float
    """FLOPs of F, B and W for one microbatch, recomputation excluded (for MFU)."""
    first_layer: int = 0
    """The model's index of the stage's first layer."""
    moe_layers: tuple[bool, ...] = ()
    """For each layer it runs, in order (the MTP modules last), whether it has experts."""
    routed_parameters: int = 0
    """Of its parameters, the routed experts' (what expert parallelism spreads)."""
    all_to_all: float = 0.0
    """Milliseconds of one all-to-all (expert parallelism), 0 without it."""
    recomputed_all_to_all: bool = False
    """Whether B runs the forward's all-to-alls again (full recomputation)."""
    tensor_parallel_forward: float = 0.0
    """Of `forward`, the milliseconds of tensor-parallel collectives (`step_collectives`)."""
    tensor_parallel_backward: float = 0.0
    """Of `backward`, the milliseconds of tensor-parallel collectives."""
    context_parallel_forward: float = 0.0
    """Of `forward`, the exposed milliseconds of context parallelism's K/V ring."""
    context_parallel_backward: float = 0.0
    """Of `backward`, the same."""
    gradient_reduction: float = 0.0
    """Milliseconds of the data-parallel reduction of its gradients, once per step."""
    parameter_gather: float = 0.0
    """Milliseconds of the distributed optimizer's all-gather of its weights, once per step."""
    optimizer: float = 0.0
    """Milliseconds of its share of the optimizer step."""

    @property
    def all_to_all_ms(self) -> tuple[float, float]:
        """Milliseconds of all-to-alls in one F and in one B (part of `forward`, `backward`)."""
        in_forward, in_backward = self.all_to_alls
        return in_forward * self.all_to_all, in_backward * self.all_to_all

    @property
    def all_to_alls(self) -> tuple[int, int]:
        """How many all-to-alls (F, B) one microbatch runs, with expert parallelism."""
        if self.all_to_all == 0:
            return 0, 0
        moe = 2 * sum(self.moe_layers)
        return moe, 2 * moe if self.recomputed_all_to_all else moe


@dataclass(frozen=True)
class Workload:
    """A model on a GPU: the figures every stage and message derives from."""

    model: Model
    gpu: Gpu
    shape: Shape
    mfu: float
    bytes_per_parameter: float
    stages: tuple[StageWork, ...]
    data_parallel: int = 1
    experts: ExpertParallel | None = None
    """Expert parallelism (E > 1), or None."""

    @property
    def message_bytes(self) -> float:
        """An activation or gradient between stages: s*b*h 16-bit values."""
        values = float(self.shape.tokens * self.model.hidden)
        if self.shape.sequence_parallel:
            values /= self.shape.tensor_parallel
        return 2.0 * values

    @property
    def flops_per_microbatch(self) -> float:
        """The model's FLOPs for one microbatch, forward and backward, without recomputation."""
        return sum(stage.flops for stage in self.stages)


def derive(
    model: Model,
    gpu: Gpu,
    shape: Shape,
    mfu: float,
    layers: tuple[int, ...],
    bytes_per_parameter: float,
    data_parallel: int = 1,
    experts: tuple[ExpertParallel, float] | None = None,
    distributed: bool = False,
    tp_overlap: float = 0.0,
) -> Workload:
    """Every stage's costs and bytes, `layers[i]` transformer layers on stage i (in order, so
    a MoE model's dense first layers land on the first stages); `experts`: expert parallelism
    and the bytes per parameter of the routed experts it spreads."""
    exchange, routed_per_parameter = (
        experts if experts is not None else (ExpertParallel(1, 0.0, 0.0, False), 0.0)
    )
    degree = exchange.degree
    t, d, c = shape.tensor_parallel, data_parallel, shape.context_parallel
    tp_layer = tensor_parallel_ms(model, gpu, shape, tp_overlap)
    cp_forward, cp_backward = context_parallel_ms(model, gpu, shape, mfu)
    rate = gpu.tflops * 1e12 * mfu * shape.tensor_parallel / 1e3  # FLOPs per millisecond
    plain_shape = Shape(
        shape.micro_batch, shape.seq_length, 1, False, "none", shape.attention,
        shape.context_parallel,
    )  # fmt: skip
    figures = {
        kind: _LayerFigures(model, shape, plain_shape, index) for kind, index in _layer_kinds(model)
    }
    output = output_flops(model, shape)
    last = len(layers) - 1
    stages = []
    first_layer = 0
    for index, count in enumerate(layers):
        f = b = w = useful = activation = kept = 0.0
        parameters = routed = 0
        moe_layers = []
        for layer in range(first_layer, first_layer + count):
            figure = figures[model.is_moe_layer(layer)]
            f, b, w = f + figure.forward, b + figure.backward, w + figure.weight
            useful += figure.useful
            parameters += figure.parameters
            routed += figure.routed
            activation += figure.activation
            kept += figure.kept
            moe_layers.append(model.is_moe_layer(layer))
        if index == 0:
            parameters += embedding_parameters(model)
            activation += embedding_activation_bytes(model, shape)
        if index == last:
            f, b, w = f + output, b + output, w + output
            useful += 3 * output
            # The output layer's matrix: its own, or the tied embedding's copy, which Megatron
            # keeps on the last stage too (and synchronizes its gradient with the first).
            parameters += embedding_parameters(model) + norm_parameters(model)
            activation += output_activation_bytes(model, shape)
            kept += output_activation_bytes(model, shape)
            if model.mtp_layers:
                mtp = mtp_flops(model, shape)
                f, b, w = f + mtp[0], b + mtp[1], w + mtp[2]
                useful += sum(mtp_flops(model, plain_shape))
                parameters += mtp_parameters(model)
                routed += model.mtp_layers * figures[model.moe].routed
                extra = figures[model.moe].activation + output_activation_bytes(model, shape)
                activation += model.mtp_layers * extra
                moe_layers += [model.moe] * model.mtp_layers
        work = StageWork(
            layers=count,
            parameters=parameters,
            forward=f / rate,
            backward=(b + w) / rate,
            weight=w / rate,
            activation=activation,
            weight_activation=min(kept, activation),
            static=(
                (parameters - routed) * bytes_per_parameter
                + routed * (routed_per_parameter if degree > 1 else bytes_per_parameter) / degree
            )
            / shape.tensor_parallel,
            flops=useful,
            first_layer=first_layer,
            moe_layers=tuple(moe_layers),
            routed_parameters=routed,
            all_to_all=exchange.duration,
            recomputed_all_to_all=shape.recompute == "full",
        )
        first_layer += count
        exchange_forward, exchange_backward = work.all_to_all_ms
        tp_forward = len(moe_layers) * tp_layer
        tp_backward = tp_forward * (2 if shape.recompute == "full" else 1)
        ring_forward = len(moe_layers) * cp_forward
        ring_backward = len(moe_layers) * cp_backward + (
            ring_forward if shape.recompute == "full" else 0.0
        )
        dense, routed_gpu = (parameters - routed) / t, routed / (t * degree)
        if index in (0, last) and model.tied and last > 0:
            # the two copies of the tied embedding synchronize their gradients
            dense_sync = model.vocab * model.hidden / t
        else:
            dense_sync = 0.0
        # Gradients are reduced over the d*c ranks that hold the same weights (Megatron-LM
        # folds context parallelism into the data-parallel group for them).
        reduction = gradient_reduction_ms(gpu, dense, routed_gpu, t, d * c, degree, distributed)
        if dense_sync:
            latency, bandwidth = ring_link(gpu, t * c * d * len(layers))
            reduction += all_reduce(GRADIENT_BYTES * dense_sync, 2, latency, bandwidth)
        shards = d * c
        updated = (
            dense / shards + routed_gpu / (shards // degree) if distributed else dense + routed_gpu
        )
        gather = (
            parameter_gather_ms(gpu, dense, routed_gpu, t, shards, degree) if distributed else 0.0
        )
        stages.append(
            replace(
                work,
                forward=work.forward + exchange_forward + tp_forward + ring_forward,
                backward=work.backward + exchange_backward + tp_backward + ring_backward,
                tensor_parallel_forward=tp_forward,
                tensor_parallel_backward=tp_backward,
                context_parallel_forward=ring_forward,
                context_parallel_backward=ring_backward,
                gradient_reduction=reduction,
                parameter_gather=gather,
                optimizer=optimizer_ms(gpu, updated),
            )
        )
    return Workload(
        model,
        gpu,
        shape,
        mfu,
        bytes_per_parameter,
        tuple(stages),
        data_parallel,
        exchange if degree > 1 else None,
    )


def _layer_kinds(model: Model) -> list[tuple[bool, int]]:
    """(is MoE, the index of one such layer) for each kind of layer the model has."""
    kinds = {model.is_moe_layer(index): index for index in (0, model.layers - 1)}
    return sorted(kinds.items())


class _LayerFigures:
    """One layer's FLOPs, parameters and bytes, computed once per kind of layer."""

    def __init__(self, model: Model, shape: Shape, plain: Shape, index: int) -> None:
        self.forward, self.backward, self.weight = layer_flops(model, shape, index)
        self.useful = sum(layer_flops(model, plain, index))
        self.parameters = layer_parameters(model, index)
        self.routed = routed_expert_parameters(model, index)
        self.activation = layer_activation_bytes(model, shape, index)
        self.kept = layer_weight_gradient_bytes(model, shape, index)
