"""What a collective costs, in the alpha-beta model with NCCL's ring algorithm.

A ring over n ranks moves each rank's data in n-1 steps (reduce-scatter, all-gather) or 2(n-1)
(all-reduce, a reduce-scatter then an all-gather), each a latency and a 1/n share of the bytes
over the slowest link of the ring; nccl-tests' performance notes give the same factors as its
"bus bandwidth" (busbw = algbw * 2(n-1)/n for all-reduce, (n-1)/n for the others):

    all-reduce      2(n-1) * latency + 2(n-1)/n * bytes / bandwidth
    reduce-scatter   (n-1) * latency +  (n-1)/n * bytes / bandwidth
    all-gather       (n-1) * latency +  (n-1)/n * bytes / bandwidth

`bytes` is the whole buffer (each rank's input to an all-reduce, the gathered output of an
all-gather). A group that fits in a node runs on NVLink; one that spans nodes is bound by each
GPU's network port (NCCL's rings cross nodes once per node, but every rank's share passes
through a network link).
"""

from __future__ import annotations

from pipesim.settings.hardware import Gpu


def ring_link(gpu: Gpu, span: int) -> tuple[float, float]:
    """(latency ms, bandwidth bytes/s) of a ring whose ranks span `span` consecutive GPUs."""
    if span <= gpu.gpus_per_node:
        return gpu.nvlink_latency, gpu.nvlink_bandwidth
    return gpu.network_latency, gpu.network_bandwidth


def all_reduce(size: float, ranks: int, latency: float, bandwidth: float) -> float:
    """Milliseconds of a ring all-reduce of `size` bytes over `ranks`."""
    if ranks <= 1 or size <= 0:
        return 0.0
    steps = 2 * (ranks - 1)
    return steps * latency + 1000.0 * steps / ranks * size / bandwidth


def reduce_scatter(size: float, ranks: int, latency: float, bandwidth: float) -> float:
    """Milliseconds of a ring reduce-scatter of `size` bytes (each rank's input) over `ranks`."""
    if ranks <= 1 or size <= 0:
        return 0.0
    steps = ranks - 1
    return steps * latency + 1000.0 * steps / ranks * size / bandwidth


def all_gather(size: float, ranks: int, latency: float, bandwidth: float) -> float:
    """Milliseconds of a ring all-gather whose gathered result is `size` bytes."""
    return reduce_scatter(size, ranks, latency, bandwidth)
