"""Per-layer arithmetic of a transformer: parameters and FLOPs, layer by layer.

Parameters are counted exactly, matrix by matrix, as the Hugging Face implementations of each
family hold them (`tests/test_parameters.py` checks them against the published totals and
against the models `transformers` builds): attention with an explicit head size, grouped-query
or multi-head latent attention (DeepSeek's MLA: low-rank query and key/value projections with
their norms), gated or plain MLPs, routers, routed and shared experts, dense first layers,
tied or untied embeddings and multi-token prediction modules.

FLOPs per layer and microbatch (T = b*s tokens, P_active the matmul parameters one token passes
through: attention, the dense MLP, or the router, its top-k routed experts and the shared ones),
generalising the Zero Bubble paper's Table 1 (Qi et al. 2024; GPT-3: F = sbh(24h+4s)):
    core = 2*b*s*s_eff*a*(d_qk + d_v)   the attention scores and their weighted sum
    F = 2*P_active*T + core
    B = 2*P_active*T + 2*core           (the input gradient: matmuls, and twice the core)
    W = 2*P_active*T                    (the weight gradient)
s_eff is s for `eager` attention (every score computed, then masked) and s/2 for `flash`
(FlashAttention's causal kernels skip the masked blocks). Throughput and MFU count these FLOPs
without recomputation, attention as computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.settings.hardware import Model


@dataclass(frozen=True)
class Shape:
    """How a model is run: micro-batch size, sequence length, tensor parallelism."""

    micro_batch: int
    seq_length: int
    tensor_parallel: int
    sequence_parallel: bool
    recompute: str
    """"none", "selective" (the attention core is recomputed) or "full" (the whole layer)."""
    attention: str = "flash"
    """"flash" (FlashAttention, SDPA, cuDNN: O(s) kept per layer) or "eager" (scores kept)."""
    context_parallel: int = 1
    """The sequence split over this many ranks, each holding s/c of its tokens."""

    @property
    def tokens(self) -> int:
        """The tokens of one microbatch on one device: b*s, over c with context parallelism."""
        return self.micro_batch * self.seq_length // self.context_parallel


def attention_parameters(model: Model) -> int:
    """One layer's attention: projections, their biases, query/key norms."""
    return _attention_matmuls(model) + _attention_others(model)


def _attention_matmuls(model: Model) -> int:
    """The attention's projection matrices (MLA: its low-rank pairs)."""
    h, a, kv = model.hidden, model.heads, model.kv_heads
    if model.mla:
        rope, value = model.qk_rope_head_dim, model.v_head_dim
        head = model.head_size + rope
        rank = model.q_lora_rank
        query = h * rank + rank * a * head if rank else h * a * head
        kv_rank = model.kv_lora_rank
        keys_values = h * (kv_rank + rope) + kv_rank * a * (model.head_size + value)
        return query + keys_values + a * value * h
    d = model.head_size
    return h * a * d + 2 * h * kv * d + a * d * h


def _attention_others(model: Model) -> int:
    """The attention's parameters that are not matmuls: MLA's latent norms, Qwen2's Q/K/V
    biases, Qwen3's query and key norms."""
    if model.mla:
        return model.kv_lora_rank + model.q_lora_rank
    d = model.head_size
    biases = model.heads * d + 2 * model.kv_heads * d if model.qkv_bias else 0
    return biases + (2 * d if model.qk_norm else 0)


def _gated(hidden: int, ffn: int, gated: bool) -> int:
    return (3 if gated else 2) * hidden * ffn


def shared_ffn(model: Model) -> int:
    """The inner size of a MoE layer's shared experts, all together."""
    return model.shared_expert_ffn or model.shared_experts * model.expert_ffn


def mlp_parameters(model: Model, index: int, active: bool = False) -> int:
    """Layer `index`'s MLP: dense, or the router, the routed experts (only the top-k when
    `active`) and the shared experts."""
    h = model.hidden
    if not model.is_moe_layer(index):
        return _gated(h, model.ffn, model.gated)
    routed = model.experts_per_token if active else model.experts
    return (
        model.experts * h  # the router
        + routed * _gated(h, model.expert_ffn, True)
        + _gated(h, shared_ffn(model), True)
    )


def routed_expert_parameters(model: Model, index: int) -> int:
    """Layer `index`'s routed experts (what expert parallelism spreads over devices)."""
    if not model.is_moe_layer(index):
        return 0
    return model.experts * _gated(model.hidden, model.expert_ffn, True)


def norm_parameters(model: Model) -> int:
    """One norm over the hidden size: weight, plus bias for LayerNorm."""
    return (2 if model.norm == "layernorm" else 1) * model.hidden


def layer_parameters(model: Model, index: int = 0, active: bool = False) -> int:
    """Layer `index`'s parameters: attention, MLP and its two norms (matmul biases ignored,
    as Megatron-LM's theoretical_memory_usage ignores them, except Qwen2's QKV biases)."""
    return (
        attention_parameters(model)
        + mlp_parameters(model, index, active)
        + 2 * norm_parameters(model)
    )


def matmul_parameters(model: Model, index: int = 0) -> int:
    """The matrix-multiply parameters one token passes through in layer `index` (what its
    FLOPs count): attention without its biases and norms, and the dense MLP or the router with
    the top-k and shared experts."""
    return _attention_matmuls(model) + mlp_parameters(model, index, active=True)


def mtp_parameters(model: Model, active: bool = False) -> int:
    """DeepSeek-V3's multi-token prediction modules: each one MoE layer, the projection of the
    concatenated embedding and hidden state (2h x h) and three norms; the embedding and the
    output layer are the main model's."""
    per_module = (
        layer_parameters(model, model.layers, active) + 2 * model.hidden * model.hidden
    ) + 3 * norm_parameters(model)
    return model.mtp_layers * per_module


def embedding_parameters(model: Model) -> int:
    return model.vocab * model.hidden


def model_parameters(model: Model, active: bool = False, mtp: bool = True) -> int:
    """The whole model's parameters, or those one token uses (`active`: its top-k routed
    experts, not the others). Both embeddings count, as Mixtral's 12.9B active does."""
    layers = sum(layer_parameters(model, index, active) for index in range(model.layers))
    output = 0 if model.tied else embedding_parameters(model)
    total = embedding_parameters(model) + layers + norm_parameters(model) + output
    return total + (mtp_parameters(model, active) if mtp else 0)


def attention_core_flops(model: Model, shape: Shape) -> float:
    """The forward's attention scores and weighted sum for one microbatch."""
    b, s = shape.micro_batch, shape.seq_length
    if model.mla:
        d_qk, d_v = model.head_size + model.qk_rope_head_dim, model.v_head_dim
    else:
        d_qk = d_v = model.head_size
    s_eff = s / 2 if shape.attention == "flash" else s
    # With context parallelism each rank's queries meet every key: a 1/c share of the work.
    return 2.0 * b * s * s_eff * model.heads * (d_qk + d_v) / shape.context_parallel


def layer_flops(model: Model, shape: Shape, index: int = 0) -> tuple[float, float, float]:
    """(F, B, W) FLOPs of layer `index` for one microbatch, B the input gradient only; with
    recomputation B also redoes the forward (full) or the attention core (selective)."""
    dense = 2.0 * matmul_parameters(model, index) * shape.tokens
    core = attention_core_flops(model, shape)
    forward, backward, weight = dense + core, dense + 2 * core, dense
    if shape.recompute == "full":
        backward += forward
    elif shape.recompute == "selective":
        backward += core
    return forward, backward, weight


def output_flops(model: Model, shape: Shape) -> float:
    """The output layer's FLOPs, added to each of F, B and W on the last stage: 2*T*h*V."""
    return 2.0 * shape.tokens * model.hidden * model.vocab


def mtp_flops(model: Model, shape: Shape) -> tuple[float, float, float]:
    """(F, B, W) of the multi-token prediction modules: each a MoE layer, its 2h x h
    projection and a second pass through the output layer."""
    f, b, w = layer_flops(model, shape, model.layers)
    projection = 2.0 * shape.tokens * 2 * model.hidden * model.hidden + output_flops(model, shape)
    n = model.mtp_layers
    return n * (f + projection), n * (b + projection), n * (w + projection)
