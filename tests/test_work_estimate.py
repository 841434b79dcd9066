"""A study says how long it will take, and one nobody would wait for is refused unless --yes."""

from __future__ import annotations

import pytest

from pipesim import ConfigError
from pipesim.cli import app
from pipesim.studies import work
from pipesim.studies.work import SECONDS_PER_OP, SECONDS_PER_RUN, duration, estimate, patience
from tests.cli_runner import CliRunner

runner = CliRunner()


def test_the_estimate_is_ops_and_runs_at_their_measured_cost_over_the_workers() -> None:
    seconds = (1000 * SECONDS_PER_RUN + 10**8 * SECONDS_PER_OP) / 2
    assert estimate("x", 1000, 10**8, 2) == f"about {duration(seconds)}"
    assert duration(40) == "40 s" and duration(720) == "12 min" and duration(12600) == "3.5 h"
    assert duration(9 * 86400) == "9 days"


def test_beyond_the_patience_a_study_is_refused_and_a_pruned_search_only_warned() -> None:
    with patience(60.0):
        estimate("small", 10, 10**6, 1)  # 5 s
        with pytest.raises(ConfigError, match=r"about 8 min on 1 worker\(s\); narrow it"):
            estimate("large", 0, 10**8, 1)  # 500 s
        assert estimate("pruned", 0, 10**8, 1, binding=False) == "at most about 8 min"
    estimate("anything", 0, 10**12, 1)  # the library sets no limit


def test_compare_runs_nobody_would_wait_for_are_refused_with_the_figures() -> None:
    """15 policies x 1,000,000 runs of p=8, m=32 (at most 768 ops each): hours."""
    result = runner.invoke(app, ["compare", "-p", "8", "-m", "32", "--runs", "1000000"])
    assert result.exit_code == 2
    assert result.stderr.startswith("pipesim: error: 1,000,000 runs of 15 policies would ")
    assert "in 15,000,000 runs, about" in result.stderr and "--yes" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--runs", "3", "--jitter", "0.1"],
        ["compare", "--runs", "3", "--jitter", "0.1", "--policies", "1f1b"],
        ["sweep", "-m", "2,4"],
    ],
)
def test_yes_lifts_the_limit(monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    monkeypatch.setattr(work, "PATIENCE", 1e-9)
    args = [*command, "-p", "2"] + (["-m", "2"] if command[0] != "sweep" else [])
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "give --yes to run it anyway" in refused.stderr
    assert runner.invoke(app, [*args, "--yes"]).exit_code == 0
