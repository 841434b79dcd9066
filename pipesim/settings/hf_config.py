"""A Hugging Face `config.json`, read into the fields of pipesim's model record.

A user's model usually arrives as the `config.json` beside its weights. The keys read are the
ones each family's configuration class in `transformers` defines (`LlamaConfig`,
`MistralConfig`, `Qwen2Config`, `Qwen3Config`, `Qwen3MoeConfig`, `MixtralConfig`,
`DeepseekV3Config`); a default is taken only where that class has one. Every family here uses
RMSNorm and a gated (SwiGLU) MLP. A config says nothing of the sequence length a model is
trained at, so pipesim takes the context (`max_position_embeddings`) up to `DEFAULT_SEQUENCE`;
`--seq-length` sets it.
"""

from __future__ import annotations

import json
from typing import Any

from pipesim.errors import ConfigError

DEFAULT_SEQUENCE = 4096
"""The sequence length taken when the config's context is longer: a common pre-training length
(Llama 3 pre-trains at 8192, then extends; many recipes use 4096)."""

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "mixtral", "deepseek_v3")


def parse_config_json(text: str, where: str) -> dict[str, Any]:
    """The config's JSON object, or one line saying why it is not one."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{where} is not valid JSON: {error.msg} (line {error.lineno})") from None
    except RecursionError:
        raise ConfigError(f"{where} nests arrays or objects too deeply") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: a Hugging Face config.json holds one JSON object")
    return config


def model_fields(config: dict[str, Any], where: str) -> dict[str, Any]:
    """pipesim's model fields from a Hugging Face config, for the families in `FAMILIES`."""
    family = config.get("model_type")
    if family not in FAMILIES:
        raise ConfigError(
            f"{where}: model_type {str(family)[:40]!r} is not one pipesim reads; "
            f"known: {', '.join(FAMILIES)}"
        )

    def key(name: str, default: object = None) -> Any:
        value = config.get(name, default)
        if value is None:
            raise ConfigError(f"{where}: {family} config has no {name!r}")
        return value

    heads = key("num_attention_heads")
    fields: dict[str, Any] = {
        "layers": key("num_hidden_layers"),
        "hidden": key("hidden_size"),
        "ffn": key("intermediate_size"),
        "heads": heads,
        "kv_heads": key("num_key_value_heads", heads),
        "vocab": key("vocab_size"),
        "tied": key("tie_word_embeddings", False),
        "gated": True,
        "norm": "rmsnorm",
        "seq_length": _sequence(key("max_position_embeddings", DEFAULT_SEQUENCE), where),
    }
    head_dim = config.get("head_dim")
    if head_dim is not None and family != "deepseek_v3":
        fields["head_dim"] = head_dim
    if family == "qwen2":
        fields["qkv_bias"] = True
    elif family in ("llama", "mistral", "qwen3", "qwen3_moe", "mixtral"):
        fields["qkv_bias"] = key("attention_bias", False)
    if family in ("qwen3", "qwen3_moe"):
        fields["qk_norm"] = True
    if family == "mixtral":
        fields |= {
            "experts": key("num_local_experts"),
            "experts_per_token": key("num_experts_per_tok"),
            "expert_ffn": key("intermediate_size"),
        }
    elif family == "qwen3_moe":
        if config.get("mlp_only_layers") or config.get("decoder_sparse_step", 1) != 1:
            raise ConfigError(
                f"{where}: dense layers between MoE layers (mlp_only_layers, "
                "decoder_sparse_step) are not modelled; pipesim takes dense layers first only"
            )
        fields |= {
            # the released configs say num_experts; transformers 5 writes num_local_experts
            "experts": key("num_experts", config.get("num_local_experts")),
            "experts_per_token": key("num_experts_per_tok"),
            "expert_ffn": key("moe_intermediate_size"),
        }
    elif family == "deepseek_v3":
        if config.get("moe_layer_freq", 1) != 1:
            raise ConfigError(f"{where}: moe_layer_freq other than 1 is not modelled")
        fields |= {
            "experts": key("n_routed_experts"),
            "experts_per_token": key("num_experts_per_tok"),
            "expert_ffn": key("moe_intermediate_size"),
            "shared_experts": key("n_shared_experts", 0),
            "dense_layers": key("first_k_dense_replace", 0),
            "q_lora_rank": config.get("q_lora_rank") or 0,
            "kv_lora_rank": key("kv_lora_rank"),
            "head_dim": key("qk_nope_head_dim"),
            "qk_rope_head_dim": key("qk_rope_head_dim"),
            "v_head_dim": key("v_head_dim"),
            "mtp_layers": config.get("num_nextn_predict_layers") or 0,
        }
    return fields


def _sequence(context: object, where: str) -> object:
    if type(context) is not int or context < 1:
        raise ConfigError(f"{where}: max_position_embeddings must be a whole number >= 1")
    return min(context, DEFAULT_SEQUENCE)
