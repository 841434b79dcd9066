"""Policies written by users, loaded as `some.module:ClassName` or `path/to/file.py:ClassName`.

The class must subclass `pipesim.Policy` (usually `pipesim.StaticPolicy`) and take no
constructor arguments; see examples/custom_policy.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pipesim.errors import PolicyError, Terminated
from pipesim.schedules.base import Policy
from pipesim.schedules.guarded import GuardedPolicy, user_code

_USER_CODE_FAILURES = (BaseException,)
"""What a user's module may raise while it is imported or its class built: all of it is a
failure to load the policy (a module that calls sys.exit() is not pipesim exiting)."""


def is_custom_reference(name: str) -> bool:
    """Whether `name` points at a user's class rather than a registered policy."""
    return ":" in name


def load_custom_policy(reference: str) -> GuardedPolicy:
    """Import the module or file, find the class, check it is a Policy, instantiate it, and
    guard it (see `guarded`)."""
    where, _, class_name = reference.rpartition(":")
    if not where or not class_name:
        raise PolicyError(
            f"custom policy {reference!r}: expected module:ClassName or file.py:ClassName"
        )
    module = _load_module(where, reference)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise PolicyError(f"custom policy {reference!r}: {where} has no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise PolicyError(
            f"custom policy {reference!r}: {class_name} is not a pipesim Policy subclass"
        )
    try:
        with user_code():
            policy = cls()
    except Terminated:
        raise
    except _USER_CODE_FAILURES as error:
        raise PolicyError(
            f"custom policy {reference!r}: {class_name}() failed: {_describe(error)}"
        ) from None
    return GuardedPolicy(policy, class_name)


def _load_module(where: str, reference: str) -> ModuleType:
    try:
        if where.endswith(".py") or "/" in where or "\\" in where:
            path = Path(where)
            if not path.is_file():
                raise PolicyError(f"custom policy {reference!r}: no file {where}")
            spec = importlib.util.spec_from_file_location(f"pipesim_custom_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise PolicyError(f"custom policy {reference!r}: cannot load {where}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            with user_code():
                spec.loader.exec_module(module)
            return module
        with user_code():
            return importlib.import_module(where)
    except (PolicyError, Terminated):
        raise
    except ModuleNotFoundError as error:
        raise PolicyError(f"custom policy {reference!r}: no module named {error.name!r}") from None
    except _USER_CODE_FAILURES as error:
        raise PolicyError(
            f"custom policy {reference!r}: importing {where} failed: {_describe(error)}"
        ) from None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
