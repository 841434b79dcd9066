"""A model run on a GPU, stage by stage: milliseconds per op, bytes held, messages.

    time of an op = its FLOPs / (the GPU's peak * MFU * tensor-parallel degree)
    static bytes of a stage = its parameters * bytes per parameter / tensor-parallel degree
        bytes per parameter: 18 (16-bit weights, 32-bit gradients, 32-bit master weights and
        two Adam moments), or 6 + 12/d with a distributed optimizer over d data-parallel
        ranks (Megatron-LM, theoretical_memory_usage.py)
    a message between stages = s*b*h values of 2 bytes (divided by t with sequence
        parallelism)
The per-layer figures are in `transformer`; which layers a stage holds is `layout`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.problem.activations import (
    embedding_activation_bytes,
    layer_activation_bytes,
    layer_weight_gradient_bytes,
    output_activation_bytes,
)
from pipesim.problem.hardware import Gpu, Model
from pipesim.problem.transformer import (
    Shape,
    embedding_parameters,
    layer_flops,
    layer_parameters,
    mtp_flops,
    mtp_parameters,
    norm_parameters,
    output_flops,
)


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
) -> Workload:
    """Every stage's costs and bytes, `layers[i]` transformer layers on stage i (in order, so
    a MoE model's dense first layers land on the first stages)."""
    rate = gpu.tflops * 1e12 * mfu * shape.tensor_parallel / 1e3  # FLOPs per millisecond
    plain_shape = Shape(shape.micro_batch, shape.seq_length, 1, False, "none", shape.attention)
    figures = {
        kind: _LayerFigures(model, shape, plain_shape, index) for kind, index in _layer_kinds(model)
    }
    output = output_flops(model, shape)
    last = len(layers) - 1
    stages = []
    first_layer = 0
    for index, count in enumerate(layers):
        f = b = w = useful = activation = kept = 0.0
        parameters = 0
        for layer in range(first_layer, first_layer + count):
            figure = figures[model.is_moe_layer(layer)]
            f, b, w = f + figure.forward, b + figure.backward, w + figure.weight
            useful += figure.useful
            parameters += figure.parameters
            activation += figure.activation
            kept += figure.kept
        first_layer += count
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
                extra = figures[model.moe].activation + output_activation_bytes(model, shape)
                activation += model.mtp_layers * extra
        stages.append(
            StageWork(
                layers=count,
                parameters=parameters,
                forward=f / rate,
                backward=(b + w) / rate,
                weight=w / rate,
                activation=activation,
                weight_activation=min(kept, activation),
                static=parameters * bytes_per_parameter / shape.tensor_parallel,
                flops=useful,
            )
        )
    return Workload(model, gpu, shape, mfu, bytes_per_parameter, tuple(stages), data_parallel)


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
        self.activation = layer_activation_bytes(model, shape, index)
        self.kept = layer_weight_gradient_bytes(model, shape, index)
