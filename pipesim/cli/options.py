"""The options the commands share, and the settings they make."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pipesim.config import Settings, load_settings, parse_cost_list
from pipesim.units import parse_rate, parse_size


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
    int | None,
    typer.Option(
        "-p", "--stages", rich_help_panel="Pipeline", help="Pipeline devices p.", show_default="4"
    ),
]
Microbatches = Annotated[
    int | None,
    typer.Option(
        "-m", "--microbatches", rich_help_panel="Pipeline", help="Microbatches m.", show_default="8"
    ),
]
Chunks = Annotated[
    int | None,
    typer.Option(
        "-v",
        "--chunks",
        rich_help_panel="Pipeline",
        help="Model chunks per device, for interleaved schedules.",
        show_default="2",
    ),
]
Forward = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Costs (ms per microbatch)",
        help="Forward ms per microbatch: one value, one per device or one per stage.",
        show_default="1",
    ),
]
Backward = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Costs (ms per microbatch)",
        help="Whole backward ms (input + weight gradient) per microbatch.",
        show_default="2",
    ),
]
Weight = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Costs (ms per microbatch)",
        help="Weight-gradient part of the backward, for split-backward schedules.",
        show_default="backward / 2",
    ),
]
OverlapCost = Annotated[
    float | None,
    typer.Option(
        rich_help_panel="Costs (ms per microbatch)",
        help="A fused forward-and-backward pair (DualPipe's, OVERLAP_F_B) takes this times "
        "F+B of its halves: 1 runs them back to back, 0.7 hides 30%.",
        show_default="1",
    ),
]
CommLatency = Annotated[
    float | None,
    typer.Option(
        rich_help_panel="Communication",
        help="Milliseconds a message between devices takes.",
        show_default="0",
    ),
]
ActivationSize = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Communication",
        help="Bytes of one microbatch's activation message: 64MB, 1.5GiB, ...",
        show_default="0",
    ),
]
GradientSize = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Communication",
        help="Bytes of a gradient message.",
        show_default="the activation's",
    ),
]
Bandwidth = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Communication", help="Link bandwidth within a node: 25GB/s, 200Gbit/s, ..."
    ),
]
DevicesPerNode = Annotated[
    int | None,
    typer.Option(
        rich_help_panel="Communication",
        help="Consecutive devices per node.",
        show_default="all in one node",
    ),
]
InterNodeBandwidth = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Communication",
        help="Bandwidth of links between nodes.",
        show_default="--bandwidth",
    ),
]
InterNodeLatency = Annotated[
    float | None,
    typer.Option(
        rich_help_panel="Communication",
        help="Milliseconds per message between nodes.",
        show_default="--comm-latency",
    ),
]
BlockingComm = Annotated[
    bool | None,
    typer.Option(
        "--blocking-comm/--overlap-comm",
        rich_help_panel="Communication",
        help="Whether a send holds its device until the message arrives.",
        show_default="overlap",
    ),
]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        rich_help_panel="Input and output",
        help="TOML file with these settings; flags override it.",
    ),
]
Format = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        rich_help_panel="Input and output",
        help="text: tables and charts; json: data.",
    ),
]


_SETTING_NAMES = frozenset(field.name for field in dataclasses.fields(Settings))


def setting_flags(values: dict[str, Any], exclude: Collection[str] = ()) -> dict[str, Any]:
    """The entries of a command's parameters (its `locals()`) that name settings: commands
    name their flags after `Settings` fields, so this is the one place they are matched."""
    return {
        name: value
        for name, value in values.items()
        if name in _SETTING_NAMES and name not in exclude
    }


def settings_from(config: Path | None, **flags: Any) -> Settings:
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
    typer.Option(
        rich_help_panel="Input and output",
        help="Also write a Chrome trace (JSON) to open in Perfetto or chrome://tracing.",
    ),
]
Schedule = Annotated[
    Path | None,
    typer.Option(
        "--schedule",
        "-s",
        rich_help_panel="Pipeline",
        help="A PyTorch compute-only schedule CSV to simulate exactly.",
    ),
]
