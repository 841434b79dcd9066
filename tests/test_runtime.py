"""--runtime: how messages behave. `megatron` on 1F1B is held to a reference written from
Megatron-LM's 1F1B loop (megatron/core/pipeline_parallel/schedules.py, forward_backward_
pipelining_without_interleaving): its calls in order, each a blocking batch whose messages
leave when both ends have posted them. The others keep pipesim's asynchronous model."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipesim import Kind, Settings, simulate_step
from pipesim.analysis.checker import check_trace
from pipesim.cli import app
from tests.cli_runner import CliRunner
from tests.test_properties import problems

runner = CliRunner()

Message = tuple[str, int, int]  # (kind, stage that sent it, microbatch)


def megatron_1f1b(
    p: int, m: int, f: float, b: float, c: float
) -> dict[tuple[str, int, int], float]:
    """Each op's start, (kind, stage, microbatch) -> ms, from Megatron-LM's 1F1B calls: a
    compute holds its rank; a call (recv_forward, send_forward, send_forward_recv_backward,
    send_backward_recv_forward, recv_backward, send_backward) posts its sends and receives at
    once and returns when all are done; a message is done c after both ends posted it."""
    programs = [_megatron_1f1b_calls(r, p, m, f, b) for r in range(p)]
    # Solve: advance each rank while what it needs is known.
    clock = [0.0] * p
    at = [0] * p
    sent: dict[Message, float] = {}
    received: dict[Message, float] = {}
    starts: dict[tuple[str, int, int], float] = {}
    done: dict[tuple[int, int], float] = {}  # (rank, call index) -> completion
    moved = True
    while moved:
        moved = False
        for r in range(p):
            while at[r] < len(programs[r]):
                act = programs[r][at[r]]
                if act[0] in ("F", "B"):
                    starts[(act[0], r, act[1])] = clock[r]
                    clock[r] += act[2]
                else:
                    _, sends, recvs = act
                    for message in sends:
                        sent.setdefault(message, clock[r])
                    for message in recvs:
                        received.setdefault(message, clock[r])
                    if not all(x in received for x in sends) or not all(x in sent for x in recvs):
                        break
                    ends = [max(sent[x], received[x]) + c for x in (*sends, *recvs)]
                    clock[r] = done[(r, at[r])] = max([clock[r], *ends])
                at[r] += 1
                moved = True
    assert all(at[r] == len(programs[r]) for r in range(p)), "the reference deadlocked"
    return starts


def _megatron_1f1b_calls(r: int, p: int, m: int, f: float, b: float) -> list[tuple[Any, ...]]:
    """Rank r's computes and calls, in the order Megatron-LM's 1F1B loop makes them."""
    warm = min(p - r - 1, m)
    acts: list[tuple[Any, ...]] = []
    first, last = r == 0, r == p - 1

    def call(sends: list[Message], recvs: list[Message]) -> None:
        if sends or recvs:
            acts.append(("call", sends, recvs))

    for i in range(warm):
        call([], [] if first else [("F", r - 1, i)])  # recv_forward
        acts.append(("F", i, f))
        call([] if last else [("F", r, i)], [])  # send_forward
    rest = m - warm
    if rest:
        call([], [] if first else [("F", r - 1, warm)])  # recv_forward
    for i in range(rest):
        acts.append(("F", warm + i, f))
        # send_forward_recv_backward
        call([] if last else [("F", r, warm + i)], [] if last else [("B", r + 1, i)])
        acts.append(("B", i, b))
        if i == rest - 1:
            call([] if first else [("B", r, i)], [])  # send_backward
        else:  # send_backward_recv_forward
            call([] if first else [("B", r, i)], [] if first else [("F", r - 1, warm + i + 1)])
    for j in range(warm):
        i = rest + j
        call([], [] if last else [("B", r + 1, i)])  # recv_backward
        acts.append(("B", i, b))
        call([] if first else [("B", r, i)], [])  # send_backward
    return acts


@settings(max_examples=60, deadline=None)
@given(
    p=st.integers(2, 6),
    m=st.integers(1, 14),
    f=st.sampled_from([0.5, 1.0, 1.5]),
    b=st.sampled_from([1.0, 2.0, 3.5]),
    c=st.sampled_from([0.0, 0.1, 0.25, 1.0]),
)
def test_megatron_1f1b_is_megatrons_calls_with_meeting_sends(
    p: int, m: int, f: float, b: float, c: float
) -> None:
    case = Settings(policy="1f1b", stages=p, microbatches=m, forward=(f,), backward=(b,),
                    comm_latency=c, runtime="megatron")  # fmt: skip
    trace = simulate_step(case).trace
    assert check_trace(trace) == []
    expected = megatron_1f1b(p, m, f, b, c)
    got = {(op.kind.name, op.stage, op.microbatch): op.start for op in trace.ops}
    assert got.keys() == expected.keys()
    for key, start in expected.items():
        assert got[key] == pytest.approx(start, abs=1e-9), key


def test_megatron_waits_where_async_overlaps() -> None:
    # With latency, a blocking exchange holds a rank until its receiver posts and the message
    # lands: slower than the asynchronous model, by no more than a latency per exchange.
    p, m, c = 4, 8, 0.25
    base = Settings(policy="1f1b", stages=p, microbatches=m, comm_latency=c)
    fast = simulate_step(base).summary.makespan
    slow = simulate_step(base.replace(runtime="megatron")).summary.makespan
    assert fast < slow <= fast + 2 * (m + p) * c
    # Without latency the meeting costs nothing: the same step.
    free = Settings(policy="1f1b", stages=p, microbatches=m)
    assert simulate_step(free.replace(runtime="megatron")).summary.makespan == pytest.approx(
        simulate_step(free).summary.makespan
    )
    # torch and zero-bubble name the asynchronous model.
    for name in ("torch", "zero-bubble", "async"):
        assert simulate_step(base.replace(runtime=name)).summary.makespan == fast


def test_megatron_interleaved_pairs_a_forward_and_a_backward_per_exchange() -> None:
    case = Settings(policy="interleaved", stages=4, microbatches=8, chunks=2, comm_latency=0.2)
    fast = simulate_step(case).summary.makespan
    # Megatron-LM overlaps an interleaved schedule's p2p by default: the asynchronous model.
    assert simulate_step(case.replace(runtime="megatron")).summary.makespan == fast
    trace = simulate_step(case.replace(runtime="megatron-no-overlap")).trace
    assert check_trace(trace) == []
    assert trace.makespan > fast
    # In the steady state a forward's output leaves only after the backward run after it.
    sent_after = [
        transfer
        for transfer in trace.transfers
        if transfer.kind is Kind.F and transfer.queued > min(
            op.end for op in trace.ops if (op.kind, op.stage, op.microbatch)
            == (Kind.F, transfer.stage, transfer.microbatch)
        )
    ]  # fmt: skip
    assert sent_after


def test_an_order_that_deadlocks_on_blocking_sends_says_who_waits() -> None:
    result = runner.invoke(app, ["run", "-p", "4", "-m", "8", "--policy", "zb-v", "--runtime",
                                 "megatron-no-overlap", "--comm-latency", "0.2"])  # fmt: skip
    assert result.exit_code == 1
    assert "blocking exchange" in result.stderr and "cycle:" in result.stderr
    fused = runner.invoke(app, ["run", "-p", "4", "-m", "8", "--policy", "dualpipe-v",
                                "--runtime", "megatron-no-overlap"])  # fmt: skip
    assert fused.exit_code == 2 and "fuses" in fused.stderr
    bad = runner.invoke(app, ["run", "--runtime", "nccl"])
    assert bad.exit_code == 2
    assert (
        "runtime must be one of async, torch, zero-bubble, megatron, megatron-no-overlap"
        in bad.stderr
    )


@settings(max_examples=120, deadline=None)
@given(problems())
def test_blocking_exchanges_give_valid_timelines_whose_idle_time_is_explained(
    case: Settings,
) -> None:
    from pipesim import PolicyError, ScheduleStalled
    from pipesim.analysis.critical_path import critical_path

    try:
        megatron = simulate_step(case.replace(runtime="megatron-no-overlap"))
    except (ScheduleStalled, PolicyError):
        assume(False)  # an order blocking sends deadlock, or steps fused in pairs
        raise
    assert check_trace(megatron.trace) == []
    # Waiting more never makes a fixed order faster (every time is a max of later times).
    assert megatron.summary.makespan >= simulate_step(case).summary.makespan - 1e-9
    for stats in megatron.summary.devices:
        assert sum(stats.idle_by_cause.values()) == pytest.approx(stats.idle, abs=1e-9)
        assert min(stats.idle_by_cause.values()) >= -1e-9
    path = critical_path(megatron.trace)
    assert path is not None


@pytest.mark.slow
def test_megatron_exchanges_cut_interleaved_speedups_in_the_zero_bubble_settings() -> None:
    # Table 9's costs (Zero Bubble paper, ICLR version): 1F1B-I's speed-up over 1F1B drops in
    # every setting once each exchange blocks, by about one message time per extra exchange.
    from tests.test_zero_bubble_paper import TABLE_5

    layers = {2304: 24, 4096: 32, 5120: 48, 6144: 64}
    for p, m, f, b, w, c, h, *_ in TABLE_5:
        v = layers[h] // p
        speedups = []
        for runtime in ("async", "megatron-no-overlap"):
            base = Settings(
                stages=p,
                microbatches=m,
                forward=(float(f),),
                backward=(float(b + w),),
                comm_latency=float(c),
                runtime=runtime,
            )
            one = simulate_step(base.replace(policy="1f1b")).summary.makespan
            interleaved = simulate_step(base.replace(policy="interleaved", chunks=v))
            speedups.append(one / interleaved.summary.makespan)
        assert 1 < speedups[1] < speedups[0] - 0.01, (p, m, h, speedups)
