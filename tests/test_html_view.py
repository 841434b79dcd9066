"""The interactive page, opened in a real headless browser (Debian's chromium): it loads
without a script error and draws every op; a page of 100,000 ops does too, and a measured run
(`--against`) gets rows of its own."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipesim.cli import app
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
# Every test here opens a browser: slow (pytest --slow, or CI, runs them).
pytestmark = [
    pytest.mark.skipif(BROWSER is None, reason="needs Debian's chromium"),
    pytest.mark.slow,
]


def _open(page: Path, fragment: str = "") -> str:
    """The page's DOM after its scripts ran (opened at `fragment`, such as "#tip=Y,T")."""
    assert BROWSER is not None
    done = subprocess.run(
        [
            BROWSER,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            f"file://{page}{fragment}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _status(dom: str) -> tuple[int, int, str]:
    status = re.search(r'<div id="status" data-ops="(\d+)" data-drawn="(\d+)"[^>]*>', dom)
    errors = re.search(r'<div id="errors">([^<]*)</div>', dom)
    assert status is not None and errors is not None
    return int(status.group(1)), int(status.group(2)), errors.group(1)


def test_the_page_loads_and_draws_every_op_with_the_summary(tmp_path: Path) -> None:
    page = tmp_path / "view.html"
    args = ["run", "--policy", "zb-v", "-p", "4", "-m", "8", "--comm-latency", "0.3"]
    result = runner.invoke(app, [*args, "--html", str(page), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    dom = _open(page)
    assert _status(dom) == (3 * 8 * 8, 3 * 8 * 8, "")  # 8 stages x 8 microbatches x F, B, W
    assert "192 ops, 96 transfers" in dom
    assert "makespan 29.5 ms" in dom  # the summary beside the chart
    # A tooltip says what the op waited for last, as the analysis finds it: device 1's first
    # op (6 px from the top, one 38 px band down, mid-row), hovered at its middle.
    from pipesim import Settings, simulate_step
    from pipesim.analysis.readiness import Readiness

    report = simulate_step(Settings(policy="zb-v", stages=4, microbatches=8, comm_latency=0.3))
    first = report.trace.ops_by_device()[1][0]
    release = Readiness(report.trace).last_input(first)
    assert release is not None and release.transfer is not None
    expected = (
        f"waited for: {release.message} of {release.producer.op}, ready at {release.time:g} ms"
        " (over a link)"
    )
    middle = (first.start + first.end) / 2
    hovered = _open(page, f"#tip=59,{middle}")
    tip = re.search(r'data-tip="([^"]*)"', hovered)
    assert tip is not None and tip.group(1).startswith(f"{first.op}  device 1")
    assert tip.group(1).endswith(expected), (tip.group(1), expected)


def test_a_page_of_100000_ops_loads_and_shows_them_all_in_few_rectangles(tmp_path: Path) -> None:
    """Every op is shown (drawn, or sharing a pixel with one drawn), and what is painted is
    bounded by the pixels, not the ops: at most two rectangles per pixel of each row."""
    page = tmp_path / "big.html"
    result = runner.invoke(app, ["run", "-p", "16", "-m", "3125", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    dom = _open(page)
    assert _status(dom) == (100_000, 100_000, "")
    rects = re.search(r'data-rects="(\d+)"', dom)
    assert rects is not None and int(rects.group(1)) <= 16 * 2 * 800
    # With 6,250 ops a row the whole step reads the row's samples, a pixel at a time, and says
    # so; zoomed in to 5 ms (a few ops a row) it draws the ops themselves again.
    sampled = re.search(r'data-sampled="(\d+)"', dom)
    assert sampled is not None and int(sampled.group(1)) >= 2048
    shown = re.search(r'<div id="status"[^>]*>([^<]*)', dom)
    assert shown is not None and "each pixel shows every kind of op" in shown.group(1)
    zoomed = _open(page, "#window=100,105")
    shown = re.search(r'<div id="status"[^>]*>([^<]*)', zoomed)
    assert shown is not None and "left edge" not in shown.group(1)
    assert re.search(r'data-sampled="0"', zoomed) and _status(zoomed)[2] == ""


def test_sampled_levels_read_off_finer_ones_show_every_message(tmp_path: Path) -> None:
    """The page samples its finest level while idle and reads each coarser one off the one
    below it (bin b of a level is bins 2b and 2b + 1 of the next): each must be what sampling
    the rows directly gives, ops and messages, on uneven times (a straggler, jitter). Messages
    of 0.1 ms, a few thousandths of a pixel at the whole step, still ink the lanes, and idle
    time in gaps narrower than a pixel makes a row paler."""
    page = tmp_path / "levels.html"
    args = ["run", "-p", "4", "-m", "8000", "--comm-latency", "0.1", "--straggler", "2:1.3"]
    result = runner.invoke(app, [*args, "--jitter", "0.2", "--html", str(page), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    dom = _open(page, "#levels&ink")
    status = re.search(r'<div id="status"([^>]*)>([^<]*)', dom)
    assert status is not None and _status(dom)[2] == ""
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', status.group(1)))
    # 16,000 ops a row: levels of 2,048 to 32,768 bins, the finest sampled, the others read
    assert attributes["levels"] == "1 1 1 1 1"
    # A level met before the idle work made it is sampled for the view alone: the same bins.
    assert attributes["windows"] == "1 1 1 1 1"
    # Every device sends through the whole step, bar the first and last few ms: a lane of
    # point samples would hold a message at about 1 pixel in 300.
    assert float(attributes["lane-ink"]) > 0.95
    assert "their colours blended when more than one" in status.group(2)
    # Device 2 (the straggler, 1.3x) computes all the time; the others idle for 23% of the
    # step in gaps far narrower than a pixel: their rows are drawn paler, 6/8 opaque.
    opacity = [float(value) for value in attributes["row-alpha"].split()]
    assert opacity[2] > 0.97 and all(0.70 < opacity[d] < 0.80 for d in (0, 1, 3)), opacity


def test_the_terminal_picture_is_still_there(tmp_path: Path) -> None:
    picture = tmp_path / "terminal.html"
    result = runner.invoke(app, ["run", "--save-terminal", str(picture), "-f", "json"])
    assert result.exit_code == 0
    assert "dev&#160;0" in picture.read_text() or "dev 0" in picture.read_text()


def test_zoomed_in_ops_never_paint_over_the_device_names(tmp_path: Path) -> None:
    # The page opens on 10 to 20 ms (#window=): ops that start before the view are cut at its
    # left edge, not drawn over "dev 0", and the legend names W only for a split backward.
    page = tmp_path / "view.html"
    assert runner.invoke(app, ["run", "-p", "4", "-m", "8", "--html", str(page)]).exit_code == 0
    status = re.search(
        r'data-drawn="(\d+)" data-label-ink="(\d+)"[^>]*>([^<]*)', _open(page, "#window=10,20&ink")
    )
    assert status is not None
    assert int(status.group(1)) < 64 and status.group(2) == "0"
    assert "showing 10 to 20 ms" in status.group(3)
    assert ">W" not in page.read_text()
    split = tmp_path / "zb.html"
    runner.invoke(app, ["run", "--policy", "zb-v", "-p", "4", "-m", "8", "--html", str(split)])
    assert "></span>W" in split.read_text()


def test_a_measured_run_is_drawn_under_each_device_with_its_own_tooltips(tmp_path: Path) -> None:
    # The 1F1B run recorded with torch.distributed.pipelining (tests/test_calibrate.py),
    # calibrated and replayed against itself: every measured op is drawn, in a row of its own
    # under its device's, and hovering it names it as measured.
    data = Path(__file__).parent / "data" / "torch_pipeline"
    traces = [str(data / f"1f1b_rank{rank}.json.gz") for rank in (0, 1)]
    config, order, page = tmp_path / "c.toml", tmp_path / "m.csv", tmp_path / "against.html"
    fitted = runner.invoke(app, ["calibrate", *traces, "-o", str(config), "--schedule-out",
                                 str(order)])  # fmt: skip
    assert fitted.exit_code == 0, fitted.stderr
    against = [item for path in traces for item in ("--against", path)]
    args = ["run", "--config", str(config), "--schedule", str(order), *against]
    result = runner.invoke(app, [*args, "--html", str(page), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    record = result_json(result.stdout)["against"]
    # Device 1's measured row: below its simulated row (30 px) and its messages (8 px), 6 px
    # from the top and one device band (76 px) down; its last op ends where the JSON says.
    end = record["devices"][1]["end_measured"]
    dom = _open(page, f"#tip=135,{end - 0.01}&ink")
    status = re.search(r'<div id="status"([^>]*)>([^<]*)', dom)
    assert status is not None and _status(dom)[2] == ""
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', status.group(1)))
    assert attributes["measured"] == attributes["measured-drawn"] == "16"  # 2 ranks x 4 x F, B
    assert attributes["label-ink"] == "0"
    assert attributes["tip"].startswith("measured B3@s1  device 1, stage 1, microbatch 3")
    # Times in a tooltip are read, not parsed: six significant digits at most.
    computed = re.search(r"held its rank ([0-9.]+) to ([0-9.]+) ms", attributes["tip"])
    assert computed is not None and computed.group(2) == f"{end:.6g}"
    words = " ".join(status.group(2).split())
    assert f"({record['error'] * 100:+.1f}%)" in words and "the measured run (--against)" in words


@pytest.mark.parametrize(
    ("args", "settings"),
    [
        # V placement: a device holds two stages, so some inputs stay on it; W has no message
        (
            ["--policy", "zb-v", "-p", "4", "-m", "8", "--comm-latency", "0.3"],
            {"policy": "zb-v", "stages": 4, "microbatches": 8, "comm_latency": 0.3},
        ),
        # uneven times and queueing links: messages wait on the link, ops on each other
        (
            ["--policy", "interleaved", "-p", "3", "-m", "6", "-v", "2", "--comm-latency",
             "0.4", "--jitter", "0.3", "--seed", "5"],
            {"policy": "interleaved", "stages": 3, "microbatches": 6, "chunks": 2,
             "comm_latency": 0.4, "jitter": 0.3, "seed": 5},
        ),
        # blocking sends: a device is held until its message arrives
        (
            ["--policy", "1f1b", "-p", "4", "-m", "5", "--comm-latency", "0.5",
             "--blocking-comm"],
            {"policy": "1f1b", "stages": 4, "microbatches": 5, "comm_latency": 0.5,
             "blocking_comm": True},
        ),
        # fused steps (DualPipeV's F with B): the analysis finds the waits; the page reads them
        (
            ["--policy", "dualpipe-v", "-p", "4", "-m", "8", "--comm-latency", "0.2"],
            {"policy": "dualpipe-v", "stages": 4, "microbatches": 8, "comm_latency": 0.2},
        ),
    ],
)  # fmt: skip
def test_each_op_waited_for_what_the_analysis_says(
    tmp_path: Path, args: list[str], settings: dict[str, object]
) -> None:
    """What a tooltip says an op waited for last is what the analysis finds (its readiness),
    for every op, whether the page finds it itself or is given it."""
    import json

    from pipesim import Settings, simulate_step
    from pipesim.analysis.readiness import Readiness

    page = tmp_path / "waits.html"
    result = runner.invoke(app, ["run", *args, "--html", str(page), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    trace = simulate_step(Settings(**settings)).trace  # type: ignore[arg-type]
    position = {
        key: at for at, key in enumerate(key for keys in trace.keys_by_device() for key in keys)
    }
    codes = {None: 0, "activation": 1, "gradient": 2}
    expected = [
        [-1, 0, 0, 0] if needed < 0 else
        [position[needed], codes[message], round(time, 6), int(crossed)]
        for needed, time, message, crossed in Readiness(trace).last_inputs(trace.ops)
    ]  # fmt: skip
    dom = _open(page, "#waits")
    assert _status(dom)[0] == len(trace.ops) and _status(dom)[2] == ""  # the same run, no error
    status = re.search(r'data-waits="([^"]*)"', dom)
    assert status is not None
    found = json.loads(status.group(1).replace("&quot;", '"'))
    assert found == expected
    assert sum(wait[3] for wait in expected) > 0  # some crossed a link
    assert ('"inputs":' in page.read_text()) == (settings["policy"] != "dualpipe-v")
