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
from pipesim.problem import Link, Network, Pipeline, Problem, StageCosts, check_cost, stage_costs
from pipesim.schedules.base import Policy
from pipesim.units import parse_rate, parse_size


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told. Costs are lists: one value, one per device, or one per
    stage; `weight` None means half of the backward."""

    policy: str = "1f1b"
    stages: int | None = None
    """Pipeline-parallel size p, the number of devices; None: the policy's default (4, or a
    schedule file's ranks)."""
    microbatches: int | None = None
    """Microbatches m; None: the policy's default (8, or a schedule file's)."""
    chunks: int | None = None
    """Model chunks per device (v); None lets the policy decide (1, or 2 for those that
    interleave or fold the pipeline into a V)."""
    forward: tuple[float, ...] = (1.0,)
    backward: tuple[float, ...] = (2.0,)
    weight: tuple[float, ...] | None = None
    comm_latency: float = 0.0
    """Milliseconds per message between devices (within a node)."""
    activation_size: float = 0.0
    """Bytes of one microbatch's activation message; 0: messages cost latency only."""
    gradient_size: float | None = None
    """Bytes of one microbatch's gradient message; None: the activation's size."""
    bandwidth: float | None = None
    """Bytes per second of a link within a node; needed when sizes are given."""
    devices_per_node: int | None = None
    """Consecutive devices per node; None: one node."""
    inter_node_latency: float | None = None
    """Milliseconds per message between nodes; None: comm_latency."""
    inter_node_bandwidth: float | None = None
    """Bytes per second between nodes; None: bandwidth."""
    blocking_comm: bool = False
    """A send holds its device until the message has arrived."""
    overlap_cost: float = 1.0
    """A fused forward-and-backward pair (DualPipe's overlapped chunks, PyTorch's OVERLAP_F_B)
    takes this times the sum of its two halves' costs."""

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied (values already parsed)."""
        return dataclasses.replace(self, **changes)


MAX_OPS = 30_000_000
"""The largest step simulated: beyond it memory, not patience, runs out (a 24 GB machine holds
about 40 million ops with their trace)."""

_INT_KEYS = ("stages", "microbatches", "chunks", "devices_per_node")
_COST_KEYS = ("forward", "backward", "weight")
_LATENCY_KEYS = ("comm_latency", "inter_node_latency")
_FACTOR_KEYS = ("overlap_cost",)
_SIZE_KEYS = ("activation_size", "gradient_size")
_RATE_KEYS = ("bandwidth", "inter_node_bandwidth")
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
        elif key in _FACTOR_KEYS or key in _LATENCY_KEYS:
            values = _cost_value(where, value)
            if len(values) != 1:
                raise ConfigError(f"{where} must be one number")
            changes[key] = values[0]
        elif key in _SIZE_KEYS:
            changes[key] = parse_size(where, value)
        elif key in _RATE_KEYS:
            changes[key] = parse_rate(where, value)
        elif key == "blocking_comm":
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false, got {value!r}")
            changes[key] = value
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
    network = build_network(settings)
    default_stages, default_microbatches = policy.default_shape()
    stages = default_stages if settings.stages is None else settings.stages
    microbatches = default_microbatches if settings.microbatches is None else settings.microbatches
    chunks = policy.resolve_chunks(settings.chunks)
    ops = 3 * stages * chunks * microbatches
    if ops > MAX_OPS:
        raise ConfigError(
            f"p={stages}, v={chunks}, m={microbatches} is up to {ops:,} ops, more than the "
            f"{MAX_OPS:,} pipesim simulates (about 450 MB and 5 s per million ops)"
        )
    policy.check(stages, chunks, microbatches)
    pipeline = Pipeline(
        devices=stages,
        chunks=chunks,
        microbatches=microbatches,
        placement=policy.placement(stages, chunks),
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
    overlap = settings.overlap_cost
    if not math.isfinite(overlap) or overlap <= 0:
        raise ConfigError(f"overlap_cost must be a finite number > 0, got {overlap!r}")
    return Problem(
        pipeline=pipeline,
        costs=StageCosts(forward, backward, weight, overlap),
        network=network,
        split_backward=policy.split_backward,
    )


def build_network(settings: Settings) -> Network:
    """The links and message sizes; every inconsistency is an error, nothing is dropped."""
    for name in _LATENCY_KEYS:
        value = getattr(settings, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    for name in (*_SIZE_KEYS, *_RATE_KEYS):
        value = getattr(settings, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(f"{name} must be a finite amount >= 0, got {value!r}")
    if settings.devices_per_node is None:
        for name in ("inter_node_latency", "inter_node_bandwidth"):
            if getattr(settings, name) is not None:
                raise ConfigError(
                    f"{name} given without devices_per_node: all devices are in one node"
                )
    activation = settings.activation_size
    gradient = activation if settings.gradient_size is None else settings.gradient_size
    intra = Link(settings.comm_latency, settings.bandwidth)
    inter = Link(
        intra.latency if settings.inter_node_latency is None else settings.inter_node_latency,
        intra.bandwidth if settings.inter_node_bandwidth is None else settings.inter_node_bandwidth,
    )
    if max(activation, gradient) > 0:
        for name, link in (("bandwidth", intra), ("inter_node_bandwidth", inter)):
            if link.bandwidth is None:
                raise ConfigError(f"message sizes are given but no {name}: set the link bandwidth")
            if link.bandwidth == 0:
                raise ConfigError(f"{name} is 0 with messages of non-zero size: they never arrive")
    return Network(
        intra_node=intra,
        inter_node=inter,
        devices_per_node=settings.devices_per_node,
        activation_size=activation,
        gradient_size=gradient,
        blocking=settings.blocking_comm,
    )
