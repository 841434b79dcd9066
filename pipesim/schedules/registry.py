"""Name -> policy. A new schedule is a new module plus one line in `_POLICIES`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from types import MappingProxyType

from pipesim.errors import PolicyError
from pipesim.schedules.base import Policy
from pipesim.schedules.custom import is_custom_reference, load_custom_policy
from pipesim.schedules.dualpipe import DualPipe
from pipesim.schedules.gpipe import GPipe
from pipesim.schedules.interleaved import Interleaved1F1B, InterleavedZeroBubble
from pipesim.schedules.looped_bfs import LoopedBFS
from pipesim.schedules.one_f_one_b import OneFOneB
from pipesim.schedules.v_memory import VHalf, VMin
from pipesim.schedules.v_shape import ZBV, DualPipeV
from pipesim.schedules.zero_bubble import ZBH1, ZBH2
from pipesim.schedules.zero_bubble_auto import ZB1P, ZB2P, ZBAuto

_POLICIES: tuple[type[Policy], ...] = (
    GPipe,
    OneFOneB,
    Interleaved1F1B,
    LoopedBFS,
    ZBH1,
    ZBH2,
    ZBAuto,
    ZB1P,
    ZB2P,
    ZBV,
    VHalf,
    VMin,
    InterleavedZeroBubble,
    DualPipeV,
    DualPipe,
)


def registered_policies() -> list[Policy]:
    """One instance of every registered policy, in registry order."""
    return [cls() for cls in _POLICIES]


@functools.cache
def _lookup_table() -> Mapping[str, type[Policy]]:
    """Every name and alias, lower-cased (made once: a plan looks up a policy per
    configuration it screens, thousands)."""
    table: dict[str, type[Policy]] = {}
    for cls in _POLICIES:
        for key in (cls.name, *cls.aliases):
            table[key.lower()] = cls
    return MappingProxyType(table)


def get_policy(name: str) -> Policy:
    """The policy registered under `name` or one of its aliases, case-insensitive; or a user's
    class given as module:ClassName or file.py:ClassName.

    Raises:
        PolicyError: no such policy, or a user's module or class that cannot be loaded.
    """
    if is_custom_reference(name):
        return load_custom_policy(name.strip())
    cls = _lookup_table().get(name.strip().lower())
    if cls is None:
        known = ", ".join(policy.name for policy in registered_policies())
        raise PolicyError(f"unknown policy {name!r}; known policies: {known}")
    return cls()


def schedule_documents() -> list[tuple[list[str], str]]:
    """(policy names, the module docstring that cites their source and states their closed
    form and memory), one entry per schedule module, in registry order."""
    documents: dict[str, tuple[list[str], str]] = {}
    for cls in _POLICIES:
        module = inspect.getmodule(cls)
        key = module.__name__ if module is not None else cls.__name__
        documents.setdefault(key, ([], inspect.getdoc(module) or ""))[0].append(cls.name)
    return list(documents.values())
