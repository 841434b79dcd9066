"""Memory in bytes per device, against the limit, and what a model's step achieves."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.text import Text

from pipesim.analysis.all_to_all import all_to_all_time
from pipesim.analysis.report import Report
from pipesim.analysis.whole_step import WholeStep
from pipesim.render.style import figures_table, gigabytes, ms, percent


class MemoryTable:
    """Static and peak GB per device, when the peak is reached, and the headroom or the
    shortfall against the limit; then the out-of-memory devices, and the model's figures."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        summary = self.report.summary
        if summary.memory is None:
            return
        limit = summary.memory_limit
        caption = "GB = 10^9 bytes; peak = static + activations held at once"
        memory = self.report.trace.problem.memory
        if limit is not None and memory is not None and memory.reserve > 0:
            caption += (
                f"; the limit is {gigabytes(limit + memory.reserve)} GB less "
                f"{gigabytes(memory.reserve)} GB reserved (--memory-reserve)"
            )
        table = figures_table(caption)
        for header in ("device", "static GB", "peak GB", "peak at ms"):
            table.add_column(header, justify="right")
        if limit is not None:
            table.add_column(f"vs {gigabytes(limit)} GB", justify="right")
        for use in summary.memory:
            row: list[str | Text] = [
                str(use.device),
                gigabytes(use.static),
                gigabytes(use.peak),
                ms(use.peak_time),
            ]
            if limit is not None:
                left = limit - use.peak
                row.append(
                    Text(f"{gigabytes(-left)} over", style="bold red")
                    if left < 0
                    else Text(f"{gigabytes(left)} free")
                )
            table.add_row(*row)
        yield Group(table, *memory_lines(self.report))


def memory_lines(report: Report) -> list[Text]:
    """The out-of-memory verdict and the model's throughput, one line each."""
    summary = report.summary
    lines = []
    for oom in summary.oom:
        lines.append(
            Text.assemble(
                ("out of memory: ", "bold red"),
                f"device {oom.device} needs {gigabytes(oom.bytes_over)} GB more than the limit; "
                f"it crosses it at {ms(oom.time)} ms when {oom.op} starts",
            )
        )
    workload = report.trace.problem.workload
    rate = summary.throughput
    if workload is not None and rate is not None:
        shape = workload.shape
        lines.append(
            Text.assemble(
                ("model ", "bold"),
                f"{workload.model.name} on {workload.gpu.name}: s={shape.seq_length} "
                f"b={shape.micro_batch} t={shape.tensor_parallel}"
                + (" (sequence parallel)" if shape.sequence_parallel else "")
                + f", recompute {shape.recompute}; every op at MFU {percent(workload.mfu)} "
                f"(--mfu) gives {rate.tokens_per_second:,.0f} tokens/s and "
                f"{percent(rate.mfu)} MFU for the step",
            )
        )
        lines.append(_step_line(rate.step))
        experts = workload.experts
        if experts is not None:
            busiest = max(range(len(workload.stages)), key=lambda s: workload.stages[s].all_to_alls)
            counts = workload.stages[busiest].all_to_alls
            time = all_to_all_time(report.trace)
            device = max(range(len(time)), key=time.__getitem__)
            lines.append(
                Text.assemble(
                    ("experts ", "bold"),
                    f"{experts.degree}-way expert parallel: each GPU holds 1/{experts.degree} of "
                    f"the routed experts and sends {experts.bytes_sent / 1e6:,.1f} MB per "
                    f"all-to-all over {'the network' if experts.crosses_nodes else 'NVLink'} "
                    f"({ms(experts.duration)} ms); stage {busiest} runs {counts[0]} in each F "
                    f"and {counts[1]} in each B; device {device} spends {ms(time[device])} ms "
                    "in them (they lengthen F and B, except in a fused forward-and-backward "
                    "pair, where each op computes under the other's, as in DualPipe)",
                )
            )
    return lines


def _step_line(step: WholeStep) -> Text:
    """The whole step, and what each part adds to the pipeline."""
    parts = [f"pipeline {ms(step.pipeline)}"]
    named = (
        ("tensor-parallel collectives", step.tensor_parallel),
        ("context-parallel ring", step.context_parallel),
        ("expert all-to-alls", step.expert_parallel),
        ("exposed data-parallel reduction", step.data_parallel),
        ("optimizer", step.optimizer),
        ("parameter all-gather", step.parameter_gather),
    )
    parts += [f"{name} {ms(value)}" for name, value in named if value > 0]
    hidden = sum(record.end - record.start for record in step.reductions) - step.data_parallel
    note = (
        f" (of the gradient reductions, {ms(hidden)} ms run under the pipeline's tail)"
        if step.reductions and hidden > 0
        else ""
    )
    return Text.assemble(
        ("step ", "bold"), f"{ms(step.step)} ms = " + " + ".join(parts) + " ms" + note
    )
