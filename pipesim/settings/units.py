"""Sizes and rates as people write them: "64MB", "1.5GiB", "25GB/s", "100Gbit/s".

SI prefixes are powers of 1000, binary ones (KiB, MiB, ...) powers of 1024; B is a byte and
b or bit a bit. A bare number is bytes (or bytes per second). A size's unit may be written in
any case and without its B ('80gb', '80G', '80GiB'): a memory size is never counted in bits,
unless it says 'bit'. A rate keeps the case that tells Gb/s (bits) from GB/s (bytes).
"""

from __future__ import annotations

import math
import re

from pipesim.errors import ConfigError

_PREFIX = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def _multiplier(unit: str) -> float | None:
    """Bytes per `unit` ('MB' -> 1e6, 'GiB' -> 2**30, 'Gbit' -> 1.25e8), None if unknown."""
    if unit == "":
        return 1.0
    for prefixes in (_BINARY, _PREFIX):
        for prefix, factor in prefixes.items():
            rest = unit[len(prefix) :] if unit.startswith(prefix) else None
            if rest == "B":
                return float(factor)
            if rest in ("b", "bit") and prefixes is _PREFIX:
                return factor / 8
    return None


_SIZE_UNITS = {
    **{prefix.lower() + suffix: float(factor) for prefix, factor in _PREFIX.items()
       for suffix in ("", "b") if prefix},
    **{prefix.lower() + suffix: float(factor) for prefix, factor in _BINARY.items()
       for suffix in ("", "b")},
    **{prefix.lower() + "bit": factor / 8 for prefix, factor in _PREFIX.items()},
    "b": 1.0,
}  # fmt: skip
"""A size's units, lower-cased: 'gb' and 'g' are 1e9 bytes, 'gib' and 'gi' 2**30, 'gbit' 1.25e8."""


def parse_size(name: str, text: str | float) -> float:
    """Bytes in a size such as '64MB', '1.5GiB', '80gb' or 4096."""
    return _parse(name, text, rate=False)


def parse_rate(name: str, text: str | float) -> float:
    """Bytes per second in a rate such as '25GB/s', '200Gbit/s', '12.5GiB/s' or 1e9."""
    return _parse(name, text, rate=True)


def _parse(name: str, text: str | float, rate: bool) -> float:
    what = "rate" if rate else "size"
    example = "'25GB/s', '200Gbit/s' or '12.5GiB/s'" if rate else "'64MB', '1.5GiB' or 4096"
    if isinstance(text, bool):
        raise ConfigError(f"{name}: expected a {what} such as {example}")
    if isinstance(text, int | float):
        value = float(text)
    else:
        body = text.strip()
        per_second = rate and body.endswith(("/s", "ps"))
        if per_second:
            body = body[:-2]
        match = _QUANTITY.match(body)
        if match is None:
            factor = None
        elif rate:
            factor = _multiplier(match.group(2))
        else:
            factor = 1.0 if not match.group(2) else _SIZE_UNITS.get(match.group(2).lower())
        if match is None or factor is None or (rate and match.group(2) and not per_second):
            raise ConfigError(f"{name}: {text!r} is not a {what}; write it as {example}")
        value = float(match.group(1)) * factor
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite amount >= 0, got {text!r}")
    return value
