"""What one layer keeps for its backward, tensor by tensor: the bytes autograd saves.

Korthikanti et al. (2022) count 34 + 5as/h bytes per token and hidden unit for GPT-3: the 5as/h
is the s x s attention scores, kept before FlashAttention. Every current stack (FlashAttention,
PyTorch's SDPA, cuDNN through Transformer Engine) keeps each head's output and its softmax
statistics instead: O(s) per layer. This module lists the tensors a layer keeps, for the
architecture at hand, in 16-bit unless the kernel keeps them in 32-bit:

- each norm: its input and its 1/rms (fp32; LayerNorm also its mean), as fused norm kernels
  keep them (Transformer Engine, Apex `FusedRMSNorm`);
- each matmul: its input (the norm's output feeding Q/K/V, the router and the MLP is one tensor);
- attention: the queries, keys and values at their real sizes (grouped-query: kv heads only;
  MLA: its compressed latents and their norms too, and the tensors its latent and its values
  are views of), the output and its log-sum-exp per head (fp32); `eager` attention adds the
  scores, 5as per token (Korthikanti's term);
- a gated MLP: the gate and up outputs, the activation's output, the down projection's input;
- a MoE layer: the router's probabilities (fp32) and each token's top-k choice (an int64 index
  and an fp32 weight, renormalised by their sum), then per routed copy of each token: its
  token and slot indices (int64) and weight, its input, the expert's gated MLP, and the
  expert's output before and after weighting; shared experts as a gated MLP.

`tests/test_activation_memory.py` measures autograd's saved tensors for Hugging Face's own
decoder layers (Llama, Mixtral and DeepSeek-V3, in bf16 with SDPA) and compares them with
these sums.

Tensor parallelism splits what lives in heads, MLP columns and experts by t; the rest (norms,
the hidden-size inputs) only with sequence parallelism. Recomputation drops tensors:
`selective` recomputes the attention core (its softmax statistics, and with `eager` the
scores), `full` keeps only the layer's input.

What W needs after B (Zero Bubble paper, Table 1: 32h of GPT-3's 34h + 5as): each weighted
matmul's input and the gradient of its output.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.problem.transformer import Shape, shared_ffn
from pipesim.settings.hardware import Model


@dataclass(frozen=True)
class Kept:
    """One tensor a layer keeps: bytes per token, and whether tensor parallelism splits it."""

    name: str
    per_token: float
    split: bool
    """Split by t always (heads, MLP columns, experts); else only with sequence parallelism."""
    core: bool = False
    """Part of the attention core, which selective recomputation drops."""


def kept_tensors(model: Model, shape: Shape, index: int) -> list[Kept]:
    """The tensors layer `index` keeps for its backward, without recomputation."""
    h, a, kv = model.hidden, model.heads, model.kv_heads
    norm_stats = 8 if model.norm == "layernorm" else 4
    kept = [
        Kept("attention norm: input, 1/rms", 2 * h + norm_stats, split=False),
        Kept("Q/K/V projections' input", 2 * h, split=False),
    ]
    if model.mla:
        kept += _latent_attention(model)
    else:
        d = model.head_size
        if model.qk_norm:
            kept.append(Kept("q, k before their norms, 1/rms", (2 * d + 4) * (a + kv), split=True))
        kept += [
            Kept("queries", 2 * a * d, split=True),
            Kept("keys, values", 2 * 2 * kv * d, split=True),
        ]
    value = model.v_head_dim if model.mla else model.head_size
    kept += [
        Kept("attention output", 2 * a * value, split=True),
        Kept("softmax log-sum-exp (fp32)", 4 * a, split=True, core=True),
    ]
    if shape.attention == "eager":
        kept.append(Kept("attention scores 5as", 5 * a * shape.seq_length, split=True, core=True))
    kept += [
        Kept("MLP norm: input, 1/rms", 2 * h + norm_stats, split=False),
        Kept("MLP input", 2 * h, split=False),
    ]
    if not model.is_moe_layer(index):
        kept += _mlp("MLP", model.ffn, model.gated)
        return kept
    k, f = model.experts_per_token, model.expert_ffn
    kept += [
        Kept("router probabilities (fp32)", 4 * model.experts, split=True),
        Kept("top-k choice (index, weight) and its sum", 12 * k + 4, split=True),
        Kept("tokens sent to experts (k copies)", 2 * h * k, split=True),
        *_mlp(f"routed experts (k={k} copies)", f * k, True),
        Kept("routing per copy (token and slot index, weight)", 20 * k, split=True),
        Kept("expert outputs, before and after weighting", 4 * h * k, split=True),
    ]
    if shared_ffn(model):
        kept += _mlp("shared experts", shared_ffn(model), True)
    return kept


def _mlp(name: str, ffn: int, gated: bool) -> list[Kept]:
    if gated:
        return [
            Kept(f"{name}: gate, up outputs", 4 * ffn, split=True),
            Kept(f"{name}: activation output", 2 * ffn, split=True),
            Kept(f"{name}: down projection input", 2 * ffn, split=True),
        ]
    return [
        Kept(f"{name}: first projection output", 2 * ffn, split=True),
        Kept(f"{name}: activation output", 2 * ffn, split=True),
    ]


def _latent_attention(model: Model) -> list[Kept]:
    """DeepSeek's MLA: the compressed query and key/value, their norms, and the per-head
    queries, keys (with the shared rotary part) and values."""
    a, rope = model.heads, model.qk_rope_head_dim
    kept = []
    if model.q_lora_rank:
        rank = model.q_lora_rank
        kept += [
            Kept("q latent: norm input, 1/rms", 2 * rank + 4, split=False),
            Kept("q latent: up-projection input", 2 * rank, split=False),
        ]
    rank = model.kv_lora_rank
    kept += [
        # The norm's input is a view of the down-projection's output, which holds the shared
        # rotary key too: the whole tensor stays.
        Kept("kv latent and rotary key (norm input), 1/rms", 2 * (rank + rope) + 4, split=False),
        Kept("kv latent: up-projection input", 2 * rank, split=False),
        Kept("queries", 2 * a * (model.head_size + rope), split=True),
        Kept("keys", 2 * a * (model.head_size + rope), split=True),
        # The values are a view of the up-projection's output, beside the keys' other part.
        Kept("values (in the up-projection's output)", 2 * a * (model.head_size + model.v_head_dim),
             split=True),
    ]  # fmt: skip
    return kept


def _bytes(kept: list[Kept], shape: Shape) -> float:
    t = shape.tensor_parallel
    per_token = sum(
        item.per_token / t if item.split or shape.sequence_parallel else item.per_token
        for item in kept
    )
    return per_token * shape.tokens


def layer_activation_bytes(model: Model, shape: Shape, index: int = 0) -> float:
    """Bytes layer `index` keeps for one microbatch from its forward to its backward."""
    if shape.recompute == "full":
        return 2.0 * shape.tokens * model.hidden  # the layer's input only
    kept = kept_tensors(model, shape, index)
    if shape.recompute == "selective":
        kept = [item for item in kept if not item.core]
    return _bytes(kept, shape)


def weight_gradient_tensors(model: Model, index: int) -> list[Kept]:
    """What W needs after B: every weighted matmul's input and its output's gradient."""
    h, a, kv = model.hidden, model.heads, model.kv_heads
    value = model.v_head_dim if model.mla else model.head_size
    matmuls: list[tuple[str, float, float, bool]] = []  # name, input, output, split
    if model.mla:
        head = model.head_size + model.qk_rope_head_dim
        q_in = 2 * model.q_lora_rank if model.q_lora_rank else 2 * h
        matmuls += [
            ("q projection", q_in, 2 * a * head, True),
            ("kv down-projection", 2 * h, 2 * (model.kv_lora_rank + model.qk_rope_head_dim), False),
            ("kv up-projection", 2 * model.kv_lora_rank, 2 * a * (model.head_size + value), True),
        ]
        if model.q_lora_rank:
            matmuls.append(("q down-projection", 2 * h, 2 * model.q_lora_rank, False))
    else:
        d = model.head_size
        matmuls.append(("Q/K/V", 2 * h, 2 * (a + 2 * kv) * d, True))
    matmuls.append(("attention output projection", 2 * a * value, 2 * h, True))
    if model.is_moe_layer(index):
        k, f = model.experts_per_token, model.expert_ffn
        matmuls += [
            ("router", 2 * h, 4 * model.experts, True),
            ("experts' gate and up", 2 * h * k, 4 * f * k, True),
            ("experts' down", 2 * f * k, 2 * h * k, True),
        ]
        if shared_ffn(model):
            matmuls += [
                ("shared gate and up", 0, 4 * shared_ffn(model), True),
                ("shared down", 2 * shared_ffn(model), 2 * h, True),
            ]
    else:
        first = (4 if model.gated else 2) * model.ffn
        matmuls += [
            ("MLP first projection", 2 * h, first, True),
            ("MLP down projection", 2 * model.ffn, 2 * h, True),
        ]
    return [Kept(name, given + made, split) for name, given, made, split in matmuls]


def layer_weight_gradient_bytes(model: Model, shape: Shape, index: int = 0) -> float:
    """Of a layer's activation bytes, what a split backward keeps after B for W, never more
    than the whole."""
    kept = _bytes(weight_gradient_tensors(model, index), shape)
    return min(kept, layer_activation_bytes(model, shape, index))


def embedding_activation_bytes(model: Model, shape: Shape) -> float:
    """What the first stage keeps per microbatch for the embedding: the token ids (8 bytes
    each) and the dropout mask (1 byte per value), as Megatron-LM's
    theoretical_memory_usage counts them, divided by t."""
    tokens, h = shape.tokens, model.hidden
    return (8.0 * tokens + tokens * h) / shape.tensor_parallel


def output_activation_bytes(model: Model, shape: Shape) -> float:
    """What the last stage keeps per microbatch for the output layer and loss: the inputs of
    the final norm and the output projection and the 32-bit logits, 4*s*b*(h + V), divided
    by t (Megatron-LM's theoretical_memory_usage)."""
    return 4.0 * shape.tokens * (model.hidden + model.vocab) / shape.tensor_parallel
