"""Communication: transfer times, link queueing, nodes, blocking sends, and idle-time causes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipesim import (
    ConfigError,
    Kind,
    Report,
    Settings,
    build_problem,
    check_trace,
    simulate,
    simulate_step,
    summarize,
)
from pipesim.analysis.idle_causes import IdleCause
from tests.conftest import B, F, FixedOrders, simulate_settings


def test_transfer_is_latency_plus_size_over_bandwidth() -> None:
    # 64 MB at 25 GB/s is 2.56 ms, plus 0.1 ms latency; gradients of 32 MB take 1.38 ms.
    report = simulate_settings(
        policy="gpipe",
        stages=2,
        microbatches=1,
        forward=1,
        backward=2,
        comm_latency=0.1,
        activation_size=64e6,
        gradient_size=32e6,
        bandwidth=25e9,
    )
    activation, gradient = report.trace.transfers
    assert (activation.start, activation.end) == pytest.approx((1.0, 3.66))
    assert (gradient.start, gradient.end) == pytest.approx((6.66, 8.04))
    assert report.summary.makespan == pytest.approx(10.04)
    assert check_trace(report.trace) == []


def _queueing_example() -> Report:
    """GPipe, p=2, m=4, F=0.1, B=0.2, 1 MB messages at 1 GB/s: 1 ms on the link each."""
    return simulate_settings(
        policy="gpipe",
        stages=2,
        microbatches=4,
        forward=0.1,
        backward=0.2,
        activation_size=1e6,
        bandwidth=1e9,
    )


def test_link_carries_one_message_at_a_time() -> None:
    # GPipe, p=2, m=4, F=0.1, B=0.2, 1 MB at 1 GB/s = 1 ms per message: the activations leave
    # at 0.1, 0.2, 0.3, 0.4 but arrive 1 ms apart, and so do the gradients.
    report = _queueing_example()
    assert report.summary.makespan == pytest.approx(8.6)
    gradients = [t for t in report.trace.transfers if t.kind is Kind.B]
    assert [t.end for t in gradients] == pytest.approx([5.4, 6.4, 7.4, 8.4])
    assert report.summary.links[0].queued == pytest.approx(0.9 + 1.8 + 2.7)


def test_slow_inter_node_link_slows_exactly_the_hops_between_nodes() -> None:
    report = simulate_settings(
        policy="1f1b",
        stages=6,
        microbatches=6,
        activation_size=10e6,
        bandwidth=100e9,
        devices_per_node=2,
        inter_node_bandwidth=1e9,
        inter_node_latency=0.5,
    )
    for transfer in report.trace.transfers:
        crosses = transfer.src // 2 != transfer.dst // 2
        expected = 0.5 + 10.0 if crosses else 0.1
        assert transfer.end - transfer.start == pytest.approx(expected)
    crossing = {(link.src, link.dst) for link in report.summary.links if link.crosses_nodes}
    assert crossing == {(1, 2), (2, 1), (3, 4), (4, 3)}


def test_idle_wait_split_into_computing_queued_and_in_flight() -> None:
    # Device 1 runs F2 before F1; each activation holds the link 2 ms. F2's activation is
    # produced at 3, waits for the link until 5 (F1 is on it), arrives at 7. Device 1, free at
    # 4, waits 1 ms on the queue, 2 in flight.
    policy = FixedOrders(
        [
            [F(0, 0), F(0, 1), F(0, 2), B(0, 0), B(0, 1), B(0, 2)],
            [F(1, 0), F(1, 2), F(1, 1), B(1, 0), B(1, 1), B(1, 2)],
        ]
    )
    settings = Settings(
        stages=2, microbatches=3, backward=(1.0,), activation_size=2e6, bandwidth=1e9
    )
    summary = summarize(simulate(build_problem(settings, policy), policy))
    causes = summary.devices[1].idle_by_cause
    assert causes[IdleCause.WARMUP] == 3
    assert causes[IdleCause.WAIT_ACTIVATION_QUEUED] == 1
    assert causes[IdleCause.WAIT_ACTIVATION_IN_FLIGHT] == 2


@st.composite
def networks(draw: st.DrawFn) -> Settings:
    p = draw(st.integers(2, 6))
    size = draw(st.sampled_from([0.0, 1e6, 50e6]))
    gradient = draw(st.sampled_from([None, 2e6]))
    sized = size > 0 or gradient is not None
    return Settings(
        policy=draw(st.sampled_from(["gpipe", "1f1b", "interleaved", "zb-h1", "zb-v"])),
        stages=p,
        microbatches=draw(st.integers(1, 3)) * p,
        forward=tuple(draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=p, max_size=p))),
        comm_latency=draw(st.sampled_from([0.0, 0.1, 1.0])),
        activation_size=size,
        gradient_size=gradient,
        bandwidth=10e9 if sized else None,  # a bandwidth for size-less messages is refused
        devices_per_node=draw(st.sampled_from([None, 1, 2, 3])),
    )


@given(networks())
def test_blocking_sends_are_never_faster_than_overlapped_ones(settings: Settings) -> None:
    overlapped = simulate_step(settings)
    blocking = simulate_step(settings.replace(blocking_comm=True))
    assert blocking.summary.makespan >= overlapped.summary.makespan - 1e-9
    assert check_trace(blocking.trace) == []


@given(networks(), st.booleans())
def test_idle_causes_add_up_with_links_and_blocking(settings: Settings, blocking: bool) -> None:
    report = simulate_step(settings.replace(blocking_comm=blocking))
    assert check_trace(report.trace) == []
    for stats in report.summary.devices:
        assert sum(stats.idle_by_cause.values()) == pytest.approx(stats.idle, abs=1e-9)
        assert min(stats.idle_by_cause.values()) >= -1e-9
        if not blocking:
            assert stats.idle_by_cause[IdleCause.BLOCKING_SEND] == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"activation_size": 1e6}, "message sizes are given but no bandwidth"),
        (
            {"activation_size": 1e6, "bandwidth": 0.0},
            "bandwidth is 0 with messages of non-zero size",
        ),
        ({"devices_per_node": 0}, "devices_per_node must be at least 1"),
        ({"inter_node_bandwidth": 1e9}, "inter_node_bandwidth given without devices_per_node"),
        ({"comm_latency": -1.0}, "comm_latency must be a finite number >= 0"),
        (
            {"bandwidth": float("nan")},
            "bandwidth must be 0 or between 1 and 1e.18 bytes per second",
        ),
    ],
)
def test_bad_network_settings(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate_step(Settings().replace(**changes))


@given(networks(), st.booleans())
def test_critical_path_adds_up_to_the_makespan(settings: Settings, blocking: bool) -> None:
    report = simulate_step(settings.replace(blocking_comm=blocking))
    summary = report.summary
    critical = summary.path
    assert critical.waiting == pytest.approx(0.0, abs=1e-9)
    assert critical.compute + critical.links == pytest.approx(summary.makespan)
    if report.trace.problem.network.free:
        assert critical.links == 0


def test_critical_path_of_the_queueing_example() -> None:
    # 8.6 ms: 1.5 ms of compute (F0 on device 0, four F and four B on device 1, B3 on device 0),
    # 2 ms in flight (one activation, one gradient) and 5.1 ms queued behind other messages.
    summary = _queueing_example().summary
    assert summary.path.compute == pytest.approx(1.5)
    assert summary.path.in_flight == pytest.approx(2.0)
    assert summary.path.queued == pytest.approx(5.1)
