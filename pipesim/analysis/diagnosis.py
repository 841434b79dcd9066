"""Why the bubble is there, as figures: where the idle time went, whether links bound the
step, which link and which device deserve a name. Renderers put it into words; the judgements
(how much is "bound by communication") are made here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.analysis.idle_causes import (
    FILL_AND_DRAIN,
    IDLE_CAUSES,
    LINK_CAUSES,
    QUEUED,
    IdleCause,
)
from pipesim.analysis.summary import DeviceStats, LinkStats, Summary
from pipesim.problem.pipeline import Problem

COMMUNICATION_BOUND = 1 / 2
"""A step is communication-bound when its critical path spends at least this share of the
makespan on links."""
LINKS_MATTER = 1 / 4
"""The busiest link is named when devices wait on links for at least this share of their idle
time, or the critical path spends this share of the makespan on links."""


@dataclass(frozen=True)
class Diagnosis:
    """The figures behind the summary's "idle" and "why" lines."""

    total_idle: float
    """Idle ms summed over devices."""
    by_cause: dict[IdleCause, float]
    """Idle ms summed over devices, per cause (every cause, zeros included)."""
    on_links: float
    queued: float
    """Of `on_links`, waiting behind other messages on a link."""
    held: float
    """Of `on_links`, devices held by their own blocking sends."""
    fill_and_drain: float
    communication_bound: bool
    busiest_link: LinkStats | None
    """The link that carries a message most of the time, when links matter."""
    pace_setter: DeviceStats | None
    """The busiest device, when the stages are uneven or a device straggles."""
    straggling: float | None = None
    """The pace setter's straggler factor (--straggler), when it is one."""

    @property
    def in_flight(self) -> float:
        return self.on_links - self.queued - self.held

    def share(self, *causes: IdleCause) -> float:
        """The share of the idle time these causes take."""
        total = sum(self.by_cause[cause] for cause in causes)
        return total / self.total_idle if self.total_idle > 0 else 0.0


def diagnose(summary: Summary, problem: Problem) -> Diagnosis:
    """What `summary`'s idle time is made of, and what stands out."""
    devices = summary.devices
    by_cause = {
        cause: sum(stats.idle_by_cause.get(cause, 0.0) for stats in devices)
        for cause in IDLE_CAUSES
    }
    total_idle = sum(stats.idle for stats in devices)
    on_links = sum(by_cause[cause] for cause in LINK_CAUSES)
    path_on_links = summary.critical.links if summary.critical is not None else 0.0
    # Only links that carry bytes are ever busy: with latency alone, no link is.
    busy_links = [link for link in summary.links if link.busy > 0]
    links_matter = (
        on_links >= total_idle * LINKS_MATTER or path_on_links >= summary.makespan * LINKS_MATTER
    )
    busiest_link = (
        max(busy_links, key=lambda link: link.busy) if busy_links and links_matter else None
    )
    pace_setter = None
    stragglers = problem.variability.stragglers if problem.variability is not None else ()
    straggling = None
    if (not problem.costs.uniform or stragglers) and devices:
        pace_setter = max(devices, key=lambda stats: stats.busy)
        straggling = next(
            (each.factor for each in stragglers if each.device == pace_setter.device), None
        )
    return Diagnosis(
        total_idle=total_idle,
        by_cause=by_cause,
        on_links=on_links,
        queued=sum(by_cause[cause] for cause in QUEUED),
        held=by_cause[IdleCause.BLOCKING_SEND],
        fill_and_drain=sum(by_cause[cause] for cause in FILL_AND_DRAIN),
        communication_bound=path_on_links >= summary.makespan * COMMUNICATION_BOUND,
        busiest_link=busiest_link,
        pace_setter=pace_setter,
        straggling=straggling,
    )
