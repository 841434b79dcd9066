"""Speed of pipesim on fixed configurations: run it, read the table. Not a test.

    python benchmarks/bench.py            # every configuration, each in a fresh process
    python benchmarks/bench.py --only zb-v-64x1024

Per configuration: ops simulated, wall time of the SimPy simulation (trace included; best of
three), ops per second, peak resident memory of the process, time to compute the summary
(bubbles, causes, memory, critical path), to write the JSON report (streamed to /dev/null) and
to draw the Gantt chart at 120 columns, and the time of a bare replay of the same per-device op
order (plain Python, no SimPy, no trace, the same compiled dependency rules; best of three) as
the reference. Messages are free in these configurations, so the replay needs no link model.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from pipesim import Settings, build_problem, get_policy
from pipesim.analysis.report import analyze
from pipesim.problem.ops import Op
from pipesim.render import GanttChart, write_json
from pipesim.simulator import simulate
from pipesim.simulator.op_index import OpIndex


@dataclass(frozen=True)
class Config:
    name: str
    policy: str
    stages: int
    microbatches: int
    chunks: int | None = None


REPEATS = 3
"""Simulation and replay are timed this many times; the table shows the fastest."""

CONFIGS = [
    Config("1f1b-8x64", "1f1b", 8, 64),
    Config("interleaved-32x256-v2", "interleaved", 32, 256, 2),
    Config("zb-v-64x1024", "zb-v", 64, 1024),
    Config("1f1b-128x4096", "1f1b", 128, 4096),
    Config("1f1b-64x4096", "1f1b", 64, 4096),  # the chart target: p=64, m=4096 drawn in < 1 s
]


def bare_replay(orders: list[list[Op]], rules: OpIndex) -> float:
    """The same per-device orders timed without SimPy or a trace, with the same compiled
    dependency rules: each device runs its next op as soon as its inputs are done. Returns the
    makespan (free messages: an input is ready when its producer ends)."""
    m = rules.microbatches
    done = [-1.0] * rules.size
    duration, inputs = rules.duration, rules.inputs
    free = [0.0] * len(orders)
    position = [0] * len(orders)
    remaining = sum(len(order) for order in orders)
    while remaining:
        progressed = False
        for device, order in enumerate(orders):
            index = position[device]
            ready_at = free[device]
            while index < len(order):
                kind, stage, mb = order[index]
                slot = stage * 3 + kind
                key = (stage * m + mb) * 3 + kind
                start = ready_at
                for _, offset in inputs[slot]:
                    finished = done[key + offset]
                    if finished < 0:
                        break
                    start = max(start, finished)
                else:
                    ready_at = done[key] = start + duration[slot]
                    index += 1
                    remaining -= 1
                    progressed = True
                    continue
                break
            position[device], free[device] = index, ready_at
        if not progressed:
            raise RuntimeError("the replay stalled")
    return max(free)


def measure(config: Config) -> dict[str, float | int | str]:
    settings = Settings(
        policy=config.policy,
        stages=config.stages,
        microbatches=config.microbatches,
        chunks=config.chunks,
    )
    policy = get_policy(config.policy)
    problem = build_problem(settings, policy)

    # The best of three: on a shared 2-core machine the slowest runs measure the neighbours.
    simulated = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        trace = simulate(problem, policy)
        simulated = min(simulated, time.perf_counter() - started)
    started = time.perf_counter()
    report = analyze(trace, policy)
    analyzed = time.perf_counter() - started
    ops = len(trace.ops)

    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        write_json(report, sink)
    json_time = time.perf_counter() - started

    started = time.perf_counter()
    Console(width=120, file=io.StringIO(), color_system="truecolor").print(GanttChart(trace))
    chart_time = time.perf_counter() - started

    orders = [[record.op for record in device_ops] for device_ops in trace.ops_by_device()]
    rules = OpIndex(problem)
    replay = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        makespan = bare_replay(orders, rules)
        replay = min(replay, time.perf_counter() - started)
    assert abs(makespan - trace.makespan) <= 1e-6 * trace.makespan, "replay disagrees"

    return {
        "name": config.name,
        "ops": ops,
        "simulate_s": simulated,
        "ops_per_s": ops / simulated,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "analyze_s": analyzed,
        "json_s": json_time,
        "chart_s": chart_time,
        "replay_s": replay,
        "ratio": replay / simulated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run one configuration in this process, print JSON")
    args = parser.parse_args()
    if args.only:
        config = next((c for c in CONFIGS if c.name == args.only), None)
        if config is None:
            parser.error(
                f"unknown configuration {args.only}; known: {', '.join(c.name for c in CONFIGS)}"
            )
        print(json.dumps(measure(config)))
        return
    console = Console(width=150)
    table = Table(
        title=f"pipesim {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {platform.machine()}"
    )
    for header in (
        "configuration",
        "ops",
        "simulate s",
        "ops/s",
        "peak RSS MB",
        "analyze s",
        "JSON s",
        "chart s",
        "replay s",
        "speed vs replay",
    ):
        table.add_column(header, justify="right")
    for config in CONFIGS:
        output = subprocess.run(
            [sys.executable, __file__, "--only", config.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        row = json.loads(output)
        table.add_row(
            row["name"],
            f"{row['ops']:,}",
            f"{row['simulate_s']:.2f}",
            f"{row['ops_per_s']:,.0f}",
            f"{row['peak_rss_mb']:.0f}",
            f"{row['analyze_s']:.2f}",
            f"{row['json_s']:.2f}",
            f"{row['chart_s']:.2f}",
            f"{row['replay_s']:.2f}",
            f"{row['ratio']:.2f}x",
        )
        console.print(f"done: {config.name}", style="dim")
    console.print(table)


if __name__ == "__main__":
    main()
