"""pipesim: a discrete-event simulator of pipeline-parallel training schedules.

The public API: build `Settings`, `simulate_step` them (or `build_problem`, `simulate` and
`analyze` for control over each stage), then read the `Report`'s summary or render it.

Names are imported when first used (PEP 562), so that `pipesim --help` and the command line's
start-up do not load the simulator and the analysis before they need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipesim.analysis.checker import assert_valid, check_trace
    from pipesim.analysis.report import Report, analyze
    from pipesim.analysis.summary import DeviceStats, Summary, summarize
    from pipesim.errors import (
        ConfigError,
        PipesimError,
        PolicyError,
        ScheduleIncomplete,
        ScheduleStalled,
    )
    from pipesim.problem.build import build_problem
    from pipesim.problem.ops import Kind, Op, needs
    from pipesim.render.frames import Frames, frames
    from pipesim.schedules import (
        ClosedForm,
        Policy,
        StaticPolicy,
        get_policy,
        registered_policies,
    )
    from pipesim.settings.declarations import Settings, load_settings
    from pipesim.simulator import simulate
    from pipesim.simulator.trace import OpRecord, Trace, TransferRecord
    from pipesim.studies.compare import compare_workflow
    from pipesim.studies.optimize import optimize_workflow
    from pipesim.studies.plan import PlanSpace, plan_configurations, plan_search, ranked
    from pipesim.studies.run import run_step
    from pipesim.studies.step import simulate_step
    from pipesim.studies.sweep import sweep_setting

_WHERE = {
    "assert_valid": "pipesim.analysis.checker",
    "check_trace": "pipesim.analysis.checker",
    "Report": "pipesim.analysis.report",
    "analyze": "pipesim.analysis.report",
    "DeviceStats": "pipesim.analysis.summary",
    "Summary": "pipesim.analysis.summary",
    "summarize": "pipesim.analysis.summary",
    "ConfigError": "pipesim.errors",
    "PipesimError": "pipesim.errors",
    "PolicyError": "pipesim.errors",
    "ScheduleIncomplete": "pipesim.errors",
    "ScheduleStalled": "pipesim.errors",
    "build_problem": "pipesim.problem.build",
    "Frames": "pipesim.render.frames",
    "frames": "pipesim.render.frames",
    "Kind": "pipesim.problem.ops",
    "Op": "pipesim.problem.ops",
    "needs": "pipesim.problem.ops",
    "Settings": "pipesim.settings.declarations",
    "load_settings": "pipesim.settings.declarations",
    "ClosedForm": "pipesim.schedules",
    "Policy": "pipesim.schedules",
    "StaticPolicy": "pipesim.schedules",
    "get_policy": "pipesim.schedules",
    "registered_policies": "pipesim.schedules",
    "simulate": "pipesim.simulator",
    "OpRecord": "pipesim.simulator.trace",
    "Trace": "pipesim.simulator.trace",
    "TransferRecord": "pipesim.simulator.trace",
    "simulate_step": "pipesim.studies.step",
    "run_step": "pipesim.studies.run",
    "compare_workflow": "pipesim.studies.compare",
    "sweep_setting": "pipesim.studies.sweep",
    "PlanSpace": "pipesim.studies.plan",
    "plan_configurations": "pipesim.studies.plan",
    "plan_search": "pipesim.studies.plan",
    "ranked": "pipesim.studies.plan",
    "optimize_workflow": "pipesim.studies.optimize",
}
"""Each public name and the module that defines it."""


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from pipesim.render.envelope import version

        return version()
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pipesim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names too, so that `help(pipesim)` and tab completion list them (each is
    imported when asked for)."""
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ClosedForm",
    "ConfigError",
    "DeviceStats",
    "Frames",
    "Kind",
    "Op",
    "OpRecord",
    "PipesimError",
    "PlanSpace",
    "Policy",
    "PolicyError",
    "Report",
    "ScheduleIncomplete",
    "ScheduleStalled",
    "Settings",
    "StaticPolicy",
    "Summary",
    "Trace",
    "TransferRecord",
    "analyze",
    "assert_valid",
    "build_problem",
    "check_trace",
    "compare_workflow",
    "frames",
    "get_policy",
    "load_settings",
    "needs",
    "optimize_workflow",
    "plan_configurations",
    "plan_search",
    "ranked",
    "registered_policies",
    "run_step",
    "simulate",
    "simulate_step",
    "summarize",
    "sweep_setting",
]
