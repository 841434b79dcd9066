"""The ways to split a cluster of N GPUs: tensor x pipeline x data (x context, x expert).

Every GPU runs one rank; a split is valid when its degrees multiply to N and each divides what
it splits, with the rules Megatron-LM and torchtitan apply at start-up:
- tensor parallelism t divides the attention heads (and the key/value heads, or is a multiple
  of them) and stays inside a node unless allowed across (its collectives run once per layer);
- pipeline parallelism p is at most the model's layers (each stage holds at least one);
- context parallelism c splits the sequence into 2c chunks (two per rank, to balance causal
  attention), so 2c divides it;
- data parallelism d is what remains, N / (t p c), and divides the global batch;
- expert parallelism E (mixture-of-experts models only) divides the routed experts and the
  d c ranks that share a stage's dense weights (Megatron-LM's expert-data layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipesim.errors import ConfigError
from pipesim.settings.hardware import Model


@dataclass(frozen=True)
class Split:
    """One split of the cluster: its degrees, whose product t p d c is the GPU count."""

    tensor: int
    pipeline: int
    data: int
    context: int = 1
    expert: int = 1

    @property
    def gpus(self) -> int:
        return self.tensor * self.pipeline * self.data * self.context


def divisors(n: int) -> list[int]:
    """The divisors of n, ascending."""
    small = [k for k in range(1, int(n**0.5) + 1) if n % k == 0]
    return sorted({*small, *(n // k for k in small)})


def splits(
    model: Model,
    gpus: int,
    gpus_per_node: int,
    seq_length: int,
    global_batch: int,
    *,
    pipeline: Sequence[int] | None = None,
    tensor: Sequence[int] | None = None,
    context: Sequence[int] = (1,),
    expert: Sequence[int] | None = None,
    cross_node_tp: bool = False,
) -> list[Split]:
    """Every valid split of `gpus` GPUs, restricted to the degrees given (None: all), in
    ascending order of (t, c, p, E).

    Raises:
        ConfigError: no split is valid; the message says which rule excluded the last
            candidates.
    """
    if gpus < 1:
        raise ConfigError(f"--gpus {gpus}: a cluster has at least one GPU")
    if expert is not None and model.experts == 0 and any(e != 1 for e in expert):
        raise ConfigError(
            f"expert parallelism needs a mixture-of-experts model; {model.name} is dense"
        )
    found: list[Split] = []
    why = f"no split of {gpus} GPUs"
    for t in sorted(set(tensor) if tensor is not None else divisors(gpus)):
        if gpus % t:
            why = f"tensor_parallel {t} does not divide {gpus} GPUs"
            continue
        if t > gpus_per_node and not cross_node_tp:
            why = (
                f"tensor_parallel {t} spans more than a node of {gpus_per_node} GPUs "
                "(--cross-node-tp allows it)"
            )
            continue
        if model.heads % t or (model.kv_heads % t and t % model.kv_heads):
            why = (
                f"tensor_parallel {t} divides neither the {model.heads} heads nor the "
                f"{model.kv_heads} key/value heads"
            )
            continue
        for c in sorted(set(context)):
            if (gpus // t) % c:
                why = f"context_parallel {c} does not divide the {gpus // t} GPUs left by t={t}"
                continue
            if c > 1 and seq_length % (2 * c):
                why = f"context_parallel {c}: 2c = {2 * c} does not divide s = {seq_length}"
                continue
            rest = gpus // (t * c)
            options = sorted(set(pipeline)) if pipeline is not None else divisors(rest)
            for p in options:
                if rest % p:
                    why = f"pipeline {p} does not divide the {rest} GPUs left by t={t}, c={c}"
                    continue
                if p > model.layers:
                    why = f"pipeline {p} is more than the model's {model.layers} layers"
                    continue
                d = rest // p
                if global_batch % d:
                    why = f"data parallel {d} does not divide the global batch {global_batch}"
                    continue
                for e in _experts(model, d * c, expert):
                    found.append(Split(t, p, d, c, e))
    if not found:
        raise ConfigError(f"no way to split the cluster: {why}")
    return found


def _experts(model: Model, ranks: int, given: Sequence[int] | None) -> list[int]:
    """Expert-parallel degrees for a stage shared by `ranks` ranks (d c)."""
    if model.experts == 0:
        return [1]
    options = sorted(set(given)) if given is not None else divisors(ranks)
    return [e for e in options if ranks % e == 0 and model.experts % e == 0]
