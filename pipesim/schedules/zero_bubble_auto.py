"""Zero-bubble schedules planned under a memory limit: zb-auto, and ZB-1P and ZB-2P.

Source: Qi et al., "Zero Bubble Pipeline Parallelism", ICLR 2024, section 3.1 (the heuristic
of the automatic scheduler), and its authors' reference,
`megatron/core/pipeline_parallel/zerobubble/scheduler/zb.py` in
sail-sg/zero-bubble-pipeline-parallelism (`Graph.manual_order`, `initial_solution`).

Given each stage's F, B (input gradient) and W, the message times and a memory limit, the
heuristic builds every device's order microbatch by microbatch: during warm-up each device runs
as many forwards as fit before its first gradient can arrive (and each later device fewer than
the one before it); then, per microbatch, a forward and a backward on every device, filling the
wait for an input with W passes, and running a W whenever the next forward would not fit in
memory. Its three switches (a bubble allowed before the first B, B preferred over F when a
device runs ahead, greedy W filling) give eight orders.

The reference refines these with an integer program; pipesim instead adds four memory-aware list
schedules (`_list_schedule`), which matter most when the limit is below 1F1B's peak: at p=4,
m=8, K=3 the heuristic alone takes 37 ms, the list schedule 33, and `pipesim optimize` proves
31; at p=8, m=32, K=7, 141 ms against 109. pipesim estimates every candidate, and ZB-H1's and
ZB-H2's orders when they fit the same limit, with mean costs and message delays
(`estimate.py`), and keeps the shortest span (the reference's criterion), then the shortest
makespan, then the lowest peak. So its span is never longer than ZB-H1's or ZB-H2's under the
same limit, on links without bandwidth where the estimate is exact.

The limit is `--activation-limit K` (microbatches' worth, counted as every report counts them:
from a forward's start, whole until B, then the share W needs (`--weight-memory`, the paper's
M_W / M_B; the whole without it) until W's end) and, when memory is known in bytes, the
device's limit minus its static bytes, with a forward taking the stage's activation bytes,
B freeing all but what W needs and W the rest (the reference's accounting). zb-auto without
either plans with no limit. ZB-1P and ZB-2P are zb-auto with K = p and K = 2p (1F1B's and
about twice 1F1B's peak), whatever the bytes.

Peak activations: at most K on every device, by construction. Closed form: none for the
heuristic. ZB-2P's span is at most ZB-H2's, so it has ZB-H2's: no span bubble when F = B = W,
messages are free and m >= 2p-1.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Callable, Sequence

from pipesim.errors import PolicyError
from pipesim.problem.memory import StageMemory
from pipesim.problem.ops import Kind, Op, needs
from pipesim.problem.pipeline import Problem
from pipesim.schedules.base import ClosedForm, DeviceProgram, OrderedProgram, Policy
from pipesim.schedules.estimate import Estimate, estimate
from pipesim.schedules.planned import planned, search_inputs
from pipesim.schedules.zero_bubble import ZBH1, ZBH2, zero_span_bubble

F, B, W = Kind.F, Kind.B, Kind.W


class _Meter:
    """One memory account per device: what each kind of op adds (negative: frees) and the
    most a device may hold."""

    def __init__(self, deltas: tuple[Sequence[float], ...], limits: Sequence[float]) -> None:
        self.deltas = deltas
        """Per kind (F, B, W), per stage."""
        self.limits = limits
        """Per stage (one stage per device)."""


class _CannotFit(Exception):
    """A device whose next forward does not fit even with every pending W run."""


class _Beaten(_CannotFit):
    """A candidate whose span can no longer reach the best one found: dropped unfinished."""


class _Planner:
    """One run of the heuristic with one setting of its three switches."""

    def __init__(
        self,
        problem: Problem,
        meters: Sequence[_Meter],
        bubble_before_first_b: bool,
        prefer_b: bool,
        greedy_w: bool,
    ) -> None:
        pipeline = problem.pipeline
        self.p, self.m = pipeline.devices, pipeline.microbatches
        self.problem, self.meters = problem, meters
        self.bubble_before_first_b, self.prefer_b, self.greedy_w = (
            bubble_before_first_b,
            prefer_b,
            greedy_w,
        )
        stages = range(self.p)
        self.cost = [[problem.duration(Op(kind, s, 0)) for s in stages] for kind in (F, B, W)]
        network = problem.network
        self.gradient_time = [network.transfer_time(s, s - 1, B) if s else 0.0 for s in stages]
        self.finish: list[list[list[float]]] = [[[] for _ in stages] for _ in (F, B, W)]
        """Per kind and stage, when each microbatch's op ends, as placed so far."""
        self.inputs = [
            [
                tuple(
                    (
                        self.finish[need.op.kind][need.op.stage],
                        network.transfer_time(need.op.stage, s, need.op.kind),
                    )
                    for need in needs(Op(kind, s, 0), self.p)
                    if need.message is not None
                )
                for s in stages
            ]
            for kind in (F, B, W)
        ]
        """Per kind and stage, the messages an op waits for (from the dependency rules, asked
        once per stage): the producer's end times, as placed so far, and the message's time."""
        self.done = [[0, 0, 0] for _ in stages]
        self.clock = [0.0] * self.p
        self.first: list[float | None] = [None] * self.p
        """When each device's first op starts."""
        self.idle = [0.0] * self.p
        self.held = [[0.0] * self.p for _ in meters]
        self.accounts = [
            [
                tuple(
                    (held, meter.deltas[kind][s], meter.limits[s] + 1e-9)
                    for meter, held in zip(meters, self.held, strict=True)
                )
                for s in stages
            ]
            for kind in (F, B, W)
        ]
        """Per kind and stage, each meter's (held per stage, what the op adds, the limit with
        its tolerance): what `fits` and `put` read, gathered once."""
        self.orders: list[list[Op]] = [[] for _ in stages]
        self.mattered: set[int] = set()
        """The switches (their positions in the family's tuple) that some decision so far read
        and would have taken otherwise with the switch flipped: a candidate whose switches
        agree with this one's on all of these makes the same decisions, so the same orders."""
        self.bound = math.inf
        """The best span among the candidates already planned: this one stops once even its
        remaining work alone puts its span beyond it (the answer is the same, sooner)."""

    def give_up_if_beaten(self) -> None:
        """Raise `_Beaten` when some device's span is sure to exceed `bound`: what it has run
        since its first op, plus all it has left to run, with no wait at all."""
        if self.bound == math.inf:
            return
        m, cost = self.m, self.cost
        for stage, (done, clock, first) in enumerate(
            zip(self.done, self.clock, self.first, strict=True)
        ):
            left = (
                (m - done[F]) * cost[F][stage]
                + (m - done[B]) * cost[B][stage]
                + (m - done[W]) * cost[W][stage]
            )
            ran = 0.0 if first is None else clock - first
            if ran + left > self.bound + _MARGIN:
                raise _Beaten

    def fits(self, stage: int, kind: Kind, count: int = 1) -> bool:
        for held, delta, limit in self.accounts[kind][stage]:
            if held[stage] + count * delta > limit:
                return False
        return True

    def arrival(self, kind: Kind, stage: int, microbatch: int) -> float | None:
        """When the messages the op waits for (the dependency rules' `needs`) have arrived:
        0 for an op that waits for none, None while one of their producers is not placed."""
        time = 0.0
        for done, hop in self.inputs[kind][stage]:
            if microbatch >= len(done):
                return None
            ready = done[microbatch] + hop
            if ready > time:
                time = ready
        return time

    def _placed_arrival(self, kind: Kind, stage: int, microbatch: int) -> float:
        arrives = self.arrival(kind, stage, microbatch)
        if arrives is None:
            raise _CannotFit
        return arrives

    def put(self, stage: int, kind: Kind) -> None:
        """Place `stage`'s next op of `kind` as early as its device and inputs allow."""
        arrives = self.arrival(kind, stage, self.done[stage][kind])
        if arrives is None:
            raise _CannotFit  # an input not planned yet: this variant cannot go on
        clock = self.clock[stage]
        self.place(stage, kind, arrives if arrives > clock else clock)

    def place(self, stage: int, kind: Kind, start: float) -> None:
        """Place `stage`'s next op of `kind` at `start`, which the caller knows is when its
        device is free and its inputs have arrived (as `put` would find)."""
        done = self.done[stage]
        microbatch = done[kind]
        if done[F]:
            self.idle[stage] += start - self.clock[stage]
        elif self.first[stage] is None:
            self.first[stage] = start
        self.clock[stage] = end = start + self.cost[kind][stage]
        self.finish[kind][stage].append(end)
        for held, delta, _ in self.accounts[kind][stage]:
            held[stage] += delta
        done[kind] += 1
        # An Op without NamedTuple's Python-level __new__: this runs for every op of every
        # candidate.
        self.orders[stage].append(tuple.__new__(Op, (kind, stage, microbatch)))

    def pending_w(self, stage: int) -> bool:
        return self.done[stage][W] < self.done[stage][B]

    def make_room(self, stage: int, kind: Kind) -> None:
        while not self.fits(stage, kind):
            if not self.pending_w(stage):
                raise _CannotFit
            self.put(stage, W)

    def fill_wait(self, stage: int, arrives: float) -> None:
        """Run W passes while they end before the input arrives, and one more if the wait
        left would be a bubble this device cannot afford (or greedily)."""
        cost = self.cost[W][stage]
        while self.pending_w(stage) and self.clock[stage] + cost <= arrives:
            self.put(stage, W)
        if self.pending_w(stage) and self.clock[stage] < arrives:
            slack = max(self.idle) - self.idle[stage]
            if arrives - self.clock[stage] > slack:
                self.put(stage, W)
            else:
                self.mattered.add(_GREEDY_W)
                if self.greedy_w:
                    self.put(stage, W)

    def warm_up(self) -> None:
        p, m = self.p, self.m
        for stage in range(p):
            self.put(stage, F)
        extra = [0] * p
        gradient_ready = self.finish[F][p - 1][0] + self.cost[B][p - 1]
        for stage in range(p - 2, -1, -1):
            clock, count = self.clock[stage], 0
            arrives = gradient_ready + self.gradient_time[stage + 1]
            cost = self.cost[F][stage]
            while self.done[stage][F] + count < m and self.fits(stage, F, count + 1):
                late_with_bubble, late = clock + cost > arrives, clock >= arrives
                if late_with_bubble != late:
                    self.mattered.add(_BUBBLE_BEFORE_FIRST_B)
                    if self.bubble_before_first_b:
                        late = late_with_bubble
                if late:
                    break
                clock += cost
                count += 1
            extra[stage] = count
            gradient_ready = max(clock, arrives) + self.cost[B][stage]
        for stage in range(1, p):
            while 0 < extra[stage] >= extra[stage - 1] and self.done[stage][F] + extra[stage] < m:
                extra[stage] -= 1
            extra[stage] = min(extra[stage], extra[stage - 1])  # its inputs come from there
        for stage in range(p):
            for _ in range(extra[stage]):
                self.put(stage, F)
        for stage in range(p - 1, -1, -1):
            self.put(stage, B)

    def wants_forward(self, stage: int) -> bool:
        if self.done[stage][F] >= self.m:
            return False
        if stage + 1 == self.p or self.done[stage][F] < self.done[stage + 1][F] + 2:
            return True
        if self.forward_while_ahead(stage):
            return True
        self.mattered.add(_PREFER_B)
        return not self.prefer_b

    def forward_while_ahead(self, stage: int) -> bool:
        """Whether a device two or more forwards ahead of the next runs its forward anyway
        (with `prefer_b`): when it would end before the next device's gradient can come back,
        or when waiting for that gradient would be a bubble it cannot afford."""
        nxt = stage + 1
        gradient_back = (
            self.clock[nxt] + self.cost[F][nxt] + self.cost[B][nxt] + self.gradient_time[nxt]
        )
        if self.clock[stage] >= gradient_back:
            return False
        held = [
            held[stage] + meter.deltas[F][stage]
            for meter, held in zip(self.meters, self.held, strict=True)
        ]
        w_time, ws = 0.0, 0
        while any(
            h > meter.limits[stage] + 1e-9 for h, meter in zip(held, self.meters, strict=True)
        ) and (self.done[stage][W] + ws < self.done[stage][B]):
            w_time += self.cost[W][stage]
            held = [h + meter.deltas[W][stage] for h, meter in zip(held, self.meters, strict=True)]
            ws += 1
        if self.clock[stage] + self.cost[F][stage] + w_time <= gradient_back:
            return True
        return gradient_back - self.clock[stage] > max(self.idle) - self.idle[stage]

    def steady(self, microbatch: int) -> None:
        self.give_up_if_beaten()
        p = self.p
        want = [self.wants_forward(stage) for stage in range(p)]
        for stage in range(p - 2, -1, -1):
            want[stage] = want[stage] and want[stage + 1]
        for stage in range(p):
            if not want[stage]:
                continue
            if stage and self.done[stage - 1][F] <= self.done[stage][F]:
                continue  # its input is not planned yet
            self.make_room(stage, F)
            if stage:
                self.fill_wait(stage, self._placed_arrival(F, stage, self.done[stage][F]))
            self.put(stage, F)
        for stage in range(p - 1, -1, -1):
            self.make_room(stage, B)
            if stage + 1 < p:
                self.fill_wait(stage, self._placed_arrival(B, stage, microbatch))
            if stage == 0 and self.done[0][F] == self.m:
                while self.pending_w(0):
                    self.put(0, W)
            self.put(stage, B)

    def plan(self) -> tuple[list[list[Op]], Estimate]:
        self.warm_up()
        for microbatch in range(1, self.m):
            self.steady(microbatch)
        for stage in range(self.p):
            while self.pending_w(stage):
                self.put(stage, W)
        return self.orders, self.estimate()

    def estimate(self) -> Estimate:
        """The span and makespan of the orders placed: the times `put` computed are those
        `estimate.estimate` would (mean costs, messages as delays), without a second pass."""
        spans = [
            end - start
            for end, start in zip(self.clock, self.first, strict=True)
            if start is not None
        ]
        return Estimate(max(spans, default=0.0), max(self.clock, default=0.0))


def _list_schedule(
    plan: _Planner, forward_first: bool, eager_w: bool
) -> tuple[list[list[Op]], Estimate]:
    """A memory-aware list schedule, as a second family of candidates, placed by `plan` (a
    planner with nothing placed; its own switches unused): the device that can start an op
    earliest runs it; a device runs its next B or F (the earlier; on a tie B, or F when
    `forward_first`), a W when the next forward does not fit, and a W in any wait it fits in
    (in any wait at all when `eager_w`)."""
    p, m = plan.p, plan.m
    placed = 0
    # A device's choice depends on its own state and on when its inputs were produced, so
    # after a put only that device's choice changes, and the next device's after an F (whose
    # activation it waits for) or the one before's after a B (its gradient). The choices
    # wait in a heap by (start, device): the first device with the earliest start comes out
    # first, without a scan of every device per op. A choice that has changed since it was
    # pushed is left in the heap and skipped when it comes out.
    choices = [_next_choice(plan, stage, forward_first, eager_w) for stage in range(p)]
    waiting = [(choice[0], stage) for stage, choice in enumerate(choices) if choice is not None]
    heapq.heapify(waiting)
    while waiting:
        start, chosen = heapq.heappop(waiting)
        choice = choices[chosen]
        if choice is None or choice[0] != start:
            continue  # superseded
        kind = choice[1]
        plan.place(chosen, kind, start)  # the choice is up to date: its start is the op's
        placed += 1
        if placed % (3 * p) == 0:
            plan.give_up_if_beaten()
        waits = chosen + 1 if kind is F else chosen - 1 if kind is B else -1
        for stage in (chosen, waits) if 0 <= waits < p else (chosen,):
            choice = choices[stage] = _next_choice(plan, stage, forward_first, eager_w)
            if choice is not None:
                heapq.heappush(waiting, (choice[0], stage))
    for stage in range(p):
        if plan.done[stage][F] < m or plan.done[stage][B] < m:
            raise _CannotFit
        while plan.pending_w(stage):
            plan.put(stage, W)
    return plan.orders, plan.estimate()


def _next_choice(
    plan: _Planner, stage: int, forward_first: bool, eager_w: bool
) -> tuple[float, Kind] | None:
    """(start, kind) of what `stage` would run next, or None when it has nothing left."""
    done, clock, inf = plan.done[stage], plan.clock[stage], float("inf")
    pending_w = done[W] < done[B]  # plan.pending_w, inlined: this runs for every op placed
    start_b = start_f = inf
    if done[B] < done[F]:
        arrives = plan.arrival(B, stage, done[B])
        if arrives is not None:
            start_b = arrives if arrives > clock else clock
    forward_fits = done[F] < plan.m and plan.fits(stage, F)
    if forward_fits:
        arrives = plan.arrival(F, stage, done[F])
        if arrives is not None:
            start_f = arrives if arrives > clock else clock
    if done[F] < plan.m and not forward_fits and pending_w:
        return clock, W
    if forward_first:
        start, kind = (start_f, F) if start_f <= start_b else (start_b, B)
    else:
        start, kind = (start_b, B) if start_b <= start_f else (start_f, F)
    if pending_w and start > clock:
        if clock + plan.cost[W][stage] <= start:
            return clock, W
        plan.mattered.add(_EAGER_W)
        if eager_w:
            return clock, W
    if start == inf:
        return (clock, W) if pending_w and done[B] == plan.m else None
    if start_f == start_b:
        plan.mattered.add(_FORWARD_FIRST)
    return start, kind


def _each_distinct(
    settings: Sequence[tuple[bool, ...]], plan: Callable[[tuple[bool, ...]], set[int]]
) -> None:
    """`plan` each setting of a family's switches in turn, but not one that agrees, on every
    switch that mattered, with a setting already planned: it would make the same decisions
    (each decision reads one switch), so give the same orders, or fail at the same point, and
    a later candidate loses a tie. With equal stage costs, the heuristic's eight settings
    often give one order."""
    planned: list[tuple[tuple[bool, ...], set[int]]] = []
    for switches in settings:
        if any(all(switches[i] == earlier[i] for i in mattered) for earlier, mattered in planned):
            continue
        planned.append((switches, plan(switches)))


def _fits(orders: Sequence[Sequence[Op]], meters: Sequence[_Meter]) -> bool:
    """Whether fixed orders stay within every meter's limit on every device."""
    for meter in meters:
        for stage, order in enumerate(orders):
            held = 0.0
            for op in order:
                held += meter.deltas[op.kind][stage]
                if held > meter.limits[stage] + 1e-9:
                    return False
    return True


def _peak(orders: Sequence[Sequence[Op]]) -> int:
    """The most microbatches any device holds (a forward to its W)."""
    peak = 0
    for order in orders:
        held = 0
        for op in order:
            held += 1 if op.kind is F else -1 if op.kind is W else 0
            peak = max(peak, held)
    return peak


class ZBAuto(Policy):
    name = "zb-auto"
    summary = "zero bubble, automatic: the paper's heuristic under --activation-limit K"
    split_backward = True
    takes_activation_limit = True

    def activation_limit(self, problem: Problem) -> float | None:
        """K, in microbatches' worth per device; None: none."""
        return problem.activation_limit

    def programs(self, problem: Problem) -> list[DeviceProgram]:
        return [OrderedProgram(order) for order in self.device_orders_for(problem)]

    def device_orders_for(self, problem: Problem) -> list[list[Op]]:
        """The best candidate's orders, searched once per problem (`planned`)."""
        key = (type(self), self.activation_limit(problem), self.plans_bytes, search_inputs(problem))
        return planned(key, lambda: self._search(problem))

    def _search(self, problem: Problem) -> list[list[Op]]:
        meters = self._meters(problem)
        # Candidates in a fixed order (the index breaks ties); the handmade ones, cheap to
        # estimate, are known first so that the searched ones can stop once beaten.
        handmade: list[tuple[list[list[Op]], Estimate] | None] = []
        for schedule in (ZBH1(), ZBH2()):
            try:
                orders = schedule.device_orders(problem.pipeline)
            except PolicyError:
                handmade.append(None)  # a shape the handmade schedule does not take
                continue
            fitting = _fits(orders, meters)
            handmade.append(
                ([list(order) for order in orders], estimate(orders, problem)) if fitting else None
            )
        best = min((found[1][0] for found in handmade if found is not None), default=math.inf)
        candidates: list[tuple[list[list[Op]], Estimate]] = []

        def keep(found: tuple[list[list[Op]], Estimate]) -> None:
            nonlocal best
            candidates.append(found)
            best = min(best, found[1][0])

        def heuristic(switches: tuple[bool, ...]) -> set[int]:
            planner = _Planner(problem, meters, *switches)
            planner.bound = best
            with contextlib.suppress(_CannotFit):
                keep(planner.plan())
            return planner.mattered

        def list_schedule(switches: tuple[bool, ...]) -> set[int]:
            planner = _Planner(problem, meters, False, False, False)
            planner.bound = best
            with contextlib.suppress(_CannotFit):
                keep(_list_schedule(planner, *switches))
            return planner.mattered

        _each_distinct(_SWITCHES, heuristic)
        _each_distinct(_LIST_SWITCHES, list_schedule)
        candidates += [found for found in handmade if found is not None]
        if not candidates:
            raise PolicyError(f"{self.name}: no order fits the memory limit")
        # The shortest span, then makespan, then the lowest peak, then the first: the peak is
        # counted only for the candidates tied on both times.
        timed = [(round(span, 9), round(makespan, 9)) for _, (span, makespan) in candidates]
        shortest = min(timed)
        tied = [index for index, times in enumerate(timed) if times == shortest]
        return candidates[min(tied, key=lambda index: _peak(candidates[index][0]))][0]

    plans_bytes: bool = True
    """Whether a byte limit also bounds the plan (zb-auto); ZB-1P and ZB-2P are defined by K."""

    def _meters(self, problem: Problem) -> list[_Meter]:
        p = problem.pipeline.devices
        meters = []
        limit = self.activation_limit(problem)
        if limit is not None:
            kept = problem.weight_share or (1.0,) * p
            frees_b = [kept[s] - 1.0 for s in range(p)]
            meters.append(_Meter(([1.0] * p, frees_b, [-kept[s] for s in range(p)]), [limit] * p))
        memory = problem.memory
        if self.plans_bytes and memory is not None and memory.limit is not None:
            meters.append(self._byte_meter(memory.limit, memory, p))
        return meters

    def _byte_meter(self, limit: float, memory: StageMemory, p: int) -> _Meter:
        """Bytes above the static ones: F takes the stage's activation, B frees all but what
        W needs, W the rest; refused when a device cannot hold even one microbatch."""
        free = [limit - memory.static[s] for s in range(p)]
        need = [memory.activation[s] for s in range(p)]
        for s in range(p):
            if need[s] > free[s]:
                raise PolicyError(
                    f"{self.name}: the memory limit {limit / 1e9:.1f} GB is too small: device "
                    f"{s} needs at least {(memory.static[s] + need[s]) / 1e9:.1f} GB (its "
                    "static bytes and one microbatch's activations)"
                )
        kept = memory.weight_activation
        frees_b = [kept[s] - need[s] for s in range(p)]
        return _Meter((need, frees_b, [-kept[s] for s in range(p)]), free)

    def closed_form(self, problem: Problem) -> ClosedForm | None:
        return None


class _FixedLimit(ZBAuto):
    """zb-auto with K fixed at a multiple of p."""

    factor: int = 1
    takes_activation_limit = False
    plans_bytes = False

    def activation_limit(self, problem: Problem) -> float | None:
        return float(self.factor * problem.pipeline.devices)


class ZB1P(_FixedLimit):
    name = "zb-1p"
    summary = "ZB-1P: zb-auto within 1F1B's peak (K = p); bubble at most ZB-H1's"
    aliases = ("zb1p",)
    factor = 1


class ZB2P(_FixedLimit):
    name = "zb-2p"
    summary = "ZB-2P: zb-auto within twice 1F1B's peak (K = 2p); span bubble at most ZB-H2's"
    aliases = ("zb2p",)
    factor = 2

    def closed_form(self, problem: Problem) -> ClosedForm:
        return zero_span_bubble(problem)


_BUBBLE_BEFORE_FIRST_B, _PREFER_B, _GREEDY_W = 0, 1, 2
"""The heuristic's switches, by their position in each of `_SWITCHES`."""

_FORWARD_FIRST, _EAGER_W = 0, 1
"""The list schedule's switches, by their position in each of `_LIST_SWITCHES`."""

_MARGIN = 1e-6
"""How far beyond the best span a candidate must be sure to end before it is dropped: far
above the rounding (1e-9) that ranks spans, so no candidate that could tie is dropped."""

_SWITCHES: tuple[tuple[bool, bool, bool], ...] = tuple(
    (first, prefer, greedy)
    for first in (True, False)
    for prefer in (True, False)
    for greedy in (True, False)
)
"""(a bubble allowed before the first B, B preferred when a device runs ahead, greedy W), in
the reference's order; the first best candidate wins ties."""

_LIST_SWITCHES: tuple[tuple[bool, bool], ...] = tuple(
    (forward_first, eager_w) for forward_first in (False, True) for eager_w in (False, True)
)
"""(F first on a tie, a W in any wait): the list schedule's four settings."""
