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
        self._fixed = f"%.{digits}f"
        self._below = 10.0 ** (15 - digits)
        """Under this, `digits` decimals make at most 15 significant digits: few enough that
        the rounded float's shortest text (its repr) is those decimals without trailing
        zeros."""

    def __missing__(self, time: float) -> str:
        below = self._below
        if 1e-4 <= time < below or -below < time <= -1e-4:
            # '%.9f' rounds as round(time, 9) does (the same correctly rounded conversion),
            # and in this range repr writes that float as its decimals: a third less work
            # than rounding to a float and printing it again.
            text = (self._fixed % time).rstrip("0")
            if text[-1] == ".":
                text += "0"
        else:  # repr's exponent notation, zero, -0.0, inf, nan: round and print
            text = repr(round(time, self._digits) or 0.0)
        self[time] = text
        return text
