"""`pipesim optimize`: proven optima for small cases, never worse than the heuristics, within a
memory limit, and replayed through the simulator and a CSV to the same makespan."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim import Settings, build_problem, get_policy, simulate_step
from pipesim.cli import app
from tests.cli_runner import CliRunner

pytest.importorskip("highspy")

from pipesim.studies.optimize import find_optimum
from tests.conftest import result_json

runner = CliRunner()


@pytest.mark.slow
def test_the_program_alone_proves_p4_m8_optimal() -> None:
    # F=1, B=2 (W=1), free messages: device 3 cannot start before 3 ms and has 24 ms of work,
    # so 27 ms is a lower bound; the program finds a schedule that meets it, without hints.
    problem = build_problem(Settings(stages=4, microbatches=8), get_policy("zb-h1"))
    found = find_optimum(problem, time_limit=60)
    assert found.proven and found.makespan == pytest.approx(27.0)
    assert sorted(len(order) for order in found.orders) == [24] * 4


def test_the_cli_proves_it_and_its_csv_replays_to_the_same_makespan(tmp_path: Path) -> None:
    schedule = tmp_path / "optimal.csv"
    result = runner.invoke(app, ["optimize", "-p", "4", "-m", "8", "-o", str(schedule)])
    assert result.exit_code == 0, result.stderr
    assert "optimal (proven): makespan 27 ms" in result.stdout
    replay = runner.invoke(app, ["run", "--schedule", str(schedule), "-f", "json"])
    assert result_json(replay.stdout)["makespan"] == 27.0


@pytest.mark.slow
def test_memory_trades_against_bubble_as_the_zero_bubble_paper_says() -> None:
    # With 0.5 ms messages the optimum needs 7 activations (ZB-H2's 28.5 ms); held to 1F1B's
    # 4 it is ZB-H1's 33 ms, and both are proven.
    args = ["optimize", "-p", "4", "-m", "8", "--comm-latency", "0.5", "-f", "json"]
    free = result_json(runner.invoke(app, args).stdout)
    held = result_json(runner.invoke(app, [*args, "--activation-limit", "4"]).stdout)
    assert free["proven"] and free["makespan"] == 28.5
    assert held["proven"] and held["makespan"] == 33.0
    assert sum(len(order) for order in held["orders"]) == 96  # every op of the step, once


def test_a_limit_counts_only_what_w_needs_after_b(tmp_path: Path) -> None:
    # Held to 4 microbatches' worth, the optimum is 23 ms when a microbatch stays whole until
    # its W; when W needs only a quarter of it after B, 22.5 ms fits the same 4 (proven), an
    # order that would hold 5 if counted whole.
    args = ["optimize", "-p", "3", "-m", "6", "--forward", "1", "--backward", "2"]
    args += ["--weight", "1.5", "--comm-latency", "1", "--activation-limit", "4", "-f", "json"]
    whole = result_json(runner.invoke(app, args).stdout)
    schedule = tmp_path / "quarter.csv"
    result = runner.invoke(app, [*args, "--weight-memory", "0.25", "-o", str(schedule)])
    quarter = result_json(result.stdout)
    assert whole["proven"] and whole["makespan"] == 23.0
    assert quarter["proven"] and quarter["makespan"] == 22.5
    replay = ["run", "--schedule", str(schedule), "--forward", "1", "--backward", "2"]
    replay += ["--weight", "1.5", "--comm-latency", "1", "-f", "json"]
    counted = result_json(runner.invoke(app, [*replay, "--weight-memory", "0.25"]).stdout)
    assert counted["peak_activations"] == 4
    assert result_json(runner.invoke(app, replay).stdout)["peak_activations"] == 5


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    st.integers(2, 3),
    st.integers(2, 4),
    st.lists(st.sampled_from([1.0, 1.5, 2.0]), min_size=1, max_size=1),
    st.sampled_from([0.0, 0.3]),
)
def test_the_optimum_is_never_worse_than_the_heuristics(
    p: int, m: int, forward: list[float], latency: float
) -> None:
    shape = Settings(stages=p, microbatches=m, forward=tuple(forward), comm_latency=latency)
    problem = build_problem(shape, get_policy("zb-h1"))
    found = find_optimum(problem, time_limit=20)
    for name in ("zb-h1", "zb-h2"):
        heuristic = simulate_step(shape.replace(policy=name)).summary.makespan
        assert found.makespan <= heuristic + 1e-9
    assert found.lower_bound <= found.makespan + 1e-9


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--placement", "x"], "--placement must be 1f1b or v"),
        (["--activation-limit", "0.5"], "activation_limit must be a number"),
        (["-p", "8", "-m", "16"], "optimize solves up to 300 ops"),
    ],
)
def test_bad_optimize_input_is_one_line(args: list[str], words: str) -> None:
    result = runner.invoke(app, ["optimize", *args])
    assert result.exit_code == 2 and words in result.stderr


def test_compare_states_the_bound_no_schedule_can_beat() -> None:
    # p=4, m=8, F=1, B=2: 27 ms with one stage per device (ZB-H1 meets it), 25.5 ms in a V
    # (ZB-V meets it): both heuristics are optimal here, and compare says what cannot be beaten.
    # Looped v=2: device 3 waits 3 half-stage forwards (1.5) and works 8 x 2 x 1.5 = 24.
    # DualPipe's two copies: device 1 waits 1 ms (stage 1 down, stage 6 two stages up the
    # other line) and works 4 x 3 on each of its two stages.
    result = runner.invoke(app, ["compare", "-p", "4", "-m", "8", "-f", "json"])
    record = result_json(result.stdout)
    assert record["lower_bounds"] == {
        "one stage per device": 27,
        "2 looped stages per device": 25.5,
        "two stages per device in a V": 25.5,
        "two copies, one each way": 25,
    }
    fastest = {row["policy"]: row["makespan"] for row in record["rows"] if row["error"] is None}
    assert min(fastest.values()) >= 25.5
    assert fastest["zb-h1"] == 27 and fastest["zb-v"] == 25.5


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("kTimeLimit", "time limit ran out before the solver found any schedule"),
        ("kInfeasible", "no schedule satisfies these constraints"),
    ],
)
def test_no_schedule_from_the_solver_is_said_in_words_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, status: str, words: str
) -> None:
    # It once exited 2 ("bad input") with HiGHS's kTimeLimit.
    pytest.importorskip("highspy")
    from pipesim.studies import optimize

    monkeypatch.setattr(
        optimize._Program, "solve", lambda self: (status, float("inf"), -float("inf"), None)
    )
    result = runner.invoke(app, ["optimize", "-p", "2", "-m", "2", "--time-limit", "1"])
    assert result.exit_code == 1, result.output
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr
    assert "kTimeLimit" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_solver_within_seconds(tmp_path: Path) -> None:
    # HiGHS never looked at Python's signals: Ctrl-C once took about a minute to act.
    pytest.importorskip("highspy")
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "pipesim", "optimize", "-p", "8", "-m", "12",
               "--time-limit", "300", "--forward", "1,1.3,0.7,1.1,1,1.2,0.9,1",
               "--backward", "2,2.2,1.9,2.1,2,2.3,1.8,2"]  # fmt: skip
    started = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    time.sleep(4)  # start-up, the warm starts, then the solver
    assert started.poll() is None, "the solver finished before it could be interrupted"
    interrupted = time.monotonic()
    started.send_signal(signal.SIGINT)
    out, err = started.communicate(timeout=60)
    assert time.monotonic() - interrupted < 10
    assert started.returncode == 130 and err == "pipesim: error: interrupted\n" and out == ""


@pytest.mark.parametrize(("devices", "makespan"), [(1, 3.0), (2, 5.0), (4, 9.0)])
def test_one_microbatch_is_proven_optimal_at_once(devices: int, makespan: float) -> None:
    """One microbatch leaves no order to choose: p forwards, p input-gradient backwards and
    the first stage's weight pass (1 ms each, the default B of 2 ms split) in a chain, 2p + 1
    ms, is the optimum, and the bound says so (it said 0 ms, 'at the 60 s limit')."""
    result = runner.invoke(app, ["optimize", "-p", str(devices), "-m", "1", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    record = result_json(result.stdout, "optimize")
    assert record["proven"] is True and record["solver_status"] == "kOptimal"
    assert record["makespan"] == record["lower_bound"] == makespan
