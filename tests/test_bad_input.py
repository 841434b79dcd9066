"""The seed corpus of bad input: every case an adversarial user found, each one line on stderr
and the right exit code, or a correct result; no file a user had is ever damaged."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import Result

from pipesim.cli import app
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()
POLICIES = Path(__file__).parent / "policies"
MISBEHAVING = POLICIES / "misbehaving.py"
PIPESIM = [sys.executable, "-m", "pipesim"]


def _one_line(result: Result, code: int, words: str) -> None:
    """Exit `code`, and exactly one line on stderr that contains `words`."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pipesim: error: ")
    assert words in lines[0], lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "latin1.toml").write_bytes(b'policy = "caf\xe9"\n')
    (tmp_path / "utf16.toml").write_text("stages = 4\n", encoding="utf-16")
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "deep.toml").write_text("a = " + "[" * 3000 + "]" * 3000 + "\n")
    (tmp_path / "deeptable.toml").write_text("a = " + "{b=" * 3000 + "1" + "}" * 3000 + "\n")
    (tmp_path / "digits.csv").write_text("0F" + "9" * 5000 + ",0B0\n")
    (tmp_path / "stage.csv").write_text("999999999F0,999999999B0\n")
    (tmp_path / "microbatch.csv").write_text("0F99999999,0B99999999\n")
    (tmp_path / "arabic.csv").write_text("\u0660F\u0660,\u0660B\u0660\n")
    (tmp_path / "suffix.csv").write_text("(0F0;0B0)OVERLAP_F_Bxx\n")
    (tmp_path / "halfoverlap.csv").write_text("(0F0;0UNSHARD)OVERLAP_F_B\n")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf0F0,0F1,0B0,0B1\n")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "--forward", "1e308"], "forward must be a finite number >= 0 and <= 1e+09 ms"),
        (["run", "--forward", "1e308", "--explain"], "forward must be a finite number"),
        (["compare", "--forward", "1e308", "-f", "json"], "forward must be a finite number"),
        (["sweep", "-m", "2,4", "--forward", "1e308", "-f", "json"], "forward must be"),
        (["run", "--bandwidth", "1e-320", "--activation-size", "1MB"], "bandwidth must be 0 or"),
        (["run", "--width", "1099511627776"], "--width"),
        (["validate", "bom.csv", "-m", "0"], "microbatches must be at least 1, got 0"),
        (["validate", "bom.csv", "-m", "-5"], "microbatches must be at least 1, got -5"),
        (["run", "--config", "latin1.toml"], "is not UTF-8 text (byte 14 is 0xe9)"),
        (["compare", "--config", "utf16.toml"], "is not a text file"),
        (["sweep", "-m", "2,4", "--config", "binary.toml"], "is not a text file"),
        (["validate", "bom.csv", "--config", "deep.toml"], "nests arrays or tables too deeply"),
        (["run", "--config", "deeptable.toml"], "nests arrays or tables too deeply"),
        (["validate", "digits.csv"], "is not a schedule action"),
        (["run", "--schedule", "digits.csv"], "is not a schedule action"),
        (["validate", "stage.csv"], "which needs about"),
        (["validate", "microbatch.csv"], "which needs about"),
        (["validate", "bom.csv", "-m", "100000000"], "GB is available"),
        (["validate", "arabic.csv"], "'\u0660F\u0660' is not a schedule action"),
        (["validate", "suffix.csv"], "is not a schedule action"),
        (["validate", "halfoverlap.csv"], "is not a schedule action"),
        (["run", "--config", "/dev/zero"], "/dev/zero is not a text file"),
        (["validate", "/dev/zero"], "/dev/zero is not a text file"),
        (["run", "--schedule", "/dev/zero"], "/dev/zero is not a text file"),
        (["validate", "d[/]/x.csv"], "cannot read d[/]/x.csv"),
        (["validate", "exp[v2]/s.csv"], "cannot read exp[v2]/s.csv"),
        (["export", "-o", "d[/]/y.csv"], "cannot write d[/]/y.csv: no directory d[/]"),
        (["run", "--trace", "new\nline/t.json"], "cannot write new\\nline/t.json"),
        (["run", "--schedule", "bom.csv", "--trace", "bom.csv"], "would overwrite --schedule"),
        (
            ["run", "--trace", "x.svg", "--svg", "./x.svg"],
            "--svg x.svg would overwrite --trace x.svg",
        ),
        (["run", "--svg", "x.png"], "--svg x.png: the file name must end in .svg"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    files: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], words: str
) -> None:
    monkeypatch.chdir(files)
    _one_line(runner.invoke(app, args), 2, words)


def test_a_bom_is_accepted(files: Path) -> None:
    result = runner.invoke(app, ["validate", str(files / "bom.csv")])
    assert result.exit_code == 0 and "valid" in result.stdout


def test_a_path_with_markup_is_shown_literally(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(files)
    result = runner.invoke(app, ["run", "--trace", "[red]y.json", "-f", "json"])
    assert result.exit_code == 0
    assert json.loads((files / "[red]y.json").read_text())["traceEvents"]


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("ReturnsText", "the step it gave device 0 is 'F0@s0', not an Op"),
        ("ReturnsShortTuple", "the step it gave device 0 is (<Kind.F: 0>, 0), not an Op"),
        ("ReturnsFloatStage", "stage=0.0"),
        ("ProgramsNone", "programs() is None, not a list of device programs"),
        ("PlacementRaises", "placement() failed: RuntimeError: no placement today"),
        ("PlacementWrong", "placement() is '0123', not 2 device numbers in 0..1"),
        ("CheckRaises", "check() failed: ZeroDivisionError: division by zero"),
        ("ClosedFormRaises", "closed_form() failed: ValueError: no closed form"),
        ("NameNotText", "policy 'NameNotText': closed_form() is '(p-1)/m'"),
        ("NameRaises", "policy 'NameRaises': name failed: LookupError: nameless"),
    ],
)
@pytest.mark.parametrize("command", ["run", "compare", "sweep", "export"])
def test_a_misbehaving_policy_is_one_line(
    tmp_path: Path, command: str, policy: str, words: str
) -> None:
    reference = f"{MISBEHAVING}:{policy}"
    args = {
        "run": ["run", "--policy", reference],
        "compare": ["compare", "--policies", reference],
        "sweep": ["sweep", "--policies", reference, "-m", "2,3", "-f", "json"],
        "export": ["export", "--policy", reference, "-o", str(tmp_path / "x.csv")],
    }[command]
    result = runner.invoke(app, [*args, "-p", "2"])
    if command == "sweep" and result.exit_code == 0:
        # sweep reports a policy that cannot run a point in that point's row
        assert all(words in row["error"] for row in result_json(result.stdout)["rows"])
        return
    _one_line(result, 2, words)
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("StopsEarly", "2 op(s) never run: device 0 never ran B1@s0; device 1 never ran B1@s1"),
        ("OnlyForwards", "device 0 never ran B0@s0, B1@s0; device 1 never ran B0@s1, B1@s1"),
        ("SplitWithoutW", "device 0 never ran W0@s0, W1@s0"),
    ],
)
def test_an_incomplete_step_is_an_error_naming_the_missing_ops(policy: str, words: str) -> None:
    result = runner.invoke(
        app, ["run", "--policy", f"{MISBEHAVING}:{policy}", "-p", "2", "-m", "2"]
    )
    _one_line(result, 1, words)


@pytest.mark.parametrize(
    ("module", "words"),
    [("exits_at_import", "SystemExit: 3"), ("interrupts_at_import", "KeyboardInterrupt")],
)
def test_a_module_that_exits_at_import_is_a_load_failure(module: str, words: str) -> None:
    result = runner.invoke(app, ["run", "--policy", f"{POLICIES / module}.py:X"])
    _one_line(result, 2, f"importing {POLICIES / module}.py failed: {words}")


def test_a_failing_output_leaves_every_existing_file_as_it_was(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    trace.write_text("mine")
    # The picture is refused before anything runs, so the trace is not even rewritten.
    result = runner.invoke(app, ["run", "--trace", str(trace), "--svg", str(tmp_path / "x.png")])
    _one_line(result, 2, "must end in .svg")
    assert trace.read_text() == "mine"
    # A directory where the picture should go fails only when it is written: still nothing.
    (tmp_path / "d.svg").mkdir()
    result = runner.invoke(app, ["run", "--trace", str(trace), "--svg", str(tmp_path / "d.svg")])
    _one_line(result, 2, "is a directory")
    assert trace.read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["d.svg", "t.json"]


def test_a_file_size_limit_leaves_the_previous_file_and_no_partial_one(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    trace.write_text("mine")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    done = subprocess.run(
        [*PIPESIM, "run", "-m", "64", "--trace", str(trace), "-f", "json"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"pipesim: error: cannot write {trace}: File too large\n"
    assert trace.read_text() == "mine"
    assert [path.name for path in tmp_path.iterdir()] == ["t.json"]


HANGING_POLICY = (
    "import pathlib, time\nfrom pipesim import Policy\n\n"
    "class Wait:\n    def next_op(self, view):\n        pathlib.Path('asked').touch()\n"
    "        while True:\n            time.sleep(0.01)\n\n"
    "class Hang(Policy):\n    summary = 'x'\n"
    "    def programs(self, problem):\n        return [Wait() for _ in range(4)]\n"
)
"""A policy whose every device, once asked for its first op, writes `asked` and never answers."""


def test_ctrl_c_in_a_policy_is_one_line_naming_the_device_and_exit_130(tmp_path: Path) -> None:
    (tmp_path / "hang.py").write_text(HANGING_POLICY)
    started = subprocess.Popen(
        [*PIPESIM, "run", "--policy", "hang.py:Hang", "--trace", "t.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_for(tmp_path / "asked")  # interrupt once the policy is asked, not in start-up
    started.send_signal(signal.SIGINT)
    out, err = started.communicate(timeout=30)
    assert started.returncode == 130
    assert err == "pipesim: error: interrupted while policy 'Hang' decided device 0's next op\n"
    assert out == "" and not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("RaisesBaseException", "failed on device 0: BaseException: base"),
        ("RaisesGeneratorExit", "failed on device 0: GeneratorExit: closed"),
        ("ExitsFive", "failed on device 0: SystemExit: 5"),
        ("WInWholeBackward", "not an F or B op (its backward is whole"),
        ("NegativeBubble", "bubble fraction is -5.0, not a fraction from 0 to below 1"),
    ],
)
def test_a_policy_that_raises_anything_or_claims_nonsense_is_one_line_exit_2(
    policy: str, words: str
) -> None:
    done = subprocess.run(
        [*PIPESIM, "run", "--policy", f"{MISBEHAVING}:{policy}", "-p", "2", "-m", "2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        f"pipesim: error: policy {policy!r}"
    )
    assert words in done.stderr and done.stdout == ""


def test_a_policy_that_prints_or_closes_stdout_leaves_the_json_whole() -> None:
    reference = f"{MISBEHAVING}:ClosesStdout"
    for command in (["run", "--policy", reference], ["compare", "--policies", f"1f1b,{reference}"]):
        done = subprocess.run(
            [*PIPESIM, *command, "-p", "2", "-m", "2", "-f", "json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["command"] == command[0]
        assert "a policy's own words" in done.stderr


def test_a_policy_that_changes_the_problem_it_was_given_changes_nothing_else() -> None:
    """It gets a copy: the run keeps m=2 and the 1 and 2 ms costs given."""
    result = runner.invoke(
        app,
        ["run", "--policy", f"{MISBEHAVING}:MutatesPipeline", "-p", "2", "-m", "2", "-f", "json"],
    )
    assert result.exit_code == 0, result.stderr
    record = result_json(result.stdout)
    assert record["microbatches"] == 2 and record["makespan"] == 9.0  # 2 F + 2 B each, 1F1B-like
    assert {(op["kind"], op["end"] - op["start"]) for op in record["timeline"]} == {
        ("F", 1.0),
        ("B", 2.0),
    }


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--policy", "{ref}"],
        ["compare", "--policies", "1f1b,{ref}"],
        ["compare", "--policies", "1f1b,{ref}", "--runs", "3", "--jitter", "0.1"],
        ["sweep", "--policies", "{ref}", "-m", "2,4"],
    ],
)
def test_names_full_of_markup_are_shown_as_written(command: list[str]) -> None:
    reference = f"{MISBEHAVING}:MarkupName"
    args = [part.replace("{ref}", reference) for part in command]
    result = runner.invoke(app, [*args, "-p", "2", "-m", "2"] if args[0] != "sweep" else args)
    assert result.exit_code == 0, result.stderr
    assert "[/][bold red]x" in result.stdout


@pytest.mark.parametrize("flag", ["--data-parallel", "--micro-batch-size"])
def test_a_batch_flag_without_a_model_or_global_batch_is_refused(flag: str) -> None:
    result = runner.invoke(app, ["run", flag, "4", "-p", "2", "-m", "2"])
    _one_line(result, 2, "needs a model (--model) or a global batch (--global-batch-size")


def test_a_configs_policy_that_fails_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('policy = "nofile.py:X"\n')
    _one_line(runner.invoke(app, ["run", "--config", str(config)]), 2, "no file")
    done = runner.invoke(app, ["validate", "--config", str(config), str(tmp_path / "x.csv")])
    _one_line(done, 2, "cannot read")


def test_no_output_may_replace_any_file_the_command_reads(tmp_path: Path) -> None:
    model = tmp_path / "m.toml"
    model.write_text(
        "layers = 8\nhidden = 1024\nheads = 8\nkv_heads = 8\nffn = 4096\nvocab = 32000\n"
        'tied = false\ngated = true\nnorm = "rmsnorm"\nseq_length = 2048\n'
    )
    config = tmp_path / "c.pdf"
    config.write_text("stages = 2\n")
    cases = [
        (["run", "--model", str(model), "--gpu", "h100", "-p", "2", "--trace", str(model)],
         f"--trace {model} would overwrite --model {model}"),
        (["compare", "--config", str(config), "--plot", str(config)],
         f"--plot {config} would overwrite --config {config}"),
        (["sweep", "-m", "2,4", "--config", str(config), "--plot", str(config)],
         f"--plot {config} would overwrite --config {config}"),
    ]  # fmt: skip
    for args, words in cases:
        _one_line(runner.invoke(app, args), 2, words)
    assert config.read_text() == "stages = 2\n" and model.read_text().startswith("layers = 8")


def test_a_symlinked_output_is_written_through_and_a_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real.json").write_text("mine")
    (tmp_path / "link.json").symlink_to("real.json")
    result = runner.invoke(app, ["run", "--trace", str(tmp_path / "link.json")])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text())["displayTimeUnit"] == "ms"
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    result = runner.invoke(app, ["run", "--trace", str(tmp_path / "loop1")])
    _one_line(result, 2, "Too many levels of symbolic links")
    assert (tmp_path / "loop1").is_symlink()


def test_a_special_file_is_written_to_not_replaced(tmp_path: Path) -> None:
    """A FIFO (as /dev/null or /dev/stdout would be) stays what it is: the atomic rename
    used to swap it for a regular file."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    heard: list[bytes] = []
    reader = threading.Thread(target=lambda: heard.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = runner.invoke(app, ["run", "--trace", str(fifo)])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert json.loads(heard[0])["displayTimeUnit"] == "ms"


def test_a_path_longer_than_the_file_system_allows_is_bad_input(tmp_path: Path) -> None:
    long_name = tmp_path / ("a" * 300 + ".json")
    _one_line(runner.invoke(app, ["run", "--trace", str(long_name)]), 2, "its name is longer than")
    too_deep = tmp_path / ("a/" * 3000 + "x.json")
    _one_line(runner.invoke(app, ["run", "--trace", str(too_deep)]), 2, "cannot write")


def test_a_full_standard_output_leaves_the_users_files_as_they_were(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text("mine")
    for form in ("text", "json"):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [*PIPESIM, "run", "-p", "4", "-m", "8", "--trace", "t.json", "-f", form],
                cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True, check=False,
            )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr == "pipesim: error: cannot write the output: No space left on device\n"
        assert (tmp_path / "t.json").read_text() == "mine"
        assert [path.name for path in tmp_path.iterdir()] == ["t.json"]


def test_files_rendered_before_a_failure_are_never_put_in_place(tmp_path: Path) -> None:
    """The files wait for the command to succeed: a signal (or any error) after they are
    rendered leaves the user's file and no temporary."""
    from pipesim.cli.output_files import committed_at_the_end, write_files
    from pipesim.errors import Terminated

    mine = tmp_path / "t.json"
    mine.write_text("mine")
    with pytest.raises(Terminated), committed_at_the_end():
        write_files([(mine, b"new"), (tmp_path / "other.html", b"new")])
        assert sorted(path.name for path in tmp_path.iterdir() if path.suffix == ".tmp")
        raise Terminated
    assert mine.read_text() == "mine"
    assert [path.name for path in tmp_path.iterdir()] == ["t.json"]
    with committed_at_the_end():
        write_files([(mine, b"new")])
        assert mine.read_text() == "mine"
    assert mine.read_text() == "new"


def test_sigterm_is_one_line_exit_143_and_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "hang.py").write_text(HANGING_POLICY)
    (tmp_path / "t.json").write_text("mine")
    started = subprocess.Popen(
        [*PIPESIM, "run", "--policy", "hang.py:Hang", "--trace", "t.json", "--html", "t.html"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(tmp_path / "asked")
    started.send_signal(signal.SIGTERM)
    out, err = started.communicate(timeout=30)
    assert started.returncode == 143
    assert err == "pipesim: error: terminated while policy 'Hang' decided device 0's next op\n"
    assert out == "" and (tmp_path / "t.json").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["asked", "hang.py", "t.json"]


def _wait_for(path: Path) -> None:
    """Until `path` exists (a policy writes it when first asked), at most 30 s."""
    for _ in range(3000):
        if path.exists():
            return
        time.sleep(0.01)


def _wait_for_workers(pid: int, workers: int = 2) -> None:
    """Until the process has started its worker pool (Linux lists a process's children under
    /proc), and a little longer for them to take work; at most 30 s."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if children.exists() and len(children.read_text().split()) >= workers:
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no worker pool within 30 s")


def _slow_identity(item: int) -> int:
    time.sleep(0.02)
    return item


def test_a_study_stopped_by_ctrl_c_leaves_no_pool_thread_behind() -> None:
    """Stopped mid-way, the pool's manager thread has ended before Ctrl-C's one line: left
    running, it closes its wake-up pipe while Python 3.11's exit hook writes to it, and a
    traceback ("Bad file descriptor") followed the line, once in four CI runs."""
    import threading

    from pipesim.studies.executor import run_all

    def interrupt(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        run_all(_slow_identity, list(range(200)), workers=2, progress=interrupt)
    assert set(threading.enumerate()) <= before


@pytest.mark.slow
def test_ctrl_c_stops_a_study_and_its_workers_at_once(tmp_path: Path) -> None:
    """Only the parent is signalled (as `kill -INT` does): it must end its pool itself, not
    wait for 3,000 queued runs."""
    started = subprocess.Popen(
        [*PIPESIM, "compare", "-p", "8", "-m", "32", "--runs", "3000", "--jitter", "0.1",
         "--workers", "2", "-f", "json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    _wait_for_workers(started.pid)  # the pool is running (3,000 runs of 15 policies)
    started.send_signal(signal.SIGINT)
    out, err = started.communicate(timeout=30)
    assert started.returncode == 130
    assert err == "pipesim: error: interrupted\n" and out == ""
    assert list(tmp_path.iterdir()) == []


def test_a_config_that_loads_code_says_so_and_finds_it_beside_itself(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "mine.py").write_text((Path("examples") / "custom_policy.py").read_text())
    (folder / "run.toml").write_text('policy = "mine.py:Eager1F1B"\n')
    result = runner.invoke(app, ["run", "--config", str(folder / "run.toml"), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        f"pipesim: note: {folder / 'run.toml'} runs code: "
        f"policy = '{folder / 'mine.py'}:Eager1F1B'\n"
    )
    assert result_json(result.stdout)["policy"] == "eager-1f1b"


def test_json_is_byte_identical_across_processes_and_hash_seeds() -> None:
    outputs = set()
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        for args in (
            ["run", "--policy", "dualpipe-v", "-p", "4", "-m", "8", "-f", "json"],
            ["compare", "-f", "json"],
        ):
            done = subprocess.run(
                [*PIPESIM, *args], capture_output=True, text=True, env=env, check=True
            )
            outputs.add((args[0], done.stdout))
    assert len(outputs) == 2
