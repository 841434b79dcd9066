"""Invariants of every policy over random pipelines, uneven costs and latencies."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipesim import Settings, check_trace, registered_policies, run

POLICIES = [policy.name for policy in registered_policies()]
cost = st.floats(0.0, 4.0, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def problems(draw: st.DrawFn) -> Settings:
    p = draw(st.integers(1, 6))
    return Settings(
        policy=draw(st.sampled_from(POLICIES)),
        stages=p,
        microbatches=draw(st.integers(1, 10)),
        forward=tuple(draw(st.lists(cost, min_size=p, max_size=p))),
        backward=tuple(draw(st.lists(cost, min_size=p, max_size=p))),
        comm_latency=draw(st.sampled_from([0.0, 0.05, 0.5, 2.0])),
    )


@given(problems())
def test_every_policy_yields_a_valid_timeline(settings: Settings) -> None:
    report = run(settings)
    assert check_trace(report.trace) == []


@given(problems())
def test_makespan_is_at_least_the_busiest_device_and_the_critical_path(settings: Settings) -> None:
    report = run(settings)
    makespan = report.summary.makespan
    eps = 1e-9 * max(1.0, makespan)
    assert makespan >= max(s.busy for s in report.summary.devices) - eps
    # One microbatch must go through every forward and back through every backward, crossing
    # each of the p-1 links twice.
    p = settings.stages
    critical = (
        sum(report.trace.problem.costs.forward)
        + sum(report.trace.problem.costs.backward)
        + 2 * (p - 1) * settings.comm_latency
    )
    assert makespan >= critical - eps


@given(problems())
def test_idle_causes_add_up_and_bubbles_are_fractions(settings: Settings) -> None:
    summary = run(settings).summary
    for stats in summary.devices:
        assert abs(sum(stats.idle_by_cause.values()) - stats.idle) <= 1e-9 * max(
            1, summary.makespan
        )
        assert -1e-12 <= stats.bubble_fraction <= 1 + 1e-12
    assert 0 <= summary.bubble_fraction <= 1 + 1e-12
