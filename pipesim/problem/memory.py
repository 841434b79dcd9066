"""The bytes each stage keeps on its device: static (parameters, gradients, optimizer state)
and per microbatch in flight (activations), with the device's limit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageMemory:
    """Bytes per stage; a device holds the sum over the stages placed on it."""

    static: tuple[float, ...]
    activation: tuple[float, ...]
    """Bytes one microbatch keeps from the start of the stage's forward to the end of its
    backward (its W, when split)."""
    weight_activation: tuple[float, ...]
    """Of `activation`, what a split backward keeps after B until W (0 when not split)."""
    limit: float | None
    """Bytes a device has for the model (its memory less the reserve); None: no limit."""
    reserve: float = 0.0
    """Bytes of the device's memory set aside (CUDA context, communication buffers,
    fragmentation), already taken from `limit`."""
