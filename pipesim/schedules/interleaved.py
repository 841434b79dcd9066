"""Interleaved 1F1B and its zero-bubble variant on looped placements.

Interleaved 1F1B. Source: Narayanan et al., "Efficient Large-Scale Language Model Training on
GPU Clusters Using Megatron-LM", SC'21, section 2.2.2 (Megatron-LM's virtual pipeline; PyTorch's
`ScheduleInterleaved1F1B`). Each of p devices holds v chunks placed round-robin (device d holds
stages d, d+p, ...), so a microbatch crosses every device v times. Device d runs
(p-d-1)*2 + (v-1)*N warm-up forwards, microbatches taken in groups of N through each chunk in
turn (Megatron-LM's microbatch_group_size_per_vp_stage, `--microbatch-group-size`; N = p by
default). Megatron-LM refuses N < p and a last group smaller than p. pipesim runs both and shows
why: with N < p and Megatron's warm-up count the schedule deadlocks (device 0 waits for the
last device's activation while the last device waits for device 0's gradient: exit 1, with
the cycle); a short last group runs, with a larger bubble (p=4, m=8, N=5: 29.5 ms against
28.5 ms at N=4). For every N Megatron-LM accepts, the order is Megatron-Core's own
(`tests/test_megatron_orders.py`), and for N = p PyTorch's (`tests/test_pytorch_orders.py`).
Closed form (equal stages, free messages, m a multiple of p): bubble time per device
(p-1)(F+B)/v, fraction (p-1)/(v*m + p-1). Memory: device d holds at most
((v-1)p + 2(p-1-d) + 1)/v microbatches' worth of activations (chunks count 1/v; its warm-up
forwards and one more): 5.5 on device 0 for p=4, v=2, against 1F1B's 4.

Interleaved zero bubble (ZB-1P on looped chunks). Source: Qi et al., "Zero Bubble Pipeline
Parallelism", ICLR 2024, section 3; PyTorch's `ScheduleInterleavedZeroBubble`. The same
placement with a split backward, (v-1)*p + (p-1-d) warm-up forwards, and W passes lagging d
steps behind their B so that they fill the drain.
"""

from __future__ import annotations

from pipesim.problem.ops import Op
from pipesim.problem.pipeline import Pipeline, Problem
from pipesim.schedules.base import ClosedForm, StaticPolicy, require
from pipesim.schedules.looped_1f1b import looped_1f1b_orders, microbatches_per_round


class Interleaved1F1B(StaticPolicy):
    name = "interleaved"
    summary = "interleaved 1F1B (Megatron virtual pipeline): v chunks per device, bubble / v"
    aliases = ("Interleaved1F1B", "ScheduleInterleaved1F1B", "virtual-pipeline")
    chunks: int | None = None
    takes_microbatch_group = True
    combines_pairs = True

    def check(self, devices: int, chunks: int, microbatches: int) -> None:
        super().check(devices, chunks, microbatches)
        microbatches_per_round(devices, chunks, microbatches)

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return looped_1f1b_orders(pipeline, warmup_factor=2, zero_bubble=False)

    def closed_form(self, problem: Problem) -> ClosedForm:
        p, v, m = (problem.pipeline.devices, problem.pipeline.chunks, problem.pipeline.microbatches)
        closed = ClosedForm.evaluate(problem, "(p-1)/(v*m+p-1)", (p - 1) / (v * m + p - 1))
        group = problem.pipeline.microbatch_group
        if group is not None and group != p:
            return closed.withheld_if(
                f"microbatches go through each chunk {group} at a time, not p"
            )
        return closed.withheld_if("m is not a multiple of p" if m % p else None)


class InterleavedZeroBubble(StaticPolicy):
    name = "interleaved-zb"
    summary = (
        "zero bubble on looped chunks (PyTorch's interleaved ZB-1P): split backward, W fills "
        "the drain"
    )
    aliases = ("InterleavedZeroBubble", "ScheduleInterleavedZeroBubble")
    chunks: int | None = None
    split_backward = True
    takes_microbatch_group = True

    def check(self, devices: int, chunks: int, microbatches: int) -> None:
        super().check(devices, chunks, microbatches)
        microbatches_per_round(devices, chunks, microbatches)
        require(chunks >= 1, "interleaved-zb needs at least one chunk per device")

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return looped_1f1b_orders(pipeline, warmup_factor=1, zero_bubble=True)
