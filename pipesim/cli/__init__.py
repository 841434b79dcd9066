"""The `pipesim` command: parse, build the problem, call the library, render.

Every error a user can cause surfaces as one line on stderr and exit code 2 (1 for a schedule
that can never finish); nothing here computes a figure.
"""

import sys

# Importing registers the commands, in the order --help lists them: a run first, calibration
# from a measured run last.
from pipesim.cli import simulate, study  # noqa: F401

# isort: split
from pipesim.cli import measured  # noqa: F401
from pipesim.cli.app import app, for_arguments


def main() -> None:
    """Console-script entry point."""
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        print("pipesim: error: standard output is closed", file=sys.stderr)
        sys.exit(1)
    for_arguments(sys.argv[1:])()


__all__ = ["app", "main"]
