"""A schedule of your own, loaded by pipesim without touching its code.

Eager 1F1B runs one more warm-up forward than 1F1B on every device but the last. On free links
that buys nothing; when messages take time, each device has a forward to run while its next
gradient is still on the link, at the cost of one more activation held.

    pipesim run --policy examples/custom_policy.py:Eager1F1B -p 4 -m 8 --comm-latency 0.5
    pipesim compare --policies 1f1b,examples/custom_policy.py:Eager1F1B --comm-latency 0.5

(or `--policy custom_policy:Eager1F1B` with examples/ on PYTHONPATH). A policy subclasses
`pipesim.StaticPolicy` and returns each device's ops in order, or `pipesim.Policy` and returns a
`DeviceProgram` per device that picks the next op as the simulation runs (it may ask
`view.inputs_ready(op)`). pipesim checks the rest: every op run once on the device that holds
its stage, inputs before use, and a diagnosis instead of a hang if the schedule deadlocks.
"""

from __future__ import annotations

from pipesim import Kind, Op, StaticPolicy
from pipesim.problem.pipeline import Pipeline


class Eager1F1B(StaticPolicy):
    name = "eager-1f1b"
    summary = "1F1B with one extra warm-up forward, to hide message latency"

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        p, m = pipeline.devices, pipeline.microbatches
        orders = []
        for device, (stage,) in enumerate(pipeline.stages_by_device):
            warmup = min(p - device if device < p - 1 else 0, m)
            order = [Op(Kind.F, stage, mb) for mb in range(warmup)]
            for k in range(m - warmup):
                order += [Op(Kind.F, stage, warmup + k), Op(Kind.B, stage, k)]
            order += [Op(Kind.B, stage, mb) for mb in range(m - warmup, m)]
            orders.append(order)
        return orders
