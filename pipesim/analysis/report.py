"""A simulated step together with everything said about it: the figures and the closed form.

This is what renderers and exporters take, so that none of them computes a figure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipesim.analysis.memory import device_activations
from pipesim.analysis.summary import Summary, summarize
from pipesim.problem.pipeline import Problem
from pipesim.schedules.base import ClosedForm, Policy
from pipesim.simulator.gc_pause import cyclic_gc_paused
from pipesim.simulator.trace import Trace


@dataclass(frozen=True)
class Report:
    """One simulated step, its summary and the policy's closed form (if it has one)."""

    trace: Trace
    summary: Summary
    closed_form: ClosedForm | None
    policy: Policy
    closed_form_doubled: float | None = None
    """What the closed form predicts for the same problem with twice the microbatches (None
    if it does not apply): how much more microbatches would buy."""

    def figures(self) -> Figures:
        """This report without its trace: what a study keeps and a worker sends back."""
        trace = self.trace
        return Figures(
            trace.policy, trace.problem, self.summary, self.closed_form, self.closed_form_doubled
        )

    def activations_over_time(self) -> list[list[tuple[float, float]]]:
        """Per device, (time, activations held from then on) steps (see `memory`)."""
        return device_activations(self.trace)


@dataclass(frozen=True)
class Figures:
    """A step's figures without its timeline: small and picklable, so studies that run many
    steps (on other processes or machines) keep and send these, never traces."""

    policy: str
    problem: Problem
    summary: Summary
    closed_form: ClosedForm | None
    closed_form_doubled: float | None


def analyze(trace: Trace, policy: Policy, detail: bool = True) -> Report:
    """The summary and the closed forms of a simulated step (without `detail`, the figures a
    study keeps: see `summarize`)."""
    with cyclic_gc_paused():
        summary = summarize(trace, detail)
    problem = trace.problem
    closed = policy.closed_form(problem)
    doubled = None
    if closed is not None and closed.bubble_fraction is not None:
        pipeline = problem.pipeline
        more = dataclasses.replace(pipeline, microbatches=2 * pipeline.microbatches)
        at_double = policy.closed_form(dataclasses.replace(problem, pipeline=more))
        doubled = None if at_double is None else at_double.bubble_fraction
    return Report(trace, summary, closed, policy, doubled)
