"""The simulation engine's own guarantees: progress reports, the collector pause, and that the
fast paths (free messages, waiting on a running op) time ops exactly as the rules say."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipesim import Kind, Op, Policy, Settings, build_problem, check_trace, get_policy
from pipesim.problem.ops import Fused, Step, needs
from pipesim.problem.pipeline import Problem
from pipesim.schedules.base import DeviceProgram, DeviceView
from pipesim.simulator import simulate
from pipesim.simulator.gc_pause import cyclic_gc_paused


def test_progress_is_reported_and_ends_at_the_total() -> None:
    policy = get_policy("1f1b")
    problem = build_problem(Settings(stages=8, microbatches=4000), policy)
    calls: list[tuple[int, int]] = []
    trace = simulate(problem, policy, progress=lambda done, total: calls.append((done, total)))
    total = 2 * 8 * 4000
    assert calls[-1] == (total, total) == (len(trace.ops), total)
    assert len(calls) >= 2  # coarse steps along the way, not one per op
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_pause_restores_the_previous_state(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with cyclic_gc_paused():
            assert not gc.isenabled()
            with cyclic_gc_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@given(
    policy=st.sampled_from(["1f1b", "zb-v", "interleaved", "dualpipe-v"]),
    p=st.integers(2, 5),
    latency=st.sampled_from([0.0, 0.25]),
    forward=st.lists(st.sampled_from([0.5, 1.0, 1.5]), min_size=5, max_size=5),
)
def test_every_op_starts_exactly_when_its_device_and_inputs_allow(
    policy: str, p: int, latency: float, forward: list[float]
) -> None:
    # The waits that ride on a producer's own timeout must not delay or advance anything: an op
    # starts at the latest of its device's previous op and its inputs' arrival.
    settings = Settings(
        policy=policy,
        stages=p,
        microbatches=2 * p,
        forward=tuple(forward[:p]),
        comm_latency=latency,
    )
    chosen = get_policy(policy)
    trace = simulate(build_problem(settings, chosen), chosen)
    assert check_trace(trace) == []
    done = {r.op: r for r in trace.ops}
    arrival = {(t.producer, t.dst): t.end for t in trace.transfers}
    stages = trace.problem.pipeline.num_stages
    for ops in trace.ops_by_device():
        free = 0.0
        for record in ops:
            step = trace.fused_step.get(record.op)
            if step is not None and record.op != step.ops[0]:
                assert record.start == free  # the step goes on
                free = record.end
                continue
            # A step waits for every input produced outside it; an output leaves when the
            # step that made it ends.
            ready = free
            for op in (record.op,) if step is None else step.ops:
                for need in needs(op, stages):
                    if step is not None and need.op in step.ops:
                        continue
                    producer = trace.output_ready(done[need.op])
                    ready = max(ready, arrival.get((need.op, record.device), producer))
            assert record.start == pytest.approx(ready)
            free = record.end


class _PairingPolicy(Policy):
    """A dynamic policy (asked op by op) that fuses each microbatch's last-stage F and B."""

    name = "pairing"
    summary = "test policy"

    def programs(self, problem: Problem) -> list[DeviceProgram]:
        m = problem.pipeline.microbatches
        first: list[Step] = [Op(Kind.F, 0, j) for j in range(m)]
        first += [Op(Kind.B, 0, j) for j in range(m)]
        last: list[Step] = [Fused((Op(Kind.F, 1, j), Op(Kind.B, 1, j))) for j in range(m)]
        return [_AskedOpByOp(first), _AskedOpByOp(last)]


class _AskedOpByOp:
    def __init__(self, steps: list[Step]) -> None:
        self.steps = iter(steps)

    def next_op(self, view: DeviceView) -> Step | None:
        return next(self.steps, None)


def test_a_dynamic_policy_may_return_fused_steps() -> None:
    # Device 1 runs F and B of each microbatch as one step of 1 + 2 ms: microbatch j's step
    # starts when its activation arrives (at 1, then as soon as the previous step ends), and
    # its gradient leaves at the step's end (4, 7, 10): device 0's backwards end at 6, 9, 12.
    policy = _PairingPolicy()
    trace = simulate(build_problem(Settings(stages=2, microbatches=3), policy), policy)
    assert check_trace(trace) == []
    assert [(s.start, s.end) for s in trace.fused] == [(1, 4), (4, 7), (7, 10)]
    ends = [r.end for r in trace.ops_by_device()[0] if r.kind is Kind.B]
    assert ends == [6, 9, 12]


class _Greedy(Policy):
    """A dynamic policy: a backward whose inputs are there, else the next forward, else the
    oldest backward still to run; it reads the device's view at each decision."""

    name = "greedy"
    summary = "test policy"

    def programs(self, problem: Problem) -> list[DeviceProgram]:
        return [
            _GreedyProgram(device, problem.pipeline.microbatches, self.asked)
            for device in range(problem.pipeline.devices)
        ]

    def __init__(self) -> None:
        self.asked: list[tuple[float, int, str, bool]] = []


class _GreedyProgram:
    def __init__(self, stage: int, m: int, asked: list[tuple[float, int, str, bool]]) -> None:
        self.stage, self.m, self.asked = stage, m, asked
        self.forwards = 0
        self.backwards: list[int] = []

    def next_op(self, view: DeviceView) -> Step | None:
        for mb in self.backwards:
            op = Op(Kind.B, self.stage, mb)
            ready = view.inputs_ready(op)
            self.asked.append((view.now, view.device, str(op), ready))
            if ready:
                self.backwards.remove(mb)
                return op
        if self.forwards < self.m:
            self.backwards.append(self.forwards)
            self.forwards += 1
            return Op(Kind.F, self.stage, self.forwards - 1)
        return Op(Kind.B, self.stage, self.backwards.pop(0)) if self.backwards else None


def test_a_dynamic_policy_decides_from_what_has_arrived() -> None:
    # p=2, m=2, F=1, B=2. Device 1 gets F0 at 1, so F0 runs [1,2]; at 2 its B0 is ready and
    # preferred over F1 (which arrived at 2): B0 [2,4], F1 [4,5], B1 [5,7]. Device 0 finds no
    # gradient at 2 and waits on its oldest backward: B0 [4,6], B1 [7,9]. Makespan 9 = 1F1B's.
    policy = _Greedy()
    trace = simulate(build_problem(Settings(stages=2, microbatches=2), policy), policy)
    assert check_trace(trace) == []
    rows = [[(str(r.op), r.start, r.end) for r in ops] for ops in trace.ops_by_device()]
    assert rows[1] == [("F0@s1", 1, 2), ("B0@s1", 2, 4), ("F1@s1", 4, 5), ("B1@s1", 5, 7)]
    assert rows[0] == [("F0@s0", 0, 1), ("F1@s0", 1, 2), ("B0@s0", 4, 6), ("B1@s0", 7, 9)]
    assert (2.0, 1, "B0@s1", True) in policy.asked
    assert (2.0, 0, "B0@s0", False) in policy.asked
