"""`pipesim run --explain`: the simulations that say what would change a run's bubble.

The study runs the same costs with every link twice as fast, with twice the microbatches and
under every other registered schedule, and returns the figures; `render.explanation` words
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.analysis.report import Report
from pipesim.analysis.summary import Summary
from pipesim.errors import PipesimError
from pipesim.schedules.from_file import FileSchedule
from pipesim.settings.declarations import Settings
from pipesim.studies.compare import Comparison, compare_policies
from pipesim.studies.step import simulate_step


@dataclass(frozen=True)
class Explanation:
    """What a few other runs on the same costs give; None where the run was not possible or
    does not apply."""

    faster_links: Summary | None
    """Every link twice as fast (half the latency, twice the bandwidth); only when messages
    lie on the critical path."""
    doubled_microbatches: Summary | None
    """Twice the microbatches (not for a schedule file, whose m is fixed)."""
    others: list[Comparison]
    """Every registered schedule on these costs."""


def explain_report(report: Report, settings: Settings) -> Explanation:
    """The other runs that explain `report`, which was produced from `settings`."""
    pipeline = report.trace.problem.pipeline
    shape = settings.replace(stages=pipeline.devices, microbatches=pipeline.microbatches)
    return Explanation(
        _faster_links(report, shape),
        _more_microbatches(report, shape),
        _others(shape),
    )


def _faster_links(report: Report, settings: Settings) -> Summary | None:
    """The same step with every link twice as fast: the links as this run resolved them
    (flags, or the GPU's), at half the latency and twice the bandwidth."""
    if report.summary.path.links <= 0:
        return None
    network = report.trace.problem.network

    def doubled(value: float | None) -> float | None:
        return None if value is None else value * 2

    faster = settings.replace(
        comm_latency=network.intra_node.latency / 2,
        bandwidth=doubled(network.intra_node.bandwidth),
        devices_per_node=network.devices_per_node,
        inter_node_latency=None
        if network.devices_per_node is None
        else network.inter_node.latency / 2,
        inter_node_bandwidth=None
        if network.devices_per_node is None
        else doubled(network.inter_node.bandwidth),
        activation_size=network.activation_size,
        gradient_size=network.gradient_size,
    )
    return _summary(faster, report)


def _more_microbatches(report: Report, settings: Settings) -> Summary | None:
    if isinstance(report.policy, FileSchedule):
        return None
    return _summary(
        settings.replace(microbatches=2 * report.trace.problem.pipeline.microbatches), report
    )


def _summary(settings: Settings, report: Report) -> Summary | None:
    try:
        return simulate_step(settings, report.policy).summary
    except PipesimError:
        return None


def _others(settings: Settings) -> list[Comparison]:
    try:
        return compare_policies(settings.replace(policy=None))
    except PipesimError:
        return []
