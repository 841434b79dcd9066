"""1F1B (PipeDream-Flush), as Megatron-LM runs it without interleaving.

Source: Narayanan et al., "Memory-Efficient Pipeline-Parallel DNN Training" (PipeDream-2BW /
PipeDream-Flush), ICML 2021, section 3; Megatron-LM's
`forward_backward_pipelining_without_interleaving`. Device i runs min(p-1-i, m) warm-up
forwards, then alternates one forward and one backward, then drains the remaining backwards.

Closed form (equal stages, free messages): the same bubble as GPipe, (p-1)/(m+p-1), but device i
holds at most min(p-i, m) activations instead of m.

PyTorch's `Schedule1F1B` runs this order (`_step_microbatches`). Its `pipeline_order` (2.13),
which its schedule visualizer draws, differs on the last rank only: it lists that rank's
forwards as F1..Fm, without F0 and with a microbatch that does not exist, since its generator
adds one to the forward counter before the first forward of a rank without warm-up forwards.
`tests/test_pytorch_orders.py` holds the difference to exactly that shift.
"""

from __future__ import annotations

from pipesim.problem.ops import Op
from pipesim.problem.pipeline import Pipeline, Problem
from pipesim.schedules.base import ClosedForm, StaticPolicy
from pipesim.schedules.looped_1f1b import looped_1f1b_orders


class OneFOneB(StaticPolicy):
    name = "1f1b"
    summary = "PipeDream-Flush: warm-up forwards, then one forward / one backward; peak p-i"
    aliases = ("pipedream-flush", "Schedule1F1B")

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return looped_1f1b_orders(pipeline, warmup_factor=1, zero_bubble=False)

    def closed_form(self, problem: Problem) -> ClosedForm:
        p, m = problem.pipeline.devices, problem.pipeline.microbatches
        return ClosedForm.evaluate(problem, "(p-1)/(m+p-1)", (p - 1) / (m + p - 1))
