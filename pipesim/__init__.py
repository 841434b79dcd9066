"""pipesim: a discrete-event simulator of pipeline-parallel training schedules.

The public API: build `Settings`, `run` them (or `build_problem` + `simulate` for control over
each step), then read the `Report`'s summary or render it.
"""

from pipesim.analysis import Report, analyze, run
from pipesim.checker import assert_valid, check_trace
from pipesim.config import Settings, build_problem, load_settings
from pipesim.errors import ConfigError, PipesimError, PolicyError, ScheduleStalled
from pipesim.metrics import DeviceStats, Summary, summarize
from pipesim.ops import Kind, Op, needs
from pipesim.schedules import ClosedForm, Policy, StaticPolicy, get_policy, registered_policies
from pipesim.simulator import simulate
from pipesim.trace import OpRecord, Trace, TransferRecord

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
    "run",
    "simulate",
    "summarize",
]
