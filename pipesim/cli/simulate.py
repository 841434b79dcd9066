"""Commands that simulate one schedule: run, validate, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, RenderableType
from rich.text import Text

from pipesim.analysis import Report
from pipesim.analysis import run as run_settings
from pipesim.cli.app import app, fail, warn
from pipesim.cli.options import (
    ActivationSize,
    Backward,
    Bandwidth,
    BlockingComm,
    Chunks,
    CommLatency,
    Config,
    DevicesPerNode,
    Format,
    Forward,
    GradientSize,
    InterNodeBandwidth,
    InterNodeLatency,
    Microbatches,
    OutputFormat,
    OverlapCost,
    Schedule,
    Stages,
    TraceFile,
    Weight,
    setting_flags,
    settings_from,
)
from pipesim.config import Settings
from pipesim.errors import ConfigError, PipesimError, ScheduleStalled
from pipesim.explain import explain as explain_run
from pipesim.problem import describe_placement
from pipesim.render import GanttChart, SummaryTable, write_json
from pipesim.render.perfetto import write_chrome_trace
from pipesim.render.progress import DeferredProgress
from pipesim.render.recording import save_recording
from pipesim.schedule_file import read_schedule, write_schedule
from pipesim.schedules.from_file import FileSchedule
from pipesim.schedules.registry import get_policy


@app.command()
def run(
    policy: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Pipeline",
            help="Schedule to simulate (see `pipesim policies`), or module:Class / "
            "file.py:Class for your own.",
            show_default="1f1b",
        ),
    ] = None,
    schedule: Schedule = None,
    stages: Stages = None,
    microbatches: Microbatches = None,
    chunks: Chunks = None,
    forward: Forward = None,
    backward: Backward = None,
    weight: Weight = None,
    overlap_cost: OverlapCost = None,
    comm_latency: CommLatency = None,
    activation_size: ActivationSize = None,
    gradient_size: GradientSize = None,
    bandwidth: Bandwidth = None,
    devices_per_node: DevicesPerNode = None,
    inter_node_bandwidth: InterNodeBandwidth = None,
    inter_node_latency: InterNodeLatency = None,
    blocking_comm: BlockingComm = None,
    config: Config = None,
    output_format: Format = OutputFormat.text,
    trace: TraceFile = None,
    svg: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel="Input and output", help="Also save the chart and summary as SVG."
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel="Input and output", help="Also save the chart and summary as HTML."
        ),
    ] = None,
    width: Annotated[
        int,
        typer.Option(
            min=40,
            max=10_000,
            rich_help_panel="Input and output",
            help="Columns of the --svg / --html rendering.",
        ),
    ] = 120,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            rich_help_panel="Input and output",
            help="Say where the bubble comes from and what would change it.",
        ),
    ] = False,
) -> None:
    """Simulate one training step and show its timeline, bubbles and activation memory."""
    try:
        if policy is not None and schedule is not None:
            raise ConfigError("give --policy or --schedule, not both")
        settings = settings_from(config, **setting_flags(locals()))
        chosen = (
            FileSchedule.load(schedule, settings.microbatches)
            if schedule is not None
            else get_policy(settings.policy)
        )
        with DeferredProgress("simulating", output_format is OutputFormat.text) as progress:
            report = run_settings(settings, chosen, progress)
        if settings.overlap_cost != 1 and not any(s.overlapped for s in report.trace.fused):
            warn(
                f"--overlap-cost {settings.overlap_cost:g} changes nothing: "
                f"{report.trace.policy} runs no fused forward-and-backward pairs"
            )
        views = _views(report, explain_run(report, settings) if explain else [])
        _save_files(report, trace, [(svg, width), (html, width)], views)
    except PipesimError as error:
        fail(str(error), error.exit_code)
        return
    if output_format is OutputFormat.json:
        write_json(report, sys.stdout)
        return
    console = Console()
    for view in views:
        console.print(view)


def _views(report: Report, explanation: list[str]) -> list[RenderableType]:
    """What the terminal shows for a run (and what --svg / --html save)."""
    pipeline = report.trace.problem.pipeline
    title = Text.assemble(
        (report.trace.policy, "bold"),
        f"  p={pipeline.devices}  m={pipeline.microbatches}"
        + (f"  v={pipeline.chunks}" if pipeline.chunks > 1 else ""),
    )
    views: list[RenderableType] = [title, GanttChart(report.trace), Text(), SummaryTable(report)]
    if explanation:
        views.append(Text())
        views += [Text.assemble(("• ", "bold"), line) for line in explanation]
    return views


def _save_files(
    report: Report,
    trace: Path | None,
    renderings: list[tuple[Path | None, int]],
    views: list[RenderableType],
) -> None:
    if trace is not None:
        try:
            with trace.open("w") as handle:
                write_chrome_trace(report, handle)
        except OSError as error:
            raise ConfigError(f"cannot write {trace}: {error.strerror or error}") from None
    for path, width in renderings:
        if path is not None:
            save_recording(views, path, width)


@app.command()
def validate(
    schedule: Annotated[Path, typer.Argument(help="A PyTorch compute-only schedule CSV.")],
    microbatches: Microbatches = None,
    forward: Forward = None,
    backward: Backward = None,
    weight: Weight = None,
    overlap_cost: OverlapCost = None,
    comm_latency: CommLatency = None,
    activation_size: ActivationSize = None,
    gradient_size: GradientSize = None,
    bandwidth: Bandwidth = None,
    config: Config = None,
    output_format: Format = OutputFormat.text,
    trace: TraceFile = None,
) -> None:
    """Check a schedule file: every op present once and in a possible order, then simulate it.

    Exit 0 when it is valid, 1 with every problem listed when it is not (a deadlock names
    each stuck device and what it waits for), 2 when the file cannot be read."""
    try:
        parsed = read_schedule(schedule)
        problems = parsed.problems(microbatches)
        settings = settings_from(config, **setting_flags(locals()))
    except PipesimError as error:
        fail(str(error), error.exit_code)
        return
    console = Console()
    if not problems:
        try:
            report = run_settings(settings, FileSchedule(parsed))
        except ScheduleStalled as error:
            problems = ["deadlock: " + error.waits[0], *error.waits[1:]]
            if "cycle:" in str(error):
                problems.append("cycle: " + str(error).rsplit("cycle: ", 1)[1])
        except PipesimError as error:
            fail(str(error), error.exit_code)
            return
    if problems:
        console.print(
            f"[bold red]invalid[/] {schedule}: {len(problems)} problem(s)",
            highlight=False,
            soft_wrap=True,
        )
        for problem in problems:
            console.print(f"  {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    try:
        _save_files(report, trace, [], [])
    except PipesimError as error:
        fail(str(error), error.exit_code)
    if output_format is OutputFormat.json:
        write_json(report, sys.stdout)
        return
    pipeline = report.trace.problem.pipeline
    console.print(
        f"[bold green]valid[/] {schedule}: {pipeline.devices} ranks, {pipeline.num_stages} stages "
        f"({describe_placement(pipeline)}), {pipeline.microbatches} microbatches, "
        f"{'split' if parsed.split_backward else 'whole'} backward",
        highlight=False,
        soft_wrap=True,
    )
    summary = report.summary
    console.print(
        f"makespan {summary.makespan:g} ms, bubble {summary.bubble_fraction:.1%}, "
        f"peak activations {summary.peak_activations:g}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def export(
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", rich_help_panel="Input and output", help="The CSV file to write."
        ),
    ],
    policy: Annotated[
        str,
        typer.Option(rich_help_panel="Pipeline", help="Schedule to export.", show_default="1f1b"),
    ] = "1f1b",
    stages: Stages = None,
    microbatches: Microbatches = None,
    chunks: Chunks = None,
) -> None:
    """Write a policy's per-device op order as a PyTorch compute-only CSV.

    PyTorch's `_load_csv` reads it, and `pipesim run --schedule` on it gives the same
    timeline as running the policy."""
    try:
        settings = Settings(policy=policy, stages=stages, microbatches=microbatches, chunks=chunks)
        report = run_settings(settings)
        trace = report.trace
        write_schedule(trace.steps_by_device(), trace.problem.split_backward, output)
    except PipesimError as error:
        fail(str(error), error.exit_code)
        return
    pipeline = trace.problem.pipeline
    Console().print(
        f"wrote {output}: {trace.policy}, {pipeline.devices} ranks, {pipeline.num_stages} stages, "
        f"{pipeline.microbatches} microbatches, {len(trace.ops)} ops",
        highlight=False,
    )
