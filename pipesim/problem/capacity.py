"""How large a step this machine can simulate, checked before anything is allocated.

A simulated op costs about `BYTES_PER_OP` of memory with its trace and analysis (measured by
`benchmarks/bench.py`: 459 MB of peak RSS for 1,048,576 ops, interpreter included). A step is
refused when that estimate exceeds the memory available now, and the refusal says both
figures, so that a machine is never pushed into swap or the OOM killer by a typo.
"""

from __future__ import annotations

import os

from pipesim.errors import ConfigError

BYTES_PER_OP = 450
"""Estimated peak bytes per simulated op, trace, summary and JSON included."""
FALLBACK_AVAILABLE = 8 * 2**30
"""What is assumed available where the system does not say (8 GiB)."""


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (Linux's MemAvailable, else free
    physical pages, else `FALLBACK_AVAILABLE`)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return FALLBACK_AVAILABLE


def check_ops(ops: int, what: str) -> None:
    """Refuse a step of `ops` ops (described by `what`, e.g. "p=4, v=1, m=8") that would not
    fit in the memory available."""
    needed = ops * BYTES_PER_OP
    available = available_memory()
    if needed > available:
        raise ConfigError(
            f"{what} is up to {ops:,} ops, which needs about {_gb(needed)} of memory; "
            f"{_gb(available)} is available"
        )


def _gb(size: float) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB"
