"""Commands that simulate one schedule: run, validate, export."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, RenderableType
from rich.text import Text

from pipesim.cli.app import app, warn
from pipesim.cli.no_effect import (
    note_free_messages,
    note_mfu_unused,
    note_unused_chart_flags,
    note_unused_pool,
    note_unused_randomness,
    note_variability_in_a_fixed_order,
    note_weight_guessed,
)
from pipesim.cli.options import (
    INPUT_OUTPUT,
    DaskScheduler,
    DaskTimeout,
    Format,
    OutputFormat,
    Runs,
    Schedule,
    Workers,
    Yes,
    dask_cluster_given,
    patience_unless,
    takes_outputs,
    takes_settings,
)
from pipesim.cli.output_files import (
    Named,
    check_outputs,
    commit_now,
    print_json,
    write_files,
)
from pipesim.errors import ConfigError, OutOfMemoryError, ScheduleStalled
from pipesim.render.outputs import SAVED_WIDTH, Requested, Shown
from pipesim.render.style import ms
from pipesim.settings.declarations import Settings
from pipesim.simulator.gc_pause import cyclic_gc_paused

if TYPE_CHECKING:
    from pipesim.analysis.report import Report
    from pipesim.problem.pipeline import Pipeline
    from pipesim.render import GanttChart
    from pipesim.simulator.trace import Trace
    from pipesim.studies.executor import Where
    from pipesim.studies.explain import Explanation
    from pipesim.studies.run import RunResult


_PROBLEMS_SHOWN = 50
"""validate lists this many problems of an invalid file, then counts the rest."""


@app.command()
@takes_settings()
@takes_outputs("trace", "svg", "html", "save_terminal", "plot")
def run(
    settings: Settings,
    config: Path | None,
    outputs: Requested,
    schedule: Schedule = None,
    output_format: Format = OutputFormat.text,
    width: Annotated[
        int | None,
        typer.Option(
            min=40,
            max=10_000,
            rich_help_panel=INPUT_OUTPUT,
            help=f"Columns of the --save-terminal / --svg rendering (default {SAVED_WIDTH}).",
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            metavar="",
            rich_help_panel=INPUT_OUTPUT,
            help="Say where the bubble comes from and what would change it.",
        ),
    ] = False,
    fail_on_oom: Annotated[
        bool,
        typer.Option(
            "--fail-on-oom",
            metavar="",
            rich_help_panel="Memory",
            help="Exit 1 when a device needs more memory than the limit (after the report).",
        ),
    ] = False,
    runs: Runs = None,
    workers: Workers = None,
    dask_scheduler: DaskScheduler = None,
    dask_timeout: DaskTimeout = None,
    yes: Yes = False,
    window_from: Annotated[
        float | None,
        typer.Option(
            "--from", rich_help_panel="Chart", help="Draw the chart from this time (ms) on."
        ),
    ] = None,
    window_to: Annotated[
        float | None,
        typer.Option("--to", rich_help_panel="Chart", help="Draw the chart up to this time (ms)."),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(rich_help_panel="Chart", help="Draw only these devices: 0-3,7."),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="TRACE", rich_help_panel="Chart",
            help="A measured run (one profiler trace per rank, or a CSV; see calibrate): draw "
            "its typical step under each device's simulated one and compare them. Repeat it "
            "for each rank's trace.",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Simulate one training step and show its timeline, bubbles and activation memory."""
    outputs.check()
    note_unused_chart_flags(
        output_format.value,
        {"--from": window_from, "--to": window_to, "--devices": devices},
        width,
        saved="svg" in outputs or "save_terminal" in outputs,
    )
    note_unused_randomness(settings, runs)
    note_mfu_unused(settings)
    note_unused_pool("run", runs, {"--workers": workers, "--dask-scheduler": dask_scheduler})
    cluster = dask_cluster_given(dask_scheduler, dask_timeout)
    check_outputs(
        outputs.named(),
        inputs=[("--config", config), ("--schedule", schedule), _policy_file(settings.policy)],
    )
    # One step keeps its whole trace until its outputs are written, and has no cycles worth
    # collecting: a collection while it lives would only scan its records again (a run with
    # timed messages has one per message besides one per op). A Monte Carlo of --runs collects
    # after each of its runs instead (`executor._one`), in this process or in its workers.
    with cyclic_gc_paused() if runs is None else nullcontext():
        _step_and_outputs(
            settings, outputs, schedule, output_format, width, explain, fail_on_oom, runs,
            workers, cluster, yes, (window_from, window_to), devices, against,
        )  # fmt: skip


def _step_and_outputs(
    settings: Settings,
    outputs: Requested,
    schedule: Path | None,
    output_format: OutputFormat,
    width: int | None,
    explain: bool,
    fail_on_oom: bool,
    runs: int | None,
    workers: int | None,
    cluster: Where,
    yes: bool,
    window: tuple[float | None, float | None],
    devices: str | None,
    against: list[Path] | None,
) -> None:
    """`run`'s work once its options are checked: simulate, then show and write; everything
    it made is gone when it returns."""
    # What a run may need is imported when it needs it: start-up is most of a small run.
    from pipesim.render.progress import DeferredProgress
    from pipesim.studies.run import run_step

    text = output_format is OutputFormat.text
    with patience_unless(yes):
        result = run_step(
            settings, schedule, runs, explain, workers, cluster,
            lambda label: DeferredProgress(label, text),
        )  # fmt: skip
    note_free_messages(result.settings, result.report.trace.problem.network)
    problem = result.report.trace.problem
    if problem.split_backward:
        note_weight_guessed(result.settings, [result.report.trace.policy])
    views = _run_views(result, window, _devices(devices, problem.pipeline))
    measured = _measured(result.report, against) if against else None
    write_files(outputs.contents(_shown(result, views, width, measured)))
    for note in result.notes:
        warn(note)
    if output_format is OutputFormat.json:
        options = {"schedule": None if schedule is None else str(schedule.resolve()),
                   "runs": runs, "explain": explain,
                   "against": [str(path) for path in against or ()]}  # fmt: skip
        _write_run_json(result, settings, options, measured)
    else:
        console = Console(markup=False)
        for view in views:
            console.print(view)
        if measured is not None:
            _print_against(result.report.trace, measured, console)
    report = result.report
    if fail_on_oom and report.summary.oom:
        commit_now()
        worst = max(report.summary.oom, key=lambda oom: oom.bytes_over)
        raise OutOfMemoryError(
            f"{len(report.summary.oom)} device(s) out of memory; device {worst.device} needs "
            f"{worst.bytes_over / 1e9:.1f} GB more than the limit"
        )


def _measured(report: Report, traces: list[Path]) -> Trace:
    """The measured run's typical step, as a timeline of this run's problem."""
    from pipesim.settings.profiler_trace import read_measured
    from pipesim.studies.calibrate import measured_step

    return measured_step(read_measured(traces), report.trace.problem)


def _against_record(simulated: Trace, measured: Trace) -> dict[str, object]:
    """The measured step beside the simulated one, per device and for the step (JSON)."""
    from pipesim.render.numbers import num

    devices = []
    for device, (sim_ops, meas_ops) in enumerate(
        zip(simulated.ops_by_device(), measured.ops_by_device(), strict=True)
    ):
        row: dict[str, object] = {"device": device}
        # a device's last op ends at: its first op's start + what it computed + what it
        # waited between its ops (for inputs, and for messages): where the two differ
        for side, ops in (("measured", meas_ops), ("simulated", sim_ops)):
            first, end = min(r.start for r in ops), max(r.end for r in ops)
            busy = sum(r.end - r.start for r in ops)
            row |= {
                f"busy_{side}": num(busy),
                f"end_{side}": num(end),
                f"first_start_{side}": num(first),
                f"waiting_{side}": num(end - first - busy),
            }
        devices.append(row)
    return {
        "measured_ms": num(measured.makespan),
        "simulated_ms": num(simulated.makespan),
        "error": num(simulated.makespan / measured.makespan - 1),
        "devices": devices,
    }


def _print_against(simulated: Trace, measured: Trace, console: Console) -> None:
    """The two timelines, device by device, and what differs."""
    from pipesim.render.gantt import OverlayChart

    record = _against_record(simulated, measured)
    error = simulated.makespan / measured.makespan - 1
    console.print(Text())
    console.print(OverlayChart(simulated, measured))
    console.print(
        Text.assemble(
            ("against the measured run: ", "bold"),
            f"measured step {ms(measured.makespan)} ms, simulated {ms(simulated.makespan)} "
            f"ms ({'+' if error >= 0 else ''}{error * 100:.1f}%)",
        )
    )
    for device in record["devices"]:  # type: ignore[attr-defined]
        console.print(
            Text(
                f"  device {device['device']}: its last op ends at "
                f"{ms(device['end_simulated'])} ms simulated, {ms(device['end_measured'])} "
                f"measured: {_differences(device)}",
                style="dim",
            )
        )


def _differences(device: dict[str, float]) -> str:
    """Where a device's simulated end differs from the measured one: when it began, how long
    it computed, how long it waited between its ops."""
    parts = []
    for key, longer, shorter in (
        ("first_start", "it starts {} ms later", "it starts {} ms earlier"),
        ("busy", "its ops take {} ms longer", "its ops take {} ms less"),
        ("waiting", "it waits {} ms longer between them", "it waits {} ms less between them"),
    ):
        difference = device[f"{key}_simulated"] - device[f"{key}_measured"]
        if round(difference, 3):
            parts.append((longer if difference > 0 else shorter).format(ms(abs(difference))))
    return "in the simulation " + ", ".join(parts) if parts else "the same"


def _run_views(
    result: RunResult, window: tuple[float | None, float | None], devices: list[int] | None
) -> list[RenderableType]:
    """What the terminal shows for a run: the Monte Carlo study first, then the step."""
    from pipesim.render import GanttChart

    report = result.report
    chart = GanttChart(report.trace, _window(*window, report.trace.makespan), devices)
    views = _views(report, result.explanation, chart, result.settings)
    if result.study is not None:
        from pipesim.render.monte_carlo import MonteCarloReport, damage_lines

        views = [MonteCarloReport(result.study), Text(), *views]
        if result.damage is not None:
            views += [Text.assemble(("• ", "bold"), line) for line in damage_lines(result.damage)]
    return views


def _shown(
    result: RunResult,
    views: list[RenderableType],
    width: int | None,
    measured: Trace | None = None,
) -> Shown:
    """What a run's files are made from; with a measured run, the plot draws it in a panel
    of its own under the simulated one, on the same time axis."""
    from pipesim.render.title import plot_title

    report = result.report
    title = plot_title(report, result.settings)
    reports, titles = [report], [title]
    if measured is not None:
        from pipesim.analysis.report import analyze

        reports.append(analyze(measured, report.policy, detail=False))
        titles.append(
            f"measured (--against): the run's typical step, {ms(measured.makespan)} ms; each "
            "op drawn for the time it computed"
        )

    def plot(path: Path) -> bytes:
        from pipesim.render.plots import timeline_plot  # matplotlib's helpers, when asked

        return timeline_plot(reports, titles, path)

    return Shown(title, report, views, plot, width or SAVED_WIDTH, measured)


def _write_run_json(
    result: RunResult,
    given: Settings,
    options: Mapping[str, object],
    measured: Trace | None = None,
) -> None:
    """The run in the envelope: the step, or with --runs the study and its median run; with
    a measured run, its comparison (`against`)."""
    from pipesim.render import write_json
    from pipesim.render.envelope import envelope, write_envelope

    report = result.report
    if result.study is not None:
        from pipesim.render.json_report import header
        from pipesim.render.monte_carlo import damage_record, monte_carlo_record

        record = {**monte_carlo_record(result.study), "median_run": header(report)}
        if result.damage is not None:
            record["explanation"] = damage_record(result.damage)
        if measured is not None:
            record["against"] = _against_record(report.trace, measured)
        print_json(envelope("run", given, options, record))
        return
    extra: dict[str, object] | None = None
    if result.explanation is not None:
        from pipesim.render.explanation import explanation_record

        extra = {"explanation": explanation_record(report, result.explanation)}
    if measured is not None:
        extra = {**(extra or {}), "against": _against_record(report.trace, measured)}
    write_envelope(
        sys.stdout, "run", given, options, lambda out: write_json(report, out, extra, end="")
    )


def _window(start: float | None, end: float | None, makespan: float) -> tuple[float, float] | None:
    """The part of the step to draw, checked against it."""
    if start is None and end is None:
        return None
    low = 0.0 if start is None else start
    if math.isfinite(low) and low >= makespan:
        raise ConfigError(f"--from {low:g} ms: the step ends at {makespan:g} ms")
    high = makespan if end is None else end
    if not (math.isfinite(low) and math.isfinite(high)) or not 0 <= low < high:
        raise ConfigError(f"--from {low:g} --to {high:g}: give 0 <= from < to (ms)")
    return low, min(high, makespan)


def _devices(text: str | None, pipeline: Pipeline) -> list[int] | None:
    """'0-3,7' -> [0, 1, 2, 3, 7], each a device of this pipeline."""
    if text is None:
        return None
    count = pipeline.devices
    chosen: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ConfigError(f"--devices: {part.strip()[:20]!r} is not a device or a range a-b")
        low, high = int(first), int(last) if dash else int(first)
        if low > high or high >= count:
            raise ConfigError(f"--devices {text[:40]}: devices are 0-{count - 1}")
        chosen += [device for device in range(low, high + 1) if device not in chosen]
    return chosen


def _views(
    report: Report,
    explanation: Explanation | None,
    chart: GanttChart | None = None,
    settings: Settings | None = None,
) -> list[RenderableType]:
    """What the terminal shows for a run (and what --svg / --html save)."""
    from pipesim.render import GanttChart, SummaryTable
    from pipesim.render.explanation import explanation_lines
    from pipesim.render.memory_table import MemoryTable
    from pipesim.settings.written import as_flags

    pipeline = report.trace.problem.pipeline
    title = Text.assemble(
        (report.trace.policy, "bold"),
        f"  p={pipeline.devices}  m={pipeline.microbatches}"
        + (f"  v={pipeline.chunks}" if pipeline.chunks > 1 else ""),
    )
    if settings is not None:
        # What else was set, as the flags that set it: the picture says what it simulated.
        shown = settings.replace(policy=None, stages=None, microbatches=None, chunks=None)
        flags = " ".join(as_flags(shown))
        if flags:
            title.append(f"  {flags}", style="dim")
    chart = chart or GanttChart(report.trace)
    views: list[RenderableType] = [title, chart, Text(), SummaryTable(report)]
    if report.summary.memory is not None:
        views += [Text(), MemoryTable(report)]
    if explanation is not None:
        views.append(Text())
        lines = explanation_lines(report, explanation)
        views += [Text.assemble(("• ", "bold"), line) for line in lines]
    return views


def _policy_file(policy: str | None) -> Named:
    """The file a `file.py:Class` policy is read from, to keep outputs off it."""
    if policy is None or ".py:" not in policy:
        return ("the policy", None)
    return ("the policy", Path(policy.rpartition(":")[0]))


@app.command()
@takes_settings(
    exclude=("policy",),
    defaults={"stages": "the file's ranks", "microbatches": "the file's", "chunks": "the file's"},
)
@takes_outputs("trace")
def validate(
    settings: Settings,
    config: Path | None,
    outputs: Requested,
    schedule: Annotated[Path, typer.Argument(help="A PyTorch compute-only schedule CSV.")],
    output_format: Format = OutputFormat.text,
) -> None:
    """Check a schedule file: every op present once and in a possible order, then simulate it.

    Exit 0 when it is valid, 1 with every problem listed when it is not (a deadlock names
    each stuck device and what it waits for), 2 when the file cannot be read."""
    from pipesim.problem.pipeline import describe_placement
    from pipesim.render import write_json
    from pipesim.schedules.from_file import FileSchedule
    from pipesim.schedules.schedule_file import read_schedule
    from pipesim.studies.step import simulate_step

    check_outputs(outputs.named(), inputs=[("--config", config), ("the schedule", schedule)])
    if settings.policy is not None:
        warn(
            f"validate simulates {schedule}; the config's policy {settings.policy!r} is not used",
        )
    parsed = read_schedule(schedule)
    problems = parsed.problems(settings.microbatches)
    if not problems:
        try:
            report = simulate_step(settings, FileSchedule(parsed))
        except ScheduleStalled as stalled:
            problems = ["deadlock: " + stalled.waits[0], *stalled.waits[1:]]
            if stalled.cycle:
                problems.append("cycle: " + " -> ".join(f"device {d}" for d in stalled.cycle))
    console = Console(markup=False)
    if problems:
        console.print(
            Text.assemble(("invalid", "bold red"), f" {schedule}: {len(problems)} problem(s)"),
            soft_wrap=True,
        )
        for problem in problems[:_PROBLEMS_SHOWN]:
            console.print(Text(f"  {problem}"), soft_wrap=True)
        if len(problems) > _PROBLEMS_SHOWN:
            console.print(Text(f"  and {len(problems) - _PROBLEMS_SHOWN} more"), soft_wrap=True)
        raise typer.Exit(1)
    write_files(outputs.contents(Shown(str(schedule), report)))
    if output_format is OutputFormat.json:
        from pipesim.render.envelope import write_envelope

        options = {"schedule": str(schedule.resolve())}
        write_envelope(
            sys.stdout, "validate", settings, options, lambda out: write_json(report, out, end="")
        )
        return
    pipeline = report.trace.problem.pipeline
    console.print(
        Text.assemble(
            ("valid", "bold green"),
            f" {schedule}: {pipeline.devices} ranks, {pipeline.num_stages} stages "
            f"({describe_placement(pipeline)}), {pipeline.microbatches} microbatches, "
            f"{'split' if parsed.split_backward else 'whole'} backward",
        ),
        soft_wrap=True,
    )
    summary = report.summary
    console.print(
        Text(
            f"makespan {summary.makespan:g} ms, bubble {summary.bubble_fraction:.1%}, "
            f"peak activations {summary.peak_activations:g}"
        ),
        soft_wrap=True,
    )


@app.command()
@takes_settings()
def export(
    settings: Settings,
    config: Path | None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", rich_help_panel=INPUT_OUTPUT, help="The CSV file to write."),
    ],
) -> None:
    """Write a policy's per-device op order as a PyTorch compute-only CSV.

    PyTorch's `_load_csv` reads it, and `pipesim run --schedule` on it gives the same
    timeline as running the policy."""
    from pipesim.schedules.schedule_file import write_schedule
    from pipesim.studies.step import simulate_step

    check_outputs(
        [("--output", output)], inputs=[("--config", config), _policy_file(settings.policy)]
    )
    from pipesim.schedules.base import OrderedProgram
    from pipesim.schedules.registry import get_policy

    policy = get_policy(settings.resolved.policy)
    trace = simulate_step(settings, policy).trace
    note_variability_in_a_fixed_order(
        settings,
        lambda: all(isinstance(p, OrderedProgram) for p in policy.programs(trace.problem)),
    )
    steps, split = trace.steps_by_device(), trace.problem.split_backward
    write_files([(output, lambda out: write_schedule(steps, split, out))])
    pipeline = trace.problem.pipeline
    Console(markup=False).print(
        Text(
            f"wrote {output}: {trace.policy}, {pipeline.devices} ranks, "
            f"{pipeline.num_stages} stages, {pipeline.microbatches} microbatches, "
            f"{len(trace.ops)} ops"
        )
    )
