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
BYTES_PER_DEVICE = 8000
"""Estimated peak bytes per device (its process, links, summary and JSON record): 90 MB of
peak RSS for p=10,000, m=1, of which 30 MB is the interpreter."""
FALLBACK_AVAILABLE = 8 * 2**30
"""What is assumed available where the system does not say (8 GiB)."""
SMALL_STEP = 16 * 2**20
"""A step estimated at no more than this (about 37,000 ops) is never refused, and the system
is not asked: it is less than the interpreter with pipesim loaded already holds (25 MB of
RSS), so it cannot be what pushes a machine into swap; and asking reads five or six files,
a third of what screening a configuration costs in a plan of thousands."""


def available_memory() -> int:
    """Bytes a new allocation can take now: the least of the machine's available memory, the
    process's address-space limit (`ulimit -v`) and its control group's memory limit (a
    container's), since the first one exceeded kills the run."""
    return min(
        headroom
        for headroom in (_machine(), _address_space(), _control_group())
        if headroom is not None
    )


def _machine() -> int:
    """Linux's MemAvailable, else free physical pages, else `FALLBACK_AVAILABLE`."""
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


def _address_space() -> int | None:
    """RLIMIT_AS less the address space in use, or None without a limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status", encoding="ascii") as handle:
            used = next(
                int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:")
            )
        return max(0, soft - used)
    except (ImportError, OSError, ValueError, IndexError, StopIteration):
        return None


UNLIMITED = 2**60
"""A cgroup limit at or above this is "no limit" (v1 writes 2^63 rounded to pages)."""


def _control_group() -> int | None:
    """The tightest (limit - usage) of the process's memory cgroup and its parents, v2 or v1,
    or None where there is none or no limit."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    found: list[int] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2, unified
            root, limit, usage = "/sys/fs/cgroup", "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            root, limit, usage = (
                "/sys/fs/cgroup/memory",
                "memory.limit_in_bytes",
                ("memory.usage_in_bytes"),
            )
        else:
            continue
        parts = [part for part in path.split("/") if part]
        # inside a container the cgroup's own folder is often mounted as the root
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(root, *parts[:depth])
            headroom = _headroom(os.path.join(folder, limit), os.path.join(folder, usage))
            if headroom is not None:
                found.append(headroom)
    return min(found) if found else None


def _headroom(limit_file: str, usage_file: str) -> int | None:
    try:
        with open(limit_file, encoding="ascii") as handle:
            limit_text = handle.read().strip()
        if limit_text == "max" or int(limit_text) >= UNLIMITED:
            return None
        with open(usage_file, encoding="ascii") as handle:
            return max(0, int(limit_text) - int(handle.read().strip()))
    except (OSError, ValueError):
        return None


def check_ops(ops: int, what: str, devices: int = 1) -> None:
    """Refuse a step of `ops` ops on `devices` devices (described by `what`, e.g. "p=4, v=1,
    m=8") that would not fit in the memory available."""
    needed = ops * BYTES_PER_OP + devices * BYTES_PER_DEVICE
    if needed <= SMALL_STEP:
        return
    available = available_memory()
    if needed > available:
        raise ConfigError(
            f"{what} is up to {ops:,} ops on {devices:,} devices, which needs about "
            f"{_gb(needed)} of memory; {_gb(available)} is available to this process"
        )


def _gb(size: float) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB"
