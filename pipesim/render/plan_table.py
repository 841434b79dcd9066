"""What `pipesim plan` prints: the ranked configurations that fit, the best one as flags, the
fastest one that does not fit, and the Pareto front of step time against memory; and every
evaluated configuration as JSON or CSV rows."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from pipesim.render.numbers import num
from pipesim.render.style import figures_table, gigabytes, ms, percent
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import Settings
from pipesim.settings.written import as_command
from pipesim.studies.plan import PlanRow, pareto, ranked

_COORDINATES = ("policy", "stages", "chunks", "micro_batch_size", "recompute", "layout")
_SHORT = {"stages": "p", "chunks": "v", "micro_batch_size": "b"}


class PlanReport:
    """The plan as people read it."""

    def __init__(self, rows: Sequence[PlanRow], base: Settings, top: int) -> None:
        self.rows, self.base, self.top = rows, base, top

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self.rows
        fitting = ranked(rows)
        pruned = sum(1 for row in rows if row.pruned)
        failed = sum(1 for row in rows if row.error is not None)
        yield Text(
            f"{len(rows)} configurations: {len(fitting)} fit, "
            f"{sum(1 for row in rows if row.ran and not row.fits)} simulated and over the "
            f"memory limit, {pruned} pruned (static memory alone over the limit), "
            f"{failed} not possible",
            style="bold",
        )
        if fitting:
            yield _ranked_table(fitting[: self.top])
            best = fitting[0]
            yield Text.assemble(("best: ", "bold"), as_command(plan_settings(self.base, best)))
        else:
            yield Text.assemble(("none fits. ", "bold red"), _closest(rows))
        over = [row for row in rows if row.ran and not row.fits]
        if over:
            fastest = min(over, key=lambda row: (row.step_ms or 0.0, row.index))
            if not fitting or (fastest.step_ms or 0) < (fitting[0].step_ms or 0):
                yield Text.assemble(
                    ("fastest that does not fit: ", "bold"),
                    f"{_label(fastest)} at {ms(fastest.step_ms or 0)} ms lacks "
                    f"{gigabytes(fastest.bytes_over)} GB",
                )
        front = pareto(rows)
        if front:
            table = figures_table("Pareto front: no other configuration is both faster and lighter")
            for header in ("configuration", "step ms", "peak GB", "fits"):
                table.add_column(header, justify="right" if header != "configuration" else "left")
            for row in front:
                table.add_row(
                    _label(row),
                    ms(row.step_ms or 0),
                    gigabytes(row.peak_bytes or 0),
                    "yes" if row.fits else Text("no", style="red"),
                )
            yield Group(Text(), table)


def _ranked_table(rows: Sequence[PlanRow]) -> Table:
    table = figures_table(
        "step: the simulated makespan; MFU: model FLOPs over the GPUs' peak for the step; "
        "rows below the best name only what differs from it"
    )
    for header in ("#", "configuration", "m", "step ms", "tokens/s", "MFU", "bubble", "peak GB"):
        table.add_column(header, justify="left" if header == "configuration" else "right")
    best = rows[0]
    for rank, row in enumerate(rows, start=1):
        table.add_row(
            str(rank),
            _label(row) if row is best else _changed(best, row),
            str(row.microbatches),
            ms(row.step_ms or 0),
            f"{row.tokens_per_second or 0:,.0f}",
            percent(row.mfu or 0),
            percent(row.bubble or 0),
            gigabytes(row.peak_bytes or 0),
        )
    return table


def _changed(best: PlanRow, row: PlanRow) -> str:
    changes = [
        f"{_SHORT[name]}={getattr(row, name)}" if name in _SHORT else str(getattr(row, name))
        for name in _COORDINATES
        if getattr(row, name) != getattr(best, name)
    ]
    return " ".join(changes) or "(same, other layers)"


def _label(row: PlanRow) -> str:
    return (
        f"{row.policy} p={row.stages} v={row.chunks} b={row.micro_batch_size} "
        f"{row.recompute} {row.layout}"
    )


def _closest(rows: Sequence[PlanRow]) -> str:
    """Which constraint binds, and by how much, for the configuration closest to fitting."""
    measured = [row for row in rows if row.ran or row.pruned]
    if not measured:
        errors = [row.error for row in rows if row.error]
        return errors[0] if errors else "no configuration could be built"
    closest = min(measured, key=lambda row: (row.bytes_over, row.index))
    what = "its static memory alone" if closest.pruned else "its peak"
    return (
        f"The closest, {_label(closest)}, is over the memory limit by "
        f"{gigabytes(closest.bytes_over)} GB ({what}); try more stages, recomputation, "
        "tensor parallelism or a distributed optimizer."
    )


def plan_settings(base: Settings, row: PlanRow) -> Settings:
    """The `pipesim run` settings of one row."""
    takes_chunks = get_policy(row.policy).chunks is None
    return base.replace(
        policy=row.policy,
        stages=row.stages,
        chunks=row.chunks if takes_chunks else None,
        micro_batch_size=row.micro_batch_size,
        recompute=row.recompute,
        layers_per_stage=row.layers or None,
    )


_FIELDS = (
    "policy", "stages", "chunks", "micro_batch_size", "microbatches", "recompute", "layout",
    "layers", "step_ms", "tokens_per_second", "mfu", "bubble", "peak_bytes", "bytes_over",
    "fits", "pruned", "error",
)  # fmt: skip


def plan_records(rows: Sequence[PlanRow], base: Settings) -> list[dict[str, Any]]:
    """Every evaluated configuration, in evaluation order, JSON-ready, with the `pipesim run`
    command that reproduces it."""
    records = []
    for row in rows:
        record: dict[str, Any] = {"command": as_command(plan_settings(base, row))}
        for name in _FIELDS:
            value = getattr(row, name)
            if isinstance(value, float):
                value = num(value)
            elif isinstance(value, tuple):
                value = list(value)
            record[name] = value
        records.append(record)
    return records


def write_plan_csv(rows: Sequence[PlanRow], base: Settings, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("command", *_FIELDS))
    for record in plan_records(rows, base):
        writer.writerow(
            " ".join(map(str, value)) if isinstance(value, list) else "" if value is None else value
            for value in record.values()
        )
