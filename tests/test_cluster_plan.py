"""`pipesim plan --gpus N`: every split of a cluster, the bounds that prune it (never above what
a simulation gives, exact where the closed forms are), the pruned answer equal to the
exhaustive one, and the best row as settings Megatron-LM and torchtitan take."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim import Settings, simulate_step
from pipesim.cli import app
from pipesim.errors import ConfigError
from pipesim.problem.build import build_problem
from pipesim.problem.layout import layers_from_layout
from pipesim.render.frameworks import (
    SCHEDULES,
    Configuration,
    megatron_layout,
    torchtitan_lines,
)
from pipesim.schedules.base import StaticPolicy
from pipesim.schedules.registry import get_policy
from pipesim.settings.hardware import load_gpu, load_model
from pipesim.studies.cluster import Split, divisors, splits
from pipesim.studies.plan import PlanSpace, plan_configurations, plan_search, ranked
from pipesim.studies.plan_bound import lower_bounds
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()
TINY = {
    "name": "tiny", "layers": 8, "hidden": 512, "ffn": 2048, "heads": 8, "kv_heads": 4,
    "vocab": 32000, "tied": False, "gated": True, "norm": "rmsnorm", "seq_length": 1024,
}  # fmt: skip
MODEL = load_model(TINY, "test")
H100 = load_gpu("h100", "test")
BASE = Settings(model=MODEL, gpu=H100, global_batch_size=32, memory_limit=1.0e9)
ALL = ("gpipe", "1f1b", "interleaved", "zb-h1", "zb-v", "v-half", "dualpipe-v", "dualpipe")


def test_a_cluster_splits_every_way_its_degrees_divide() -> None:
    found = splits(MODEL, 16, 8, 1024, 32)
    # t divides the 8 heads and (or is a multiple of) the 4 key/value heads, within a node
    # of 8; p is at most the 8 layers; d = 16 / (t p) divides the batch of 32.
    expected = [
        Split(t, p, 16 // (t * p)) for t in (1, 2, 4, 8) for p in divisors(16 // t) if p <= 8
    ]
    assert found == expected
    assert all(split.gpus == 16 for split in found)
    # 16-way tensor parallelism crosses the node: only when allowed, and then the heads
    # still have to divide.
    assert max(s.tensor for s in splits(MODEL, 16, 8, 1024, 32, cross_node_tp=True)) == 8
    assert {s.tensor for s in splits(MODEL, 16, 4, 1024, 32)} == {1, 2, 4}
    # context parallelism: 2c divides the sequence; it takes its share of the GPUs.
    with_cp = splits(MODEL, 16, 8, 1024, 32, context=(1, 2))
    assert {s.context for s in with_cp} == {1, 2}
    assert all(s.gpus == 16 for s in with_cp)
    with pytest.raises(ConfigError, match="2c = 6 does not divide s = 1024"):
        splits(MODEL, 12, 8, 1024, 32, context=(3,), tensor=(1,))
    with pytest.raises(ConfigError, match="pipeline 16 is more than the model's 8 layers"):
        splits(MODEL, 16, 8, 1024, 32, tensor=(1,), pipeline=(16,))
    with pytest.raises(ConfigError, match="expert parallelism needs a mixture-of-experts"):
        splits(MODEL, 16, 8, 1024, 32, expert=(2,))


def test_a_mixture_of_experts_splits_its_experts_over_the_data_ranks() -> None:
    moe = load_model("mixtral-8x7b", "test")  # 8 experts
    found = splits(moe, 64, 8, 4096, 64, tensor=(8,), pipeline=(4,))
    # d = 2: E divides both the 2 data ranks and the 8 experts.
    assert [(s.data, s.expert) for s in found] == [(2, 1), (2, 2)]


def _problems(space_policies: tuple[str, ...], **more: object) -> list[tuple[str, Settings]]:
    out = []
    for policy in space_policies:
        for p, t in ((2, 1), (4, 2)):
            out.append((policy, BASE.replace(policy=policy, stages=p, tensor_parallel=t, **more)))
    return out


@pytest.mark.parametrize(
    "more",
    [{}, {"comm_latency": 0.3}, {"recompute": "full", "data_parallel": 2}, {"bandwidth": 2e9}],
)
def test_bounds_never_exceed_what_the_simulation_gives(more: dict[str, object]) -> None:
    for policy, case in _problems(ALL, **more):
        chosen = get_policy(policy)
        try:
            problem = build_problem(case, chosen)
        except Exception:
            continue  # a shape the schedule refuses
        orders = (
            chosen.device_orders(problem.pipeline) if isinstance(chosen, StaticPolicy) else None
        )
        bounds = lower_bounds(problem, orders)
        report = simulate_step(case)
        summary = report.summary
        assert summary.throughput is not None and summary.memory is not None
        step = summary.throughput.step.step
        peak = max(use.peak for use in summary.memory)
        assert bounds.step_ms <= step * (1 + 1e-12), (policy, more)
        assert bounds.peak_bytes <= peak * (1 + 1e-12), (policy, more)
        if orders is not None:  # a fixed order fixes the peak exactly
            assert bounds.peak_bytes == pytest.approx(peak, rel=1e-12), (policy, more)


@settings(max_examples=40, deadline=None)
@given(
    p=st.integers(2, 5),
    m=st.integers(1, 12),
    f=st.floats(0.5, 3),
    b=st.floats(0.5, 4),
    policy=st.sampled_from(["gpipe", "1f1b", "interleaved"]),
)
def test_the_step_bound_is_the_closed_form_of_fill_drain_and_1f1b(
    p: int, m: int, f: float, b: float, policy: str
) -> None:
    # With equal stages and free messages: (m + p - 1)(F + B) for GPipe and 1F1B, and
    # (m v + p - 1)(F + B) / v for interleaved 1F1B (each chunk costs F/v and B/v).
    v = 2 if policy == "interleaved" else 1
    if policy == "interleaved":
        m = max(p, m - m % p)
    case = Settings(policy=policy, stages=p, microbatches=m, chunks=v if v > 1 else None,
                    forward=(f,), backward=(b,))  # fmt: skip
    problem = build_problem(case, get_policy(policy))
    bound = lower_bounds(problem).step_ms
    chunk = (f + b) / v
    assert bound == pytest.approx((m * v + p - 1) * chunk, rel=1e-12)
    assert simulate_step(case).summary.makespan == pytest.approx(bound, rel=1e-12)


SPACE = PlanSpace(
    pipeline=None,
    policies=("1f1b", "interleaved", "zb-h1", "zb-v", "gpipe"),
    chunks=(1, 2),
    micro_batch_sizes=(1, 2),
    recompute=("none", "full"),
    gpus=8,
)


@pytest.fixture(scope="module")
def exhaustive() -> list[object]:
    return plan_configurations(BASE, SPACE)  # type: ignore[return-value]


@pytest.mark.parametrize("top", [1, 3, 10])
def test_the_pruned_search_gives_the_exhaustive_answer(exhaustive: list[object], top: int) -> None:
    result = plan_search(BASE, SPACE, top)
    everything = ranked(exhaustive)  # type: ignore[arg-type]
    assert ranked(result.rows)[:top] == everything[:top]
    # It simulated less, and said what became of the rest.
    assert result.count("simulated") < sum(row.ran for row in exhaustive)  # type: ignore[attr-defined]
    assert result.count("pruned_bound") > 0
    total = sum(result.count(what) for what in
                ("pruned_memory", "pruned_bound", "simulated", "not_possible"))  # fmt: skip
    assert total == result.count("considered") == len(exhaustive)
    # Ties go to less memory; no configuration appears twice.
    keys = [
        (round(row.step_ms or 0, 9), round(row.peak_bytes or 0, 9), row.index)
        for row in ranked(result.rows)
    ]
    assert keys == sorted(keys)
    coordinates = [
        (r.policy, r.tensor_parallel, r.stages, r.data_parallel, r.chunks, r.micro_batch_size,
         r.recompute, r.layers, r.distributed_optimizer)
        for r in result.rows
    ]  # fmt: skip
    assert len(coordinates) == len(set(coordinates))


def test_a_cluster_plan_searches_splits_and_the_distributed_optimizer(
    exhaustive: list[object],
) -> None:
    rows = exhaustive
    assert {row.gpus for row in rows} == {8}  # type: ignore[attr-defined]
    assert {(row.tensor_parallel, row.stages) for row in rows} >= {(1, 8), (2, 4), (8, 1)}  # type: ignore[attr-defined]
    sharded = {row.distributed_optimizer for row in rows if row.data_parallel > 1}  # type: ignore[attr-defined]
    assert sharded == {False, True}
    assert not any(row.distributed_optimizer for row in rows if row.data_parallel == 1)  # type: ignore[attr-defined]


def _model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items() if k != "name"))
    return path


def _plan(tmp_path: Path, *more: str) -> list[str]:
    return ["plan", "--model", str(_model_file(tmp_path)), "--gpu", "h100", "--gpus", "8",
            "--global-batch-size", "32", "--memory-limit", "1GB", "--recompute", "none,full",
            "--micro-batch-sizes", "1,2", *more]  # fmt: skip


@pytest.mark.slow
def test_the_cli_answers_for_a_cluster_with_settings_ready_to_paste(tmp_path: Path) -> None:
    result = runner.invoke(app, _plan(tmp_path), env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    words = " ".join(out.split())
    assert "configurations:" in words and "slower than the rows shown by their bound" in words
    assert re.search(r"why #1: [0-9.,]+ ms \(at least [0-9.,]+\): bubble", words)
    records = result_json(runner.invoke(app, [*_plan(tmp_path), "-f", "json"]).stdout)
    fastest = min((r for r in records if r["fits"]), key=lambda r: (r["step_ms"], r["peak_bytes"]))
    keys = ("tensor_parallel", "pipeline_parallel", "data_parallel", "expert_parallel",
            "context_parallel", "distributed_optimizer", "step_ms", "step_bound_ms")  # fmt: skip
    assert all(key in fastest for key in keys)
    assert fastest["gpus"] == 8 and fastest["step_bound_ms"] <= fastest["step_ms"]
    assert sum(fastest["step_breakdown"].values()) == pytest.approx(fastest["step_ms"])
    wide = runner.invoke(app, _plan(tmp_path), env={"COLUMNS": "400"}).stdout
    assert f"best: {fastest['command']}\n" in wide
    # The best command runs as printed, from another folder, to the same step time.
    here = os.getcwd()
    try:
        os.chdir(tmp_path.parent)
        replay = runner.invoke(app, [*shlex.split(fastest["command"])[1:], "-f", "json"])
    finally:
        os.chdir(here)
    assert replay.exit_code == 0, replay.stderr
    assert result_json(replay.stdout)["step_ms"] == fastest["step_ms"]


def test_a_framework_keeps_its_schedules_and_prints_its_settings(tmp_path: Path) -> None:
    megatron = runner.invoke(app, [*_plan(tmp_path), "--framework", "megatron"],
                             env={"COLUMNS": "200"})  # fmt: skip
    assert megatron.exit_code == 0, megatron.stderr
    arguments = " ".join(megatron.stdout.split("Megatron-LM", 1)[1].split())
    assert "--tensor-model-parallel-size" in arguments and "--global-batch-size 32" in arguments
    assert "torchtitan" not in megatron.stdout
    records = result_json(
        runner.invoke(app, [*_plan(tmp_path), "--framework", "megatron", "-f", "json"]).stdout
    )
    assert {r["policy"] for r in records} <= set(SCHEDULES["megatron"])
    # Megatron-LM runs virtual stages only on a pipeline of two devices or more.
    assert not any(r["chunks"] > 1 and r["pipeline_parallel"] == 1 for r in records)
    refused = runner.invoke(app, [*_plan(tmp_path), "--framework", "megatron", "--policies",
                                  "zb-v"])  # fmt: skip
    assert refused.exit_code == 2
    assert refused.stderr == (
        "pipesim: error: megatron does not run zb-v; it runs 1f1b, interleaved\n"
    )
    both = runner.invoke(app, [*_plan(tmp_path), "--data-parallel", "2"])
    assert both.exit_code == 2 and "drop --data-parallel" in both.stderr


def test_at_80_columns_what_is_meant_to_be_pasted_stays_whole(tmp_path: Path) -> None:
    """The best configuration's command, Megatron-LM's arguments and torchtitan's lines are
    copied from the terminal: a line broken at 80 columns would paste as two commands, or as
    code that does not parse. Each is one line, however long; the rest fits the width."""
    import textwrap

    result = runner.invoke(app, [*_plan(tmp_path), "--policies", "1f1b,interleaved", "-p", "2"],
                           env={"COLUMNS": "80"})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    best = next(line for line in lines if line.startswith("best: "))
    assert len(best) > 80  # a long command, kept whole
    replay = runner.invoke(app, [*shlex.split(best.removeprefix("best: "))[1:], "-f", "json"])
    assert replay.exit_code == 0, replay.stderr
    megatron = next(line for line in lines if line.startswith("Megatron-LM "))
    arguments = shlex.split(megatron.split("): ", 1)[1])
    assert arguments[0].startswith("--") and "--global-batch-size" in arguments
    at = next(i for i, line in enumerate(lines) if line.startswith("torchtitan "))
    code = []
    for line in lines[at + 1 :]:
        if not line.startswith("    "):
            break
        code.append(line)
    source = textwrap.dedent("\n".join(code))
    assert "pipeline_parallel_degree" in source and "module_fqns_per_model_part" in source
    compile(source, "<torchtitan settings>", "exec")  # parses as Python, as pasted
    kept = {best, megatron, *code}
    assert all(len(line) <= 80 for line in lines if line not in kept)


def test_megatron_layouts_read_back_as_the_same_layers() -> None:
    for layers in ((3, 4, 4, 3), (1, 2, 2, 2, 2, 1), (5, 0, 2, 1)):
        layout = megatron_layout(layers)
        assert layout.startswith("E") and layout.endswith("L")
        assert layers_from_layout(layout, sum(layers), len(layers)) == layers


@pytest.mark.slow
def test_torchtitan_lines_set_a_config_pytorch_can_run() -> None:
    torch_schedules = pytest.importorskip("torch.distributed.pipelining.schedules")
    for schedule, name in SCHEDULES["torchtitan"].items():
        assert torch_schedules.get_schedule_class(name).__name__.lower().endswith(name.lower()), (
            schedule
        )
    lines = torchtitan_lines(Configuration(
        schedule="interleaved", tensor=2, pipeline=2, chunks=2, data=4, context=1, expert=1,
        microbatches=8, micro_batch=2, global_batch=64, seq_length=1024, layers=(3, 2, 2, 1),
        recompute="full", distributed_optimizer=True, sequence_parallel=True,
    ))  # fmt: skip
    config = SimpleNamespace(parallelism=SimpleNamespace(), training=SimpleNamespace())
    namespace = {"config": config, "SelectiveAC": None, "FullAC": SimpleNamespace(Config=dict)}
    exec("\n".join(lines), namespace)  # the lines are Python a config function runs
    parts = config.parallelism.module_fqns_per_model_part
    assert parts == [
        ["tok_embeddings", "layers.0", "layers.1", "layers.2"],
        ["layers.3", "layers.4"],
        ["layers.5", "layers.6"],
        ["layers.7", "norm", "lm_head"],
    ]
    assert config.parallelism.pipeline_parallel_schedule == "Interleaved1F1B"
    assert config.parallelism.data_parallel_shard_degree == 4
    assert config.training.num_tokens_per_microbatch_per_dp_rank == 2048
    assert config.training.num_tokens_per_train_step == 64 * 1024


def test_a_model_from_a_config_table_is_written_back_as_that_file(tmp_path: Path) -> None:
    config = tmp_path / "sub" / "run.toml"
    config.parent.mkdir()
    table = "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items())
    config.write_text(f'gpu = "h100"\nglobal_batch_size = 32\n[model]\n{table}')
    result = runner.invoke(app, ["plan", "--config", str(config), "-p", "2", "--policies",
                                 "1f1b", "-f", "json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    command = shlex.split(result_json(result.stdout)[0]["command"])
    assert command[command.index("--model") + 1] == str(config.resolve())
    replay = runner.invoke(app, [*command[1:], "-f", "json"])
    assert replay.exit_code == 0, replay.stderr
    # A table that names no model is named after its file, not "model model on h100".
    nameless = config.parent / "mine.toml"
    nameless.write_text(config.read_text().replace('name = "tiny"\n', ""))
    shown = runner.invoke(app, ["run", "--config", str(nameless), "-p", "2"])
    assert shown.exit_code == 0, shown.stderr
    assert "model mine on h100" in shown.stdout


def test_gpus_per_node_sets_where_tensor_parallelism_may_go() -> None:
    case = BASE.replace(stages=2, microbatches=4, tensor_parallel=8, global_batch_size=None)
    with pytest.raises(ConfigError, match="4 GPUs per node"):
        simulate_step(case.replace(gpus_per_node=4))
    assert simulate_step(case.replace(gpus_per_node=8)).summary.makespan > 0


@pytest.mark.slow
def test_three_shards_merge_to_the_unsharded_answer_byte_for_byte(tmp_path: Path) -> None:
    args = _plan(tmp_path, "--workers", "1")
    whole = runner.invoke(app, [*args, "-f", "json"])
    text = runner.invoke(app, args, env={"COLUMNS": "120"})
    files = []
    for part in (1, 2, 3):
        shard = runner.invoke(app, [*args, "--shard", f"{part}/3"])
        assert shard.exit_code == 0, shard.stderr
        path = tmp_path / f"part{part}.json"
        path.write_text(shard.stdout)
        files.append(str(path))
        assert result_json(shard.stdout)  # a shard is an ordinary plan envelope
    merged_json = runner.invoke(app, ["plan", "--merge", *files, "-f", "json"])
    assert merged_json.exit_code == 0, merged_json.stderr
    assert merged_json.stdout == whole.stdout
    merged_text = runner.invoke(app, ["plan", "--merge", *reversed(files)],
                                env={"COLUMNS": "120"})  # fmt: skip
    assert merged_text.stdout == text.stdout
    # Not one plan, a part missing or twice, options the shards already fix: one line each.
    other = tmp_path / "other.json"
    other.write_text(
        runner.invoke(app, [*args, "--micro-batch-sizes", "1", "--shard", "1/3"]).stdout
    )
    cases = {
        (files[0], files[1]): "part 3/3 of the plan is missing",
        (files[0], files[0], files[1], files[2]): "part 1/3 again",
        (str(other), files[1], files[2]): "differ from",
        (files[0], files[1], files[2], "--top", "3"): "--top must match",
        (files[0], files[1], files[2], "--gpus", "8"): "leave out --gpus",
        (str(_model_file(tmp_path)),): "not JSON",
    }
    for arguments, words in cases.items():
        bad = runner.invoke(app, ["plan", "--merge", *arguments])
        assert bad.exit_code == 2, (arguments, bad.output)
        assert len(bad.stderr.splitlines()) == 1 and words in bad.stderr, bad.stderr
    lone = runner.invoke(app, ["plan", files[0]])
    assert lone.exit_code == 2 and "files are for --merge" in lone.stderr
    for text_value, words in (("0/3", "I must be from 1 to N"), ("x", "expected I/N")):
        bad = runner.invoke(app, [*args, "--shard", text_value])
        assert bad.exit_code == 2 and words in bad.stderr


def test_dualpipe_is_planned_and_tensor_parallelism_beyond_a_node_is_named(
    tmp_path: Path,
) -> None:
    # DualPipe's two lines hold the model once each: its layers split over p stages, not 2p.
    space = PlanSpace(
        pipeline=(2, 4),
        policies=("dualpipe", "dualpipe-v"),
        chunks=(1,),
        micro_batch_sizes=(1,),
        recompute=("none",),
    )
    rows = plan_configurations(BASE.replace(global_batch_size=64, memory_limit=None), space)
    assert {row.policy for row in rows if row.ran} == {"dualpipe", "dualpipe-v"}
    assert all(row.error is None for row in rows), [row.error for row in rows]
    # A fixed split with t beyond the node: every configuration says why it cannot run.
    wide = runner.invoke(app, ["plan", "--model", str(_model_file(tmp_path)), "--gpu", "h100",
                               "-p", "2", "--tensor-parallel", "16", "--global-batch-size", "8",
                               "--policies", "1f1b"], env={"COLUMNS": "200"})  # fmt: skip
    assert wide.exit_code == 0, wide.stderr
    assert "none fits" in wide.stdout and "spans more than a node" in wide.stdout
