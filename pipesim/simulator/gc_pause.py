"""Pausing Python's cycle collector around work that allocates millions of small records."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a simulation or its analysis allocates millions of
    small, acyclic records: each full collection would scan all of them again (a third to a
    half of the run time at a million ops). Reference counting still frees everything as
    usual; pauses nest."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
