"""Orders a schedule searched for, kept for the next problem that would give the same search.

zb-auto (and ZB-1P, ZB-2P), V-Half, V-Min and ZB-V under a limit search for their orders: tens
of milliseconds a step at a few thousand ops. The runs of a Monte Carlo study, and --explain's
reruns, differ only in their random draws, which no planned order depends on (a plan reads mean
costs), so each order is planned once per process and copied out after. The key is what the
search reads: the schedule, the problem's shape, costs, links and memory, never its draws or its
workload.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from pipesim.problem.ops import Step
from pipesim.problem.pipeline import Problem

KEPT = 32
"""Searches remembered per process, the least recently used forgotten first."""

LARGEST = 50_000
"""Ops of the largest order kept: a single big run gains nothing and would hold its ops."""

AnyStep = TypeVar("AnyStep", bound=Step)

_kept: OrderedDict[Hashable, tuple[tuple[Any, ...], ...]] = OrderedDict()


def search_inputs(problem: Problem) -> Hashable:
    """Everything of `problem` a search may read: not its random draws, not its workload."""
    return (
        problem.pipeline,
        problem.costs,
        problem.network,
        problem.split_backward,
        problem.memory,
        problem.activation_limit,
        problem.weight_share,
    )


def planned(
    key: Hashable, search: Callable[[], Sequence[Sequence[AnyStep]]]
) -> list[list[AnyStep]]:
    """`search()`'s orders, from memory when the same `key` was searched before."""
    orders = _kept.get(key)
    if orders is None:
        found = search()
        orders = tuple(tuple(order) for order in found)
        if sum(map(len, orders)) <= LARGEST:
            _kept[key] = orders
            if len(_kept) > KEPT:
                _kept.popitem(last=False)
    else:
        _kept.move_to_end(key)
    return [list(order) for order in orders]


def forget() -> None:
    """Drop every remembered order (tests compare fresh searches with remembered ones)."""
    _kept.clear()
