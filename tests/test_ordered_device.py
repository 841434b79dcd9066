"""A fixed order run ahead of the clock gives the event path's timeline, float for float.

`OrderedDevice` computes start times from known input times instead of waiting on events. These
tests run both paths on the same random problems, with links that queue (slow links, two nodes,
messages larger than the link carries at once), blocking sends, jitter, stragglers and fused
steps, and on random orders that may stall, and require identical records, in the same order,
and identical errors.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipesim import PipesimError, Settings, build_problem, get_policy
from pipesim.analysis.summary import _link_totals
from pipesim.problem.ops import Kind, Op, op_key
from pipesim.settings.values import Straggler
from pipesim.simulator.model import Simulation
from pipesim.simulator.trace import Trace
from tests.conftest import FixedOrders
from tests.test_engine import _Greedy
from tests.test_properties import problems as costed_problems


@st.composite
def problems(draw: st.DrawFn) -> Settings:
    """test_properties' random shapes and costs, plus what could make the two paths part."""
    base = draw(costed_problems())
    p = base.stages or 1
    sized = draw(st.booleans())
    varied = draw(st.booleans())
    return base.replace(
        overlap_cost=draw(st.sampled_from([1.0, 0.7])),
        # Messages that occupy a link longer than an op: later ones queue behind earlier ones.
        activation_size=3e6 if sized else None,
        gradient_size=5e6 if sized else None,
        bandwidth=draw(st.sampled_from([1e9, 4e9])) if sized else None,
        devices_per_node=2 if sized and p > 2 else None,
        inter_node_bandwidth=5e8 if sized and p > 2 else None,
        blocking_comm=draw(st.booleans()),
        jitter=0.2 if varied else None,
        link_jitter=0.3 if varied and sized else None,
        seed=draw(st.integers(0, 5)) if varied else None,
        stragglers=(Straggler(p - 1, 1.7, 0.5),) if varied else None,
        slow_links=((0, 1, 3.0),) if p > 1 and draw(st.booleans()) else None,
    )


def _both(settings: Settings) -> tuple[Trace, Trace]:
    policy = get_policy(settings.policy or "1f1b")
    try:
        problem = build_problem(settings, policy)
        ahead = Simulation(problem, policy)
    except PipesimError:
        assume(False)
        raise
    assert ahead.ahead, "every built-in policy gives fixed orders"
    on_events = Simulation(problem, policy, ahead=False)
    assert not on_events.ahead
    return ahead.run(), on_events.run()


def _same(ahead: Trace, on_events: Trace) -> None:
    assert ahead.ops == on_events.ops
    assert ahead.transfers == on_events.transfers
    assert ahead.fused == on_events.fused
    # The keys each path recorded are the ops' keys, as a trace made otherwise computes them.
    m = ahead.problem.pipeline.microbatches
    computed = [
        [op_key(r.kind, r.stage, r.microbatch, m) for r in ops] for ops in ahead.ops_by_device()
    ]
    assert ahead.keys_by_device() == on_events.keys_by_device()
    assert [list(keys) for keys in ahead.keys_by_device()] == computed
    for trace in (ahead, on_events):
        _tallied_as_recorded(trace)


def _tallied_as_recorded(trace: Trace) -> None:
    """What the simulation's links tallied as they went is what their records sum to, float
    for float, and each message's producer key is its record's op key."""
    m = trace.problem.pipeline.microbatches
    assert trace.sent is not None and trace.link_totals is not None
    sent = {op_key(t.kind, t.stage, t.microbatch, m): t for t in trace.transfers}
    assert [(key, t) for key, t in enumerate(trace.sent) if t is not None] == sorted(sent.items())
    assert trace.link_totals == _link_totals(dataclasses.replace(trace, link_totals=None))
    assert all(totals.messages > 0 for totals in trace.link_totals.values())


@pytest.mark.parametrize(
    "settings",
    [
        Settings(policy="zb-v", stages=4, microbatches=8, activation_size=3e6, bandwidth=1e9),
        Settings(policy="1f1b", stages=4, microbatches=8, comm_latency=0.3, blocking_comm=True),
        Settings(
            policy="interleaved", stages=4, chunks=2, microbatches=8, comm_latency=0.2,
            activation_size=2e6, bandwidth=1e9, jitter=0.2, link_jitter=0.3, seed=3,
            devices_per_node=2, inter_node_bandwidth=5e8,
        ),
        Settings(policy="dualpipe-v", stages=4, microbatches=8, comm_latency=0.4),
        Settings(policy="1f1b", stages=4, microbatches=8, comm_latency=0.4, runtime="megatron"),
    ],
    ids=["queued", "blocking", "jitter-two-nodes", "fused", "exchanges"],
)  # fmt: skip
def test_the_links_tally_what_their_records_sum_to(settings: Settings) -> None:
    """`summary.link_stats` and the readiness tables read the links' own tallies and producer
    keys instead of the records; both ways must agree on every path a message takes."""
    policy = get_policy(settings.policy or "1f1b")
    problem = build_problem(settings, policy)
    for ahead in (True, False) if not problem.exchanges else (True,):
        trace = Simulation(problem, policy, ahead=ahead).run()
        assert trace.transfers
        _tallied_as_recorded(trace)


@pytest.mark.slow  # fuzzing: 400 problems, each simulated twice
@settings(max_examples=400, deadline=None)
@given(problems())
def test_ahead_of_the_clock_gives_the_event_timeline(settings: Settings) -> None:
    ahead, on_events = _both(settings)
    _same(ahead, on_events)


def test_the_random_problems_queue_on_links_and_fuse_steps() -> None:
    """The strategy above reaches what could make the two paths differ."""
    queued = _both(
        Settings(
            policy="zb-v",
            stages=4,
            microbatches=8,
            activation_size=3e6,
            gradient_size=5e6,
            bandwidth=1e9,
        )
    )[0]
    assert any(t.start > t.queued for t in queued.transfers)
    fused = _both(Settings(policy="dualpipe-v", stages=4, microbatches=8, overlap_cost=0.7))[0]
    assert any(step.overlapped for step in fused.fused)


def _orders(seed: int) -> list[list[Op]]:
    """1F1B's ops on 3 devices, each device's forwards and backwards in microbatch order but
    merged at random (a backward after its own forward): some orders run, others stall."""
    rng = random.Random(seed)
    orders = []
    for stage in range(3):
        forwards = [Op(Kind.F, stage, mb) for mb in range(4)]
        backwards = [Op(Kind.B, stage, mb) for mb in range(4)]
        order: list[Op] = []
        while forwards or backwards:
            backward_ready = backwards and backwards[0].microbatch < 4 - len(forwards)
            if backward_ready and (not forwards or rng.random() < 0.5):
                order.append(backwards.pop(0))
            else:
                order.append(forwards.pop(0))
        orders.append(order)
    return orders


@pytest.mark.parametrize("seed", range(40))
def test_a_stalled_order_is_diagnosed_alike(seed: int) -> None:
    policy = FixedOrders(_orders(seed))
    problem = build_problem(
        Settings(stages=3, microbatches=4, comm_latency=0.25, blocking_comm=seed % 2 == 0), policy
    )
    outcomes: list[object] = []
    for ahead in (True, False):
        try:
            outcomes.append(Simulation(problem, policy, ahead=ahead).run().ops)
        except PipesimError as error:
            outcomes.append(str(error))
    assert outcomes[0] == outcomes[1]


def test_the_random_orders_both_run_and_stall_at_different_times() -> None:
    """The orders above are worth comparing: some finish, and others stall at many times."""
    stalls, finished = set(), 0
    for seed in range(40):
        policy = FixedOrders(_orders(seed))
        problem = build_problem(Settings(stages=3, microbatches=4, comm_latency=0.25), policy)
        try:
            Simulation(problem, policy).run()
            finished += 1
        except PipesimError as error:
            stalls.add(str(error).split(":")[0])
    assert finished >= 5
    assert len(stalls) >= 5


def test_a_policy_that_decides_as_it_goes_runs_on_the_clock() -> None:
    policy = _Greedy()
    problem = build_problem(Settings(stages=2, microbatches=2), policy)
    assert not Simulation(problem, policy).ahead
