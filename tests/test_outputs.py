"""Outputs people use: the Perfetto trace, SVG/HTML files, sweeps and --explain."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipesim.cli import app
from pipesim.errors import ConfigError
from pipesim.problem.ops import message_target
from tests.cli_runner import CliRunner
from tests.conftest import result_json, simulate_settings

runner = CliRunner()


def _trace(tmp_path: Path, *args: str) -> tuple[dict[str, Any], Path]:
    path = tmp_path / "trace.json"
    result = runner.invoke(app, ["run", *args, "--trace", str(path), "-f", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(path.read_text()), path


def test_trace_has_one_slice_per_op_and_transfer_and_named_processes(tmp_path: Path) -> None:
    data, _ = _trace(tmp_path, "--policy", "zb-v", "-p", "3", "-m", "6", "--comm-latency", "0.2")
    events = data["traceEvents"]
    report = simulate_settings(policy="zb-v", stages=3, microbatches=6, comm_latency=0.2)
    slices = [e for e in events if e["ph"] == "X"]
    compute = [e for e in slices if e["tid"] == 0]
    comm = [e for e in slices if e["tid"] != 0 and e["cat"] != "queued"]
    assert len(compute) == len(report.trace.ops) == 3 * 6 * 6
    assert len(comm) == len(report.trace.transfers)
    names = {(e["pid"], e["args"]["name"]) for e in events if e.get("name") == "process_name"}
    assert names == {(0, "device 0"), (1, "device 1"), (2, "device 2")}
    assert {e["pid"] for e in events if e.get("name") == "process_sort_index"} == {0, 1, 2}
    first = min(compute, key=lambda e: (e["pid"], e["ts"]))
    assert first["args"] == {"stage": 0, "microbatch": 0, "kind": "F"}
    assert first["dur"] == pytest.approx(500.0)  # a 1 ms forward over two chunks, in µs
    counters = [e for e in events if e["ph"] == "C"]
    assert {e["pid"] for e in counters} == {0, 1, 2}
    assert max(e["args"]["held"] for e in counters) == report.summary.peak_activations


def test_link_tracks_never_overlap_and_show_queueing(tmp_path: Path) -> None:
    data, _ = _trace(tmp_path, "--config", "examples/two_nodes.toml")
    events = data["traceEvents"]
    slices = sorted(
        (e for e in events if e["ph"] == "X" and e["tid"] != 0),
        key=lambda e: (e["pid"], e["tid"], e["ts"]),
    )
    queued = [e for e in slices if e["cat"] == "queued"]
    assert queued  # the example's slow inter-node link makes messages queue
    for before, after in itertools.pairwise(slices):
        if (before["pid"], before["tid"]) == (after["pid"], after["tid"]):
            assert after["ts"] >= before["ts"] + before["dur"] - 1e-6, (before, after)
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert "compute" in names and "link 3->4" in names
    # A queued slice ends where its message starts, on the same track.
    starts = {(e["pid"], e["tid"], e["ts"]) for e in slices if e["cat"] != "queued"}
    assert all(
        (e["pid"], e["tid"], e["ts"] + e["dur"]) in starts
        or any(
            abs(s[2] - (e["ts"] + e["dur"])) < 1e-6 and s[:2] == (e["pid"], e["tid"])
            for s in starts
        )
        for e in queued
    )


def test_every_message_between_two_ops_gets_one_flow_arrow(tmp_path: Path) -> None:
    """Arrows are flow events v2 on the op slices; read them as Perfetto's JSON importer does
    (in time order, a slice with flow_in ends its flow's arrow, one with flow_out starts the
    next) and require one arrow per message, from its producer to its consumer."""
    data, _ = _trace(
        tmp_path, "--policy", "interleaved", "-p", "4", "-m", "8", "--comm-latency", "0.1"
    )
    slices = [e for e in data["traceEvents"] if e["ph"] == "X" and e["tid"] == 0]
    assert not [e for e in data["traceEvents"] if e["ph"] in "sf"]  # no v1 flow events
    open_flows: dict[int, str] = {}
    arrows: list[tuple[str, str]] = []
    for event in sorted(slices, key=lambda e: e["ts"]):
        if "bind_id" not in event:
            continue
        assert event.get("flow_in") or event.get("flow_out"), event
        if event.get("flow_in"):
            arrows.append((open_flows.pop(event["bind_id"]), event["name"]))
        if event.get("flow_out"):
            assert event["bind_id"] not in open_flows
            open_flows[event["bind_id"]] = event["name"]
    assert open_flows == {}
    report = simulate_settings(policy="interleaved", stages=4, microbatches=8, comm_latency=0.1)
    num_stages = report.trace.problem.pipeline.num_stages
    expected = []
    for record in report.trace.ops:
        target = message_target(record.op, num_stages)
        if target is not None:
            kind, mb = record.kind.name, record.microbatch
            expected.append((f"{kind}{mb} s{record.stage}", f"{kind}{mb} s{target}"))
    assert len(expected) == 2 * 8 * (num_stages - 1)
    assert sorted(arrows) == sorted(expected)


def test_validate_writes_a_trace_too(tmp_path: Path) -> None:
    schedule = tmp_path / "s.csv"
    schedule.write_text("0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n")
    trace = tmp_path / "t.json"
    result = runner.invoke(app, ["validate", str(schedule), "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    assert len([e for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"]) == 8


@pytest.mark.parametrize("suffix", [".svg", ".html"])
def test_terminal_pictures_are_written_and_stable(tmp_path: Path, suffix: str) -> None:
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    for path in (first, second):
        flag = "--svg" if suffix == ".svg" else "--save-terminal"
        result = runner.invoke(app, ["run", "-p", "4", "-m", "8", flag, str(path), "-f", "json"])
        assert result.exit_code == 0, result.output
    text = first.read_text()
    assert text == second.read_text()
    assert "dev&#160;0" in text or "dev 0" in text
    assert "27.3%" in text


def test_svg_width_sets_the_layout(tmp_path: Path) -> None:
    narrow, wide = tmp_path / "n.svg", tmp_path / "w.svg"
    runner.invoke(app, ["run", "--svg", str(narrow), "--width", "80", "-f", "json"])
    runner.invoke(app, ["run", "--svg", str(wide), "--width", "160", "-f", "json"])
    assert narrow.read_text() != wide.read_text()
    bad = runner.invoke(app, ["run", "--svg", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "the file name must end in .svg" in bad.stderr


def test_sweep_rows_match_the_closed_form_for_1f1b() -> None:
    values = [1, 2, 4, 8, 16, 32, 64]
    result = runner.invoke(
        app,
        [
            "sweep",
            "--policy",
            "1f1b",
            "-p",
            "4",
            "--microbatches",
            ",".join(map(str, values)),
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no progress bar around machine output
    record = result_json(result.output, "sweep")
    envelope = json.loads(result.output)
    assert envelope["options"]["setting"] == "microbatches"
    assert envelope["options"]["values"] == values
    assert envelope["settings"] == {"stages": 4, "overlap_cost": 1, "blocking_comm": False}
    rows = record["rows"]
    assert [row["microbatches"] for row in rows] == values
    for row in rows:
        m, p = row["microbatches"], row["stages"]
        assert row["policy"] == "1f1b"
        assert row["bubble_fraction"] == pytest.approx((p - 1) / (m + p - 1))
        assert row["closed_form_bubble_fraction"] == pytest.approx(row["bubble_fraction"])
        assert row["makespan"] == pytest.approx((m + p - 1) * 3.0)


def test_sweep_stages_and_policies_as_csv() -> None:
    result = runner.invoke(
        app, ["sweep", "--policies", "gpipe,zb-h1", "--stages", "2,4,8", "-m", "16", "-f", "csv"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(row["stages"], row["policy"]) for row in rows] == [
        ("2", "gpipe"),
        ("2", "zb-h1"),
        ("4", "gpipe"),
        ("4", "zb-h1"),
        ("8", "gpipe"),
        ("8", "zb-h1"),
    ]
    for row in rows:
        assert float(row["bubble_fraction"]) < 1


def test_sweep_text_has_a_bar_per_row() -> None:
    result = runner.invoke(
        app, ["sweep", "-m", "2,8", "--comm-latency", "0.5"], env={"COLUMNS": "120"}
    )
    assert result.exit_code == 0, result.output
    bars = [line for line in result.output.splitlines() if "█" in line]
    assert len(bars) == 2
    assert bars[0].count("█") > bars[1].count("█")  # fewer microbatches, bigger bubble


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "2,4", "-p", "2,4"], "got --stages, --microbatches"),
        (["-m", "8"], "got none"),
        (["-m", "2,x"], "microbatches: 'x' is not a whole number"),
        (["-m", "2,4", "--policy", "nope"], "unknown policy 'nope'"),
    ],
)
def test_sweep_bad_input(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["sweep", *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_sweep_reports_constraint_rows() -> None:
    result = runner.invoke(
        app, ["sweep", "--policy", "dualpipe-v", "-p", "4", "-m", "4,8", "-f", "json"]
    )
    rows = result_json(result.output)["rows"]
    assert rows[0]["error"] == "dualpipe-v needs m >= 2p microbatches (m=4, p=4)"
    assert rows[1]["error"] is None


def test_explain_says_where_the_bubble_comes_from_and_what_would_change_it() -> None:
    result = runner.invoke(app, ["run", "-p", "4", "-m", "8", "--explain"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Where: the devices are idle 36 ms in all" in out
    assert "pipeline fill 16.7%, drain 33.3%" in out
    assert "(p-1)/(m+p-1) predicts 27.3%" in out
    assert "with m=16 instead of 8 the bubble goes from 27.3% to 15.8%" in out
    zb_v = simulate_settings(policy="zb-v", stages=4, microbatches=8).summary.makespan
    assert f"Another schedule: zb-v would take {zb_v:g} ms" in out
    assert "Memory trade-off" in out


def test_explain_in_json_gives_its_sentences_and_figures() -> None:
    # --explain with --format json was once dropped without a word.
    result = runner.invoke(
        app, ["run", "-p", "4", "-m", "8", "--comm-latency", "0.5", "--explain", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    explanation = result_json(result.stdout)["explanation"]
    assert explanation["sentences"][0].startswith("Where: the devices are idle")
    doubled = simulate_settings(stages=4, microbatches=16, comm_latency=0.5).summary
    assert explanation["doubled_microbatches"]["microbatches"] == 16
    assert explanation["doubled_microbatches"]["makespan"] == doubled.makespan
    faster = simulate_settings(stages=4, microbatches=8, comm_latency=0.25).summary
    assert explanation["faster_links"]["makespan"] == faster.makespan
    zb_v = simulate_settings(policy="zb-v", stages=4, microbatches=8, comm_latency=0.5)
    row = next(r for r in explanation["other_policies"] if r["policy"] == "zb-v")
    assert row["makespan"] == zb_v.summary.makespan


def test_explain_in_json_with_runs_gives_what_each_source_adds() -> None:
    result = runner.invoke(
        app,
        ["run", "-p", "4", "-m", "8", "--runs", "20", "--jitter", "0.1", "--explain", "-f", "json"],
    )
    assert result.exit_code == 0, result.output
    explanation = result_json(result.stdout)["explanation"]
    assert explanation["sentences"][0].startswith("Variability: the p95 step time")
    assert explanation["deterministic_makespan"] == 33.0  # 1F1B p=4 m=8: (m+p-1)(F+B)
    assert explanation["p95_makespan"] > 33.0
    assert explanation["p95_makespan_without"] == {"jitter": 33.0}


@pytest.mark.parametrize(
    ("args", "note"),
    [
        (["run", "--seed", "3"], "--seed picks the draws of --jitter"),
        (["sweep", "-m", "2,4", "--seed", "3"], "--seed picks the draws of --jitter"),
        (["run", "--runs", "5"], "--runs 5: with no --jitter"),
        (["compare", "--runs", "5"], "--runs 5: with no --jitter"),
        (["run", "--workers", "2"], "--workers spreads the runs of --runs"),
        (["compare", "--dask-scheduler", "tcp://nowhere:1"], "--dask-scheduler spreads the runs"),
        (["run", "--link-jitter", "0.1"], "--link-jitter scales message times, but every message"),
        (["compare", "--slow-link", "0-1:2"], "--slow-link scales message times, but every"),
        (["optimize", "--jitter", "0.1"], "optimize solves for the mean costs"),
    ],
)
def test_flags_that_change_nothing_here_say_so(args: list[str], note: str) -> None:
    result = runner.invoke(app, [*args, "-p", "2", "-m", "4"] if args[0] != "sweep" else args)
    assert result.exit_code == 0, result.output
    assert note in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--seed", "3", "--jitter", "0.1"],
        ["run", "--runs", "3", "--straggler", "1:2:0.5", "--workers", "2"],
        ["run", "--link-jitter", "0.1", "--comm-latency", "0.2", "--slow-link", "0-1:2"],
        ["compare", "--runs", "3", "--jitter", "0.1", "--workers", "2"],
    ],
)
def test_flags_that_matter_get_no_note(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "-p", "2", "-m", "4"])
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "note"),
    [
        (["--width", "80"], "--width sets the columns of --save-terminal / --svg"),
        (["-f", "json", "--from", "5", "--devices", "0-1"], "--from/--devices draw the terminal"),
    ],
)
def test_chart_flags_that_change_nothing_say_so(flags: list[str], note: str) -> None:
    result = runner.invoke(app, ["run", "-p", "4", "-m", "8", *flags])
    assert result.exit_code == 0, result.output
    assert note in result.stderr


def test_explain_names_the_links_when_they_bound_the_step() -> None:
    result = runner.invoke(
        app, ["run", "--config", "examples/two_nodes.toml", "--explain"], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    match = re.search(
        r"Critical path: of the ([\d.]+) ms critical path, ([\d.]+) ms is computing and "
        r"([\d.]+) ms is messages on links",
        text,
    )
    assert match is not None
    makespan, compute, links = (float(group) for group in match.groups())
    assert compute + links == pytest.approx(makespan, abs=0.01)
    assert links > makespan / 2  # the example is built to be communication-bound
    faster = re.search(r"twice the bandwidth\) the step would take ([\d.]+) ms", text)
    assert faster is not None and float(faster.group(1)) < makespan


def test_the_interactive_page_is_the_same_for_the_same_inputs(tmp_path: Path) -> None:
    pages = [tmp_path / "a.html", tmp_path / "b.html"]
    for page in pages:
        result = runner.invoke(
            app, ["run", "-p", "4", "-m", "8", "--html", str(page), "-f", "json"]
        )
        assert result.exit_code == 0, result.output
    text = pages[0].read_text()
    assert text == pages[1].read_text()
    assert "<canvas" in text and "makespan 33 ms" in text and "http" not in text.lower()


def test_sweep_prints_sizes_and_rates_with_their_units() -> None:
    result = runner.invoke(
        app,
        ["sweep", "--activation-size", "16MB,64MB", "--bandwidth", "25GB/s"],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.stderr
    assert "16 MB" in result.stdout and "64 MB" in result.stdout
    rates = runner.invoke(
        app, ["sweep", "--bandwidth", "10GB/s,50GB/s", "--activation-size", "16MB"],
        env={"COLUMNS": "120"},
    )  # fmt: skip
    assert "10 GB/s" in rates.stdout and "50 GB/s" in rates.stdout


@pytest.mark.parametrize("width", [60, 80, 100])
def test_the_sweep_bar_gives_way_before_any_number_is_cut(width: int) -> None:
    result = runner.invoke(
        app, ["sweep", "-m", "4,8,16", "--policies", "1f1b,zb-h1"], env={"COLUMNS": str(width)}
    )
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "│" in line]
    assert len(lines) == 6
    for line in lines:
        assert "…" not in line.split("│", 2)[2], line  # no figure is cut
    assert "42.9%" in result.stdout and "11.1%" in result.stdout
    # the efficiency shows, or the line under the table says it was left out
    left_out = next((line for line in result.stdout.splitlines() if "left out" in line), "")
    assert ("57.1%" in result.stdout) != ("efficiency" in left_out)
    assert ("█" in result.stdout) == (width >= 80)


def test_total_costs_keep_the_model_fixed_while_p_changes() -> None:
    # 8 ms forward and 16 ms backward for the whole model, m=16: 1F1B takes
    # (m+p-1) x (8+16)/p ms; at p = 2, 4, 8 that is 204, 114 and 69 ms.
    result = runner.invoke(
        app,
        ["sweep", "-p", "2,4,8", "--total-forward", "8", "--total-backward", "16", "-m", "16",
         "-f", "json"],
    )  # fmt: skip
    assert [row["makespan"] for row in result_json(result.stdout)["rows"]] == [204, 114, 69]
    both = runner.invoke(app, ["run", "--total-forward", "8", "--forward", "1"])
    assert both.exit_code == 2 and "total_forward replaces --forward" in both.stderr


def test_latency_alone_names_no_busiest_link() -> None:
    # With latency and no bandwidth a message occupies no link: "the busiest link carries a
    # message 0.0% of the time" was printed once.
    result = runner.invoke(
        app, ["run", "-p", "4", "-m", "4", "--comm-latency", "2"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "waiting on links directly" in result.output
    assert "busiest link" not in result.output
    sized = runner.invoke(
        app,
        ["run", "-p", "4", "-m", "4", "--activation-size", "2e9", "--bandwidth", "1e12"],
        env={"COLUMNS": "300"},
    )
    assert "the busiest link, " in sized.output


@pytest.mark.parametrize(
    ("policy", "flags"),
    [("1f1b", ["--jitter", "0.1"]), ("zb-auto", ["--straggler", "1:2", "--seed", "3"])],
)
def test_export_says_variability_leaves_a_fixed_order_alone(
    tmp_path: Path, policy: str, flags: list[str]
) -> None:
    shape = ["--policy", policy, "-p", "2", "-m", "4"]
    varied, plain = tmp_path / "varied.csv", tmp_path / "plain.csv"
    result = runner.invoke(app, ["export", *shape, *flags, "-o", str(varied)])
    assert result.exit_code == 0, result.output
    assert "a run's times, not this policy's fixed order" in result.stderr
    assert runner.invoke(app, ["export", *shape, "-o", str(plain)]).exit_code == 0
    assert varied.read_bytes() == plain.read_bytes()  # the note's claim


def test_a_command_that_fails_says_only_its_error() -> None:
    # --seed alone would be noted; the bad input is what the user reads, on one line.
    result = runner.invoke(app, ["run", "--seed", "3", "--inter-node-bandwidth", "1GB/s"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "pipesim: error: inter_node_bandwidth given without devices_per_node: all devices "
        "are in one node"
    ]


def test_a_runs_files_are_written_together_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plot fails after the trace and the page were rendered: neither is written, and the
    # file the user already had at the trace's path is left as it was.
    pytest.importorskip("matplotlib")
    import pipesim.render.plots

    def broken(*args: object) -> bytes:
        raise ConfigError("the plot could not be drawn")

    monkeypatch.setattr(pipesim.render.plots, "timeline_plot", broken)
    trace, page, plot = tmp_path / "t.json", tmp_path / "p.html", tmp_path / "plot.png"
    trace.write_text("mine")
    args = ["run", "-p", "2", "-m", "2", "--trace", str(trace), "--html", str(page)]
    result = runner.invoke(app, [*args, "--plot", str(plot)])
    assert result.exit_code == 2
    assert "the plot could not be drawn" in result.stderr
    assert trace.read_text() == "mine"
    assert not page.exists() and not plot.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["t.json"]


@pytest.mark.parametrize("command", ["run", "compare", "sweep", "plan", "validate"])
def test_every_file_option_comes_from_the_output_registry(command: str) -> None:
    from pipesim.render.outputs import OUTPUTS

    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    flags = {output.flag for output in OUTPUTS}
    shown = {flag for flag in flags if f" {flag} " in result.stdout}
    expected = {
        "run": flags,
        "compare": {"--plot"},
        "sweep": {"--plot"},
        "plan": {"--plot"},
        "validate": {"--trace"},
    }[command]
    assert shown == expected
    if "--plot" in expected:  # the extra to install, not eaten as markup
        assert "pipesim[plot]" in result.stdout


def test_a_weight_for_a_policy_that_never_splits_the_backward_says_so() -> None:
    plain = runner.invoke(app, ["run", "--policy", "1f1b", "-p", "4", "-m", "8", "-f", "json"])
    weighted = runner.invoke(
        app, ["run", "--policy", "1f1b", "-p", "4", "-m", "8", "--weight", "0.5", "-f", "json"]
    )
    assert weighted.exit_code == 0
    assert "--weight changes nothing: 1f1b runs each backward whole" in weighted.stderr
    assert result_json(weighted.stdout)["makespan"] == result_json(plain.stdout)["makespan"]
    split = runner.invoke(
        app, ["run", "--policy", "zb-h1", "-p", "4", "-m", "8", "--weight", "0.5"]
    )
    assert "--weight" not in split.stderr


def test_saved_pictures_load_nothing_from_the_network(tmp_path: Path) -> None:
    # rich's SVG once fetched Fira Code from a CDN: four requests to open a local file.
    import re

    picture = tmp_path / "run.svg"
    assert runner.invoke(app, ["run", "--svg", str(picture)]).exit_code == 0
    for text in (picture.read_text(), (Path(__file__).parent.parent / "docs/1f1b.svg").read_text()):
        assert "@font-face" not in text
        external = [url for url in re.findall(r"url\(([^)]*)\)", text) if not url.startswith("#")]
        assert external == []
        assert "monospace" in text


def test_the_plot_draws_messages_as_one_collection_per_link_and_kind() -> None:
    """One artist per message made --plot superlinear (16k ops with messages took 50 s):
    queued spans and carried messages are a collection per sending device (and kind)."""
    pytest.importorskip("matplotlib")
    from matplotlib import pyplot

    from pipesim.render.plots import _draw_timeline

    report = simulate_settings(
        policy="1f1b", stages=4, microbatches=64, comm_latency=0.3, activation_size=5e7,
        gradient_size=5e7, bandwidth=1e11,
    )  # fmt: skip
    assert len(report.trace.transfers) == 2 * 3 * 64
    figure, axes = pyplot.subplots()
    try:
        _draw_timeline(axes, report, "title", report.summary.makespan)
        # ops: 4 devices x F, B (one chunk, no pairs); messages: 3 senders of each kind (F
        # from devices 0-2, B from 1-3); queued spans: at most one collection per sender (4)
        assert len(axes.collections) <= 4 * 2 + 2 * 3 + 4
        drawn = sum(len(collection.get_paths()) for collection in axes.collections)
        assert drawn >= len(report.trace.ops) + len(report.trace.transfers)
    finally:
        pyplot.close(figure)


def test_the_why_line_and_explain_give_one_diagnosis() -> None:
    """A straggler is named by both; for plain 1F1B the why line splits the idle time as
    --explain's Where does (p=4, m=8: 18 ms of 36 waiting between ops, 50%)."""
    straggled = runner.invoke(
        app,
        ["run", "-p", "4", "-m", "8", "--straggler", "3:1.3", "--explain", "-f", "json"],
    )
    assert straggled.exit_code == 0, straggled.stderr
    sentences = result_json(straggled.stdout)["explanation"]["sentences"]
    pace = "device 3 straggles (1.3x slower): it is the busiest"
    assert any(sentence.startswith(f"Pace: {pace}") for sentence in sentences)
    text = runner.invoke(
        app, ["run", "-p", "4", "-m", "8", "--straggler", "3:1.3"], env={"COLUMNS": "400"}
    )
    assert pace in text.stdout.split("why: ")[1]

    plain = runner.invoke(app, ["run", "-p", "4", "-m", "8", "--explain"], env={"COLUMNS": "400"})
    assert plain.exit_code == 0, plain.stderr
    why = plain.stdout.split("why: ")[1]
    assert "50.0% comes before a device's first op or after its last, and 50.0% in between" in why
    assert "waiting for inputs still being computed 50.0%" in plain.stdout
