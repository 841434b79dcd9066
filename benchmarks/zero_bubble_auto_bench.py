"""Speed of the zero-bubble planners (zb-auto, ZB-1P, ZB-2P): what searching their orders
costs per op, against simulating the orders found, and their share of a plan. Not a test.

    python benchmarks/zero_bubble_auto_bench.py [--sample K]

First, for each planner and shape, the CPU time of one search (nothing remembered; the least
of 3) per op of the step, and the simulation of the orders found (the search remembered) per
op. Then `plan_bench.py`'s configurations, K of them drawn at random (seeded) and evaluated one
after another in this process, as `pipesim plan` evaluates each: the milliseconds a
zero-bubble configuration takes, and the planners' share of the CPU. Issue 32 filed 35 us an
op, 25x the simulation, and 145-153 ms a configuration, 45% of a plan's CPU.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from plan_bench import BASE, SPACE  # benchmarks/plan_bench.py

from pipesim import Settings, build_problem, get_policy
from pipesim.schedules.planned import forget
from pipesim.simulator import simulate
from pipesim.studies.plan import candidates, evaluate

PLANNERS = ("zb-auto", "zb-1p", "zb-2p")
SHAPES = ((8, 256), (16, 128), (64, 64))


def _cpu(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def per_op() -> None:
    for name in PLANNERS:
        for p, m in SHAPES:
            policy = get_policy(name)
            limit = float(p) if name == "zb-auto" else None  # zb-auto at 1F1B's peak
            problem = build_problem(
                Settings(policy=name, stages=p, microbatches=m, activation_limit=limit), policy
            )
            ops = 3 * p * m
            searches = []
            for _ in range(3):
                forget()
                searches.append(_cpu(lambda: policy.programs(problem)))  # noqa: B023
            search = min(searches)
            simulate(problem, policy)  # the orders remembered from here on
            simulation = min(_cpu(lambda: simulate(problem, policy)) for _ in range(3))  # noqa: B023
            print(
                f"{name:8} p={p:<3} m={m:<4} {ops:6,} ops: search {1e6 * search / ops:5.1f} us "
                f"an op, simulation {1e6 * simulation / ops:4.1f} us ({search / simulation:4.1f}x)"
            )


def in_a_plan(sample: int) -> None:
    configurations = candidates(BASE, SPACE)
    drawn = random.Random(1).sample(configurations, min(sample, len(configurations)))
    spent = {True: 0.0, False: 0.0}
    counted = {True: 0, False: 0}
    for candidate in drawn:
        forget()
        planned = candidate.settings.policy in PLANNERS
        spent[planned] += _cpu(lambda: evaluate(candidate))  # noqa: B023
        counted[planned] += 1
    total = spent[True] + spent[False]
    print(
        f"plan_bench.py's configurations, {len(drawn)} of {len(configurations):,} drawn: "
        f"{counted[True]} zero-bubble planned ones take {1e3 * spent[True] / counted[True]:.0f} "
        f"ms each against {1e3 * spent[False] / counted[False]:.0f} ms for the others; "
        f"{100 * spent[True] / total:.0f}% of the {total:.1f} CPU s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=int, default=300, help="plan configurations drawn")
    args = parser.parse_args()
    per_op()
    in_a_plan(args.sample)
    print("issue 32 filed: 35 us an op (25x the simulation); 145-153 ms a configuration in a")
    print("plan, 45% of its CPU")


if __name__ == "__main__":
    main()
