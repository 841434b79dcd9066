"""Settings written back: as the `pipesim run` flags that reproduce them, and as the JSON
record every output carries, from the same declarations the flags were made from."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection
from typing import Any

from pipesim.settings.declarations import SETTINGS, Setting, Settings
from pipesim.settings.hardware import Gpu, Model, preset_tables
from pipesim.settings.units import parse_rate, parse_size
from pipesim.settings.values import MEMORY, RATE, SIZE, Straggler


def as_flags(settings: Settings) -> list[str]:
    """The flags, in declaration order, for every setting that differs from its default."""
    default = Settings()
    flags: list[str] = []
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        if value == getattr(default, setting.name) or value is None:
            continue
        flags += _flag(setting, value)
    return flags


def as_command(settings: Settings) -> str:
    return shlex.join(["pipesim", "run", *as_flags(settings)])


def _flag(setting: Setting, value: object) -> list[str]:
    names = setting.flags or (setting.flag,)
    long = next(name for name in names if name.startswith("--"))
    if isinstance(value, bool):
        on, _, off = long.partition("/")
        return [on if value else (off or f"--no-{on[2:]}")]
    return [long, setting_text(setting, value)]


def setting_text(setting: Setting, value: object) -> str:
    """A setting's value as its flag takes it."""
    if isinstance(value, Model | Gpu):
        # the file it came from, wherever the command is run; a preset by its name
        if value.source:
            return value.source
        return value.name if value.name in preset_tables(type(value)) else f"{value.name}.toml"
    if isinstance(value, tuple):
        return ",".join(_entry(item) for item in value)
    if isinstance(value, float) and setting.kind in (MEMORY, SIZE):
        return _with_unit(value, "", parse_size)
    if isinstance(value, float) and setting.kind is RATE:
        return _with_unit(value, "/s", parse_rate)
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _with_unit(value: float, per: str, parse: Callable[[str, str], float]) -> str:
    """Bytes (`per` "") or bytes per second ("/s") as people write them, 64MB or 300GB/s,
    where that reads back as the same float; else the bytes themselves."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if value >= size and (value / size) == round(value / size, 3):
            text = f"{round(value / size, 3):g}{unit}{per}"
            if parse("", text) == value:
                return text
    return f"{_number(value)}B{per}"


def _entry(item: object) -> str:
    if isinstance(item, Straggler):
        probability = "" if item.probability >= 1 else f":{_number(item.probability)}"
        return f"{item.device}:{_number(item.factor)}{probability}"
    if isinstance(item, tuple):  # a slow link (src, dst, factor)
        src, dst, factor = item
        return f"{src}-{dst}:{_number(factor)}"
    return _number(item)


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def settings_record(settings: Settings, leave_out: Collection[str] = ("policy",)) -> dict[str, Any]:
    """The settings given (every one that is set), as JSON: numbers and switches as
    themselves, the rest as its flag writes it, so `--config` of the same keys reproduces it
    (a memory figure with its unit, which a config needs)."""
    record: dict[str, Any] = {}
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        if value is None or setting.name in leave_out:
            continue
        plain = isinstance(value, bool | int | float) and setting.kind is not MEMORY
        record[setting.name] = value if plain else setting_text(setting, value)
    return record
