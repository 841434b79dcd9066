"""V-Half and V-Min: V-shape schedules whose activation memory is a half and a third of 1F1B's.

Source: Qi, Wan, Amar and Lin, "Pipeline Parallelism with Controllable Memory", NeurIPS 2024
(arXiv 2405.15362), and its authors' reference,
`megatron/core/pipeline_parallel/zerobubble/scheduler/zbv_greedy.py` in
sail-sg/zero-bubble-pipeline-parallelism (`stable_pattern_v_half`, `stable_pattern_v_min`,
`put_w`, `reorder`, `schedule_from_pattern`).

Both place two chunks per device in a V (device d holds stages d and 2p-1-d) and split the
backward. A building block repeats every 6 time slots per microbatch: the two forwards and the
two input-gradient passes at fixed offsets per device (a wider spread for V-Half, a tighter one
for V-Min; the offsets make the block's lifespan, and so its memory, short), and the W passes
go into the free slots. Repeated m times this is already a valid schedule; its warm-up and
cool-down are then squeezed: each op moves to the earliest free slot its inputs allow that
does not raise the device's peak memory (first with the W passes in place, then without them,
which are then put back, each chunk's W in the free slots after its B). Each device's final
order is its ops in slot order; pipesim simulates that order with the real costs.

pipesim's orders are the reference's op for op (tests/data/sail-sg/, written by the
reference's own `create_schedule`; checked for p = 2..10 and six m each while building this).

Memory (exact; the authors' playground): (p+2)//2 microbatches' worth of a device's share for
V-Half and (p+4)//3 for V-Min, against 1F1B's p, once m >= p.

Bubble (approximate, so no closed form is reported): the authors' README gives, with
F = B = W and B = (p-1)/(m+p-1) 1F1B's bubble rate in the span view, B/2 for V-Half and
2B/3 "+ O(n) overhead" for V-Min, whose block idles when F, B and W differ. Measured for
p = 3..10 and m = 2p..8p: V-Half 0.30-0.52 B, V-Min 0.44-0.73 B.
"""

from __future__ import annotations

from bisect import bisect_left, insort

from pipesim.problem.ops import Kind, Op
from pipesim.problem.pipeline import Pipeline
from pipesim.schedules.planned import planned
from pipesim.schedules.v_shape import _VShape

_PERIOD = 6
"""Slots per microbatch in the repeating block: two forwards, two B and two W."""

# Ops of a device by position in the block: 0 the first chunk's forward (down the V), 1 the
# second chunk's forward (back up), 2 the second chunk's B, 3 the first chunk's B, 4 and 5 the
# W passes (4 the second chunk's, 5 the first's; 4 is every W before they are split by chunk).
_HOLDS = (1, 1, 0, 0, -1, -1)
"""What each position does to the device's activations: a forward takes one chunk's, a W
frees it."""

Slots = list[list[int]]
"""One device's slot per position per microbatch."""


def _pattern(p: int, kind: str) -> list[tuple[int, int, int, int]]:
    """Each device's slots for microbatch 0 of positions 0-3 (the authors' stable patterns)."""
    if kind == "min":
        gap = 2 if p % 3 == 0 else 0
        return [(i, 2 * p - 1 - i, 2 * p + gap + i, 4 * p + gap - 1 - i) for i in range(p)]
    gap = 3 if p % 2 == 0 else 0
    return [(2 * i, 3 * p - i - 2, 3 * p + gap + 2 * i - 1, 6 * p + gap - i - 2) for i in range(p)]


def _with_w(slots: Slots, by_chunk: bool) -> Slots:
    """Positions 0-3 plus the W passes, each in the first free slot after enough B passes
    (per chunk when `by_chunk`, else one list in B order)."""
    base = [list(times) for times in slots[:4]]
    at = {time: position for position, times in enumerate(base) for time in times}
    assert len(at) == sum(map(len, base)), "two ops in one slot"
    w: list[list[int]] = [[], []]
    pending = [0, 0]
    last = max(at)
    for slot in range(last + 1):
        position = at.get(slot)
        if position is None:
            for chunk in (0, 1):
                if pending[chunk]:
                    w[chunk].append(slot)
                    pending[chunk] -= 1
                    break
        elif position >= 2:
            pending[position - 2 if by_chunk else 0] += 1
    slot = last
    for chunk in (0, 1):
        for _ in range(pending[chunk]):
            slot += 1
            w[chunk].append(slot)
    return base + (w if by_chunk else [w[0]])


def _peak(slots: Slots) -> int:
    """The most chunk activations a device holds, walking its slots in order (without W
    lists, a free slot after a B runs its W)."""
    return _walk(_events(slots), len(slots) > 4)


def _events(slots: Slots) -> list[tuple[int, int]]:
    """A device's (slot, position) pairs, in slot order."""
    return sorted((time, position) for position, times in enumerate(slots) for time in times)


def _walk(events: list[tuple[int, int]], has_w: bool, budget: int | None = None) -> int:
    """`_peak` over events already in order; with a `budget`, the walk stops as soon as it
    is exceeded, returning a count above it."""
    limit = float("inf") if budget is None else budget
    held = peak = pending = 0
    previous = -1
    for time, position in events:
        if not has_w:
            free = time - previous - 1  # the free slots before this op run pending W passes
            done = min(free, pending)
            held -= done
            pending -= done
        held += _HOLDS[position]
        if position in (2, 3):
            pending += 1
        if held > peak:
            peak = held
            if peak > limit:
                return peak
        previous = time
    return peak


def _compact(slots: list[Slots]) -> list[Slots]:
    """Each op's start when every op takes one slot and starts as soon as its device and
    inputs allow, in the order of the slots."""
    p = len(slots)
    events = sorted(
        (time, device, position, mb)
        for device in range(p)
        for position, times in enumerate(slots[device])
        for mb, time in enumerate(times)
    )
    end: dict[tuple[int, int, int], int] = {}
    free = [0] * p
    starts = [[[0] * len(times) for times in device] for device in slots]
    for _, device, position, mb in events:
        ready = free[device]
        for need in _inputs(device, position, mb, p):
            ready = max(ready, end[need])
        starts[device][position][mb] = ready
        end[(device, position, mb)] = free[device] = ready + 1
    return starts


def _inputs(device: int, position: int, mb: int, p: int) -> list[tuple[int, int, int]]:
    """The ops (device, position, microbatch) that must end before this one starts, other
    than the device's previous op: the V's neighbours, the previous position of the same
    microbatch on this device, and the previous microbatch in the same position."""
    found = []
    if position in (0, 2) and device > 0:
        found.append((device - 1, position, mb))
    if position in (1, 3) and device + 1 < p:
        found.append((device + 1, position, mb))
    if 0 < position < 4:
        found.append((device, position - 1, mb))
    if mb > 0:
        found.append((device, position, mb - 1))
    return found


def _squeeze(slots: list[Slots], with_w: bool, microbatches: int) -> list[Slots]:
    """Move the warm-up's (when `with_w`) and the cool-down's ops to the earliest free slot
    their inputs allow without raising the peak; then compact."""
    p = len(slots)
    slots = [_with_w(device, False) if with_w else [list(t) for t in device] for device in slots]
    budget = max(_peak(device) for device in slots)
    # Each device's (slot, position) pairs, kept in order as ops move (what `_peak` sorts).
    ordered = [_events(device) for device in slots]
    has_w = [len(device) > 4 for device in slots]
    taken: list[set[int]] = [set() for _ in range(p)]
    events = sorted(
        (time, device, position, mb)
        for device in range(p)
        for position, times in enumerate(slots[device])
        for mb, time in enumerate(times)
    )
    phase = "warm-up"
    for original, device, position, mb in events:
        if phase == "warm-up" and position == 3 and device == 0:
            phase = "steady"
        if phase == "steady":
            if position == 0 and mb == microbatches - 1:
                phase = "cool-down"
            taken[device].add(original)
            continue
        if phase == "warm-up" and not with_w:
            taken[device].add(original)
            continue
        earliest = 0
        for need_device, need_position, need_mb in _inputs(device, position, mb, p):
            earliest = max(earliest, slots[need_device][need_position][need_mb] + 1)
        if position == 4:
            own_b = sorted(slots[device][2] + slots[device][3])[mb]
            earliest = max(earliest, own_b + 1)
        times = slots[device][position]
        walked = ordered[device]
        here = (original, position)
        del walked[bisect_left(walked, here)]
        for slot in range(earliest, original):
            if slot in taken[device]:
                continue
            moved = (slot, position)
            at = bisect_left(walked, moved)
            walked.insert(at, moved)
            if _walk(walked, has_w[device], budget) <= budget:
                times[mb] = slot
                break
            del walked[at]
        else:
            insort(walked, here)
        taken[device].add(times[mb])
    if not with_w:
        slots = [_with_w(device, False) for device in slots]
    return _compact(slots)


def v_memory_orders(pipeline: Pipeline, kind: str) -> list[list[Op]]:
    """Every device's order for V-Half (`kind` "half") or V-Min ("min")."""
    p, m = pipeline.devices, pipeline.microbatches
    blocks = [
        [[start + _PERIOD * mb for mb in range(m)] for start in device]
        for device in _pattern(p, kind)
    ]
    first = [device[:4] for device in _squeeze(blocks, True, m)]
    second = [_with_w(device[:4], True) for device in _squeeze(first, False, m)]
    orders = []
    for device, slots in enumerate(second):
        down, up = device, 2 * p - 1 - device
        # position -> (kind, stage), in the order of the positions above
        ops = ((Kind.F, down), (Kind.F, up), (Kind.B, up), (Kind.B, down), (Kind.W, up),
               (Kind.W, down))  # fmt: skip
        timed = sorted(
            (time, position, mb)
            for position, times in enumerate(slots)
            for mb, time in enumerate(times)
        )
        orders.append([Op(*ops[position], mb) for _, position, mb in timed])
    return orders


class _VMemory(_VShape):
    kind = "half"

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        # The squeeze depends on p, m and the kind only: searched once per shape (`planned`).
        key = (type(self), self.kind, pipeline.devices, pipeline.microbatches)
        return planned(key, lambda: v_memory_orders(pipeline, self.kind))


class VHalf(_VMemory):
    name = "v-half"
    summary = "V-Half: V placement, (p+2)//2 activations; bubble about half of 1F1B's"
    aliases = ("vhalf", "zbv-half")
    kind = "half"


class VMin(_VMemory):
    name = "v-min"
    summary = "V-Min: V placement, (p+4)//3 activations; bubble about 2/3 of 1F1B's"
    aliases = ("vmin", "zbv-min")
    kind = "min"
