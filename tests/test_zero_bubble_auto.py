"""zb-auto, ZB-1P and ZB-2P: the zero-bubble paper's automatic schedule under a memory limit,
never over the limit, never slower than the handmade schedules that fit the same limit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim import Op, Settings, build_problem, check_trace, simulate_step
from pipesim.cli import app
from pipesim.problem.pipeline import Problem
from pipesim.schedules import zero_bubble_auto as auto
from pipesim.schedules.estimate import Estimate
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()


def test_zb_2p_meets_zb_h2_within_twice_1f1bs_memory() -> None:
    # The case: real split costs and 0.1 ms messages.
    common = dict(stages=8, microbatches=24, forward=(1.0,), backward=(2.0,), weight=(1.0,),
                  comm_latency=0.1)  # fmt: skip
    h2 = simulate_step(Settings(policy="zb-h2", **common)).summary  # type: ignore[arg-type]
    auto = simulate_step(Settings(policy="zb-2p", **common)).summary  # type: ignore[arg-type]
    assert auto.span <= h2.span + 1e-9
    assert auto.peak_activations <= 2 * 8
    # and it is the paper's near-zero bubble: 24 x 3 ms of work in a 73.4 ms span.
    assert auto.span_bubble_fraction < 0.02


def test_zb_1p_is_zb_h1_or_better_within_1f1bs_peak() -> None:
    common = dict(stages=6, microbatches=18, forward=(1.0,), backward=(2.5,), weight=(0.8,),
                  comm_latency=0.3)  # fmt: skip
    h1 = simulate_step(Settings(policy="zb-h1", **common)).summary  # type: ignore[arg-type]
    one_p = simulate_step(Settings(policy="zb-1p", **common)).summary  # type: ignore[arg-type]
    assert one_p.span <= h1.span + 1e-9
    assert one_p.peak_activations <= 6


def test_a_limit_below_1f1bs_peak_costs_bubble_but_is_kept() -> None:
    # p=8: 1F1B needs 8 on device 0. Fewer is possible, at a price that grows as K shrinks.
    spans = {}
    for k in (8, 7, 6, 4, 2, 1):
        report = simulate_step(
            Settings(policy="zb-auto", stages=8, microbatches=32, activation_limit=k)
        )
        assert report.summary.peak_activations <= k
        assert check_trace(report.trace) == []
        spans[k] = report.summary.span
    assert spans[8] <= spans[7] <= spans[6] <= spans[4] <= spans[2] <= spans[1]
    # K=1: device 0 holds a microbatch from its F to its W, the whole round trip: 8 forwards
    # of 1 ms, 8 input gradients of 1 ms and its W; 32 of them, one after another.
    assert spans[1] == pytest.approx(32 * (8 * 1 + 8 * 1 + 1))


@pytest.mark.slow
def test_never_better_than_the_proven_optimum_under_the_same_limit() -> None:
    pytest.importorskip("highspy")
    from pipesim import build_problem, get_policy
    from pipesim.studies.optimize import find_optimum

    problem = build_problem(Settings(stages=4, microbatches=8), get_policy("zb-h1"))
    optimum = find_optimum(problem, time_limit=60, activation_limit=3)
    auto = simulate_step(Settings(policy="zb-auto", stages=4, microbatches=8, activation_limit=3))
    assert optimum.proven
    assert optimum.makespan - 1e-9 <= auto.summary.makespan <= optimum.makespan * 1.1


costs = st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]), min_size=1, max_size=1)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.integers(2, 6),
    st.integers(1, 14),
    st.integers(1, 12),
    st.data(),
    st.sampled_from([0.0, 0.1, 0.5, 2.0]),
)
def test_within_the_limit_valid_and_no_slower_than_the_handmade_ones_that_fit(
    p: int, m: int, k: int, data: st.DataObject, latency: float
) -> None:
    per_stage = st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=p, max_size=p)
    forward = tuple(data.draw(per_stage))
    weight = tuple(data.draw(per_stage))
    backward = tuple(w + b for w, b in zip(weight, data.draw(per_stage), strict=True))
    common = Settings(stages=p, microbatches=m, forward=forward, backward=backward,
                      weight=weight, comm_latency=latency)  # fmt: skip
    auto = simulate_step(common.replace(policy="zb-auto", activation_limit=k))
    assert check_trace(auto.trace) == []
    assert max(d.peak_activations for d in auto.summary.devices) <= k
    for handmade in ("zb-h1", "zb-h2"):
        other = simulate_step(common.replace(policy=handmade)).summary
        if other.peak_activations <= k:
            assert auto.summary.span <= other.span + 1e-9, handmade


def test_a_byte_limit_plans_within_the_bytes() -> None:
    # 10 GB static, 4 GB per microbatch, a 30 GB limit: at most 5 microbatches between a
    # forward and its B (without a model a W keeps nothing), where ZB-H2 holds 7 on its first
    # device and runs out; zb-auto fits.
    args = ["--stages", "4", "-m", "12", "--static-memory", "10GB",
            "--activation-memory", "4GB", "--memory-limit", "30GB", "-f", "json"]  # fmt: skip
    h2 = result_json(runner.invoke(app, ["run", "--policy", "zb-h2", *args]).stdout)
    auto = runner.invoke(app, ["run", "--policy", "zb-auto", *args])
    assert auto.exit_code == 0, auto.stderr
    record = result_json(auto.stdout)
    assert h2["oom"] and not record["oom"]
    peaks = [d["peak_memory_bytes"] for d in record["devices"]]
    assert max(peaks) <= 30e9 and max(peaks) == pytest.approx(30e9)  # it uses what it has


def test_a_byte_limit_that_cannot_hold_one_microbatch_names_the_minimum() -> None:
    args = ["--static-memory", "10GB", "--activation-memory", "4GB", "--memory-limit", "12GB"]
    result = runner.invoke(app, ["run", "--policy", "zb-auto", *args])
    assert result.exit_code == 2
    assert "needs at least 14.0 GB" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--policy", "1f1b", "--activation-limit", "4"], "activation_limit applies to"),
        (["--policy", "zb-1p", "--activation-limit", "4"], "activation_limit applies to"),
        (["--policy", "zb-auto", "--activation-limit", "0.5"], "activation_limit must be"),
        (["--policy", "zb-auto", "--activation-limit", "nan"], "activation_limit must be"),
    ],
)
def test_a_limit_where_it_means_nothing_is_refused(args: list[str], words: str) -> None:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2
    assert words in result.stderr


def test_they_appear_in_policies_and_compare() -> None:
    listed = runner.invoke(app, ["policies"]).stdout
    assert all(name in listed for name in ("zb-auto", "zb-1p", "zb-2p"))
    compared = runner.invoke(app, ["compare", "--policies", "zb-h1,zb-1p,zb-h2,zb-2p,zb-auto"])
    assert compared.exit_code == 0, compared.stderr
    assert all(name in compared.stdout for name in ("zb-auto", "zb-1p", "zb-2p"))


def _drawn_problems(
    largest: int, limits: tuple[int | None, ...]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A property over (p up to `largest`, m up to 12, a limit from `limits`, the draws for
    `_drawn`'s costs, a latency), 60 examples, the same on every run."""

    def apply(test: Callable[..., None]) -> Callable[..., None]:
        drawn = given(
            st.integers(1, largest),
            st.integers(1, 12),
            st.sampled_from(limits),
            st.data(),
            st.sampled_from([0.0, 0.1, 0.5]),
        )(test)
        return settings(max_examples=60, deadline=None, derandomize=True)(drawn)

    return apply


def _drawn(
    p: int, m: int, k: int | None, data: st.DataObject, latency: float, costs: list[float]
) -> tuple[Problem, list[auto._Meter]]:
    """A zb-auto problem whose stages' F, B and W are drawn from `costs` (B at least W), and
    the meters its search plans under."""

    per_stage = st.lists(st.sampled_from(costs), min_size=p, max_size=p)
    forward, weight = tuple(data.draw(per_stage)), tuple(data.draw(per_stage))
    backward = tuple(w + b for w, b in zip(weight, data.draw(per_stage), strict=True))
    policy = auto.ZBAuto()
    problem = build_problem(Settings(policy="zb-auto", stages=p, microbatches=m,
                                     activation_limit=k, forward=forward, backward=backward,
                                     weight=weight, comm_latency=latency), policy)  # fmt: skip
    return problem, policy._meters(problem)


@_drawn_problems(largest=6, limits=(None, 1, 2, 4, 8))
def test_candidates_time_themselves_as_the_estimator_does(
    p: int, m: int, k: int | None, data: st.DataObject, latency: float
) -> None:
    # The planners keep the times they placed ops at instead of estimating each candidate
    # again: those must be the estimator's to the bit, or the choice between them drifts.
    from pipesim.schedules.estimate import estimate

    problem, meters = _drawn(p, m, k, data, latency, [0.5, 1.0, 2.0, 3.0])
    for switches in auto._SWITCHES:
        orders, figures = auto._Planner(problem, meters, *switches).plan()
        assert figures == estimate(orders, problem)
    for forward_first in (False, True):
        for eager_w in (False, True):
            orders, figures = auto._list_schedule(
                auto._Planner(problem, meters, False, False, False), forward_first, eager_w
            )
            assert figures == estimate(orders, problem)


def _scanned_list_schedule(
    problem: Problem, meters: Sequence[auto._Meter], forward_first: bool, eager_w: bool
) -> tuple[list[list[Op]], Estimate]:
    """The list schedule as its docstring states it, by brute force: after every op, every
    device's next choice is computed again and the first device with the earliest start
    runs it."""
    plan = auto._Planner(problem, meters, False, False, False)
    while True:
        choices = [
            auto._next_choice(plan, stage, forward_first, eager_w) for stage in range(plan.p)
        ]
        ready = [(choice[0], stage, choice[1]) for stage, choice in enumerate(choices) if choice]
        if not ready:
            break
        _, stage, kind = min(ready, key=lambda each: each[:2])
        plan.put(stage, kind)
    for stage in range(plan.p):
        if plan.done[stage][auto.F] < plan.m or plan.done[stage][auto.B] < plan.m:
            raise auto._CannotFit
        while plan.pending_w(stage):
            plan.put(stage, auto.W)
    return plan.orders, plan.estimate()


@_drawn_problems(largest=8, limits=(None, 1, 2, 3, 8))
def test_the_list_schedule_runs_what_a_scan_of_every_device_would(
    p: int, m: int, k: int | None, data: st.DataObject, latency: float
) -> None:
    """The list schedule keeps the devices' next ops in a heap and recomputes only those a
    placed op can change: the orders must be those of recomputing every device's choice and
    scanning them after every op."""
    problem, meters = _drawn(p, m, k, data, latency, [0.0, 0.5, 1.0, 2.0])
    for forward_first in (False, True):
        for eager_w in (False, True):
            try:
                expected = _scanned_list_schedule(problem, meters, forward_first, eager_w)
            except auto._CannotFit:
                with pytest.raises(auto._CannotFit):
                    auto._list_schedule(
                        auto._Planner(problem, meters, False, False, False), forward_first, eager_w
                    )
                continue
            assert (
                auto._list_schedule(
                    auto._Planner(problem, meters, False, False, False), forward_first, eager_w
                )
                == expected
            )


def _planned(
    problem: Problem, meters: Sequence[auto._Meter], heuristic: bool, switches: tuple[bool, ...]
) -> tuple[object, set[int]]:
    """One candidate of a family, every one in full (no bound): its orders and figures, or
    "cannot fit"; and the switches that mattered."""
    plan = auto._Planner(problem, meters, *(switches if heuristic else (False,) * 3))
    try:
        found: object = plan.plan() if heuristic else auto._list_schedule(plan, *switches)
    except auto._CannotFit:
        found = "cannot fit"
    return found, plan.mattered


@_drawn_problems(largest=7, limits=(None, 1, 2, 3, 8))
def test_a_setting_that_agrees_on_every_switch_that_mattered_plans_the_same(
    p: int, m: int, k: int | None, data: st.DataObject, latency: float
) -> None:
    """The search plans a setting of a family's switches only if no setting already planned
    agrees with it on every switch that mattered there: each such pair must give the same
    orders, or both fail. And the search must pick what planning every candidate would."""
    problem, meters = _drawn(p, m, k, data, latency, [0.5, 1.0, 2.0, 3.0])
    candidates = []
    for heuristic, family in ((True, auto._SWITCHES), (False, auto._LIST_SWITCHES)):
        planned = {switches: _planned(problem, meters, heuristic, switches) for switches in family}
        for switches, (found, mattered) in planned.items():
            for other in family:
                if all(other[i] == switches[i] for i in mattered):
                    assert planned[other][0] == found
        candidates += [found for found, _ in planned.values() if found != "cannot fit"]
    skipping = auto.ZBAuto()._search(problem)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auto, "_each_distinct", lambda family, plan: [plan(s) for s in family])
        assert auto.ZBAuto()._search(problem) == skipping


def test_the_switches_matter_in_some_plans_and_not_in_others() -> None:
    # With equal costs, ZB-1P's eight heuristic settings make the same decisions, and the
    # search plans one; ZB-2P's at p=8, m=32 read two switches and give two orders.
    for policy, distinct in ((auto.ZB1P(), 1), (auto.ZB2P(), 2)):
        problem = build_problem(Settings(policy=policy.name, stages=8, microbatches=32), policy)
        meters = policy._meters(problem)
        planned = [_planned(problem, meters, True, switches) for switches in auto._SWITCHES]
        assert len({str(found) for found, _ in planned}) == distinct
        assert bool(planned[0][1]) == (distinct > 1)
