"""Simulate one training step from settings: the facade every command and study calls.

Settings and a policy make the problem; the SimPy model makes the trace; the analysis makes the
`Report`. Studies that run many steps call this once per point.
"""

from __future__ import annotations

from collections.abc import Callable

from pipesim.analysis.report import Report, analyze
from pipesim.problem.build import build_problem
from pipesim.problem.settings import DEFAULT_POLICY, Settings
from pipesim.schedules.base import Policy
from pipesim.schedules.registry import get_policy
from pipesim.simulator import simulate


def simulate_step(
    settings: Settings,
    policy: Policy | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Simulate `settings` (with `policy`, or the one `settings.policy` names) and analyze the
    trace; `progress(done, total)` is called now and then for long runs."""
    chosen = policy or get_policy(settings.policy or DEFAULT_POLICY)
    trace = simulate(build_problem(settings, chosen), chosen, progress)
    return analyze(trace, chosen)
