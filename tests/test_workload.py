"""Costs and bytes from a model and a GPU, checked against hand computations from the formulas'
sources (Zero Bubble Table 1, Korthikanti et al. Table 2, Megatron-LM's memory estimate), and
the memory timeline against a recount from the trace."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipesim import (
    ConfigError,
    PolicyError,
    Settings,
    build_problem,
    get_policy,
    registered_policies,
    simulate_step,
)
from pipesim.cli import app
from pipesim.problem.activations import layer_activation_bytes
from pipesim.problem.layout import even_layers, layers_from_layout
from pipesim.problem.pipeline import Problem
from pipesim.problem.transformer import (
    Shape,
    layer_flops,
    layer_parameters,
    matmul_parameters,
)
from pipesim.settings.hardware import load_gpu, load_model
from pipesim.simulator.trace import Trace
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()
GPT3 = load_model("gpt3-175b", "test")
S, B, H = 2048, 1, 12288


def test_gpt3_layer_flops_are_the_zero_bubble_papers_table_1() -> None:
    # Table 1 counts every attention score (eager); FlashAttention's causal kernels compute
    # half of them, so with `flash` the 4s and 8s terms halve.
    assert matmul_parameters(GPT3) == 12 * H * H
    forward, backward, weight = layer_flops(GPT3, Shape(B, S, 1, False, "none", "eager"))
    assert forward == S * B * H * (24 * H + 4 * S)
    assert backward == S * B * H * (24 * H + 8 * S)
    assert weight == 24 * S * B * H * H
    flash = layer_flops(GPT3, Shape(B, S, 1, False, "none", "flash"))
    assert flash == (S * B * H * (24 * H + 2 * S), S * B * H * (24 * H + 4 * S), weight)


def test_gpt3_layer_activations_by_tensor() -> None:
    # s=2048, b=1, h=12288, a=96, t=8 with sequence parallelism. Per token: two LayerNorms
    # (input 2h, mean and 1/std 8), the Q/K/V and MLP inputs (2h each), queries, keys and
    # values (6h), the attention output (2h), the log-sum-exp (4a), the MLP's first
    # projection and GeLU outputs (2 x 2 x 4h): 32h + 16 + 4a, all divided by t.
    per_token = 32 * H + 16 + 4 * 96
    shape = Shape(B, S, 8, True, "none")
    assert layer_activation_bytes(GPT3, shape) == S * B * per_token / 8
    # eager attention adds Korthikanti's 5as; selective recomputation drops the log-sum-exp
    eager = layer_activation_bytes(GPT3, Shape(B, S, 8, True, "none", "eager"))
    assert eager == S * B * (per_token + 5 * 96 * S) / 8
    selective = layer_activation_bytes(GPT3, Shape(B, S, 8, True, "selective"))
    assert selective == S * B * (per_token - 4 * 96) / 8
    assert layer_activation_bytes(GPT3, Shape(B, S, 8, True, "full")) == 2 * S * B * H
    # Without sequence parallelism the norms and the hidden-size inputs are not split.
    no_sp = layer_activation_bytes(GPT3, Shape(B, S, 8, False, "none"))
    assert no_sp == pytest.approx(S * B * ((8 * H + 16) + (24 * H + 4 * 96) / 8))


def test_recomputation_redoes_the_forward_in_the_backward() -> None:
    f, b, _ = layer_flops(GPT3, Shape(B, S, 1, False, "none"))
    _, full, _ = layer_flops(GPT3, Shape(B, S, 1, False, "full"))
    _, selective, _ = layer_flops(GPT3, Shape(B, S, 1, False, "selective"))
    assert full == b + f
    assert selective == b + 2 * B * S * S * H  # the causal half of the attention core


def test_gpt3_parameters_add_up_to_175_billion() -> None:
    # 96 layers of 12h^2 + 4h (two LayerNorms with bias) and one 50257 x h embedding.
    total = 96 * layer_parameters(GPT3) + GPT3.vocab * H
    assert layer_parameters(GPT3) == 12 * H * H + 4 * H
    assert total == pytest.approx(174.6e9, rel=1e-3)


def _problem(**changes: object) -> Problem:
    base = dict(policy="1f1b", model="llama3-8b", gpu="a100-80gb", stages=4, microbatches=8)
    base.update(changes)
    model, gpu = load_model(base.pop("model"), "t"), load_gpu(base.pop("gpu"), "t")
    settings = Settings(model=model, gpu=gpu, **base)  # type: ignore[arg-type]
    return build_problem(settings, get_policy(str(base["policy"])))


def test_llama3_8b_stage_costs_by_hand() -> None:
    problem = _problem(seq_length=4096, tensor_parallel=2)
    # 32 layers over 4 stages: 8 each. Per layer P = 2h^2 + 2h(h/4) + 3h*ffn.
    h, ffn, s = 4096, 14336, 4096
    p_matmul = 2 * h * h + 2 * h * (h // 4) + 3 * h * ffn
    forward = 8 * (2 * p_matmul * s + 2 * s * s * h)  # causal attention: half the scores
    rate = 312e12 * 0.5 * 2 / 1e3  # FLOPs per ms: peak x MFU x t
    # Tensor parallelism over 2 GPUs on NVLink (300 GB/s, 5 us), sequence parallel: per layer
    # two blocks, each an all-gather and a reduce-scatter of the 2sh-byte activation, each
    # ring step one latency and half the bytes; as many in B, none in W.
    collective = 0.005 + 1000 * (2 * s * h) / 2 / 300e9
    tp = 8 * 2 * 2 * collective
    costs = problem.costs
    assert costs.forward[1] == pytest.approx(forward / rate + tp)
    output = 2 * s * h * 128256
    assert costs.forward[3] == pytest.approx((forward + output) / rate + tp)
    weight = 8 * 2 * p_matmul * s
    assert costs.weight[1] == pytest.approx(weight / rate)
    assert costs.backward[1] == pytest.approx(
        (8 * (2 * p_matmul * s + 4 * s * s * h) + weight) / rate + tp
    )
    # Messages: s*b*h 16-bit values, split over t by sequence parallelism; links from the GPU.
    network = problem.network
    assert network.activation_size == 2 * s * h / 2
    assert network.devices_per_node == 4  # 8 GPUs per node, 2 per pipeline device
    assert network.intra_node.bandwidth == 300e9 and network.inter_node.bandwidth == 25e9


def test_static_bytes_are_18_per_parameter_or_6_plus_12_over_d() -> None:
    plain = _problem(tensor_parallel=2).memory
    sharded = _problem(tensor_parallel=2, distributed_optimizer=True, data_parallel=4).memory
    assert plain is not None and sharded is not None
    model = load_model("llama3-8b", "t")
    middle = 8 * layer_parameters(model)
    assert plain.static[1] == middle * 18 / 2
    assert sharded.static[1] == middle * (6 + 12 / 4) / 2
    assert plain.static[0] == (middle + model.vocab * model.hidden) * 18 / 2
    assert plain.limit == 80e9 * 0.95 and plain.reserve == 80e9 * 0.05  # the default reserve


def test_layers_split_evenly_with_the_remainder_inside_and_by_layout() -> None:
    assert even_layers(80, 8) == (10,) * 8
    assert even_layers(10, 4) == (2, 3, 3, 2)
    assert even_layers(33, 4) == (8, 9, 8, 8)
    assert layers_from_layout("Et*3|t*3|(tt)*1t*2L", 10, 3) == (3, 3, 4)
    assert layers_from_layout("E|t*9|(t*10|)*6t*11|L", 80, 10) == (0, 9, *(10,) * 6, 11, 0)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("Et*3|t*3L", "holds 6 transformer layers; the model has 10"),
        ("Et*5|t*5", "must end with L"),
        ("t*5|t*5L", "must start with E"),
        ("Et*3|t*3|t*4L|L", "has 4 stages; the pipeline has 3"),
        ("Et*3|m|t*7L", "only E, t, L"),
    ],
)
def test_an_impossible_layout_names_the_mismatch(layout: str, message: str) -> None:
    stages = 3 if "L|L" in layout else layout.count("|") + 1
    with pytest.raises(ConfigError, match=re.escape(message)):
        layers_from_layout(layout, 10, stages)


def _recount(trace: Trace, device: int) -> tuple[float, float]:
    """Static bytes and peak, recounted the plain way: at every instant an op starts or ends,
    sum what each microbatch holds on each of the device's stages."""
    problem = trace.problem
    memory = problem.memory
    assert memory is not None
    ops = trace.ops_by_device()[device]
    stages = problem.pipeline.stages_by_device[device]
    static = sum(memory.static[s] for s in stages)
    peak = static
    for time in sorted({t for r in ops for t in (r.start, r.end)}):
        held = static
        for r in ops:
            a, k = memory.activation[r.stage], memory.weight_activation[r.stage]
            if r.kind.name == "F" and r.start <= time:
                held += a
            elif r.kind.name == "B" and r.end <= time:
                held -= a - k if problem.split_backward else a
            elif r.kind.name == "W" and r.end <= time:
                held -= k
        peak = max(peak, held)
    return static, peak


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.sampled_from([policy.name for policy in registered_policies()]),
    st.integers(2, 4),
    st.integers(1, 8),
    st.sampled_from(["none", "selective", "full"]),
)
def test_the_memory_timeline_is_a_recount_of_the_trace(
    policy: str, p: int, m: int, recompute: str
) -> None:
    model = load_model(
        {
            "layers": 16, "hidden": 256, "ffn": 1024, "heads": 8, "kv_heads": 8, "vocab": 1000,
            "tied": False, "gated": False, "norm": "layernorm", "seq_length": 128,
        },
        "test",
    )  # fmt: skip
    settings_ = Settings(
        policy=policy,
        stages=p,
        microbatches=m * p if policy in ("interleaved", "interleaved-zb") else m,
        model=model,
        gpu=load_gpu("h100", "test"),
        recompute=recompute,
    )
    try:
        report = simulate_step(settings_)
    except PolicyError:  # a policy's own constraint on p and m is not what is tested here
        assume(False)
        return
    assert report.summary.memory is not None
    for use in report.summary.memory:
        static, peak = _recount(report.trace, use.device)
        assert use.static == pytest.approx(static)
        assert use.peak == pytest.approx(peak)


def test_hand_entered_memory_finds_the_op_that_runs_out() -> None:
    # gpipe keeps all 8 microbatches: 20 + 8 x 10 = 100 GB on device 0, over 80 by 20 GB; the
    # 7th forward (F6, starting at 6 ms) takes it from 80 to 90. 1F1B keeps 4: 60 GB, fits.
    args = ["--activation-memory", "10GB", "--static-memory", "20GB", "--memory-limit", "80GB"]
    gpipe = runner.invoke(app, ["run", "--policy", "gpipe", *args, "-f", "json"])
    data = result_json(gpipe.stdout)
    assert data["oom"][0] == {"device": 0, "time": 6.0, "bytes_over": 20e9, "op": "F6@s0"}
    assert data["devices"][0]["peak_memory_bytes"] == 100e9
    ok = runner.invoke(app, ["run", "--policy", "1f1b", *args, "--fail-on-oom", "-f", "json"])
    assert ok.exit_code == 0 and result_json(ok.stdout)["oom"] == []
    failed = runner.invoke(app, ["run", "--policy", "gpipe", *args, "--fail-on-oom"])
    assert failed.exit_code == 1
    assert "device 0 needs 20.0 GB more than the limit" in failed.stderr
    assert "out of memory" in failed.stdout


def test_llama3_70b_on_h100_from_the_command_line() -> None:
    args = ["run", "--model", "llama3-70b", "--gpu", "h100", "-p", "8", "-m", "32"]
    result = runner.invoke(app, [*args, "--tensor-parallel", "8", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    data = result_json(result.stdout)
    peaks = [device["peak_memory_bytes"] for device in data["devices"]]
    assert peaks[0] == max(peaks)  # the first device holds the most microbatches under 1F1B
    assert data["memory_limit_bytes"] == 76e9 and data["memory_reserve_bytes"] == 4e9
    assert [stage["layers"] for stage in data["stage_work"]] == [10] * 8
    assert data["mfu"] == 0.5 and 0 < data["achieved_mfu"] < 0.5
    # At s=8192 without recomputation it fits: FlashAttention keeps O(s) per layer.
    assert data["oom"] == []
    # Without the reserve and with eager attention's s*s scores, it does not.
    eager = runner.invoke(app, [*args, "--tensor-parallel", "8", "--attention", "eager"])
    assert "out of memory: device 0" in " ".join(eager.stdout.split())
    text = runner.invoke(app, [*args, "--tensor-parallel", "8"], env={"COLUMNS": "80"})
    assert "less 4.0 GB reserved" in " ".join(text.stdout.split())
    assert "tokens/s" in text.stdout


def test_global_batch_size_sets_the_microbatches() -> None:
    args = ["run", "--global-batch-size", "64", "--micro-batch-size", "2", "--data-parallel", "4"]
    result = runner.invoke(app, [*args, "-f", "json"])
    assert result_json(result.stdout)["microbatches"] == 8
    bad = runner.invoke(app, ["run", "--global-batch-size", "65", "--data-parallel", "4"])
    assert bad.exit_code == 2
    assert "global batch 65 is not a multiple of micro-batch size 1 x data parallel 4" in bad.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "llama9", "--gpu", "h100"], "unknown model 'llama9'; known: gpt3-175b"),
        (["--model", "gpt3-175b"], "a model needs a GPU"),
        (["--model", "gpt3-175b", "--gpu", "h100", "--tensor-parallel", "5"], "must divide"),
        (
            ["--model", "gpt3-175b", "--gpu", "h100", "--mfu", "1.5"],
            "mfu must be a number in (0, 1]",
        ),
        (["--model", "gpt3-175b", "--gpu", "h100", "--mfu", "0"], "mfu must be a number in (0, 1]"),
        (["--memory-limit", "80", "--activation-memory", "1GB"], "memory_limit: give a unit"),
        (["--memory-limit", "-80GB", "--activation-memory", "1GB"], "memory_limit"),
        (["--memory-limit", "80GB"], "memory_limit needs bytes to compare with"),
        (["--tensor-parallel", "2"], "tensor_parallel needs a model"),
        (["--model", "gpt3-175b", "--gpu", "h100", "--layout", "Et|tL"], "layout has 2 stages"),
        (
            ["--model", "gpt3-175b", "--gpu", "h100", "--layers-per-stage", "1,2,3,4"],
            "adds up to 10",
        ),
    ],
)
def test_bad_model_input_is_one_line_exit_2(args: list[str], words: str) -> None:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("layers = 2\nhidden = 64\n", "missing field 'ffn'"),
        (
            "layers = 2\nhidden = 0\nffn = 4\nheads = 1\nkv_heads = 1\nvocab = 10\ntied = true\n"
            'gated = false\nnorm = "rmsnorm"\nseq_length = 8\n',
            "hidden must be a whole number >= 1",
        ),
        (
            "layers = 2\nhidden = 64\nffn = 4\nheads = 3\nkv_heads = 1\nvocab = 10\ntied = true\n"
            'gated = false\nnorm = "rmsnorm"\nseq_length = 8\n',
            "heads (3) must divide hidden (64)",
        ),
    ],
)
def test_a_bad_model_file_is_one_line(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    result = runner.invoke(app, ["run", "--model", str(path), "--gpu", "h100"])
    assert result.exit_code == 2 and words in result.stderr, result.stderr


def test_a_config_takes_model_and_gpu_tables(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        'gpu = "h200"\nstages = 2\n[model]\nname = "tiny"\nlayers = 4\nhidden = 64\nffn = 256\n'
        'heads = 4\nkv_heads = 4\nvocab = 100\ntied = true\ngated = false\nnorm = "rmsnorm"\n'
        "seq_length = 32\n"
    )
    result = runner.invoke(app, ["run", "--config", str(config), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    data = result_json(result.stdout)
    assert data["model"]["name"] == "tiny" and data["gpu"]["name"] == "h200"
    assert data["memory_limit_bytes"] == 141e9 * 0.95  # less the default 5% reserve
    assert data["memory_reserve_bytes"] == 141e9 * 0.05


def test_perfetto_counts_memory_in_bytes(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    args = ["run", "--policy", "gpipe", "-p", "2", "-m", "2", "--trace", str(trace)]
    result = runner.invoke(app, [*args, "--activation-memory", "1GB", "--static-memory", "3GB"])
    assert result.exit_code == 0, result.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    device0 = [e["args"]["bytes"] for e in events if e["name"] == "memory bytes" and e["pid"] == 0]
    # 3 GB static; gpipe's two forwards add 1 GB each (the first at 0 ms, so the counter
    # starts at 4 GB), and each backward frees its microbatch's.
    assert device0 == [4e9, 5e9, 4e9, 3e9]


def test_compare_says_which_schedule_fits() -> None:
    # 20 GB static + 10 GB per microbatch in flight, limit 80 GB, p=4 m=8: gpipe holds all 8
    # on every device (100 GB) and does not fit; 1F1B holds at most 4 (60 GB) and does.
    args = ["compare", "--policies", "gpipe,1f1b", "--activation-memory", "10GB"]
    args += ["--static-memory", "20GB", "--memory-limit", "80GB"]
    record = result_json(runner.invoke(app, [*args, "-f", "json"]).stdout)
    assert record["verdict"]["fastest_that_fits"] == "1f1b"
    assert record["verdict"]["memory_limit_bytes"] == 80e9
    data = record["rows"]
    assert [(row["policy"], row["peak_memory_bytes"], row["oom_devices"]) for row in data] == [
        ("gpipe", 100e9, [0, 1, 2, 3]),
        ("1f1b", 60e9, []),
    ]
    text = runner.invoke(app, args, env={"COLUMNS": "120"}).stdout
    assert "fits in memory: 1f1b is the fastest whose every device stays within 80.0 GB" in text


def test_a_layout_that_would_expand_to_gigabytes_is_refused_within_a_small_memory() -> None:
    """Twenty groups of 9,999 t's, each repeated 9,999 times, are 2 billion symbols in one
    pass: the size is counted before anything is built, so a 1 GB address space suffices."""
    import resource
    import subprocess
    import sys

    layout = "|".join(["(" + "t" * 9999 + ")*9999"] * 20)
    code = (
        "import sys\nfrom pipesim.problem.layout import layers_from_layout\n"
        "from pipesim.errors import ConfigError\n"
        "try:\n    layers_from_layout(sys.stdin.read(), 32, 20)\n"
        "except ConfigError as error:\n    print(error)\n"
    )

    def small() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    done = subprocess.run(
        [sys.executable, "-c", code], input=layout, capture_output=True, text=True,
        preexec_fn=small, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-300:]
    assert done.stdout == "layout expands to more than 1,000,000 symbols; the model has 32 layers\n"


def test_many_devices_take_memory_linear_in_the_ops() -> None:
    """p=6,000, m=1 is 12,000 ops: within a 1.5 GB address space (the interpreter and its
    libraries take about a third). Each device once built a table over every stage, p^2 in
    all: 1.1 GB at p=2,000 and 14 GB at p=10,000."""
    import resource
    import subprocess
    import sys

    def small() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**29, 3 * 2**29))

    done = subprocess.run(
        [sys.executable, "-m", "pipesim", "run", "-p", "6000", "-m", "1", "-f", "json"],
        capture_output=True, text=True, preexec_fn=small, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-300:]
    assert '"makespan": 18000.0' in done.stdout  # 6,000 forwards of 1 ms, 6,000 backwards of 2
