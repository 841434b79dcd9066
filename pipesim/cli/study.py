"""Commands that set schedules side by side: compare, sweep, policies."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipesim.cli.app import app, fail
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
    Stages,
    SweepFormat,
    Weight,
    setting_flags,
    settings_from,
)
from pipesim.compare import compare as compare_policies
from pipesim.errors import ConfigError, PipesimError
from pipesim.render.compare_table import ComparisonTable, comparison_rows
from pipesim.render.progress import DeferredProgress
from pipesim.render.sweep_table import SweepTable, sweep_records, write_sweep_csv
from pipesim.schedules.registry import registered_policies
from pipesim.sweep import SWEEPABLE
from pipesim.sweep import sweep as sweep_settings
from pipesim.units import parse_rate, parse_size


@app.command()
def compare(
    policies: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Pipeline",
            help="Comma-separated policies to compare.",
            show_default="every registered one",
        ),
    ] = None,
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
) -> None:
    """Run several schedules on the same costs and say which one to use."""
    names = [name.strip() for name in policies.split(",") if name.strip()] if policies else None
    try:
        settings = settings_from(config, **setting_flags(locals()))
        with DeferredProgress("comparing", output_format is OutputFormat.text) as progress:
            rows = compare_policies(settings, names, progress)
    except PipesimError as error:
        fail(str(error), error.exit_code)
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
    policy: Annotated[
        str | None,
        typer.Option(rich_help_panel="Pipeline", help="Schedule to sweep.", show_default="1f1b"),
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Pipeline", help="Comma-separated schedules to sweep side by side."
        ),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option("-p", "--stages", rich_help_panel="Pipeline", help="p, or a list: 2,4,8"),
    ] = None,
    microbatches: Annotated[
        str | None,
        typer.Option(
            "-m", "--microbatches", rich_help_panel="Pipeline", help="m, or a list: 1,2,4,8,16"
        ),
    ] = None,
    chunks: Annotated[
        str | None,
        typer.Option("-v", "--chunks", rich_help_panel="Pipeline", help="v, or a list: 1,2,4"),
    ] = None,
    comm_latency: Annotated[
        str | None,
        typer.Option(rich_help_panel="Communication", help="Latency in ms, or a list: 0,0.1,0.5"),
    ] = None,
    activation_size: Annotated[
        str | None,
        typer.Option(rich_help_panel="Communication", help="Activation size, or a list: 16MB,64MB"),
    ] = None,
    bandwidth: Annotated[
        str | None,
        typer.Option(rich_help_panel="Communication", help="Bandwidth, or a list: 10GB/s,50GB/s"),
    ] = None,
    forward: Forward = None,
    backward: Backward = None,
    weight: Weight = None,
    overlap_cost: OverlapCost = None,
    gradient_size: GradientSize = None,
    devices_per_node: DevicesPerNode = None,
    inter_node_bandwidth: InterNodeBandwidth = None,
    inter_node_latency: InterNodeLatency = None,
    blocking_comm: BlockingComm = None,
    config: Config = None,
    output_format: Annotated[
        SweepFormat,
        typer.Option(
            "--format", "-f", rich_help_panel="Input and output", help="text, json or csv."
        ),
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
        flags = setting_flags(locals(), exclude=SWEEPABLE)
        settings = settings_from(config, **flags).replace(**fixed)
        with DeferredProgress("sweeping", output_format is SweepFormat.text) as progress:
            rows = sweep_settings(settings, setting, values, names, progress)
    except PipesimError as error:
        fail(str(error), error.exit_code)
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
