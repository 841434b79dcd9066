"""Expert parallelism: each MoE layer's routed experts spread over E devices, and the
all-to-alls that carry every token to its experts and back.

The layout is Megatron-LM's (`parallel_state.py`, rank order tp-cp-ep-dp-pp; the expert
tensor-parallel size defaults to the tensor-parallel size in `arguments.py`): an EP group is E
replicas of the same stage, each of t GPUs, so it spans t*E consecutive GPUs, and E divides the
data-parallel degree d. Each GPU holds experts/E routed experts, each split t ways; with a
distributed optimizer their state is sharded over the d/E replicas that hold the same experts.

One all-to-all of one MoE layer, for one microbatch, per GPU, in the alpha-beta model:

    bytes sent = tokens on the GPU * top-k * h * 2 (16-bit), a 1/E share to each member
    time       = latency + max(bytes to members in its node / NVLink bandwidth,
                               bytes to members in other nodes / network bandwidth)

(tokens on the GPU: b*s, divided by t under sequence parallelism, which Megatron-LM requires
for MoE with t > 1). A MoE layer runs two in F (dispatch, combine) and their two gradients in
B, none in W; full recomputation runs the forward's two again in B. They lengthen the ops,
except in a fused forward-and-backward pair, where each op computes under the other's
(DualPipe's design; `Problem.fused_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.errors import ConfigError
from pipesim.problem.transformer import Shape
from pipesim.settings.hardware import Gpu, Model


@dataclass(frozen=True)
class ExpertParallel:
    """E, and what one all-to-all costs a GPU."""

    degree: int
    bytes_sent: float
    """Bytes one GPU sends in one all-to-all (its own share included, which stays)."""
    duration: float
    """Milliseconds of one all-to-all of one MoE layer for one microbatch."""
    crosses_nodes: bool


def check_expert_parallel(model: Model, degree: int, data_parallel: int) -> None:
    """E must have experts to split, divide them, and fit in the data-parallel replicas."""
    if not model.moe:
        raise ConfigError(
            f"expert_parallel {degree} needs a mixture-of-experts model; "
            f"{model.name} has no experts"
        )
    if model.experts % degree:
        raise ConfigError(
            f"expert_parallel {degree} must divide the model's {model.experts} experts"
        )
    if data_parallel % degree:
        raise ConfigError(
            f"expert_parallel {degree} must divide data_parallel {data_parallel}: the experts "
            "of a stage are spread over its data-parallel replicas (give --data-parallel)"
        )


def expert_parallel(model: Model, gpu: Gpu, shape: Shape, degree: int) -> ExpertParallel:
    """One all-to-all of `model`'s MoE layers with `degree`-way expert parallelism."""
    t = shape.tensor_parallel
    tokens = shape.tokens / (t if shape.sequence_parallel else 1)
    sent = tokens * model.experts_per_token * model.hidden * 2.0
    per_member = sent / degree
    replicas_per_node = max(1, gpu.gpus_per_node // t)
    inside = min(degree, replicas_per_node) - 1
    outside = degree - 1 - inside
    nvlink = 1000.0 * inside * per_member / gpu.nvlink_bandwidth
    network = 1000.0 * outside * per_member / gpu.network_bandwidth
    if degree == 1:
        return ExpertParallel(1, sent, 0.0, False)
    latency = gpu.network_latency if outside else gpu.nvlink_latency
    return ExpertParallel(degree, sent, latency + max(nvlink, network), outside > 0)


def routed_bytes_per_parameter(degree: int, data_parallel: int, distributed: bool) -> float:
    """Bytes per parameter of the routed experts a GPU holds: their optimizer state is sharded
    over the d/E replicas that hold the same experts."""
    return 6 + 12 / (data_parallel // degree) if distributed else 18.0
