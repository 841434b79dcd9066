"""PyTorch schedule CSVs: round trips, validation, deadlock diagnosis; custom policies."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pipesim import (
    Kind,
    Op,
    PolicyError,
    Settings,
    get_policy,
    registered_policies,
    simulate_step,
)
from pipesim.cli import app
from pipesim.problem.ops import Step
from pipesim.schedules.from_file import FileSchedule
from pipesim.schedules.schedule_file import read_schedule, write_schedule
from tests.cli_runner import CliRunner

runner = CliRunner()


def _save(orders: Sequence[Sequence[Step]], split: bool, path: Path) -> None:
    with path.open("w", newline="") as out:
        write_schedule(orders, split, out)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _csv(tmp_path: Path, text: str, name: str = "schedule.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("policy", [policy.name for policy in registered_policies()])
def test_export_then_run_gives_the_same_timeline(policy: str, tmp_path: Path) -> None:
    settings = Settings(
        policy=policy,
        stages=4,
        microbatches=8,
        forward=(1.0, 1.2, 0.9, 1.5),
        backward=(2.0, 2.5, 1.8, 3.0),
        comm_latency=0.3,
    )
    direct = simulate_step(settings)
    path = tmp_path / f"{policy}.csv"
    costs = ["--forward", "1,1.2,0.9,1.5", "--backward", "2,2.5,1.8,3", "--comm-latency", "0.3"]
    result = runner.invoke(
        app, ["export", "--policy", policy, "-p", "4", "-m", "8", *costs, "-o", str(path)]
    )
    assert result.exit_code == 0, result.output
    from_file = simulate_step(settings.replace(policy="file"), FileSchedule.load(path))
    assert from_file.trace.problem.pipeline.placement == direct.trace.problem.pipeline.placement
    assert sorted(from_file.trace.ops) == sorted(direct.trace.ops)
    assert from_file.summary.makespan == direct.summary.makespan


def test_cells_pytorch_writes_are_read() -> None:
    schedule = read_schedule(EXAMPLES / "zb1p_2rank_with_comms.csv")
    assert schedule.devices == 2 and schedule.num_stages == 4 and schedule.microbatches == 4
    assert schedule.placement() == (0, 1, 0, 1)
    assert schedule.split_backward
    assert schedule.problems() == []


def test_overlap_cells_and_full_backwards_are_fused_steps(tmp_path: Path) -> None:
    # One rank, two stages; the overlap cell is one step, and so is each full backward (B).
    path = _csv(tmp_path, "0F0,1F0,1I0,1W0,(0F1;1F1)OVERLAP_F_B,0B0,1B1,1SEND_F1,0B1\n")
    schedule = read_schedule(path)
    assert [str(step) for step in schedule.orders()[0]] == [
        "F0@s0",
        "F0@s1",
        "B0@s1",
        "W0@s1",
        "(F1@s0;F1@s1)",
        "(B0@s0;W0@s0)",
        "(B1@s1;W1@s1)",
        "(B1@s0;W1@s0)",
    ]


def test_a_full_backward_sends_its_gradient_when_it_ends(tmp_path: Path) -> None:
    # PyTorch runs a B cell as one backward_one_chunk(full_backward=True) call and sends the
    # gradient after it: rank 0's I waits for the whole of 1B0 (F 1, I 1, W 1), so 1 + 1 + 2
    # on rank 1, then I and W on rank 0: 6, not the 5 of sending after the input gradient.
    path = _csv(tmp_path, "0F0,0I0,0W0\n1F0,1B0\n")
    result = runner.invoke(
        app,
        ["run", "--schedule", str(path), "--forward", "1", "--backward", "2", "--weight", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "makespan 6 ms" in result.output


@pytest.mark.parametrize(
    "cell", ["(0F1;0B0)OVERLAP_X", "(0F1;0B0)", "(0F1;)OVERLAP_F_B", "\u0660F\u0660"]
)
def test_malformed_cells_are_refused(tmp_path: Path, cell: str) -> None:
    path = _csv(tmp_path, f"0F0,{cell}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "is not a schedule action" in result.stderr


def test_valid_file_validates(tmp_path: Path) -> None:
    path = _csv(tmp_path, "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "2 ranks, 2 stages" in result.output
    assert "makespan 9 ms" in result.output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "0F0,0F1,0B0\n1F0,1B0,1F1,1B1\n",
            "stage 0, microbatch 1: no backward (0B1, or 0I1 and 0W1)",
        ),
        (
            "0F0,0F1,0B0,0B1,0F1\n1F0,1B0,1F1,1B1\n",
            "stage 0, microbatch 1: 2 forwards (rank 0 step 1, rank 0 step 4)",
        ),
        ("0F0,0W0,0I0\n1F0,1I0,1W0\n", "rank 0 step 1: 0W0 runs before 0I0 (rank 0 step 2)"),
        ("0F0,0B0\n1F0,1B0,0F0\n", "stage 0 is on ranks 0, 1; a stage must live on one rank"),
        ("0B0,0F0\n1F0,1B0\n", "rank 0 step 0: 0B0 runs before its forward 0F0 (rank 0 step 1)"),
        ("0F0,0I0\n1F0,1I0,1W0\n", "stage 0, microbatch 0: 0I0 has no 0W0"),
    ],
)
def test_invalid_files_list_their_problems(tmp_path: Path, text: str, problem: str) -> None:
    result = runner.invoke(app, ["validate", str(_csv(tmp_path, text))])
    assert result.exit_code == 1
    assert "invalid" in result.output
    assert problem in result.output


def test_deadlock_is_diagnosed_with_its_cycle(tmp_path: Path) -> None:
    path = _csv(tmp_path, "0F0,0B0,0F1,0B1\n1F1,1F0,1B0,1B1\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert (
        "deadlock: device 0 waits to run B0@s0, which needs the gradient of B0@s1 (device 1)"
        in result.output
    )
    assert (
        "device 1 waits to run F1@s1, which needs the activation of F1@s0 (device 0)"
        in result.output
    )
    assert "cycle: device 0 -> device 1 -> device 0" in result.output
    ran = runner.invoke(app, ["run", "--schedule", str(path)])
    assert ran.exit_code == 1
    assert "schedule can never finish" in ran.stderr


def test_microbatch_out_of_range_when_m_is_given(tmp_path: Path) -> None:
    path = _csv(tmp_path, "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n")
    result = runner.invoke(app, ["validate", str(path), "-m", "1"])
    assert result.exit_code == 1
    assert "microbatch 1 out of range (m=1)" in result.output


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("0F0,0X0\n", [], "schedule.csv:1:2: '0X0' is not a schedule action"),
        ("0F0,0B0\n1F0,oops\n", [], "schedule.csv:2:2: 'oops' is not a schedule action"),
        ("\n,,\n", [], "no compute actions"),
        ("0F0,0B0\n1F0,1B0\n", ["-p", "4"], "has 2 ranks; got -p 4"),
        (
            "0F0,0B0\n1F0,1B0\n",
            ["--policy", "1f1b"],
            "give a policy (flag or config) or --schedule, not both",
        ),
        ("0F0\n1F0,1B0\n", [], "invalid schedule: stage 0, microbatch 0: no backward"),
    ],
)
def test_bad_schedule_input_is_one_line_exit_2(
    tmp_path: Path, text: str, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["run", "--schedule", str(_csv(tmp_path, text)), *args])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_unreadable_schedule(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_written_file_names_split_backwards_i(tmp_path: Path) -> None:
    report = simulate_step(Settings(policy="zb-h1", stages=2, microbatches=2))
    orders = [[r.op for r in ops] for ops in report.trace.ops_by_device()]
    _save(orders, True, tmp_path / "zb.csv")
    first_row = (tmp_path / "zb.csv").read_text().splitlines()[0].split(",")
    assert first_row[:4] == ["0F0", "0F1", "0I0", "0W0"]


def test_custom_policy_from_a_file() -> None:
    reference = f"{EXAMPLES / 'custom_policy.py'}:Eager1F1B"
    policy = get_policy(reference)
    assert policy.name == "eager-1f1b"
    result = runner.invoke(app, ["run", "--policy", reference, "-p", "4", "-m", "8", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert '"policy": "eager-1f1b"' in result.output


def test_custom_policy_from_a_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    report = simulate_step(Settings(policy="custom_policy:Eager1F1B", stages=4, microbatches=8))
    # One more warm-up forward than 1F1B: one more activation held on the first devices.
    assert [s.peak_activations for s in report.summary.devices] == [5, 4, 3, 1]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_module_xyz:Policy", "no module named 'no_such_module_xyz'"),
        ("missing/file.py:Policy", "no file missing/file.py"),
        ("pipesim.problem.ops:Nope", "pipesim.problem.ops has no Nope"),
        ("pipesim.problem.ops:Op", "Op is not a pipesim Policy subclass"),
        (":Foo", "expected module:ClassName"),
    ],
)
def test_custom_policy_errors(reference: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        get_policy(reference)


def test_failing_custom_policy_is_reported_not_raised(tmp_path: Path) -> None:
    path = _csv(tmp_path, "", name="broken.py")
    path.write_text(
        "from pipesim import StaticPolicy\n"
        "class Broken(StaticPolicy):\n"
        "    name = 'broken'\n"
        "    summary = 'raises'\n"
        "    def device_orders(self, pipeline):\n"
        "        raise ValueError('no idea')\n"
        "class Twice(StaticPolicy):\n"
        "    name = 'twice'\n"
        "    summary = 'runs an op twice'\n"
        "    def device_orders(self, pipeline):\n"
        "        from pipesim import Op, Kind\n"
        "        return [[Op(Kind.F, 0, 0), Op(Kind.F, 0, 0)]]\n"
    )
    broken = runner.invoke(app, ["run", "--policy", f"{path}:Broken"])
    assert broken.exit_code == 2
    assert "policy 'broken': programs() failed: ValueError: no idea" in broken.stderr
    twice = runner.invoke(app, ["run", "--policy", f"{path}:Twice", "-p", "1", "-m", "1"])
    assert twice.exit_code == 2
    assert "to run F0@s0 a second time" in twice.stderr


def test_every_kind_reads_as_its_letter_and_survives_a_csv(tmp_path: Path) -> None:
    order: list[Step] = [Op(Kind.F, 0, 0), Op(Kind.B, 0, 0), Op(Kind.W, 0, 0)]
    assert [str(op) for op in order] == ["F0@s0", "B0@s0", "W0@s0"]
    assert f"{Kind.W}|{Kind.F:>2}" == "W| F"
    path = tmp_path / "kinds.csv"
    _save([order], True, path)
    assert path.read_text().split() == ["0F0,0I0,0W0"]
    assert read_schedule(path).orders() == [order]


PYTORCH = Path(__file__).resolve().parent / "data" / "pytorch"
PYTORCH_NAMES = {
    "Interleaved1F1B": "interleaved",
    "LoopedBFS": "looped-bfs",
    "InterleavedZeroBubble": "interleaved-zb",
    "ZBVZeroBubble": "zb-v",
    "DualPipeV": "dualpipe-v",
}


@pytest.mark.parametrize("path", sorted(PYTORCH.glob("*.csv")), ids=lambda path: path.stem)
def test_policies_order_ops_exactly_as_pytorch_does(path: Path, tmp_path: Path) -> None:
    # The files are what PyTorch 2.13's schedule classes generate (their pipeline_order, two
    # stages per rank, written as compute-only CSV), so pipesim simulates the same schedules.
    name, shape_p, shape_m = path.stem.split("_")
    p, m = int(shape_p[1:]), int(shape_m[1:])
    pytorch = read_schedule(path)
    assert pytorch.problems() == []
    policy = get_policy(PYTORCH_NAMES[name])
    report = simulate_step(
        Settings(
            policy=policy.name,
            stages=p,
            microbatches=m,
            chunks=2 if policy.chunks is None else None,
        )
    )
    mine = report.trace.steps_by_device()
    assert mine == pytorch.orders()
    assert report.trace.problem.pipeline.placement == pytorch.placement()
    # Written back, cell for cell what PyTorch wrote (fused steps as B or OVERLAP_F_B cells),
    # but for PyTorch's empty cells, which mark idle steps of its unit-time grid.
    written = tmp_path / "mine.csv"
    _save(mine, report.trace.problem.split_backward, written)
    theirs = [[cell for cell in line.split(",") if cell] for line in path.read_text().split()]
    assert [line.split(",") for line in written.read_text().split()] == theirs


@given(
    policy=st.sampled_from([policy.name for policy in registered_policies()]),
    p=st.integers(1, 5),
    m=st.integers(1, 12),
    latency=st.sampled_from([0.0, 0.2]),
)
def test_any_simulated_order_survives_a_csv_round_trip(
    policy: str, p: int, m: int, latency: float
) -> None:
    settings = Settings(
        policy=policy,
        stages=p,
        microbatches=m,
        comm_latency=latency,
        forward=tuple(1.0 + 0.25 * d for d in range(p)),
    )
    try:
        direct = simulate_step(settings)
    except PolicyError:
        assume(False)
        raise
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "round.csv"
        _save(direct.trace.steps_by_device(), direct.trace.problem.split_backward, path)
        again = simulate_step(settings.replace(policy="file"), FileSchedule.load(path))
    assert again.trace.ops == direct.trace.ops
    assert again.trace.transfers == direct.trace.transfers
    assert again.trace.fused == direct.trace.fused
