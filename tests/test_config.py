"""Settings from TOML files and flags: what is accepted, and the one-line errors for the rest."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pipesim import ConfigError, PolicyError, Settings, build_problem, get_policy, load_settings
from pipesim.problem import capacity
from pipesim.settings.values import costs_text


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_toml_with_lists_strings_and_numbers(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'policy = "gpipe"\nstages = 4\nmicrobatches = 6\nforward = [1, 1, 1.5, 2]\n'
        'backward = "2,2,3,4"\ncomm_latency = 0.25\n',
    )
    settings = load_settings(path)
    assert settings == Settings(
        policy="gpipe",
        stages=4,
        microbatches=6,
        forward=(1.0, 1.0, 1.5, 2.0),
        backward=(2.0, 2.0, 3.0, 4.0),
        comm_latency=0.25,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages = 4\nwidth = 3\n", "unknown key 'width'"),
        ("stages = [4\n", "is not valid TOML"),
        ("stages = 2.5\n", "stages must be a whole number"),
        ("stages = true\n", "stages must be a whole number"),
        ("forward = -1\n", "forward must be a finite number >= 0"),
        ("forward = nan\n", "forward must be a finite number >= 0 and <= 1e.09 ms, got nan"),
        ("forward = [1, 'x']\n", "'x' is not a number"),
        ("forward = []\n", "empty list"),
        ("comm_latency = [1, 2]\n", "must be one number"),
        ("policy = 3\n", "policy must be a string"),
    ],
)
def test_malformed_toml_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as caught:
        load_settings(_write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize("text", ["1,,2", "a", "1;2", "inf", "-0.5"])
def test_bad_cost_lists(text: str) -> None:
    with pytest.raises(ConfigError):
        costs_text("forward", text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stages": 0}, "stages must be at least 1"),
        ({"microbatches": -3}, "microbatches must be at least 1"),
        ({"forward": (1.0, 2.0)}, "forward has 2 values; expected 1 or 4"),
        ({"comm_latency": float("inf")}, "comm_latency must be a finite number"),
        ({"weight": (3.0,)}, "weight .* exceeds backward"),
    ],
)
def test_build_problem_rejects(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_problem(Settings().replace(**changes), get_policy("1f1b"))


def test_one_chunk_policies_reject_chunks() -> None:
    with pytest.raises(PolicyError, match=r"places 1 chunk\(s\) per device; got --chunks 2"):
        build_problem(Settings(chunks=2), get_policy("1f1b"))


def test_per_device_costs_are_kept_per_stage() -> None:
    problem = build_problem(Settings(forward=(1.0, 1.0, 1.5, 2.0)), get_policy("gpipe"))
    assert problem.costs.forward == (1.0, 1.0, 1.5, 2.0)
    assert problem.costs.backward == (2.0,) * 4
    assert problem.costs.weight == (1.0,) * 4


def test_policy_names_are_case_insensitive_and_accept_aliases() -> None:
    assert get_policy("GPipe").name == "gpipe"
    assert get_policy("Schedule1F1B").name == "1f1b"
    with pytest.raises(PolicyError, match=r"unknown policy 'zz'; known policies: .*1f1b"):
        get_policy("zz")


def test_steps_too_large_to_hold_are_refused_before_any_allocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2 GB available: 4 million ops (about 1.8 GB) fit, 6 million do not; both figures are said.
    monkeypatch.setattr(capacity, "available_memory", lambda: 2 * 10**9)
    build_problem(Settings(stages=4, microbatches=500_000), get_policy("gpipe"))
    with pytest.raises(ConfigError) as caught:
        build_problem(Settings(stages=4, microbatches=500_000), get_policy("zb-h1"))
    assert str(caught.value) == (
        "p=4, v=1, m=500000 is up to 6,000,000 ops on 4 devices, which needs about 2.7 GB of "
        "memory; "
        "2.0 GB is available to this process"
    )


def test_a_step_smaller_than_the_interpreter_is_built_without_asking_the_system(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plan screens thousands of small configurations: none reads /proc and /sys, and a
    step beyond `SMALL_STEP` is still checked against what the system says."""

    def asked() -> int:
        raise AssertionError("the system was asked")

    monkeypatch.setattr(capacity, "available_memory", asked)
    build_problem(Settings(stages=8, microbatches=1000), get_policy("zb-h1"))  # 24,000 ops
    monkeypatch.setattr(capacity, "available_memory", lambda: capacity.SMALL_STEP)
    ops = capacity.SMALL_STEP // capacity.BYTES_PER_OP  # 37,282; 4 per microbatch below
    with pytest.raises(ConfigError, match="is available to this process"):
        build_problem(Settings(stages=2, microbatches=ops // 4 + 1), get_policy("gpipe"))  # over


def test_a_containers_memory_limit_and_ulimit_bound_what_is_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine may have 24 GiB while the container holds 1 GB (cgroup v1 or v2) or the
    shell set `ulimit -v`: the tightest one is what a run can use."""
    import builtins
    import resource

    files = {
        "/proc/self/cgroup": "4:memory:/job\n0::/job\n",
        "/sys/fs/cgroup/job/memory.max": "1000000000\n",
        "/sys/fs/cgroup/job/memory.current": "400000000\n",
        "/sys/fs/cgroup/memory.max": "max\n",
        "/sys/fs/cgroup/memory/job/memory.limit_in_bytes": "9223372036854771712\n",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes": "800000000\n",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes": "100000000\n",
    }
    real_open = builtins.open

    def fake_open(path: object, *args: object, **kwargs: object) -> object:
        if isinstance(path, str) and path in files:
            fake = tmp_path / "fake"
            fake.write_text(files[path])
            return real_open(fake, *args, **kwargs)  # type: ignore[call-overload]
        if isinstance(path, str) and path.startswith("/sys/fs/cgroup"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(capacity, "_machine", lambda: 24 * 2**30)
    assert capacity.available_memory() == 600_000_000  # v2 leaves 600 MB, v1's parent 700 MB
    files["/sys/fs/cgroup/job/memory.max"] = "max\n"
    assert capacity.available_memory() == 700_000_000
    with real_open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (used + 300_000_000, hard))
    assert abs(capacity.available_memory() - 300_000_000) < 2**26  # ulimit -v: 300 MB left


def test_defaults_are_declared_once_and_resolved_in_one_place() -> None:
    from dataclasses import fields

    from pipesim.settings.declarations import SETTINGS, Resolved

    declared = {setting.name for setting in SETTINGS if setting.default is not None}
    assert {item.name for item in fields(Resolved)} == declared
    given = Settings(seed=7, tensor_parallel=None, recompute="full")
    assert given.resolved.seed == 7 and given.resolved.recompute == "full"
    assert given.resolved.tensor_parallel == 1 and given.resolved.policy == "1f1b"
    assert given.resolved.stragglers == () and given.tensor_parallel is None  # kept as given


@pytest.mark.parametrize(
    "name",
    [
        "seq_length", "tensor_parallel", "expert_parallel", "sequence_parallel", "mfu",
        "recompute", "attention", "layers_per_stage", "layout", "distributed_optimizer",
    ],
)  # fmt: skip
def test_a_setting_that_needs_a_model_is_refused_without_one(name: str) -> None:
    from pipesim.settings.declarations import BY_NAME, MODEL_ONLY

    assert name in MODEL_ONLY
    samples = {"layers_per_stage": (1, 1, 1, 1), "layout": "t|t|t|t", "recompute": "full",
               "attention": "eager", "mfu": 0.4, "sequence_parallel": True,
               "distributed_optimizer": True}  # fmt: skip
    value = samples.get(name, 2)
    BY_NAME[name].kind.check(name, value)
    with pytest.raises(ConfigError, match=f"{name} needs a model"):
        build_problem(Settings(**{name: value}), get_policy("1f1b"))  # type: ignore[arg-type]


def test_a_study_raises_a_workers_error_as_it_was_raised() -> None:
    # The capacity check refuses the step in the worker process; the study raises that same
    # ConfigError here, not a bare error rebuilt from its text.
    from pipesim.studies.compare import compare_policies

    huge = Settings(stages=100_000, microbatches=100_000)
    with pytest.raises(ConfigError, match="memory") as caught:
        compare_policies(huge, ["1f1b", "gpipe"], workers=2)
    assert type(caught.value) is ConfigError and caught.value.exit_code == 2


def test_python_takes_what_the_command_line_takes() -> None:
    # Names, numbers, strings with units and paths as str, read as a TOML file would be, with
    # the same one-line errors raised as ConfigError. (Typed code sees the parsed types; the
    # ignores below are what an untyped notebook writes.)
    from pipesim.settings.hardware import Model

    settings = Settings(model="llama3-8b", gpu="h100", memory_limit="80GB", forward=1.0)  # type: ignore[arg-type]
    assert isinstance(settings.model, Model) and settings.memory_limit == 80e9
    assert settings.forward == (1.0,)
    assert Settings(forward=[1, 2]).forward == (1.0, 2.0)  # type: ignore[arg-type]
    assert Settings(stragglers="1:1.5").stragglers is not None  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        Settings(model="nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'lots' is not a size"):
        Settings(memory_limit="lots")  # type: ignore[arg-type]


def test_load_settings_takes_a_path_as_a_string(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("stages = 3\n")
    assert load_settings(str(config)).stages == 3


def test_the_library_says_its_version_and_runs_every_workflow() -> None:
    import pipesim

    assert pipesim.__version__ == "0.1.0"
    result = pipesim.run_step(Settings(stages=2, microbatches=2))
    assert result.report.summary.makespan == 9.0
    compared = pipesim.compare_workflow(Settings(stages=2, microbatches=4), ["1f1b", "gpipe"])
    assert [row.policy for row in compared.rows] == ["1f1b", "gpipe"]


def test_help_lists_the_public_api_with_its_docstrings() -> None:
    """help(pipesim) listed only __getattr__: the names are imported lazily."""
    import pydoc

    import pipesim

    text = pydoc.plain(pydoc.render_doc(pipesim))
    for name in ("simulate_step", "compare_workflow", "plan_search", "frames", "load_settings"):
        assert f"    {name}(" in text, name
    assert "class Settings" in text and "class Report" in text


def test_one_setting_spelled_twice_in_a_config_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "comm_latency = 0.5\ncomm-latency = 0.7\n")
    with pytest.raises(ConfigError, match="'comm_latency' and 'comm-latency' are the same"):
        load_settings(path)


def test_a_model_file_named_in_a_config_is_read_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A different m.toml in the working folder must not be used."""
    fields = (
        "layers = {}\nhidden = 1024\nheads = 8\nkv_heads = 8\nffn = 4096\nvocab = 32000\n"
        'tied = false\ngated = true\nnorm = "rmsnorm"\nseq_length = 2048\n'
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.toml").write_text("[model]\n" + fields.format(8))
    (tmp_path / "m.toml").write_text("[model]\n" + fields.format(16))
    (tmp_path / "sub" / "c.toml").write_text('model = "m.toml"\ngpu = "h100"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("sub") / "c.toml")
    assert settings.model is not None and settings.model.layers == 8


def test_only_a_command_that_runs_the_configs_policy_says_it_runs_code(tmp_path: Path) -> None:
    from pipesim.cli import app
    from tests.cli_runner import CliRunner

    (tmp_path / "mine.py").write_text((Path("examples") / "custom_policy.py").read_text())
    config = _write(tmp_path, 'policy = "mine.py:Eager1F1B"\nstages = 2\nmicrobatches = 2\n')
    for command, says in [
        (["run"], True),
        (["validate", str(tmp_path / "x.csv")], False),
        (["optimize"], False),
        (["compare"], False),
    ]:
        if command[0] == "validate":
            (tmp_path / "x.csv").write_text("rank,action\n0,F0\n0,B0\n")
        result = CliRunner().invoke(app, [*command, "--config", str(config)])
        assert ("runs code" in result.stderr) is says, (command, result.stderr)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"mfu": 1e-300}, "stage 0's forward, derived from the model, comes to 3.34e+301 ms"),
        ({"seq_length": 100_000_000}, "sequence 100000000 tokens of llama3-8b"),
        ({"micro_batch_size": 1_000_000_000}, "micro-batch size 1000000000 x sequence 8192"),
    ],
)
def test_derived_costs_and_sizes_obey_the_bounds_given_ones_do(
    changes: dict[str, float], words: str
) -> None:
    """llama3-8b's stage 0 (8 layers and the embedding) at 989 TFLOPS: a forward of about
    1.6 ms at mfu 0.5 becomes 1e302 ms at mfu 1e-300; such a run used to go on."""
    settings = Settings(model="llama3-8b", gpu="h100", stages=4, **changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=re.escape(words)):
        build_problem(settings, get_policy("1f1b"))


def test_a_gpu_files_memory_needs_a_unit_as_memory_limit_does(tmp_path: Path) -> None:
    fields = (
        'tflops = 989\nnvlink_bandwidth = "450GB/s"\nnvlink_latency = 0.005\n'
        'network_bandwidth = "400Gbit/s"\nnetwork_latency = 0.01\ngpus_per_node = 8\n'
        'hbm_bandwidth = "3.35TB/s"\n'
    )
    (tmp_path / "g.toml").write_text(fields + "memory = 80\n")
    with pytest.raises(ConfigError, match=re.escape("memory: give a unit, e.g. '80GB'")):
        Settings(model="llama3-8b", gpu=str(tmp_path / "g.toml"))  # type: ignore[arg-type]
    (tmp_path / "g.toml").write_text(fields + 'memory = "80GB"\n')
    gpu = Settings(model="llama3-8b", gpu=str(tmp_path / "g.toml")).gpu  # type: ignore[arg-type]
    assert gpu is not None and gpu.memory == 80e9


def test_a_copy_with_changes_is_what_the_constructor_makes_of_them() -> None:
    """`Settings.replace` reads only the changed settings again (a plan makes thousands of
    copies): the copy must equal the constructor's, field by field, whatever was changed and
    in whatever form, and compute its resolved values afresh."""
    import dataclasses

    base = Settings(model="llama3-8b", gpu="h100", stages=4, recompute="full")  # type: ignore[arg-type]
    assert base.resolved.recompute == "full"
    changes: list[dict[str, Any]] = [
        {"stages": 8},
        {"recompute": "selective", "tensor_parallel": 2},
        {"forward": [1, 2], "backward": 3},  # read as TOML reads them: (1.0, 2.0), (3.0,)
        {"memory_limit": "40GB", "layers_per_stage": (16, 16)},
        {"model": None, "gpu": None},
        {},
    ]
    for change in changes:
        copy = base.replace(**change)
        made = dataclasses.replace(base, **change)
        assert copy == made and hash(copy) == hash(made)
        for field in dataclasses.fields(Settings):
            assert getattr(copy, field.name) == getattr(made, field.name), field.name
        assert copy.resolved == made.resolved
    assert base.replace(recompute="selective").resolved.recompute == "selective"
    with pytest.raises(ConfigError, match="memory_limit"):
        base.replace(memory_limit="lots")
    with pytest.raises(TypeError, match="no setting 'stage'"):
        base.replace(stage=2)
