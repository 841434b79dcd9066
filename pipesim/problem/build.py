"""From settings to the problem one policy runs: validated, resolved, nothing dropped.

The policy decides the shape (its default p and m, its chunks, its placement, whether it splits
the backward); `build_problem` asks it through `ShapesPipeline`, which every `Policy` answers,
so the problem stage never imports the schedules.
"""

from __future__ import annotations

from typing import Protocol

from pipesim.errors import ConfigError
from pipesim.problem.capacity import check_ops
from pipesim.problem.costs import StageCosts, stage_costs
from pipesim.problem.network import Link, Network
from pipesim.problem.pipeline import Pipeline, Problem
from pipesim.problem.settings import Settings, check_settings


class ShapesPipeline(Protocol):
    """What building a problem asks of a policy."""

    @property
    def split_backward(self) -> bool: ...

    def default_shape(self) -> tuple[int, int]: ...

    def resolve_chunks(self, requested: int | None) -> int: ...

    def check(self, devices: int, chunks: int, microbatches: int) -> None: ...

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]: ...


def build_problem(settings: Settings, policy: ShapesPipeline) -> Problem:
    """Validate `settings` and resolve them into the problem `policy` will run."""
    check_settings(settings)
    network = build_network(settings)
    default_stages, default_microbatches = policy.default_shape()
    stages = default_stages if settings.stages is None else settings.stages
    microbatches = default_microbatches if settings.microbatches is None else settings.microbatches
    chunks = policy.resolve_chunks(settings.chunks)
    kinds = 3 if policy.split_backward else 2
    check_ops(kinds * stages * chunks * microbatches, f"p={stages}, v={chunks}, m={microbatches}")
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
    return Problem(
        pipeline=pipeline,
        costs=StageCosts(forward, backward, weight, overlap),
        network=network,
        split_backward=policy.split_backward,
    )


def build_network(settings: Settings) -> Network:
    """The links and message sizes; every inconsistency is an error, nothing is dropped."""
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
