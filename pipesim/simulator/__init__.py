"""The SimPy model of a pipeline: one process per device, channels between them."""

from pipesim.simulator.model import Simulation, simulate

__all__ = ["Simulation", "simulate"]
