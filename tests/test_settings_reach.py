"""Every setting, given to every command as a flag or a TOML key, reaches the `Settings` that
command simulates: the options are derived from one declaration, and this checks that none is
lost on the way (as sweep once lost --inter-node-bandwidth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pipesim.studies.step
from pipesim.cli import app
from pipesim.errors import PolicyError
from pipesim.settings.declarations import SETTINGS, Settings
from pipesim.settings.hardware import Gpu, load_model
from pipesim.settings.values import Reserve, Straggler
from tests.cli_runner import CliRunner

runner = CliRunner()

# (flag text, TOML text, the value `Settings` must then hold): one per setting, so that a new
# setting without an entry here fails this test.
SAMPLES: dict[str, tuple[str, str, Any]] = {
    "policy": ("gpipe", '"gpipe"', "gpipe"),
    "stages": ("3", "3", 3),
    "microbatches": ("5", "5", 5),
    "chunks": ("3", "3", 3),
    "microbatch_group_size": ("4", "4", 4),
    "forward": ("1.5", "[1.5]", (1.5,)),
    "backward": ("3", "3", (3.0,)),
    "weight": ("1", '"1"', (1.0,)),
    "op_overhead": ("0.25", "[0.25]", (0.25,)),
    "overlap_cost": ("0.5", "0.5", 0.5),
    "total_forward": ("8", "8", 8.0),
    "total_backward": ("16", "16", 16.0),
    "comm_latency": ("0.25", "0.25", 0.25),
    "activation_size": ("1MB", '"1MB"', 1e6),
    "gradient_size": ("2MB", "2e6", 2e6),
    "bandwidth": ("10GB/s", '"10GB/s"', 1e10),
    "devices_per_node": ("2", "2", 2),
    "inter_node_bandwidth": ("1GB/s", "1e9", 1e9),
    "inter_node_latency": ("3", "3", 3.0),
    "blocking_comm": ("", "true", True),
    "runtime": ("megatron", '"megatron"', "megatron"),
    "model": ("gpt3-175b", '"gpt3-175b"', load_model("gpt3-175b", "test")),
    "gpu": (
        "h100",
        '{ name = "mine", tflops = 100, memory = "10GB", nvlink_bandwidth = "1GB/s", '
        'nvlink_latency = 0.1, network_bandwidth = "1GB/s", network_latency = 0.2, '
        "gpus_per_node = 4 }",
        None,
    ),
    "seq_length": ("1024", "1024", 1024),
    "micro_batch_size": ("2", "2", 2),
    "global_batch_size": ("64", "64", 64),
    "data_parallel": ("4", "4", 4),
    "tensor_parallel": ("8", "8", 8),
    "expert_parallel": ("8", "8", 8),
    "context_parallel": ("2", "2", 2),
    "tp_comm_overlap": ("0.5", "0.5", 0.5),
    "sequence_parallel": ("", "true", True),
    "ep_comm_overlap": ("", "true", True),
    "cross_node_tp": ("", "true", True),
    "gpus_per_node": ("4", "4", 4),
    "mfu": ("0.4", "0.4", 0.4),
    "recompute": ("full", '"full"', "full"),
    "attention": ("eager", '"eager"', "eager"),
    "layers_per_stage": ("1,2", "[1, 2]", (1, 2)),
    "layout": ("Et|tL", '"Et|tL"', "Et|tL"),
    "distributed_optimizer": ("", "true", True),
    "activation_memory": ("1GB", '"1GB"', 1e9),
    "static_memory": ("2GB", '"2e9B"', 2e9),
    "activation_limit": ("6", "6", 6.0),
    "weight_memory": ("0.4", "0.4", 0.4),
    "memory_limit": ("80GB", '"80GB"', 80e9),
    "memory_reserve": ("5%", '"4GB"', None),
    "jitter": ("0.1", "0.1", 0.1),
    "link_jitter": ("0.2", '"0.2"', 0.2),
    "seed": ("42", "42", 42),
    "stragglers": ("1:1.5", '["1:1.5", "0:2:0.5"]', None),
    "slow_links": ("0-1:2", '"0-1:2"', ((0, 1, 2.0),)),
}
SCHEDULE = "examples/zb1p_2rank_with_comms.csv"
COMMANDS: dict[str, tuple[list[str], set[str]]] = {
    # command: (its other arguments, the settings it does not take)
    "run": ([], set()),
    "validate": ([SCHEDULE], {"policy"}),
    "export": (["-o", "unused.csv"], set()),
    "compare": ([], {"policy"}),
    "sweep": ([], set()),
}


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings each simulation is asked to build, then stop there."""
    seen: list[Settings] = []

    def capture(settings: Settings, policy: object) -> None:
        seen.append(settings)
        # compare and sweep report a policy's refusal in its row and go on to the next one
        raise PolicyError("captured")

    monkeypatch.setattr(pipesim.studies.step, "build_problem", capture)
    return seen


def _sample(command: str, name: str) -> tuple[str, str, Any]:
    """validate checks -m against the file's microbatches before simulating."""
    return ("4", "4", 4) if (command, name) == ("validate", "microbatches") else SAMPLES[name]


def _flag(command: str, name: str) -> list[str]:
    setting = next(setting for setting in SETTINGS if setting.name == name)
    text = _sample(command, name)[0]
    if setting.kind.metavar == "":
        return [setting.flag]
    return [setting.flag, text]


def _extra(command: str, name: str) -> list[str]:
    """sweep needs one list (m, or p when m is the setting under test); -v needs a policy
    that takes it."""
    # compare and sweep run in this process only with one worker: the capture is in-process.
    extra = ["--workers", "1"] if command in ("compare", "sweep") else []
    if command == "sweep":
        extra += ["-p", "2,4"] if name == "microbatches" else ["-m", "2,4"]
    if name == "chunks" and command in ("sweep", "compare"):
        extra += ["--policies", "interleaved"]
    return extra


def _same(value: Any, expected: Any, via_flag: bool) -> bool:
    """The flag gives the h100 preset, the TOML sample a table of its own."""
    if isinstance(value, Gpu):
        return value.name == ("h100" if via_flag else "mine")
    if isinstance(value, Reserve):  # the flag gives a share, the TOML sample bytes
        return value == (Reserve(0.05, True) if via_flag else Reserve(4e9, False))
    if expected is None and value is not None and value and isinstance(value[0], Straggler):
        # The flag gives one straggler, the TOML sample two.
        wanted = [Straggler(1, 1.5)] + ([] if via_flag else [Straggler(0, 2.0, 0.5)])
        return list(value) == wanted
    return bool(value == expected)


def test_every_setting_has_a_sample() -> None:
    assert set(SAMPLES) == {setting.name for setting in SETTINGS}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("name", [setting.name for setting in SETTINGS])
def test_a_flag_reaches_the_simulated_settings(
    command: str, name: str, simulated: list[Settings]
) -> None:
    arguments, excluded = COMMANDS[command]
    args = [command, *arguments, *_flag(command, name), *_extra(command, name)]
    result = runner.invoke(app, args)
    if name in excluded:
        assert result.exit_code == 2 and "No such option" in result.stderr
        return
    assert simulated, result.output
    assert _same(getattr(simulated[0], name), _sample(command, name)[2], via_flag=True)


# A config file is read before any command sees it (`takes_settings`), so one command of each
# kind suffices: one that takes every setting, one that excludes some, and sweep.
@pytest.mark.parametrize("command", ["run", "compare", "sweep"])
@pytest.mark.parametrize("name", [setting.name for setting in SETTINGS])
def test_a_toml_key_reaches_the_simulated_settings(
    command: str,
    name: str,
    simulated: list[Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(f"{name} = {_sample(command, name)[1]}\n")
    arguments, excluded = COMMANDS[command]
    args = [command, *arguments, "--config", str(config), *_extra(command, name)]
    result = runner.invoke(app, args)
    assert simulated, result.output
    if name in excluded:
        # A key the command has no use for is said, not silently dropped (with the notes of
        # a command that succeeds: run it for real)
        monkeypatch.undo()
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.stderr
        assert "is not used" in result.stderr
        return
    assert _same(getattr(simulated[0], name), _sample(command, name)[2], via_flag=False)
