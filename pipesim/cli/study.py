"""Commands that run many simulations: compare, sweep, plan; and the lists: policies, presets."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipesim.cli.app import app, warn
from pipesim.cli.no_effect import (
    note_free_messages,
    note_mfu_unused,
    note_one_draw,
    note_unused_pool,
    note_unused_randomness,
    note_weight_guessed,
    unfixed_for_plan,
)
from pipesim.cli.options import (
    DaskScheduler,
    DaskTimeout,
    Format,
    OutputFormat,
    Runs,
    SweepAxis,
    SweepFormat,
    TableFormat,
    Workers,
    Yes,
    dask_cluster_given,
    patience_unless,
    takes_outputs,
    takes_settings,
)
from pipesim.cli.output_files import check_outputs, print_json, write_files
from pipesim.errors import ConfigError
from pipesim.render.outputs import Requested, Shown
from pipesim.settings.declarations import BY_NAME, VARIABILITY, Settings
from pipesim.settings.values import RECOMPUTE


class Framework(StrEnum):
    """Whose schedules `plan` keeps, and whose settings it prints."""

    any = "any"
    megatron = "megatron"
    torchtitan = "torchtitan"


if TYPE_CHECKING:
    from pipesim.problem.pipeline import Pipeline
    from pipesim.studies.compare import CompareResult


Names = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Pipeline",
        help="Comma-separated policies.",
        show_default="every registered one",
    ),
]


def _split_policies(result: CompareResult) -> list[str]:
    """The compared policies that split the backward into I and W."""
    from pipesim.errors import PipesimError
    from pipesim.schedules.registry import get_policy

    split = [
        row.policy
        for row in result.rows
        if row.figures is not None and row.figures.problem.split_backward
    ]
    for study in result.studies:
        try:
            if study.error is None and get_policy(study.policy).split_backward:
                split.append(study.policy)
        except PipesimError:
            continue  # a policy file's: not named in the note
    return split


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


@app.command()
@takes_settings(exclude=("policy",))
@takes_outputs("plot")
def compare(
    settings: Settings,
    outputs: Requested,
    policies: Names = None,
    workers: Workers = None,
    runs: Runs = None,
    dask_scheduler: DaskScheduler = None,
    dask_timeout: DaskTimeout = None,
    yes: Yes = False,
    output_format: Format = OutputFormat.text,
) -> None:
    """Run several schedules on the same costs and say which one to use."""
    from pipesim.render.compare_table import ComparisonTable, comparison_record
    from pipesim.render.envelope import envelope
    from pipesim.render.monte_carlo import MonteCarloComparison, monte_carlo_record
    from pipesim.render.numbers import num
    from pipesim.render.progress import DeferredProgress
    from pipesim.render.style import ms
    from pipesim.studies.compare import compare_workflow
    from pipesim.studies.executor import default_workers

    outputs.check()
    check_outputs(outputs.named())
    if settings.policy is not None:
        warn(
            f"compare runs --policies; the config's policy {settings.policy!r} is not used",
        )
    note_mfu_unused(settings)
    note_unused_randomness(settings, runs)
    if runs is None:
        note_one_draw("compare", settings)
    note_unused_pool("compare", runs, {"--dask-scheduler": dask_scheduler})
    cluster = dask_cluster_given(dask_scheduler, dask_timeout)
    text = output_format is OutputFormat.text
    with patience_unless(yes):
        result = compare_workflow(
            settings, _names(policies), runs, workers or default_workers(), cluster,
            traces="plot" in outputs, progress=lambda label: DeferredProgress(label, text),
        )  # fmt: skip
    write_files(
        outputs.contents(Shown("", plot=lambda path: _compare_plot(result, settings, path)))
    )
    options = {"policies": _names(policies), "runs": runs}
    note_weight_guessed(settings, _split_policies(result))
    if result.studies:
        if text:
            Console(markup=False).print(MonteCarloComparison(result.studies))
        else:
            records = [monte_carlo_record(study) for study in result.studies]
            print_json(envelope("compare", settings, options, records))
        return
    ran = [row.figures for row in result.rows if row.figures is not None]
    note_free_messages(settings, ran[0].problem.network)
    bounds = {_placement_name(shape): num(value) for shape, value in result.lower_bounds.items()}
    if not text:
        record = {**comparison_record(result.rows), "lower_bounds": bounds}
        print_json(envelope("compare", settings, options, record))
        return
    console = Console(markup=False)
    shape = ran[0].problem.pipeline
    # the header is the flags that reproduce the comparison (every one given, none dropped)
    from pipesim.settings.written import as_flags

    flags = as_flags(settings.replace(policy=None, stages=None, microbatches=None))
    parts = [f"compare  p={shape.devices}  m={shape.microbatches}", " ".join(flags)]
    if not settings.forward and settings.model is None:
        parts.append("(defaults: F=1 B=2 ms)")
    console.print(Text("  ".join(part for part in parts if part)))
    console.print(ComparisonTable(result.rows))
    if bounds:
        words = ", ".join(f"{ms(value)} ms with {name}" for name, value in bounds.items())
        console.print(
            Text.assemble(
                ("no schedule can beat: ", "bold"),
                f"{words} (a device's work after its first input can arrive; "
                "`pipesim optimize` finds the optimum for small cases)",
            )
        )


def _compare_plot(result: CompareResult, settings: Settings, plot: Path) -> bytes:
    """The compared timelines one above the other, or with --runs the distributions."""
    from pipesim.render.plots import monte_carlo_plot, timeline_plot
    from pipesim.render.title import plot_title
    from pipesim.settings.written import as_flags

    if result.studies:
        title = "pipesim compare " + " ".join(as_flags(settings.replace(policy=None)))
        return monte_carlo_plot(result.studies, title, plot)
    titles = [plot_title(report, settings) for report in result.reports]
    return timeline_plot(result.reports, titles, plot)


def _placement_name(pipeline: Pipeline) -> str:
    """How a compare line names a placement."""
    from pipesim.problem.pipeline import describe_placement

    kind = describe_placement(pipeline)
    return {
        "V-shape": "two stages per device in a V",
        "looped": f"{pipeline.chunks} looped stages per device",
        "bidirectional: two copies": "two copies, one each way",
    }.get(kind, kind)


@app.command()
@takes_settings(sweep=True)
@takes_outputs("plot")
def sweep(
    settings: Settings,
    axis: SweepAxis,
    outputs: Requested,
    policies: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Pipeline", help="Comma-separated schedules to sweep side by side."
        ),
    ] = None,
    workers: Workers = None,
    yes: Yes = False,
    output_format: TableFormat = SweepFormat.text,
) -> None:
    """Vary one setting over a list of values and tabulate bubble, makespan and memory.

    Exactly one setting takes a comma list: -p, -m, -v, --overlap-cost, a latency, a size,
    a bandwidth or --devices-per-node."""
    from pipesim.render.plots import sweep_plot
    from pipesim.render.progress import DeferredProgress
    from pipesim.render.sweep_table import SweepTable, sweep_records, write_sweep_csv
    from pipesim.settings.written import as_command
    from pipesim.studies.executor import default_workers
    from pipesim.studies.sweep import sweep_setting

    if policies is not None and settings.policy is not None:
        raise ConfigError("give a policy (flag or config) or --policies, not both")
    outputs.check()
    check_outputs(outputs.named())
    names = _names(policies) or [settings.resolved.policy]
    if axis.setting not in VARIABILITY:
        note_unused_randomness(settings)
    with (
        patience_unless(yes),
        DeferredProgress("sweeping", output_format is SweepFormat.text) as progress,
    ):
        rows = sweep_setting(
            settings, axis.setting, axis.values, names, progress, workers or default_workers()
        )
    fixed = as_command(settings.replace(**{axis.setting: None})).replace("pipesim run", "")
    title = f"pipesim sweep {axis.setting}:{fixed or ' (defaults)'}"
    write_files(outputs.contents(Shown(title, plot=lambda path: sweep_plot(rows, title, path))))
    if output_format is SweepFormat.json:
        from pipesim.render.envelope import envelope
        from pipesim.settings.written import setting_text

        setting = BY_NAME[axis.setting]
        options = {
            "setting": axis.setting,
            "values": [
                value if isinstance(value, bool | int | float) else setting_text(setting, value)
                for value in axis.values
            ],
            "policies": names,
        }
        record = {"rows": sweep_records(rows)}
        leave_out = (axis.setting, "policy")  # the options say both
        print_json(envelope("sweep", settings, options, record, leave_out=leave_out))
    elif output_format is SweepFormat.csv:
        write_sweep_csv(rows, sys.stdout)
    else:
        console = Console(markup=False)
        fixed_model = settings.model is not None or settings.total_forward is not None
        if axis.setting in ("stages", "chunks") and not fixed_model:
            console.print(
                Text(
                    "as p or v changes, each device keeps the costs given per device "
                    "(--forward, --backward), so the model grows with p; --total-forward "
                    "and --total-backward (or --model) keep the model fixed",
                    style="dim",
                )
            )
        console.print(SweepTable(rows))


@app.command()
def policies(
    details: Annotated[
        bool,
        typer.Option(
            "--details",
            metavar="",
            help="Also print each schedule's source, closed-form bubble and memory.",
        ),
    ] = False,
) -> None:
    """List the registered schedules."""
    from pipesim.schedules.registry import registered_policies, schedule_documents

    if details:
        console = Console(markup=False)
        for names, text in schedule_documents():
            console.rule(Text(", ".join(names), style="bold"), align="left")
            console.print(Text(text))
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for policy in registered_policies():
        aliases = f"  (also: {', '.join(policy.aliases)})" if policy.aliases else ""
        table.add_row(policy.name, Text.assemble(policy.summary, (aliases, "dim")))
    Console(markup=False).print(table, highlight=False)


@app.command()
def presets() -> None:
    """List the model and GPU presets that --model and --gpu accept."""
    from pipesim.settings.hardware import Gpu, Model, preset_tables

    console = Console(markup=False)
    from pipesim.problem.transformer import model_parameters
    from pipesim.settings.hardware import load_model

    models = Table("model", "params", "layers", "hidden", "heads", "kv", "experts", "s", box=None)
    for name in preset_tables(Model):
        model = load_model(name, "presets")
        total = model_parameters(model, mtp=False)
        active = model_parameters(model, active=True, mtp=False)
        models.add_row(
            name,
            f"{total / 1e9:.1f}B" + (f" ({active / 1e9:.1f}B)" if active != total else ""),
            *(str(value) for value in (model.layers, model.hidden, model.heads, model.kv_heads)),
            f"{model.experts} top {model.experts_per_token}" if model.moe else "-",
            str(model.seq_length),
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
        Text(
            "params: all (per token), without MTP modules; sources: "
            "pipesim/settings/presets/*.toml; --model also takes a Hugging Face config.json, "
            "and --model and --gpu a .toml file"
        )
    )


@app.command()
@takes_settings(
    exclude=("policy", "microbatches", "layers_per_stage", "layout"),
    runs_config_policy=True,  # unless --policies says otherwise
    lists=("stages", "chunks", "micro_batch_size", "recompute", "tensor_parallel",
           "context_parallel", "expert_parallel"),
    defaults={"stages": "every degree that divides --gpus; else required",
              "chunks": "1,2,3,4", "micro_batch_size": "1,2,4",
              "recompute": "none,selective,full", "tensor_parallel": "every valid degree "
              "with --gpus; else 1", "context_parallel": "1", "expert_parallel": "every valid "
              "degree for a MoE model with --gpus; else 1"},
    aliases={"stages": ("--pipeline-parallel",), "micro_batch_size": ("--micro-batch-sizes",)},
)  # fmt: skip
@takes_outputs(
    "plot",
    words={"plot": "Also draw step time against peak memory (.png, .svg or .pdf; needs "
           "pipesim\\[plot])."},
)  # fmt: skip
def plan(
    settings: Settings,
    outputs: Requested,
    axes: dict[str, tuple[Any, ...] | None],
    gpus: Annotated[
        int | None,
        typer.Option(
            min=1, max=10**7, rich_help_panel="Search",
            help="GPUs in the cluster: try every split into tensor x pipeline x data (x "
            "context, x expert) parallelism, with and without the distributed optimizer.",
            show_default="the settings' split",
        ),
    ] = None,
    framework: Annotated[
        Framework,
        typer.Option(
            rich_help_panel="Search", case_sensitive=False,
            help="Keep the schedules this framework runs, and print the best configuration "
            "as its settings.",
        ),
    ] = Framework.any,
    policies: Annotated[
        str | None,
        typer.Option(rich_help_panel="Search", help="Schedules to try.", show_default="all"),
    ] = None,
    exhaustive: Annotated[
        bool,
        typer.Option(
            rich_help_panel="Search",
            help="Simulate every configuration that can fit, not only those whose bound can "
            "beat the rows shown (the same rows, slower).",
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="I/N", rich_help_panel="Search",
            help="Evaluate only the I-th of N disjoint parts of the space and write its rows "
            "as JSON, for a Slurm array or any batch system; --merge ranks the parts.",
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", rich_help_panel="Search",
            help="Rank the rows of the --shard files given after it as the whole plan would.",
        ),
    ] = False,
    files: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[FILE]...", help="With --merge: the shards' JSON files.",
                       show_default=False),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, rich_help_panel="Input and output", help="Rows shown.",
                     show_default="10"),
    ] = None,
    workers: Workers = None,
    dask_scheduler: DaskScheduler = None,
    dask_timeout: DaskTimeout = None,
    yes: Yes = False,
    output_format: TableFormat = SweepFormat.text,
) -> None:  # fmt: skip
    """Search configurations of a model on a GPU: the fastest that fits in memory.

    With --gpus, tries every split of the cluster; else the settings' tensor and data
    parallelism with each -p. Combines them with every policy, -v, micro-batch size and
    recompute mode, each with the even layer split and the one balanced by stage times.
    A configuration is simulated only if its memory can fit and a lower bound of its step
    time can beat the rows shown (--exhaustive simulates all); the answer is the same.
    Needs --model, --gpu and --global-batch-size."""
    from pipesim.render.frameworks import SCHEDULES
    from pipesim.render.plan_table import PlanReport, plan_records, write_plan_csv
    from pipesim.render.plots import plan_plot
    from pipesim.render.progress import DeferredProgress
    from pipesim.schedules.registry import get_policy, registered_policies
    from pipesim.settings.written import as_command
    from pipesim.studies.executor import default_workers
    from pipesim.studies.plan import COUNTS, PlanSpace, plan_search

    outputs.check()
    check_outputs(outputs.named())
    if merge or files:
        from pipesim.cli.plan_shards import read_shards

        given = {
            "settings": settings != Settings(), "lists": any(axes.values()), "--gpus": gpus,
            "--framework": framework is not Framework.any, "--policies": policies,
            "--exhaustive": exhaustive, "--shard": shard, "--workers": workers,
            "--dask-scheduler": dask_scheduler, "--dask-timeout": dask_timeout, "--yes": yes,
        }  # fmt: skip
        merged_plan = read_shards(files or [], merge, top, [k for k, v in given.items() if v])
        settings, result, options = merged_plan.settings, merged_plan.result, merged_plan.options
        top, gpus = options["top"], options["gpus"]
        framework = Framework(options["framework"])
    else:
        top = top or 10
        parts = _shard(shard, output_format)
        # a config file's policy is the one schedule tried, unless --policies says more
        asked = _names(policies) or ([settings.policy] if settings.policy else [])
        names = [get_policy(name).name for name in asked] or [
            policy.name
            for policy in registered_policies()
            if framework is Framework.any or policy.name in SCHEDULES[framework.value]
        ]
        if framework is not Framework.any:
            foreign = [name for name in names if name not in SCHEDULES[framework.value]]
            if foreign:
                raise ConfigError(
                    f"{framework.value} does not run {', '.join(foreign)}; it runs "
                    f"{', '.join(SCHEDULES[framework.value])}"
                )
        space = PlanSpace(
            pipeline=axes["stages"],
            policies=tuple(dict.fromkeys(names)),
            chunks=axes["chunks"] or (1, 2, 3, 4),
            micro_batch_sizes=axes["micro_batch_size"] or (1, 2, 4),
            recompute=axes["recompute"] or RECOMPUTE,
            gpus=gpus,
            tensor_parallel=axes["tensor_parallel"],
            context_parallel=axes["context_parallel"],
            expert_parallel=axes["expert_parallel"],
            chunks_on_one_device=framework is Framework.any,
        )
        if settings.model is None and settings.forward is not None:
            raise ConfigError(
                "plan needs a model and a GPU (--model, --gpu): costs in ms are one "
                "configuration's; for a measured run, calibrate --config MODEL.toml fits the "
                "MFU at which plan can search the model"
            )
        note_one_draw("plan", settings)
        settings = unfixed_for_plan(settings)
        cluster = dask_cluster_given(dask_scheduler, dask_timeout)
        with (
            patience_unless(yes),
            DeferredProgress("planning", output_format is SweepFormat.text) as progress,
        ):
            result = plan_search(
                settings, space, top, workers or default_workers(), cluster, progress,
                exhaustive=exhaustive, shard=parts,
            )  # fmt: skip
        options = {
            "gpus": gpus,
            "framework": framework.value,
            "pipeline_parallel": list(space.pipeline or ()),
            "tensor_parallel": list(space.tensor_parallel or ()),
            "context_parallel": list(space.context_parallel or ()),
            "expert_parallel": list(space.expert_parallel or ()),
            "policies": list(space.policies),
            "chunks": list(space.chunks),
            "micro_batch_sizes": list(space.micro_batch_sizes),
            "recompute": list(space.recompute),
            "top": top,
            "exhaustive": exhaustive,
            "shard": f"{parts[0]}/{parts[1]}" if parts else None,
            "counts": {name: result.count(name) for name in COUNTS},
            "duplicates": result.duplicates,
        }
    rows = result.rows
    limit = settings.memory_limit or (settings.gpu.memory if settings.gpu else None)
    title = f"pipesim plan: {as_command(settings).replace('pipesim run ', '')}"
    if gpus is not None:
        title += f" --gpus {gpus}"
    shown = Shown(title, plot=lambda path: plan_plot(rows, limit, title, path))
    write_files(outputs.contents(shown))
    if output_format is SweepFormat.json or options["shard"] is not None:
        from pipesim.render.envelope import envelope

        print_json(envelope("plan", settings, options, plan_records(rows, settings)))
    elif output_format is SweepFormat.csv:
        write_plan_csv(rows, settings, sys.stdout)
    else:
        report = PlanReport(result, settings, top, framework.value, gpus)
        Console(markup=False).print(report, crop=False)  # its commands and code stay whole


def _shard(text: str | None, output_format: SweepFormat) -> tuple[int, int] | None:
    """--shard I/N as (I, N)."""
    if text is None:
        return None
    part, slash, parts = text.partition("/")
    if not (slash and part.strip().isdigit() and parts.strip().isdigit()):
        raise ConfigError(f"--shard {text!r}: expected I/N, as 2/8")
    i, n = int(part), int(parts)
    if not 1 <= i <= n:
        raise ConfigError(f"--shard {text}: I must be from 1 to N")
    if output_format is SweepFormat.csv:
        raise ConfigError("--shard writes JSON for --merge; leave out -f csv")
    return i, n


@app.command()
@takes_settings(exclude=("policy", "chunks"))
def optimize(
    settings: Settings,
    placement: Annotated[
        str,
        typer.Option(
            rich_help_panel="Search",
            help="Stages on devices: 1f1b (one per device) or v (two, in a V).",
        ),
    ] = "1f1b",
    time_limit: Annotated[
        float,
        typer.Option(min=0.1, max=86_400, rich_help_panel="Search", help="Seconds for the solver."),
    ] = 60.0,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            rich_help_panel="Input and output",
            help="Write the schedule as a PyTorch CSV that pipesim run --schedule replays.",
        ),
    ] = None,
    output_format: Format = OutputFormat.text,
) -> None:
    """The shortest schedule, proven optimal, for small cases (a MILP solved with HiGHS).

    Split backward (B then W); messages are delays in the program, queued in the replay.
    Up to 300 ops (3 x stages x microbatches). Prints the optimum, or, at the time limit,
    the best schedule found and the proven lower bound."""
    from pipesim.render import GanttChart, SummaryTable
    from pipesim.render.envelope import envelope
    from pipesim.render.numbers import num
    from pipesim.render.progress import DeferredProgress
    from pipesim.render.style import ms
    from pipesim.schedules.schedule_file import write_schedule
    from pipesim.studies.optimize import optimize_workflow

    check_outputs([("--output", output)])
    note_one_draw("optimize", settings)
    text = output_format is OutputFormat.text
    result = optimize_workflow(
        settings, placement, time_limit, lambda label: DeferredProgress(label, text)
    )
    found, report = result.optimum, result.report
    if output is not None:
        orders = found.orders
        write_files([(output, lambda out: write_schedule(orders, True, out))])
    if not text:
        record = {
            "proven": found.proven,
            "makespan": num(found.makespan),
            "lower_bound": num(found.lower_bound),
            "replayed_makespan": num(report.summary.makespan),
            "binaries": found.binaries,
            "solver_status": found.status,
            "orders": [[str(op) for op in order] for order in found.orders],
        }
        options = {"placement": placement, "time_limit": time_limit}
        print_json(envelope("optimize", settings, options, record))
        return
    stopped = {
        "kTimeLimit": f"at the {time_limit:g} s limit",
        "kOptimal": "",  # optimal within HiGHS's own relative gap tolerance
    }.get(found.status, f"(the solver stopped: {found.status})")
    verdict = (
        f"optimal (proven): makespan {found.makespan:g} ms"
        if found.proven
        else f"best found: makespan {found.makespan:g} ms; proven lower bound "
        f"{found.lower_bound:g} ms (gap {100 * (1 - found.lower_bound / found.makespan):.1f}%) "
        f"{stopped}".rstrip()
    )
    console = Console(markup=False)
    console.print(Text(verdict, style="bold"))
    if abs(report.summary.makespan - found.makespan) > 1e-6:
        console.print(
            Text(
                f"replayed through the simulator (links queue): {ms(report.summary.makespan)} ms",
                style="dim",
            )
        )
    console.print(GanttChart(report.trace))
    console.print(SummaryTable(report))
