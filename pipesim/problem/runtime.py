"""How a training runtime moves activations and gradients between pipeline ranks: the
semantics of its point-to-point messages, which the papers' timelines leave out.

- `async` (pipesim's default, and the papers' model): a device hands its output over and goes
  on computing; its receiver is always ready for it, and an op waits only for its inputs.
  PyTorch's `_PipelineScheduleRuntime` (torch/distributed/pipelining/schedules.py) posts each
  send as a non-blocking `batch_isend_irecv` right after the compute, and `_add_send_recv`
  places each receive in the receiving rank's actions as soon as its sender computes, which
  the rank waits on just before the compute that needs it; sends are waited only at the end
  of the step. The Zero Bubble runtime (sail-sg, megatron/core/pipeline_parallel/zerobubble/
  runtime.py) batches its sends and receives without waiting (`flush`) and waits on a
  receive's handles in the compute that needs it (`schedule_f_impl`, `schedule_b_impl`).
  Both are this model: `torch` and `zero-bubble` name it.
- `megatron-no-overlap`: Megatron-LM's schedules (megatron/core/pipeline_parallel/
  schedules.py) without p2p overlap, as its non-interleaved 1F1B always runs and its
  interleaved one runs with `--no-overlap-p2p-communication` (the default before 2024):
  after each compute, one batched `batch_isend_irecv` of that compute's outputs and the next
  compute's inputs, which the rank waits for (`_communicate(wait_on_reqs=True)`, e.g.
  `send_forward_recv_backward`; see `one_batch` for the exchanges its 1F1B splits in two).
  NCCL's send and receive meet: a message leaves when both ends have posted it, so a device
  waits for its receivers to reach their exchange, for its messages to arrive and for its
  next inputs. Its interleaved loop runs a forward and then a backward before one exchange
  (`send_forward_backward_recv_forward_backward`).
- `megatron`: Megatron-LM as it runs by default: the blocking exchanges above for one chunk
  per device (1F1B, whose loop refuses p2p overlap), and for interleaved chunks the
  overlapped p2p of `overlap_p2p_comm` (on unless `--no-overlap-p2p-communication`): sends
  and receives posted without waiting, each waited on just before the compute that needs it,
  which is the asynchronous model.
"""

from __future__ import annotations

from pipesim.problem.ops import Kind, Op


def blocking_exchanges(runtime: str, chunks: int) -> bool:
    """Whether `runtime` exchanges messages in batches each device waits for, with `chunks`
    chunks per device."""
    return runtime == "megatron-no-overlap" or (runtime == "megatron" and chunks == 1)


def one_batch(before: Op, after: Op, chunks: int) -> bool:
    """Whether the exchange between `before` and `after` (the next op on the device) is one
    batch, sends and receives posted together; else the sends complete before the receives
    are posted. Megatron-LM's 1F1B sends a warm-up forward's output (`send_forward`) before
    it receives the next forward's input (`recv_forward`), and likewise in the cool-down, but
    batches a forward's output with a backward's input (`send_forward_recv_backward`) and the
    reverse; its interleaved schedule batches every exchange."""
    return chunks > 1 or before.kind is not after.kind


def interleaved_pair(first: Op, second: Op, chunks: int) -> bool:
    """Whether `first` and `second`, run one after the other on a device, are a steady-state
    pair of Megatron-LM's interleaved loop: a forward, then a backward, then one exchange (and
    one combined step with --ep-comm-overlap)."""
    return chunks > 1 and first.kind is Kind.F and second.kind is Kind.B
