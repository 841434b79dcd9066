"""Speed of pipesim on fixed configurations: run it, read the tables. Not a test.

    python benchmarks/bench.py            # every configuration, each in a fresh process
    python benchmarks/bench.py --only zb-v-64x1024

Every figure is CPU time (user + system, `time.process_time`), steadier than wall time on a
shared machine; the simulation and the replay are the best of three. Per configuration: ops
simulated, the SimPy simulation (trace included), the analysis (bubbles, causes, memory,
critical path) and the JSON report (streamed to /dev/null), their sum (the whole run but its
start-up), the Perfetto trace and the Gantt chart at 120 columns, peak resident memory, and a
bare replay of the same per-device op order (plain Python, no SimPy, no trace, the same
compiled dependency rules) measured in the same process: "whole vs replay" is the replay's
CPU time over the whole run's, so 0.5x means half the replay's speed; "at replay speed" is
the replay over the replay, the analysis and the JSON: where the run would stand if simulating
cost no more than replaying. Messages are free in these configurations, so the replay needs no
link model.

Then the command a user runs, `pipesim run ... --format json` as a child process: its CPU
time (start-up included) and its peak resident memory. Then start-up: the CPU time of the
smallest run (`pipesim run -p 4 -m 8 --format json`) and of `pipesim --help`, best of five,
against `python -c pass` and against importing typer, rich and simpy alone. Then a Monte
Carlo on a pool of 2 workers against this process, then the timed messages against the same
run without, with what writing the transfers' lines alone costs, and, where valgrind is
installed, the instructions each run executes, which do not vary with the machine's load as
CPU time does. Then `--plot` with timed messages from 2,000 ops to 100,000, and the pictures:
`--html` and `--plot` at a million ops, against the JSON run alone, with the files' sizes. Last, a
study: a Monte Carlo of 200 runs of 4,000 ops in this process, and the share of its CPU time
that the simulations themselves take.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from monte_carlo_bench import pooled_and_alone  # benchmarks/monte_carlo_bench.py
from rich.console import Console
from rich.table import Table

from pipesim import Settings, build_problem, get_policy
from pipesim.analysis.report import analyze
from pipesim.problem.ops import Op
from pipesim.render import GanttChart, write_json
from pipesim.render.json_report import _timeline_lines, _transfer_lines, write_items
from pipesim.render.numbers import TimeTexts
from pipesim.render.perfetto import write_chrome_trace
from pipesim.simulator import simulate
from pipesim.simulator.op_index import OpIndex
from pipesim.studies.monte_carlo import monte_carlo


@dataclass(frozen=True)
class Config:
    name: str
    policy: str
    stages: int
    microbatches: int
    chunks: int | None = None
    memory: bool = False
    """With a memory model (--activation-memory, --static-memory, --memory-limit): the
    summary's byte timeline per device."""


MEMORY = {"activation_memory": 1e9, "static_memory": 1e10, "memory_limit": 8e10}
MEMORY_FLAGS = ["--activation-memory", "1GB", "--static-memory", "10GB", "--memory-limit", "80GB"]

REPEATS = 3
"""Simulation and replay are timed this many times; the table shows the fastest."""

CONFIGS = [
    Config("1f1b-8x64", "1f1b", 8, 64),
    # about 131k ops each
    Config("1f1b-32x2048", "1f1b", 32, 2048),
    Config("interleaved-16x2048-v2", "interleaved", 16, 2048, 2),
    Config("zb-v-16x1366", "zb-v", 16, 1366),
    # about 1M ops each
    Config("1f1b-128x4096", "1f1b", 128, 4096),
    Config("interleaved-64x4096-v2", "interleaved", 64, 4096, 2),
    Config("zb-v-64x2731", "zb-v", 64, 2731),
    Config("1f1b-64x4096", "1f1b", 64, 4096),  # the chart target: p=64, m=4096 drawn in < 1 s
    # scaling: many devices, and a million ops with the memory model
    Config("1f1b-10000x1", "1f1b", 10000, 1),
    Config("1f1b-128x4096-memory", "1f1b", 128, 4096, memory=True),
]


def bare_replay(orders: list[list[Op]], rules: OpIndex) -> float:
    """The same per-device orders timed without SimPy or a trace, with the same compiled
    dependency rules: each device runs its next op as soon as its inputs are done. Returns the
    makespan (free messages: an input is ready when its producer ends). A device blocked on
    an input waits for that op's key, and is woken when it is done: linear in ops and devices
    (sweeping every device until one progresses was quadratic in p)."""
    m = rules.microbatches
    done = [-1.0] * rules.size
    duration, inputs = rules.duration, rules.inputs
    free = [0.0] * len(orders)
    position = [0] * len(orders)
    runnable = deque(range(len(orders)))
    waiting: dict[int, list[int]] = {}
    while runnable:
        device = runnable.popleft()
        order = orders[device]
        index, ready_at = position[device], free[device]
        while index < len(order):
            kind, stage, mb = order[index]
            slot = stage * 3 + kind
            key = (stage * m + mb) * 3 + kind
            start = ready_at
            for _, offset in inputs[slot]:
                finished = done[key + offset]
                if finished < 0:
                    waiting.setdefault(key + offset, []).append(device)
                    break
                start = max(start, finished)
            else:
                ready_at = done[key] = start + duration[slot]
                index += 1
                if waiting and key in waiting:
                    runnable.extend(waiting.pop(key))
                continue
            break
        position[device], free[device] = index, ready_at
    if any(index < len(order) for index, order in zip(position, orders, strict=True)):
        raise RuntimeError("the replay stalled")
    return max(free)


def _cpu(work: Callable[[], object]) -> float:
    """CPU seconds `work` takes in this process."""
    started = time.process_time()
    work()
    return time.process_time() - started


def measure(config: Config) -> dict[str, float | int | str]:
    # The command first, while this process is small: a child's peak memory counts what it
    # inherits when it is forked.
    command = ["run", "--policy", config.policy, "-p", str(config.stages)]
    command += ["-m", str(config.microbatches), "--format", "json"]
    command += ["-v", str(config.chunks)] if config.chunks else []
    command += MEMORY_FLAGS if config.memory else []
    cli_cpu, cli_rss = _child(command)
    settings = Settings(
        policy=config.policy,
        stages=config.stages,
        microbatches=config.microbatches,
        chunks=config.chunks,
        **(MEMORY if config.memory else {}),  # type: ignore[arg-type]
    )
    policy = get_policy(config.policy)
    problem = build_problem(settings, policy)

    # The best of three: on a shared 2-core machine the slowest runs measure the neighbours.
    simulated = float("inf")
    for _ in range(REPEATS):
        started = time.process_time()
        trace = simulate(problem, policy)
        simulated = min(simulated, time.process_time() - started)
    started = time.process_time()
    report = analyze(trace, policy)
    analyzed = time.process_time() - started
    ops = len(trace.ops)

    with open(os.devnull, "w") as sink:
        json_time = _cpu(lambda: write_json(report, sink))
        trace_time = _cpu(lambda: write_chrome_trace(report, sink))
    console = Console(width=120, file=io.StringIO(), color_system="truecolor")
    chart_time = _cpu(lambda: console.print(GanttChart(trace)))

    orders = [[record.op for record in device_ops] for device_ops in trace.ops_by_device()]
    rules = OpIndex(problem)
    replay = float("inf")
    for _ in range(REPEATS):
        started = time.process_time()
        makespan = bare_replay(orders, rules)
        replay = min(replay, time.process_time() - started)
    assert abs(makespan - trace.makespan) <= 1e-6 * trace.makespan, "replay disagrees"
    whole = simulated + analyzed + json_time
    return {
        "name": config.name,
        "ops": ops,
        "simulate_s": simulated,
        "analyze_s": analyzed,
        "json_s": json_time,
        "whole_s": whole,
        "trace_s": trace_time,
        "chart_s": chart_time,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "replay_s": replay,
        "ratio": replay / whole,
        "cli_s": cli_cpu,
        "cli_rss_mb": cli_rss,
    }


INSTALLED = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
"""The environment of the children: with bytecode caches, as an installed pipesim runs (with
PYTHONDONTWRITEBYTECODE set, as on this project's machine, every import compiles its source
again, and start-up is 0.45 s instead of 0.3 s: that added 0.15 s to both sides of the timed
messages' ratio, and made 1.7x read 1.5x)."""


def _child(args: list[str]) -> tuple[float, float]:
    """CPU seconds and peak resident MB of `pipesim args` run as a child, output discarded
    (this process has had no other child, so the children's peak is its own)."""
    return _python(["-m", "pipesim", *args])


def _python(args: list[str]) -> tuple[float, float]:
    """CPU seconds and the children's peak resident MB of `python args` as a child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, env=INSTALLED)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, after.ru_maxrss / 1024


def startup(args: list[str]) -> float:
    """The least CPU time (user + system) of five runs of `pipesim args` in a child process."""
    return min(_child(args)[0] for _ in range(5))


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
    console = Console(width=160)
    _child(["run", "-p", "2", "-m", "2", "--format", "json"])  # writes the bytecode caches
    table = Table(
        title=f"pipesim, CPU seconds: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
    )
    headers = (
        "configuration", "ops", "simulate", "analyze", "JSON", "whole", "replay",
        "whole vs replay", "at replay speed", "analyze / simulate", "JSON us/op", "trace us/op",
        "trace / JSON", "chart", "CLI run", "CLI peak RSS MB",
    )  # fmt: skip
    for header in headers:
        table.add_column(header, justify="right")
    for config in CONFIGS:
        output = subprocess.run(
            [sys.executable, __file__, "--only", config.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        row = json.loads(output)
        ops = row["ops"]
        table.add_row(
            row["name"],
            f"{ops:,}",
            f"{row['simulate_s']:.2f}",
            f"{row['analyze_s']:.2f}",
            f"{row['json_s']:.2f}",
            f"{row['whole_s']:.2f}",
            f"{row['replay_s']:.2f}",
            f"{row['ratio']:.2f}x",
            f"{row['replay_s'] / (row['replay_s'] + row['analyze_s'] + row['json_s']):.2f}x",
            f"{row['analyze_s'] / row['simulate_s']:.2f}",
            f"{1e6 * row['json_s'] / ops:.2f}",
            f"{1e6 * row['trace_s'] / ops:.2f}",
            f"{row['trace_s'] / row['json_s']:.1f}x",
            f"{row['chart_s']:.2f}",
            f"{row['cli_s']:.2f}",
            f"{row['cli_rss_mb']:.0f}",
        )
        console.print(f"done: {config.name}", style="dim")
    console.print(table)
    console.print(
        'whole vs replay: goal 0.5x (issue 30). "at replay speed" is where the run would '
        "stand if simulating cost no more than the bare replay, with the same analysis and JSON"
    )
    smallest = startup(["run", "-p", "4", "-m", "8", "--format", "json"])
    help_time = startup(["--help"])
    python = min(_python(["-c", "pass"])[0] for _ in range(5))
    floor = min(_python(["-c", "import typer, rich.console, simpy"])[0] for _ in range(5))
    console.print(
        f"start-up, CPU seconds (best of 5): pipesim run -p 4 -m 8 --format json "
        f"{smallest:.2f} ({smallest / python:.1f}x python -c pass, {python:.3f} s); pipesim "
        f"--help {help_time:.2f} ({help_time / python:.1f}x); goal 5x (issue 30). typer, rich "
        f"and simpy alone take {floor:.2f} s ({floor / python:.1f}x)"
    )
    pooled, _, alone, _ = pooled_and_alone("1f1b", 400, 2)
    console.print(
        f"a Monte Carlo of 400 runs of 1f1b p=8 m=32 on a pool of 2: {alone / pooled:.2f}x one "
        f"process ({pooled:.2f} s against {alone:.2f} s of wall time; goal 1.6x on an idle "
        f"machine, issue 30; `monte_carlo_bench.py --busy 2` measures a loaded one)"
    )
    plain, timed, ratios = messages_cost()
    lines = transfer_lines_cost()
    console.print(
        f"timed messages: pipesim run -p 50 -m 1000 --format json, 100,000 ops, CPU seconds "
        f"(best of {len(ratios)}, in turn): {plain:.2f} without messages, {timed:.2f} with "
        f"--comm-latency 0.1 (98,000 transfers): {timed / plain:.2f}x; round by round "
        f"{min(ratios):.2f}-{max(ratios):.2f}x, median {statistics.median(ratios):.2f}x (goal: "
        f"within 1.5x). Writing the transfers' lines alone takes {lines:.2f} s: with nothing "
        f"else to pay for the messages, the run would be at {(plain + lines) / plain:.2f}x"
    )
    counted = messages_instructions()
    if counted is not None:
        plain_count, timed_count = counted
        console.print(
            f"timed messages, instructions executed (valgrind, one run each, PYTHONHASHSEED=0): "
            f"{plain_count / 1e9:.3f} G without messages, {timed_count / 1e9:.3f} G with: "
            f"{timed_count / plain_count:.3f}x"
        )
    plotted = plot_with_messages_cost()
    (fewest, (first, _)), (most, (last, _)) = min(plotted.items()), max(plotted.items())
    console.print(
        "--plot with timed messages (--comm-latency 0.1, --format json), the whole command's "
        "CPU seconds and peak MB by ops in the step: "
        + "; ".join(f"{ops:,} ops {cpu:.1f} s, {rss:.0f} MB" for ops, (cpu, rss) in plotted.items())
        + f"; {1e3 * (last - first) / (most - fewest):.3f} s for each 1,000 ops more. Issue 32 "
        "filed 3.5 / 7.2 / 16.2 / 49.7 s for 2k / 4k / 8k / 16k ops, and 100k ops unfinished "
        "after 509 s at 1 GB (goal: drawn per link, as ops are drawn per device)"
    )
    for name, (plain, shown, size, goal) in pictures_cost().items():
        console.print(
            f"{name} at a million ops (run -p 128 -m 4096), CPU seconds: {shown:.2f} against "
            f"{plain:.2f} for --format json alone: {shown / plain:.2f}x (goal: within "
            f"{goal:g}x), {size / 1e6:.0f} MB"
        )
    study, simulations = study_share()
    console.print(
        f"study: a Monte Carlo of 200 runs of 4,000 ops (1f1b, p=8, m=250, 10% jitter) takes "
        f"{study:.2f} CPU s, of which the simulations {simulations:.2f} s "
        f"({100 * simulations / study:.0f}%)"
    )


def messages_cost(rounds: int = 10) -> tuple[float, float, list[float]]:
    """The CLI's CPU seconds for one run without messages and with a latency on every link,
    each the least of `rounds`, taken in turn, and each round's ratio: on this shared machine,
    three of each taken one after the other gave 1.42x and 1.77x minutes apart, and the least
    of six gave 1.44x to 1.77x within ten minutes, so the median ratio of a round is printed
    beside the ratio of the least times."""
    base = ["run", "-p", "50", "-m", "1000", "--format", "json"]
    plain = timed = float("inf")
    ratios = []
    for _ in range(rounds):
        without = _child(base)[0]
        with_messages = _child([*base, "--comm-latency", "0.1"])[0]
        plain, timed = min(plain, without), min(timed, with_messages)
        ratios.append(with_messages / without)
    return plain, timed, ratios


def messages_instructions() -> tuple[int, int] | None:
    """The instructions the CLI executes for the runs of `messages_cost`, counted by
    valgrind's cachegrind (None without valgrind): the same count on every run, whatever else
    the machine does, where the CPU time of the same pair moved the ratio by 0.3 within ten
    minutes. About half a minute each."""
    import shutil

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    base = ["run", "-p", "50", "-m", "1000", "--format", "json"]
    _child(["run", "-p", "2", "-m", "2", "--format", "json"])  # not counting the compiling
    counts = []
    for args in (base, [*base, "--comm-latency", "0.1"]):
        done = subprocess.run(
            [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             sys.executable, "-m", "pipesim", *args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**INSTALLED, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        refs = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if refs is None:
            return None
        counts.append(int(refs.group(1).replace(",", "")))
    return counts[0], counts[1]


def transfer_lines_cost() -> float:
    """CPU seconds (best of 3, in this process) of writing only the transfers' lines of the
    run with messages, the ops' times already formatted, as `write_json` writes them: what the
    run must add to the one without messages even if simulating and analysing the messages
    cost nothing (its output has a line per message beside a line per op)."""
    settings = Settings(stages=50, microbatches=1000, comm_latency=0.1)
    policy = get_policy("1f1b")
    report = analyze(simulate(build_problem(settings, policy), policy), policy)
    best = float("inf")
    with open(os.devnull, "w") as sink:
        for _ in range(REPEATS):
            times = TimeTexts()
            deque(_timeline_lines(report, times), maxlen=0)
            best = min(best, _cpu(lambda: write_items(sink, _transfer_lines(report, times), "")))  # noqa: B023
    return best


def plot_with_messages_cost() -> dict[int, tuple[float, float]]:
    """Per step size, the CPU seconds and peak resident MB of `run --plot` with a latency on
    every link (one message per op but the last stage's), each the least of two runs: issue
    32 found one matplotlib artist per message, and a cost that grew faster than the ops."""
    import tempfile

    shapes = ((8, 84), (8, 167), (8, 334), (8, 667), (50, 667))
    measured = {}
    with tempfile.TemporaryDirectory() as folder:
        for p, m in shapes:
            args = ["run", "-p", str(p), "-m", str(m), "--comm-latency", "0.1", "--format",
                    "json", "--plot", os.path.join(folder, "plot.png")]  # fmt: skip
            runs = [_one_child(args) for _ in range(2)]
            measured[3 * p * m] = (min(cpu for cpu, _ in runs), min(rss for _, rss in runs))
    return measured


def _one_child(args: list[str]) -> tuple[float, float]:
    """CPU seconds and peak resident MB of this one run of `pipesim args` (`os.wait4` gives
    each child's own figures, where the children's peak is the largest of them all)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "pipesim", *args], stdout=subprocess.DEVNULL, env=INSTALLED
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def pictures_cost(rounds: int = 3) -> dict[str, tuple[float, float, int, float]]:
    """Per picture flag: the CLI's CPU seconds for the JSON run alone and with the picture
    written too, the file's bytes, the goal (issue 30). Each the least of `rounds`, taken in
    turn: one run of each moved the ratio from 1.39x to 1.79x on this shared machine."""
    import tempfile

    base = ["run", "-p", "128", "-m", "4096", "--format", "json"]
    pictures = (("--html", "page.html", 1.5), ("--plot", "plot.png", 2.0))
    plain = float("inf")
    shown = dict.fromkeys((flag for flag, _, _ in pictures), float("inf"))
    sizes = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            plain = min(plain, _child(base)[0])
            for flag, name, _ in pictures:
                path = os.path.join(folder, name)
                shown[flag] = min(shown[flag], _child([*base, flag, path])[0])
                sizes[flag] = os.path.getsize(path)
    return {flag: (plain, shown[flag], sizes[flag], goal) for flag, _, goal in pictures}


def study_share() -> tuple[float, float]:
    """CPU seconds of a Monte Carlo study in this process, and of its simulations alone."""
    settings = Settings(stages=8, microbatches=250, jitter=0.1, seed=1)
    study = _cpu(lambda: monte_carlo(settings, ["1f1b"], 200, 1))
    policy = get_policy("1f1b")
    problems = [build_problem(settings.replace(seed=1 + run), policy) for run in range(200)]
    simulations = _cpu(lambda: [simulate(problem, policy) for problem in problems])
    return study, simulations


if __name__ == "__main__":
    main()
