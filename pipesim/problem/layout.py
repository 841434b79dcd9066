"""Which transformer layers each stage holds; the embedding is on the first stage and the
output layer (with the loss) on the last.

Three ways to say it: nothing (the layers split as evenly as possible, the remainder going to
the inner stages first, since the first and last also carry the embedding and the output
layer); a count per stage (`--layers-per-stage 9,10,10,11`); or Megatron-LM's
`--pipeline-model-parallel-layout` grammar, of which pipesim accepts: `E` (the embedding, only
at the very start), `t` (a transformer layer), `L` (the output layer and loss, only at the very
end), `|` between stages, `x*n` or `(...)*n` repeating a letter or a group n times. Megatron's
`m` (multi-token prediction) is not accepted.
"""

from __future__ import annotations

import re

from pipesim.errors import ConfigError

_REPEAT = re.compile(r"\(([^()]*)\)\*([0-9]{1,4})|([EtL|])\*([0-9]{1,4})")


def even_layers(layers: int, stages: int) -> tuple[int, ...]:
    """`layers` over `stages` as evenly as possible, extra layers on inner stages first."""
    base, extra = divmod(layers, stages)
    inner = [*range(1, stages - 1), 0, stages - 1] if stages > 2 else list(range(stages))
    counts = [base] * stages
    for stage in inner[:extra]:
        counts[stage] += 1
    return tuple(counts)


def layers_from_counts(counts: tuple[int, ...], layers: int, stages: int) -> tuple[int, ...]:
    """Check a user's per-stage counts against the model and the pipeline."""
    if len(counts) != stages:
        raise ConfigError(
            f"layers_per_stage has {len(counts)} values; the pipeline has {stages} stages (p*v)"
        )
    if sum(counts) != layers:
        raise ConfigError(
            f"layers_per_stage adds up to {sum(counts)} layers; the model has {layers}"
        )
    return counts


def layers_from_layout(layout: str, layers: int, stages: int) -> tuple[int, ...]:
    """The per-stage layer counts a Megatron-style layout describes."""
    text = layout.replace(" ", "")
    for _ in range(10):  # nested groups expand from the inside out
        expanded = _expand_within(text, layers)
        if expanded == text:
            break
        text = expanded
    if not re.fullmatch(r"[EtL|]*", text):
        raise ConfigError(
            f"layout {layout[:60]!r}: only E, t, L, |, (...)*n and x*n are understood"
        )
    parts = text.split("|")
    if len(parts) != stages:
        raise ConfigError(f"layout has {len(parts)} stages; the pipeline has {stages} (p*v)")
    if not parts[0].startswith("E") or "E" in text[1:]:
        raise ConfigError("layout must start with E (the embedding), once, on the first stage")
    if not parts[-1].endswith("L") or "L" in text[:-1]:
        raise ConfigError("layout must end with L (the output layer), once, on the last stage")
    counts = tuple(part.count("t") for part in parts)
    if sum(counts) != layers:
        raise ConfigError(f"layout holds {sum(counts)} transformer layers; the model has {layers}")
    return counts


LONGEST = 10**6
"""Symbols a layout may expand to: far more than any model's layers."""


def _expand_within(text: str, layers: int) -> str:
    """One pass of expansion, its length counted before anything is built: a layout such
    as (((t*9999)*16)*9999) is refused, not expanded into gigabytes."""
    room = LONGEST - len(text)

    def expand(match: re.Match[str]) -> str:
        nonlocal room
        group, times, letter, letter_times = match.groups()
        piece, count = (group, int(times)) if group is not None else (letter, int(letter_times))
        room -= len(piece) * count - len(match.group(0))
        if room < 0:
            raise ConfigError(
                f"layout expands to more than {LONGEST:,} symbols; the model has {layers} layers"
            )
        return piece * count

    return _REPEAT.sub(expand, text)
