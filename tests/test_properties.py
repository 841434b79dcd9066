"""Invariants of every policy over random pipelines, chunks, uneven costs and latencies."""

from __future__ import annotations

import itertools
import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipesim import (
    PolicyError,
    Report,
    Settings,
    check_trace,
    get_policy,
    registered_policies,
    simulate_step,
)

POLICIES = [policy.name for policy in registered_policies()]
cost = st.floats(0.0, 4.0, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def problems(draw: st.DrawFn) -> Settings:
    policy = get_policy(draw(st.sampled_from(POLICIES)))
    p = draw(st.integers(1, 6))
    chunks = draw(st.integers(1, 3)) if policy.chunks is None else policy.chunks
    per_stage = chunks > 1 and draw(st.booleans())
    n = p * chunks if per_stage else p
    backward = draw(st.lists(cost, min_size=n, max_size=n))
    weight = [round(b * draw(st.floats(0, 1)), 3) for b in backward]
    return Settings(
        policy=policy.name,
        stages=p,
        microbatches=draw(st.integers(1, 12)),
        chunks=chunks if policy.chunks is None else None,
        forward=tuple(draw(st.lists(cost, min_size=n, max_size=n))),
        backward=tuple(backward),
        weight=tuple(weight),
        comm_latency=draw(st.sampled_from([0.0, 0.05, 0.5, 2.0])),
    )


def _run(settings: Settings) -> Report:
    try:
        return simulate_step(settings)
    except PolicyError:
        assume(False)
        raise


@settings(max_examples=300)
@given(problems())
def test_every_policy_yields_a_valid_timeline(settings: Settings) -> None:
    report = _run(settings)
    assert check_trace(report.trace) == []


@given(problems())
def test_makespan_is_at_least_the_busiest_device_and_the_critical_path(settings: Settings) -> None:
    report = _run(settings)
    makespan = report.summary.makespan
    eps = 1e-9 * max(1.0, makespan)
    assert makespan >= max(s.busy for s in report.summary.devices) - eps
    # One microbatch must go through every forward and come back through every backward
    # (input gradients only, when split), paying for each hop between two devices.
    # With several lines (DualPipe), a microbatch goes through one line: the first.
    problem = report.trace.problem
    line = problem.pipeline.line_length
    placement = problem.pipeline.placement[:line]
    hops = sum(1 for a, b in itertools.pairwise(placement) if a != b)
    costs = problem.costs
    backward = [
        b - w if problem.split_backward else b
        for b, w in zip(costs.backward[:line], costs.weight[:line], strict=True)
    ]
    critical = (
        sum(costs.forward[:line]) + sum(backward) + 2 * hops * problem.network.intra_node.latency
    )
    assert makespan >= critical - eps


@settings(max_examples=150)
@given(problems(), st.booleans())
def test_idle_causes_fast_path_equals_the_general_one(settings: Settings, blocking: bool) -> None:
    # Without blocking sends only the gaps between ops are looked up; the general walk, which
    # asks when each op freed its device, must give the same causes to the last bit.
    from pipesim.analysis.idle_causes import IdleAttribution
    from pipesim.analysis.readiness import Readiness

    report = _run(settings.replace(blocking_comm=blocking))
    readiness = Readiness(report.trace)
    general = IdleAttribution(readiness, gaps_only=False)
    fast = IdleAttribution(readiness, gaps_only=not blocking)
    for device, ops in enumerate(report.trace.ops_by_device()):
        expected = general.device(device, ops, report.summary.makespan)
        assert fast.device(device, ops, report.summary.makespan) == expected


@settings(max_examples=100)
@given(problems(), st.sampled_from([None, 5e6, 5e7]))
def test_idle_causes_inlined_for_plain_traces_equal_the_general_lookup(
    settings: Settings, size: float | None
) -> None:
    """Without fused steps or exchanges the gaps are attributed by an inlined loop; the
    general lookup (`last_input` through fused steps and pairs) must agree to the last bit,
    messages queued on slow links included."""
    from pipesim.analysis.idle_causes import IdleAttribution
    from pipesim.analysis.readiness import Readiness

    class General(Readiness):
        plain = False

    if size is not None:
        settings = settings.replace(activation_size=size, gradient_size=size, bandwidth=1e10)
    report = _run(settings)
    inlined = IdleAttribution(Readiness(report.trace))
    general = IdleAttribution(General(report.trace))
    for device, ops in enumerate(report.trace.ops_by_device()):
        expected = general.device(device, ops, report.summary.makespan)
        assert inlined.device(device, ops, report.summary.makespan) == expected


@settings(max_examples=60)
@given(problems(), st.sampled_from([None, 5e7]))
def test_the_pages_waits_walked_by_key_equal_the_general_lookup(
    settings: Settings, size: float | None
) -> None:
    """The HTML page's "waited for" (`Readiness.last_inputs`) walks a plain trace by op key; the
    general lookup through `Readiness.last_input` must give the same producer, message, time
    and link for every op."""
    from unittest import mock

    from pipesim.analysis.readiness import Readiness
    from pipesim.render import html_view
    from pipesim.render.numbers import TimeTexts

    if size is not None:
        settings = settings.replace(activation_size=size, gradient_size=size, bandwidth=1e10)
    trace = _run(settings).trace

    def rows() -> list[str]:
        at = TimeTexts(digits=6)
        ops = html_view._op_texts(trace.ops, trace.problem.pipeline.chunk_of_stage, at)
        return html_view._waited_rows(trace, ops, at)

    walked = rows()
    with mock.patch.object(Readiness, "plain", False):
        general = rows()
    assert walked == general


@given(problems())
def test_idle_causes_add_up_and_bubbles_are_fractions(settings: Settings) -> None:
    summary = _run(settings).summary
    for stats in summary.devices:
        assert abs(sum(stats.idle_by_cause.values()) - stats.idle) <= 1e-9 * max(
            1, summary.makespan
        )
        assert -1e-12 <= stats.bubble_fraction <= 1 + 1e-12
    assert -1e-12 <= summary.bubble_fraction <= 1 + 1e-12
    assert -1e-12 <= summary.span_bubble_fraction <= 1 + 1e-12
    assert summary.span <= summary.makespan + 1e-9


@settings(max_examples=80)
@given(problems())
def test_fast_writers_write_what_the_reference_rows_give(settings: Settings) -> None:
    # The JSON timeline and the trace file are formatted directly for speed; the dict rows
    # json.dumps would write are the reference, on any schedule, costs and latency.
    import io
    import json

    from pipesim.render import write_json
    from pipesim.render.json_report import timeline_rows
    from pipesim.render.perfetto import trace_events, write_chrome_trace

    report = _run(settings)
    out = io.StringIO()
    write_json(report, out)
    lines = out.getvalue().splitlines()
    first = 1 + next(i for i, line in enumerate(lines) if line.endswith('"timeline": ['))
    rows = [line.strip().rstrip(",") for line in lines[first : first + len(report.trace.ops)]]
    assert rows == [json.dumps(row, separators=(", ", ": ")) for row in timeline_rows(report)]
    trace = io.StringIO()
    write_chrome_trace(report, trace)
    events = [line.rstrip(",") for line in trace.getvalue().splitlines()[1:-1]]
    assert events == [json.dumps(e, separators=(",", ":")) for e in trace_events(report)]


@given(problems(), st.randoms(use_true_random=False))
def test_activation_timeline_in_run_order_equals_the_sorted_one(
    settings: Settings, shuffler: random.Random
) -> None:
    # The timeline is read in the order each device ran its ops, without a sort: it must be
    # the one sorting every change by time gives (and ops out of order fall back to it).
    from pipesim.analysis.memory import _sorted_timeline, activation_timeline

    report = _run(settings)
    split = report.trace.problem.split_backward
    for ops in report.trace.ops_by_device():
        expected = _sorted_timeline(ops, split)
        assert activation_timeline(ops, split) == expected
        shuffled = list(ops)
        shuffler.shuffle(shuffled)
        assert activation_timeline(shuffled, split) == expected


_EDGES = [0.0, -0.0, 1e-4, -1e-4, 9.99999999e-5, 1e-4 - 1e-19, 5e-10, 4.9999999999e-10, 0.1,
          0.30000000000000004, 1.0000000005, 2.5e-9, 3.5e-9, 999999.9999999999, 1e6, 1e6 - 1e-10,
          123456.78901234567, 999999999.9999999, 1e9, 1e16, 1e300, float("inf"),
          float("-inf"), float("nan"), -12.3456789015]  # fmt: skip


@settings(max_examples=2000)
@given(
    st.one_of(
        st.floats(allow_nan=False),
        st.floats(-2e9, 2e9),
        # where 15 significant digits end for 9 and for 6 decimals
        st.sampled_from([1e5, 1e6, 1e8, 1e9]).flatmap(lambda low: st.floats(low, 10 * low)),
        st.floats(0, 1e4).map(lambda t: round(t, 1) + 0.1 * 3),
        st.sampled_from(_EDGES),
    ),
    st.sampled_from([9, 6]),
)
def test_time_texts_are_the_json_of_the_rounded_float(time: float, digits: int) -> None:
    # Every time a JSON, CSV or HTML output writes is the repr of round(time, digits), -0.0
    # as 0.0: the texts are formatted another way where that is cheaper, never to other text.
    from pipesim.render.numbers import TimeTexts

    assert TimeTexts(digits)[time] == repr(round(time, digits) or 0.0)
