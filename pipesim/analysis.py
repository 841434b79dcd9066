"""A simulated step together with everything said about it: the figures and the closed form.

This is what renderers and exporters take, so that none of them recomputes a metric.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from pipesim.config import Settings, build_problem
from pipesim.gc_pause import cyclic_gc_paused
from pipesim.metrics import Summary, summarize
from pipesim.schedules.base import ClosedForm, Policy
from pipesim.schedules.registry import get_policy
from pipesim.simulator import simulate
from pipesim.trace import Trace


@dataclass(frozen=True)
class Report:
    """One simulated step, its summary and the policy's closed form (if it has one)."""

    trace: Trace
    summary: Summary
    closed_form: ClosedForm | None
    policy: Policy

    def closed_form_at(self, microbatches: int) -> float | None:
        """What the closed form predicts for the same problem with another m (None if it does
        not apply): how much more microbatches would buy."""
        problem = self.trace.problem
        pipeline = dataclasses.replace(problem.pipeline, microbatches=microbatches)
        closed = self.policy.closed_form(dataclasses.replace(problem, pipeline=pipeline))
        return None if closed is None else closed.bubble_fraction


def analyze(trace: Trace, policy: Policy) -> Report:
    with cyclic_gc_paused():
        return Report(trace, summarize(trace), policy.closed_form(trace.problem), policy)


def run(
    settings: Settings,
    policy: Policy | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Simulate `settings` (with `policy`, or the one `settings.policy` names) and summarize;
    `progress(done, total)` is called now and then for long runs."""
    chosen = policy or get_policy(settings.policy)
    trace = simulate(build_problem(settings, chosen), chosen, progress)
    return analyze(trace, chosen)
