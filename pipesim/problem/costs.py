"""What each op costs: milliseconds per microbatch for every stage."""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.problem.ops import Kind, Op


@dataclass(frozen=True)
class StageCosts:
    """Milliseconds per microbatch for each stage: forward, whole backward, and the part of the
    backward that computes weight gradients (used only when a policy splits the backward)."""

    forward: tuple[float, ...]
    backward: tuple[float, ...]
    weight: tuple[float, ...]
    overlap: float = 1.0
    """A fused forward-and-backward pair takes this times the sum of its ops' costs (1: no
    overlap; 0.7: the halves hide 30% of each other, as DualPipe hides one microbatch's
    all-to-all behind another's computation)."""
    exchange_forward: tuple[float, ...] = ()
    """Per stage, the milliseconds of a forward spent in expert all-to-alls (empty: none),
    which the other op of a fused pair computes under (`Problem.fused_parts`)."""
    exchange_backward: tuple[float, ...] = ()
    """The same for the input-gradient (or whole) backward."""

    def exchange(self, op: Op) -> float:
        """Milliseconds of `op` spent in all-to-alls another op's compute can hide."""
        kind, stage, _ = op
        table = self.exchange_forward if kind is Kind.F else self.exchange_backward
        return table[stage] if table and kind is not Kind.W else 0.0

    def duration(self, op: Op, split_backward: bool) -> float:
        """How long `op` holds its device."""
        kind, stage, _ = op
        if kind is Kind.F:
            return self.forward[stage]
        if kind is Kind.W:
            return self.weight[stage]
        if split_backward:
            return self.backward[stage] - self.weight[stage]
        return self.backward[stage]

    @property
    def uniform(self) -> bool:
        """Whether every stage costs the same (closed forms assume it)."""
        return all(len(set(values)) == 1 for values in (self.forward, self.backward, self.weight))
