"""A transformer model and a GPU, as plain validated records: from a preset name, a TOML file
with the same fields, or a TOML table inside a config (`[model]`, `[gpu]`).

The presets are data files beside this module (`presets/models.toml`, `presets/gpus.toml`),
each value with its source in a comment.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from pipesim.errors import ConfigError
from pipesim.settings.hf_config import model_fields, parse_config_json
from pipesim.settings.text_input import CONFIG_LIMIT, read_text, read_toml
from pipesim.settings.units import parse_rate, parse_size


@dataclass(frozen=True)
class Model:
    """A decoder-only transformer: dense, or mixture-of-experts; multi-head, grouped-query or
    multi-head latent attention. The fields after `seq_length` are optional in a file (their
    defaults describe a dense model with multi-head or grouped-query attention)."""

    name: str
    layers: int
    hidden: int
    ffn: int
    """The MLP's inner size."""
    heads: int
    kv_heads: int
    """Key/value heads (grouped-query attention); equal to `heads` without it."""
    vocab: int
    tied: bool
    """Whether the input embedding and the output layer share one matrix."""
    gated: bool
    """SwiGLU-style MLP: three matrices (gate, up, down) instead of two."""
    norm: str
    """"layernorm" (weight and bias) or "rmsnorm" (weight only)."""
    seq_length: int
    """The default sequence length s."""
    head_dim: int = 0
    """Query/key/value size per head; 0: hidden / heads (Qwen3 sets it apart from hidden)."""
    qk_norm: bool = False
    """An RMSNorm on each head's queries and keys (Qwen3)."""
    qkv_bias: bool = False
    """Biases on the query, key and value projections (Qwen2)."""
    experts: int = 0
    """Routed experts per MoE layer; 0: a dense model."""
    experts_per_token: int = 0
    """Routed experts each token is sent to (top-k)."""
    expert_ffn: int = 0
    """The inner size of one routed expert's gated MLP."""
    shared_experts: int = 0
    """Experts every token passes through, beside the routed ones."""
    shared_expert_ffn: int = 0
    """The inner size of all shared experts together; 0: shared_experts * expert_ffn."""
    dense_layers: int = 0
    """The first layers that keep a dense MLP of size `ffn` (DeepSeek's first_k_dense_replace)."""
    q_lora_rank: int = 0
    """Multi-head latent attention: the rank of the query's compression (0: none)."""
    kv_lora_rank: int = 0
    """Multi-head latent attention: the rank of the key/value compression (0: not MLA)."""
    qk_rope_head_dim: int = 0
    """MLA: the rotary part of each query and key head, beside `head_dim` without it."""
    v_head_dim: int = 0
    """MLA: the size of each value head."""
    mtp_layers: int = 0
    """Multi-token prediction modules after the last layer (DeepSeek-V3: 1), on the last stage."""
    source: str = field(default="", compare=False)
    """The absolute path of the file it was read from; "" for a preset or a table."""

    @property
    def moe(self) -> bool:
        return self.experts > 0

    @property
    def mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def head_size(self) -> int:
        """Query/key size per head without MLA's rotary part."""
        return self.head_dim or self.hidden // self.heads

    def is_moe_layer(self, index: int) -> bool:
        """Whether layer `index` (from 0) has experts instead of a dense MLP."""
        return self.moe and index >= self.dense_layers


@dataclass(frozen=True)
class Gpu:
    """One accelerator and the links around it."""

    name: str
    tflops: float
    """Dense 16-bit peak, in 10^12 FLOP per second."""
    memory: float
    """Bytes one device holds."""
    nvlink_bandwidth: float
    """Bytes per second, one direction, between GPUs of a node."""
    nvlink_latency: float
    """Milliseconds per message within a node."""
    network_bandwidth: float
    """Bytes per second, one direction, per GPU, between nodes."""
    network_latency: float
    """Milliseconds per message between nodes."""
    gpus_per_node: int
    hbm_bandwidth: float = 0.0
    """Bytes per second of its memory (the optimizer step is bound by it); 0: unknown, and
    the optimizer step is not timed."""
    source: str = field(default="", compare=False)
    """The absolute path of the file it was read from; "" for a preset or a table."""


_PRESETS = {Model: "models.toml", Gpu: "gpus.toml"}


def preset_tables(kind: type[Model] | type[Gpu]) -> dict[str, dict[str, Any]]:
    """Every preset of `kind`, by name, as its TOML table."""
    text = resources.files("pipesim.settings").joinpath("presets", _PRESETS[kind]).read_text()
    return tomllib.loads(text)


def load_model(given: object, where: str) -> Model:
    """A model from a preset name, a TOML file's path (the model's fields, or a pipesim config
    file whose [model] table holds them), a Hugging Face config.json, or a TOML table."""
    model = _load(Model, given, where)
    assert isinstance(model, Model)
    return model


def load_gpu(given: object, where: str) -> Gpu:
    """A GPU from a preset name, a TOML file's path, or a TOML table."""
    gpu = _load(Gpu, given, where)
    assert isinstance(gpu, Gpu)
    return gpu


def _load(kind: type[Model] | type[Gpu], given: object, where: str) -> Model | Gpu:
    what = "model" if kind is Model else "gpu"
    if isinstance(given, Model | Gpu):
        return given
    if isinstance(given, dict):
        return _record(kind, given, str(given.get("name", what)), where)
    if not isinstance(given, str):
        raise ConfigError(f"{where}: expected a {what} preset name, a .toml file or a table")
    known = preset_tables(kind)
    if given.strip().lower() in known:
        name = given.strip().lower()
        return _record(kind, known[name], name, f"{what} preset {name}")
    if given.endswith(".toml"):
        path = Path(given)
        table = read_toml(path, what)
        inner = table.get(what)
        if isinstance(inner, dict):
            # a pipesim config file: its [model] or [gpu] table is the record
            name = str(inner.get("name", path.stem))
            return _record(kind, inner, name, f"{path} [{what}]", str(path.resolve()))
        return _record(kind, table, path.stem, str(path), str(path.resolve()))
    if kind is Model and given.endswith(".json"):
        path = Path(given)
        config = parse_config_json(read_text(path, what, CONFIG_LIMIT), str(path))
        # a config.json is named by its folder, as a checkpoint is (Meta-Llama-3.1-8B/config.json)
        name = path.resolve().parent.name if path.stem == "config" else path.stem
        fields_ = model_fields(config, str(path))
        return _record(kind, fields_, name or path.stem, str(path), str(path.resolve()))
    files = "a .toml file or a Hugging Face config.json" if kind is Model else "a .toml file"
    raise ConfigError(
        f"{where}: unknown {what} {given[:40]!r}; known: {', '.join(known)} (or {files})"
    )


def _record(
    kind: type[Model] | type[Gpu], table: dict[str, Any], name: str, where: str, source: str = ""
) -> Model | Gpu:
    names = [field.name for field in fields(kind) if field.name not in ("name", "source")]
    unknown = sorted(set(table) - {*names, "name"})
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; fields: {', '.join(names)}")
    missing = [
        item.name
        for item in fields(kind)
        if item.name in names and item.name not in table and item.default is MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing field {missing[0]!r}")
    values: dict[str, Any] = {"name": name, "source": source}
    for item in fields(kind):
        if item.name in names and item.name in table:
            values[item.name] = _value(item.name, table[item.name], f"{where}: {item.name}")
    record = kind(**values)
    if isinstance(record, Model):
        _check_model(record, where)
    return record


_WHOLE = {"layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "seq_length", "gpus_per_node"}
_OPTIONAL_WHOLE = {
    "head_dim", "experts", "experts_per_token", "expert_ffn", "shared_experts",
    "shared_expert_ffn", "dense_layers", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim",
    "v_head_dim", "mtp_layers",
}  # fmt: skip
_SWITCHES = {"tied", "gated", "qk_norm", "qkv_bias"}
_SIZES = {"memory"}
_RATES = {"nvlink_bandwidth", "network_bandwidth", "hbm_bandwidth"}
_LIMITS = {"layers": 10**5, "seq_length": 10**8, "vocab": 10**8, "gpus_per_node": 10**4}


def _value(name: str, value: object, where: str) -> Any:
    if name in _OPTIONAL_WHOLE:
        if type(value) is not int or not 0 <= value <= 10**7:
            raise ConfigError(f"{where} must be a whole number >= 0, got {value!r}")
        return value
    if name in _WHOLE:
        if type(value) is not int or not 1 <= value <= _LIMITS.get(name, 10**7):
            raise ConfigError(f"{where} must be a whole number >= 1, got {value!r}")
        return value
    if name in _SWITCHES:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if name == "norm":
        if value not in ("layernorm", "rmsnorm"):
            raise ConfigError(f'{where} must be "layernorm" or "rmsnorm", got {value!r}')
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}: {value!r} is not a number")
    if name in _SIZES:
        # the rule --memory-limit follows: '80' is far more likely 80GB than 80 bytes
        if not isinstance(value, str) or not re.search(r"[A-Za-z]", value):
            raise ConfigError(f"{where}: give a unit, e.g. '80GB' or '1.5GiB' (got {value!r})")
        amount = parse_size(where, value)
    elif name in _RATES:
        amount = parse_rate(where, value)
    else:
        amount = parse_size(where, value) if isinstance(value, str) else float(value)
    if not 0 < amount < 1e18:
        raise ConfigError(f"{where} must be > 0, got {value!r}")
    return amount


def _check_model(model: Model, where: str) -> None:
    if model.head_dim == 0 and model.hidden % model.heads:
        raise ConfigError(f"{where}: heads ({model.heads}) must divide hidden ({model.hidden})")
    if model.heads % model.kv_heads:
        raise ConfigError(f"{where}: kv_heads ({model.kv_heads}) must divide heads ({model.heads})")
    if model.moe:
        if not 1 <= model.experts_per_token <= model.experts:
            raise ConfigError(
                f"{where}: experts_per_token ({model.experts_per_token}) must be 1 to the "
                f"{model.experts} experts"
            )
        if model.expert_ffn == 0:
            raise ConfigError(f"{where}: a model with experts needs expert_ffn")
        if model.dense_layers > model.layers:
            raise ConfigError(
                f"{where}: dense_layers ({model.dense_layers}) exceeds layers ({model.layers})"
            )
    elif model.experts_per_token or model.shared_experts or model.dense_layers:
        raise ConfigError(
            f"{where}: experts_per_token, shared_experts and dense_layers need experts > 0"
        )
    if model.mla and not (model.qk_rope_head_dim and model.v_head_dim and model.head_dim):
        raise ConfigError(
            f"{where}: multi-head latent attention (kv_lora_rank) needs head_dim, "
            "qk_rope_head_dim and v_head_dim"
        )
    if not model.mla and (model.q_lora_rank or model.qk_rope_head_dim or model.v_head_dim):
        raise ConfigError(
            f"{where}: q_lora_rank, qk_rope_head_dim and v_head_dim need kv_lora_rank > 0"
        )
