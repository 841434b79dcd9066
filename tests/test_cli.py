"""The `pipesim` command as a user meets it: exit codes and the words on the screen."""

from __future__ import annotations

import gc
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipesim import registered_policies
from pipesim.cli import app
from pipesim.render import write_json
from tests.cli_runner import CliRunner
from tests.conftest import result_json, simulate_settings

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


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["-p", "2", "-m", "2", "-f", "json"], 0),
        (["--policy", "gpipe", "--activation-memory", "10GB", "--static-memory", "20GB",
          "--memory-limit", "80GB", "--fail-on-oom"], 1),
        (["-p", "2", "-m", "4", "--jitter", "0.1", "--runs", "3", "--workers", "1"], 0),
        (["-p", "2", "-m", "2", "--schedule", "/nonexistent.csv"], 2),
    ],
    ids=["ok", "out-of-memory", "runs", "bad-input"],
)  # fmt: skip
def test_a_run_leaves_the_cycle_collector_running(args: list[str], code: int) -> None:
    """`run` pauses the cycle collector while its step lives (`cli.simulate.run`). Whatever
    the outcome, it runs again afterwards, as a program that calls pipesim expects."""
    assert gc.isenabled()
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == code, result.output
    assert gc.isenabled()


def test_run_textbook_gpipe_json() -> None:
    result = runner.invoke(
        app,
        ["run", "--policy", "gpipe", "-p", "4", "-m", "8", "--backward", "1", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    data = result_json(result.output)
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
    data = result_json(result.output)
    assert (data["policy"], data["stages"], data["microbatches"]) == ("gpipe", 2, 5)
    assert data["costs"]["forward"] == [1.0, 2.0]


def test_version_is_the_installed_one() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("pipesim ")
    assert result.stdout.split()[1][0].isdigit()


def test_policies_lists_every_registered_policy_with_its_aliases() -> None:
    result = runner.invoke(app, ["policies"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == len(registered_policies())
    for line, policy in zip(lines, registered_policies(), strict=True):
        assert line.split()[0] == policy.name
        assert " ".join(policy.summary.split()) in " ".join(line.split())
        for alias in policy.aliases:
            assert alias in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "0"], "stages must be at least 1"),
        (["-m", "-2"], "microbatches must be at least 1"),
        (["-p", "x"], "stages: 'x' is not a whole number"),
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


def test_compare_prints_every_policy_and_a_verdict() -> None:
    result = runner.invoke(app, ["compare", "-p", "8", "-m", "32"], terminal_width=140)
    assert result.exit_code == 0, result.output
    for policy in (
        "gpipe",
        "1f1b",
        "interleaved",
        "looped-bfs",
        "zb-h1",
        "zb-h2",
        "zb-v",
        "interleaved-zb",
        "dualpipe-v",
    ):
        assert any(line.startswith(policy + " ") for line in result.output.splitlines()), policy
    assert "fastest: " in result.output


def test_compare_json_rows_and_constraint_rows() -> None:
    result = runner.invoke(
        app, ["compare", "-p", "4", "-m", "6", "--policies", "gpipe,1f1b,dualpipe-v", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    record = result_json(result.output, "compare")
    # What was simulated travels with the rows: the settings given (in the envelope every
    # output shares) and the links used.
    assert json.loads(result.output)["options"]["policies"] == ["gpipe", "1f1b", "dualpipe-v"]
    assert json.loads(result.output)["settings"] == {
        "stages": 4,
        "microbatches": 6,
        "overlap_cost": 1,
        "blocking_comm": False,
    }
    assert record["network"]["intra_node"] == {"latency": 0, "bandwidth": None}
    assert record["verdict"]["fastest"] == "1f1b"
    rows = record["rows"]
    assert [row["policy"] for row in rows] == ["gpipe", "1f1b", "dualpipe-v"]
    assert record["speedup_baseline"] == "gpipe" and rows[0]["speedup"] == 1.0
    assert rows[1]["peak_activations"] == 4 and rows[0]["peak_activations"] == 6
    assert rows[2]["error"] == "dualpipe-v needs m >= 2p microbatches (m=6, p=4)"


def test_compare_with_unknown_policy_is_exit_2() -> None:
    result = runner.invoke(app, ["compare", "--policies", "gpipe,nope"])
    assert result.exit_code == 2
    assert "unknown policy 'nope'" in result.stderr


def test_run_split_backward_json_has_w_ops_span_and_chunks() -> None:
    result = runner.invoke(
        app,
        ["run", "--policy", "ZBVZeroBubble", "-p", "2", "-m", "4", "--weight", "0.5", "-f", "json"],
    )
    assert result.exit_code == 0, result.output
    data = result_json(result.output)
    assert data["policy"] == "zb-v" and data["chunks"] == 2 and data["split_backward"] is True
    kinds = [row["kind"] for row in data["timeline"]]
    assert kinds.count("W") == kinds.count("B") == kinds.count("F") == 2 * 2 * 4
    assert data["span"] <= data["makespan"]
    assert {"start", "end"} <= set(data["devices"][0])


def test_run_chart_shows_w_and_the_span_view() -> None:
    result = runner.invoke(
        app, ["run", "--policy", "zb-h2", "-p", "4", "-m", "8"], terminal_width=120
    )
    assert result.exit_code == 0, result.output
    assert "weight grad" in result.output
    assert "span 24 ms" in result.output and "span bubble 0.0%" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "1f1b", "-v", "2"], "places 1 chunk(s) per device; got --chunks 2"),
        (["--policy", "interleaved", "-m", "9", "-v", "2"], "equal rounds"),
        (["--policy", "zb-h1", "--weight", "5"], "weight (5 ms) exceeds backward (2 ms)"),
        (["--policy", "interleaved", "-v", "0"], "chunks must be at least 1"),
    ],
)
def test_schedule_constraints_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_run_with_links_and_nodes_json_has_transfers_and_links() -> None:
    args = [
        "run",
        "-p",
        "4",
        "-m",
        "4",
        "--activation-size",
        "64MB",
        "--bandwidth",
        "50GB/s",
        "--devices-per-node",
        "2",
        "--inter-node-bandwidth",
        "10GB/s",
        "--blocking-comm",
        "-f",
        "json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = result_json(result.output)
    assert data["network"]["blocking"] is True
    assert data["network"]["inter_node"]["bandwidth"] == 10e9
    assert len(data["transfers"]) == 2 * 3 * 4  # each microbatch crosses 3 links each way
    first = data["transfers"][0]
    assert first["message"] == "activation" and first["end"] - first["start"] == pytest.approx(1.28)
    for device in data["devices"]:
        assert sum(device["idle_by_cause"].values()) == pytest.approx(device["idle"])


def test_text_output_says_when_links_bound_the_schedule() -> None:
    args = [
        "run",
        "-p",
        "4",
        "-m",
        "8",
        "--activation-size",
        "64MB",
        "--bandwidth",
        "50GB/s",
        "--devices-per-node",
        "2",
        "--inter-node-bandwidth",
        "5GB/s",
    ]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "on links" in result.output
    assert "the busiest link, 1->2 (between nodes)" in result.output
    assert "╵" in result.output  # the transfer lanes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--activation-size", "-5MB"], "activation_size must be a finite amount >= 0"),
        (["--activation-size", "64 parsecs"], "is not a size"),
        (["--bandwidth", "25GB"], "is not a rate"),
        (["--activation-size", "1MB", "--bandwidth", "0GB/s"], "bandwidth is 0"),
        (["--activation-size", "1MB"], "no bandwidth"),
        (["--devices-per-node", "0"], "devices_per_node must be at least 1"),
        (["--inter-node-latency", "2"], "without devices_per_node"),
        (["--bandwidth", "25GB/s"], "bandwidth is given but messages have no size"),
    ],
)
def test_bad_network_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_two_node_example_is_communication_bound() -> None:
    result = runner.invoke(
        app, ["run", "--config", "examples/two_nodes.toml"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "communication-bound" in result.output


@pytest.mark.parametrize(
    "config",
    [
        {"policy": "zb-v", "stages": 3, "microbatches": 5, "forward": [0.1, 0.7, 1 / 3]},
        # ops back to back (a start written as the end before it) and after gaps, with noise
        {"policy": "1f1b", "stages": 4, "microbatches": 9, "comm_latency": 0.1, "jitter": 0.3},
        {"policy": "dualpipe", "stages": 4, "microbatches": 8, "forward": [1e-10, 3.3, 0.7, 2]},
        # messages that queue on their links: every transfer's three times differ
        {"policy": "zb-v", "stages": 4, "microbatches": 8, "comm_latency": 1 / 3,
         "activation_size": 7e6, "bandwidth": 3e9, "link_jitter": 0.2},
    ],
)  # fmt: skip
def test_streamed_timeline_lines_are_what_json_dumps_would_write(config: dict[str, Any]) -> None:
    from pipesim.render.json_report import timeline_rows, transfer_rows

    report = simulate_settings(**config)
    out = io.StringIO()
    write_json(report, out)
    lines = out.getvalue().splitlines()
    start = lines.index(next(line for line in lines if line.endswith('"timeline": [')))
    written = [
        line.strip().rstrip(",") for line in lines[start + 1 : start + 1 + len(report.trace.ops)]
    ]
    assert written == [json.dumps(row, separators=(", ", ": ")) for row in timeline_rows(report)]
    start = lines.index(next(line for line in lines if line.endswith('"transfers": [')))
    sent = [
        line.strip().rstrip(",")
        for line in lines[start + 1 : start + 1 + len(report.trace.transfers)]
    ]
    assert sent == [json.dumps(row, separators=(", ", ": ")) for row in transfer_rows(report)]


def test_overlap_cost_times_dualpipe_v_pairs_and_is_refused_when_meaningless() -> None:
    base = ["run", "--policy", "dualpipe-v", "-p", "4", "-m", "10"]
    back_to_back = runner.invoke(app, [*base, "--forward", "2", "--backward", "4", "-f", "json"])
    overlapped = runner.invoke(
        app, [*base, "--forward", "2", "--backward", "4", "--overlap-cost", "0.7", "-f", "json"]
    )
    assert back_to_back.exit_code == overlapped.exit_code == 0
    assert result_json(back_to_back.stdout)["makespan"] == 66
    assert result_json(overlapped.stdout)["makespan"] < 66
    ignored = runner.invoke(app, ["run", "-p", "4", "--overlap-cost", "0.7"])
    assert ignored.exit_code == 0
    assert "changes nothing" in ignored.stderr
    for bad in ("0", "-1", "nan"):
        refused = runner.invoke(app, [*base, "--overlap-cost", bad])
        assert refused.exit_code == 2
        assert "overlap_cost" in refused.stderr


@pytest.mark.parametrize("args", [["run"], ["policies"], ["run", "-f", "json"]])
def test_a_full_standard_output_is_one_line_and_exit_1(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-c", "from pipesim.cli import main; main()", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pipesim: error: cannot write the output: No space left on device"
    ]


def test_a_closed_standard_output_is_one_line_and_exit_1() -> None:
    closed = subprocess.run(
        [sys.executable, "-c", "import os; os.close(1); from pipesim.cli import main; main()"],
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    assert closed.returncode == 1
    assert "Traceback" not in closed.stderr
    assert len(closed.stderr.strip().splitlines()) == 1


def test_an_absurd_width_is_refused() -> None:
    result = runner.invoke(app, ["run", "--width", "1099511627776", "--svg", "x.svg"])
    assert result.exit_code == 2
    assert "--width" in result.stderr


def test_policies_details_state_each_schedules_source_bubble_and_memory() -> None:
    result = runner.invoke(app, ["policies", "--details"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = result.stdout
    for policy in registered_policies():
        assert policy.name in text
    sections = re.split(r"^[a-z0-9, -]+ ─+$", text, flags=re.MULTILINE)
    modules = {type(policy).__module__ for policy in registered_policies()}
    assert len([s for s in sections if s.strip()]) == len(modules)  # one per module
    for section in (s for s in sections if s.strip()):
        lowered = section.lower()
        assert "source" in lowered and "bubble" in lowered, section[:80]
        assert "memory" in lowered or "activations" in lowered, section[:80]


def test_switches_read_as_switches_in_help() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    for flag in ("--explain", "--fail-on-oom", "--blocking-comm"):
        line = next(line for line in result.stdout.splitlines() if flag in line)
        assert "<bool>" not in line, line


def test_compare_says_why_a_policy_did_not_run_without_squeezing_the_table() -> None:
    # p=3: dualpipe needs an even p. Its reason goes under the table; at 80 columns every
    # other row keeps all its figures.
    result = runner.invoke(app, ["compare", "-p", "3", "-m", "8"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    gpipe = next(line for line in lines if line.startswith("gpipe "))
    assert "30" in gpipe and "20.0%" in gpipe and "1.00x" in gpipe
    assert any(line.startswith("dualpipe ") and "not run" in line for line in lines)
    assert "dualpipe not run: dualpipe needs an even number of devices (p=3)" in result.stdout
    assert all("…" not in line for line in lines[:3])


def test_sweep_says_why_a_row_did_not_run_without_squeezing_the_table() -> None:
    args = ["sweep", "--policies", "1f1b,dualpipe", "-p", "2,3,4", "-m", "8", "--workers", "1"]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("dualpipe" in line and "not run" in line for line in lines)
    assert "dualpipe not run: dualpipe needs an even number of devices (p=3)" in result.stdout
    header = next(line for line in lines if "policy" in line and "makespan" in line)
    assert "…" not in header


def test_compare_runs_says_why_a_policy_did_not_run_under_its_table() -> None:
    args = ["compare", "-p", "3", "-m", "8", "--runs", "3", "--jitter", "0.1",
            "--policies", "1f1b,dualpipe", "--workers", "1"]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("dualpipe "))
    assert "not run" in row and "even" not in row
    assert "dualpipe not run: dualpipe needs an even number of devices (p=3)" in result.stdout


def test_pipesim_alone_prints_its_help_and_no_error() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pipesim"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "Usage:" in done.stdout and "pipesim" in done.stdout and " run " in done.stdout
    assert done.stderr == ""


def test_without_gpipe_the_speed_ups_are_over_the_slowest_and_say_so() -> None:
    args = ["compare", "-p", "4", "-m", "8", "--policies", "1f1b,zb-h1,zb-v"]
    result = runner.invoke(app, args, env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert "speed-up over 1f1b" in " ".join(result.stdout.split())
    assert "1.22x" in result.stdout  # 33 / 27: ZB-H1 over 1F1B
    data = result_json(runner.invoke(app, [*args, "-f", "json"]).stdout)
    assert data["speedup_baseline"] == "1f1b"
    assert [row["speedup"] for row in data["rows"]] == [
        1.0,
        pytest.approx(33 / 27, abs=1e-9),
        pytest.approx(33 / 25.5, abs=1e-9),
    ]


def test_compares_header_names_every_flag_and_dualpipe_its_two_copies() -> None:
    # The header once dropped --overlap-cost, and "fastest: dualpipe" hid its doubled weights.
    result = CliRunner().invoke(
        app, ["compare", "-p", "4", "-m", "8", "--overlap-cost", "0.7", "--policies",
              "1f1b,dualpipe"], env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first == "compare  p=4  m=8  --overlap-cost 0.7  (defaults: F=1 B=2 ms)"
    assert "fastest: dualpipe" in result.stdout
    assert "2 copies of the model: 2x the weights" in result.stdout


def test_each_command_parses_alike_when_it_is_built_alone() -> None:
    """The command line builds only the command it is given (start-up): that command's help,
    defaults and errors are the same as with every command built."""
    from typer.main import get_command
    from typer.testing import CliRunner as EveryCommand  # tests.cli_runner would narrow it

    from pipesim.cli.app import for_arguments

    names = sorted(get_command(app).commands)  # type: ignore[attr-defined]
    assert {"run", "compare", "sweep", "plan", "calibrate"} <= set(names)
    built = EveryCommand()
    for name in names:
        narrowed = for_arguments([name, "--help"])
        assert list(get_command(narrowed).commands) == [name]  # type: ignore[attr-defined]
        alone = built.invoke(narrowed, [name, "--help"], terminal_width=80)
        every = built.invoke(app, [name, "--help"], terminal_width=80)
        assert alone.exit_code == every.exit_code == 0
        assert alone.output == every.output
    bad = ["run", "-p", "0"]
    alone, every = built.invoke(for_arguments(bad), bad), built.invoke(app, bad)
    assert alone.exit_code == every.exit_code == 2
    assert alone.output == every.output


def test_a_command_line_without_a_command_name_gets_every_command() -> None:
    """A misspelt command is told the names it is near; the list of commands, which gets
    stand-ins without options (start-up), reads as it does with every command built."""
    from typer.testing import CliRunner as EveryCommand  # tests.cli_runner would narrow it

    from pipesim.cli.app import for_arguments

    for args in (["--version"], ["rnu"], ["--help", "run"]):
        assert for_arguments(args) is app
    built = EveryCommand()
    for args in ([], ["--help"], ["-h"], ["-h", "--help"]):
        listed = for_arguments(args)
        assert listed is not app
        every = built.invoke(app, args, terminal_width=80)
        assert "calibrate" in every.output and "optimize" in every.output
        shown = built.invoke(listed, args, terminal_width=80)
        assert (shown.exit_code, shown.output) == (every.exit_code, every.output), args
    result = subprocess.run(
        [sys.executable, "-m", "pipesim", "rnu"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "No such command 'rnu'. Did you mean 'run'?" in result.stderr


def test_the_list_of_commands_starts_with_a_run() -> None:
    """A newcomer's `pipesim --help` lists what to try first first: a run, then the studies,
    and calibration from a measured run last."""
    listed = runner.invoke(app, ["--help"], terminal_width=80).stdout
    names = re.findall(r"^│ ([a-z]+) ", listed, flags=re.MULTILINE)
    assert names[0] == "run" and names[-1] == "calibrate", names
    assert names.index("compare") < names.index("plan")


def test_compare_says_when_the_fastest_schedules_tie() -> None:
    """zb-v and interleaved zero bubble both take 25.5 ms at p=4, m=8 with peak 4: naming one
    as the fastest would hide the other. A schedule slower by a step is no tie."""
    args = ["compare", "-p", "4", "-m", "8", "--policies", "1f1b,zb-v,interleaved-zb,zb-h1"]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert "fastest: zb-v and interleaved-zb tie (25.5 ms, peak 4 activations)" in result.stdout
    verdict = result_json(runner.invoke(app, [*args, "-f", "json"]).stdout)["verdict"]
    assert verdict["fastest"] == "zb-v" and verdict["fastest_tied_with"] == ["interleaved-zb"]
    alone = runner.invoke(app, ["compare", "-p", "4", "-m", "8", "--policies", "1f1b,zb-h1"])
    assert "fastest: zb-h1 (27 ms, peak 4 activations)" in alone.stdout
