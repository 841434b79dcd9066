"""Settings as a user gives them (flags, a TOML file, a Python call) and the problem they make.

`Settings` keeps the user's values untouched; `build_problem` validates them and resolves them
for one policy (its placement, whether it splits the backward). Every check raises `ConfigError`
with a message that names the setting.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipesim.errors import ConfigError
from pipesim.problem import Network, Pipeline, Problem, StageCosts, check_cost, stage_costs
from pipesim.schedules.base import Policy


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told. Costs are lists: one value, one per device, or one per
    stage; `weight` None means half of the backward."""

    policy: str = "1f1b"
    stages: int = 4
    """Pipeline-parallel size p: the number of devices."""
    microbatches: int = 8
    chunks: int | None = None
    """Model chunks per device (v); None lets the policy decide (1, or 2 for those that
    interleave or fold the pipeline into a V)."""
    forward: tuple[float, ...] = (1.0,)
    backward: tuple[float, ...] = (2.0,)
    weight: tuple[float, ...] | None = None
    comm_latency: float = 0.0

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied (values already parsed)."""
        return dataclasses.replace(self, **changes)


_INT_KEYS = ("stages", "microbatches", "chunks")
_COST_KEYS = ("forward", "backward", "weight")
_FIELDS = {field.name for field in dataclasses.fields(Settings)}


def parse_cost_list(name: str, text: str) -> tuple[float, ...]:
    """'1,1,1.5,2' -> (1.0, 1.0, 1.5, 2.0); every value a finite duration >= 0."""
    values = []
    for part in text.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise ConfigError(f"{name}: {part.strip()!r} is not a number (in {text!r})") from None
        values.append(check_cost(name, value))
    return tuple(values)


def _cost_value(name: str, value: object) -> tuple[float, ...]:
    if isinstance(value, str):
        return parse_cost_list(name, value)
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ConfigError(f"{name}: empty list")
    result = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"{name}: {item!r} is not a number")
        result.append(check_cost(name, float(item)))
    return tuple(result)


def settings_from_mapping(data: Mapping[str, Any], origin: str, base: Settings) -> Settings:
    """`base` updated by the keys of a TOML table; unknown keys and wrong types are errors."""
    changes: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        where = f"{origin}: {raw_key}"
        if key not in _FIELDS:
            raise ConfigError(
                f"{origin}: unknown key {raw_key!r}; known: {', '.join(sorted(_FIELDS))}"
            )
        if key in _INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where} must be a whole number, got {value!r}")
            changes[key] = value
        elif key in _COST_KEYS:
            changes[key] = _cost_value(where, value)
        elif key == "comm_latency":
            values = _cost_value(where, value)
            if len(values) != 1:
                raise ConfigError(f"{where} must be one number")
            changes[key] = values[0]
        elif not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        else:
            changes[key] = value
    return base.replace(**changes)


def load_settings(path: Path, base: Settings | None = None) -> Settings:
    """Settings from a TOML file (flat keys, as `Settings` names them)."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return settings_from_mapping(data, str(path), base or Settings())


def build_problem(settings: Settings, policy: Policy) -> Problem:
    """Validate `settings` and resolve them into the problem `policy` will run."""
    for name in _INT_KEYS:
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    latency = settings.comm_latency
    if not math.isfinite(latency) or latency < 0:
        raise ConfigError(f"comm_latency must be a finite number >= 0, got {latency!r}")
    chunks = policy.resolve_chunks(settings.chunks)
    policy.check(settings.stages, chunks, settings.microbatches)
    pipeline = Pipeline(
        devices=settings.stages,
        chunks=chunks,
        microbatches=settings.microbatches,
        placement=policy.placement(settings.stages, chunks),
    )
    forward = stage_costs("forward", settings.forward, pipeline)
    backward = stage_costs("backward", settings.backward, pipeline)
    if settings.weight is None:
        weight = tuple(value / 2 for value in backward)
    else:
        weight = stage_costs("weight", settings.weight, pipeline)
        for stage, (w, b) in enumerate(zip(weight, backward, strict=True)):
            if w > b:
                raise ConfigError(
                    f"weight ({w:g} ms) exceeds backward ({b:g} ms) on stage {stage}: "
                    "the weight gradient is part of the backward"
                )
    return Problem(
        pipeline=pipeline,
        costs=StageCosts(forward, backward, weight),
        network=Network(latency=latency),
        split_backward=policy.split_backward,
    )
