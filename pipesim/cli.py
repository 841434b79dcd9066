"""The `pipesim` command: parse, build the problem, call the library, render.

Every error a user can cause surfaces as one line on stderr and exit code 2 (1 for a schedule
that can never finish); nothing here computes a figure.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from pipesim.analysis import run as run_settings
from pipesim.config import Settings, load_settings, parse_cost_list
from pipesim.errors import ConfigError, PipesimError
from pipesim.render import GanttChart, SummaryTable, write_json
from pipesim.schedules.registry import registered_policies


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


def _costs(name: str, text: str | None) -> tuple[float, ...] | None:
    return None if text is None else parse_cost_list(name, text)


def _settings(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """The file's settings (if any) with every flag the user gave on top."""
    base = load_settings(config) if config is not None else Settings()
    given = {key: value for key, value in overrides.items() if value is not None}
    return base.replace(**given)


@app.command()
def run(
    policy: Annotated[
        str | None, typer.Option("--policy", help="Schedule to simulate (see `pipesim policies`).")
    ] = None,
    stages: Annotated[
        int | None, typer.Option("-p", "--stages", help="Pipeline devices p.  [default: 4]")
    ] = None,
    microbatches: Annotated[
        int | None, typer.Option("-m", "--microbatches", help="Microbatches m.  [default: 8]")
    ] = None,
    forward: Annotated[
        str | None,
        typer.Option(
            help="Forward ms per microbatch: one value or one per device (1,1,1.5,2). [default: 1]"
        ),
    ] = None,
    backward: Annotated[
        str | None,
        typer.Option(
            help="Whole backward ms per microbatch: one value or one per device.  [default: 2]"
        ),
    ] = None,
    comm_latency: Annotated[
        float | None,
        typer.Option(help="Milliseconds a message between devices takes.  [default: 0]"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML file with these settings; flags override it."),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="text: chart and summary; json: one object."),
    ] = OutputFormat.text,
) -> None:
    """Simulate one training step and show its timeline, bubbles and activation memory."""
    try:
        settings = _settings(
            config,
            {
                "policy": policy,
                "stages": stages,
                "microbatches": microbatches,
                "forward": _costs("forward", forward),
                "backward": _costs("backward", backward),
                "comm_latency": comm_latency,
            },
        )
        report = run_settings(settings)
    except PipesimError as error:
        _fail(str(error), error.exit_code)
        return
    if output_format is OutputFormat.json:
        write_json(report, sys.stdout)
        return
    console = Console()
    pipeline = report.trace.problem.pipeline
    console.print(
        f"[bold]{report.trace.policy}[/]  p={pipeline.devices}  m={pipeline.microbatches}"
        + (f"  v={pipeline.chunks}" if pipeline.chunks > 1 else "")
    )
    console.print(GanttChart(report.trace))
    console.print()
    console.print(SummaryTable(report))


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


__all__ = ["ConfigError", "app", "main"]
