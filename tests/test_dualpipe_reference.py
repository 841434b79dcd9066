"""pipesim's bidirectional DualPipe against its authors' reference, live: `DualPipe.step` of
deepseek-ai/DualPipe (the `dualpipe` package, 1.0.0), run for each rank on a stand-in that
records the chunks it is told to compute instead of computing them, gives the order pipesim
simulates, fused steps and deferred weight gradients included, for p = 2, 4, 6, 8 and every
even m from 2p (the least the reference takes) to 4p."""

from __future__ import annotations

from typing import Any

import pytest

from pipesim import Kind, Op, Settings, simulate_step
from pipesim.problem.ops import Fused, Step
from tests.conftest import need

pytestmark = pytest.mark.slow  # imports torch and the reference

Chunk = tuple[Kind, int, int]
"""(kind, direction: 0 from the first rank, 1 from the last, index in that direction)."""


class _Rank:
    """What `DualPipe.step` reads of its rank and calls to compute, send and receive: the
    chunks it computes are recorded, in order, and nothing else is done."""

    def __init__(self, p: int, rank: int, torch: Any) -> None:
        self.num_ranks, self.rank, self.batch_dim = p, rank, 0
        self.is_first_rank, self.is_last_rank = rank == 0, rank == p - 1
        self.is_in_second_half = rank >= p // 2
        self.is_middle_rank = rank in (p // 2 - 1, p // 2)
        self._torch = torch
        self.steps: list[list[Chunk]] = []
        self._counts = {Kind.F: [0, 0], Kind.B: [0, 0]}
        self._deferred: list[Chunk] = []

    def _reset_states(self) -> None:
        self.loss_chunks = [self._torch.zeros(())]  # step() stacks the losses at its end

    def _chunk(self, kind: Kind, phase: int) -> Chunk:
        # The reference's phase 0 is the direction that enters at this rank's end of the
        # pipeline: on the second half of the ranks, the reverse one.
        direction = phase ^ self.is_in_second_half
        index = self._counts[kind][direction]
        self._counts[kind][direction] += 1
        return kind, direction, index

    def _backward(self, phase: int, deferred: bool) -> list[Chunk]:
        kind, direction, index = self._chunk(Kind.B, phase)
        weight = (Kind.W, direction, index)
        if deferred:  # zero bubble: W is queued, and runs when a weight chunk is asked for
            self._deferred.append(weight)
            return [(kind, direction, index)]
        return [(kind, direction, index), weight]

    def _forward_chunk(self, phase: int, recv: bool = True, send: bool = True) -> None:
        self.steps.append([self._chunk(Kind.F, phase)])

    def _backward_chunk(
        self, phase: int, enable_zb: bool = False, recv: bool = True, send: bool = True
    ) -> None:
        self.steps.append(self._backward(phase, enable_zb))

    def _forward_backward_chunk(self, phase0: int, phase1: int, recv0: bool = True) -> None:
        self.steps.append([self._chunk(Kind.F, phase0), *self._backward(phase1, False)])

    def _weight_chunk(self) -> None:
        self.steps.append([self._deferred.pop(0)])  # the reference's store is FIFO

    def _recv_forward(self, phase: int) -> None:
        pass

    def _send_forward(self, phase: int) -> None:
        pass

    def _send_backward(self, phase: int) -> None:
        pass

    def _commit_and_wait_comm(self) -> None:
        pass


def _reference_orders(p: int, m: int) -> list[list[Step]]:
    """Each rank's steps as the reference's `step` runs them, in pipesim's numbering: the
    direction from the first rank is stages 0..p-1 with microbatches 0..m/2-1, the other
    stages p..2p-1 (stage 2p-1-r on rank r) with microbatches m/2..m-1."""
    torch = need("torch")
    reference = need("dualpipe")
    reference.set_p2p_tensor_shapes([(1,)])
    reference.set_p2p_tensor_dtype(torch.float32)
    orders: list[list[Step]] = []
    for rank in range(p):
        recorder = _Rank(p, rank, torch)
        reference.DualPipe.step(recorder, num_chunks=m, criterion=lambda *_: None)

        def op(chunk: Chunk, rank: int = rank) -> Op:
            kind, direction, index = chunk
            if direction == 0:
                return Op(kind, rank, index)
            return Op(kind, 2 * p - 1 - rank, m // 2 + index)

        orders.append(
            [op(s[0]) if len(s) == 1 else Fused(tuple(map(op, s))) for s in recorder.steps]
        )
    return orders


def test_dualpipe_runs_in_the_order_of_its_authors_reference() -> None:
    compared = 0
    for p in (2, 4, 6, 8):
        for m in range(2 * p, 4 * p + 1, 2):
            mine = simulate_step(Settings(policy="dualpipe", stages=p, microbatches=m))
            ours = [list(order) for order in mine.trace.steps_by_device()]
            assert ours == _reference_orders(p, m), (p, m)
            compared += 1
    assert compared == 24
