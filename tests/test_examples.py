"""The examples a reader copies from run as written, and the notebook's pieces say what the
report says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipesim import frames
from pipesim.render import GanttChart, SummaryTable
from tests.conftest import simulate_settings


@pytest.mark.parametrize(
    ("example", "words"),
    [
        ("examples/api_usage.py", ["gpipe: makespan", "1f1b: makespan"]),
        ("examples/notebook.py", ["zb-v ", "-byte PNG", "wait_gradient"]),
    ],
)
def test_an_example_runs_as_written(example: str, words: list[str]) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    done = subprocess.run(
        [sys.executable, example], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-500:]
    for word in words:
        assert word in done.stdout


def test_frames_hold_what_the_report_holds() -> None:
    pytest.importorskip("pandas")
    report = simulate_settings(
        policy="zb-v", stages=4, microbatches=8, forward=[1, 1, 1.5, 2], comm_latency=0.1
    )
    tables = frames(report)
    assert len(tables.ops) == len(report.trace.ops)
    assert len(tables.transfers) == len(report.trace.transfers) > 0
    assert set(tables.ops["kind"]) == {"F", "B", "W"} and set(tables.ops["chunk"]) == {0, 1}
    for stats in report.summary.devices:
        mine = tables.ops[tables.ops["device"] == stats.device]
        assert mine["duration"].sum() == pytest.approx(stats.busy)
        row = tables.devices[tables.devices["device"] == stats.device].iloc[0]
        assert row["bubble_fraction"] == stats.bubble_fraction
        held = tables.memory[tables.memory["device"] == stats.device]["activations"]
        assert held.max() == pytest.approx(stats.peak_activations)
        assert held.iloc[-1] == 0  # every activation is freed by the step's end


def test_a_notebook_cell_shows_the_chart_and_the_table_in_color() -> None:
    report = simulate_settings(policy="1f1b", stages=4, microbatches=8)
    for shown in (GanttChart(report.trace), SummaryTable(report)):
        page = shown._repr_html_()
        assert page.lstrip().startswith("<!DOCTYPE html>") and "color: #" in page
    assert "dev 3" in GanttChart(report.trace)._repr_html_()
