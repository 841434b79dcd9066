"""The one exception family the library raises for things a user got wrong.

The CLI turns a `PipesimError` into a single line on stderr and its exit code, in one place
(`cli/app.py`), so every message here is written to be read by the person who typed the
command, not by a developer. Every type pickles with its fields, so a study's worker process
sends back the error itself and the study raises it unchanged.

Who raises what: `ConfigError` the settings (`settings/values.py`, `settings/declarations.py`,
`settings/hardware.py`, `settings/text_input.py`) and their resolution (`problem/build.py`,
`problem/capacity.py`), output paths (`cli/output_files.py`) and the schedule files
(`schedules/schedule_file.py`); `CostShapeError` a cost list that fits no stage count
(`problem/build.py`); `PolicyError` the registry (an unknown name), a policy's own constraints
(`check`), a user's policy that fails or answers nonsense (`schedules/guarded.py`, and the
simulator for built-in ones); `ScheduleStalled` and `ScheduleIncomplete` the simulation
(`simulator/model.py`); `OutOfMemoryError` `pipesim run --fail-on-oom`.
"""

from __future__ import annotations


class PipesimError(Exception):
    """Base of every error caused by the user's input; the CLI exits with `exit_code`."""

    exit_code = 2


class ConfigError(PipesimError):
    """A setting is malformed, out of range or inconsistent with another setting."""


class CostShapeError(ConfigError):
    """A cost list's length fits neither the devices nor the stages of this placement (it may
    fit another policy's)."""


class PolicyError(PipesimError):
    """A policy is unknown, or the configuration violates one of its constraints."""


class ScheduleStalled(PipesimError):
    """The schedule can never finish: some device waits for an input that never comes.

    Exit code 1, not 2: the input was well-formed, the schedule itself is wrong.
    """

    exit_code = 1

    def __init__(self, message: str, waits: list[str], cycle: list[int]) -> None:
        super().__init__(message, waits, cycle)
        self.waits = waits
        """One sentence per stuck device: which op it waits to run, and for what."""
        self.cycle = cycle
        """The devices that wait on each other in a circle, the first repeated at the end
        (empty when the wait-for graph has no cycle)."""

    def __str__(self) -> str:
        return str(self.args[0])


class ScheduleIncomplete(PipesimError):
    """Every device's policy finished, but some ops never ran: the step is not a training step.

    Exit code 1, like a stall: the input was well-formed, the schedule itself is wrong.
    """

    exit_code = 1


class OutOfMemoryError(PipesimError):
    """`--fail-on-oom`: some device needs more memory than the limit. Exit code 1: the inputs
    were fine, the configuration does not fit."""

    exit_code = 1


class NoScheduleFound(PipesimError):
    """`optimize` ended without any schedule: none satisfies the constraints, or the time
    limit ran out before one was found. Exit code 1: the inputs were well-formed."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the program is (the CLI installs the handler) so that it
    unwinds like Ctrl-C: temporary files removed, the user's files untouched, one line."""
