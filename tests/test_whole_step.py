"""The whole step: collectives at their ring costs, the gradient reductions placed after each
stage's last backward and hidden under the pipeline's tail where they can be, the optimizer at
the memory's bandwidth. Expected figures are worked out here from the datasheet values."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pipesim.cli import app
from pipesim.problem.build import build_problem
from pipesim.problem.collectives import all_gather, all_reduce, reduce_scatter
from pipesim.problem.ops import Kind
from pipesim.problem.transformer import layer_parameters
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import Settings
from pipesim.settings.hardware import load_gpu, load_model
from pipesim.studies.step import simulate_step
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()
H100 = load_gpu("h100", "test")
LLAMA = load_model("llama3-8b", "test")


def test_ring_collectives_follow_the_bus_bandwidth_factors() -> None:
    # nccl-tests: busbw = algbw * 2(n-1)/n for all-reduce, (n-1)/n for the others, so at a
    # bus bandwidth B and no latency an all-reduce of S bytes takes 2(n-1)/n * S / B.
    size, n, bandwidth = 1e9, 8, 50e9
    assert all_reduce(size, n, 0.0, bandwidth) == pytest.approx(1000 * 14 / 8 * size / bandwidth)
    assert reduce_scatter(size, n, 0.0, bandwidth) == pytest.approx(1000 * 7 / 8 * size / 50e9)
    assert all_gather(size, n, 0.01, bandwidth) == pytest.approx(7 * 0.01 + 1000 * 7 / 8 / 50)
    assert all_reduce(size, n, 0.01, bandwidth) == pytest.approx(14 * 0.01 + 35.0)
    assert all_reduce(size, 1, 0.01, bandwidth) == 0.0


def _settings(**changes: object) -> Settings:
    base = Settings(policy="1f1b", model=LLAMA, gpu=H100, stages=4, microbatches=8, seq_length=4096)
    return base.replace(**changes)


def test_a_stage_reduces_its_gradients_over_the_data_parallel_ring() -> None:
    # d = 8 replicas of a pipeline device of t = 1: a ring of 8 GPUs in one node (NVLink),
    # an all-reduce of 4 bytes per parameter of the stage (8 of Llama 3 8B's layers).
    problem = build_problem(_settings(data_parallel=8), get_policy("1f1b"))
    assert problem.workload is not None
    stage = problem.workload.stages[1]
    size = 4.0 * 8 * layer_parameters(LLAMA)
    expected = 14 * 0.005 + 1000 * 14 / 8 * size / 450e9
    assert stage.gradient_reduction == pytest.approx(expected, rel=1e-12)
    # Adam over the same parameters: 30 bytes each at 3.35 TB/s.
    assert stage.optimizer == pytest.approx(1000 * 30 * 8 * layer_parameters(LLAMA) / 3.35e12)
    sharded = build_problem(_settings(data_parallel=8, distributed_optimizer=True),
                            get_policy("1f1b")).workload  # fmt: skip
    assert sharded is not None
    assert sharded.stages[1].optimizer == pytest.approx(stage.optimizer / 8)
    gather = 7 * 0.005 + 1000 * 7 / 8 * (2.0 * 8 * layer_parameters(LLAMA)) / 450e9
    assert sharded.stages[1].parameter_gather == pytest.approx(gather, rel=1e-12)


def test_reductions_start_after_each_stages_last_backward_and_hide_under_the_tail() -> None:
    report = simulate_step(_settings(data_parallel=8))
    rate = report.summary.throughput
    assert rate is not None
    step, trace = rate.step, report.trace
    makespan = trace.makespan
    for reduction in step.reductions:
        last = max(r.end for r in trace.ops if r.stage == reduction.stage and r.kind is Kind.B)
        assert reduction.start == pytest.approx(last)
    # Under 1F1B the last device finishes first: its reduction runs while device 0 still
    # works, and only the reductions that end after the last op are exposed.
    last_device = next(r for r in step.reductions if r.device == 3)
    assert last_device.end < makespan
    assert step.data_parallel == pytest.approx(max(r.end for r in step.reductions) - makespan)
    assert step.step == pytest.approx(
        makespan + step.data_parallel + step.optimizer + step.parameter_gather
    )
    assert sum(step.breakdown().values()) == pytest.approx(step.step)


def test_more_data_parallelism_costs_the_exposed_reduction() -> None:
    one = simulate_step(_settings()).summary.throughput
    eight = simulate_step(_settings(data_parallel=8)).summary.throughput
    assert one is not None and eight is not None
    assert one.step.data_parallel == 0 and one.step.reductions == ()
    assert eight.step.data_parallel > 0
    assert eight.step.step > one.step.step
    # per GPU the replica does the same work, so throughput per GPU falls by the exposed part
    assert eight.tokens_per_second / 8 < one.tokens_per_second


def test_tensor_parallel_collectives_show_in_the_step_and_the_json() -> None:
    args = ["run", "--model", "llama3-8b", "--gpu", "h100", "-p", "4", "-m", "8"]
    args += ["--tensor-parallel", "8", "--data-parallel", "2", "-f", "json"]
    data = result_json(runner.invoke(app, args).stdout, "run")
    breakdown = data["step_breakdown"]
    assert breakdown["tensor_parallel"] > 0 and breakdown["data_parallel"] >= 0
    assert sum(breakdown.values()) == pytest.approx(data["step_ms"], rel=1e-6)
    assert data["step_ms"] > data["makespan"]
    assert all(stage["tensor_parallel_ms"]["forward"] > 0 for stage in data["stage_work"])
    overlapped = result_json(runner.invoke(app, [*args, "--tp-comm-overlap", "1"]).stdout)
    assert overlapped["step_breakdown"]["tensor_parallel"] == 0
    assert overlapped["makespan"] < data["makespan"]


def test_the_summary_says_what_the_step_is_made_of(tmp_path: object) -> None:
    args = ["run", "--model", "llama3-8b", "--gpu", "h100", "-p", "4", "-m", "8"]
    result = runner.invoke(app, [*args, "--data-parallel", "8"], env={"COLUMNS": "80"})
    text = " ".join(result.stdout.split())
    assert "step " in text and "exposed data-parallel reduction" in text
    assert "optimizer" in text and "run under the pipeline's tail" in text


def test_hand_entered_costs_have_no_whole_step() -> None:
    data = result_json(runner.invoke(app, ["run", "-p", "4", "-m", "8", "-f", "json"]).stdout)
    assert data["step_ms"] is None and data["step_breakdown"] is None


def test_a_perfetto_trace_draws_the_reductions(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    trace = tmp_path / "t.json"
    args = ["run", "--model", "llama3-8b", "--gpu", "h100", "-p", "4", "-m", "8"]
    result = runner.invoke(app, [*args, "--data-parallel", "8", "--trace", str(trace)])
    assert result.exit_code == 0, result.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    assert len([e for e in events if e.get("cat") == "data-parallel"]) == 4


def test_tp_comm_overlap_needs_a_model() -> None:
    result = runner.invoke(app, ["run", "--tp-comm-overlap", "0.5"])
    assert result.exit_code == 2 and "tp_comm_overlap needs a model" in result.stderr


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--tensor-parallel", "16"], "tensor_parallel 16 spans more than a node"),
        (["--tensor-parallel", "2", "--seq-length", "4095"],
         "sequence of 4095 tokens over tensor_parallel 2, which does not divide it"),
        (["--tensor-parallel", "3"], "tensor_parallel 3 must divide the model's 32"),
    ],
)  # fmt: skip
def test_a_degree_that_does_not_fit_what_it_splits_is_one_line(
    extra: list[str], words: str
) -> None:
    args = ["run", "--model", "llama3-8b", "--gpu", "h100", "-p", "4", "-m", "8", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_tensor_parallelism_across_nodes_runs_on_the_network_when_asked() -> None:
    # t = 16 on 8-GPU nodes: the ring crosses the network (50 GB/s, 10 us).
    args = ["run", "--model", "llama3-8b", "--gpu", "h100", "-p", "2", "-m", "4"]
    args += ["--tensor-parallel", "16", "--cross-node-tp", "-f", "json"]
    data = result_json(runner.invoke(app, args).stdout)
    s, h = 8192, 4096
    collective = 15 * 0.01 + 1000 * 15 / 16 * (2 * s * h) / 50e9  # an all-gather or a RS
    layers = 16  # 32 over 2 stages; each layer two blocks of an all-gather and a reduce-scatter
    assert data["stage_work"][0]["tensor_parallel_ms"]["forward"] == pytest.approx(
        layers * 2 * 2 * collective, rel=1e-6
    )


def _work(**changes: object):  # type: ignore[no-untyped-def]
    problem = build_problem(_settings(**changes), get_policy("1f1b"))
    assert problem.workload is not None
    return problem


def test_context_parallelism_splits_each_sequence_over_its_ranks() -> None:
    # At s = 32k the attention of each block hides its key/value transfer: each rank does a
    # quarter of every op, keeps a quarter of the activations, sends a quarter of a message.
    one, four = _work(seq_length=32768), _work(seq_length=32768, context_parallel=4)
    w1, w4 = one.workload, four.workload
    assert w1 is not None and w4 is not None
    assert w4.stages[1].context_parallel_forward == 0.0
    assert w4.stages[1].forward == pytest.approx(w1.stages[1].forward / 4, rel=1e-12)
    assert w4.stages[1].activation == pytest.approx(w1.stages[1].activation / 4, rel=1e-12)
    assert four.network.activation_size == one.network.activation_size / 4
    # four replicas of the sequence, each a ring of 4 GPUs: a node holds 2 pipeline devices
    assert four.network.devices_per_node == 2


def test_the_key_value_ring_shows_where_attention_cannot_hide_it() -> None:
    # s = 4096 over c = 8 ranks on NVLink: each of the 7 steps sends 512 tokens of keys and
    # values of Llama 3 8B's 8 KV heads of 128 (2 x 512 x 8 x 256 bytes = 2 MiB) against an
    # eighth of the rank's attention core at 50% of the H100's peak.
    work = _work(seq_length=4096, context_parallel=8).workload
    assert work is not None
    block = 2.0 * 512 * 8 * 256
    transfer = 0.005 + 1000 * block / 450e9
    core = 2.0 * 4096 * 2048 * 32 * 256 / 8 / (989e12 * 0.5 / 1e3)
    per_layer = 7 * max(0.0, transfer - core / 8)
    assert per_layer > 0
    assert work.stages[1].context_parallel_forward == pytest.approx(8 * per_layer, rel=1e-9)
    assert work.stages[1].context_parallel_backward == pytest.approx(16 * per_layer, rel=1e-9)


def test_context_parallel_ranks_reduce_gradients_with_the_replicas() -> None:
    plain = _work(data_parallel=2).workload
    folded = _work(data_parallel=2, context_parallel=4).workload
    assert plain is not None and folded is not None
    size = 4.0 * 8 * layer_parameters(LLAMA)
    ring = 14 * 0.005 + 1000 * 14 / 8 * size / 450e9  # an all-reduce over 2 x 4 ranks
    assert folded.stages[1].gradient_reduction == pytest.approx(ring, rel=1e-12)
    assert plain.stages[1].gradient_reduction < folded.stages[1].gradient_reduction


def test_throughput_counts_every_token_of_the_split_sequences() -> None:
    rate = simulate_step(_settings(seq_length=32768, context_parallel=4)).summary.throughput
    assert rate is not None
    assert rate.tokens_per_second == pytest.approx(8 * 32768 / (rate.step.step / 1e3))


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--model", "llama3-8b", "--gpu", "h100", "--seq-length", "4100",
          "--context-parallel", "4"], "2c = 8 chunks"),
        (["--context-parallel", "2"], "context_parallel needs a model"),
    ],
)  # fmt: skip
def test_bad_context_parallelism_is_one_line(extra: list[str], words: str) -> None:
    result = runner.invoke(app, ["run", "-p", "4", *extra])
    assert result.exit_code == 2 and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_chart_draws_each_devices_collectives_where_the_step_places_them() -> None:
    # At 80 columns, a lane under each device marks its gradient reductions (r), then the
    # optimizer (o) and the all-gather (g): where the whole step says they run.
    from rich.console import Console

    from pipesim.analysis.whole_step import whole_step
    from pipesim.render.gantt import GanttChart, chart_scale

    slow = dataclasses.replace(H100, network_bandwidth=2e9)  # reductions long enough to see
    settings = _settings(data_parallel=16, distributed_optimizer=True, microbatches=4, gpu=slow)
    report = simulate_step(settings)
    step = whole_step(report.trace)
    assert step is not None and step.reductions
    console = Console(width=80, record=True, color_system=None)
    console.print(GanttChart(report.trace))
    lines = console.export_text().splitlines()
    lanes = [line for line in lines if line.startswith(" ") and line.lstrip().startswith("╎")]
    assert len(lanes) == 4
    label = lines[0].index("│")
    scale = chart_scale(step.step, 80 - label - 1 - 7)
    for reduction in step.reductions:
        lane = lanes[reduction.device][label + 1 :]
        middle = int((reduction.start + reduction.end) / 2 * scale)
        assert reduction.end - reduction.start >= 2 / scale  # long enough to own a cell
        assert lane[middle] == "r", (reduction, lane)
    assert all("g" in lane for lane in lanes)  # the all-gather ends every device's step
    assert any("╎ after the backwards: r gradient reduction" in line for line in lines)
    # Hand-entered costs have no collectives: no lane, no legend entry.
    plain = Console(width=80, record=True, color_system=None)
    plain.print(GanttChart(simulate_step(Settings(stages=4, microbatches=8)).trace))
    assert "╎" not in plain.export_text()


def test_the_plot_draws_the_collectives_to_the_end_of_the_step(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pipesim.render.plots import _step_end

    slow = dataclasses.replace(H100, network_bandwidth=2e9)
    settings = _settings(data_parallel=16, distributed_optimizer=True, microbatches=4, gpu=slow)
    report = simulate_step(settings)
    assert report.summary.throughput is not None
    # The time axis runs to the end of the whole step, past the pipeline's last op.
    assert _step_end(report) == pytest.approx(report.summary.throughput.step.step)
    assert _step_end(report) > report.summary.makespan
    picture = tmp_path / "step.svg"
    args = ["run", "--model", "llama3-8b", "--gpu", "h100", "-p", "4", "-m", "4",
            "--data-parallel", "16", "--distributed-optimizer", "--plot", str(picture)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    svg = picture.read_text()
    assert "gradient reduction" in svg and "parameter all-gather" in svg
