"""Jitter, stragglers, slow links and Monte Carlo: exact where they should change nothing,
bounded where a closed argument exists, statistically right, and reproducible by seed."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim import (
    ConfigError,
    PolicyError,
    Settings,
    check_trace,
    registered_policies,
    simulate_step,
)
from pipesim.cli import app
from pipesim.problem.variability import Variability
from pipesim.settings.values import Straggler
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()


def _json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "-f", "json"])
    assert result.exit_code == 0, result.stderr
    loaded = result_json(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


def test_no_jitter_and_no_straggler_is_the_deterministic_run_exactly() -> None:
    plain = runner.invoke(app, ["run", "--policy", "zb-v", "-p", "4", "-m", "8", "-f", "json"])
    quiet = runner.invoke(
        app,
        [
            "run",
            "--policy",
            "zb-v",
            "-p",
            "4",
            "-m",
            "8",
            "--jitter",
            "0",
            "--seed",
            "9",
            "-f",
            "json",
        ],
    )
    assert result_json(plain.stdout) == result_json(quiet.stdout)
    # A straggler of factor 1, or one that is never slow, changes no time either.
    for straggler in ("2:1", "2:3:0"):
        varied = _json("run", "--policy", "zb-v", "-p", "4", "-m", "8", "--straggler", straggler)
        assert varied["makespan"] == result_json(plain.stdout)["makespan"]
        assert varied["timeline"] == result_json(plain.stdout)["timeline"]


def test_a_straggler_stretches_the_step_at_least_to_its_own_work() -> None:
    # Balanced 1F1B, p=4, m=8, F=1, B=2: device 2 at factor 1.5 does 8 x 3 x 1.5 = 36 ms of work.
    slow = _json("run", "-p", "4", "-m", "8", "--straggler", "2:1.5")
    assert slow["makespan"] >= 36.0
    assert slow["devices"][2]["busy"] == pytest.approx(36.0)
    assert slow["closed_form"]["bubble_fraction"] is None  # the textbook assumes equal ops


def test_draws_have_the_mean_and_the_cv_asked_for() -> None:
    # 120,000 draws with CV 0.3: the sample mean's standard error is 0.3/sqrt(n) = 0.00087, so
    # 0.005 is more than 5 standard errors; the seed is fixed, so this never flakes.
    scales = Variability(jitter=0.3, seed=7).op_scales(tuple(range(4)) * 1, 10_000)
    assert len(scales) == 120_000
    assert statistics.fmean(scales) == pytest.approx(1.0, abs=0.005)
    assert statistics.pstdev(scales) == pytest.approx(0.3, abs=0.01)
    assert min(scales) > 0


def test_an_intermittent_straggler_is_slow_on_about_its_share_of_ops() -> None:
    scales = Variability(stragglers=(Straggler(1, 2.0, 0.25),), seed=3).op_scales((0, 1), 20_000)
    on_device_1 = scales[3 * 20_000 :]
    share = sum(1 for scale in on_device_1 if scale == 2.0) / len(on_device_1)
    assert share == pytest.approx(0.25, abs=0.01)  # 60,000 draws: standard error 0.0018
    assert set(scales[: 3 * 20_000]) == {1.0}


def test_a_slow_link_takes_factor_times_as_long() -> None:
    data = _json("run", "-p", "4", "-m", "2", "--comm-latency", "0.5", "--slow-link", "1-2:3")
    times = {(t["src"], t["dst"]): t["end"] - t["start"] for t in data["transfers"]}
    assert times[(1, 2)] == pytest.approx(1.5)
    assert times[(0, 1)] == pytest.approx(0.5) and times[(2, 1)] == pytest.approx(0.5)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.sampled_from([policy.name for policy in registered_policies()]),
    st.integers(2, 4),
    st.integers(1, 6),
    st.floats(0, 1),
    st.floats(0, 1),
    st.sampled_from([0.0, 0.3]),
    st.integers(0, 1000),
)
def test_every_jittered_timeline_passes_the_checker(
    policy: str, p: int, m: int, cv: float, link_cv: float, latency: float, seed: int
) -> None:
    chunked = policy in ("interleaved", "interleaved-zb")
    try:
        report = simulate_step(
            Settings(
                policy=policy,
                stages=p,
                microbatches=m * p if chunked else m,
                jitter=cv,
                link_jitter=link_cv,
                comm_latency=latency,
                seed=seed,
                stragglers=(Straggler(p - 1, 1.5, 0.5),),
            )
        )
    except PolicyError:
        return
    assert check_trace(report.trace) == []


def test_monte_carlo_is_reproducible_and_does_not_depend_on_the_workers() -> None:
    args = ["run", "--policy", "1f1b", "-p", "4", "-m", "8", "--jitter", "0.2", "--seed", "5"]
    one = runner.invoke(app, [*args, "--runs", "20", "--workers", "1", "-f", "json"])
    two = runner.invoke(app, [*args, "--runs", "20", "--workers", "2", "-f", "json"])
    assert one.exit_code == two.exit_code == 0 and one.stdout == two.stdout
    data = result_json(one.stdout)
    makespans = data["makespans"]
    assert len(makespans) == 20 and len(set(makespans)) > 1
    assert data["makespan"]["max"] == max(makespans)
    assert data["makespan"]["mean"] == pytest.approx(statistics.fmean(makespans))
    ordered = sorted(makespans)
    assert data["makespan"]["p50"] == pytest.approx((ordered[9] + ordered[10]) / 2)
    # The median run, re-run alone with its seed, is the same step.
    alone = _json(*args[:-1], str(data["median_seed"]))
    assert alone["makespan"] == data["median_run"]["makespan"]
    assert alone["makespan"] in makespans


def test_compare_runs_names_the_robust_policy() -> None:
    args = ["compare", "-p", "4", "-m", "8", "--jitter", "0.1", "--straggler", "3:1.3"]
    result = runner.invoke(app, [*args, "--runs", "10", "--policies", "1f1b,zb-h1,gpipe"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "ranked by mean" in text and ("robust:" in text or "at p95:" in text)
    records = result_json(
        runner.invoke(app, [*args, "--runs", "10", "--policies", "1f1b,gpipe", "-f", "json"]).stdout
    )
    assert [r["policy"] for r in records] == ["1f1b", "gpipe"]
    assert all(math.isfinite(r["makespan"]["p95"]) for r in records)


def test_sweep_varies_the_jitter() -> None:
    result = runner.invoke(app, ["sweep", "--jitter", "0,0.5", "-p", "4", "-m", "8", "-f", "json"])
    rows = result_json(result.stdout)["rows"]
    assert [row["value"] for row in rows] == [0, 0.5]
    assert rows[1]["makespan"] != rows[0]["makespan"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--jitter", "-0.1"], "jitter must be a coefficient of variation in [0, 10]"),
        (["--jitter", "nan"], "jitter must be a coefficient of variation"),
        (["--link-jitter", "inf"], "link_jitter must be a coefficient of variation"),
        (["--straggler", "1:0"], "the factor must be > 0"),
        (["--straggler", "1:-2"], "the factor must be > 0"),
        (["--straggler", "9:2"], "there is no device 9 (p=4, devices 0-3)"),
        (["--straggler", "1:2:1.5"], "the probability must be in [0, 1]"),
        (["--straggler", "one:2"], "is not DEVICE:FACTOR"),
        (["--slow-link", "0-7:2"], "there is no device 7"),
        (["--slow-link", "1-1:2"], "joins two different devices"),
        (["--slow-link", "1:2"], "is not SRC-DST:FACTOR"),
        (["--runs", "0"], "--runs"),
        (["--seed", "-1"], "is not a whole number in [0, 2^31)"),
    ],
)
def test_bad_variability_is_one_line_exit_2(args: list[str], words: str) -> None:
    result = runner.invoke(app, ["run", "-p", "4", *args])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr


def test_explain_says_how_much_each_source_adds_to_the_p95() -> None:
    # With a straggler as the only source, removing it gives back the deterministic run.
    args = ["run", "-p", "4", "-m", "8", "--straggler", "2:1.5", "--runs", "5", "--explain"]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    found = re.search(r"the p95 step time, ([\d.]+) ms, is ([\d.]+) ms over the 33 ms", text)
    assert found is not None
    p95, extra = float(found.group(1)), float(found.group(2))
    assert p95 - 33 == pytest.approx(extra) and p95 >= 36  # the slow device's own work
    assert f"without the stragglers it would be 33 ms ({found.group(2)} ms less)" in text


def test_sweep_varies_a_stragglers_factor() -> None:
    result = runner.invoke(
        app, ["sweep", "--straggler", "3:1,3:1.5", "-p", "4", "-m", "8", "-f", "json"]
    )
    rows = result_json(result.stdout)["rows"]
    assert [row["value"] for row in rows] == ["3:1", "3:1.5"]
    # Balanced 1F1B, p=4, m=8, F=1, B=2: the slow last device does 8 x 3 x 1.5 = 36 ms.
    assert rows[0]["makespan"] == 33 and rows[1]["makespan"] >= 36


_BAD_STRAGGLERS = ["-1:2", "-2:3", "1:-2", "1:0", "1:2:7", "1:2:-0.5"]
_BAD_LINKS = ["-1-2:2", "0--1:2", "0-1:-2", "0-1:0"]


@pytest.mark.parametrize(
    ("name", "text"),
    [("straggler", text) for text in _BAD_STRAGGLERS]
    + [("slow-link", text) for text in _BAD_LINKS],
)
def test_an_invalid_straggler_or_slow_link_is_refused_everywhere(
    name: str, text: str, tmp_path: Path
) -> None:
    # Once accepted and silently ignored (exit 0, the same makespan): now one line, exit 2,
    # whether given as a flag, a TOML key or through the Python API.
    flag = runner.invoke(app, ["run", f"--{name}={text}"])
    assert flag.exit_code == 2 and len(flag.stderr.strip().splitlines()) == 1, flag.stderr
    config = tmp_path / "c.toml"
    key = "stragglers" if name == "straggler" else "slow_links"
    config.write_text(f'{key} = ["{text}"]\n')
    toml = runner.invoke(app, ["run", "--config", str(config)])
    assert toml.exit_code == 2 and len(toml.stderr.strip().splitlines()) == 1, toml.stderr


@pytest.mark.parametrize(
    "changes",
    [
        {"stragglers": (Straggler(-2, 3.0),)},
        {"stragglers": (Straggler(1, -2.0),)},
        {"stragglers": (Straggler(1, 2.0, 7.0),)},
        {"slow_links": ((-1, 2, 2.0),)},
        {"slow_links": ((0, 1, -1.0),)},
    ],
)
def test_the_python_api_checks_stragglers_and_slow_links(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        simulate_step(Settings(**changes))  # type: ignore[arg-type]
