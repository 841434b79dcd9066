"""Expert parallelism: routed experts sharded in static memory, and the all-to-alls of every
MoE layer timed in F and B and laid on the timeline. Expected figures are worked out here from
the models' published sizes and the GPU's datasheet, not read from pipesim."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from pipesim.analysis.all_to_all import all_to_all_time, all_to_alls
from pipesim.analysis.checker import check_trace
from pipesim.cli import app
from pipesim.errors import ConfigError
from pipesim.problem.build import build_problem
from pipesim.problem.ops import Kind, Op
from pipesim.schedules.base import StaticPolicy
from pipesim.schedules.registry import get_policy
from pipesim.settings.declarations import Settings
from pipesim.settings.hardware import load_gpu, load_model
from pipesim.simulator import simulate
from pipesim.studies.step import simulate_step
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()

DEEPSEEK = load_model("deepseek-v3", "test")
MIXTRAL = load_model("mixtral-8x7b", "test")
H100 = load_gpu("h100", "test")
NVLINK = 450e9  # bytes/s one way (datasheet: 900 GB/s both ways)
NETWORK = 400e9 / 8  # one 400 Gb/s NDR port per GPU
# DeepSeek-V3: 256 routed experts of three 7168 x 2048 matrices per MoE layer.
ROUTED_PER_LAYER = 256 * 3 * 7168 * 2048


def _settings(**changes: object) -> Settings:
    base = Settings(
        policy="1f1b",
        model=DEEPSEEK,
        gpu=H100,
        stages=8,
        microbatches=8,
        tensor_parallel=8,
        data_parallel=8,
    )
    return base.replace(**changes)


def _workload(**changes: object):  # type: ignore[no-untyped-def]
    settings = _settings(**changes)
    workload = build_problem(settings, get_policy(settings.policy or "1f1b")).workload
    assert workload is not None
    return workload


def test_each_gpu_holds_one_eighth_of_the_routed_experts() -> None:
    alone, spread = _workload(), _workload(expert_parallel=8)
    # Stage 1 holds layers 7-14 (61 layers over 8 stages: 7, 8, 8, 8, 8, 8, 7, 7), all MoE:
    # 8 layers of routed experts, 18 bytes each, over t = 8; with E = 8 only 1/8 of them.
    saved = 8 * ROUTED_PER_LAYER * 18 / 8 * (1 - 1 / 8)
    assert alone.stages[1].static - spread.stages[1].static == pytest.approx(saved, rel=1e-12)
    # Stage 0 holds layers 0-6, of which 0-2 are dense: 4 layers of routed experts.
    saved0 = 4 * ROUTED_PER_LAYER * 18 / 8 * (1 - 1 / 8)
    assert alone.stages[0].static - spread.stages[0].static == pytest.approx(saved0, rel=1e-12)


def test_the_distributed_optimizer_shards_expert_state_over_the_replicas_holding_them() -> None:
    # d = 16, E = 8: dense state over 16 replicas (6 + 12/16 bytes), expert state over the 2
    # replicas that hold the same experts (6 + 12/2 bytes), on 1/8 of the experts.
    work = _workload(data_parallel=16, expert_parallel=8, distributed_optimizer=True).stages[1]
    routed = 8 * ROUTED_PER_LAYER
    assert work.routed_parameters == routed
    expected = ((work.parameters - routed) * (6 + 12 / 16) + routed / 8 * (6 + 12 / 2)) / 8
    assert work.static == pytest.approx(expected, rel=1e-12)


def test_an_all_to_all_across_nodes_is_bound_by_the_network() -> None:
    # t = 8 fills a node, so the 8 replicas of a stage are on 8 nodes: 7 of every 8 shares
    # leave the node. Tokens per GPU: 4096 / 8 (sequence parallel), top-8, hidden 7168.
    experts = _workload(expert_parallel=8).experts
    assert experts is not None
    sent = 4096 / 8 * 8 * 7168 * 2
    assert experts.bytes_sent == sent
    assert experts.crosses_nodes
    assert experts.duration == pytest.approx(0.01 + 1000 * 7 / 8 * sent / NETWORK, rel=1e-12)


def test_an_all_to_all_inside_a_node_runs_on_nvlink() -> None:
    experts = _workload(tensor_parallel=1, expert_parallel=8, stages=16).experts
    assert experts is not None
    sent = 4096 * 8 * 7168 * 2
    assert not experts.crosses_nodes
    assert experts.duration == pytest.approx(0.005 + 1000 * 7 / 8 * sent / NVLINK, rel=1e-12)


def test_a_group_spanning_two_nodes_waits_for_the_slower_part() -> None:
    # t = 2: 4 replicas per node; of 8 members, 3 others inside the node, 4 outside.
    experts = _workload(tensor_parallel=2, expert_parallel=8).experts
    assert experts is not None
    share = 4096 / 2 * 8 * 7168 * 2 / 8
    slower = max(3 * share / NVLINK, 4 * share / NETWORK)
    assert experts.duration == pytest.approx(0.01 + 1000 * slower, rel=1e-12)


@pytest.mark.parametrize(("recompute", "in_backward"), [("none", 2), ("full", 4)])
def test_every_moe_layer_adds_its_all_to_alls_to_f_and_b_not_w(
    recompute: str, in_backward: int
) -> None:
    alone = _workload(recompute=recompute)
    spread = _workload(recompute=recompute, expert_parallel=8)
    assert spread.experts is not None
    each = spread.experts.duration
    for stage, moe in enumerate((4, 8, 8, 8, 8, 8, 7, 7)):  # MoE layers of 61 on 8 stages
        moe += 1 if stage == 7 else 0  # the MTP module is a MoE layer on the last stage
        before, after = alone.stages[stage], spread.stages[stage]
        assert after.forward - before.forward == pytest.approx(2 * moe * each, rel=1e-9)
        assert after.backward - before.backward == pytest.approx(in_backward * moe * each, rel=1e-9)
        assert after.weight == before.weight


@pytest.mark.parametrize("policy", ["1f1b", "zb-h1", "dualpipe"])
def test_the_all_to_alls_lie_inside_their_ops_one_at_a_time(policy: str) -> None:
    settings = Settings(
        policy=policy,
        model=MIXTRAL,
        gpu=H100,
        stages=4,
        microbatches=8,
        tensor_parallel=2,
        data_parallel=8,
        expert_parallel=8,
        jitter=0.1,
        seed=3,
    )
    problem = build_problem(settings, get_policy(policy))
    trace = simulate(problem, get_policy(policy))
    exchanges = all_to_alls(trace)
    ops = {(r.device, r.kind, r.stage, r.microbatch): r for r in trace.ops}
    per_op: dict[tuple[int, Kind, int, int], int] = {}
    for exchange in exchanges:
        key = (exchange.device, exchange.kind, exchange.stage, exchange.microbatch)
        op = ops[key]
        assert op.start - 1e-9 <= exchange.start < exchange.end <= op.end + 1e-9
        per_op[key] = per_op.get(key, 0) + 1
    # Mixtral: 32 MoE layers, 8 per stage: 16 in each F and each B, none in W.
    assert all(count == 16 for count in per_op.values())
    assert {kind for _, kind, _, _ in per_op} == {Kind.F, Kind.B}
    assert len(per_op) == 2 * 4 * 8
    for device in range(4):
        mine = sorted((e.start, e.end) for e in exchanges if e.device == device)
        assert all(a[1] <= b[0] + 1e-9 for a, b in itertools.pairwise(mine))
    # The time per device adds up the records' durations, float for float, without them.
    per_device = [0.0] * 4
    for exchange in exchanges:
        per_device[exchange.device] += exchange.end - exchange.start
    assert all_to_all_time(trace) == per_device


def test_the_cli_shows_experts_sharded_and_all_to_alls_in_the_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    args = ["run", "--model", "deepseek-v3", "--gpu", "h100", "-p", "8", "-m", "8"]
    args += ["--tensor-parallel", "8", "--data-parallel", "8", "--expert-parallel", "8"]
    result = runner.invoke(app, [*args, "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    assert "8-way expert parallel" in result.output
    assert "1/8 of the routed experts" in result.output
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert "all-to-all (expert parallel)" in names
    slices = [e for e in events if e.get("cat") == "all-to-all"]
    # 58 MoE layers and the MTP module, 2 all-to-alls each in F and B, for 8 microbatches.
    assert len(slices) == (58 + 1) * 4 * 8
    result = runner.invoke(app, [*args, "--format", "json"])
    data = result_json(result.stdout)
    assert data["model"]["expert_parallel"] == 8
    assert data["all_to_all"]["crosses_nodes"] is True
    assert [stage["all_to_alls"]["forward"] for stage in data["stage_work"]] == [
        8, 16, 16, 16, 16, 16, 14, 16,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--model", "llama3-8b", "--expert-parallel", "2", "--data-parallel", "2"],
         "needs a mixture-of-experts model"),
        (["--model", "mixtral-8x7b", "--expert-parallel", "3", "--data-parallel", "3"],
         "must divide the model's 8 experts"),
        (["--model", "mixtral-8x7b", "--expert-parallel", "8"],
         "must divide data_parallel 1"),
        (["--model", "mixtral-8x7b", "--expert-parallel", "8", "--data-parallel", "12"],
         "must divide data_parallel 12"),
    ],
)  # fmt: skip
def test_impossible_expert_parallelism_is_one_line(extra: list[str], words: str) -> None:
    result = runner.invoke(app, ["run", "--gpu", "h100", "-p", "4", *extra])
    assert result.exit_code == 2
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_expert_parallelism_needs_a_model() -> None:
    result = runner.invoke(app, ["run", "--expert-parallel", "2"])
    assert result.exit_code == 2
    assert "expert_parallel needs a model" in result.stderr


def test_data_parallel_replicas_fill_a_node_before_the_next_stage() -> None:
    # Megatron-LM's and torchtitan's order puts the pipeline outermost: with t = 2 and d = 4 a
    # stage's 8 GPUs fill an 8-GPU node, so every pipeline message crosses nodes.
    settings = Settings(model=MIXTRAL, gpu=H100, stages=4, tensor_parallel=2, data_parallel=4)
    network = build_problem(settings, get_policy("1f1b")).network
    assert network.devices_per_node == 1
    assert network.link(0, 1).bandwidth == NETWORK
    settings = settings.replace(data_parallel=2)
    assert build_problem(settings, get_policy("1f1b")).network.devices_per_node == 2


def test_a_dualpipe_pair_computes_one_microbatch_under_the_others_all_to_alls() -> None:
    # DualPipe's design: in a fused forward-and-backward pair, each op's all-to-alls run under
    # the other's compute, so the pair takes the longer of the two computes together and the
    # two exchanges together, not their sum.
    settings = Settings(
        policy="dualpipe", model=MIXTRAL, gpu=H100, stages=4, microbatches=8,
        tensor_parallel=2, data_parallel=8, expert_parallel=8,
    )  # fmt: skip
    problem = build_problem(settings, get_policy("dualpipe"))
    trace = simulate(problem, get_policy("dualpipe"))
    costs = problem.costs
    pairs = [step for step in trace.fused if step.overlapped]
    assert pairs
    for step in pairs:
        whole = sum(problem.duration(op) for op in step.ops)
        exchanges = sum(costs.exchange(op) for op in step.ops)
        assert exchanges > 0
        assert step.end - step.start == pytest.approx(max(whole - exchanges, exchanges))
        assert step.end - step.start < whole
    assert check_trace(trace) == []


def test_combined_1f1b_runs_each_steady_pair_as_one_step_hiding_its_all_to_alls() -> None:
    # Megatron-LM's --overlap-moe-expert-parallel-comm: interleaved 1F1B's steady-state
    # forward and backward (of different microbatches) run as one combined step, one's
    # all-to-alls under the other's compute; warm-up and cool-down ops run alone.
    settings = _settings(policy="interleaved", chunks=2, microbatches=16, expert_parallel=8)
    plain = simulate_step(settings)
    report = simulate_step(settings.replace(ep_comm_overlap=True))
    trace, problem = report.trace, report.trace.problem
    assert check_trace(trace) == []
    pairs = [step for step in trace.fused if step.overlapped]
    # every forward that a backward follows at once on its device
    interleaved = get_policy("interleaved")
    assert isinstance(interleaved, StaticPolicy)
    orders = interleaved.device_orders(problem.pipeline)
    expected = sum(
        isinstance(a, Op) and isinstance(b, Op) and a.kind is Kind.F and b.kind is Kind.B
        for order in orders
        for a, b in itertools.pairwise(order)
    )
    assert len(pairs) == expected > 0
    for step in pairs:
        whole = sum(problem.duration(op) for op in step.ops)
        exchanges = sum(problem.costs.exchange(op) for op in step.ops)
        assert step.end - step.start == pytest.approx(max(whole - exchanges, exchanges))
    assert report.summary.makespan < plain.summary.makespan
    for changes, words in (
        ({"expert_parallel": 1}, "give --expert-parallel > 1"),
        ({"recompute": "full"}, "without full recomputation"),
        ({"policy": "1f1b", "chunks": None}, "needs --policy interleaved and -v > 1"),
    ):
        with pytest.raises(ConfigError, match=words):
            simulate_step(settings.replace(ep_comm_overlap=True, **changes))
