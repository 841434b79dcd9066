"""What `pipesim plan` prints: what became of the configurations, the ranked ones that fit and
what limits the first, the best one as `pipesim run` flags and as the frameworks take it, the
fastest one that does not fit, and the Pareto front of step time against memory; and every
configuration considered as JSON or CSV rows."""

from __future__ import annotations

import csv
import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from pipesim.problem.layout import even_layers
from pipesim.render.frameworks import (
    SCHEDULES,
    Configuration,
    megatron_arguments,
    torchtitan_lines,
)
from pipesim.render.numbers import num
from pipesim.render.style import figures_table, gigabytes, ms, percent, verbatim
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import Settings
from pipesim.settings.written import as_command
from pipesim.studies.plan import PlanResult, PlanRow, pareto, ranked

_COORDINATES = (
    "policy", "tensor_parallel", "stages", "data_parallel", "context_parallel",
    "expert_parallel", "chunks", "micro_batch_size", "recompute", "layout",
    "distributed_optimizer",
)  # fmt: skip
_SHORT = {
    "tensor_parallel": "t", "stages": "p", "data_parallel": "d", "context_parallel": "c",
    "expert_parallel": "E", "chunks": "v", "micro_batch_size": "b",
}  # fmt: skip
_ALWAYS = ("tensor_parallel", "stages", "data_parallel", "chunks", "micro_batch_size")
"""Degrees a label always names; context and expert parallelism only when above 1."""


class PlanReport:
    """The plan as people read it."""

    def __init__(
        self,
        result: PlanResult,
        base: Settings,
        top: int,
        framework: str = "any",
        gpus: int | None = None,
    ) -> None:
        self.result, self.base, self.top = result, base, top
        self.framework, self.gpus = framework, gpus

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        result = self.result
        rows = result.rows
        fitting = ranked(rows)
        yield Text(counts_line(result), style="bold")
        if fitting:
            shown = fitting[: self.top]
            yield _ranked_table(shown)
            for rank, row in enumerate(shown[:3], start=1):
                yield Text(f"why #{rank}: {why(row, self.base)}")
            best = fitting[0]
            command = as_command(plan_settings(self.base, best))
            yield verbatim(Text.assemble(("best: ", "bold"), command))
            yield from framework_settings(best, self.base, self.framework)
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
            table = figures_table(
                "Pareto front of the configurations simulated: no other is both faster and lighter"
            )
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


def counts_line(result: PlanResult) -> str:
    """How many configurations were considered, and what became of them."""
    count = result.count
    line = (
        f"{count('considered')} configurations: {count('pruned_memory')} over the memory "
        f"limit before simulating, {count('pruned_bound')} slower than the rows shown by their "
        f"bound, {count('simulated')} simulated ({count('fit')} fit), "
        f"{count('not_possible')} not possible"
    )
    if result.duplicates:
        line += f"; {result.duplicates} balanced splits equal to the even one left out"
    return line


def _ranked_table(rows: Sequence[PlanRow]) -> Table:
    table = figures_table(
        "step: the whole step (pipeline, exposed communication, optimizer); MFU: model FLOPs "
        "over the GPUs' peak; rows below the best name only what differs from it"
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


def _word(row: PlanRow, name: str) -> str:
    value = getattr(row, name)
    if name == "distributed_optimizer":
        return "dist-opt" if value else "no dist-opt"
    return f"{_SHORT[name]}{value}" if name in _SHORT else str(value)


def _changed(best: PlanRow, row: PlanRow) -> str:
    changes = [
        _word(row, name) for name in _COORDINATES if getattr(row, name) != getattr(best, name)
    ]
    return " ".join(changes) or "(same, other layers)"


def _label(row: PlanRow) -> str:
    words = [
        _word(row, name)
        for name in _COORDINATES
        if name in _ALWAYS
        or name in ("policy", "recompute", "layout")
        or (name in _SHORT and getattr(row, name) > 1)
        or (name == "distributed_optimizer" and row.distributed_optimizer)
    ]
    return " ".join(words)


def why(row: PlanRow, base: Settings) -> str:
    """What a row spends its step on besides computing, and how full its memory is."""
    parts = dict(row.breakdown)
    step = row.step_ms or 0.0
    if step <= 0:
        return "no step"
    pipeline_ms = step - sum(value for name, value in parts.items() if name != "pipeline")
    bound = f" (at least {ms(row.step_bound_ms)})" if row.step_bound_ms is not None else ""
    said = [f"{ms(step)} ms{bound}: bubble {percent((row.bubble or 0) * pipeline_ms / step)}"]
    comm = {
        "TP": parts.get("tensor_parallel", 0.0),
        "CP": parts.get("context_parallel", 0.0),
        "EP": parts.get("expert_parallel", 0.0),
        "DP": parts.get("data_parallel", 0.0) + parts.get("parameter_gather", 0.0),
    }
    total = sum(comm.values())
    if total > 0:
        named = ", ".join(f"{name} {percent(part / step)}" for name, part in comm.items() if part)
        said.append(f"communication {percent(total / step)} ({named})")
    if parts.get("optimizer", 0.0) >= 0.001 * step:
        said.append(f"optimizer {percent(parts['optimizer'] / step)}")
    limit = base.memory_limit or (base.gpu.memory if base.gpu else None)
    if limit and row.peak_bytes:
        said.append(f"memory {percent(row.peak_bytes / limit)} of {gigabytes(limit)} GB")
    if row.recompute != "none":
        said.append(f"recomputes ({row.recompute})")
    return ", ".join(said)


def framework_settings(row: PlanRow, base: Settings, framework: str) -> RenderResult:
    """The best row as each chosen framework takes it (`any`: every framework that runs its
    schedule), or why it cannot."""
    model = base.model
    assert model is not None and base.global_batch_size is not None
    seq = base.seq_length or model.seq_length
    layers = row.layers or even_layers(model.layers, row.stages * row.chunks)
    sequence_parallel = base.sequence_parallel is not False
    names = ("megatron", "torchtitan") if framework == "any" else (framework,)
    config = Configuration(
        schedule=row.policy, tensor=row.tensor_parallel, pipeline=row.stages, chunks=row.chunks,
        data=row.data_parallel, context=row.context_parallel, expert=row.expert_parallel,
        microbatches=row.microbatches, micro_batch=row.micro_batch_size,
        global_batch=base.global_batch_size, seq_length=seq, layers=layers,
        recompute=row.recompute, distributed_optimizer=row.distributed_optimizer,
        sequence_parallel=sequence_parallel, ep_comm_overlap=bool(base.ep_comm_overlap),
    )  # fmt: skip
    for name in names:
        if row.policy not in SCHEDULES[name]:
            if framework != "any":
                yield Text(f"{name} does not run {row.policy}")
            continue
        if name == "megatron":
            yield verbatim(
                Text.assemble(
                    ("Megatron-LM ", "bold"),
                    f"(on {row.gpus} GPUs, data parallel {row.data_parallel}): ",
                    shlex.join(megatron_arguments(config)),
                )
            )
        else:
            yield Text.assemble(
                ("torchtitan ", "bold"),
                f"(NGPU={row.gpus}; in the function that returns your Trainer.Config):",
            )
            yield verbatim(Text("\n".join("    " + line for line in torchtitan_lines(config))))


def _closest(rows: Sequence[PlanRow]) -> str:
    """Which constraint binds, and by how much, for the configuration closest to fitting."""
    measured = [row for row in rows if row.ran or row.pruned]
    if not measured:
        errors = [row.error for row in rows if row.error]
        return errors[0] if errors else "no configuration could be built"
    closest = min(measured, key=lambda row: (row.bytes_over, row.index))
    what = (
        "at least, its static memory and one microbatch's activations"
        if closest.pruned
        else "its simulated peak"
    )
    return (
        f"The closest, {_label(closest)}, is over the memory limit by "
        f"{gigabytes(closest.bytes_over)} GB ({what}); try more stages, recomputation, "
        "tensor parallelism or a distributed optimizer."
    )


def plan_settings(base: Settings, row: PlanRow) -> Settings:
    """The `pipesim run` settings of one row."""
    takes_chunks = get_policy(row.policy).chunks is None

    def degree(given: int | None, value: int) -> int | None:
        return None if given is None and value == 1 else value

    return base.replace(
        policy=row.policy,
        stages=row.stages,
        chunks=row.chunks if takes_chunks else None,
        micro_batch_size=row.micro_batch_size,
        recompute=row.recompute,
        layers_per_stage=row.layers or None,
        tensor_parallel=degree(base.tensor_parallel, row.tensor_parallel),
        data_parallel=degree(base.data_parallel, row.data_parallel),
        context_parallel=degree(base.context_parallel, row.context_parallel),
        expert_parallel=degree(base.expert_parallel, row.expert_parallel),
        distributed_optimizer=True if row.distributed_optimizer else base.distributed_optimizer,
    )


_FIELDS = (
    "index", "policy", "stages", "chunks", "micro_batch_size", "microbatches", "recompute",
    "layout", "layers", "tensor_parallel", "data_parallel", "context_parallel", "expert_parallel",
    "distributed_optimizer", "gpus", "step_ms", "step_bound_ms", "tokens_per_second", "mfu",
    "bubble", "peak_bytes", "bytes_over", "fits", "pruned", "peak_exact", "bounded", "error",
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
        record["pipeline_parallel"] = row.stages
        record["step_breakdown"] = {name: num(value) for name, value in row.breakdown}
        records.append(record)
    return records


def row_from_record(record: Mapping[str, Any]) -> PlanRow:
    """A row read back from `plan_records` (a shard's JSON).

    Raises:
        KeyError, TypeError, ValueError: a record that `plan_records` did not write.
    """
    fields: dict[str, Any] = {name: record[name] for name in _FIELDS if name in _ROW_FIELDS}
    fields["layers"] = tuple(int(count) for count in record["layers"])
    fields["breakdown"] = tuple(
        (str(name), float(value)) for name, value in record["step_breakdown"].items()
    )
    row = PlanRow(**fields)
    if row.gpus != record["gpus"] or row.fits != record["fits"]:
        raise ValueError(f"record {row.index} contradicts itself")
    return row


_ROW_FIELDS = {item.name for item in dataclasses.fields(PlanRow)}


def write_plan_csv(rows: Sequence[PlanRow], base: Settings, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    columns = ("command", *_FIELDS)
    writer.writerow(columns)
    for record in plan_records(rows, base):
        writer.writerow(
            " ".join(map(str, value)) if isinstance(value, list) else "" if value is None else value
            for value in (record[name] for name in columns)
        )
