"""A schedule that can never finish is diagnosed, never hangs; a policy that misplaces an op is
rejected."""

from __future__ import annotations

import pytest

from pipesim import (
    Op,
    PolicyError,
    ScheduleStalled,
    Settings,
    build_problem,
    simulate,
)
from tests.conftest import B, F, FixedOrders


def _simulate(orders: list[list[Op]], microbatches: int = 2) -> None:
    policy = FixedOrders(orders)
    simulate(build_problem(Settings(stages=2, microbatches=microbatches), policy), policy)


def test_cross_device_deadlock_names_each_wait_and_the_cycle() -> None:
    # Device 0 waits for B0's gradient; device 1 first wants F1, whose activation device 0
    # would only send after that backward.
    with pytest.raises(ScheduleStalled) as caught:
        _simulate([[F(0, 0), B(0, 0), F(0, 1), B(0, 1)], [F(1, 1), F(1, 0), B(1, 0), B(1, 1)]])
    error = caught.value
    assert error.exit_code == 1
    assert error.waits == [
        "device 0 waits to run B0@s0, which needs the gradient of B0@s1 (device 1)",
        "device 1 waits to run F1@s1, which needs the activation of F1@s0 (device 0)",
    ]
    assert "cycle: device 0 -> device 1 -> device 0" in str(error)
    assert "stalled at 1 ms" in str(error)


def test_backward_before_its_own_forward_stalls() -> None:
    with pytest.raises(ScheduleStalled, match="device 1 waits to run B0@s1, which needs F0@s1"):
        _simulate([[F(0, 0), B(0, 0)], [B(1, 0), F(1, 0)]], microbatches=1)


def test_op_on_the_wrong_device_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="stage 1 lives on device 1"):
        _simulate([[F(1, 0)], []], microbatches=1)


def test_op_out_of_range_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="out of range"):
        _simulate([[F(0, 5)], []], microbatches=1)
