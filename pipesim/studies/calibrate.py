"""Costs fitted to a measured run, and the run replayed on them: how far the simulation is
from what the cluster did, before asking it what another schedule would do.

A run's ranks repeat the same order of compute actions every step, so each rank's actions
split into steps of equal length (the first `skip` steps, warm-up, are left out). An action
holds its rank from the end of its wait for inputs to its end (`settings.profiler_trace`),
and then for the runtime's own work until the next action's span (posting sends and
receives); per stage and kind the cost is the mean of that (a rank's busy time is a sum of
such costs, whose expectation is the sum of their means; noise on a shared host is skewed,
so medians would come out short), its spread the coefficient of variation. Waits read off a
profiler trace are taken back where there was nothing to wait for: an action whose inputs
are all made on its own rank (`_local_inputs`), or whose input was handed over before its
span began, was busy (its own receive) for all of its span.

The runtime's own time after an action (`_overheads`) is paid per action, whatever the action
computes: the config gives it as `op_overhead` and the costs less it, so that a schedule of
more, smaller actions (interleaved chunks) pays it as often as it runs one. A message's time
is measured where its consumer was waiting for it already when it was handed over: from
when the producer's rank was done with the producer to the end of the consumer's wait; the
latency is their mean (0 when none was timed), as the costs are. The measured order, with
the fitted costs, is then simulated and set beside each measured step: on the mean costs,
and as the mean of runs that draw each op with the actions' pooled spread
(`Calibration.spread`), since varied ops lengthen a step on average.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from pipesim.errors import ConfigError
from pipesim.problem.ops import Kind, Op
from pipesim.problem.pipeline import Pipeline, Problem
from pipesim.schedules.base import StaticPolicy
from pipesim.settings.declarations import Settings
from pipesim.settings.profiler_trace import MeasuredAction, RankTrace
from pipesim.simulator.trace import OpRecord, Trace
from pipesim.studies.step import simulate_step

_KINDS = {"F": Kind.F, "B": Kind.B, "I": Kind.B, "W": Kind.W}
VARIED_RUNS = 200
"""Replays with the measured spread whose mean `replayed_varied` gives."""
_WAITED = 0.02
"""ms a consumer must have waited inside its action for its wait to time a message."""


class MeasuredOrder(StaticPolicy):
    """The order each rank ran, as a schedule."""

    summary = "the order of a measured run"
    chunks: int | None = None

    def __init__(self, orders: Sequence[Sequence[Op]], placement: tuple[int, ...], split: bool):
        self.name = "measured"
        self._orders = [list(order) for order in orders]
        self._placement = placement
        self.split_backward = split

    def default_shape(self) -> tuple[int, int]:
        microbatches = 1 + max(op.microbatch for order in self._orders for op in order)
        return len(self._orders), microbatches

    def resolve_chunks(self, requested: int | None) -> int:
        return len(self._placement) // len(self._orders)

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        return self._placement

    def device_orders(self, pipeline: Pipeline | None = None) -> list[list[Op]]:
        return self._orders

    @property
    def stage_placement(self) -> tuple[int, ...]:
        """The rank of each stage."""
        return self._placement


@dataclass(frozen=True)
class Fit:
    """One stage's fitted cost of one kind (ms), and how much it varied."""

    stage: int
    kind: str
    mean: float
    cv: float
    samples: int


@dataclass(frozen=True)
class Calibration:
    """What a measured run gives pipesim."""

    settings: Settings
    """p, m and the fitted costs (per device: the sums of its stages'), the message latency."""
    policy: MeasuredOrder
    fits: tuple[Fit, ...]
    latency_samples: int
    measured: tuple[float, ...]
    """Each used step's measured time (ms): from the end of its first action's wait (a rank
    may enter the step early, only to wait) to the end of its last action and the runtime's
    work after it (the rank's usual: the next step's span is not this step's)."""
    steps: int
    """Steps in the traces; the first `skip` were left out."""
    skip: int
    paths: tuple[str, ...]
    steps_by_rank: list[list[list[MeasuredAction]]]
    """Each rank's actions, cut into steps, on the common clock; in the used steps, with the
    waits taken back that the costs do not count."""
    waits_taken_back: int = 0
    """Actions of the used steps whose wait was counted as computing: nothing to wait for
    (`_local_inputs`), or their input handed over before they began (`_received`)."""
    afters: dict[tuple[int, str, int, int], float] = dataclasses.field(default_factory=dict)
    """Per used step (from 0) and action (kind, stage, microbatch), the ms of the runtime's
    work after it, which its cost counts: the measured step draws it as part of the op."""

    @property
    def measured_step(self) -> float:
        return statistics.median(self.measured)

    @property
    def spread(self) -> float:
        """The actions' spread as one coefficient of variation: the root of their variances
        summed over their squared means summed, each sample counted (a rank's step is a sum
        of its actions, so this is the spread that sum would have if they were independent)."""
        fits = [fit for fit in self.fits if fit.samples and fit.mean > 0]
        spread = sum(fit.samples * (fit.cv * fit.mean) ** 2 for fit in fits)
        scale = sum(fit.samples * fit.mean**2 for fit in fits)
        return math.sqrt(spread / scale) if scale > 0 else 0.0

    @property
    def standard_error(self) -> float:
        """The measured mean step's standard error, relative to it: how far an exact
        simulation may land from that mean by chance alone (0 with one step)."""
        if len(self.measured) < 2:
            return 0.0
        return (
            statistics.stdev(self.measured)
            / math.sqrt(len(self.measured))
            / statistics.fmean(self.measured)
        )

    def replayed(self) -> float:
        """The simulated step time of the measured order on the fitted costs."""
        return simulate_step(self.settings, self.policy, detail=False).summary.makespan

    def replayed_varied(self, runs: int = VARIED_RUNS) -> float:
        """The mean simulated step of `runs` replays with each op drawn around its cost with
        the measured spread (`--jitter`, seeded from 0). A step waits for the slowest of
        the paths through it, so varied ops make it longer on average than ops that all
        take their mean (Jensen's inequality): this, not `replayed`, is what a measured
        mean step should be set against."""
        from pipesim.studies.monte_carlo import monte_carlo

        if not self.spread:
            return self.replayed()
        (study,) = monte_carlo(self.settings.replace(jitter=self.spread), [self.policy], runs)
        return study.makespan.mean


def calibrate(traces: Sequence[RankTrace], skip: int = 1, align: str = "origin") -> Calibration:
    """Fit costs and the order to the ranks' traces; `align` "messages" sets each rank's
    clock by the messages it exchanges with the rank before it (`_aligned`), for traces of
    hosts whose clocks differ; "origin" takes their clocks as one.

    Raises:
        ConfigError: ranks missing or given twice, steps that differ in what they run or in
            number between ranks, fewer steps than `skip` + 1, a schedule that mixes full and
            split backwards.
    """
    by_rank = {trace.rank: trace for trace in traces}
    if len(by_rank) != len(traces):
        twice = sorted({t.rank for t in traces if sum(u.rank == t.rank for u in traces) > 1})
        raise ConfigError(f"rank {twice[0]} is given twice")
    ranks = len(by_rank)
    missing = sorted(set(range(ranks)) - set(by_rank))
    if missing:
        raise ConfigError(f"rank {missing[0]}'s trace is missing (ranks 0 to {ranks - 1})")
    first = min(trace.origin for trace in traces)
    steps_by_rank = [_steps(_shifted(by_rank[rank], first)) for rank in range(ranks)]
    counts = {len(steps) for steps in steps_by_rank}
    if len(counts) != 1:
        raise ConfigError(
            "the ranks' traces hold different numbers of steps: "
            + ", ".join(f"rank {r} {len(s)}" for r, s in enumerate(steps_by_rank))
        )
    total = counts.pop()
    if total <= skip:
        raise ConfigError(
            f"the traces hold {total} step(s); {skip} are left out as warm-up (--skip)"
        )
    kinds = {a.kind for steps in steps_by_rank for step in steps for a in step}
    split = bool(kinds & {"I", "W"})
    if split and "B" in kinds:
        raise ConfigError("the run mixes full backwards (B) with split ones (I, W)")
    placement_map: dict[int, int] = {}
    for rank, steps in enumerate(steps_by_rank):
        for action in steps[0]:
            if placement_map.setdefault(action.stage, rank) != rank:
                raise ConfigError(
                    f"stage {action.stage} runs on ranks {placement_map[action.stage]} and {rank}"
                )
    stages = 1 + max(placement_map)
    if sorted(placement_map) != list(range(stages)):
        raise ConfigError(f"stages {sorted(set(range(stages)) - set(placement_map))} never run")
    placement = tuple(placement_map[stage] for stage in range(stages))
    waits_read = sum(
        a.compute > a.start for steps in steps_by_rank for s in steps[skip:] for a in s
    )
    steps_by_rank = [
        [[_without_wait(a) if _local_inputs(a, placement) else a for a in step] for step in steps]
        for steps in steps_by_rank
    ]
    if align == "messages":
        steps_by_rank = _aligned(steps_by_rank, placement)
    used = [steps[skip:] for steps in steps_by_rank]
    orders = [[Op(_KINDS[a.kind], a.stage, a.microbatch) for a in steps[0]] for steps in used]
    samples: dict[tuple[int, str], list[float]] = {}
    handed: dict[tuple[int, str, int, int], float] = {}
    """When each action's device was done with it: its end, plus the runtime's own work
    before the next action's span (its sends, the next receives' posting)."""
    afters: dict[tuple[int, str, int, int], float] = {}
    for steps in used:
        for k, step in enumerate(steps):
            # the runtime's work after each action: to the next span, less what was waiting
            gaps = [b.start - a.end - a.idle_after for a, b in pairwise(step)]
            usual = statistics.median(gaps) if gaps else 0.0
            for number, action in enumerate(step):
                key = (k, action.kind, action.stage, action.microbatch)
                afters[key] = max(0.0, gaps[number] if number < len(gaps) else usual)
                handed[key] = action.end + afters[key]
    used = [
        [[_received(a, k, placement, handed) for a in step] for k, step in enumerate(steps)]
        for steps in used
    ]
    waits_kept = sum(a.compute > a.start for steps in used for step in steps for a in step)
    steps_by_rank = [steps[:skip] + kept for steps, kept in zip(steps_by_rank, used, strict=True)]
    for steps in used:
        for k, step in enumerate(steps):
            for action in step:
                after = afters[(k, action.kind, action.stage, action.microbatch)]
                samples.setdefault((action.stage, action.kind), []).append(action.busy + after)
    fits = tuple(
        Fit(stage, kind, statistics.fmean(values), _cv(values), len(values))
        for (stage, kind), values in sorted(samples.items())
    )
    cost = {(fit.stage, fit.kind): fit.mean for fit in fits}
    backward_kind = "I" if split else "B"

    overhead = _overheads(used, afters)

    def per_device(kinds: tuple[str, ...]) -> tuple[float, ...]:
        # a device's stages together: pipesim splits them evenly over the stages it holds,
        # for this schedule or any other (what-if runs need per-device costs); each op less
        # the device's overhead, which `op_overhead` adds back to every op: the same
        # durations for this order, and an overhead per op, not per layer, for other schedules
        return tuple(
            sum(
                cost[(s, kind)] - overhead[device]
                for s in range(stages)
                if placement[s] == device
                for kind in kinds
            )
            for device in range(ranks)
        )

    forward = per_device(("F",))
    backward = per_device((backward_kind, "W") if split else (backward_kind,))
    weight = per_device(("W",)) if split else None
    waits = _message_times(used, placement, handed)
    latency = statistics.fmean(waits) if waits else 0.0
    microbatches = 1 + max(op.microbatch for order in orders for op in order)
    settings = Settings(
        stages=ranks,
        microbatches=microbatches,
        forward=forward,
        backward=backward,
        weight=weight,
        comm_latency=latency,
        op_overhead=overhead if any(overhead) else None,
    )
    # to the end of the last action's runtime work, which its cost, and so the replay, counts
    measured = tuple(
        max(a.end + afters[(k, a.kind, a.stage, a.microbatch)] for steps in used for a in steps[k])
        - min(a.compute for steps in used for a in steps[k])
        for k in range(total - skip)
    )
    policy = MeasuredOrder(orders, placement, split)
    paths = tuple(by_rank[rank].path for rank in range(ranks))
    return Calibration(
        settings,
        policy,
        fits,
        len(waits),
        measured,
        total,
        skip,
        paths,
        steps_by_rank,
        waits_read - waits_kept,
        afters,
    )


def _overheads(
    used: list[list[list[MeasuredAction]]], afters: dict[tuple[int, str, int, int], float]
) -> tuple[float, ...]:
    """Per rank, the runtime's own time per action: of its kinds of action, the least mean
    time from an action's end to the next one's span (posting sends and receives). It is
    paid per action whatever the action computes, so a schedule of more, smaller actions
    pays it more often; the least keeps every kind's cost less it at or above its busy time."""
    overheads = []
    for steps in used:
        by_kind: dict[str, list[float]] = {}
        for k, step in enumerate(steps):
            for a in step:
                by_kind.setdefault(a.kind, []).append(afters[(k, a.kind, a.stage, a.microbatch)])
        overheads.append(min(statistics.fmean(values) for values in by_kind.values()))
    return tuple(overheads)


def _local_inputs(action: MeasuredAction, placement: tuple[int, ...]) -> bool:
    """Whether every input of `action` is made on its own rank (the first stage's forward, the
    last stage's backward, every weight gradient), so that it had nothing to wait for."""
    stage, here = action.stage, placement[action.stage]
    if action.kind == "W":
        return True
    if action.kind == "F":
        return stage == 0 or placement[stage - 1] == here
    return stage == len(placement) - 1 or placement[stage + 1] == here


def _received(
    action: MeasuredAction,
    k: int,
    placement: tuple[int, ...],
    handed: dict[tuple[int, str, int, int], float],
) -> MeasuredAction:
    """`action` of step `k`, busy for all of its span if its input was handed over before the
    span began: what it waited for then was its own receive, not a producer."""
    if action.compute == action.start:
        return action
    source = (
        ("F", action.stage - 1) if action.kind == "F"
        else (action.kind, action.stage + 1) if action.kind in ("B", "I") else None
    )  # fmt: skip
    if source is None:
        return action
    handover = handed.get((k, source[0], source[1], action.microbatch))
    if handover is not None and handover <= action.start:
        return _without_wait(action)
    return action


def _without_wait(action: MeasuredAction) -> MeasuredAction:
    """`action` as busy for all of its span."""
    return dataclasses.replace(action, compute=action.start, busy=action.end - action.start)


def _aligned(
    steps_by_rank: list[list[list[MeasuredAction]]], placement: tuple[int, ...]
) -> list[list[list[MeasuredAction]]]:
    """Each rank's clock set by the rank before it, as NTP sets a clock: the messages between
    them go both ways, and a message cannot arrive before it leaves, so the shortest gap from
    a producer's end to its consumer's wait's end is the same in both directions (the link's
    latency) once the clocks agree. Rank r's times move by half the difference."""
    aligned = [steps_by_rank[0]]
    for rank in range(1, len(steps_by_rank)):
        before, here = aligned[rank - 1], steps_by_rank[rank]
        forward, backward = [], []
        for k in range(min(len(before), len(here))):
            index = {(a.kind, a.stage, a.microbatch): a for a in (*before[k], *here[k])}
            for (kind, stage, microbatch), consumer in index.items():
                source = (
                    ("F", stage - 1, microbatch) if kind == "F"
                    else (kind, stage + 1, microbatch) if kind in ("B", "I") else None
                )  # fmt: skip
                producer = index.get(source) if source is not None else None
                if producer is None:
                    continue
                pair = (placement[producer.stage], placement[consumer.stage])
                gap = consumer.compute - producer.end
                if pair == (rank - 1, rank):
                    forward.append(gap)
                elif pair == (rank, rank - 1):
                    backward.append(gap)
        if not forward or not backward:
            raise ConfigError(
                f"ranks {rank - 1} and {rank} exchange no messages both ways: their clocks "
                "cannot be set by them (--align-clocks origin takes the traces' clocks)"
            )
        shift = (min(backward) - min(forward)) / 2
        aligned.append([
            [dataclasses.replace(a, start=a.start + shift, compute=a.compute + shift,
                                 end=a.end + shift) for a in step]
            for step in here
        ])  # fmt: skip
    return aligned


def _shifted(trace: RankTrace, origin: float) -> RankTrace:
    """`trace` timed from `origin` (the earliest of the ranks' origins) instead of its own."""
    shift = trace.origin - origin
    if shift == 0:
        return trace
    actions = tuple(
        dataclasses.replace(a, start=a.start + shift, compute=a.compute + shift, end=a.end + shift)
        for a in trace.actions
    )
    return dataclasses.replace(trace, actions=actions, origin=origin)


def _steps(trace: RankTrace) -> list[list[MeasuredAction]]:
    """A rank's actions cut into steps: each step runs every (kind, stage, microbatch) of the
    rank once, in the same order."""
    actions = trace.actions
    per_step = len({(a.kind, a.stage, a.microbatch) for a in actions})
    if len(actions) % per_step:
        raise ConfigError(
            f"{trace.path}: {len(actions)} compute actions are not whole steps of {per_step} "
            "(a step cut short by the profiler?)"
        )
    steps = [list(actions[i : i + per_step]) for i in range(0, len(actions), per_step)]
    first = [(a.kind, a.stage, a.microbatch) for a in steps[0]]
    for number, step in enumerate(steps[1:], start=2):
        if [(a.kind, a.stage, a.microbatch) for a in step] != first:
            raise ConfigError(f"{trace.path}: step {number} runs another order than step 1")
    return steps


def _message_times(
    used: list[list[list[MeasuredAction]]],
    placement: tuple[int, ...],
    handed: dict[tuple[int, str, int, int], float],
) -> list[float]:
    """From when a producer's device was done with it to the end of its consumer's wait,
    where the consumer was waiting already when the producer handed it over."""
    found: list[float] = []
    for k in range(len(used[0])):
        index = {(a.kind, a.stage, a.microbatch): a for steps in used for a in steps[k]}
        for (kind, stage, microbatch), consumer in index.items():
            if kind == "F":
                source = ("F", stage - 1, microbatch)
            elif kind in ("B", "I"):
                source = (kind, stage + 1, microbatch)
            else:
                continue
            producer = index.get(source)
            if producer is None or placement[producer.stage] == placement[stage]:
                continue
            waited = (consumer.end - consumer.start) - consumer.busy
            handover = handed[(k, *source)]
            # The whole time from hand-over to arrival is the message's only when the
            # consumer was already waiting for it when it was handed over.
            if waited > _WAITED and consumer.compute - waited <= handover < consumer.compute:
                found.append(consumer.compute - handover)
    return found


def _cv(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean > 0 and len(values) > 1 else 0.0


def measured_step(
    traces: Sequence[RankTrace], problem: Problem, skip: int = 1, align: str = "origin"
) -> Trace:
    """The measured run's typical step (of those after `skip`, the one closest to their mean)
    as a timeline of `problem`: each op holding its rank for what its fitted cost counts, its
    busy time up to its measured end and the runtime's work after it, from the step's first
    op.

    Raises:
        ConfigError: as `calibrate`; the traces ran other ops, or on other ranks, than
            `problem`'s.
    """
    calibration = calibrate(traces, skip, align)
    by_rank = dict(enumerate(calibration.steps_by_rank))
    mean = statistics.fmean(calibration.measured)
    k = skip + min(
        range(len(calibration.measured)), key=lambda i: abs(calibration.measured[i] - mean)
    )
    actions = [a for rank in sorted(by_rank) for a in by_rank[rank][k]]
    start = min(a.compute for a in actions)  # as `Calibration.measured` times a step
    pipeline = problem.pipeline
    records = []
    for action in actions:
        kind = _KINDS[action.kind]
        if (
            action.stage >= pipeline.num_stages
            or pipeline.placement[action.stage] != action.rank
            or action.microbatch >= pipeline.microbatches
            or kind not in problem.kinds
        ):
            raise ConfigError(
                f"the measured run's PP:{action.stage}{action.kind}{action.microbatch} on "
                f"rank {action.rank} is not an op of this run ({pipeline.devices} devices, "
                f"{pipeline.num_stages} stages, m={pipeline.microbatches})"
            )
        after = calibration.afters.get((k - skip, action.kind, action.stage, action.microbatch))
        begin = max(0.0, action.end - start - action.busy)
        end = action.end - start + (after or 0.0)
        records.append(OpRecord(action.rank, action.stage, kind, action.microbatch, begin, end))
    if len(records) != problem.ops_in_step:
        raise ConfigError(
            f"the measured step runs {len(records)} ops; this run has {problem.ops_in_step}"
        )
    return Trace("measured", problem, records, [])
