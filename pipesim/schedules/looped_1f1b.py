"""The one-forward-one-backward family on looped placements, in one generator.

1F1B, interleaved 1F1B, ZB-H1 and interleaved zero bubble (ZB-1P) differ only in how many
warm-up forwards a device runs, whether the backward is split, and how far W passes lag behind
their B. Following PyTorch's `torch.distributed.pipelining` (which follows Megatron-LM), device d
of p, holding v chunks placed round-robin:

- takes microbatches in rounds of `per_round` (p when m is a multiple of p) and runs, for each
  round, its chunks in order on the way forward and in reverse on the way back;
- runs `warmup = (v-1)*per_round + factor*(p-1-d)` forwards first (factor 2 for interleaved
  1F1B, 1 for plain 1F1B and the zero-bubble variants), at most v*m;
- then alternates one forward and one backward, then drains the remaining backwards;
- with a split backward, runs the W of its oldest pending B after each B once it has run d
  steady steps, and every remaining W at the end: device d thus holds up to d extra
  activations, and W passes fill the drain.
"""

from __future__ import annotations

from pipesim.errors import PolicyError
from pipesim.problem.ops import Kind, Op
from pipesim.problem.pipeline import Pipeline


def microbatches_per_round(p: int, v: int, m: int) -> int:
    """Microbatches per round on p devices with v chunks each: p when m is a multiple of p;
    with other m, m divided into max(1, m // p) equal rounds (PyTorch's relaxation of
    Megatron's m % p == 0)."""
    rounds = max(1, m // p)
    if v > 1 and m % rounds:
        raise PolicyError(
            f"with {v} chunks per device, m={m} must split into "
            f"{rounds} equal rounds of about p={p} microbatches (m a multiple of {rounds})"
        )
    return m // rounds


def looped_1f1b_orders(pipeline: Pipeline, warmup_factor: int, zero_bubble: bool) -> list[list[Op]]:
    """Each device's op order (see the module docstring)."""
    per_round = pipeline.microbatch_group or microbatches_per_round(
        pipeline.devices, pipeline.chunks, pipeline.microbatches
    )
    return [
        _device_order(pipeline, device, per_round, warmup_factor, zero_bubble)
        for device in range(pipeline.devices)
    ]


def _device_order(
    pipeline: Pipeline, device: int, per_round: int, warmup_factor: int, zero_bubble: bool
) -> list[Op]:
    p, v, m = pipeline.devices, pipeline.chunks, pipeline.microbatches
    stages = pipeline.stages_by_device[device]
    total = v * m
    warmup = min((v - 1) * per_round + warmup_factor * (p - 1 - device), total)
    # Megatron's schedule table: groups of `per_round` microbatches, each through every chunk
    # in turn (the last group may be smaller); backwards take the chunks in reverse.
    table = [
        (mb, chunk)
        for start in range(0, m, per_round)
        for chunk in range(v)
        for mb in range(start, min(start + per_round, m))
    ]
    new = tuple.__new__  # an Op without NamedTuple's Python-level __new__ (a hot loop)
    F, B, W = Kind.F, Kind.B, Kind.W
    last = v - 1
    order: list[Op] = []
    append = order.append
    # The W of each backward run so far, in order; the first `weights_done` are placed.
    weights: list[Op] = []
    weights_done = 0
    for step in range(total + warmup):
        if step < total:
            mb, chunk = table[step]
            append(new(Op, (F, stages[chunk], mb)))
        if step >= warmup:
            mb, chunk = table[step - warmup]
            stage = stages[last - chunk]
            append(new(Op, (B, stage, mb)))
            if zero_bubble:
                weights.append(new(Op, (W, stage, mb)))
                if step - warmup >= device:
                    append(weights[weights_done])
                    weights_done += 1
    order += weights[weights_done:]
    return order
