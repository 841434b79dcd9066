"""Figures as every machine-readable output writes them (JSON, CSV, Perfetto): rounded to
1e-9 so that float noise never reaches a file and the same inputs give the same bytes."""

from __future__ import annotations


def num(value: float) -> float | int:
    """Round away float noise (0.30000000000000004) and print whole numbers as floats."""
    rounded = round(value, 9)
    return 0.0 if rounded == 0 else rounded


def peak(value: float) -> float | int:
    """Peak activations: a whole count stays an int; a count of chunks may be fractional."""
    return int(value) if value == int(value) else num(value)
