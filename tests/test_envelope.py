"""Every command's JSON is one envelope (command, version, settings, options, result) that
follows the schema shipped in the package, and carries what reproduces it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipesim.cli import app
from pipesim.render.envelope import schema, version
from pipesim.settings.declarations import BY_NAME
from tests.cli_runner import CliRunner

runner = CliRunner()

COMMANDS = {
    "run": ["run", "-p", "4", "-m", "8", "--explain"],
    "run --runs": ["run", "-p", "4", "-m", "8", "--jitter", "0.1", "--runs", "4"],
    "run --model": ["run", "--model", "mixtral-8x7b", "--gpu", "h100", "-p", "4", "-m", "4",
                    "--tensor-parallel", "2", "--data-parallel", "4", "--expert-parallel", "4"],
    "compare": ["compare", "-p", "4", "-m", "6", "--policies", "1f1b,dualpipe-v,zb-h1"],
    "compare --runs": ["compare", "-p", "2", "-m", "4", "--jitter", "0.1", "--runs", "3",
                       "--policies", "1f1b,gpipe"],
    "sweep": ["sweep", "-p", "4", "-m", "4,8", "--straggler", "1:1.5"],
    "plan": ["plan", "--model", "llama3-8b", "--gpu", "h100", "-p", "2",
             "--global-batch-size", "8", "--policies", "1f1b", "--micro-batch-sizes", "1"],
}  # fmt: skip


def _document(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_the_schema_is_a_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_writes_the_envelope_the_schema_describes(name: str) -> None:
    document = _document(COMMANDS[name])
    jsonschema.validate(document, schema())
    assert list(document) == ["command", "version", "settings", "options", "result"]
    assert document["command"] == name.split()[0]
    assert document["version"] == version() != "unknown"
    assert set(document["settings"]) <= set(BY_NAME)


def test_validate_and_optimize_write_it_too(tmp_path: Path) -> None:
    pytest.importorskip("highspy")
    schedule = tmp_path / "optimal.csv"
    optimized = _document(["optimize", "-p", "2", "-m", "3", "-o", str(schedule)])
    assert optimized["command"] == "optimize" and optimized["result"]["proven"]
    validated = _document(["validate", str(schedule)])
    jsonschema.validate(validated, schema())
    assert validated["options"]["schedule"] == str(schedule.resolve())
    assert validated["result"]["makespan"] == optimized["result"]["replayed_makespan"]


def test_a_result_is_reproduced_from_its_own_envelope(tmp_path: Path) -> None:
    # The settings block is what a --config file takes: written back as TOML and run again,
    # it gives the same result, whatever kinds of value it holds (a model, lists, stragglers,
    # sizes, switches).
    first = _document(
        ["run", "--model", "llama3-8b", "--gpu", "h100", "-p", "4", "-m", "8",
         "--layers-per-stage", "7,8,9,8", "--straggler", "2:1.2", "--memory-reserve", "3GB",
         "--recompute", "selective", "--no-sequence-parallel", "--policy", "zb-h1"]
    )  # fmt: skip
    config = tmp_path / "again.toml"
    config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in
                              first["settings"].items()))  # fmt: skip
    again = _document(["run", "--config", str(config)])
    assert again["settings"] == first["settings"]
    assert again["result"] == first["result"]


def test_a_sweep_names_its_axis_in_the_options_not_the_settings() -> None:
    document = _document(COMMANDS["sweep"])
    assert document["options"] == {"setting": "microbatches", "values": [4, 8],
                                   "policies": ["1f1b"]}  # fmt: skip
    assert "microbatches" not in document["settings"]
    assert document["settings"]["stragglers"] == "1:1.5"
