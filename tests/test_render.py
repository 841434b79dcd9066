"""The Gantt chart and summary, rendered into fixed-width consoles."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from pipesim import Settings, simulate_step
from pipesim.cli import app
from pipesim.render import GanttChart, SummaryTable
from pipesim.render.gantt import chart_scale
from pipesim.render.style import ms
from tests.cli_runner import CliRunner
from tests.conftest import result_json, simulate_settings


def _render(renderable: object, width: int = 100, color: str | None = None) -> str:
    out = io.StringIO()
    console = Console(width=width, file=out, color_system=color)  # type: ignore[arg-type]
    console.print(renderable)
    return out.getvalue()


def _rows(text: str) -> dict[int, str]:
    rows = {}
    for line in text.splitlines():
        match = re.match(r"dev (\d+) +│(.*)", line)
        if match:
            rows[int(match.group(1))] = match.group(2)
    return rows


def test_idle_warmup_is_empty_and_ops_fill_their_time() -> None:
    report = simulate_settings(policy="1f1b", stages=4, microbatches=8)
    text = _render(GanttChart(report.trace), width=120)
    rows = _rows(text)
    assert sorted(rows) == [0, 1, 2, 3]
    per_ms = chart_scale(report.summary.makespan, 120 - 6 - 1 - 7)
    assert per_ms == int(per_ms)  # whole columns per ms at this width
    for device, row in rows.items():
        # device d waits d forwards (1 ms each) for the first activation: blank columns
        assert len(row) - len(row.lstrip(" ")) == device * per_ms
        assert "░" in row and "▓" in row  # forwards and backwards, drawn without color
    assert f"1 col = {1 / per_ms:.3f}".rstrip("0").rstrip(".") in text
    assert "0" in text.splitlines()[-2] and "30" in text.splitlines()[-2]  # time axis labels


def test_color_chart_uses_distinct_colors_for_forward_and_backward() -> None:
    report = simulate_settings(policy="gpipe", stages=2, microbatches=2)
    text = _render(GanttChart(report.trace), color="truecolor")
    assert "48;2;47;109;181" in text  # forward background
    assert "48;2;63;163;77" in text  # backward background


@given(p=st.integers(1, 12), m=st.integers(1, 150), width=st.integers(40, 200))
def test_rows_never_wrap(p: int, m: int, width: int) -> None:
    report = simulate_settings(policy="1f1b", stages=p, microbatches=m, forward=0.37)
    text = _render(GanttChart(report.trace), width=width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    assert len(_rows(text)) == p


@pytest.mark.parametrize("width", [80, 120])
def test_summary_table_has_every_device_and_the_closed_form(width: int) -> None:
    report = simulate_settings(policy="gpipe", stages=3, microbatches=4, backward=1)
    text = _render(SummaryTable(report), width=width)
    assert "bubble 33.3% measured" in text
    assert "closed form (p-1)/(m+p-1) = 33.3%" in text
    table_rows = [line.split("│")[0].strip() for line in text.splitlines() if "│" in line]
    assert table_rows == ["0", "1", "2", "all"]


def test_summary_explains_when_the_closed_form_does_not_apply() -> None:
    report = simulate_settings(policy="1f1b", stages=4, microbatches=4, forward=[1, 1, 1.5, 2])
    assert "does not apply (stages are uneven)" in _render(SummaryTable(report), width=160)


@pytest.mark.parametrize("width", [60, 80, 100, 200])
@pytest.mark.parametrize(("policy", "m"), [("1f1b", 8), ("zb-h1", 8), ("gpipe", 4)])
def test_without_color_labels_never_touch_and_every_op_keeps_its_glyph(
    width: int, policy: str, m: int
) -> None:
    # Read as a person would: a digit run is a microbatch label, and it always sits inside its
    # op, followed by that op's glyph; so reading a row's labels left to right gives the ops'
    # microbatches in the order the device ran them (the trace's order, not the chart's), for
    # every op wide enough to carry a label.
    report = simulate_settings(policy=policy, stages=4, microbatches=m)
    text = _render(GanttChart(report.trace), width=width)
    glyphs = "░▓▒"
    for device, row in _rows(text).items():
        body = row.rsplit(" ", 1)[0].rstrip()
        for match in re.finditer(r"\d+", body):
            assert match.end() < len(body) and body[match.end()] in glyphs, (width, row)
        labels = [int(label) for label in re.findall(r"\d+", body)]
        ran = [record.microbatch for record in report.trace.ops_by_device()[device]]
        if width >= 80:
            assert labels == ran, (width, row)
        else:
            assert set(labels) <= set(ran)
    assert max(len(line) for line in text.splitlines()) <= width


@pytest.mark.parametrize("width", [60, 80, 100])
def test_a_dense_chart_shows_every_kind_in_proportion(width: int) -> None:
    # ZB-V, p=8, m=32, F=1, B=2 (W=1): each device spends a third of its busy time in F, a
    # third in B and a third in W, with more ops than columns. Each kind must keep about a
    # third of each row's busy cells; a majority vote per column would erase W until the end.
    report = simulate_settings(policy="zb-v", stages=8, microbatches=32)
    rows = _rows(_render(GanttChart(report.trace), width=width))
    assert len(rows) == 8
    for row in rows.values():
        cells = row.rstrip().rsplit(" ", 1)[0]  # the bubble percentage aside
        counts = [cells.count(glyph) for glyph in "░▓▒"]
        busy = sum(counts)
        assert busy > 0
        for count in counts:
            assert abs(count - busy / 3) <= max(2, busy * 0.08), (cells, counts)


def test_the_legend_explains_only_what_the_chart_shows() -> None:
    dense = simulate_settings(policy="zb-v", stages=8, microbatches=32)
    text = " ".join(_render(GanttChart(dense.trace), width=80).split())
    assert "kinds and idle share cells by time" in text and "digits microbatch" not in text
    chunked = simulate_settings(policy="interleaved", stages=2, microbatches=2)
    mono = " ".join(_render(GanttChart(chunked.trace), width=100).split())
    color = " ".join(_render(GanttChart(chunked.trace), width=100, color="truecolor").split())
    assert "light = later chunk" not in mono  # no shades without color
    assert "light = later chunk" in color and "digits microbatch" in color


@pytest.mark.parametrize("color", [None, "truecolor"])
def test_the_legend_promises_microbatch_digits_only_where_an_op_shows_one(
    color: str | None,
) -> None:
    """At 80 columns zb-v's ops (p=4, m=8: half a ms each, a cell each) have no room for a
    digit beside their glyph or color; 1F1B's (2 and 4 cells) do."""

    def seen(text: str) -> tuple[str, list[str]]:
        """The text without its color codes, and each device's cells."""
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
        rows = [row[:-7] for row in _rows(plain).values()]
        assert len(rows) == 4
        return plain, rows

    zb_v = simulate_settings(policy="zb-v", stages=4, microbatches=8).trace
    narrow, rows = seen(_render(GanttChart(zb_v), width=80, color=color))
    assert not any(char.isdigit() for row in rows for char in row)
    assert "ops too narrow for microbatch digits" in narrow and "digits microbatch" not in narrow
    wide, rows = seen(
        _render(GanttChart(simulate_settings(stages=4, microbatches=8).trace), 80, color)
    )
    assert all(any(char.isdigit() for char in row) for row in rows)
    assert "digits microbatch" in wide and "too narrow" not in wide


def test_no_color_does_not_leak_into_saved_pictures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    picture = tmp_path / "chart.svg"
    result = CliRunner().invoke(app, ["run", "--svg", str(picture), "-f", "json"])
    assert result.exit_code == 0
    assert "#2f6db5" in picture.read_text()  # the forwards' color is in the file


def test_a_window_draws_part_of_a_long_run_at_full_resolution() -> None:
    args = ["run", "--policy", "zb-v", "-p", "8", "-m", "32", "--from", "40", "--to", "60"]
    result = CliRunner().invoke(app, [*args, "--devices", "0-2,7"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    rows = _rows(result.stdout)
    assert sorted(rows) == [0, 1, 2, 7]
    axis = next(line for line in result.stdout.splitlines() if line.rstrip().endswith(" ms"))
    assert axis.split()[0] == "40" and axis.split()[-2] == "60"
    # At full resolution microbatch labels come back: the whole run at 80 columns has none.
    assert any(re.search(r"[0-9]", row.rsplit(" ", 1)[0]) for row in rows.values())
    whole = CliRunner().invoke(app, args[:-4], env={"COLUMNS": "80"})
    assert not any(
        re.search(r"[0-9]", row.rsplit(" ", 1)[0]) for row in _rows(whole.stdout).values()
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--from", "20", "--to", "10"], "give 0 <= from < to"),
        (["--from", "500"], "the step ends at 33 ms"),
        (["--devices", "0-9"], "devices are 0-3"),
        (["--devices", "x"], "is not a device or a range"),
    ],
)
def test_a_bad_window_is_one_line(args: list[str], words: str) -> None:
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 2 and words in result.stderr


RUNS = {
    "zb-v p=8 m=32 (dense)": {"policy": "zb-v", "stages": 8, "microbatches": 32},
    "zb-h1 p=4 m=8 (sparse)": {"policy": "zb-h1", "stages": 4, "microbatches": 8},
    "1f1b p=8 m=64 (dense)": {"policy": "1f1b", "stages": 8, "microbatches": 64},
}


@pytest.mark.parametrize("width", [60, 80, 100, 200])
@pytest.mark.parametrize("name", sorted(RUNS))
def test_every_kind_a_device_runs_is_visible_at_any_width_without_color(
    name: str, width: int
) -> None:
    report = simulate_settings(**RUNS[name])
    rows = _rows(_render(GanttChart(report.trace), width=width))
    glyph = {"F": "░╱", "B": "▓█", "W": "▒╲"}  # a later chunk's glyph, or the first's
    for device, ops in enumerate(report.trace.ops_by_device()):
        cells = rows[device].rstrip().rsplit(" ", 1)[0]
        assert set(cells) <= set("░▓▒╱█╲· 0123456789"), cells
        for kind in {record.kind.name for record in ops}:
            assert set(glyph[kind]) & set(cells), (name, width, device, kind, cells)


@pytest.mark.parametrize("policy", ["interleaved", "zb-v", "dualpipe-v"])
def test_without_color_each_chunk_has_its_own_glyphs(policy: str) -> None:
    """A pipe shows no shades: a later chunk's ops are drawn ╱ █ ╲, the first's ░ ▓ ▒, and
    the legend says so. Each op wide enough is read at its middle cell."""
    report = simulate_settings(policy=policy, stages=4, microbatches=8)
    width = 240
    text = _render(GanttChart(report.trace), width=width)
    assert "╱╱ ██" in text and "later chunk" in text
    rows = _rows(text)
    scale = chart_scale(report.summary.makespan, width - len("dev 3 ") - 1 - 7)
    chunk_of = report.trace.problem.pipeline.chunk_of_stage
    first, later = {"F": "░", "B": "▓", "W": "▒"}, {"F": "╱", "B": "█", "W": "╲"}
    for device, ops in enumerate(report.trace.ops_by_device()):
        for record in ops:
            if (record.end - record.start) * scale < 3:
                continue
            cell = rows[device][int((record.start + record.end) / 2 * scale)]
            expected = (later if chunk_of[record.stage] else first)[record.kind.name]
            assert cell in expected + "0123456789", (policy, device, record, rows[device])


def test_the_two_node_example_reads_without_color_at_80_columns() -> None:
    result = CliRunner().invoke(
        app, ["run", "--config", "examples/two_nodes.toml"], env={"COLUMNS": "80"}
    )
    rows = _rows(result.stdout)
    assert len(rows) == 8
    for cells in rows.values():
        assert "░" in cells and "▓" in cells  # every device forwards and backwards
    legend = " ".join(result.stdout.split())
    assert "━ activation ═ gradient ┄ queued" in legend


_BACKGROUNDS = {"F": ("2f6db5", "4a8bd6"), "B": ("3fa34d", "6cc46f"), "W": ("d98a1e", "f0aa4a")}


def _rgb(color: str) -> str:
    return ";".join(str(int(color[i : i + 2], 16)) for i in (0, 2, 4))


@pytest.mark.parametrize("width", [60, 80, 100, 200])
@pytest.mark.parametrize("name", sorted(RUNS))
def test_every_kind_a_device_runs_is_visible_at_any_width_in_color(name: str, width: int) -> None:
    report = simulate_settings(**RUNS[name])
    text = _render(GanttChart(report.trace), width=width, color="truecolor")
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]
    for device, ops in enumerate(report.trace.ops_by_device()):
        row = text.splitlines()[
            plain.index(next(p for p in plain if p.startswith(f"dev {device} ")))
        ]
        for kind in {record.kind.name for record in ops}:
            shades = [f"48;2;{_rgb(color)}" for color in _BACKGROUNDS[kind]]
            assert any(shade in row for shade in shades), (name, width, device, kind)


@pytest.mark.parametrize(
    "config",
    [
        {"policy": "zb-v", "stages": 3, "microbatches": 6, "forward": (0.1, 0.7, 1 / 3)},
        {"policy": "interleaved", "stages": 4, "microbatches": 8, "chunks": 2,
         "bandwidth": 1e9, "activation_size": 4e6, "comm_latency": 0.3, "jitter": 0.2},
        {"policy": "dualpipe", "stages": 4, "microbatches": 8, "static_memory": 2e9,
         "activation_memory": 1e9, "memory_limit": 8e9, "blocking_comm": True,
         "comm_latency": 0.5},
    ],
)  # fmt: skip
def test_trace_file_lines_are_what_json_dumps_writes_for_each_event(
    config: dict[str, Any],
) -> None:
    # write_chrome_trace formats per-op events directly; trace_events is the reference.
    from pipesim.render.perfetto import trace_events, write_chrome_trace

    report = simulate_step(Settings(**config))
    out = io.StringIO()
    write_chrome_trace(report, out)
    lines = out.getvalue().splitlines()[1:-1]
    written = [line.rstrip(",") for line in lines]
    expected = [json.dumps(e, separators=(",", ":")) for e in trace_events(report)]
    assert written == expected
    assert json.loads(out.getvalue())["traceEvents"]


def test_a_trace_made_by_hand_gets_arrows_only_between_ops_it_holds() -> None:
    # A simulation gives whole steps, whose flows the writer reads per slot; a trace that
    # lacks ops is looked up op by op, as the reference does.
    import dataclasses

    from pipesim.render.perfetto import trace_events, write_chrome_trace
    from pipesim.simulator.trace import Trace

    report = simulate_step(Settings(policy="interleaved", stages=2, microbatches=4))
    whole = report.trace
    kept = [record for record in whole.ops if (record.stage + record.microbatch) % 3]
    partial = dataclasses.replace(
        report, trace=Trace(whole.policy, whole.problem, kept, whole.transfers)
    )
    out = io.StringIO()
    write_chrome_trace(partial, out)
    written = [line.rstrip(",") for line in out.getvalue().splitlines()[1:-1]]
    expected = [json.dumps(e, separators=(",", ":")) for e in trace_events(partial)]
    assert written == expected
    # Some slices that would send or receive in the whole step lost their partner here.
    outs = sum('"flow_out"' in line for line in written)
    assert 0 < outs < sum('"flow_out"' in e for e in _lines(report))


def _lines(report: Any) -> list[str]:
    from pipesim.render.perfetto import write_chrome_trace

    out = io.StringIO()
    write_chrome_trace(report, out)
    return out.getvalue().splitlines()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.sampled_from(["1f1b", "gpipe", "zb-h1", "interleaved", "zb-v"]),
    st.integers(2, 5),
    st.data(),
    st.sampled_from([0.0, 0.3, 1.7]),
    st.integers(60, 200),
)
def test_no_row_swallows_idle_time_or_stretches_work(
    policy: str, p: int, data: st.DataObject, latency: float, width: int
) -> None:
    # Each device's busy and blank cells agree with its timeline within one cell per op
    # boundary (rows with an op narrower than a cell: within one cell per kind, plus one).
    costs = st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]), min_size=p, max_size=p)
    report = simulate_settings(
        policy=policy, stages=p, microbatches=2 * p, forward=data.draw(costs),
        backward=[2 * c for c in data.draw(costs)], comm_latency=latency,
    )  # fmt: skip
    rows = _rows(_render(GanttChart(report.trace), width=width))
    scale = None
    for device, ops in enumerate(report.trace.ops_by_device()):
        cells = rows[device].rstrip().rsplit(" ", 1)[0]
        if scale is None:
            scale = len(cells) / report.trace.makespan
        busy_time = sum(record.end - record.start for record in ops) * scale
        busy_cells = sum(1 for cell in cells if cell != " ")
        crowded = any((record.end - record.start) * scale < 1 for record in ops)
        slack = 4 if crowded else len(ops) + 1
        assert abs(busy_cells - busy_time) <= slack, (policy, device, cells)


@pytest.mark.parametrize("width", [60, 80, 100])
@pytest.mark.parametrize(
    "args",
    [
        ["--model", "gpt3-175b", "--gpu", "a100-80gb", "-p", "8", "--global-batch-size", "512",
         "--data-parallel", "8", "--tensor-parallel", "8"],
        ["--policy", "zb-v", "-p", "4", "-m", "8", "--jitter", "0.1", "--runs", "20"],
        ["--policy", "interleaved", "-p", "8", "-m", "64", "-v", "2", "--comm-latency", "0.37"],
        ["--model", "llama3-70b", "--gpu", "h100", "-p", "4", "--tensor-parallel", "8",
         "--data-parallel", "2", "--global-batch-size", "64"],
    ],
    ids=["gpt3-175b", "zb-v runs", "interleaved", "llama3-70b"],
)  # fmt: skip
def test_the_run_summary_never_cuts_a_figure(args: list[str], width: int) -> None:
    # Too narrow for every column, the table drops the idle causes (the line under it lists
    # them) and says so, rather than print 1204... for 120460.
    result = CliRunner().invoke(app, ["run", *args], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    top = next(i for i, line in enumerate(lines) if "┃" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("times in ms"))
    table = lines[top:end]
    assert not any("…" in line for line in table), "\n".join(table)
    total = next(line for line in table if line.strip().startswith("all"))
    # Every column of the header has its figure, whole, in every row (none cropped away).
    columns = table[-1 - next(i for i, line in enumerate(reversed(table)) if "┃" in line)]
    for row in table[table.index(columns) :]:
        if "│" in row:
            cells = [cell.strip() for cell in row.split("│")]
            assert len(cells) == columns.count("┃") + 1 and all(cells), "\n".join(table)
    if "runs" not in " ".join(args):
        data = result_json(CliRunner().invoke(app, ["run", *args, "-f", "json"]).stdout)
        busy = sum(device["busy"] for device in data["devices"])
        assert ms(busy) in total.split()


@pytest.mark.parametrize("width", [60, 80, 100])
@pytest.mark.parametrize(
    "args",
    [
        ["compare", "-p", "4", "-m", "8"],
        ["sweep", "-m", "4,8,16", "--policies", "1f1b,zb-v,interleaved"],
        ["compare", "-p", "8", "-m", "16", "--runs", "20", "--jitter", "0.1",
         "--policies", "1f1b,interleaved,dualpipe-v,zb-v"],
    ],
    ids=["compare", "sweep", "compare runs"],
)  # fmt: skip
def test_study_tables_never_cut_a_figure(args: list[str], width: int) -> None:
    # Too narrow for every column, a table leaves columns out (and says which) rather than
    # print 27.… for 27.3%; every step time the JSON gives is there, whole.
    result = CliRunner().invoke(app, args, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not any("…" in line for line in lines), result.stdout
    header = next(line for line in lines if "┃" in line)
    rows = [line for line in lines if "│" in line]
    assert rows
    for row in rows:
        cells = [cell.strip() for cell in row.split("│")]
        assert len(cells) == header.count("┃") + 1, result.stdout
        assert all(cells[1:]) or "not run" in row, result.stdout
    data = result_json(CliRunner().invoke(app, [*args, "-f", "json"]).stdout)
    records = data if isinstance(data, list) else data["rows"]
    for record in records:
        step = record["makespan"]
        value = step["mean"] if isinstance(step, dict) else step
        assert ms(value) in " ".join(rows).split(), (ms(value), result.stdout)
    if width == 60:
        assert "left out at this width" in " ".join(result.stdout.split())


def test_time_left_is_the_average_pace_since_the_work_began() -> None:
    # 54 of 432 done after 10 s: 378 left at 5.4 per second is 70 s (it once said 1 s).
    from pipesim.render.progress import remaining_seconds

    assert remaining_seconds(10.0, 54, 432) == pytest.approx(70.0)
    assert remaining_seconds(10.0, 0, 432) is None
    assert remaining_seconds(10.0, 432, 432) == 0


@pytest.mark.parametrize("command", [["run", "--policy", "interleaved", "--comm-latency", "0.2"],
                                     ["compare"]])  # fmt: skip
def test_an_ascii_only_output_gets_an_ascii_chart_not_a_traceback(command: list[str]) -> None:
    """PYTHONIOENCODING=ascii (or LANG=C): the chart spells its glyphs in ASCII, a stray
    glyph elsewhere becomes '?', and the command succeeds (it raised UnicodeEncodeError)."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pipesim", *command, "-p", "4", "-m", "8"],
        capture_output=True, env={**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "100"},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-400:]
    text = done.stdout.decode("ascii")  # every byte is ASCII
    if command[0] == "run":
        rows = [line for line in text.splitlines() if line.startswith("dev ")]
        assert len(rows) == 4 and all(" |" in row for row in rows)
        assert "-F- forward" in text and "// ## later chunk" in text
        assert set("".join(row.split("|", 1)[1] for row in rows)) <= set("-=/#.' 0123456789%")


@pytest.mark.parametrize("width", [60, 80, 100])
@pytest.mark.parametrize("policy", ["interleaved", "1f1b", "zb-v"])
def test_in_color_two_labels_never_touch(policy: str, width: int) -> None:
    """m=8: every label is one digit, so two digits side by side are two ops' labels run
    together ("12" for 1 then 2), which a reader takes for twelve."""
    report = simulate_settings(policy=policy, stages=4, microbatches=8)
    out = io.StringIO()
    console = Console(width=width, file=out, color_system="truecolor", force_terminal=True)
    console.print(GanttChart(report.trace))
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    rows = _rows(plain)
    assert len(rows) == 4
    for row in rows.values():
        assert not re.search(r"\d\d", row.rsplit(" ", 1)[0]), row


def test_durations_read_alike_down_a_column() -> None:
    """Four significant digits from 1 ms on, fewer decimals as a value grows, no trailing
    zeros: a table's column does not mix 66.859 with 133.7."""
    shown = {
        0.0004: "0", -0.0001: "0", 0.1235: "0.123", 1.23456: "1.235", 12.5: "12.5",
        66.859: "66.86", 99.996: "100", 133.74: "133.7", 1000.4: "1000", 3935.412: "3935",
    }  # fmt: skip
    assert {value: ms(value) for value in shown} == shown
