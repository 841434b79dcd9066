"""Activation bytes checked against a real measurement: the tensors autograd keeps for one
decoder layer of Hugging Face's own implementations, in bf16 with PyTorch's SDPA (its CPU
flash kernel keeps each head's output and log-sum-exp, as FlashAttention does on a GPU).

Substitutions, said openly, where Hugging Face's Python differs from the kernels large runs
use: its RMSNorm keeps fp32 copies of its input, where fused kernels (Transformer Engine,
Apex's FusedRMSNorm) keep the 16-bit input and 1/rms; DeepSeek-V3's router casts its input to
fp32 before the matmul and keeps that copy, where Megatron-LM's router gating function keeps
the 16-bit input and casts inside. Both are swapped for autograd functions that save what those
kernels save; everything else (projections, rotary embeddings, attention, SwiGLU, the router's
choice and the experts) is Hugging Face's and PyTorch's code, measured as it runs.

A tensor counts if autograd still holds it when the forward returns (saved tensors of
operations whose results feed nothing differentiable, such as a group router's mask, are freed
at once). Storages count once, whole (a view keeps its whole storage alive); parameters and the
rotary tables (shared by every layer) are not activations."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from pipesim.problem.activations import layer_activation_bytes
from pipesim.problem.transformer import Shape
from pipesim.settings.hardware import load_model
from tests.conftest import need

pytestmark = pytest.mark.slow

SMALL = dict(hidden_size=256, num_attention_heads=8, num_key_value_heads=2,
             num_hidden_layers=1, vocab_size=1000)  # fmt: skip
# DeepSeek-V3 in small: MLA with both compressions, a dense first layer, then MoE layers with a
# shared expert and group-limited routing. Value heads as wide as query heads (16 + 16), since
# PyTorch's CPU flash kernel needs equal sizes (else SDPA falls back to the s^2 math path).
DEEPSEEK = dict(
    SMALL,
    num_key_value_heads=8,
    num_hidden_layers=2,
    intermediate_size=512,
    moe_intermediate_size=64,
    n_routed_experts=8,
    num_experts_per_tok=2,
    n_shared_experts=1,
    first_k_dense_replace=1,
    q_lora_rank=96,
    kv_lora_rank=64,
    qk_rope_head_dim=16,
    qk_nope_head_dim=16,
    v_head_dim=32,
    n_group=2,
    topk_group=1,
)
FAMILIES = {
    "llama": ("LlamaConfig", "llama", "Llama", dict(SMALL, intermediate_size=688)),
    "mixtral": ("MixtralConfig", "mixtral", "Mixtral",
                dict(SMALL, intermediate_size=344, num_local_experts=4, num_experts_per_tok=2)),
    "deepseek_v3": ("DeepseekV3Config", "deepseek_v3", "DeepseekV3", DEEPSEEK),
}  # fmt: skip


def _fused_norm(torch: Any) -> Any:
    class FusedRMSNorm(torch.autograd.Function):  # type: ignore[misc]
        """Saves what a fused kernel saves: the 16-bit input and 1/rms in fp32."""

        @staticmethod
        def forward(ctx: Any, x: Any, weight: Any, eps: float) -> Any:
            rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
            ctx.save_for_backward(x, weight, rstd)
            return (x.float() * rstd).to(x.dtype) * weight

    class Norm(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, old: Any) -> None:
            super().__init__()
            self.weight, self.eps = old.weight, old.variance_epsilon

        def forward(self, x: Any) -> Any:
            return FusedRMSNorm.apply(x, self.weight, self.eps)

    return Norm


def _router_forward(torch: Any) -> Any:
    """DeepSeek-V3's router as Hugging Face writes it, but with its logits computed as
    Megatron-LM's router gating function does: the 16-bit input kept, cast to fp32 inside."""

    class RouterGating(torch.autograd.Function):  # type: ignore[misc]
        @staticmethod
        def forward(ctx: Any, x: Any, weight: Any) -> Any:
            ctx.save_for_backward(x, weight)
            return torch.nn.functional.linear(x.float(), weight)

    def forward(self: Any, hidden: Any) -> Any:
        hidden = hidden.view(-1, self.hidden_dim)
        logits = RouterGating.apply(hidden, self.weight)
        scores = logits.sigmoid()
        choice = scores + self.e_score_correction_bias
        per_group = self.num_experts // self.num_group
        group_scores = choice.view(-1, self.num_group, per_group).topk(2, dim=-1)[0].sum(-1)
        groups = torch.topk(group_scores, k=self.topk_group, dim=-1, sorted=False)[1]
        mask = torch.zeros_like(group_scores).scatter_(1, groups, 1)
        mask = mask.unsqueeze(-1).expand(-1, self.num_group, per_group).reshape(choice.shape)
        choice = choice.masked_fill(~mask.bool(), float("-inf"))
        indices = torch.topk(choice, k=self.top_k, dim=-1, sorted=False)[1]
        weights = scores.gather(1, indices)
        if self.norm_topk_prob:
            weights /= weights.sum(dim=-1, keepdim=True) + 1e-20
        return logits, weights * self.routed_scaling_factor, indices

    return forward


class _Held:
    """What the pack hook hands autograd: alive as long as autograd keeps the tensor."""

    __slots__ = ("__weakref__", "tensor")

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor


def _measure(family: str, seq: int, tmp_path: Path, index: int = 0) -> tuple[float, float]:
    """(bytes autograd keeps for layer `index` at s=seq, pipesim's bytes for the same
    config)."""
    torch, transformers = need("torch"), need("transformers")
    config_class, module, prefix, kwargs = FAMILIES[family]
    config = getattr(transformers, config_class)(**kwargs)
    config._attn_implementation = "sdpa"
    config._experts_implementation = "eager"
    modeling = __import__(f"transformers.models.{module}.modeling_{module}", fromlist=["x"])
    torch.manual_seed(0)
    layer = getattr(modeling, f"{prefix}DecoderLayer")(config, index).to(torch.bfloat16)
    norm = _fused_norm(torch)
    norms = [(layer, "input_layernorm"), (layer, "post_attention_layernorm")]
    if family == "deepseek_v3":
        norms += [(layer.self_attn, "q_a_layernorm"), (layer.self_attn, "kv_a_layernorm")]
        router = getattr(layer.mlp, "gate", None)
        if router is not None and hasattr(router, "e_score_correction_bias"):
            router.weight.data = router.weight.data.float()  # DeepSeek keeps it in fp32
            router.forward = _router_forward(torch).__get__(router)
    for owner, name in norms:
        setattr(owner, name, norm(getattr(owner, name)))
    rope = getattr(modeling, f"{prefix}RotaryEmbedding")(config)
    x = torch.randn(1, seq, config.hidden_size, dtype=torch.bfloat16, requires_grad=True)
    positions = torch.arange(seq)[None]
    cos, sin = rope(x, positions)
    excluded = {
        t.untyped_storage().data_ptr() for t in (*layer.parameters(), *layer.buffers(), cos, sin)
    }
    held: list[weakref.ref[_Held]] = []

    def pack(tensor: Any) -> _Held:
        item = _Held(tensor)
        held.append(weakref.ref(item))
        return item

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda item: item.tensor):
        output = layer(
            x, attention_mask=None, position_ids=positions, position_embeddings=(cos, sin)
        )
    gc.collect()
    saved: dict[int, int] = {}
    for ref in held:
        item = ref()
        if item is not None:
            storage = item.tensor.untyped_storage()
            if storage.data_ptr() not in excluded:
                saved[storage.data_ptr()] = storage.nbytes()
    del output
    path = tmp_path / family / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(config.to_json_string())
    model = load_model(str(path), "test")
    predicted = layer_activation_bytes(model, Shape(1, seq, 1, False, "none", "flash"), index)
    return float(sum(saved.values())), predicted


@pytest.mark.parametrize("family", ["llama", "mixtral"])
def test_pipesims_bytes_are_what_autograd_saves(family: str, tmp_path: Path) -> None:
    # Dense: every tensor accounted for, to the byte. MoE: the tokens each expert receives
    # depend on the router, but their sum is k copies of each token, so the total is exact too.
    for seq in (256, 512):
        measured, predicted = _measure(family, seq, tmp_path)
        assert predicted == measured


@pytest.mark.parametrize("index", [0, 1], ids=["dense first layer", "MoE layer"])
def test_latent_attention_keeps_what_pipesim_counts(index: int, tmp_path: Path) -> None:
    # Everything to the byte but one tensor: Hugging Face builds MLA's queries with torch.cat
    # in (batch, heads, s, d) order, so the attention output comes back in that order and the
    # output projection keeps a reordered copy (2 bytes x heads x value size per token), where
    # Llama's layout, and Megatron-LM's, hand the output on as it is.
    a, v = DEEPSEEK["num_attention_heads"], DEEPSEEK["v_head_dim"]
    for seq in (256, 512):
        measured, predicted = _measure("deepseek_v3", seq, tmp_path, index)
        assert measured == predicted + 2 * a * v * seq


def test_the_bytes_per_token_do_not_grow_with_the_sequence(tmp_path: Path) -> None:
    # O(s) per layer, as FlashAttention keeps it; Korthikanti's 34 + 5as/h grows with s.
    short, _ = _measure("llama", 256, tmp_path)
    long, _ = _measure("llama", 1024, tmp_path)
    assert long / 1024 == short / 256
    h, a = 256, 8
    korthikanti = 256 * h * (34 + 5 * a * 256 / h)
    assert korthikanti / short > 2  # the old formula, 2.1x what is kept at s=256 already
