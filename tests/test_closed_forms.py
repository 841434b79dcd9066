"""The textbook figures of GPipe and 1F1B, measured by simulation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import simulate_settings


@pytest.mark.parametrize("policy", ["gpipe", "1f1b"])
def test_textbook_example_p4_m8_unit_costs(policy: str) -> None:
    report = simulate_settings(policy=policy, stages=4, microbatches=8, forward=1, backward=1)
    assert report.summary.makespan == pytest.approx(22.0)
    assert report.summary.bubble_fraction == pytest.approx(3 / 11)
    for stats in report.summary.devices:
        assert stats.idle == pytest.approx(6.0)  # 3 idle slots of F+B per device
        assert stats.bubble_fraction == pytest.approx(3 / 11)


def test_1f1b_holds_p_minus_i_activations_gpipe_holds_m() -> None:
    one_f = simulate_settings(policy="1f1b", stages=4, microbatches=8, backward=1)
    gpipe = simulate_settings(policy="gpipe", stages=4, microbatches=8, backward=1)
    assert [s.peak_activations for s in one_f.summary.devices] == [4, 3, 2, 1]
    assert [s.peak_activations for s in gpipe.summary.devices] == [8, 8, 8, 8]


def test_default_1f1b_run_matches_issue_example() -> None:
    report = simulate_settings(policy="1f1b", stages=4, microbatches=8)
    assert report.summary.makespan == pytest.approx(33.0)
    assert report.summary.bubble_fraction == pytest.approx(9 / 33)
    assert report.summary.devices[0].busy == pytest.approx(24.0)


@given(
    policy=st.sampled_from(["gpipe", "1f1b"]),
    p=st.integers(1, 8),
    m=st.integers(1, 24),
    forward=st.floats(0.1, 5),
    backward=st.floats(0.1, 5),
)
def test_equal_stages_match_closed_form(
    policy: str, p: int, m: int, forward: float, backward: float
) -> None:
    report = simulate_settings(
        policy=policy, stages=p, microbatches=m, forward=forward, backward=backward
    )
    assert report.summary.makespan == pytest.approx((m + p - 1) * (forward + backward))
    assert report.summary.bubble_fraction == pytest.approx((p - 1) / (m + p - 1))
    assert report.closed_form is not None
    assert report.closed_form.bubble_fraction == pytest.approx((p - 1) / (m + p - 1))


@given(p=st.integers(1, 8), m=st.integers(1, 24))
def test_1f1b_peak_activations_are_min_of_p_minus_i_and_m(p: int, m: int) -> None:
    report = simulate_settings(policy="1f1b", stages=p, microbatches=m)
    assert [s.peak_activations for s in report.summary.devices] == [min(p - i, m) for i in range(p)]


def test_closed_form_is_withheld_when_its_assumptions_fail() -> None:
    uneven = simulate_settings(policy="1f1b", stages=4, forward=[1, 1, 1.5, 2])
    delayed = simulate_settings(policy="gpipe", stages=4, comm_latency=0.5)
    assert uneven.closed_form is not None and uneven.closed_form.bubble_fraction is None
    assert uneven.closed_form.reason == "stages are uneven"
    assert delayed.closed_form is not None and delayed.closed_form.bubble_fraction is None
    assert delayed.closed_form.reason == "communication takes time"
