"""The schedule library: closed forms, memory and the orderings that distinguish each policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim import (
    Kind,
    PolicyError,
    Report,
    ScheduleStalled,
    Settings,
    check_trace,
    get_policy,
    registered_policies,
    simulate_step,
)
from tests.conftest import simulate_settings

durations = st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0])


@given(p=st.integers(1, 6), v=st.integers(1, 4), rounds=st.integers(1, 4), f=durations, b=durations)
def test_interleaved_bubble_is_p_minus_1_times_f_plus_b_over_v(
    p: int, v: int, rounds: int, f: float, b: float
) -> None:
    m = rounds * p
    report = simulate_settings(
        policy="interleaved", stages=p, microbatches=m, chunks=v, forward=f, backward=b
    )
    for stats in report.summary.devices:
        assert stats.idle == pytest.approx((p - 1) * (f + b) / v)
    assert report.summary.bubble_fraction == pytest.approx((p - 1) / (v * m + p - 1))
    assert report.closed_form is not None
    assert report.closed_form.bubble_fraction == pytest.approx(report.summary.bubble_fraction)


@given(p=st.integers(1, 6), v=st.integers(1, 3), extra=st.integers(0, 8), f=durations, b=durations)
def test_looped_bfs_matches_interleaved_bubble_with_gpipe_memory(
    p: int, v: int, extra: int, f: float, b: float
) -> None:
    m = p + extra
    report = simulate_settings(
        policy="looped-bfs", stages=p, microbatches=m, chunks=v, forward=f, backward=b
    )
    assert report.summary.bubble_fraction == pytest.approx((p - 1) / (v * m + p - 1))
    assert [s.peak_activations for s in report.summary.devices] == pytest.approx([m] * p)


@given(p=st.integers(1, 7), extra=st.integers(0, 10), f=durations, b=durations, w=durations)
def test_zb_h1_bubble_is_p_minus_1_times_f_plus_b_minus_w(
    p: int, extra: int, f: float, b: float, w: float
) -> None:
    # B here is the input gradient; the whole backward is B + W. The closed form holds when W
    # is no longer than F or B.
    w = min(w, f, b)
    m = p + extra
    report = simulate_settings(
        policy="zb-h1", stages=p, microbatches=m, forward=f, backward=b + w, weight=w
    )
    assert report.summary.makespan == pytest.approx(m * (f + b + w) + (p - 1) * (f + b - w))
    for stats in report.summary.devices:
        assert stats.idle == pytest.approx((p - 1) * (f + b - w))
    assert report.closed_form is not None
    assert report.closed_form.bubble_fraction == pytest.approx(report.summary.bubble_fraction)


@given(p=st.integers(1, 8), m=st.integers(1, 24))
def test_zb_h1_peak_activations_match_1f1b(p: int, m: int) -> None:
    zb = simulate_settings(policy="zb-h1", stages=p, microbatches=m)
    one_f = simulate_settings(policy="1f1b", stages=p, microbatches=m)
    assert zb.summary.peak_activations == one_f.summary.peak_activations == min(p, m)


@given(p=st.integers(2, 8), extra=st.integers(0, 12), unit=durations)
def test_zero_bubble_ordering_on_equal_stages(p: int, extra: int, unit: float) -> None:
    m = p + extra
    costs = {"stages": p, "microbatches": m, "forward": unit, "backward": 2 * unit, "weight": unit}
    h2 = simulate_settings(policy="zb-h2", **costs).summary.makespan
    h1 = simulate_settings(policy="zb-h1", **costs).summary.makespan
    one_f = simulate_settings(policy="1f1b", **costs).summary.makespan
    assert h2 <= h1 + 1e-9
    assert h1 < one_f


@pytest.mark.parametrize("policy", ["zb-h2", "zb-v"])
@given(p=st.integers(1, 6), extra=st.integers(0, 10), unit=durations)
def test_zero_bubble_in_the_span_view_when_f_b_w_are_equal(
    policy: str, p: int, extra: int, unit: float
) -> None:
    m = 2 * p - 1 + extra
    report = simulate_settings(
        policy=policy, stages=p, microbatches=m, forward=unit, backward=2 * unit, weight=unit
    )
    summary = report.summary
    for stats in summary.devices:
        assert stats.end - stats.start == pytest.approx(stats.busy)
    assert summary.span_bubble_fraction == pytest.approx(0.0, abs=1e-12)
    assert summary.span == pytest.approx(3 * m * unit)
    assert report.closed_form is not None and report.closed_form.view == "span"
    assert report.closed_form.bubble_fraction == 0.0


def test_zb_h2_holds_2p_minus_1_activations() -> None:
    report = simulate_settings(policy="zb-h2", stages=4, microbatches=16)
    assert [s.peak_activations for s in report.summary.devices] == [7, 7, 7, 7]


def test_v_placement_and_memory_in_units_of_a_device_share() -> None:
    report = simulate_settings(policy="zb-v", stages=4, microbatches=8, comm_latency=0.1)
    assert report.trace.problem.pipeline.placement == (0, 1, 2, 3, 3, 2, 1, 0)
    # The turn of the V (stages 3 -> 4) is on one device: 3 links crossed each way, not 4.
    assert {(t.src, t.dst) for t in report.trace.transfers if t.kind is Kind.F} == {
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 2),
        (2, 1),
        (1, 0),
    }
    # Two chunks per device: each chunk's activation is half a device's share.
    assert simulate_settings(policy="zb-v", stages=4, microbatches=8).summary.peak_activations == 4


def test_split_backward_runs_w_after_b_and_frees_memory_at_w() -> None:
    report = simulate_settings(
        policy="zb-h1", stages=2, microbatches=2, forward=1, backward=3, weight=1
    )
    ops = {(r.kind, r.stage, r.microbatch): r for r in report.trace.ops}
    assert len(ops) == 3 * 2 * 2
    for stage in range(2):
        for mb in range(2):
            b, w = ops[(Kind.B, stage, mb)], ops[(Kind.W, stage, mb)]
            assert b.end - b.start == 2  # input gradient: backward - weight
            assert w.end - w.start == 1
            assert w.start >= b.end


def test_dualpipe_v_needs_2p_microbatches() -> None:
    with pytest.raises(PolicyError, match="needs m >= 2p"):
        simulate_step(Settings(policy="dualpipe-v", stages=4, microbatches=7))
    report = simulate_settings(policy="dualpipe-v", stages=4, microbatches=8)
    assert (
        report.summary.makespan
        < simulate_settings(policy="1f1b", stages=4, microbatches=8).summary.makespan
    )


def test_interleaved_needs_equal_rounds() -> None:
    with pytest.raises(PolicyError, match="equal rounds"):
        simulate_step(Settings(policy="interleaved", stages=4, microbatches=9, chunks=2))


def test_fixed_chunk_policies_reject_another_v() -> None:
    with pytest.raises(PolicyError, match="places 2 chunk"):
        simulate_step(Settings(policy="zb-v", chunks=3))


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("GPipe", "gpipe"),
        ("1F1B", "1f1b"),
        ("Interleaved1F1B", "interleaved"),
        ("LoopedBFS", "looped-bfs"),
        ("InterleavedZeroBubble", "interleaved-zb"),
        ("ZBVZeroBubble", "zb-v"),
        ("DualPipeV", "dualpipe-v"),
        ("dualpipev", "dualpipe-v"),
    ],
)
def test_pytorch_names_are_aliases(alias: str, name: str) -> None:
    assert get_policy(alias).name == name


def test_per_stage_costs_for_chunked_policies() -> None:
    report = simulate_settings(
        policy="interleaved", stages=2, microbatches=4, chunks=2, forward=[1, 2, 3, 4], backward=2
    )
    assert report.trace.problem.costs.forward == (1, 2, 3, 4)
    assert report.trace.problem.costs.backward == (1, 1, 1, 1)  # a device's 2 ms over 2 chunks


def _dualpipe_v(p: int, m: int, f: float, b: float, w: float, overlap: float) -> Report:
    # Costs per stage (a chunk), as the DualPipe README states them: one value per device
    # is split over its two chunks.
    return simulate_step(
        Settings(
            policy="dualpipe-v",
            stages=p,
            microbatches=m,
            forward=(2 * f,),
            backward=(2 * b,),
            weight=(2 * w,),
            overlap_cost=overlap,
        )
    )


def test_dualpipe_v_reproduces_the_readme_figure() -> None:
    # "Example DualPipeV scheduling for 4 PP ranks (8 PP stages) and 10 micro-batches": F one
    # cell, B two, W one, an overlapped F&B three; the figure is 66 cells wide, and
    # (PP/2-1)(F&B+B-3W) = 3 * 2 = 6 of them are bubble on every rank.
    report = _dualpipe_v(4, 10, 1, 2, 1, 1.0)
    assert report.summary.makespan == 66
    assert [stats.idle for stats in report.summary.devices] == [6, 6, 6, 6]
    # 8 ranks, 20 microbatches: 7 * 2 = 14.
    wide = _dualpipe_v(8, 20, 1, 2, 1, 1.0)
    assert {stats.idle for stats in wide.summary.devices} == {14}


@given(
    p=st.integers(2, 6),
    extra=st.integers(0, 6),
    f=st.sampled_from([0.5, 1.0, 1.5, 2.0]),
    w_share=st.sampled_from([0.25, 0.5, 1.0]),
    overlap_share=st.floats(0, 1),
)
def test_dualpipe_v_bubble_and_memory_match_the_readme_table(
    p: int, extra: int, f: float, w_share: float, overlap_share: float
) -> None:
    # Where the table's formula is exact (found by simulation, stated in the docstring): F
    # equals the input gradient B-W, W <= F, and B <= F&B <= F+B. The most idle device idles
    # (PP/2-1)(F&B+B-3W); every device holds at most PP+1 stage activations.
    w = w_share * f
    b = f + w
    overlap = b / (f + b) + overlap_share * (1 - b / (f + b))
    report = _dualpipe_v(p, 2 * p + extra, f, b, w, overlap)
    pair = overlap * (f + b)
    idle = max(stats.idle for stats in report.summary.devices)
    assert idle == pytest.approx((p - 1) * (pair + b - 3 * w))
    assert [2 * s.peak_activations for s in report.summary.devices] == [2 * p + 1] * p
    assert report.closed_form is not None
    if overlap == 1:
        assert report.closed_form.bubble_fraction == pytest.approx(report.summary.bubble_fraction)


def test_dualpipe_v_pairs_wait_for_both_inputs() -> None:
    # A fused pair starts only when its forward's activation and its backward's gradient have
    # both arrived, and its outputs leave when it ends.
    report = _dualpipe_v(3, 8, 1, 2, 1, 0.7)
    trace = report.trace
    assert trace.fused and any(step.overlapped for step in trace.fused)
    assert check_trace(trace) == []
    for step in trace.fused:
        if step.overlapped:
            assert step.end - step.start == pytest.approx(0.7 * 3)


def test_megatrons_microbatch_group_size() -> None:
    # N = p is the default order; Megatron's constraints, tested rather than copied: N < p
    # deadlocks with its warm-up count, a last group shorter than p costs bubble, and a
    # larger N runs the same bubble at more memory.
    def run(group: int | None) -> Report:
        return simulate_step(
            Settings(policy="interleaved", stages=4, microbatches=8, microbatch_group_size=group)
        )

    default, same = run(None), run(4)
    assert [r[1:] for r in same.trace.ops] == [r[1:] for r in default.trace.ops]
    assert same.closed_form is not None and same.closed_form.bubble_fraction is not None
    with pytest.raises(ScheduleStalled) as stalled:
        run(2)
    assert stalled.value.cycle == [0, 3, 0]
    short = run(5)
    assert short.summary.makespan == 29.5 > default.summary.makespan == 28.5
    assert check_trace(short.trace) == []
    assert short.closed_form is not None and short.closed_form.bubble_fraction is None
    wide = run(8)
    assert wide.summary.makespan == default.summary.makespan
    assert wide.summary.peak_activations > default.summary.peak_activations


# Each schedule's peak activations, in microbatches' worth of a device's share, as its
# docstring states it: a function of p, v, m and the device (m a multiple of p, m >= 2p).
PEAKS: dict[str, Callable[[int, int, int, int], float | None]] = {
    "gpipe": lambda p, v, m, d: m,
    "looped-bfs": lambda p, v, m, d: m,
    "1f1b": lambda p, v, m, d: p - d,
    "zb-h1": lambda p, v, m, d: p,
    "zb-h2": lambda p, v, m, d: 2 * p - 1,
    "zb-v": lambda p, v, m, d: p,
    "dualpipe-v": lambda p, v, m, d: (2 * p + 1) / 2,
    "interleaved": lambda p, v, m, d: ((v - 1) * p + 2 * (p - 1 - d) + 1) / v,
    "interleaved-zb": lambda p, v, m, d: p,
    "v-half": lambda p, v, m, d: (p + 2) // 2 if d == 0 else None,
    "v-min": lambda p, v, m, d: (p + 4) // 3 if d == 0 else None,
    "dualpipe": lambda p, v, m, d: p + 1,  # p even (tests/test_dualpipe.py)
}
# Schedules planned under a limit state a bound instead (tests/test_zero_bubble_auto.py).
BOUNDED: dict[str, Callable[[int], int | None]] = {
    "zb-auto": lambda p: None,
    "zb-1p": lambda p: p,
    "zb-2p": lambda p: 2 * p,
}


def test_every_registered_schedule_states_its_memory() -> None:
    assert set(PEAKS) | set(BOUNDED) == {policy.name for policy in registered_policies()}


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_schedules_planned_under_a_limit_stay_within_it(name: str) -> None:
    for p in (2, 4, 7):
        report = simulate_step(Settings(policy=name, stages=p, microbatches=3 * p))
        bound = BOUNDED[name](p)
        peak = report.summary.peak_activations
        assert peak <= (3 * p if bound is None else bound)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.sampled_from(sorted(PEAKS)),
    st.integers(2, 6),
    st.integers(2, 4),
    st.floats(0.5, 2.0),
    st.floats(1.0, 4.0),
)
def test_peak_memory_is_what_each_schedule_states(
    name: str, p: int, rounds: int, forward: float, backward: float
) -> None:
    # The peak is a property of each device's order, not of the costs: any costs give it.
    if name == "dualpipe" and p % 2:
        p += 1
    report = simulate_step(
        Settings(policy=name, stages=p, microbatches=rounds * p, forward=(forward,),
                 backward=(backward,))
    )  # fmt: skip
    v = report.trace.problem.pipeline.chunks
    peaks = [stats.peak_activations for stats in report.summary.devices]
    stated = [PEAKS[name](p, v, rounds * p, d) for d in range(p)]
    if stated[1:] == [None] * (p - 1):  # a peak stated for the busiest device only
        peaks, stated = [max(peaks)], stated[:1]
    assert peaks == pytest.approx(stated)
