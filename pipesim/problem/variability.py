"""Random and slow: op and message times drawn per op from a seed, and straggling devices.

Randomness is a property of the problem, not of the simulator: from the seed, every op's
duration multiplier and every message's is drawn once, before the run, in key order, so the
SimPy model stays deterministic and a run is reproduced by its seed alone.

Jitter is lognormal with mean 1 and the given coefficient of variation (CV): never negative,
skewed to the slow side as kernel times are; sigma^2 = ln(1 + CV^2), mu = -sigma^2 / 2. A
straggler multiplies its device's ops by a factor, on every op or, intermittently, on each op
with a probability.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from pipesim.problem.ops import op_key
from pipesim.settings.values import Straggler


def makes_draws(
    jitter: float | None, link_jitter: float | None, stragglers: Sequence[Straggler]
) -> bool:
    """Whether runs with these settings make random draws: jitter, or a straggler that is
    slow only sometimes (one that always is changes every run alike)."""
    return bool(jitter or link_jitter or any(s.probability < 1 for s in stragglers))


@dataclass(frozen=True)
class Variability:
    """What makes one run differ from the mean: jitter, stragglers, and the seed."""

    jitter: float = 0.0
    """CV of each op's duration."""
    link_jitter: float = 0.0
    """CV of each message's time on its link (latency and transfer together)."""
    seed: int = 0
    stragglers: tuple[Straggler, ...] = ()

    @property
    def random(self) -> bool:
        """Whether any draw is made (jitter, or an intermittent straggler)."""
        return makes_draws(self.jitter, self.link_jitter, self.stragglers)

    def op_scales(self, placement: tuple[int, ...], microbatches: int) -> list[float]:
        """Per op key (`ops.op_key`), the multiplier of its duration."""
        stages = len(placement)
        scales = [1.0] * (3 * stages * microbatches)
        draw = random.Random(f"{self.seed}:ops")
        sigma, mu = _lognormal(self.jitter)
        by_device: dict[int, list[Straggler]] = {}
        for straggler in self.stragglers:
            by_device.setdefault(straggler.device, []).append(straggler)
        for stage in range(stages):
            slow = by_device.get(placement[stage], [])
            for mb in range(microbatches):
                for kind in range(3):
                    key = op_key(kind, stage, mb, microbatches)
                    scale = draw.lognormvariate(mu, sigma) if sigma else 1.0
                    for straggler in slow:
                        if straggler.probability >= 1 or draw.random() < straggler.probability:
                            scale *= straggler.factor
                    scales[key] = scale
        return scales

    def message_scales(self, stages: int, microbatches: int) -> list[float] | None:
        """Per producer op key, the multiplier of its message's time; None without jitter."""
        if not self.link_jitter:
            return None
        draw = random.Random(f"{self.seed}:messages")
        sigma, mu = _lognormal(self.link_jitter)
        return [draw.lognormvariate(mu, sigma) for _ in range(3 * stages * microbatches)]


def _lognormal(cv: float) -> tuple[float, float]:
    """(sigma, mu) of the lognormal with mean 1 and coefficient of variation `cv`."""
    if cv <= 0:
        return 0.0, 0.0
    variance = math.log(1 + cv * cv)
    return math.sqrt(variance), -variance / 2


def run_seed(seed: int, run: int) -> int:
    """The seed of run `run` of a Monte Carlo study seeded with `seed`: derived from both, so
    runs differ and a run is reproduced alone (`--seed` it, `--runs 1`)."""
    return random.Random(f"{seed}:run:{run}").getrandbits(31)
