"""pipesim's 1F1B and interleaved 1F1B against Megatron-LM's own scheduling arithmetic, live:
Megatron-Core's `get_schedule_table` (which model chunk and microbatch each virtual microbatch
is) and `get_pp_rank_microbatches` (how many warm-up forwards each rank runs), composed as
its pipelined loops run them (the warm-up forwards; then forward k + warm-up, backward k; then
the remaining backwards, a backward taking the chunks in reverse), for every shape Megatron
accepts in a grid: p = 2..6, v = 2..4, m up to 4p, and every microbatch group size N
(`microbatch_group_size_per_vp_stage`, `--microbatch-group-size`) from p to m whose last
group is empty or at least p, as Megatron requires."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import pytest

from pipesim import Kind, Op, Settings
from tests.conftest import need, op_orders

pytestmark = pytest.mark.slow  # imports torch and Megatron-Core


def _megatron() -> Any:
    with warnings.catch_warnings():  # "Transformer Engine and Apex are not installed"
        warnings.simplefilter("ignore")
        return need("megatron.core.pipeline_parallel.schedules")


def _megatron_orders(p: int, m: int, v: int | None, group: int) -> list[list[Op]]:
    """Each rank's ops in Megatron-LM's order (v None: without interleaving)."""
    schedules = _megatron()
    chunks = v or 1
    table = schedules.get_schedule_table(m, chunks, group)
    orders = []
    for rank in range(p):
        # what get_pp_rank_microbatches asks of the pipeline's process group
        communicator = SimpleNamespace(
            pp_group=SimpleNamespace(size=lambda: p, rank=lambda rank=rank: rank),
            virtual_pipeline_model_parallel_size=v,
        )
        total, _, warmup, remaining = schedules.get_pp_rank_microbatches(
            m, chunks, group, p2p_communicator=communicator
        )

        def forward(k: int, rank: int = rank) -> Op:
            microbatch, chunk = table[k]
            return Op(Kind.F, chunk * p + rank, microbatch)

        def backward(k: int, rank: int = rank) -> Op:
            microbatch, chunk = table[k]
            return Op(Kind.B, (chunks - 1 - chunk) * p + rank, microbatch)

        order = [forward(k) for k in range(warmup)]
        for k in range(remaining):
            order += [forward(k + warmup), backward(k)]
        order += [backward(k) for k in range(remaining, total)]
        orders.append(order)
    return orders


def test_interleaved_1f1b_runs_in_megatrons_order_for_every_group_size() -> None:
    compared = 0
    for p in range(2, 7):
        for v in (2, 3, 4):
            for m in sorted({p, p + 1, 2 * p, 2 * p + 1, 3 * p, 4 * p, 8, 12}):
                for group in range(p, m + 1):
                    if 0 < m % group < p:
                        continue  # Megatron refuses a last group smaller than p
                    settings = Settings(policy="interleaved", stages=p, microbatches=m,
                                        chunks=v, microbatch_group_size=group)  # fmt: skip
                    assert op_orders(settings) == _megatron_orders(p, m, v, group), (
                        p, v, m, group,
                    )  # fmt: skip
                    compared += 1
    assert compared >= 300


def test_1f1b_runs_in_megatrons_order() -> None:
    for p in range(2, 7):
        for m in range(1, 3 * p + 2):
            settings = Settings(policy="1f1b", stages=p, microbatches=m)
            assert op_orders(settings) == _megatron_orders(p, m, None, 1), (p, m)
