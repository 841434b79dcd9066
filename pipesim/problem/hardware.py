"""A transformer model and a GPU, as plain validated records: from a preset name, a TOML file
with the same fields, or a TOML table inside a config (`[model]`, `[gpu]`).

The presets are data files beside this module (`presets/models.toml`, `presets/gpus.toml`),
each value with its source in a comment.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from pipesim.errors import ConfigError
from pipesim.problem.text_input import CONFIG_LIMIT, read_text
from pipesim.problem.units import parse_rate, parse_size


@dataclass(frozen=True)
class Model:
    """A dense decoder-only transformer."""

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


_PRESETS = {Model: "models.toml", Gpu: "gpus.toml"}


def preset_tables(kind: type[Model] | type[Gpu]) -> dict[str, dict[str, Any]]:
    """Every preset of `kind`, by name, as its TOML table."""
    text = resources.files("pipesim.problem").joinpath("presets", _PRESETS[kind]).read_text()
    return tomllib.loads(text)


def load_model(given: object, where: str) -> Model:
    """A model from a preset name, a TOML file's path, or a TOML table."""
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
        try:
            table = tomllib.loads(read_text(path, what, CONFIG_LIMIT))
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
        except RecursionError:
            raise ConfigError(f"{path} nests arrays or tables too deeply") from None
        return _record(kind, table, path.stem, str(path))
    raise ConfigError(
        f"{where}: unknown {what} {given[:40]!r}; known: {', '.join(known)} (or a .toml file)"
    )


def _record(
    kind: type[Model] | type[Gpu], table: dict[str, Any], name: str, where: str
) -> Model | Gpu:
    names = [field.name for field in fields(kind) if field.name != "name"]
    unknown = sorted(set(table) - {*names, "name"})
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; fields: {', '.join(names)}")
    missing = [field for field in names if field not in table]
    if missing:
        raise ConfigError(f"{where}: missing field {missing[0]!r}")
    values: dict[str, Any] = {"name": name}
    for field in fields(kind):
        if field.name != "name":
            values[field.name] = _value(field.name, table[field.name], f"{where}: {field.name}")
    record = kind(**values)
    if isinstance(record, Model):
        _check_model(record, where)
    return record


_WHOLE = {"layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "seq_length", "gpus_per_node"}
_SWITCHES = {"tied", "gated"}
_SIZES = {"memory"}
_RATES = {"nvlink_bandwidth", "network_bandwidth"}
_LIMITS = {"layers": 10**5, "seq_length": 10**8, "vocab": 10**8, "gpus_per_node": 10**4}


def _value(name: str, value: object, where: str) -> Any:
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
        amount = parse_size(where, value)
    elif name in _RATES:
        amount = parse_rate(where, value)
    else:
        amount = parse_size(where, value) if isinstance(value, str) else float(value)
    if not 0 < amount < 1e18:
        raise ConfigError(f"{where} must be > 0, got {value!r}")
    return amount


def _check_model(model: Model, where: str) -> None:
    if model.hidden % model.heads:
        raise ConfigError(f"{where}: heads ({model.heads}) must divide hidden ({model.hidden})")
    if model.heads % model.kv_heads:
        raise ConfigError(f"{where}: kv_heads ({model.kv_heads}) must divide heads ({model.heads})")
