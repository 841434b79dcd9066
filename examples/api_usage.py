"""Use pipesim as a library: simulate two schedules on uneven stages and compare them.

Run:  python examples/api_usage.py
"""

from __future__ import annotations

from rich.console import Console

from pipesim import Settings, check_trace, simulate_step
from pipesim.render import GanttChart


def main() -> None:
    base = Settings(stages=4, microbatches=8, forward=(1.0, 1.0, 1.5, 2.0), comm_latency=0.1)
    console = Console()
    for policy in ("gpipe", "1f1b"):
        report = simulate_step(base.replace(policy=policy))
        assert check_trace(report.trace) == [], "the timeline checker found a problem"
        summary = report.summary
        console.print(
            f"[bold]{policy}[/]: makespan {summary.makespan:.2f} ms, "
            f"bubble {summary.bubble_fraction:.1%}, "
            f"peak activations per device {[f'{s.peak_activations:g}' for s in summary.devices]}"
        )
        console.print(GanttChart(report.trace))


if __name__ == "__main__":
    main()
