"""The `pipesim` command as a user meets it: exit codes and the words on the screen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipesim.cli import app

runner = CliRunner()


def test_run_shows_chart_summary_and_closed_form() -> None:
    result = runner.invoke(app, ["run", "--policy", "1f1b", "-p", "4", "-m", "8"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for device in range(4):
        assert any(line.startswith(f"dev {device} ") for line in lines)
    assert "makespan 33 ms" in result.output
    assert "bubble 27.3% measured" in result.output
    assert "closed form (p-1)/(m+p-1) = 27.3%" in result.output
    assert "forward" in result.output and "backward" in result.output


def test_run_textbook_gpipe_json() -> None:
    result = runner.invoke(
        app,
        ["run", "--policy", "gpipe", "-p", "4", "-m", "8", "--backward", "1", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["policy"] == "gpipe"
    assert (data["stages"], data["microbatches"], data["makespan"]) == (4, 8, 22.0)
    assert data["bubble_fraction"] == pytest.approx(3 / 11)
    assert [d["peak_activations"] for d in data["devices"]] == [8, 8, 8, 8]
    assert [d["idle"] for d in data["devices"]] == [6.0] * 4
    assert len(data["timeline"]) == 2 * 4 * 8
    first = data["timeline"][0]
    assert first == {
        "device": 0,
        "stage": 0,
        "kind": "F",
        "microbatch": 0,
        "start": 0.0,
        "end": 1.0,
    }


def test_json_is_byte_identical_across_runs() -> None:
    args = [
        "run",
        "-p",
        "3",
        "-m",
        "5",
        "--forward",
        "0.1,0.2,0.3",
        "--comm-latency",
        "0.1",
        "-f",
        "json",
    ]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == 0
    assert first.output == second.output
    assert "0.30000000000000004" not in first.output


def test_flags_override_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('policy = "gpipe"\nstages = 2\nmicrobatches = 3\nforward = [1, 2]\n')
    result = runner.invoke(app, ["run", "--config", str(config), "-m", "5", "-f", "json"])
    data = json.loads(result.output)
    assert (data["policy"], data["stages"], data["microbatches"]) == ("gpipe", 2, 5)
    assert data["costs"]["forward"] == [1.0, 2.0]


def test_policies_lists_every_policy() -> None:
    result = runner.invoke(app, ["policies"])
    assert result.exit_code == 0
    assert "gpipe" in result.output and "1f1b" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "0"], "stages must be at least 1"),
        (["-m", "-2"], "microbatches must be at least 1"),
        (["-p", "x"], "'-p' / '--stages'"),
        (["--forward", "-1"], "forward must be a finite number >= 0"),
        (["--backward", "nan"], "backward must be a finite number >= 0"),
        (["--forward", "inf"], "forward must be a finite number >= 0"),
        (["--forward", "1,2"], "forward has 2 values; expected 1 or 4"),
        (["--forward", "1,x,1,1"], "'x' is not a number"),
        (["--comm-latency", "-1"], "comm_latency must be a finite number >= 0"),
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--config", "/nonexistent/run.toml"], "cannot read /nonexistent/run.toml"),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1
    assert error_lines[0].startswith("pipesim: error: ")
    assert message in error_lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "text", ["stages = [\n", "colour = 'red'\n", "stages = 'four'\n", "forward = [1, -1]\n"]
)
def test_bad_toml_is_one_line_and_exit_2(tmp_path: Path, text: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(config) in result.stderr
