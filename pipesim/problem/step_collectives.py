"""The collectives of a training step beyond the pipeline's own messages, and the optimizer.

Tensor parallelism (Megatron-LM's, Korthikanti et al. 2022): each layer's attention and MLP
blocks start and end with a collective over the t GPUs of a pipeline device, on NVLink. With
sequence parallelism an all-gather before each block and a reduce-scatter after it, of the
layer's activation (b*s*h values of 2 bytes); without it an all-reduce after each block. A
layer's forward runs two blocks, so two of each; its input-gradient pass (B) runs their
conjugates, as many; full recomputation runs the forward's again. `--tp-comm-overlap F`
hides that share under compute (0 by default, as Megatron-LM's --tp-comm-overlap is off).
The vocabulary-parallel loss's small all-reduces are left out.

Data parallelism (Megatron-LM's DDP): each stage's gradients are reduced over its d replicas
once its last backward of the step has run, in fp32 (4 bytes per parameter: bf16 training
accumulates and reduces gradients in fp32): an all-reduce, or with the distributed optimizer a
reduce-scatter, then after the optimizer step an all-gather of the updated bf16 weights (2
bytes). The ring spans t*d consecutive GPUs (rank order tp-cp-ep-dp-pp). A MoE layer's routed
experts are reduced over the d/E replicas that hold them.

Context parallelism (Megatron-LM with Transformer Engine's ring attention, Liu et al. 2023):
each of c ranks holds s/c of every sequence, and in each layer the key/value blocks travel
round a ring of c ranks (t*c consecutive GPUs): c-1 steps, each one block (s/c tokens of keys
and values of the rank's kv heads) while the rank computes attention on the block it holds,
so a step costs only what its transfer takes beyond that compute. The backward passes the
blocks and their gradients: twice the bytes against twice the compute. Gradients are then
reduced over the d*c ranks that hold the same weights.

The optimizer step (Adam, fp32 master weights and moments) is bound by memory: per parameter it
updates it reads the gradient, the master weight and both moments and writes those three and
the 16-bit weight, 30 bytes, at the GPU's HBM bandwidth; with the distributed optimizer each
GPU updates its 1/d.
"""

from __future__ import annotations

from pipesim.problem.collectives import all_gather, all_reduce, reduce_scatter, ring_link
from pipesim.problem.transformer import Shape, attention_core_flops
from pipesim.settings.hardware import Gpu, Model

GRADIENT_BYTES = 4.0
"""Bytes per gradient value reduced (fp32)."""
WEIGHT_BYTES = 2.0
"""Bytes per weight value gathered after a distributed optimizer's step (bf16)."""
ADAM_BYTES = 30.0
"""Bytes of memory traffic per parameter an Adam step updates."""


def tensor_parallel_ms(model: Model, gpu: Gpu, shape: Shape, overlap: float) -> float:
    """Exposed milliseconds of one layer's tensor-parallel collectives in one F (as many in
    its B): two blocks, each an all-gather and a reduce-scatter (sequence parallel) or an
    all-reduce."""
    t = shape.tensor_parallel
    if t <= 1:
        return 0.0
    size = 2.0 * shape.tokens * model.hidden
    latency, bandwidth = ring_link(gpu, t)
    if shape.sequence_parallel:
        block = all_gather(size, t, latency, bandwidth) + reduce_scatter(
            size, t, latency, bandwidth
        )
    else:
        block = all_reduce(size, t, latency, bandwidth)
    return 2 * block * (1.0 - overlap)


def gradient_reduction_ms(
    gpu: Gpu, dense: float, routed: float, t: int, d: int, experts: int, distributed: bool
) -> float:
    """Milliseconds of one stage's gradient reduction per GPU: `dense` parameters over d
    replicas and `routed` expert parameters over d/E, both already divided among the GPU's t
    (and E) shards."""
    latency, bandwidth = ring_link(gpu, t * d)
    collective = reduce_scatter if distributed else all_reduce
    total = collective(GRADIENT_BYTES * dense, d, latency, bandwidth)
    expert_replicas = d // experts
    if routed:
        latency, bandwidth = ring_link(gpu, t * experts * expert_replicas)
        total += collective(GRADIENT_BYTES * routed, expert_replicas, latency, bandwidth)
    return total


def parameter_gather_ms(
    gpu: Gpu, dense: float, routed: float, t: int, d: int, experts: int
) -> float:
    """Milliseconds of the distributed optimizer's all-gather of a stage's updated weights."""
    latency, bandwidth = ring_link(gpu, t * d)
    expert_replicas = d // experts
    return all_gather(WEIGHT_BYTES * dense, d, latency, bandwidth) + all_gather(
        WEIGHT_BYTES * routed, expert_replicas, latency, bandwidth
    )


def optimizer_ms(gpu: Gpu, updated: float) -> float:
    """Milliseconds of an Adam step over `updated` parameters on one GPU; 0 when the GPU's
    memory bandwidth is unknown."""
    if gpu.hbm_bandwidth <= 0:
        return 0.0
    return 1000.0 * ADAM_BYTES * updated / gpu.hbm_bandwidth


def context_parallel_ms(model: Model, gpu: Gpu, shape: Shape, mfu: float) -> tuple[float, float]:
    """Exposed milliseconds of one layer's key/value ring in its F and in its B (0, 0 without
    context parallelism): (c-1) steps, each max(0, transfer - its share of the attention)."""
    c = shape.context_parallel
    if c <= 1:
        return 0.0, 0.0
    t = shape.tensor_parallel
    kv_heads = max(1, model.kv_heads // t)
    if model.mla:
        head = model.head_size + model.qk_rope_head_dim + model.v_head_dim
    else:
        head = 2 * model.head_size
    block = 2.0 * shape.tokens * kv_heads * head  # this rank's keys and values, 16-bit
    latency, bandwidth = ring_link(gpu, t * c)
    transfer = latency + 1000.0 * block / bandwidth
    rate = gpu.tflops * 1e12 * mfu * t / 1e3  # FLOPs per ms, as every op is timed
    core = attention_core_flops(model, shape) / rate
    forward = (c - 1) * max(0.0, transfer - core / c)
    backward = (c - 1) * max(0.0, 2 * transfer - 2 * core / c)
    return forward, backward
