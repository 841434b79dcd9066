"""Numbers as people write them: sizes, rates, durations and counts, and the ranges pipesim
accepts (flags take ASCII digits only; values that would overflow a figure are refused)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim import ConfigError, Settings
from pipesim.settings.declarations import BY_NAME
from pipesim.settings.units import parse_rate, parse_size
from pipesim.settings.values import COSTS, COUNT, DURATION, FACTOR, RATE, SIZE, ValueKind
from pipesim.settings.written import setting_text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64MB", 64e6),
        ("1.5GiB", 1.5 * 2**30),
        ("512KiB", 512 * 1024),
        ("4096", 4096),
        ("2 kB", 2000),
        # a size's unit in any case, with or without its B; bits only when it says bit
        ("80gb", 80e9),
        ("80G", 80e9),
        ("80gib", 80 * 2**30),
        ("64mb", 64e6),
        ("1.5Gbit", 1.5e9 / 8),
    ],
)
def test_sizes(text: str, size: float) -> None:
    assert parse_size("size", text) == size


@pytest.mark.parametrize(
    ("text", "rate"),
    [("25GB/s", 25e9), ("200Gbit/s", 25e9), ("100Gbps", 12.5e9), ("1GiB/s", 2**30), ("1e9", 1e9)],
)
def test_rates(text: str, rate: float) -> None:
    assert parse_rate("rate", text) == rate


@pytest.mark.parametrize("text", ["64XB", "64mbytes", "MB", "-1MB", "1e400MB", "25GB"])
def test_bad_sizes_and_rates(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_rate("rate", text) if text == "25GB" else parse_size("size", text)


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (COUNT, "8", 8),
        (COUNT, "+3", 3),
        (DURATION, "0.25", 0.25),
        (DURATION, "2e-3", 0.002),
        (COSTS, "1, 1.5,2", (1.0, 1.5, 2.0)),
        (FACTOR, "0.7", 0.7),
        (SIZE, "1e18", 1e18),
        (RATE, "0", 0.0),
    ],
)
def test_values_within_range_are_read(kind: ValueKind, text: str, value: object) -> None:
    assert kind.from_text("x", text) == value


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (COUNT, "٣", "is not a whole number"),
        (COUNT, "2.0", "is not a whole number"),
        (COUNT, "0", "at least 1"),
        (COUNT, "9" * 5000, "is not a whole number"),
        (COUNT, "2000000000", "at most 1,000,000,000"),
        (DURATION, "٣", "is not a number"),
        (DURATION, "1e308", "<= 1e+09 ms"),
        (DURATION, "inf", "finite"),
        (DURATION, "1_000", "is not a number"),
        (COSTS, "1,,2", "is not a number"),
        (FACTOR, "0", "> 0"),
        (SIZE, "1e19", "<= 1e+18 bytes"),
        (RATE, "1e-320", "between 1 and 1e+18"),
    ],
)
def test_values_out_of_range_or_malformed_are_one_line(
    kind: ValueKind, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        kind.from_text("x", text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.floats(0, 1e15, allow_nan=False),
        st.integers(0, 10**6).map(lambda n: n * 1e6),  # whole megabytes
        st.integers(0, 10**6).map(lambda n: n * 1e9 / 4),  # quarters of a gigabyte
    )
)
def test_sizes_and_rates_are_written_as_people_write_them_and_read_back(value: float) -> None:
    """A command pipesim writes (plan's best, a run's title) gives a size as 64MB and a rate
    as 300GB/s wherever that reads back as the very same float, else as bytes."""
    settings = Settings(activation_size=value, bandwidth=value, memory_limit=value or None)
    for name, parse in (("activation_size", parse_size), ("bandwidth", parse_rate),
                        ("memory_limit", parse_size)):  # fmt: skip
        if getattr(settings, name) is None:
            continue
        text = setting_text(BY_NAME[name], value)
        assert parse(name, text) == value, text
        if value >= 1e6 and value % 1e6 == 0 and value / 1e6 < 1e6:
            assert text[-1 if name != "bandwidth" else -3] == "B" and text[0] != "0"
            assert text.rstrip("B/s")[-1] in "MGT", text
    assert setting_text(BY_NAME["bandwidth"], 300e9) == "300GB/s"
    assert setting_text(BY_NAME["activation_size"], 64e6) == "64MB"
