"""What each op costs: milliseconds per microbatch for every stage, and how a user's cost list
(one value, one per device, one per stage) becomes per-stage costs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipesim.errors import ConfigError, CostShapeError
from pipesim.problem.ops import Kind, Op

if TYPE_CHECKING:
    from pipesim.problem.pipeline import Pipeline


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


def check_cost(name: str, value: float) -> float:
    """Reject what cannot be a duration: negative, NaN or infinite values."""
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def stage_costs(name: str, values: Sequence[float], pipeline: Pipeline) -> tuple[float, ...]:
    """Per-stage costs from what a user gave: one value for every device, one per device (split
    evenly over the chunks a device holds), or one per stage when devices hold several chunks.
    With several lines (DualPipe), one per stage of a line: the model's stages."""
    for value in values:
        check_cost(name, value)
    p, stages = pipeline.devices, pipeline.num_stages
    if pipeline.lines > 1 and len(values) == pipeline.line_length:
        # one per stage of a line (the model's stages), every line running the same model
        return tuple(values[pipeline.model_stage(stage)] for stage in range(stages))
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
