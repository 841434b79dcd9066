"""Bidirectional DualPipe (DeepSeek-V3): two copies of the model, half the microbatches from
each end, and the DualPipe README's bubble and memory row."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim import Report, Settings, check_trace, simulate_step
from pipesim.cli import app
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()


def _dualpipe(p: int, m: int, f: float, b: float, w: float, overlap: float = 1.0) -> Report:
    return simulate_step(Settings(policy="dualpipe", stages=p, microbatches=m, forward=(f,),
                                  backward=(b,), weight=(w,), overlap_cost=overlap))  # fmt: skip


def test_the_readme_figure_8_ranks_20_microbatches() -> None:
    # "Example DualPipe scheduling for 8 PP ranks and 20 micro-batches in two directions",
    # F one cell, B two, W one, F&B three: (PP/2-1)(F&B+B-3W) = 3 * 2 = 6 idle on every rank,
    # each rank busy 20 * 3, and PP+1 = 9 stage activations at the peak.
    report = _dualpipe(8, 20, 1, 2, 1)
    assert [stats.idle for stats in report.summary.devices] == [6] * 8
    assert report.summary.makespan == 66
    assert [stats.peak_activations for stats in report.summary.devices] == [9] * 8
    assert check_trace(report.trace) == []


def test_half_the_microbatches_enter_at_each_end() -> None:
    trace = _dualpipe(4, 8, 1, 2, 1).trace
    first_forwards = {
        record.microbatch for record in trace.ops if record.kind.name == "F" and record.start == 0
    }
    assert first_forwards == {0, 4}  # microbatch 0 on device 0, microbatch 4 on device 3
    for record in trace.ops:
        down = record.microbatch < 4
        assert (record.stage < 4) == down  # the first half flows down, the rest back up


@settings(max_examples=40, deadline=None)
@given(
    half_p=st.integers(1, 4),
    extra=st.integers(0, 4),
    f=st.sampled_from([0.5, 1.0, 2.0]),
    w_share=st.sampled_from([0.25, 0.5, 1.0]),
    overlap_share=st.floats(0, 1),
)
def test_bubble_and_memory_match_the_readme_table(
    half_p: int, extra: int, f: float, w_share: float, overlap_share: float
) -> None:
    # Where the formula is exact for DualPipeV (F = B-W, W <= F, B <= F&B <= F+B), DualPipe
    # idles (PP/2-1)(F&B+B-3W) on its most idle device, PP = p, and holds PP+1 activations.
    p = 2 * half_p
    w = w_share * f
    b = f + w
    overlap = b / (f + b) + overlap_share * (1 - b / (f + b))
    report = _dualpipe(p, 2 * p + 2 * extra, f, b, w, overlap)
    idle = max(stats.idle for stats in report.summary.devices)
    assert idle == pytest.approx((p // 2 - 1) * (overlap * (f + b) + b - 3 * w))
    assert report.summary.peak_activations == p + 1
    assert check_trace(report.trace) == []


def test_two_copies_of_the_parameters() -> None:
    # 10 GB of static bytes per stage of a 4-stage pipeline: 1F1B holds 10 GB per device,
    # DualPipe 20 (a stage of each copy); a microbatch leaves 1 GB on each device it passes.
    args = ["-p", "4", "-m", "8", "--static-memory", "10GB", "--activation-memory", "1GB",
            "-f", "json"]  # fmt: skip

    one_f = result_json(runner.invoke(app, ["run", "--policy", "1f1b", *args]).stdout)
    dual = result_json(runner.invoke(app, ["run", "--policy", "dualpipe", *args]).stdout)
    assert {d["static_memory_bytes"] for d in one_f["devices"]} == {10e9}
    assert {d["static_memory_bytes"] for d in dual["devices"]} == {20e9}
    assert {d["peak_memory_bytes"] for d in dual["devices"]} == {20e9 + 5e9}  # p+1 of 1 GB


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        (["-p", "3", "-m", "12"], "even number of devices"),
        (["-p", "4", "-m", "9"], "even m >= 2p"),
        (["-p", "4", "-m", "6"], "even m >= 2p"),
    ],
)
def test_shapes_the_reference_refuses_are_refused(shape: list[str], words: str) -> None:
    result = runner.invoke(app, ["run", "--policy", "dualpipe", *shape])
    assert result.exit_code == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_its_csv_replays_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "dualpipe.csv"
    written = runner.invoke(app, ["export", "--policy", "dualpipe", "-p", "4", "-m", "8",
                                  "-o", str(path)])  # fmt: skip
    assert written.exit_code == 0, written.stderr
    valid = runner.invoke(app, ["validate", str(path)])
    assert valid.exit_code == 0, valid.stderr
    assert "bidirectional" in valid.stdout
    replay = runner.invoke(app, ["run", "--schedule", str(path), "-f", "json"])
    assert result_json(replay.stdout)["makespan"] == _dualpipe(4, 8, 1, 2, 1).summary.makespan
