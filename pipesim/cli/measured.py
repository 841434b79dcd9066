"""Commands that start from a measured run: calibrate."""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipesim.cli.app import app
from pipesim.cli.options import INPUT_OUTPUT, Format, OutputFormat
from pipesim.cli.output_files import check_outputs, print_json, write_files
from pipesim.errors import ConfigError


class Alignment(StrEnum):
    """How the ranks' clocks are made one."""

    origin = "origin"
    messages = "messages"


@app.command()
def calibrate(
    traces: Annotated[
        list[Path],
        typer.Argument(
            metavar="TRACE...",
            help="One PyTorch profiler trace (.json or .json.gz) per rank of one run, or CSV "
            "files of measured intervals (rank,action,start_us,end_us[,busy_us]).",
            show_default=False,
        ),
    ],
    skip: Annotated[
        int,
        typer.Option(min=0, max=10_000, help="Steps left out at the start, as warm-up."),
    ] = 1,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", rich_help_panel=INPUT_OUTPUT,
            help="Write the fitted costs as a --config TOML file.",
        ),
    ] = None,
    schedule_out: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel=INPUT_OUTPUT,
            help="Write the measured order as a schedule CSV (run --schedule replays it).",
        ),
    ] = None,
    align_clocks: Annotated[
        Alignment,
        typer.Option(
            case_sensitive=False,
            help="origin: the traces' clocks are one (one host, or NTP/PTP); messages: set "
            "each rank's clock by the messages it exchanges with the rank before it.",
        ),
    ] = Alignment.origin,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", rich_help_panel=INPUT_OUTPUT,
            help="The measured run's model, GPU and shape (a TOML of model, gpu, "
            "micro_batch_size, seq_length, tensor_parallel, ...): fits the MFU at which "
            "pipesim's model gives the measured times, and writes it with them into -o, "
            "for plan.",
        ),
    ] = None,
    output_format: Format = OutputFormat.text,
) -> None:  # fmt: skip
    """Fit costs to a measured run and replay it: how far the simulation is from the cluster.

    Reads the profiler traces of a torch.distributed.pipelining run (its schedule runtime
    labels each action PP:<stage><F|B|I|W><microbatch>; examples/torch_pipeline.py records
    one), fits each stage's forward and backward times and the message latency, simulates
    the measured order on them and compares the step times."""
    from pipesim.render.calibration import (
        CalibrationReport,
        calibration_record,
        write_calibrated_config,
    )
    from pipesim.render.envelope import envelope
    from pipesim.schedules.schedule_file import write_schedule
    from pipesim.settings.declarations import load_settings
    from pipesim.settings.profiler_trace import read_measured
    from pipesim.studies.calibrate import calibrate as fit
    from pipesim.studies.effective_mfu import effective_mfu

    inputs = [(f"trace {number}", path) for number, path in enumerate(traces, start=1)]
    check_outputs(
        [("--output", output), ("--schedule-out", schedule_out)],
        inputs=[*inputs, ("--config", config)],
    )
    if not traces:
        raise ConfigError("calibrate needs the traces of a run: one per rank")
    model = load_settings(config) if config is not None else None
    calibration = fit(read_measured(traces), skip=skip, align=align_clocks.value)
    fitted = (
        effective_mfu(calibration.settings, len(calibration.policy.stage_placement), model)
        if model is not None
        else None
    )
    replayed = calibration.replayed()
    varied = calibration.replayed_varied()
    files: list[tuple[Path, bytes]] = []
    if output is not None:
        text = io.StringIO()
        write_calibrated_config(calibration, text, fitted, model)
        files.append((output, text.getvalue().encode()))
    if schedule_out is not None:
        text = io.StringIO()
        orders = calibration.policy.device_orders()
        write_schedule(orders, calibration.policy.split_backward, text)
        files.append((schedule_out, text.getvalue().encode()))
    write_files(files)
    if output_format is OutputFormat.json:
        options = {
            "traces": [str(path) for path in traces],
            "skip": skip,
            "align_clocks": align_clocks.value,
            "config": str(config) if config is not None else None,
        }
        print_json(
            envelope("calibrate", calibration.settings, options,
                     calibration_record(calibration, replayed, varied, fitted))
        )  # fmt: skip
    else:
        report = CalibrationReport(
            calibration, replayed, varied, output, schedule_out, fitted, model
        )
        Console(markup=False).print(report, highlight=False, crop=False)  # commands whole
