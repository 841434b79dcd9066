"""`pipesim calibrate`: real profiler traces in, fitted costs out, the measured run replayed.

The traces in tests/data/torch_pipeline were recorded on this project's 2-core machine by

    python examples/torch_pipeline.py --schedule all --out tests/data/torch_pipeline \\
        --steps 21 --microbatches 4

which runs GPipe, 1F1B, interleaved 1F1B and zero bubble through PyTorch's schedule runtime
(labelling every action `PP:...`) and ScheduleGPipe by itself (`Forward i`, `Backward i`) in
turn, a step of each, 21 times: two ranks on gloo, 256 rows of 512 a microbatch (the
example's defaults), AdamW and an all-reduced gradient norm ending each step."""

from __future__ import annotations

import functools
import gzip
import json
import math
import shlex
import statistics
from pathlib import Path

import pytest

from pipesim.cli import app
from pipesim.errors import ConfigError
from pipesim.render.style import ms
from pipesim.settings.profiler_trace import read_profiler_trace
from pipesim.studies.calibrate import Calibration, calibrate
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()
DATA = Path(__file__).parent / "data" / "torch_pipeline"
SCHEDULES = ("gpipe", "1f1b", "interleaved", "zb", "torch-gpipe")


def _traces(schedule: str) -> list[Path]:
    return [DATA / f"{schedule}_rank{rank}.json.gz" for rank in (0, 1)]


@functools.cache
def _calibrated(schedule: str) -> Calibration:
    return calibrate([read_profiler_trace(path) for path in _traces(schedule)])


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_replaying_the_fitted_costs_in_the_measured_order_gives_the_measured_step(
    schedule: str,
) -> None:
    calibration = _calibrated(schedule)
    assert calibration.steps == 21 and len(calibration.measured) == 20
    measured = statistics.fmean(calibration.measured)
    # Drawn with the measured spread, as `run --runs 200` replays the config, and on the mean
    # costs: within 5% of the measured mean (measured: gpipe +3.1% and -2.4%, 1f1b +0.8% and
    # +0.2%, interleaved +0.8% and -1.1%, zb -1.2% and -2.7%, torch-gpipe +1.5% and -2.8%).
    # A step waits for the slowest of its paths, so on average it is longer than the step of
    # mean costs (Jensen's inequality: a step's time is a max of sums, convex in the op times).
    assert 0.1 < calibration.spread < 0.4  # ops on two shared cores vary by 17-24%
    varied = calibration.replayed_varied()
    replayed = calibration.replayed()
    assert varied > replayed
    assert varied == pytest.approx(measured, rel=0.05)
    assert replayed == pytest.approx(measured, rel=0.05)
    # The measured mean's standard error: the sample deviation over the root of the count.
    steps = calibration.measured
    deviation = math.sqrt(sum((t - measured) ** 2 for t in steps) / (len(steps) - 1))
    assert calibration.standard_error == pytest.approx(deviation / math.sqrt(20) / measured)
    # The order is the runtime's: ranks 0 and 1 hold stages 0, 1 (and 2, 3 interleaved).
    placement = calibration.policy.stage_placement
    assert placement == ((0, 1, 0, 1) if schedule == "interleaved" else (0, 1))
    assert calibration.policy.split_backward == (schedule == "zb")
    # Messages on one host take under a millisecond, the runtime spends under one between
    # actions, and every cost is positive.
    assert 0 < (calibration.settings.comm_latency or 0) < 1
    assert all(0 < overhead < 1 for overhead in calibration.settings.op_overhead or (0,))
    assert all(fit.mean > 0 for fit in calibration.fits)


def test_costs_fitted_on_1f1b_predict_gpipe_and_interleaved_1f1b_and_rank_them() -> None:
    """What-if from measured costs: the 1F1B run's costs (per rank, less the runtime's time per
    action, which every op of another schedule pays again; interleaving splits the rest over a
    rank's two stages), replayed in the order GPipe (through the runtime, and ScheduleGPipe by
    itself) and interleaved 1F1B ran, against those runs' measured steps. Measured, with the
    spread: GPipe -3.9%, ScheduleGPipe +0.5%, interleaved -5.7% (on the mean costs -7.8%,
    -3.2%, -7.6%); interleaved 1F1B, 1F1B, ScheduleGPipe and GPipe come out in the order
    they measured (490.5, 494.6, 514.7 and 540.2 ms)."""
    import dataclasses

    fitted = _calibrated("1f1b")
    predicted, measured = {"1f1b": fitted.replayed_varied()}, {}
    measured["1f1b"] = statistics.fmean(fitted.measured)
    for schedule in ("gpipe", "torch-gpipe", "interleaved"):
        other = _calibrated(schedule)
        what_if = dataclasses.replace(other, settings=fitted.settings, fits=fitted.fits)
        measured[schedule] = statistics.fmean(other.measured)
        predicted[schedule] = what_if.replayed_varied()
        assert predicted[schedule] == pytest.approx(measured[schedule], rel=0.10), schedule
        assert what_if.replayed() == pytest.approx(measured[schedule], rel=0.10), schedule
    assert sorted(predicted, key=predicted.__getitem__) == sorted(
        measured, key=measured.__getitem__
    )
    # Interleaving pays the runtime's time per action twice as often: folded into the costs
    # (split over the chunks like them), the prediction is a point shorter (-6.8%).
    apart = fitted.settings.op_overhead
    assert apart is not None and min(apart) > 0
    folded = fitted.settings.replace(
        op_overhead=None,
        forward=tuple(map(sum, zip(fitted.settings.forward or (), apart, strict=True))),
        backward=tuple(map(sum, zip(fitted.settings.backward or (), apart, strict=True))),
    )
    interleaved = _calibrated("interleaved")
    without = dataclasses.replace(interleaved, settings=folded, fits=fitted.fits)
    assert without.replayed_varied() == pytest.approx(
        measured["interleaved"] * (1 - 0.068), rel=0.005
    )


def test_the_cli_writes_a_config_and_an_order_that_replay_to_the_same_step(
    tmp_path: Path,
) -> None:
    config, order = tmp_path / "my calibrated.toml", tmp_path / "measured.csv"
    result = runner.invoke(
        app, ["calibrate", *map(str, _traces("1f1b")), "-o", str(config),
              "--schedule-out", str(order)], env={"COLUMNS": "80"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    words = " ".join(result.stdout.split())
    assert "measured run: 2 ranks, 2 stages, m=4" in words and "replayed" in words
    # What it suggests next pastes into a shell as printed, at 80 columns and with a space in
    # a path: one whole command a line, its note a comment.
    lines = result.stdout.splitlines()
    suggested = [shlex.split(line, comments=True) for line in lines[lines.index("next:") + 1 :]]
    assert suggested == [
        ["pipesim", "run", "--config", str(config), "--schedule", str(order), "--runs", "200"],
        ["pipesim", "compare", "--config", str(config), "--runs", "200"],
    ]
    record = result_json(
        runner.invoke(app, ["calibrate", *map(str, _traces("1f1b")), "-f", "json"]).stdout
    )
    # The config carries the measured spread as jitter: --jitter 0 replays the mean costs,
    # --runs the calibrate's varied replay, run for run.
    replay = ["run", "--config", str(config), "--schedule", str(order), "-f", "json"]
    mean_costs = runner.invoke(app, [*replay, "--jitter", "0"])
    assert mean_costs.exit_code == 0, mean_costs.stderr
    assert result_json(mean_costs.stdout)["makespan"] == pytest.approx(record["replayed_ms"])
    assert f"jitter = {record['spread_cv']}" in config.read_text()
    varied = runner.invoke(app, [*replay, "--runs", str(record["varied_runs"])])
    assert varied.exit_code == 0, varied.stderr
    assert result_json(varied.stdout)["makespan"]["mean"] == pytest.approx(
        record["replayed_varied_ms"]
    )
    assert "with their spread" in words and "standard error" in words
    # Every number in the config says where it came from.
    for line in config.read_text().splitlines():
        if "=" in line:
            assert "#" in line, line
    # What if: every schedule on the measured costs.
    compare = runner.invoke(app, ["compare", "--config", str(config), "-f", "json"])
    assert compare.exit_code == 0, compare.stderr
    assert len(result_json(compare.stdout)["rows"]) > 10
    # A 1F1B run never timed W apart: the zero-bubble rows rest on a guess, and say so.
    assert "take its weight-gradient part as half of it, a guess" in compare.stderr
    given = runner.invoke(app, ["compare", "--config", str(config), "--weight", "4", "-f", "json"])
    assert given.exit_code == 0 and "a guess" not in given.stderr, given.stderr


def _write(path: Path, data: object, compress: bool = True) -> Path:
    text = json.dumps(data).encode()
    path.write_bytes(gzip.compress(text, mtime=0) if compress else text)
    return path


def _event(name: str, ts: float, dur: float, cat: str = "user_annotation") -> dict[str, object]:
    return {"ph": "X", "name": name, "cat": cat, "ts": ts, "dur": dur, "tid": 1, "pid": 1}


def test_a_trace_pipesim_cannot_use_is_one_line(tmp_path: Path) -> None:
    good = _traces("gpipe")
    cut = tmp_path / "cut_rank0.json.gz"
    cut.write_bytes(good[0].read_bytes()[:5000])
    unlabelled = _write(tmp_path / "plain_rank0.json", {"traceEvents": [
        _event("aten::mm", 0, 5, "cpu_op")]}, compress=False)  # fmt: skip
    nameless = _write(tmp_path / "trace.json.gz", {"traceEvents": [_event("PP:0F0", 0, 5)]})
    overlapping = _write(tmp_path / "x_rank0.json.gz", {"traceEvents": [
        _event("PP:0F0", 0, 10), _event("PP:0F1", 5, 10)]})  # fmt: skip
    cases = {
        (str(cut), str(good[1])): "cut short",
        (str(unlabelled), str(good[1])): "no PP: compute actions",
        (str(nameless),): "names no rank",
        (str(overlapping),): "compute actions overlap",
        (str(good[1]),): "rank 0's trace is missing",
        (str(good[0]), str(good[0])): "rank 0 is given twice",
        (str(tmp_path / "none_rank0.json"),): "no such trace",
    }
    for arguments, words in cases.items():
        result = runner.invoke(app, ["calibrate", *arguments])
        assert result.exit_code == 2, (arguments, result.output)
        assert len(result.stderr.splitlines()) == 1 and words in result.stderr, result.stderr
    with pytest.raises(ConfigError, match="left out as warm-up"):
        calibrate([read_profiler_trace(path) for path in good], skip=21)


@pytest.mark.slow
def test_the_example_records_a_run_that_calibrates(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import subprocess
    import sys

    example = Path(__file__).parent.parent / "examples" / "torch_pipeline.py"
    command = [sys.executable, str(example), "--schedule", "all", "--out", str(tmp_path)]
    command += ["--steps", "2", "--microbatches", "4", "--width", "128", "--port", "29557"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, shlex.join(command) + "\n" + done.stderr[-2000:]
    # Each schedule's trace holds its own 2 steps of the 8 the run took in turn.
    for schedule in SCHEDULES:
        traces = sorted(tmp_path.glob(f"{schedule}_rank*.json.gz"))
        assert len(traces) == 2
        calibration = calibrate([read_profiler_trace(path) for path in traces])
        assert calibration.steps == 2 and calibration.settings.microbatches == 4
        assert calibration.policy.split_backward == (schedule == "zb")
        assert calibration.replayed() > 0


def test_a_plain_csv_of_intervals_calibrates_as_the_traces_do(tmp_path: Path) -> None:
    # The framework-neutral input: rank, action, start and end in microseconds, and how long
    # the action computed (the rest of it was waiting).
    rows = ["rank,action,start_us,end_us,busy_us"]
    for rank, path in enumerate(_traces("1f1b")):
        for a in read_profiler_trace(path).actions:
            rows.append(f"{rank},{a.stage}{a.kind}{a.microbatch},{a.start * 1e3:.3f},"
                        f"{a.end * 1e3:.3f},{a.busy * 1e3:.3f}")  # fmt: skip
        rows.append(f"{rank},{rank}SEND_F0,0,1,1")  # not a compute action: skipped
    measured = tmp_path / "measured.csv"
    measured.write_text("\n".join(rows) + "\n")
    from_csv = result_json(runner.invoke(app, ["calibrate", str(measured), "-f", "json"]).stdout)
    from_traces = result_json(
        runner.invoke(app, ["calibrate", *map(str, _traces("1f1b")), "-f", "json"]).stdout
    )
    # The same but for the stretches between actions that nothing covered in the trace
    # (waiting, there; the runtime's work in a CSV, which knows no operators): 57 us in 495 ms.
    assert from_csv["replayed_ms"] == pytest.approx(from_traces["replayed_ms"], rel=1e-3)
    for text, words in (
        ("rank,action,start_us\n0,0F0,1\n", "no column 'end_us'"),
        ("rank,action,start_us,end_us\n0,0F0,x,2\n", "line 2: rank and times must be numbers"),
        ("rank,action,start_us,end_us\n0,0F0,5,2\n", "line 2: end before start"),
        ("rank,action,start_us,end_us\n0,0SEND_F0,1,2\n", "no compute actions"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        result = runner.invoke(app, ["calibrate", str(bad)])
        assert result.exit_code == 2 and words in result.stderr, result.stderr


def test_an_mfu_fitted_to_a_run_lets_plan_search_its_model(tmp_path: Path) -> None:
    """calibrate --config: a run whose ops take what Llama 3 8B's take on H100s at an MFU of
    0.4 (pipesim's own timeline at that MFU, three steps of it written as the plain CSV of
    intervals, each action's span running from the rank's previous end) is fitted an MFU of
    0.4, and plan on the calibrated config gives that run's configuration the step the run
    took, while saying that the measured costs themselves fix one configuration only."""
    shape = ["--model", "llama3-8b", "--gpu", "h100", "--seq-length", "2048"]
    run = runner.invoke(app, ["run", *shape, "-p", "4", "-m", "8", "--mfu", "0.4", "-f", "json"])
    assert run.exit_code == 0, run.stderr
    simulated = result_json(run.stdout)
    rows = ["rank,action,start_us,end_us,busy_us"]
    for step in range(3):
        offset = step * simulated["makespan"]
        free: dict[int, float] = {}
        for op in sorted(simulated["timeline"], key=lambda op: (op["device"], op["start"])):
            rank, start, end = op["device"], op["start"] + offset, op["end"] + offset
            action = f"{op['stage']}{op['kind'][0]}{op['microbatch']}"
            rows.append(f"{rank},{action},{free.get(rank, offset) * 1e3:.3f},{end * 1e3:.3f},"
                        f"{(end - start) * 1e3:.3f}")  # fmt: skip
            free[rank] = end
    measured, model = tmp_path / "run.csv", tmp_path / "model.toml"
    measured.write_text("\n".join(rows) + "\n")
    model.write_text('model = "llama3-8b"\ngpu = "h100"\nseq_length = 2048\n')
    config = tmp_path / "calibrated.toml"
    fitted = runner.invoke(
        app, ["calibrate", str(measured), "--config", str(model), "-o", str(config), "-f", "json"]
    )
    assert fitted.exit_code == 0, fitted.stderr
    assert result_json(fitted.stdout)["effective_mfu"] == pytest.approx(0.4, rel=1e-6)
    assert 'model = "llama3-8b"' in config.read_text()
    planned = runner.invoke(
        app, ["plan", "--config", str(config), "--global-batch-size", "8", "--policies", "1f1b",
              "-f", "json"],
    )  # fmt: skip
    assert planned.exit_code == 0, planned.stderr
    assert "--forward/--backward fix one configuration's costs" in planned.stderr
    assert "from the model at MFU 0.4" in planned.stderr
    # the config's m (the measured run's) is one configuration's too: a larger batch is split
    # as each configuration's own micro-batch size and data parallelism say
    larger = runner.invoke(
        app, ["plan", "--config", str(config), "--global-batch-size", "32", "--policies",
              "1f1b", "-f", "json"],
    )  # fmt: skip
    assert larger.exit_code == 0, larger.stderr
    assert "--microbatches 8 is one configuration's m" in larger.stderr
    assert {row["microbatches"] for row in result_json(larger.stdout)} >= {32, 16}
    (same,) = [
        row for row in result_json(planned.stdout)
        if (row["stages"], row["chunks"], row["micro_batch_size"], row["recompute"],
            row["layout"]) == (4, 1, 1, "none", "even")
    ]  # fmt: skip
    assert same["step_ms"] == pytest.approx(simulated["step_ms"], rel=1e-5)
    # run on the calibrated config takes the measured ms, which no MFU changes, and says so
    steps = []
    for mfu in ("0.4", "0.9"):
        replay = runner.invoke(app, ["run", "--config", str(config), "--mfu", mfu, "-f", "json"])
        assert replay.exit_code == 0, replay.stderr
        assert "--mfu sets the costs pipesim derives from the model" in replay.stderr
        steps.append(result_json(replay.stdout)["step_ms"])
    assert steps[0] == steps[1]
    # The model and GPU must be the measured run's: these times on Llama 3 70B would need an
    # MFU over 1.
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('model = "llama3-70b"\ngpu = "h100"\nseq_length = 2048\n')
    refused = runner.invoke(app, ["calibrate", str(measured), "--config", str(wrong)])
    assert refused.exit_code == 2 and "at the GPU's peak" in refused.stderr, refused.stderr
    bare = tmp_path / "bare.toml"
    bare.write_text("seq_length = 2048\n")
    refused = runner.invoke(app, ["calibrate", str(measured), "--config", str(bare)])
    assert refused.exit_code == 2 and "model and gpu are needed" in refused.stderr
    # Without the model, a calibrated config is one configuration's costs: plan says how to
    # get the MFU it needs.
    plain = tmp_path / "plain.toml"
    assert runner.invoke(app, ["calibrate", str(measured), "-o", str(plain)]).exit_code == 0
    refused = runner.invoke(app, ["plan", "--config", str(plain), "--global-batch-size", "8"])
    assert refused.exit_code == 2 and "calibrate --config MODEL.toml" in refused.stderr


def test_a_run_drawn_against_the_measured_run(tmp_path: Path) -> None:
    config, order = tmp_path / "calibrated.toml", tmp_path / "measured.csv"
    traces = [str(path) for path in _traces("1f1b")]
    fitted = runner.invoke(app, ["calibrate", *traces, "-o", str(config), "--schedule-out",
                                 str(order), "-f", "json"])  # fmt: skip
    record = result_json(fitted.stdout)
    against = [item for path in traces for item in ("--against", path)]
    args = ["run", "--config", str(config), "--schedule", str(order), "--jitter", "0", *against]
    data = result_json(runner.invoke(app, [*args, "-f", "json"]).stdout)["against"]
    # The measured step is one of the steps calibrate timed; the simulated one is the replay.
    assert any(data["measured_ms"] == pytest.approx(step) for step in record["measured_step_ms"])
    assert data["simulated_ms"] == pytest.approx(record["replayed_ms"])
    assert [device["device"] for device in data["devices"]] == [0, 1]
    # At 80 columns each device has its simulated row and, under it, its measured one,
    # ending where the JSON says.
    shown = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for device in data["devices"]:
        label = f"dev {device['device']} sim"
        sim = next(i for i, line in enumerate(lines) if line.startswith(label))
        assert lines[sim + 1].lstrip().startswith("meas")
        assert lines[sim + 1].split()[-1] == ms(device["end_measured"])
        assert lines[sim].split()[-1] == ms(device["end_simulated"])
    words = " ".join(shown.stdout.split())
    assert "against the measured run: measured step" in words
    # Where the two differ, device by device: when it started, how long its ops took, how
    # long it waited between them, as the JSON has them.
    for device in data["devices"]:
        busy = device["busy_simulated"] - device["busy_measured"]
        said = f"its ops take {ms(abs(busy))} ms {'longer' if busy > 0 else 'less'}"
        assert said in words, (said, words)
        for side in ("simulated", "measured"):
            assert device[f"end_{side}"] == pytest.approx(
                device[f"first_start_{side}"] + device[f"busy_{side}"] + device[f"waiting_{side}"]
            )
    # The plot draws the measured step in a panel of its own, on the same time axis.
    pytest.importorskip("matplotlib")
    picture = tmp_path / "against.svg"
    assert runner.invoke(app, [*args, "--plot", str(picture)]).exit_code == 0
    assert "measured (--against)" in picture.read_text()
    # A measured run of another shape (4 microbatches against a run of 8) is one line.
    other = runner.invoke(app, ["run", "-p", "2", "-m", "2", *against])
    assert other.exit_code == 2 and "is not an op of this run" in other.stderr, other.stderr


def test_clocks_that_disagree_are_set_by_the_messages_between_ranks() -> None:
    # Rank 1's trace as a host whose clock runs 7 ms ahead would record it: taken as one
    # clock, the run makes no sense; set by the messages both ways, it is the same run.
    import dataclasses

    traces = [read_profiler_trace(path) for path in _traces("interleaved")]
    skewed = [traces[0], dataclasses.replace(traces[1], origin=traces[1].origin + 7.0)]
    same_host = calibrate(traces, align="messages")
    set_by_messages = calibrate(skewed, align="messages")
    assert set_by_messages.measured == pytest.approx(same_host.measured)
    assert set_by_messages.replayed() == pytest.approx(same_host.replayed())
    assert set_by_messages.settings.comm_latency == pytest.approx(same_host.settings.comm_latency)
    # Taken as one clock, every message from rank 0 seems to take 7 ms longer.
    taken_as_one = calibrate(skewed)
    assert (taken_as_one.settings.comm_latency or 0) > 3 * (same_host.settings.comm_latency or 0)
    result = runner.invoke(app, ["calibrate", *map(str, _traces("gpipe")), "--align-clocks",
                                 "messages", "-f", "json"])  # fmt: skip
    assert result.exit_code == 0 and result_json(result.stdout)["replayed_ms"] > 0


def test_a_wait_is_read_before_computing_begins_and_only_where_an_input_can_be_late(
    tmp_path: Path,
) -> None:
    """Two ranks, one step of F0 and B0 each (times in us). What the profiler shows inside an
    action's span decides its wait: the longest stretch without an operator before the first
    operator of over 0.1 ms; not a stretch after computing began (the host ran another
    thread), nor the tail after the last operator. An action with nothing to wait for (the
    first stage's forward, the last stage's backward), or whose input was handed over before
    it began, computed for all of its span."""
    rank0 = [
        # F0: stalls 300 us before its first operator; then operator-free stretches of
        # 400 us mid-way and 350 us at the end (the host and the interpreter, not waits)
        _event("PP:0F0", 0, 2000), _event("aten::mm", 300, 600, "cpu_op"),
        _event("aten::mm", 1300, 350, "cpu_op"),
        # then the runtime posts F0's send (400 us), and waits with nothing to do (3300 us)
        _event("PP:0SEND_F0", 2000, 400), _event("c10d::send", 2100, 50, "cpu_op"),
        # B0: after a 20 us operator, stalls 300 us, though rank 1 handed its gradient over
        # (5600 us) before B0 began
        _event("PP:0B0", 5700, 2000), _event("aten::detach", 5710, 20, "cpu_op"),
        _event("aten::mm", 6030, 1670, "cpu_op"),
    ]  # fmt: skip
    rank1 = [
        # F0: posts its receive (a communication call, slow at 150 us: not computing yet),
        # then waits 1830 us for rank 0's activation
        _event("PP:1F0", 500, 4000), _event("c10d::recv_", 520, 150, "cpu_op"),
        _event("aten::mm", 2500, 2000, "cpu_op"),
        # B0: the loss's gradient is its own: a 150 us stall before its operator is no wait
        _event("PP:1B0", 4500, 1100), _event("aten::mm", 4650, 950, "cpu_op"),
    ]  # fmt: skip
    traces = [
        read_profiler_trace(_write(tmp_path / f"t_rank{rank}.json.gz", {"traceEvents": events}))
        for rank, events in enumerate((rank0, rank1))
    ]
    read = {(a.rank, a.kind): (a.compute, a.busy) for trace in traces for a in trace.actions}
    expected = {
        (0, "F"): (0.3, 1.7),  # as read: the stall is a wait
        (0, "B"): (6.03, 1.7),
        (1, "F"): (2.5, 4.0 - 1.83),
        (1, "B"): (4.65, 0.95),
    }
    assert read.keys() == expected.keys()
    for key, (compute, busy) in expected.items():
        assert read[key] == pytest.approx((compute, busy)), key
    calibration = calibrate(traces, skip=0)
    assert calibration.waits_taken_back == 3  # all but rank 1's F0, which waited for rank 0
    costs = {(fit.stage, fit.kind): fit.mean for fit in calibration.fits}
    # Each action's busy time and the runtime's work after it (to the next span, less what
    # nothing covered; the last action's, the step's usual one): rank 0's 0.4 ms, rank 1's
    # none.
    assert costs == pytest.approx(
        {(0, "F"): 2.0 + 0.4, (0, "B"): 2.0 + 0.4, (1, "F"): 2.17, (1, "B"): 1.1}
    )
    assert calibration.settings.op_overhead == pytest.approx((0.4, 0.0))
    assert calibration.settings.forward == pytest.approx((2.0, 2.17))
    # Rank 1 waited for F0's output from before its hand-over (2400 us) to 2500 us.
    assert calibration.settings.comm_latency == pytest.approx(0.1)
    # From F0's start to B0's end and the runtime's usual 0.4 ms after it, as its cost counts.
    assert calibration.measured == pytest.approx((7.7 + 0.4,))


def test_the_runtime_s_own_time_is_paid_per_op() -> None:
    """`op_overhead` is added to every op whatever it computes: 1F1B's step is
    (m + p - 1)(F + B + 2o) on uniform stages; a device's costs are split over its chunks
    but each chunk's op pays the whole overhead; a split backward is two ops."""
    from pipesim import Settings, build_problem, get_policy
    from pipesim.problem.ops import Kind, Op
    from pipesim.studies.step import simulate_step

    plain = Settings(policy="1f1b", stages=4, microbatches=8, forward=(1.0,), backward=(2.0,))
    with_overhead = plain.replace(op_overhead=(0.5,))
    step = simulate_step(with_overhead, get_policy("1f1b"), detail=False).summary.makespan
    assert step == pytest.approx((8 + 4 - 1) * (1 + 2 + 2 * 0.5))
    interleaved = get_policy("interleaved")
    problem = build_problem(
        with_overhead.replace(policy="interleaved", chunks=2, op_overhead=(0.5, 0.25, 0, 1)),
        interleaved,
    )
    assert problem.duration(Op(Kind.F, 0, 0)) == pytest.approx(1 / 2 + 0.5)
    assert problem.duration(Op(Kind.B, 5, 0)) == pytest.approx(2 / 2 + 0.25)  # stage 5: device 1
    zb = get_policy("zb-h1")
    problem = build_problem(with_overhead.replace(policy="zb-h1", weight=(0.5,)), zb)
    assert problem.duration(Op(Kind.B, 0, 0)) == pytest.approx(2 - 0.5 + 0.5)  # I
    assert problem.duration(Op(Kind.W, 0, 0)) == pytest.approx(0.5 + 0.5)
    result = runner.invoke(app, ["run", "-p", "2", "--op-overhead", "1,2,3"])
    assert result.exit_code == 2 and "op_overhead has 3 values" in result.stderr
