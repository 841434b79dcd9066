"""The MFU a measured run achieved, as pipesim's model of it counts: what lets `plan` search
other configurations of the same model on costs that start from measured numbers.

pipesim derives an op's time from its FLOPs at a fraction of the GPU's peak (`mfu`), plus what
does not scale with it (tensor-parallel collectives inside the op). A measured run fixes one
configuration: its ranks, stages and microbatches, and (from the `--config` the user gives)
its model, GPU, micro-batch size, sequence and parallelism. The model's forwards and
backwards of that configuration, summed over every stage, take `a / mfu + c` ms per
microbatch; the effective MFU is the one at which that sum is the measured one. It folds into
one figure all that the model leaves out (kernel efficiency, the runtime's own time between
ops), so it is exact for the measured configuration and an estimate for others.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.errors import ConfigError
from pipesim.problem.build import build_network, build_workload
from pipesim.problem.ops import Kind
from pipesim.settings.declarations import Settings


@dataclass(frozen=True)
class EffectiveMfu:
    """The fitted MFU, and the sums it came from (ms per microbatch, over every stage)."""

    mfu: float
    measured_ms: float
    at_peak_ms: float
    """The model's sum at an MFU of 1."""
    fixed_ms: float
    """The part of it that no MFU changes (collectives inside ops)."""
    link_ms: float
    """How long the model's activation holds the link from rank 0 to rank 1 (its bytes over
    the bandwidth): the part of a measured message's time the model derives itself, which a
    config with the model must not count again in its latency."""


def effective_mfu(measured: Settings, stages: int, model: Settings) -> EffectiveMfu:
    """The MFU at which `model`'s settings (model, GPU, shape) give the measured forwards and
    backwards: `measured` holds them per device (`Calibration.settings`), over `stages`
    stages in all.

    Raises:
        ConfigError: `model` names no model or GPU, or gives costs in ms; the measured ops
            are faster than the model allows at the GPU's peak.
    """
    if model.model is None or model.gpu is None:
        raise ConfigError(
            "--config: the measured run's model and gpu are needed to fit an MFU "
            "(model = ..., gpu = ..., and its micro_batch_size, seq_length, ...)"
        )
    given = [name for name in ("forward", "backward", "weight") if getattr(model, name)]
    if given or model.total_forward is not None or model.total_backward is not None:
        raise ConfigError(
            f"--config gives {', '.join(given) or 'total'} costs in ms: the MFU is fitted to "
            "the model's own costs, so the config should hold the model and its shape only"
        )
    assert measured.forward is not None and measured.backward is not None
    total = sum(measured.forward) + sum(measured.backward)
    sums = []
    for mfu in (1.0, 0.5):
        shaped = model.replace(mfu=mfu, stages=measured.stages, chunks=None, policy=None)
        workload = build_workload(shaped, stages)
        assert workload is not None
        sums.append(sum(work.forward + work.backward for work in workload.stages))
    link = (
        build_network(shaped, workload).occupancy(0, 1, Kind.F)
        if len(measured.forward) > 1
        else 0.0
    )
    # a / mfu + c at mfu 1 and 1/2
    scaled = sums[1] - sums[0]
    fixed = sums[0] - scaled
    if total <= sums[0]:
        raise ConfigError(
            f"the measured forwards and backwards take {total:.4g} ms per microbatch over the "
            f"{stages} stages; {model.model.name} on {model.gpu.name} takes {sums[0]:.4g} ms "
            "at the GPU's peak: is --config the measured run's model, GPU and shape?"
        )
    return EffectiveMfu(scaled / (total - fixed), total, sums[0], fixed, link)
