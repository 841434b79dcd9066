"""`pipesim optimize`: the schedule with the shortest makespan, proven, for small cases.

A mixed-integer program in the spirit of the Zero Bubble paper's Section 3.2 (Qi et al., ICLR
2024), solved with HiGHS (`highspy`, an optional dependency):
- a start time per op (F, B the input gradient, W the weight gradient, per stage and
  microbatch) and the makespan C, minimised;
- the dependency rules of `problem.ops` as precedences, a message's time (latency + size /
  bandwidth, as a delay: links do not queue in the program; the replay through the simulator
  does) between devices;
- the ops of one stage and kind in microbatch order (identical microbatches can always be
  renumbered so: this removes symmetric solutions without losing an optimum);
- on each device, one binary per pair of ops whose order the precedences leave open, with the
  usual big-M disjunction so that they never overlap;
- `--activation-limit K`: when a forward starts, its device holds at most K microbatches'
  worth of activations (a chunk counts 1/v), counted from the same order binaries;
- a valid cut that makes small cases provable: no op of a device starts before the earliest
  its first forward can, so C >= that head + the device's work.
The answer is a per-device order; the simulator replays it, and the replay is what is shown.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipesim.analysis.memory import peak_held
from pipesim.analysis.report import Report
from pipesim.errors import ConfigError, NoScheduleFound, PipesimError
from pipesim.problem.ops import Kind, Op, needs
from pipesim.problem.pipeline import Pipeline, Problem
from pipesim.schedules.base import Policy, StaticPolicy
from pipesim.settings.declarations import Settings
from pipesim.simulator.trace import Trace
from pipesim.studies.executor import Progress, quiet

MAX_OPS = 300
"""The largest program solved: 3 x stages x microbatches ops (p=4, m=24 with one chunk)."""


@dataclass(frozen=True)
class Optimum:
    """What the solver found."""

    orders: list[list[Op]]
    """Each device's ops by start time."""
    makespan: float
    """The program's makespan (messages as pure delays)."""
    lower_bound: float
    proven: bool
    """Whether the makespan is proven optimal (gap 0) within the time limit."""
    binaries: int
    status: str = "kOptimal"
    """HiGHS's model status: why the solver stopped (kOptimal, kTimeLimit, ...)."""


def find_optimum(
    problem: Problem,
    time_limit: float,
    activation_limit: float | None = None,
    hints: Sequence[Trace] = (),
) -> Optimum:
    """The program for `problem` (split backward), solved within `time_limit` seconds,
    starting from the best of `hints` (simulated schedules on the same placement that meet
    the limit): the answer is never worse than them, and a heuristic that meets the lower
    bound is proven optimal at once."""
    highs_module = _highspy()
    pipeline = problem.pipeline
    stages, m = pipeline.num_stages, pipeline.microbatches
    ops = [Op(kind, s, j) for s in range(stages) for j in range(m) for kind in Kind]
    if len(ops) > MAX_OPS:
        raise ConfigError(
            f"optimize solves up to {MAX_OPS} ops (3 x stages x microbatches); this is {len(ops)}"
        )
    placement = pipeline.placement
    duration = {op: problem.duration(op) for op in ops}
    index = {op: position for position, op in enumerate(ops)}
    horizon = sum(duration.values()) + 2 * stages * m * _longest_message(problem) + 1.0

    model = _Program(highs_module, time_limit)
    starts = [model.continuous(0.0, horizon) for _ in ops]
    makespan = model.continuous(0.0, horizon)
    model.minimise(makespan)

    predecessors: dict[Op, list[Op]] = {op: [] for op in ops}

    def precede(first: Op, then: Op, lag: float) -> None:
        predecessors[then].append(first)
        model.at_least(
            {starts[index[then]]: 1.0, starts[index[first]]: -1.0}, duration[first] + lag
        )

    for op in ops:
        for need in needs(op, stages):
            lag = 0.0
            if need.message is not None and placement[need.op.stage] != placement[op.stage]:
                lag = problem.network.transfer_time(
                    placement[need.op.stage], placement[op.stage], need.op.kind
                )
            precede(need.op, op, lag)
        if op.microbatch > 0:
            precede(Op(op.kind, op.stage, op.microbatch - 1), op, 0.0)
        model.at_least({makespan: 1.0, starts[index[op]]: -1.0}, duration[op])

    ancestors = _ancestors(ops, predecessors)
    by_device: dict[int, list[Op]] = {}
    for op in ops:
        by_device.setdefault(placement[op.stage], []).append(op)
    before: dict[tuple[Op, Op], Any] = {}
    """(a, b) -> 1.0 if a surely precedes b on their device, 0.0 if surely not, else a
    binary column that is 1 when a comes first."""
    for group in by_device.values():
        for a, b in itertools.combinations(group, 2):
            if a in ancestors[b]:
                before[(a, b)], before[(b, a)] = 1.0, 0.0
            elif b in ancestors[a]:
                before[(a, b)], before[(b, a)] = 0.0, 1.0
            else:
                y = model.binary()
                before[(a, b)] = y
                before[(b, a)] = (y, -1.0)  # 1 - y
                ia, ib = starts[index[a]], starts[index[b]]
                # y = 1: a first, b starts after a ends; y = 0: the other way round.
                model.at_least({ib: 1.0, ia: -1.0, y: -horizon}, duration[a] - horizon)
                model.at_least({ia: 1.0, ib: -1.0, y: horizon}, duration[b])
    busiest = 0.0
    """No schedule beats a device's work after its first input can arrive."""
    for device, group in by_device.items():
        first = [op for op in group if op.kind is Kind.F]
        head = min(_head(problem, op) for op in first)
        busiest = max(busiest, head + sum(duration[op] for op in group))
        model.at_least({makespan: 1.0}, head + sum(duration[op] for op in group))
        if activation_limit is not None:
            share = pipeline.stages_on(device)
            _limit_memory(model, group, before, activation_limit * share, problem)
    feasible = [
        trace
        for trace in hints
        if activation_limit is None or _peak(trace) <= activation_limit + 1e-9
    ]
    if feasible:
        best = min(feasible, key=lambda trace: trace.makespan)
        begin = {record.op: record.start for record in best.ops}
        values_in: dict[int, float] = {starts[index[op]]: begin[op] for op in ops}
        values_in[makespan] = best.makespan
        for (a, b), term in before.items():
            if isinstance(term, int):
                values_in[term] = 1.0 if begin[a] < begin[b] else 0.0
        model.start_from(values_in)
    status, value, bound, values = model.solve()
    if values is None:
        raise NoScheduleFound(_no_schedule(status, time_limit))
    orders: list[list[Op]] = [[] for _ in range(pipeline.devices)]
    for op in sorted(ops, key=lambda o: (values[starts[index[o]]], index[o])):
        orders[placement[op.stage]].append(op)
    if model.binaries == 0 and status == "kOptimal":
        bound = value  # every order is forced: a linear program, solved exactly
    bound = max(bound, busiest)
    proven = value - bound <= 1e-6 * max(1.0, abs(value))
    return Optimum(orders, value, bound, proven, model.binaries, status)


def _no_schedule(status: str, time_limit: float) -> str:
    """What an empty answer from the solver means, in words (HiGHS's statuses: kInfeasible,
    kTimeLimit, ...)."""
    if status == "kInfeasible":
        return (
            "no schedule satisfies these constraints (an activation limit below one "
            "microbatch per stage, for one); the solver proved it"
        )
    if status in ("kTimeLimit", "kIterationLimit", "kSolutionLimit"):
        return (
            f"the {time_limit:g} s time limit ran out before the solver found any schedule; "
            "give it more (--time-limit) or a smaller problem"
        )
    return f"the solver stopped without a schedule (HiGHS status {status})"


def _limit_memory(
    model: _Program,
    group: list[Op],
    before: dict[tuple[Op, Op], Any],
    limit: float,
    problem: Problem,
) -> None:
    """When a forward starts, the stage activations its device holds stay within `limit`:
    forwards started, less what their B and W released (with a split backward, B frees all but
    the share W needs, `Problem.weight_share`, and W the rest; a whole backward frees all)."""
    shares = problem.weight_share
    forwards = [op for op in group if op.kind is Kind.F]
    releases = []
    for op in group:
        kept = 1.0 if shares is None else shares[op.stage]
        if op.kind is Kind.W:
            releases.append((op, -kept))
        elif op.kind is Kind.B and (not problem.split_backward or kept < 1.0):
            releases.append((op, -(1.0 - kept) if problem.split_backward else -1.0))
    for a in forwards:
        terms: dict[Any, float] = {}
        constant = 1.0
        for other, sign in [(f, 1.0) for f in forwards if f != a] + releases:
            term = before[(other, a)]
            if isinstance(term, float):
                constant += sign * term
            elif isinstance(term, tuple):  # 1 - y
                constant += sign
                terms[term[0]] = terms.get(term[0], 0.0) - sign
            else:
                terms[term] = terms.get(term, 0.0) + sign
        model.at_most(terms, limit - constant)


def lower_bound(problem: Problem) -> float:
    """A makespan no schedule on `problem`'s placement can beat: some device must wait for its
    first forward's input (every earlier stage's forward and message) and then do all of its
    work. The optimizer's cut; cheap, and needs no solver."""
    pipeline = problem.pipeline
    kinds = problem.kinds
    best = 0.0
    for stages in pipeline.stages_by_device:
        if not stages:
            continue
        head = min(_head(problem, Op(Kind.F, stage, 0)) for stage in stages)
        per_stage = pipeline.microbatches // pipeline.lines  # the microbatches a stage runs
        work = per_stage * sum(
            problem.duration(Op(kind, stage, 0)) for stage in stages for kind in kinds
        )
        best = max(best, head + work)
    return best


def _peak(trace: Trace) -> float:
    """Microbatches' worth of activations a schedule holds at most (split backward: the share
    W needs is held until its W ends)."""
    pipeline = trace.problem.pipeline
    problem = trace.problem
    return max(
        peak_held(ops, problem.split_backward, problem.weight_share) / pipeline.stages_on(device)
        for device, ops in enumerate(trace.ops_by_device())
    )


def _head(problem: Problem, op: Op) -> float:
    """The earliest a forward can start: every earlier stage's forward and message, along
    its line."""
    pipeline = problem.pipeline
    placement = pipeline.placement
    time = 0.0
    for stage in range(op.stage - pipeline.model_stage(op.stage), op.stage):
        time += problem.duration(Op(Kind.F, stage, 0))
        if placement[stage] != placement[stage + 1]:
            time += problem.network.transfer_time(placement[stage], placement[stage + 1], Kind.F)
    return time


def _longest_message(problem: Problem) -> float:
    devices = range(problem.pipeline.devices)
    return max(
        (
            problem.network.transfer_time(a, b, kind)
            for a in devices
            for b in devices
            for kind in (Kind.F, Kind.B)
            if a != b
        ),
        default=0.0,
    )


def _ancestors(ops: list[Op], predecessors: dict[Op, list[Op]]) -> dict[Op, set[Op]]:
    """Every op's transitive predecessors (the precedences form a DAG)."""
    found: dict[Op, set[Op]] = {}
    pending = list(ops)
    while pending:
        op = pending[-1]
        missing = [p for p in predecessors[op] if p not in found]
        if missing:
            pending += missing
            continue
        pending.pop()
        if op not in found:
            result: set[Op] = set()
            for p in predecessors[op]:
                result.add(p)
                result |= found[p]
            found[op] = result
    return found


def _quietly(make: Callable[[], Any]) -> Any:
    """`make()` with the process's standard output closed to it: HiGHS prints a banner from
    C when it starts, which would land in the middle of pipesim's output (or its JSON)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 1)
            return make()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _highspy() -> Any:
    try:
        import highspy
    except ImportError:
        raise ConfigError("optimize needs HiGHS: pip install 'pipesim[optimize]'") from None
    return highspy


class _Program:
    """A thin layer over highspy: columns and rows by dictionaries."""

    def __init__(self, highspy: Any, time_limit: float) -> None:
        self._highspy = highspy
        self._highs = _quietly(highspy.Highs)
        self._highs.setOptionValue("output_flag", False)
        self._highs.setOptionValue("time_limit", float(time_limit))
        self._highs.setOptionValue("mip_rel_gap", 0.0)  # stop at a proof, not at 0.01%
        self._highs.setOptionValue("random_seed", 0)
        self._columns = 0
        self.binaries = 0

    def continuous(self, low: float, high: float) -> int:
        self._highs.addVar(low, high)
        self._columns += 1
        return self._columns - 1

    def binary(self) -> int:
        column = self.continuous(0.0, 1.0)
        self._highs.changeColIntegrality(column, self._highspy.HighsVarType.kInteger)
        self.binaries += 1
        return column

    def minimise(self, column: int) -> None:
        self._highs.changeColCost(column, 1.0)

    def at_least(self, terms: dict[int, float], low: float) -> None:
        self._row(terms, low, self._highspy.kHighsInf)

    def at_most(self, terms: dict[int, float], high: float) -> None:
        self._row(terms, -self._highspy.kHighsInf, high)

    def _row(self, terms: dict[int, float], low: float, high: float) -> None:
        import numpy

        columns = numpy.array(list(terms), dtype=numpy.int32)
        values = numpy.array(list(terms.values()), dtype=numpy.float64)
        self._highs.addRow(low, high, len(terms), columns, values)

    def start_from(self, values: dict[int, float]) -> None:
        """A feasible solution to start the search from."""
        solution = self._highspy.HighsSolution()
        solution.col_value = [values.get(column, 0.0) for column in range(self._columns)]
        solution.value_valid = True
        self._highs.setSolution(solution)

    def solve(self) -> tuple[str, float, float, list[float] | None]:
        """Run the solver; Ctrl-C stops it at its next callback (HiGHS itself never looks at
        Python's signals, and once held the terminal for a minute) and is raised after."""
        interrupted: list[int] = []
        self._highs.cbMipInterrupt.subscribe(
            lambda event: event.interrupt() if interrupted else None
        )
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(1)) if main else None
        try:
            self._highs.run()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        if interrupted:
            raise KeyboardInterrupt
        status = str(self._highs.getModelStatus()).rsplit(".", 1)[-1]
        info = self._highs.getInfo()
        solution = self._highs.getSolution()
        if not solution.value_valid:
            return status, math.inf, -math.inf, None
        return status, info.objective_function_value, info.mip_dual_bound, list(solution.col_value)


class OptimalSchedule(StaticPolicy):
    """The solver's orders, replayed as a static schedule."""

    summary = "the optimize command's solution"
    split_backward = True

    def __init__(self, base: Policy, orders: list[list[Op]]) -> None:
        self.name = f"optimal ({base.name} placement)"
        self.chunks = base.chunks
        self._base = base
        self._orders = orders

    def placement(self, devices: int, chunks: int) -> tuple[int, ...]:
        return self._base.placement(devices, chunks)

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return self._orders


PLACEMENTS = {"1f1b": ("zb-h1", ("zb-h1", "zb-h2")), "v": ("zb-v", ("zb-v",))}
"""Per --placement: the policy whose placement the program keeps, and the heuristics that
share it (and the split backward), whose schedules start the search."""


@dataclass(frozen=True)
class OptimizeResult:
    """What `pipesim optimize` computed: the solver's answer, and its orders replayed through
    the simulator (where messages queue on links)."""

    optimum: Optimum
    report: Report


def optimize_workflow(
    settings: Settings, placement: str, time_limit: float, progress: Progress = quiet
) -> OptimizeResult:
    """The shortest schedule of `settings` with `placement`'s stages on devices, within
    `settings.activation_limit` (a constraint of the program here).

    Raises:
        ConfigError: an unknown placement, or no HiGHS.
        NoScheduleFound: no schedule satisfies the constraints, or none was found in time.
    """
    from pipesim.problem.build import build_problem
    from pipesim.schedules.registry import get_policy
    from pipesim.studies.step import simulate_step

    if placement not in PLACEMENTS:
        raise ConfigError(f"--placement must be 1f1b or v, got {placement!r}")
    base_name, heuristics = PLACEMENTS[placement]
    base = get_policy(base_name)
    activation_limit = settings.activation_limit
    settings = settings.replace(activation_limit=None)
    problem = build_problem(settings, base)
    hints = []
    for name in heuristics:
        try:
            hints.append(simulate_step(settings.replace(policy=name)).trace)
        except PipesimError:
            continue  # a heuristic that cannot run this shape is no hint
    with progress("solving"):
        found = find_optimum(problem, time_limit, activation_limit, hints)
    report = simulate_step(settings, OptimalSchedule(base, found.orders))
    return OptimizeResult(found, report)
