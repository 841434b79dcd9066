"""The problem a simulation solves: the pipeline's shape (devices, chunks, microbatches and
which device holds each stage), with its costs and links.

Everything in `pipesim.problem` is plain, validated, immutable data. Costs are stored per
stage (a model chunk), whatever form the user gave them in, so that the simulator never has
to know about devices holding several chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from pipesim.problem.costs import StageCosts
from pipesim.problem.memory import StageMemory
from pipesim.problem.network import Network
from pipesim.problem.ops import Kind, Op, on_line, op_key
from pipesim.problem.variability import Variability
from pipesim.problem.workload import Workload


@dataclass(frozen=True)
class Pipeline:
    """`devices` devices holding the stages of the model, fed `microbatches` microbatches.

    `placement[s]` is the device that holds stage `s`; `chunks` is how many stages each device
    holds (the most any device holds, for placements read from a file that are not uniform).

    `lines` > 1 splits the stages into that many equal chains and the microbatches into as many
    equal groups, group k flowing through chain k only: bidirectional DualPipe runs two copies
    of the model, one down the devices and one back up, each fed half the microbatches.
    """

    devices: int
    chunks: int
    microbatches: int
    placement: tuple[int, ...]
    microbatch_group: int | None = None
    """Interleaved schedules: microbatches each chunk takes in turn (Megatron-LM's
    microbatch_group_size_per_vp_stage); None: the schedule's own (p)."""
    lines: int = 1
    """Chains of stages, each with its own share of the microbatches (see above)."""

    @property
    def num_stages(self) -> int:
        return len(self.placement)

    @property
    def line_length(self) -> int:
        """Stages one microbatch passes through (every stage, with one line)."""
        return len(self.placement) // self.lines

    def model_stage(self, stage: int) -> int:
        """Which part of the model `stage` runs: its position along its line."""
        return stage % self.line_length

    def runs(self, stage: int, microbatch: int) -> bool:
        """Whether `microbatch` passes through `stage` (always, with one line)."""
        return on_line(stage, microbatch, self.num_stages, self.microbatches, self.lines)

    def op_count(self, kinds: int) -> int:
        """Ops in a step with `kinds` kinds of op (2, or 3 with a split backward)."""
        return self.line_length * self.microbatches * kinds

    @cached_property
    def stages_by_device(self) -> tuple[tuple[int, ...], ...]:
        """The stages each device holds, in increasing order."""
        held: list[list[int]] = [[] for _ in range(self.devices)]
        for stage, device in enumerate(self.placement):
            held[device].append(stage)
        return tuple(tuple(stages) for stages in held)

    @cached_property
    def chunk_of_stage(self) -> tuple[int, ...]:
        """Each stage's position among its device's stages (0: the device's first chunk)."""
        position = [0] * self.num_stages
        for stages in self.stages_by_device:
            for index, stage in enumerate(stages):
                position[stage] = index
        return tuple(position)

    def stages_on(self, device: int) -> int:
        """How many of `device`'s stages one microbatch passes through: a device's cost and
        memory per microbatch are shared among them (all it holds, with one line)."""
        held = self.stages_by_device[device]
        if self.lines == 1:
            return max(1, len(held))
        per_line = [0] * self.lines
        for stage in held:
            per_line[stage // self.line_length] += 1
        return max(1, *per_line)


def describe_placement(pipeline: Pipeline) -> str:
    """'one stage per device', 'looped', 'V-shape', 'bidirectional' or 'custom', for
    people."""
    placement = pipeline.placement
    if pipeline.lines == 2:
        return "bidirectional: two copies"
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
class Problem:
    """Everything the simulator needs, for one policy."""

    pipeline: Pipeline
    costs: StageCosts
    network: Network
    split_backward: bool
    memory: StageMemory | None = None
    """Bytes per stage, when a model or hand-entered memory figures give them."""
    workload: Workload | None = None
    """The model and GPU the costs were derived from, if any."""
    variability: Variability | None = None
    """Jitter and stragglers, drawn from a seed; None: every op takes its mean."""
    activation_limit: float | None = None
    """For schedules that plan under a memory limit: at most this many microbatches' worth of
    activations per device (`--activation-limit`); None: no such limit was given."""
    weight_share: tuple[float, ...] | None = None
    """Per stage, with a split backward: the share of a microbatch's activations kept from B
    until W (the Zero Bubble paper's M_W / M_B); None: the whole, until W."""
    exchanges: bool = False
    """Messages move in blocking batched exchanges after each compute (`runtime`: Megatron-LM's
    p2p), not as soon as an op ends."""
    combined_pairs: bool = False
    """Steady-state forward-backward pairs run as one step, hiding each other's all-to-alls
    (--ep-comm-overlap: Megatron-LM's combined 1F1B)."""

    @property
    def kinds(self) -> tuple[Kind, ...]:
        """The kinds of op each (stage, microbatch) runs in this step."""
        return Kind.of_step(self.split_backward)

    @property
    def ops_in_step(self) -> int:
        return self.pipeline.op_count(len(self.kinds))

    def duration(self, op: Op) -> float:
        """What `op` costs on average (its stage's cost)."""
        return self.costs.duration(op, self.split_backward)

    @cached_property
    def op_scales(self) -> list[float] | None:
        """Per op key, this run's multiplier of its duration; None when none differs from 1."""
        if self.variability is None:
            return None
        pipeline = self.pipeline
        return self.variability.op_scales(pipeline.placement, pipeline.microbatches)

    @cached_property
    def message_scales(self) -> list[float] | None:
        """Per producer op key, this run's multiplier of its message's time, or None."""
        if self.variability is None:
            return None
        return self.variability.message_scales(self.pipeline.num_stages, self.pipeline.microbatches)

    def op_time(self, op: Op) -> float:
        """How long `op` takes in this run: its cost times its draw and any straggler."""
        scales = self.op_scales
        duration = self.duration(op)
        if scales is None:
            return duration
        return (
            duration * scales[op_key(op.kind, op.stage, op.microbatch, self.pipeline.microbatches)]
        )

    def message_time(self, producer: Op, src: int, dst: int) -> float:
        """How long `producer`'s output takes from src to dst in this run."""
        time = self.network.transfer_time(src, dst, producer.kind)
        scales = self.message_scales
        if scales is None:
            return time
        m = self.pipeline.microbatches
        return time * scales[op_key(producer.kind, producer.stage, producer.microbatch, m)]

    def step_scale(self, overlapped: bool) -> float:
        """What the costs of a step's ops are multiplied by: the overlap cost for a fused
        forward-and-backward pair (`overlapped`), 1 for anything else."""
        return self.costs.overlap if overlapped else 1.0

    def fused_parts(self, ops: Sequence[Op], overlapped: bool) -> list[float]:
        """How long each op of a fused step takes within it: its cost and its draw, times the
        overlap cost for a forward-and-backward pair. A pair whose ops spend time in expert
        all-to-alls computes one op under the other's exchanges, as DualPipe does: it lasts
        max(overlap cost x their compute, their all-to-alls), shared in proportion to the
        ops' costs."""
        scale = self.step_scale(overlapped)
        scales = self.op_scales
        m = self.pipeline.microbatches
        draws = [
            1.0 if scales is None else scales[op_key(op.kind, op.stage, op.microbatch, m)]
            for op in ops
        ]
        parts = [scale * self.duration(op) * draw for op, draw in zip(ops, draws, strict=True)]
        exchanges = [self.costs.exchange(op) * draw for op, draw in zip(ops, draws, strict=True)]
        hidden = sum(exchanges)
        if not overlapped or hidden == 0:
            return parts
        times = [self.duration(op) * draw for op, draw in zip(ops, draws, strict=True)]
        whole = sum(times)
        compute = whole - hidden
        total = max(scale * compute, hidden)
        return [total * time / whole for time in times]
