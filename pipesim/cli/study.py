"""Commands that set schedules side by side: compare, sweep, policies."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipesim.cli.app import app, warn
from pipesim.cli.options import (
    Format,
    OutputFormat,
    SweepAxis,
    SweepFormat,
    takes_settings,
)
from pipesim.errors import ConfigError
from pipesim.problem.hardware import Gpu, Model, preset_tables
from pipesim.problem.settings import DEFAULT_POLICY, Settings
from pipesim.render.compare_table import ComparisonTable, comparison_rows
from pipesim.render.progress import DeferredProgress
from pipesim.render.sweep_table import SweepTable, sweep_records, write_sweep_csv
from pipesim.schedules.registry import registered_policies
from pipesim.studies.compare import compare_policies
from pipesim.studies.sweep import sweep_setting

Names = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Pipeline",
        help="Comma-separated policies.",
        show_default="every registered one",
    ),
]


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


@app.command()
@takes_settings(exclude=("policy",))
def compare(
    settings: Settings,
    policies: Names = None,
    output_format: Format = OutputFormat.text,
) -> None:
    """Run several schedules on the same costs and say which one to use."""
    if settings.policy is not None:
        warn(f"compare runs --policies; the config's policy {settings.policy!r} is not used")
    with DeferredProgress("comparing", output_format is OutputFormat.text) as progress:
        rows = compare_policies(settings, _names(policies), progress)
    if output_format is OutputFormat.json:
        json.dump(comparison_rows(rows), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
        return
    console = Console()
    shape = next(row.report.trace.problem.pipeline for row in rows if row.report is not None)
    console.print(
        Text(
            f"compare  p={shape.devices}  m={shape.microbatches}  "
            + _costs_line(settings)
            + (f"  latency={settings.comm_latency} ms" if settings.comm_latency else "")
        )
    )
    console.print(ComparisonTable(rows))


def _costs_line(settings: Settings) -> str:
    if settings.model is not None:
        return f"model={settings.model.name}"
    forward = ",".join(map(str, settings.forward or (1.0,)))
    return f"F={forward}  B={','.join(map(str, settings.backward or (2.0,)))}"


@app.command()
@takes_settings(sweep=True)
def sweep(
    settings: Settings,
    axis: SweepAxis,
    policies: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Pipeline", help="Comma-separated schedules to sweep side by side."
        ),
    ] = None,
    output_format: Annotated[
        SweepFormat,
        typer.Option(
            "--format", "-f", rich_help_panel="Input and output", help="text, json or csv."
        ),
    ] = SweepFormat.text,
) -> None:
    """Vary one setting over a list of values and tabulate bubble, makespan and memory.

    Exactly one setting takes a comma list: -p, -m, -v, --overlap-cost, a latency, a size,
    a bandwidth or --devices-per-node."""
    if policies is not None and settings.policy is not None:
        raise ConfigError("give a policy (flag or config) or --policies, not both")
    names = _names(policies) or [settings.policy or DEFAULT_POLICY]
    with DeferredProgress("sweeping", output_format is SweepFormat.text) as progress:
        rows = sweep_setting(settings, axis.setting, axis.values, names, progress)
    if output_format is SweepFormat.json:
        json.dump(sweep_records(rows), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    elif output_format is SweepFormat.csv:
        write_sweep_csv(rows, sys.stdout)
    else:
        Console().print(SweepTable(rows))


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


@app.command()
def presets() -> None:
    """List the model and GPU presets that --model and --gpu accept."""
    console = Console()
    models = Table("model", "layers", "hidden", "ffn", "heads", "kv", "vocab", "s", box=None)
    for name, fields in preset_tables(Model).items():
        models.add_row(
            name,
            *(str(fields[key]) for key in ("layers", "hidden", "ffn", "heads", "kv_heads")),
            str(fields["vocab"]),
            str(fields["seq_length"]),
        )
    gpus = Table("gpu", "TFLOPS", "memory", "NVLink", "network", "per node", box=None)
    for name, fields in preset_tables(Gpu).items():
        gpus.add_row(
            name,
            str(fields["tflops"]),
            str(fields["memory"]),
            str(fields["nvlink_bandwidth"]),
            str(fields["network_bandwidth"]),
            str(fields["gpus_per_node"]),
        )
    console.print(models, Text(), gpus, highlight=False)
    console.print(
        Text("sources: pipesim/problem/presets/*.toml; --model and --gpu also take a .toml file")
    )
