"""Vary one setting over a list of values, for one or several policies, and collect figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipesim.analysis import Report, run
from pipesim.config import Settings
from pipesim.errors import ConfigError, CostShapeError, PolicyError, ScheduleStalled
from pipesim.schedules.registry import get_policy

SWEEPABLE = (
    "stages",
    "microbatches",
    "chunks",
    "comm_latency",
    "activation_size",
    "bandwidth",
    "inter_node_latency",
    "inter_node_bandwidth",
)
"""Settings that take one value, so that a list of them is unambiguous."""


@dataclass(frozen=True)
class SweepRow:
    """One (value, policy) point: its report, or why the policy cannot run it."""

    setting: str
    value: float
    policy: str
    report: Report | None
    error: str | None = None


def sweep(
    settings: Settings,
    setting: str,
    values: Sequence[float],
    policies: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
) -> list[SweepRow]:
    """Run every policy at every value of `setting`; `progress(done, total)` after each run."""
    if setting not in SWEEPABLE:
        raise ConfigError(f"cannot sweep {setting}; sweepable: {', '.join(SWEEPABLE)}")
    if not values:
        raise ConfigError(f"no values to sweep {setting} over")
    chosen = [get_policy(name) for name in policies]
    rows = []
    total = len(values) * len(chosen)
    for value in values:
        typed = int(value) if setting in ("stages", "microbatches", "chunks") else value
        for policy in chosen:
            point = settings.replace(policy=policy.name, **{setting: typed})
            if setting != "chunks" and policy.chunks is not None:
                point = point.replace(chunks=None)
            try:
                rows.append(SweepRow(setting, value, policy.name, run(point, policy)))
            except (PolicyError, ScheduleStalled, CostShapeError) as error:
                rows.append(SweepRow(setting, value, policy.name, None, str(error)))
            if progress is not None:
                progress(len(rows), total)
    return rows
