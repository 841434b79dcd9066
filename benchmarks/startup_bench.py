"""Start-up of the command line, against Python's own and against the floor its libraries set.
Not a test: it prints the figures and exits 1 when start-up is over budget.

    python benchmarks/startup_bench.py

Each figure is the least CPU time (user + system) of ten runs in a child process, bytecode
caches written first (with PYTHONDONTWRITEBYTECODE set, every import compiles its source again
and start-up more than doubles: that is not what an installed pipesim does). Beside
`python -c pass` it measures `import typer, rich.console`, which every command needs to parse
its flags and print; pipesim's own share is what is left above that floor.

The budget is the floor plus pipesim's own share as measured on 2026-12-07 with a margin
(`OWN_BUDGET`): a change that imports more at start-up (a renderer, a solver, matplotlib)
shows up here as a failure, with the modules to look at named by `python -X importtime`.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

RUNS = 10
OWN_BUDGET = 0.25
"""CPU seconds that pipesim may add to the floor for `run -p 4 -m 8` (it took 0.19-0.20)."""

SMALLEST_RUN = "run --policy 1f1b -p 4 -m 8"
TWO_COMMANDS = """
import typer
app = typer.Typer()
@app.command()
def run(p: int = 4, m: int = 8) -> None:
    \"\"\"Run.\"\"\"
@app.command()
def compare(p: int = 4) -> None:
    \"\"\"Compare.\"\"\"
app()
"""
"""The least typer application with rich installed: what its --help costs is the floor of
any typer command's --help (typer renders it with rich)."""
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "floor: import typer, rich.console": [sys.executable, "-c", "import typer, rich.console"],
    "floor of a run: ... and simpy": [sys.executable, "-c", "import typer, rich.console, simpy"],
    "floor of --help: a 2-command typer app": [sys.executable, "-c", TWO_COMMANDS, "--help"],
    "pipesim --help": [sys.executable, "-m", "pipesim", "--help"],
    f"pipesim {SMALLEST_RUN}": [sys.executable, "-m", "pipesim", *SMALLEST_RUN.split()],
}


def cpu_of(command: list[str], environment: dict[str, str]) -> float:
    """The least CPU seconds of `RUNS` runs of `command` as a child, output discarded."""
    best = float("inf")
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return best


def main() -> int:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environment["COLUMNS"] = "80"
    for command in COMMANDS.values():  # write the bytecode caches
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment)
    figures = {name: cpu_of(command, environment) for name, command in COMMANDS.items()}
    python = figures["python -c pass"]
    floor = figures["floor: import typer, rich.console"]
    print(f"start-up, CPU seconds (best of {RUNS}), and against `python -c pass`:")
    for name, seconds in figures.items():
        print(f"  {name:<40} {seconds:6.3f} s  {seconds / python:5.1f}x")
    run = figures[f"pipesim {SMALLEST_RUN}"]
    own = run - floor
    print(
        f"pipesim's own share of the smallest run: {own:.3f} s above the floor "
        f"(budget {OWN_BUDGET:.2f} s); 5x python would be {5 * python:.3f} s, "
        f"{'below' if 5 * python < floor else 'above'} the floor itself"
    )
    # Issue 30's goal, 5x `python -c pass`, against what the libraries a command cannot do
    # without take by themselves (typer to parse, rich to print, SimPy to simulate).
    for name, needed in (
        (f"pipesim {SMALLEST_RUN}", figures["floor of a run: ... and simpy"]),
        ("pipesim --help", figures["floor of --help: a 2-command typer app"]),
    ):
        left = 5 * python - needed
        print(
            f"goal for {name}: 5x python = {5 * python:.3f} s; its libraries alone take "
            f"{needed:.3f} s ({needed / python:.1f}x), "
            + (
                f"leaving {left:.3f} s for pipesim's own imports and work, which take "
                f"{figures[name] - needed:.3f} s"
                if left > 0
                else "so it is out of reach while it needs them"
            )
        )
    if own > OWN_BUDGET:
        print("OVER BUDGET: see `python -X importtime -m pipesim run -p 4 -m 8`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
