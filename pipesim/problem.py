"""The problem a simulation solves: the pipeline's shape, what each op costs, and the links.

Everything here is plain, validated, immutable data. Costs are stored per stage (a model chunk),
whatever form the user gave them in, so that the simulator never has to know about devices
holding several chunks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from pipesim.errors import ConfigError, CostShapeError
from pipesim.ops import Kind, Op


@dataclass(frozen=True)
class Pipeline:
    """`devices` devices holding the stages of the model, fed `microbatches` microbatches.

    `placement[s]` is the device that holds stage `s`; `chunks` is how many stages each device
    holds (the most any device holds, for placements read from a file that are not uniform).
    """

    devices: int
    chunks: int
    microbatches: int
    placement: tuple[int, ...]

    @property
    def num_stages(self) -> int:
        return len(self.placement)

    @cached_property
    def stages_by_device(self) -> tuple[tuple[int, ...], ...]:
        """The stages each device holds, in increasing order."""
        held: list[list[int]] = [[] for _ in range(self.devices)]
        for stage, device in enumerate(self.placement):
            held[device].append(stage)
        return tuple(tuple(stages) for stages in held)

    def stages_on(self, device: int) -> int:
        """How many stages `device` holds: its cost and its memory are shared among them."""
        return max(1, len(self.stages_by_device[device]))


def describe_placement(pipeline: Pipeline) -> str:
    """'one stage per device', 'looped', 'V-shape' or 'custom', for people."""
    placement = pipeline.placement
    if placement == round_robin_placement(pipeline.devices, 1):
        return "one stage per device"
    if len(placement) % pipeline.devices == 0 and placement == round_robin_placement(
        pipeline.devices, len(placement) // pipeline.devices
    ):
        return "looped"
    if len(placement) == 2 * pipeline.devices and placement == v_shape_placement(pipeline.devices):
        return "V-shape"
    return "custom placement"


def round_robin_placement(devices: int, chunks: int) -> tuple[int, ...]:
    """Stage s on device s mod p: plain pipelines (v=1) and looped/interleaved ones."""
    return tuple(stage % devices for stage in range(devices * chunks))


def v_shape_placement(devices: int) -> tuple[int, ...]:
    """Two chunks per device in a V: device d holds stages d and 2p-1-d, so the last stage
    sits on device 0 next to the first (ZB-V, DualPipeV)."""
    return tuple(s if s < devices else 2 * devices - 1 - s for s in range(2 * devices))


@dataclass(frozen=True)
class StageCosts:
    """Milliseconds per microbatch for each stage: forward, whole backward, and the part of the
    backward that computes weight gradients (used only when a policy splits the backward)."""

    forward: tuple[float, ...]
    backward: tuple[float, ...]
    weight: tuple[float, ...]
    overlap: float = 1.0
    """A fused forward-and-backward pair takes this times the sum of its ops' costs (1: no
    overlap; 0.7: the halves hide 30% of each other, as DualPipe hides one microbatch's
    all-to-all behind another's computation)."""

    def duration(self, op: Op, split_backward: bool) -> float:
        """How long `op` holds its device."""
        kind, stage, _ = op
        if kind is Kind.F:
            return self.forward[stage]
        if kind is Kind.W:
            return self.weight[stage]
        if split_backward:
            return self.backward[stage] - self.weight[stage]
        return self.backward[stage]

    @property
    def uniform(self) -> bool:
        """Whether every stage costs the same (closed forms assume it)."""
        return all(len(set(values)) == 1 for values in (self.forward, self.backward, self.weight))


@dataclass(frozen=True)
class Link:
    """One kind of link, in the alpha-beta model: a message occupies the link for size /
    bandwidth (one message at a time, first come first served) and arrives `latency` after
    it started, so latency delays a message without holding the link for the next."""

    latency: float = 0.0
    """Milliseconds from a message's start to its first byte arriving: propagation, software
    and kernel launch."""
    bandwidth: float | None = None
    """Bytes per second; None for a link whose bandwidth costs nothing."""

    def occupancy(self, size: float) -> float:
        """Milliseconds a message of `size` bytes holds the link."""
        if size == 0 or self.bandwidth is None:
            return 0.0
        return 1000.0 * size / self.bandwidth

    def transfer_time(self, size: float) -> float:
        """Milliseconds from a message's start on the link to its arrival."""
        return self.latency + self.occupancy(size)


@dataclass(frozen=True)
class Network:
    """How messages between devices travel: the links within a node and between nodes, the
    sizes of the messages, and whether a send holds its device until it has arrived."""

    intra_node: Link = Link()
    inter_node: Link = Link()
    devices_per_node: int | None = None
    """Consecutive devices grouped into nodes; None: every device in one node."""
    activation_size: float = 0.0
    """Bytes of one microbatch's activation message between stages."""
    gradient_size: float = 0.0
    """Bytes of one microbatch's gradient message between stages."""
    blocking: bool = False
    """Whether a send holds the sending device until the message has arrived."""

    @property
    def free(self) -> bool:
        """Whether every message arrives at once (closed forms assume it)."""
        sizes = (self.activation_size, self.gradient_size)
        links = (
            [self.intra_node]
            if self.devices_per_node is None
            else [self.intra_node, self.inter_node]
        )
        return all(link.transfer_time(size) == 0 for link in links for size in sizes)

    def crosses_nodes(self, src_device: int, dst_device: int) -> bool:
        per_node = self.devices_per_node
        return per_node is not None and src_device // per_node != dst_device // per_node

    def link(self, src_device: int, dst_device: int) -> Link:
        return self.inter_node if self.crosses_nodes(src_device, dst_device) else self.intra_node

    def message_size(self, kind: Kind) -> float:
        """Bytes of the output of an op of `kind` (F: activation, B: gradient)."""
        return self.activation_size if kind is Kind.F else self.gradient_size

    def transfer_time(self, src_device: int, dst_device: int, kind: Kind) -> float:
        """Milliseconds from the start of the output of an op of `kind` on the link from
        `src_device` to `dst_device` to its arrival: latency + size / bandwidth."""
        return self.link(src_device, dst_device).transfer_time(self.message_size(kind))

    def occupancy(self, src_device: int, dst_device: int, kind: Kind) -> float:
        """Milliseconds that message holds its link: size / bandwidth."""
        return self.link(src_device, dst_device).occupancy(self.message_size(kind))


@dataclass(frozen=True)
class Problem:
    """Everything the simulator needs, for one policy."""

    pipeline: Pipeline
    costs: StageCosts
    network: Network
    split_backward: bool

    def duration(self, op: Op) -> float:
        return self.costs.duration(op, self.split_backward)

    def step_scale(self, overlapped: bool) -> float:
        """What the costs of a step's ops are multiplied by: the overlap cost for a fused
        forward-and-backward pair (`overlapped`), 1 for anything else."""
        return self.costs.overlap if overlapped else 1.0


def check_cost(name: str, value: float) -> float:
    """Reject what cannot be a duration: negative, NaN or infinite values."""
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def stage_costs(name: str, values: Sequence[float], pipeline: Pipeline) -> tuple[float, ...]:
    """Per-stage costs from what a user gave: one value for every device, one per device (split
    evenly over the chunks a device holds), or one per stage when devices hold several chunks."""
    for value in values:
        check_cost(name, value)
    p, stages = pipeline.devices, pipeline.num_stages
    if len(values) == 1:
        return tuple(values[0] / pipeline.stages_on(device) for device in pipeline.placement)
    if len(values) == p:
        return tuple(values[device] / pipeline.stages_on(device) for device in pipeline.placement)
    if len(values) == stages:
        return tuple(values)
    expected = f"1 or {p} (one per device)"
    if stages != p:
        expected += f" or {stages} (one per stage)"
    raise CostShapeError(f"{name} has {len(values)} values; expected {expected}")
