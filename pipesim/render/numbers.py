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


class TimeTexts(dict[float, str]):
    """Each time as the JSON text of the float `round(time, digits)` (what json.dumps writes of
    it; -0.0 as 0.0), formatted once: a run's ops end where the next ones start and its
    messages leave, so most times recur, and rounding and printing a float costs a
    microsecond."""

    def __init__(self, digits: int = 9) -> None:
        super().__init__()
        self._digits = digits

    def __missing__(self, time: float) -> str:
        text = self[time] = repr(round(time, self._digits) or 0.0)
        return text
