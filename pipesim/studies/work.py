"""How long a study will take, said before it starts, and a study no one would wait for
refused unless asked for.

A study multiplies: `compare --runs 1000000` is 15 million simulations, a plan over a large
space is thousands of configurations. The estimate is the ops it would simulate times the
measured cost of one (`SECONDS_PER_OP`, from `benchmarks/bench.py`: a whole 131k-op run, its
analysis included, at 2.6-4.5 µs per op; plan and Monte Carlo add per-run overhead,
`SECONDS_PER_RUN`), over the workers. The command line refuses a study estimated beyond
`PATIENCE` unless given --yes; the library has no limit unless its caller sets one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pipesim.errors import ConfigError
from pipesim.schedules.base import Policy
from pipesim.settings.declarations import Settings

SECONDS_PER_OP = 5e-6
"""CPU seconds per simulated op, analysis included (the slower end of the benchmarks)."""
SECONDS_PER_RUN = 1e-3
"""CPU seconds per simulation beyond its ops: building the problem, sending the result."""
PATIENCE = 600.0
"""Seconds a study run from the command line may be estimated to take before it needs --yes."""

_patience: ContextVar[float | None] = ContextVar("patience", default=None)


@contextmanager
def patience(seconds: float | None) -> Iterator[None]:
    """Within the block, refuse studies estimated to take longer than `seconds` (None: any)."""
    token = _patience.set(seconds)
    try:
        yield
    finally:
        _patience.reset(token)


def estimate(what: str, runs: int, ops: int, workers: int, binding: bool = True) -> str:
    """Words for how long `runs` simulations of `ops` ops in all take on `workers`; a bound
    that is not `binding` (a search that prunes, whose worst case is rarely reached) is said
    as "at most" and never refused.

    Raises:
        ConfigError: the estimate is beyond the patience set (the command line's --yes
            lifts it).
    """
    seconds = (runs * SECONDS_PER_RUN + ops * SECONDS_PER_OP) / max(1, workers)
    limit = _patience.get()
    if not binding:
        return f"at most about {duration(seconds)}"
    if limit is not None and seconds > limit:
        raise ConfigError(
            f"{what} would simulate {ops:,} ops in {runs:,} runs, about {duration(seconds)} on "
            f"{workers} worker(s); narrow it, or give --yes to run it anyway"
        )
    return f"about {duration(seconds)}"


def duration(seconds: float) -> str:
    """A rough duration a person reads at a glance: 40 s, 12 min, 3.5 h, 9 days."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def ops_at_most(stages: int, chunks: int, microbatches: int) -> int:
    """The ops of one step (three kinds when the backward is split)."""
    return 3 * stages * chunks * microbatches


def ops_of(settings: Settings, policy: Policy) -> int:
    """`ops_at_most` of `settings` run by `policy`, read from the settings without building
    the problem (a study estimates thousands of them)."""
    default_stages, default_microbatches = policy.default_shape()
    stages = settings.stages or default_stages
    microbatches = settings.microbatches or default_microbatches
    if settings.global_batch_size is not None:
        resolved = settings.resolved
        per_step = resolved.micro_batch_size * resolved.data_parallel
        microbatches = max(1, settings.global_batch_size // per_step)
    chunks = policy.chunks or settings.chunks or policy.default_chunks
    return ops_at_most(stages, chunks, microbatches)
