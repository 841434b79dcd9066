"""Pictures drawn with matplotlib (an optional dependency: `pip install 'pipesim[plot]'`):
PNG, SVG or PDF by the file's extension, rendered to bytes so that the file is written whole
or not at all."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipesim.analysis.report import Report
from pipesim.analysis.whole_step import device_collectives
from pipesim.errors import ConfigError
from pipesim.problem.ops import Kind
from pipesim.render.sweep_table import value_text
from pipesim.simulator.trace import RECORD_END, RECORD_KIND, RECORD_START, OpRecord, TransferRecord
from pipesim.studies.monte_carlo import MonteCarlo
from pipesim.studies.plan import PlanRow, pareto, ranked
from pipesim.studies.sweep import SweepRow

FORMATS = (".png", ".svg", ".pdf")


def check_plot_path(path: Path) -> None:
    """Refuse, before anything runs, a file type matplotlib will not be asked to write, or a
    plot without matplotlib."""
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--plot {path}: the file name must end in {', '.join(FORMATS)}")
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        # SVG ids are salted with randomness unless told otherwise: fix it for same bytes.
        matplotlib.rcParams["svg.hashsalt"] = "pipesim"
        matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, smaller
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'pipesim[plot]'") from None
    return pyplot


def plan_plot(rows: Sequence[PlanRow], limit: float | None, title: str, path: Path) -> bytes:
    """Step time against peak memory for every simulated configuration, on log axes (a
    cluster's configurations span orders of magnitude in both), those that fit apart from
    those that do not, the Pareto front joined, the memory limit and the best one marked,
    the title wrapped to the figure."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(8, 5.5), dpi=120)
    ran = [row for row in rows if row.ran]
    for fits, color, label in ((True, "tab:blue", "fits"), (False, "tab:red", "over the limit")):
        chosen = [row for row in ran if row.fits == fits]
        if chosen:
            axes.scatter(
                [(row.peak_bytes or 0) / 1e9 for row in chosen],
                [row.step_ms or 0 for row in chosen],
                s=14,
                alpha=0.6,
                color=color,
                label=f"{label} ({len(chosen)})",
            )
    front = pareto(rows)
    if front:
        axes.plot(
            [(row.peak_bytes or 0) / 1e9 for row in front],
            [row.step_ms or 0 for row in front],
            color="black",
            linewidth=1,
            drawstyle="steps-post",
            label="Pareto front",
        )
    if limit is not None:
        axes.axvline(limit / 1e9, color="tab:red", linestyle="--", linewidth=1,
                     label=f"limit {limit / 1e9:.4g} GB")  # fmt: skip
    fitting = ranked(rows)
    if fitting:
        best = fitting[0]
        x, y = (best.peak_bytes or 0) / 1e9, best.step_ms or 0
        axes.scatter([x], [y], marker="*", s=160, color="gold", edgecolor="black", zorder=5,
                     label=f"best: {y:,.0f} ms, {x:.3g} GB" if y >= 100 else
                     f"best: {y:.3g} ms, {x:.3g} GB")  # fmt: skip
    if ran:
        axes.set_xscale("log")
        axes.set_yscale("log")
    axes.set_xlabel("peak memory of the fullest device (GB, log scale)")
    axes.set_ylabel("step time (ms, log scale)")
    axes.set_title("\n".join(textwrap.wrap(title, 100)), fontsize=8, loc="left")
    axes.legend(fontsize=8, loc="best")
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    return _saved(pyplot, figure, path)


def _saved(pyplot: Any, figure: Any, path: Path) -> bytes:
    """The figure as the bytes of `path`'s format, then closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lower().lstrip("."), metadata=_metadata(path))
    pyplot.close(figure)
    return buffer.getvalue()


def _metadata(path: Path) -> dict[str, Any]:
    """No creation date in the file, so the same inputs give the same bytes."""
    suffix = path.suffix.lower()
    if suffix == ".svg":
        return {"Date": None}
    if suffix == ".pdf":
        return {"CreationDate": None}
    return {}


_COLORS = {Kind.F: "#4C72B0", Kind.B: "#DD8452", Kind.W: "#55A868"}
"""Forward, backward (input gradient when split) and weight gradient."""


def timeline_plot(reports: Sequence[Report], titles: Sequence[str], path: Path) -> bytes:
    """Each report's timeline on a true time axis, one panel per report (all sharing the time
    axis), and under them one memory panel per report: ops as rectangles colored by kind
    (later chunks lighter, fused forward-and-backward pairs hatched), the microbatch inside
    when it fits, each device's sends as a thin lane under its row (queued part grey), its
    collectives after its backwards in another (gradient reduction, optimizer, all-gather),
    and the memory each device holds over time, against the limit when there is one."""
    pyplot = _pyplot()
    panels = len(reports)
    heights = [max(2.0, 0.45 * r.trace.problem.pipeline.devices) for r in reports]
    figure, axes = pyplot.subplots(
        2 * panels,
        1,
        figsize=(11, sum(heights) + 1.6 * panels + 0.6),
        dpi=110,
        sharex=True,
        gridspec_kw={"height_ratios": [h for height in heights for h in (height, 1.4)]},
        squeeze=False,
    )
    end = max(_step_end(report) for report in reports) or 1.0
    for index, (report, title) in enumerate(zip(reports, titles, strict=True)):
        _draw_timeline(axes[2 * index][0], report, title, end)
        _draw_memory(axes[2 * index + 1][0], report)
    axes[-1][0].set_xlabel("time (ms)")
    axes[-1][0].set_xlim(0, end * 1.01)
    figure.tight_layout()
    return _saved(pyplot, figure, path)


def _draw_timeline(axes: Any, report: Report, title: str, end: float) -> None:
    from matplotlib.patches import Patch  # optional dependency, present once _pyplot ran

    trace = report.trace
    pipeline = trace.problem.pipeline
    chunk_of = pipeline.chunk_of_stage
    overlapped = {op for step in trace.fused if step.overlapped for op in step.ops}
    by_device = trace.ops_by_device()
    pooled = max(map(len, by_device), default=0) > _PIXELS // 2
    if pooled:
        # More ops on a row than half its pixels: each op would be a sliver under its white
        # edge. Each pixel column is coloured by how its time was shared among F, B, W and
        # idle instead, computed from the ops (linear in them, drawn as one image per row).
        _draw_pooled(axes, by_device, trace.transfers, end)
    for device, ops in [] if pooled else enumerate(by_device):
        spans: dict[tuple[Kind, int, bool], list[tuple[float, float]]] = {}
        for r in ops:
            paired = bool(overlapped) and r.op in overlapped
            key = (r.kind, chunk_of[r.stage], paired)
            spans.setdefault(key, []).append((r.start, r.end - r.start))
        for (kind, chunk, paired), bars in sorted(spans.items()):
            axes.broken_barh(
                bars,
                (device - 0.4, 0.6),
                facecolors=_COLORS[kind],
                alpha=1.0 - 0.45 * chunk / max(1, pipeline.chunks - 1),
                edgecolor="white",
                linewidth=0.3,
                hatch="///" if paired else None,
            )
        for r in ops:
            if (r.end - r.start) / end > 0.012:
                axes.text(
                    (r.start + r.end) / 2, device - 0.1, str(r.microbatch),
                    ha="center", va="center", fontsize=6, color="white",
                )  # fmt: skip
    # One collection per sending device and kind (and one of queued spans): an artist per
    # message made the plot superlinear (16k ops took 50 s).
    queued: dict[int, list[tuple[float, float]]] = {}
    carried: dict[tuple[int, Kind], list[tuple[float, float]]] = {}
    for transfer in [] if pooled else trace.transfers:
        if transfer.start > transfer.queued:
            queued.setdefault(transfer.src, []).append(
                (transfer.queued, transfer.start - transfer.queued)
            )
        carried.setdefault((transfer.src, transfer.kind), []).append(
            (transfer.start, transfer.end - transfer.start)
        )
    for src, spans_of in queued.items():
        axes.broken_barh(spans_of, (src + 0.3, 0.08), facecolors="#BBBBBB")
    for (src, kind), spans_of in carried.items():
        axes.broken_barh(spans_of, (src + 0.3, 0.08), facecolors=_COLORS[kind], alpha=0.7)
    collectives = device_collectives(trace)
    for device, collected in enumerate(collectives or ()):
        for span in collected:
            axes.broken_barh(
                [(span.start, span.end - span.start)], (device + 0.4, 0.08),
                facecolors=_COLLECTIVE_COLORS[span.what],
            )  # fmt: skip
    axes.set_yticks(range(pipeline.devices), [f"dev {d}" for d in range(pipeline.devices)])
    axes.set_ylim(pipeline.devices - 0.5, -0.6)
    # The legend takes the row above the axes, the title (wrapped) the rows above it.
    axes.set_title("\n".join(textwrap.wrap(title, 150)), fontsize=8, loc="left", pad=16)
    axes.grid(axis="x", alpha=0.3)
    handles = [
        Patch(facecolor=_COLORS[kind], label=name)
        for kind, name in ((Kind.F, "F"), (Kind.B, "B"), (Kind.W, "W"))
        if kind is not Kind.W or trace.problem.split_backward
    ]
    if overlapped:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="F&B pair"))
    if trace.transfers:
        handles.append(Patch(facecolor="#BBBBBB", label="queued send"))
    shown = {span.what for collected in collectives or () for span in collected}
    handles += [
        Patch(facecolor=color, label=_COLLECTIVE_NAMES[what])
        for what, color in _COLLECTIVE_COLORS.items()
        if what in shown
    ]
    axes.legend(
        handles=handles,
        fontsize=7,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=len(handles),
        frameon=False,
        borderaxespad=0.1,
    )


_PIXELS = 1000
"""Columns of a timeline panel, about (11 in at 110 dpi, less its labels)."""


def _draw_pooled(
    axes: Any,
    by_device: Sequence[Sequence[OpRecord]],
    transfers: Sequence[TransferRecord],
    end: float,
) -> None:
    """Each device's row as `_PIXELS` columns, each the mix of F, B and W colours in the
    shares of its time they took (idle white), and under it its sends: the share of each
    column during which a message of it was on the link, queued or not, in grey."""
    import numpy
    from matplotlib.colors import to_rgb

    edges = numpy.linspace(0.0, end * 1.01, _PIXELS + 1)
    width = edges[1] - edges[0]
    white = numpy.ones(3)
    sending: dict[int, list[tuple[float, float]]] = {}
    for transfer in transfers:
        sending.setdefault(transfer.src, []).append((transfer.queued, transfer.end))
    for spans in sending.values():
        spans.sort()
    for device, ops in enumerate(by_device):
        mix = numpy.zeros((_PIXELS, 3))
        busy = numpy.zeros(_PIXELS)
        # a device's ops run one at a time, in time order: no sorting, no overlaps. Columns
        # read in C (a tuple per op built in Python was 70% of the plot at a million ops).
        count = len(ops)
        table = numpy.empty((count, 2))
        table[:, 0] = numpy.fromiter(map(RECORD_START, ops), float, count)
        table[:, 1] = numpy.fromiter(map(RECORD_END, ops), float, count)
        kinds = numpy.fromiter(map(RECORD_KIND, ops), numpy.int8, count)
        for kind in (Kind.F, Kind.B, Kind.W):
            rows = table[kinds == kind]
            if len(rows):
                share = _covered(rows, edges) / width
                mix += share[:, None] * numpy.array(to_rgb(_COLORS[kind]))
                busy += share
        mix += numpy.clip(1.0 - busy, 0.0, 1.0)[:, None] * white
        axes.imshow(
            mix[None, :, :], extent=(edges[0], edges[-1], device + 0.2, device - 0.4),
            aspect="auto", interpolation="nearest",
        )  # fmt: skip
        sent = sending.get(device)
        if sent:
            share = numpy.clip(_covered(sent, edges) / width, 0.0, 1.0)
            lane = 1.0 - share[:, None] * (1.0 - numpy.array(to_rgb("#888888")))
            axes.imshow(
                lane[None, :, :], extent=(edges[0], edges[-1], device + 0.38, device + 0.3),
                aspect="auto", interpolation="nearest",
            )  # fmt: skip
    axes.text(
        0.995, 1.0, f"{max(map(len, by_device)):,} ops on a row: each pixel column mixes "
        "the colours of what it held, by time", transform=axes.transAxes, ha="right",
        va="bottom", fontsize=7,
    )  # fmt: skip


def _covered(spans: Any, edges: Any) -> Any:
    """The time within each bin between `edges` that the union of `spans` (start, end; a
    sequence or an array of rows in order of start) covers: a running maximum of the ends
    makes them disjoint, a cumulative sum of their lengths gives the time covered up to any
    point."""
    import numpy

    ordered = numpy.asarray(spans, dtype=float)
    starts = ordered[:, 0]
    ends = numpy.maximum.accumulate(ordered[:, 1])
    starts = numpy.maximum(starts, numpy.concatenate(([-numpy.inf], ends[:-1])))
    lengths = numpy.maximum(ends - starts, 0.0)
    before = numpy.concatenate(([0.0], numpy.cumsum(lengths)))
    # spans that ended by each edge, then the part of the next one begun by it
    done = numpy.searchsorted(ends, edges, side="right")
    covered = before[done]
    running = done < len(starts)
    begun = starts[numpy.minimum(done, len(starts) - 1)]
    covered += numpy.where(running, numpy.clip(edges - begun, 0.0, None), 0.0)
    return numpy.diff(covered)


_COLLECTIVE_COLORS = {"reduction": "#8172B3", "optimizer": "#937860", "gather": "#DA8BC3"}
"""Gradient reduction, optimizer step, parameter all-gather: a thin lane under each device."""
_COLLECTIVE_NAMES = {
    "reduction": "gradient reduction",
    "optimizer": "optimizer",
    "gather": "parameter all-gather",
}


def _step_end(report: Report) -> float:
    """When the whole step ends: the pipeline's makespan, or later for what follows it."""
    lanes = device_collectives(report.trace)
    ends = [span.end for lane in lanes or () for span in lane]
    return max([report.summary.makespan, *ends])


def _peaks(
    times: list[float], held: list[float], end: float, pixels: int = _PIXELS
) -> tuple[Any, Any]:
    """A step curve with more steps than twice the `pixels` columns of its panel, as the most
    held in each column (a peak is never lost); a shorter one as it is, closed at `end`."""
    import numpy

    if len(times) <= 2 * pixels:
        return [*times, end], [*held, held[-1]]
    at = numpy.asarray(times, dtype=float)
    values = numpy.asarray(held, dtype=float)
    edges = numpy.linspace(at[0], end, pixels + 1)
    # per column: the step in force at its left edge, the last one begun before its right
    # edge, and the most held from the one to the other
    first = numpy.searchsorted(at, edges[:-1], side="right") - 1
    last = numpy.searchsorted(at, edges[1:], side="left") - 1
    most = numpy.maximum(numpy.maximum.reduceat(values, first), values[last])
    return edges, numpy.append(most, most[-1])


def _draw_memory(axes: Any, report: Report) -> None:
    summary = report.summary
    if summary.memory is not None:
        for use in summary.memory:
            times, held = _peaks(
                [time for time, _ in use.timeline],
                [held / 1e9 for _, held in use.timeline],
                summary.makespan,
            )
            axes.step(times, held, where="post", linewidth=0.8, label=f"dev {use.device}")
        if summary.memory_limit is not None:
            axes.axhline(summary.memory_limit / 1e9, color="tab:red", linestyle="--", linewidth=1)
        axes.set_ylabel("GB held", fontsize=8)
    else:
        for device, steps in enumerate(report.activations_over_time()):
            if steps:
                times, held = _peaks(
                    [time for time, _ in steps], [held for _, held in steps], summary.makespan
                )
                axes.step(times, held, where="post", linewidth=0.8, label=f"dev {device}")
        axes.set_ylabel("activations", fontsize=8)
    axes.grid(alpha=0.3)
    devices = report.trace.problem.pipeline.devices
    if devices <= 32:  # one entry per device, in rows of 8 (more would hide the curves)
        axes.legend(fontsize=6, ncol=min(8, devices), loc="upper right")
    else:
        axes.text(0.99, 0.95, f"{devices} devices, one line each", transform=axes.transAxes,
                  ha="right", va="top", fontsize=7)  # fmt: skip


def sweep_plot(rows: Sequence[SweepRow], title: str, path: Path) -> bytes:
    """Step time and bubble against the swept value, one line per policy."""
    pyplot = _pyplot()
    figure, (top, bottom) = pyplot.subplots(2, 1, figsize=(8, 6), dpi=120, sharex=True)
    setting = rows[0].setting if rows else "value"
    values = list(dict.fromkeys(row.value for row in rows))
    numeric = all(isinstance(value, int | float) for value in values)
    position = {value: (value if numeric else index) for index, value in enumerate(values)}
    for policy in dict.fromkeys(row.policy for row in rows):
        ran = [row for row in rows if row.policy == policy and row.figures is not None]
        xs = [position[row.value] for row in ran]
        top.plot(
            xs, [row.figures.summary.makespan for row in ran if row.figures], "o-", label=policy
        )
        bubbles = [100 * row.figures.summary.bubble_fraction for row in ran if row.figures]
        bottom.plot(xs, bubbles, "o-", label=policy)
    if not numeric:
        bottom.set_xticks(range(len(values)), [value_text(setting, value) for value in values])
    top.set_ylabel("step time (ms)")
    bottom.set_ylabel("bubble (%)")
    bottom.set_xlabel(setting.replace("_", " "))
    top.set_title(title, fontsize=9)
    top.legend(fontsize=8)
    for axes in (top, bottom):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return _saved(pyplot, figure, path)


def monte_carlo_plot(studies: Sequence[MonteCarlo], title: str, path: Path) -> bytes:
    """`compare --runs --plot`: each policy's step times over the runs, as a box (quartiles,
    whiskers at the extremes) with every run beside it, its p50 (dot) and p95 (triangle)
    marked, and their values under its name (beside the boxes they would collide)."""
    pyplot = _pyplot()
    ran = [study for study in studies if study.error is None]
    figure, axes = pyplot.subplots(figsize=(max(6.0, 1.1 * len(ran) + 2), 5), dpi=120)
    times = [[run.makespan for run in study.runs] for study in ran]
    positions = list(range(1, len(ran) + 1))
    axes.boxplot(times, positions=positions, whis=(0, 100), widths=0.5)
    for position, study, values in zip(positions, ran, times, strict=True):
        spread = [position + 0.3 + 0.1 * ((index * 0.618) % 1) for index in range(len(values))]
        first = position == positions[0]  # one legend entry per kind of mark
        axes.scatter(spread, values, s=4, alpha=0.4, color="tab:blue",
                     label="one run" if first else None)  # fmt: skip
        axes.scatter([position], [study.makespan.p50], marker="o", color="tab:red", s=24,
                     zorder=3, label="p50" if first else None)  # fmt: skip
        axes.scatter([position], [study.makespan.p95], marker="v", color="tab:red", s=24,
                     zorder=3, label="p95" if first else None)  # fmt: skip
    names = [
        f"{study.policy}\np50 {study.makespan.p50:.4g}\np95 {study.makespan.p95:.4g}"
        for study in ran
    ]
    axes.set_xticks(positions, names, fontsize=7)
    axes.set_ylabel("step time (ms)")
    runs = len(ran[0].runs) if ran else 0
    axes.set_title(f"{title} ({runs} runs each)", fontsize=9)
    if ran:
        axes.legend(fontsize=7, loc="best", title="box: quartiles, whiskers: extremes",
                    title_fontsize=7)  # fmt: skip
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return _saved(pyplot, figure, path)
