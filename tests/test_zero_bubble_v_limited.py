"""zb-v under --activation-limit: the authors' V scheduler with its memory bound, op for op,
never over the bound, and refused with the least bound it can keep."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesim import Settings, check_trace, simulate_step
from pipesim.cli import app
from pipesim.schedules.schedule_file import read_schedule
from tests.cli_runner import CliRunner

SAIL = Path(__file__).resolve().parent / "data" / "sail-sg"
runner = CliRunner()


@pytest.mark.parametrize("path", sorted(SAIL.glob("zbv_*.csv")), ids=lambda path: path.stem)
def test_orders_are_the_authors_op_for_op(path: Path) -> None:
    # Written by tests/data/sail-sg/generate.py from the reference's try_v_schedule; the name
    # gives p, m, K, each chunk's F, B (input gradient), W and message time, and where it is
    # not 1 the share of a chunk's activations W needs after B (the runtime's f_mem = 1,
    # b_mem = share - 1, w_mem = -share), which these cases' orders depend on.
    fields = dict(
        (part[0], float(part[1:])) for part in path.stem.split("_")[1:]
    )  # p, m, k, f, b, w, c, s
    p, m = int(fields["p"]), int(fields["m"])
    f, b, w, c = fields["f"], fields["b"], fields["w"], fields["c"]
    per_stage = 2 * p  # costs per chunk, as the reference takes them
    report = simulate_step(
        Settings(policy="zb-v", stages=p, microbatches=m, activation_limit=fields["k"],
                 forward=(f,) * per_stage, backward=(b + w,) * per_stage,
                 weight=(w,) * per_stage, comm_latency=c, weight_memory=fields.get("s"))
    )  # fmt: skip
    assert report.trace.steps_by_device() == read_schedule(path).orders()
    assert report.summary.peak_activations <= fields["k"]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.integers(2, 6),
    st.integers(1, 14),
    st.integers(0, 6),
    st.data(),
    st.sampled_from([0.0, 0.1, 0.5]),
)
def test_within_the_bound_and_valid_over_uneven_costs(
    p: int, m: int, extra: int, data: st.DataObject, latency: float
) -> None:
    chunk_costs = st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=2 * p, max_size=2 * p)
    forward, weight = tuple(data.draw(chunk_costs)), tuple(data.draw(chunk_costs))
    backward = tuple(x + y for x, y in zip(weight, data.draw(chunk_costs), strict=True))
    k = p + extra / 2
    report = simulate_step(
        Settings(policy="zb-v", stages=p, microbatches=m, activation_limit=k, forward=forward,
                 backward=backward, weight=weight, comm_latency=latency)
    )  # fmt: skip
    assert check_trace(report.trace) == []
    assert report.summary.peak_activations <= k


def test_more_memory_buys_a_shorter_span() -> None:
    def span(k: float) -> float:
        return simulate_step(
            Settings(policy="zb-v", stages=8, microbatches=24, activation_limit=k, forward=(1.0,),
                     backward=(2.5,), weight=(1.0,), comm_latency=0.1)
        ).summary.span  # fmt: skip

    assert span(16) < span(12) < span(8)


def test_a_bound_it_cannot_keep_names_the_least_it_can() -> None:
    result = runner.invoke(
        app, ["run", "--policy", "zb-v", "-p", "8", "-m", "24", "--activation-limit", "6"]
    )
    assert result.exit_code == 2
    assert "needs --activation-limit 8 or more" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
