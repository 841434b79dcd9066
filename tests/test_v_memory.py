"""V-Half and V-Min: the authors' orders op for op, their stated memory, and their bubble
against 1F1B's as the authors' README gives it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipesim import Settings, check_trace, simulate_step
from pipesim.schedules.schedule_file import read_schedule

SAIL = Path(__file__).resolve().parent / "data" / "sail-sg"


@pytest.mark.parametrize("path", sorted(SAIL.glob("v*_p*.csv")), ids=lambda path: path.stem)
def test_orders_are_the_authors_op_for_op(path: Path) -> None:
    # Written by tests/data/sail-sg/generate.py from the reference's create_schedule.
    kind, shape_p, shape_m = path.stem.split("_")
    p, m = int(shape_p[1:]), int(shape_m[1:])
    reference = read_schedule(path)
    policy = {"vhalf": "v-half", "vmin": "v-min"}[kind]
    report = simulate_step(Settings(policy=policy, stages=p, microbatches=m))
    assert report.trace.steps_by_device() == reference.orders()
    assert report.trace.problem.pipeline.placement == reference.placement()


@pytest.mark.parametrize(
    ("policy", "peak"), [("v-half", lambda p: (p + 2) // 2), ("v-min", lambda p: (p + 4) // 3)]
)
@pytest.mark.parametrize("p", range(2, 11))
def test_peak_is_what_the_authors_state(policy: str, peak: object, p: int) -> None:
    # The authors' playground: (p+2)//2 and (p+4)//3 microbatches' worth, against 1F1B's p.
    for m in (p, 2 * p + 1, 4 * p):
        costs = dict(forward=(1.3,), backward=(2.9,), weight=(1.1,))
        report = simulate_step(Settings(policy=policy, stages=p, microbatches=m, **costs))  # type: ignore[arg-type]
        assert check_trace(report.trace) == []
        assert report.summary.peak_activations == peak(p)  # type: ignore[operator]


@pytest.mark.parametrize("p", [3, 4, 6, 8, 10])
@pytest.mark.parametrize("rounds", [2, 4, 8])
def test_bubble_against_1f1bs_as_the_authors_readme_gives_it(p: int, rounds: int) -> None:
    # README: V-Half B/2 and V-Min 2B/3 (B 1F1B's bubble rate) when F = B = W, in the span
    # view (1 - m(F+B+W) / longest device time), both approximate. Measured for p = 3..10
    # and m = 2p..8p: V-Half 0.30-0.52 B, V-Min 0.44-0.73 B (the "+ O(n) overhead"; at p = 3
    # both have the same peak and the same order of bubble).
    def bubble(policy: str) -> float:
        settings = Settings(policy=policy, stages=p, microbatches=rounds * p, forward=(1.0,),
                            backward=(2.0,), weight=(1.0,))  # fmt: skip
        return simulate_step(settings).summary.span_bubble_fraction

    one_f, half, least = bubble("1f1b"), bubble("v-half"), bubble("v-min")
    assert one_f == pytest.approx((p - 1) / (rounds * p + p - 1))
    assert half <= 0.55 * one_f
    assert 0.4 * one_f <= least <= 0.75 * one_f
    assert half <= least
