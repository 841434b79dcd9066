"""The SimPy model of a pipeline: one process per device, channels between them.

`Simulation` and `simulate` load SimPy when first used (PEP 562): the trace records and the
compiled dependency rules in this package do not need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipesim.simulator.model import Simulation, simulate


def __getattr__(name: str) -> Any:
    if name not in ("Simulation", "simulate"):
        raise AttributeError(f"module 'pipesim.simulator' has no attribute {name!r}")
    from pipesim.simulator import model

    value = getattr(model, name)
    globals()[name] = value
    return value


__all__ = ["Simulation", "simulate"]
