"""Train a small MLP with torch.distributed.pipelining on CPU and profile it: the measured run
`pipesim calibrate` reads.

    python examples/torch_pipeline.py --schedule 1f1b --out traces/
    python examples/torch_pipeline.py --schedule all --out traces/    # every schedule, in turn

Two ranks (processes, one thread each) on the gloo backend run the schedule through PyTorch's
schedule runtime (`_PipelineScheduleRuntime`, loaded with the schedule's own actions), which
labels every action `PP:<stage><action><microbatch>` in the profiler's trace. Each step ends
with the gradient norm all-reduced over the ranks (as gradient clipping does) and an AdamW
update. After `--warmup` steps, `--steps` steps are profiled and each rank writes
`<schedule>_rank<r>.json.gz`.
The model is 2 MLP blocks per rank whatever the schedule. Schedules: gpipe (PyTorch's
LoopedBFS with one stage per rank), 1f1b (Interleaved1F1B with one stage per rank),
interleaved (two stages of one block per rank), zb (InterleavedZeroBubble, one stage per
rank, backward split into I and W) and torch-gpipe (ScheduleGPipe run by itself, without the
runtime: it labels its actions `Forward i` and `Backward i`).

`--schedule all` runs the five in turn, a step of each, in the same processes: on a shared
machine whose speed drifts from minute to minute, schedules compared across separate runs
compare the machine's moods as much as the schedules. Each step is profiled inside a
`pipesim_step:<schedule>` range, and each schedule's trace keeps the events of its own steps.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEDULES = ("gpipe", "1f1b", "interleaved", "zb", "torch-gpipe")


def _run(rank: int, args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile, record_function

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(args.port)
    torch.set_num_threads(1)
    # AdamW's second moments of small gradients fall into denormal floats, which x86 computes
    # many times slower (a sqrt took 3.6 ms on one rank against 0.8 ms on the other): the
    # ranks then enter each step milliseconds apart, which a GPU, flushing them, never does.
    torch.set_flush_denormal(True)
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    names = SCHEDULES if args.schedule == "all" else (args.schedule,)
    steps = {name: _training_step(name, rank, args) for name in names}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    dist.barrier()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            for name, step in steps.items():
                with record_function(f"{_STEP}{name}"):
                    step()
    whole = Path(args.out) / f"profile_rank{rank}.json"
    profiler.export_chrome_trace(str(whole))
    trace = json.loads(whole.read_text())
    whole.unlink()
    for name in names:
        _write(trace, name, Path(args.out) / f"{name}_rank{rank}.json.gz")
    dist.destroy_process_group()


_STEP = "pipesim_step:"


def _training_step(schedule: str, rank: int, args: argparse.Namespace) -> Callable[[], None]:
    """One schedule's model, optimizer and runtime on this rank, as a step to call."""
    import torch
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage
    from torch.distributed.pipelining.schedules import (
        ScheduleGPipe,
        ScheduleInterleaved1F1B,
        ScheduleInterleavedZeroBubble,
        ScheduleLoopedBFS,
        _PipelineScheduleRuntime,
    )

    torch.manual_seed(0)
    # The same model whatever the schedule: 2 blocks per rank, as one stage or as two chunks.
    chunks = 2 if schedule == "interleaved" else 1
    stages = []
    width = args.width

    def block() -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width)
        )

    for chunk in range(chunks):
        index = rank + chunk * args.ranks
        module = torch.nn.Sequential(*(block() for _ in range(2 // chunks)))
        stages.append(PipelineStage(module, index, args.ranks * chunks, torch.device("cpu")))

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((output - target) ** 2).mean()

    runtime: Any
    if schedule == "torch-gpipe":
        runtime = ScheduleGPipe(stages[0], args.microbatches, loss_fn=loss)
    else:
        source = {
            "gpipe": ScheduleLoopedBFS,
            "1f1b": ScheduleInterleaved1F1B,
            "interleaved": ScheduleInterleaved1F1B,
            "zb": ScheduleInterleavedZeroBubble,
        }[schedule]
        actions = source(stages, args.microbatches, loss_fn=loss).pipeline_order
        runtime = _PipelineScheduleRuntime(stages, args.microbatches, loss_fn=loss)  # type: ignore[no-untyped-call]
        runtime._prepare_schedule_with_comms(actions)  # its actions, sends and receives
    rows = args.microbatches * args.rows
    inputs, targets = torch.randn(rows, width), torch.randn(rows, width)
    parameters = [p for stage in stages for p in stage.submod.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)

    def step() -> None:
        optimizer.zero_grad()
        if rank == 0:
            runtime.step(inputs)
        elif rank == args.ranks - 1:
            runtime.step(target=targets)
        else:
            runtime.step()
        # The gradient norm over every rank, as gradient clipping computes it: the step ends
        # together on all ranks, as training steps do.
        norm = torch.stack([p.grad.norm() for p in parameters if p.grad is not None]).norm()
        squared = norm**2
        dist.all_reduce(squared)
        optimizer.step()

    return step


def _write(trace: dict[str, Any], schedule: str, path: Path) -> None:
    """The trace with only the events that start inside `schedule`'s steps (and the trace's
    metadata events), gzipped."""
    events = trace["traceEvents"]
    windows = sorted(
        (event["ts"], event["ts"] + event["dur"])
        for event in events
        if event.get("ph") == "X" and event.get("name") == f"{_STEP}{schedule}"
    )
    starts = [start for start, _ in windows]

    def inside(event: dict[str, Any]) -> bool:
        if event.get("ph") != "X":
            return True
        at = bisect.bisect_right(starts, event["ts"]) - 1
        return at >= 0 and event["ts"] <= windows[at][1]

    kept = {**trace, "traceEvents": [event for event in events if inside(event)]}
    with open(path, "wb") as target, gzip.GzipFile(fileobj=target, mode="wb", mtime=0) as packed:
        packed.write(json.dumps(kept).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedule", choices=(*SCHEDULES, "all"), default="1f1b")
    parser.add_argument("--out", default=".")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--microbatches", type=int, default=8)
    # 256 rows: ops of about 10 ms, long enough that the two ranks' and their gloo threads'
    # sharing of a small CPU does not set their times (at 64 rows, interleaving's extra
    # messages slowed its ops by 12%; at 8, replays spread to 6%)
    parser.add_argument("--rows", type=int, default=256, help="rows of input per microbatch")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--port", type=int, default=29541)
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    from torch.multiprocessing import spawn  # type: ignore[attr-defined]

    spawn(_run, args=(args,), nprocs=args.ranks)  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
