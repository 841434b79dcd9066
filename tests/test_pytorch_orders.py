"""pipesim's orders against PyTorch's own generators, live: for every multi-stage schedule
class of `torch.distributed.pipelining` and every shape it accepts in a grid (p = 2..6, v = 2..4,
m from p to 4p and odd counts between), the order each rank runs, as the class computes it when
it is built, is the order pipesim simulates. `test_schedule_files` holds the same on three
shapes stored as CSV, without torch."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipesim import Settings, get_policy, simulate_step
from pipesim.schedules.schedule_file import read_schedule
from tests.conftest import need

pytestmark = pytest.mark.slow  # imports torch

NAMES = {
    "Interleaved1F1B": "interleaved",
    "LoopedBFS": "looped-bfs",
    "InterleavedZeroBubble": "interleaved-zb",
    "ZBVZeroBubble": "zb-v",
    "DualPipeV": "dualpipe-v",
}
V_SHAPED = ("ZBVZeroBubble", "DualPipeV")


def _stages(p: int, v: int, v_shaped: bool) -> list[Any]:
    """Rank 0's stages, as much of them as a schedule reads when it is built: it computes
    every rank's order from the group's size, the stage count and its own stages' places."""
    count = p * v
    places = [0, count - 1] if v_shaped else [k * p for k in range(v)]
    return [
        SimpleNamespace(
            num_stages=count,
            group_size=p,
            group_rank=0,
            stage_index=index,
            is_first=index == 0,
            is_last=index == count - 1,
            stage_index_to_group_rank=None,
            submod=None,
        )
        for index in places
    ]


def _pytorch_csv(name: str, p: int, m: int, v: int) -> str | None:
    """The class's `pipeline_order`, written as PyTorch writes it (a row per rank, an empty
    cell for an idle step); None for a shape the class refuses."""
    schedules = need("torch.distributed.pipelining.schedules")
    try:
        built = getattr(schedules, f"Schedule{name}")(_stages(p, v, name in V_SHAPED), m)
    except ValueError:
        return None
    text = io.StringIO()
    writer = csv.writer(text)
    for rank in range(p):
        writer.writerow(
            ["" if action is None else str(action) for action in built.pipeline_order[rank]]
        )
    return text.getvalue()


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_shape_pytorch_accepts_runs_in_pytorchs_order(name: str, tmp_path: Path) -> None:
    policy = get_policy(NAMES[name])
    compared = 0
    for p in range(2, 7):
        for v in (2,) if name in V_SHAPED else (2, 3, 4):
            for m in sorted({5, 7, 12, p, p + 1, 2 * p, 2 * p + 1, 3 * p, 4 * p}):
                text = _pytorch_csv(name, p, m, v)
                if text is None:
                    continue
                path = tmp_path / f"{name}_p{p}_v{v}_m{m}.csv"
                path.write_text(text)
                theirs = read_schedule(path)
                assert theirs.problems() == [], path.name
                chunks = v if policy.chunks is None else None
                report = simulate_step(Settings(policy=policy.name, stages=p, microbatches=m,
                                                chunks=chunks))  # fmt: skip
                assert report.trace.steps_by_device() == theirs.orders(), path.name
                assert report.trace.problem.pipeline.placement == theirs.placement(), path.name
                compared += 1
    assert compared >= 20  # of the shapes in the grid, those PyTorch accepts
