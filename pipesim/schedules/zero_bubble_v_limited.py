"""ZB-V under an activation limit: the Zero Bubble authors' V scheduler with its memory bound.

Source: Qi et al., "Pipeline Parallelism with Controllable Memory", NeurIPS 2024, and its
authors' reference, `PipelineGraph.try_v_schedule` and `create_schedule` in
`megatron/core/pipeline_parallel/zerobubble/scheduler/zbv.py` of
sail-sg/zero-bubble-pipeline-parallelism (default bound: 2p chunk activations, K = p). Without a
limit zb-v runs PyTorch's `ScheduleZBVZeroBubble` order, a fixed pattern that differs from this
scheduler's even at K = p and equal costs. `zb-v --activation-limit K` runs it
with K microbatches' worth (2K chunk activations, each counted whole from its forward to its B
and then, until its W, the share W needs: the runtime's f_mem, b_mem and w_mem, with
`--weight-memory` or the model's bytes giving M_W / M_B), planned as the reference's runtime
plans it, for the median F, B and W over the stages and the median message time, then
simulated with every stage's own costs and links.

Per device, it runs as many first-chunk forwards as fit before the V turns back, then, per
round, a B on every device (the chunk whose gradient is ready first) and a forward (the chunk
whose input is ready), filling waits with deferred W passes and running a W whenever the next
op would not fit; it repeats with each device allowed the bubble the worst device had (the
reference's "approved bubble") while that lowers the worst bubble, and keeps the best of its
four variants (fill waits before F, before B). Where a variant runs out of memory (the
reference stops with an assertion), pipesim keeps the others; below the least K any of them
keeps, it refuses the run and names that K.

pipesim's orders equal the reference's op for op wherever the reference completes (checked
for p = 2..8, three m and five K each, under four sets of equal F, B, W and message costs).

Peak activations: at most K on every device, by construction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from statistics import median

from pipesim.errors import PolicyError
from pipesim.problem.ops import Kind, Op
from pipesim.problem.pipeline import Problem

_KINDS = (Kind.F, Kind.B, Kind.W)


class _Full(Exception):
    """The next op does not fit and no W is left to make room."""


class _VPlan:
    """One pass of the scheduler. Ops are (cat, chunk, microbatch) as the reference numbers
    them: cat 0 F, 1 B, 2 W; a B's or W's chunk 0 is the second model chunk (the V's way up,
    where the backward starts)."""

    def __init__(
        self,
        problem: Problem,
        bound: float,
        fill_f: bool,
        fill_b: bool,
        approved: Sequence[float] | None,
    ) -> None:
        pipeline = problem.pipeline
        self.p, self.m = pipeline.devices, pipeline.microbatches
        self.problem, self.bound = problem, bound
        self.fill_f, self.fill_b = fill_f, fill_b
        self.approved = list(approved) if approved is not None else [-1.0] * self.p
        self.most_approved = max(self.approved)
        self.count = [[0] * 6 for _ in range(self.p)]
        self.end: dict[tuple[int, int, int, int], float] = {}
        self.clock = [0.0] * self.p
        self.held = [0.0] * self.p
        # What an F, a B and a W do to a device's chunk activations, as the reference's runtime
        # counts them (f_mem, b_mem, w_mem): a forward adds one, B frees all but the share W
        # needs (`Problem.weight_share`, the paper's M_W / M_B; the whole without it), W the rest.
        shares = problem.weight_share or (1.0,) * pipeline.num_stages
        self.holds = [
            [
                [
                    (1.0, share - 1.0, -share)[cat]
                    for share in (shares[d], shares[2 * self.p - 1 - d])
                ]
                for d in range(self.p)
            ]
            for cat in range(3)
        ]
        self.bubble = [0.0] * self.p
        self.pending_w: list[deque[int]] = [deque() for _ in range(self.p)]
        self.orders: list[list[Op]] = [[] for _ in range(self.p)]
        # As the reference's runtime does, one cost per kind (the median over the stages) and
        # one message time (the median over the hops): the plan is for the typical chunk, the
        # simulation then runs it with every stage's own costs.
        stages = range(pipeline.num_stages)
        self.costs = [median(problem.duration(Op(kind, s, 0)) for s in stages) for kind in _KINDS]
        network = problem.network
        hops = [
            network.transfer_time(src, dst, kind)
            for device in range(self.p - 1)
            for src, dst in ((device, device + 1), (device + 1, device))
            for kind in (Kind.F, Kind.B)
        ]
        self.message = median(hops) if hops else 0.0

    def stage(self, cat: int, chunk: int, device: int) -> int:
        model_chunk = chunk if cat == 0 else 1 - chunk
        return device if model_chunk == 0 else 2 * self.p - 1 - device

    def finished(self, cat: int, chunk: int, device: int, mb: int) -> float:
        """When that op ended, or -1 if it has not been placed."""
        return self.end.get((cat, chunk, device, mb), -1.0)

    def worst_bubble(self, device: int = -1) -> float:
        worst = max(self.bubble)
        if device >= 0:
            worst = max(worst, self.most_approved - self.approved[device])
        return worst

    def put(self, cat: int, chunk: int, device: int) -> None:
        mb = self.count[device][cat * 2 + chunk]
        if mb >= self.m:
            raise _Full
        hold = self.holds[cat][device][self.stage(cat, chunk, device) != device]
        if self.held[device] + hold > self.bound + 1e-9:
            raise _Full
        if cat > 0 or chunk > 0:
            # the op before it on this device: F of the first chunk, F of the second, B of
            # the second model chunk (chunk 0 here), B of the first; a W needs its own B
            before = (1, chunk) if cat == 2 else divmod(cat * 2 + chunk - 1, 2)
            if self.finished(before[0], before[1], device, mb) < 0:
                raise _Full
        neighbour = device + 1 if chunk == 1 else device - 1
        if cat < 2 and 0 <= neighbour < self.p and self.finished(cat, chunk, neighbour, mb) < 0:
            raise _Full  # its input is not placed yet
        cost = self.costs[cat]
        end = no_bubble = self.clock[device] + cost
        if cat < 2 and chunk == 1 and device < self.p - 1:
            end = max(end, self.finished(cat, 1, device + 1, mb) + self.message + cost)
        if cat < 2 and chunk == 0 and device > 0:
            end = max(end, self.finished(cat, 0, device - 1, mb) + self.message + cost)
        if self.count[device][0] > 0:
            self.bubble[device] += end - no_bubble
        self.end[(cat, chunk, device, mb)] = end
        self.clock[device] = end
        self.held[device] += hold
        self.orders[device].append(Op(_KINDS[cat], self.stage(cat, chunk, device), mb))
        if cat == 1:
            self.pending_w[device].append(chunk)
        self.count[device][cat * 2 + chunk] += 1

    def put_w(self, device: int) -> None:
        if not self.pending_w[device]:
            raise _Full
        self.put(2, self.pending_w[device].popleft(), device)

    def make_room(self, device: int, cat: int) -> None:
        """W passes until an op of `cat` fits (only a forward adds, so only it can need room)."""
        while cat == 0 and self.held[device] + 1.0 > self.bound + 1e-9:
            self.put_w(device)

    def fill(self, device: int, waits_for: float | None, always: bool) -> None:
        """W passes while they end before the input arrives (`waits_for`: when its producer
        ends plus the hop; None for an op with no input from a neighbour), and one more if the
        wait would exceed what this device may idle (`always`: the variant's choice)."""
        pending = self.pending_w[device]
        while pending and waits_for is not None:
            if waits_for < self.clock[device] + self.costs[2]:
                break
            self.put_w(device)
        if waits_for is None:
            # The reference reads the last node's end here (index -1), which stays unplaced
            # until the very end: -1 plus a hop.
            waits_for = self.finished(2, 1, self.p - 1, self.m - 1) + self.message
        gap = waits_for - self.clock[device]
        if pending and gap > self.worst_bubble(device) - self.bubble[device] and always:
            self.put_w(device)

    def warm_up(self) -> None:
        p, m = self.p, self.m
        for device in range(p):
            self.put(0, 0, device)
        for device in range(p - 1, -1, -1):
            if device == p - 1:
                self.put(0, 1, device)
                continue
            turn = self.finished(0, 1, device + 1, 0) + self.message
            while (
                self.held[device] + (2 + device * 2) <= self.bound + 1e-9
                and self.clock[device] + self.costs[0] <= turn
                and self.count[device][0] < m
            ):
                for earlier in range(device + 1):
                    self.put(0, 0, earlier)
            self.put(0, 1, device)
        chunk = 0
        for device in range(1, p):
            count, before = self.count[device], self.count[device - 1]
            while count[0] + count[1] < before[0] + before[1] or count[1] <= before[1] < m:
                for later in range(p - 1, device - 1, -1):
                    if self.count[later][chunk] < m:
                        self.put(0, chunk, later)
                chunk = 1 - chunk

    def backwards(self) -> None:
        p = self.p
        for device in range(p):
            self.make_room(device, 1)
        firsts, seconds = [], []
        for device in range(p):
            count = self.count[device]
            if count[3] >= count[2]:
                firsts.append(device)
            elif (
                device == p - 1
                or self.finished(1, 1, device + 1, count[3]) >= 0
                or count[2] >= self.m
            ):
                seconds.append(device)
            else:
                firsts.append(device)
        for device, chunk in [(d, 1) for d in reversed(seconds)] + [(d, 0) for d in firsts]:
            count = self.count[device]
            waits_for: float | None = None
            if chunk == 1 and device < p - 1:
                waits_for = self._arrival(1, 1, device + 1, count[3])
            if chunk == 0 and device > 0:
                waits_for = self._arrival(1, 0, device - 1, count[2])
            self.fill(device, waits_for, chunk == 1 or self.fill_b)
            self.put(1, chunk, device)

    def _arrival(self, cat: int, chunk: int, source: int, mb: int) -> float:
        """When the input from `source` arrives; for a producer not placed yet, its end reads
        -1 and the reference compares -1 plus the message time, as is."""
        return self.finished(cat, chunk, source, mb) + self.message

    def forwards(self) -> None:
        p, m = self.p, self.m
        for device in range(p):
            count = self.count[device]
            if count[1] >= m:
                continue
            chunk: int | None = None
            if count[1] >= count[0]:
                chunk = 0
            elif device == p - 1 or self.finished(0, 1, device + 1, count[1]) >= 0:
                chunk = 1
            elif count[0] < m and (device == 0 or self.finished(0, 0, device - 1, count[0]) >= 0):
                chunk = 0
            if chunk is None:
                continue
            self.make_room(device, 0)
            waits_for: float | None = None
            if chunk == 0 and device > 0:
                waits_for = self._arrival(0, 0, device - 1, count[0])
            if chunk == 1 and device < p - 1:
                waits_for = self._arrival(0, 1, device + 1, count[1])
            self.fill(device, waits_for, self.fill_f)
            self.put(0, chunk, device)

    def run(self) -> tuple[list[list[Op]], float]:
        self.warm_up()
        for _ in range(2 * self.m):
            self.backwards()
            self.forwards()
        for device in range(self.p):
            while self.pending_w[device]:
                self.put_w(device)
        return self.orders, self.worst_bubble()


def _best_pass(
    problem: Problem, bound: float, fill_f: bool, fill_b: bool
) -> tuple[list[list[Op]], float]:
    """A variant's schedule, as the reference's recursion finds it: after a pass, try again
    with each device allowed the bubble that pass gave it, for as long as the worst bubble
    keeps shrinking below what was allowed; keep the deepest pass that beats the one before."""
    levels: list[tuple[list[list[Op]], float]] = []
    approved: list[float] | None = None
    while True:
        plan = _VPlan(problem, bound, fill_f, fill_b, approved)
        orders, worst = plan.run()
        levels.append((orders, worst))
        most = max(approved) if approved is not None else -1.0
        if not (most < 0 or worst < most):
            break
        approved = list(plan.bubble)
    result = levels[-1]
    for level in reversed(levels[:-1]):
        result = result if result[1] < level[1] else level
    return result


def zbv_limited_orders(problem: Problem, limit: float) -> list[list[Op]]:
    """The best of the reference's four variants within `limit` microbatches' worth; a limit
    none of them keeps is refused, naming the least one that works."""
    found = _best_of_variants(problem, limit)
    if found is not None:
        return found
    least = next(
        (k / 2 for k in range(int(2 * limit) + 1, 4 * problem.pipeline.devices + 1)
         if _best_of_variants(problem, k / 2) is not None),
        None,
    )  # fmt: skip
    needs = f"; it needs --activation-limit {least:g} or more" if least is not None else ""
    raise PolicyError(f"zb-v cannot keep within {limit:g} microbatches' worth{needs}")


def _best_of_variants(problem: Problem, limit: float) -> list[list[Op]] | None:
    best: tuple[list[list[Op]], float] | None = None
    for fill_b in (True, False):
        for fill_f in (True, False):
            try:
                found = _best_pass(problem, 2 * limit, fill_f, fill_b)
            except _Full:
                continue  # where the reference would stop with an assertion
            if best is None or found[1] < best[1]:
                best = found
    return None if best is None else best[0]
