"""Fuzzing the CLI: generated arguments, TOML files and schedule CSVs, valid or not.

Whatever the input, pipesim answers with exit 0, 1, 2 or 130, at most one line on stderr and
no traceback; an output file is complete or absent; JSON on stdout parses, with finite
numbers only. The seed corpus of known cases is tests/test_bad_input.py; these examples are
derandomized so that CI runs the same 300 every time.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import Result

from pipesim.cli import app
from pipesim.settings.declarations import SETTINGS
from tests.cli_runner import CliRunner

pytestmark = pytest.mark.slow

runner = CliRunner()
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NASTY = [
    "0", "-1", "1", "2", "3", "8", "1e308", "1e-320", "nan", "-inf", "٣", "1,2", "1,,2", "2,4",
    "", " ", "x", "9" * 40, "[red]x[/]", "64MB", "1GB/s", "25GB/s", "0.5", "2,3,4", "1e9",
    "\x00", "1_0", "0x10", "+3", "1e400", "\n",
]  # fmt: skip
VALUES = st.one_of(st.sampled_from(NASTY), st.integers(-3, 9).map(str), st.text(max_size=6))
FLAGS = [
    flag for setting in SETTINGS for flag in (setting.flags or (setting.flag,)) if "/" not in flag
]
SWITCHES = ["--blocking-comm", "--overlap-comm", "--explain"]
COMMANDS = ["run", "compare", "sweep", "validate", "export", "policies", "plan", "presets"]


def _check(result: Result, out_dir: Path, json_out: bool) -> None:
    event(f"exit {result.exit_code}")  # pytest --hypothesis-show-statistics shows the spread
    assert result.exit_code in (0, 1, 2, 130), (result.exit_code, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = result.stderr.splitlines()
    assert len(lines) <= 1, result.stderr
    assert all(line.startswith("pipesim: ") for line in lines), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not [path.name for path in out_dir.iterdir() if path.name.endswith(".tmp")]
    for path in out_dir.glob("*.json"):
        json.loads(path.read_text(), parse_constant=_refuse)
    if json_out and result.exit_code == 0 and result.stdout.strip():
        json.loads(result.stdout, parse_constant=_refuse)


def _refuse(constant: str) -> None:
    raise AssertionError(f"JSON holds {constant}")


@st.composite
def _arguments(draw: st.DrawFn, out_dir: str) -> list[str]:
    command = draw(st.sampled_from(COMMANDS))
    args = [command]
    if command == "validate":
        args.append(draw(st.sampled_from(["examples/zb1p_2rank_with_comms.csv", "nope.csv"])))
    if command == "export":
        args += ["-o", f"{out_dir}/out.csv"]
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            args.append(draw(st.sampled_from(SWITCHES)))
        else:
            args += [draw(st.sampled_from(FLAGS)), draw(VALUES)]
    if draw(st.booleans()):
        args += ["--trace", f"{out_dir}/trace.json"]
    if draw(st.booleans()):
        args += ["-f", "json"]
    return args


@FUZZ
@given(st.data())
def test_any_arguments(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as out:
        args = data.draw(_arguments(out))
        result = runner.invoke(app, args)
        _check(result, Path(out), "json" in args)


TOML_VALUES = st.one_of(
    st.integers(-2, 9),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.booleans(),
    st.sampled_from(NASTY).map(json.dumps),
    st.lists(st.integers(0, 4), max_size=4).map(str),
    st.just("[" * 40 + "]" * 40),
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(text, text)
    return str(value)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from([setting.name for setting in SETTINGS] + ["width", "bogus-key"]),
        TOML_VALUES,
        max_size=5,
    ),
    st.sampled_from(["run", "compare", "sweep"]),
    st.binary(max_size=12),
)
def test_any_toml(keys: dict[str, object], command: str, junk: bytes) -> None:
    text = "".join(f"{key} = {_toml_value(value)}\n" for key, value in keys.items())
    with tempfile.TemporaryDirectory() as out:
        config = Path(out) / "config.toml"
        config.write_bytes(text.encode() + junk)
        args = [command, "--config", str(config), "-f", "json"]
        if command == "sweep":
            args += ["-m", "2,3"] if "microbatches" not in keys else ["-p", "2,3"]
        _check(runner.invoke(app, args), Path(out), json_out=True)


CELLS = st.one_of(
    st.builds(
        "{}{}{}".format,
        st.integers(0, 3),
        st.sampled_from(["F", "B", "I", "W", "SEND_F", "RECV_B", "X"]),
        st.integers(0, 3),
    ),
    st.sampled_from(
        ["", "(0F1;1B0)OVERLAP_F_B", "(0F0)OVERLAP_F_B", "\u0660F\u0660", "0F" + "9" * 30]
    ),
)


@FUZZ
@given(st.lists(st.lists(CELLS, max_size=10), min_size=1, max_size=4), st.booleans())
def test_any_schedule_file(rows: list[list[str]], validate: bool) -> None:
    with tempfile.TemporaryDirectory() as out:
        schedule = Path(out) / "schedule.csv"
        schedule.write_text("".join(",".join(row) + "\n" for row in rows))
        args = (
            ["validate", str(schedule), "-f", "json"]
            if validate
            else ["run", "--schedule", str(schedule), "-f", "json", "--trace", f"{out}/t.json"]
        )
        _check(runner.invoke(app, args), Path(out), json_out=True)


MODEL_KEYS = [
    "layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied", "gated", "norm",
    "seq_length", "experts", "experts_per_token", "moe_ffn", "shared_experts", "head_dim",
    "name", "bogus",
]  # fmt: skip
GPU_KEYS = [
    "tflops", "memory", "nvlink_bandwidth", "nvlink_latency", "network_bandwidth",
    "network_latency", "gpus_per_node", "hbm_bandwidth", "name", "bogus",
]  # fmt: skip
SANE_MODEL = {"layers": 8, "hidden": 512, "ffn": 2048, "heads": 8, "kv_heads": 8, "vocab": 1000,
              "tied": False, "gated": True, "norm": "rmsnorm", "seq_length": 512}  # fmt: skip
SANE_GPU = {"tflops": 100, "memory": "16GB", "nvlink_bandwidth": "100GB/s", "nvlink_latency": 0.01,
            "network_bandwidth": "10GB/s", "network_latency": 0.02, "gpus_per_node": 4,
            "hbm_bandwidth": "1TB/s"}  # fmt: skip
RAW = ["1", "80", '"80"', '"80GB"', '"1e-310"', "1e-310", "1e300", '"layernorm"', '"x"', "0",
       "-8", "65536", "1e9"]  # fmt: skip
HARDWARE_VALUES = st.one_of(TOML_VALUES, st.sampled_from(RAW))


def _table(sane: dict[str, object], keys: list[str], changes: dict[str, object]) -> str:
    lines = [f"{key} = {json.dumps(value)}" for key, value in sane.items() if key not in changes]
    lines += [f"{key} = {_toml_value(value)}" for key, value in changes.items() if key in keys]
    return "\n".join(lines) + "\n"


@FUZZ
@given(
    st.dictionaries(st.sampled_from(MODEL_KEYS), HARDWARE_VALUES, max_size=3),
    st.dictionaries(st.sampled_from(GPU_KEYS), HARDWARE_VALUES, max_size=3),
    st.sampled_from(["run", "plan", "compare"]),
    st.sampled_from(["", "(t*4)|(t*4)", "E(t*2)|t*6L", "(((t*999)*99)*99)", "t|t", "EL"]),
)
def test_any_model_and_gpu_file_and_layout(
    model: dict[str, object], gpu: dict[str, object], command: str, layout: str
) -> None:
    with tempfile.TemporaryDirectory() as out:
        (Path(out) / "m.toml").write_text(_table(SANE_MODEL, MODEL_KEYS, model))
        (Path(out) / "g.toml").write_text(_table(SANE_GPU, GPU_KEYS, gpu))
        args = [command, "--model", f"{out}/m.toml", "--gpu", f"{out}/g.toml", "-f", "json"]
        args += ["--gpus", "4", "--global-batch-size", "8"] if command == "plan" else ["-p", "2"]
        if layout and command != "plan":
            args += ["--layout", layout]
        _check(runner.invoke(app, args), Path(out), json_out=True)
