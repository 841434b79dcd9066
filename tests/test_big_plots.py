"""Timelines with more ops than pixels: each pixel column shows how its time was shared among
the kinds of work, and the memory panel keeps every peak. Checked against direct
computations, and on a plot drawn from the command line."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim.cli import app
from tests.cli_runner import CliRunner

numpy = pytest.importorskip("numpy")
pytest.importorskip("matplotlib")
from pipesim.render.plots import _covered, _peaks  # noqa: E402  (needs matplotlib's numpy)

runner = CliRunner()
span = st.tuples(st.integers(0, 60), st.integers(0, 15)).map(lambda s: (s[0], s[0] + s[1]))


@settings(max_examples=200)
@given(st.lists(span, min_size=1, max_size=12), st.integers(1, 9))
def test_each_bin_gets_the_time_the_spans_union_covers_in_it(
    spans: list[tuple[int, int]], bins: int
) -> None:
    # Whole-number spans against a brute force over unit cells: a cell is covered if any
    # span holds it, and a bin takes the part of each covered cell inside it.
    edges = numpy.linspace(0.0, 80.0, bins + 1)
    covered_cells = {cell for start, end in spans for cell in range(start, end)}
    expected = [
        sum(max(0.0, min(cell + 1, high) - max(cell, low)) for cell in covered_cells)
        for low, high in itertools.pairwise(edges)
    ]
    got = _covered(sorted(spans), edges)
    assert got == pytest.approx(expected, abs=1e-9)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 9)), min_size=11, max_size=40))
def test_a_long_memory_curve_keeps_the_peak_of_every_pixel_column(
    steps: list[tuple[int, int]],
) -> None:
    # Drawn in 5 columns: more than 10 steps are pooled, each column to its highest.
    times, held = [], []
    now = 0
    for gap, value in steps:
        times.append(float(now))
        held.append(float(value))
        now += gap
    edges, most = _peaks(times, held, float(now), pixels=5)
    assert len(edges) == len(most) < len(times)
    for left, right, top in zip(edges[:-1], edges[1:], most[:-1], strict=True):
        # the steps in force at some time in [left, right): the one at left, those begun in it
        inside = [h for t, h in zip(times, held, strict=True) if left <= t < right]
        before = [h for t, h in zip(times, held, strict=True) if t <= left]
        assert top == max(inside + before[-1:])


def test_a_plot_of_many_ops_mixes_each_column_and_says_so(tmp_path: Path) -> None:
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    picture = tmp_path / "big.svg"
    result = runner.invoke(app, ["run", "-p", "2", "-m", "600", "--plot", str(picture)])
    assert result.exit_code == 0, result.stderr
    assert "1,200 ops on a row: each pixel column mixes the colours of what it held" in (
        picture.read_text()
    )
    # In 1F1B's steady state a device spends 1 ms in each forward and 2 in each backward. A
    # column is the blend of the two colours in the shares of its time (the phase of the
    # ops in a column varies), so most coloured pixels lie between blue and orange, and on
    # average they are a third blue.
    png = tmp_path / "big.png"
    assert runner.invoke(app, ["run", "-p", "2", "-m", "600", "--plot", str(png)]).exit_code == 0
    pixels = imread(png)[:, :, :3].reshape(-1, 3).astype(float)
    forward, backward = numpy.array(to_rgb("#4C72B0")), numpy.array(to_rgb("#DD8452"))
    coloured = pixels[pixels.max(axis=1) - pixels.min(axis=1) > 0.05]
    share = (backward[0] - coloured[:, 0]) / (backward[0] - forward[0])  # from the red channel
    blend = share[:, None] * forward + (1 - share[:, None]) * backward
    on_the_way = numpy.abs(blend - coloured).max(axis=1) < 0.03
    between = on_the_way & (share > 0.1) & (share < 0.9)
    assert between.sum() > 0.5 * len(coloured)
    assert share[on_the_way].mean() == pytest.approx(1 / 3, abs=0.03)
