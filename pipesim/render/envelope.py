"""Every command's JSON in one envelope: which command and which pipesim wrote it, the settings
it ran with (the keys a `--config` TOML file takes, written by `settings.written`), the
command's own options, then its result. An output says how to reproduce itself, and a reader
finds every command's figures at the same place. `envelope.schema.json`, beside this module,
is the schema of all of them (`tests/test_envelope.py` holds every command's output to it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import metadata, resources
from typing import Any, TextIO

from pipesim.settings.declarations import Settings
from pipesim.settings.written import settings_record


@cache
def version() -> str:
    """pipesim's version, as installed."""
    try:
        return metadata.version("pipesim")
    except metadata.PackageNotFoundError:
        return "unknown"


def schema() -> dict[str, Any]:
    """The JSON Schema every output follows."""
    text = resources.files("pipesim.render").joinpath("envelope.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def envelope(
    command: str,
    settings: Settings,
    options: Mapping[str, Any],
    result: Any,
    leave_out: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The whole output of `command`, `result` inside; `leave_out`: settings the options say
    instead (a sweep's varied setting)."""
    return {**_head(command, settings, options, leave_out), "result": result}


def write_envelope(
    out: TextIO,
    command: str,
    settings: Settings,
    options: Mapping[str, Any],
    write_result: Callable[[TextIO], None],
) -> None:
    """`envelope`, with a result too large to build in memory streamed by `write_result`
    (which writes one JSON value and no newline after it)."""
    head = json.dumps(
        _head(command, settings, options, ()), separators=(", ", ": "), allow_nan=False
    )
    out.write(head[:-1] + ', "result": ')
    write_result(out)
    out.write("}\n")


def _head(
    command: str, settings: Settings, options: Mapping[str, Any], leave_out: tuple[str, ...]
) -> dict[str, Any]:
    return {
        "command": command,
        "version": version(),
        "settings": settings_record(settings, leave_out=leave_out),
        "options": dict(options),
    }
