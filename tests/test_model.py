"""The SimPy model against timelines computed by hand: uneven stages, latency, link queueing."""

from __future__ import annotations

import pytest

from pipesim import Kind, assert_valid
from pipesim.analysis.idle_causes import IdleCause
from tests.conftest import simulate_settings


def _times(report: object, device: int) -> list[tuple[str, float, float]]:
    ops = report.trace.ops_by_device()[device]  # type: ignore[attr-defined]
    return [(f"{r.kind}{r.microbatch}", r.start, r.end) for r in ops]


def _nonzero(causes: dict[IdleCause, float]) -> dict[str, float]:
    return {cause.value: ms for cause, ms in causes.items() if ms}


def test_uneven_stages_with_latency_by_hand() -> None:
    # 1F1B, p=2, m=2: device 0 runs F0 F1 B0 B1, device 1 runs F0 B0 F1 B1. Messages take 0.5 ms
    # and queue on their link: F1's activation is handed over at 2.0 and arrives at 2.5.
    report = simulate_settings(
        policy="1f1b", stages=2, microbatches=2, forward=[1, 2], backward=[2, 3], comm_latency=0.5
    )
    assert _times(report, 0) == [("F0", 0, 1), ("F1", 1, 2), ("B0", 7, 9), ("B1", 12, 14)]
    assert _times(report, 1) == [
        ("F0", 1.5, 3.5),
        ("B0", 3.5, 6.5),
        ("F1", 6.5, 8.5),
        ("B1", 8.5, 11.5),
    ]
    dev0, dev1 = report.summary.devices
    assert report.summary.makespan == 14
    assert (dev0.busy, dev0.idle, dev1.busy, dev1.idle) == (6, 8, 10, 4)
    # Device 0 waits 2..7 for B0's gradient (computed until 6.5, then 0.5 ms in flight) and
    # 9..12 for B1's (computed until 11.5, in flight until 12).
    assert _nonzero(dev0.idle_by_cause) == {"wait_gradient": 7, "wait_gradient_in_flight": 1}
    assert _nonzero(dev1.idle_by_cause) == {"warmup": 1.5, "drain": 2.5}
    assert (dev0.peak_activations, dev1.peak_activations) == (2, 1)
    assert_valid(report.trace)


def test_latency_delays_a_message_without_holding_its_link() -> None:
    # The same step with 1 ms of latency and no size: nothing queues. Activations arrive at
    # 1.1..1.4, device 1 runs F 1.1-1.5 and B 1.5-2.3, the gradients arrive at 2.7..3.3 and
    # device 0's last backward ends at 3.5 (8.6 if latency held the link).
    report = simulate_settings(
        policy="gpipe", stages=2, microbatches=4, forward=0.1, backward=0.2, comm_latency=1.0
    )
    arrivals = [t.end for t in report.trace.transfers if t.kind is Kind.F]
    assert arrivals == pytest.approx([1.1, 1.2, 1.3, 1.4])
    assert all(t.start == t.queued for t in report.trace.transfers)
    assert report.summary.makespan == pytest.approx(3.5)
    assert all(link.busy == 0 and link.queued == 0 for link in report.summary.links)
    assert_valid(report.trace)


def test_the_issue_example_latency_is_delay() -> None:
    # GPipe p=2 m=2, F 0.5, B 1, 2 ms of latency: F0 0-0.5 and F1 0.5-1 on device 0, arrive
    # at 2.5 and 3; device 1 runs F 2.5-3.5 and B 3.5-5.5, gradients arrive at 6.5 and 7.5,
    # device 0's B1 ends at 8.5 (11 when latency held the link).
    report = simulate_settings(
        policy="gpipe", stages=2, microbatches=2, forward=0.5, backward=1, comm_latency=2.0
    )
    assert report.summary.makespan == pytest.approx(8.5)


def test_latency_and_bandwidth_add_but_only_bandwidth_queues() -> None:
    # 1 ms of latency plus 1 MB at 1 GB/s: each message holds the link 1 ms and arrives 2 ms
    # after its start; the second activation, sent at 0.2 while the first holds the link until
    # 1.1, starts at 1.1 and arrives at 3.1.
    report = simulate_settings(
        policy="gpipe",
        stages=2,
        microbatches=2,
        forward=0.1,
        backward=0.2,
        comm_latency=1.0,
        activation_size=1e6,
        bandwidth=1e9,
    )
    first, second = (t for t in report.trace.transfers if t.kind is Kind.F)
    assert (first.queued, first.start, first.end) == pytest.approx((0.1, 0.1, 2.1))
    assert (second.queued, second.start, second.end) == pytest.approx((0.2, 1.1, 3.1))
    assert_valid(report.trace)


def test_single_device_pipeline_has_no_bubble_and_no_messages() -> None:
    report = simulate_settings(policy="1f1b", stages=1, microbatches=5, comm_latency=3.0)
    assert report.summary.makespan == pytest.approx(15.0)
    assert report.summary.bubble_fraction == 0
    assert report.trace.transfers == []
