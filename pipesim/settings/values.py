"""The kinds of value a setting takes: how each is written on a flag and in TOML, and its range.

Every number a user gives passes through one of these before anything is allocated or
simulated, so that a value that would overflow a figure (1e308 ms), divide by almost nothing
(a bandwidth of 1e-320) or exhaust memory (a billion stages) is refused with one line that names
the setting. Flags take ASCII digits only: `float` would also read '٣' and 'inf'.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipesim.errors import ConfigError
from pipesim.settings.hardware import load_gpu, load_model
from pipesim.settings.units import parse_rate, parse_size


@dataclass(frozen=True)
class Straggler:
    """A slow device: its ops take `factor` times as long, each with `probability`."""

    device: int
    factor: float
    probability: float = 1.0


RECOMPUTE = ("none", "selective", "full")
"""What a layer's backward recomputes: nothing, the attention core, or the whole forward."""
ATTENTION = ("flash", "eager")
RUNTIME = ("async", "torch", "zero-bubble", "megatron", "megatron-no-overlap")
"""How point-to-point messages behave (`problem.runtime` says what each does)."""
"""The attention kernel: fused (keeps O(s) per layer) or eager (keeps the s^2 scores)."""

MAX_COUNT = 1_000_000_000
"""The largest p, m, v or devices per node (the ops cap refuses most products long before)."""
MAX_MS = 1e9
"""The longest op, latency or cost accepted: about 11.6 days."""
MAX_FACTOR = 100.0
"""The largest overlap factor."""
MAX_BYTES = 1e18
"""The largest message, in bytes."""
MIN_RATE, MAX_RATE = 1.0, 1e18
"""The slowest and fastest link, bytes per second (0 is accepted and means no bandwidth)."""

_INTEGER = re.compile(r"[+-]?[0-9]{1,12}", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)


@dataclass(frozen=True)
class ValueKind:
    """How one kind of setting is written, read and checked."""

    metavar: str
    """What the flag's value looks like in --help."""
    from_text: Callable[[str, str], Any]
    """(name, a flag's text, or one item of a sweep's list) -> the value."""
    from_toml: Callable[[str, object], Any]
    """(where, a TOML value) -> the value."""
    check: Callable[[str, Any], None]
    """(name, a value given any way, the Python API included) -> None, or `ConfigError`."""


def number(name: str, text: str) -> float:
    """A decimal number in ASCII digits ('1', '0.5', '2e-3')."""
    body = text.strip()
    if not _NUMBER.fullmatch(body):
        raise ConfigError(f"{name}: {body[:40]!r} is not a number")
    return float(body)


def _count_text(name: str, text: str) -> int:
    body = text.strip()
    if not _INTEGER.fullmatch(body):
        raise ConfigError(f"{name}: {body[:40]!r} is not a whole number")
    value = int(body)
    _check_count(name, value)
    return value


def _count_toml(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number, got {_short(value)}")
    _check_count(where, value)
    return value


def _check_count(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    if value > MAX_COUNT:
        raise ConfigError(f"{name} must be at most {MAX_COUNT:,}, got {value:,}")


def _check_ms(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0 <= value <= MAX_MS:
        raise ConfigError(
            f"{name} must be a finite number >= 0 and <= {MAX_MS:g} ms, got {value!r}"
        )


def _special(name: str, text: str) -> float | None:
    """nan and inf as the user wrote them, so that the range message can name them."""
    body = text.strip().lower().lstrip("+-")
    return float(text.strip()) if body in ("nan", "inf", "infinity") else None


def _numbers(where: str, value: object) -> list[float]:
    """A TOML number, list of numbers, or string of comma-separated numbers."""
    if isinstance(value, str):
        return [_ms_like(where, part) for part in value.split(",")]
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ConfigError(f"{where}: empty list")
    result = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"{where}: {_short(item)} is not a number")
        result.append(float(item))
    return result


def _ms_like(name: str, text: str) -> float:
    special = _special(name, text)
    return number(name, text) if special is None else special


def costs_text(name: str, text: str) -> tuple[float, ...]:
    """'1,1,1.5,2' -> (1.0, 1.0, 1.5, 2.0); every value a duration in range."""
    values = []
    for part in text.split(","):
        value = _ms_like(name, part)
        _check_ms(name, value)
        values.append(value)
    return tuple(values)


def _costs_toml(where: str, value: object) -> tuple[float, ...]:
    values = tuple(_numbers(where, value))
    _check_costs(where, values)
    return values


def _check_costs(name: str, values: tuple[float, ...]) -> None:
    if not values:
        raise ConfigError(f"{name}: empty list")
    for value in values:
        _check_ms(name, value)


def _check_factor(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0 < value <= MAX_FACTOR:
        raise ConfigError(
            f"{name} must be a finite number > 0 and <= {MAX_FACTOR:g}, got {value!r}"
        )


def _check_size(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0 <= value <= MAX_BYTES:
        raise ConfigError(f"{name} must be a finite amount >= 0 and <= {MAX_BYTES:g} bytes")


def _check_rate(name: str, value: float) -> None:
    if value != 0 and (not math.isfinite(value) or not MIN_RATE <= value <= MAX_RATE):
        raise ConfigError(
            f"{name} must be 0 or between {MIN_RATE:g} and {MAX_RATE:g} bytes per second"
        )


def _amount(
    parse: Callable[[str, str | float], float], check: Callable[[str, float], None], example: str
) -> Callable[[str, object], float]:
    """A reader of sizes or rates, from a flag's text or a TOML string or number."""

    def read(name: str, value: object) -> float:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{name}: expected {example}, got {_short(value)}")
        amount = parse(name, value)
        check(name, amount)
        return amount

    return read


_size = _amount(parse_size, _check_size, "a size such as '64MB'")


def _memory(name: str, value: object) -> float:
    """A memory figure needs its unit: '80' is far more likely a slip for 80GB than 80 bytes."""
    if not isinstance(value, str) or not re.search(r"[A-Za-z]", value):
        raise ConfigError(f"{name}: give a unit, e.g. '80GB' or '1.5GiB' (got {_short(value)})")
    return _size(name, value)


_rate = _amount(parse_rate, _check_rate, "a rate such as '25GB/s'")


def _name_toml(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {_short(value)}")
    return value


def _switch_text(name: str, text: str) -> bool:
    body = text.strip().lower()
    if body not in ("true", "false"):
        raise ConfigError(f"{name}: {body[:40]!r} is not true or false")
    return body == "true"


def _switch_toml(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {_short(value)}")
    return value


def _no_check(name: str, value: Any) -> None:
    return None


def _one_number(
    check: Callable[[str, float], None],
) -> tuple[Callable[[str, str], float], Callable[[str, object], float]]:
    """Readers of a setting that is one number, from a flag's text and from TOML."""

    def from_text(name: str, text: str) -> float:
        value = _ms_like(name, text)
        check(name, value)
        return value

    def from_toml(where: str, value: object) -> float:
        items = _numbers(where, value)
        if len(items) != 1:
            raise ConfigError(f"{where} must be one number")
        check(where, items[0])
        return items[0]

    return from_text, from_toml


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


COUNT = ValueKind("INT", _count_text, _count_toml, _check_count)
"""A whole number >= 1: devices, microbatches, chunks."""
DURATION = ValueKind("MS", *_one_number(_check_ms), _check_ms)
"""Milliseconds >= 0."""
COSTS = ValueKind("MS[,MS...]", costs_text, _costs_toml, _check_costs)
"""Milliseconds per microbatch: one value, one per device, or one per stage."""
FACTOR = ValueKind("X", *_one_number(_check_factor), _check_factor)
"""A positive multiplier."""
SIZE = ValueKind("BYTES", _size, _size, _check_size)
"""Bytes, written as people do: 64MB, 1.5GiB, 4096."""
MEMORY = ValueKind("SIZE", _memory, _memory, _check_size)
"""Bytes of device memory, with a unit: 80GB, 1.5GiB."""
RATE = ValueKind("RATE", _rate, _rate, _check_rate)
"""Bytes per second: 25GB/s, 200Gbit/s."""
NAME = ValueKind("NAME", lambda name, text: text, _name_toml, _no_check)
"""A name, as given."""
SWITCH = ValueKind("", _switch_text, _switch_toml, _no_check)
"""On or off."""


def _check_fraction(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0 < value <= 1:
        raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")


def _counts_text(name: str, text: str) -> tuple[int, ...]:
    counts = []
    for part in text.split(","):
        body = part.strip()
        if not _INTEGER.fullmatch(body) or int(body) < 0:
            raise ConfigError(f"{name}: {body[:40]!r} is not a whole number >= 0")
        counts.append(int(body))
    return tuple(counts)


def _counts_toml(where: str, value: object) -> tuple[int, ...]:
    if isinstance(value, str):
        return _counts_text(where, value)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a list of whole numbers >= 0")
    for item in value:
        if type(item) is not int or item < 0:
            raise ConfigError(f"{where}: {_short(item)} is not a whole number >= 0")
    return tuple(value)


def _check_counts(name: str, values: tuple[int, ...]) -> None:
    if not values or any(type(v) is not int or v < 0 for v in values):
        raise ConfigError(f"{name} must be whole numbers >= 0, got {values!r}")


def choice(options: tuple[str, ...]) -> ValueKind:
    """One of `options`, as written."""

    def read(name: str, value: object) -> str:
        if not isinstance(value, str) or value.strip().lower() not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {_short(value)}")
        return value.strip().lower()

    def check(name: str, value: object) -> None:
        read(name, value)

    return ValueKind("|".join(options), read, read, check)


def _loader(load: Callable[[object, str], Any]) -> ValueKind:
    """A model or a GPU: a preset name, a .toml file, or (in a config) a table."""

    def from_text(name: str, text: str) -> Any:
        return load(text.strip(), name)

    def from_toml(where: str, value: object) -> Any:
        return load(value, where)

    return ValueKind("NAME|FILE", from_text, from_toml, _no_check)


def _check_activations(name: str, value: float) -> None:
    if not math.isfinite(value) or not 1 <= value <= MAX_COUNT:
        raise ConfigError(
            f"{name} must be a number of microbatches' worth >= 1 and <= {MAX_COUNT}, got {value!r}"
        )


FRACTION = ValueKind("X", *_one_number(_check_fraction), _check_fraction)
"""A number in (0, 1]."""


def _check_share(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")


SHARE = ValueKind("X", *_one_number(_check_share), _check_share)
"""A share in [0, 1]."""


@dataclass(frozen=True)
class Reserve:
    """Device memory set aside: bytes, or a share of the device's limit."""

    amount: float
    share: bool
    """Whether `amount` is a share of the limit (written 5%) rather than bytes."""

    def of(self, limit: float) -> float:
        return self.amount * limit if self.share else self.amount

    def __str__(self) -> str:
        if self.share:
            return f"{self.amount * 100:g}%"
        return f"{self.amount:g}B"


def _reserve(name: str, value: object) -> Reserve:
    if isinstance(value, str) and value.strip().endswith("%"):
        body = value.strip()[:-1]
        if not _NUMBER.fullmatch(body.strip()):
            raise ConfigError(f"{name}: {value[:40]!r} is not a percentage such as '5%'")
        reserve = Reserve(float(body) / 100, True)
    else:
        reserve = Reserve(_size(name, value), False)
    _check_reserve(name, reserve)
    return reserve


def _check_reserve(name: str, value: Reserve) -> None:
    if not isinstance(value, Reserve):
        raise ConfigError(f"{name}: expected a size such as '4GB' or a share such as '5%'")
    if value.share and not (math.isfinite(value.amount) and 0 <= value.amount < 1):
        raise ConfigError(f"{name} must be a share from 0% to below 100%")
    if not value.share:
        _check_size(name, value.amount)


RESERVE = ValueKind("SIZE|PCT", _reserve, _reserve, _check_reserve)
"""Memory set aside on each device: 4GB, or 5% of its limit."""
ACTIVATIONS = ValueKind("K", *_one_number(_check_activations), _check_activations)
"""Microbatches' worth of a device's activations (a chunk's counts 1/v): 1 or more."""
COUNTS = ValueKind("N[,N...]", _counts_text, _counts_toml, _check_counts)
"""Whole numbers >= 0, one per stage."""
MODEL = _loader(load_model)
"""A transformer model (see `hardware`)."""
GPU = _loader(load_gpu)
"""A GPU (see `hardware`)."""


def _check_cv(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0 <= value <= 10:
        raise ConfigError(f"{name} must be a coefficient of variation in [0, 10], got {value!r}")


def _seed_text(name: str, text: str) -> int:
    body = text.strip()
    if not _INTEGER.fullmatch(body) or not 0 <= int(body) < 2**31:
        raise ConfigError(f"{name}: {body[:40]!r} is not a whole number in [0, 2^31)")
    return int(body)


def _seed_toml(where: str, value: object) -> int:
    if type(value) is not int or not 0 <= value < 2**31:
        raise ConfigError(f"{where} must be a whole number in [0, 2^31), got {_short(value)}")
    return value


def _check_seed(name: str, value: int) -> None:
    _seed_toml(name, value)


def _entries(name: str, value: object) -> list[str]:
    """A list given as one comma-separated string, or as a TOML list of strings."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        parts = [item.strip() for item in value]
    else:
        raise ConfigError(f"{name}: expected text such as '3:1.3', got {_short(value)}")
    if not parts:
        raise ConfigError(f"{name}: empty")
    return parts


def _factor(name: str, text: str) -> float:
    value = number(name, text)
    if not math.isfinite(value) or not 0 < value <= 1000:
        raise ConfigError(f"{name}: the factor must be > 0 and <= 1000, got {text.strip()!r}")
    return value


def _stragglers(name: str, value: object) -> tuple[Straggler, ...]:
    found = []
    for entry in _entries(name, value):
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not _INTEGER.fullmatch(parts[0].strip()):
            raise ConfigError(f"{name}: {entry[:40]!r} is not DEVICE:FACTOR or DEVICE:FACTOR:PROB")
        probability = number(name, parts[2]) if len(parts) == 3 else 1.0
        if not 0 <= probability <= 1:
            raise ConfigError(f"{name}: the probability must be in [0, 1], got {parts[2]!r}")
        found.append(Straggler(int(parts[0]), _factor(name, parts[1]), probability))
    _check_stragglers(name, tuple(found))
    return tuple(found)


def _check_stragglers(name: str, value: object) -> None:
    """Every straggler a real device (>= 0), slowed by a factor in (0, 1000], with a
    probability in [0, 1]: however given, so that none is accepted and then ignored."""
    if not isinstance(value, tuple) or not all(isinstance(item, Straggler) for item in value):
        raise ConfigError(f"{name}: expected stragglers such as '3:1.3', got {_short(value)}")
    for item in value:
        if type(item.device) is not int or item.device < 0:
            raise ConfigError(
                f"{name}: the device must be a whole number >= 0, got {item.device!r}"
            )
        if not isinstance(item.factor, int | float) or not (
            math.isfinite(item.factor) and 0 < item.factor <= 1000
        ):
            raise ConfigError(f"{name}: the factor must be > 0 and <= 1000, got {item.factor!r}")
        if not isinstance(item.probability, int | float) or not 0 <= item.probability <= 1:
            raise ConfigError(
                f"{name}: the probability must be in [0, 1], got {item.probability!r}"
            )


def _slow_links(name: str, value: object) -> tuple[tuple[int, int, float], ...]:
    found = []
    for entry in _entries(name, value):
        link, _, factor = entry.partition(":")
        src, _, dst = link.partition("-")
        if not (_INTEGER.fullmatch(src.strip()) and _INTEGER.fullmatch(dst.strip()) and factor):
            raise ConfigError(f"{name}: {entry[:40]!r} is not SRC-DST:FACTOR")
        found.append((int(src), int(dst), _factor(name, factor)))
    _check_slow_links(name, tuple(found))
    return tuple(found)


def _check_slow_links(name: str, value: object) -> None:
    """Every slow link between real devices (>= 0), slowed by a factor in (0, 1000]."""
    if not isinstance(value, tuple):
        raise ConfigError(f"{name}: expected links such as '3-4:2', got {_short(value)}")
    for item in value:
        if not (isinstance(item, tuple) and len(item) == 3):
            raise ConfigError(f"{name}: expected (src, dst, factor), got {_short(item)}")
        src, dst, factor = item
        if type(src) is not int or type(dst) is not int or src < 0 or dst < 0:
            raise ConfigError(f"{name}: devices must be whole numbers >= 0, got {src!r}-{dst!r}")
        if not isinstance(factor, int | float) or not (
            math.isfinite(factor) and 0 < factor <= 1000
        ):
            raise ConfigError(f"{name}: the factor must be > 0 and <= 1000, got {factor!r}")


CV = ValueKind("CV", *_one_number(_check_cv), _check_cv)
"""A coefficient of variation: standard deviation over mean, 0 to 10."""
SEED = ValueKind("INT", _seed_text, _seed_toml, _check_seed)
"""A random seed."""
STRAGGLERS = ValueKind("DEVICE:FACTOR[:PROB]", _stragglers, _stragglers, _check_stragglers)
"""Slow devices."""
SLOW_LINKS = ValueKind("SRC-DST:FACTOR", _slow_links, _slow_links, _check_slow_links)
"""Slow link directions."""
