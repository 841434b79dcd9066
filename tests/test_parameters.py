"""Parameter counts of today's architectures: the published totals, and exactly what the
models Hugging Face's `transformers` builds from the same config.json hold."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from pipesim.cli import app
from pipesim.problem.transformer import model_parameters
from pipesim.settings.hardware import Model, load_model
from tests.cli_runner import CliRunner
from tests.conftest import need, result_json

runner = CliRunner()


@pytest.mark.parametrize(
    ("preset", "total", "active", "digits"),
    [
        # Llama 3.1 model cards: 8.03B, 70.6B, 405B (the released checkpoints: 8,030,261,248,
        # 70,553,706,496 and 405,853,388,800 parameters).
        ("llama3-8b", 8_030_261_248, None, 0),
        ("llama3-70b", 70_553_706_496, None, 0),
        ("llama3-405b", 405_853_388_800, None, 0),
        # Mistral AI, "Mixtral of experts": 46.7B in all, 12.9B per token.
        ("mixtral-8x7b", 46.7e9, 12.9e9, 0.05e9),
        # Qwen3-235B-A22B's model card: 235B in all, 22B activated.
        ("qwen3-235b-a22b", 235e9, 22e9, 0.5e9),
        # DeepSeek-V3 report: 671B in all, 37B activated, without the MTP module. With both
        # embeddings counted (as Mixtral's 12.9B needs) pipesim says 37.55B; the report's
        # figure reads as truncated.
        ("deepseek-v3", 671e9, 37e9, 0.6e9),
    ],
)
def test_parameters_match_the_published_totals(
    preset: str, total: float, active: float | None, digits: float
) -> None:
    model = load_model(preset, "test")
    assert model_parameters(model, mtp=False) == pytest.approx(total, abs=digits)
    if active is not None:
        assert model_parameters(model, active=True, mtp=False) == pytest.approx(active, abs=digits)


def test_deepseek_v3_with_its_mtp_module() -> None:
    # The model card's 685B = 671B + 14B of MTP weights, the MTP module's embedding and head
    # stored again; in training they are the main model's, so pipesim adds its layer, its
    # 2h x h projection and norms only: 11.6B.
    model = load_model("deepseek-v3", "test")
    extra = model_parameters(model) - model_parameters(model, mtp=False)
    assert extra == pytest.approx(11.61e9, abs=0.01e9)


def _configs() -> dict[str, Any]:
    transformers = need("transformers")
    small = dict(hidden_size=256, num_attention_heads=8, num_key_value_heads=2,
                 num_hidden_layers=3, vocab_size=1000, intermediate_size=688)  # fmt: skip
    classes = {
        "llama": ("LlamaConfig", dict(small)),
        "mistral": ("MistralConfig", dict(small, head_dim=48)),
        "qwen2": ("Qwen2Config", dict(small, tie_word_embeddings=True)),
        "qwen3": ("Qwen3Config", dict(small, head_dim=64)),
        "qwen3_moe": ("Qwen3MoeConfig", dict(small, head_dim=64, num_experts=8,
                                             num_experts_per_tok=2, moe_intermediate_size=96)),
        "mixtral": ("MixtralConfig", dict(small, num_local_experts=4, num_experts_per_tok=2)),
        "deepseek_v3": ("DeepseekV3Config", dict(small, n_routed_experts=8, n_shared_experts=2,
                                                 num_experts_per_tok=2, moe_intermediate_size=64,
                                                 first_k_dense_replace=1, q_lora_rank=96,
                                                 kv_lora_rank=32, qk_nope_head_dim=16,
                                                 qk_rope_head_dim=8, v_head_dim=24,
                                                 num_key_value_heads=8, n_group=1,
                                                 topk_group=1)),
        # The full-size ones, defaults as transformers writes them.
        "mixtral-8x7b": ("MixtralConfig", {}),
        "deepseek-v3": ("DeepseekV3Config", {}),
    }  # fmt: skip
    return {name: getattr(transformers, cls)(**kwargs) for name, (cls, kwargs) in classes.items()}


@pytest.mark.slow
@pytest.mark.parametrize(
    "family",
    ["llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "mixtral", "deepseek_v3",
     "mixtral-8x7b", "deepseek-v3"],
)  # fmt: skip
def test_a_config_json_counts_what_transformers_builds(family: str, tmp_path: Path) -> None:
    torch = need("torch")
    transformers = need("transformers")
    config = _configs()[family]
    path = tmp_path / family / "config.json"
    path.parent.mkdir()
    path.write_text(config.to_json_string())
    model = load_model(str(path), "test")
    assert isinstance(model, Model) and model.name == family
    with torch.device("meta"):
        built = transformers.AutoModelForCausalLM.from_config(config)
    held = sum(parameter.numel() for parameter in built.parameters())
    assert model_parameters(model, mtp=False) == held


def test_a_config_json_runs_from_the_command_line(tmp_path: Path) -> None:
    # Llama 3.1 8B's released config.json, its keys as Meta wrote them (rope scaling omitted).
    config = {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
        "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
        "vocab_size": 128256, "tie_word_embeddings": False, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-05, "hidden_act": "silu", "torch_dtype": "bfloat16",
    }  # fmt: skip
    folder = tmp_path / "Meta-Llama-3.1-8B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    args = ["run", "--model", str(folder / "config.json"), "--gpu", "h100", "-p", "4", "-m", "8"]
    result = runner.invoke(app, [*args, "--seq-length", "8192", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    data = result_json(result.stdout)
    assert data["model"]["name"] == "Meta-Llama-3.1-8B"
    assert data["model"]["parameters"] == 8_030_261_248
    assert data["model"]["seq_length"] == 8192


def test_plans_command_for_a_config_json_runs_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The best row's `pipesim run` names the file by its absolute path, not NAME.toml.
    config = {
        "model_type": "qwen2", "hidden_size": 512, "intermediate_size": 1408,
        "num_attention_heads": 8, "num_key_value_heads": 2, "num_hidden_layers": 8,
        "vocab_size": 32000, "tie_word_embeddings": True, "max_position_embeddings": 2048,
    }  # fmt: skip
    folder = tmp_path / "tiny-qwen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(folder)
    args = ["plan", "--model", "config.json", "--gpu", "h100", "-p", "2"]
    args += ["--global-batch-size", "4"]
    result = runner.invoke(app, [*args, "--policies", "1f1b", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    best = result_json(result.stdout)[0]
    command = shlex.split(best["command"])
    assert str(folder / "config.json") in command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    replay = runner.invoke(app, [*command[1:], "-f", "json"])
    assert replay.exit_code == 0, replay.stderr
    assert result_json(replay.stdout)["step_ms"] == best["step_ms"]


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"model_type": "gpt2", "n_embd": 768}, "model_type 'gpt2' is not one pipesim reads"),
        ({"model_type": "llama", "hidden_size": 64}, "llama config has no 'num_attention_heads'"),
        ([1, 2], "holds one JSON object"),
        ({"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 128,
          "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 10,
          "num_experts_per_tok": 2}, "mixtral config has no 'num_local_experts'"),
    ],
)  # fmt: skip
def test_a_bad_config_json_is_one_line(config: object, words: str, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = runner.invoke(app, ["run", "--model", str(path), "--gpu", "h100"])
    assert result.exit_code == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_truncated_config_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "hidden_size": 40')
    result = runner.invoke(app, ["run", "--model", str(path), "--gpu", "h100"])
    assert result.exit_code == 2 and "is not valid JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_presets_list_total_and_active_parameters() -> None:
    result = runner.invoke(app, ["presets"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    line = next(row for row in result.stdout.splitlines() if row.startswith(" mixtral-8x7b"))
    assert "46.7B (12.9B)" in line and "8 top 2" in line
    assert "671.0B (37.6B)" in result.stdout  # deepseek-v3 without its MTP module
