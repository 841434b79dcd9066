"""The timeline checker accepts simulated timelines and rejects broken ones."""

from __future__ import annotations

import dataclasses

import pytest

from pipesim import Kind, OpRecord, Trace, assert_valid, check_trace
from tests.conftest import simulate_settings


def _trace(**kwargs: object) -> Trace:
    defaults: dict[str, object] = {"policy": "1f1b", "stages": 3, "microbatches": 4}
    return simulate_settings(**{**defaults, **kwargs}).trace


def _with_ops(trace: Trace, ops: list[OpRecord]) -> Trace:
    return dataclasses.replace(trace, ops=ops)


def _find(trace: Trace, kind: Kind, stage: int, mb: int) -> int:
    return next(
        i for i, r in enumerate(trace.ops) if (r.kind, r.stage, r.microbatch) == (kind, stage, mb)
    )


def test_simulated_timeline_is_valid() -> None:
    assert check_trace(_trace(comm_latency=0.3, forward=[1, 2, 1])) == []


def test_rejects_missing_op() -> None:
    trace = _trace()
    ops = list(trace.ops)
    del ops[_find(trace, Kind.B, 1, 2)]
    assert "B2@s1 never runs" in check_trace(_with_ops(trace, ops))


def test_rejects_duplicated_op() -> None:
    trace = _trace()
    ops = [*trace.ops, trace.ops[_find(trace, Kind.F, 0, 0)]]
    problems = check_trace(_with_ops(trace, ops))
    assert "F0@s0 runs 2 times" in problems


def test_rejects_overlapping_ops_on_one_device() -> None:
    trace = _trace()
    ops = list(trace.ops)
    i = _find(trace, Kind.F, 0, 1)
    ops[i] = ops[i]._replace(start=0.5, end=1.5)  # overlaps F0 on device 0 (0..1)
    assert any(
        "device 0" in p and "before F0@s0 ends" in p for p in check_trace(_with_ops(trace, ops))
    )


def test_rejects_op_that_starts_before_its_input_arrives() -> None:
    trace = _trace(comm_latency=0.5)
    ops = list(trace.ops)
    i = _find(trace, Kind.F, 1, 0)  # F0 on stage 1 may start at 1.5 at the earliest
    ops[i] = ops[i]._replace(start=1.2, end=2.2)
    problems = check_trace(_with_ops(trace, ops))
    assert any("F0@s1 starts at 1.2 before its input from F0@s0" in p for p in problems)


def test_rejects_backward_before_its_own_forward() -> None:
    trace = _trace(stages=1, microbatches=1)
    f, b = trace.ops
    swapped = [b._replace(start=0.0, end=2.0), f._replace(start=2.0, end=3.0)]
    assert any("B0@s0 starts at 0" in p for p in check_trace(_with_ops(trace, swapped)))


def test_rejects_wrong_device_and_wrong_duration() -> None:
    trace = _trace()
    ops = list(trace.ops)
    i, j = _find(trace, Kind.F, 2, 3), _find(trace, Kind.B, 0, 0)
    ops[i] = ops[i]._replace(device=0)
    ops[j] = ops[j]._replace(end=ops[j].end + 1)
    problems = check_trace(_with_ops(trace, ops))
    assert "F3@s2 runs on device 0, not on its stage's device" in problems
    assert any(p.startswith("B0@s0 lasts 3 ms, costs 2") for p in problems)


def test_rejects_transfer_faster_than_the_link() -> None:
    trace = _trace(comm_latency=1.0)
    transfers = list(trace.transfers)
    transfers[0] = transfers[0]._replace(end=transfers[0].start + 0.25)
    problems = check_trace(dataclasses.replace(trace, transfers=transfers))
    assert any("takes 0.25 ms, expected 1" in p for p in problems)


def test_assert_valid_raises_with_every_problem() -> None:
    trace = _trace()
    with pytest.raises(AssertionError, match="never runs"):
        assert_valid(_with_ops(trace, trace.ops[1:]))
