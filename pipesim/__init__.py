"""pipesim: a discrete-event simulator of pipeline-parallel training schedules.

The public API: build `Settings`, `simulate_step` them (or `build_problem`, `simulate` and
`analyze` for control over each stage), then read the `Report`'s summary or render it.
"""

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
from pipesim.problem.settings import Settings, load_settings
from pipesim.schedules import ClosedForm, Policy, StaticPolicy, get_policy, registered_policies
from pipesim.simulator import simulate
from pipesim.simulator.trace import OpRecord, Trace, TransferRecord
from pipesim.studies.step import simulate_step

__all__ = [
    "ClosedForm",
    "ConfigError",
    "DeviceStats",
    "Kind",
    "Op",
    "OpRecord",
    "PipesimError",
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
    "get_policy",
    "load_settings",
    "needs",
    "registered_policies",
    "simulate",
    "simulate_step",
    "summarize",
]
