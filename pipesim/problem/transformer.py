"""Per-layer arithmetic of a transformer: parameters, FLOPs and activation bytes.

FLOPs per layer and microbatch (b micro-batch size, s sequence length, h hidden, T = b*s
tokens, P the layer's matrix-multiply parameters), as in the Zero Bubble paper's Table 1
(Qi et al. 2024, for GPT-3's P = 12h^2: F = sbh(24h+4s), B = sbh(24h+8s), W = 24sbh^2):
    F = 2*P*T + 4*b*s^2*h        (matmuls, then attention scores and attention over values)
    B = 2*P*T + 8*b*s^2*h        (input gradients: matmuls, and twice the attention core)
    W = 2*P*T                    (weight gradients)
Activation bytes per layer and microbatch, 16-bit (Korthikanti et al. 2022, "Reducing
Activation Recomputation in Large Transformer Models", Table 2; t the tensor-parallel degree):
    no recomputation:        s*b*h*(34 + 5*a*s/h) / t      with sequence parallelism
                             s*b*h*(10 + 24/t + 5*a*s/(h*t)) without it
    selective recomputation: 34*s*b*h / t                   (10 + 24/t without SP)
    full recomputation:      2*s*b*h                        (the layer's input only)
The 34 and 5as/h constants are the paper's, for a plain MLP of 4h and full multi-head
attention; pipesim applies them to gated and grouped-query models unchanged, an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.problem.hardware import Model

RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class Shape:
    """How a model is run: micro-batch size, sequence length, tensor parallelism."""

    micro_batch: int
    seq_length: int
    tensor_parallel: int
    sequence_parallel: bool
    recompute: str
    """"none", "selective" (the attention core is recomputed) or "full" (the whole layer)."""

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_length


def matmul_parameters(model: Model) -> int:
    """A layer's matrix-multiply parameters: Q and O (h x h each), K and V (h x h*kv/heads
    each), and the MLP (two h x ffn matrices, three when gated)."""
    h = model.hidden
    attention = 2 * h * h + 2 * h * (h * model.kv_heads // model.heads)
    mlp = (3 if model.gated else 2) * h * model.ffn
    return attention + mlp


def layer_parameters(model: Model) -> int:
    """A layer's parameters: its matmuls and its two norms (weight, plus bias for LayerNorm),
    as Megatron-LM's theoretical_memory_usage counts them (biases of the matmuls ignored)."""
    norm = 2 if model.norm == "layernorm" else 1
    return matmul_parameters(model) + 2 * norm * model.hidden


def layer_flops(model: Model, shape: Shape) -> tuple[float, float, float]:
    """(F, B, W) FLOPs of one layer for one microbatch, B the input gradient only; with
    recomputation B also redoes the forward (full) or the attention core (selective: the
    4*b*s^2*h of its scores and weighted sum)."""
    b, s, h = shape.micro_batch, shape.seq_length, model.hidden
    dense = 2.0 * matmul_parameters(model) * shape.tokens
    core = 4.0 * b * s * s * h
    forward, backward, weight = dense + core, dense + 2 * core, dense
    if shape.recompute == "full":
        backward += forward
    elif shape.recompute == "selective":
        backward += core
    return forward, backward, weight


def output_flops(model: Model, shape: Shape) -> float:
    """The output layer's FLOPs, added to each of F, B and W on the last stage: 2*T*h*V."""
    return 2.0 * shape.tokens * model.hidden * model.vocab


def layer_activation_bytes(model: Model, shape: Shape) -> float:
    """Bytes one layer keeps for one microbatch from its forward to its backward."""
    s, b, h, a = shape.seq_length, shape.micro_batch, model.hidden, model.heads
    t = shape.tensor_parallel
    sbh = s * b * h
    if shape.recompute == "full":
        return 2.0 * sbh
    attention = 0.0 if shape.recompute == "selective" else 5.0 * a * s / h
    if shape.sequence_parallel or t == 1:
        return sbh * (34 + attention) / t
    return sbh * (10 + 24 / t + attention / t)


def layer_weight_gradient_bytes(model: Model, shape: Shape) -> float:
    """Of a layer's activation bytes, what a split backward keeps after B for W: the inputs
    of its matmuls, 32*s*b*h (Zero Bubble paper, Table 1), never more than the whole."""
    kept = 32.0 * shape.seq_length * shape.micro_batch * model.hidden
    kept /= shape.tensor_parallel if shape.sequence_parallel else 1
    return min(kept, layer_activation_bytes(model, shape))


def embedding_activation_bytes(model: Model, shape: Shape) -> float:
    """What the first stage keeps per microbatch for the embedding: the token ids (8 bytes
    each) and the dropout mask (1 byte per value), as Megatron-LM's
    theoretical_memory_usage counts them, divided by t."""
    s, b, h = shape.seq_length, shape.micro_batch, model.hidden
    return (8.0 * s * b + s * b * h) / shape.tensor_parallel


def output_activation_bytes(model: Model, shape: Shape) -> float:
    """What the last stage keeps per microbatch for the output layer and loss: the inputs of
    the final norm and the output projection and the 32-bit logits, 4*s*b*(h + V), divided
    by t (Megatron-LM's theoretical_memory_usage)."""
    s, b = shape.seq_length, shape.micro_batch
    return 4.0 * s * b * (model.hidden + model.vocab) / shape.tensor_parallel
