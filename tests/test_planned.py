"""Planned orders are searched once per problem: sound only because no order depends on a
run's random draws, which these tests hold every built-in schedule to."""

from __future__ import annotations

import pytest

from pipesim import Settings, build_problem, get_policy, registered_policies
from pipesim.problem.ops import Kind, Op, Step
from pipesim.schedules import planned as memo
from pipesim.schedules.base import OrderedProgram
from pipesim.settings.values import Straggler


def _orders(settings: Settings) -> list[list[Step]]:
    policy = get_policy(settings.policy or "1f1b")
    programs = policy.programs(build_problem(settings, policy))
    assert all(isinstance(program, OrderedProgram) for program in programs)
    return [list(program.ops) for program in programs if isinstance(program, OrderedProgram)]


@pytest.mark.parametrize("policy", [policy.name for policy in registered_policies()])
def test_no_order_depends_on_a_runs_draws(policy: str) -> None:
    shape = Settings(
        policy=policy, stages=4, microbatches=8, forward=(1.0, 1.5, 1.0, 2.0), comm_latency=0.2
    )
    if get_policy(policy).takes_activation_limit:
        shape = shape.replace(activation_limit=5)
    memo.forget()
    plain = _orders(shape)
    for seed in (1, 2):
        memo.forget()  # searched afresh, not remembered
        varied = shape.replace(
            jitter=0.3, link_jitter=0.2, seed=seed, stragglers=(Straggler(1, 2.0, 0.5),)
        )
        assert _orders(varied) == plain


def test_a_remembered_search_gives_what_a_fresh_one_gives_and_copies_it_out() -> None:
    settings = Settings(policy="zb-auto", stages=4, microbatches=12, activation_limit=5)
    memo.forget()
    fresh = _orders(settings)
    searches = []

    def search() -> list[list[Op]]:
        searches.append(1)
        return []

    policy = get_policy("zb-auto")
    # What zb-auto keys its search by: itself, its limit, whether bytes bound it, the problem.
    key = (type(policy), 5.0, True, memo.search_inputs(build_problem(settings, policy)))
    assert memo.planned(key, search) == fresh and not searches  # remembered: no new search
    first = memo.planned(key, search)
    first[0].clear()  # a caller's copy: the memory is untouched
    assert memo.planned(key, search) == fresh


def test_only_small_orders_are_kept() -> None:
    memo.forget()
    big = [[Op(Kind.F, 0, mb) for mb in range(memo.LARGEST + 1)]]
    calls = []

    def search() -> list[list[Op]]:
        calls.append(1)
        return big

    memo.planned("big", search)
    memo.planned("big", search)
    assert len(calls) == 2  # searched again: not kept
