"""A measured run read from PyTorch profiler traces, or from a plain CSV of intervals: what
each rank computed, and when.

`torch.distributed.pipelining`'s schedule runtime (`_PipelineScheduleRuntime`) wraps each
action in a `record_function` named `PP:` plus the action: `PP:0F3` (stage 0's forward of
microbatch 3), `PP:1B2` (a full backward), `PP:1I2` and `PP:1W2` (input and weight gradient),
`PP:2SEND_F0`, `PP:0RECV_B1`, ... The profiler writes them as complete events ("ph": "X",
"cat": "user_annotation") of a Chrome trace, one file per rank (`prof.export_chrome_trace`),
with the rank in `distributedInfo` and the clock's origin in `baseTimeNanoseconds`.
`ScheduleGPipe` run on its own (without the runtime) labels its actions `Forward i` and
`Backward i` instead: one stage per rank, the rank's.

A compute action waits for its inputs inside its own span (the runtime waits on the receive
before computing, sometimes after a communication call or two), so the longest stretch
without an operator of its thread (`cpu_op` or `kernel` events) before its first operator
that computes (longer than `WAIT_MS`, not a `c10d::` call), when longer than `WAIT_MS`, is
the wait: the action computed for the rest of its span (operators and the interpreter's time
between them), and its input had arrived when that stretch ended. A stretch after computing
has begun is not a wait: it is the interpreter, or the host running another thread (on a
shared CPU, an operator can stall for milliseconds). Between actions, a stretch that neither
an operator nor a runtime action (`PP:` span) covers is waiting too (`idle_after`).
`studies.calibrate` then takes back the waits of actions that had nothing to wait for. Ranks'
clocks are taken as one (one host, or hosts kept in step by NTP or PTP), shifted by their
`baseTimeNanoseconds` (`RankTrace.origin`).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from pipesim.errors import ConfigError
from pipesim.settings.text_input import read_text

TRACE_LIMIT = 1 << 30
"""Bytes of one (uncompressed) trace read at most."""

_ACTION = re.compile(r"^PP:([0-9]{1,9})(F|B|I|W)([0-9]{1,9})$")
_SINGLE_STAGE = re.compile(r"^(Forward|Backward) ([0-9]{1,9})$")
"""`ScheduleGPipe`'s labels (a schedule of one stage per rank, run without the runtime): the
stage is the rank's."""
_RANK_IN_NAME = re.compile(r"rank[_-]?([0-9]{1,6})", re.IGNORECASE)
_OPERATORS = ("cpu_op", "kernel", "gpu_memcpy")
_COMMS = ("c10d::", "record_param_comms", "nccl:", "gloo:")
"""Operators that post or wait on communication: they do not begin an action's computing."""
WAIT_MS = 0.1
"""A stretch of a compute action without operators longer than this is waiting, not the
interpreter's time between operators."""


@dataclass(frozen=True)
class MeasuredAction:
    """One compute action of one rank: `kind` F, B (full backward), I or W, of `stage` and
    `microbatch`; its span (`start` to `end`), when its wait for inputs ended (`compute`; the
    start when it did not wait) and how long it computed (`busy`: the span less the wait),
    in ms on the common clock."""

    rank: int
    kind: str
    stage: int
    microbatch: int
    start: float
    compute: float
    end: float
    busy: float
    idle_after: float = 0.0
    """ms of the time from its end to its rank's next action spent waiting, not on the
    runtime's own work: stretches that neither an operator nor a runtime action (`PP:`
    span) covers (ScheduleGPipe waits there for its forwards' sends)."""


@dataclass(frozen=True)
class RankTrace:
    """A rank's compute actions, in the order it ran them, timed from `origin`."""

    rank: int
    path: str
    actions: tuple[MeasuredAction, ...]
    origin: float = 0.0
    """Where the actions' clock starts, in ms on a clock all ranks share (the trace's
    `baseTimeNanoseconds`): kept apart so that the times keep their microseconds."""


def read_profiler_trace(path: Path) -> RankTrace:
    """The compute actions of one rank's trace (`.json` or `.json.gz`).

    Raises:
        ConfigError: the file cannot be read or is not a Chrome trace, has no `PP:` compute
            actions (nor `Forward i`, `Backward i`), or names no rank; two compute actions of
            one thread overlap.
    """
    data = _load(path)
    events = data.get("traceEvents")
    if not isinstance(events, list):
        raise ConfigError(f"{path}: not a Chrome trace (no traceEvents list)")
    rank = _rank(path, data)
    base = data.get("baseTimeNanoseconds")
    origin = float(base) / 1e6 if isinstance(base, int | float) else 0.0
    operators: dict[Any, list[tuple[float, float]]] = {}
    spans: list[tuple[float, float, Any, str, int, int]] = []
    single: list[tuple[float, float, Any, str, int, int]] = []
    """`Forward i` and `Backward i` spans, taken when there are no `PP:` ones."""
    computing: dict[Any, list[float]] = {}
    """Per thread, when each operator that computes (longer than `WAIT_MS`, not a
    communication call) started."""
    runtime: dict[Any, list[tuple[float, float]]] = {}
    """Per thread, the runtime's actions (`PP:` spans, sends and receives too)."""
    for event in events:
        if not isinstance(event, dict) or event.get("ph") != "X":
            continue
        try:
            start, duration = float(event["ts"]), float(event["dur"])
        except (KeyError, TypeError, ValueError):
            continue
        thread = event.get("tid")
        if event.get("cat") in _OPERATORS:
            operators.setdefault(thread, []).append((start, start + duration))
            if duration > WAIT_MS * 1e3 and not str(event.get("name", "")).startswith(_COMMS):
                computing.setdefault(thread, []).append(start)
            continue
        name = str(event.get("name", ""))
        if name.startswith("PP:"):
            runtime.setdefault(thread, []).append((start, start + duration))
        match = _ACTION.match(name)
        if match is not None:
            stage, kind, microbatch = int(match[1]), match[2], int(match[3])
            spans.append((start, start + duration, thread, kind, stage, microbatch))
            continue
        match = _SINGLE_STAGE.match(name)
        if match is not None:
            single.append((start, start + duration, thread, match[1][0], rank, int(match[2])))
    if not spans:
        spans = single
    if not spans:
        raise ConfigError(
            f"{path}: no PP: compute actions (F, B, I, W), nor ScheduleGPipe's Forward i and "
            "Backward i; record the run through torch.distributed.pipelining's schedules "
            "(examples/torch_pipeline.py)"
        )
    busy = {thread: _union(intervals) for thread, intervals in operators.items()}
    for starts in computing.values():
        starts.sort()
    working = {
        thread: _union(operators.get(thread, []) + runtime.get(thread, []))
        for thread in operators.keys() | runtime.keys()
    }
    """What keeps a thread from idling between actions: operators and the runtime's actions."""
    spans.sort()
    actions: list[MeasuredAction] = []
    last: dict[Any, int] = {}
    """Per thread, the index in `actions` of its latest action."""
    for start, end, thread, kind, stage, microbatch in spans:
        before = last.get(thread)
        if before is not None:
            previous = actions[before]
            if start < previous.end * 1e3 - 1e-3:
                raise ConfigError(
                    f"{path}: compute actions overlap on one thread at {start:.3f} us "
                    f"(PP:{stage}{kind}{microbatch}); is this one rank's trace?"
                )
            idle = _uncovered(working.get(thread, ([], [])), previous.end * 1e3, start)
            actions[before] = dataclasses.replace(previous, idle_after=idle / 1e3)
        last[thread] = len(actions)
        starts = computing.get(thread, [])
        first = bisect_left(starts, start)
        begun = starts[first] if first < len(starts) and starts[first] < end else end
        wait, waited_until = _wait(busy.get(thread, ([], [])), start, begun)
        actions.append(
            MeasuredAction(
                rank, kind, stage, microbatch, start / 1e3, waited_until / 1e3, end / 1e3,
                (end - start - wait) / 1e3,
            )
        )  # fmt: skip
    return RankTrace(rank, str(path), tuple(actions), origin)


def _union(intervals: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Intervals merged into disjoint ones, as (starts, ends), sorted."""
    starts: list[float] = []
    ends: list[float] = []
    for start, end in sorted(intervals):
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _uncovered(merged: tuple[list[float], list[float]], start: float, end: float) -> float:
    """The us of [start, end] in stretches longer than `WAIT_MS` that the merged intervals
    leave empty."""
    starts, ends = merged
    index = bisect_left(ends, start)
    total, cursor, limit = 0.0, start, WAIT_MS * 1e3
    while index < len(starts) and starts[index] < end:
        if starts[index] - cursor > limit:
            total += starts[index] - cursor
        cursor = max(cursor, ends[index])
        index += 1
    return total + (end - cursor if end - cursor > limit else 0.0)


def _wait(
    merged: tuple[list[float], list[float]], start: float, begun: float
) -> tuple[float, float]:
    """The wait for inputs of an action that began at `start` and began computing at `begun`
    (its first operator that computes; its end if none did), as (length, when it ended), in
    us: the longest stretch before `begun` that the merged operator intervals leave empty
    (the runtime waits for a receive before it computes, after a communication call or two),
    if longer than `WAIT_MS`; else (0, start). A stretch once computing has begun is the
    interpreter, or the host running another thread, not a wait."""
    starts, ends = merged
    index = bisect_left(ends, start)
    longest, until, cursor = 0.0, start, start
    while index < len(starts) and starts[index] < begun:
        gap = starts[index] - cursor
        if gap > longest:
            longest, until = gap, starts[index]
        cursor = max(cursor, ends[index])
        index += 1
    if begun - cursor > longest:
        longest, until = begun - cursor, begun
    return (longest, until) if longest > WAIT_MS * 1e3 else (0.0, start)


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path) if compressed else path.open("rb") as stream:
            text = stream.read(TRACE_LIMIT + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such trace") from None
    except EOFError:
        raise ConfigError(f"{path}: cut short (the compressed trace ends early)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the trace ({error})") from None
    if len(text) > TRACE_LIMIT:
        raise ConfigError(f"{path}: more than {TRACE_LIMIT >> 20} MB of trace")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not JSON, or cut short ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a Chrome trace (a JSON object)")
    return data


def _rank(path: Path, data: dict[str, Any]) -> int:
    info = data.get("distributedInfo")
    if isinstance(info, dict) and isinstance(info.get("rank"), int):
        return int(info["rank"])
    found = _RANK_IN_NAME.search(path.name)
    if found is None:
        raise ConfigError(
            f"{path}: names no rank (no distributedInfo in the trace, no rankN in its name)"
        )
    return int(found[1])


_CSV_COLUMNS = ("rank", "action", "start_us", "end_us")


def read_measured_csv(path: Path) -> list[RankTrace]:
    """Every rank's compute actions from a framework-neutral CSV: a header, then one row per
    action with `rank`, `action` (pipesim's CSV notation: `0F3`, `1B2`, `1I2`, `1W2`; other
    actions, such as `0SEND_F3`, are skipped), `start_us` and `end_us` (microseconds on one
    clock) and, optionally, `busy_us`: how long it computed (default: all of it, no wait).
    Megatron-LM's timers or any runtime's logs convert to it in a few lines.

    Raises:
        ConfigError: the file cannot be read, lacks a column, or has a row that is not
            numbers where numbers go; two actions of one rank overlap.
    """
    text = read_text(path, "measured CSV", TRACE_LIMIT)
    rows = csv.DictReader(io.StringIO(text))
    missing = [name for name in _CSV_COLUMNS if name not in (rows.fieldnames or [])]
    if missing:
        raise ConfigError(f"{path}: no column {missing[0]!r} (columns: {', '.join(_CSV_COLUMNS)}"
                          ", and optionally busy_us)")  # fmt: skip
    by_rank: dict[int, list[MeasuredAction]] = {}
    for line, row in enumerate(rows, start=2):
        match = _ACTION.match("PP:" + (row["action"] or "").strip())
        if match is None:
            continue
        try:
            rank = int(row["rank"])
            start, end = float(row["start_us"]), float(row["end_us"])
            busy = float(row["busy_us"]) if row.get("busy_us") not in (None, "") else end - start
        except (TypeError, ValueError):
            raise ConfigError(f"{path}, line {line}: rank and times must be numbers") from None
        if not (end >= start and 0 <= busy <= end - start + 0.01 and rank >= 0):
            raise ConfigError(f"{path}, line {line}: end before start, or busy beyond the span")
        busy = min(busy, end - start)  # (a rounding of the times)
        wait = (end - start) - busy
        by_rank.setdefault(rank, []).append(
            MeasuredAction(
                rank, match[2], int(match[1]), int(match[3]), start / 1e3,
                (start + wait) / 1e3, end / 1e3, busy / 1e3,
            )
        )  # fmt: skip
    if not by_rank:
        raise ConfigError(f"{path}: no compute actions (F, B, I or W)")
    traces = []
    for rank, actions in sorted(by_rank.items()):
        actions.sort(key=lambda action: action.start)
        for before, after in pairwise(actions):
            if after.start < before.end - 1e-6:
                raise ConfigError(f"{path}: rank {rank}'s actions overlap at {after.start} ms")
        traces.append(RankTrace(rank, str(path), tuple(actions)))
    return traces


def read_measured(paths: Sequence[Path]) -> list[RankTrace]:
    """Every rank of a measured run: profiler traces (one per rank) and CSV files (any ranks).

    Raises:
        ConfigError: as `read_profiler_trace` and `read_measured_csv`.
    """
    ranks: list[RankTrace] = []
    for path in paths:
        if path.suffix.lower() == ".csv":
            ranks += read_measured_csv(path)
        else:
            ranks.append(read_profiler_trace(path))
    return ranks
