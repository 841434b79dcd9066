"""The `pipesim` command: parse, build the problem, call the library, render.

Every error a user can cause surfaces as one line on stderr and exit code 2 (1 for a schedule
that can never finish); nothing here computes a figure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from pipesim.analysis import Report
from pipesim.analysis import run as run_settings
from pipesim.compare import compare as compare_policies
from pipesim.config import Settings, load_settings, parse_cost_list
from pipesim.errors import ConfigError, PipesimError, ScheduleStalled
from pipesim.explain import explain as explain_run
from pipesim.problem import describe_placement
from pipesim.render import GanttChart, SummaryTable, write_json
from pipesim.render.compare_table import ComparisonTable, comparison_rows
from pipesim.render.perfetto import write_chrome_trace
from pipesim.render.progress import DeferredProgress
from pipesim.render.recording import save_recording
from pipesim.render.sweep_table import SweepTable, sweep_records, write_sweep_csv
from pipesim.schedule_file import read_schedule, write_schedule
from pipesim.schedules.from_file import FileSchedule
from pipesim.schedules.registry import get_policy, registered_policies
from pipesim.sweep import sweep as sweep_settings
from pipesim.units import parse_rate, parse_size


class _OneLineErrors(TyperGroup):
    """Report usage errors (a bad number, an unknown option) as one line, exit code 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def invoke() -> Any:
            return super(_OneLineErrors, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return invoke()
        try:
            result = invoke()
        except Exception as error:
            # Typer vendors click privately, so its usage errors are known by their interface
            # (ClickException's format_message and exit_code), not by an importable class.
            format_message = getattr(error, "format_message", None)
            if format_message is None:
                raise
            _fail(format_message(), getattr(error, "exit_code", 2))
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int) -> None:
    print(f"pipesim: error: {message}", file=sys.stderr)
    sys.exit(code)


app = typer.Typer(
    cls=_OneLineErrors,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    help="Simulate pipeline-parallel training schedules: timelines, bubbles and memory.",
)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class SweepFormat(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"


# The options every simulating command shares. Defaults are None so that a TOML file's values
# stand unless a flag was given; the real defaults live in `Settings`.
Stages = Annotated[
    int | None, typer.Option("-p", "--stages", help="Pipeline devices p. [default: 4]")
]
Microbatches = Annotated[
    int | None, typer.Option("-m", "--microbatches", help="Microbatches m. [default: 8]")
]
Chunks = Annotated[
    int | None,
    typer.Option(
        "-v", "--chunks", help="Model chunks per device, for interleaved schedules. [default: 2]"
    ),
]
Forward = Annotated[
    str | None,
    typer.Option(help="Forward ms per microbatch: one value, one per device or one per stage."),
]
Backward = Annotated[
    str | None,
    typer.Option(help="Whole backward ms (input + weight gradient) per microbatch. [default: 2]"),
]
Weight = Annotated[
    str | None,
    typer.Option(
        help="Weight-gradient part of the backward, for split-backward schedules. "
        "[default: backward / 2]"
    ),
]
CommLatency = Annotated[
    float | None, typer.Option(help="Milliseconds a message between devices takes. [default: 0]")
]
ActivationSize = Annotated[
    str | None,
    typer.Option(
        help="Bytes of one microbatch's activation message: 64MB, 1.5GiB, ... [default: 0]"
    ),
]
GradientSize = Annotated[
    str | None, typer.Option(help="Bytes of a gradient message. [default: the activation's]")
]
Bandwidth = Annotated[
    str | None, typer.Option(help="Link bandwidth within a node: 25GB/s, 200Gbit/s, ...")
]
DevicesPerNode = Annotated[
    int | None, typer.Option(help="Consecutive devices per node. [default: all in one node]")
]
InterNodeBandwidth = Annotated[
    str | None, typer.Option(help="Bandwidth of links between nodes. [default: --bandwidth]")
]
InterNodeLatency = Annotated[
    float | None,
    typer.Option(help="Milliseconds per message between nodes. [default: --comm-latency]"),
]
BlockingComm = Annotated[
    bool | None,
    typer.Option(
        "--blocking-comm/--overlap-comm",
        help="Whether a send holds its device until the message arrives. [default: overlap]",
    ),
]
Config = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML file with these settings; flags override it."),
]
Format = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="text: tables and charts; json: data.")
]


def _settings(config: Path | None, **flags: Any) -> Settings:
    """The file's settings (if any) with every flag the user gave on top."""
    base = load_settings(config) if config is not None else Settings()
    parsers = {
        "forward": parse_cost_list,
        "backward": parse_cost_list,
        "weight": parse_cost_list,
        "activation_size": parse_size,
        "gradient_size": parse_size,
        "bandwidth": parse_rate,
        "inter_node_bandwidth": parse_rate,
    }
    for name, parse in parsers.items():
        if flags.get(name) is not None:
            flags[name] = parse(name, flags[name])
    return base.replace(**{key: value for key, value in flags.items() if value is not None})


TraceFile = Annotated[
    Path | None,
    typer.Option(help="Also write a Chrome trace (JSON) to open in Perfetto or chrome://tracing."),
]
Schedule = Annotated[
    Path | None,
    typer.Option(
        "--schedule", "-s", help="A PyTorch compute-only schedule CSV to simulate exactly."
    ),
]


@app.command()
def run(
    policy: Annotated[
        str | None,
        typer.Option(
            help="Schedule to simulate (see `pipesim policies`), or module:Class / "
            "file.py:Class for your own. [default: 1f1b]"
        ),
    ] = None,
    schedule: Schedule = None,
    stages: Stages = None,
    microbatches: Microbatches = None,
    chunks: Chunks = None,
    forward: Forward = None,
    backward: Backward = None,
    weight: Weight = None,
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
        Path | None, typer.Option(help="Also save the chart and summary as SVG.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also save the chart and summary as HTML.")
    ] = None,
    width: Annotated[int, typer.Option(help="Columns of the --svg / --html rendering.")] = 120,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Say where the bubble comes from and what would change it."),
    ] = False,
) -> None:
    """Simulate one training step and show its timeline, bubbles and activation memory."""
    try:
        if policy is not None and schedule is not None:
            raise ConfigError("give --policy or --schedule, not both")
        settings = _settings(
            config,
            policy=policy,
            stages=stages,
            microbatches=microbatches,
            chunks=chunks,
            forward=forward,
            backward=backward,
            weight=weight,
            comm_latency=comm_latency,
            activation_size=activation_size,
            gradient_size=gradient_size,
            bandwidth=bandwidth,
            devices_per_node=devices_per_node,
            inter_node_bandwidth=inter_node_bandwidth,
            inter_node_latency=inter_node_latency,
            blocking_comm=blocking_comm,
        )
        chosen = (
            FileSchedule.load(schedule, settings.microbatches)
            if schedule is not None
            else get_policy(settings.policy)
        )
        with DeferredProgress("simulating", output_format is OutputFormat.text) as progress:
            report = run_settings(settings, chosen, progress)
        views = _views(report, explain_run(report, settings) if explain else [])
        _save_files(report, trace, [(svg, width), (html, width)], views)
    except PipesimError as error:
        _fail(str(error), error.exit_code)
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
        settings = _settings(
            config,
            microbatches=microbatches,
            forward=forward,
            backward=backward,
            weight=weight,
            comm_latency=comm_latency,
            activation_size=activation_size,
            gradient_size=gradient_size,
            bandwidth=bandwidth,
        )
    except PipesimError as error:
        _fail(str(error), error.exit_code)
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
            _fail(str(error), error.exit_code)
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
        _fail(str(error), error.exit_code)
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
    output: Annotated[Path, typer.Option("--output", "-o", help="The CSV file to write.")],
    policy: Annotated[str, typer.Option(help="Schedule to export. [default: 1f1b]")] = "1f1b",
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
        orders = [[record.op for record in ops] for ops in trace.ops_by_device()]
        write_schedule(orders, trace.problem.split_backward, output)
    except PipesimError as error:
        _fail(str(error), error.exit_code)
        return
    pipeline = trace.problem.pipeline
    Console().print(
        f"wrote {output}: {trace.policy}, {pipeline.devices} ranks, {pipeline.num_stages} stages, "
        f"{pipeline.microbatches} microbatches, {len(trace.ops)} ops",
        highlight=False,
    )


@app.command()
def compare(
    policies: Annotated[
        str | None,
        typer.Option(help="Comma-separated policies to compare. [default: every registered one]"),
    ] = None,
    stages: Stages = None,
    microbatches: Microbatches = None,
    chunks: Chunks = None,
    forward: Forward = None,
    backward: Backward = None,
    weight: Weight = None,
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
) -> None:
    """Run several schedules on the same costs and say which one to use."""
    names = [name.strip() for name in policies.split(",") if name.strip()] if policies else None
    try:
        settings = _settings(
            config,
            stages=stages,
            microbatches=microbatches,
            chunks=chunks,
            forward=forward,
            backward=backward,
            weight=weight,
            comm_latency=comm_latency,
            activation_size=activation_size,
            gradient_size=gradient_size,
            bandwidth=bandwidth,
            devices_per_node=devices_per_node,
            inter_node_bandwidth=inter_node_bandwidth,
            inter_node_latency=inter_node_latency,
            blocking_comm=blocking_comm,
        )
        rows = compare_policies(settings, names)
    except PipesimError as error:
        _fail(str(error), error.exit_code)
        return
    if output_format is OutputFormat.json:
        json.dump(comparison_rows(rows), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    console = Console()
    shape = next(row.report.trace.problem.pipeline for row in rows if row.report is not None)
    console.print(
        f"[bold]compare[/]  p={shape.devices}  m={shape.microbatches}  "
        f"F={','.join(map(str, settings.forward))}  B={','.join(map(str, settings.backward))}"
        + (f"  latency={settings.comm_latency} ms" if settings.comm_latency else ""),
        highlight=False,
    )
    console.print(ComparisonTable(rows))


@app.command()
def sweep(
    policy: Annotated[str | None, typer.Option(help="Schedule to sweep. [default: 1f1b]")] = None,
    policies: Annotated[
        str | None, typer.Option(help="Comma-separated schedules to sweep side by side.")
    ] = None,
    stages: Annotated[
        str | None, typer.Option("-p", "--stages", help="p, or a list: 2,4,8")
    ] = None,
    microbatches: Annotated[
        str | None, typer.Option("-m", "--microbatches", help="m, or a list: 1,2,4,8,16")
    ] = None,
    chunks: Annotated[
        str | None, typer.Option("-v", "--chunks", help="v, or a list: 1,2,4")
    ] = None,
    comm_latency: Annotated[
        str | None, typer.Option(help="Latency in ms, or a list: 0,0.1,0.5")
    ] = None,
    activation_size: Annotated[
        str | None, typer.Option(help="Activation size, or a list: 16MB,64MB")
    ] = None,
    bandwidth: Annotated[
        str | None, typer.Option(help="Bandwidth, or a list: 10GB/s,50GB/s")
    ] = None,
    forward: Forward = None,
    backward: Backward = None,
    weight: Weight = None,
    gradient_size: GradientSize = None,
    devices_per_node: DevicesPerNode = None,
    inter_node_bandwidth: InterNodeBandwidth = None,
    inter_node_latency: InterNodeLatency = None,
    blocking_comm: BlockingComm = None,
    config: Config = None,
    output_format: Annotated[
        SweepFormat, typer.Option("--format", "-f", help="text, json or csv.")
    ] = SweepFormat.text,
) -> None:
    """Vary one setting over a list of values and tabulate bubble, makespan and memory.

    Exactly one of -p, -m, -v, --comm-latency, --activation-size, --bandwidth takes a comma list."""
    try:
        if policy is not None and policies is not None:
            raise ConfigError("give --policy or --policies, not both")
        names = [n.strip() for n in (policies or policy or "1f1b").split(",") if n.strip()]
        scalars: dict[str, tuple[str | None, Callable[[str], Any]]] = {
            "stages": (stages, int),
            "microbatches": (microbatches, int),
            "chunks": (chunks, int),
            "comm_latency": (comm_latency, float),
            "activation_size": (activation_size, lambda text: parse_size("activation_size", text)),
            "bandwidth": (bandwidth, lambda text: parse_rate("bandwidth", text)),
        }
        lists = {name: text for name, (text, _) in scalars.items() if text and "," in text}
        if len(lists) != 1:
            given = ", ".join(lists) or "none"
            raise ConfigError(
                "sweep varies exactly one setting given as a comma list (e.g. -m 1,2,4,8); "
                f"got {given}"
            )
        ((setting, text),) = lists.items()
        values = [_sweep_value(setting, part, scalars[setting][1]) for part in text.split(",")]
        fixed = {
            name: _sweep_value(name, value, parse)
            for name, (value, parse) in scalars.items()
            if value is not None and name != setting
        }
        settings = _settings(
            config,
            forward=forward,
            backward=backward,
            weight=weight,
            gradient_size=gradient_size,
            devices_per_node=devices_per_node,
            inter_node_bandwidth=inter_node_bandwidth,
            inter_node_latency=inter_node_latency,
            blocking_comm=blocking_comm,
        ).replace(**fixed)
        with DeferredProgress("sweeping", output_format is SweepFormat.text) as progress:
            rows = sweep_settings(settings, setting, values, names, progress)
    except PipesimError as error:
        _fail(str(error), error.exit_code)
        return
    if output_format is SweepFormat.json:
        json.dump(sweep_records(rows), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif output_format is SweepFormat.csv:
        write_sweep_csv(rows, sys.stdout)
    else:
        Console().print(SweepTable(rows))


def _sweep_value(name: str, text: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(text.strip())
    except ValueError:
        raise ConfigError(f"{name}: {text.strip()!r} is not a valid value") from None


@app.command()
def policies() -> None:
    """List the registered schedules."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for policy in registered_policies():
        aliases = f"  [dim](also: {', '.join(policy.aliases)})[/]" if policy.aliases else ""
        table.add_row(policy.name, policy.summary + aliases)
    Console().print(table, highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()
